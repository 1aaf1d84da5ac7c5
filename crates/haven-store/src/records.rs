//! Safeguarding records: a concern (about one or more children, each with their own part; or
//! an allegation about a member of staff), what followed it in the children's chronologies,
//! its procedure's steps, its referrals, and its close. The rules (categories, procedures,
//! who may read what, clocks) are `haven_records`'; this module keeps what they decide.
//!
//! Every write is one transaction with its audit entry (ids, never text): a record is kept
//! with its entry or not at all. Entries are never edited: a correction is a new entry that
//! supersedes the old one, with a reason, and both stay. Every table carries its school.

use haven_records::procedure::{self, Tick};
use haven_records::{category, EntryKind, Part, RecordKind};
use sqlx::Row as _;

use crate::audit::{AuditEntry, AuditKind, Subject};
use crate::{now_ms, Store, StoreError};

/// The school a store holds until trusts keep many in one (issue 18): the row the schema makes.
pub const DEFAULT_SCHOOL: i64 = 1;

/// Most children one concern names.
pub const MAX_CHILDREN: usize = 30;
/// Longest account, action or entry text kept (characters): a long statement fits, a pasted
/// book does not.
pub const MAX_TEXT: usize = 20_000;
/// Longest short field (a place, a contact, a reference).
pub const MAX_SHORT: usize = 200;
/// How far ahead of now a time may be (a clock a little fast): a concern cannot be about the
/// future.
const FUTURE_SLACK_MS: i64 = 10 * 60_000;

/// Who is writing, for the record and its audit entry.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their person id.
    pub person: i64,
    /// Their user name (the audit log's actor).
    pub username: &'a str,
    /// From where.
    pub address: &'a str,
}

/// A child named in a concern, with their part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Child {
    /// The pupil's person id.
    pub person: i64,
    /// Their part.
    pub part: Part,
}

/// A concern as a member of staff writes it.
#[derive(Debug, Clone)]
pub struct NewConcern {
    /// The school.
    pub school: i64,
    /// A pupil's record, or an allegation about staff.
    pub kind: RecordKind,
    /// A built-in category's id, or a school's own (`school:…`).
    pub category: String,
    /// The children and their parts (at least one for a pupil's record).
    pub children: Vec<Child>,
    /// The member of staff an allegation is about.
    pub staff: Option<i64>,
    /// When it happened (or was disclosed).
    pub happened_at_ms: i64,
    /// Where.
    pub place: String,
    /// What happened, in the child's own words where they gave them.
    pub account: String,
    /// What the writer did at once.
    pub actions: String,
    /// When they told the DSL in person, if they did.
    pub told_dsl_at_ms: Option<i64>,
    /// The monitoring capture it came from.
    pub capture: Option<i64>,
    /// Files kept with it, checked and sealed.
    pub evidence: Vec<crate::evidence::NewEvidence>,
    /// The write-up it is: a concern the author told the DSL in person, which the DSL noted.
    pub write_up: Option<i64>,
    /// Where an injury was seen: body-map region ids (`haven_records::body`).
    pub body_map: Vec<String>,
}

/// A concern told to the DSL in person, to be written up by its teller by the end of the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteUp {
    /// Id.
    pub id: i64,
    /// Who told the DSL (person id and name).
    pub staff: (i64, String),
    /// The child it was about (person id and name).
    pub child: (i64, String),
    /// When they told the DSL.
    pub told_at_ms: i64,
    /// The record that wrote it up, once written.
    pub record: Option<i64>,
}

/// A child as a record shows them: full name, year and class, never a user name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedChild {
    /// Person id.
    pub person: i64,
    /// First and last name.
    pub name: String,
    /// Year group.
    pub year: Option<String>,
    /// Class.
    pub class: Option<String>,
    /// Their part in this record.
    pub part: Part,
}

/// A record as lists and its page show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Id.
    pub id: i64,
    /// The school.
    pub school: i64,
    /// Whose record it is.
    pub kind: RecordKind,
    /// Category id.
    pub category: String,
    /// The author's person id and name.
    pub author: (i64, String),
    /// When it happened.
    pub happened_at_ms: i64,
    /// When it was written.
    pub written_at_ms: i64,
    /// Where.
    pub place: String,
    /// The account.
    pub account: String,
    /// What the author did at once.
    pub actions: String,
    /// Told the DSL in person, when.
    pub told_dsl_at_ms: Option<i64>,
    /// The capture it came from.
    pub capture: Option<i64>,
    /// The member of staff an allegation is about (id and name).
    pub staff: Option<(i64, String)>,
    /// Who holds the case.
    pub holder: Option<i64>,
    /// An allegation shared with the DSL.
    pub shared_with_dsl: bool,
    /// Open or closed.
    pub open: bool,
    /// The outcome, once closed.
    pub outcome: Option<String>,
    /// The debrief and lessons learnt, once closed.
    pub debrief: Option<String>,
    /// The children named, with their parts.
    pub children: Vec<NamedChild>,
    /// Where an injury was seen: body-map region ids, comma-separated ("" for none).
    pub body_map: String,
}

impl NamedChild {
    /// The year group as pages show it (`Year 5`, `Reception`).
    pub fn year_label(&self) -> String {
        crate::people::year_label(self.year.as_deref())
    }
}

impl Record {
    /// The record as `haven_records::access` reads it.
    pub fn access_view(&self) -> haven_records::access::Record {
        haven_records::access::Record {
            kind: self.kind,
            author: self.author.0,
            holder: self.holder,
            shared_with_dsl: self.shared_with_dsl,
        }
    }

    /// The category's name: a built-in one's, else its id.
    pub fn category_name(&self) -> &str {
        category::find(&self.category).map_or(self.category.as_str(), |c| c.name)
    }
}

/// One record as the governors' report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    /// Its id (not shown).
    pub record: i64,
    /// Its category id.
    pub category: String,
    /// When it happened.
    pub happened_at_ms: i64,
    /// Closed.
    pub closed: bool,
    /// The year group of the child it is about.
    pub year: Option<String>,
    /// Agencies referred to.
    pub referred: Vec<haven_records::Agency>,
}

/// What the retention review needs of a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionFacts {
    /// The record.
    pub record: i64,
    /// A pupil's record or an allegation.
    pub kind: RecordKind,
    /// Its category.
    pub category: String,
    /// When it was written.
    pub written_at_ms: i64,
    /// On legal hold.
    pub legal_hold: bool,
    /// Dates of birth (`YYYY-MM-DD`) of the children it names, or of the member of staff an
    /// allegation is about.
    pub births: Vec<String>,
}

/// A child protection file sent to a child's new school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Id.
    pub id: i64,
    /// The new school.
    pub to_school: String,
    /// How it went (secure transfer, by hand…).
    pub method: String,
    /// When it was sent.
    pub sent_at_ms: i64,
    /// When the new school confirmed receiving it, and who there.
    pub receipt: Option<(i64, String)>,
    /// Who sent it (name).
    pub sent_by: String,
    /// Sealed to a Haven school's key: only its signed receipt stops the clock.
    pub sealed: bool,
}

/// A pupil who has left with safeguarding records: when, and the transfers of their file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaver {
    /// Person id.
    pub person: i64,
    /// Their name.
    pub name: String,
    /// When the MIS import marked them as left.
    pub left_at_ms: i64,
    /// Their file's transfers, oldest first.
    pub transfers: Vec<Transfer>,
}

/// What to search records for.
#[derive(Debug, Clone, Default)]
pub struct RecordQuery {
    /// Words, each of which must be in the record (whole words, any case).
    pub words: String,
    /// One category only.
    pub category: Option<String>,
    /// Open records only.
    pub open_only: bool,
    /// At most this many.
    pub limit: i64,
}

