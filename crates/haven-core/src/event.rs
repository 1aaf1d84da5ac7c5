//! What the data plane records: one event per decision. Shared by the DNS filter, the proxy and
//! the store. (Where events go, the channel and its batches, is `haven-runtime`'s `EventSink`.)

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use crate::policy::Action;

/// Which part of Haven decided. Stored as its [`Source::as_str`] text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The DNS filter.
    Dns,
    /// The filtering proxy.
    Proxy,
}

impl Source {
    /// The text stored and shown: `dns` or `proxy`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Source::Dns => "dns",
            Source::Proxy => "proxy",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored source that is neither `dns` nor `proxy`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown event source {0:?}")]
pub struct UnknownSource(pub String);

impl FromStr for Source {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Source, UnknownSource> {
        match s {
            "dns" => Ok(Source::Dns),
            "proxy" => Ok(Source::Proxy),
            other => Err(UnknownSource(other.to_owned())),
        }
    }
}

/// One decision, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Which part of Haven decided.
    pub source: Source,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_stored_as_its_text_and_an_unknown_one_is_refused() {
        for s in [Source::Dns, Source::Proxy] {
            assert_eq!(s.as_str().parse::<Source>(), Ok(s));
            assert_eq!(serde_json::to_string(&s).expect("json"), format!("\"{s}\""));
        }
        assert_eq!(
            "search".parse::<Source>(),
            Err(UnknownSource("search".into()))
        );
    }
}
