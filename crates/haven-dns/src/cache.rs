//! A bounded cache of upstream answers, honouring their TTLs, with negative caching.
//!
//! Answers are stored as the upstream sent them; policy is applied on every use, so one cached
//! answer serves every group correctly. Time is passed in, so tests need no clock.
//!
//! Hundreds of thousands of answers may be held, so they are packed into one ring of bytes
//! (the message, its TTL offsets and the CNAME targets it leads to), written in order and
//! overwritten oldest first: no allocation per answer, no fragmentation, and 24 bytes of index
//! each. Entries are found by a keyed 64-bit hash of the question, and every hit is checked
//! against the question stored in the message itself: a hash collision is a miss, never someone
//! else's answer.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::time::Instant;

use crate::wire::{self, rcode, Response};

/// Longest time an answer is kept, whatever its TTL says.
const MAX_TTL: u32 = 86_400;
/// Negative answers without an SOA are kept this long.
const DEFAULT_NEGATIVE_TTL: u32 = 60;
const HEADER: usize = 12;
/// Ring bytes allowed per entry of capacity: answers average well under this (a typical one is
/// 60 to 150 bytes), so the entry count is usually the bound that bites.
const BYTES_PER_ENTRY: usize = 256;

/// Where an answer is in the ring, and what it is.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Position in the ring's unbounded write sequence (the ring index is this modulo its size).
    at: u64,
    len: u16,
    msg_len: u16,
    ttls: u8,
    names: u8,
    dnssec_ok: bool,
    /// Seconds since the cache's epoch.
    stored: u32,
    expires: u32,
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
    entries: HashMap<u64, Slot>,
    /// (key, position) of every write, oldest first; a key rewritten since is skipped.
    order: VecDeque<(u64, u64)>,
    ring: Vec<u8>,
    /// The ring's size when full; it grows to this as answers arrive.
    ring_limit: usize,
    /// The next write position (in the unbounded sequence).
    head: u64,
    capacity: usize,
    epoch: Instant,
    keys: RandomState,
    hits: u64,
    misses: u64,
}

