//! Policy reviews: each policy is reviewed by a date, signed off by the chair of governors; an
//! incident or a change of technology can bring a review forward. A policy is due when its next
//! review date has come, or it was brought forward, or it has never been reviewed.

use jiff::civil::Date;

/// Months to the next review when none is given (policies are reviewed every year).
pub const DEFAULT_MONTHS: i32 = 12;

/// How a policy stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Its review date has passed.
    Overdue,
    /// Due within the month.
    DueSoon,
    /// Reviewed and not yet due.
    Current,
}

impl Standing {
    /// The word pages use (and style by).
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Overdue => "overdue",
            Standing::DueSoon => "due-soon",
            Standing::Current => "current",
        }
    }
}

/// The default next review: a year after this one.
pub fn next_review(reviewed: Date) -> Option<Date> {
    reviewed
        .checked_add(jiff::Span::new().months(DEFAULT_MONTHS))
        .ok()
}

/// How a policy due on `next` stands on `today`.
pub fn standing(today: Date, next: Date) -> Standing {
    if today >= next {
        Standing::Overdue
    } else if next
        .checked_sub(jiff::Span::new().days(30))
        .is_ok_and(|soon| today >= soon)
    {
        Standing::DueSoon
    } else {
        Standing::Current
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_policy_is_due_on_its_date_and_shows_a_month_before() {
        assert_eq!(next_review(date(2026, 2, 28)), Some(date(2027, 2, 28)));
        let next = date(2027, 1, 15);
        assert_eq!(standing(date(2026, 12, 2), next), Standing::Current);
        assert_eq!(standing(date(2026, 12, 16), next), Standing::DueSoon);
        assert_eq!(standing(date(2027, 1, 15), next), Standing::Overdue);
    }
}
