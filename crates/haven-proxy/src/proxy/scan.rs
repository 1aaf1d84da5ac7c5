//! Downloads scanned by ClamAV for groups with `scan_downloads`: the website's answer streamed
//! to clamd (`[proxy] clamd`) as it arrives and held (up to `scan_cap_bytes`) until clamd's
//! verdict; a virus gives the block page naming it, and a download that could not be scanned
//! (clamd down or slow, too large, the website breaking off) gets the group's
//! `scan_unavailable`: blocked with the reason (the default), or passed on with a note.

use std::time::Duration;

use haven_core::policy::Group;
use haven_core::Engine;
use http_body_util::BodyExt as _;
use hyper::body::Bytes;
use hyper::Response;

use super::body::Body;
use super::decide::{Asked, Outcome};
use super::filter::Stop;
use super::Proxy;
use crate::clamd::{Clamd, ScanError, Verdict};
use crate::metrics::Metrics;
use crate::score::Prepend;

/// What scanning a download came to, for `filtered`.
pub(super) enum Scanned {
    /// Passed on (not a download, not scanned for this group, clean, or let through
    /// unscanned), with a note for the event when it was not scanned.
    Pass(Response<Body>, Option<String>),
    /// Replaced by the block page (its event already recorded).
    Blocked(Response<Body>),
}

/// Why a download was not scanned.
enum Unscanned {
    Clamd(ScanError),
    TooLarge(usize),
    Slow(u64),
    BrokeOff(String),
}

impl std::fmt::Display for Unscanned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unscanned::Clamd(e) => write!(f, "{e}"),
            Unscanned::TooLarge(cap) => write!(f, "larger than {cap} bytes (proxy.scan_cap_bytes)"),
            Unscanned::Slow(ms) => write!(
                f,
                "ClamAV gave no verdict within {ms} ms (proxy.scan_timeout_ms)"
            ),
            Unscanned::BrokeOff(e) => write!(f, "the website broke off ({e})"),
        }
    }
}

impl Proxy {
    /// `resp` scanned by clamd when it is a download for a group with `scan_downloads` and
    /// `[proxy] clamd` is set; otherwise passed on as it is.
    pub(super) async fn scanned(
        &self,
        resp: Response<Body>,
        settings: Option<&Group>,
        engine: &Engine,
        asked: &Asked<'_>,
    ) -> Scanned {
        let Some(g) = settings.filter(|g| g.scan_downloads) else {
            return Scanned::Pass(resp, None);
        };
        let Some(clamd) = self
            .config
            .clamd
            .as_deref()
            .and_then(|c| Clamd::parse(c).ok())
        else {
            return Scanned::Pass(resp, None);
        };
        if !resp.status().is_success() || !crate::filetype::is_download(resp.headers()) {
            return Scanned::Pass(resp, None);
        }
        let (parts, mut body) = resp.into_parts();
        let mut held = Vec::new();
        let ms = self.config.scan_timeout_ms;
        let scan = feed(&clamd, &mut body, &mut held, self.config.scan_cap_bytes);
        let result = match tokio::time::timeout(Duration::from_millis(ms.max(1)), scan).await {
            Ok(r) => r,
            Err(_) => Err(Unscanned::Slow(ms)),
        };
        Metrics::add(match &result {
            Ok(_) => &self.metrics.scanned,
            Err(_) => &self.metrics.unscanned,
        });
        match result {
            Ok(Verdict::Clean) => {
                let whole = http_body_util::Full::new(Bytes::from(held))
                    .map_err(|never| match never {})
                    .boxed();
                Scanned::Pass(Response::from_parts(parts, whole), None)
            }
            Ok(Verdict::Found(name)) => {
                Metrics::add(&self.metrics.viruses);
                let reason = format!(
                    "ClamAV found the virus {name} in this download (groups.{}.scan_downloads)",
                    g.name
                );
                self.emit(asked, Outcome::blocked(Some("malware"), &reason));
                Scanned::Blocked(self.block_page(
                    engine,
                    asked,
                    &reason,
                    Some("malware"),
                    Stop::Block,
                ))
            }
            Err(why) if g.scan_unavailable_allows => {
                let rest = Prepend {
                    first: Some(Bytes::from(held)),
                    rest: body,
                };
                let note = format!(
                    "download not scanned: {why}; let through (groups.{}.scan_unavailable)",
                    g.name
                );
                Scanned::Pass(Response::from_parts(parts, rest.boxed()), Some(note))
            }
            Err(why) => {
                let reason = format!(
                    "this download could not be scanned for viruses: {why} (groups.{}.scan_unavailable)",
                    g.name
                );
                self.emit(asked, Outcome::blocked(None, &reason));
                Scanned::Blocked(self.block_page(engine, asked, &reason, None, Stop::Block))
            }
        }
    }
}

/// Streams `body` to clamd as it arrives, holding it in `held` (what is read stays there, and
/// the rest in `body`, whatever becomes of the scan).
async fn feed(
    clamd: &Clamd,
    body: &mut Body,
    held: &mut Vec<u8>,
    cap: usize,
) -> Result<Verdict, Unscanned> {
    let mut scan = clamd.begin().await.map_err(Unscanned::Clamd)?;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Unscanned::BrokeOff(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        held.extend_from_slice(&data);
        if held.len() > cap {
            return Err(Unscanned::TooLarge(cap));
        }
        scan.send(&data).await.map_err(Unscanned::Clamd)?;
    }
    scan.verdict().await.map_err(Unscanned::Clamd)
}
