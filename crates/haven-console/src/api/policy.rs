//! The policy and its changes: reading, proposing, settling.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::reviews::Decision;
use super::{ApiError, Bearer};
use crate::Console;

pub(super) async fn policy(State(c): State<Console>) -> Result<Json<serde_json::Value>, ApiError> {
    let engine = c.engine.current();
    Ok(Json(json!({
        "text": c.policy_text(),
        "snapshot": format!("{:016x}", engine.snapshot().checksum()),
        "approval_required": c.config.policy_approval,
        "changes": c.store.policy_changes(100).await?,
    })))
}

/// A proposed policy: the whole text, and why.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Proposal {
    policy: String,
    reason: String,
}

pub(super) async fn propose(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Json(p): Json<Proposal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let outcome = c
        .propose(&s, &p.reason, &p.policy, "changed through the API")
        .await?;
    Ok(Json(match outcome {
        crate::change::Outcome::Applied(id) => json!({ "change": id, "status": "applied" }),
        crate::change::Outcome::Pending(id) => json!({ "change": id, "status": "pending" }),
    }))
}

pub(super) async fn settle(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Path(id): Path<i64>,
    Json(d): Json<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let approve = crate::web::decision(&d.decision, "approve", "reject")?;
    c.settle(id, approve, &s).await?;
    Ok(Json(json!({
        "change": id,
        "status": if approve { "applied" } else { "rejected" },
    })))
}
