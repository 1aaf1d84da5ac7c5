//! A bounded cache of upstream answers, honouring their TTLs, with negative caching.
//!
//! Answers are stored as the upstream sent them; policy is applied on every use, so one cached
//! answer serves every group correctly. Time is passed in, so tests need no clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::wire::{self, rcode, Response};

/// Longest time an answer is kept, whatever its TTL says.
const MAX_TTL: u32 = 86_400;
/// Negative answers without an SOA are kept this long.
const DEFAULT_NEGATIVE_TTL: u32 = 60;

/// What identifies a cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// Lower-case name (shared between the map and the eviction queue).
    pub name: Arc<str>,
    /// Query type.
    pub qtype: u16,
    /// Whether DNSSEC records were asked for.
    pub dnssec_ok: bool,
}

/// Sized to the byte: hundreds of thousands of these may be held.
#[derive(Debug, Clone)]
struct Entry {
    msg: Box<[u8]>,
    ttl_fields: Box<[u16]>,
    names: Box<[Box<str>]>,
    stored: Instant,
    expires: Instant,
}

/// A cached answer, aged to now.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The message with TTLs lowered by its age (the id is the caller's to set).
    pub msg: Vec<u8>,
    /// The names the answer leads to (CNAME targets), for the policy check.
    pub names: Vec<String>,
}

/// The cache.
#[derive(Debug)]
pub struct Cache {
    entries: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    capacity: usize,
    hits: u64,
    misses: u64,
}

impl Cache {
    /// A cache of at most `capacity` answers (0 disables caching).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
            hits: 0,
            misses: 0,
        }
    }

    /// A fresh answer, if there is one.
    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Hit> {
        let entry = match self.entries.get(key) {
            Some(e) if e.expires > now => e,
            Some(_) => {
                self.entries.remove(key);
                self.misses += 1;
                return None;
            }
            None => {
                self.misses += 1;
                return None;
            }
        };
        self.hits += 1;
        let mut msg = entry.msg.to_vec();
        let age = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let fields: Vec<usize> = entry.ttl_fields.iter().map(|&f| usize::from(f)).collect();
        wire::age_ttls(&mut msg, &fields, age);
        Some(Hit {
            msg,
            names: entry.names.iter().map(|n| n.to_string()).collect(),
        })
    }

    /// Stores an upstream answer for as long as it may be kept. SERVFAIL and truncated answers
    /// are not stored.
    pub fn put(&mut self, key: Key, msg: &[u8], resp: &Response, now: Instant) {
        // TTL offsets are kept in 16 bits: a UDP-sized answer always fits; a bigger one is not kept.
        if self.capacity == 0 || resp.truncated || msg.len() > usize::from(u16::MAX) {
            return;
        }
        let ttl = match resp.rcode {
            rcode::NOERROR if !resp.answers.is_empty() => resp.min_ttl().unwrap_or(0),
            // NODATA and NXDOMAIN: negative caching (RFC 2308).
            rcode::NOERROR | rcode::NXDOMAIN => resp.negative_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL),
            _ => return,
        }
        .min(MAX_TTL);
        if ttl == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.entries.remove(&old);
                }
                None => break,
            }
        }
        let names = resp
            .answers
            .iter()
            .filter_map(|r| r.cname.as_deref().map(Box::from))
            .collect();
        let ttl_fields = resp
            .ttl_fields
            .iter()
            .filter_map(|&f| u16::try_from(f).ok())
            .collect();
        if self
            .entries
            .insert(
                key.clone(),
                Entry {
                    msg: msg.into(),
                    ttl_fields,
                    names,
                    stored: now,
                    expires: now + Duration::from_secs(u64::from(ttl)),
                },
            )
            .is_none()
        {
            self.order.push_back(key);
        }
        // Expired entries leave their keys behind in the queue; drop those before it grows.
        if self.order.len() > 2 * self.capacity.max(16) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k));
        }
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{build_query, parse_query, parse_response, Reply};
    use std::net::Ipv4Addr;

    fn answer(name: &str, ttl: u32, rc: u8) -> (Vec<u8>, Response) {
        let q = parse_query(&build_query(1, name, 1).expect("q")).expect("q");
        let mut r = Reply::to(&q).rcode(rc);
        if rc == rcode::NOERROR {
            r = r.a(name, ttl, Ipv4Addr::new(192, 0, 2, 1));
        }
        let msg = r.build();
        let resp = parse_response(&msg).expect("r");
        (msg, resp)
    }

    fn key(name: &str) -> Key {
        Key {
            name: Arc::from(name),
            qtype: 1,
            dnssec_ok: false,
        }
    }

    #[test]
    fn ttls_are_honoured_and_aged() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        let (msg, resp) = answer("a.example", 100, rcode::NOERROR);
        c.put(key("a.example"), &msg, &resp, t0);
        let hit = c
            .get(&key("a.example"), t0 + Duration::from_secs(40))
            .expect("fresh");
        assert_eq!(parse_response(&hit.msg).expect("r").answers[0].ttl, 60);
        assert!(
            c.get(&key("a.example"), t0 + Duration::from_secs(100))
                .is_none(),
            "expired"
        );
        assert_eq!(c.stats(), (1, 1));
    }

    #[test]
    fn negative_answers_are_cached_and_servfail_is_not() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        let (msg, resp) = answer("gone.example", 0, rcode::NXDOMAIN);
        c.put(key("gone.example"), &msg, &resp, t0);
        assert!(c
            .get(&key("gone.example"), t0 + Duration::from_secs(59))
            .is_some());
        assert!(c
            .get(&key("gone.example"), t0 + Duration::from_secs(61))
            .is_none());
        let (msg, resp) = answer("broken.example", 0, rcode::SERVFAIL);
        c.put(key("broken.example"), &msg, &resp, t0);
        assert!(c.get(&key("broken.example"), t0).is_none());
    }

    #[test]
    fn the_eviction_queue_stays_bounded_as_entries_expire() {
        let mut c = Cache::new(4);
        let mut t = Instant::now();
        for i in 0..1000 {
            let name = format!("n{i}.example");
            let (msg, resp) = answer(&name, 1, rcode::NOERROR);
            c.put(key(&name), &msg, &resp, t);
            t += Duration::from_secs(2);
            assert!(c.get(&key(&name), t).is_none());
        }
        assert!(c.order.len() <= 2 * 16 + 1, "{}", c.order.len());
    }

    #[test]
    fn capacity_is_bounded() {
        let mut c = Cache::new(2);
        let t0 = Instant::now();
        for n in ["a.example", "b.example", "c.example"] {
            let (msg, resp) = answer(n, 100, rcode::NOERROR);
            c.put(key(n), &msg, &resp, t0);
        }
        assert!(c.get(&key("a.example"), t0).is_none(), "the oldest went");
        assert!(c.get(&key("c.example"), t0).is_some());
    }
}
