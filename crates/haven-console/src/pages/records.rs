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

fn actor(s: &Signed) -> Actor<'_> {
    Actor {
        person: s.who.person_id,
        username: &s.who.username,
        address: &s.address,
    }
}

async fn audit(c: &Console, s: &Signed, kind: AuditKind, subject: Subject) -> Result<(), Denied> {
    c.store
        .audit(&AuditEntry::new(&s.who.username, &s.address, kind, subject))
        .await?;
    Ok(())
}

/// A local date and time from a form (`YYYY-MM-DDTHH:MM`, as `datetime-local` sends it) as
/// milliseconds since the epoch.
fn local_ms(name: &str, text: &str) -> Result<i64, Denied> {
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

// ---------------------------------------------------------------------------------------
// Logging a concern

/// `?q=` searches pupils by name; `?c=ID:PART,…` are the children chosen so far.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    q: String,
    c: String,
    kind: String,
    write_up: String,
}

struct Chosen {
    id: i64,
    name: String,
    year: String,
    class: String,
    part: Part,
}

struct Found {
    id: i64,
    name: String,
    year: String,
    class: String,
    /// The `c` value with this child added in each part: (part label, link).
    add: Vec<(&'static str, String)>,
}

struct CategoryOption {
    id: String,
    name: String,
}

#[derive(Template)]
#[template(path = "concern_new.html")]
struct NewConcernPage {
    l: Layout,
    staff_allegation: bool,
    q: String,
    c: String,
    chosen: Vec<Chosen>,
    /// Without the child (for a "remove" link): the `c` value.
    remove: Vec<String>,
    found: Vec<Found>,
    searched: bool,
    categories: Vec<CategoryOption>,
    staff: Vec<(i64, String)>,
    now: String,
    write_up: String,
    /// The body map's regions (id, name), front then back, and the figure.
    regions: Vec<(&'static str, &'static str)>,
    figure: String,
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

/// The concern form: find the children (names, year and class only — nobody's history), give
/// each their part, then write what happened.
pub(super) async fn new_concern(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<NewQuery>,
) -> Result<Response, Denied> {
    let children = parse_children(&q.c)?;
    let mut chosen = Vec::new();
    let mut remove = Vec::new();
    for (i, ch) in children.iter().enumerate() {
        let p = c.store.person(ch.person).await?.ok_or(Denied::NotFound)?;
        if p.kind != "pupil" {
            return Err(Denied::NotFound);
        }
        chosen.push(Chosen {
            id: p.id,
            name: format!("{} {}", p.first_name, p.last_name),
            year: haven_store::people::year_label(p.year_group.as_deref()),
            class: p.class.unwrap_or_default(),
            part: ch.part,
        });
        let rest: Vec<Child> = children
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        remove.push(children_value(&rest));
    }
    let mut found = Vec::new();
    let searched = !q.q.trim().is_empty();
    if searched {
        let people = c.store.find_people(q.q.trim(), 40).await?;
        let pupils: Vec<_> = people
            .into_iter()
            .filter(|p| p.kind == "pupil" && p.active)
            .filter(|p| !children.iter().any(|ch| ch.person == p.id))
            .take(20)
            .collect();
        c.store
            .audit(
                &AuditEntry::new(
                    &s.who.username,
                    &s.address,
                    AuditKind::SearchPeople,
                    Subject::Nothing,
                )
                .count("found", pupils.len() as i64)
                .word("via", "concern form"),
            )
            .await?;
        for p in pupils {
            let add = Part::ALL
                .iter()
                .map(|part| {
                    let mut with = children.clone();
                    with.push(Child {
                        person: p.id,
                        part: *part,
                    });
                    (part.label(), children_value(&with))
                })
                .collect();
            found.push(Found {
                id: p.id,
                name: format!("{} {}", p.first_name, p.last_name),
                year: haven_store::people::year_label(p.year_group.as_deref()),
                class: p.class.unwrap_or_default(),
                add,
            });
        }
    }
    let staff_allegation = q.kind == "staff";
    let staff = if staff_allegation {
        c.store
            .find_people("", 2000)
            .await?
            .into_iter()
            .filter(|p| p.kind == "staff" && p.active)
            .map(|p| (p.id, format!("{} {}", p.first_name, p.last_name)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(html(&NewConcernPage {
        l: c.layout("Log a concern", Some(&s)),
        staff_allegation,
        q: q.q,
        c: q.c,
        chosen,
        remove,
        found,
        searched,
        categories: categories(&c).await?,
        staff,
        now: now_local_input(),
        write_up: q.write_up,
        regions: haven_records::body::REGIONS
            .iter()
            .map(|r| (r.id, r.label))
            .collect(),
        figure: haven_records::body::svg(&[]),
    }))
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

pub(super) async fn log_concern(
    State(c): State<Console>,
    s: Signed,
    f: crate::web::SessionMultipart,
) -> Result<Response, Denied> {
    let happened = local_ms("When it happened", f.field("happened"))?;
    let told = if f.field("told_dsl") == "yes" {
        Some(if f.field("told_at").trim().is_empty() {
            i64::try_from(haven_runtime::clock::now_ms()).unwrap_or(i64::MAX)
        } else {
            local_ms("When you told the DSL", f.field("told_at"))?
        })
    } else {
        None
    };
    let possible_nude = f.field("possible_nude") == "yes";
    let mut evidence = Vec::new();
    for u in f.files.iter().filter(|u| u.field == "attachment") {
        evidence.push(seal_upload(&c, u, possible_nude).await?);
    }
    let (kind, staff, children) = if f.field("kind") == "staff" {
        let id: i64 = f.field("staff").trim().parse().map_err(|_| {
            Denied::Invalid("Choose the member of staff the allegation is about.".into())
        })?;
        let head = c.store.roles(id).await?.contains(&Role::Headteacher);
        let kind = if head {
            RecordKind::Headteacher
        } else {
            RecordKind::Staff
        };
        (kind, Some(id), Vec::new())
    } else {
        (
            RecordKind::Pupil,
            None,
            parse_children(f.field("children"))?,
        )
    };
    let id = c
        .store
        .log_concern(
            &NewConcern {
                school: SCHOOL,
                kind,
                category: f.field("category").trim().to_owned(),
                children,
                staff,
                happened_at_ms: happened,
                place: f.field("place").to_owned(),
                account: f.field("account").to_owned(),
                actions: f.field("actions").to_owned(),
                told_dsl_at_ms: told,
                capture: None,
                evidence,
                body_map: f
                    .fields
                    .iter()
                    .filter(|(k, v)| k.starts_with("region-") && v.as_str() == "yes")
                    .map(|(k, _)| k.trim_start_matches("region-").to_owned())
                    .collect(),
                write_up: match f.field("write_up").trim() {
                    "" => None,
                    w => Some(w.parse().map_err(|_| {
                        Denied::Invalid(format!("{:?} is not a write-up.", clip(w)))
                    })?),
                },
            },
            &actor(&s),
        )
        .await?;
    let done = match kind {
        RecordKind::Pupil => format!(
            "Concern {id} is logged and the safeguarding team can see it. If a child is in danger now, tell the DSL in person as well."
        ),
        RecordKind::Staff => format!("Allegation {id} is logged and has gone to the headteacher alone."),
        RecordKind::Headteacher => {
            format!("Allegation {id} is logged and has gone to the chair of governors alone.")
        }
    };
    Ok(Redirect::to(&format!("/concerns/mine?done={}", url_encode(&done))).into_response())
}

// ---------------------------------------------------------------------------------------
// What the author sees: their own concerns, as they wrote them.

struct MineRow {
    id: i64,
    written: String,
    category: String,
    about: String,
}

#[derive(Template)]
#[template(path = "concerns_mine.html")]
struct MinePage {
    l: Layout,
    rows: Vec<MineRow>,
    message: String,
    /// (write-up id, child id, child's name, when told).
    to_write: Vec<(i64, i64, String, String)>,
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

pub(super) async fn my_concerns(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let mine = c
        .store
        .records_written_by(SCHOOL, s.who.person_id, 500)
        .await?;
    audit(&c, &s, AuditKind::ReadOwnConcerns, Subject::Records).await?;
    let rows = mine
        .iter()
        .map(|r| MineRow {
            id: r.id,
            written: when(r.written_at_ms),
            category: r.category_name().to_owned(),
            about: about(r),
        })
        .collect();
    let to_write = c
        .store
        .pending_write_ups(SCHOOL, Some(s.who.person_id))
        .await?
        .into_iter()
        .map(|w| (w.id, w.child.0, w.child.1, when(w.told_at_ms)))
        .collect();
    Ok(html(&MinePage {
        l: c.layout("My concerns", Some(&s)),
        rows,
        message: flash.done,
        to_write,
    }))
}

#[derive(Template)]
#[template(path = "concern_mine.html")]
struct MineOne {
    l: Layout,
    r: rec::Record,
    happened: String,
    written: String,
    told: Option<String>,
}

/// One concern as its author wrote it: nothing of what followed.
pub(super) async fn my_concern(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    if r.author.0 != s.who.person_id {
        return Err(Denied::NotFound);
    }
    audit(&c, &s, AuditKind::ReadOwnConcerns, Subject::Record(id)).await?;
    Ok(html(&MineOne {
        l: c.layout(&format!("Concern {id}"), Some(&s)),
        happened: when(r.happened_at_ms),
        written: when(r.written_at_ms),
        told: r.told_dsl_at_ms.map(when),
        r,
    }))
}

// ---------------------------------------------------------------------------------------
// The safeguarding team's records

struct RecordRow {
    id: i64,
    written: String,
    category: String,
    kind: &'static str,
    about: String,
    children: Vec<(i64, String, String)>,
    author: String,
    glass: bool,
}

struct ClockRow {
    record: i64,
    what: String,
    due: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    l: Layout,
    rows: Vec<RecordRow>,
    clocks: Vec<ClockRow>,
    glass: Vec<(String, String, String)>,
    message: String,
    closed: bool,
    q: String,
    category: String,
    categories: Vec<CategoryOption>,
    own: Vec<(String, String)>,
    dsl: bool,
    staff: Vec<(i64, String)>,
    pupils: Vec<(i64, String)>,
    now: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RecordsQuery {
    done: String,
    closed: String,
    q: String,
    category: String,
}

/// The records the reader may see, and the clocks running on them.
pub(super) async fn records(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<RecordsQuery>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    let closed = q.closed == "yes";
    let searching = !q.q.trim().is_empty() || !q.category.is_empty();
    let all = if searching {
        c.store
            .search_records(
                SCHOOL,
                &rec::RecordQuery {
                    words: q.q.clone(),
                    category: Some(q.category.clone()).filter(|k| !k.is_empty()),
                    open_only: !closed,
                    limit: 200,
                },
            )
            .await?
    } else {
        c.store.records(SCHOOL, !closed, 1000).await?
    };
    let today = today();
    let mut rows = Vec::new();
    let mut clocks = Vec::new();
    for r in &all {
        let a = access(me, r.access_view());
        if matches!(a, Access::None | Access::Authored) {
            continue;
        }
        rows.push(RecordRow {
            id: r.id,
            written: when(r.written_at_ms),
            category: r.category_name().to_owned(),
            kind: r.kind.label(),
            about: about(r),
            children: r
                .children
                .iter()
                .map(|ch| (ch.person, ch.name.clone(), ch.part.label().to_owned()))
                .collect(),
            author: r.author.1.clone(),
            glass: a == Access::BreakGlass,
        });
        if !r.open || a != Access::Full {
            continue;
        }
        if matches!(r.kind, RecordKind::Staff | RecordKind::Headteacher) {
            let told = c
                .store
                .referrals(SCHOOL, r.id)
                .await?
                .iter()
                .any(|f| f.agency == Agency::Lado);
            if !told {
                let due = clock::lado_due(date_of(r.written_at_ms), &[]);
                clocks.push(ClockRow {
                    record: r.id,
                    what: "Tell the LADO (within one working day of the allegation)".into(),
                    due: due.to_string(),
                    state: clock::state(today, due).as_str(),
                });
            }
        }
    }
    for f in c
        .store
        .follow_ups_due(
            SCHOOL,
            today
                .checked_add(jiff::Span::new().days(7))
                .unwrap_or(today),
        )
        .await?
    {
        let Some(r) = all.iter().find(|r| r.id == f.record) else {
            continue;
        };
        if access(me, r.access_view()) != Access::Full {
            continue;
        }
        let due: jiff::civil::Date = f
            .follow_up_on
            .as_deref()
            .and_then(|d| d.parse().ok())
            .unwrap_or(today);
        clocks.push(ClockRow {
            record: f.record,
            what: format!(
                "Follow up the referral to {} ({})",
                f.agency.label(),
                f.reference
            ),
            due: due.to_string(),
            state: clock::state(today, due).as_str(),
        });
    }
    if me.dsl || me.deputy || me.headteacher {
        for w in c.store.pending_write_ups(SCHOOL, None).await? {
            let due = clock::write_up_due(date_of(w.told_at_ms));
            clocks.push(ClockRow {
                record: 0,
                what: format!(
                    "{} to write up what they told you in person about {}",
                    w.staff.1, w.child.1
                ),
                due: due.to_string(),
                state: clock::state(today, due).as_str(),
            });
        }
    }
    if me.dsl {
        for l in c.store.leavers_with_records(SCHOOL).await? {
            if l.transfers.iter().any(|t| t.receipt.is_some()) {
                continue;
            }
            let due = clock::transfer_due(date_of(l.left_at_ms), &[]);
            clocks.push(ClockRow {
                record: 0,
                what: format!(
                    "Send {}'s file to their new school and get its receipt (five school days after leaving){}",
                    l.name,
                    if l.transfers.is_empty() { "" } else { ": sent, awaiting the receipt" }
                ),
                due: due.to_string(),
                state: clock::state(today, due).as_str(),
            });
        }
    }
    clocks.sort_by(|a, b| a.due.cmp(&b.due));
    let glass = if me.dsl {
        c.store
            .audit_of_kind(AuditKind::BreakGlass, 50)
            .await?
            .into_iter()
            .map(|e| (when(e.at_ms), e.actor, e.subject))
            .collect()
    } else {
        Vec::new()
    };
    audit(&c, &s, AuditKind::ReadRecords, Subject::Records).await?;
    Ok(html(&RecordsPage {
        l: c.layout("Safeguarding records", Some(&s)),
        rows,
        clocks,
        glass,
        message: q.done,
        closed,
        categories: categories(&c).await?,
        own: c.store.school_categories(SCHOOL).await?,
        dsl: me.dsl,
        staff: if me.dsl || me.deputy {
            people_of(&c, "staff").await?
        } else {
            Vec::new()
        },
        pupils: if me.dsl || me.deputy {
            people_of(&c, "pupil").await?
        } else {
            Vec::new()
        },
        now: now_local_input(),
        q: q.q,
        category: q.category,
    }))
}

struct StepRow {
    id: &'static str,
    text: &'static str,
    tick: Option<String>,
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

struct ReferralRow {
    id: i64,
    outcome: Option<String>,
    made: String,
    agency: &'static str,
    by: String,
    contact: String,
    reference: String,
    follow_up: String,
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    l: Layout,
    r: rec::Record,
    category_name: String,
    happened: String,
    written: String,
    told: Option<String>,
    steps: Vec<StepRow>,
    image_warning: bool,
    debrief: bool,
    referrals: Vec<ReferralRow>,
    entries: Vec<EntryRow>,
    agencies: &'static [Agency],
    kinds: Vec<EntryKind>,
    now: String,
    message: String,
    may_share: bool,
    evidence: Vec<haven_store::evidence::Evidence>,
    may_view_nude: bool,
    /// Whether the reader may add to it (not a break-glass reader).
    may_write: bool,
    /// Who may hold the case (for the DSL's form), and who holds it.
    holders: Vec<(i64, String)>,
    holder: String,
    /// The body map with the marked regions, and their names ("" when none).
    body_svg: String,
    body_list: String,
}

#[derive(Template)]
#[template(path = "break_glass.html")]
struct BreakGlassPage {
    l: Layout,
    action: String,
    what: String,
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

async fn render_record(
    c: &Console,
    s: &Signed,
    r: rec::Record,
    message: String,
) -> Result<Response, Denied> {
    let ticks = c.store.record_steps(SCHOOL, r.id).await?;
    let steps = category::steps_for(&r.category)
        .iter()
        .map(|st| StepRow {
            id: st.id,
            text: st.text,
            tick: ticks
                .iter()
                .find(|t| t.step == st.id)
                .map(|t| match &t.skipped {
                    None => format!("Done by {} {}", t.by, when(t.at_ms)),
                    Some(why) => format!("Skipped by {} {}: {why}", t.by, when(t.at_ms)),
                }),
        })
        .collect();
    let referrals = c
        .store
        .referrals(SCHOOL, r.id)
        .await?
        .into_iter()
        .map(|f| ReferralRow {
            id: f.id,
            outcome: f.outcome,
            made: when(f.made_at_ms),
            agency: f.agency.label(),
            by: f.by,
            contact: f.contact,
            reference: f.reference,
            follow_up: f.follow_up_on.unwrap_or_default(),
        })
        .collect();
    let entries = entry_rows(c.store.record_entries(SCHOOL, r.id).await?, &r.children);
    let found = category::find(&r.category);
    let me = reader(s);
    Ok(html(&RecordPage {
        l: c.layout(&format!("Record {}", r.id), Some(s)),
        category_name: r.category_name().to_owned(),
        happened: when(r.happened_at_ms),
        written: when(r.written_at_ms),
        told: r.told_dsl_at_ms.map(when),
        steps,
        image_warning: found.is_some_and(|k| k.image_warning),
        debrief: found.is_some_and(|k| k.debrief),
        referrals,
        entries,
        agencies: Agency::ALL,
        kinds: EntryKind::ALL
            .iter()
            .copied()
            .filter(|k| {
                !matches!(
                    k,
                    EntryKind::Concern
                        | EntryKind::Checklist
                        | EntryKind::Outcome
                        | EntryKind::Referral
                )
            })
            .collect(),
        now: now_local_input(),
        message,
        evidence: c.store.evidence_of(SCHOOL, r.id).await?,
        may_view_nude: (me.dsl || me.deputy) && access(me, r.access_view()) == Access::Full,
        may_write: access(me, r.access_view()) == Access::Full,
        body_svg: {
            let marked = haven_records::body::parse(&r.body_map).unwrap_or_default();
            if marked.is_empty() {
                String::new()
            } else {
                haven_records::body::svg(&marked)
            }
        },
        body_list: haven_records::body::parse(&r.body_map)
            .unwrap_or_default()
            .iter()
            .map(|m| m.label)
            .collect::<Vec<_>>()
            .join(", "),
        holders: if me.dsl && r.kind == RecordKind::Pupil {
            c.store.staff_with_role("deputy-dsl").await?
        } else {
            Vec::new()
        },
        holder: match r.holder {
            Some(h) => c
                .store
                .person(h)
                .await?
                .map(|p| format!("{} {}", p.first_name, p.last_name))
                .unwrap_or_default(),
            None => String::new(),
        },
        may_share: r.open
            && !r.shared_with_dsl
            && ((r.kind == RecordKind::Staff && me.headteacher)
                || (r.kind == RecordKind::Headteacher && me.chair)),
        r,
    }))
}

/// The record, when the reader may see all of it; a page asking for the reason when they must
/// break the glass; "not found" otherwise (not even that it exists).
pub(super) async fn record(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    match access(reader(&s), r.access_view()) {
        Access::Full => {
            audit(&c, &s, AuditKind::ReadRecord, Subject::Record(id)).await?;
            render_record(&c, &s, r, flash.done).await
        }
        Access::BreakGlass => Ok(html(&BreakGlassPage {
            l: c.layout("Not one of your cases", Some(&s)),
            action: format!("/records/{id}/open"),
            what: format!("record {id}"),
        })),
        Access::Authored => Ok(Redirect::to(&format!("/concerns/mine/{id}")).into_response()),
        Access::None => Err(Denied::NotFound),
    }
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

/// Opening a record outside one's cases: the typed reason is required, the read audited as a
/// break-glass read and listed on the DSL's records page. (The reason itself is not kept in the
/// audit log, which holds no text; its length is.)
pub(super) async fn record_open(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<ReasonForm>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    match access(reader(&s), r.access_view()) {
        Access::Full => {}
        Access::BreakGlass => {
            reason_given(&f.reason)?;
            c.store
                .break_glass(SCHOOL, Some(id), None, &f.reason, &actor(&s))
                .await?;
        }
        Access::Authored | Access::None => return Err(Denied::NotFound),
    }
    audit(&c, &s, AuditKind::ReadRecord, Subject::Record(id)).await?;
    render_record(&c, &s, r, String::new()).await
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

#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    step: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn record_step(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<StepForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let tick = if crate::web::decision(&f.decision, "done", "skip")? {
        Tick::Done
    } else {
        Tick::Skipped(f.reason)
    };
    c.store
        .tick_step(SCHOOL, id, &f.step, &tick, &actor(&s))
        .await?;
    Ok(back(id, "Step recorded."))
}

#[derive(Deserialize)]
pub struct ReferralForm {
    csrf: String,
    agency: String,
    made: String,
    contact: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    follow_up: String,
}

pub(super) async fn record_referral(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<ReferralForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let agency: Agency = f
        .agency
        .parse()
        .map_err(|e: haven_records::WordError| Denied::Invalid(e.to_string()))?;
    let follow_up_on =
        match f.follow_up.trim() {
            "" => None,
            d => Some(d.parse().map_err(|_| {
                Denied::Invalid(format!("Follow up on: {:?} is not a date.", clip(d)))
            })?),
        };
    c.store
        .add_referral(
            &NewReferral {
                school: SCHOOL,
                record: id,
                agency,
                made_at_ms: local_ms("When the referral was made", &f.made)?,
                contact: f.contact,
                reference: f.reference,
                follow_up_on,
            },
            &actor(&s),
        )
        .await?;
    Ok(back(
        id,
        &format!("Referral to {} recorded.", agency.label()),
    ))
}

struct RetentionRow {
    id: i64,
    kind: &'static str,
    category: String,
    written: String,
    review_on: String,
}

#[derive(Template)]
#[template(path = "retention.html")]
struct RetentionPage {
    l: Layout,
    due: Vec<RetentionRow>,
    held: Vec<RetentionRow>,
    message: String,
    later: usize,
}

fn dates(births: &[String]) -> Vec<jiff::civil::Date> {
    births.iter().filter_map(|b| b.parse().ok()).collect()
}

/// The retention review queue (the DSL and the headteacher): records past their retention
/// date, to keep (a legal hold, with its reason) or delete (a tombstone stays in the audit
/// chain); and the records on legal hold.
pub(super) async fn retention(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.headteacher) {
        return Err(Denied::Invalid(
            "The retention review is the DSL's and the headteacher's.".into(),
        ));
    }
    let today = today();
    let mut due = Vec::new();
    let mut held = Vec::new();
    let mut later = 0;
    for f in c.store.retention_facts(SCHOOL).await? {
        let on = haven_records::retention::record_review_on(
            f.kind,
            &dates(&f.births),
            date_of(f.written_at_ms),
        );
        let row = RetentionRow {
            id: f.record,
            kind: f.kind.label(),
            category: category::find(&f.category).map_or(f.category.clone(), |k| k.name.to_owned()),
            written: when(f.written_at_ms),
            review_on: on.to_string(),
        };
        if f.legal_hold {
            held.push(row);
        } else if on <= today {
            due.push(row);
        } else {
            later += 1;
        }
    }
    audit(&c, &s, AuditKind::ReadRetention, Subject::Records).await?;
    Ok(html(&RetentionPage {
        l: c.layout("Retention review", Some(&s)),
        due,
        held,
        message: flash.done,
        later,
    }))
}

#[derive(Deserialize)]
pub struct HoldForm {
    csrf: String,
    hold: String,
    reason: String,
}

pub(super) async fn legal_hold(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<HoldForm>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.headteacher) {
        return Err(Denied::Invalid(
            "A legal hold is set by the DSL or the headteacher.".into(),
        ));
    }
    let hold = crate::web::decision(&f.hold, "on", "off")?;
    c.store
        .set_legal_hold(SCHOOL, id, hold, &f.reason, &actor(&s))
        .await?;
    let done = if hold {
        "The record is on legal hold."
    } else {
        "The legal hold is lifted."
    };
    Ok(Redirect::to(&format!("/records/retention?done={}", url_encode(done))).into_response())
}

#[derive(Deserialize)]
pub struct DeleteForm {
    csrf: String,
    #[serde(default)]
    confirm: String,
}

/// Deletes a record past its retention date, after the word "delete" is typed.
pub(super) async fn delete_record(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<DeleteForm>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.headteacher) {
        return Err(Denied::Invalid(
            "Records are deleted by the DSL or the headteacher.".into(),
        ));
    }
    if f.confirm.trim() != "delete" {
        return Err(Denied::Invalid(
            "Type the word delete to confirm: a deleted record cannot be brought back.".into(),
        ));
    }
    let facts = c
        .store
        .retention_facts(SCHOOL)
        .await?
        .into_iter()
        .find(|r| r.record == id)
        .ok_or(Denied::NotFound)?;
    let on = haven_records::retention::record_review_on(
        facts.kind,
        &dates(&facts.births),
        date_of(facts.written_at_ms),
    );
    if !haven_records::retention::may_delete(today(), on, facts.legal_hold) {
        return Err(Denied::Invalid(format!(
            "Record {id} is kept until {on}{}: it is not deleted.",
            if facts.legal_hold {
                " and is on legal hold"
            } else {
                ""
            }
        )));
    }
    c.store.delete_record(SCHOOL, id, &actor(&s)).await?;
    Ok(Redirect::to(&format!(
        "/records/retention?done={}",
        url_encode(&format!(
            "Record {id} is deleted; the audit log keeps its tombstone."
        ))
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct TransferForm {
    csrf: String,
    to_school: String,
    method: String,
    sent: String,
}

/// The DSL records that a leaver's file went to their new school.
pub(super) async fn transfer(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<TransferForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid("The DSL sends a child's file on.".into()));
    }
    c.store
        .record_transfer(
            SCHOOL,
            person,
            &f.to_school,
            &f.method,
            local_ms("When it was sent", &f.sent)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!("/records/people/{person}")).into_response())
}

#[derive(Deserialize)]
pub struct ReceiptForm {
    csrf: String,
    from: String,
    at: String,
}

/// The DSL records the new school's receipt, which stops the transfer clock.
pub(super) async fn receipt(
    State(c): State<Console>,
    s: Signed,
    Path((person, transfer)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<ReceiptForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid("The DSL records the receipt.".into()));
    }
    if !c
        .store
        .transfers_of(SCHOOL, person)
        .await?
        .iter()
        .any(|t| t.id == transfer)
    {
        return Err(Denied::NotFound);
    }
    c.store
        .confirm_receipt(
            SCHOOL,
            transfer,
            &f.from,
            local_ms("When it was received", &f.at)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!("/records/people/{person}")).into_response())
}

#[derive(Deserialize)]
pub struct OutcomeForm {
    csrf: String,
    outcome: String,
}

pub(super) async fn referral_outcome(
    State(c): State<Console>,
    s: Signed,
    Path((id, referral)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<OutcomeForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    if !c
        .store
        .referrals(SCHOOL, id)
        .await?
        .iter()
        .any(|r| r.id == referral)
    {
        return Err(Denied::NotFound);
    }
    c.store
        .record_referral_outcome(SCHOOL, referral, &f.outcome, &actor(&s))
        .await?;
    Ok(back(id, "The referral's outcome is recorded."))
}

#[derive(Deserialize)]
pub struct AssignForm {
    csrf: String,
    #[serde(default)]
    holder: String,
}

/// The DSL gives a pupil's case to a deputy (or takes it back).
pub(super) async fn record_assign(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<AssignForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    if !reader(&s).dsl {
        return Err(Denied::Invalid(
            "Only the DSL gives a case to someone.".into(),
        ));
    }
    let holder = match f.holder.trim() {
        "" => None,
        h => {
            let h: i64 = h
                .parse()
                .map_err(|_| Denied::Invalid("Choose who holds the case.".into()))?;
            if !c
                .store
                .roles(h)
                .await?
                .iter()
                .any(|r| matches!(r, Role::DeputyDsl | Role::Dsl | Role::Headteacher))
            {
                return Err(Denied::Invalid(
                    "A case goes to a deputy DSL, the DSL or the headteacher.".into(),
                ));
            }
            Some(h)
        }
    };
    c.store.assign_case(SCHOOL, id, holder, &actor(&s)).await?;
    Ok(back(id, "The case's holder is changed."))
}

#[derive(Deserialize)]
pub struct EntryForm {
    csrf: String,
    kind: String,
    at: String,
    #[serde(default)]
    child: String,
    text: String,
    #[serde(default)]
    rationale: String,
}

pub(super) async fn record_entry(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<EntryForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let kind: EntryKind = f
        .kind
        .parse()
        .map_err(|e: haven_records::WordError| Denied::Invalid(e.to_string()))?;
    let person = match f.child.trim() {
        "" => None,
        p => Some(
            p.parse()
                .map_err(|_| Denied::Invalid(format!("{:?} is not a child.", clip(p))))?,
        ),
    };
    c.store
        .add_entry(
            &NewEntry {
                school: SCHOOL,
                record: id,
                person,
                at_ms: local_ms("When it happened", &f.at)?,
                kind,
                text: f.text,
                rationale: Some(f.rationale),
            },
            &actor(&s),
        )
        .await?;
    Ok(back(id, "Entry added to the chronology."))
}

#[derive(Deserialize)]
pub struct CorrectForm {
    csrf: String,
    text: String,
    reason: String,
}

pub(super) async fn record_correct(
    State(c): State<Console>,
    s: Signed,
    Path((id, entry)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<CorrectForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let belongs = c
        .store
        .record_entries(SCHOOL, id)
        .await?
        .iter()
        .any(|e| e.id == entry);
    if !belongs {
        return Err(Denied::NotFound);
    }
    c.store
        .correct_entry(SCHOOL, entry, &f.text, &f.reason, &actor(&s))
        .await?;
    Ok(back(
        id,
        &format!("Entry {entry} corrected; the original is kept."),
    ))
}

#[derive(Deserialize)]
pub struct CloseForm {
    csrf: String,
    outcome: String,
    #[serde(default)]
    debrief: String,
}

pub(super) async fn record_close(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<CloseForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    c.store
        .close_record(SCHOOL, id, &f.outcome, &f.debrief, &actor(&s))
        .await?;
    Ok(back(id, "The case is closed."))
}

/// The headteacher (or chair) shares an allegation with the DSL.
pub(super) async fn record_share(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(_f): SessionForm<super::CsrfForm>,
) -> Result<Response, Denied> {
    let r = writable(&c, &s, id).await?;
    let me = reader(&s);
    let owner = (r.kind == RecordKind::Staff && me.headteacher)
        || (r.kind == RecordKind::Headteacher && me.chair);
    if !owner {
        return Err(Denied::Invalid(
            "Only the headteacher shares an allegation about staff, and only the chair one about the headteacher."
                .into(),
        ));
    }
    c.store.share_with_dsl(SCHOOL, id, &actor(&s)).await?;
    Ok(back(id, "Shared with the DSL."))
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

#[derive(Deserialize)]
pub struct ToldForm {
    csrf: String,
    staff: String,
    child: String,
    told_at: String,
}

/// The DSL (or a deputy) notes a concern told in person: its teller must write it up today.
pub(super) async fn told_in_person(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<ToldForm>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.deputy) {
        return Err(Denied::Invalid(
            "The DSL or a deputy notes what they were told.".into(),
        ));
    }
    let id = |t: &str, what: &str| {
        t.trim()
            .parse::<i64>()
            .map_err(|_| Denied::Invalid(format!("Choose the {what}.")))
    };
    c.store
        .note_told_in_person(
            SCHOOL,
            id(&f.staff, "member of staff")?,
            id(&f.child, "child")?,
            local_ms("When they told you", &f.told_at)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/records?done={}",
        url_encode("Noted: they will see it on My concerns, to write up by the end of the day.")
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct CategoryForm {
    csrf: String,
    name: String,
}

/// The DSL adds a category of the school's own (it follows the general procedure).
pub(super) async fn add_category(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<CategoryForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid(
            "Only the DSL adds the school's own categories.".into(),
        ));
    }
    let id = c
        .store
        .add_school_category(SCHOOL, &f.name, &actor(&s))
        .await?;
    Ok(Redirect::to(&format!(
        "/records?done={}",
        url_encode(&format!(
            "The category {:?} is added ({id}).",
            f.name.trim()
        ))
    ))
    .into_response())
}

// ---------------------------------------------------------------------------------------
// Sealed evidence

/// Adds files to a record (sealed at once).
pub(super) async fn record_evidence_add(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    f: crate::web::SessionMultipart,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let possible_nude = f.field("possible_nude") == "yes";
    let files: Vec<_> = f.files.iter().filter(|u| u.field == "attachment").collect();
    if files.is_empty() {
        return Err(Denied::Invalid("Choose a file to add.".into()));
    }
    // Every file is checked and sealed before any is kept.
    let mut sealed = Vec::new();
    for u in &files {
        sealed.push(seal_upload(&c, u, possible_nude).await?);
    }
    for e in &sealed {
        c.store.add_evidence(SCHOOL, id, e, &actor(&s)).await?;
    }
    Ok(back(
        id,
        &format!("{} file(s) added and sealed.", sealed.len()),
    ))
}

async fn evidence_for(
    c: &Console,
    s: &Signed,
    record: i64,
    eid: i64,
) -> Result<(haven_store::evidence::Evidence, Vec<u8>), Denied> {
    let r = c
        .store
        .record(SCHOOL, record)
        .await?
        .ok_or(Denied::NotFound)?;
    if access(reader(s), r.access_view()) != Access::Full {
        return Err(Denied::NotFound);
    }
    let (e, sealed) = c
        .store
        .evidence_sealed(SCHOOL, eid)
        .await?
        .filter(|(e, _)| e.record == record)
        .ok_or(Denied::NotFound)?;
    Ok((e, sealed))
}

fn open_seal(
    c: &Console,
    e: &haven_store::evidence::Evidence,
    sealed: &[u8],
) -> Result<Vec<u8>, Denied> {
    Ok(c.vault()?.open_sealed(
        SCHOOL,
        &haven_store::evidence::seal_context(SCHOOL, &e.sha256),
        sealed,
    )?)
}

/// Downloads a file, opened from its seal: always as a download (never shown in the page),
/// and never a file marked as a possible nude image.
pub(super) async fn evidence_download(
    State(c): State<Console>,
    s: Signed,
    Path((id, eid)): Path<(i64, i64)>,
) -> Result<Response, Denied> {
    let (e, sealed) = evidence_for(&c, &s, id, eid).await?;
    if e.possible_nude {
        return Err(Denied::Invalid(
            "This file is marked as a possible nude image: it is never downloaded. The DSL or a deputy may view it, as a last resort, with a justification."
                .into(),
        ));
    }
    let bytes = open_seal(&c, &e, &sealed)?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::OpenEvidence,
                Subject::Evidence(eid),
            )
            .count("record", id),
        )
        .await?;
    let ascii: String = e
        .name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || matches!(ch, '.' | '-' | '_') {
                ch
            } else {
                '_'
            }
        })
        .collect();
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{ascii}\""),
            ),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct ViewForm {
    csrf: String,
    #[serde(default)]
    justification: String,
    #[serde(default)]
    clear: String,
}

#[derive(Template)]
#[template(path = "evidence_view.html")]
struct EvidenceView {
    l: Layout,
    record: i64,
    e: haven_store::evidence::Evidence,
    data_uri: String,
    clear: bool,
    justification: String,
}

/// A possible nude image, opened by the DSL or a deputy with a typed justification: blurred
/// first, clearly only on a second, separate request; each audited.
pub(super) async fn evidence_view(
    State(c): State<Console>,
    s: Signed,
    Path((id, eid)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<ViewForm>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.deputy) {
        return Err(Denied::Invalid(
            "Only the DSL or a deputy may view a possible nude image.".into(),
        ));
    }
    let (e, sealed) = evidence_for(&c, &s, id, eid).await?;
    if !e.possible_nude || !haven_records::evidence::is_image(&e.media_type) {
        return Err(Denied::NotFound);
    }
    if f.justification.trim().chars().count() < 20 {
        return Err(Denied::Invalid(
            "Write the justification for viewing this image (why it must be seen, as a last resort): it is kept with the record."
                .into(),
        ));
    }
    let clear = f.clear == "yes";
    let bytes = open_seal(&c, &e, &sealed)?;
    // The justification is kept in the record (the audit log holds no text).
    if !clear {
        c.store
            .add_entry(
                &NewEntry {
                    school: SCHOOL,
                    record: id,
                    person: None,
                    at_ms: i64::try_from(haven_runtime::clock::now_ms()).unwrap_or(i64::MAX),
                    kind: EntryKind::Decision,
                    text: format!(
                        "Evidence {eid} (a possible nude image) viewed by {}",
                        s.who.display_name
                    ),
                    rationale: Some(f.justification.clone()),
                },
                &actor(&s),
            )
            .await?;
    }
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ViewPossibleNude,
                Subject::Evidence(eid),
            )
            .count("record", id)
            .word("shown", if clear { "clearly" } else { "blurred" }),
        )
        .await?;
    use base64::Engine as _;
    Ok(html(&EvidenceView {
        l: c.layout("A possible nude image", Some(&s)),
        record: id,
        data_uri: format!(
            "data:{};base64,{}",
            e.media_type,
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        ),
        e,
        clear,
        justification: f.justification,
    }))
}

// ---------------------------------------------------------------------------------------
// A child's chronology

#[derive(Template)]
#[template(path = "chronology.html")]
struct ChronologyPage {
    l: Layout,
    name: String,
    year: String,
    class: String,
    person: i64,
    records: Vec<(i64, String, String, String, bool)>,
    entries: Vec<EntryRow>,
    siblings: usize,
    /// (id, to, how, sent, receipt).
    transfers: Vec<(i64, String, String, String, Option<String>)>,
    now: String,
}

/// What the chronology holds that the reader may see in full, or why not.
async fn chronology_access(c: &Console, s: &Signed, person: i64) -> Result<Access, Denied> {
    let me = reader(s);
    let records = c.store.records_of_child(SCHOOL, person).await?;
    let mut worst = Access::Full;
    for r in &records {
        match access(me, r.access_view()) {
            Access::Full => {}
            Access::BreakGlass => worst = Access::BreakGlass,
            Access::Authored | Access::None => return Ok(Access::None),
        }
    }
    if !(me.dsl || me.deputy || me.headteacher) {
        return Ok(Access::None);
    }
    Ok(worst)
}

pub(super) async fn chronology(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    match chronology_access(&c, &s, person).await? {
        Access::Full => render_chronology(&c, &s, person).await,
        Access::BreakGlass => Ok(html(&BreakGlassPage {
            l: c.layout("Not one of your cases", Some(&s)),
            action: format!("/records/people/{person}/open"),
            what: "this child's chronology".into(),
        })),
        Access::Authored | Access::None => Err(Denied::NotFound),
    }
}

pub(super) async fn chronology_open(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<ReasonForm>,
) -> Result<Response, Denied> {
    match chronology_access(&c, &s, person).await? {
        Access::Full => {}
        Access::BreakGlass => {
            reason_given(&f.reason)?;
            c.store
                .break_glass(SCHOOL, None, Some(person), &f.reason, &actor(&s))
                .await?;
        }
        Access::Authored | Access::None => return Err(Denied::NotFound),
    }
    render_chronology(&c, &s, person).await
}

async fn render_chronology(c: &Console, s: &Signed, person: i64) -> Result<Response, Denied> {
    let p = c.store.person(person).await?.ok_or(Denied::NotFound)?;
    if p.kind != "pupil" {
        return Err(Denied::NotFound);
    }
    let records = c.store.records_of_child(SCHOOL, person).await?;
    let mut children: Vec<rec::NamedChild> = Vec::new();
    for r in &records {
        children.extend(r.children.iter().filter(|ch| ch.person == person).cloned());
    }
    let entries = entry_rows(c.store.chronology(SCHOOL, person).await?, &children);
    audit(c, s, AuditKind::ReadChronology, Subject::Person(person)).await?;
    Ok(html(&ChronologyPage {
        l: c.layout(
            &format!("Chronology: {} {}", p.first_name, p.last_name),
            Some(s),
        ),
        name: format!("{} {}", p.first_name, p.last_name),
        year: haven_store::people::year_label(p.year_group.as_deref()),
        class: p.class.unwrap_or_default(),
        person,
        records: records
            .iter()
            .map(|r| {
                let part = r
                    .children
                    .iter()
                    .find(|ch| ch.person == person)
                    .map_or("", |ch| ch.part.label());
                (
                    r.id,
                    when(r.happened_at_ms),
                    r.category_name().to_owned(),
                    part.to_owned(),
                    r.open,
                )
            })
            .collect(),
        entries,
        siblings: c.store.siblings(person).await?.len(),
        transfers: c
            .store
            .transfers_of(SCHOOL, person)
            .await?
            .into_iter()
            .map(|t| {
                (
                    t.id,
                    t.to_school,
                    t.method,
                    when(t.sent_at_ms),
                    t.receipt.map(|(at, from)| format!("{} ({from})", when(at))),
                )
            })
            .collect(),
        now: now_local_input(),
    }))
}

#[derive(Template)]
#[template(path = "family.html")]
struct FamilyPage {
    l: Layout,
    children: Vec<(i64, String, String, String)>,
    /// (child or children, the entry).
    entries: Vec<(String, EntryRow)>,
}

/// A child's chronology combined with their siblings' (pupils who share a parent or carer), in
/// the order things happened, each entry saying whose it is; only when the reader may see every
/// one of them in full.
pub(super) async fn family(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    if chronology_access(&c, &s, person).await? == Access::None {
        return Err(Denied::NotFound);
    }
    let mut people = vec![person];
    people.extend(c.store.siblings(person).await?);
    let mut children = Vec::new();
    let mut rows: Vec<(i64, i64, Vec<String>, rec::Entry)> = Vec::new();
    for &p in &people {
        if chronology_access(&c, &s, p).await? != Access::Full {
            return Err(Denied::Invalid(
                "The combined view shows only children whose records you may see in full: open each child's chronology first."
                    .into(),
            ));
        }
        let who = c.store.person(p).await?.ok_or(Denied::NotFound)?;
        let name = format!("{} {}", who.first_name, who.last_name);
        children.push((
            p,
            name.clone(),
            haven_store::people::year_label(who.year_group.as_deref()),
            who.class.unwrap_or_default(),
        ));
        for e in c.store.chronology(SCHOOL, p).await? {
            match rows.iter_mut().find(|r| r.3.id == e.id) {
                Some(r) => r.2.push(name.clone()),
                None => rows.push((e.at_ms, e.id, vec![name.clone()], e)),
            }
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    for &p in &people {
        c.store
            .audit(
                &AuditEntry::new(
                    &s.who.username,
                    &s.address,
                    AuditKind::ReadChronology,
                    Subject::Person(p),
                )
                .word("view", "family"),
            )
            .await?;
    }
    let entries = rows
        .into_iter()
        .map(|(_, _, names, e)| {
            let row = entry_rows(vec![e], &[]).pop();
            (names.join(", "), row)
        })
        .filter_map(|(n, r)| r.map(|r| (n, r)))
        .collect();
    Ok(html(&FamilyPage {
        l: c.layout("Chronology with siblings", Some(&s)),
        children,
        entries,
    }))
}

crate::web::csrf_field!(
    TransferForm,
    ReceiptForm,
    HoldForm,
    DeleteForm,
    OutcomeForm,
    AssignForm,
    ToldForm,
    CategoryForm,
    ViewForm,
    ReasonForm,
    StepForm,
    ReferralForm,
    EntryForm,
    CorrectForm,
    CloseForm
);

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