/// A line of a chronology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Id.
    pub id: i64,
    /// The record it belongs to.
    pub record: Option<i64>,
    /// The child it is about alone (none: every child of its record).
    pub person: Option<i64>,
    /// When it happened.
    pub at_ms: i64,
    /// When it was written (later than `at_ms` for a back-dated entry).
    pub written_at_ms: i64,
    /// Who wrote it (name).
    pub author: String,
    /// What it is.
    pub kind: EntryKind,
    /// What it says.
    pub text: String,
    /// Why (a decision's rationale, a decision not to refer included).
    pub rationale: Option<String>,
    /// The entry it corrects.
    pub supersedes: Option<i64>,
    /// Why it corrects it.
    pub reason: Option<String>,
    /// The entry that corrects this one, if one does.
    pub superseded_by: Option<i64>,
}

/// An entry to add.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// The school.
    pub school: i64,
    /// Its record.
    pub record: i64,
    /// One child of the record alone, or every child.
    pub person: Option<i64>,
    /// When it happened.
    pub at_ms: i64,
    /// What it is (not `concern` or `checklist`: those are written by their actions).
    pub kind: EntryKind,
    /// What it says.
    pub text: String,
    /// Why.
    pub rationale: Option<String>,
}

/// A procedure step as ticked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTick {
    /// The step's id.
    pub step: String,
    /// Who ticked it (name).
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// Skipped, with the reason.
    pub skipped: Option<String>,
}

/// A referral or escalation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    /// Id.
    pub id: i64,
    /// Its record.
    pub record: i64,
    /// To whom.
    pub agency: haven_records::Agency,
    /// When.
    pub made_at_ms: i64,
    /// Who made it (name).
    pub by: String,
    /// The person spoken to.
    pub contact: String,
    /// Their reference number.
    pub reference: String,
    /// The outcome, once known.
    pub outcome: Option<String>,
    /// When to follow it up (a date, `YYYY-MM-DD`).
    pub follow_up_on: Option<String>,
}

/// A referral to record.
#[derive(Debug, Clone)]
pub struct NewReferral {
    /// The school.
    pub school: i64,
    /// Its record.
    pub record: i64,
    /// To whom.
    pub agency: haven_records::Agency,
    /// When it was made.
    pub made_at_ms: i64,
    /// The person spoken to.
    pub contact: String,
    /// Their reference number (may be empty where none was given; say so in `contact`).
    pub reference: String,
    /// When to follow it up.
    pub follow_up_on: Option<jiff::civil::Date>,
}

fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid(what.into())
}

/// A text field checked: trimmed, not empty when `needed`, at most `max` characters.
fn field(name: &str, text: &str, needed: bool, max: usize) -> Result<String, StoreError> {
    let t = text.trim();
    if needed && t.is_empty() {
        return Err(invalid(format!("{name} is needed.")));
    }
    let n = t.chars().count();
    if n > max {
        return Err(invalid(format!(
            "{name} is {n} characters; at most {max} are kept."
        )));
    }
    Ok(t.to_owned())
}

fn when_checked(name: &str, at_ms: i64, now: i64) -> Result<i64, StoreError> {
    if at_ms > now + FUTURE_SLACK_MS {
        return Err(invalid(format!("{name} is in the future.")));
    }
    if at_ms < 0 {
        return Err(invalid(format!("{name} is not a time.")));
    }
    Ok(at_ms)
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

const RECORD_COLUMNS: &str = "r.id, r.school_id, r.kind, r.category, r.author_id, \
    COALESCE(r.origin, a.first_name || ' ' || a.last_name), r.happened_at, r.written_at, r.place, r.account, \
    r.actions, r.told_dsl_at, r.capture_id, r.staff_id, \
    s.first_name || ' ' || s.last_name, r.holder_id, r.shared_with_dsl, r.status, r.outcome, \
    r.debrief, r.body_map";

const RECORD_FROM: &str = "FROM records r JOIN people a ON a.id = r.author_id \
    LEFT JOIN people s ON s.id = r.staff_id";

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    text.parse::<T>()
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))
}

fn record_from(r: &sqlx::any::AnyRow) -> Result<Record, StoreError> {
    let staff_id: Option<i64> = r.try_get(13)?;
    let staff_name: Option<String> = r.try_get(14)?;
    Ok(Record {
        id: r.try_get(0)?,
        school: r.try_get(1)?,
        kind: parse(&r.try_get::<String, _>(2)?)?,
        category: r.try_get(3)?,
        author: (r.try_get(4)?, r.try_get(5)?),
        happened_at_ms: r.try_get(6)?,
        written_at_ms: r.try_get(7)?,
        place: r.try_get(8)?,
        account: r.try_get(9)?,
        actions: r.try_get(10)?,
        told_dsl_at_ms: r.try_get(11)?,
        capture: r.try_get(12)?,
        staff: staff_id.map(|id| (id, staff_name.unwrap_or_default())),
        holder: r.try_get(15)?,
        shared_with_dsl: r.try_get::<i64, _>(16)? != 0,
        open: r.try_get::<String, _>(17)? == "open",
        outcome: r.try_get(18)?,
        debrief: r.try_get(19)?,
        children: Vec::new(),
        body_map: r.try_get(20)?,
    })
}

impl Store {
    /// Whether `category` is one a concern may be filed under in `school`: built in, or the
    /// school's own.
    async fn category_known(
        &self,
        tx: &mut Tx,
        school: i64,
        category: &str,
    ) -> Result<bool, StoreError> {
        if category::find(category).is_some() {
            return Ok(true);
        }
        let n: i64 =
            sqlx::query("SELECT COUNT(*) FROM record_categories WHERE school_id = $1 AND id = $2")
                .bind(school)
                .bind(category)
                .fetch_one(&mut **tx)
                .await?
                .try_get(0)?;
        Ok(n > 0)
    }

