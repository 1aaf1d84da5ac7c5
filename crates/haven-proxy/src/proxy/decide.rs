//! Who is asking, what the policy says about it, and the event that records it.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use haven_core::engine::Rule;
use haven_core::event::Event;
use haven_core::policy::Action;
use haven_core::{Engine, Target};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::{page_response, Body};
use super::Proxy;
use crate::clock;
use crate::metrics::Metrics;
use crate::page;

/// Why a tunnel was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refused {
    /// The policy blocks it: category and reason.
    Blocked(Option<String>, String),
    /// The filter cannot tell what it is (a bypass attempt), and why.
    Bypass(String),
}

/// Who a request is from: the address, the group whose policy applies, and the person when
/// they signed in to the proxy.
#[derive(Debug, Clone)]
pub(super) struct Who {
    pub(super) client: IpAddr,
    pub(super) group: String,
    pub(super) user: Option<String>,
}

/// A request as its event records it: who asked, for what, and when the proxy began on it.
#[derive(Debug)]
pub(super) struct Asked<'a> {
    pub(super) who: &'a Who,
    pub(super) url: &'a str,
    /// The search term in the address, if it is a search.
    pub(super) search: Option<String>,
    pub(super) started: Instant,
}

/// What became of a request, for its event.
#[derive(Debug)]
pub(super) struct Outcome<'a> {
    pub(super) action: Action,
    pub(super) category: Option<&'a str>,
    pub(super) reason: Option<String>,
}

impl<'a> Outcome<'a> {
    /// Blocked, in `category` (if any), for `reason`.
    pub(super) fn blocked(category: Option<&'a str>, reason: &str) -> Self {
        Outcome {
            action: Action::Block,
            category,
            reason: Some(reason.to_owned()),
        }
    }
}

/// Why the policy blocks something, as the block page and the event say it: the category and
/// the rule, or the rule alone.
pub(super) fn blocked_reason(category: Option<&str>, rule: Cow<'_, str>) -> String {
    match category {
        Some(c) => format!("{c} ({rule})"),
        None => rule.into_owned(),
    }
}

impl Proxy {
    /// Who a request is from. With `authenticate`, the credentials a browser sends are checked
    /// (wrong ones get 407 again; with `required`, so does a request without any) and the
    /// person's group replaces the address's.
    pub(super) async fn identify(
        &self,
        headers: &hyper::HeaderMap,
        peer: SocketAddr,
    ) -> Result<Who, Response<Body>> {
        let (group, _) = self.clients.place(peer.ip());
        let mut who = Who {
            client: peer.ip(),
            group: group.to_owned(),
            // A device the table gives an owner says who; a sign-in, below, says so too.
            user: self.clients.owner(peer.ip()).map(str::to_owned),
        };
        let mode = self.config.authenticate;
        let Some(auth) = self.authenticator.as_deref() else {
            return Ok(who);
        };
        if mode == crate::auth::Authenticate::Off {
            return Ok(who);
        }
        match crate::auth::basic_credentials(headers) {
            Some((user, password)) => {
                match self
                    .credentials
                    .check(auth, &user, &password, peer.ip())
                    .await
                {
                    Ok(Some(person)) => {
                        who.user = Some(person.username);
                        who.group = person.group;
                        Ok(who)
                    }
                    Ok(None) => {
                        Metrics::add(&self.metrics.auth_failures);
                        Err(self.sign_in_needed(
                            "That user name and password did not work. Try again, or ask your teacher.",
                        ))
                    }
                    Err(crate::auth::TooManyFailures) => {
                        Metrics::add(&self.metrics.auth_failures);
                        Err(self.sign_in_needed(
                            "Too many wrong passwords from this computer: wait a quarter of an hour, or ask your teacher.",
                        ))
                    }
                }
            }
            None if mode == crate::auth::Authenticate::Required => {
                Err(self.sign_in_needed("Use your school user name and password."))
            }
            None => Ok(who),
        }
    }

    /// 407: the browser asks for the school user name and password, saying `text`.
    fn sign_in_needed(&self, text: &str) -> Response<Body> {
        let engine = self.engine.current();
        let school = self.school(&engine);
        let mut resp = page_response(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            page::error(school, "Sign in to use the internet", text),
        );
        let realm = format!(
            "Basic realm=\"{}\", charset=\"UTF-8\"",
            school.replace(['"', '\\'], "")
        );
        if let Ok(v) = HeaderValue::from_str(&realm) {
            resp.headers_mut().insert(header::PROXY_AUTHENTICATE, v);
        }
        resp
    }

    /// Counts a request, and records its event when events are kept.
    pub(super) fn emit(&self, asked: &Asked<'_>, outcome: Outcome<'_>) {
        Metrics::add(&self.metrics.requests);
        let Some(sink) = &self.events else { return };
        sink.emit(Event {
            at_ms: clock::now_ms(),
            source: haven_core::event::Source::Proxy,
            client: asked.who.client,
            group: asked.who.group.clone(),
            user: asked.who.user.clone(),
            name: asked.url.to_owned(),
            qtype: None,
            action: outcome.action,
            category: outcome.category.map(str::to_owned),
            reason: outcome.reason,
            search: asked.search.clone(),
            latency_us: asked.started.elapsed().as_micros() as u64,
        });
    }

    /// The decision on a tunnel to a bare address (an IP-literal CONNECT, or a ClientHello
    /// naming no site, decided as the address it goes to): a list or rule that names the
    /// address decides; else the group's `address_tunnels`, off by default, since the filter
    /// cannot tell which site an address is.
    pub(super) fn decide_address(
        &self,
        engine: &Engine,
        group_name: &str,
        ip: IpAddr,
    ) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        match self.decide_name(engine, group_name, &ip.to_string(), "unreadable address")? {
            Rule::Default { .. } if !engine
                .policy()
                .group(group_name)
                .is_some_and(|g| g.address_tunnels) =>
            {
                Err(Refused::Bypass(format!(
                    "a tunnel to the address {ip}, which names no site (groups.{group_name}.address_tunnels)"
                )))
            }
            _ => Ok(()),
        }
    }

    /// The decision on a bare host name for a group: refused when blocked (warnings included:
    /// a tunnel cannot show the page with its click-through).
    pub(super) fn decide_host(
        &self,
        engine: &Engine,
        group_name: &str,
        host: &str,
    ) -> Result<(), Refused> {
        self.decide_name(engine, group_name, host, "unreadable host name")
            .map(|_| ())
    }

    /// The decision on a tunnel's host name or address for a group: refused (and counted)
    /// when blocked, warnings included; otherwise the rule that allowed it.
    fn decide_name(
        &self,
        engine: &Engine,
        group_name: &str,
        text: &str,
        unreadable: &str,
    ) -> Result<Rule, Refused> {
        let Some(group) = engine.group_id(group_name) else {
            self.metrics.blocked(None);
            return Err(Refused::Blocked(
                None,
                format!("group {group_name} is not in the policy"),
            ));
        };
        let Ok(target) = Target::parse(text) else {
            self.metrics.blocked(None);
            return Err(Refused::Blocked(None, unreadable.to_owned()));
        };
        let d = engine.decide(&target, group, None, (self.clock)());
        match d.action {
            Action::Block | Action::Warn => {
                let (category, rule) = engine.brief(group, &d);
                self.metrics.blocked(category);
                let reason = blocked_reason(category, rule);
                Err(Refused::Blocked(category.map(str::to_owned), reason))
            }
            _ => Ok(d.rule),
        }
    }
}

/// A URI's host as it is dialled and decided: an IPv6 literal without its brackets, lower case.
pub(super) fn bare_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}
