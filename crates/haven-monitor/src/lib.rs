//! Monitoring at run time: what Haven does with the texts pupils search for and see once the
//! pure grading in `haven_core::risk` has graded them. The risk library in force
//! ([`library::Monitoring`]), the `[monitor]` rules ([`rules::MonitorRules`]), the
//! [`watcher::Watcher`] that turns events into captures, the page grader and its budget
//! ([`pages`]) and the alert sender ([`alerts`]).

pub mod alerts;
pub mod grader;
pub mod library;
pub mod pages;
pub mod rules;
pub mod training;
pub mod watcher;

pub use library::Monitoring;
pub use rules::MonitorRules;
pub use watcher::Watcher;
