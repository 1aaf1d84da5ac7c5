//! Review requests from block pages: the queue (its read audited, for the page and the API)
//! and deciding one.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{url_encode, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;
use haven_store::reviews::ReviewStatus;

struct ReviewRow {
    id: i64,
    when: String,
    client: String,
    user: Option<String>,
    group: String,
    url: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    l: Layout,
    reviews: Vec<ReviewRow>,
    message: String,
    approval: bool,
}

pub(super) async fn reviews(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let open = reviews_audited(&c, &s, ReviewStatus::Open, 200, "page").await?;
    let reviews = open
        .into_iter()
        .map(|r| ReviewRow {
            id: r.id,
            when: when(r.at_ms),
            client: r.client,
            user: r.user,
            group: r.group,
            url: r.url,
            reason: r.reason,
        })
        .collect();
    Ok(html(&ReviewsPage {
        l: c.layout("Review requests", Some(&s)),
        reviews,
        message: flash.done,
        approval: c.config.policy_approval,
    }))
}

/// Deciding a review request or a policy change.
#[derive(Deserialize)]
pub struct DecisionForm {
    csrf: String,
    pub(super) decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    scope: String,
}

pub(super) async fn decide_review(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<DecisionForm>,
) -> Result<Response, Denied> {
    let approve = crate::web::decision(&f.decision, "approve", "decline")?;
    let outcome = c
        .decide_review(id, approve, f.scope != "page", &f.note, &s)
        .await?;
    let done = match outcome {
        None => format!("Review {id} declined."),
        Some(crate::change::Outcome::Applied(change)) => {
            format!("Review {id} approved: allowed now (policy change {change}).")
        }
        Some(crate::change::Outcome::Pending(change)) => {
            format!("Review {id} approved: policy change {change} waits for a second person.")
        }
    };
    Ok(Redirect::to(&format!("/reviews?done={}", url_encode(&done))).into_response())
}

/// Review requests with `status` (`limit` at most), the reading recorded in the audit log with
/// how many were shown.
pub(crate) async fn reviews_audited(
    c: &Console,
    s: &Signed,
    status: ReviewStatus,
    limit: i64,
    via: &'static str,
) -> Result<Vec<haven_store::reviews::Review>, Denied> {
    let found = c.store.reviews(status, limit).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadReviews,
                Subject::ReviewQueue,
            )
            .count("shown", i64::try_from(found.len()).unwrap_or(i64::MAX))
            .word("via", via),
        )
        .await?;
    Ok(found)
}

crate::web::csrf_field!(DecisionForm);
