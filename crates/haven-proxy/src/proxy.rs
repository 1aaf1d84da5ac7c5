//! The proxy service: one HTTP/1.1 connection from a browser at a time, each request decided by
//! the policy for the client's group, then forwarded, tunnelled, or answered with a page.
//!
//! By concern: `config` (`[proxy]`), `slots` (the connection caps), `decide` (who is asking,
//! the decision, the event), `filter` (a request whose URL is visible), `forward` (passing it on),
//! `pool` (kept origin connections), `dial` (reaching a website), `connect` (CONNECT, the
//! ClientHello check, interception), `local` (the proxy's own pages: PAC, CA, the forms),
//! `body` (bodies and the pages as responses) and `sinks` (what the proxy hands on).

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::BuildHasher;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use haven_core::clients::ClientMap;
use haven_core::Engine;
use haven_runtime::{EventSink, LiveEngine};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::civil::DateTime;
use tokio::net::TcpListener;

use crate::clock;
use crate::metrics::Metrics;
use crate::page;

mod body;
mod config;
mod connect;
mod decide;
mod dial;
mod filter;
mod forward;
mod local;
mod pool;
mod scan;
mod sinks;
mod slots;

pub(crate) use body::empty;
pub use body::{Body, BoxError};
pub use config::{ConfigError, ProxyConfig};
pub use sinks::{PageSeen, PageSink, ReviewOutcome, ReviewRequest, ReviewSink};

use body::{page_response, upstream_error};
use decide::bare_host;
use filter::Dest;
use local::Continues;
use pool::Pool;
use slots::{Slot, Slots};

/// One browser connection: its two ends, and its slot (held by whatever the connection
/// becomes: a tunnel, a decrypted tunnel, a WebSocket).
struct Conn {
    peer: SocketAddr,
    /// The proxy's own address the browser reached (what the PAC file names by default).
    local: SocketAddr,
    _slot: Slot,
}

/// The filtering proxy.
pub struct Proxy {
    engine: Arc<LiveEngine>,
    clients: Arc<ClientMap>,
    events: Option<Arc<EventSink>>,
    reviews: Option<ReviewSink>,
    pages: Option<PageSink>,
    clock: fn() -> DateTime,
    config: ProxyConfig,
    /// Authorities that name the proxy itself (its listen addresses and public address).
    own: Vec<String>,
    /// Networks the PAC file sends direct.
    direct: Vec<(Ipv4Addr, Ipv4Addr)>,
    pool: Arc<Pool>,
    /// The key of the tokens in block and warning pages' forms.
    tokens: RandomState,
    ca: Option<Arc<crate::ca::SchoolCa>>,
    origin_tls: Option<Arc<rustls::ClientConfig>>,
    scanner: Option<Arc<haven_core::phrases::Scanner>>,
    /// The learned model in force, for groups with `classify_pages` (asked per page, so a
    /// model retrained and reloaded is used at once).
    model: Option<ModelSource>,
    /// This proxy's name in `Via` headers, unique per process.
    via: String,
    /// Warnings clicked through.
    continues: Continues,
    authenticator: Option<Arc<dyn crate::auth::Authenticator>>,
    credentials: crate::auth::CredentialCache,
    metrics: Metrics,
    /// `max_connections` and `max_connections_per_client`, shared by every listener.
    slots: Slots,
}

