//! `haven serve`: Haven's main job. Today it runs the DNS filter and the filtering proxy; the
//! console joins them in a later release.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use haven_core::clients::{ClientMap, DeviceFile, NetworkFile};
use haven_core::LiveEngine;
use haven_dns::server::resolv_conf_nameservers;
use haven_dns::upstream::Upstream;
use haven_dns::{DnsConfig, DnsFilter};
use haven_lists::{Format, Progress, SourceSpec};
use serde::Deserialize;

use crate::Context;

/// The configuration Haven ships (`config/haven.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/haven.toml");

/// Sample lists for `--demo` (`config/demo-lists/`), by Haven category.
const DEMO_LISTS: &[(&str, &str)] = &[
    (
        "gambling",
        include_str!("../../../config/demo-lists/gambling/domains"),
    ),
    (
        "pornography",
        include_str!("../../../config/demo-lists/pornography/domains"),
    ),
    (
        "social-networks",
        include_str!("../../../config/demo-lists/social-networks/domains"),
    ),
    (
        "chat",
        include_str!("../../../config/demo-lists/chat/domains"),
    ),
    (
        "games",
        include_str!("../../../config/demo-lists/games/domains"),
    ),
    (
        "doh",
        include_str!("../../../config/demo-lists/doh/domains"),
    ),
    (
        "vpn-proxy",
        include_str!("../../../config/demo-lists/vpn-proxy/domains"),
    ),
    (
        "dating",
        include_str!("../../../config/demo-lists/dating/domains"),
    ),
    (
        "malware",
        include_str!("../../../config/demo-lists/malware/domains"),
    ),
];

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Service configuration (default: <data-dir>/haven.toml, else the built-in one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run the demo: the built-in configuration, and sample lists when none are imported.
    #[arg(long)]
    demo: bool,
}

/// `haven.toml`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Group for addresses no network or device names.
    pub default_group: String,
    /// The DNS filter.
    #[serde(default)]
    pub dns: DnsConfig,
    /// The filtering proxy (`listen = []` switches it off).
    #[serde(default)]
    pub proxy: haven_proxy::ProxyConfig,
    /// Networks and their groups.
    #[serde(default)]
    pub networks: Vec<NetworkFile>,
    /// Known devices.
    #[serde(default)]
    pub devices: Vec<DeviceFile>,
    /// The metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The event log.
    #[serde(default)]
    pub events: EventsConfig,
    /// The store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The console.
    #[serde(default)]
    pub console: haven_console::ConsoleConfig,
    /// Monitoring: sources, grading by history, the grades that alert.
    #[serde(default)]
    pub monitor: haven_store::captures::MonitorRules,
    /// Where alerts go.
    #[serde(default)]
    pub alerts: haven_monitor::alerts::AlertsConfig,
}

/// `[store]`: where people, events and the audit log are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`; by default the SQLite file
    /// `<data-dir>/haven.db`. (`HAVEN_STORE_URL` overrides it, keeping a password out of the
    /// file.)
    pub url: Option<String>,
}

/// `[metrics]`: where Prometheus scrapes `/metrics` (off when `listen` is absent).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on, e.g. `127.0.0.1:9153`.
    pub listen: Option<String>,
}

/// `[events]`: every decision is written to the store, in batches, off the serving thread.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Write events at all.
    #[serde(default = "yes")]
    pub log: bool,
    /// Events buffered between the filter and the writer; beyond this they are dropped and
    /// counted, never waited for.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Days events are kept, by source (`dns`, `proxy`); older ones are deleted hourly.
    #[serde(default = "default_retention")]
    pub retention_days: std::collections::BTreeMap<String, u32>,
    /// Seconds over which an allowed DNS question repeated by the same device is stored once,
    /// with its count (0: every question is its own row).
    #[serde(default = "default_repeat_window")]
    pub repeat_window_seconds: u64,
}

fn default_repeat_window() -> u64 {
    10
}

fn default_retention() -> std::collections::BTreeMap<String, u32> {
    [("dns".to_owned(), 30), ("proxy".to_owned(), 180)].into()
}

fn yes() -> bool {
    true
}

fn default_buffer() -> usize {
    65_536
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            log: true,
            buffer: default_buffer(),
            retention_days: default_retention(),
            repeat_window_seconds: default_repeat_window(),
        }
    }
}

fn load_config(ctx: &Context, args: &ServeArgs) -> Result<(ConfigFile, String)> {
    let path = if args.demo {
        None
    } else {
        args.config
            .clone()
            .or_else(|| Some(ctx.data_dir.join("haven.toml")).filter(|p| p.is_file()))
    };
    let (text, origin) = match &path {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            DEFAULT_CONFIG.to_owned(),
            "built-in configuration".to_owned(),
        ),
    };
    let config: ConfigFile =
        toml::from_str(&text).with_context(|| format!("configuration {origin} refused"))?;
    Ok((config, origin))
}

/// Reads and parses a configuration file.
pub fn read_config(path: &std::path::Path) -> Result<ConfigFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("configuration {} refused", path.display()))
}

/// Writes the sample lists into the data directory and imports them, unless lists exist.
fn ensure_demo_lists(ctx: &Context) -> Result<()> {
    let store = ctx.lists();
    if !store.sources()?.is_empty() {
        return Ok(());
    }
    let dir = ctx.data_dir.join("demo-lists");
    for (category, text) in DEMO_LISTS {
        let d = dir.join(category);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        std::fs::write(d.join("domains"), text)
            .with_context(|| format!("writing {}", d.display()))?;
    }
    let spec = SourceSpec {
        name: "demo".to_owned(),
        location: dir.display().to_string(),
        format: Format::Tree,
        category: None,
        mapping: Some("haven".to_owned()),
        ca_file: None,
    };
    store.rebuild(&[spec], None, false, &mut Progress::hidden())?;
    Ok(())
}

