//! The audit log: reading it (the read itself audited) and verifying the chain.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use haven_store::audit::{AuditCheck, AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{CsrfForm, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;

struct AuditRow {
    id: i64,
    when: String,
    actor: String,
    address: String,
    action: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    entries: Vec<AuditRow>,
    latest: String,
    more: String,
    check: String,
    check_ok: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuditQuery {
    before: Option<i64>,
}

async fn audit_page(
    c: &Console,
    s: &Signed,
    before: Option<i64>,
    check: Option<AuditCheck>,
) -> Result<Response, Denied> {
    let entries = c
        .store
        .read_audit_log(&s.who.username, &s.address, before, 100)
        .await?;
    let latest = c
        .store
        .audit_log(None, 1)
        .await?
        .first()
        .map(|e| e.hash.clone())
        .unwrap_or_default();
    let more = (entries.len() == 100)
        .then(|| entries.last().map(|e| format!("/audit?before={}", e.id)))
        .flatten()
        .unwrap_or_default();
    let (check, check_ok) = match check {
        None => (String::new(), true),
        Some(AuditCheck::Intact { entries }) => (
            format!("The chain is intact: {entries} entries, every hash as written."),
            true,
        ),
        Some(AuditCheck::Broken { id, why }) => {
            (format!("The chain is BROKEN at entry {id}: {why}."), false)
        }
    };
    Ok(html(&AuditPage {
        l: c.layout("Audit log", Some(s)),
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                id: e.id,
                when: when(e.at_ms),
                actor: e.actor,
                address: e.address,
                action: e.action,
                subject: e.subject,
                detail: e.detail,
            })
            .collect(),
        latest,
        more,
        check,
        check_ok,
    }))
}

pub(super) async fn audit(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Denied> {
    audit_page(&c, &s, q.before, None).await
}

pub(super) async fn audit_verify(
    State(c): State<Console>,
    s: Signed,
    SessionForm(_): SessionForm<CsrfForm>,
) -> Result<Response, Denied> {
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            AuditKind::VerifyAuditLog,
            Subject::AuditLog,
        ))
        .await?;
    let check = c.store.verify_audit().await?;
    audit_page(&c, &s, None, Some(check)).await
}
