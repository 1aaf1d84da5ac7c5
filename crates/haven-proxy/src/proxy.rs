//! The proxy service: one HTTP/1.1 connection from a browser at a time, each request decided by
//! the policy for the client's group, then forwarded, tunnelled, or answered with a page.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future as _;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use haven_core::clients::ClientMap;
use haven_core::engine::Rule;
use haven_core::event::{Event, Source};
use haven_core::policy::Action;
use haven_core::{Engine, Target};
use haven_runtime::{EventSink, LiveEngine};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use jiff::civil::DateTime;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::headers::{is_websocket, strip_hop_by_hop};
use crate::metrics::Metrics;
use crate::page;
use crate::sni::{self, Hello};

/// Errors from inside a body (the origin's, or the client's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the proxy sends: a page it made, or a stream passed through.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// `[proxy]` in `haven.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses to listen on.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// `host:port` that browsers should use for the proxy (in the PAC file); by default the
    /// name the PAC file was fetched by.
    #[serde(default)]
    pub public_address: Option<String>,
    /// Time allowed to connect to a website.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed for a website to start answering once asked.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Browser connections open at once (tunnels and WebSockets included); more are closed
    /// straight away.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold at once (an IPv6 client: its /64), so one
    /// device cannot take every slot; more from it are closed straight away.
    #[serde(default = "default_max_per_client")]
    pub max_connections_per_client: usize,
    /// Time a browser has to send a request's head: a new connection's first request, the next
    /// one on a kept connection, and the TLS ClientHello at the start of a CONNECT tunnel.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Longest pause inside a request body from a browser (a form to the proxy itself must
    /// arrive whole within it).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Ports CONNECT may tunnel to. A tunnel elsewhere, or one whose first bytes are not a TLS
    /// ClientHello naming a site the group may reach, is closed as a bypass attempt.
    #[serde(default = "default_connect_ports")]
    pub connect_ports: Vec<u16>,
    /// Whether block pages offer "request a review".
    #[serde(default = "yes")]
    pub reviews: bool,
    /// Largest page held for content scoring; larger ones pass unscored (and the event says so).
    #[serde(default = "default_score_cap")]
    pub score_cap_bytes: usize,
    /// Fixed addresses for host names, consulted before DNS (like a hosts file): a site the
    /// school hosts internally, say.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, IpAddr>,
    /// Extra CA certificates to trust for websites reached by decrypted requests (besides the
    /// system's roots): an internal site's own CA.
    #[serde(default)]
    pub origin_ca_file: Option<std::path::PathBuf>,
    /// Let requests reach this server's own loopback and unspecified addresses (off: the
    /// console and metrics on 127.0.0.1 are not for browsing through the proxy).
    #[serde(default)]
    pub allow_loopback: bool,
    /// Whether browsers sign in to the proxy with their Haven user name and password
    /// (`off`, `optional`, `required`).
    #[serde(default)]
    pub authenticate: crate::auth::Authenticate,
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:3128".to_owned()]
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_read_timeout() -> u64 {
    30_000
}
fn yes() -> bool {
    true
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_per_client() -> usize {
    128
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    30_000
}
fn default_connect_ports() -> Vec<u16> {
    vec![443]
}
fn default_score_cap() -> usize {
    4 * 1024 * 1024
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            public_address: None,
            connect_timeout_ms: default_connect_timeout(),
            read_timeout_ms: default_read_timeout(),
            reviews: true,
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_per_client(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            connect_ports: default_connect_ports(),
            score_cap_bytes: default_score_cap(),
            hosts: Default::default(),
            origin_ca_file: None,
            allow_loopback: false,
            authenticate: Default::default(),
        }
    }
}

impl ProxyConfig {
    /// Refuses settings that would switch a defence off: a zero timeout or cap.
    pub fn check(&self) -> Result<(), String> {
        for (key, value) in [
            ("proxy.header_timeout_ms", self.header_timeout_ms),
            ("proxy.body_timeout_ms", self.body_timeout_ms),
            ("proxy.connect_timeout_ms", self.connect_timeout_ms),
            ("proxy.read_timeout_ms", self.read_timeout_ms),
            ("proxy.max_connections", self.max_connections as u64),
            (
                "proxy.max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
        ] {
            if value == 0 {
                return Err(format!("{key} must be above 0"));
            }
        }
        if self.connect_ports.contains(&0) {
            return Err("proxy.connect_ports: 0 is not a port".to_owned());
        }
        // It is written into the PAC file's script.
        if let Some(a) = &self.public_address {
            let sound = !a.is_empty()
                && a.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
            if !sound {
                return Err(format!("proxy.public_address: {a:?} is not host:port"));
            }
        }
        Ok(())
    }

    fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }
}

/// Someone asked for a blocked page to be looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// From which address.
    pub client: IpAddr,
    /// Who asked, when known: signed in to the proxy, or the owner of the device.
    pub user: Option<String>,
    /// The group whose policy blocked the page for them (a signed-in person's own group, not
    /// the network's).
    pub group: String,
    /// The page.
    pub url: String,
    /// Why it was blocked, as the block page said.
    pub reason: String,
}

/// What became of a review request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Kept for staff to decide.
    Recorded,
    /// The same person already has an open request for this site: not kept twice.
    AlreadyAsked,
    /// It could not be kept (the store did not answer).
    Failed,
}

