//! Haven's composition root: everything `haven serve` does between reading its arguments and
//! stopping. [`Config`] is the whole of `haven.toml`; [`App::build`] opens the store, seeds
//! the demo, merges the devices and networks, and builds the engine, the DNS filter, the proxy,
//! monitoring and the event writer; [`App::spawn`] binds every listener and starts every task
//! (one way for each); [`Running::wait`] reloads on SIGHUP and on a file change until asked to
//! stop. Only this crate wires services together (linkerd2-proxy's `linkerd/app` is the
//! model); the `haven` binary parses arguments and calls it.

pub mod admin;
pub mod banner;
pub mod config;
pub mod context;
pub mod demo;
pub mod lists;
pub mod log;
pub mod metrics;
pub mod model;
pub mod phrases;
pub mod proxy;
pub mod records;
pub mod reload;
pub mod squid;
pub mod writer;

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use haven_core::clients::{ClientMap, NetworkFile};
use haven_dns::DnsFilter;
use haven_monitor::alerts::AlertStats;
use haven_monitor::Monitoring;
use haven_runtime::EventSink;
use haven_runtime::LiveEngine;
use haven_store::Store;

pub use config::Config;
pub use context::Context;

use metrics::{ListHealth, Metrics};
use writer::Written;

/// What `haven serve` was asked.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Service configuration (default: `<data-dir>/haven.toml`, else the built-in one).
    pub config: Option<PathBuf>,
    /// The demo: the built-in configuration, sample lists when none are imported, and the
    /// demo school when the store has nobody.
    pub demo: bool,
}

