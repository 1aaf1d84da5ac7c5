//! The DNS service: UDP and TCP listeners, upstream forwarding, and the answer to each query.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haven_core::clients::ClientMap;
use haven_core::event::{Event, Source};
use haven_core::policy::Action;
use haven_runtime::clock;
use haven_runtime::metrics::{Collector, DescriptorEncoder};
use haven_runtime::{EventSink, LiveEngine};
use jiff::civil::DateTime;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use crate::batch::RecvBatch;
use crate::cache::Cache;
use crate::filter::{self, Blocked, Plan};
use crate::metrics::Metrics;
use crate::upstream::{TlsClient, Upstream};
use crate::wire::{self, ede, rcode, rtype, Query, Reply, Response};

/// How blocked names are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlockMode {
    /// NXDOMAIN: the name does not exist.
    #[default]
    Nxdomain,
    /// 0.0.0.0 and :: (other types: no data).
    Null,
    /// The block page's addresses, so browsers show why.
    BlockPage,
}

/// The `[dns]` section of Haven's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Addresses to listen on (UDP and TCP), e.g. `127.0.0.1:5353` or `0.0.0.0:53`.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// Upstream resolvers, tried in order: `ADDRESS[:PORT]` for plain DNS, or
    /// `tls://ADDRESS[:PORT][#NAME]` for DNS over TLS. Empty means the system's (`/etc/resolv.conf`).
    #[serde(default)]
    pub upstreams: Vec<String>,
    /// Extra CA certificates (PEM) trusted for DNS-over-TLS upstreams, besides the system's.
    #[serde(default)]
    pub tls_ca_file: Option<String>,
    /// How to answer blocked names.
    #[serde(default)]
    pub block: BlockMode,
    /// The block page's addresses (IPv4 and/or IPv6), for `block = "block-page"`.
    #[serde(default)]
    pub block_page: Vec<IpAddr>,
    /// How long to wait for an upstream, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Answers kept in the cache.
    #[serde(default = "default_cache")]
    pub cache_entries: usize,
    /// Queries a second one client address may make, with bursts of twice that (0: no limit).
    /// Queries over the limit are refused.
    #[serde(default = "default_rate_limit")]
    pub rate_limit_qps: u32,
    /// Seconds clients may cache Haven's own negative answers (blocked names answered NXDOMAIN
    /// or with no data, the canaries): the TTL and MINIMUM of the SOA they carry (RFC 2308).
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl: u32,
    /// TCP connections one client address may hold open at once; more are closed straight away.
    #[serde(default = "default_tcp_per_client")]
    pub tcp_connections_per_client: usize,
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:5353".to_owned()]
}
fn default_timeout() -> u64 {
    2000
}
fn default_cache() -> usize {
    100_000
}
/// A thousand queries a second from one address, bursts of two thousand: far above what a
/// device, or a classroom or guest network behind one NAT address, asks in normal use (a page
/// load is tens of names), and about a hundredth of what Haven answers, so one flooding device
/// cannot take the filter from everyone else.
fn default_rate_limit() -> u32 {
    1000
}
/// Five minutes: devices stop re-asking for a blocked name at every retry, and an unblocked
/// name (a review approved) is seen within five minutes.
fn default_negative_ttl() -> u32 {
    300
}
/// Enough for a stub resolver's retries and a forwarding resolver's parallel questions; 1,024
/// connections in all means 64 addresses would be needed to fill them.
fn default_tcp_per_client() -> usize {
    16
}
/// The longest negative TTL accepted (a day).
const MAX_NEGATIVE_TTL: u32 = 86_400;

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            listen: default_listen(),
            upstreams: Vec::new(),
            block: BlockMode::default(),
            block_page: Vec::new(),
            timeout_ms: default_timeout(),
            cache_entries: default_cache(),
            rate_limit_qps: default_rate_limit(),
            negative_ttl: default_negative_ttl(),
            tcp_connections_per_client: default_tcp_per_client(),
            tls_ca_file: None,
        }
    }
}

/// The DNS filter.
#[derive(Debug)]
pub struct DnsFilter {
    engine: Arc<LiveEngine>,
    clients: Arc<ClientMap>,
    upstreams: Vec<Upstream>,
    tls: Option<TlsClient>,
    timeout: Duration,
    block: BlockMode,
    block_v4: Option<Ipv4Addr>,
    block_v6: Option<Ipv6Addr>,
    cache: Mutex<Cache>,
    clock: fn() -> DateTime,
    ids: RandomState,
    counter: AtomicU64,
    /// Counters for the metrics endpoint.
    pub metrics: Metrics,
    events: Option<Arc<EventSink>>,
    inflight: Mutex<HashMap<Key, Vec<oneshot::Sender<Option<Resolved>>>>>,
    rate_limit: u32,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    negative_ttl: u32,
    tcp_per_client: usize,
    /// Open TCP connections by client address.
    tcp_open: Mutex<HashMap<IpAddr, usize>>,
}

