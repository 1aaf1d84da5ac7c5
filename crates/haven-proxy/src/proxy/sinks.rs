//! What the proxy hands to the rest of Haven besides events: review requests from block pages,
//! and pages it scored, for monitoring.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

/// Someone asked for a blocked page to be looked at again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// From which address.
    pub client: IpAddr,
    /// Who asked, when known: signed in to the proxy, or the owner of the device.
    pub user: Option<String>,
    /// The group whose policy blocked the page for them (a signed-in person's own group, not
    /// the network's).
    pub group: String,
    /// The page.
    pub url: String,
    /// Why it was blocked, as the block page said.
    pub reason: String,
}

/// What became of a review request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewOutcome {
    /// Kept for staff to decide.
    Recorded,
    /// The same person already has an open request for this site: not kept twice.
    AlreadyAsked,
    /// It could not be kept (the store did not answer).
    Failed,
}

/// Where review requests go: keeps one, and says what became of it.
pub type ReviewSink = Arc<
    dyn Fn(ReviewRequest) -> Pin<Box<dyn std::future::Future<Output = ReviewOutcome> + Send>>
        + Send
        + Sync,
>;

/// A page a browser was given after it was scored, for monitoring to read.
#[derive(Debug, Clone)]
pub struct PageSeen {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The device's address.
    pub client: IpAddr,
    /// Who, when known.
    pub user: Option<String>,
    /// The page's address.
    pub url: String,
    /// The page as it came.
    pub page: crate::score::Seen,
}

/// Where scored pages go: called on the request path, so it must only hand the page on.
pub type PageSink = Arc<dyn Fn(PageSeen) + Send + Sync>;