/// Where review requests go: keeps one, and says what became of it.
pub type ReviewSink = Arc<
    dyn Fn(ReviewRequest) -> Pin<Box<dyn std::future::Future<Output = ReviewOutcome> + Send>>
        + Send
        + Sync,
>;

/// A page a browser was given after it was scored, for monitoring to read.
#[derive(Debug, Clone)]
pub struct PageSeen {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The device's address.
    pub client: IpAddr,
    /// Who, when known.
    pub user: Option<String>,
    /// The page's address.
    pub url: String,
    /// The page as it came.
    pub page: crate::score::Seen,
}

/// Where scored pages go: called on the request path, so it must only hand the page on.
pub type PageSink = Arc<dyn Fn(PageSeen) + Send + Sync>;

/// Idle connections kept per website.
const IDLE_PER_ORIGIN: usize = 64;
/// Largest form the proxy reads (a review request).
const MAX_FORM: usize = 8 * 1024;
/// Path of the review form's target on the proxy itself.
const REVIEW_PATH: &str = "/_haven/review";
/// Path of the warning page's "Continue" on the proxy itself.
const CONTINUE_PATH: &str = "/_haven/continue";
/// How long "Continue" on a warning lets a client through to that site.
const CONTINUE_FOR: Duration = Duration::from_secs(3600);
/// Click-throughs remembered at once.
const MAX_CONTINUES: usize = 10_000;

type OriginKey = (String, u16, bool);

/// The filter category a tunnel the filter cannot check is recorded in (monitoring makes a
/// blocked attempt in it a bypass capture).
const BYPASS_CATEGORY: &str = "vpn-proxy";
/// The most the start of a tunnel may take before it must have been a whole ClientHello: the
/// largest ClientHello and its record headers.
const HELLO_CAP: usize = sni::MAX_HELLO + 1024;

/// Why a tunnel was refused.
#[derive(Debug)]
enum Refused {
    /// The policy blocks it: category and reason.
    Blocked(Option<String>, String),
    /// The filter cannot tell what it is (a bypass attempt), and why.
    Bypass(String),
}

/// Addresses that are this machine whatever it is called: loopback and unspecified.
fn is_own_host(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// Who a request is from: the address, the group whose policy applies, and the person when
/// they signed in to the proxy.
#[derive(Debug, Clone)]
struct Who {
    client: IpAddr,
    group: String,
    user: Option<String>,
}

/// Where a request goes: host, port, and whether over TLS.
#[derive(Debug, Clone)]
struct Dest {
    host: String,
    port: u16,
    tls: bool,
}

/// A connection to a website, plain or TLS.
trait OriginIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> OriginIo for T {}

/// Kept connections to websites, for keep-alive to the origin.
#[derive(Default)]
struct Pool {
    idle: Mutex<HashMap<OriginKey, Vec<SendRequest<Body>>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    fn take(&self, key: &OriginKey) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(s) = list.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn give_back(&self, key: OriginKey, sender: SendRequest<Body>) {
        if !sender.is_ready() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < IDLE_PER_ORIGIN {
                list.push(sender);
            }
        }
    }
}

/// Connections held per client key, for `max_connections_per_client`.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// The key a client's connections are counted under: its IPv4 address, or its IPv6 /64 (a
/// device may take as many addresses in its /64 as it likes).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One browser connection's hold on the proxy: a slot of `max_connections` and one of its
/// client's `max_connections_per_client`, given back when the connection, and any tunnel or
/// WebSocket it became, has ended.
struct Slot {
    _global: tokio::sync::OwnedSemaphorePermit,
    key: IpAddr,
    per_client: Arc<PerClient>,
}

