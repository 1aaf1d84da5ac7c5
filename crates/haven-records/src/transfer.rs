//! A child's file as it travels to their new school: the open format `haven-file/1`
//! (`docs/TRANSFER.md`), JSON, sealed by the vault to the receiving school's key.
//!
//! The file is the child's own: their records (pupil records only; never an allegation about
//! staff), each with this child's part, its chronology lines that concern them, its procedure
//! as ticked, its referrals and its attachments. Other children named in a record are not
//! listed (their parts are theirs); what the account says is sent as written.
//!
//! [`File::check`] is what the receiver runs first: every field within its bounds, every time a
//! time, every word a word this format knows, every attachment's bytes matching its hash.
//! A file that fails is refused whole, naming what is wrong.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{Agency, EntryKind, Part};

/// The format's name and version, the file's first field.
pub const FORMAT: &str = "haven-file/1";
/// Most records one file may hold.
pub const MAX_RECORDS: usize = 2_000;
/// Most characters in one text field (above what Haven keeps in one, with the words its own
/// lines add, so that every file Haven makes is one it accepts).
pub const MAX_TEXT: usize = 25_000;
/// Most characters in a short field (a name, a place, a reference; a line's author with the
/// school they wrote at).
pub const MAX_SHORT: usize = 400;

/// A child's file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    /// [`FORMAT`].
    pub format: String,
    /// The sending school's name.
    pub from_school: String,
    /// When it was made (RFC 3339).
    pub sent_at: String,
    /// The DSL who sent it.
    pub sent_by: String,
    /// The child.
    pub child: Child,
    /// Their records, oldest first.
    pub records: Vec<Record>,
}

/// Who the file is about, as the sending school's register has them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Child {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Year group when they left.
    pub year_group: Option<String>,
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The category's id (one of Haven's built-in ones, or the sending school's own).
    pub category: String,
    /// Its name, for a category the receiver does not know.
    pub category_name: String,
    /// The child's part.
    pub part: String,
    /// When it happened (RFC 3339).
    pub happened_at: String,
    /// When it was written.
    pub written_at: String,
    /// Who wrote it.
    pub author: String,
    /// Where.
    pub place: String,
    /// What happened.
    pub account: String,
    /// What the writer did at once.
    pub actions: String,
    /// Closed, with its outcome and debrief; or still open when the child left.
    pub closed: bool,
    /// The outcome.
    pub outcome: Option<String>,
    /// The debrief and lessons learnt.
    pub debrief: Option<String>,
    /// Body-map region ids.
    pub body_map: Vec<String>,
    /// Its chronology lines about this child, in order.
    pub entries: Vec<Entry>,
    /// Its procedure's steps as ticked.
    pub steps: Vec<Step>,
    /// Its referrals.
    pub referrals: Vec<Referral>,
    /// Its attachments.
    pub evidence: Vec<Attachment>,
}

/// A chronology line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it happened.
    pub at: String,
    /// When it was written.
    pub written_at: String,
    /// Who wrote it.
    pub author: String,
    /// Its kind (`note`, `decision`, `meeting`…).
    pub kind: String,
    /// What it says.
    pub text: String,
    /// A decision's rationale.
    pub rationale: Option<String>,
    /// The earlier line of this record that it corrects (its place in `entries`, from 0).
    pub corrects: Option<usize>,
    /// Why it corrects it.
    pub reason: Option<String>,
}

/// A procedure step as ticked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The step's id.
    pub step: String,
    /// Who ticked it.
    pub by: String,
    /// When.
    pub at: String,
    /// Skipped, and why.
    pub skipped: Option<String>,
}

/// A referral.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Referral {
    /// To whom (`police`, `lado`, `mash`…).
    pub agency: String,
    /// When.
    pub made_at: String,
    /// Who made it.
    pub by: String,
    /// The person spoken to.
    pub contact: String,
    /// Their reference.
    pub reference: String,
    /// The outcome.
    pub outcome: Option<String>,
    /// When it is to be followed up (`YYYY-MM-DD`).
    pub follow_up_on: Option<String>,
}

/// An attachment, its bytes in base64 (the whole file is sealed, so they are too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// Marked as a possible nude image: never shown, at either school, and never sent.
    pub possible_nude: bool,
    /// Kept at the sending school and not sent (a possible nude image always; any file of a
    /// record that names other children): `content` is empty, and the receiver asks the
    /// sender's DSL for it, checking it against `sha256`.
    #[serde(default)]
    pub withheld: bool,
    /// The bytes, base64 (empty when withheld).
    pub content: String,
}

/// The one thing wrong with a file, for the receiving DSL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the transferred file is not a haven-file/1 file Haven can import: {0}; nothing was imported"
)]
pub struct FileError(pub String);

fn bad(what: impl Into<String>) -> FileError {
    FileError(what.into())
}

