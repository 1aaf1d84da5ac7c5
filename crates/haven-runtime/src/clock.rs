//! The clock: the one place the process reads the time.
//!
//! Everything else takes the time as an argument (the pure core always; the services from
//! here), so that a decision can be replayed and a test can pass any time it likes. The
//! workspace's `.clippy.toml` refuses `std::time::SystemTime::now` and `std::time::Instant::now`
//! outside this module.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The wall clock, as time since the Unix epoch (zero if the clock is set before 1970).
#[inline]
#[allow(clippy::disallowed_methods)] // the seam itself
pub fn since_epoch() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// The wall clock, in milliseconds since the Unix epoch.
#[inline]
pub fn now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// The wall clock, in whole seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    since_epoch().as_secs()
}

/// The wall clock as a timestamp.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::try_from(SystemTime::UNIX_EPOCH + since_epoch())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// The wall clock in the system's time zone.
pub fn local() -> jiff::Zoned {
    now().to_zoned(jiff::tz::TimeZone::system())
}

/// The monotonic clock: for durations, deadlines and windows, never for dates.
#[inline]
#[allow(clippy::disallowed_methods)] // the seam itself
pub fn instant() -> Instant {
    Instant::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clocks_agree_with_each_other() {
        let ms = now_ms();
        assert!(ms > 1_600_000_000_000, "after 2020: {ms}");
        assert!(now_secs() >= ms / 1000);
        assert!(now().as_millisecond() as u64 >= ms);
        let a = instant();
        assert!(instant() >= a);
    }
}
