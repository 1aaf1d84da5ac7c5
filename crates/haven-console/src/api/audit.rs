//! Reading the audit log (the read itself audited).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Bearer};
use crate::Console;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

pub(super) async fn audit(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let entries = c
        .store
        .read_audit_log(
            &s.who.username,
            &s.address,
            q.before,
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({ "entries": entries })))
}
