//! Requests addressed to the proxy itself: the PAC file (`proxy.pac`, `wpad.dat`), the school's
//! CA certificate, the warning page's "Continue" and the block page's review request. Forms
//! carry a token that binds them to the page, the client and the hour.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use haven_core::policy::Action;
use haven_core::{Engine, Target};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};

use super::body::{empty, full, not_found, page_response, Body};
use super::decide::blocked_reason;
use super::sinks::{ReviewOutcome, ReviewRequest};
use super::{Conn, Proxy};
use crate::clock;
use crate::metrics::Metrics;
use crate::page;

/// Largest form the proxy reads (a review request).
const MAX_FORM: usize = 8 * 1024;
/// Path of the review form's target on the proxy itself.
pub(super) const REVIEW_PATH: &str = "/_haven/review";
/// Path of the warning page's "Continue" on the proxy itself.
pub(super) const CONTINUE_PATH: &str = "/_haven/continue";
/// How long "Continue" on a warning lets a client through to that site.
const CONTINUE_FOR: Duration = Duration::from_secs(3600);
/// Click-throughs remembered at once.
const MAX_CONTINUES: usize = 10_000;

/// The networks every PAC file sends direct: the private ranges and loopback.
const PRIVATE: [(Ipv4Addr, Ipv4Addr); 4] = [
    (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0)),
    (Ipv4Addr::new(172, 16, 0, 0), Ipv4Addr::new(255, 240, 0, 0)),
    (Ipv4Addr::new(192, 168, 0, 0), Ipv4Addr::new(255, 255, 0, 0)),
    (Ipv4Addr::new(127, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0)),
];

/// The form a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Form {
    /// "Request a review" on a block page.
    Review,
    /// "Continue" on a warning page.
    Continue,
}

/// Warnings clicked through: (client, host) until when.
#[derive(Debug, Default)]
pub(super) struct Continues(Mutex<HashMap<(IpAddr, String), Instant>>);

impl Continues {
    /// Lets `client` through warnings for `host` for the next hour (unless `MAX_CONTINUES`
    /// click-throughs, none of them over, are remembered already).
    fn allow(&self, client: IpAddr, host: String, now: Instant) {
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        if map.len() >= MAX_CONTINUES {
            map.retain(|_, until| *until > now);
        }
        if map.len() < MAX_CONTINUES {
            map.insert((client, host), now + CONTINUE_FOR);
        }
    }

    /// Whether `client` clicked through a warning for `host` within the hour before `now`.
    fn passes(&self, client: IpAddr, host: &str, now: Instant) -> bool {
        let Ok(map) = self.0.lock() else {
            return false;
        };
        map.get(&(client, host.to_owned()))
            .is_some_and(|until| *until > now)
    }
}

/// The PAC file's text: everything through `proxy` (`host:port`) except the private ranges,
/// loopback and the school's own networks (`direct`).
fn pac_text(proxy: &str, direct: &[(Ipv4Addr, Ipv4Addr)]) -> String {
    let mut all = PRIVATE.to_vec();
    all.extend(direct.iter().copied());
    page::pac(proxy, &all)
}

/// The address a PAC file names for the proxy: its public address, else the address this
/// browser reached it on; never the request's Host header, which the browser (or a page)
/// chooses.
fn pac_address(public_address: Option<&str>, local: SocketAddr) -> String {
    public_address.map_or_else(|| local.to_string(), str::to_owned)
}

impl Proxy {
    /// A token binding a form from a block or warning page to the page, the client, `bound`
    /// (for a review: who asked and their group) and the hour (this one or the last), so that
    /// other sites cannot file requests in a pupil's name, nor a pupil in someone else's.
    pub(super) fn token(
        &self,
        form: Form,
        url: &str,
        client: IpAddr,
        bound: &str,
        hours_ago: u64,
    ) -> String {
        let hour = (clock::since_epoch().as_secs() / 3600).saturating_sub(hours_ago);
        format!(
            "{:016x}",
            self.tokens.hash_one((form, url, client, bound, hour))
        )
    }

    /// Whether `token` is one this proxy made for `form` within the last hour or so.
    fn token_valid(&self, form: Form, url: &str, client: IpAddr, bound: &str, token: &str) -> bool {
        (0..2).any(|h| self.token(form, url, client, bound, h) == token)
    }

    /// Whether `client` clicked through a warning for `host` within the last hour.
    pub(super) fn continued(&self, client: IpAddr, host: &str) -> bool {
        self.continues.passes(client, host, clock::instant())
    }

