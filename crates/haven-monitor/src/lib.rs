//! Monitoring at run time: what Haven does with the texts pupils search for and see once the
//! pure grading in `haven_core::risk` has graded them. The risk library in force
//! ([`library::Monitoring`]) and the alert sender ([`alerts`]).

pub mod alerts;
pub mod library;

pub use library::Monitoring;