fn system_upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| resolv_conf_nameservers(&t))
        .unwrap_or_default()
}

/// The school's IPv4 networks, as (network, mask) for the PAC file's direct list.
fn direct_networks(networks: &[NetworkFile]) -> Vec<(std::net::Ipv4Addr, std::net::Ipv4Addr)> {
    networks
        .iter()
        .filter_map(|n| {
            let (ip, len) = n.cidr.split_once('/').unwrap_or((&n.cidr, "32"));
            let ip: std::net::Ipv4Addr = ip.parse().ok()?;
            let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            Some((
                std::net::Ipv4Addr::from(u32::from(ip) & mask),
                std::net::Ipv4Addr::from(mask),
            ))
        })
        .collect()
}

/// Local wall-clock time, looked up at most once a second (policies work in minutes).
fn local_now() -> jiff::civil::DateTime {
    use std::cell::Cell;
    thread_local! {
        static LAST: Cell<Option<(u64, jiff::civil::DateTime)>> = const { Cell::new(None) };
    }
    let second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| match last.get() {
        Some((s, t)) if s == second => t,
        _ => {
            let t = jiff::Zoned::now().datetime();
            last.set(Some((second, t)));
            t
        }
    })
}

pub fn run(ctx: &Context, args: &ServeArgs) -> Result<ExitCode> {
    let open_files = raise_open_files_limit();
    if open_files < 4096 {
        eprintln!(
            "warning: this process may open only {open_files} files (ulimit -n); the console \
             takes at most {} connections so that DNS and the proxy keep theirs",
            open_files / 8
        );
    }
    if args.demo {
        ensure_demo_lists(ctx)?;
    }
    let (mut config, origin) = load_config(ctx, args)?;
    config
        .monitor
        .check()
        .and_then(|()| config.alerts.check().map_err(|e| e.to_string()))
        .and_then(|()| config.proxy.check())
        .map_err(|e| anyhow::anyhow!("configuration {origin} refused: {e}"))?;
    if config.alerts.console_url.is_empty() && !config.console.listen.is_empty() {
        config.alerts.console_url = format!("http://{}", config.console.listen);
    }
    let (monitoring, warnings) = haven_monitor::library::Monitoring::new(
        crate::monitor::BUILT_IN,
        ctx.data_dir.join("risk"),
        config.monitor.clone(),
    );
    for w in warnings {
        eprintln!("warning: risk library {w} (left out)");
    }
    let monitoring = Arc::new(monitoring);
    let engine = ctx.engine(None)?;
    let store_url = ctx.store_url(Some(&config))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut store = runtime
        .block_on(haven_store::Store::open(&store_url))
        .with_context(|| format!("opening the store {}", haven_store::redact(&store_url)))?;
    // TOTP secrets an older Haven kept in clear are sealed now, under a key file it makes.
    if runtime.block_on(store.plain_totp_secrets())? > 0 {
        let path = ctx.data_dir.join(haven_store::sealed::TOTP_KEY_FILE);
        let key = haven_store::sealed::SealKey::load_or_create(&path)?;
        let sealed = runtime.block_on(store.seal_totp_secrets(&key))?;
        eprintln!(
            "note: sealed {sealed} TOTP secrets kept in clear; keep {} with the database's backups, apart from them",
            path.display()
        );
    }
    // PostgreSQL: the audit key lives in the data directory (the same file on every node).
    if store.backend() == haven_store::Backend::Postgres {
        runtime.block_on(store.use_audit_key(&ctx.data_dir))?;
    }
    if args.demo {
        let seeded = runtime
            .block_on(crate::demo::ensure_people(&store))
            .context("creating the demo school")?;
        if seeded {
            println!("Created the demo school: invented pupils, staff and parents, and a week of activity.");
        }
    }
    let people = runtime.block_on(store.count_people())?;
    // Networks and devices kept in the store join those in the configuration; one whose group
    // the policy lacks is left out with a warning rather than stopping the filter.
    let (networks, devices) = runtime.block_on(async {
        Ok::<_, haven_store::StoreError>((store.networks().await?, store.device_map().await?))
    })?;
    for n in networks {
        match engine.group_id(&n.group) {
            Some(_) => config.networks.push(n),
            None => eprintln!(
                "warning: network {} in the store: group {:?} is not in the policy; left out",
                n.cidr, n.group
            ),
        }
    }
    for d in devices {
        match engine.group_id(&d.group) {
            Some(_) => config.devices.push(d),
            None => eprintln!(
                "warning: device {:?} in the store: group {:?} is not in the policy; left out",
                d.name, d.group
            ),
        }
    }
    let clients = ClientMap::new(
        &config.networks,
        &config.devices,
        &config.default_group,
        |g| engine.group_id(g).is_some(),
    )
    .with_context(|| format!("configuration {origin} refused"))?;
    let live = Arc::new(LiveEngine::new(engine));
    let list_health = Arc::new(ListHealth {
        live: live.clone(),
        reload_failures: AtomicU64::new(0),
    });
    let clients = Arc::new(clients);
    let mut filter = DnsFilter::new(
        &config.dns,
        live.clone(),
        clients.clone(),
        &system_upstreams(),
        local_now,
    )
    .with_context(|| format!("configuration {origin} refused"))?;
    let origin_tls = haven_tls::client_config(config.proxy.origin_ca_file.as_deref())
        .with_context(|| format!("configuration {origin} refused: proxy.origin_ca_file"))?;
    let mut proxy = haven_proxy::Proxy::new(
        config.proxy.clone(),
        live.clone(),
        clients,
        local_now,
        direct_networks(&config.networks),
    )
    .with_origin_tls(origin_tls);
    let (scanner, phrases_state) = crate::phrases::scanner(ctx)?;
    proxy = proxy.with_phrases(Arc::new(scanner));
    let ca_dir = ctx.data_dir.join("ca");
    let ca_state = match haven_proxy::ca::load(&ca_dir) {
        Ok(ca) => {
            proxy = proxy.with_ca(Arc::new(ca));
            format!(
                "school CA {} (groups with intercept = true are decrypted)",
                ca_dir.display()
            )
        }
        Err(haven_proxy::ca::CaError::Missing(_)) => {
            "no school CA, so HTTPS is filtered by name only (haven ca init)".to_owned()
        }
        Err(e) => return Err(e).context("the school CA"),
    };
    let written = Arc::new(Written::default());
    let mut writer = None;
    let mut events = None;
    if config.events.log {
        let batches = config.events.buffer.div_ceil(256).max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel(batches);
        let sink = Arc::new(haven_core::event::EventSink::new(tx));
        proxy = proxy.with_events(sink.clone());
        filter = filter.with_events(sink.clone());
        events = Some(sink);
        writer = Some(start_event_writer(
            store_url.clone(),
            rx,
            written.clone(),
            Duration::from_secs(config.events.repeat_window_seconds),
            monitoring.clone(),
            store.health().clone(),
        )?);
    }
    let filter = Arc::new(filter);
    if config.proxy.authenticate != haven_proxy::Authenticate::Off {
        let sign_in = Arc::new(StoreSignIn {
            store: store.clone(),
            permits: tokio::sync::Semaphore::new(2),
            changed_at: std::sync::atomic::AtomicU64::new(0),
        });
        runtime.spawn(watch_credentials(sign_in.clone()));
        proxy = proxy.with_authenticator(sign_in);
    }
    let review_store = store.clone();
    let mut proxy = proxy.with_reviews(Arc::new(move |r: haven_proxy::ReviewRequest| {
        // The page says whether it was kept, or had been asked already (the proxy bounds the wait).
        let store = review_store.clone();
        Box::pin(async move {
            let stored = store
                .add_review(
                    r.at_ms as i64,
                    &r.client.to_string(),
                    &r.group,
                    r.user.as_deref(),
                    &r.url,
                    &r.reason,
                )
                .await;
            match stored {
                Ok(Some(_)) => haven_proxy::ReviewOutcome::Recorded,
                Ok(None) => haven_proxy::ReviewOutcome::AlreadyAsked,
                Err(e) => {
                    eprintln!("reviews: cannot store a review request: {e}");
                    haven_proxy::ReviewOutcome::Failed
                }
            }
        })
    }));
    // Pages the proxy scored are graded off the request path; when the grader falls behind,
    // pages wait (up to 256 of them and 64 MiB) and beyond that are left ungraded and counted.
    let (page_tx, page_rx) = tokio::sync::mpsc::channel::<haven_proxy::PageSeen>(256);
    let pages_queued = Arc::new(AtomicUsize::new(0));
    let alert_stats = Arc::new(haven_monitor::alerts::AlertStats::default());
    if config.monitor.pages {
        let (stats, queued) = (alert_stats.clone(), pages_queued.clone());
        let budget = PageBudget::new(u64::from(config.monitor.page_kib_per_second) * 1024);
        proxy = proxy.with_pages(Arc::new(move |p| {
            let len = p.page.len();
            if queued.load(Ordering::Relaxed) + len > PAGES_QUEUED_AT_MOST || !budget.take(len) {
                stats.page_skipped();
                return;
            }
            queued.fetch_add(len, Ordering::Relaxed);
            if page_tx.try_send(p).is_err() {
                queued.fetch_sub(len, Ordering::Relaxed);
                stats.page_skipped();
            }
        }));
    }
    let result = runtime.block_on(async {
        tokio::spawn(grade_pages(
            page_rx,
            pages_queued.clone(),
            store.clone(),
            monitoring.clone(),
        ));
        tokio::spawn(haven_monitor::alerts::run(
            store.clone(),
            monitoring.clone(),
            Arc::new(config.alerts.clone()),
            alert_stats.clone(),
        ));
        let mut addrs = Vec::new();
        for listen in &config.dns.listen {
            let addr: SocketAddr = listen
                .parse()
                .with_context(|| format!("dns.listen: {listen:?} is not address:port"))?;
            let udp = tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("DNS: cannot listen on udp {addr}"))?;
            let tcp = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("DNS: cannot listen on tcp {addr}"))?;
            addrs.push(udp.local_addr()?);
            // A listener that stops says so; it never goes quiet.
            let f = filter.clone();
            tokio::spawn(async move {
                if let Err(e) = f.serve_udp(udp).await {
                    eprintln!("error: DNS on udp {addr} stopped: {e}");
                }
            });
            let f = filter.clone();
            tokio::spawn(async move {
                if let Err(e) = f.serve_tcp(tcp).await {
                    eprintln!("error: DNS on tcp {addr} stopped: {e}");
                }
            });
        }
        let mut proxy_listeners = Vec::new();
        for listen in &config.proxy.listen {
            let addr: SocketAddr = listen
                .parse()
                .with_context(|| format!("proxy.listen: {listen:?} is not address:port"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("proxy: cannot listen on tcp {addr}"))?;
            let bound = listener.local_addr()?;
            proxy.also_known_as(bound.to_string());
            proxy_listeners.push((bound, listener));
        }
        let proxy = Arc::new(proxy);
        let proxy_addrs: Vec<SocketAddr> = proxy_listeners.iter().map(|(a, _)| *a).collect();
        for (addr, listener) in proxy_listeners {
            let p = proxy.clone();
            tokio::spawn(async move {
                if let Err(e) = p.serve(listener).await {
                    eprintln!("error: proxy on {addr} stopped: {e}");
                }
            });
        }
        let mut console = None;
        if !config.console.listen.is_empty() {
            let listen = &config.console.listen;
            let addr: SocketAddr = listen
                .parse()
                .with_context(|| format!("console.listen: {listen:?} is not address:port"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("console: cannot listen on {addr}"))?;
            console = Some(listener.local_addr()?);
            let app = haven_console::Console::new(
                store.clone(),
                live.clone(),
                ctx.data_dir.join("policy.toml"),
                config.console.clone(),
                monitoring.clone(),
            );
            let cap = console_connections(config.console.max_connections, open_files);
            let limits = haven_console::listener::Limits::console(
                cap,
                Duration::from_secs(config.console.request_timeout_seconds.max(1)),
            );
            tokio::spawn(app.serve(listener, limits));
        }
        let mut metrics = None;
        if let Some(listen) = &config.metrics.listen {
            let addr: SocketAddr = listen
                .parse()
                .with_context(|| format!("metrics.listen: {listen:?} is not address:port"))?;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics: cannot listen on {addr}"))?;
            metrics = Some(listener.local_addr()?);
            tokio::spawn(serve_metrics(
                listener,
                filter.clone(),
                proxy.clone(),
                written.clone(),
                alert_stats.clone(),
                store.health().clone(),
                list_health.clone(),
            ));
        }
        tokio::spawn(maintain(
            store.clone(),
            config.events.retention_days.clone(),
            i64::from(config.console.idle_minutes.max(1)) * 60_000,
        ));
        // A quiet filter's last events still reach the log promptly.
        if let Some(sink) = events.clone() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    sink.flush();
                }
            });
        }
        banner(
            ctx,
            &config,
            &origin,
            &Listening {
                dns: &addrs,
                upstreams: filter.upstreams(),
                proxy: &proxy_addrs,
                store: &haven_store::redact(&store_url),
                people,
                demo: args.demo,
                console,
                ca_state: &ca_state,
                phrases: &phrases_state,
                metrics,
            },
        );
        wait_and_reload(ctx, &live, &list_health).await
    });
    // Stop the service, then let the writer put down every event it was handed.
    runtime.block_on(store.close());
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    if let Some(sink) = events.take() {
        sink.flush();
    }
    drop(filter);
    written.stopping.store(true, Ordering::Relaxed);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// DNS questions gathered for a few seconds and stored once per device, name, type and answer,
