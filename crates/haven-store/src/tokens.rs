//! API tokens: scoped (what a script may do whatever its owner's roles), expiring, listed and
//! revocable. A token is random and kept only as its SHA-256.

use sqlx::Row as _;

use crate::sessions::{random_hex, secret_hash};
use crate::{now_ms, Store, StoreError};

/// What a token may do, within its owner's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenScope {
    /// Send text in to be graded (`POST /api/v1/captures`), and nothing else.
    Ingest,
    /// Read what the owner may read; change nothing.
    Read,
    /// Everything the owner's roles allow.
    Admin,
}

impl TokenScope {
    /// Every scope.
    pub const ALL: [TokenScope; 3] = [TokenScope::Ingest, TokenScope::Read, TokenScope::Admin];

    /// Its name.
    pub fn id(self) -> &'static str {
        match self {
            TokenScope::Ingest => "ingest",
            TokenScope::Read => "read",
            TokenScope::Admin => "admin",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Option<TokenScope> {
        TokenScope::ALL.into_iter().find(|t| t.id() == s.trim())
    }
}

/// The longest a token may live, in days.
pub const MAX_TOKEN_DAYS: i64 = 366;

/// A token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: i64,
    /// Whose.
    pub username: String,
    /// What it is for.
    pub name: String,
    /// What it may do.
    pub scope: String,
    /// Made (ms since the epoch).
    pub created_at: i64,
    /// Ends (ms since the epoch); `None` for a token made before tokens expired.
    pub expires_at: Option<i64>,
    /// Last used.
    pub last_used: Option<i64>,
    /// Revoked.
    pub revoked: bool,
}

/// The holder of a token that may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenHolder {
    /// The token's id.
    pub token_id: i64,
    /// Its owner.
    pub person_id: i64,
    /// What it may do.
    pub scope: TokenScope,
}

impl Store {
    /// Creates an API token for a person with `scope`, ending after `days` (1 to 366): its id
    /// and the token (shown once).
    pub async fn create_api_token(
        &self,
        person_id: i64,
        name: &str,
        scope: TokenScope,
        days: i64,
    ) -> Result<(i64, String), StoreError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(StoreError::Invalid(
                "say what the token is for (at most 100 bytes)".into(),
            ));
        }
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(StoreError::Invalid(format!(
                "a token lasts 1 to {MAX_TOKEN_DAYS} days"
            )));
        }
        let token = format!("haven_{}", random_hex(24)?);
        let now = now_ms();
        let id = sqlx::query(
            "INSERT INTO api_tokens (token_hash, person_id, name, created_at, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(secret_hash(&token))
        .bind(person_id)
        .bind(name)
        .bind(now)
        .bind(scope.id())
        .bind(now + days * 86_400_000)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok((id, token))
    }

    /// The holder of an API token that may be used now (not revoked, not past its time, its
    /// owner active), marking it used.
    pub async fn api_token_holder(&self, token: &str) -> Result<Option<TokenHolder>, StoreError> {
        let hash = secret_hash(token);
        let now = now_ms();
        let row = sqlx::query(
            "SELECT t.id, t.person_id, t.scope FROM api_tokens t JOIN people p ON p.id = t.person_id \
             WHERE t.token_hash = $1 AND t.revoked = 0 AND p.active = 1 \
             AND (t.expires_at IS NULL OR t.expires_at > $2)",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let scope: String = r.try_get(2)?;
        // A scope this build does not know gives nothing rather than everything.
        let Some(scope) = TokenScope::parse(&scope) else {
            return Ok(None);
        };
        let token_id: i64 = r.try_get(0)?;
        sqlx::query("UPDATE api_tokens SET last_used = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        Ok(Some(TokenHolder {
            token_id,
            person_id: r.try_get(1)?,
            scope,
        }))
    }

    /// Tokens, newest first: one person's, or everyone's.
    pub async fn api_tokens(&self, person_id: Option<i64>) -> Result<Vec<TokenInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, p.username, t.name, t.scope, t.created_at, t.expires_at, t.last_used, t.revoked \
             FROM api_tokens t JOIN people p ON p.id = t.person_id \
             WHERE ($1 = 0 OR t.person_id = $2) ORDER BY t.id DESC LIMIT 1000",
        )
        .bind(person_id.unwrap_or(0))
        .bind(person_id.unwrap_or(0))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TokenInfo {
                    id: r.try_get(0)?,
                    username: r.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    name: r.try_get(2)?,
                    scope: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    expires_at: r.try_get(5)?,
                    last_used: r.try_get(6)?,
                    revoked: r.try_get::<i64, _>(7)? != 0,
                })
            })
            .collect()
    }

    /// Revokes a token (only `person_id`'s, when given): whether one was revoked.
    pub async fn revoke_api_token(
        &self,
        id: i64,
        person_id: Option<i64>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_tokens SET revoked = 1 WHERE id = $1 AND revoked = 0 AND ($2 = 0 OR person_id = $3)",
        )
        .bind(id)
        .bind(person_id.unwrap_or(0))
        .bind(person_id.unwrap_or(0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