/// `haven serve`: builds Haven, starts it, and runs until SIGTERM or Ctrl-C.
pub fn serve(ctx: &Context, options: &ServeOptions) -> Result<()> {
    let open_files = raise_open_files_limit();
    if options.demo {
        demo::ensure_lists(ctx)?;
    }
    let (mut config, origin) = Config::load(&ctx.data_dir, options.config.as_ref(), options.demo)?;
    config.check(&origin)?;
    log::init(&config.log)?;
    if open_files < 4096 {
        tracing::warn!(
            open_files,
            "this process may open only {open_files} files (ulimit -n); the console takes at \
             most {} connections so that DNS and the proxy keep theirs",
            open_files / 8
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let app = App::build(ctx, options, config, origin, open_files, &runtime)?;
    let running = runtime.block_on(app.spawn())?;
    let result = runtime.block_on(running.wait());
    // Stop the service, then let the writer put down every event it was handed.
    runtime.shutdown_timeout(Duration::from_secs(2));
    running.finish();
    result
}

/// Haven built: every part made and connected, nothing listening yet.
pub struct App {
    ctx: Context,
    config: Config,
    origin: String,
    demo: bool,
    open_files: u64,
    store: Store,
    store_url: String,
    people: (i64, i64, i64),
    live: Arc<LiveEngine>,
    list_health: Arc<ListHealth>,
    monitoring: Arc<Monitoring>,
    filter: Arc<DnsFilter>,
    proxy: haven_proxy::Proxy,
    sign_in: Option<Arc<proxy::StoreSignIn>>,
    grader: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    alert_stats: Arc<AlertStats>,
    ca_state: String,
    phrases_state: String,
    events: Option<Events>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("data_dir", &self.ctx.data_dir)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The event log: the sink the DNS filter and the proxy share, and the writer thread.
struct Events {
    sink: Arc<EventSink>,
    writer: std::thread::JoinHandle<()>,
    written: Arc<Written>,
}

/// Networks and devices kept in the store join those in the configuration; one whose group
/// the policy lacks is left out with a warning rather than stopping the filter.
async fn merge_devices(
    store: &Store,
    engine: &haven_core::Engine,
    config: &mut Config,
) -> Result<()> {
    for n in store.networks().await? {
        match engine.group_id(&n.group) {
            Some(_) => config.networks.push(n),
            None => tracing::warn!(
                network = %n.cidr,
                group = %n.group,
                "network in the store: its group is not in the policy; left out"
            ),
        }
    }
    for d in store.device_map().await? {
        match engine.group_id(&d.group) {
            Some(_) => config.devices.push(d),
            None => tracing::warn!(
                device = %d.name,
                group = %d.group,
                "device in the store: its group is not in the policy; left out"
            ),
        }
    }
    Ok(())
}

impl App {
    /// Builds every part: the store opened (and brought up to date), the demo school seeded
    /// when asked, the engine, client map, DNS filter, proxy, monitoring and event writer.
    pub fn build(
        ctx: &Context,
        options: &ServeOptions,
        mut config: Config,
        origin: String,
        open_files: u64,
        runtime: &tokio::runtime::Runtime,
    ) -> Result<App> {
        let (monitoring, warnings) = Monitoring::new(
            haven_monitor::library::BUILT_IN,
            ctx.data_dir.join("risk"),
            config.monitor.clone(),
        );
        for w in warnings {
            tracing::warn!("risk library {w} (left out)");
        }
        let monitoring = Arc::new(monitoring);
        let engine = ctx.engine_logged(None)?;
        let store_url = ctx.store_url(Some(&config))?;
        let store = runtime.block_on(open_store(ctx, &store_url))?;
        if options.demo {
            let seeded = runtime
                .block_on(demo::ensure_people(&store))
                .context("creating the demo school")?;
            if seeded {
                println!("Created the demo school: invented pupils, staff and parents, a week of activity and some safeguarding records.");
            }
        }
        let people = runtime.block_on(store.count_people())?;
        runtime.block_on(merge_devices(&store, &engine, &mut config))?;
        let clients = ClientMap::new(
            &config.networks,
            &config.devices,
            &config.default_group,
            |g| engine.group_id(g).is_some(),
        )
        .with_context(|| format!("configuration {origin} refused"))?;
        let live = Arc::new(LiveEngine::new(engine));
        let list_health = Arc::new(ListHealth::new(live.clone()));
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
        let scanning = live
            .current()
            .policy()
            .groups
            .iter()
            .filter(|g| g.scan_downloads)
            .count();
        if scanning > 0 && config.proxy.clamd.is_none() {
            tracing::warn!(
                groups = scanning,
                "downloads are not scanned: the policy asks for scan_downloads but [proxy] clamd is not set"
            );
        }
        let (scanner, phrases_state, refused) = phrases::scanner(ctx)?;
        for e in refused.iter().take(20) {
            tracing::warn!(at = %e.at, "phrase list line refused: {}", e.message);
        }
        proxy = proxy.with_phrases(Arc::new(scanner));
        // Pages are classified with the page model (training.rs says why); should it not
        // load, with the text model in force.
        let page_model = match haven_model::Model::from_bytes(
            haven_monitor::training::BUILT_IN_PAGE_MODEL,
        ) {
            Ok(m) => Some(Arc::new(m)),
            Err(e) => {
                tracing::warn!(error = %e, "the built-in page model: using the text model for pages");
                None
            }
        };
        let in_force = monitoring.clone();
        proxy = proxy.with_model(Arc::new(move || {
            page_model
                .clone()
                .or_else(|| in_force.model().map(|(m, _)| m))
        }));
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
        let mut events = None;
        if config.events.log {
            let batches = config.events.buffer.div_ceil(256).max(1);
            let (tx, rx) = std::sync::mpsc::sync_channel(batches);
            let sink = Arc::new(EventSink::new(tx));
            proxy = proxy.with_events(sink.clone());
            filter = filter.with_events(sink.clone());
            let written = Arc::new(Written::default());
            let writer = writer::start(
                store_url.clone(),
                rx,
                written.clone(),
                Duration::from_secs(config.events.repeat_window_seconds),
                monitoring.clone(),
                store.health().clone(),
            )?;
            events = Some(Events {
                sink,
                writer,
                written,
            });
        }
        let mut sign_in = None;
        if config.proxy.authenticate != haven_proxy::Authenticate::Off {
            let s = Arc::new(proxy::StoreSignIn::new(store.clone()));
            proxy = proxy.with_authenticator(s.clone());
            sign_in = Some(s);
        }
        proxy = proxy.with_reviews(proxy::reviews(store.clone()));
        let alert_stats = Arc::new(AlertStats::default());
        let stats = alert_stats.clone();
        let (pages, grader) =
            haven_monitor::pages::page_grader(store.clone(), monitoring.clone(), move || {
                stats.page_skipped()
            });
        if let Some(pages) = pages {
            proxy = proxy.with_pages(pages);
        }
        Ok(App {
            ctx: ctx.clone(),
            config,
            origin,
            demo: options.demo,
            open_files,
            store,
            store_url,
            people,
            live,
            list_health,
            monitoring,
            filter: Arc::new(filter),
            proxy,
            sign_in,
            grader: Box::pin(grader),
            alert_stats,
            ca_state,
            phrases_state,
            events,
        })
    }

    /// Binds every listener, starts every task, and prints the banner.
    pub async fn spawn(self) -> Result<Running> {
        let App {
            ctx,
            config,
            origin,
            demo,
            open_files,
            store,
            store_url,
            people,
            live,
            list_health,
            monitoring,
            filter,
            mut proxy,
            sign_in,
            grader,
            alert_stats,
            ca_state,
            phrases_state,
            events,
        } = self;
        if let Some(s) = sign_in {
            tokio::spawn(proxy::watch_credentials(s));
        }
        tokio::spawn(grader);
        tokio::spawn(haven_monitor::alerts::run(
            store.clone(),
            monitoring.clone(),
            Arc::new(config.alerts.clone()),
            alert_stats.clone(),
        ));
        let mut dns = Vec::new();
        for listen in &config.dns.listen {
            let addr = listen_addr("dns.listen", listen)?;
            let udp = tokio::net::UdpSocket::bind(addr)
                .await
                .with_context(|| format!("DNS: cannot listen on udp {addr}"))?;
            let tcp = tcp_listener("DNS", addr).await?;
            dns.push(udp.local_addr()?);
            spawn_service(format!("DNS on udp {addr}"), filter.clone().serve_udp(udp));
            spawn_service(format!("DNS on tcp {addr}"), filter.clone().serve_tcp(tcp));
        }
        let mut proxy_listeners = Vec::new();
        for listen in &config.proxy.listen {
            let listener = tcp_listener("proxy", listen_addr("proxy.listen", listen)?).await?;
            let bound = listener.local_addr()?;
            proxy.also_known_as(bound.to_string());
            proxy_listeners.push((bound, listener));
        }
        let proxy = Arc::new(proxy);
        let proxy_addrs: Vec<SocketAddr> = proxy_listeners.iter().map(|(a, _)| *a).collect();
        for (addr, listener) in proxy_listeners {
            spawn_service(format!("proxy on {addr}"), proxy.clone().serve(listener));
        }
        let mut console = None;
        if !config.console.listen.is_empty() {
            let listener = tcp_listener(
                "console",
                listen_addr("console.listen", &config.console.listen)?,
            )
            .await?;
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
            let listener = tcp_listener("metrics", listen_addr("metrics.listen", listen)?).await?;
            metrics = Some(listener.local_addr()?);
            let mut registry = Metrics::new();
            registry.register(filter.clone());
            registry.register(proxy.clone());
            registry.register(alert_stats.clone());
            if let Some(e) = &events {
                registry.register(metrics::EventsWritten(e.written.clone()));
            }
            registry.register(metrics::StoreHealth(store.health().clone()));
            registry.register(metrics::Lists(list_health.clone()));
            tokio::spawn(metrics::serve(listener, Arc::new(registry)));
        }
        tokio::spawn(maintain(
            store.clone(),
            config.events.retention_days.clone(),
            i64::from(config.console.idle_minutes.max(1)) * 60_000,
        ));
        // A quiet filter's last events still reach the log promptly.
        if let Some(e) = &events {
            let sink = e.sink.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(200));
                loop {
                    tick.tick().await;
                    sink.flush();
                }
            });
        }
        // SIGHUP and SIGTERM are caught from here on, before the banner says Haven is running: a
        // reload asked for at once is queued for `wait`, never the default (which would stop
        // Haven).
        let signals = reload::Signals::new()?;
        banner::print(
            &ctx,
            &config,
            &origin,
            &banner::Listening {
                dns: &dns,
                upstreams: filter.upstreams(),
                proxy: &proxy_addrs,
                store: &haven_store::redact(&store_url),
                people,
                demo,
                console,
                ca_state: &ca_state,
                phrases: &phrases_state,
                metrics,
            },
        );
        tracing::info!(configuration = %origin, "Haven is running");
        Ok(Running {
            signals: std::sync::Mutex::new(Some(signals)),
            ctx,
            store,
            live,
            list_health,
            monitoring,
            filter,
            events,
        })
    }
}

