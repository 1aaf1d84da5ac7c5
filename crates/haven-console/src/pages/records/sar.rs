//! A subject-access export for the DPO: one pupil's safeguarding records as they may be
//! released, other people's names (the other children named, and the members of staff an
//! allegation names) replaced, their parts left out, files listed but not included, and
//! possible nude images not even listed. Audited; the DPO reviews it before it is sent.

use super::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SarQuery {
    q: String,
}

#[derive(Template)]
#[template(path = "sar_find.html")]
struct SarFind {
    l: Layout,
    q: String,
    found: Vec<(i64, String, String, String)>,
}

/// Finding the pupil the request is about.
pub(in crate::pages) async fn sar_find(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<SarQuery>,
) -> Result<Response, Denied> {
    let mut found = Vec::new();
    if !q.q.trim().is_empty() {
        found = c
            .store
            .find_people(q.q.trim(), 40)
            .await?
            .into_iter()
            .filter(|p| p.kind == "pupil")
            .map(|p| {
                (
                    p.id,
                    format!("{} {}", p.first_name, p.last_name),
                    haven_store::people::year_label(p.year_group.as_deref()),
                    if p.active {
                        String::new()
                    } else {
                        "left".to_owned()
                    },
                )
            })
            .collect();
        c.store
            .audit(
                &AuditEntry::new(
                    &s.who.username,
                    &s.address,
                    AuditKind::SearchPeople,
                    Subject::Nothing,
                )
                .count("found", found.len() as i64)
                .word("via", "subject access"),
            )
            .await?;
    }
    Ok(html(&SarFind {
        l: c.layout("Subject-access export", Some(&s)),
        q: q.q,
        found,
    }))
}

/// One record as released.
#[derive(serde::Serialize)]
struct Released {
    record: i64,
    category: String,
    happened: String,
    written: String,
    part: String,
    place: String,
    account: String,
    actions: String,
    entries: Vec<ReleasedEntry>,
    referrals: Vec<String>,
    files: Vec<String>,
}

#[derive(serde::Serialize)]
struct ReleasedEntry {
    when: String,
    kind: String,
    text: String,
    why: Option<String>,
}

#[derive(serde::Serialize)]
struct Export {
    name: String,
    year: String,
    made: String,
    records: Vec<Released>,
}

async fn export(c: &Console, s: &Signed, person: i64) -> Result<Export, Denied> {
    let p = c.store.person(person).await?.ok_or(Denied::NotFound)?;
    if p.kind != "pupil" {
        return Err(Denied::NotFound);
    }
    let name = format!("{} {}", p.first_name, p.last_name);
    let mut records = Vec::new();
    for r in c.store.records_of_child(SCHOOL, person).await? {
        // Everyone else the record names: the other children, and its author is staff acting
        // for the school (kept); the redaction takes the others' names out of every text.
        let others: Vec<String> = r
            .children
            .iter()
            .filter(|ch| ch.person != person)
            .map(|ch| ch.name.clone())
            .collect();
        let hide = |t: &str| haven_records::redact::redact(t, &others);
        let part = r
            .children
            .iter()
            .find(|ch| ch.person == person)
            .map_or("", |ch| ch.part.label())
            .to_owned();
        let entries = c
            .store
            .record_entries(SCHOOL, r.id)
            .await?
            .into_iter()
            .filter(|e| e.person.is_none_or(|p| p == person))
            .map(|e| ReleasedEntry {
                when: when(e.at_ms),
                kind: e.kind.label().to_owned(),
                text: hide(&e.text),
                why: e.rationale.as_deref().map(&hide),
            })
            .collect();
        let referrals = c
            .store
            .referrals(SCHOOL, r.id)
            .await?
            .into_iter()
            .map(|f| {
                format!(
                    "{}: {} ({})",
                    when(f.made_at_ms),
                    f.agency.label(),
                    f.outcome
                        .as_deref()
                        .map_or("outcome awaited".to_owned(), &hide)
                )
            })
            .collect();
        let files = c
            .store
            .evidence_of(SCHOOL, r.id)
            .await?
            .into_iter()
            .filter(|e| !e.possible_nude)
            .map(|e| {
                format!(
                    "{} ({}, {} bytes): provided separately after review",
                    hide(&e.name),
                    e.media_type,
                    e.size_bytes
                )
            })
            .collect();
        records.push(Released {
            record: r.id,
            category: r.category_name().to_owned(),
            happened: when(r.happened_at_ms),
            written: when(r.written_at_ms),
            part,
            place: hide(&r.place),
            account: hide(&r.account),
            actions: hide(&r.actions),
            entries,
            referrals,
            files,
        });
    }
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::SubjectAccessExport,
                Subject::Person(person),
            )
            .count("records", records.len() as i64),
        )
        .await?;
    Ok(Export {
        name,
        year: haven_store::people::year_label(p.year_group.as_deref()),
        made: when(i64::try_from(haven_runtime::clock::now_ms()).unwrap_or(i64::MAX)),
        records,
    })
}

#[derive(Template)]
#[template(path = "sar.html")]
struct SarPage {
    l: Layout,
    person: i64,
    x: Export,
}

/// The export, as a page to review and print.
pub(in crate::pages) async fn sar(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    let x = export(&c, &s, person).await?;
    Ok(html(&SarPage {
        l: c.layout(&format!("Subject-access export: {}", x.name), Some(&s)),
        person,
        x,
    }))
}

/// The export as JSON, as a download.
pub(in crate::pages) async fn sar_json(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    let x = export(&c, &s, person).await?;
    let body = serde_json::to_string_pretty(&x).map_err(|e| Denied::Invalid(e.to_string()))?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/json".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"subject-access-{person}.json\""),
            ),
        ],
        body,
    )
        .into_response())
}