/// Milliseconds since 1970 as RFC 3339 (UTC), as the format writes times.
pub fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// An RFC 3339 time as milliseconds since 1970.
pub fn millis(text: &str) -> Option<i64> {
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

impl File {
    /// The file as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Reads and checks a file (see the module's docs).
    pub fn from_json(bytes: &[u8]) -> Result<File, FileError> {
        let f: File = serde_json::from_slice(bytes).map_err(|e| bad(format!("{e}")))?;
        f.check()?;
        Ok(f)
    }

    /// Every rule of the format, naming the first one broken.
    pub fn check(&self) -> Result<(), FileError> {
        if self.format != FORMAT {
            return Err(bad(format!(
                "its format is {:?}, not {FORMAT}",
                self.format.chars().take(40).collect::<String>()
            )));
        }
        short("from_school", &self.from_school, true)?;
        short("sent_by", &self.sent_by, false)?;
        at("sent_at", &self.sent_at)?;
        short("child.first_name", &self.child.first_name, true)?;
        short("child.last_name", &self.child.last_name, true)?;
        if let Some(d) = &self.child.date_of_birth {
            d.parse::<jiff::civil::Date>()
                .map_err(|_| bad("child.date_of_birth is not a date (YYYY-MM-DD)"))?;
        }
        if self.records.len() > MAX_RECORDS {
            return Err(bad(format!("it holds more than {MAX_RECORDS} records")));
        }
        for (i, r) in self.records.iter().enumerate() {
            let n = i + 1;
            let w = |field: &str| format!("record {n} {field}");
            short(&w("category"), &r.category, true)?;
            short(&w("category_name"), &r.category_name, true)?;
            r.part.parse::<Part>().map_err(|_| {
                bad(format!(
                    "record {n}'s part {:?} is not one Haven knows",
                    cut(&r.part)
                ))
            })?;
            at(&w("happened_at"), &r.happened_at)?;
            at(&w("written_at"), &r.written_at)?;
            short(&w("author"), &r.author, true)?;
            short(&w("place"), &r.place, false)?;
            long(&w("account"), &r.account, true)?;
            long(&w("actions"), &r.actions, false)?;
            opt_long(&w("outcome"), &r.outcome)?;
            opt_long(&w("debrief"), &r.debrief)?;
            if r.closed && r.outcome.as_deref().is_none_or(|o| o.trim().is_empty()) {
                return Err(bad(format!("record {n} is closed with no outcome")));
            }
            crate::body::parse(&r.body_map.join(","))
                .map_err(|e| bad(format!("record {n}'s body map: {e}")))?;
            for (j, e) in r.entries.iter().enumerate() {
                let w = |field: &str| format!("record {n} entry {} {field}", j + 1);
                at(&w("at"), &e.at)?;
                at(&w("written_at"), &e.written_at)?;
                short(&w("author"), &e.author, true)?;
                e.kind.parse::<EntryKind>().map_err(|_| {
                    bad(format!(
                        "{} {:?} is not a kind Haven knows",
                        w("kind"),
                        cut(&e.kind)
                    ))
                })?;
                long(&w("text"), &e.text, true)?;
                opt_long(&w("rationale"), &e.rationale)?;
                opt_long(&w("reason"), &e.reason)?;
                if e.kind == EntryKind::Decision.as_str()
                    && e.rationale.as_deref().is_none_or(|r| r.trim().is_empty())
                {
                    return Err(bad(format!(
                        "{} is a decision with no rationale",
                        w("kind")
                    )));
                }
                match e.corrects {
                    Some(k) if k >= j => {
                        return Err(bad(format!(
                            "{} names a line that is not before it",
                            w("corrects")
                        )))
                    }
                    Some(_) if e.reason.as_deref().is_none_or(|r| r.trim().is_empty()) => {
                        return Err(bad(format!("{} has no reason", w("correction"))))
                    }
                    _ => {}
                }
            }
            for (j, e) in r.entries.iter().enumerate() {
                let original = e.corrects.and_then(|k| r.entries.get(k));
                if let Some(o) = original {
                    if millis(&e.at) < millis(&o.at) {
                        return Err(bad(format!(
                            "record {n} entry {} corrects a line but is dated before it",
                            j + 1
                        )));
                    }
                }
            }
            let mut corrected = std::collections::HashSet::new();
            if !r
                .entries
                .iter()
                .filter_map(|e| e.corrects)
                .all(|k| corrected.insert(k))
            {
                return Err(bad(format!("record {n} corrects one line twice")));
            }
            let procedure = crate::category::steps_for(&r.category);
            for (j, s) in r.steps.iter().enumerate() {
                let w = |field: &str| format!("record {n} step {} {field}", j + 1);
                short(&w("step"), &s.step, true)?;
                if !procedure.iter().any(|p| p.id == s.step) {
                    return Err(bad(format!(
                        "{} {:?} is not a step of the {} procedure",
                        w("step"),
                        cut(&s.step),
                        cut(&r.category_name)
                    )));
                }
                short(&w("by"), &s.by, true)?;
                at(&w("at"), &s.at)?;
                opt_long(&w("skipped"), &s.skipped)?;
            }
            for (j, f) in r.referrals.iter().enumerate() {
                let w = |field: &str| format!("record {n} referral {} {field}", j + 1);
                f.agency.parse::<Agency>().map_err(|_| {
                    bad(format!(
                        "{} {:?} is not an agency Haven knows",
                        w("agency"),
                        cut(&f.agency)
                    ))
                })?;
                at(&w("made_at"), &f.made_at)?;
                short(&w("by"), &f.by, true)?;
                short(&w("contact"), &f.contact, false)?;
                short(&w("reference"), &f.reference, false)?;
                opt_long(&w("outcome"), &f.outcome)?;
                if let Some(d) = &f.follow_up_on {
                    d.parse::<jiff::civil::Date>()
                        .map_err(|_| bad(format!("{} is not a date", w("follow_up_on"))))?;
                }
            }
            for (j, a) in r.evidence.iter().enumerate() {
                let w = format!("record {n} attachment {}", j + 1);
                short(&format!("{w} name"), &a.name, true)?;
                if a.possible_nude && !a.media_type.starts_with("image/") {
                    return Err(bad(format!(
                        "{w} is marked as a possible nude image but is not an image"
                    )));
                }
                if a.possible_nude && !a.withheld {
                    return Err(bad(format!(
                        "{w} is marked as a possible nude image but was sent: such an image never travels"
                    )));
                }
                if a.withheld {
                    if !a.content.is_empty() {
                        return Err(bad(format!("{w} is withheld but has content")));
                    }
                    short(&format!("{w} media_type"), &a.media_type, true)?;
                    if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(bad(format!("{w}'s sha256 is not 64 hex digits")));
                    }
                    continue;
                }
                let bytes = a
                    .bytes()
                    .ok_or_else(|| bad(format!("{w}'s content is not base64")))?;
                let kind = crate::evidence::check(&a.name, &bytes)
                    .map_err(|e| bad(format!("{w}: {e}")))?;
                if kind != a.media_type {
                    return Err(bad(format!(
                        "{w} says it is {} but its bytes are {kind}",
                        cut(&a.media_type)
                    )));
                }
                if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad(format!("{w}'s sha256 is not 64 hex digits")));
                }
            }
        }
        Ok(())
    }
}

