//! Who may read a record. Pupils' records: the DSL and deputies and the headteacher; the author
//! sees what they wrote and nothing that followed. An allegation about a member of staff: the
//! headteacher only (the DSL when shared with them); about the headteacher: the chair of
//! governors only. Nobody else. A deputy or the headteacher opening a pupil's case that is not
//! theirs breaks the glass: they give a typed reason, and the DSL is told.

use crate::RecordKind;

/// The reader, as far as records care.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reader {
    /// Their person id.
    pub person: i64,
    /// The Designated Safeguarding Lead.
    pub dsl: bool,
    /// A deputy DSL.
    pub deputy: bool,
    /// The headteacher.
    pub headteacher: bool,
    /// The chair of governors.
    pub chair: bool,
}

/// A record, as far as reading it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Whose record it is.
    pub kind: RecordKind,
    /// Who wrote it (their person id).
    pub author: i64,
    /// Who holds the case (the DSL by default; a deputy it was given to).
    pub holder: Option<i64>,
    /// An allegation the headteacher (or chair) chose to share with the DSL.
    pub shared_with_dsl: bool,
}

/// What the reader may see of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// All of it: the record and everything that followed.
    Full,
    /// All of it, after giving a reason that is recorded and flagged to the DSL.
    BreakGlass,
    /// What they wrote themselves, and nothing that followed.
    Authored,
    /// Nothing: not even that it exists.
    None,
}

/// What `reader` may see of `record`.
pub fn access(reader: Reader, record: Record) -> Access {
    let authored = record.author == reader.person;
    let full = match record.kind {
        RecordKind::Pupil => {
            if reader.dsl || record.holder == Some(reader.person) {
                Some(Access::Full)
            } else if reader.deputy || reader.headteacher {
                Some(Access::BreakGlass)
            } else {
                None
            }
        }
        RecordKind::Staff => {
            if reader.headteacher || (reader.dsl && record.shared_with_dsl) {
                Some(Access::Full)
            } else {
                None
            }
        }
        RecordKind::Headteacher => {
            if reader.chair || (reader.dsl && record.shared_with_dsl) {
                Some(Access::Full)
            } else {
                None
            }
        }
    };
    match full {
        // Reading one's own concern needs no broken glass to see what one wrote; seeing what
        // followed still does.
        Some(a) => a,
        None if authored => Access::Authored,
        None => Access::None,
    }
}

/// Whether a reader works pupils' records at all (sees the records pages).
pub fn works_records(reader: Reader) -> bool {
    reader.dsl || reader.deputy || reader.headteacher
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEACHER: Reader = Reader {
        person: 10,
        dsl: false,
        deputy: false,
        headteacher: false,
        chair: false,
    };
    const DSL: Reader = Reader {
        person: 2,
        dsl: true,
        ..TEACHER
    };
    const DEPUTY: Reader = Reader {
        person: 3,
        deputy: true,
        ..TEACHER
    };
    const HEAD: Reader = Reader {
        person: 1,
        headteacher: true,
        ..TEACHER
    };
    const CHAIR: Reader = Reader {
        person: 9,
        chair: true,
        ..TEACHER
    };

    fn rec(kind: RecordKind, author: i64) -> Record {
        Record {
            kind,
            author,
            holder: None,
            shared_with_dsl: false,
        }
    }

    #[test]
    fn pupils_records_are_the_dsl_teams_and_the_author_sees_only_what_they_wrote() {
        let r = rec(RecordKind::Pupil, 10);
        assert_eq!(access(DSL, r), Access::Full);
        assert_eq!(access(DEPUTY, r), Access::BreakGlass);
        assert_eq!(access(HEAD, r), Access::BreakGlass);
        assert_eq!(access(TEACHER, r), Access::Authored);
        assert_eq!(
            access(
                Reader {
                    person: 11,
                    ..TEACHER
                },
                r
            ),
            Access::None
        );
        assert_eq!(access(CHAIR, r), Access::None);
        let held = Record {
            holder: Some(3),
            ..r
        };
        assert_eq!(access(DEPUTY, held), Access::Full, "the deputy's own case");
    }

    #[test]
    fn an_allegation_about_staff_is_the_headteachers_and_not_the_dsls_unless_shared() {
        let r = rec(RecordKind::Staff, 10);
        assert_eq!(access(HEAD, r), Access::Full);
        assert_eq!(access(DSL, r), Access::None);
        assert_eq!(access(DEPUTY, r), Access::None);
        assert_eq!(access(CHAIR, r), Access::None);
        assert_eq!(access(TEACHER, r), Access::Authored);
        let shared = Record {
            shared_with_dsl: true,
            ..r
        };
        assert_eq!(access(DSL, shared), Access::Full);
        assert_eq!(access(DEPUTY, shared), Access::None);
    }

    #[test]
    fn an_allegation_about_the_headteacher_is_the_chairs_alone() {
        let r = rec(RecordKind::Headteacher, 2);
        assert_eq!(access(CHAIR, r), Access::Full);
        assert_eq!(access(HEAD, r), Access::None);
        assert_eq!(
            access(DSL, r),
            Access::Authored,
            "the DSL wrote it: only that"
        );
        assert_eq!(access(DEPUTY, r), Access::None);
    }
}
