//! Acceptable-use agreements: a document per audience, in versions, each effective from a date;
//! signatures (who signed, for whom, how, when). A person is due when they have not signed the
//! version in force, or signed it more than a year ago (agreements are signed again every year);
//! publishing a new version makes everyone on an older one due.

use jiff::civil::Date;

use crate::Audience;

/// Months a signature stays current before the yearly re-signing.
pub const VALID_MONTHS: i32 = 12;

/// How a person stands with their audience's agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Never signed any version.
    Missing,
    /// Signed an older version than the one in force.
    OldVersion,
    /// Signed the version in force, more than a year ago.
    Expired,
    /// Signed the version in force within the year.
    Current,
}

impl Standing {
    /// The word pages use (and style by).
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Missing => "missing",
            Standing::OldVersion => "old-version",
            Standing::Expired => "expired",
            Standing::Current => "current",
        }
    }

    /// In words.
    pub fn label(self) -> &'static str {
        match self {
            Standing::Missing => "never signed",
            Standing::OldVersion => "signed an older version",
            Standing::Expired => "signed over a year ago",
            Standing::Current => "signed",
        }
    }

    /// Whether they must sign (again).
    pub fn due(self) -> bool {
        self != Standing::Current
    }
}

/// The standing on `today` of someone whose latest signature (of their audience's agreement)
/// was of version `signed` on `on`, when version `in_force` is the one in force.
pub fn standing(today: Date, in_force: u32, latest: Option<(u32, Date)>) -> Standing {
    match latest {
        None => Standing::Missing,
        Some((v, _)) if v < in_force => Standing::OldVersion,
        Some((_, on)) => match on.checked_add(jiff::Span::new().months(VALID_MONTHS)) {
            Ok(until) if today >= until => Standing::Expired,
            _ => Standing::Current,
        },
    }
}

/// The version in force on `today` among `(version, effective from)`: the highest version
/// already effective.
pub fn in_force(today: Date, versions: &[(u32, Date)]) -> Option<u32> {
    versions
        .iter()
        .filter(|(_, from)| *from <= today)
        .map(|(v, _)| *v)
        .max()
}

/// A pupil's audience by year group (`R`, `N`, `1`…`13`, as the MIS gives it): Reception and
/// nursery to Year 2 sign with a parent (EYFS and KS1), Years 3 to 6 are KS2, Year 7 on KS3+.
/// `None` when the year group is not one of these.
pub fn pupil_audience(year_group: Option<&str>) -> Option<Audience> {
    let y = year_group?.trim();
    match y.to_ascii_uppercase().as_str() {
        "N" | "N1" | "N2" | "R" | "RECEPTION" => return Some(Audience::EyfsKs1),
        _ => {}
    }
    let n: u8 = y.parse().ok()?;
    match n {
        1..=2 => Some(Audience::EyfsKs1),
        3..=6 => Some(Audience::Ks2),
        7..=14 => Some(Audience::Ks3),
        _ => None,
    }
}

impl Audience {
    /// Whether a parent or carer signs for the person (the youngest pupils).
    pub fn signed_by_parent(self) -> bool {
        self == Audience::EyfsKs1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn a_new_version_or_a_year_makes_a_signature_due() {
        let today = date(2026, 12, 2);
        assert_eq!(standing(today, 2, None), Standing::Missing);
        assert_eq!(
            standing(today, 2, Some((1, date(2026, 11, 1)))),
            Standing::OldVersion
        );
        assert_eq!(
            standing(today, 2, Some((2, date(2025, 12, 2)))),
            Standing::Expired
        );
        assert_eq!(
            standing(today, 2, Some((2, date(2025, 12, 3)))),
            Standing::Current
        );
        assert!(!Standing::Current.due() && Standing::Expired.due());
        let versions = [
            (1, date(2025, 9, 1)),
            (2, date(2026, 9, 1)),
            (3, date(2027, 1, 4)),
        ];
        assert_eq!(
            in_force(today, &versions),
            Some(2),
            "version 3 is not in force yet"
        );
        assert_eq!(in_force(date(2025, 1, 1), &versions), None);
    }

    #[test]
    fn a_pupils_year_group_gives_their_agreement() {
        assert_eq!(pupil_audience(Some("R")), Some(Audience::EyfsKs1));
        assert_eq!(pupil_audience(Some("2")), Some(Audience::EyfsKs1));
        assert_eq!(pupil_audience(Some("5")), Some(Audience::Ks2));
        assert_eq!(pupil_audience(Some("11")), Some(Audience::Ks3));
        assert_eq!(pupil_audience(Some("Year 15")), None);
        assert_eq!(pupil_audience(None), None);
        assert!(Audience::EyfsKs1.signed_by_parent() && !Audience::Ks2.signed_by_parent());
    }
}