/// Client addresses whose token buckets are remembered; past this, buckets that are full again
/// (their client quiet for [`BUCKET_REFILL_SECS`]) are forgotten, and if that is not enough to
/// halve the table, all are (so a flood of forged addresses costs a sweep per 50,000, not one
/// per query).
const MAX_BUCKETS: usize = 100_000;
/// A bucket is full again this long after its last query (bursts are two seconds' worth).
const BUCKET_REFILL_SECS: u64 = 2;

/// TCP connections served at once.
pub const MAX_TCP_CONNECTIONS: usize = 1024;

/// How long a TCP connection may stay idle, and a query or answer take to cross it.
pub const TCP_IDLE: Duration = Duration::from_secs(10);

/// One of a client address's TCP connection places, given back when dropped.
struct TcpPlace {
    filter: Arc<DnsFilter>,
    client: IpAddr,
}

impl Drop for TcpPlace {
    fn drop(&mut self) {
        if let Ok(mut open) = self.filter.tcp_open.lock() {
            if let Some(n) = open.get_mut(&self.client) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.client);
                }
            }
        }
    }
}

/// A question exactly (lower-case name, type, DO bit): the key of the in-flight map, where a
/// mix-up would give one client another's answer, so no hashing shortcut is taken.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    name: String,
    qtype: u16,
    dnssec_ok: bool,
}

/// An answer and the names it leads to.
type Resolved = (Vec<u8>, Vec<String>);

/// What one query came to, for its event.
/// A query being answered: what was asked, by whom, over what, since when.
#[derive(Debug)]
pub struct Asked {
    query: Query,
    client: IpAddr,
    tcp: bool,
    now: Now,
}

/// The moment a batch of queries arrived, read once for all of them: the clock is read per
/// batch, not several times per query.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    instant: Instant,
    wall_ms: u64,
    local: DateTime,
}

/// What [`DnsFilter::begin`] could do at once.
#[derive(Debug)]
pub enum Begun {
    /// The reply (`None`: send nothing).
    Now(Option<Vec<u8>>),
    /// An upstream is needed: pass this to [`DnsFilter::finish`].
    Later(Box<Later>),
}

/// An answer waiting for an upstream.
#[derive(Debug)]
pub struct Later {
    asked: Asked,
    step: Step,
}

#[derive(Debug)]
enum Step {
    SafeSearch { group: String, host: &'static str },
    Forward(Forward),
}

/// A name the policy lets through, to be asked upstream and its CNAME targets checked.
#[derive(Debug)]
struct Forward {
    group_name: String,
    engine: Arc<haven_core::Engine>,
    group: haven_core::engine::GroupId,
    at: DateTime,
    warn_as_block: bool,
    action: Action,
    /// Why an alert-only or passed warning was noted.
    why: Option<Blocked>,
}

struct Answered {
    reply: Vec<u8>,
    group: String,
    action: Action,
    reason: Option<String>,
    category: Option<String>,
}

impl Answered {
    /// Records the category of a block (none when a rule rather than a category decided).
    fn in_category(mut self, category: &str) -> Self {
        self.category = (!category.is_empty()).then(|| category.to_owned());
        self
    }
}

/// Removes an in-flight question when its leader finishes, whatever happens; waiters still
/// queued then see their channel close and answer SERVFAIL rather than wait for ever.
struct InflightGuard<'a> {
    map: &'a Mutex<HashMap<Key, Vec<oneshot::Sender<Option<Resolved>>>>>,
    key: Key,
}

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(&self.key);
        }
    }
}

/// Why the filter could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// An upstream that is not `address:port` or an address.
    #[error("dns.upstreams: {0:?} is not ADDRESS[:PORT] or tls://ADDRESS[:PORT][#NAME]")]
    Upstream(String),
    /// No upstream at all.
    #[error("dns.upstreams is empty and /etc/resolv.conf names no nameserver")]
    NoUpstream,
    /// Block-page mode without an address.
    #[error("dns.block = \"block-page\" needs dns.block_page addresses")]
    NoBlockPage,
    /// The TLS client for DNS-over-TLS upstreams could not be set up.
    #[error("dns.tls_ca_file: {0}")]
    Tls(#[from] haven_tls::TlsError),
    /// A negative TTL over a day.
    #[error("dns.negative_ttl: {0} is more than a day (86400)")]
    NegativeTtl(u32),
    /// No TCP connection allowed per client.
    #[error("dns.tcp_connections_per_client must be at least 1")]
    TcpPerClient,
}

