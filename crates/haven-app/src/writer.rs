//! The event writer: the data plane's events into the store on a thread of its own, with
//! its own runtime and connections, gathering repeated DNS questions, and handing every event
//! to monitoring's [`Watcher`] on the way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use haven_core::event::Event;
use haven_monitor::{Monitoring, Watcher};
use haven_store::{Store, StoreError};

/// What the event writer has done, for the metrics; and whether the service is stopping.
#[derive(Debug, Default)]
pub struct Written {
    /// Events committed to the store.
    pub stored: AtomicU64,
    /// Batches the store refused (each tried again).
    pub failures: AtomicU64,
    /// Set when the service stops: refused writes are then given up after a few more tries.
    pub stopping: AtomicBool,
}

/// What a retried write holds, for the log.
#[derive(Debug, Clone, Copy)]
enum Holding {
    Events,
    Captures,
}

impl Holding {
    /// The part of Haven that says so, and what it holds.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Holding::Events => ("events", "events"),
            Holding::Captures => ("monitoring", "captures"),
        }
    }
}

/// Tries a write until the store takes it (waiting a little longer each time, up to a second),
/// saying so once; once the service is stopping, gives up after twenty more tries. Returns
/// whether it was taken. Each refusal is counted on the store's health and by `refused`.
async fn until_taken(
    store: &Store,
    written: &Written,
    holding: Holding,
    count: u64,
    refused: impl Fn(),
    mut write: impl AsyncFnMut() -> Result<(), StoreError>,
) -> bool {
    let (part, noun) = holding.words();
    let mut tries = 0u64;
    loop {
        match store.health().note(write().await) {
            Ok(()) => return true,
            Err(e) => {
                refused();
                if tries == 0 {
                    tracing::warn!(
                        error = %e,
                        count,
                        "{part}: the store refused {count} {noun}; trying again"
                    );
                }
                tries += 1;
                if written.stopping.load(Ordering::Relaxed) && tries > 20 {
                    tracing::error!(
                        count,
                        "{part}: stopping with {count} {noun} the store would not take"
                    );
                    return false;
                }
                tokio::time::sleep(Duration::from_millis((50 * tries).min(1000))).await;
            }
        }
    }
}

/// Writes the data plane's events to the store on a thread of its own (with its own
/// connections), a transaction per gathering of batches (up to 256 of them, 65,536 events:
/// under load, fewer and larger transactions rewrite each index page fewer times). An event
/// counts as stored once its transaction commits. A batch the store refuses is kept and tried
/// again; meanwhile new events wait in the channel, and past its size are dropped and
/// counted, never waited for. Captures the watcher finds are recorded first (an alert should
/// not wait behind a large batch of events) and, like events, tried again, not dropped.
pub fn start(
    url: String,
    rx: std::sync::mpsc::Receiver<Vec<Event>>,
    written: Arc<Written>,
    repeat_window: Duration,
    monitoring: Arc<Monitoring>,
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
                let store = match Store::open(&url).await {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s.sharing_health(health)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                write_events(&store, &rx, &written, repeat_window, &monitoring).await;
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

/// The writer's loop, until the channel closes and everything gathered is written.
async fn write_events(
    store: &Store,
    rx: &std::sync::mpsc::Receiver<Vec<Event>>,
    written: &Written,
    repeat_window: Duration,
    monitoring: &Monitoring,
) {
    let mut repeats = Repeats::new(repeat_window);
    let mut watcher = Watcher::default();
    // Gathered rows waiting to be written, a slice per transaction (from `done` on), so that
    // the channel is drained between slices rather than filling while they are written.
    let mut pending: Vec<(Event, u64)> = Vec::new();
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
                let grader = monitoring.grader();
                for e in std::iter::once(first)
                    .chain(rx.try_iter().take(255))
                    .flatten()
                {
                    watcher.see(&grader, &monitoring.rules, &e, &mut captures);
                    if let Some(e) = repeats.add(e) {
                        singles.push(e);
                    }
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => open = false,
        }
        // Gathered repeats leave when their window closes, and all at the end.
        if !captures.is_empty() {
            until_taken(
                store,
                written,
                Holding::Captures,
                captures.len() as u64,
                || {},
                async || monitoring.record(store, &captures).await.map(drop),
            )
            .await;
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
        let rows: Vec<(&Event, u64)> = singles
            .iter()
            .map(|e| (e, 1))
            .chain(pending[done..end].iter().map(|(e, n)| (e, *n)))
            .collect();
        done = end;
        if rows.is_empty() {
            continue;
        }
        let represented: u64 = rows.iter().map(|(_, n)| n).sum();
        let taken = until_taken(
            store,
            written,
            Holding::Events,
            represented,
            || {
                written.failures.fetch_add(1, Ordering::Relaxed);
            },
            async || store.insert_counted(&rows).await,
        )
        .await;
        if taken {
            written.stored.fetch_add(represented, Ordering::Relaxed);
        }
    }
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
    rows: Vec<(Event, u64)>,
    index: std::collections::HashMap<u64, u32>,
    keys: std::collections::hash_map::RandomState,
}

/// Kinds of question gathered at once, at most (about 200 bytes each).
const GATHERED_AT_MOST: usize = 200_000;

/// Whether two DNS events are the same question from the same place, answered the same way.
fn same_question(a: &Event, b: &Event) -> bool {
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
    fn add(&mut self, e: Event) -> Option<Event> {
        use std::hash::BuildHasher as _;
        if self.window.is_zero() || e.source != haven_core::event::Source::Dns {
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
        self.since.get_or_insert_with(haven_runtime::clock::instant);
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
    fn take_due(&mut self, all: bool) -> Vec<(Event, u64)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(name: &str, action: haven_core::policy::Action, latency_us: u64) -> Event {
        Event {
            at_ms: 1_000,
            source: haven_core::event::Source::Dns,
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
        proxy.source = haven_core::event::Source::Proxy;
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
