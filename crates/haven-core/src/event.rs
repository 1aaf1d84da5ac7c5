//! What the data plane records: one event per decision. Shared by the DNS filter, the proxy and
//! the store.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;

use serde::Serialize;

use crate::policy::Action;

/// One decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Which part of Haven decided (`dns`, `proxy`).
    pub source: &'static str,
    /// The client's address.
    pub client: IpAddr,
    /// The client's group.
    pub group: String,
    /// Who, when known (proxy authentication).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The name or URL asked for.
    pub name: String,
    /// DNS query type, for DNS events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<u16>,
    /// What was done.
    pub action: Action,
    /// The deciding category's id, when a category decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Why, when it was not a plain allow (category and rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was searched for, when the request was a search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<String>,
    /// Time to answer, in microseconds.
    pub latency_us: u64,
}

/// Events per batch.
pub const EVENT_BATCH: usize = 256;

/// Where the data plane's events go: gathered into batches, so the consumer is woken once per
/// batch rather than once per event, and handed over without ever waiting. When the consumer
/// has fallen behind, a batch is dropped and counted; the request it came from is never
/// delayed. Shared by the DNS filter and the proxy.
#[derive(Debug)]
pub struct EventSink {
    tx: SyncSender<Vec<Event>>,
    pending: Mutex<Vec<Event>>,
    dropped: AtomicU64,
}

impl EventSink {
    /// A sink handing batches to `tx`. Call [`EventSink::flush`] now and then so that a quiet
    /// service's events still leave.
    pub fn new(tx: SyncSender<Vec<Event>>) -> Self {
        EventSink {
            tx,
            pending: Mutex::new(Vec::with_capacity(EVENT_BATCH)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds an event to the current batch, handing the batch over when it is full.
    pub fn emit(&self, event: Event) {
        let full = match self.pending.lock() {
            Ok(mut p) => {
                p.push(event);
                (p.len() >= EVENT_BATCH)
                    .then(|| std::mem::replace(&mut *p, Vec::with_capacity(EVENT_BATCH)))
            }
            Err(_) => None,
        };
        if let Some(batch) = full {
            self.send(batch);
        }
    }

    /// Hands over the events waiting in the current batch.
    pub fn flush(&self) {
        let batch = match self.pending.lock() {
            Ok(mut p) if !p.is_empty() => {
                std::mem::replace(&mut *p, Vec::with_capacity(EVENT_BATCH))
            }
            _ => return,
        };
        self.send(batch);
    }

    /// Events dropped so far because the consumer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn send(&self, batch: Vec<Event>) {
        let n = batch.len() as u64;
        if self.tx.try_send(batch).is_err() {
            self.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event {
            at_ms: n,
            source: "dns",
            client: IpAddr::from([127, 0, 0, 2]),
            group: "ks2".into(),
            user: None,
            name: format!("n{n}.example"),
            qtype: Some(1),
            action: Action::Allow,
            category: None,
            reason: None,
            search: None,
            latency_us: 1,
        }
    }

    #[test]
    fn events_leave_in_batches_and_a_full_consumer_costs_drops_not_waits() {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let sink = EventSink::new(tx);
        for n in 0..EVENT_BATCH as u64 {
            sink.emit(event(n));
        }
        let first = rx.try_recv().expect("a full batch left");
        assert_eq!(first.len(), EVENT_BATCH);
        // Nobody is reading now: one batch fits the channel, the next is dropped and counted.
        for n in 0..(2 * EVENT_BATCH) as u64 {
            sink.emit(event(n));
        }
        assert_eq!(sink.dropped(), EVENT_BATCH as u64);
        sink.emit(event(7));
        drop(rx.try_recv().expect("the batch that fitted"));
        sink.flush();
        assert_eq!(rx.try_recv().expect("the flushed remainder").len(), 1);
        let line = serde_json::to_string(&event(3)).expect("json");
        assert!(!line.contains("user") && !line.contains("search"), "{line}");
    }
}

/// A counter per category (blocks by category, for the metrics of the DNS filter and the
/// proxy): the name is copied only the first time a category is counted.
#[derive(Debug, Default)]
pub struct CountsByCategory(Mutex<std::collections::BTreeMap<String, u64>>);

impl CountsByCategory {
    /// Counts one for `category`.
    pub fn add(&self, category: &str) {
        if let Ok(mut m) = self.0.lock() {
            match m.get_mut(category) {
                Some(n) => *n += 1,
                None => {
                    m.insert(category.to_owned(), 1);
                }
            }
        }
    }

    /// The sum over all categories.
    pub fn total(&self) -> u64 {
        self.0.lock().map(|m| m.values().sum()).unwrap_or(0)
    }

    /// Appends the Prometheus text for the counter `name`, labelled by category.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(m) = self.0.lock() {
            for (category, n) in m.iter() {
                let label = category.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(out, "{name}{{category=\"{label}\"}} {n}");
            }
        }
    }
}