/// with how many there were (the first one's time, the slowest answer). Devices ask the same
/// names again and again, and retry blocked ones; storing each costs more than answering it.
/// The proxy's requests (whole URLs, search terms) are stored one by one.
///
/// The first event of each kind is kept, indexed by a keyed hash of what identifies it (a hash
/// shared by different events is noticed and they are kept apart); at most `GATHERED_AT_MOST`
/// kinds are held, beyond which they are written early, so memory stays bounded whatever the
/// traffic.
struct Repeats {
    window: Duration,
    since: Option<std::time::Instant>,
    rows: Vec<(haven_core::event::Event, u64)>,
    index: std::collections::HashMap<u64, u32>,
    keys: std::collections::hash_map::RandomState,
}

/// Kinds of question gathered at once, at most (about 200 bytes each).
const GATHERED_AT_MOST: usize = 200_000;

/// Whether two DNS events are the same question from the same place, answered the same way.
fn same_question(a: &haven_core::event::Event, b: &haven_core::event::Event) -> bool {
    a.client == b.client
        && a.qtype == b.qtype
        && a.action == b.action
        && a.name == b.name
        && a.group == b.group
        && a.user == b.user
        && a.reason == b.reason
}

impl Repeats {
    fn new(window: Duration) -> Repeats {
        Repeats {
            window,
            since: None,
            rows: Vec::new(),
            index: std::collections::HashMap::new(),
            keys: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Gathers `e` if it is a DNS question; otherwise gives it back to be stored now.
    fn add(&mut self, e: haven_core::event::Event) -> Option<haven_core::event::Event> {
        use std::hash::BuildHasher as _;
        if self.window.is_zero() || e.source != "dns" {
            return Some(e);
        }
        let key = self.keys.hash_one((
            e.client,
            &e.name,
            e.qtype,
            &e.group,
            &e.user,
            e.action.as_str(),
            &e.reason,
        ));
        self.since.get_or_insert_with(std::time::Instant::now);
        if let Some(&i) = self.index.get(&key) {
            if let Some((first, n)) = self.rows.get_mut(i as usize) {
                if same_question(first, &e) {
                    *n += 1;
                    first.latency_us = first.latency_us.max(e.latency_us);
                    return None;
                }
            }
            // Another question with the same hash: kept as its own row, unindexed.
            self.rows.push((e, 1));
            return None;
        }
        self.index.insert(key, self.rows.len() as u32);
        self.rows.push((e, 1));
        None
    }

    /// How long the writer may wait for more events before the gathered ones are due.
    fn wait(&self) -> Duration {
        match self.since {
            Some(t) => self.window.saturating_sub(t.elapsed()),
            None => Duration::from_secs(1),
        }
    }

    /// The gathered rows, when their window has closed or too many are held (or `all`).
    fn take_due(&mut self, all: bool) -> Vec<(haven_core::event::Event, u64)> {
        let due = self.since.is_some_and(|t| t.elapsed() >= self.window)
            || self.rows.len() >= GATHERED_AT_MOST;
        if !(due || all) || self.rows.is_empty() {
            return Vec::new();
        }
        self.since = None;
        self.index.clear();
        let mut rows = std::mem::take(&mut self.rows);
        rows.sort_by_key(|(e, _)| e.at_ms);
        rows
    }
}

/// A token bucket of page bytes: `rate` a second, up to a second's worth saved up.
struct PageBudget {
    rate: u64,
    state: std::sync::Mutex<(u64, std::time::Instant)>,
}

impl PageBudget {
    fn new(rate: u64) -> PageBudget {
        PageBudget {
            rate,
            state: std::sync::Mutex::new((rate, std::time::Instant::now())),
        }
    }

    /// Whether `len` more bytes fit now (and if so, spends them).
    fn take(&self, len: usize) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        let refill =
            (now.duration_since(s.1).as_micros() as u64).saturating_mul(self.rate) / 1_000_000;
        if refill > 0 {
            s.0 = (s.0 + refill).min(self.rate);
            s.1 = now;
        }
        let len = len as u64;
        if s.0 >= len {
            s.0 -= len;
            true
        } else {
            false
        }
    }
}

/// Bytes of scored pages waiting to be graded, at most.
const PAGES_QUEUED_AT_MOST: usize = 64 * 1024 * 1024;

/// Grades the pages the proxy scored, one at a time on a blocking thread: a page whose text
/// grades 1 or more is a capture, keeping the passage that graded highest.
async fn grade_pages(
    mut rx: tokio::sync::mpsc::Receiver<haven_proxy::PageSeen>,
    queued: Arc<AtomicUsize>,
    store: haven_store::Store,
    monitoring: Arc<haven_monitor::library::Monitoring>,
) {
    /// Text read from a page, at most.
    const PAGE_TEXT: usize = 256 * 1024;
    while let Some(p) = rx.recv().await {
        queued.fetch_sub(p.page.len(), Ordering::Relaxed);
        let library = monitoring.library();
        let graded = tokio::task::spawn_blocking(move || {
            let text = p.page.text(PAGE_TEXT).ok()?;
            let (g, passage) = library.grade_passages(&text)?;
            Some(haven_store::captures::NewCapture::graded(
                &g,
                p.at_ms as i64,
                "page",
                &p.client.to_string(),
                p.user.as_deref(),
                &p.url,
                &passage,
            ))
        })
        .await;
        if let Ok(Some(capture)) = graded {
            if let Err(e) = monitoring.record(&store, &[capture]).await {
                eprintln!("monitoring: a page capture could not be stored: {e}");
            }
        }
    }
}

/// The store's health as Prometheus text: failures counted, and a full disk as a gauge a
/// network manager can alert on.
fn render_health(health: &haven_store::Health) -> String {
    format!(
        "# HELP {f} Store operations that failed (writes refused, reads that could not run).\n\
         # TYPE {f} counter\n{f} {}\n\
         # HELP {d} 1 while the store's disk is full (the last write failed for want of space).\n\
         # TYPE {d} gauge\n{d} {}\n",
        health.failures(),
        u8::from(health.disk_full()),
        f = names::STORE_FAILURES,
        d = names::STORE_DISK_FULL,
    )
}

/// Metric names of the event writer and the store.
mod names {
    /// Store operations that failed.
    pub const STORE_FAILURES: &str = "haven_store_failures_total";
    /// 1 while the store's disk is full.
    pub const STORE_DISK_FULL: &str = "haven_store_disk_full";
    /// Events committed to the store.
    pub const EVENTS_STORED: &str = "haven_events_stored_total";
    /// Batches the store refused (each is tried again).
    pub const EVENTS_STORE_FAILURES: &str = "haven_events_store_failures_total";
    /// 1 while the previous list snapshot stands in for a refused one.
    pub const LISTS_FALLBACK: &str = "haven_lists_snapshot_fallback";
    /// Policy rules that an illegal list overrides.
    pub const LISTS_ILLEGAL_OVERRIDES: &str = "haven_lists_illegal_overrides";
    /// Reloads refused.
    pub const LISTS_RELOAD_FAILURES: &str = "haven_lists_reload_failures_total";
}

/// The state of the lists in force, for the metrics: whether the previous snapshot stands in
/// for a refused one, how many policy rules an illegal list overrides, and refused reloads.
#[derive(Debug)]
struct ListHealth {
    live: Arc<LiveEngine>,
    reload_failures: AtomicU64,
}

impl ListHealth {
    fn render(&self) -> String {
        let engine = self.live.current();
        format!(
            "# HELP {fb} 1 while the previous list snapshot stands in for the current one, which was refused (run haven lists update).\n# TYPE {fb} gauge\n{fb} {}\n\
             # HELP {io} Policy rules that would allow an illegal-list entry (the list wins; narrow or remove them).\n# TYPE {io} gauge\n{io} {}\n\
             # HELP {rf} Reloads of the lists or policy refused (those in force stayed).\n# TYPE {rf} counter\n{rf} {}\n",
            u8::from(engine.fallback().is_some()),
            engine.illegal_overrides().len(),
            self.reload_failures.load(Ordering::Relaxed),
            fb = names::LISTS_FALLBACK,
            io = names::LISTS_ILLEGAL_OVERRIDES,
            rf = names::LISTS_RELOAD_FAILURES,
        )
    }
}

/// What the event writer has done, for the metrics; and whether the service is stopping.
#[derive(Debug, Default)]
struct Written {
    stored: AtomicU64,
    failures: AtomicU64,
    stopping: AtomicBool,
}

impl Written {
    fn render(&self) -> String {
        format!(
            "# HELP {s} Events committed to the store.\n# TYPE {s} counter\n{s} {}\n\
             # HELP {f} Event batches the store refused (each tried again).\n# TYPE {f} counter\n{f} {}\n",
            self.stored.load(Ordering::Relaxed),
            self.failures.load(Ordering::Relaxed),
            s = names::EVENTS_STORED,
            f = names::EVENTS_STORE_FAILURES,
        )
    }
}

/// Writes the data plane's events to the store on a thread of its own (with its own
/// connections), a transaction per gathering of batches (up to 256 of them, 65,536 events:
/// under load, fewer and larger transactions rewrite each index page fewer times). An event
/// counts as stored once its
/// transaction commits. A batch the store refuses is kept and tried again; meanwhile new
/// events wait in the channel, and past its size are dropped and counted, never waited for.
fn start_event_writer(
    url: String,
    rx: std::sync::mpsc::Receiver<Vec<haven_core::event::Event>>,
    written: Arc<Written>,
    repeat_window: Duration,
    monitoring: Arc<haven_monitor::library::Monitoring>,
    health: Arc<haven_store::Health>,
) -> Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let handle = std::thread::Builder::new()
        .name("haven-events".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let store = match haven_store::Store::open(&url).await {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s.sharing_health(health)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let mut repeats = Repeats::new(repeat_window);
                let mut watcher = crate::monitor::Watcher::default();
                // Gathered rows waiting to be written, a slice per transaction (from `done`
                // on), so that the channel is drained between slices rather than filling while
                // they are written.
                let mut pending: Vec<(haven_core::event::Event, u64)> = Vec::new();
                let mut done = 0;
                let mut open = true;
                while open || done < pending.len() {
                    let mut singles = Vec::new();
                    let mut captures = Vec::new();
                    let wait = if done == pending.len() {
                        repeats.wait()
                    } else {
                        Duration::ZERO
                    };
                    match rx.recv_timeout(wait) {
                        Ok(first) => {
                            let library = monitoring.library();
                            for e in std::iter::once(first).chain(rx.try_iter().take(255)).flatten() {
                                watcher.see(&library, &monitoring.rules, &e, &mut captures);
                                if let Some(e) = repeats.add(e) {
                                    singles.push(e);
                                }
                            }
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
                    }
                    // Gathered repeats leave when their window closes, and all at the end.
                    // Captures first: an alert should not wait behind a large batch of events.
                    // Like events, captures the store refuses are tried again, not dropped.
                    if !captures.is_empty() {
                        let mut tries = 0u64;
                        while let Err(e) = store
                            .health()
                            .note(monitoring.record(&store, &captures).await)
                        {
                            if tries == 0 {
                                eprintln!(
                                    "monitoring: the store refused {} captures ({e}); trying again",
                                    captures.len()
                                );
                            }
                            tries += 1;
                            if written.stopping.load(Ordering::Relaxed) && tries > 20 {
                                eprintln!(
                                    "monitoring: stopping with {} captures the store would not take",
                                    captures.len()
                                );
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis((50 * tries).min(1000)))
                                .await;
                        }
                    }
                    let due = repeats.take_due(!open);
                    if done == pending.len() {
                        // Taken whole, not copied: the gathered rows can be many.
                        pending = due;
                        done = 0;
                    } else {
                        pending.extend(due);
                    }
                    let end = pending.len().min(done + 16_384);
                    let rows: Vec<(&haven_core::event::Event, u64)> = singles
                        .iter()
                        .map(|e| (e, 1))
                        .chain(pending[done..end].iter().map(|(e, n)| (e, *n)))
                        .collect();
                    done = end;
                    if rows.is_empty() {
                        continue;
                    }
                    let represented: u64 = rows.iter().map(|(_, n)| n).sum();
                    let mut tries = 0u64;
                    loop {
                        match store.health().note(store.insert_counted(&rows).await) {
                            Ok(()) => {
                                written.stored.fetch_add(represented, Ordering::Relaxed);
                                break;
                            }
                            Err(e) => {
                                written.failures.fetch_add(1, Ordering::Relaxed);
                                if tries == 0 {
                                    eprintln!(
                                        "events: the store refused a batch ({e}); trying again"
                                    );
                                }
                                tries += 1;
                                if written.stopping.load(Ordering::Relaxed) && tries > 20 {
                                    eprintln!(
                                        "events: stopping with {represented} events the store would not take"
                                    );
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis((50 * tries).min(1000)))
                                    .await;
                            }
                        }
                    }
                }
                store.close().await;
            });
        })
        .context("starting the event writer")?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(e)) => Err(anyhow::anyhow!(
            "the event writer cannot open the store: {e}"
        )),
        Err(_) => Err(anyhow::anyhow!("the event writer stopped at once")),
    }
}

