//! The registers in the console: pupils' image consent and "can I use this photo?" (the office,
//! the DPO, the headteacher, the DSL team), the data-breach log with its 72-hour clock (the
//! DPO and the headteacher), and the staff training register (the DSL, the headteacher, the
//! office). The rules are `haven_registers`'; every read and write is audited by id.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use haven_registers::consent::{may_use, Answer};
use haven_registers::training::{self, Standing};
use haven_registers::{breach, Course, Purpose, Risk};
use haven_store::audit::{AuditKind, Subject};
use haven_store::records::DEFAULT_SCHOOL as SCHOOL;
use haven_store::registers::{BreachStep, NewBreach};
use serde::Deserialize;

use super::records::{actor, audit, local_ms};
use super::{url_encode, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;

/// A register's word (a purpose, a course, an audience, a risk) from a form.
fn word<T: std::str::FromStr<Err = haven_registers::WordError>>(text: &str) -> Result<T, Denied> {
    text.parse()
        .map_err(|e: haven_registers::WordError| Denied::Invalid(format!("{e}.")))
}

fn today() -> jiff::civil::Date {
    haven_runtime::clock::local().date()
}

/// A CSV cell: quoted when needed; a leading formula character defused for spreadsheets.
fn cell(s: &str) -> String {
    haven_records::report::csv_field(s)
}

fn csv(name: &str, rows: Vec<Vec<String>>) -> Response {
    let mut out = String::new();
    for r in rows {
        out.push_str(&r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        out,
    )
        .into_response()
}

fn answer_words(a: &Answer) -> (bool, String) {
    match a {
        Answer::Yes { at_ms, by } => (true, format!("given by {by} ({})", when(*at_ms))),
        Answer::Refused {
            at_ms,
            by,
            withdrawn: true,
        } => (false, format!("withdrawn by {by} ({})", when(*at_ms))),
        Answer::Refused { at_ms, by, .. } => (false, format!("refused by {by} ({})", when(*at_ms))),
        Answer::NotAsked => (false, "nobody has given consent for this".into()),
    }
}

// ---- Image consent -------------------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConsentQuery {
    q: String,
    purpose: String,
    pupils: String,
    done: String,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage {
    l: Layout,
    message: String,
    q: String,
    /// (id, name, year, class).
    found: Vec<(i64, String, String, String)>,
    purposes: Vec<(&'static str, &'static str)>,
    purpose: String,
    pupils: String,
    /// (name, yes, why).
    check: Vec<(String, bool, String)>,
    /// Some pupil in the photo may not appear.
    any_no: bool,
    checked_purpose: String,
}

/// The consent register: find a pupil, or check a photo's pupils for a purpose.
pub(super) async fn consent(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<ConsentQuery>,
) -> Result<Response, Denied> {
    let mut found = Vec::new();
    if !q.q.trim().is_empty() {
        for p in c.store.find_people(q.q.trim(), 30).await? {
            if p.kind == "pupil" && p.active {
                found.push((
                    p.id,
                    format!("{} {}", p.first_name, p.last_name),
                    haven_store::people::year_label(p.year_group.as_deref()),
                    p.class.unwrap_or_default(),
                ));
            }
        }
        audit(
            &c,
            &s,
            AuditKind::SearchPeople,
            Subject::Register("consent"),
        )
        .await?;
    }
    let mut check = Vec::new();
    let mut checked_purpose = String::new();
    if !q.purpose.is_empty() {
        let purpose: Purpose = word(&q.purpose)?;
        checked_purpose = purpose.label().to_owned();
        let names: Vec<&str> = q
            .pupils
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .take(60)
            .collect();
        if names.is_empty() {
            return Err(Denied::Invalid(
                "Name the pupils in the photo, one a line.".into(),
            ));
        }
        for name in names {
            let matches: Vec<_> = c
                .store
                .find_people(name, 5)
                .await?
                .into_iter()
                .filter(|p| p.kind == "pupil" && p.active)
                .collect();
            match matches.as_slice() {
                [p] => {
                    let history: Vec<_> = c
                        .store
                        .consents_of(SCHOOL, p.id)
                        .await?
                        .into_iter()
                        .map(|r| r.decision)
                        .collect();
                    let (yes, why) = answer_words(&may_use(&history, purpose));
                    check.push((format!("{} {}", p.first_name, p.last_name), yes, why));
                    audit(&c, &s, AuditKind::ReadConsents, Subject::Person(p.id)).await?;
                }
                [] => check.push((name.to_owned(), false, "no pupil here has that name".into())),
                _ => check.push((
                    name.to_owned(),
                    false,
                    format!("{} pupils match: give the full name", matches.len()),
                )),
            }
        }
    }
    Ok(html(&ConsentPage {
        l: c.layout("Image consent", Some(&s)),
        message: q.done,
        q: q.q,
        found,
        purposes: Purpose::ALL
            .iter()
            .map(|p| (p.as_str(), p.label()))
            .collect(),
        purpose: q.purpose,
        pupils: q.pupils,
        any_no: check.iter().any(|c| !c.1),
        check,
        checked_purpose,
    }))
}

#[derive(Template)]
#[template(path = "consent_pupil.html")]
struct ConsentPupilPage {
    l: Layout,
    message: String,
    id: i64,
    name: String,
    year: String,
    class: String,
    /// (purpose id, label, yes, why).
    now: Vec<(&'static str, &'static str, bool, String)>,
    /// (when, purpose, decision, by, note, recorded by).
    history: Vec<(String, &'static str, &'static str, String, String, String)>,
}

/// One pupil's consent: each purpose's answer now, and every decision.
pub(super) async fn consent_pupil(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let p = c
        .store
        .person(id)
        .await?
        .filter(|p| p.kind == "pupil")
        .ok_or(Denied::NotFound)?;
    let rows = c.store.consents_of(SCHOOL, id).await?;
    audit(&c, &s, AuditKind::ReadConsents, Subject::Person(id)).await?;
    let decisions: Vec<_> = rows.iter().map(|r| r.decision.clone()).collect();
    Ok(html(&ConsentPupilPage {
        l: c.layout("Image consent", Some(&s)),
        message: flash.done,
        id,
        name: format!("{} {}", p.first_name, p.last_name),
        year: haven_store::people::year_label(p.year_group.as_deref()),
        class: p.class.unwrap_or_default(),
        now: Purpose::ALL
            .iter()
            .map(|purpose| {
                let (yes, why) = answer_words(&may_use(&decisions, *purpose));
                (purpose.as_str(), purpose.label(), yes, why)
            })
            .collect(),
        history: rows
            .into_iter()
            .rev()
            .map(|r| {
                (
                    when(r.decision.at_ms),
                    r.decision.purpose.label(),
                    if r.decision.given {
                        "given"
                    } else {
                        "refused or withdrawn"
                    },
                    r.decision.by,
                    r.note,
                    r.recorded_by,
                )
            })
            .collect(),
    }))
}

#[derive(Deserialize)]
pub struct ConsentForm {
    csrf: String,
    purpose: String,
    decision: String,
    decided_by: String,
    #[serde(default)]
    note: String,
}

/// Records a decision for one purpose (a withdrawal counts at once).
pub(super) async fn consent_record(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<ConsentForm>,
) -> Result<Response, Denied> {
    let purpose: Purpose = word(&f.purpose)?;
    let given = crate::web::decision(&f.decision, "given", "withdrawn")?;
    c.store
        .record_consent(
            SCHOOL,
            id,
            purpose,
            given,
            &f.decided_by,
            &f.note,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/consent/{id}?done={}",
        url_encode(&format!(
            "Recorded: {} {}.",
            purpose.label(),
            if given {
                "given"
            } else {
                "refused or withdrawn"
            }
        ))
    ))
    .into_response())
}

