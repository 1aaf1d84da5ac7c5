//! The JSON API, for automation: the same data and decisions as the pages, with the same
//! permissions, for a bearer token made on the console's token page. Described by the OpenAPI
//! document at `/api/openapi.json`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use haven_store::events::{Cursor, EventQuery};
use serde::Deserialize;
use serde_json::json;

use crate::permissions::{any_allowed, scope_allows, Permission};
use crate::web::{Denied, Peer, Signed};
use crate::Console;
use haven_store::tokens::TokenScope;

/// Every API route and the permission it needs (`None`: any valid token).
pub const ROUTES: &[(&str, &str, Option<Permission>)] = &[
    ("GET", "/api/v1/me", None),
    ("GET", "/api/v1/dashboard", Some(Permission::Dashboard)),
    ("GET", "/api/v1/people", Some(Permission::Activity)),
    ("GET", "/api/v1/events", Some(Permission::Activity)),
    ("GET", "/api/v1/reviews", Some(Permission::Reviews)),
    ("POST", "/api/v1/reviews/{id}", Some(Permission::Reviews)),
    ("GET", "/api/v1/policy", Some(Permission::PolicyRead)),
    ("POST", "/api/v1/policy", Some(Permission::PolicyEdit)),
    (
        "POST",
        "/api/v1/policy/changes/{id}",
        Some(Permission::PolicyApprove),
    ),
    ("GET", "/api/v1/audit", Some(Permission::Audit)),
    ("POST", "/api/v1/captures", Some(Permission::Ingest)),
];

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route("/api/v1/dashboard", get(dashboard))
        .route("/api/v1/people", get(people))
        .route("/api/v1/events", get(events))
        .route("/api/v1/reviews", get(reviews))
        .route("/api/v1/reviews/{id}", post(decide))
        .route("/api/v1/policy", get(policy).post(propose))
        .route("/api/v1/policy/changes/{id}", post(settle))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/captures", post(ingest))
}

/// An API refusal, as JSON.
struct ApiError(StatusCode, String);

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
                eprintln!("console API: store error: {e}");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store's disk is full: nothing can be saved until space is freed".into(),
                )
            }
            Denied::Store(e) => {
                eprintln!("console API: store error: {e}");
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

/// Whether a route only reads, or changes something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Change,
}

impl Console {
    /// The person behind a request's bearer token, refused unless the token is in force (not
    /// revoked, not past its time), its scope allows `access` to `need`, and its owner's roles
    /// hold `need` (`None`: any token in force).
    async fn token_holder(
        &self,
        headers: &HeaderMap,
        peer: &Peer,
        need: Option<Permission>,
        access: Access,
    ) -> Result<(Signed, TokenScope), Denied> {
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
        Ok((s, holder.scope))
    }
}

async fn me(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, scope) = c.token_holder(&headers, &peer, None, Access::Read).await?;
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

async fn dashboard(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    c.token_holder(&headers, &peer, Some(Permission::Dashboard), Access::Read)
        .await?;
    let from = crate::pages::today_start();
    let categories: Vec<_> = c
        .store
        .blocks_by_category(from)
        .await?
        .into_iter()
        .map(|(category, blocks)| json!({ "category": category, "blocks": blocks }))
        .collect();
    let sites: Vec<_> = c
        .store
        .top_blocked(from, 10)
        .await?
        .into_iter()
        .map(|(site, blocks)| json!({ "site": site, "blocks": blocks }))
        .collect();
    Ok(Json(json!({
        "from_ms": from,
        "blocks_by_category": categories,
        "top_blocked": sites,
        "open_reviews": c.store.reviews("open", 1000).await?.len(),
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PeopleQuery {
    q: String,
}

async fn people(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<PeopleQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Activity), Access::Read)
        .await?;
    if q.q.trim().is_empty() {
        return Err(Denied::Invalid("q: say whom to look for".into()).into());
    }
    let found = crate::pages::find_people_audited(&c, &s, &q.q, "API").await?;
    Ok(Json(json!({ "people": found })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct EventsQuery {
    user: Option<String>,
    client: Option<String>,
    category: Option<String>,
    action: Option<String>,
    source: Option<String>,
    search: Option<String>,
    from_ms: Option<i64>,
    to_ms: Option<i64>,
    before: Option<String>,
    limit: Option<i64>,
}

async fn events(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Activity), Access::Read)
        .await?;
    let before = match q.before.as_deref() {
        Some(t) => Some(
            Cursor::parse(t)
                .ok_or_else(|| Denied::Invalid(format!("before: {t:?} is not AT-ID")))?,
        ),
        None => None,
    };
    let query = EventQuery {
        user: q.user,
        client: q.client,
        category: q.category,
        action: q.action,
        source: q.source,
        search: q.search,
        from_ms: q.from_ms,
        to_ms: q.to_ms,
        before,
        limit: q.limit.unwrap_or(50).clamp(1, 1000),
    };
    crate::pages::audit_activity_read(&c, &s, &query, "API").await?;
    let mut found = c.store.search_events(&query).await?;
    let next = (found.len() as i64 == query.limit)
        .then(|| found.last().map(|e| e.cursor().token()))
        .flatten();
    if !s.may(Permission::Triage) {
        c.monitoring
            .withhold_graded_searches(&mut found, query.search.is_some());
    }
    Ok(Json(json!({ "events": found, "next": next })))
}

#[derive(Debug, Deserialize)]
struct ReviewsQuery {
    #[serde(default = "open")]
    status: String,
}

fn open() -> String {
    "open".into()
}

async fn reviews(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<ReviewsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Reviews), Access::Read)
        .await?;
    let found = crate::pages::reviews_audited(&c, &s, &q.status, 1000, "API").await?;
    Ok(Json(json!({ "reviews": found })))
}

#[derive(Debug, Deserialize)]
struct Decision {
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    scope: Option<String>,
}

async fn decide(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(d): Json<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Reviews), Access::Change)
        .await?;
    let approve = crate::web::decision(&d.decision, "approve", "decline")?;
    let whole_site = d.scope.as_deref() != Some("page");
    let outcome = c
        .decide_review(id, approve, whole_site, &d.note, &s)
        .await?;
    Ok(Json(match outcome {
        None => json!({ "review": id, "status": "declined" }),
        Some(crate::change::Outcome::Applied(change)) => {
            json!({ "review": id, "status": "approved", "policy_change": change, "change_status": "applied" })
        }
        Some(crate::change::Outcome::Pending(change)) => {
            json!({ "review": id, "status": "approved", "policy_change": change, "change_status": "pending" })
        }
    }))
}

