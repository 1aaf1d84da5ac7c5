//! Haven's runtime plumbing: what the services share above the pure core.
//!
//! - [`clock`]: the one place the process reads the wall clock and the monotonic clock.
//! - [`LiveEngine`]: the engine in force, replaced whole while requests flow.
//! - [`EventSink`]: where the data plane's events go, in batches, never waiting.
//! - [`metrics`]: small glue for exposing counters kept in plain atomics through
//!   `prometheus-client` collectors.
//!
//! `haven-core` stays pure (no I/O, no clock, no channels, no arc-swap, no metric rendering);
//! everything here is the state and plumbing a running service needs around it.

pub mod clock;
pub mod events;
pub mod live;
pub mod metrics;

pub use events::{EventSink, EVENT_BATCH};
pub use live::LiveEngine;
