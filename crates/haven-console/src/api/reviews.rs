//! The review queue (its read audited) and deciding a request.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Bearer};
use crate::web::Denied;
use crate::Console;
use haven_store::reviews::ReviewStatus;

#[derive(Debug, Deserialize)]
pub struct ReviewsQuery {
    #[serde(default = "open")]
    status: String,
}

fn open() -> String {
    "open".into()
}

pub(super) async fn reviews(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Query(q): Query<ReviewsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let status: ReviewStatus = q
        .status
        .parse()
        .map_err(|e| Denied::Invalid(format!("status: {e}")))?;
    let found = crate::pages::reviews_audited(&c, &s, status, 1000, "API").await?;
    Ok(Json(json!({ "reviews": found })))
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    pub(super) decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    scope: Option<String>,
}

pub(super) async fn decide(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Path(id): Path<i64>,
    Json(d): Json<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let approve = crate::web::decision(&d.decision, "approve", "decline")?;
    let whole_site = d.scope.as_deref() != Some("page");
    let outcome = c
        .decide_review(id, approve, whole_site, &d.note, &s)
        .await?;
    Ok(Json(match outcome {
        None => json!({ "review": id, "status": ReviewStatus::Declined.as_str() }),
        Some(crate::change::Outcome::Applied(change)) => {
            json!({ "review": id, "status": ReviewStatus::Approved.as_str(), "policy_change": change, "change_status": "applied" })
        }
        Some(crate::change::Outcome::Pending(change)) => {
            json!({ "review": id, "status": ReviewStatus::Approved.as_str(), "policy_change": change, "change_status": "pending" })
        }
    }))
}
