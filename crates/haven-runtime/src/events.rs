//! Where the data plane's events go: the channel, its batches and the count of dropped events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::Mutex;

use haven_core::event::Event;

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
    use haven_core::event::Source;
    use haven_core::Action;
    use std::net::IpAddr;

    fn event(n: u64) -> Event {
        Event {
            at_ms: n,
            source: Source::Dns,
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
        assert!(line.contains("\"source\":\"dns\""), "{line}");
    }
}
