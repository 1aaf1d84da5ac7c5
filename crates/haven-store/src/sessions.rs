//! Console sessions, two-factor state and recovery codes (API tokens: `tokens.rs`). Secrets handed to a
//! browser or a script (session cookies, recovery codes, API tokens) are random and kept only
//! as their SHA-256: the database alone does not let anyone in.

use sqlx::Row as _;

use crate::accounts::Identity;
use crate::sealed::SealKey;
use crate::{now_ms, Store, StoreError};

/// A signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Who.
    pub person_id: i64,
    /// The token every form must carry (CSRF).
    pub csrf: String,
    /// Whether the second factor was given (or was not needed).
    pub second_factor: bool,
    /// When it was last used (ms since the epoch).
    pub last_seen: i64,
}

/// A session as its owner sees it in their list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Its id in the list (the stored hash of its cookie, never the cookie).
    pub id: String,
    /// When it began (ms since the epoch).
    pub created_at: i64,
    /// When it was last used.
    pub last_seen: i64,
    /// From where it signed in.
    pub address: String,
    /// Whether the second factor was given.
    pub second_factor: bool,
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> Result<String, StoreError> {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Invalid("no randomness available".into()))?;
    Ok(hex(&buf))
}

/// Random bytes.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, StoreError> {
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| StoreError::Invalid("no randomness available".into()))?;
    Ok(buf)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of a secret, as stored.