/// Where the proxy gets the learned model in force.
pub type ModelSource = Arc<dyn Fn() -> Option<Arc<haven_model::Model>> + Send + Sync>;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy deciding with `engine`, placing clients with `clients`. `direct` lists the
    /// networks the PAC file sends straight out (the school's own, besides the private ranges).
    pub fn new(
        config: ProxyConfig,
        engine: Arc<LiveEngine>,
        clients: Arc<ClientMap>,
        clock: fn() -> DateTime,
        direct: Vec<(Ipv4Addr, Ipv4Addr)>,
    ) -> Proxy {
        let mut own = config.listen.clone();
        own.extend(config.public_address.clone());
        Proxy {
            slots: Slots::new(config.max_connections, config.max_connections_per_client),
            engine,
            clients,
            events: None,
            reviews: None,
            pages: None,
            clock,
            config,
            own,
            direct,
            pool: Arc::new(Pool::default()),
            tokens: RandomState::new(),
            ca: None,
            origin_tls: None,
            scanner: None,
            model: None,
            continues: Continues::default(),
            authenticator: None,
            credentials: crate::auth::CredentialCache::new(),
            metrics: Metrics::default(),
            via: format!(
                "haven-{:08x}",
                RandomState::new().hash_one(std::process::id()) as u32
            ),
        }
    }

    /// Scores pages with these phrase lists, for groups with a `phrase_limit`.
    pub fn with_phrases(mut self, scanner: Arc<haven_core::phrases::Scanner>) -> Self {
        self.scanner = Some(scanner);
        self
    }

    /// Classifies pages with the model `source` gives, for groups with `classify_pages`.
    pub fn with_model(mut self, source: ModelSource) -> Self {
        self.model = Some(source);
        self
    }

    /// Decrypts HTTPS for the groups the policy says, with certificates minted by `ca`.
    pub fn with_ca(mut self, ca: Arc<crate::ca::SchoolCa>) -> Self {
        self.ca = Some(ca);
        self
    }

    /// How decrypted requests' websites are checked: the web's roots (and any extra CAs).
    /// Without it, decrypted requests cannot be passed on and get an error page.
    pub fn with_origin_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.origin_tls = Some(config);
        self
    }

    /// Records every request's event in `events`.
    pub fn with_events(mut self, events: Arc<EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// Checks proxy sign-ins (`authenticate`) with `auth`.
    pub fn with_authenticator(mut self, auth: Arc<dyn crate::auth::Authenticator>) -> Self {
        self.authenticator = Some(auth);
        self
    }

    /// Hands review requests from block pages to `sink`.
    pub fn with_reviews(mut self, sink: ReviewSink) -> Self {
        self.reviews = Some(sink);
        self
    }

    /// Hands pages that were scored (groups with a `phrase_limit`) and let through to `sink`,
    /// for monitoring.
    pub fn with_pages(mut self, sink: PageSink) -> Self {
        self.pages = Some(sink);
        self
    }

    /// Adds an address that names the proxy itself (the actual one, once bound).
    pub fn also_known_as(&mut self, authority: String) {
        self.own.push(authority);
    }

    /// Serves browsers on a bound listener until it fails.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                // Out of descriptors, say: wait a little rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Past either cap a connection is closed at once, so a flood cannot take every
            // descriptor the DNS filter also needs, nor one device every slot.
            let Some(slot) = self.slots.take(peer.ip()) else {
                Metrics::add(&self.metrics.refused);
                drop(stream);
                continue;
            };
            let Ok(local) = stream.local_addr() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn = Arc::new(Conn {
                peer,
                local,
                _slot: slot,
            });
            let me = self.clone();
            tokio::spawn(async move {
                let service = {
                    let me = me.clone();
                    hyper::service::service_fn(move |req| {
                        let me = me.clone();
                        let conn = conn.clone();
                        async move { Ok::<_, Infallible>(me.handle(req, conn).await) }
                    })
                };
                // The header timeout also ends a kept connection left idle that long.
                let served = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(me.config.header_timeout())
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if served.is_err_and(|e| e.is_timeout()) {
                    Metrics::add(&me.metrics.client_timeouts);
                }
            });
        }
    }

    /// Whether a request has already passed through this proxy (its `Via` names us): an address
    /// that leads back to the proxy would otherwise loop until connections run out.
    fn looped(&self, headers: &hyper::HeaderMap) -> bool {
        headers
            .get_all(header::VIA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(&self.via))
    }

    /// The school's name, as the pages say it.
    fn school<'e>(&self, engine: &'e Engine) -> &'e str {
        &engine.policy().school
    }

    /// One request from a browser.
    async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
        let started = clock::instant();
        let peer = conn.peer;
        if req.method() == Method::CONNECT {
            let who = match self.identify(req.headers(), peer).await {
                Ok(who) => who,
                Err(resp) => return resp,
            };
            return self.connect(req, conn, who, started).await;
        }
        if self.looped(req.headers()) {
            return page_response(
                StatusCode::LOOP_DETECTED,
                page::error(
                    self.school(&self.engine.current()),
                    "The request came back to the filter",
                    "This address leads to the school's filter itself.",
                ),
            );
        }
        let is_own = match req.uri().authority() {
            None => true,
            Some(a) => self.own.iter().any(|o| o.eq_ignore_ascii_case(a.as_str())),
        };
        if is_own {
            return self.local(req, &conn).await;
        }
        let who = match self.identify(req.headers(), peer).await {
            Ok(who) => who,
            Err(resp) => return resp,
        };
        let engine = self.engine.current();
        if req.uri().scheme_str() != Some("http") {
            return page_response(
                StatusCode::BAD_REQUEST,
                page::error(
                    self.school(&engine),
                    "Not a web address this proxy handles",
                    "Only http:// addresses are sent as requests; https:// goes through CONNECT.",
                ),
            );
        }
        let url = req.uri().to_string();
        let dest = Dest {
            // An IPv6 literal without its brackets, as an address is dialled.
            host: bare_host(req.uri().host().unwrap_or_default()),
            port: req.uri().port_u16().unwrap_or(80),
            tls: false,
        };
        self.filtered(req, url, dest, &conn, &who, started).await
    }

    /// An error page for a website that could not answer, counted.
    fn failed(&self, school: &str, status: StatusCode, why: &str) -> Response<Body> {
        Metrics::add(&self.metrics.upstream_errors);
        upstream_error(school, status, why)
    }
}

/// The proxy's metrics, read on each scrape (register an `Arc<Proxy>`).
impl haven_runtime::metrics::Collector for Proxy {
    fn encode(&self, enc: haven_runtime::metrics::DescriptorEncoder) -> std::fmt::Result {
        haven_runtime::metrics::Collector::encode(&self.metrics, enc)
    }
}
