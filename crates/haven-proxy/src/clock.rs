//! The one place the proxy crate reads the time, so that it can later be pointed at a shared
//! clock (and a lint can refuse `SystemTime::now`/`Instant::now` anywhere else).
//!
//! The policy's local time (schedules) is not read here: `Proxy::new` takes it as a function.
//! tokio's timers (`tokio::time`) keep their own clock.
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (zero for a clock set before it).
pub(crate) fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch, as events and requests record them.
pub(crate) fn now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// Now, for measuring intervals (latency, how long a cache entry lives).
pub(crate) fn instant() -> Instant {
    Instant::now()
}

/// Now, in the machine's time zone (a certificate's validity starts in this year).
pub(crate) fn zoned() -> jiff::Zoned {
    jiff::Zoned::now()
}
