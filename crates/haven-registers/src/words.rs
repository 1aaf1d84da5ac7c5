//! The few-valued words the registers keep, each stored as its word; an unknown word is an
//! error, never a default.

use std::fmt;
use std::str::FromStr;

/// A word that is not one of an enum's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {word:?} is not one Haven knows (one of: {known})")]
pub struct WordError {
    what: &'static str,
    word: String,
    known: String,
}

macro_rules! words {
    ($(#[$m:meta])* $name:ident, $what:literal { $($(#[$vm:meta])* $v:ident = $id:literal, $label:literal;)+ }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vm])* $v,)+ }

        impl $name {
            /// Every value, in the order pages list them.
            pub const ALL: &'static [$name] = &[$($name::$v,)+];

            /// The word as stored.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $id,)+ }
            }

            /// The words a page shows.
            pub fn label(self) -> &'static str {
                match self { $($name::$v => $label,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = WordError;
            fn from_str(s: &str) -> Result<Self, WordError> {
                match s {
                    $($id => Ok($name::$v),)+
                    _ => Err(WordError {
                        what: $what,
                        word: s.chars().take(40).collect(),
                        known: [$($id),+].join(", "),
                    }),
                }
            }
        }
    };
}

words! {
    /// What a photo or video of a pupil is used for: consent is given (or not) for each.
    Purpose, "purpose" {
        Displays = "displays", "displays in school";
        Newsletter = "newsletter", "the newsletter";
        Prospectus = "prospectus", "the printed prospectus";
        Website = "website", "the school website";
        HighProfile = "high-profile", "a high-profile image (press, a poster)";
        SocialMedia = "social-media", "the school's social media";
        Videoconferencing = "videoconferencing", "videoconferencing and remote lessons";
    }
}

words! {
    /// Who an acceptable-use agreement is for.
    Audience, "audience" {
        EyfsKs1 = "eyfs-ks1", "EYFS and KS1 pupils (signed by a parent)";
        Ks2 = "ks2", "KS2 pupils";
        Ks3 = "ks3", "KS3 and older pupils";
        Staff = "staff", "staff";
        Volunteers = "volunteers", "volunteers and contractors";
        Governors = "governors", "governors";
        Parents = "parents", "parents and carers";
        Visitors = "visitors", "visitors";
    }
}

words! {
    /// How serious a data breach is, for the people whose data it is.
    Risk, "risk" {
        Low = "low", "low";
        Medium = "medium", "medium";
        High = "high", "high";
    }
}

words! {
    /// A training course every member of staff (and governor) keeps up to date.
    Course, "course" {
        Induction = "induction", "safeguarding induction";
        SafeguardingUpdate = "safeguarding-update", "annual safeguarding update";
        KcsiePart1 = "kcsie-part-1", "read KCSIE Part 1";
        OnlineSafety = "online-safety", "online safety";
        Dsl = "dsl", "DSL training";
        Prevent = "prevent", "Prevent awareness";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_others_are_refused() {
        for p in Purpose::ALL {
            assert_eq!(p.as_str().parse::<Purpose>(), Ok(*p));
        }
        for c in Course::ALL {
            assert_eq!(c.as_str().parse::<Course>(), Ok(*c));
        }
        for r in Risk::ALL {
            assert_eq!(r.as_str().parse::<Risk>(), Ok(*r));
        }
        let e = "billboard"
            .parse::<Purpose>()
            .expect_err("not a purpose")
            .to_string();
        assert!(e.contains("\"billboard\"") && e.contains("website"), "{e}");
    }
}