impl Attachment {
    /// The bytes, if `content` is base64.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.content)
            .ok()
    }
}

fn cut(s: &str) -> String {
    s.chars().take(40).collect()
}

fn short(name: &str, text: &str, needed: bool) -> Result<(), FileError> {
    bounded(name, text, needed, MAX_SHORT)
}

fn long(name: &str, text: &str, needed: bool) -> Result<(), FileError> {
    bounded(name, text, needed, MAX_TEXT)
}

fn opt_long(name: &str, text: &Option<String>) -> Result<(), FileError> {
    text.as_deref().map_or(Ok(()), |t| long(name, t, false))
}

fn bounded(name: &str, text: &str, needed: bool, max: usize) -> Result<(), FileError> {
    if needed && text.trim().is_empty() {
        return Err(bad(format!("{name} is empty")));
    }
    if text.chars().count() > max {
        return Err(bad(format!("{name} is longer than {max} characters")));
    }
    Ok(())
}

fn at(name: &str, text: &str) -> Result<(), FileError> {
    millis(text)
        .filter(|ms| *ms >= 0)
        .map(|_| ())
        .ok_or_else(|| {
            bad(format!(
                "{name} is not a time (RFC 3339, e.g. 2026-11-30T09:15:00Z)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> File {
        File {
            format: FORMAT.into(),
            from_school: "Elm Park Primary".into(),
            sent_at: time(1_780_000_000_000),
            sent_by: "Dee Esel".into(),
            child: Child {
                first_name: "Ada".into(),
                last_name: "Invented".into(),
                date_of_birth: Some("2015-03-04".into()),
                year_group: Some("6".into()),
            },
            records: vec![Record {
                category: "cyberbullying".into(),
                category_name: "Cyberbullying".into(),
                part: "victim".into(),
                happened_at: time(1_770_000_000_000),
                written_at: time(1_770_000_100_000),
                author: "Tee Cher".into(),
                place: "Playground".into(),
                account: "Messages in a group chat.".into(),
                actions: String::new(),
                closed: true,
                outcome: Some("Resolved with both families".into()),
                debrief: None,
                body_map: vec![],
                entries: vec![
                    Entry {
                        at: time(1_770_000_000_000),
                        written_at: time(1_770_000_100_000),
                        author: "Tee Cher".into(),
                        kind: "concern".into(),
                        text: "Concern logged".into(),
                        rationale: None,
                        corrects: None,
                        reason: None,
                    },
                    Entry {
                        at: time(1_770_000_000_000),
                        written_at: time(1_770_000_200_000),
                        author: "Dee Esel".into(),
                        kind: "note".into(),
                        text: "Concern logged on Tuesday".into(),
                        rationale: None,
                        corrects: Some(0),
                        reason: Some("wrong day".into()),
                    },
                ],
                steps: vec![],
                referrals: vec![Referral {
                    agency: "parents".into(),
                    made_at: time(1_770_000_300_000),
                    by: "Dee Esel".into(),
                    contact: "Mother".into(),
                    reference: String::new(),
                    outcome: None,
                    follow_up_on: Some("2026-02-01".into()),
                }],
                evidence: vec![],
            }],
        }
    }

    #[test]
    fn a_file_reads_back_as_it_was_written() {
        let f = file();
        assert_eq!(File::from_json(&f.to_json()), Ok(f));
    }

    #[test]
    fn a_file_that_breaks_a_rule_is_refused_naming_the_rule() {
        type Breaks = fn(&mut File);
        let cases: Vec<(Breaks, &str)> = vec![
            (|f| f.format = "haven-file/2".into(), "format"),
            (
                |f| f.child.last_name = " ".into(),
                "child.last_name is empty",
            ),
            (
                |f| f.child.date_of_birth = Some("4 March".into()),
                "date_of_birth",
            ),
            (|f| f.records[0].part = "bystander".into(), "part"),
            (
                |f| f.records[0].happened_at = "yesterday".into(),
                "happened_at is not a time",
            ),
            (|f| f.records[0].outcome = None, "closed with no outcome"),
            (
                |f| f.records[0].entries[1].corrects = Some(1),
                "not before it",
            ),
            (|f| f.records[0].entries[1].reason = None, "no reason"),
            (|f| f.records[0].entries[0].kind = "gossip".into(), "kind"),
            (
                |f| f.records[0].referrals[0].agency = "the press".into(),
                "agency",
            ),
            (
                |f| f.records[0].account = "x".repeat(MAX_TEXT + 1),
                "longer than",
            ),
            (|f| f.records[0].body_map = vec!["tail".into()], "body map"),
            (
                |f| f.records[0].entries[1].kind = "decision".into(),
                "no rationale",
            ),
            (
                |f| f.records[0].entries[1].at = time(1_760_000_000_000),
                "dated before it",
            ),
            (
                |f| {
                    f.records[0].steps.push(Step {
                        step: "<img src=x onerror=alert(1)>".into(),
                        by: "Dee Esel".into(),
                        at: time(1_770_000_300_000),
                        skipped: None,
                    })
                },
                "is not a step of",
            ),
        ];
        for (break_it, says) in cases {
            let mut f = file();
            break_it(&mut f);
            let err = File::from_json(&f.to_json()).expect_err(says);
            assert!(err.to_string().contains(says), "{err} (expected {says:?})");
        }
        assert!(File::from_json(b"{not json").is_err());
    }

    #[test]
    fn an_attachment_must_be_what_it_says_it_is() {
        let mut f = file();
        let png =
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        f.records[0].evidence.push(Attachment {
            name: "screenshot.png".into(),
            media_type: "image/png".into(),
            sha256: "0".repeat(64),
            possible_nude: false,
            withheld: false,
            content: base64::engine::general_purpose::STANDARD.encode(png),
        });
        assert!(File::from_json(&f.to_json()).is_ok());
        f.records[0].evidence[0].media_type = "application/pdf".into();
        assert!(File::from_json(&f.to_json())
            .expect_err("a PNG called a PDF")
            .to_string()
            .contains("its bytes are image/png"));
        f.records[0].evidence[0].content = "***".into();
        assert!(File::from_json(&f.to_json()).is_err());
        // A possible nude image never travels: sent, it refuses the file; withheld, it is
        // listed by its hash alone; and only an image can be one.
        let a = &mut f.records[0].evidence[0];
        a.media_type = "image/png".into();
        a.content = base64::engine::general_purpose::STANDARD.encode(png);
        a.possible_nude = true;
        assert!(File::from_json(&f.to_json())
            .expect_err("sent")
            .to_string()
            .contains("never travels"));
        let a = &mut f.records[0].evidence[0];
        a.withheld = true;
        a.content = String::new();
        assert!(File::from_json(&f.to_json()).is_ok());
        f.records[0].evidence[0].media_type = "text/plain".into();
        assert!(File::from_json(&f.to_json())
            .expect_err("not an image")
            .to_string()
            .contains("not an image"));
    }
}