impl DnsFilter {
    /// Builds the filter from its configuration. `system_upstreams` is what the system resolver
    /// configuration names (used when the config names none). `clock` gives local time.
    pub fn new(
        config: &DnsConfig,
        engine: Arc<LiveEngine>,
        clients: Arc<ClientMap>,
        system_upstreams: &[SocketAddr],
        clock: fn() -> DateTime,
    ) -> Result<DnsFilter, ConfigError> {
        let mut upstreams = Vec::new();
        for u in &config.upstreams {
            upstreams.push(Upstream::parse(u).ok_or_else(|| ConfigError::Upstream(u.clone()))?);
        }
        if upstreams.is_empty() {
            upstreams.extend(system_upstreams.iter().copied().map(Upstream::Plain));
        }
        if upstreams.is_empty() {
            return Err(ConfigError::NoUpstream);
        }
        let block_v4 = config.block_page.iter().find_map(|ip| match ip {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        });
        let block_v6 = config.block_page.iter().find_map(|ip| match ip {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        });
        if config.block == BlockMode::BlockPage && block_v4.is_none() && block_v6.is_none() {
            return Err(ConfigError::NoBlockPage);
        }
        if config.negative_ttl > MAX_NEGATIVE_TTL {
            return Err(ConfigError::NegativeTtl(config.negative_ttl));
        }
        if config.tcp_connections_per_client == 0 {
            return Err(ConfigError::TcpPerClient);
        }
        let tls = if upstreams.iter().any(|u| matches!(u, Upstream::Tls { .. })) {
            Some(TlsClient::new(
                config.tls_ca_file.as_deref().map(std::path::Path::new),
            )?)
        } else {
            None
        };
        Ok(DnsFilter {
            engine,
            clients,
            upstreams,
            tls,
            timeout: Duration::from_millis(config.timeout_ms.max(1)),
            block: config.block,
            block_v4,
            block_v6,
            cache: Mutex::new(Cache::new(config.cache_entries)),
            clock,
            ids: RandomState::new(),
            counter: AtomicU64::new(0),
            metrics: Metrics::default(),
            events: None,
            inflight: Mutex::new(HashMap::new()),
            rate_limit: config.rate_limit_qps,
            buckets: Mutex::new(HashMap::new()),
            negative_ttl: config.negative_ttl,
            tcp_per_client: config.tcp_connections_per_client,
            tcp_open: Mutex::new(HashMap::new()),
        })
    }

