//! How long records are kept before they come up for review (IRMS toolkit for schools, as
//! schools' retention schedules quote it). Nothing is deleted by date alone: the date puts the
//! record in a review queue, a legal hold keeps it there, and a deletion leaves a tombstone.

use jiff::civil::Date;
use jiff::ToSpan as _;

/// A pupil's safeguarding file: until their date of birth plus this many years.
pub const PUPIL_YEARS: i16 = 25;
/// An allegation about a member of staff: until their normal retirement age…
pub const RETIREMENT_AGE: i16 = 67;
/// …or ten years from the allegation, whichever is longer.
pub const ALLEGATION_YEARS: i16 = 10;
/// Photographs of pupils, unless kept on purpose.
pub const PHOTO_YEARS: i16 = 3;

fn plus_years(d: Date, years: i16) -> Date {
    // 29 February plus years lands on 28 February in a common year.
    d.checked_add(years.years()).unwrap_or(d)
}

/// When a pupil's record comes up for review.
pub fn pupil_review_on(date_of_birth: Date) -> Date {
    plus_years(date_of_birth, PUPIL_YEARS)
}

/// When an allegation about a member of staff comes up for review: their retirement age or ten
/// years from the allegation, whichever is later. Without a date of birth, the ten years.
pub fn allegation_review_on(staff_date_of_birth: Option<Date>, allegation: Date) -> Date {
    let ten = plus_years(allegation, ALLEGATION_YEARS);
    match staff_date_of_birth {
        Some(dob) => ten.max(plus_years(dob, RETIREMENT_AGE)),
        None => ten,
    }
}

/// When a record comes up for review: a pupil's record when the youngest child it names turns
/// 25 (without any date of birth, 25 years from when it was written, so nothing goes early);
/// an allegation by the member of staff's retirement or ten years, whichever is later.
pub fn record_review_on(kind: crate::RecordKind, births: &[Date], written: Date) -> Date {
    match kind {
        crate::RecordKind::Pupil => births
            .iter()
            .map(|d| pupil_review_on(*d))
            .max()
            .unwrap_or_else(|| plus_years(written, PUPIL_YEARS)),
        crate::RecordKind::Staff | crate::RecordKind::Headteacher => {
            allegation_review_on(births.first().copied(), written)
        }
    }
}

/// Whether a record due for review on `due` may be deleted today: only when due and not on
/// legal hold.
pub fn may_delete(today: Date, due: Date, legal_hold: bool) -> bool {
    !legal_hold && today >= due
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_pupils_record_is_kept_to_twenty_five_and_a_legal_hold_blocks_deletion() {
        let due = pupil_review_on(date(2014, 2, 28));
        assert_eq!(due, date(2039, 2, 28));
        assert_eq!(pupil_review_on(date(2012, 2, 29)), date(2037, 2, 28));
        assert!(!may_delete(date(2039, 2, 27), due, false));
        assert!(may_delete(date(2039, 2, 28), due, false));
        assert!(!may_delete(date(2040, 1, 1), due, true));
    }

    #[test]
    fn a_record_naming_several_children_waits_for_the_youngest() {
        use crate::RecordKind;
        let written = date(2026, 12, 2);
        assert_eq!(
            record_review_on(
                RecordKind::Pupil,
                &[date(2010, 1, 1), date(2014, 6, 1)],
                written
            ),
            date(2039, 6, 1)
        );
        assert_eq!(
            record_review_on(RecordKind::Pupil, &[], written),
            date(2051, 12, 2)
        );
        assert_eq!(
            record_review_on(RecordKind::Staff, &[], written),
            date(2036, 12, 2)
        );
    }

    #[test]
    fn an_allegation_is_kept_to_retirement_or_ten_years_whichever_is_longer() {
        let young = allegation_review_on(Some(date(1995, 6, 1)), date(2026, 12, 2));
        assert_eq!(young, date(2062, 6, 1), "retirement at 67 is later");
        let near = allegation_review_on(Some(date(1962, 6, 1)), date(2026, 12, 2));
        assert_eq!(near, date(2036, 12, 2), "ten years is later");
        assert_eq!(
            allegation_review_on(None, date(2026, 12, 2)),
            date(2036, 12, 2)
        );
    }
}
