//! The registers a school keeps beside its safeguarding records, as rules with no I/O and no
//! clock (the caller passes the time in):
//!
//! - [`agreements`]: acceptable-use agreements per audience and version, and who must sign;
//! - [`consent`]: image consent per pupil per purpose, and "can I use this photo?";
//! - [`breach`]: the data-breach log's 72-hour clock (ICO reporting), warning at 48 hours;
//! - [`reviews`]: policy reviews, when each is due;
//! - [`training`]: staff training courses, when each expires, and a CSV of completions.
//!
//! The store keeps what these decide; the console shows it.

pub mod agreements;
pub mod breach;
pub mod consent;
pub mod reviews;
pub mod training;

mod words;

pub use words::{Audience, Course, Purpose, Risk, WordError};
