//! Safeguarding records as rules, with no I/O and no clock: the caller passes the time in.
//!
//! - [`category`]: the categories schools' online-safety policies name, each with its
//!   procedure as a checklist ([`procedure`]), and a school's own categories;
//! - [`Part`]: a child's part in a concern (never copied onto the others);
//! - [`Agency`]: who a concern is referred to;
//! - [`access`]: who may read which record (the DSL team, the headteacher, the chair of
//!   governors for allegations about the headteacher, the author of what they wrote);
//! - [`clock`]: the statutory clocks (the LADO within one working day, a file transferred
//!   within five school days, a concern told in person written up by the end of the day);
//! - [`retention`]: how long a record is kept before it is reviewed;
//! - [`suppress`]: small numbers in reports for governors;
//! - [`transfer`]: a child's file as it travels to their new school (`haven-file/1`);
//! - [`pdf`]: printed records (chronologies, reports for governors, transfer packs) as PDF.
//!
//! The store keeps what these rules decide; the console shows it.

pub mod access;
pub mod body;
pub mod category;
pub mod clock;
pub mod evidence;
pub mod pdf;
pub mod printed;
pub mod procedure;
pub mod redact;
pub mod report;
pub mod retention;
pub mod transfer;

mod words;

pub use words::{Agency, EntryKind, Part, RecordKind, WordError};

/// A count as a report for governors shows it: under five (but not none) is "fewer than 5",
/// so that no child can be picked out of a small number.
pub fn suppress(n: u64) -> String {
    if (1..SMALL_NUMBER).contains(&n) {
        format!("fewer than {SMALL_NUMBER}")
    } else {
        n.to_string()
    }
}

/// Counts below this (and above none) are not shown in reports for governors.
pub const SMALL_NUMBER: u64 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_numbers_are_suppressed_and_none_is_shown() {
        assert_eq!(suppress(0), "0");
        assert_eq!(suppress(1), "fewer than 5");
        assert_eq!(suppress(4), "fewer than 5");
        assert_eq!(suppress(5), "5");
        assert_eq!(suppress(120), "120");
    }
}