    /// Hands every query's event to `events` (see [`EventSink`]: never waiting, drops counted).
    pub fn with_events(mut self, events: Arc<EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// The cache's figures and the events dropped, now.
    fn figures(&self) -> crate::metrics::CacheFigures {
        let figures = self
            .cache
            .lock()
            .map(|c| {
                let ((hits, misses), (entries, bytes)) = (c.stats(), c.size());
                crate::metrics::CacheFigures {
                    hits,
                    misses,
                    entries,
                    bytes,
                    events_dropped: 0,
                }
            })
            .unwrap_or_default();
        let events_dropped = self.events.as_ref().map_or(0, |s| s.dropped());
        crate::metrics::CacheFigures {
            events_dropped,
            ..figures
        }
    }

    /// Whether a client is within its rate limit (a token bucket per address).
    fn within_rate(&self, client: IpAddr, now: Instant) -> bool {
        if self.rate_limit == 0 {
            return true;
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return true;
        };
        if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&client) {
            let refill = Duration::from_secs(BUCKET_REFILL_SECS);
            buckets.retain(|_, (_, last)| now.saturating_duration_since(*last) < refill);
            if buckets.len() > MAX_BUCKETS / 2 {
                buckets.clear();
            }
        }
        let rate = f64::from(self.rate_limit);
        let (tokens, last) = buckets.entry(client).or_insert((rate * 2.0, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(rate * 2.0);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn emit(&self, event: Event) {
        if let Some(sink) = &self.events {
            sink.emit(event);
        }
    }

    /// The upstreams in use.
    pub fn upstreams(&self) -> &[Upstream] {
        &self.upstreams
    }

    fn random_id(&self) -> u16 {
        // A keyed hash of a counter: unpredictable to anyone off the box, as query ids must be.
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (self.ids.hash_one(n) & 0xFFFF) as u16
    }

    /// Answers one message from `client`. `None`: send nothing (a response, or garbage too short
    /// to carry an id).
    pub async fn answer(&self, msg: &[u8], client: IpAddr, tcp: bool) -> Option<Vec<u8>> {
        match self.begin(msg, client, tcp, self.now()) {
            Begun::Now(reply) => reply,
            Begun::Later(later) => Some(self.finish(msg, *later).await),
        }
    }

    /// The time now, for [`DnsFilter::begin`].
    pub fn now(&self) -> Now {
        Now {
            instant: clock::instant(),
            wall_ms: clock::now_ms(),
            local: (self.clock)(),
        }
    }

    /// Everything about an answer that needs no upstream, done at once: parsing, the rate
    /// limit, the policy, the cache. Blocked names and cached answers are complete here; what
    /// needs an upstream comes back as [`Begun::Later`] for [`DnsFilter::finish`].
    pub fn begin(&self, msg: &[u8], client: IpAddr, tcp: bool, now: Now) -> Begun {
        let query = match wire::parse_query(msg) {
            Ok(q) => q,
            Err(_) => {
                self.metrics.malformed.fetch_add(1, Ordering::Relaxed);
                return Begun::Now(wire::formerr(msg));
            }
        };
        self.metrics.queries.fetch_add(1, Ordering::Relaxed);
        if !self.within_rate(client, now.instant) {
            self.metrics.rate_limited.fetch_add(1, Ordering::Relaxed);
            return Begun::Now(Some(Reply::to(&query).rcode(rcode::REFUSED).build()));
        }
        let asked = Asked {
            query,
            client,
            tcp,
            now,
        };
        match self.answer_now(&asked) {
            Ok(answered) => Begun::Now(Some(self.complete(&asked, answered))),
            Err(step) => Begun::Later(Box::new(Later { asked, step })),
        }
    }

    /// Completes an answer that needed an upstream. `msg` is the message given to `begin`.
    pub async fn finish(&self, msg: &[u8], later: Later) -> Vec<u8> {
        let Later { asked, step } = later;
        let q = &asked.query;
        let answered = match step {
            Step::SafeSearch { group, host } => Answered {
                reply: self.safe_search(q, host).await,
                group,
                action: Action::Rewrite,
                reason: Some(format!("safe search: {host}")),
                category: None,
            },
            Step::Forward(f) => self.forward_checked(msg, q, f).await,
        };
        self.complete(&asked, answered)
    }

    /// Records the event and fits the reply to the transport.
    fn complete(&self, asked: &Asked, answered: Answered) -> Vec<u8> {
        let query = &asked.query;
        self.emit(Event {
            at_ms: asked.now.wall_ms,
            source: Source::Dns,
            client: asked.client,
            group: answered.group,
            // A device the table gives an owner says who, without a sign-in.
            user: self.clients.owner(asked.client).map(str::to_owned),
            name: query.name.clone(),
            qtype: Some(query.qtype),
            action: answered.action,
            category: answered.category,
            reason: answered.reason,
            search: None,
            latency_us: asked.now.instant.elapsed().as_micros() as u64,
        });
        let reply = answered.reply;
        if !asked.tcp && reply.len() > query.udp_limit() {
            return wire::truncate(&reply, query);
        }
        reply
    }

    /// The answer, when it needs no upstream; otherwise what is left to do.
    fn answer_now(&self, asked: &Asked) -> Result<Answered, Step> {
        let q = &asked.query;
        let (group_name, _) = self.clients.place(asked.client);
        let answered = |reply, action, reason| Answered {
            reply,
            group: group_name.to_owned(),
            action,
            reason,
            category: None,
        };
        if q.edns_version > 0 {
            // RFC 6891 6.1.3: Haven implements EDNS version 0 only.
            return Ok(answered(
                Reply::to(q).rcode(rcode::BADVERS).build(),
                Action::Block,
                Some("EDNS version not implemented".into()),
            ));
        }
        if q.opcode != 0 {
            return Ok(answered(
                Reply::to(q).rcode(rcode::NOTIMP).build(),
                Action::Block,
                Some("not a standard query".into()),
            ));
        }
        if q.qclass != 1 {
            return Ok(answered(
                Reply::to(q).rcode(rcode::REFUSED).build(),
                Action::Block,
                Some("not class IN".into()),
            ));
        }
        let engine = self.engine.current();
        let at = asked.now.local;
        let warn_as_block = self.block == BlockMode::BlockPage;
        let Some(group) = engine.group_id(group_name) else {
            // The client's group is not in the policy in force: fail closed.
            let b = Blocked {
                category: String::new(),
                ede: ede::FILTERED,
                reason: format!("Haven: group {group_name} is not in the policy"),
                warn: false,
            };
            return Ok(answered(
                self.block_reply(q, &b),
                Action::Block,
                Some(b.reason),
            ));
        };
        match filter::plan(&engine, &q.name, group, at, warn_as_block) {
            Plan::Canary => Ok(answered(
                Reply::to(q)
                    .rcode(rcode::NXDOMAIN)
                    .authoritative()
                    .negative_ttl(self.negative_ttl)
                    .build(),
                Action::Block,
                Some("canary: keeps devices on the school's filter".into()),
            )),
            Plan::Block(b) => Ok(answered(
                self.block_reply(q, &b),
                if b.warn { Action::Warn } else { Action::Block },
                Some(b.reason),
            )
            .in_category(&b.category)),
            Plan::SafeSearch(host) => Err(Step::SafeSearch {
                group: group_name.to_owned(),
                host,
            }),
            Plan::Forward(action, why) => {
                let f = Forward {
                    group_name: group_name.to_owned(),
                    engine,
                    group,
                    at,
                    warn_as_block,
                    action,
                    why,
                };
                match self.cached(q, asked.now.instant) {
                    Some(hit) => Ok(self.checked(q, f, Some(hit))),
                    None => Err(Step::Forward(f)),
                }
            }
        }
    }

    /// Asks upstream (joining an identical question already asked), then checks the answer.
    async fn forward_checked(&self, msg: &[u8], q: &Query, f: Forward) -> Answered {
        let resolved = self.resolve(msg, q).await;
        self.checked(q, f, resolved)
    }

    /// An upstream answer (or none) checked: every CNAME target goes through the policy.
    fn checked(&self, q: &Query, f: Forward, resolved: Option<Resolved>) -> Answered {
        let answered = |reply, action, reason| Answered {
            reply,
            group: f.group_name.clone(),
            action,
            reason,
            category: None,
        };
        let Some((mut answer, names)) = resolved else {
            self.metrics
                .upstream_failures
                .fetch_add(1, Ordering::Relaxed);
            return answered(
                Reply::to(q).rcode(rcode::SERVFAIL).build(),
                Action::Allow,
                Some("no upstream answered".into()),
            );
        };
        if let Some(b) = filter::check_chain(
            &f.engine,
            names.iter().map(String::as_str),
            f.group,
            f.at,
            f.warn_as_block,
        ) {
            return answered(
                self.block_reply(q, &b),
                if b.warn { Action::Warn } else { Action::Block },
                Some(b.reason),
            )
            .in_category(&b.category);
        }
        wire::set_id(&mut answer, q.id);
        wire::set_question(&mut answer, &q.question);
        let (reason, category) = match f.why {
            Some(b) => {
                let category = (!b.category.is_empty()).then_some(b.category);
                (Some(b.reason), category)
            }
            None => (None, None),
        };
        Answered {
            reply: answer,
            group: f.group_name,
            action: f.action,
            reason,
            category,
        }
    }

    fn block_reply(&self, q: &Query, b: &Blocked) -> Vec<u8> {
        self.metrics.blocked(if b.category.is_empty() {
            "(rule)"
        } else {
            &b.category
        });
        let reply = Reply::to(q)
            .authoritative()
            .extended_error(b.ede, &b.reason);
        let (v4, v6) = match self.block {
            BlockMode::Nxdomain => {
                return reply
                    .rcode(rcode::NXDOMAIN)
                    .negative_ttl(self.negative_ttl)
                    .build()
            }
            BlockMode::Null => (Some(Ipv4Addr::UNSPECIFIED), Some(Ipv6Addr::UNSPECIFIED)),
            BlockMode::BlockPage => (self.block_v4, self.block_v6),
        };
        match (q.qtype, v4, v6) {
            (rtype::A, Some(ip), _) => reply.a(&q.name, 60, ip).build(),
            (rtype::AAAA, _, Some(ip)) => reply.aaaa(&q.name, 60, ip).build(),
            // Other types, or no address of that family: no data.
            _ => reply.negative_ttl(self.negative_ttl).build(),
        }
    }

    async fn safe_search(&self, q: &Query, host: &'static str) -> Vec<u8> {
        let reply = Reply::to(q).authoritative().cname(&q.name, 300, host);
        if q.qtype != rtype::A && q.qtype != rtype::AAAA {
            return reply.build();
        }
        let Ok(lookup) = wire::build_query(0, host, q.qtype) else {
            return reply.build();
        };
        let Ok(target) = wire::parse_query(&lookup) else {
            return reply.build();
        };
        let found = match self.cached(&target, clock::instant()) {
            Some(hit) => Some(hit),
            None => self.resolve(&lookup, &target).await,
        };
        match found {
            Some((msg, _)) => match wire::parse_response(&msg) {
                Ok(resp) => {
                    let ttl = resp.min_ttl().unwrap_or(300).min(300);
                    wire::address_rdata(&msg, &resp)
                        .into_iter()
                        .fold(reply, |r, (t, rdata)| r.raw(host, t, ttl, &rdata))
                        .build()
                }
                Err(_) => reply.build(),
            },
            // Without an upstream the CNAME alone still steers the device to safe search.
            None => reply.build(),
        }
    }

    /// A fresh answer from the cache, its TTLs aged.
    fn cached(&self, q: &Query, now: Instant) -> Option<Resolved> {
        let hit = self.cache.lock().ok()?.get(&q.question, q.dnssec_ok, now)?;
        Some((hit.msg, hit.names))
    }

    /// An answer from the upstreams (the cache was consulted by the caller): the message and
    /// the names it leads to. Identical questions already on their way upstream are joined,
    /// not asked again.
    async fn resolve(&self, msg: &[u8], q: &Query) -> Option<Resolved> {
        let key = Key {
            name: q.name.clone(),
            qtype: q.qtype,
            dnssec_ok: q.dnssec_ok,
        };
        let waiting = {
            let mut inflight = self.inflight.lock().ok()?;
            match inflight.get_mut(&key) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    inflight.insert(key.clone(), Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiting {
            return rx.await.ok().flatten();
        }
        let guard = InflightGuard {
            map: &self.inflight,
            key: key.clone(),
        };
        let result = self.forward(msg, q).await.map(|(answer, resp)| {
            if let Ok(mut cache) = self.cache.lock() {
                cache.put(&q.question, q.dnssec_ok, &answer, &resp, clock::instant());
            }
            let names = resp
                .answers
                .iter()
                .filter_map(|r| r.cname.clone())
                .collect();
            (answer, names)
        });
        let waiters = self
            .inflight
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&key))
            .unwrap_or_default();
        drop(guard);
        for w in waiters {
            let _ = w.send(result.clone());
        }
        result
    }

    /// Asks each upstream in turn: over UDP, and over TCP when the UDP answer is truncated.
    async fn forward(&self, msg: &[u8], q: &Query) -> Option<(Vec<u8>, Response)> {
        for upstream in &self.upstreams {
            let id = self.random_id();
            let mut out = msg.to_vec();
            wire::set_id(&mut out, id);
            wire::set_edns_size(&mut out, q);
            let asked = clock::instant();
            self.metrics
                .upstream_queries
                .fetch_add(1, Ordering::Relaxed);
            let answer = match upstream {
                Upstream::Plain(addr) => match self.ask_udp(*addr, &out, id, q).await {
                    Ok((bytes, resp)) if !resp.truncated => Some((bytes, resp)),
                    Ok(_) => self.ask_tcp(*addr, &out, id, q).await.ok(),
                    Err(_) => None,
                },
                Upstream::Tls { addr, name } => {
                    self.ask_tls(*addr, name.as_deref(), &out, id, q).await.ok()
                }
            };
            self.metrics
                .upstream_latency_us
                .fetch_add(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
            if let Some(a) = answer {
                return Some(a);
            }
        }
        None
    }

    async fn ask_udp(
        &self,
        upstream: SocketAddr,
        out: &[u8],
        id: u16,
        q: &Query,
    ) -> io::Result<(Vec<u8>, Response)> {
        let bind: SocketAddr = if upstream.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(bind).await?;
        sock.connect(upstream).await?;
        sock.send(out).await?;
        let mut buf = vec![0u8; 65_535];
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let n = tokio::time::timeout_at(deadline, sock.recv(&mut buf))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream timed out"))??;
            // Anything but the answer to this question with this id is ignored (spoofing).
            if let Ok(resp) = wire::parse_response(&buf[..n]) {
                if answers(&resp, id, q) {
                    return Ok((buf[..n].to_vec(), resp));
                }
            }
        }
    }

    async fn ask_tls(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        out: &[u8],
        id: u16,
        q: &Query,
    ) -> io::Result<(Vec<u8>, Response)> {
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| io::Error::other("no TLS client"))?;
        let buf = tls.exchange(addr, name, out, self.timeout).await?;
        checked_answer(buf, id, q)
    }

    async fn ask_tcp(
        &self,
        upstream: SocketAddr,
        out: &[u8],
        id: u16,
        q: &Query,
    ) -> io::Result<(Vec<u8>, Response)> {
        let exchange = async {
            let mut s = TcpStream::connect(upstream).await?;
            s.write_all(&tcp_frame(out)?).await?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).await?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).await?;
            Ok::<_, io::Error>(buf)
        };
        let buf = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream timed out"))??;
        checked_answer(buf, id, q)
    }