/// Deletes events past their source's retention and console sessions past their idle time,
/// and refreshes the planner's statistics, now and every hour.
async fn maintain(
    store: haven_store::Store,
    retention_days: std::collections::BTreeMap<String, u32>,
    idle_ms: i64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        for (source, days) in &retention_days {
            let before = haven_store::now_ms() - i64::from(*days) * 86_400_000;
            if let Err(e) = store.prune_events(Some(source), before).await {
                eprintln!("events: pruning {source} events failed: {e}");
            }
        }
        if let Err(e) = store.end_idle_sessions(idle_ms).await {
            eprintln!("console: ending idle sessions failed: {e}");
        }
        if let Err(e) = store.refresh_statistics().await {
            eprintln!("events: refreshing the store's statistics failed: {e}");
        }
    }
}

/// Proxy sign-ins checked against the store, two at a time (each is an argon2id hash), with
/// the proxy's own credentials (never counted against a console account).
struct StoreSignIn {
    store: haven_store::Store,
    permits: tokio::sync::Semaphore,
    /// When a password last changed in the store, by any process.
    changed_at: std::sync::atomic::AtomicU64,
}

/// Follows password changes made by other processes (`haven people password`, another node):
/// the proxy forgets the credentials it remembered within a second. Changes made by this
/// process (the console) count at once.
async fn watch_credentials(sign_in: Arc<StoreSignIn>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sign_in.store.credentials_changed_at().await {
            Ok(at) => sign_in.changed_at.store(
                u64::try_from(at).unwrap_or(0),
                std::sync::atomic::Ordering::Release,
            ),
            Err(e) => eprintln!("proxy: reading password changes failed: {e}"),
        }
    }
}

