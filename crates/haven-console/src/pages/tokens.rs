//! API tokens: making one (shown once), listing and revoking them.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{url_encode, CsrfForm, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;
use haven_store::tokens::TokenScope;

struct TokenRow {
    id: i64,
    owner: String,
    name: String,
    scope: String,
    created: String,
    expires: String,
    last_used: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    token: String,
    tokens: Vec<TokenRow>,
    scopes: &'static [TokenScope],
    message: String,
}

/// The tokens page: a new token (shown once) and the tokens listed — one's own, or everyone's
/// for the administrator.
async fn tokens_page(
    c: &Console,
    s: &Signed,
    token: String,
    message: String,
) -> Result<Response, Denied> {
    let all = s
        .who
        .roles
        .contains(&haven_store::accounts::Role::Administrator);
    let now = haven_store::now_ms();
    let tokens = c
        .store
        .api_tokens((!all).then_some(s.who.person_id))
        .await?
        .into_iter()
        .map(|t| TokenRow {
            live: !t.revoked && t.expires_at.is_none_or(|e| e > now),
            id: t.id,
            owner: t.username,
            name: t.name,
            scope: t.scope,
            created: when(t.created_at),
            expires: if t.revoked {
                "revoked".into()
            } else {
                t.expires_at.map_or_else(
                    || "never (made before tokens expired: replace it)".into(),
                    when,
                )
            },
            last_used: t.last_used.map_or_else(|| "never".into(), when),
        })
        .collect();
    Ok(html(&TokensPage {
        l: c.layout("API tokens", Some(s)),
        token,
        tokens,
        scopes: &TokenScope::ALL,
        message,
    }))
}

pub(super) async fn tokens(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    tokens_page(&c, &s, String::new(), flash.done).await
}

fn default_days() -> i64 {
    90
}

#[derive(Deserialize)]
pub struct TokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default = "default_days")]
    days: i64,
}

pub(super) async fn token_create(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<TokenForm>,
) -> Result<Response, Denied> {
    let name = f.name.trim();
    if name.is_empty() {
        return Err(Denied::Invalid("Say what the token is for.".into()));
    }
    let scope = TokenScope::parse(&f.scope).ok_or_else(|| {
        Denied::Invalid("Choose what the token may do: ingest, read or admin.".into())
    })?;
    let (id, token) = c
        .store
        .create_api_token(s.who.person_id, name, scope, f.days)
        .await
        .map_err(|e| match e {
            haven_store::StoreError::Invalid(why) => Denied::Invalid(why),
            other => Denied::Store(other),
        })?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::CreateApiToken,
                Subject::Token(id),
            )
            .word("scope", scope.id())
            .count("days", f.days),
        )
        .await?;
    tokens_page(&c, &s, token, String::new()).await
}

/// Revokes a token: one's own, or anyone's for the administrator.
pub(super) async fn token_revoke(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(_): SessionForm<CsrfForm>,
) -> Result<Response, Denied> {
    let all = s
        .who
        .roles
        .contains(&haven_store::accounts::Role::Administrator);
    if !c
        .store
        .revoke_api_token(id, (!all).then_some(s.who.person_id))
        .await?
    {
        return Err(Denied::NotFound);
    }
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            AuditKind::RevokeApiToken,
            Subject::Token(id),
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/tokens?done={}",
        url_encode(&format!("Token {id} revoked."))
    ))
    .into_response())
}

crate::web::csrf_field!(TokenForm);
