//! Finding people and searching activity (both audited, through the same use-cases as the pages).

use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, Bearer};
use crate::web::Denied;
use crate::Console;
use haven_store::events::{Cursor, EventQuery};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PeopleQuery {
    q: String,
}

pub(super) async fn people(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Query(q): Query<PeopleQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if q.q.trim().is_empty() {
        return Err(Denied::Invalid("q: say whom to look for".into()).into());
    }
    let found = crate::pages::find_people_audited(&c, &s, &q.q, "API").await?;
    Ok(Json(json!({ "people": found })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct EventsQuery {
    user: Option<String>,
    client: Option<String>,
    category: Option<String>,
    action: Option<String>,
    source: Option<String>,
    search: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    before: Option<String>,
    limit: Option<i64>,
}

pub(super) async fn events(
    State(c): State<Console>,
    Bearer { signed: s, .. }: Bearer,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let before = match q.before.as_deref() {
        Some(t) => Some(
            Cursor::parse(t)
                .ok_or_else(|| Denied::Invalid(format!("before: {t:?} is not AT-ID")))?,
        ),
        None => None,
    };
    let query = EventQuery {
        user: q.user,
        client: q.client,
        category: q.category,
        action: q.action,
        source: q.source,
        search: q.search,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        before,
        limit: q.limit.unwrap_or(50).clamp(1, 1000),
    };
    let (found, next) = crate::pages::search_activity_audited(&c, &s, query, "API").await?;
    Ok(Json(
        json!({ "events": found, "next": next.map(|last| last.token()) }),
    ))
}
