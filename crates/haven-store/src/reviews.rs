//! Review requests from block pages: "this page should not be blocked". Staff approve
//! (adding an override) or decline them in the console.

use sqlx::Row as _;

use crate::{Store, StoreError};

/// A request as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Review {
    /// Its id.
    pub id: i64,
    /// When it was asked (ms since the epoch).
    pub at_ms: i64,
    /// From which address.
    pub client: String,
    /// By whom, when known.
    pub user: Option<String>,
    /// The page.
    pub url: String,
    /// Why the page was blocked.
    pub reason: String,
    /// `open`, `approved` or `declined`.
    pub status: String,
}

impl Store {
    /// Records a review request.
    pub async fn add_review(
        &self,
        at_ms: i64,
        client: &str,
        user: Option<&str>,
        url: &str,
        reason: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "INSERT INTO reviews (at, client, username, url, reason) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(at_ms)
        .bind(client)
        .bind(user)
        .bind(url)
        .bind(reason)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Requests with this status, oldest first.
    pub async fn reviews(&self, status: &str, limit: i64) -> Result<Vec<Review>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, client, username, url, reason, status FROM reviews WHERE status = $1 ORDER BY id LIMIT $2",
        )
        .bind(status)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Review {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    client: r.try_get(2)?,
                    user: r.try_get(3)?,
                    url: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    status: r.try_get(6)?,
                })
            })
            .collect()
    }
}