impl Slot {
    /// A slot for a new connection from `peer`, or None when either cap is reached.
    fn take(proxy: &Proxy, peer: IpAddr) -> Option<Slot> {
        let global = proxy.slots.clone().try_acquire_owned().ok()?;
        let key = client_key(peer);
        let mut held = proxy.per_client.0.lock().ok()?;
        let n = held.entry(key).or_insert(0);
        if *n >= proxy.config.max_connections_per_client.max(1) {
            return None;
        }
        *n += 1;
        drop(held);
        Some(Slot {
            _global: global,
            key,
            per_client: proxy.per_client.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.per_client.0.lock() {
            if let Some(n) = held.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&self.key);
                }
            }
        }
    }
}

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
    tokens: RandomState,
    ca: Option<Arc<crate::ca::SchoolCa>>,
    origin_tls: Option<Arc<rustls::ClientConfig>>,
    scanner: Option<Arc<haven_core::phrases::Scanner>>,
    /// This proxy's name in `Via` headers, unique per process.
    via: String,
    /// Warnings clicked through: (client, host) until when.
    continues: Mutex<HashMap<(IpAddr, String), Instant>>,
    authenticator: Option<Arc<dyn crate::auth::Authenticator>>,
    credentials: crate::auth::CredentialCache,
    metrics: Metrics,
    /// `max_connections`, shared by every listener.
    slots: Arc<tokio::sync::Semaphore>,
    per_client: Arc<PerClient>,
}

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
        let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
        Proxy {
            slots,
            per_client: Arc::default(),
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
            continues: Mutex::new(HashMap::new()),
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
            let Some(slot) = Slot::take(&self, peer.ip()) else {
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

    fn school<'e>(&self, engine: &'e Engine) -> &'e str {
        &engine.policy().school
    }

    /// One request from a browser.
    async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: Arc<Conn>) -> Response<Body> {
        let started = Instant::now();
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

    /// Who a request is from. With `authenticate`, the credentials a browser sends are checked
    /// (wrong ones get 407 again; with `required`, so does a request without any) and the
    /// person's group replaces the address's.
    async fn identify(
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

    /// A request whose whole URL is visible (plain HTTP, or HTTPS decrypted): decided, then
    /// forwarded to `dest` or answered with the block page.
    async fn filtered(
        &self,
        req: Request<Incoming>,
        url: String,
        dest: Dest,
        conn: &Arc<Conn>,
        who: &Who,
        started: Instant,
    ) -> Response<Body> {
        let peer = conn.peer;
        let engine = self.engine.current();
        let group_name = who.group.clone();
        let search = haven_core::searchterm::search_term(
            &dest.host,
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        )
        .map(|s| s.term);
        let record = |action: Action, category: Option<&str>, reason: Option<String>| {
            self.emit(who, &url, action, category, reason, search.clone(), started);
        };
        let Some(group) = engine.group_id(&group_name) else {
            let reason = format!("group {group_name} is not in the policy");
            record(Action::Block, None, Some(reason.clone()));
            return self.block_page(&engine, &url, who, &reason, None, false);
        };
        let Ok(target) = Target::parse(&url) else {
            record(Action::Block, None, Some("unreadable address".into()));
            return page_response(
                StatusCode::BAD_REQUEST,
                page::error(self.school(&engine), "Unreadable address", &url),
            );
        };
        let d = engine.decide(&target, group, None, (self.clock)());
        let (category, rule) = engine.brief(group, &d);
        // Most requests are plain allows, which record no reason: none is built for them.
        let reason = match (d.action, category) {
            (Action::Allow, _) => String::new(),
            (_, Some(c)) => format!("{c} ({rule})"),
            (_, None) => rule.into_owned(),
        };
        let through = d.action == Action::Warn && self.continued(peer.ip(), &dest.host);
        match d.action {
            Action::Block => {
                record(d.action, category, Some(reason.clone()));
                self.block_page(&engine, &url, who, &reason, category, false)
            }
            Action::Warn if !through => {
                record(d.action, category, Some(reason.clone()));
                self.block_page(&engine, &url, who, &reason, category, true)
            }
            Action::Allow | Action::AlertOnly | Action::Rewrite | Action::Warn => {
                let reason = if through {
                    format!("{reason}; continued after the warning")
                } else {
                    reason
                };
                let mut req = req;
                if d.action == Action::Rewrite {
                    if let Some((engine_id, mode)) = d.safe_search {
                        rewrite_safe_search(&mut req, engine_id, mode);
                    }
                }
                let settings = engine.policy().group(&group_name);
                if let Some(domains) = settings.map(|g| &g.google_allowed_domains) {
                    if !domains.is_empty()
                        && haven_core::safesearch::is_google(dest.host.as_bytes())
                    {
                        if let Ok(v) = HeaderValue::from_str(&domains.join(",")) {
                            req.headers_mut().insert("x-googapps-allowed-domains", v);
                        }
                    }
                }
                let outcome_reason = match (d.action, d.safe_search) {
                    (Action::Allow, _) => None,
                    (Action::Rewrite, Some((e, mode))) => {
                        Some(format!("safe search: {} ({mode:?})", e.id()).to_lowercase())
                    }
                    _ => Some(reason),
                };
                let blocked_types = settings.map_or(&[][..], |g| &g.block_file_types[..]);
                let limit = settings.and_then(|g| g.phrase_limit);
                match self.forward(req, dest, &engine, blocked_types, conn).await {
                    Ok(resp) => {
                        let (Some(limit), Some(scanner)) = (limit, self.scanner.clone()) else {
                            record(d.action, category, outcome_reason);
                            return resp;
                        };
                        if !resp.status().is_success() {
                            record(d.action, category, outcome_reason);
                            return resp;
                        }
                        let cap = self.config.score_cap_bytes;
                        match crate::score::score(resp, scanner, limit, cap).await {
                            crate::score::Scored::NotText(resp) => {
                                record(d.action, category, outcome_reason);
                                resp
                            }
                            crate::score::Scored::Read(resp, page) => {
                                Metrics::add(&self.metrics.scored);
                                record(d.action, category, outcome_reason);
                                if let Some(sink) = &self.pages {
                                    sink(PageSeen {
                                        at_ms: std::time::SystemTime::now()
                                            .duration_since(std::time::UNIX_EPOCH)
                                            .map_or(0, |d| d.as_millis() as u64),
                                        client: who.client,
                                        user: who.user.clone(),
                                        url: url.clone(),
                                        page,
                                    });
                                }
                                resp
                            }
                            crate::score::Scored::Pass(resp, note) => {
                                Metrics::add(if note.is_some() {
                                    &self.metrics.unscored
                                } else {
                                    &self.metrics.scored
                                });
                                let reason = match (outcome_reason, note) {
                                    (Some(r), Some(n)) => Some(format!("{r}; {n}")),
                                    (r, n) => r.or(n),
                                };
                                record(d.action, category, reason);
                                resp
                            }
                            crate::score::Scored::Over(score) => {
                                Metrics::add(&self.metrics.scored);
                                let top = score.categories.first().map(|(c, _)| c.clone());
                                let phrases: Vec<String> = score
                                    .phrases
                                    .iter()
                                    .take(5)
                                    .map(|(p, n)| format!("{p} x{n}"))
                                    .collect();
                                let reason = format!(
                                    "content score {} over {limit} (groups.{group_name}.phrase_limit): {} ({})",
                                    score.total,
                                    top.as_deref().unwrap_or("phrases"),
                                    phrases.join(", ")
                                );
                                record(Action::Block, top.as_deref(), Some(reason.clone()));
                                self.block_page(&engine, &url, who, &reason, top.as_deref(), false)
                            }
                        }
                    }
                    Err(ext) => {
                        let reason =
                            format!("file type {ext} (groups.{group_name}.block_file_types)");
                        record(Action::Block, None, Some(reason.clone()));
                        self.block_page(&engine, &url, who, &reason, None, false)
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        who: &Who,
        url: &str,
        action: Action,
        category: Option<&str>,
        reason: Option<String>,
        search: Option<String>,
        started: Instant,
    ) {
        Metrics::add(&self.metrics.requests);
        let Some(sink) = &self.events else { return };
        sink.emit(Event {
            at_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            source: Source::Proxy,
            client: who.client,
            group: who.group.clone(),
            user: who.user.clone(),
            name: url.to_owned(),
            qtype: None,
            action,
            category: category.map(str::to_owned),
            reason,
            search,
            latency_us: started.elapsed().as_micros() as u64,
        });
    }

    /// The block page, or with `warn` the warning page with its "Continue".
    fn block_page(
        &self,
        engine: &Engine,
        url: &str,
        who: &Who,
        reason: &str,
        category: Option<&str>,
        warn: bool,
    ) -> Response<Body> {
        if !warn {
            self.metrics.blocked(category);
        }
        let cat = category.and_then(haven_core::category::by_id);
        // A review request carries who was blocked and under which group's policy, bound into
        // its token: the form is posted straight to the proxy, without the sign-in.
        let user = who.user.as_deref().unwrap_or("");
        let token = self.token("review", url, who.client, &asker(user, &who.group), 0);
        let go_on = self.token("continue", url, who.client, "", 0);
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
            review: (self.config.reviews && self.reviews.is_some() && !warn)
                .then_some((action.as_str(), token.as_str())),
            asker: (user, &who.group),
            proceed: warn.then_some((proceed.as_str(), go_on.as_str())),
        });
        page_response(StatusCode::FORBIDDEN, html)
    }

    /// A token binding a form from a block or warning page to the page, the client, `bound`
    /// (for a review: who asked and their group) and the hour (this one or the last), so that
    /// other sites cannot file requests in a pupil's name, nor a pupil in someone else's.
    fn token(
        &self,
        purpose: &str,
        url: &str,
        client: IpAddr,
        bound: &str,
        hours_ago: u64,
    ) -> String {
        let hour = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 3600)
            .saturating_sub(hours_ago);
        format!(
            "{:016x}",
            self.tokens.hash_one((purpose, url, client, bound, hour))
        )
    }

    /// An error page for a website that could not answer, counted.
    fn failed(&self, school: &str, status: StatusCode, why: &str) -> Response<Body> {
        Metrics::add(&self.metrics.upstream_errors);
        upstream_error(school, status, why)
    }

    /// The proxy's metrics, in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        self.metrics.render()
    }

    /// Whether `client` clicked through a warning for `host` within the last hour.
    fn continued(&self, client: IpAddr, host: &str) -> bool {
        let Ok(map) = self.continues.lock() else {
            return false;
        };
        map.get(&(client, host.to_owned()))
            .is_some_and(|until| *until > Instant::now())
    }

    /// Requests addressed to the proxy itself: the PAC file and review requests.
    async fn local(&self, req: Request<Incoming>, conn: &Conn) -> Response<Body> {
        let peer = conn.peer;
        let engine = self.engine.current();
        let school = self.school(&engine);
        match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/proxy.pac" | "/wpad.dat") => {
                // The public address, else the address this browser reached the proxy on;
                // never the request's Host header, which the browser (or a page) chooses.
                let addr = self
                    .config
                    .public_address
                    .clone()
                    .unwrap_or_else(|| conn.local.to_string());
                let mut direct = vec![
                    (Ipv4Addr::new(10, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0)),
                    (Ipv4Addr::new(172, 16, 0, 0), Ipv4Addr::new(255, 240, 0, 0)),
                    (Ipv4Addr::new(192, 168, 0, 0), Ipv4Addr::new(255, 255, 0, 0)),
                    (Ipv4Addr::new(127, 0, 0, 0), Ipv4Addr::new(255, 0, 0, 0)),
                ];
                direct.extend(self.direct.iter().copied());
                let mut resp = Response::new(full(page::pac(&addr, &direct)));
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
            (&Method::POST, CONTINUE_PATH) => {
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
                let valid = (0..2).any(|h| self.token("continue", &url, peer.ip(), "", h) == token);
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
                if let Ok(mut map) = self.continues.lock() {
                    let now = Instant::now();
                    if map.len() >= MAX_CONTINUES {
                        map.retain(|_, until| *until > now);
                    }
                    if map.len() < MAX_CONTINUES {
                        map.insert((peer.ip(), host), now + CONTINUE_FOR);
                    }
                }
                let mut resp = Response::new(empty());
                *resp.status_mut() = StatusCode::SEE_OTHER;
                if let Ok(v) = HeaderValue::from_str(&url) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                resp
            }
            (&Method::POST, REVIEW_PATH) if self.config.reviews => {
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
                let valid = !url.is_empty()
                    && (0..2).any(|h| self.token("review", &url, peer.ip(), &bound, h) == token);
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
                // Why the page is blocked, decided again here for the group it was blocked for
                // (the token vouches for it) rather than taken from the form.
                let reason = match (engine.group_id(&group), Target::parse(&url)) {
                    (Some(g), Ok(target)) => {
                        let d = engine.decide(&target, g, None, (self.clock)());
                        let (category, rule) = engine.brief(g, &d);
                        match (d.action, category) {
                            (Action::Allow, _) => "its content or file type".to_owned(),
                            (_, Some(c)) => format!("{c} ({rule})"),
                            (_, None) => rule.into_owned(),
                        }
                    }
                    _ => "unknown".to_owned(),
                };
                let request = ReviewRequest {
                    at_ms: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    client: peer.ip(),
                    user: (!user.is_empty()).then_some(user),
                    group,
                    url: url.clone(),
                    reason,
                };
                let kept = tokio::time::timeout(self.config.body_timeout(), sink(request)).await;
                match kept.unwrap_or(ReviewOutcome::Failed) {
                    ReviewOutcome::Recorded => {
                        page_response(StatusCode::OK, page::review_sent(school, &url, false))
                    }
                    ReviewOutcome::AlreadyAsked => {
                        page_response(StatusCode::OK, page::review_sent(school, &url, true))
                    }
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
            _ => not_found(school),
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

    /// Connects to a website, within the connect timeout.
    async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, (StatusCode, String)> {
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        let attempt = async {
            let addrs: Vec<SocketAddr> = match self.config.hosts.get(host) {
                Some(ip) => vec![SocketAddr::new(*ip, port)],
                None => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| {
                        (
                            StatusCode::BAD_GATEWAY,
                            format!("{host} could not be found: {e}"),
                        )
                    })?
                    .collect(),
            };
            let mut last = format!("{host} has no address");
            for addr in addrs {
                // The server's own services (the console, metrics) are not for pupils to
                // reach through the proxy; checked on the resolved address, so a name that
                // resolves to loopback is refused too.
                if !self.config.allow_loopback && is_own_host(addr.ip()) {
                    last = format!("{host} is this server itself, which the proxy does not reach");
                    continue;
                }
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(s);
                    }
                    Err(e) => last = format!("{host} ({addr}) refused the connection: {e}"),
                }
            }
            Err((StatusCode::BAD_GATEWAY, last))
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("{host} did not answer within {} s", limit.as_secs_f32()),
            )),
        }
    }

    /// Connects to a website for a request: TCP, then TLS with the certificate checked when
    /// `tls`. A certificate that does not check out is an error page, never a silent pass.
    async fn dial_origin(
        &self,
        host: &str,
        port: u16,
        tls: bool,
    ) -> Result<Box<dyn OriginIo>, (StatusCode, String)> {
        let tcp = self.dial(host, port).await?;
        if !tls {
            return Ok(Box::new(tcp));
        }
        let Some(config) = self.origin_tls.clone() else {
            return Err((
                StatusCode::BAD_GATEWAY,
                "no TLS configuration for websites".to_owned(),
            ));
        };
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| (StatusCode::BAD_GATEWAY, format!("{host}: {e}")))?;
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        match tokio::time::timeout(
            limit,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err((
                StatusCode::BAD_GATEWAY,
                format!("{host} did not prove who it is, so the filter will not pass it on ({e})"),
            )),
            Err(_) => Err((
                StatusCode::GATEWAY_TIMEOUT,
                format!("{host} did not finish its TLS handshake in time"),
            )),
        }
    }

    /// Decrypts a tunnel to `site`: the browser gets a certificate for its name minted by the
    /// school's CA, and each request inside is filtered as plain HTTP is.
    async fn intercept(
        self: Arc<Self>,
        ca: Arc<crate::ca::SchoolCa>,
        first: Vec<u8>,
        client: TokioIo<hyper::upgrade::Upgraded>,
        site: Dest,
        conn: Arc<Conn>,
        who: Who,
    ) {
        let Dest {
            host: name, port, ..
        } = site;
        let Ok(key) = ca.certified_key(&name) else {
            return;
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Ok(builder) = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        else {
            return;
        };
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert(key)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        // The browser has the header timeout to finish its handshake.
        let handshake = acceptor.accept(Replay::new(first, client));
        let Ok(Ok(tls)) = tokio::time::timeout(self.config.header_timeout(), handshake).await
        else {
            return;
        };
        Metrics::add(&self.metrics.intercepted);
        let authority = if port == 443 {
            name.clone()
        } else {
            format!("{name}:{port}")
        };
        let me = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let me = me.clone();
            let authority = authority.clone();
            let name = name.clone();
            let who = who.clone();
            let conn = conn.clone();
            async move {
                let started = Instant::now();
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let url = format!("https://{authority}{pq}");
                let dest = Dest {
                    host: name,
                    port,
                    tls: true,
                };
                Ok::<_, Infallible>(me.filtered(req, url, dest, &conn, &who, started).await)
            }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.config.header_timeout())
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await;
        if served.is_err_and(|e| e.is_timeout()) {
            Metrics::add(&self.metrics.client_timeouts);
        }
    }

    /// Passes an allowed request on and streams the answer back.
    /// `Err(extension)`: the response is a file type in `blocked_types` (by its MIME type or
    /// attachment name); it is dropped unread.
    async fn forward(
        &self,
        mut req: Request<Incoming>,
        dest: Dest,
        engine: &Engine,
        blocked_types: &[String],
        conn: &Arc<Conn>,
    ) -> Result<Response<Body>, String> {
        let school = self.school(engine);
        let uri = req.uri().clone();
        let Dest { host, port, tls } = dest;
        let websocket = is_websocket(req.headers());
        strip_hop_by_hop(req.headers_mut(), websocket);
        if let Ok(v) = HeaderValue::from_str(&format!("1.1 {}", self.via)) {
            req.headers_mut().append(header::VIA, v);
        }
        // An absolute-form request's Host is its URL's authority, whatever the client sent
        // (RFC 9112 §3.2.2); a decrypted request keeps its own.
        if let Some(authority) = uri.authority() {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        } else if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&host) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        // Origin servers expect the origin form: the path and query only.
        let origin_form = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
        *req.uri_mut() = origin_form;
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        let key = (host.clone(), port, tls);
        let mut sender = match self.pool.take(&key) {
            Some(s) => s,
            None => match self.dial_origin(&host, port, tls).await {
                Ok(stream) => {
                    match hyper::client::conn::http1::Builder::new()
                        .handshake::<_, Body>(TokioIo::new(stream))
                        .await
                    {
                        Ok((sender, conn)) => {
                            tokio::spawn(conn.with_upgrades());
                            sender
                        }
                        Err(e) => {
                            return Ok(self.failed(school, StatusCode::BAD_GATEWAY, &e.to_string()))
                        }
                    }
                }
                Err((status, why)) => return Ok(self.failed(school, status, &why)),
            },
        };
        // A browser that stops sending its request body for the body timeout is cut off.
        let idle = self.config.body_timeout();
        let req = req.map(|b| IdleBody::new(b, idle).boxed());
        let limit = Duration::from_millis(self.config.read_timeout_ms);
        let mut resp = match tokio::time::timeout(limit, sender.send_request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Ok(self.failed(
                    school,
                    StatusCode::BAD_GATEWAY,
                    &format!("{host} broke off the answer: {e}"),
                ))
            }
            Err(_) => {
                return Ok(self.failed(
                    school,
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "{host} did not start answering within {} s",
                        limit.as_secs_f32()
                    ),
                ))
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let origin_upgrade = hyper::upgrade::on(&mut resp);
                let conn = conn.clone();
                tokio::spawn(async move {
                    // The WebSocket keeps the browser connection's slot.
                    let _conn = conn;
                    if let (Ok(c), Ok(o)) = (client_upgrade.await, origin_upgrade.await) {
                        let _ = tokio::io::copy_bidirectional(
                            &mut TokioIo::new(c),
                            &mut TokioIo::new(o),
                        )
                        .await;
                    }
                });
                let (parts, _) = resp.into_parts();
                return Ok(Response::from_parts(parts, empty()));
            }
        }
        if let Some(ext) = crate::filetype::of_response(resp.headers())
            .into_iter()
            .find(|e| blocked_types.contains(e))
        {
            return Err(ext);
        }
        strip_hop_by_hop(resp.headers_mut(), false);
        let (parts, body) = resp.into_parts();
        let body = Returning::new(body, self.pool.clone(), key, sender);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// CONNECT: only to `connect_ports`; decided on the host (an address as itself), then on
    /// the first bytes through the tunnel, which must be a TLS ClientHello naming the host (or,
    /// through a tunnel to an address, a site the group may reach). A tunnel the filter cannot
    /// check is a bypass attempt: closed, and recorded in the category `vpn-proxy`, which
    /// monitoring makes a bypass capture.
    async fn connect(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Arc<Conn>,
        who: Who,
        started: Instant,
    ) -> Response<Body> {
        let engine = self.engine.current();
        let school = self.school(&engine);
        let Some(authority) = req.uri().authority().cloned() else {
            return page_response(
                StatusCode::BAD_REQUEST,
                page::error(school, "Bad request", "CONNECT needs host:port."),
            );
        };
        let host = bare_host(authority.host());
        let port = authority.port_u16().unwrap_or(443);
        let url = if port == 443 {
            format!("https://{host}/")
        } else if host.contains(':') {
            format!("https://[{host}]:{port}/")
        } else {
            format!("https://{host}:{port}/")
        };
        let group_name = who.group.clone();
        let verdict = if !self.config.connect_ports.contains(&port) {
            Err(Refused::Bypass(format!(
                "CONNECT to port {port}, which is not in proxy.connect_ports"
            )))
        } else {
            match host.parse::<IpAddr>() {
                Ok(ip) => self.decide_address(&engine, &group_name, ip),
                Err(_) => self
                    .decide_host(&engine, &group_name, &host)
                    .map_err(|(category, reason)| Refused::Blocked(category, reason)),
            }
        };
        if let Err(refused) = verdict {
            let reason = self.refuse(&who, &url, refused, started);
            let mut resp = page_response(
                StatusCode::FORBIDDEN,
                page::error(school, "Blocked by the school's filter", &reason),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        let mut origin = match self.dial(&host, port).await {
            Ok(s) => s,
            Err((status, why)) => return self.failed(school, status, &why),
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        Metrics::add(&self.metrics.tunnels);
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let mut client = TokioIo::new(upgraded);
            // Nothing passes until the start of the tunnel is a ClientHello the policy allows.
            let (first, hello) = me.read_hello(&mut client).await;
            let engine = me.engine.current();
            let sni = match hello {
                // Closed or silent before a whole ClientHello: nothing reached the website. Only
                // bytes that were something else are an attempt (a browser's unused
                // pre-connection sends nothing).
                Hello::Incomplete => {
                    if !first.is_empty() {
                        let why = format!(
                            "the tunnel to {host}:{port} did not finish a TLS ClientHello in time"
                        );
                        me.refuse(&who, &url, Refused::Bypass(why), started);
                    }
                    return;
                }
                Hello::NotTls => {
                    let why = format!("the tunnel to {host}:{port} did not start with TLS");
                    me.refuse(&who, &url, Refused::Bypass(why), started);
                    return;
                }
                // No name: decided as the address the tunnel goes to.
                Hello::NoSni => {
                    let Ok(to) = origin.peer_addr() else {
                        return;
                    };
                    if let Err(refused) = me.decide_address(&engine, &group_name, to.ip()) {
                        let refused = match refused {
                            Refused::Bypass(why) => Refused::Bypass(format!(
                                "a TLS ClientHello naming no site, to {host}: {why}"
                            )),
                            r => r,
                        };
                        me.refuse(&who, &url, refused, started);
                        return;
                    }
                    None
                }
                Hello::Sni(name) => {
                    if host.parse::<IpAddr>().is_ok() {
                        // To an address (allowed above): the name must be allowed too.
                        if let Err((category, reason)) = me.decide_host(&engine, &group_name, &name)
                        {
                            let url = format!("https://{name}/");
                            me.refuse(&who, &url, Refused::Blocked(category, reason), started);
                            return;
                        }
                    } else if name != host {
                        let why = format!(
                            "the TLS server name {name} does not match the CONNECT host {host}"
                        );
                        me.refuse(&who, &url, Refused::Bypass(why), started);
                        return;
                    }
                    Some(name)
                }
            };
            // Decrypt when the group's policy says so and the site is not on the never list.
            let name = sni.unwrap_or_else(|| host.clone());
            if let Some(ca) = me.ca.clone() {
                let intercepts = engine
                    .group_id(&group_name)
                    .is_some_and(|g| Target::parse(&name).is_ok_and(|t| engine.intercepts(&t, g)));
                if intercepts {
                    drop(origin);
                    let site = Dest {
                        host: name,
                        port,
                        tls: true,
                    };
                    me.intercept(ca, first, client, site, conn, who).await;
                    return;
                }
            }
            me.emit(&who, &url, Action::Allow, None, None, None, started);
            if origin.write_all(&first).await.is_err() {
                return;
            }
            // The tunnel keeps the browser connection's slot while it lasts.
            let _conn = conn;
            let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
        });
        Response::new(empty())
    }

    /// The start of a tunnel: bytes until they make a whole ClientHello, or plainly are not
    /// one, within the header timeout and the size of the largest ClientHello (records
    /// included). `Incomplete`: the browser closed, or went quiet, first.
    async fn read_hello<T: tokio::io::AsyncRead + Unpin>(
        &self,
        client: &mut T,
    ) -> (Vec<u8>, Hello) {
        let deadline = tokio::time::Instant::now() + self.config.header_timeout();
        let mut first = Vec::with_capacity(2048);
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (first, Hello::Incomplete),
                Err(_) => {
                    Metrics::add(&self.metrics.client_timeouts);
                    return (first, Hello::Incomplete);
                }
                Ok(Ok(n)) => first.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
            match sni::parse(&first) {
                Hello::Incomplete if first.len() < HELLO_CAP => continue,
                Hello::Incomplete => return (first, Hello::NotTls),
                h => return (first, h),
            }
        }
    }

    /// Records a refused tunnel (a bypass attempt is counted, and recorded in the category
    /// `vpn-proxy` so monitoring makes it a bypass capture); its reason.
    fn refuse(&self, who: &Who, url: &str, refused: Refused, started: Instant) -> String {
        let (category, reason) = match refused {
            Refused::Blocked(category, reason) => (category, reason),
            Refused::Bypass(why) => {
                Metrics::add(&self.metrics.bypass);
                self.metrics.blocked(Some(BYPASS_CATEGORY));
                (
                    Some(BYPASS_CATEGORY.to_owned()),
                    format!("bypass attempt: {why}"),
                )
            }
        };
        self.emit(
            who,
            url,
            Action::Block,
            category.as_deref(),
            Some(reason.clone()),
            None,
            started,
        );
        reason
    }

    /// The decision on a tunnel to a bare address (an IP-literal CONNECT, or a ClientHello
    /// naming no site, decided as the address it goes to): a list or rule that names the
    /// address decides; else the group's `address_tunnels`, off by default, since the filter
    /// cannot tell which site an address is.
    fn decide_address(&self, engine: &Engine, group_name: &str, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let Some(group) = engine.group_id(group_name) else {
            self.metrics.blocked(None);
            return Err(Refused::Blocked(
                None,
                format!("group {group_name} is not in the policy"),
            ));
        };
        let Ok(target) = Target::parse(&ip.to_string()) else {
            self.metrics.blocked(None);
            return Err(Refused::Blocked(None, "unreadable address".to_owned()));
        };
        let d = engine.decide(&target, group, None, (self.clock)());
        match d.action {
            Action::Block | Action::Warn => {
                let (category, rule) = engine.brief(group, &d);
                self.metrics.blocked(category);
                let reason = match category {
                    Some(c) => format!("{c} ({rule})"),
                    None => rule.into_owned(),
                };
                Err(Refused::Blocked(category.map(str::to_owned), reason))
            }
            _ if !matches!(d.rule, Rule::Default { .. }) => Ok(()),
            _ if engine
                .policy()
                .group(group_name)
                .is_some_and(|g| g.address_tunnels) =>
            {
                Ok(())
            }
            _ => Err(Refused::Bypass(format!(
                "a tunnel to the address {ip}, which names no site (groups.{group_name}.address_tunnels)"
            ))),
        }
    }

    /// The decision on a bare host name for a group: `Err((category, reason))` when blocked
    /// (warnings included: a tunnel cannot show the page with its click-through).
    fn decide_host(
        &self,
        engine: &Engine,
        group_name: &str,
        host: &str,
    ) -> Result<(), (Option<String>, String)> {
        let Some(group) = engine.group_id(group_name) else {
            self.metrics.blocked(None);
            return Err((None, format!("group {group_name} is not in the policy")));
        };
        let Ok(target) = Target::parse(host) else {
            self.metrics.blocked(None);
            return Err((None, "unreadable host name".to_owned()));
        };
        let d = engine.decide(&target, group, None, (self.clock)());
        match d.action {
            Action::Block | Action::Warn => {
                let (category, rule) = engine.brief(group, &d);
                self.metrics.blocked(category);
                let reason = match category {
                    Some(c) => format!("{c} ({rule})"),
                    None => rule.into_owned(),
                };
                Err((category.map(str::to_owned), reason))
            }
            _ => Ok(()),
        }
    }
}