    /// Serves UDP on a bound socket until it fails. The socket's receive buffer is raised to
    /// 4 MiB (as far as the system allows) so a burst, or a moment spent loading new lists,
    /// queues queries instead of dropping them.
    pub async fn serve_udp(self: Arc<Self>, socket: UdpSocket) -> io::Result<()> {
        let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
        let socket = Arc::new(socket);
        let mut batch = RecvBatch::new(&socket)?;
        let mut ready: Vec<(Vec<u8>, SocketAddr)> = Vec::with_capacity(crate::batch::BATCH);
        let mut since_yield = 0;
        let mut spawned = false;
        loop {
            let n = match batch.recv(&socket).await {
                Ok(n) => n,
                // An ICMP error from an earlier reply surfaces here on some systems: not fatal.
                Err(e)
                    if e.kind() == io::ErrorKind::ConnectionRefused
                        || e.kind() == io::ErrorKind::ConnectionReset =>
                {
                    continue
                }
                Err(e) => return Err(e),
            };
            let now = self.now();
            for i in 0..n {
                let (msg, got) = batch.get(i);
                let Some(peer) = got.peer else { continue };
                if got.truncated {
                    // Longer than any query: answered as malformed if it has a header at all.
                    if let Some(reply) = wire::formerr(msg) {
                        ready.push((reply, peer));
                    }
                    continue;
                }
                // Blocked names and cached answers are ready at once: answer them with the rest
                // of the batch. Only an answer that waits for an upstream becomes a task.
                match self.begin(msg, peer.ip(), false, now) {
                    Begun::Now(Some(r)) => ready.push((r, peer)),
                    Begun::Now(None) => {}
                    Begun::Later(later) => {
                        spawned = true;
                        let msg = msg.to_vec();
                        let me = self.clone();
                        let socket = socket.clone();
                        tokio::spawn(async move {
                            let r = me.finish(&msg, *later).await;
                            let _ = socket.send_to(&r, peer).await;
                        });
                    }
                }
            }
            if !ready.is_empty() {
                crate::batch::send_all(&socket, &ready).await;
                ready.clear();
            }
            // Let the tasks waiting on upstreams run between batches (after every batch that
            // started one, and at least every 128 datagrams); otherwise their answers queue
            // behind new queries and their memory grows.
            since_yield += n;
            if spawned || since_yield >= 128 {
                since_yield = 0;
                spawned = false;
                tokio::task::yield_now().await;
            }
        }
    }

