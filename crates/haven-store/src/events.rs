//! The data plane's events: written in batches (many rows a statement, one transaction a
//! batch), searched newest first a page at a time, pruned by age.

use std::fmt::Write as _;

use haven_core::event::Event;
use sqlx::Row as _;

use crate::{Store, StoreError};

/// Rows per INSERT statement (13 parameters a row: well under both databases' limits).
const ROWS_PER_STATEMENT: usize = 200;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredEvent {
    /// Its id: later events have larger ids.
    pub id: i64,
    /// When, in milliseconds since the epoch.
    pub at_ms: i64,
    /// `dns` or `proxy`.
    pub source: String,
    /// The client's address.
    pub client: String,
    /// The group whose policy applied.
    pub group: String,
    /// Who, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Name or URL.
    pub name: String,
    /// DNS query type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<i64>,
    /// What was done.
    pub action: String,
    /// The deciding category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Search term.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Time to answer (the slowest, for repeats).
    pub latency_us: i64,
    /// How many identical queries this row stands for (1 but for repeated DNS questions).
    pub repeats: i64,
}

/// Where a page of events ended: its last event's time and id. Pages are in time order, newest
/// first (ties by id), so a page never repeats or skips an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The event's time (ms since the epoch).
    pub at_ms: i64,
    /// Its id.
    pub id: i64,
}

impl Cursor {
    /// `AT-ID`, for a link to the next page.
    pub fn token(self) -> String {
        format!("{}-{}", self.at_ms, self.id)
    }

    /// From a token; `None` for anything else.
    pub fn parse(token: &str) -> Option<Cursor> {
        let (at, id) = token.split_once('-')?;
        Some(Cursor {
            at_ms: at.parse().ok()?,
            id: id.parse().ok()?,
        })
    }
}

impl StoredEvent {
    /// Where a page ending with this event ended.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at_ms: self.at_ms,
            id: self.id,
        }
    }
}

/// What to look for: every field given must match.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    /// Events of this user.
    pub user: Option<String>,
    /// Events from this address.
    pub client: Option<String>,
    /// At or after (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Before (ms since the epoch).
    pub to_ms: Option<i64>,
    /// In this category.
    pub category: Option<String>,
    /// With this action (`block`, `allow`…).
    pub action: Option<String>,
    /// `dns` or `proxy`.
    pub source: Option<String>,
    /// Searches containing this text (any search, when empty).
    pub search: Option<String>,
    /// Only events before this one (the next page): the last event's [`StoredEvent::cursor`].
    pub before: Option<Cursor>,
    /// At most this many (1 to 1,000; 50 when 0).
    pub limit: i64,
}

enum Param {
    Int(i64),
    Text(String),
}