/// Every pupil's answer for every purpose, as CSV.
pub(super) async fn consent_csv(State(c): State<Console>, s: Signed) -> Result<Response, Denied> {
    let all = c.store.all_consents(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadConsents,
        Subject::Register("consent"),
    )
    .await?;
    let mut rows = vec![{
        let mut h = vec!["pupil".to_owned(), "year".to_owned(), "class".to_owned()];
        h.extend(Purpose::ALL.iter().map(|p| p.as_str().to_owned()));
        h
    }];
    for p in c.store.find_people("", 100_000).await? {
        if p.kind != "pupil" || !p.active {
            continue;
        }
        let decisions = all.get(&p.id).cloned().unwrap_or_default();
        let mut row = vec![
            format!("{} {}", p.first_name, p.last_name),
            haven_store::people::year_label(p.year_group.as_deref()),
            p.class.clone().unwrap_or_default(),
        ];
        row.extend(Purpose::ALL.iter().map(|purpose| {
            match may_use(&decisions, *purpose) {
                Answer::Yes { .. } => "yes",
                Answer::Refused {
                    withdrawn: true, ..
                } => "withdrawn",
                Answer::Refused { .. } => "refused",
                Answer::NotAsked => "not asked",
            }
            .to_owned()
        }));
        rows.push(row);
    }
    Ok(csv("image-consent.csv", rows))
}

// ---- The data-breach log --------------------------------------------------------------------

struct BreachRow {
    id: i64,
    title: String,
    what: String,
    discovered: String,
    data: String,
    people: i64,
    risk: &'static str,
    clock: &'static str,
    clock_words: String,
    decision: String,
    reported: String,
    actions: String,
    signed: String,
    open: bool,
    decided: bool,
    reportable: bool,
}