    /// The school's own categories: (id, name).
    pub async fn school_categories(
        &self,
        school: i64,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name FROM record_categories WHERE school_id = $1 ORDER BY name",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Adds a category of the school's own; its id.
    pub async fn add_school_category(
        &self,
        school: i64,
        name: &str,
        by: &Actor<'_>,
    ) -> Result<String, StoreError> {
        let id = category::school_category_id(name).map_err(|e| invalid(e.to_string()))?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "INSERT INTO record_categories (school_id, id, name, added_by, added_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        )
        .bind(school)
        .bind(&id)
        .bind(name.trim())
        .bind(by.person)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(invalid(format!(
                "The school already has the category {:?}.",
                name.trim()
            )));
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::AddEntry,
                Subject::Records,
            )
            .word("added", "category"),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Logs a concern: the record, its children and their parts, and the first line of each
    /// child's chronology, with its audit entry, in one transaction. Anything wrong is an
    /// [`StoreError::Invalid`] saying what, and nothing is written.
    pub async fn log_concern(&self, c: &NewConcern, by: &Actor<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        let place = field("Where it happened", &c.place, false, MAX_SHORT)?;
        let account = field("What happened", &c.account, true, MAX_TEXT)?;
        let actions = field("What you did", &c.actions, false, MAX_TEXT)?;
        let happened = when_checked("When it happened", c.happened_at_ms, now)?;
        let told = c
            .told_dsl_at_ms
            .map(|t| when_checked("When you told the DSL", t, now))
            .transpose()?;
        match c.kind {
            RecordKind::Pupil => {
                if c.children.is_empty() {
                    return Err(invalid("Name at least one child the concern is about."));
                }
                if c.staff.is_some() {
                    return Err(invalid(
                        "A concern about a pupil names no member of staff; an allegation about staff is its own record.",
                    ));
                }
            }
            RecordKind::Staff | RecordKind::Headteacher => {
                if c.staff.is_none() {
                    return Err(invalid("Name the member of staff the allegation is about."));
                }
            }
        }
        if c.children.len() > MAX_CHILDREN {
            return Err(invalid(format!(
                "A concern names at most {MAX_CHILDREN} children."
            )));
        }
        let body_map = haven_records::body::parse(&c.body_map.join(","))
            .map_err(|e| invalid(format!("The body map: {e}.")))?
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
            .join(",");
        let mut seen = std::collections::HashSet::new();
        if !c.children.iter().all(|ch| seen.insert(ch.person)) {
            return Err(invalid("A child is named twice: give each child one part."));
        }
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        if !self.category_known(&mut tx, c.school, &c.category).await? {
            return Err(invalid(format!(
                "{:?} is not a category of concern here.",
                c.category.chars().take(60).collect::<String>()
            )));
        }
        for ch in &c.children {
            if !is_kind(&mut tx, ch.person, "pupil").await? {
                return Err(invalid(format!(
                    "Person {} is not a pupil here.",
                    ch.person
                )));
            }
        }
        if let Some(staff) = c.staff {
            if !is_kind(&mut tx, staff, "staff").await? {
                return Err(invalid(format!(
                    "Person {staff} is not a member of staff here."
                )));
            }
        }
        let id: i64 = sqlx::query(
            "INSERT INTO records (school_id, kind, category, author_id, happened_at, written_at, place, account, actions, told_dsl_at, capture_id, staff_id, body_map) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(c.school)
        .bind(c.kind.as_str())
        .bind(&c.category)
        .bind(by.person)
        .bind(happened)
        .bind(now)
        .bind(&place)
        .bind(&account)
        .bind(&actions)
        .bind(told)
        .bind(c.capture)
        .bind(c.staff)
        .bind(&body_map)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for ch in &c.children {
            sqlx::query(
                "INSERT INTO record_children (school_id, record_id, person_id, part) VALUES ($1, $2, $3, $4)",
            )
            .bind(c.school)
            .bind(id)
            .bind(ch.person)
            .bind(ch.part.as_str())
            .execute(&mut *tx)
            .await?;
        }
        insert_entry(
            &mut tx,
            &NewEntry {
                school: c.school,
                record: id,
                person: None,
                at_ms: happened,
                kind: EntryKind::Concern,
                text: format!(
                    "Concern logged: {}",
                    category::find(&c.category).map_or(c.category.as_str(), |k| k.name)
                ),
                rationale: None,
            },
            by.person,
            now,
        )
        .await?;
        if let Some(w) = c.write_up {
            let done = sqlx::query(
                "UPDATE write_ups SET record_id = $1 WHERE school_id = $2 AND id = $3 AND staff_id = $4 AND record_id IS NULL",
            )
            .bind(id)
            .bind(c.school)
            .bind(w)
            .bind(by.person)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                return Err(invalid(format!(
                    "Write-up {w} is not one waiting for you to write."
                )));
            }
        }
        for e in &c.evidence {
            crate::evidence::insert(&mut tx, c.school, id, e, by.person, now).await?;
        }
        let names = names_of(
            &mut tx,
            c.children.iter().map(|ch| ch.person).chain(c.staff),
        )
        .await?;
        index_words(
            &mut tx,
            c.school,
            id,
            &format!("{place} {account} {actions} {names}"),
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::LogConcern,
                Subject::Record(id),
            )
            .word("kind", c.kind.as_str())
            .count("children", c.children.len() as i64)
            .count("evidence", c.evidence.len() as i64),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One record with its children, or `None`. Unaudited: the console records the read once
    /// it has decided the reader may see it.
    pub async fn record(&self, school: i64, id: i64) -> Result<Option<Record>, StoreError> {
        let q =
            format!("SELECT {RECORD_COLUMNS} {RECORD_FROM} WHERE r.school_id = $1 AND r.id = $2");
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let mut r = record_from(&row)?;
        r.children = self
            .children_of(&[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(r))
    }

    /// Records of the school: open ones (or all), newest first, at most `limit`, with their
    /// children. The caller shows each only to those `haven_records::access` lets see it.
    pub async fn records(
        &self,
        school: i64,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let q = format!(
            "SELECT {RECORD_COLUMNS} {RECORD_FROM} WHERE r.school_id = $1 AND ($2 = 0 OR r.status = 'open') \
             ORDER BY r.written_at DESC, r.id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(i64::from(open_only))
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?;
        self.with_children(rows).await
    }

    /// The DSL notes that `staff` told them in person about `child` at `told_at_ms`: the member
    /// of staff must write it up by the end of that day. Its id.
    pub async fn note_told_in_person(
        &self,
        school: i64,
        staff: i64,
        child: i64,
        told_at_ms: i64,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let told = when_checked("When they told you", told_at_ms, now)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        if !is_kind(&mut tx, staff, "staff").await? {
            return Err(invalid(format!(
                "Person {staff} is not a member of staff here."
            )));
        }
        if !is_kind(&mut tx, child, "pupil").await? {
            return Err(invalid(format!("Person {child} is not a pupil here.")));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO write_ups (school_id, staff_id, child_id, told_at, noted_by, noted_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(school)
        .bind(staff)
        .bind(child)
        .bind(told)
        .bind(by.person)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::NoteToldInPerson,
                Subject::Person(child),
            )
            .count("write-up", id)
            .count("staff", staff),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Write-ups not yet written (of one member of staff, or everyone's), oldest first.
    pub async fn pending_write_ups(
        &self,
        school: i64,
        staff: Option<i64>,
    ) -> Result<Vec<WriteUp>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.id, w.staff_id, s.first_name || ' ' || s.last_name, w.child_id, c.first_name || ' ' || c.last_name, w.told_at, w.record_id \
             FROM write_ups w JOIN people s ON s.id = w.staff_id JOIN people c ON c.id = w.child_id \
             WHERE w.school_id = $1 AND w.record_id IS NULL AND ($2 = 0 OR w.staff_id = $3) ORDER BY w.told_at, w.id",
        )
        .bind(school)
        .bind(i64::from(staff.is_some()))
        .bind(staff.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WriteUp {
                    id: r.try_get(0)?,
                    staff: (r.try_get(1)?, r.try_get(2)?),
                    child: (r.try_get(3)?, r.try_get(4)?),
                    told_at_ms: r.try_get(5)?,
                    record: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// What the governors' report counts of the pupils' records that happened in
    /// `[from_ms, to_ms)`: for each, its category, when, the year group of the child it is
    /// about (the subject, else its first child), closed or not, and the agencies referred to.
    /// Nothing that names anyone.
    pub async fn report_rows(
        &self,
        school: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<ReportRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.category, r.happened_at, r.status, \
               (SELECT p.year_group FROM record_children c JOIN people p ON p.id = c.person_id \
                WHERE c.record_id = r.id ORDER BY CASE WHEN c.part = 'subject' THEN 0 ELSE 1 END, c.person_id LIMIT 1) \
             FROM records r WHERE r.school_id = $1 AND r.kind = 'pupil' AND r.happened_at >= $2 AND r.happened_at < $3",
        )
        .bind(school)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<ReportRow> = rows
            .iter()
            .map(|r| {
                Ok(ReportRow {
                    record: r.try_get(0)?,
                    category: r.try_get(1)?,
                    happened_at_ms: r.try_get(2)?,
                    closed: r.try_get::<String, _>(3)? == "closed",
                    year: r.try_get(4)?,
                    referred: Vec::new(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let referrals = sqlx::query(
            "SELECT f.record_id, f.agency FROM referrals f JOIN records r ON r.id = f.record_id \
             WHERE f.school_id = $1 AND r.kind = 'pupil' AND r.happened_at >= $2 AND r.happened_at < $3",
        )
        .bind(school)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        let index: std::collections::HashMap<i64, usize> =
            out.iter().enumerate().map(|(i, r)| (r.record, i)).collect();
        for f in referrals {
            let record: i64 = f.try_get(0)?;
            let agency: haven_records::Agency = parse(&f.try_get::<String, _>(1)?)?;
            if let Some(&i) = index.get(&record) {
                if !out[i].referred.contains(&agency) {
                    out[i].referred.push(agency);
                }
            }
        }
        Ok(out)
    }

    /// Records the outcome of a referral (once), and a line of the chronology saying so; its
    /// follow-up clock stops.
    pub async fn record_referral_outcome(
        &self,
        school: i64,
        referral: i64,
        outcome: &str,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let outcome = field("The outcome", outcome, true, MAX_TEXT)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT record_id, agency, outcome FROM referrals WHERE school_id = $1 AND id = $2",
        )
        .bind(school)
        .bind(referral)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| invalid(format!("There is no referral {referral}.")))?;
        let record: i64 = row.try_get(0)?;
        open_record(&mut tx, school, record).await?;
        if row.try_get::<Option<String>, _>(2)?.is_some() {
            return Err(invalid(format!(
                "Referral {referral} already has its outcome: add a note to the chronology for what followed."
            )));
        }
        let agency: haven_records::Agency = parse(&row.try_get::<String, _>(1)?)?;
        sqlx::query("UPDATE referrals SET outcome = $1 WHERE id = $2")
            .bind(&outcome)
            .bind(referral)
            .execute(&mut *tx)
            .await?;
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now,
                kind: EntryKind::Referral,
                text: format!("Outcome of the referral to {}: {outcome}", agency.label()),
                rationale: None,
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::UpdateReferral,
                Subject::Referral(referral),
            )
            .count("record", record),
        )
        .await?;
        tx.commit().await?;
        Ok(record)
    }

    /// Gives a pupil's case to a holder (a deputy, or the DSL again with `None`), with a line of
    /// the chronology saying so.
    pub async fn assign_case(
        &self,
        school: i64,
        record: i64,
        holder: Option<i64>,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        open_record(&mut tx, school, record).await?;
        let name = match holder {
            Some(h) => {
                if !is_kind(&mut tx, h, "staff").await? {
                    return Err(invalid(format!(
                        "Person {h} is not a member of staff here."
                    )));
                }
                names_of(&mut tx, [h].into_iter()).await?.trim().to_owned()
            }
            None => "the DSL".to_owned(),
        };
        let done = sqlx::query(
            "UPDATE records SET holder_id = $1 WHERE school_id = $2 AND id = $3 AND kind = 'pupil'",
        )
        .bind(holder)
        .bind(school)
        .bind(record)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(invalid(
                "Only a pupil's record is given to a holder.".to_owned(),
            ));
        }
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now,
                kind: EntryKind::Decision,
                text: format!("Case given to {name}"),
                rationale: None,
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::AssignCase,
                Subject::Record(record),
            )
            .count("holder", holder.unwrap_or(0)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Active staff who hold `role` (id, name), by name.
    pub async fn staff_with_role(&self, role: &str) -> Result<Vec<(i64, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, p.first_name || ' ' || p.last_name FROM people p JOIN person_roles r ON r.person_id = p.id \
             WHERE r.role = $1 AND p.active = 1 ORDER BY p.last_name, p.first_name",
        )
        .bind(role)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Every record's retention facts, for the review queue: (record, kind, category, when it
    /// was written, the dates of birth of the children it names or of the member of staff an
    /// allegation is about, legal hold). The rules (`haven_records::retention`) say when each
    /// comes up for review.
    pub async fn retention_facts(&self, school: i64) -> Result<Vec<RetentionFacts>, StoreError> {
        self.retention_facts_where(school, None).await
    }

    /// One record's retention facts (for deleting it: its dates checked again).
    pub async fn retention_facts_of(
        &self,
        school: i64,
        record: i64,
    ) -> Result<Option<RetentionFacts>, StoreError> {
        Ok(self
            .retention_facts_where(school, Some(record))
            .await?
            .pop())
    }

    async fn retention_facts_where(
        &self,
        school: i64,
        record: Option<i64>,
    ) -> Result<Vec<RetentionFacts>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.category, r.written_at, r.legal_hold, s.date_of_birth \
             FROM records r LEFT JOIN people s ON s.id = r.staff_id WHERE r.school_id = $1 AND ($2 = 0 OR r.id = $3) ORDER BY r.id",
        )
        .bind(school)
        .bind(i64::from(record.is_some()))
        .bind(record.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<RetentionFacts> = rows
            .iter()
            .map(|r| {
                let staff_dob: Option<String> = r.try_get(5)?;
                Ok(RetentionFacts {
                    record: r.try_get(0)?,
                    kind: parse(&r.try_get::<String, _>(1)?)?,
                    category: r.try_get(2)?,
                    written_at_ms: r.try_get(3)?,
                    legal_hold: r.try_get::<i64, _>(4)? != 0,
                    births: staff_dob.into_iter().collect(),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let index: std::collections::HashMap<i64, usize> =
            out.iter().enumerate().map(|(i, f)| (f.record, i)).collect();
        for r in sqlx::query(
            "SELECT c.record_id, p.date_of_birth FROM record_children c JOIN people p ON p.id = c.person_id WHERE c.school_id = $1 AND ($2 = 0 OR c.record_id = $3)",
        )
        .bind(school)
        .bind(i64::from(record.is_some()))
        .bind(record.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?
        {
            let record: i64 = r.try_get(0)?;
            if let (Some(&i), Some(dob)) = (index.get(&record), r.try_get::<Option<String>, _>(1)?) {
                out[i].births.push(dob);
            }
        }
        Ok(out)
    }

    /// Puts a record on legal hold (it cannot be deleted, whatever its dates) or takes it off,
    /// with the reason in its chronology.
    pub async fn set_legal_hold(
        &self,
        school: i64,
        record: i64,
        hold: bool,
        reason: &str,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let reason = field("The reason", reason, true, MAX_SHORT * 5)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("UPDATE records SET legal_hold = $1 WHERE school_id = $2 AND id = $3")
                .bind(i64::from(hold))
                .bind(school)
                .bind(record)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() != 1 {
            return Err(invalid(format!("There is no record {record}.")));
        }
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now,
                kind: EntryKind::Decision,
                text: if hold {
                    "Put on legal hold: it is kept whatever its dates".into()
                } else {
                    "Legal hold lifted".into()
                },
                rationale: Some(reason),
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::LegalHold,
                Subject::Record(record),
            )
            .word("hold", if hold { "on" } else { "off" }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a record past its retention (the caller has checked the dates with
    /// `haven_records::retention`), and everything of it: its children's parts, chronology,
    /// steps, referrals, evidence and search words. Refused on legal hold. What remains is a
    /// tombstone in the audit chain: the record's id and how many of each were deleted.
    pub async fn delete_record(
        &self,
        school: i64,
        record: i64,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT legal_hold FROM records WHERE school_id = $1 AND id = $2")
            .bind(school)
            .bind(record)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| invalid(format!("There is no record {record}.")))?;
        if row.try_get::<i64, _>(0)? != 0 {
            return Err(invalid(format!(
                "Record {record} is on legal hold: it is not deleted until the hold is lifted."
            )));
        }
        sqlx::query("UPDATE write_ups SET record_id = NULL WHERE record_id = $1")
            .bind(record)
            .execute(&mut *tx)
            .await?;
        let mut counts = Vec::new();
        for (what, sql) in [
            ("evidence", "DELETE FROM evidence WHERE record_id = $1"),
            ("steps", "DELETE FROM record_steps WHERE record_id = $1"),
            ("referrals", "DELETE FROM referrals WHERE record_id = $1"),
            ("words", "DELETE FROM record_words WHERE record_id = $1"),
            (
                "children",
                "DELETE FROM record_children WHERE record_id = $1",
            ),
            // Corrections point at the entries they supersede: those go first.
            (
                "corrections",
                "DELETE FROM chronology WHERE record_id = $1 AND supersedes IS NOT NULL",
            ),
            ("entries", "DELETE FROM chronology WHERE record_id = $1"),
            ("record", "DELETE FROM records WHERE id = $1"),
        ] {
            let n = sqlx::query(sql)
                .bind(record)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            counts.push((what, i64::try_from(n).unwrap_or(i64::MAX)));
        }
        let mut entry = AuditEntry::new(
            by.username,
            by.address,
            AuditKind::DeleteRecord,
            Subject::Record(record),
        );
        for (what, n) in counts {
            entry = entry.count(what, n);
        }
        self.audit_in(&mut tx, &entry).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Pupils who have left (the MIS import marked them) and whom pupils' records name, with
    /// their file's transfers: the transfer clock's facts.
    pub async fn leavers_with_records(&self, school: i64) -> Result<Vec<Leaver>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT p.id, p.first_name || ' ' || p.last_name, p.left_at FROM people p \
             JOIN record_children c ON c.person_id = p.id JOIN records r ON r.id = c.record_id \
             WHERE c.school_id = $1 AND r.kind = 'pupil' AND p.active = 0 AND p.left_at IS NOT NULL ORDER BY p.left_at",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in rows {
            let person: i64 = r.try_get(0)?;
            out.push(Leaver {
                person,
                name: r.try_get(1)?,
                left_at_ms: r.try_get(2)?,
                transfers: self.transfers_of(school, person).await?,
            });
        }
        Ok(out)
    }

    /// A child's file's transfers, oldest first.
    pub async fn transfers_of(
        &self,
        school: i64,
        person: i64,
    ) -> Result<Vec<Transfer>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.to_school, t.method, t.sent_at, t.receipt_at, t.receipt_from, p.first_name || ' ' || p.last_name, t.package_sha256 \
             FROM transfers t JOIN people p ON p.id = t.sent_by WHERE t.school_id = $1 AND t.person_id = $2 ORDER BY t.sent_at, t.id",
        )
        .bind(school)
        .bind(person)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let at: Option<i64> = r.try_get(4)?;
                let from: Option<String> = r.try_get(5)?;
                Ok(Transfer {
                    id: r.try_get(0)?,
                    to_school: r.try_get(1)?,
                    method: r.try_get(2)?,
                    sent_at_ms: r.try_get(3)?,
                    receipt: at.map(|a| (a, from.unwrap_or_default())),
                    sent_by: r.try_get(6)?,
                    sealed: r.try_get::<Option<String>, _>(7)?.is_some(),
                })
            })
            .collect()
    }

    /// Records that a child's file was sent to their new school (the school keeps its copy).
    pub async fn record_transfer(
        &self,
        school: i64,
        person: i64,
        to_school: &str,
        method: &str,
        sent_at_ms: i64,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        self.record_transfer_sealed(school, person, to_school, method, sent_at_ms, None, by)
            .await
    }

    /// A transfer, with (for a sealed one) the sealed file's SHA-256 and the signing key of the
    /// school it was sealed for, which its receipt must be signed with.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_transfer_sealed(
        &self,
        school: i64,
        person: i64,
        to_school: &str,
        method: &str,
        sent_at_ms: i64,
        sealed: Option<(&str, &str)>,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let to_school = field("The new school", to_school, true, MAX_SHORT)?;
        let method = field("How it was sent", method, true, MAX_SHORT)?;
        let sent = when_checked("When it was sent", sent_at_ms, now)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        if !is_kind(&mut tx, person, "pupil").await? {
            return Err(invalid(format!("Person {person} is not a pupil here.")));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO transfers (school_id, person_id, to_school, method, sent_at, sent_by, package_sha256, to_signing_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(school)
        .bind(person)
        .bind(&to_school)
        .bind(&method)
        .bind(sent)
        .bind(by.person)
        .bind(sealed.map(|s| s.0))
        .bind(sealed.map(|s| s.1))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::TransferFile,
                Subject::Person(person),
            )
            .count("transfer", id)
            .word("sealed", if sealed.is_some() { "yes" } else { "no" }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Records the new school's receipt of a transfer sent some other way than sealed, which
    /// stops the transfer clock. A sealed transfer's clock stops only on its signed receipt
    /// (`Store::accept_receipt`).
    pub async fn confirm_receipt(
        &self,
        school: i64,
        transfer: i64,
        from: &str,
        at_ms: i64,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        self.confirm_receipt_as(school, transfer, from, at_ms, false, by)
            .await
    }

    pub(crate) async fn confirm_receipt_as(
        &self,
        school: i64,
        transfer: i64,
        from: &str,
        at_ms: i64,
        signed: bool,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let from = field("Who confirmed it", from, true, MAX_SHORT)?;
        let at = when_checked("When it was received", at_ms, now)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE transfers SET receipt_at = $1, receipt_from = $2 WHERE school_id = $3 AND id = $4 AND receipt_at IS NULL AND (package_sha256 IS NULL OR $5 = 1)",
        )
        .bind(at)
        .bind(&from)
        .bind(school)
        .bind(transfer)
        .bind(i64::from(signed))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            let sealed: Option<Option<String>> = sqlx::query(
                "SELECT package_sha256 FROM transfers WHERE school_id = $1 AND id = $2",
            )
            .bind(school)
            .bind(transfer)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
            if !signed && matches!(sealed, Some(Some(_))) {
                return Err(invalid(format!(
                    "Transfer {transfer} was sealed to the new school's key: its clock stops on the receipt their Haven signed (Files between schools, Record a receipt)."
                )));
            }
            return Err(invalid(format!(
                "Transfer {transfer} does not exist or already has its receipt."
            )));
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::TransferReceipt,
                Subject::Records,
            )
            .count("transfer", transfer),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The pupils who share a parent or carer with `person` (siblings, as the MIS links them).
    pub async fn siblings(&self, person: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT b.pupil_id FROM guardians a JOIN guardians b ON b.parent_id = a.parent_id \
             WHERE a.pupil_id = $1 AND b.pupil_id <> $1 ORDER BY b.pupil_id",
        )
        .bind(person)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Records of the school found by words (every word, whole, anywhere in the record, its
    /// children's names or its chronology), a category, and open or all; newest written first.
    pub async fn search_records(
        &self,
        school: i64,
        q: &RecordQuery,
    ) -> Result<Vec<Record>, StoreError> {
        let mut words = words(&q.words);
        // The rarest word leads: the search walks its entries in the index, newest record
        // first, and stops at the limit; each other word is a lookup in the index. How rare is
        // counted up to `RARE` entries, a few index steps each.
        if words.len() > 1 {
            let mut counted = Vec::with_capacity(words.len());
            for w in words {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM record_words WHERE school_id = $1 AND word = $2 LIMIT $3) c",
                )
                .bind(school)
                .bind(&w)
                .bind(RARE)
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?;
                counted.push((n, w));
            }
            counted.sort();
            words = counted.into_iter().map(|(_, w)| w).collect();
        }
        let mut n = 1;
        let mut sql = format!("SELECT {RECORD_COLUMNS} ");
        if words.is_empty() {
            sql.push_str(&format!("{RECORD_FROM} WHERE r.school_id = $1"));
        } else {
            n += 1;
            sql.push_str(&format!(
                "FROM record_words w JOIN records r ON r.id = w.record_id JOIN people a ON a.id = r.author_id \
                 LEFT JOIN people s ON s.id = r.staff_id WHERE w.school_id = $1 AND w.word = ${n} AND r.school_id = $1"
            ));
            for _ in &words[1..] {
                n += 1;
                sql.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM record_words x WHERE x.school_id = $1 AND x.word = ${n} AND x.record_id = r.id)"
                ));
            }
        }
        if q.category.is_some() {
            n += 1;
            sql.push_str(&format!(" AND r.category = ${n}"));
        }
        if q.open_only {
            sql.push_str(" AND r.status = 'open'");
        }
        n += 1;
        // Newest written first: ids are given in the order records are written.
        if words.is_empty() {
            sql.push_str(&format!(" ORDER BY r.id DESC LIMIT ${n}"));
        } else {
            sql.push_str(&format!(" ORDER BY w.record_id DESC LIMIT ${n}"));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(school);
        for w in &words {
            query = query.bind(w);
        }
        if let Some(c) = &q.category {
            query = query.bind(c);
        }
        let rows = query
            .bind(q.limit.clamp(1, 1_000))
            .fetch_all(&self.pool)
            .await?;
        self.with_children(rows).await
    }

    /// The records `author` wrote, newest first.
    pub async fn records_written_by(
        &self,
        school: i64,
        author: i64,
        limit: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let q = format!(
            "SELECT {RECORD_COLUMNS} {RECORD_FROM} WHERE r.school_id = $1 AND r.author_id = $2 \
             ORDER BY r.written_at DESC, r.id DESC LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(author)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?;
        self.with_children(rows).await
    }

    /// The pupils' records naming `person`, oldest first.
    pub async fn records_of_child(
        &self,
        school: i64,
        person: i64,
    ) -> Result<Vec<Record>, StoreError> {
        let q = format!(
            "SELECT {RECORD_COLUMNS} {RECORD_FROM} JOIN record_children c ON c.record_id = r.id \
             WHERE r.school_id = $1 AND c.school_id = $1 AND c.person_id = $2 AND r.kind = 'pupil' ORDER BY r.happened_at, r.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(person)
            .fetch_all(&self.pool)
            .await?;
        self.with_children(rows).await
    }

    async fn with_children(&self, rows: Vec<sqlx::any::AnyRow>) -> Result<Vec<Record>, StoreError> {
        let mut out: Vec<Record> = rows.iter().map(record_from).collect::<Result<_, _>>()?;
        let ids: Vec<i64> = out.iter().map(|r| r.id).collect();
        let mut children = self.children_of(&ids).await?;
        for r in &mut out {
            r.children = children.remove(&r.id).unwrap_or_default();
        }
        Ok(out)
    }

    async fn children_of(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Vec<NamedChild>>, StoreError> {
        let mut out: std::collections::HashMap<i64, Vec<NamedChild>> = Default::default();
        for chunk in ids.chunks(200) {
            if chunk.is_empty() {
                continue;
            }
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let q = format!(
                "SELECT c.record_id, c.person_id, p.first_name || ' ' || p.last_name, p.year_group, p.class, c.part \
                 FROM record_children c JOIN people p ON p.id = c.person_id WHERE c.record_id IN ({}) \
                 ORDER BY p.last_name, p.first_name",
                marks.join(", ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(q));
            for id in chunk {
                query = query.bind(*id);
            }
            for r in query.fetch_all(&self.pool).await? {
                out.entry(r.try_get(0)?).or_default().push(NamedChild {
                    person: r.try_get(1)?,
                    name: r.try_get(2)?,
                    year: r.try_get(3)?,
                    class: r.try_get(4)?,
                    part: parse(&r.try_get::<String, _>(5)?)?,
                });
            }
        }
        Ok(out)
    }

    /// A child's chronology: every entry of the pupils' records naming them (those for
    /// another child of the same record alone left out), in the order things happened.
    pub async fn chronology(&self, school: i64, person: i64) -> Result<Vec<Entry>, StoreError> {
        // Two parts, each found through an index (an OR of the two would read every entry of
        // the school): the child's own entries, and their records' entries for every child.
        let q = format!(
            "SELECT {ENTRY_COLUMNS} {ENTRY_FROM} WHERE e.school_id = $1 AND e.person_id = $2 \
             UNION ALL \
             SELECT {ENTRY_COLUMNS} {ENTRY_FROM} WHERE e.person_id IS NULL AND e.record_id IN \
               (SELECT c.record_id FROM record_children c JOIN records r ON r.id = c.record_id \
                WHERE c.school_id = $1 AND c.person_id = $2 AND r.kind = 'pupil') \
             ORDER BY 4, 1"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(person)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from).collect()
    }

    /// A record's entries, in the order things happened.
    pub async fn record_entries(&self, school: i64, record: i64) -> Result<Vec<Entry>, StoreError> {
        let q = format!(
            "SELECT {ENTRY_COLUMNS} {ENTRY_FROM} WHERE e.school_id = $1 AND e.record_id = $2 ORDER BY e.at, e.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(record)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(entry_from).collect()
    }

    /// Adds an entry to a record's chronology (every child's, or one child's); its id.
    pub async fn add_entry(&self, e: &NewEntry, by: &Actor<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        if matches!(
            e.kind,
            EntryKind::Concern | EntryKind::Checklist | EntryKind::Outcome
        ) {
            return Err(invalid(format!(
                "A {} entry is written by its own action, not added.",
                e.kind.label()
            )));
        }
        let text = field("The entry", &e.text, true, MAX_TEXT)?;
        let rationale = e
            .rationale
            .as_deref()
            .map(|r| field("The rationale", r, false, MAX_TEXT))
            .transpose()?
            .filter(|r| !r.is_empty());
        if e.kind == EntryKind::Decision && rationale.is_none() {
            return Err(invalid(
                "A decision is recorded with its rationale (a decision not to refer too).",
            ));
        }
        let at = when_checked("When it happened", e.at_ms, now)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        open_record(&mut tx, e.school, e.record).await?;
        if let Some(p) = e.person {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM record_children WHERE record_id = $1 AND person_id = $2",
            )
            .bind(e.record)
            .bind(p)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if n == 0 {
                return Err(invalid(format!(
                    "Person {p} is not named in record {}.",
                    e.record
                )));
            }
        }
        let id = insert_entry(
            &mut tx,
            &NewEntry {
                text,
                rationale,
                at_ms: at,
                ..e.clone()
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::AddEntry,
                Subject::Entry(id),
            )
            .word("kind", e.kind.as_str())
            .count("record", e.record),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Corrects an entry: a new entry with the corrected text supersedes it, with the reason;
    /// the old one stays, marked. An entry is corrected once (correct the correction after).
    pub async fn correct_entry(
        &self,
        school: i64,
        entry: i64,
        text: &str,
        reason: &str,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let text = field("The corrected entry", text, true, MAX_TEXT)?;
        let reason = field("The reason for the correction", reason, true, MAX_SHORT * 5)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let Some(row) = sqlx::query(
            "SELECT record_id, person_id, at, kind, rationale FROM chronology WHERE school_id = $1 AND id = $2",
        )
        .bind(school)
        .bind(entry)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Err(invalid(format!("There is no entry {entry}.")));
        };
        let record: Option<i64> = row.try_get(0)?;
        if let Some(r) = record {
            open_record(&mut tx, school, r).await?;
        }
        let already: i64 = sqlx::query("SELECT COUNT(*) FROM chronology WHERE supersedes = $1")
            .bind(entry)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if already > 0 {
            return Err(invalid(format!(
                "Entry {entry} has already been corrected: correct the correction."
            )));
        }
        let kind: EntryKind = parse(&row.try_get::<String, _>(3)?)?;
        if let Some(r) = record {
            index_words(&mut tx, school, r, &text).await?;
        }
        let id: i64 = sqlx::query(
            "INSERT INTO chronology (school_id, record_id, person_id, at, written_at, author_id, kind, text, rationale, supersedes, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        )
        .bind(school)
        .bind(record)
        .bind(row.try_get::<Option<i64>, _>(1)?)
        .bind(row.try_get::<i64, _>(2)?)
        .bind(now)
        .bind(by.person)
        .bind(kind.as_str())
        .bind(&text)
        .bind(row.try_get::<Option<String>, _>(4)?)
        .bind(entry)
        .bind(&reason)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::CorrectEntry,
                Subject::Entry(id),
            )
            .count("supersedes", entry),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The record's procedure steps as ticked so far.
    pub async fn record_steps(
        &self,
        school: i64,
        record: i64,
    ) -> Result<Vec<StepTick>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.step, COALESCE(t.origin, p.first_name || ' ' || p.last_name), t.done_at, t.skipped_reason \
             FROM record_steps t JOIN people p ON p.id = t.done_by WHERE t.school_id = $1 AND t.record_id = $2 ORDER BY t.done_at",
        )
        .bind(school)
        .bind(record)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StepTick {
                    step: r.try_get(0)?,
                    by: r.try_get(1)?,
                    at_ms: r.try_get(2)?,
                    skipped: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Ticks a step of the record's procedure as done, or skips it with a reason; the tick is
    /// also a line of the chronology. A step is ticked once.
    pub async fn tick_step(
        &self,
        school: i64,
        record: i64,
        step: &str,
        tick: &Tick,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let category = open_record(&mut tx, school, record).await?;
        let found = procedure::check_tick(&category, category::steps_for(&category), step, tick)
            .map_err(|e| invalid(e.to_string()))?;
        let skipped = match tick {
            Tick::Done => None,
            Tick::Skipped(reason) => Some(field("The reason", reason, true, MAX_TEXT)?),
        };
        let done = sqlx::query(
            "INSERT INTO record_steps (school_id, record_id, step, done_by, done_at, skipped_reason) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(school)
        .bind(record)
        .bind(found.id)
        .bind(by.person)
        .bind(now)
        .bind(&skipped)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(invalid(format!(
                "\"{}\" has already been ticked.",
                found.text
            )));
        }
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now,
                kind: EntryKind::Checklist,
                text: match &skipped {
                    None => format!("Done: {}", found.text),
                    Some(_) => format!("Skipped: {}", found.text),
                },
                rationale: skipped.clone(),
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::TickStep,
                Subject::Record(record),
            )
            .word("step", found.id)
            .word("as", if skipped.is_some() { "skipped" } else { "done" }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The record's referrals, oldest first.
    pub async fn referrals(&self, school: i64, record: i64) -> Result<Vec<Referral>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.record_id, f.agency, f.made_at, COALESCE(f.origin, p.first_name || ' ' || p.last_name), f.contact, f.reference, f.outcome, f.follow_up_on \
             FROM referrals f JOIN people p ON p.id = f.made_by WHERE f.school_id = $1 AND f.record_id = $2 ORDER BY f.made_at, f.id",
        )
        .bind(school)
        .bind(record)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(referral_from).collect()
    }

    /// Open records' referrals with a follow-up date on or before `by_date` (`YYYY-MM-DD`),
    /// soonest first.
    pub async fn follow_ups_due(
        &self,
        school: i64,
        by_date: jiff::civil::Date,
    ) -> Result<Vec<Referral>, StoreError> {
        let rows = sqlx::query(
            "SELECT f.id, f.record_id, f.agency, f.made_at, COALESCE(f.origin, p.first_name || ' ' || p.last_name), f.contact, f.reference, f.outcome, f.follow_up_on \
             FROM referrals f JOIN people p ON p.id = f.made_by JOIN records r ON r.id = f.record_id \
             WHERE f.school_id = $1 AND r.status = 'open' AND f.outcome IS NULL AND f.follow_up_on IS NOT NULL AND f.follow_up_on <= $2 \
             ORDER BY f.follow_up_on, f.id",
        )
        .bind(school)
        .bind(by_date.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(referral_from).collect()
    }

    /// Records a referral (and a line of the chronology saying so); its id.
    pub async fn add_referral(&self, f: &NewReferral, by: &Actor<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        let contact = field("Who you spoke to", &f.contact, true, MAX_SHORT)?;
        let reference = field("The reference number", &f.reference, false, MAX_SHORT)?;
        let made = when_checked("When the referral was made", f.made_at_ms, now)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        open_record(&mut tx, f.school, f.record).await?;
        let id: i64 = sqlx::query(
            "INSERT INTO referrals (school_id, record_id, agency, made_at, made_by, contact, reference, follow_up_on) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(f.school)
        .bind(f.record)
        .bind(f.agency.as_str())
        .bind(made)
        .bind(by.person)
        .bind(&contact)
        .bind(&reference)
        .bind(f.follow_up_on.map(|d| d.to_string()))
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let mut text = format!("Referred to {} (spoke to {contact})", f.agency.label());
        if !reference.is_empty() {
            text.push_str(&format!(", reference {reference}"));
        }
        if let Some(d) = f.follow_up_on {
            text.push_str(&format!("; follow up on {d}"));
        }
        insert_entry(
            &mut tx,
            &NewEntry {
                school: f.school,
                record: f.record,
                person: None,
                at_ms: made,
                kind: EntryKind::Referral,
                text,
                rationale: None,
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::AddReferral,
                Subject::Referral(id),
            )
            .word("agency", f.agency.as_str())
            .count("record", f.record),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Closes a record with its outcome (and its debrief where the procedure asks), once every
    /// step is done or skipped with a reason.
    pub async fn close_record(
        &self,
        school: i64,
        record: i64,
        outcome: &str,
        debrief: &str,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let outcome = field("The outcome", outcome, true, MAX_TEXT)?;
        let debrief = field("The debrief", debrief, false, MAX_TEXT)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let category = open_record(&mut tx, school, record).await?;
        let ticked: Vec<String> = sqlx::query("SELECT step FROM record_steps WHERE record_id = $1")
            .bind(record)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let ticked: Vec<&str> = ticked.iter().map(String::as_str).collect();
        let needs_debrief = category::find(&category).is_some_and(|c| c.debrief);
        procedure::check_close(
            category::steps_for(&category),
            &ticked,
            &outcome,
            needs_debrief,
            &debrief,
        )
        .map_err(|e| invalid(e.to_string()))?;
        sqlx::query(
            "UPDATE records SET status = 'closed', outcome = $1, debrief = $2, closed_at = $3, closed_by = $4 WHERE id = $5",
        )
        .bind(&outcome)
        .bind(Some(&debrief).filter(|d| !d.is_empty()))
        .bind(now)
        .bind(by.person)
        .bind(record)
        .execute(&mut *tx)
        .await?;
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now,
                kind: EntryKind::Outcome,
                text: format!("Closed: {outcome}"),
                rationale: Some(debrief).filter(|d| !d.is_empty()),
            },
            by.person,
            now,
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::CloseRecord,
                Subject::Record(record),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// A read outside one's own cases (a record, or a child's chronology), with its typed
    /// reason: audited as a break-glass read, which the DSL's records page lists. The audit log
    /// keeps no text, so the reason's length is kept there, not its words.
    pub async fn break_glass(
        &self,
        school: i64,
        record: Option<i64>,
        person: Option<i64>,
        reason: &str,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let reason = field("The reason", reason, true, MAX_SHORT * 5)?;
        let subject = match (record, person) {
            (Some(r), _) => Subject::Record(r),
            (None, Some(p)) => Subject::Person(p),
            (None, None) => Subject::Records,
        };
        self.audit(
            &AuditEntry::new(by.username, by.address, AuditKind::BreakGlass, subject)
                .count("school", school)
                .count("reason characters", reason.chars().count() as i64),
        )
        .await
    }

    /// The headteacher (or the chair) shares an allegation with the DSL.
    pub async fn share_with_dsl(
        &self,
        school: i64,
        record: i64,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        open_record(&mut tx, school, record).await?;
        sqlx::query("UPDATE records SET shared_with_dsl = 1 WHERE school_id = $1 AND id = $2 AND kind <> 'pupil'")
            .bind(school)
            .bind(record)
            .execute(&mut *tx)
            .await?;
        insert_entry(
            &mut tx,
            &NewEntry {
                school,
                record,
                person: None,
                at_ms: now_ms(),
                kind: EntryKind::Decision,
                text: "Shared with the DSL".into(),
                rationale: None,
            },
            by.person,
            now_ms(),
        )
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::ShareRecord,
                Subject::Record(record),
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// A monitoring capture made a concern: the child it is about, the category, and the DSL's note.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The school.
    pub school: i64,
    /// The capture.
    pub capture: i64,
    /// The pupil it is about.
    pub child: i64,
    /// The category of concern.
    pub category: String,
    /// Why it is a concern, and what is to be done (the first decision of the record).
    pub note: String,
}

/// The category of concern a monitoring category suggests (the DSL may choose another).
pub fn category_for_monitoring(monitoring: &str) -> &'static str {
    match monitoring {
        "bullying" => "cyberbullying",
        "exploitation" | "pornography" => "sexual-exploitation",
        "extremism" => "radicalisation",
        "discrimination" => "online-hate",
        "illegal" => "misuse",
        _ => "welfare",
    }
}

impl Store {
    /// Promotes an open capture to a real concern about `child`: the record (its account the
    /// capture's text, its place where it was seen), the capture and the triage decision as the
    /// first lines of the chronology, the capture marked promoted and its alerts acknowledged,
    /// with the audit entry, in one transaction. `None` when the capture was not open.
    pub async fn promote_to_record(
        &self,
        p: &Promotion,
        by: &Actor<'_>,
    ) -> Result<Option<i64>, StoreError> {
        let now = now_ms();
        let note = field("The note", &p.note, true, MAX_TEXT)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        if !self.category_known(&mut tx, p.school, &p.category).await? {
            return Err(invalid(format!(
                "{:?} is not a category of concern here.",
                p.category.chars().take(60).collect::<String>()
            )));
        }
        if !is_kind(&mut tx, p.child, "pupil").await? {
            return Err(invalid(format!("Person {} is not a pupil here.", p.child)));
        }
        let done = sqlx::query(
            "UPDATE captures SET status = 'promoted', decided_by = $1, decided_at = $2 WHERE id = $3 AND status = 'open'",
        )
        .bind(by.username)
        .bind(now)
        .bind(p.capture)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let k = sqlx::query(
            "SELECT at, source, client, url, text, grade, categories, matched, model FROM captures WHERE id = $1",
        )
        .bind(p.capture)
        .fetch_one(&mut *tx)
        .await?;
        let at: i64 = k.try_get(0)?;
        let (source, client, url, text): (String, String, String, String) =
            (k.try_get(1)?, k.try_get(2)?, k.try_get(3)?, k.try_get(4)?);
        let (grade, categories, matched): (i64, String, String) =
            (k.try_get(5)?, k.try_get(6)?, k.try_get(7)?);
        let model: Option<String> = k.try_get(8)?;
        let place: String = format!("Monitoring ({source}) on {client}")
            .chars()
            .take(MAX_SHORT)
            .collect();
        let id: i64 = sqlx::query(
            "INSERT INTO records (school_id, kind, category, author_id, happened_at, written_at, place, account, actions, capture_id) \
             VALUES ($1, 'pupil', $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(p.school)
        .bind(&p.category)
        .bind(by.person)
        .bind(at)
        .bind(now)
        .bind(&place)
        .bind(&text)
        .bind(&note)
        .bind(p.capture)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query(
            "INSERT INTO record_children (school_id, record_id, person_id, part) VALUES ($1, $2, $3, 'subject')",
        )
        .bind(p.school)
        .bind(id)
        .bind(p.child)
        .execute(&mut *tx)
        .await?;
        let mut seen = format!(
            "Monitoring capture {}: grade {grade} ({categories}); seen at {url}",
            p.capture
        );
        if !matched.is_empty() {
            seen.push_str(&format!("; phrases: {matched}"));
        }
        if let Some(m) = &model {
            seen.push_str(&format!("; model: {m}"));
        }
        seen.push_str(&format!("; text: \u{201c}{text}\u{201d}"));
        for (kind, at_ms, text, rationale) in [
            (EntryKind::Capture, at, seen, None),
            (
                EntryKind::Decision,
                now,
                format!("Capture {} promoted to this concern in triage", p.capture),
                Some(note.clone()),
            ),
        ] {
            insert_entry(
                &mut tx,
                &NewEntry {
                    school: p.school,
                    record: id,
                    person: None,
                    at_ms,
                    kind,
                    text,
                    rationale,
                },
                by.person,
                now,
            )
            .await?;
        }
        let names = names_of(&mut tx, [p.child].into_iter()).await?;
        index_words(
            &mut tx,
            p.school,
            id,
            &format!("{place} {text} {note} {names}"),
        )
        .await?;
        crate::alerts::acknowledge(&mut *tx, p.capture, by.username).await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::PromoteCapture,
                Subject::Capture(p.capture),
            )
            .count("record", id),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(id))
    }
}

const ENTRY_COLUMNS: &str = "e.id, e.record_id, e.person_id, e.at, e.written_at, \
    COALESCE(e.origin, a.first_name || ' ' || a.last_name), e.kind, e.text, e.rationale, e.supersedes, e.reason, \
    (SELECT n.id FROM chronology n WHERE n.supersedes = e.id)";

const ENTRY_FROM: &str = "FROM chronology e JOIN people a ON a.id = e.author_id";

fn entry_from(r: &sqlx::any::AnyRow) -> Result<Entry, StoreError> {
    Ok(Entry {
        id: r.try_get(0)?,
        record: r.try_get(1)?,
        person: r.try_get(2)?,
        at_ms: r.try_get(3)?,
        written_at_ms: r.try_get(4)?,
        author: r.try_get(5)?,
        kind: parse(&r.try_get::<String, _>(6)?)?,
        text: r.try_get(7)?,
        rationale: r.try_get(8)?,
        supersedes: r.try_get(9)?,
        reason: r.try_get(10)?,
        superseded_by: r.try_get(11)?,
    })
}

fn referral_from(r: &sqlx::any::AnyRow) -> Result<Referral, StoreError> {
    Ok(Referral {
        id: r.try_get(0)?,
        record: r.try_get(1)?,
        agency: parse(&r.try_get::<String, _>(2)?)?,
        made_at_ms: r.try_get(3)?,
        by: r.try_get(4)?,
        contact: r.try_get(5)?,
        reference: r.try_get(6)?,
        outcome: r.try_get(7)?,
        follow_up_on: r.try_get(8)?,
    })
}

/// The words a search finds a record by: lower case, letters and digits, each once.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(|w| w.to_lowercase().chars().take(MAX_WORD).collect())
        .collect();
    out.sort_unstable();
    out.dedup();
    out.truncate(MAX_WORDS);
    out
}

/// Entries of a word counted to choose which of a search's words leads it.
const RARE: i64 = 2_000;

/// Longest word kept in the search index (characters), and most words a text adds to it.
const MAX_WORD: usize = 40;
const MAX_WORDS: usize = 2_000;
/// Rows in one insert of words (a statement's parameters stay far under both databases' limits).
const WORDS_A_STATEMENT: usize = 300;

/// Adds `text`'s words to the search index of `record`.
pub(crate) async fn index_words(
    tx: &mut Tx,
    school: i64,
    record: i64,
    text: &str,
) -> Result<(), StoreError> {
    for chunk in words(text).chunks(WORDS_A_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, $2)", i + 3))
            .collect();
        let q = format!(
            "INSERT INTO record_words (school_id, word, record_id) VALUES {} ON CONFLICT DO NOTHING",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(record);
        for w in chunk {
            query = query.bind(w);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn insert_entry(
    tx: &mut Tx,
    e: &NewEntry,
    author: i64,
    now: i64,
) -> Result<i64, StoreError> {
    let text = match &e.rationale {
        Some(r) => format!("{} {r}", e.text),
        None => e.text.clone(),
    };
    index_words(tx, e.school, e.record, &text).await?;
    Ok(sqlx::query(
        "INSERT INTO chronology (school_id, record_id, person_id, at, written_at, author_id, kind, text, rationale) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
    )
    .bind(e.school)
    .bind(e.record)
    .bind(e.person)
    .bind(e.at_ms)
    .bind(now)
    .bind(author)
    .bind(e.kind.as_str())
    .bind(&e.text)
    .bind(&e.rationale)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?)
}

/// The category of an open record of the school; an error saying why not otherwise.
pub(crate) async fn open_record(
    tx: &mut Tx,
    school: i64,
    record: i64,
) -> Result<String, StoreError> {
    let row = sqlx::query("SELECT category, status FROM records WHERE school_id = $1 AND id = $2")
        .bind(school)
        .bind(record)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| invalid(format!("There is no record {record}.")))?;
    if row.try_get::<String, _>(1)? != "open" {
        return Err(invalid(format!(
            "Record {record} is closed: nothing more is added to it."
        )));
    }
    Ok(row.try_get(0)?)
}

/// The first and last names of people, as one text (for the search index).
async fn names_of(tx: &mut Tx, people: impl Iterator<Item = i64>) -> Result<String, StoreError> {
    let mut out = String::new();
    for id in people {
        if let Some(r) = sqlx::query("SELECT first_name, last_name FROM people WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
        {
            out.push_str(&format!(
                " {} {}",
                r.try_get::<String, _>(0)?,
                r.try_get::<String, _>(1)?
            ));
        }
    }
    Ok(out)
}

async fn is_kind(tx: &mut Tx, person: i64, kind: &str) -> Result<bool, StoreError> {
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM people WHERE id = $1 AND kind = $2")
        .bind(person)
        .bind(kind)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    Ok(n > 0)
}