/// `text` for a LIKE pattern, with its own `%`, `_` and `\` taken literally.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Store {
    /// Writes a batch of events in one transaction; when this returns, they are stored.
    pub async fn insert_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let counted: Vec<(&Event, u64)> = events.iter().map(|e| (e, 1)).collect();
        self.insert_counted(&counted).await
    }

    /// Writes events that each stand for `repeats` identical ones (the same question from the
    /// same device within a short while: the first one's time, the slowest answer), in one
    /// transaction.
    pub async fn insert_counted(&self, events: &[(&Event, u64)]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(64 + chunk.len() * 80);
            sql.push_str(
                "INSERT INTO events (at, source, client, grp, username, name, qtype, action, category, reason, search, latency_us, repeats) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 13;
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                for k in 1..=13 {
                    if k > 1 {
                        sql.push(',');
                    }
                    // SQLite finds a named parameter by walking a list of every name, which
                    // makes thousands of `$N` cost their square; plain `?` costs nothing.
                    match self.backend {
                        crate::Backend::Sqlite => sql.push('?'),
                        crate::Backend::Postgres => {
                            let _ = write!(sql, "${}", b + k);
                        }
                    }
                }
                sql.push(')');
            }
            // Built only from bound parameters (`?` or `$N`): no value is spliced into the text.
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (e, repeats) in chunk {
                q = q
                    .bind(e.at_ms as i64)
                    .bind(e.source.as_str())
                    .bind(e.client.to_string())
                    .bind(e.group.as_str())
                    .bind(e.user.as_deref())
                    .bind(e.name.as_str())
                    .bind(e.qtype.map(i64::from))
                    .bind(e.action.as_str())
                    .bind(e.category.as_deref())
                    .bind(e.reason.as_deref())
                    .bind(e.search.as_deref())
                    .bind(e.latency_us as i64)
                    .bind(*repeats as i64);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Events matching `q`, newest first.
    pub async fn search_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>, StoreError> {
        let mut sql = String::from(
            "SELECT id, at, source, client, grp, username, name, qtype, action, category, reason, search, latency_us, repeats FROM events WHERE 1 = 1",
        );
        let mut params = Vec::new();
        let mut add = |clause: &str, p: Param| {
            params.push(p);
            sql.push_str(" AND ");
            sql.push_str(&clause.replace('?', &format!("${}", params.len())));
        };
        if let Some(u) = &q.user {
            add("username = ?", Param::Text(u.clone()));
        }
        if let Some(c) = &q.client {
            add("client = ?", Param::Text(c.clone()));
        }
        if let Some(t) = q.from_ms {
            add("at >= ?", Param::Int(t));
        }
        if let Some(t) = q.to_ms {
            add("at < ?", Param::Int(t));
        }
        if let Some(c) = &q.category {
            add("category = ?", Param::Text(c.clone()));
        }
        if let Some(a) = &q.action {
            add("action = ?", Param::Text(a.clone()));
        }
        if let Some(s) = &q.source {
            add("source = ?", Param::Text(s.clone()));
        }
        match q.search.as_deref() {
            Some("") => add("search IS NOT NULL AND ? = 1", Param::Int(1)),
            Some(s) => add(
                "search IS NOT NULL AND LOWER(search) LIKE ? ESCAPE '\\'",
                Param::Text(like_escape(s)),
            ),
            None => {}
        }
        if let Some(c) = q.before {
            params.push(Param::Int(c.at_ms));
            params.push(Param::Int(c.id));
            let n = params.len();
            let _ = write!(sql, " AND (at, id) < (${}, ${n})", n - 1);
        }
        let limit = if q.limit <= 0 { 50 } else { q.limit.min(1000) };
        let _ = write!(sql, " ORDER BY at DESC, id DESC LIMIT {limit}");
        // Built only from fixed clauses and bound parameters: no value is spliced into the text.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for p in params {
            query = match p {
                Param::Int(i) => query.bind(i),
                Param::Text(t) => query.bind(t),
            };
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(StoredEvent {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    source: r.try_get(2)?,
                    client: r.try_get(3)?,
                    group: r.try_get(4)?,
                    user: r.try_get(5)?,
                    name: r.try_get(6)?,
                    qtype: r.try_get(7)?,
                    action: r.try_get(8)?,
                    category: r.try_get(9)?,
                    reason: r.try_get(10)?,
                    search: r.try_get(11)?,
                    latency_us: r.try_get(12)?,
                    repeats: r.try_get(13)?,
                })
            })
            .collect()
    }

    /// Blocks since `from_ms`, by category, most first.
    pub async fn blocks_by_category(&self, from_ms: i64) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT category, COUNT(*) AS n FROM events WHERE category IS NOT NULL AND at >= $1 AND action = 'block'              GROUP BY category ORDER BY n DESC, category",
        )
        .bind(from_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// The sites blocked most since `from_ms` (name or URL as recorded), most first.
    pub async fn top_blocked(
        &self,
        from_ms: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, COUNT(*) AS n FROM events WHERE category IS NOT NULL AND at >= $1 AND action = 'block'              GROUP BY name ORDER BY n DESC, name LIMIT $2",
        )
        .bind(from_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Refreshes the planner's statistics after many events arrive (PostgreSQL's `ANALYZE`,
    /// SQLite's `PRAGMA optimize`), so searches keep using the right index.
    pub async fn refresh_statistics(&self) -> Result<(), StoreError> {
        let sql = match self.backend {
            crate::Backend::Postgres => "ANALYZE events",
            crate::Backend::Sqlite => "PRAGMA optimize",
        };
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Events stored in all (repeats counted).
    pub async fn count_events(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT CAST(COALESCE(SUM(repeats), 0) AS BIGINT) FROM events")
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        )
    }

    /// Deletes events older than `before_ms` (of one source, or all); how many went.
    pub async fn prune_events(
        &self,
        source: Option<&str>,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        let done = match source {
            Some(s) => {
                sqlx::query("DELETE FROM events WHERE at < $1 AND source = $2")
                    .bind(before_ms)
                    .bind(s)
                    .execute(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("DELETE FROM events WHERE at < $1")
                    .bind(before_ms)
                    .execute(&self.pool)
                    .await?
            }
        };
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::like_escape;

    #[test]
    fn search_text_is_taken_literally() {
        assert_eq!(like_escape("100%_a\\"), "%100\\%\\_a\\\\%");
        assert_eq!(like_escape("Volcano"), "%volcano%");
    }
}
