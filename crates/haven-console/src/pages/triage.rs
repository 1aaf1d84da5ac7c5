//! Triage of monitoring captures: the open ones, dismissing or promoting one, and a capture
//! opened in context.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{url_encode, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;

struct CaptureRow {
    id: i64,
    grade: i64,
    when: String,
    user: Option<String>,
    client: String,
    text: String,
    url: String,
    categories: String,
    matched: String,
    /// What the learned model said (`suicide 5 (alert 0.93)`), when it was asked.
    model: Option<String>,
}

struct PhraseRow {
    phrase: String,
    decided: u64,
    dismissed: u64,
    rate: String,
}

#[derive(Template)]
#[template(path = "triage.html")]
struct TriagePage {
    l: Layout,
    captures: Vec<CaptureRow>,
    phrases: Vec<PhraseRow>,
    message: String,
}

pub(super) async fn triage(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let found = c.store.open_captures(1, 200).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadCaptures,
                Subject::OpenCaptures,
            )
            .word("on", "triage")
            .count("shown", found.len() as i64),
        )
        .await?;
    let captures = found
        .into_iter()
        .map(|k| CaptureRow {
            id: k.id,
            grade: k.grade,
            when: when(k.at_ms),
            user: k.user,
            client: k.client,
            text: k.text,
            url: k.url,
            categories: k.categories,
            matched: k.matched,
            model: k.model,
        })
        .collect();
    let phrases = c
        .store
        .phrase_records()
        .await?
        .into_iter()
        .map(|p| PhraseRow {
            rate: format!(
                "{:.0}%",
                100.0 * p.dismissed as f64 / p.decided.max(1) as f64
            ),
            phrase: p.phrase,
            decided: p.decided,
            dismissed: p.dismissed,
        })
        .collect();
    Ok(html(&TriagePage {
        l: c.layout("Triage", Some(&s)),
        captures,
        phrases,
        message: flash.done,
    }))
}

#[derive(Deserialize)]
pub struct TriageForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn triage_decide(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<TriageForm>,
) -> Result<Response, Denied> {
    let promote = crate::web::decision(&f.decision, "promote", "dismiss")?;
    let capture = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    if promote {
        // A concern is opened with a note and a confirmation: the form asks for them first.
        return Ok(Redirect::to(&format!("/triage/{id}/promote")).into_response());
    }
    let done = {
        if f.reason.trim().is_empty() {
            return Err(Denied::Invalid(
                "Say why the capture is dismissed: the reason counts against the phrases that matched."
                    .into(),
            ));
        }
        if !c
            .store
            .dismiss_capture(id, &s.who.username, &f.reason)
            .await?
        {
            return Err(Denied::Invalid(format!(
                "Capture {id} was already decided."
            )));
        }
        format!("Capture {id} dismissed.")
    };
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                if promote {
                    AuditKind::PromoteCapture
                } else {
                    AuditKind::DismissCapture
                },
                Subject::Capture(id),
            )
            .count("grade", capture.grade),
        )
        .await?;
    Ok(Redirect::to(&format!("/triage?done={}", url_encode(&done))).into_response())
}

/// One line about an alert and where it went.
struct AlertRow {
    id: i64,
    state: String,
    deliveries: Vec<String>,
}

struct HistoryRow {
    id: i64,
    when: String,
    grade: i64,
    source: String,
    text: String,
    status: haven_store::captures::CaptureStatus,
}

struct NearbyRow {
    when: String,
    action: String,
    name: String,
    search: String,
}

#[derive(Template)]
#[template(path = "capture.html")]
struct CapturePage {
    l: Layout,
    k: haven_store::captures::Capture,
    when: String,
    alerts: Vec<AlertRow>,
    history: Vec<HistoryRow>,
    nearby: Vec<NearbyRow>,
}

/// A capture opened in context: what was seen and where, the alerts it raised, the person's
/// other captures in the last 30 days and their activity ten minutes either side. Opening it
/// acknowledges its alerts (so they are not escalated); the read is audited.
pub(super) async fn capture_page(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    let k = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    let acknowledged = c.store.acknowledge_alerts(id, &s.who.username).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadCapture,
                Subject::Capture(id),
            )
            .count("alerts acknowledged", acknowledged as i64),
        )
        .await?;
    let mut alerts = Vec::new();
    for a in c.store.capture_alerts(id).await? {
        let mut state = vec![format!("raised {}", when(a.created_at))];
        match a.sent_at {
            Some(t) => state.push(format!("sent {}", when(t))),
            None => state.push("waiting (quiet hours or no one to send to)".into()),
        }
        if let Some(t) = a.escalated_at {
            state.push(format!("escalated to the deputies {}", when(t)));
        }
        if let (Some(t), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
            state.push(format!("acknowledged by {by} {}", when(t)));
        }
        let deliveries = c
            .store
            .alert_deliveries(a.id)
            .await?
            .into_iter()
            .map(|d| {
                let state = match (d.delivered_at, &d.error) {
                    (Some(t), _) => format!("delivered {}", when(t)),
                    (None, Some(e)) => format!("not yet delivered after {} tries: {e}", d.attempts),
                    (None, None) => "sending".into(),
                };
                format!("{} ({}) to {}: {state}", d.channel, d.level, d.target)
            })
            .collect();
        alerts.push(AlertRow {
            id: a.id,
            state: state.join("; "),
            deliveries,
        });
    }
    let history = c
        .store
        .captures_of(k.user.as_deref(), &k.client, k.at_ms - 30 * 86_400_000, 50)
        .await?
        .into_iter()
        .filter(|h| h.id != id)
        .map(|h| HistoryRow {
            id: h.id,
            when: when(h.at_ms),
            grade: h.grade,
            source: h.source,
            text: h.text,
            status: h.status,
        })
        .collect();
    let nearby = c
        .store
        .search_events(&haven_store::events::EventQuery {
            user: k.user.clone(),
            client: if k.user.is_none() {
                Some(k.client.clone())
            } else {
                None
            },
            from_ms: Some(k.at_ms - 600_000),
            to_ms: Some(k.at_ms + 600_000),
            limit: 100,
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|e| NearbyRow {
            when: when(e.at_ms),
            action: e.action,
            name: e.name,
            search: e.search.unwrap_or_default(),
        })
        .collect();
    Ok(html(&CapturePage {
        l: c.layout(&format!("Capture {id}"), Some(&s)),
        when: when(k.at_ms),
        k,
        alerts,
        history,
        nearby,
    }))
}

