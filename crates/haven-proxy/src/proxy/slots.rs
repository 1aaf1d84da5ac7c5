//! The caps on browser connections: `max_connections` in all, and
//! `max_connections_per_client` for each client (an IPv6 client: its /64).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Connections held per client key, for `max_connections_per_client`.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// The key a client's connections are counted under: its IPv4 address, or its IPv6 /64 (a
/// device may take as many addresses in its /64 as it likes).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

/// One browser connection's hold on the proxy: a slot of `max_connections` and one of its
/// client's `max_connections_per_client`, given back when the connection, and any tunnel or
/// WebSocket it became, has ended.
pub(super) struct Slot {
    _global: tokio::sync::OwnedSemaphorePermit,
    key: IpAddr,
    per_client: Arc<PerClient>,
}

/// The connections every listener shares: `max_connections` in all, and
/// `max_connections_per_client` for each client key.
#[derive(Debug)]
pub(super) struct Slots {
    all: Arc<tokio::sync::Semaphore>,
    per_client: Arc<PerClient>,
    max_per_client: usize,
}

impl Slots {
    pub(super) fn new(max_connections: usize, max_per_client: usize) -> Slots {
        Slots {
            all: Arc::new(tokio::sync::Semaphore::new(max_connections.max(1))),
            per_client: Arc::default(),
            max_per_client: max_per_client.max(1),
        }
    }

    /// A slot for a new connection from `peer`, or None when either cap is reached.
    pub(super) fn take(&self, peer: IpAddr) -> Option<Slot> {
        let global = self.all.clone().try_acquire_owned().ok()?;
        let key = client_key(peer);
        let mut held = self.per_client.0.lock().ok()?;
        let n = held.entry(key).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        drop(held);
        Some(Slot {
            _global: global,
            key,
            per_client: self.per_client.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.per_client.0.lock() {
            if let Some(n) = held.get_mut(&self.key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    held.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        let mapped: IpAddr = "::ffff:10.0.0.5".parse().expect("ip");
        assert_eq!(
            client_key(mapped),
            "10.0.0.5".parse::<IpAddr>().expect("ip")
        );
    }

    #[test]
    fn a_client_holds_at_most_its_share_and_gets_it_back() {
        let slots = Slots::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let first = slots.take(a).expect("first");
        let second = slots.take(a).expect("second");
        assert!(
            slots.take(a).is_none(),
            "a third from one client is refused"
        );
        // The refusal gave back its global slot: another client still gets one.
        let other = slots.take(b).expect("another client");
        assert!(slots.take(b).is_none(), "every slot is taken");
        drop(first);
        let again = slots.take(a).expect("a slot given back is free again");
        drop((second, other, again));
        assert!(slots.per_client.0.lock().expect("lock").is_empty());
    }

    #[test]
    fn addresses_in_one_ipv6_64_share_a_share() {
        let slots = Slots::new(10, 1);
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        let _held = slots.take(a).expect("first");
        assert!(slots.take(b).is_none());
        assert!(slots.take(c).is_some());
    }
}
