//! Evidence attached to a safeguarding record, kept sealed: the store holds the sealed bytes
//! (sealed by the caller with `haven-vault` under the school's key, which is not in the
//! database), the file's checked type, size and SHA-256 (so an image can be reported to the
//! IWF by its hash without being opened again), and whether it may be a nude image (never
//! rendered: opening it needs the DSL role and a typed justification, audited).

use base64::Engine as _;
use haven_records::EntryKind;
use sqlx::Row as _;

use crate::audit::{AuditEntry, AuditKind, Subject};
use crate::records::{Actor, NewEntry};
use crate::{now_ms, Store, StoreError};

/// A file to keep with a record, already checked and sealed.
#[derive(Debug, Clone)]
pub struct NewEvidence {
    /// Its file name (cleaned: `haven_records::evidence::clean_name`).
    pub name: String,
    /// Its type, from its bytes (`haven_records::evidence::check`).
    pub media_type: String,
    /// Its size before sealing.
    pub size_bytes: i64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Marked as a possible nude or semi-nude image.
    pub possible_nude: bool,
    /// The vault key version it is sealed under.
    pub key_version: i64,
    /// The sealed bytes.
    pub sealed: Vec<u8>,
}

/// Evidence as lists show it (never its contents).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// Id.
    pub id: i64,
    /// Its record.
    pub record: i64,
    /// File name.
    pub name: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub size_bytes: i64,
    /// SHA-256, hex.
    pub sha256: String,
    /// Marked as a possible nude image.
    pub possible_nude: bool,
    /// The key version it is sealed under.
    pub key_version: i64,
    /// Who added it (name).
    pub by: String,
    /// When.
    pub added_at_ms: i64,
}

/// What a sealed value is bound to (the vault's associated data): the school and the file's
/// hash, so sealed bytes copied to another school's row do not open.
pub fn seal_context(school: i64, sha256: &str) -> Vec<u8> {
    format!("haven-evidence:{school}:{sha256}").into_bytes()
}

const COLUMNS: &str =
    "e.id, e.record_id, e.name, e.media_type, e.size_bytes, e.sha256, e.possible_nude, \
    e.key_version, p.first_name || ' ' || p.last_name, e.added_at";

fn evidence_from(r: &sqlx::any::AnyRow) -> Result<Evidence, StoreError> {
    Ok(Evidence {
        id: r.try_get(0)?,
        record: r.try_get(1)?,
        name: r.try_get(2)?,
        media_type: r.try_get(3)?,
        size_bytes: r.try_get(4)?,
        sha256: r.try_get(5)?,
        possible_nude: r.try_get::<i64, _>(6)? != 0,
        key_version: r.try_get(7)?,
        by: r.try_get(8)?,
        added_at_ms: r.try_get(9)?,
    })
}

pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    school: i64,
    record: i64,
    e: &NewEvidence,
    by: i64,
    now: i64,
) -> Result<i64, StoreError> {
    if e.sealed.is_empty() || e.sha256.len() != 64 {
        return Err(StoreError::Invalid(
            "Evidence arrives sealed, with its SHA-256.".into(),
        ));
    }
    let id: i64 = sqlx::query(
        "INSERT INTO evidence (school_id, record_id, name, media_type, size_bytes, sha256, possible_nude, key_version, sealed, added_by, added_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(school)
    .bind(record)
    .bind(&e.name)
    .bind(&e.media_type)
    .bind(e.size_bytes)
    .bind(&e.sha256)
    .bind(i64::from(e.possible_nude))
    .bind(e.key_version)
    .bind(base64::engine::general_purpose::STANDARD.encode(&e.sealed))
    .bind(by)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    crate::records::insert_entry(
        tx,
        &NewEntry {
            school,
            record,
            person: None,
            at_ms: now,
            kind: EntryKind::Note,
            text: if e.possible_nude {
                format!("Evidence {id} added and sealed; marked as a possible nude image, so it is never shown")
            } else {
                format!("Evidence {id} added and sealed: {} ({})", e.name, e.media_type)
            },
            rationale: None,
        },
        by,
        now,
    )
    .await?;
    Ok(id)
}

impl Store {
    /// Adds sealed evidence to an open record (and a line to its chronology saying so); its id.
    pub async fn add_evidence(
        &self,
        school: i64,
        record: i64,
        e: &NewEvidence,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let now = now_ms();
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        crate::records::open_record(&mut tx, school, record).await?;
        let id = insert(&mut tx, school, record, e, by.person, now).await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::AddEvidence,
                Subject::Evidence(id),
            )
            .count("record", record)
            .word("possible nude", if e.possible_nude { "yes" } else { "no" }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A record's evidence, oldest first (never its contents).
    pub async fn evidence_of(&self, school: i64, record: i64) -> Result<Vec<Evidence>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS} FROM evidence e JOIN people p ON p.id = e.added_by \
             WHERE e.school_id = $1 AND e.record_id = $2 ORDER BY e.added_at, e.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(record)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(evidence_from).collect()
    }

    /// One piece of evidence and its sealed bytes. Unaudited: the caller records the opening
    /// (and its justification, for a possible nude image) once it has decided it may.
    pub async fn evidence_sealed(
        &self,
        school: i64,
        id: i64,
    ) -> Result<Option<(Evidence, Vec<u8>)>, StoreError> {
        let q = format!(
            "SELECT {COLUMNS}, e.sealed FROM evidence e JOIN people p ON p.id = e.added_by \
             WHERE e.school_id = $1 AND e.id = $2"
        );
        let Some(row) = sqlx::query(sqlx::AssertSqlSafe(q))
            .bind(school)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(row.try_get::<String, _>(10)?)
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))?;
        Ok(Some((evidence_from(&row)?, sealed)))
    }

    /// The ids of the school's evidence, oldest first.
    pub async fn evidence_ids(&self, school: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT id FROM evidence WHERE school_id = $1 ORDER BY id")
            .bind(school)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Replaces a value's sealed bytes with the same file sealed under another key version (a
    /// rotation that retires the old key), audited.
    pub async fn reseal_evidence(
        &self,
        school: i64,
        id: i64,
        key_version: i64,
        sealed: &[u8],
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE evidence SET key_version = $1, sealed = $2 WHERE school_id = $3 AND id = $4",
        )
        .bind(key_version)
        .bind(base64::engine::general_purpose::STANDARD.encode(sealed))
        .bind(school)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Invalid(format!("There is no evidence {id}.")));
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::ResealEvidence,
                Subject::Evidence(id),
            )
            .count("key version", key_version),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