/// Haven running: reloads until asked to stop, then puts down every event it was handed.
pub struct Running {
    signals: std::sync::Mutex<Option<reload::Signals>>,
    ctx: Context,
    store: Store,
    live: Arc<LiveEngine>,
    list_health: Arc<ListHealth>,
    monitoring: Arc<Monitoring>,
    filter: Arc<DnsFilter>,
    events: Option<Events>,
}

impl std::fmt::Debug for Running {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Running")
            .field("data_dir", &self.ctx.data_dir)
            .finish_non_exhaustive()
    }
}

impl Running {
    /// Reloads on SIGHUP and on a file change until SIGTERM or Ctrl-C; then closes the
    /// store's connections.
    pub async fn wait(&self) -> Result<()> {
        let signals = match self.signals.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        let signals = match signals {
            Some(s) => s,
            None => reload::Signals::new()?,
        };
        let result = reload::wait_and_reload(
            &self.ctx,
            &self.live,
            &self.list_health,
            &self.monitoring,
            signals,
        )
        .await;
        self.store.close().await;
        result
    }

    /// Once the runtime has stopped (and with it every task holding the event sink): lets the
    /// event writer put down every event it was handed.
    pub fn finish(self) {
        let Running { filter, events, .. } = self;
        if let Some(e) = &events {
            e.sink.flush();
        }
        drop(filter);
        if let Some(e) = events {
            e.written.stopping.store(true, Ordering::Relaxed);
            drop(e.sink);
            let _ = e.writer.join();
        }
    }
}