impl Cache {
    /// A cache of at most `capacity` answers (0 disables caching).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            ring: Vec::new(),
            ring_limit: capacity
                .saturating_mul(BYTES_PER_ENTRY)
                .min(u32::MAX as usize),
            head: 0,
            capacity,
            epoch: haven_runtime::clock::instant(),
            keys: RandomState::new(),
            hits: 0,
            misses: 0,
        }
    }

    /// The key of a question section (name in any case, type, class) and the DNSSEC-OK bit.
    fn key(&self, question: &[u8], dnssec_ok: bool) -> u64 {
        // A question is at most 259 bytes: lower-case it on the stack and hash it in one go.
        let mut lower = [0u8; 264];
        let n = question.len().min(lower.len() - 1);
        for (d, s) in lower.iter_mut().zip(&question[..n]) {
            *d = s.to_ascii_lowercase();
        }
        lower[n] = u8::from(dnssec_ok);
        let mut h = self.keys.build_hasher();
        h.write(&lower[..=n]);
        h.finish()
    }

    fn seconds(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    /// The bytes of a stored entry.
    fn data(&self, s: &Slot) -> &[u8] {
        let start = (s.at % self.ring_limit as u64) as usize;
        self.ring
            .get(start..start + usize::from(s.len))
            .unwrap_or_default()
    }

    /// A fresh answer to this question, if there is one.
    pub fn get(&mut self, question: &[u8], dnssec_ok: bool, now: Instant) -> Option<Hit> {
        let key = self.key(question, dnssec_ok);
        let now_s = self.seconds(now);
        let hit = self.entries.get(&key).copied().and_then(|s| {
            let data = self.data(&s);
            let msg = data.get(..usize::from(s.msg_len))?;
            let same = s.dnssec_ok == dnssec_ok
                && msg
                    .get(HEADER..HEADER + question.len())
                    .is_some_and(|q| q.eq_ignore_ascii_case(question));
            (same && s.expires > now_s).then(|| {
                let mut msg = msg.to_vec();
                let ttls = data
                    .get(msg.len()..msg.len() + 2 * usize::from(s.ttls))
                    .unwrap_or_default();
                let fields = ttls
                    .chunks_exact(2)
                    .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])));
                wire::age_ttls(&mut msg, fields, now_s.saturating_sub(s.stored));
                let names = names(
                    data.get(msg.len() + ttls.len()..).unwrap_or_default(),
                    s.names,
                );
                Hit { msg, names }
            })
        });
        match hit {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        hit
    }

    /// Stores an upstream answer to `question` for as long as it may be kept. SERVFAIL and
    /// truncated answers are not stored, nor anything too large or unusual to pack.
    pub fn put(
        &mut self,
        question: &[u8],
        dnssec_ok: bool,
        msg: &[u8],
        resp: &Response,
        now: Instant,
    ) {
        if self.capacity == 0 || resp.truncated {
            return;
        }
        let ttl = match resp.rcode {
            rcode::NOERROR if !resp.answers.is_empty() => resp.min_ttl().unwrap_or(0),
            // NODATA and NXDOMAIN: negative caching (RFC 2308).
            rcode::NOERROR | rcode::NXDOMAIN => resp.negative_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL),
            _ => return,
        }
        .min(MAX_TTL);
        let names: Vec<&str> = resp
            .answers
            .iter()
            .filter_map(|r| r.cname.as_deref())
            .collect();
        let len = msg.len()
            + 2 * resp.ttl_fields.len()
            + names.iter().map(|n| n.len() + 1).sum::<usize>();
        let (Ok(msg_len), Ok(ttls), Ok(n_names), Ok(len16)) = (
            u16::try_from(msg.len()),
            u8::try_from(resp.ttl_fields.len()),
            u8::try_from(names.len()),
            u16::try_from(len),
        ) else {
            return;
        };
        if ttl == 0 || names.iter().any(|n| n.len() > 255) || len > self.ring_limit {
            return;
        }
        // Where it goes: at the head, or at the ring's start when it would not fit before the end.
        let limit = self.ring_limit as u64;
        let mut at = self.head;
        if at % limit + len as u64 > limit {
            at = (at / limit + 1) * limit;
        }
        let end = at + len as u64;
        // Evict what those bytes held (anything written a full ring ago), and the oldest
        // answers while the count is at capacity.
        while let Some(&(k, pos)) = self.order.front() {
            let overwritten = pos + limit < end;
            if !overwritten && self.entries.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&k).is_some_and(|s| s.at == pos) {
                self.entries.remove(&k);
            }
        }
        let start = (at % limit) as usize;
        if self.ring.len() < start + len {
            self.ring.resize(start + len, 0);
        }
        let mut w = start;
        let mut put = |bytes: &[u8]| {
            self.ring[w..w + bytes.len()].copy_from_slice(bytes);
            w += bytes.len();
        };
        put(msg);
        for &f in &resp.ttl_fields {
            put(&u16::try_from(f).unwrap_or(0).to_le_bytes());
        }
        for n in &names {
            put(&[n.len() as u8]);
            put(n.as_bytes());
        }
        self.head = end;
        let key = self.key(question, dnssec_ok);
        let stored = self.seconds(now);
        self.entries.insert(
            key,
            Slot {
                at,
                len: len16,
                msg_len,
                ttls,
                names: n_names,
                dnssec_ok,
                stored,
                expires: stored.saturating_add(ttl),
            },
        );
        self.order.push_back((key, at));
    }

    /// Hits and misses so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Answers held, and the bytes of the ring holding them.
    pub fn size(&self) -> (usize, usize) {
        (self.entries.len(), self.ring.len())
    }
}