    /// Takes one of a client address's TCP connection places, if it has one free.
    fn tcp_place(self: &Arc<Self>, client: IpAddr) -> Option<TcpPlace> {
        let mut open = self.tcp_open.lock().ok()?;
        let n = open.entry(client).or_insert(0);
        if *n >= self.tcp_per_client {
            return None;
        }
        *n += 1;
        Some(TcpPlace {
            filter: self.clone(),
            client,
        })
    }

    /// Serves TCP on a bound listener until it fails. At most [`MAX_TCP_CONNECTIONS`] are open
    /// at once, and `tcp_connections_per_client` from one address; one more is closed straight
    /// away, so one device's idle connections cannot take the listener from the others. A
    /// connection is closed after [`TCP_IDLE`] without a query (RFC 7766 6.2.3), or when a query
    /// or an answer takes longer than that to cross.
    pub async fn serve_tcp(self: Arc<Self>, listener: TcpListener) -> io::Result<()> {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP_CONNECTIONS));
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(_) => {
                    // Out of file descriptors, most likely: the connection stays queued and
                    // accept fails again at once, so wait a moment rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(place) = self.tcp_place(peer.ip()) else {
                self.metrics.tcp_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                self.metrics.tcp_refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            };
            let me = self.clone();
            tokio::spawn(async move {
                let _ = me.serve_tcp_connection(stream, peer.ip()).await;
                drop(slot);
                drop(place);
            });
        }
    }

    async fn serve_tcp_connection(&self, mut stream: TcpStream, peer: IpAddr) -> io::Result<()> {
        const IDLE: Duration = TCP_IDLE;
        loop {
            let mut len = [0u8; 2];
            match tokio::time::timeout(IDLE, stream.read_exact(&mut len)).await {
                Ok(Ok(_)) => {}
                _ => return Ok(()),
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            tokio::time::timeout(IDLE, stream.read_exact(&mut msg))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client too slow"))??;
            let Some(reply) = self.answer(&msg, peer, true).await else {
                return Ok(());
            };
            // A client that stops reading cannot hold the connection either.
            tokio::time::timeout(IDLE, stream.write_all(&tcp_frame(&reply)?))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client not reading"))??;
        }
    }
}