/// A `listen` setting as an address.
fn listen_addr(key: &str, listen: &str) -> Result<SocketAddr> {
    listen
        .parse()
        .with_context(|| format!("{key}: {listen:?} is not address:port"))
}

/// A TCP listener for `who` (the DNS filter, the proxy, the console, the metrics).
async fn tcp_listener(who: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("{who}: cannot listen on tcp {addr}"))
}

/// Runs a listener's loop; one that stops says so, it never goes quiet.
fn spawn_service<E: Display>(
    what: String,
    service: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
) {
    tokio::spawn(async move {
        if let Err(e) = service.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
}

/// The store, opened and brought up to date: TOTP secrets an older Haven kept in clear are
/// sealed now, under a key file it makes.
async fn open_store(ctx: &Context, url: &str) -> Result<Store> {
    let store = ctx.open_store(url).await?;
    if store.plain_totp_secrets().await? > 0 {
        let path = ctx.data_dir.join(haven_store::sealed::TOTP_KEY_FILE);
        let key = haven_store::sealed::SealKey::load_or_create(&path)?;
        let sealed = store.seal_totp_secrets(&key).await?;
        tracing::warn!(
            sealed,
            key = %path.display(),
            "sealed {sealed} TOTP secrets kept in clear; keep {} with the database's backups, apart from them",
            path.display()
        );
    }
    Ok(store)
}

/// Deletes events past their source's retention and console sessions past their idle time,
/// and refreshes the planner's statistics, now and every hour.
async fn maintain(
    store: Store,
    retention_days: std::collections::BTreeMap<String, u32>,
    idle_ms: i64,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        for (source, days) in &retention_days {
            let before = haven_store::now_ms() - i64::from(*days) * 86_400_000;
            if let Err(e) = store.prune_events(Some(source), before).await {
                tracing::warn!(error = %e, source = %source, "events: pruning failed");
            }
        }
        if let Err(e) = store.end_idle_sessions(idle_ms).await {
            tracing::warn!(error = %e, "console: ending idle sessions failed");
        }
        if let Err(e) = store.refresh_statistics().await {
            tracing::warn!(error = %e, "events: refreshing the store's statistics failed");
        }
    }
}

fn system_upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|t| haven_dns::server::resolv_conf_nameservers(&t))
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
    let second = haven_runtime::clock::now_secs();
    LAST.with(|last| match last.get() {
        Some((s, t)) if s == second => t,
        _ => {
            let t = haven_runtime::clock::local().datetime();
            last.set(Some((second, t)));
            t
        }
    })
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
