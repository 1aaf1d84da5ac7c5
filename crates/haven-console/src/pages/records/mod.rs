//! Safeguarding records in the console: any member of staff logs a concern (and then sees only
//! what they wrote); the DSL, deputies and the headteacher work the records (a case's
//! procedure, referrals, chronology entries, corrections, its close) and read a child's
//! chronology; allegations about staff go to the headteacher, about the headteacher to the
//! chair of governors. Who sees what is `haven_records::access`; every read and write is
//! audited (writes in their own transaction, by the store).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use haven_records::access::{access, Access, Reader};
use haven_records::clock;
use haven_records::procedure::Tick;
use haven_records::{category, Agency, EntryKind, Part, RecordKind};
use haven_store::accounts::Role;
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use haven_store::records::{self as rec, Actor, Child, NewConcern, NewEntry, NewReferral};
use serde::Deserialize;

use super::{url_encode, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;

mod cases;
mod chronology;
mod concern;
mod evidence;
mod retention;
mod sar;
mod transfer;

pub(in crate::pages) use self::{
    cases::*, chronology::*, concern::*, evidence::*, retention::*, sar::*, transfer::*,
};

const SCHOOL: i64 = rec::DEFAULT_SCHOOL;

/// The reader, as `haven_records::access` sees them.
fn reader(s: &Signed) -> Reader {
    let has = |r: Role| s.who.roles.contains(&r);
    Reader {
        person: s.who.person_id,
        dsl: has(Role::Dsl),
        deputy: has(Role::DeputyDsl),
        headteacher: has(Role::Headteacher),
        chair: has(Role::Chair),
    }
}

pub(in crate::pages) fn actor(s: &Signed) -> Actor<'_> {
    Actor {
        person: s.who.person_id,
        username: &s.who.username,
        address: &s.address,
    }
}

pub(in crate::pages) async fn audit(
    c: &Console,
    s: &Signed,
    kind: AuditKind,
    subject: Subject,
) -> Result<(), Denied> {
    c.store
        .audit(&AuditEntry::new(&s.who.username, &s.address, kind, subject))
        .await?;
    Ok(())
}

/// A local date and time from a form (`YYYY-MM-DDTHH:MM`, as `datetime-local` sends it) as
/// milliseconds since the epoch.
pub(in crate::pages) fn local_ms(name: &str, text: &str) -> Result<i64, Denied> {
    let bad = || Denied::Invalid(format!("{name}: {:?} is not a date and time.", clip(text)));
    let dt: jiff::civil::DateTime = text.trim().parse().map_err(|_| bad())?;
    let z = dt
        .to_zoned(jiff::tz::TimeZone::system())
        .map_err(|_| bad())?;
    Ok(z.timestamp().as_millisecond())
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The date of a time, in the server's zone.
fn date_of(ms: i64) -> jiff::civil::Date {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::system()).date())
        .unwrap_or_default()
}

fn today() -> jiff::civil::Date {
    haven_runtime::clock::local().date()
}

/// `datetime-local`'s value for now.
fn now_local_input() -> String {
    haven_runtime::clock::local()
        .strftime("%Y-%m-%dT%H:%M")
        .to_string()
}

struct CategoryOption {
    id: String,
    name: String,
}

async fn categories(c: &Console) -> Result<Vec<CategoryOption>, Denied> {
    let mut out: Vec<CategoryOption> = category::CATEGORIES
        .iter()
        .map(|k| CategoryOption {
            id: k.id.to_owned(),
            name: k.name.to_owned(),
        })
        .collect();
    for (id, name) in c.store.school_categories(SCHOOL).await? {
        out.push(CategoryOption { id, name });
    }
    Ok(out)
}

