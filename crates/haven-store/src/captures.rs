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
    /// What the learned model said (`suicide 5 (alert 0.93)`), when it was asked.
    pub model: Option<String>,
}

stored_text! {
    /// Where a capture stands: open until someone who triages decides it.
    CaptureStatus, "capture status" {
        /// Waiting for triage.
        Open = "open",
        /// Dismissed with a reason (a false positive, or nothing to act on).
        Dismissed = "dismissed",
        /// Promoted to a concern.
        Promoted = "promoted",
    }
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
    /// What the learned model said, when it was asked.
    pub model: Option<String>,
    /// Open until triaged.
    pub status: CaptureStatus,
    /// The grade from the phrases alone, when the person's history raised it.
    pub base_grade: Option<i64>,
    /// Why the grade was raised.
    pub raised: Option<String>,
}

/// A capture as recorded: its id, its grade after history, and its alert if it raised one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The capture's id.
    pub id: i64,
    /// Its grade, after the person's history.
    pub grade: u8,
    /// The alert it raised.
    pub alert: Option<i64>,
}

impl NewCapture {
    /// A capture of `text` graded `g` (which must be 1 or more).
    pub fn graded(
        g: &haven_core::risk::Grade,
        at_ms: i64,
        source: &str,
        client: &str,
        user: Option<&str>,
        url: &str,
        text: &str,
    ) -> NewCapture {
        NewCapture {
            at_ms,
            source: source.to_owned(),
            client: client.to_owned(),
            user: user.map(str::to_owned),
            url: url.to_owned(),
            text: text.to_owned(),
            grade: g.grade,
            categories: g
                .categories
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect::<Vec<_>>()
                .join(","),
            matched: g.matched.join("; "),
            model: None,
        }
    }

    /// The same capture with what the learned model said.
    pub fn with_model(mut self, said: Option<String>) -> NewCapture {
        self.model = said;
        self
    }

    /// The category that graded highest.
    pub fn category(&self) -> &str {
        self.categories
            .split(',')
            .next()
            .and_then(|c| c.split(':').next())
            .filter(|c| !c.is_empty())
            .unwrap_or("unknown")
    }
}

/// What recording a capture needs to know (the store's part of `[monitor]`, which
/// `haven_monitor::MonitorRules` reads): how a person's recent history raises a grade, and the
/// grade at which a capture alerts the safeguarding team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRules {
    /// A capture at or above this grade alerts the DSL rota.
    pub alert_grade: u8,
    /// The alerting grade for particular categories.
    pub alert_grade_by_category: std::collections::BTreeMap<String, u8>,
    /// Days of a person's earlier captures that count towards raising a new one.
    pub history_days: u32,
    /// Earlier captures in the same category within `history_days` (not dismissed) that raise
    /// a new capture one grade (0: history never raises a grade).
    pub history_count: u32,
}

impl Default for CaptureRules {
    fn default() -> Self {
        CaptureRules {
            alert_grade: 4,
            alert_grade_by_category: Default::default(),
            history_days: 7,
            history_count: 3,
        }
    }
}

impl CaptureRules {
    /// Whether a capture of `grade` in `category` alerts.
    pub fn alerts(&self, category: &str, grade: u8) -> bool {
        let at = self
            .alert_grade_by_category
            .get(category)
            .copied()
            .unwrap_or(self.alert_grade);
        grade >= at
    }
}

/// A person's captures: by user name when known, else the device's unsigned ones — the SQL
/// condition (on `$1`) and its value.
fn whose<'a>(user: Option<&'a str>, client: &'a str) -> (&'static str, &'a str) {
    match user {
        Some(u) => ("username = $1", u),
        None => ("username IS NULL AND client = $1", client),
    }
}

const CAPTURE_COLUMNS: &str =
    "id, at, source, client, username, url, text, grade, categories, matched, status, base_grade, raised, model";

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
        status: crate::stored::stored(r, 10)?,
        base_grade: r.try_get::<Option<i64>, _>(11)?,
        raised: r.try_get(12)?,
        model: r.try_get(13)?,
    })
}

