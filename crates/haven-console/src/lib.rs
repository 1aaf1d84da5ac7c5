//! Haven's console: server-rendered pages (askama templates and a little htmx) and a JSON API,
//! over the store.
//!
//! Everyone signs in with a user name and password; roles that see safeguarding data also give
//! a TOTP code (enrolled with a QR code on first sign-in, with recovery codes; the secret kept
//! sealed under `<data-dir>/totp.key`). Wrong passwords and wrong codes are counted per account
//! and per address, lock the step for a while, and reach the audit log counted. Sessions end
//! after `idle_minutes` without use, `session_hours` after they began, and when the password
//! changes; "My account" lists them. Every page and API route names the permission it needs
//! ([`permissions`]); every form carries the session's CSRF token; every response carries
//! strict security headers; every read of someone's activity is audited.

pub mod api;
pub mod change;
pub mod listener;
pub mod pages;
pub mod permissions;
pub mod routes;
pub mod totp;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{header, HeaderValue};
use axum::Router;
use haven_runtime::LiveEngine;
use haven_store::Store;
use serde::Deserialize;

/// `[console]` in `haven.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens (`""` switches it off).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Minutes without use after which a session ends.
    #[serde(default = "default_idle")]
    pub idle_minutes: u32,
    /// Hours after signing in at which a session ends however busy it is.
    #[serde(default = "default_session_hours")]
    pub session_hours: u32,
    /// Whether a policy change needs a second person's approval before it applies.
    #[serde(default)]
    pub policy_approval: bool,
    /// Mark cookies `Secure` (set when the console is reached over HTTPS, e.g. behind a
    /// TLS-terminating proxy).
    #[serde(default)]
    pub secure_cookies: bool,
    /// Connections open at once (32 at most from one address). Lowered at start when the
    /// process may open few files, so that the console is refused before DNS or the proxy.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Seconds a request may take to arrive, body included (its headers: at most ten).
    #[serde(default = "default_request_timeout")]
    pub request_timeout_seconds: u64,
}

fn default_request_timeout() -> u64 {
    30
}

fn default_max_connections() -> usize {
    256
}

fn default_listen() -> String {
    "127.0.0.1:8080".to_owned()
}

fn default_idle() -> u32 {
    20
}

fn default_session_hours() -> u32 {
    12
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        // A configuration without a [console] section has no console.
        ConsoleConfig {
            listen: String::new(),
            idle_minutes: default_idle(),
            session_hours: default_session_hours(),
            policy_approval: false,
            secure_cookies: false,
            max_connections: default_max_connections(),
            request_timeout_seconds: default_request_timeout(),
        }
    }
}

/// What the console works with.
#[derive(Debug)]
pub struct Inner {
    /// The store.
    pub store: Store,
    /// The engine in force (policy changes replace it).
    pub engine: Arc<LiveEngine>,
    /// `<data-dir>/policy.toml`, where policy changes are written.
    pub policy_path: PathBuf,
    /// Settings.
    pub config: ConsoleConfig,
    /// Failed sign-ins by address: guessing across many accounts from one place is slowed
    /// even though no single account reaches its lock.
    pub failures: web::Failures,
    /// Wrong second-factor codes by address, likewise.
    pub code_failures: web::Failures,
    /// The key TOTP secrets are sealed with (`<data-dir>/totp.key`), read or made on first use.
    totp_key: std::sync::OnceLock<haven_store::sealed::SealKey>,
    vault: std::sync::OnceLock<Arc<haven_vault::Vault>>,
    /// The risk library and alert rules.
    pub monitoring: Arc<haven_monitor::Monitoring>,
}

/// The console's shared state.
#[derive(Debug, Clone)]
pub struct Console(pub Arc<Inner>);

impl std::ops::Deref for Console {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Console {
    /// A console over `store`, changing the policy at `policy_path` for `engine`, and the risk
    /// library of `monitoring`.
    pub fn new(
        store: Store,
        engine: Arc<LiveEngine>,
        policy_path: PathBuf,
        config: ConsoleConfig,
        monitoring: Arc<haven_monitor::Monitoring>,
    ) -> Console {
        Console(Arc::new(Inner {
            store,
            engine,
            policy_path,
            config,
            failures: web::Failures::new(web::FAILURES_PER_ADDRESS, web::FAILURE_WINDOW),
            code_failures: web::Failures::new(web::FAILURES_PER_ADDRESS, web::FAILURE_WINDOW),
            totp_key: std::sync::OnceLock::new(),
            vault: std::sync::OnceLock::new(),
            monitoring,
        }))
    }

    /// Every page and API route.
    pub fn router(&self) -> Router {
        routes::router(pages::PAGES, self)
            .merge(routes::router(api::ROUTES, self))
            .with_state(self.clone())
            .layer(axum::middleware::from_fn(security_headers))
    }

    /// Serves the console on a bound listener, within `limits`, until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener, limits: listener::Limits) {
        let router = self.router();
        listener::serve(listener, limits, move |peer: SocketAddr| {
            let router = router.clone();
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                // A router is always ready: it may be called without polling readiness.
                let mut router = router.clone();
                async move {
                    match tower_service::Service::call(&mut router, req).await {
                        Ok(resp) => resp,
                        Err(never) => match never {},
                    }
                }
            }
        })
        .await;
    }

    /// The key TOTP secrets are sealed with: `totp.key` in the data directory (the one that
    /// holds `policy.toml`), made there on first use.
    pub fn totp_key(&self) -> Result<&haven_store::sealed::SealKey, haven_store::StoreError> {
        if let Some(key) = self.totp_key.get() {
            return Ok(key);
        }
        let dir = self
            .policy_path
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."));
        let key = haven_store::sealed::SealKey::load_or_create(
            &dir.join(haven_store::sealed::TOTP_KEY_FILE),
        )?;
        Ok(self.totp_key.get_or_init(|| key))
    }

    /// The vault that seals evidence: `vault/` in the data directory, made there on first use.
    pub fn vault(&self) -> Result<&Arc<haven_vault::Vault>, haven_vault::VaultError> {
        if let Some(v) = self.vault.get() {
            return Ok(v);
        }
        let dir = self
            .policy_path
            .parent()
            .unwrap_or_else(|| std::path::Path::new("."));
        let v = Arc::new(haven_vault::Vault::open(&dir.join("vault"))?);
        Ok(self.vault.get_or_init(|| v))
    }

    /// The school's name, from the policy in force.
    pub fn school(&self) -> String {
        self.engine.current().policy().school.clone()
    }
}

/// Headers on every response: no scripts but our own, no framing, no sniffing, no caching of
/// pages that hold pupils' data, no referrer leaving the console.
async fn security_headers(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
    resp
}
