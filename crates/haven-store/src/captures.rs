//! Captures: what monitoring found worth a safeguarding lead's eye — a search term (later also
//! page text and other sources) graded by the risk library, with its context (who, where, when).
//! Triage (dismiss, promote to a concern) comes with the console's triage queue.

use sqlx::Row as _;

use crate::{Store, StoreError};

/// A capture to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCapture {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Where it came from (`search`).
    pub source: String,
    /// The device's address.
    pub client: String,
    /// Who, when known.
    pub user: Option<String>,
    /// The address it was seen at.
    pub url: String,
    /// The text graded.
    pub text: String,
    /// 1 to 5.
    pub grade: u8,
    /// `category:grade` by category, highest first, comma-separated.
    pub categories: String,
    /// The phrases that counted, `; `-separated.
    pub matched: String,
}

/// A capture as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capture {
    /// Its id.
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Where it came from.
    pub source: String,
    /// The device's address.
    pub client: String,
    /// Who, when known.
    pub user: Option<String>,
    /// The address it was seen at.
    pub url: String,
    /// The text graded.
    pub text: String,
    /// 1 to 5.
    pub grade: i64,
    /// `category:grade`, comma-separated.
    pub categories: String,
    /// The phrases that counted.
    pub matched: String,
    /// `open` until triaged.
    pub status: String,
}

impl Store {
    /// Stores captures in one transaction.
    pub async fn add_captures(&self, captures: &[NewCapture]) -> Result<(), StoreError> {
        if captures.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for c in captures {
            sqlx::query(
                "INSERT INTO captures (at, source, client, username, url, text, grade, categories, matched) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(c.at_ms)
            .bind(&c.source)
            .bind(&c.client)
            .bind(&c.user)
            .bind(&c.url)
            .bind(&c.text)
            .bind(i64::from(c.grade))
            .bind(&c.categories)
            .bind(&c.matched)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Open captures of at least `min_grade`, highest grade first, then newest.
    pub async fn open_captures(
        &self,
        min_grade: i64,
        limit: i64,
    ) -> Result<Vec<Capture>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, source, client, username, url, text, grade, categories, matched, status \
             FROM captures WHERE status = 'open' AND grade >= $1 ORDER BY grade DESC, at DESC LIMIT $2",
        )
        .bind(min_grade)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Capture {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    source: r.try_get(2)?,
                    client: r.try_get(3)?,
                    user: r.try_get(4)?,
                    url: r.try_get(5)?,
                    text: r.try_get(6)?,
                    grade: r.try_get(7)?,
                    categories: r.try_get(8)?,
                    matched: r.try_get(9)?,
                    status: r.try_get(10)?,
                })
            })
            .collect()
    }
}