#[derive(Template)]
#[template(path = "breaches.html")]
struct BreachesPage {
    l: Layout,
    message: String,
    now: String,
    risks: Vec<(&'static str, &'static str)>,
    breaches: Vec<BreachRow>,
}

/// The breach log: each entry with its clock, and the forms for its next step.
pub(super) async fn breaches(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let now = haven_store::now_ms();
    let list = c.store.breaches(SCHOOL).await?;
    audit(&c, &s, AuditKind::ReadBreaches, Subject::Register("breach")).await?;
    let breaches = list
        .into_iter()
        .map(|b| {
            let clock = breach::clock(
                b.discovered_at_ms,
                now,
                b.reportable,
                b.reported.as_ref().map(|r| r.0),
            );
            BreachRow {
                id: b.id,
                title: b.title,
                what: b.what,
                discovered: when(b.discovered_at_ms),
                data: b.data_involved,
                people: b.people_affected,
                risk: b.risk.label(),
                clock: clock.as_str(),
                clock_words: clock.describe(),
                decision: match (b.reportable, &b.decision_reason) {
                    (None, _) => String::new(),
                    (Some(r), why) => format!(
                        "{}: {}",
                        if r { "Reportable" } else { "Not reportable" },
                        why.as_deref().unwrap_or("")
                    ),
                },
                reported: b
                    .reported
                    .as_ref()
                    .map(|(at, reference)| format!("{} (ICO reference {reference})", when(*at)))
                    .unwrap_or_default(),
                actions: b.actions,
                signed: b
                    .signed_off
                    .as_ref()
                    .map(|(who, at)| format!("{who}, {}", when(*at)))
                    .unwrap_or_default(),
                open: b.signed_off.is_none(),
                decided: b.reportable.is_some(),
                reportable: b.reportable == Some(true) && b.reported.is_none(),
            }
        })
        .collect();
    Ok(html(&BreachesPage {
        l: c.layout("Data-breach log", Some(&s)),
        message: flash.done,
        now: haven_runtime::clock::local()
            .strftime("%Y-%m-%dT%H:%M")
            .to_string(),
        risks: Risk::ALL.iter().map(|r| (r.as_str(), r.label())).collect(),
        breaches,
    }))
}

#[derive(Deserialize)]
pub struct NewBreachForm {
    csrf: String,
    title: String,
    what: String,
    discovered: String,
    data: String,
    people: String,
    risk: String,
}

