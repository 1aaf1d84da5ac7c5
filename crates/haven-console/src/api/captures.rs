//! Text from other capture sources, graded and kept as a capture.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Bearer};
use crate::web::Denied;
use crate::Console;

/// Text from another capture source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestBody {
    text: String,
    source: String,
    #[serde(default)]
    url: String,
    user: Option<String>,
    #[serde(default)]
    device: String,
    at_ms: Option<i64>,
}

pub(super) async fn ingest(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    body: Result<Json<IngestBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(b) = body.map_err(|e| Denied::Invalid(format!("the body: {}", e.body_text())))?;
    let bad = |why: &str| Err(ApiError(StatusCode::BAD_REQUEST, why.to_owned()));
    if b.text.trim().is_empty() || b.text.len() > 20_000 {
        return bad("text: 1 to 20,000 bytes");
    }
    if b.source.is_empty()
        || b.source.len() > 32
        || !b
            .source
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return bad("source: 1 to 32 lower-case letters, digits or dashes");
    }
    if b.url.len() > 2048 || b.device.len() > 200 {
        return bad("url: at most 2,048 bytes; device: at most 200");
    }
    let now = haven_store::now_ms();
    let at = b.at_ms.unwrap_or(now);
    if at < now - 86_400_000 || at > now + 60_000 {
        return bad("at_ms: at most a day old, at most a minute ahead");
    }
    if let Some(u) = &b.user {
        if c.store.identity(u).await?.is_none() {
            return bad("user: no such person");
        }
    }
    let a = c.monitoring.grader().assess(&b.text);
    let g = &a.grade;
    let mut out = json!({
        "grade": g.grade,
        "categories": g.categories.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        "capture": null,
        "stored_grade": null,
        "alert": false,
    });
    if g.grade > 0 {
        let capture = a.capture(
            at,
            &b.source,
            if b.device.is_empty() {
                "unknown device"
            } else {
                &b.device
            },
            b.user.as_deref(),
            &b.url,
            &b.text,
        );
        let recorded = c.monitoring.record(&c.store, &[capture]).await?;
        if let Some(r) = recorded.first() {
            c.store
                .audit(
                    &AuditEntry::new(
                        &s.who.username,
                        &s.address,
                        AuditKind::IngestCapture,
                        Subject::Capture(r.id),
                    )
                    .count("grade", i64::from(r.grade)),
                )
                .await?;
            out["capture"] = json!(r.id);
            out["stored_grade"] = json!(r.grade);
            out["alert"] = json!(r.alert.is_some());
        }
    }
    Ok(Json(out))
}
