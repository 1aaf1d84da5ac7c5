//! The few-valued words a record keeps (a child's part, an agency, an entry's kind), each an
//! enum with the word as stored and shown; an unknown word is an error, never a default.

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
    /// A child's part in a concern. Each child named in a concern has their own; the part of
    /// one is never shown as another's.
    Part, "part" {
        Subject = "subject", "subject";
        Victim = "victim", "victim";
        AllegedPerpetrator = "alleged-perpetrator", "alleged perpetrator";
        Witness = "witness", "witness";
    }
}

words! {
    /// Who a concern is referred or escalated to.
    Agency, "agency" {
        Headteacher = "headteacher", "the headteacher";
        Lado = "lado", "the LADO";
        Police = "police", "the police";
        Ceop = "ceop", "CEOP";
        Iwf = "iwf", "the IWF";
        SocialCare = "social-care", "children's social care";
        Mash = "mash", "the MASH";
        Prevent = "prevent", "Prevent / Channel";
        Parents = "parents", "parents or carers";
        OtherSchool = "other-school", "another school's DSL";
        ExamBoard = "exam-board", "the exam board";
        NetworkManager = "network-manager", "the network manager";
    }
}

words! {
    /// What a line of a child's chronology is.
    EntryKind, "entry kind" {
        Concern = "concern", "concern";
        Action = "action", "action";
        Decision = "decision", "decision";
        Referral = "referral", "referral";
        Capture = "capture", "monitoring capture";
        Meeting = "meeting", "meeting";
        ParentContact = "parent-contact", "contact with parents";
        Checklist = "checklist", "procedure step";
        Outcome = "outcome", "outcome";
        Note = "note", "note";
    }
}

words! {
    /// Whose record a concern is: a pupil's, or an allegation about a member of staff (which
    /// goes to the headteacher, or about the headteacher to the chair of governors).
    RecordKind, "record kind" {
        Pupil = "pupil", "about a pupil";
        Staff = "staff", "an allegation about a member of staff";
        Headteacher = "headteacher", "an allegation about the headteacher";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_and_an_unknown_one_is_an_error() {
        for p in Part::ALL {
            assert_eq!(p.as_str().parse::<Part>(), Ok(*p));
        }
        for a in Agency::ALL {
            assert_eq!(a.as_str().parse::<Agency>(), Ok(*a));
        }
        for k in EntryKind::ALL {
            assert_eq!(k.as_str().parse::<EntryKind>(), Ok(*k));
        }
        let e = "bystander"
            .parse::<Part>()
            .expect_err("not a part")
            .to_string();
        assert!(e.contains("\"bystander\"") && e.contains("witness"), "{e}");
        assert!("Police".parse::<Agency>().is_err(), "words are exact");
    }
}