/// Who a review request is from, as its token binds it: user name (may be empty) and group.
fn asker(user: &str, group: &str) -> String {
    format!("{user}\n{group}")
}

/// A URI's host as it is dialled and decided: an IPv6 literal without its brackets, lower case.
fn bare_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

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

fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

pub(crate) fn empty_body() -> Body {
    empty()
}

fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

fn page_response(status: StatusCode, html: String) -> Response<Body> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action *"),
    );
    resp
}

fn not_found(school: &str) -> Response<Body> {
    page_response(
        StatusCode::NOT_FOUND,
        page::error(
            school,
            "Not found",
            "This is the school's web filter. Nothing is here.",
        ),
    )
}

fn upstream_error(school: &str, status: StatusCode, why: &str) -> Response<Body> {
    let title = if status == StatusCode::GATEWAY_TIMEOUT {
        "The website took too long to answer"
    } else {
        "The website could not be reached"
    };
    page_response(status, page::error(school, title, why))
}

/// A response body passed through from a website that puts its connection back in the pool
/// once the body has been read to its end.
struct Returning {
    inner: Incoming,
    back: Option<(Arc<Pool>, OriginKey, SendRequest<Body>)>,
}

impl Returning {
    fn new(inner: Incoming, pool: Arc<Pool>, key: OriginKey, sender: SendRequest<Body>) -> Self {
        let mut r = Returning {
            inner,
            back: Some((pool, key, sender)),
        };
        if r.inner.is_end_stream() {
            r.finish();
        }
        r
    }

