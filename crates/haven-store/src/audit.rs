//! The audit log: every read of a person's activity or safeguarding data and every change —
//! who, what, when, from where. Each entry carries the SHA-256 of the one before it and of its
//! own fields, so an entry changed, removed or inserted afterwards breaks the chain, and
//! `haven audit verify` says where.

use sqlx::Row as _;

use crate::{now_ms, Backend, Store, StoreError};

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Something to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// Who (a user name, or `haven` for the system itself).
    pub actor: &'a str,
    /// From where (an address, or `cli`).
    pub address: &'a str,
    /// What kind of thing (`read activity`, `import people`, `approve review`…).
    pub action: &'a str,
    /// What it was done to (a person, a policy, a list).
    pub subject: &'a str,
    /// The details.
    pub detail: &'a str,
}

/// One entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// Its number.
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// From where.
    pub address: String,
    /// What kind of thing.
    pub action: String,
    /// To what.
    pub subject: String,
    /// Details.
    pub detail: String,
    /// This entry's hash.
    pub hash: String,
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every entry is as written.
    Intact {
        /// Entries checked.
        entries: u64,
    },
    /// The first entry that does not follow from the ones before it.
    Broken {
        /// Its id.
        id: i64,
        /// What is wrong.
        why: String,
    },
}

/// The hash of an entry: over the previous hash and every field, encoded unambiguously.
fn entry_hash(prev: &str, at: i64, e: &AuditEntry<'_>) -> String {
    let fields = serde_json::json!([prev, at, e.actor, e.address, e.action, e.subject, e.detail]);
    let digest = ring::digest::digest(&ring::digest::SHA256, fields.to_string().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Appends an entry to the chain.
    pub async fn audit(&self, e: &AuditEntry<'_>) -> Result<(), StoreError> {
        // Entries join the chain one at a time: in this process by the lock, across nodes
        // sharing PostgreSQL by an advisory lock held until the entry commits.
        let _one = self.audit_lock.lock().await;
        let mut tx = self.write_tx().await?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7274837)")
                .execute(&mut *tx)
                .await?;
        }
        let prev: String = sqlx::query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .unwrap_or_else(|| GENESIS.to_owned());
        let at = now_ms();
        let hash = entry_hash(&prev, at, e);
        sqlx::query(
            "INSERT INTO audit (at, actor, address, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(at)
        .bind(e.actor)
        .bind(e.address)
        .bind(e.action)
        .bind(e.subject)
        .bind(e.detail)
        .bind(prev)
        .bind(hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Entries, newest first, older than `before_id` when given.
    pub async fn audit_log(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, address, action, subject, detail, hash FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get(0)?,
                    at_ms: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    address: r.try_get(3)?,
                    action: r.try_get(4)?,
                    subject: r.try_get(5)?,
                    detail: r.try_get(6)?,
                    hash: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Walks the whole chain from the first entry, recomputing every hash.
    pub async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        let mut prev = GENESIS.to_owned();
        let mut after = 0i64;
        let mut entries = 0u64;
        loop {
            let rows = sqlx::query(
                "SELECT id, at, actor, address, action, subject, detail, prev_hash, hash FROM audit WHERE id > $1 ORDER BY id LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok(AuditCheck::Intact { entries });
            }
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                let (actor, address, action, subject, detail): (
                    String,
                    String,
                    String,
                    String,
                    String,
                ) = (
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                );
                let stored_prev: String = r.try_get(7)?;
                let stored: String = r.try_get(8)?;
                if stored_prev != prev {
                    return Ok(AuditCheck::Broken {
                        id,
                        why: "it does not follow the entry before it (an entry was removed or inserted)".into(),
                    });
                }
                let e = AuditEntry {
                    actor: &actor,
                    address: &address,
                    action: &action,
                    subject: &subject,
                    detail: &detail,
                };
                if entry_hash(&prev, r.try_get(1)?, &e) != stored {
                    return Ok(AuditCheck::Broken {
                        id,
                        why: "its contents were changed after it was written".into(),
                    });
                }
                prev = stored;
                after = id;
                entries += 1;
            }
        }
    }
}
