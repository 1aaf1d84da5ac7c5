//! A request whose whole URL is visible (plain HTTP, or HTTPS decrypted): decided for the
//! client's group, then forwarded (safe search and Google's allowed domains applied, the answer
//! scored for groups with a `phrase_limit`) or answered with the block or warning page.

use std::sync::Arc;
use std::time::Instant;

use haven_core::phrases::Scanner;
use haven_core::policy::Action;
use haven_core::{Engine, Target};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode, Uri};

use super::body::{page_response, Body};
use super::decide::{blocked_reason, Asked, Outcome, Who};
use super::forward::BlockedType;
use super::local::{asker, Form, CONTINUE_PATH, REVIEW_PATH};
use super::scan::Scanned;
use super::sinks::PageSeen;
use super::{Conn, Proxy};
use crate::clock;
use crate::metrics::Metrics;
use crate::page;
use crate::score::{self, Scored};

/// Where a request goes: host, port, and whether over TLS.
#[derive(Debug, Clone)]
pub(super) struct Dest {
    pub(super) host: String,
    pub(super) port: u16,
    pub(super) tls: bool,
}

/// The page for a request the policy stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The block page (counted as blocked; it may offer "request a review").
    Block,
    /// The warning page with its "Continue".
    Warn,
}

impl Proxy {
    /// A request whose whole URL is visible (plain HTTP, or HTTPS decrypted): decided, then
    /// forwarded to `dest` or answered with the block page.
    pub(super) async fn filtered(
        &self,
        mut req: Request<Incoming>,
        url: String,
        dest: Dest,
        conn: &Arc<Conn>,
        who: &Who,
        started: Instant,
    ) -> Response<Body> {
        let engine = self.engine.current();
        let search = haven_core::searchterm::search_term(
            &dest.host,
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        )
        .map(|s| s.term);
        let asked = Asked {
            who,
            url: &url,
            search,
            started,
        };
        let group_name = &who.group;
        let Some(group) = engine.group_id(group_name) else {
            let reason = format!("group {group_name} is not in the policy");
            self.emit(&asked, Outcome::blocked(None, &reason));
            return self.block_page(&engine, &asked, &reason, None, Stop::Block);
        };
        let Ok(target) = Target::parse(&url) else {
            self.emit(&asked, Outcome::blocked(None, "unreadable address"));
            return page_response(
                StatusCode::BAD_REQUEST,
                page::error(self.school(&engine), "Unreadable address", &url),
            );
        };
        let d = engine.decide(&target, group, None, (self.clock)());
        let (category, rule) = engine.brief(group, &d);
        // Most requests are plain allows, which record no reason: none is built for them.
        let reason = match d.action {
            Action::Allow => String::new(),
            _ => blocked_reason(category, rule),
        };
        let stop = match d.action {
            Action::Block => Some(Stop::Block),
            Action::Warn if !self.continued(conn.peer.ip(), &dest.host) => Some(Stop::Warn),
            _ => None,
        };
        if let Some(stop) = stop {
            let outcome = Outcome {
                action: d.action,
                category,
                reason: Some(reason.clone()),
            };
            self.emit(&asked, outcome);
            return self.block_page(&engine, &asked, &reason, category, stop);
        }
        // Passed: allowed, alert-only, rewritten, or a warning clicked through.
        let reason = if d.action == Action::Warn {
            format!("{reason}; continued after the warning")
        } else {
            reason
        };
        if d.action == Action::Rewrite {
            if let Some((engine_id, mode)) = d.safe_search {
                rewrite_safe_search(&mut req, engine_id, mode);
            }
        }
        let settings = engine.policy().group(group_name);
        if let Some(g) = settings {
            allow_google_domains(&mut req, &dest.host, &g.google_allowed_domains);
        }
        let passed = Outcome {
            action: d.action,
            category,
            reason: match (d.action, d.safe_search) {
                (Action::Allow, _) => None,
                (Action::Rewrite, Some((e, mode))) => {
                    Some(format!("safe search: {} ({mode:?})", e.id()).to_lowercase())
                }
                _ => Some(reason),
            },
        };
        let blocked_types = settings.map_or(&[][..], |g| &g.block_file_types[..]);
        let limit = settings.and_then(|g| g.phrase_limit);
        let classifies =
            self.model.is_some() && settings.is_some_and(|g| !g.classify_pages.is_empty());
        let resp = match self.forward(req, dest, &engine, blocked_types, conn).await {
            Ok(resp) => resp,
            Err(BlockedType(ext)) => {
                let reason = format!("file type {ext} (groups.{group_name}.block_file_types)");
                self.emit(&asked, Outcome::blocked(None, &reason));
                return self.block_page(&engine, &asked, &reason, None, Stop::Block);
            }
        };
        // Downloads scanned by ClamAV for groups with `scan_downloads` (proxy/scan.rs).
        let (resp, passed) = match self.scanned(resp, settings, &engine, &asked).await {
            Scanned::Pass(resp, None) => (resp, passed),
            Scanned::Pass(resp, Some(note)) => {
                let reason = Some(match passed.reason {
                    Some(r) => format!("{r}; {note}"),
                    None => note,
                });
                (resp, Outcome { reason, ..passed })
            }
            Scanned::Blocked(page) => return page,
        };
        let scanner = self.scanner.clone().zip(limit);
        if (scanner.is_none() && !classifies) || !resp.status().is_success() {
            self.emit(&asked, passed);
            return resp;
        }
        // The model in force and the group's categories, asked for only now that there is a
        // page to read.
        let classify = settings.filter(|_| classifies).and_then(|g| {
            Some(score::Classify {
                model: self.model.as_ref().and_then(|m| m())?,
                categories: g.classify_pages.clone(),
            })
        });
        self.scored(resp, scanner, classify, &engine, &asked, passed)
            .await
    }

