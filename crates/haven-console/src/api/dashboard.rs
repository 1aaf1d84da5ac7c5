//! The dashboard's figures.

use axum::extract::State;
use axum::Json;
use serde_json::json;

use super::ApiError;
use crate::Console;
use haven_store::reviews::ReviewStatus;

pub(super) async fn dashboard(
    State(c): State<Console>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let from = crate::pages::today_start();
    let categories: Vec<_> = c
        .store
        .blocks_by_category(from)
        .await?
        .into_iter()
        .map(|(category, blocks)| json!({ "category": category, "blocks": blocks }))
        .collect();
    let sites: Vec<_> = c
        .store
        .top_blocked(from, 10)
        .await?
        .into_iter()
        .map(|(site, blocks)| json!({ "site": site, "blocks": blocks }))
        .collect();
    Ok(Json(json!({
        "from_ms": from,
        "blocks_by_category": categories,
        "top_blocked": sites,
        "open_reviews": c.store.reviews(ReviewStatus::Open, 1000).await?.len(),
    })))
}
