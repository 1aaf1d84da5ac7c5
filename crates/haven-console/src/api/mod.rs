//! The JSON API, for automation: the same data and decisions as the pages, with the same
//! permissions, for a bearer token made on the console's token page. Described by the OpenAPI
//! document at `/api/openapi.json`.

mod activity;
mod audit;
mod captures;
mod dashboard;
mod policy;
mod reviews;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use haven_store::tokens::TokenScope;
use serde_json::json;

use crate::permissions::{any_allowed, scope_allows, Permission};
use crate::route;
use crate::routes::{Guard, Route};
use crate::web::{Denied, Peer, Signed};
use crate::Console;

use Guard::{Public, Token};
use Permission as P;

/// Every API route, with what its token needs (`Token(None)`: any token in force; a `POST`
/// changes something, so its token's scope must allow changes). The router, the OpenAPI
/// check and the role × route test are made from this table.
pub const ROUTES: &[Route] = &[
    route!(GET "/api/openapi.json", Public, openapi),
    route!(GET "/api/v1/me", Token(None), me),
    route!(GET "/api/v1/dashboard", Token(Some(P::Dashboard)), dashboard::dashboard),
    route!(GET "/api/v1/people", Token(Some(P::Activity)), activity::people),
    route!(GET "/api/v1/events", Token(Some(P::Activity)), activity::events),
    route!(GET "/api/v1/reviews", Token(Some(P::Reviews)), reviews::reviews),
    route!(POST "/api/v1/reviews/{id}", Token(Some(P::Reviews)), reviews::decide),
    route!(GET "/api/v1/policy", Token(Some(P::PolicyRead)), policy::policy),
    route!(POST "/api/v1/policy", Token(Some(P::PolicyEdit)), policy::propose),
    route!(POST "/api/v1/policy/changes/{id}", Token(Some(P::PolicyApprove)), policy::settle),
    route!(GET "/api/v1/audit", Token(Some(P::Audit)), audit::audit),
    route!(POST "/api/v1/captures", Token(Some(P::Ingest)), captures::ingest),
];

/// An API refusal, as JSON.
#[derive(Debug)]
pub struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::SignIn | Denied::SecondFactor | Denied::Enrol | Denied::Csrf => ApiError(
                StatusCode::UNAUTHORIZED,
                "a valid API token is needed: Authorization: Bearer TOKEN".into(),
            ),
            Denied::Forbidden(p) => ApiError(
                StatusCode::FORBIDDEN,
                format!(
                    "this token does not allow {} (its scope, or its owner's roles)",
                    p.id()
                ),
            ),
            Denied::NotFound => ApiError(StatusCode::NOT_FOUND, "not found".into()),
            Denied::Invalid(why) => ApiError(StatusCode::BAD_REQUEST, why),
            Denied::Store(e) if e.is_disk_full() => {
                tracing::error!(error = %e, "console API: the store's disk is full");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store's disk is full: nothing can be saved until space is freed".into(),
                )
            }
            Denied::Vault(e) => {
                tracing::error!(error = %e, "console API: vault error");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the vault could not seal or open evidence".into(),
                )
            }
            Denied::Store(e) => {
                tracing::error!(error = %e, "console API: store error");
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the store could not be reached".into(),
                )
            }
        }
    }
}

impl From<haven_store::StoreError> for ApiError {
    fn from(e: haven_store::StoreError) -> Self {
        Denied::Store(e).into()
    }
}

/// Whether a route only reads, or changes something (a `POST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Change,
}

/// The person behind a request's bearer token and the token's scope, as the route's guard
/// found them ([`Guard::Token`]). On a route whose guard does not ask for a token, the holder
/// of any token in force.
#[derive(Debug, Clone)]
pub struct Bearer {
    /// Who, from where.
    pub signed: Signed,
    /// What the token may do.
    pub scope: TokenScope,
}

impl FromRequestParts<Console> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, ApiError> {
        match parts.extensions.get::<Bearer>() {
            Some(b) => Ok(b.clone()),
            None => {
                let access = if parts.method == axum::http::Method::POST {
                    Access::Change
                } else {
                    Access::Read
                };
                let peer = Peer::of(&parts.extensions);
                Ok(c.token_holder(&parts.headers, &peer, None, access).await?)
            }
        }
    }
}

impl Console {
    /// The person behind a request's bearer token, refused unless the token is in force (not
    /// revoked, not past its time), its scope allows `access` to `need`, and its owner's roles
    /// hold `need` (`None`: any token in force).
    pub(crate) async fn token_holder(
        &self,
        headers: &HeaderMap,
        peer: &Peer,
        need: Option<Permission>,
        access: Access,
    ) -> Result<Bearer, Denied> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or(Denied::SignIn)?;
        let holder = self
            .store
            .api_token_holder(token)
            .await?
            .ok_or(Denied::SignIn)?;
        let who = self
            .store
            .identity_by_id(holder.person_id)
            .await?
            .ok_or(Denied::SignIn)?;
        let s = Signed {
            who,
            session: None,
            address: peer.0.clone(),
        };
        if let Some(p) = need {
            if !scope_allows(holder.scope, p, access == Access::Change) {
                return Err(Denied::Forbidden(p));
            }
            s.need(p)?;
        }
        Ok(Bearer {
            signed: s,
            scope: holder.scope,
        })
    }
}

async fn me(Bearer { signed: s, scope }: Bearer) -> Result<Json<serde_json::Value>, ApiError> {
    let permissions: Vec<&str> = Permission::ALL
        .iter()
        .filter(|p| any_allowed(&s.who.roles, **p))
        .filter(|p| scope_allows(scope, **p, false) || scope_allows(scope, **p, true))
        .map(|p| p.id())
        .collect();
    Ok(Json(json!({
        "username": s.who.username,
        "scope": scope.id(),
        "name": s.who.display_name,
        "roles": s.who.roles.iter().map(|r| r.id()).collect::<Vec<_>>(),
        "permissions": permissions,
    })))
}

/// The OpenAPI 3.1 document for the routes above.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../openapi.json"),
    )
        .into_response()
}