/// `count` length-prefixed names.
fn names(mut data: &[u8], count: u8) -> Vec<String> {
    let mut out = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let Some((&len, rest)) = data.split_first() else {
            break;
        };
        let Some(name) = rest.get(..usize::from(len)) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        data = &rest[usize::from(len)..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{build_query, parse_query, parse_response, Reply};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn question(name: &str) -> Vec<u8> {
        parse_query(&build_query(1, name, 1).expect("q"))
            .expect("q")
            .question
    }

    fn answer(name: &str, ttl: u32, rc: u8) -> (Vec<u8>, Response) {
        let q = parse_query(&build_query(1, name, 1).expect("q")).expect("q");
        let mut r = Reply::to(&q).rcode(rc);
        if rc == rcode::NOERROR {
            r = r.cname(name, ttl + 50, "target.example").a(
                "target.example",
                ttl,
                Ipv4Addr::new(192, 0, 2, 1),
            );
        }
        let msg = r.build();
        let resp = parse_response(&msg).expect("r");
        (msg, resp)
    }

    fn put(c: &mut Cache, name: &str, ttl: u32, rc: u8, now: Instant) {
        let (msg, resp) = answer(name, ttl, rc);
        c.put(&question(name), false, &msg, &resp, now);
    }

    #[test]
    fn ttls_are_honoured_and_aged() {
        let mut c = Cache::new(10);
        let t0 = haven_runtime::clock::instant();
        put(&mut c, "a.example", 100, rcode::NOERROR, t0);
        let hit = c
            .get(&question("a.example"), false, t0 + Duration::from_secs(40))
            .expect("fresh");
        let r = parse_response(&hit.msg).expect("r");
        assert_eq!((r.answers[0].ttl, r.answers[1].ttl), (110, 60));
        assert_eq!(hit.names, ["target.example"]);
        // Any letter case asks the same question; the DO bit does not.
        assert!(c.get(&question("A.Example"), false, t0).is_some());
        assert!(c.get(&question("a.example"), true, t0).is_none());
        assert!(
            c.get(&question("a.example"), false, t0 + Duration::from_secs(100))
                .is_none(),
            "expired"
        );
        assert_eq!(c.stats(), (2, 2));
    }

    #[test]
    fn negative_answers_are_cached_and_servfail_is_not() {
        let mut c = Cache::new(10);
        let t0 = haven_runtime::clock::instant();
        put(&mut c, "gone.example", 0, rcode::NXDOMAIN, t0);
        assert!(c
            .get(
                &question("gone.example"),
                false,
                t0 + Duration::from_secs(59)
            )
            .is_some());
        assert!(c
            .get(
                &question("gone.example"),
                false,
                t0 + Duration::from_secs(61)
            )
            .is_none());
        put(&mut c, "broken.example", 0, rcode::SERVFAIL, t0);
        assert!(c.get(&question("broken.example"), false, t0).is_none());
    }

    #[test]
    fn capacity_is_bounded() {
        let mut c = Cache::new(2);
        let t0 = haven_runtime::clock::instant();
        for n in ["a.example", "b.example", "c.example"] {
            put(&mut c, n, 100, rcode::NOERROR, t0);
        }
        assert!(
            c.get(&question("a.example"), false, t0).is_none(),
            "the oldest went"
        );
        assert!(c.get(&question("c.example"), false, t0).is_some());
    }

    #[test]
    fn the_eviction_queue_stays_bounded_as_entries_are_replaced() {
        let mut c = Cache::new(4);
        let t0 = haven_runtime::clock::instant();
        for i in 0..1000 {
            put(
                &mut c,
                &format!("n{}.example", i % 7),
                1,
                rcode::NOERROR,
                t0 + Duration::from_secs(i),
            );
        }
        assert!(c.order.len() <= 2 * 16 + 1, "{}", c.order.len());
        assert!(c.entries.len() <= 4);
    }

    #[test]
    fn the_ring_wraps_and_never_returns_overwritten_bytes() {
        // 8 entries of capacity: a 2 KiB ring, and answers of 60 to 200 bytes that wrap it
        // again and again. Every hit must be exactly the answer last stored for that name.
        let mut c = Cache::new(8);
        let t0 = haven_runtime::clock::instant();
        let mut latest: HashMap<String, Vec<u8>> = HashMap::new();
        let mut newest = String::new();
        for i in 0..2000u32 {
            // 97 names, each rewritten again and again with a new TTL.
            let j = i % 97;
            let name = format!(
                "{}.{}.n{j}.example",
                "x".repeat(1 + (j * 7 % 60) as usize),
                "y".repeat(1 + (j * 3 % 60) as usize),
            );
            let (msg, resp) = answer(&name, 100 + i % 50, rcode::NOERROR);
            c.put(&question(&name), false, &msg, &resp, t0);
            latest.insert(name.clone(), msg);
            newest = name;
            assert!(c.ring.len() <= c.ring_limit);
            for (n, want) in &latest {
                if let Some(hit) = c.get(&question(n), false, t0) {
                    assert_eq!(&hit.msg, want, "{n} after write {i}");
                    assert_eq!(hit.names, ["target.example"]);
                }
            }
        }
        assert!(c.entries.len() <= 8);
        assert!(
            c.get(&question(&newest), false, t0).is_some(),
            "the newest is kept"
        );
        assert!(c.order.len() <= c.ring_limit / 40);
    }

    #[test]
    fn a_hash_collision_is_a_miss_not_another_answer() {
        let mut c = Cache::new(10);
        let t0 = haven_runtime::clock::instant();
        put(&mut c, "a.example", 100, rcode::NOERROR, t0);
        // Force another question onto a.example's key: the stored question does not match.
        let key = c.key(&question("a.example"), false);
        let entry = c.entries.remove(&key).expect("entry");
        let other = c.key(&question("b.example"), false);
        c.entries.insert(other, entry);
        assert!(c.get(&question("b.example"), false, t0).is_none());
    }
}