impl haven_proxy::Authenticator for StoreSignIn {
    fn check<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Option<haven_proxy::ProxyUser>> + Send + 'a>,
    > {
        Box::pin(async move {
            let _permit = self.permits.acquire().await.ok()?;
            match self.store.proxy_sign_in(username, password).await {
                Ok(Some(who)) => Some(haven_proxy::ProxyUser {
                    username: who.username,
                    group: who.group,
                }),
                Ok(None) => None,
                Err(e) => {
                    eprintln!("proxy: sign-in check failed: {e}");
                    None
                }
            }
        })
    }

    fn generation(&self) -> u64 {
        self.changed_at
            .load(std::sync::atomic::Ordering::Acquire)
            .wrapping_add(haven_store::accounts::credential_changes_here())
    }
}

async fn serve_metrics(
    listener: tokio::net::TcpListener,
    filter: Arc<DnsFilter>,
    proxy: Arc<haven_proxy::Proxy>,
    written: Arc<Written>,
    alerts: Arc<haven_monitor::alerts::AlertStats>,
    health: Arc<haven_store::Health>,
    lists: Arc<ListHealth>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let limits = haven_console::listener::Limits::metrics();
    haven_console::listener::serve(listener, limits, move |_peer| {
        let (filter, proxy, written, alerts, health, lists) = (
            filter.clone(),
            proxy.clone(),
            written.clone(),
            alerts.clone(),
            health.clone(),
            lists.clone(),
        );
        move |req: hyper::Request<hyper::body::Incoming>| {
            let (status, body) = if req.uri().path() == "/metrics" {
                (
                    hyper::StatusCode::OK,
                    filter.metrics_text()
                        + &proxy.metrics_text()
                        + &written.render()
                        + &render_health(&health)
                        + &alerts.render()
                        + &lists.render(),
                )
            } else {
                (
                    hyper::StatusCode::NOT_FOUND,
                    "not found: try /metrics\n".to_owned(),
                )
            };
            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
            *resp.status_mut() = status;
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            std::future::ready(resp)
        }
    })
    .await;
}

