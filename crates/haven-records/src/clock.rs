//! The clocks a safeguarding record runs against, as dates (a deadline is the end of its day,
//! in the school's time zone; the caller passes today's date in):
//!
//! - an allegation about a member of staff goes to the LADO within one working day;
//! - a child protection file reaches the new school within five school days of the child
//!   leaving (KCSIE);
//! - a concern told to the DSL in person is written up by the end of that day;
//! - follow-ups and reviews fall due on the date set.

use jiff::civil::{Date, Weekday};

/// How a clock stands today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ClockState {
    /// Past its date: red.
    Overdue,
    /// Due by the end of today: amber.
    DueToday,
    /// Due on a later day.
    Later,
}

impl ClockState {
    /// The word pages use (and style by).
    pub fn as_str(self) -> &'static str {
        match self {
            ClockState::Overdue => "overdue",
            ClockState::DueToday => "due-today",
            ClockState::Later => "later",
        }
    }
}

/// How a clock due on `due` stands on `today`.
pub fn state(today: Date, due: Date) -> ClockState {
    match today.cmp(&due) {
        std::cmp::Ordering::Greater => ClockState::Overdue,
        std::cmp::Ordering::Equal => ClockState::DueToday,
        std::cmp::Ordering::Less => ClockState::Later,
    }
}

fn weekday(d: Date) -> bool {
    !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
}

/// The `n`th day after `from` that is a weekday and not in `closed` (bank holidays for working
/// days; holidays and training days for school days). `n` of 0 is `from` itself.
pub fn days_after(from: Date, n: u32, closed: &[Date]) -> Date {
    let mut d = from;
    let mut left = n;
    // A year of closures at most; past that the calendar is wrong, and the date given is a
    // weekday count alone.
    let mut guard = 0;
    while left > 0 {
        d = d.tomorrow().unwrap_or(d);
        guard += 1;
        if weekday(d) && (guard > 366 || !closed.contains(&d)) {
            left -= 1;
        }
    }
    d
}

/// The `n`th weekday after `from` that `counts` (a school day: in term and not a closure, as
/// the policy's term calendar says). Past a year of days that do not count, weekdays alone.
pub fn days_after_where(from: Date, n: u32, counts: impl Fn(Date) -> bool) -> Date {
    let mut d = from;
    let mut left = n;
    let mut guard = 0;
    while left > 0 {
        d = d.tomorrow().unwrap_or(d);
        guard += 1;
        if weekday(d) && (guard > 366 || counts(d)) {
            left -= 1;
        }
    }
    d
}

/// The file must reach the new school within five school days of the child leaving, school
/// days as `is_school_day` says (the policy's terms and closures).
pub fn transfer_due_where(left: Date, is_school_day: impl Fn(Date) -> bool) -> Date {
    days_after_where(left, TRANSFER_SCHOOL_DAYS, is_school_day)
}

/// The LADO must hear of an allegation by the end of the working day after the one it was made.
pub fn lado_due(allegation: Date, bank_holidays: &[Date]) -> Date {
    days_after(allegation, 1, bank_holidays)
}

/// Days a child protection file has to reach the new school (KCSIE: within five school days).
pub const TRANSFER_SCHOOL_DAYS: u32 = 5;

/// The file must reach the new school within five school days of the child leaving.
pub fn transfer_due(left: Date, school_closed: &[Date]) -> Date {
    days_after(left, TRANSFER_SCHOOL_DAYS, school_closed)
}

/// A concern told to the DSL in person is written up by the end of the day it was told.
pub fn write_up_due(told: Date) -> Date {
    told
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn the_lado_clock_skips_the_weekend_and_bank_holidays_and_turns_red_after_a_working_day() {
        // Thursday → Friday; Friday → Monday; a Friday before a bank-holiday Monday → Tuesday.
        assert_eq!(lado_due(date(2026, 11, 26), &[]), date(2026, 11, 27));
        assert_eq!(lado_due(date(2026, 11, 27), &[]), date(2026, 11, 30));
        assert_eq!(
            lado_due(date(2026, 8, 28), &[date(2026, 8, 31)]),
            date(2026, 9, 1)
        );
        let due = lado_due(date(2026, 11, 26), &[]);
        assert_eq!(state(date(2026, 11, 26), due), ClockState::Later);
        assert_eq!(state(date(2026, 11, 27), due), ClockState::DueToday);
        assert_eq!(state(date(2026, 11, 28), due), ClockState::Overdue);
    }

    #[test]
    fn a_file_transfer_has_five_school_days_with_holidays_not_counted() {
        // Left on Friday 11 December: Mon 14 … Fri 18 December.
        assert_eq!(transfer_due(date(2026, 12, 11), &[]), date(2026, 12, 18));
        let christmas: Vec<Date> = (21..=31)
            .map(|d| date(2026, 12, d))
            .chain((1..=1).map(|d| date(2027, 1, d)))
            .collect();
        // Left on Friday 18 December: the holiday does not count; Mon 4 … Fri 8 January.
        assert_eq!(
            transfer_due(date(2026, 12, 18), &christmas),
            date(2027, 1, 8)
        );
    }

    #[test]
    fn school_days_come_from_the_term_calendar() {
        // Term ends Friday 18 December and starts again on Tuesday 5 January (an INSET day on
        // the Monday): left on Wednesday 16 December, the five school days are 17 and 18
        // December and 5, 6 and 7 January.
        let in_term = |d: Date| {
            (d >= date(2026, 9, 1) && d <= date(2026, 12, 18))
                || (d >= date(2027, 1, 5) && d <= date(2027, 3, 26))
        };
        assert_eq!(
            transfer_due_where(date(2026, 12, 16), in_term),
            date(2027, 1, 7)
        );
        // No term dates at all: weekdays.
        assert_eq!(
            transfer_due_where(date(2026, 12, 16), |_| true),
            date(2026, 12, 23)
        );
    }

    #[test]
    fn a_concern_told_in_person_is_due_written_the_same_day() {
        let told = date(2026, 12, 2);
        assert_eq!(state(told, write_up_due(told)), ClockState::DueToday);
        assert_eq!(
            state(date(2026, 12, 3), write_up_due(told)),
            ClockState::Overdue
        );
    }
}
