//! Captures: what monitoring found worth a safeguarding lead's eye — a search term (later also
//! page text and other sources) graded by the risk library, with its context (who, where, when).
//! Triage: dismissed with a reason (which feeds each phrase's false-positive rate), or promoted
//! to a safeguarding concern in one step.

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

const CAPTURE_COLUMNS: &str =
    "id, at, source, client, username, url, text, grade, categories, matched, status";

fn capture_from(r: &sqlx::any::AnyRow) -> Result<Capture, StoreError> {
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
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CAPTURE_COLUMNS} FROM captures WHERE status = 'open' AND grade >= $1 \
             ORDER BY grade DESC, at DESC LIMIT $2"
        )))
        .bind(min_grade)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(capture_from).collect()
    }
}

/// How often a phrase's captures were dismissed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PhraseRecord {
    /// The phrase, as written in the library.
    pub phrase: String,
    /// Captures it counted in that were decided.
    pub decided: u64,
    /// Of those, dismissed.
    pub dismissed: u64,
}

impl Store {
    /// One capture.
    pub async fn capture(&self, id: i64) -> Result<Option<Capture>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CAPTURE_COLUMNS} FROM captures WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(capture_from).transpose()
    }

    /// Dismisses an open capture with the reason; false when it was not open.
    pub async fn dismiss_capture(
        &self,
        id: i64,
        by: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        if reason.trim().is_empty() {
            return Err(StoreError::Invalid(
                "say why the capture is dismissed".into(),
            ));
        }
        let done = sqlx::query(
            "UPDATE captures SET status = 'dismissed', decided_by = $1, decided_at = $2, reason = $3 \
             WHERE id = $4 AND status = 'open'",
        )
        .bind(by)
        .bind(crate::now_ms())
        .bind(reason.trim())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Promotes an open capture to a safeguarding concern: the concern's id, or `None` when it
    /// was not open.
    pub async fn promote_capture(&self, id: i64, by: &str) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE captures SET status = 'promoted', decided_by = $1, decided_at = $2 WHERE id = $3 AND status = 'open'",
        )
        .bind(by)
        .bind(crate::now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        let row =
            sqlx::query("SELECT username, client, categories, text FROM captures WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let categories: String = row.try_get(2)?;
        let category = categories
            .split(',')
            .next()
            .and_then(|c| c.split(':').next())
            .unwrap_or("unknown")
            .to_owned();
        let text: String = row.try_get(3)?;
        let concern: i64 = sqlx::query(
            "INSERT INTO concerns (at, capture_id, username, client, category, summary, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(crate::now_ms())
        .bind(id)
        .bind(row.try_get::<Option<String>, _>(0)?)
        .bind(row.try_get::<String, _>(1)?)
        .bind(&category)
        .bind(format!("Monitoring capture {id}: {text:?}"))
        .bind(by)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(Some(concern))
    }

    /// Each phrase that counted in decided captures, with how many were dismissed.
    pub async fn phrase_records(&self) -> Result<Vec<PhraseRecord>, StoreError> {
        let rows = sqlx::query("SELECT matched, status FROM captures WHERE status <> 'open'")
            .fetch_all(&self.pool)
            .await?;
        let mut by: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
        for r in rows {
            let matched: String = r.try_get(0)?;
            let dismissed = r.try_get::<String, _>(1)? == "dismissed";
            for phrase in matched.split("; ").filter(|p| !p.is_empty()) {
                let e = by.entry(phrase.to_owned()).or_default();
                e.0 += 1;
                e.1 += u64::from(dismissed);
            }
        }
        Ok(by
            .into_iter()
            .map(|(phrase, (decided, dismissed))| PhraseRecord {
                phrase,
                decided,
                dismissed,
            })
            .collect())
    }
}
