//! The dashboard (or a plain welcome for roles without one).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use haven_store::audit::{AuditEntry, AuditKind, Subject};

use super::Layout;
use crate::permissions::Permission;
use crate::web::{html, when, Denied, Signed};
use crate::Console;
use haven_store::reviews::ReviewStatus;

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    l: Layout,
    name: String,
    roles: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    /// (id, name, blocks)
    categories: Vec<(String, String, i64)>,
    most: i64,
    sites: Vec<(String, i64)>,
    open_reviews: usize,
    /// Open captures graded 4 or 5: (grade, when, who, categories, text).
    captures: Vec<(i64, String, String, String, String)>,
}

/// Midnight today, local time, in ms since the epoch.
pub(crate) fn today_start() -> i64 {
    let now = haven_runtime::clock::local();
    now.start_of_day()
        .map_or(now.timestamp().as_millisecond(), |z| {
            z.timestamp().as_millisecond()
        })
}

pub(super) async fn home(State(c): State<Console>, s: Signed) -> Result<Response, Denied> {
    if !s.may(Permission::Dashboard) {
        return Ok(html(&HomePage {
            l: c.layout("Haven", Some(&s)),
            name: s.who.display_name.clone(),
            roles: s
                .who
                .roles
                .iter()
                .map(|r| r.id())
                .collect::<Vec<_>>()
                .join(", "),
        }));
    }
    let from = today_start();
    let categories: Vec<(String, String, i64)> = c
        .store
        .blocks_by_category(from)
        .await?
        .into_iter()
        .map(|(id, n)| {
            let name =
                haven_core::category::by_id(&id).map_or_else(|| id.clone(), |k| k.name.to_owned());
            (id, name, n)
        })
        .collect();
    let most = categories.iter().map(|c| c.2).max().unwrap_or(1);
    let sites = c.store.top_blocked(from, 10).await?;
    let open_reviews = c.store.reviews(ReviewStatus::Open, 1000).await?.len();
    // Captures are safeguarding data: shown to those who triage them, and the read audited.
    let captures = if s.may(Permission::Triage) {
        let found = c.store.open_captures(4, 20).await?;
        if !found.is_empty() {
            c.store
                .audit(
                    &AuditEntry::new(
                        &s.who.username,
                        &s.address,
                        AuditKind::ReadCaptures,
                        Subject::OpenCaptures,
                    )
                    .word("on", "dashboard")
                    .count("min grade", 4)
                    .count("shown", found.len() as i64),
                )
                .await?;
        }
        found
            .into_iter()
            .map(|k| {
                (
                    k.grade,
                    when(k.at_ms),
                    k.user.unwrap_or(k.client),
                    k.categories,
                    k.text,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(html(&DashboardPage {
        l: c.layout("Dashboard", Some(&s)),
        categories,
        most,
        sites,
        open_reviews,
        captures,
    }))
}