async fn policy(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    c.token_holder(&headers, &peer, Some(Permission::PolicyRead), Access::Read)
        .await?;
    let engine = c.engine.current();
    Ok(Json(json!({
        "text": c.policy_text(),
        "snapshot": format!("{:016x}", engine.snapshot().checksum()),
        "approval_required": c.config.policy_approval,
        "changes": c.store.policy_changes(100).await?,
    })))
}

/// A proposed policy: the whole text, and why.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Proposal {
    policy: String,
    reason: String,
}

async fn propose(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Json(p): Json<Proposal>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(
            &headers,
            &peer,
            Some(Permission::PolicyEdit),
            Access::Change,
        )
        .await?;
    let outcome = c
        .propose(&s, &p.reason, &p.policy, "changed through the API")
        .await?;
    Ok(Json(match outcome {
        crate::change::Outcome::Applied(id) => json!({ "change": id, "status": "applied" }),
        crate::change::Outcome::Pending(id) => json!({ "change": id, "status": "pending" }),
    }))
}

async fn settle(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(d): Json<Decision>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(
            &headers,
            &peer,
            Some(Permission::PolicyApprove),
            Access::Change,
        )
        .await?;
    let approve = crate::web::decision(&d.decision, "approve", "reject")?;
    c.settle(id, approve, &s).await?;
    Ok(Json(json!({
        "change": id,
        "status": if approve { "applied" } else { "rejected" },
    })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct AuditQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

async fn audit(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Audit), Access::Read)
        .await?;
    let entries = c
        .store
        .read_audit_log(
            &s.who.username,
            &s.address,
            q.before,
            q.limit.unwrap_or(100),
        )
        .await?;
    Ok(Json(json!({ "entries": entries })))
}

/// The OpenAPI 3.1 document for the routes above.
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
        .into_response()
}

/// Text from another capture source.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestBody {
    text: String,
    source: String,
    #[serde(default)]
    url: String,
    user: Option<String>,
    #[serde(default)]
    device: String,
    at_ms: Option<i64>,
}

async fn ingest(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Json<IngestBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (s, _) = c
        .token_holder(&headers, &peer, Some(Permission::Ingest), Access::Change)
        .await?;
    let Json(b) = body.map_err(|e| Denied::Invalid(format!("the body: {}", e.body_text())))?;
    let bad = |why: &str| Err(ApiError(StatusCode::BAD_REQUEST, why.to_owned()));
    if b.text.trim().is_empty() || b.text.len() > 20_000 {
        return bad("text: 1 to 20,000 bytes");
    }
    if b.source.is_empty()
        || b.source.len() > 32
        || !b
            .source
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return bad("source: 1 to 32 lower-case letters, digits or dashes");
    }
    if b.url.len() > 2048 || b.device.len() > 200 {
        return bad("url: at most 2,048 bytes; device: at most 200");
    }
    let now = haven_store::now_ms();
    let at = b.at_ms.unwrap_or(now);
    if at < now - 86_400_000 || at > now + 60_000 {
        return bad("at_ms: at most a day old, at most a minute ahead");
    }
    if let Some(u) = &b.user {
        if c.store.identity(u).await?.is_none() {
            return bad("user: no such person");
        }
    }
    let g = c.monitoring.library().grade(&b.text);
    let mut out = json!({
        "grade": g.grade,
        "categories": g.categories.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(),
        "capture": null,
        "stored_grade": null,
        "alert": false,
    });
    if g.grade > 0 {
        let capture = haven_store::captures::NewCapture::graded(
            &g,
            at,
            &b.source,
            if b.device.is_empty() {
                "unknown device"
            } else {
                &b.device
            },
            b.user.as_deref(),
            &b.url,
            &b.text,
        );
        let recorded = c.monitoring.record(&c.store, &[capture]).await?;
        if let Some(r) = recorded.first() {
            c.store
                .audit(
                    &AuditEntry::new(
                        &s.who.username,
                        &s.address,
                        AuditKind::IngestCapture,
                        Subject::Capture(r.id),
                    )
                    .count("grade", i64::from(r.grade)),
                )
                .await?;
            out["capture"] = json!(r.id);
            out["stored_grade"] = json!(r.grade);
            out["alert"] = json!(r.alert.is_some());
        }
    }
    Ok(Json(out))
}
