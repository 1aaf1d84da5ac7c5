//! What the data plane records: one event per decision. Shared by the DNS filter, the proxy and
//! the store.

use std::net::IpAddr;

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
    /// The name or URL asked for.
    pub name: String,
    /// DNS query type, for DNS events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qtype: Option<u16>,
    /// What was done.
    pub action: Action,
    /// Why, when it was not a plain allow (category and rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Time to answer, in microseconds.
    pub latency_us: u64,
}
