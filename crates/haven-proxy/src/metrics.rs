//! The proxy's counters and their Prometheus names (all in one place), exposed through a
//! `prometheus-client` collector ([`Metrics`] is one).

use std::sync::atomic::{AtomicU64, Ordering};

use haven_runtime::metrics::{counter, Collector, CountsByCategory, DescriptorEncoder};

/// Metric names.
pub mod names {
    /// Requests decided (plain HTTP and decrypted), and CONNECT tunnels.
    pub const REQUESTS: &str = "haven_proxy_requests_total";
    /// CONNECT tunnels opened.
    pub const TUNNELS: &str = "haven_proxy_tunnels_total";
    /// Tunnels decrypted with the school's CA.
    pub const INTERCEPTED: &str = "haven_proxy_intercepted_total";
    /// Requests blocked, by category (`(rule)` when a rule, not a category, decided).
    pub const BLOCKED: &str = "haven_proxy_blocked_total";
    /// Tunnels closed as bypass attempts: a port not in `connect_ports`, first bytes that were
    /// not a TLS ClientHello, a server name that differed from the CONNECT host, or an address
    /// the group may not tunnel to.
    pub const BYPASS: &str = "haven_proxy_bypass_attempts_total";
    /// Browser connections closed at once: the proxy's `max_connections`, or one address's
    /// `max_connections_per_client`, was reached.
    pub const REFUSED: &str = "haven_proxy_connections_refused_total";
    /// Browser connections ended by a timeout: a request head, a tunnel's ClientHello or a
    /// request body too slow, or a kept connection left idle past `header_timeout_ms`.
    pub const CLIENT_TIMEOUTS: &str = "haven_proxy_client_timeouts_total";
    /// Responses scored by the phrase scanner.
    pub const SCORED: &str = "haven_proxy_scored_total";
    /// Responses that should have been scored but passed unscored (too large, unknown encoding).
    pub const UNSCORED: &str = "haven_proxy_unscored_total";
    /// Downloads ClamAV gave a verdict on (`scan_downloads`).
    pub const SCANNED: &str = "haven_proxy_downloads_scanned_total";
    /// Downloads ClamAV found a virus in (blocked).
    pub const VIRUSES: &str = "haven_proxy_viruses_found_total";
    /// Downloads that should have been scanned but could not be (clamd down or slow, too
    /// large, the website broke off): blocked or passed as the group's `scan_unavailable` says.
    pub const UNSCANNED: &str = "haven_proxy_downloads_unscanned_total";
    /// Requests a website could not answer (502/504 pages).
    pub const UPSTREAM_ERRORS: &str = "haven_proxy_upstream_errors_total";
    /// Proxy sign-ins refused (wrong user name or password, locked account).
    pub const AUTH_FAILURES: &str = "haven_proxy_auth_failures_total";
}

/// Counters, updated without locks but for blocks by category.
#[derive(Debug, Default)]
pub struct Metrics {
    pub requests: AtomicU64,
    pub tunnels: AtomicU64,
    pub intercepted: AtomicU64,
    pub bypass: AtomicU64,
    pub scored: AtomicU64,
    pub unscored: AtomicU64,
    pub scanned: AtomicU64,
    pub viruses: AtomicU64,
    pub unscanned: AtomicU64,
    pub upstream_errors: AtomicU64,
    pub auth_failures: AtomicU64,
    pub refused: AtomicU64,
    pub client_timeouts: AtomicU64,
    blocked: CountsByCategory,
}

impl Metrics {
    /// Counts one count.
    pub fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a block (`(rule)` when a rule, not a category, decided).
    pub fn blocked(&self, category: Option<&str>) {
        self.blocked.add(category.unwrap_or("(rule)"));
    }
}

/// The proxy's metrics, read on each scrape.
impl Collector for Metrics {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                names::REQUESTS,
                "Requests decided by the proxy.",
                get(&self.requests),
            ),
            (
                names::TUNNELS,
                "CONNECT tunnels opened.",
                get(&self.tunnels),
            ),
            (
                names::INTERCEPTED,
                "Tunnels decrypted with the school's CA.",
                get(&self.intercepted),
            ),
            (
                names::BYPASS,
                "Tunnels closed as bypass attempts.",
                get(&self.bypass),
            ),
            (
                names::REFUSED,
                "Browser connections closed at once (a connection cap reached).",
                get(&self.refused),
            ),
            (
                names::CLIENT_TIMEOUTS,
                "Browser connections ended by a timeout (too slow, or idle).",
                get(&self.client_timeouts),
            ),
            (
                names::AUTH_FAILURES,
                "Proxy sign-ins refused.",
                get(&self.auth_failures),
            ),
            (
                names::SCORED,
                "Responses scored by the phrase scanner.",
                get(&self.scored),
            ),
            (
                names::UNSCORED,
                "Responses passed unscored (too large, unknown encoding).",
                get(&self.unscored),
            ),
            (
                names::SCANNED,
                "Downloads ClamAV gave a verdict on.",
                get(&self.scanned),
            ),
            (
                names::VIRUSES,
                "Downloads ClamAV found a virus in.",
                get(&self.viruses),
            ),
            (
                names::UNSCANNED,
                "Downloads that could not be scanned (clamd down or slow, too large).",
                get(&self.unscanned),
            ),
            (
                names::UPSTREAM_ERRORS,
                "Requests a website could not answer.",
                get(&self.upstream_errors),
            ),
        ] {
            counter(&mut enc, name, help, value)?;
        }
        self.blocked
            .encode(&mut enc, names::BLOCKED, "Requests blocked, by category.")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_runtime::metrics::text;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        Metrics::add(&m.requests);
        Metrics::add(&m.requests);
        m.blocked(Some("gambling"));
        m.blocked(None);
        let text = text(m);
        // OpenMetrics names a counter's family without `_total` in its TYPE line.
        assert!(
            text.contains("# TYPE haven_proxy_requests counter\nhaven_proxy_requests_total 2\n")
        );
        assert!(text.contains("haven_proxy_blocked_total{category=\"gambling\"} 1\n"));
        assert!(text.contains("haven_proxy_blocked_total{category=\"(rule)\"} 1\n"));
    }
}