crate::web::csrf_field!(TriageForm);

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PromoteQuery {
    q: String,
    child: String,
}

#[derive(Template)]
#[template(path = "promote.html")]
struct PromotePage {
    l: Layout,
    k: haven_store::captures::Capture,
    when: String,
    child: Option<(i64, String, String, String)>,
    q: String,
    found: Vec<(i64, String, String, String)>,
    /// (id, name, suggested by the capture's category).
    categories: Vec<(&'static str, &'static str, bool)>,
}

fn described(p: &haven_store::people::Person) -> (i64, String, String, String) {
    (
        p.id,
        format!("{} {}", p.first_name, p.last_name),
        haven_store::people::year_label(p.year_group.as_deref()),
        p.class.clone().unwrap_or_default(),
    )
}

/// The pupil a capture is about: the one chosen on the form, else the signed-in pupil who made it.
async fn capture_child(
    c: &Console,
    k: &haven_store::captures::Capture,
    chosen: &str,
) -> Result<Option<haven_store::people::Person>, Denied> {
    let id = match chosen.trim() {
        "" => match &k.user {
            Some(u) => c.store.identity(u).await?.map(|i| i.person_id),
            None => None,
        },
        n => Some(
            n.parse::<i64>()
                .map_err(|_| Denied::Invalid("That is not a child.".into()))?,
        ),
    };
    Ok(match id {
        Some(id) => c.store.person(id).await?.filter(|p| p.kind == "pupil"),
        None => None,
    })
}

/// Promoting a capture: the child it is about, the category, a note and a confirmation first.
pub(super) async fn promote_form(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    Query(q): Query<PromoteQuery>,
) -> Result<Response, Denied> {
    let k = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    if k.status != haven_store::captures::CaptureStatus::Open {
        return Err(Denied::Invalid(format!(
            "Capture {id} was already decided."
        )));
    }
    let child = capture_child(&c, &k, &q.child).await?;
    let mut found = Vec::new();
    if child.is_none() && !q.q.trim().is_empty() {
        found = c
            .store
            .find_people(q.q.trim(), 40)
            .await?
            .iter()
            .filter(|p| p.kind == "pupil")
            .take(20)
            .map(described)
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
                .word("via", "promote form"),
            )
            .await?;
    }
    let first = k
        .categories
        .split(',')
        .next()
        .and_then(|c| c.split(':').next())
        .unwrap_or("");
    Ok(html(&PromotePage {
        l: c.layout(&format!("Promote capture {id}"), Some(&s)),
        when: when(k.at_ms),
        child: child.as_ref().map(described),
        q: q.q,
        found,
        categories: {
            let suggested = haven_store::records::category_for_monitoring(first.trim());
            haven_records::category::CATEGORIES
                .iter()
                .map(|c| (c.id, c.name, c.id == suggested))
                .collect()
        },
        k,
    }))
}

#[derive(Deserialize)]
pub struct PromoteForm {
    csrf: String,
    child: String,
    category: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    confirm: String,
}

pub(super) async fn promote(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<PromoteForm>,
) -> Result<Response, Denied> {
    if f.confirm != "yes" {
        return Err(Denied::Invalid(
            "Confirm that you read the capture in context and that it is a safeguarding concern."
                .into(),
        ));
    }
    let k = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    let child = capture_child(&c, &k, &f.child)
        .await?
        .ok_or_else(|| Denied::Invalid("Choose the child the concern is about.".into()))?;
    let record = c
        .store
        .promote_to_record(
            &haven_store::records::Promotion {
                school: haven_store::records::DEFAULT_SCHOOL,
                capture: id,
                child: child.id,
                category: f.category.trim().to_owned(),
                note: f.note,
            },
            &haven_store::records::Actor {
                person: s.who.person_id,
                username: &s.who.username,
                address: &s.address,
            },
        )
        .await?
        .ok_or_else(|| Denied::Invalid(format!("Capture {id} was already decided.")))?;
    let done = format!("Capture {id} is now a concern, record {record}.");
    Ok(Redirect::to(&format!("/records/{record}?done={}", url_encode(&done))).into_response())
}

crate::web::csrf_field!(PromoteForm);