    /// A website's answer scored for a group with a `phrase_limit` or classified for one with
    /// `classify_pages`: passed on, its event saying whether it was scored, or over the limit
    /// (or classified in a blocked category) and replaced by the block page.
    async fn scored(
        &self,
        resp: Response<Body>,
        scanner: Option<(Arc<Scanner>, i64)>,
        classify: Option<score::Classify>,
        engine: &Engine,
        asked: &Asked<'_>,
        passed: Outcome<'_>,
    ) -> Response<Body> {
        let cap = self.config.score_cap_bytes;
        let limit = scanner.as_ref().map_or(0, |(_, l)| *l);
        match score::score(resp, scanner, classify, cap).await {
            Scored::Classified(c) => {
                Metrics::add(&self.metrics.scored);
                let filter_category = score::filter_category(c.category);
                // The event keeps the passage that decided (cut to a few hundred characters).
                let reason = format!(
                    "page classified as {} (grade {}, likelihood {:.2}; groups.{}.classify_pages): \"{}\"",
                    c.category,
                    c.grade,
                    c.likelihood,
                    asked.who.group,
                    c.passage.trim()
                );
                self.emit(asked, Outcome::blocked(Some(filter_category), &reason));
                let shown = format!(
                    "the page's own words read as {} (grade {} of 5)",
                    c.category, c.grade
                );
                self.block_page(engine, asked, &shown, Some(filter_category), Stop::Block)
            }
            Scored::NotText(resp) => {
                self.emit(asked, passed);
                resp
            }
            Scored::Read(resp, page) => {
                Metrics::add(&self.metrics.scored);
                self.emit(asked, passed);
                if let Some(sink) = &self.pages {
                    sink(PageSeen {
                        at_ms: clock::now_ms(),
                        client: asked.who.client,
                        user: asked.who.user.clone(),
                        url: asked.url.to_owned(),
                        page,
                    });
                }
                resp
            }
            Scored::Pass(resp, note) => {
                Metrics::add(if note.is_some() {
                    &self.metrics.unscored
                } else {
                    &self.metrics.scored
                });
                let reason = match (passed.reason, note) {
                    (Some(r), Some(n)) => Some(format!("{r}; {n}")),
                    (r, n) => r.or(n),
                };
                self.emit(asked, Outcome { reason, ..passed });
                resp
            }
            Scored::Over(score) => {
                Metrics::add(&self.metrics.scored);
                let top = score.categories.first().map(|(c, _)| c.clone());
                let phrases: Vec<String> = score
                    .phrases
                    .iter()
                    .take(5)
                    .map(|(p, n)| format!("{p} x{n}"))
                    .collect();
                let reason = format!(
                    "content score {} over {limit} (groups.{}.phrase_limit): {} ({})",
                    score.total,
                    asked.who.group,
                    top.as_deref().unwrap_or("phrases"),
                    phrases.join(", ")
                );
                self.emit(asked, Outcome::blocked(top.as_deref(), &reason));
                self.block_page(engine, asked, &reason, top.as_deref(), Stop::Block)
            }
        }
    }

