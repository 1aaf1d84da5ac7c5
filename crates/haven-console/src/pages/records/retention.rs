//! The retention review: records past their date, legal hold, deletion with a tombstone.

use super::*;

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

/// The retention review queue (the DSL and the headteacher): records past their retention
/// date, to keep (a legal hold, with its reason) or delete (a tombstone stays in the audit
/// chain); and the records on legal hold.
pub(in crate::pages) async fn retention(
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

pub(in crate::pages) async fn legal_hold(
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
pub(in crate::pages) async fn delete_record(
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
        .retention_facts_of(SCHOOL, id)
        .await?
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

crate::web::csrf_field!(HoldForm, DeleteForm,);