fn about(r: &rec::Record) -> String {
    match (&r.staff, r.kind) {
        (Some((_, name)), _) => format!("{name} (member of staff)"),
        _ => r
            .children
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

struct EntryRow {
    id: i64,
    at: String,
    written: Option<String>,
    author: String,
    kind: &'static str,
    text: String,
    rationale: Option<String>,
    child: Option<String>,
    supersedes: Option<i64>,
    reason: Option<String>,
    superseded_by: Option<i64>,
}

fn entry_rows(entries: Vec<rec::Entry>, children: &[rec::NamedChild]) -> Vec<EntryRow> {
    entries
        .into_iter()
        .map(|e| EntryRow {
            id: e.id,
            at: when(e.at_ms),
            // Written more than an hour after it happened: say when.
            written: (e.written_at_ms - e.at_ms > 3_600_000).then(|| when(e.written_at_ms)),
            author: e.author,
            kind: e.kind.label(),
            text: e.text,
            rationale: e.rationale,
            child: e
                .person
                .and_then(|p| children.iter().find(|c| c.person == p))
                .map(|c| c.name.clone()),
            supersedes: e.supersedes,
            reason: e.reason,
            superseded_by: e.superseded_by,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "break_glass.html")]
struct BreakGlassPage {
    l: Layout,
    action: String,
    what: String,
}

#[derive(Deserialize)]
pub struct ReasonForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn reason_given(reason: &str) -> Result<(), Denied> {
    if reason.trim().chars().count() < 10 {
        return Err(Denied::Invalid(
            "Say why you need to open a record that is not one of your cases (at least a few words): the reason is kept and the DSL is told."
                .into(),
        ));
    }
    Ok(())
}

/// The record a write is for, when the writer works it in full (the DSL, the case's holder,
/// the headteacher's or chair's allegations; a break-glass reader writes nothing).
async fn writable(c: &Console, s: &Signed, id: i64) -> Result<rec::Record, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    match access(reader(s), r.access_view()) {
        Access::Full => Ok(r),
        Access::BreakGlass => Err(Denied::Invalid(
            "This is not one of your cases: ask the DSL to give it to you before you add to it."
                .into(),
        )),
        Access::Authored | Access::None => Err(Denied::NotFound),
    }
}

fn back(id: i64, done: &str) -> Response {
    Redirect::to(&format!("/records/{id}?done={}", url_encode(done))).into_response()
}

/// Checks and seals a file for the record: its type from its bytes, its size, its hash kept.
async fn seal_upload(
    c: &Console,
    up: &crate::web::Upload,
    possible_nude: bool,
) -> Result<haven_store::evidence::NewEvidence, Denied> {
    let media_type = haven_records::evidence::check(&up.name, &up.bytes)
        .map_err(|e| Denied::Invalid(format!("{}.", capitalise(&e.to_string()))))?;
    if possible_nude && !haven_records::evidence::is_image(media_type) {
        return Err(Denied::Invalid(
            "Only a picture can be marked as a possible nude image.".into(),
        ));
    }
    let sha256 = haven_vault::sha256_hex(&up.bytes);
    let vault = c.vault()?;
    if vault.versions(SCHOOL)?.is_empty() && !c.store.evidence_ids(SCHOOL).await?.is_empty() {
        // A first key would be made now, but evidence sealed under an earlier one exists: the
        // key file has gone. A new key would leave that evidence unopenable for good.
        return Err(Denied::Invalid(
            "The school's evidence key is missing from the vault, but sealed evidence exists. Nothing was saved: ask the network manager to restore the vault from its backup (docs/VAULT.md)."
                .into(),
        ));
    }
    let sealed = vault.seal(
        SCHOOL,
        &haven_store::evidence::seal_context(SCHOOL, &sha256),
        &up.bytes,
    )?;
    let key_version = haven_vault::Vault::version_of(&sealed).unwrap_or(0);
    Ok(haven_store::evidence::NewEvidence {
        name: haven_records::evidence::clean_name(&up.name),
        media_type: media_type.to_owned(),
        size_bytes: i64::try_from(up.bytes.len()).unwrap_or(i64::MAX),
        sha256,
        possible_nude,
        key_version: i64::from(key_version),
        sealed,
    })
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// Active people of a kind, by name: (id, "First Last (Year N)").
async fn people_of(c: &Console, kind: &str) -> Result<Vec<(i64, String)>, Denied> {
    Ok(c.store
        .find_people("", 100_000)
        .await?
        .into_iter()
        .filter(|p| p.kind == kind && p.active)
        .map(|p| {
            let year = haven_store::people::year_label(p.year_group.as_deref());
            let name = format!("{} {}", p.first_name, p.last_name);
            (
                p.id,
                if year.is_empty() {
                    name
                } else {
                    format!("{name} ({year})")
                },
            )
        })
        .collect())
}

fn dates(births: &[String]) -> Vec<jiff::civil::Date> {
    births.iter().filter_map(|b| b.parse().ok()).collect()
}

fn parse_children(c: &str) -> Result<Vec<Child>, Denied> {
    let mut out = Vec::new();
    for item in c.split(',').filter(|s| !s.trim().is_empty()) {
        let (id, part) = item
            .split_once(':')
            .ok_or_else(|| Denied::Invalid(format!("{:?} is not a child and part.", clip(item))))?;
        let person = id
            .trim()
            .parse()
            .map_err(|_| Denied::Invalid(format!("{:?} is not a person.", clip(id))))?;
        let part = part
            .trim()
            .parse()
            .map_err(|e: haven_records::WordError| Denied::Invalid(e.to_string()))?;
        out.push(Child { person, part });
    }
    Ok(out)
}

fn children_value(children: &[Child]) -> String {
    children
        .iter()
        .map(|c| format!("{}:{}", c.person, c.part))
        .collect::<Vec<_>>()
        .join(",")
}

crate::web::csrf_field!(ReasonForm);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_and_parts_read_from_the_form_and_refuse_what_is_not_one() {
        let c = parse_children("12:subject, 15:witness").expect("two");
        assert_eq!(
            c,
            [
                Child {
                    person: 12,
                    part: Part::Subject
                },
                Child {
                    person: 15,
                    part: Part::Witness
                }
            ]
        );
        assert_eq!(children_value(&c), "12:subject,15:witness");
        assert!(parse_children("12").is_err());
        assert!(parse_children("x:subject").is_err());
        assert!(parse_children("12:bystander").is_err());
        assert!(parse_children("").expect("none").is_empty());
    }
}