impl Store {
    /// Records captures in one transaction: each graded again by the person's recent history
    /// (earlier captures in the same category, not dismissed, raise it a grade), and an alert
    /// queued for each at or above its alerting grade, so that an alert is kept exactly when its
    /// capture is.
    pub async fn record_captures(
        &self,
        rules: &CaptureRules,
        captures: &[NewCapture],
    ) -> Result<Vec<Recorded>, StoreError> {
        let mut recorded = Vec::with_capacity(captures.len());
        if captures.is_empty() {
            return Ok(recorded);
        }
        let mut tx = self.write_tx().await?;
        for c in captures {
            let category = c.category();
            let mut grade = c.grade.clamp(1, 5);
            let mut raised = None;
            if rules.history_count > 0 && grade < 5 {
                let since = c.at_ms - i64::from(rules.history_days) * 86_400_000;
                let (who_sql, who) = whose(c.user.as_deref(), &c.client);
                let earlier: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM captures WHERE {who_sql} AND at >= $2 AND at <= $3 \
                     AND category = $4 AND status <> 'dismissed'"
                )))
                .bind(who)
                .bind(since)
                .bind(c.at_ms)
                .bind(category)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                if earlier >= i64::from(rules.history_count) {
                    raised = Some(format!(
                        "raised from {grade}: {earlier} earlier {category} captures in {} days",
                        rules.history_days
                    ));
                    grade += 1;
                }
            }
            let id: i64 = sqlx::query(
                "INSERT INTO captures (at, source, client, username, url, text, grade, categories, matched, category, base_grade, raised, model) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
            )
            .bind(c.at_ms)
            .bind(&c.source)
            .bind(&c.client)
            .bind(&c.user)
            .bind(&c.url)
            .bind(&c.text)
            .bind(i64::from(grade))
            .bind(&c.categories)
            .bind(&c.matched)
            .bind(category)
            .bind(raised.as_ref().map(|_| i64::from(c.grade)))
            .bind(&raised)
            .bind(&c.model)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            let mut alert = None;
            if rules.alerts(category, grade) {
                alert = Some(
                    sqlx::query(
                        "INSERT INTO alerts (capture_id, grade, category, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
                    )
                    .bind(id)
                    .bind(i64::from(grade))
                    .bind(category)
                    .bind(crate::now_ms())
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?,
                );
            }
            recorded.push(Recorded { id, grade, alert });
        }
        tx.commit().await?;
        Ok(recorded)
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

impl Store {
    /// Captures of what someone wrote or saw (searches, pages, texts sent in; not blocked
    /// attempts) that someone has dismissed or promoted, newest first: the school's own
    /// labelled examples for its model.
    pub async fn decided_captures(&self, limit: i64) -> Result<Vec<Capture>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CAPTURE_COLUMNS} FROM captures WHERE status <> 'open' \
             AND source NOT IN ('blocked', 'bypass') ORDER BY at DESC, id DESC LIMIT $1"
        )))
        .bind(limit.clamp(1, 100_000))
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
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        self.acknowledge_alerts(id, by).await?;
        Ok(true)
    }

    /// Promotes an open capture to a safeguarding concern: the concern's id, or `None` when it
    /// was not open.
    pub async fn promote_capture(&self, id: i64, by: &str) -> Result<Option<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
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
        crate::alerts::acknowledge(&mut *tx, id, by).await?;
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

/// A change to the school's own risk library, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LibraryChange {
    /// Its id.
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Who made it.
    pub author: String,
    /// Why.
    pub note: String,
    /// SHA-256 of the text it replaced.
    pub before_hash: String,
    /// The whole text after the change.
    pub text: String,
    /// Applied, pending (waiting for a second person), or rejected.
    pub status: crate::reviews::ChangeStatus,
    /// Who approved or rejected it.
    pub approver: Option<String>,
}

impl Store {
    /// A person's captures (by user name, else the device's address) from `since`, newest
    /// first.
    pub async fn captures_of(
        &self,
        user: Option<&str>,
        client: &str,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<Capture>, StoreError> {
        let (who_sql, who) = whose(user, client);
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CAPTURE_COLUMNS} FROM captures WHERE {who_sql} AND at >= $2 ORDER BY at DESC, id DESC LIMIT $3"
        )))
        .bind(who)
        .bind(since_ms)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(capture_from).collect()
    }

    /// Records a change to the school's risk library: applied, or pending until a second
    /// person settles it.
    pub async fn record_library_change(
        &self,
        author: &str,
        note: &str,
        before_hash: &str,
        text: &str,
        status: crate::reviews::ChangeStatus,
    ) -> Result<i64, StoreError> {
        if note.trim().is_empty() {
            return Err(StoreError::Invalid("say why the library is changed".into()));
        }
        Ok(sqlx::query(
            "INSERT INTO library_changes (at, author, note, before_hash, text, status) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(crate::now_ms())
        .bind(author)
        .bind(note.trim())
        .bind(before_hash)
        .bind(text)
        .bind(status.as_str())
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// One change to the school's risk library.
    pub async fn library_change(&self, id: i64) -> Result<Option<LibraryChange>, StoreError> {
        let row = sqlx::query(
            "SELECT id, at, author, note, before_hash, text, status, approver FROM library_changes WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(library_change_from).transpose()
    }

    /// Settles a pending library change (applied or rejected) by `approver`: whether it was
    /// still pending.
    pub async fn settle_library_change(
        &self,
        id: i64,
        status: crate::reviews::ChangeStatus,
        approver: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE library_changes SET status = $1, approver = $2, decided_at = $3 WHERE id = $4 AND status = 'pending'",
        )
        .bind(status.as_str())
        .bind(approver)
        .bind(crate::now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest changes to the school's risk library.
    pub async fn library_changes(&self, limit: i64) -> Result<Vec<LibraryChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, author, note, before_hash, text, status, approver FROM library_changes ORDER BY id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(library_change_from).collect()
    }
}

fn library_change_from(r: &sqlx::any::AnyRow) -> Result<LibraryChange, StoreError> {
    Ok(LibraryChange {
        id: r.try_get(0)?,
        at_ms: r.try_get(1)?,
        author: r.try_get(2)?,
        note: r.try_get(3)?,
        before_hash: r.try_get(4)?,
        text: r.try_get(5)?,
        status: crate::stored::stored(r, 6)?,
        approver: r.try_get(7)?,
    })
}