/// Raises the soft limit on open files to the hard one (a service holding many connections
/// needs more than the usual 1,024) and returns the limit in force.
fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            let want = hard.min(1 << 20);
            if soft < want && setrlimit(Resource::RLIMIT_NOFILE, want, hard).is_ok() {
                want
            } else {
                soft
            }
        }
        Err(_) => 1024,
    }
}

/// The console's connection cap: as configured, but never more than an eighth of the files
/// the process may open, so that idle console connections run out before DNS over TCP and the
/// proxy can no longer accept (the console is refused first).
fn console_connections(configured: usize, open_files: u64) -> usize {
    let share = usize::try_from(open_files / 8).unwrap_or(usize::MAX);
    configured.min(share).max(4)
}

/// Prints where Haven listens. A closed standard output (a detached terminal, a supervisor
/// that ignores it) must not stop the service, so write errors are ignored here.
/// What is running where, for the banner.
struct Listening<'a> {
    dns: &'a [SocketAddr],
    upstreams: &'a [Upstream],
    proxy: &'a [SocketAddr],
    store: &'a str,
    /// Active pupils, staff and parents.
    people: (i64, i64, i64),
    demo: bool,
    console: Option<SocketAddr>,
    ca_state: &'a str,
    phrases: &'a str,
    metrics: Option<SocketAddr>,
}

