//! Image consent: for each pupil and purpose, the latest decision (given, refused or
//! withdrawn) by whom and when, kept as a history so that a withdrawal takes effect at once and
//! what was true on a day can be told. "Can I use this photo?" is [`may_use`]; a pupil with no
//! decision recorded for a purpose is a no.

use crate::Purpose;

/// One decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// For what.
    pub purpose: Purpose,
    /// Consent given (`true`) or refused or withdrawn (`false`).
    pub given: bool,
    /// When it was recorded (milliseconds since 1970).
    pub at_ms: i64,
    /// Who decided (a parent or carer, by name; or the pupil, when old enough).
    pub by: String,
}

/// The answer to "can I use a photo of this pupil for this?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Yes: consent given, when and by whom.
    Yes {
        /// When.
        at_ms: i64,
        /// By whom.
        by: String,
    },
    /// No: consent refused or withdrawn, when and by whom.
    Refused {
        /// When.
        at_ms: i64,
        /// By whom.
        by: String,
        /// Withdrawn (it had been given before), rather than refused from the start.
        withdrawn: bool,
    },
    /// No: nobody has been asked for this purpose.
    NotAsked,
}

impl Answer {
    /// Whether the photo may be used.
    pub fn yes(&self) -> bool {
        matches!(self, Answer::Yes { .. })
    }
}

/// The answer for `purpose` from a pupil's decisions (any order): the latest one for it
/// counts; of two at the same moment, the later in the list.
pub fn may_use(decisions: &[Decision], purpose: Purpose) -> Answer {
    let mine: Vec<&Decision> = decisions.iter().filter(|d| d.purpose == purpose).collect();
    let Some(latest) = mine
        .iter()
        .enumerate()
        .max_by_key(|(i, d)| (d.at_ms, *i))
        .map(|(_, d)| *d)
    else {
        return Answer::NotAsked;
    };
    if latest.given {
        Answer::Yes {
            at_ms: latest.at_ms,
            by: latest.by.clone(),
        }
    } else {
        Answer::Refused {
            at_ms: latest.at_ms,
            by: latest.by.clone(),
            withdrawn: mine.iter().any(|d| d.given && d.at_ms <= latest.at_ms),
        }
    }
}

/// Years a photo of a pupil is kept unless the school keeps it on purpose.
pub const PHOTO_YEARS: i16 = 3;

/// When a photo taken on `taken` comes up for deletion: three years on, or never when it is
/// kept on purpose (in the school's archive, say).
pub fn photo_review_on(
    taken: jiff::civil::Date,
    kept_on_purpose: bool,
) -> Option<jiff::civil::Date> {
    if kept_on_purpose {
        return None;
    }
    taken.checked_add(jiff::Span::new().years(PHOTO_YEARS)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(purpose: Purpose, given: bool, at_ms: i64) -> Decision {
        Decision {
            purpose,
            given,
            at_ms,
            by: format!("parent at {at_ms}"),
        }
    }

    #[test]
    fn the_latest_decision_for_the_purpose_counts_and_a_withdrawal_is_a_no_at_once() {
        let history = vec![
            d(Purpose::Website, true, 100),
            d(Purpose::Newsletter, true, 100),
            d(Purpose::Website, false, 200),
        ];
        assert_eq!(
            may_use(&history, Purpose::Website),
            Answer::Refused {
                at_ms: 200,
                by: "parent at 200".into(),
                withdrawn: true
            }
        );
        assert!(may_use(&history, Purpose::Newsletter).yes());
        assert_eq!(may_use(&history, Purpose::SocialMedia), Answer::NotAsked);
        // Order in the list does not matter; the time does.
        let mut shuffled = history.clone();
        shuffled.reverse();
        assert!(!may_use(&shuffled, Purpose::Website).yes());
        // Refused from the start is not "withdrawn".
        assert_eq!(
            may_use(&[d(Purpose::Prospectus, false, 5)], Purpose::Prospectus),
            Answer::Refused {
                at_ms: 5,
                by: "parent at 5".into(),
                withdrawn: false
            }
        );
        // Given again after a withdrawal.
        let again = vec![
            d(Purpose::Website, true, 1),
            d(Purpose::Website, false, 2),
            d(Purpose::Website, true, 3),
        ];
        assert!(may_use(&again, Purpose::Website).yes());
    }

    #[test]
    fn a_photo_is_reviewed_after_three_years_unless_kept_on_purpose() {
        let taken = jiff::civil::date(2024, 2, 29);
        assert_eq!(
            photo_review_on(taken, false),
            Some(jiff::civil::date(2027, 2, 28))
        );
        assert_eq!(photo_review_on(taken, true), None);
    }
}
