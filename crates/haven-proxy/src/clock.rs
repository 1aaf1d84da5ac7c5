//! The proxy's clock: the workspace's one seam, `haven_runtime::clock`, under the names the
//! proxy's modules use. The policy's local time (schedules) is not read here: `Proxy::new`
//! takes it as a function. tokio's timers (`tokio::time`) keep their own clock.

pub(crate) use haven_runtime::clock::{instant, now_ms, since_epoch};

/// Now, in the machine's time zone (a certificate's validity starts in this year).
pub(crate) fn zoned() -> jiff::Zoned {
    haven_runtime::clock::local()
}