    /// Requests addressed to the proxy itself: the PAC file, the CA certificate, and the forms
    /// from warning and block pages.
    pub(super) async fn local(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let engine = self.engine.current();
        let school = self.school(&engine);
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/proxy.pac" | "/wpad.dat") => {
                let addr = pac_address(self.config.public_address.as_deref(), conn.local);
                let mut resp = Response::new(full(pac_text(&addr, &self.direct)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ns-proxy-autoconfig"),
                );
                resp
            }
            (&Method::GET | &Method::HEAD, "/haven-ca.crt") => match &self.ca {
                Some(ca) => {
                    let mut resp = Response::new(full(ca.certificate_pem().to_owned()));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/x-x509-ca-cert"),
                    );
                    resp
                }
                None => not_found(school),
            },
            (&Method::POST, CONTINUE_PATH) => self.continue_form(req, conn.peer.ip(), school).await,
            (&Method::POST, REVIEW_PATH) if self.config.reviews => {
                self.review_form(req, conn.peer.ip(), &engine).await
            }
            _ => not_found(school),
        }
    }

    /// "Continue" on a warning page: the client may reach that site for the next hour.
    async fn continue_form(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
        school: &str,
    ) -> Response<Body> {
        let body = match self.read_form(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let form = parse_form(&body);
        let url = form.get("url").cloned().unwrap_or_default();
        let token = form.get("token").cloned().unwrap_or_default();
        let host = url
            .parse::<Uri>()
            .ok()
            .filter(|u| matches!(u.scheme_str(), Some("http" | "https")))
            .and_then(|u| u.host().map(str::to_ascii_lowercase));
        let valid = self.token_valid(Form::Continue, &url, client, "", &token);
        let (Some(host), true) = (host, valid) else {
            return page_response(
                StatusCode::FORBIDDEN,
                page::error(
                    school,
                    "Not accepted",
                    "This did not come from one of the school's warning pages.",
                ),
            );
        };
        self.continues.allow(client, host, clock::instant());
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::SEE_OTHER;
        if let Ok(v) = HeaderValue::from_str(&url) {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        resp
    }

    /// "Request a review" on a block page: handed to the review sink, and a page saying what
    /// became of it.
    async fn review_form(
        &self,
        req: Request<Incoming>,
        client: IpAddr,
        engine: &Engine,
    ) -> Response<Body> {
        let school = self.school(engine);
        let Some(sink) = self.reviews.clone() else {
            return not_found(school);
        };
        let body = match self.read_form(req).await {
            Ok(b) => b,
            Err(resp) => return resp,
        };
        let form = parse_form(&body);
        let field = |k: &str| form.get(k).cloned().unwrap_or_default();
        let (url, token, user, group) =
            (field("url"), field("token"), field("user"), field("group"));
        let bound = asker(&user, &group);
        let valid = !url.is_empty() && self.token_valid(Form::Review, &url, client, &bound, &token);
        if !valid {
            return page_response(
                StatusCode::FORBIDDEN,
                page::error(
                    school,
                    "Review request not accepted",
                    "This request did not come from one of the school's block pages. \
                     Go back to the blocked page and use its button.",
                ),
            );
        }
        let request = ReviewRequest {
            at_ms: clock::now_ms(),
            client,
            reason: self.why_blocked(engine, &group, &url),
            user: (!user.is_empty()).then_some(user),
            group,
            url: url.clone(),
        };
        let kept = tokio::time::timeout(self.config.body_timeout(), sink(request)).await;
        match kept.unwrap_or(ReviewOutcome::Failed) {
            ReviewOutcome::Recorded => page_response(
                StatusCode::OK,
                page::review_sent(school, &url, page::Review::New),
            ),
            ReviewOutcome::AlreadyAsked => page_response(
                StatusCode::OK,
                page::review_sent(school, &url, page::Review::AlreadyOpen),
            ),
            ReviewOutcome::Failed => page_response(
                StatusCode::SERVICE_UNAVAILABLE,
                page::error(
                    school,
                    "Review request not sent",
                    "The filter could not keep your request just now. Try again in a \
                     few minutes, or tell your teacher.",
                ),
            ),
        }
    }

    /// Why `url` is blocked for `group`, decided again for a review request (the token vouches
    /// for the group) rather than taken from the form.
    fn why_blocked(&self, engine: &Engine, group: &str, url: &str) -> String {
        let (Some(g), Ok(target)) = (engine.group_id(group), Target::parse(url)) else {
            return "unknown".to_owned();
        };
        let d = engine.decide(&target, g, None, (self.clock)());
        let (category, rule) = engine.brief(g, &d);
        match d.action {
            Action::Allow => "its content or file type".to_owned(),
            _ => blocked_reason(category, rule),
        }
    }

    /// A small form posted to the proxy itself, whole within the body timeout and the size
    /// cap; a page saying why not otherwise.
    async fn read_form(&self, req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
        let school = self.school(&self.engine.current()).to_owned();
        let read = http_body_util::Limited::new(req.into_body(), MAX_FORM).collect();
        match tokio::time::timeout(self.config.body_timeout(), read).await {
            Ok(Ok(b)) => Ok(b.to_bytes()),
            Ok(Err(_)) => Err(page_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                page::error(&school, "Request too large", "The form was too large."),
            )),
            Err(_) => {
                Metrics::add(&self.metrics.client_timeouts);
                let mut resp = page_response(
                    StatusCode::REQUEST_TIMEOUT,
                    page::error(&school, "Too slow", "The form did not arrive in time."),
                );
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                Err(resp)
            }
        }
    }
}