/// Whether an upstream response answers our question (id, name and type all match).
fn answers(resp: &Response, id: u16, q: &Query) -> bool {
    resp.id == id && resp.name == q.name && resp.qtype == q.qtype
}

/// An upstream's answer over a stream, parsed and checked against our question.
fn checked_answer(buf: Vec<u8>, id: u16, q: &Query) -> io::Result<(Vec<u8>, Response)> {
    let resp = wire::parse_response(&buf).map_err(io::Error::other)?;
    if !answers(&resp, id, q) {
        return Err(io::Error::other("upstream answered another question"));
    }
    Ok((buf, resp))
}

/// A DNS message framed for TCP: its length in two bytes, then the message.
fn tcp_frame(msg: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(msg.len())
        .map_err(|_| io::Error::other("message longer than 65,535 bytes"))?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    Ok(framed)
}

/// The nameservers `/etc/resolv.conf`-style text names.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter_map(|ip| ip.split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// The DNS filter's metrics, read on each scrape (register an `Arc<DnsFilter>`).
impl Collector for DnsFilter {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        self.metrics.encode(self.figures(), &mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_names_the_system_upstreams() {
        let conf =
            "# comment\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nsearch school.internal\n";
        assert_eq!(resolv_conf_nameservers(conf).len(), 2);
    }
}

#[cfg(test)]
mod request_path {
    use super::*;
    use haven_core::policy::DEFAULT_POLICY;
    use haven_core::snapshot::{EntryKind, SnapshotBuilder};
    use haven_core::{Engine, Policy, Snapshot};
    use proptest::prelude::*;

