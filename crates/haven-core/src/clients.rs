//! Who is asking: a client address to a group, by device table first, then the most specific
//! network, then the default group. Shared by the DNS filter and the proxy.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Deserialize;

/// A network of the school's (a subnet) and the group its devices belong to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkFile {
    /// `10.20.0.0/16`, `2001:db8::/48` or a single address.
    pub cidr: String,
    /// Group name in the policy.
    pub group: String,
    /// Site name (for a trust with several schools).
    #[serde(default)]
    pub site: Option<String>,
}

/// A known device.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceFile {
    /// What it is ("Year 5 laptop 12").
    pub name: String,
    /// Its address.
    pub address: String,
    /// Group name in the policy.
    pub group: String,
    /// Who it belongs to, if anyone.
    #[serde(default)]
    pub owner: Option<String>,
}

/// Why the map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Not an address or CIDR.
    #[error("{0:?} is not an IP address or CIDR network")]
    BadAddress(String),
    /// A group the policy does not have.
    #[error("{what}: group {group:?} is not in the policy")]
    UnknownGroup {
        /// The network or device.
        what: String,
        /// The group.
        group: String,
    },
}

/// Where a client was placed, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// A device in the table.
    Device(&'a str),
    /// A network.
    Network(&'a str),
    /// Nothing matched: the default group.
    Default,
}

#[derive(Debug, Clone)]
struct Network {
    addr: IpAddr,
    prefix: u8,
    group: String,
    label: String,
}

/// The client map, validated.
#[derive(Debug, Clone)]
pub struct ClientMap {
    /// Address → (group, name, owner).
    devices: HashMap<IpAddr, (String, String, Option<String>)>,
    networks: Vec<Network>,
    default_group: String,
}

/// Checks a network as written (`10.20.0.0/16`, `2001:db8::/48` or one address).
pub fn check_cidr(s: &str) -> Result<(), ClientError> {
    parse_cidr(s).map(|_| ())
}

fn parse_cidr(s: &str) -> Result<(IpAddr, u8), ClientError> {
    let bad = || ClientError::BadAddress(s.to_owned());
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (
            a.parse::<IpAddr>().map_err(|_| bad())?,
            p.parse::<u8>().map_err(|_| bad())?,
        ),
        None => {
            let a = s.parse::<IpAddr>().map_err(|_| bad())?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix > max {
        return Err(bad());
    }
    Ok((addr, prefix))
}

fn bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

fn contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    // An IPv4 client seen over IPv6 (::ffff:a.b.c.d) still matches its IPv4 network.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let ((n, nlen), (a, alen)) = (bits(net), bits(ip));
    if nlen != alen {
        return false;
    }
    if prefix == 0 {
        return true;
    }
    // IPv4 sits in the top 32 bits, so one mask serves both families.
    let mask = u128::MAX << (128 - u32::from(prefix));
    (n & mask) == (a & mask)
}

impl ClientMap {
    /// Validates networks and devices against the policy's groups.
    pub fn new(
        networks: &[NetworkFile],
        devices: &[DeviceFile],
        default_group: &str,
        group_exists: impl Fn(&str) -> bool,
    ) -> Result<ClientMap, ClientError> {
        let check = |what: String, group: &str| {
            if group_exists(group) {
                Ok(())
            } else {
                Err(ClientError::UnknownGroup {
                    what,
                    group: group.to_owned(),
                })
            }
        };
        check("default_group".to_owned(), default_group)?;
        let mut nets = Vec::new();
        for n in networks {
            let (addr, prefix) = parse_cidr(&n.cidr)?;
            check(format!("network {}", n.cidr), &n.group)?;
            nets.push(Network {
                addr,
                prefix,
                group: n.group.clone(),
                label: n
                    .site
                    .as_ref()
                    .map_or_else(|| n.cidr.clone(), |s| format!("{} ({s})", n.cidr)),
            });
        }
        // Most specific network first.
        nets.sort_by_key(|n| std::cmp::Reverse(n.prefix));
        let mut devs = HashMap::new();
        for d in devices {
            let addr = d
                .address
                .parse::<IpAddr>()
                .map_err(|_| ClientError::BadAddress(d.address.clone()))?;
            check(format!("device {:?}", d.name), &d.group)?;
            devs.insert(addr, (d.group.clone(), d.name.clone(), d.owner.clone()));
        }
        Ok(ClientMap {
            devices: devs,
            networks: nets,
            default_group: default_group.to_owned(),
        })
    }

    /// The user name of the person a device at this address belongs to, if the device table
    /// says (so that events from it say who, without a sign-in).
    pub fn owner(&self, ip: IpAddr) -> Option<&str> {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.devices.get(&canonical)?.2.as_deref()
    }

    /// The group of a client address, and why.
    pub fn place(&self, ip: IpAddr) -> (&str, Placement<'_>) {
        let canonical = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if let Some((group, name, _)) = self.devices.get(&canonical) {
            return (group, Placement::Device(name));
        }
        for n in &self.networks {
            if contains(n.addr, n.prefix, ip) {
                return (&n.group, Placement::Network(&n.label));
            }
        }
        (&self.default_group, Placement::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(cidr: &str, group: &str) -> NetworkFile {
        NetworkFile {
            cidr: cidr.into(),
            group: group.into(),
            site: None,
        }
    }

    #[test]
    fn most_specific_wins_and_unknown_falls_to_default() {
        let map = ClientMap::new(
            &[
                net("10.0.0.0/8", "staff"),
                net("10.20.0.0/16", "ks2"),
                net("2001:db8::/32", "guest"),
                net("127.0.0.2", "ks2"),
            ],
            &[DeviceFile {
                name: "Head's laptop".into(),
                address: "10.20.0.5".into(),
                group: "staff".into(),
                owner: None,
            }],
            "ks2",
            |g| ["ks2", "staff", "guest"].contains(&g),
        )
        .expect("valid");
        let group = |ip: &str| map.place(ip.parse().expect("ip")).0.to_owned();
        assert_eq!(group("10.1.2.3"), "staff");
        assert_eq!(group("10.20.9.9"), "ks2");
        assert_eq!(group("10.20.0.5"), "staff", "the device table wins");
        assert_eq!(group("::ffff:10.20.9.9"), "ks2", "mapped IPv4");
        assert_eq!(group("2001:db8:1::1"), "guest");
        assert_eq!(group("127.0.0.2"), "ks2");
        assert_eq!(group("192.168.1.1"), "ks2", "unknown: the default group");
        assert_eq!(
            map.place("192.168.1.1".parse().expect("ip")).1,
            Placement::Default
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        let ok = |g: &str| g == "ks2";
        assert!(matches!(
            ClientMap::new(&[net("10.0.0.0/33", "ks2")], &[], "ks2", ok),
            Err(ClientError::BadAddress(_))
        ));
        assert!(matches!(
            ClientMap::new(&[net("ten", "ks2")], &[], "ks2", ok),
            Err(ClientError::BadAddress(_))
        ));
        assert!(matches!(
            ClientMap::new(&[net("10.0.0.0/8", "ks9")], &[], "ks2", ok),
            Err(ClientError::UnknownGroup { .. })
        ));
        assert!(matches!(
            ClientMap::new(&[], &[], "nobody", ok),
            Err(ClientError::UnknownGroup { .. })
        ));
    }
}
