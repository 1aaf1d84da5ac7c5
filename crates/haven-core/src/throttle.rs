//! Failures counted per key (a client's address) over a window, after which that key must
//! wait: guessing passwords or codes from one place is slowed however many accounts it spreads
//! the guesses over. The caller passes the time in, as everywhere in the core.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Keys remembered at most; past this, windows that have passed are forgotten first.
const REMEMBERED: usize = 10_000;

/// Failures per key within a window.
#[derive(Debug)]
pub struct Failures<K> {
    limit: u32,
    window: Duration,
    seen: Mutex<HashMap<K, (u32, Instant)>>,
}

impl<K: Hash + Eq + Clone> Failures<K> {
    /// At most `limit` failures per key within `window`.
    pub fn new(limit: u32, window: Duration) -> Failures<K> {
        Failures {
            limit,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` has failed `limit` times within the window before `now`.
    pub fn too_many(&self, key: &K, now: Instant) -> bool {
        let Ok(map) = self.seen.lock() else {
            return false;
        };
        map.get(key).is_some_and(|(n, since)| {
            *n >= self.limit && now.saturating_duration_since(*since) < self.window
        })
    }

    /// Counts a failure from `key` at `now`: how many within its window, this one included.
    pub fn failed(&self, key: &K, now: Instant) -> u32 {
        let Ok(mut map) = self.seen.lock() else {
            return 0;
        };
        if map.len() >= REMEMBERED {
            let window = self.window;
            map.retain(|_, (_, since)| now.saturating_duration_since(*since) < window);
            if map.len() >= REMEMBERED {
                map.clear();
            }
        }
        let entry = map.entry(key.clone()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= self.window {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.0
    }

    /// The most failures allowed within a window.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::disallowed_methods)] // a test needs some instant to start from
    fn a_key_waits_out_its_window_and_others_do_not() {
        let f = Failures::new(3, Duration::from_secs(60));
        let t = Instant::now();
        for n in 1..=3 {
            assert!(!f.too_many(&"a", t));
            assert_eq!(f.failed(&"a", t), n);
        }
        assert!(f.too_many(&"a", t + Duration::from_secs(59)));
        assert!(!f.too_many(&"b", t));
        assert!(!f.too_many(&"a", t + Duration::from_secs(60)));
        assert_eq!(
            f.failed(&"a", t + Duration::from_secs(61)),
            1,
            "a new window"
        );
    }
}