    fn finish(&mut self) {
        if let Some((pool, key, sender)) = self.back.take() {
            pool.give_back(key, sender);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(f))) => {
                let end = this.inner.is_end_stream();
                if end {
                    this.finish();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body from a browser that fails when nothing arrives for `idle`, so a client
/// dripping (or stalling) a body cannot hold its connection, and the website's, for ever.
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether the deadline runs: from the first poll that found nothing to the next piece
    /// (a website slow to take the body does not count against the browser).
    waiting: bool,
}

impl IdleBody {
    fn new(inner: Incoming, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl hyper::body::Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let until = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(until);
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "the browser sent nothing of its request body for {} s",
                        this.idle.as_secs_f32()
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Always the one certificate minted for the site being decrypted.
#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A stream that first gives back bytes already read from it (the ClientHello the proxy
/// inspected), then reads on.
struct Replay<T> {
    first: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Replay<T> {
    fn new(first: Vec<u8>, inner: T) -> Self {
        Replay {
            first,
            at: 0,
            inner,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.at);
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "10.0.0.5".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn settings_that_switch_a_defence_off_are_refused() {
        assert!(ProxyConfig::default().check().is_ok());
        let zero = |f: fn(&mut ProxyConfig)| {
            let mut c = ProxyConfig::default();
            f(&mut c);
            c.check().expect_err("refused")
        };
        assert!(zero(|c| c.header_timeout_ms = 0).contains("proxy.header_timeout_ms"));
        assert!(zero(|c| c.body_timeout_ms = 0).contains("proxy.body_timeout_ms"));
        assert!(
            zero(|c| c.max_connections_per_client = 0).contains("proxy.max_connections_per_client")
        );
        assert!(zero(|c| c.connect_ports = vec![443, 0]).contains("proxy.connect_ports"));
        assert!(
            zero(|c| c.public_address = Some("x\"+alert(1)+\":3128".into()))
                .contains("proxy.public_address")
        );
    }
}