pub fn secret_hash(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

impl Store {
    /// Starts a session for a person who gave their password: the cookie value (only its hash
    /// is kept) and the session.
    pub async fn create_session(
        &self,
        person_id: i64,
        address: &str,
        second_factor: bool,
    ) -> Result<(String, Session), StoreError> {
        let token = random_hex(32)?;
        let csrf = random_hex(16)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (id_hash, person_id, created_at, last_seen, address, csrf, second_factor) VALUES ($1, $2, $3, $3, $4, $5, $6)",
        )
        .bind(secret_hash(&token))
        .bind(person_id)
        .bind(now)
        .bind(address)
        .bind(&csrf)
        .bind(i64::from(second_factor))
        .execute(&self.pool)
        .await?;
        Ok((
            token,
            Session {
                person_id,
                csrf,
                second_factor,
                last_seen: now,
            },
        ))
    }

    /// The session for a cookie value, if it exists, was used within `idle_ms` and began
    /// within `lifetime_ms`; using it counts as activity. An idle or expired one is ended.
    pub async fn session(
        &self,
        token: &str,
        idle_ms: i64,
        lifetime_ms: i64,
    ) -> Result<Option<Session>, StoreError> {
        let hash = secret_hash(token);
        let Some(r) = sqlx::query(
            "SELECT s.person_id, s.csrf, s.second_factor, s.last_seen, s.created_at FROM sessions s JOIN people p ON p.id = s.person_id \
             WHERE s.id_hash = $1 AND p.active = 1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let now = now_ms();
        let last_seen: i64 = r.try_get(3)?;
        let created_at: i64 = r.try_get(4)?;
        if now - last_seen > idle_ms || now - created_at > lifetime_ms {
            self.end_session(token).await?;
            return Ok(None);
        }
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id_hash = $2")
            .bind(now)
            .bind(&hash)
            .execute(&self.pool)
            .await?;
        Ok(Some(Session {
            person_id: r.try_get(0)?,
            csrf: r.try_get(1)?,
            second_factor: r.try_get::<i64, _>(2)? != 0,
            last_seen: now,
        }))
    }

    /// Deletes sessions unused for longer than `idle_ms` (they could no longer be used);
    /// how many went.
    pub async fn end_idle_sessions(&self, idle_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE last_seen < $1")
            .bind(now_ms() - idle_ms)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Records that the session's second factor was given.
    pub async fn pass_second_factor(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET second_factor = 1 WHERE id_hash = $1")
            .bind(secret_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A person's sessions, newest first.
    pub async fn sessions_of(&self, person_id: i64) -> Result<Vec<SessionInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT id_hash, created_at, last_seen, address, second_factor FROM sessions \
             WHERE person_id = $1 ORDER BY created_at DESC LIMIT 200",
        )
        .bind(person_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionInfo {
                    id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                    last_seen: r.try_get(2)?,
                    address: r.try_get(3)?,
                    second_factor: r.try_get::<i64, _>(4)? != 0,
                })
            })
            .collect()
    }

    /// Ends one of a person's sessions by its id in their list (another person's is left
    /// alone): whether it was there.
    pub async fn end_session_of(&self, person_id: i64, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE person_id = $1 AND id_hash = $2")
            .bind(person_id)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends every session of a person's but the one with cookie `keep`: how many ended.
    pub async fn end_other_sessions(&self, person_id: i64, keep: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE person_id = $1 AND id_hash <> $2")
            .bind(person_id)
            .bind(secret_hash(keep))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Ends a session (signing out, or idle).
    pub async fn end_session(&self, token: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(secret_hash(token))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The identity behind a person id (active people only).
    pub async fn identity_by_id(&self, person_id: i64) -> Result<Option<Identity>, StoreError> {
        let username: Option<String> =
            sqlx::query("SELECT username FROM people WHERE id = $1 AND active = 1")
                .bind(person_id)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?
                .flatten();
        match username {
            Some(u) => self.identity(&u).await,
            None => Ok(None),
        }
    }

    /// A person's TOTP secret (base32) and the last time step used, when they have one. The
    /// secret is kept sealed with `key`; one kept in clear (before sealing began) is sealed now.
    pub async fn totp_secret(
        &self,
        person_id: i64,
        key: &SealKey,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row = sqlx::query("SELECT totp_secret, totp_last_step FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = row else { return Ok(None) };
        let Some(stored) = r.try_get::<Option<String>, _>(0)? else {
            return Ok(None);
        };
        let secret = key.open(&stored, person_id)?;
        if !crate::sealed::is_sealed(&stored) {
            sqlx::query("UPDATE people SET totp_secret = $1 WHERE id = $2 AND totp_secret = $3")
                .bind(key.seal(&secret, person_id)?)
                .bind(person_id)
                .bind(&stored)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((secret, r.try_get(1)?)))
    }

    /// Keeps a secret being enrolled (not yet in force), sealed with `key`.
    pub async fn set_totp_secret(
        &self,
        person_id: i64,
        secret: &str,
        key: &SealKey,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE people SET totp_secret = $1, totp_enabled = 0, totp_last_step = 0 WHERE id = $2",
        )
        .bind(key.seal(secret, person_id)?)
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many TOTP secrets are still kept in clear (from before sealing began).
    pub async fn plain_totp_secrets(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM people WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'sealed1:%'",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get::<i64, _>(0)?)
    }

    /// Seals every TOTP secret still kept in clear: how many.
    pub async fn seal_totp_secrets(&self, key: &SealKey) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM people WHERE totp_secret IS NOT NULL AND totp_secret NOT LIKE 'sealed1:%'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sealed = 0;
        for r in rows {
            // Reading one seals it.
            if self.totp_secret(r.try_get(0)?, key).await?.is_some() {
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// Puts the enrolled secret in force.
    pub async fn enable_totp(&self, person_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE people SET totp_enabled = 1 WHERE id = $1")
            .bind(person_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a time step as used, if it is later than the last: false when it was already
    /// used (a replayed code).
    pub async fn use_totp_step(&self, person_id: i64, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE people SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(person_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Replaces a person's recovery codes with ten new ones, returned once.
    pub async fn new_recovery_codes(&self, person_id: i64) -> Result<Vec<String>, StoreError> {
        let mut codes = Vec::with_capacity(10);
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE person_id = $1")
            .bind(person_id)
            .execute(&mut *tx)
            .await?;
        for _ in 0..10 {
            let raw = random_hex(5)?;
            let code = format!("{}-{}", &raw[..5], &raw[5..]);
            sqlx::query("INSERT INTO recovery_codes (person_id, code_hash) VALUES ($1, $2)")
                .bind(person_id)
                .bind(secret_hash(&code))
                .execute(&mut *tx)
                .await?;
            codes.push(code);
        }
        tx.commit().await?;
        Ok(codes)
    }

    /// Uses a recovery code: true once per code.
    pub async fn use_recovery_code(&self, person_id: i64, code: &str) -> Result<bool, StoreError> {
        let code = code.trim().to_ascii_lowercase();
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE person_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(person_id)
        .bind(secret_hash(&code))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