    /// The block page, or the warning page with its "Continue".
    pub(super) fn block_page(
        &self,
        engine: &Engine,
        asked: &Asked<'_>,
        reason: &str,
        category: Option<&str>,
        stop: Stop,
    ) -> Response<Body> {
        let (url, who) = (asked.url, asked.who);
        if stop == Stop::Block {
            self.metrics.blocked(category);
        }
        let cat = category.and_then(haven_core::category::by_id);
        // A review request carries who was blocked and under which group's policy, bound into
        // its token: the form is posted straight to the proxy, without the sign-in.
        let user = who.user.as_deref().unwrap_or("");
        let token = self.token(Form::Review, url, who.client, &asker(user, &who.group), 0);
        let go_on = self.token(Form::Continue, url, who.client, "", 0);
        // Where browsers can reach the proxy: its public address, else an address it listens
        // on that is not the wildcard.
        let reachable = self.config.public_address.as_deref().or_else(|| {
            self.own
                .iter()
                .rev()
                .find(|a| !a.starts_with("0.0.0.0:") && !a.starts_with("[::]:"))
                .map(String::as_str)
        });
        let reachable = reachable.unwrap_or("127.0.0.1:3128");
        let action = format!("http://{reachable}{REVIEW_PATH}");
        let proceed = format!("http://{reachable}{CONTINUE_PATH}");
        let html = page::blocked(&page::Blocked {
            school: self.school(engine),
            url,
            category: cat.map(|c| c.name).or(category),
            about: cat.map(|c| c.description),
            rule: reason,
            review: (self.config.reviews && self.reviews.is_some() && stop == Stop::Block)
                .then_some((action.as_str(), token.as_str())),
            asker: (user, &who.group),
            proceed: (stop == Stop::Warn).then_some((proceed.as_str(), go_on.as_str())),
        });
        page_response(StatusCode::FORBIDDEN, html)
    }
}

/// Google Workspace's allowed domains (`google_allowed_domains`), on a request to Google.
fn allow_google_domains(req: &mut Request<Incoming>, host: &str, domains: &[String]) {
    if domains.is_empty() || !haven_core::safesearch::is_google(host.as_bytes()) {
        return;
    }
    if let Ok(v) = HeaderValue::from_str(&domains.join(",")) {
        req.headers_mut().insert("x-googapps-allowed-domains", v);
    }
}

/// A search rewritten to the engine's safe search (and YouTube's restriction header).
fn rewrite_safe_search(
    req: &mut Request<Incoming>,
    engine: haven_core::safesearch::SearchEngine,
    mode: haven_core::policy::SafeSearchMode,
) {
    let uri = req.uri().clone();
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let rewritten = crate::safe::rewrite_query(engine, pq);
    let mut parts = uri.into_parts();
    if let Ok(p) = rewritten.parse() {
        parts.path_and_query = Some(p);
        if let Ok(u) = Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    if let Some(v) = crate::safe::youtube_restrict(engine, mode) {
        req.headers_mut()
            .insert("youtube-restrict", HeaderValue::from_static(v));
    }
}
