//! The policy: the lists in force, the text with its changes, proposing and settling a change.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::reviews::DecisionForm;
use super::{url_encode, Flash, Layout};
use crate::permissions::Permission;
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;
use haven_store::reviews::ChangeStatus;

struct ChangeRow {
    id: i64,
    when: String,
    author: String,
    summary: String,
    reason: String,
    status: ChangeStatus,
    /// Whether it waits for a second person.
    pending: bool,
    approver: Option<String>,
}

/// One list source in the snapshot in force.
struct ListRow {
    name: String,
    category: String,
    entries: u32,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    l: Layout,
    origin: String,
    snapshot: String,
    built: String,
    hosts: usize,
    lists: Vec<ListRow>,
    approval: bool,
    text: String,
    can_edit: bool,
    can_approve: bool,
    changes: Vec<ChangeRow>,
    message: String,
    error: String,
}

async fn policy_page(
    c: &Console,
    s: &Signed,
    text: Option<String>,
    message: String,
    error: String,
) -> Result<Response, Denied> {
    let engine = c.engine.current();
    let changes = c
        .store
        .policy_changes(50)
        .await?
        .into_iter()
        .map(|ch| ChangeRow {
            id: ch.id,
            when: when(ch.at_ms),
            author: ch.author,
            summary: ch.summary,
            reason: ch.reason,
            pending: ch.status == ChangeStatus::Pending,
            status: ch.status,
            approver: ch.approver,
        })
        .collect();
    Ok((
        super::status_for(&error),
        html(&PolicyPage {
            l: c.layout("Policy", Some(s)),
            origin: if c.policy_path.is_file() {
                c.policy_path.display().to_string()
            } else {
                "the built-in default policy".into()
            },
            snapshot: format!("{:016x}", engine.snapshot().checksum()),
            built: when(engine.snapshot().created_unix() as i64 * 1000),
            hosts: engine.snapshot().host_count().0 + engine.snapshot().host_count().1,
            lists: engine
                .snapshot()
                .sources()
                .iter()
                .map(|src| ListRow {
                    name: src.name.clone(),
                    category: engine
                        .snapshot()
                        .categories()
                        .get(usize::from(src.category))
                        .map_or_else(String::new, |c| c.id.clone()),
                    entries: src.entries,
                })
                .collect(),
            approval: c.config.policy_approval,
            text: text.unwrap_or_else(|| c.policy_text()),
            can_edit: s.may(Permission::PolicyEdit),
            can_approve: s.may(Permission::PolicyApprove),
            changes,
            message,
            error,
        }),
    )
        .into_response())
}

pub(super) async fn policy(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    policy_page(&c, &s, None, flash.done, String::new()).await
}

#[derive(Deserialize)]
pub struct PolicyForm {
    csrf: String,
    policy: String,
    reason: String,
}

pub(super) async fn policy_save(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<PolicyForm>,
) -> Result<Response, Denied> {
    // Browsers send CRLF line ends from a textarea.
    let text = f.policy.replace("\r\n", "\n");
    match c
        .propose(&s, &f.reason, &text, "edited in the console")
        .await
    {
        Ok(crate::change::Outcome::Applied(id)) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!("Policy change {id} is in force."))
        ))
        .into_response()),
        Ok(crate::change::Outcome::Pending(id)) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!(
                "Policy change {id} is waiting for a second person to approve it."
            ))
        ))
        .into_response()),
        // A policy that does not validate: shown again with the reason, nothing changed.
        Err(Denied::Invalid(why)) => policy_page(&c, &s, Some(text), String::new(), why).await,
        Err(e) => Err(e),
    }
}

pub(super) async fn policy_settle(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<DecisionForm>,
) -> Result<Response, Denied> {
    let approve = crate::web::decision(&f.decision, "approve", "reject")?;
    match c.settle(id, approve, &s).await {
        Ok(()) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!(
                "Policy change {id} {}.",
                if approve {
                    "approved and in force"
                } else {
                    "rejected"
                }
            ))
        ))
        .into_response()),
        Err(Denied::Invalid(why)) => policy_page(&c, &s, None, String::new(), why).await,
        Err(e) => Err(e),
    }
}

crate::web::csrf_field!(PolicyForm);
