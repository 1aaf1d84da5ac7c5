//! Haven's filtering DNS forwarder.
//!
//! - [`wire`]: DNS messages, parsed and built with every length and pointer checked (pure);
//! - [`filter`]: the plan for a query, from the policy engine (pure);
//! - [`cache`]: upstream answers kept for their TTL, negative answers included;
//! - [`metrics`]: the counters and their names, exposed through a `prometheus-client` collector;
//! - [`server`]: UDP and TCP listeners, upstream forwarding with failover and TCP retry;
//! - [`upstream`]: upstream resolvers, plain or DNS over TLS with kept connections.

pub mod batch;
pub mod cache;
pub mod filter;
pub mod metrics;
pub mod server;
pub mod upstream;
pub mod wire;

pub use server::{BlockMode, DnsConfig, DnsFilter};
