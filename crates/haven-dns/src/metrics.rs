//! The DNS filter's metrics, exposed through a `prometheus-client` collector (the filter is
//! one: [`crate::DnsFilter`] implements [`Collector`]). Every metric name is here.

use std::sync::atomic::{AtomicU64, Ordering};

use haven_runtime::metrics::{counter, gauge, sum_and_count, CountsByCategory, DescriptorEncoder};

/// Metric names.
pub mod names {
    /// Queries answered.
    pub const QUERIES: &str = "haven_dns_queries_total";
    /// Queries blocked, by category.
    pub const BLOCKED: &str = "haven_dns_blocked_total";
    /// Messages that were not valid queries.
    pub const MALFORMED: &str = "haven_dns_malformed_total";
    /// Queries refused by the per-client rate limit.
    pub const RATE_LIMITED: &str = "haven_dns_rate_limited_total";
    /// TCP connections closed at once: the client address, or the server, had all it may open.
    pub const TCP_REFUSED: &str = "haven_dns_tcp_refused_total";
    /// Answers from the cache.
    pub const CACHE_HITS: &str = "haven_dns_cache_hits_total";
    /// Lookups the cache could not answer.
    pub const CACHE_MISSES: &str = "haven_dns_cache_misses_total";
    /// Answers held in the cache.
    pub const CACHE_ENTRIES: &str = "haven_dns_cache_entries";
    /// Bytes of the cache's ring of answers.
    pub const CACHE_BYTES: &str = "haven_dns_cache_bytes";
    /// Questions sent upstream.
    pub const UPSTREAM_QUERIES: &str = "haven_dns_upstream_queries_total";
    /// Questions no upstream answered.
    pub const UPSTREAM_FAILURES: &str = "haven_dns_upstream_failures_total";
    /// Time upstreams took to answer.
    pub const UPSTREAM_LATENCY: &str = "haven_dns_upstream_latency_seconds";
    /// Events dropped because the event consumer could not keep up (DNS and proxy: one sink).
    pub const EVENTS_DROPPED: &str = "haven_events_dropped_total";
}

/// The cache's figures at the moment of rendering.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub entries: usize,
    pub bytes: usize,
    /// Events dropped by the event sink.
    pub events_dropped: u64,
}

/// Counters, updated on the query path without locks (but for blocks by category).
#[derive(Debug, Default)]
pub struct Metrics {
    /// Queries answered.
    pub queries: AtomicU64,
    /// Malformed messages.
    pub malformed: AtomicU64,
    /// Rate-limited queries.
    pub rate_limited: AtomicU64,
    /// TCP connections closed at once (per-client or overall cap).
    pub tcp_refused: AtomicU64,
    /// Upstream questions.
    pub upstream_queries: AtomicU64,
    /// Upstream failures.
    pub upstream_failures: AtomicU64,
    /// Sum of upstream latency in microseconds.
    pub upstream_latency_us: AtomicU64,
    blocked: CountsByCategory,
}

impl Metrics {
    /// Counts a block in a category.
    pub fn blocked(&self, category: &str) {
        self.blocked.add(category);
    }

    /// Blocks so far, all categories.
    pub fn blocked_total(&self) -> u64 {
        self.blocked.total()
    }

    /// Writes every metric, with the cache's figures of the moment (the body of the DNS
    /// filter's [`Collector`]).
    pub fn encode(&self, cache: CacheFigures, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(
            enc,
            names::QUERIES,
            "DNS queries answered.",
            get(&self.queries),
        )?;
        counter(
            enc,
            names::MALFORMED,
            "Messages that were not valid queries.",
            get(&self.malformed),
        )?;
        counter(
            enc,
            names::RATE_LIMITED,
            "Queries refused by the per-client rate limit.",
            get(&self.rate_limited),
        )?;
        counter(
            enc,
            names::TCP_REFUSED,
            "TCP connections closed at once: the client address, or the server, had all it may open.",
            get(&self.tcp_refused),
        )?;
        counter(
            enc,
            names::CACHE_HITS,
            "Answers from the cache.",
            cache.hits,
        )?;
        counter(
            enc,
            names::CACHE_MISSES,
            "Lookups the cache could not answer.",
            cache.misses,
        )?;
        counter(
            enc,
            names::UPSTREAM_QUERIES,
            "Questions sent upstream.",
            get(&self.upstream_queries),
        )?;
        counter(
            enc,
            names::UPSTREAM_FAILURES,
            "Questions no upstream answered.",
            get(&self.upstream_failures),
        )?;
        counter(
            enc,
            names::EVENTS_DROPPED,
            "Events dropped because the consumer could not keep up.",
            cache.events_dropped,
        )?;
        gauge(
            enc,
            names::CACHE_ENTRIES,
            "Answers held in the cache.",
            cache.entries as i64,
        )?;
        gauge(
            enc,
            names::CACHE_BYTES,
            "Bytes of the cache's ring of answers.",
            cache.bytes as i64,
        )?;
        self.blocked
            .encode(enc, names::BLOCKED, "Queries blocked, by category.")?;
        sum_and_count(
            enc,
            names::UPSTREAM_LATENCY,
            "Time upstreams took to answer.",
            get(&self.upstream_latency_us) as f64 / 1e6,
            get(&self.upstream_queries),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_runtime::metrics::{text, Collector};

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.queries.fetch_add(3, Ordering::Relaxed);
        m.blocked("gambling");
        m.blocked("gambling");
        m.blocked("ut1:odd\"name");
        /// The counters with some cache figures, as a scrape sees them.
        #[derive(Debug)]
        struct Scraped(Metrics, CacheFigures);
        impl Collector for Scraped {
            fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
                self.0.encode(self.1, &mut enc)
            }
        }
        let blocked_total = m.blocked_total();
        let text = text(Scraped(
            m,
            CacheFigures {
                hits: 5,
                misses: 2,
                entries: 3,
                bytes: 300,
                events_dropped: 4,
            },
        ));
        assert!(text.contains("haven_dns_queries_total 3\n"), "{text}");
        assert!(
            text.contains("haven_dns_blocked_total{category=\"gambling\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("haven_dns_blocked_total{category=\"ut1:odd_name\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("haven_dns_cache_hits_total 5\n"));
        assert!(text.contains("haven_events_dropped_total 4\n"));
        assert!(text.contains("# TYPE haven_dns_cache_entries gauge\nhaven_dns_cache_entries 3\n"));
        assert_eq!(blocked_total, 3);
    }
}
