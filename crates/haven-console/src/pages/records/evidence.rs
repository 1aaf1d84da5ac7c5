//! Sealed evidence: adding files, downloading them, and viewing a possible nude image.

use super::*;

/// Adds files to a record (sealed at once).
pub(in crate::pages) async fn record_evidence_add(
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
pub(in crate::pages) async fn evidence_download(
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
pub(in crate::pages) async fn evidence_view(
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

crate::web::csrf_field!(ViewForm,);