    fn filter() -> DnsFilter {
        let mut b = SnapshotBuilder::new();
        let s = b.add_source("t", "gambling").expect("source");
        b.add(s, EntryKind::Domain, "casino.example")
            .expect("entry");
        let snapshot = Snapshot::from_bytes(b.build(0)).expect("snapshot");
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        let engine = Engine::new(Arc::new(snapshot), Arc::new(policy), "test").expect("engine");
        let clients = ClientMap::new(&[], &[], "ks2", |_| true).expect("clients");
        // An upstream nobody answers on: forwarding fails fast, which is fine for this test.
        let config = DnsConfig {
            upstreams: vec!["127.0.0.1:9".into()],
            timeout_ms: 50,
            ..DnsConfig::default()
        };
        DnsFilter::new(
            &config,
            Arc::new(LiveEngine::new(engine)),
            Arc::new(clients),
            &[],
            || jiff::civil::date(2026, 11, 23).at(10, 0, 0, 0),
        )
        .expect("filter")
    }

    #[test]
    fn the_filter_is_a_collector_of_its_counters() {
        let f = Arc::new(filter());
        f.metrics.queries.fetch_add(2, Ordering::Relaxed);
        f.metrics.blocked("gambling");
        let scraped = haven_runtime::metrics::text(Arc::clone(&f));
        assert!(
            scraped.contains("\nhaven_dns_queries_total 2\n"),
            "{scraped}"
        );
        assert!(
            scraped.contains("\nhaven_dns_blocked_total{category=\"gambling\"} 1\n"),
            "{scraped}"
        );
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any datagram gets an answer that parses as a response, or none; never a panic. Mutated
        /// real queries reach deeper than random bytes.
        #[test]
        fn the_request_path_never_panics(
            raw in proptest::collection::vec(any::<u8>(), 0..300),
            flips in proptest::collection::vec((0usize..64, any::<u8>()), 0..6),
            name in "[a-z]{1,10}\\.(example|casino\\.example)",
        ) {
            let f = filter();
            let client: IpAddr = "127.0.0.2".parse().expect("ip");
            let mut query = wire::build_query(7, &name, rtype::A).expect("query");
            for (at, byte) in &flips {
                let i = *at % query.len();
                query[i] = *byte;
            }
            for msg in [raw, query] {
                if let Some(reply) = run(f.answer(&msg, client, false)) {
                    prop_assert!(reply.len() >= 12);
                    prop_assert!(reply[2] & 0x80 != 0, "a reply is a response");
                    prop_assert!(reply.len() <= 512 || wire::parse_query(&msg).is_ok_and(|q| reply.len() <= q.udp_limit()));
                }
            }
        }
    }

    #[test]
    fn the_rate_limit_table_stays_bounded_under_forged_addresses() {
        let mut f = filter();
        assert_eq!(f.rate_limit, 1000, "on by default");
        f.rate_limit = 1;
        let now = clock::instant();
        let pupil: IpAddr = "10.0.0.1".parse().expect("ip");
        // A burst of two, then refused.
        assert!(f.within_rate(pupil, now) && f.within_rate(pupil, now));
        assert!(!f.within_rate(pupil, now));
        // Three tables' worth of forged addresses in the same second: the table never grows
        // past its bound, and every new address still gets its burst.
        for i in 0..3 * MAX_BUCKETS as u32 {
            assert!(f.within_rate(IpAddr::V4(Ipv4Addr::from(0x0B00_0000 + i)), now));
        }
        assert!(f.buckets.lock().expect("lock").len() <= MAX_BUCKETS);
        // Quiet addresses are forgotten only once their bucket is full again: nothing is lost.
        let later = now + Duration::from_secs(BUCKET_REFILL_SECS);
        assert!(f.within_rate(pupil, later) && f.within_rate(pupil, later));
        assert!(!f.within_rate(pupil, later));
    }

    #[test]
    fn blocked_names_are_answered_without_an_upstream() {
        let f = filter();
        let msg = wire::build_query(9, "www.casino.example", rtype::A).expect("query");
        let reply = run(f.answer(&msg, "127.0.0.2".parse().expect("ip"), false)).expect("reply");
        let r = wire::parse_response(&reply).expect("response");
        assert_eq!((r.id, r.rcode), (9, rcode::NXDOMAIN));
        assert_eq!(f.metrics.blocked_total(), 1);
    }
}
