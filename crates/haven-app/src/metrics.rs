//! The metrics endpoint: one `prometheus_client` registry holding every part's collectors,
//! served as OpenMetrics text at `/metrics` on `[metrics] listen`. The store's health, the
//! lists in force and the event writer are collectors here; the DNS filter, the proxy and the
//! alert sender are collectors of their own crates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use haven_runtime::metrics::{counter, gauge, Collector, DescriptorEncoder, Registry};
use haven_runtime::LiveEngine;

use crate::writer::Written;

/// Metric names of the event writer, the store and the lists, as their samples are named.
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

/// The store's health: failures counted, and a full disk as a gauge a network manager can
/// alert on.
#[derive(Debug)]
pub struct StoreHealth(pub Arc<haven_store::Health>);

impl Collector for StoreHealth {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            &mut encoder,
            names::STORE_FAILURES,
            "Store operations that failed (writes refused, reads that could not run).",
            self.0.failures(),
        )?;
        gauge(
            &mut encoder,
            names::STORE_DISK_FULL,
            "1 while the store's disk is full (the last write failed for want of space).",
            i64::from(self.0.disk_full()),
        )
    }
}

/// The state of the lists in force, for the metrics: whether the previous snapshot stands in
/// for a refused one, how many policy rules an illegal list overrides, and refused reloads.
#[derive(Debug)]
pub struct ListHealth {
    live: Arc<LiveEngine>,
    reload_failures: AtomicU64,
}

impl ListHealth {
    /// The lists in force in `live`.
    pub fn new(live: Arc<LiveEngine>) -> ListHealth {
        ListHealth {
            live,
            reload_failures: AtomicU64::new(0),
        }
    }

    /// Counts a refused reload.
    pub fn reload_refused(&self) {
        self.reload_failures.fetch_add(1, Ordering::Relaxed);
    }
}

/// The lists' figures, as registered.
#[derive(Debug)]
pub struct Lists(pub Arc<ListHealth>);

impl Collector for Lists {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let engine = self.0.live.current();
        gauge(
            &mut encoder,
            names::LISTS_FALLBACK,
            "1 while the previous list snapshot stands in for the current one, which was refused (run haven lists update).",
            i64::from(engine.fallback().is_some()),
        )?;
        gauge(
            &mut encoder,
            names::LISTS_ILLEGAL_OVERRIDES,
            "Policy rules that would allow an illegal-list entry (the list wins; narrow or remove them).",
            i64::try_from(engine.illegal_overrides().len()).unwrap_or(i64::MAX),
        )?;
        counter(
            &mut encoder,
            names::LISTS_RELOAD_FAILURES,
            "Reloads of the lists or policy refused (those in force stayed).",
            self.0.reload_failures.load(Ordering::Relaxed),
        )
    }
}

/// The event writer's counts.
#[derive(Debug)]
pub struct EventsWritten(pub Arc<Written>);

impl Collector for EventsWritten {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            &mut encoder,
            names::EVENTS_STORED,
            "Events committed to the store.",
            self.0.stored.load(Ordering::Relaxed),
        )?;
        counter(
            &mut encoder,
            names::EVENTS_STORE_FAILURES,
            "Event batches the store refused (each tried again).",
            self.0.failures.load(Ordering::Relaxed),
        )
    }
}

/// What `/metrics` shows: one registry holding every part's collector.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// An empty registry.
    pub fn new() -> Metrics {
        Metrics {
            registry: Registry::default(),
        }
    }

    /// Registers a collector.
    pub fn register(&mut self, collector: impl Collector) {
        self.registry.register_collector(Box::new(collector));
    }

    /// The whole page.
    pub fn text(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics: encoding failed");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Serves `/metrics` on `listener` (the console's listener limits for metrics).
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let limits = haven_console::listener::Limits::metrics();
    haven_console::listener::serve(listener, limits, move |_peer| {
        let metrics = metrics.clone();
        move |req: hyper::Request<hyper::body::Incoming>| {
            let (status, body) = if req.uri().path() == "/metrics" {
                (hyper::StatusCode::OK, metrics.text())
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
                hyper::header::HeaderValue::from_static(haven_runtime::metrics::CONTENT_TYPE),
            );
            std::future::ready(resp)
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_and_writer_figures_keep_their_sample_names() {
        let written = Arc::new(Written::default());
        written.stored.store(7, Ordering::Relaxed);
        let mut m = Metrics::new();
        m.register(EventsWritten(written));
        m.register(StoreHealth(Arc::new(haven_store::Health::default())));
        let text = m.text();
        for line in [
            "\nhaven_events_stored_total 7\n",
            "\nhaven_events_store_failures_total 0\n",
            "\nhaven_store_failures_total 0\n",
            "\nhaven_store_disk_full 0\n",
            "# TYPE haven_events_stored counter\n",
        ] {
            assert!(text.contains(line), "{line:?} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
