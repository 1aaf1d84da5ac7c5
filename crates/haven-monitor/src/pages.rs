//! The page grader: pages the proxy scored, graded by the risk library off the request path,
//! within a budget of bytes a second (grading takes CPU), and those grading 1 or more kept as
//! captures.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use haven_proxy::{PageSeen, PageSink};
use haven_store::Store;

use crate::Monitoring;

/// A token bucket of page bytes: `rate` a second, up to a second's worth saved up.
#[derive(Debug)]
pub struct PageBudget {
    rate: u64,
    state: std::sync::Mutex<(u64, std::time::Instant)>,
}

impl PageBudget {
    /// A budget of `rate` bytes a second.
    pub fn new(rate: u64) -> PageBudget {
        PageBudget {
            rate,
            state: std::sync::Mutex::new((rate, haven_runtime::clock::instant())),
        }
    }

    /// Whether `len` more bytes fit now (and if so, spends them).
    pub fn take(&self, len: usize) -> bool {
        let Ok(mut s) = self.state.lock() else {
            return false;
        };
        let now = haven_runtime::clock::instant();
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
/// Pages waiting to be graded, at most.
const PAGES_WAITING: usize = 256;

/// The proxy's page hook and the task that grades what it hands on. When the grader falls
/// behind, pages wait (up to 256 of them and 64 MiB) and beyond that are left ungraded and
/// `skipped` is called; so is it for pages over the budget. The hook is `None` when
/// `[monitor] pages` is off.
pub fn page_grader(
    store: Store,
    monitoring: Arc<Monitoring>,
    skipped: impl Fn() + Send + Sync + 'static,
) -> (Option<PageSink>, impl std::future::Future<Output = ()>) {
    let (page_tx, page_rx) = tokio::sync::mpsc::channel::<PageSeen>(PAGES_WAITING);
    let queued = Arc::new(AtomicUsize::new(0));
    let sink: Option<PageSink> = monitoring.rules.pages.then(|| {
        let queued = queued.clone();
        let budget = PageBudget::new(u64::from(monitoring.rules.page_kib_per_second) * 1024);
        Arc::new(move |p: PageSeen| {
            let len = p.page.len();
            if queued.load(Ordering::Relaxed) + len > PAGES_QUEUED_AT_MOST || !budget.take(len) {
                skipped();
                return;
            }
            queued.fetch_add(len, Ordering::Relaxed);
            if page_tx.try_send(p).is_err() {
                queued.fetch_sub(len, Ordering::Relaxed);
                skipped();
            }
        }) as PageSink
    });
    (sink, grade_pages(page_rx, queued, store, monitoring))
}

/// Grades the pages the proxy scored, one at a time on a blocking thread: a page whose text
/// grades 1 or more is a capture, keeping the passage that graded highest.
async fn grade_pages(
    mut rx: tokio::sync::mpsc::Receiver<PageSeen>,
    queued: Arc<AtomicUsize>,
    store: Store,
    monitoring: Arc<Monitoring>,
) {
    /// Text read from a page, at most.
    const PAGE_TEXT: usize = 256 * 1024;
    while let Some(p) = rx.recv().await {
        queued.fetch_sub(p.page.len(), Ordering::Relaxed);
        let mut grader = monitoring.grader();
        // The model reads pages (HTML); plain text and JSON are the library's alone.
        if !p.page.is_html() {
            grader.model = None;
        }
        let graded = tokio::task::spawn_blocking(move || {
            let text = p.page.text(PAGE_TEXT).ok()?;
            let (a, passage) = grader.assess_passages(&text)?;
            Some(a.capture(
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
                tracing::warn!(error = %e, "monitoring: a page capture could not be stored");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_page_budget_refills_over_time() {
        let b = PageBudget::new(10_000);
        assert!(b.take(8_000));
        assert!(!b.take(3_000), "over the second's budget");
        std::thread::sleep(Duration::from_millis(400));
        assert!(b.take(3_000), "refilled");
        assert!(!b.take(20_000), "never more than a second's worth");
    }
}