/// Who a review request is from, as its token binds it: user name (may be empty) and group.
pub(super) fn asker(user: &str, group: &str) -> String {
    format!("{user}\n{group}")
}

/// An `application/x-www-form-urlencoded` body.
fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((
                haven_core::searchterm::form_decode(k),
                haven_core::searchterm::form_decode(v),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pac_file_names_the_public_address_else_the_one_the_browser_reached() {
        let local: SocketAddr = "192.0.2.10:3128".parse().expect("addr");
        assert_eq!(pac_address(None, local), "192.0.2.10:3128");
        assert_eq!(
            pac_address(Some("proxy.school.example:8080"), local),
            "proxy.school.example:8080"
        );
    }

    #[test]
    fn the_pac_file_sends_private_ranges_and_the_schools_networks_direct() {
        let school = (
            Ipv4Addr::new(198, 51, 100, 0),
            Ipv4Addr::new(255, 255, 255, 0),
        );
        let text = pac_text("proxy.school.example:3128", &[school]);
        assert!(text.contains("PROXY proxy.school.example:3128"), "{text}");
        for net in [
            "10.0.0.0",
            "172.16.0.0",
            "192.168.0.0",
            "127.0.0.0",
            "198.51.100.0",
        ] {
            assert!(text.contains(net), "{net} is not sent direct: {text}");
        }
        // No DIRECT fallback: if the proxy is down, browsing stops rather than going
        // unfiltered.
        assert!(!text.contains("; DIRECT"), "{text}");
    }

    #[test]
    fn a_click_through_lasts_an_hour_for_that_client_and_site_only() {
        let continues = Continues::default();
        let pupil: IpAddr = "10.0.0.5".parse().expect("ip");
        let other: IpAddr = "10.0.0.6".parse().expect("ip");
        let now = clock::instant();
        continues.allow(pupil, "games.example".into(), now);
        assert!(continues.passes(pupil, "games.example", now));
        assert!(continues.passes(pupil, "games.example", now + CONTINUE_FOR / 2));
        assert!(!continues.passes(pupil, "games.example", now + CONTINUE_FOR));
        assert!(!continues.passes(pupil, "other.example", now));
        assert!(!continues.passes(other, "games.example", now));
    }

    #[test]
    fn click_throughs_are_bounded_and_lapsed_ones_make_room() {
        let continues = Continues::default();
        let now = clock::instant();
        for i in 0..MAX_CONTINUES {
            continues.allow(
                "10.0.0.1".parse().expect("ip"),
                format!("s{i}.example"),
                now,
            );
        }
        let late = "10.0.0.2".parse().expect("ip");
        continues.allow(late, "new.example".into(), now);
        assert!(
            !continues.passes(late, "new.example", now),
            "full: not kept"
        );
        let later = now + CONTINUE_FOR;
        continues.allow(late, "new.example".into(), later);
        assert!(
            continues.passes(late, "new.example", later),
            "lapsed ones made room"
        );
    }

    #[test]
    fn a_form_body_is_decoded() {
        let form = parse_form(b"url=http%3A%2F%2Fa.example%2F%3Fq%3D1&user=ann+lee&empty=");
        assert_eq!(form["url"], "http://a.example/?q=1");
        assert_eq!(form["user"], "ann lee");
        assert_eq!(form["empty"], "");
    }
}
