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

/// The LADO must hear of an allegation by the end of the working day after the one it was made:
/// a weekday that is not a bank holiday in England and Wales ([`is_bank_holiday`]) nor in
/// `also_closed` (a one-off bank holiday announced after this was written, say).
pub fn lado_due(allegation: Date, also_closed: &[Date]) -> Date {
    days_after_where(allegation, 1, |d| {
        !is_bank_holiday(d) && !also_closed.contains(&d)
    })
}

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm, as in Meeus).
fn easter(year: i16) -> Option<Date> {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// The `nth` (1-based) `weekday` of a month, or with `nth` of 0 the last one.
fn nth_weekday(year: i16, month: i8, weekday: Weekday, nth: u8) -> Option<Date> {
    let first = Date::new(year, month, 1).ok()?;
    let days: Vec<Date> = (0..first.days_in_month())
        .filter_map(|i| first.checked_add(jiff::Span::new().days(i)).ok())
        .filter(|d| d.weekday() == weekday)
        .collect();
    match nth {
        0 => days.last().copied(),
        n => days.get(usize::from(n) - 1).copied(),
    }
}

/// Bank holidays moved or added by proclamation, which no rule gives: (year, the rule's date
/// it replaces if any, the day itself). From GOV.UK's list for England and Wales.
/// A month and day.
type MonthDay = (i8, i8);

const PROCLAIMED: &[(i16, Option<MonthDay>, MonthDay)] = &[
    (2012, Some((5, 28)), (6, 4)),
    (2012, None, (6, 5)),
    (2020, Some((5, 4)), (5, 8)),
    (2022, Some((5, 30)), (6, 2)),
    (2022, None, (6, 3)),
    (2022, None, (9, 19)),
    (2023, None, (5, 8)),
];

/// The bank holidays of England and Wales in `year`: New Year's Day, Good Friday, Easter
/// Monday, the early May, spring and summer bank holidays, Christmas Day and Boxing Day, each
/// moved to the next free weekday when it falls at a weekend; with the days moved or added by
/// proclamation that GOV.UK lists (2012, 2020, 2022, 2023). Scotland and Northern Ireland
/// keep others: add them as `also_closed`.
pub fn bank_holidays(year: i16) -> Vec<Date> {
    let day = |m: i8, d: i8| Date::new(year, m, d).ok();
    let mut fixed: Vec<Date> = Vec::new();
    // Days that move to the next free weekday, in order (Christmas before Boxing Day).
    for d in [day(1, 1), day(12, 25), day(12, 26)].into_iter().flatten() {
        let mut x = d;
        while !weekday(x) || fixed.contains(&x) {
            match x.tomorrow() {
                Ok(t) => x = t,
                Err(_) => break,
            }
        }
        fixed.push(x);
    }
    let easter = easter(year);
    let mut out: Vec<Date> = fixed;
    out.extend(easter.and_then(|e| e.checked_sub(jiff::Span::new().days(2)).ok()));
    out.extend(easter.and_then(|e| e.tomorrow().ok()));
    for (month, nth) in [(5, 1), (5, 0), (8, 0)] {
        let Some(d) = nth_weekday(year, month, Weekday::Monday, nth) else {
            continue;
        };
        let moved = PROCLAIMED
            .iter()
            .any(|(y, from, _)| *y == year && *from == Some((d.month(), d.day())));
        if !moved {
            out.push(d);
        }
    }
    out.extend(
        PROCLAIMED
            .iter()
            .filter(|(y, _, _)| *y == year)
            .filter_map(|(_, _, (m, d))| day(*m, *d)),
    );
    out.sort();
    out.dedup();
    out
}

/// Whether `d` is a bank holiday in England and Wales ([`bank_holidays`]).
pub fn is_bank_holiday(d: Date) -> bool {
    weekday(d) && bank_holidays(d.year()).contains(&d)
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
    fn bank_holidays_match_gov_uks_list_for_england_and_wales() {
        // GOV.UK's published dates for England and Wales, written out as published (not derived
        // from the rules above).
        let published: &[(i16, &[(i8, i8)])] = &[
            (
                2020,
                &[
                    (1, 1),
                    (4, 10),
                    (4, 13),
                    (5, 8),
                    (5, 25),
                    (8, 31),
                    (12, 25),
                    (12, 28),
                ],
            ),
            (
                2021,
                &[
                    (1, 1),
                    (4, 2),
                    (4, 5),
                    (5, 3),
                    (5, 31),
                    (8, 30),
                    (12, 27),
                    (12, 28),
                ],
            ),
            (
                2022,
                &[
                    (1, 3),
                    (4, 15),
                    (4, 18),
                    (5, 2),
                    (6, 2),
                    (6, 3),
                    (8, 29),
                    (9, 19),
                    (12, 26),
                    (12, 27),
                ],
            ),
            (
                2023,
                &[
                    (1, 2),
                    (4, 7),
                    (4, 10),
                    (5, 1),
                    (5, 8),
                    (5, 29),
                    (8, 28),
                    (12, 25),
                    (12, 26),
                ],
            ),
            (
                2024,
                &[
                    (1, 1),
                    (3, 29),
                    (4, 1),
                    (5, 6),
                    (5, 27),
                    (8, 26),
                    (12, 25),
                    (12, 26),
                ],
            ),
            (
                2025,
                &[
                    (1, 1),
                    (4, 18),
                    (4, 21),
                    (5, 5),
                    (5, 26),
                    (8, 25),
                    (12, 25),
                    (12, 26),
                ],
            ),
            (
                2026,
                &[
                    (1, 1),
                    (4, 3),
                    (4, 6),
                    (5, 4),
                    (5, 25),
                    (8, 31),
                    (12, 25),
                    (12, 28),
                ],
            ),
            (
                2027,
                &[
                    (1, 1),
                    (3, 26),
                    (3, 29),
                    (5, 3),
                    (5, 31),
                    (8, 30),
                    (12, 27),
                    (12, 28),
                ],
            ),
        ];
        for (year, days) in published {
            let want: Vec<Date> = days.iter().map(|(m, d)| date(*year, *m, *d)).collect();
            assert_eq!(bank_holidays(*year), want, "{year}");
        }
    }

    #[test]
    fn the_lado_clock_skips_easter_and_christmas() {
        // Allegation on Maundy Thursday 2026: Good Friday and Easter Monday are not working
        // days, so the LADO is told by Tuesday 7 April.
        assert_eq!(lado_due(date(2026, 4, 2), &[]), date(2026, 4, 7));
        // Christmas Eve 2026 (Thursday): 25th, the weekend and the substitute Boxing Day
        // (Monday 28th) pass; Tuesday 29 December.
        assert_eq!(lado_due(date(2026, 12, 24), &[]), date(2026, 12, 29));
        // A one-off bank holiday announced later is given as also closed.
        assert_eq!(
            lado_due(date(2027, 6, 3), &[date(2027, 6, 4)]),
            date(2027, 6, 7)
        );
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