fn banner(ctx: &Context, config: &ConfigFile, origin: &str, l: &Listening<'_>) {
    let Listening {
        dns,
        upstreams,
        proxy,
        store,
        people,
        demo,
        console,
        ca_state,
        phrases,
        metrics,
    } = *l;
    use std::io::Write as _;
    let list = |v: &[SocketAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "Haven is running (data in {}, configuration: {origin}).\n",
        ctx.data_dir.display()
    );
    text += &format!(
        "  DNS filter:  udp+tcp {}  →  upstreams {}\n",
        list(dns),
        upstreams
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &config.networks {
        text += &format!("  network:     {} → {}\n", n.cidr, n.group);
    }
    text += &format!("  anyone else: {}\n", config.default_group);
    if let Some(m) = metrics {
        text += &format!("  metrics:     http://{m}/metrics\n");
    }
    text += &format!(
        "  store:       {store}: {} pupils, {} staff, {} parents (haven people import)\n",
        people.0, people.1, people.2
    );
    if config.events.log {
        text += "  events:      written to the store (haven events search)\n";
    }
    if let Some(p) = proxy.first() {
        text += &format!(
            "  proxy:       http {}  (browsers: http://{p}/proxy.pac)\n",
            list(proxy)
        );
        text += &format!("  HTTPS:       {ca_state}\n");
        text += &format!("  scoring:     {phrases}\n");
    }
    text += &format!(
        "  monitoring:  grade {}+ alerts: {}\n",
        config.monitor.alert_grade,
        config.alerts.summary()
    );
    match console {
        Some(c) => {
            text += &format!("  console:     http://{c}/\n");
            if demo {
                text += &format!(
                    "  sign in:     every demo person's password is {}: priya.shah (DSL; sets up a\n\
                     \x20              two-step code on first sign-in), owen.price (network manager),\n\
                     \x20              ben.carter (teacher)\n",
                    crate::demo::DEMO_PASSWORD
                );
            }
        }
        None => text += "  console:     off ([console] listen)\n",
    }
    if let (Some(addr), Some(pupils)) = (dns.first(), config.networks.first()) {
        let bind = pupils.cidr.split('/').next().unwrap_or("127.0.0.1");
        text += &format!(
            "  try:         dig @{} -p {} -b {bind} bet365.com\n",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(p) = proxy.first() {
        text += &format!("  try:         curl -x http://{p} http://bet365.com/\n");
        if demo {
            text += &format!(
                "  proxy as:    curl -x http://{p} --proxy-user tom.lewis:{} http://www.pokerstars.com/\n\
                 \x20              (the pupil tom.lewis), then look for it in the console's Activity\n",
                crate::demo::DEMO_PASSWORD
            );
        }
    }
    text += "Ctrl-C stops it; SIGHUP reloads the lists and the policy (a bad one keeps the old).\n";
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The files whose change means a reload: the snapshot in force and the policy.
fn watched(ctx: &Context) -> Vec<Option<std::time::SystemTime>> {
    [
        ctx.lists().snapshot_path(),
        ctx.data_dir.join("policy.toml"),
    ]
    .iter()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

async fn wait_and_reload(
    ctx: &Context,
    live: &Arc<LiveEngine>,
    health: &Arc<ListHealth>,
) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut seen = watched(ctx);
    // Loading a large snapshot takes a moment: do it off the serving thread, then swap.
    let reload = |why: &'static str| {
        let data_dir = ctx.data_dir.clone();
        let live = live.clone();
        let health = health.clone();
        async move {
            let built =
                tokio::task::spawn_blocking(move || Context { data_dir }.engine(None)).await;
            match built.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(engine) => {
                    live.replace(|_| Ok::<_, anyhow::Error>(engine)).ok();
                    eprintln!(
                        "reloaded ({why}): snapshot {:016x}",
                        live.current().snapshot().checksum()
                    );
                }
                Err(e) => {
                    health.reload_failures.fetch_add(1, Ordering::Relaxed);
                    eprintln!("reload ({why}) refused, the lists and policy in force stay: {e:#}")
                }
            }
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => reload("SIGHUP").await,
            _ = tick.tick() => {
                let now = watched(ctx);
                if now != seen {
                    seen = now;
                    reload("a list or policy file changed").await;
                }
            }
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return r.map_err(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::policy::DEFAULT_POLICY;
    use haven_core::Policy;

    #[test]
    fn the_shipped_configuration_parses_and_fits_the_default_policy() {
        let config: ConfigFile = toml::from_str(DEFAULT_CONFIG).expect("config/haven.toml parses");
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        ClientMap::new(
            &config.networks,
            &config.devices,
            &config.default_group,
            |g| policy.group(g).is_some(),
        )
        .expect("every group the configuration names is in the default policy");
        assert_eq!(config.dns.listen, ["127.0.0.1:5353"]);
        config.proxy.check().expect("the shipped proxy settings");
        // The shipped file says what the defaults are.
        let defaults = haven_proxy::ProxyConfig::default();
        assert_eq!(config.proxy.connect_ports, defaults.connect_ports);
        assert_eq!(config.proxy.header_timeout_ms, defaults.header_timeout_ms);
        assert_eq!(config.proxy.body_timeout_ms, defaults.body_timeout_ms);
        assert_eq!(
            config.proxy.max_connections_per_client,
            defaults.max_connections_per_client
        );
        assert!(config.metrics.listen.is_some());
        assert!(config.events.log);
    }

    #[test]
    fn the_demo_lists_cover_every_category_they_claim() {
        for (category, text) in DEMO_LISTS {
            assert!(
                haven_core::category::by_id(category).is_some(),
                "{category}"
            );
            assert!(text.lines().count() >= 2, "{category}");
        }
    }

    #[test]
    fn the_page_budget_refills_over_time() {
        let b = PageBudget::new(10_000);
        assert!(b.take(8_000));
        assert!(!b.take(3_000), "over the second's budget");
        std::thread::sleep(Duration::from_millis(400));
        assert!(b.take(3_000), "refilled");
        assert!(!b.take(20_000), "never more than a second's worth");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<ConfigFile>(
            "default_group = \"ks2\"\n[dns]\nlisten = []\nport = 53\n",
        )
        .expect_err("refused");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }

    fn dns(
        name: &str,
        action: haven_core::policy::Action,
        latency_us: u64,
    ) -> haven_core::event::Event {
        haven_core::event::Event {
            at_ms: 1_000,
            source: "dns",
            client: "10.0.0.2".parse().expect("ip"),
            group: "ks2".into(),
            user: None,
            name: name.into(),
            qtype: Some(1),
            action,
            category: None,
            reason: None,
            search: None,
            latency_us,
        }
    }

    #[test]
    fn repeated_dns_questions_are_gathered_with_their_count() {
        use haven_core::policy::Action;
        let mut r = Repeats::new(Duration::from_secs(60));
        for latency in [5, 9, 7] {
            assert!(r.add(dns("a.example", Action::Allow, latency)).is_none());
        }
        // The same name answered differently, another name, another device: rows of their own.
        assert!(r.add(dns("a.example", Action::Block, 1)).is_none());
        assert!(r.add(dns("b.example", Action::Allow, 1)).is_none());
        let mut other = dns("a.example", Action::Allow, 1);
        other.client = "10.0.0.3".parse().expect("ip");
        assert!(r.add(other).is_none());
        // The proxy's requests are never gathered.
        let mut proxy = dns("http://a.example/", Action::Allow, 1);
        proxy.source = "proxy";
        assert!(r.add(proxy).is_some());
        assert!(r.take_due(false).is_empty(), "the window is still open");
        let rows = r.take_due(true);
        let counts: Vec<(&str, Action, u64, u64)> = rows
            .iter()
            .map(|(e, n)| (e.name.as_str(), e.action, *n, e.latency_us))
            .collect();
        assert_eq!(
            counts,
            [
                ("a.example", Action::Allow, 3, 9),
                ("a.example", Action::Block, 1, 1),
                ("b.example", Action::Allow, 1, 1),
                ("a.example", Action::Allow, 1, 1),
            ]
        );
        assert!(r.take_due(true).is_empty(), "taken once");
        // With no window every question is its own row.
        let mut none = Repeats::new(Duration::ZERO);
        assert!(none.add(dns("a.example", Action::Allow, 1)).is_some());
    }
}