/// Logs a breach: its clock starts from when it was discovered.
pub(super) async fn breach_new(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<NewBreachForm>,
) -> Result<Response, Denied> {
    let risk: Risk = word(&f.risk)?;
    let people: i64 = f.people.trim().parse().map_err(|_| {
        Denied::Invalid("How many people: a whole number (0 if none is known yet).".into())
    })?;
    let id = c
        .store
        .log_breach(
            &NewBreach {
                school: SCHOOL,
                title: f.title,
                what: f.what,
                discovered_at_ms: local_ms("When it was discovered", &f.discovered)?,
                data_involved: f.data,
                people_affected: people,
                risk,
            },
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/breaches?done={}#breach-{id}",
        url_encode(&format!(
            "Breach {id} logged; its 72-hour clock is running."
        ))
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct BreachStepForm {
    csrf: String,
    step: String,
    #[serde(default)]
    reportable: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    at: String,
}

/// The next step of a breach: the decision, the report, an action, the sign-off.
pub(super) async fn breach_step(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<BreachStepForm>,
) -> Result<Response, Denied> {
    let step = match f.step.as_str() {
        "decide" => BreachStep::Decide {
            reportable: crate::web::decision(&f.reportable, "yes", "no")?,
            reason: f.text,
        },
        "reported" => BreachStep::Reported {
            at_ms: local_ms("When it was reported", &f.at)?,
            reference: f.text,
        },
        "action" => BreachStep::Action(f.text),
        "sign-off" => {
            if !s.who.roles.contains(&haven_store::accounts::Role::Dpo) {
                return Err(Denied::Invalid("The DPO signs a breach off.".into()));
            }
            BreachStep::SignOff
        }
        _ => return Err(Denied::Invalid("That is not a step of a breach.".into())),
    };
    c.store.breach_step(SCHOOL, id, &step, &actor(&s)).await?;
    Ok(Redirect::to(&format!(
        "/registers/breaches?done={}#breach-{id}",
        url_encode(&format!("Breach {id}: recorded."))
    ))
    .into_response())
}

/// The breach log as CSV.
pub(super) async fn breaches_csv(State(c): State<Console>, s: Signed) -> Result<Response, Denied> {
    let now = haven_store::now_ms();
    let list = c.store.breaches(SCHOOL).await?;
    audit(&c, &s, AuditKind::ReadBreaches, Subject::Register("breach")).await?;
    let mut rows = vec![[
        "id",
        "title",
        "discovered",
        "data involved",
        "people",
        "risk",
        "reportable",
        "decision reason",
        "reported",
        "ICO reference",
        "clock",
        "actions",
        "signed off",
    ]
    .map(str::to_owned)
    .to_vec()];
    for b in list {
        let clock = breach::clock(
            b.discovered_at_ms,
            now,
            b.reportable,
            b.reported.as_ref().map(|r| r.0),
        );
        rows.push(vec![
            b.id.to_string(),
            b.title,
            when(b.discovered_at_ms),
            b.data_involved,
            b.people_affected.to_string(),
            b.risk.as_str().to_owned(),
            b.reportable
                .map_or("undecided", |r| if r { "yes" } else { "no" })
                .to_owned(),
            b.decision_reason.unwrap_or_default(),
            b.reported.as_ref().map(|r| when(r.0)).unwrap_or_default(),
            b.reported.map(|r| r.1).unwrap_or_default(),
            clock.describe(),
            b.actions,
            b.signed_off
                .map(|(w, at)| format!("{w}, {}", when(at)))
                .unwrap_or_default(),
        ]);
    }
    Ok(csv("data-breach-log.csv", rows))
}

// ---- Staff training -------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "training.html")]
struct TrainingPage {
    l: Layout,
    message: String,
    courses: Vec<(&'static str, &'static str)>,
    /// (name, cells: (standing word, text)).
    staff: Vec<(String, Vec<(&'static str, String)>)>,
    /// (id, name) for the form.
    people: Vec<(i64, String)>,
    overdue: usize,
    today: String,
}

fn training_rows(
    list: &[haven_store::registers::StaffTraining],
    today: jiff::civil::Date,
) -> Vec<(String, Vec<(Standing, String)>)> {
    list.iter()
        .map(|st| {
            let cells = Course::ALL
                .iter()
                .map(|course| {
                    if *course == Course::Dsl && !st.dsl {
                        return (Standing::Current, "n/a".to_owned());
                    }
                    let latest = st
                        .latest
                        .iter()
                        .filter(|(c, _)| c == course)
                        .map(|(_, d)| *d)
                        .max();
                    let standing = training::standing(today, *course, latest);
                    let words = match (latest, training::expires(*course, latest.unwrap_or(today)))
                    {
                        (None, _) => "never".to_owned(),
                        (Some(d), None) => format!("{d}"),
                        (Some(d), Some(end)) => format!("{d} (until {end})"),
                    };
                    (standing, words)
                })
                .collect();
            (st.name.clone(), cells)
        })
        .collect()
}

/// The training register: every member of staff by course, overdue and missing first.
pub(super) async fn training(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let today = today();
    let list = c.store.training(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadTraining,
        Subject::Register("training"),
    )
    .await?;
    let mut rows = training_rows(&list, today);
    rows.sort_by_key(|(name, cells)| {
        (
            cells.iter().map(|c| c.0).min().unwrap_or(Standing::Current),
            name.clone(),
        )
    });
    let overdue = rows
        .iter()
        .filter(|(_, cells)| {
            cells
                .iter()
                .any(|c| matches!(c.0, Standing::Missing | Standing::Overdue))
        })
        .count();
    Ok(html(&TrainingPage {
        l: c.layout("Staff training", Some(&s)),
        message: flash.done,
        courses: Course::ALL
            .iter()
            .map(|c| (c.as_str(), c.label()))
            .collect(),
        staff: rows
            .into_iter()
            .map(|(n, cells)| {
                (
                    n,
                    cells.into_iter().map(|(st, w)| (st.as_str(), w)).collect(),
                )
            })
            .collect(),
        people: list.iter().map(|p| (p.person, p.name.clone())).collect(),
        overdue,
        today: today.to_string(),
    }))
}

#[derive(Deserialize)]
pub struct TrainingForm {
    csrf: String,
    person: String,
    course: String,
    completed: String,
}

/// Records one completion.
pub(super) async fn training_add(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<TrainingForm>,
) -> Result<Response, Denied> {
    let course: Course = word(&f.course)?;
    let done = training::parse_date(&f.completed)
        .filter(|d| *d <= today())
        .ok_or_else(|| {
            Denied::Invalid("When it was completed: a date, not in the future.".into())
        })?;
    c.store
        .record_training(
            SCHOOL,
            &[(format!("id:{}", f.person.trim()), course, done)],
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/training?done={}",
        url_encode(&format!("Recorded: {} on {done}.", course.label()))
    ))
    .into_response())
}

/// Records completions from a CSV file (`Staff,Course,Completed`), all or none.
pub(super) async fn training_import(
    State(c): State<Console>,
    s: Signed,
    f: crate::web::SessionMultipart,
) -> Result<Response, Denied> {
    let file = f
        .files
        .iter()
        .find(|u| u.field == "file" && !u.bytes.is_empty())
        .ok_or_else(|| Denied::Invalid("Choose a CSV file.".into()))?;
    let rows = training::parse_csv(&file.bytes, today()).map_err(|errs| {
        Denied::Invalid(format!(
            "Nothing was recorded: {}.",
            errs.iter()
                .take(20)
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    let n = c
        .store
        .record_training(
            SCHOOL,
            &rows
                .into_iter()
                .map(|r| (r.who, r.course, r.completed))
                .collect::<Vec<_>>(),
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/training?done={}",
        url_encode(&format!("Recorded {n} completion(s)."))
    ))
    .into_response())
}

/// The training register as CSV.
pub(super) async fn training_csv(State(c): State<Console>, s: Signed) -> Result<Response, Denied> {
    let today = today();
    let list = c.store.training(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadTraining,
        Subject::Register("training"),
    )
    .await?;
    let mut rows = vec![{
        let mut h = vec!["staff".to_owned()];
        h.extend(Course::ALL.iter().map(|c| c.as_str().to_owned()));
        h
    }];
    for (name, cells) in training_rows(&list, today) {
        let mut row = vec![name];
        row.extend(
            cells
                .into_iter()
                .map(|(st, w)| format!("{} {w}", st.as_str())),
        );
        rows.push(row);
    }
    Ok(csv("staff-training.csv", rows))
}

// ---- Acceptable-use agreements ------------------------------------------------------------

use haven_registers::agreements;
use haven_registers::Audience;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AgreementQuery {
    audience: String,
    class: String,
    done: String,
}

struct AudienceRow {
    id: &'static str,
    label: &'static str,
    /// "Version 2, in force from 2026-09-01", or that none is published.
    in_force: String,
    /// The version in force's id, to sign.
    version_id: Option<i64>,
    /// A later version waiting for its date.
    next: String,
    signed: usize,
    due: usize,
}

struct DueRow {
    person: i64,
    name: String,
    class: String,
    standing: &'static str,
    standing_words: &'static str,
    version_id: i64,
    signer: String,
}

#[derive(Template)]
#[template(path = "agreements.html")]
struct AgreementsPage {
    l: Layout,
    message: String,
    today: String,
    audiences: Vec<AudienceRow>,
    /// (class, its agreement, due) for pupils.
    classes: Vec<(String, &'static str, usize)>,
    audience: String,
    class: String,
    due: Vec<DueRow>,
    /// (id, audience, version, effective, published by).
    versions: Vec<(i64, &'static str, u32, String, String)>,
}

/// The agreements: each audience's version in force, who has signed and who must, by class;
/// recording a signature; publishing a new version.
pub(super) async fn agreements(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<AgreementQuery>,
) -> Result<Response, Denied> {
    let today = today();
    let versions = c.store.agreement_versions(SCHOOL).await?;
    let signers = c.store.signers(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadAgreements,
        Subject::Register("agreements"),
    )
    .await?;
    let force = |a: Audience| {
        agreements::in_force(
            today,
            &versions
                .iter()
                .filter(|v| v.audience == a)
                .map(|v| (v.version, v.effective_on))
                .collect::<Vec<_>>(),
        )
    };
    let standing_of = |sg: &haven_store::registers::Signer| {
        force(sg.audience).map(|v| agreements::standing(today, v, sg.latest))
    };
    let audiences = Audience::ALL
        .iter()
        .map(|a| {
            let v = force(*a);
            let version = versions
                .iter()
                .find(|x| x.audience == *a && Some(x.version) == v);
            let next = versions
                .iter()
                .filter(|x| x.audience == *a && x.effective_on > today)
                .map(|x| format!("version {} from {}", x.version, x.effective_on))
                .collect::<Vec<_>>()
                .join(", ");
            let mine: Vec<_> = signers.iter().filter(|sg| sg.audience == *a).collect();
            let signed = mine
                .iter()
                .filter(|sg| standing_of(sg).is_some_and(|st| !st.due()))
                .count();
            // With no version in force nobody can sign yet: nobody is due.
            let due = if v.is_some() { mine.len() - signed } else { 0 };
            AudienceRow {
                id: a.as_str(),
                label: a.label(),
                in_force: version.map_or_else(
                    || "none published yet".to_owned(),
                    |x| format!("version {}, in force from {}", x.version, x.effective_on),
                ),
                version_id: version.map(|x| x.id),
                next,
                signed,
                due,
            }
        })
        .collect();
    let mut classes: std::collections::BTreeMap<(String, &'static str), usize> = Default::default();
    for sg in &signers {
        if matches!(
            sg.audience,
            Audience::EyfsKs1 | Audience::Ks2 | Audience::Ks3
        ) && standing_of(sg).is_some_and(|st| st.due())
        {
            *classes
                .entry((sg.class.clone(), sg.audience.as_str()))
                .or_default() += 1;
        }
    }
    let mut due = Vec::new();
    if !q.audience.is_empty() {
        let a: Audience = word(&q.audience)?;
        let version_id = versions
            .iter()
            .find(|x| x.audience == a && Some(x.version) == force(a))
            .map(|x| x.id);
        if let Some(version_id) = version_id {
            for sg in signers
                .iter()
                .filter(|sg| sg.audience == a && (q.class.is_empty() || sg.class == q.class))
            {
                let st = standing_of(sg).unwrap_or(agreements::Standing::Missing);
                if !st.due() {
                    continue;
                }
                due.push(DueRow {
                    person: sg.person,
                    name: sg.name.clone(),
                    class: sg.class.clone(),
                    standing: st.as_str(),
                    standing_words: st.label(),
                    version_id,
                    signer: if a.signed_by_parent() {
                        format!("parent or carer of {}", sg.name)
                    } else {
                        sg.name.clone()
                    },
                });
            }
        }
    }
    Ok(html(&AgreementsPage {
        l: c.layout("Acceptable-use agreements", Some(&s)),
        message: q.done,
        today: today.to_string(),
        audiences,
        classes: classes
            .into_iter()
            .map(|((class, audience), n)| (class, audience, n))
            .collect(),
        audience: q.audience,
        class: q.class,
        due,
        versions: versions
            .iter()
            .map(|v| {
                (
                    v.id,
                    v.audience.label(),
                    v.version,
                    v.effective_on.to_string(),
                    v.published.0.clone(),
                )
            })
            .collect(),
    }))
}

#[derive(Template)]
#[template(path = "agreement_version.html")]
struct AgreementVersionPage {
    l: Layout,
    audience: &'static str,
    version: u32,
    effective: String,
    body: String,
}

/// One version's text.
pub(super) async fn agreement_version(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    let v = c
        .store
        .agreement_versions(SCHOOL)
        .await?
        .into_iter()
        .find(|v| v.id == id)
        .ok_or(Denied::NotFound)?;
    Ok(html(&AgreementVersionPage {
        l: c.layout("Acceptable-use agreement", Some(&s)),
        audience: v.audience.label(),
        version: v.version,
        effective: v.effective_on.to_string(),
        body: v.body,
    }))
}

#[derive(Deserialize)]
pub struct PublishForm {
    csrf: String,
    audience: String,
    effective: String,
    body: String,
}

/// Publishes a new version: from its date everyone on an older one must sign again.
pub(super) async fn agreement_publish(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<PublishForm>,
) -> Result<Response, Denied> {
    let a: Audience = word(&f.audience)?;
    let from = training::parse_date(&f.effective)
        .ok_or_else(|| Denied::Invalid("In force from: a date.".into()))?;
    let v = c
        .store
        .publish_agreement(SCHOOL, a, from, &f.body, &actor(&s))
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/agreements?done={}",
        url_encode(&format!(
            "Published version {v} for {}, in force from {from}.",
            a.label()
        ))
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct SignatureForm {
    csrf: String,
    person: i64,
    version: i64,
    signed_on: String,
    how: String,
    signed_by: String,
    #[serde(default)]
    back: String,
}

/// Records a signature (on paper, entered by staff; or online).
pub(super) async fn agreement_sign(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<SignatureForm>,
) -> Result<Response, Denied> {
    let on = training::parse_date(&f.signed_on)
        .ok_or_else(|| Denied::Invalid("Signed on: a date.".into()))?;
    c.store
        .record_signature(
            &haven_store::registers::NewSignature {
                school: SCHOOL,
                person: f.person,
                version: f.version,
                signed_on: on,
                on_paper: crate::web::decision(&f.how, "paper", "online")?,
                signed_by: f.signed_by,
            },
            today(),
            &actor(&s),
        )
        .await?;
    let back = if f.back.starts_with("audience=") && !f.back.contains(['/', '\\', '#']) {
        format!("&{}", f.back)
    } else {
        String::new()
    };
    Ok(Redirect::to(&format!(
        "/registers/agreements?done={}{back}",
        url_encode("Signature recorded.")
    ))
    .into_response())
}

/// Everyone and their agreement, as CSV.
pub(super) async fn agreements_csv(
    State(c): State<Console>,
    s: Signed,
) -> Result<Response, Denied> {
    let today = today();
    let versions = c.store.agreement_versions(SCHOOL).await?;
    let signers = c.store.signers(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadAgreements,
        Subject::Register("agreements"),
    )
    .await?;
    let mut rows = vec![[
        "name",
        "class",
        "agreement",
        "standing",
        "version signed",
        "signed on",
    ]
    .map(str::to_owned)
    .to_vec()];
    for sg in signers {
        let v = agreements::in_force(
            today,
            &versions
                .iter()
                .filter(|x| x.audience == sg.audience)
                .map(|x| (x.version, x.effective_on))
                .collect::<Vec<_>>(),
        );
        rows.push(vec![
            sg.name,
            sg.class,
            sg.audience.as_str().to_owned(),
            v.map_or("no version published", |v| {
                agreements::standing(today, v, sg.latest).label()
            })
            .to_owned(),
            sg.latest.map(|l| l.0.to_string()).unwrap_or_default(),
            sg.latest.map(|l| l.1.to_string()).unwrap_or_default(),
        ]);
    }
    Ok(csv("acceptable-use-agreements.csv", rows))
}

// ---- Policy reviews -------------------------------------------------------------------------

struct PolicyRow {
    policy: String,
    reviewed: String,
    by: String,
    next: String,
    standing: &'static str,
    why_due: String,
    /// (review id) awaiting the chair's sign-off.
    unsigned: Option<i64>,
    signed: String,
}

#[derive(Template)]
#[template(path = "policy_reviews.html")]
struct PolicyReviewsPage {
    l: Layout,
    message: String,
    today: String,
    chair: bool,
    policies: Vec<PolicyRow>,
}

/// Each policy's latest review, when the next is due (or why it was brought forward), and the
/// chair's sign-off.
pub(super) async fn policy_reviews(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let today = today();
    let (reviews, triggers) = c.store.policy_reviews(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadPolicyReviews,
        Subject::Register("policy reviews"),
    )
    .await?;
    let mut seen = std::collections::HashSet::new();
    let mut policies = Vec::new();
    for r in &reviews {
        if !seen.insert(r.policy.clone()) {
            continue;
        }
        let reviewed_ms = r
            .reviewed_on
            .to_zoned(jiff::tz::TimeZone::system())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(0);
        let trigger = triggers
            .iter()
            .find(|t| t.policy == r.policy && t.at_ms >= reviewed_ms);
        let standing = match trigger {
            Some(_) => haven_registers::reviews::Standing::Overdue,
            None => haven_registers::reviews::standing(today, r.next_on),
        };
        policies.push(PolicyRow {
            policy: r.policy.clone(),
            reviewed: r.reviewed_on.to_string(),
            by: r.reviewed_by.clone(),
            next: r.next_on.to_string(),
            standing: standing.as_str(),
            why_due: trigger
                .map(|t| {
                    format!(
                        "brought forward by {} ({}): {}",
                        t.by,
                        when(t.at_ms),
                        t.reason
                    )
                })
                .unwrap_or_default(),
            unsigned: r.signed_off.is_none().then_some(r.id),
            signed: r
                .signed_off
                .as_ref()
                .map(|(w, at)| format!("{w}, {}", when(*at)))
                .unwrap_or_default(),
        });
    }
    policies.sort_by_key(|p| {
        (
            p.standing != "overdue",
            p.standing != "due-soon",
            p.policy.clone(),
        )
    });
    Ok(html(&PolicyReviewsPage {
        l: c.layout("Policy reviews", Some(&s)),
        message: flash.done,
        today: today.to_string(),
        chair: s.who.roles.contains(&haven_store::accounts::Role::Chair),
        policies,
    }))
}

#[derive(Deserialize)]
pub struct PolicyReviewForm {
    csrf: String,
    step: String,
    #[serde(default)]
    policy: String,
    #[serde(default)]
    reviewed_on: String,
    #[serde(default)]
    reviewed_by: String,
    #[serde(default)]
    next_on: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    review: i64,
}

/// Records a review, brings one forward, or (the chair) signs one off.
pub(super) async fn policy_review_step(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<PolicyReviewForm>,
) -> Result<Response, Denied> {
    let done = match f.step.as_str() {
        "review" => {
            let on = training::parse_date(&f.reviewed_on)
                .ok_or_else(|| Denied::Invalid("Reviewed on: a date.".into()))?;
            let next = match f.next_on.trim() {
                "" => None,
                t => Some(
                    training::parse_date(t)
                        .ok_or_else(|| Denied::Invalid("Next review: a date.".into()))?,
                ),
            };
            c.store
                .record_policy_review(
                    SCHOOL,
                    &f.policy,
                    on,
                    &f.reviewed_by,
                    next,
                    &f.text,
                    today(),
                    &actor(&s),
                )
                .await?;
            "Review recorded."
        }
        "forward" => {
            c.store
                .bring_review_forward(SCHOOL, &f.policy, &f.text, &actor(&s))
                .await?;
            "The review is due now."
        }
        "sign-off" => {
            if !s.who.roles.contains(&haven_store::accounts::Role::Chair) {
                return Err(Denied::Invalid(
                    "The chair of governors signs a review off.".into(),
                ));
            }
            c.store
                .sign_off_review(SCHOOL, f.review, &actor(&s))
                .await?;
            "Signed off."
        }
        _ => return Err(Denied::Invalid("That is not a step of a review.".into())),
    };
    Ok(Redirect::to(&format!("/registers/reviews?done={}", url_encode(done))).into_response())
}

// ---- Searches and confiscation --------------------------------------------------------------

#[derive(Template)]
#[template(path = "searches.html")]
struct SearchesPage {
    l: Layout,
    message: String,
    now: String,
    searches: Vec<haven_store::registers::Search>,
}

impl SearchesPage {
    fn at(&self, ms: &i64) -> String {
        when(*ms)
    }
}

/// The search and confiscation log.
pub(super) async fn searches(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let list = c.store.searches(SCHOOL).await?;
    audit(
        &c,
        &s,
        AuditKind::ReadSearches,
        Subject::Register("searches"),
    )
    .await?;
    Ok(html(&SearchesPage {
        l: c.layout("Searches and confiscation", Some(&s)),
        message: flash.done,
        now: haven_runtime::clock::local()
            .strftime("%Y-%m-%dT%H:%M")
            .to_string(),
        searches: list,
    }))
}

#[derive(Deserialize)]
pub struct SearchForm {
    csrf: String,
    pupil: String,
    at: String,
    device: String,
    reason: String,
    authorised_by: String,
    searched_by: String,
    witness: String,
    #[serde(default)]
    found: String,
    #[serde(default)]
    held: String,
    #[serde(default)]
    record: String,
}

/// Logs a search: the pupil is named in full (one pupil with that name).
pub(super) async fn search_new(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<SearchForm>,
) -> Result<Response, Denied> {
    let matches: Vec<_> = c
        .store
        .find_people(f.pupil.trim(), 5)
        .await?
        .into_iter()
        .filter(|p| p.kind == "pupil")
        .collect();
    let pupil = match matches.as_slice() {
        [p] => p.id,
        [] => return Err(Denied::Invalid("No pupil here has that name.".into())),
        _ => {
            return Err(Denied::Invalid(
                "More than one pupil has that name: give the full name.".into(),
            ))
        }
    };
    let record =
        match f.record.trim() {
            "" => None,
            r => Some(r.parse::<i64>().map_err(|_| {
                Denied::Invalid("The record: its number, or leave it empty.".into())
            })?),
        };
    let id = c
        .store
        .log_search(
            &haven_store::registers::NewSearch {
                school: SCHOOL,
                pupil,
                at_ms: local_ms("When", &f.at)?,
                device: f.device,
                reason: f.reason,
                authorised_by: f.authorised_by,
                searched_by: f.searched_by,
                witness: f.witness,
                found: f.found,
                held: f.held,
                record,
            },
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/registers/searches?done={}#search-{id}",
        url_encode(&format!("Search {id} logged."))
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct SearchOutcomeForm {
    csrf: String,
    step: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    at: String,
    #[serde(default)]
    text: String,
}

/// What became of what was confiscated.
pub(super) async fn search_outcome(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<SearchOutcomeForm>,
) -> Result<Response, Denied> {
    match f.step.as_str() {
        "returned" => {
            let at = local_ms("When it was returned", &f.at)?;
            c.store
                .search_outcome(SCHOOL, id, Some((&f.to, at)), None, &actor(&s))
                .await?;
        }
        "police" => {
            c.store
                .search_outcome(SCHOOL, id, None, Some(&f.text), &actor(&s))
                .await?;
        }
        _ => return Err(Denied::Invalid("Returned, or handed to the police.".into())),
    }
    Ok(Redirect::to(&format!(
        "/registers/searches?done={}#search-{id}",
        url_encode(&format!("Search {id}: recorded."))
    ))
    .into_response())
}

crate::web::csrf_field!(
    ConsentForm,
    NewBreachForm,
    BreachStepForm,
    TrainingForm,
    PublishForm,
    SignatureForm,
    PolicyReviewForm,
    SearchForm,
    SearchOutcomeForm,
);

#[cfg(test)]
mod tests {
    use super::cell;

    #[test]
    fn a_csv_cell_that_starts_a_formula_is_defused_and_quoted() {
        assert_eq!(cell("Ava Ahmed"), "Ava Ahmed");
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("+44 1234"), "\"'+44 1234\"");
        assert_eq!(cell("a, b"), "\"a, b\"");
    }
}
