//! `[proxy]` in `haven.toml`: the settings, their defaults, and the check that refuses a
//! setting which would switch a defence off.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[proxy]` in `haven.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Addresses to listen on.
    #[serde(default = "default_listen")]
    pub listen: Vec<String>,
    /// `host:port` that browsers should use for the proxy (in the PAC file); by default the
    /// name the PAC file was fetched by.
    #[serde(default)]
    pub public_address: Option<String>,
    /// Time allowed to connect to a website.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed for a website to start answering once asked.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_ms: u64,
    /// Browser connections open at once (tunnels and WebSockets included); more are closed
    /// straight away.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one client address may hold at once (an IPv6 client: its /64), so one
    /// device cannot take every slot; more from it are closed straight away.
    #[serde(default = "default_max_per_client")]
    pub max_connections_per_client: usize,
    /// Time a browser has to send a request's head: a new connection's first request, the next
    /// one on a kept connection, and the TLS ClientHello at the start of a CONNECT tunnel.
    #[serde(default = "default_header_timeout")]
    pub header_timeout_ms: u64,
    /// Longest pause inside a request body from a browser (a form to the proxy itself must
    /// arrive whole within it).
    #[serde(default = "default_body_timeout")]
    pub body_timeout_ms: u64,
    /// Ports CONNECT may tunnel to. A tunnel elsewhere, or one whose first bytes are not a TLS
    /// ClientHello naming a site the group may reach, is closed as a bypass attempt.
    #[serde(default = "default_connect_ports")]
    pub connect_ports: Vec<u16>,
    /// Whether block pages offer "request a review".
    #[serde(default = "yes")]
    pub reviews: bool,
    /// Largest page held for content scoring; larger ones pass unscored (and the event says so).
    #[serde(default = "default_score_cap")]
    pub score_cap_bytes: usize,
    /// Fixed addresses for host names, consulted before DNS (like a hosts file): a site the
    /// school hosts internally, say.
    #[serde(default)]
    pub hosts: std::collections::BTreeMap<String, IpAddr>,
    /// Extra CA certificates to trust for websites reached by decrypted requests (besides the
    /// system's roots): an internal site's own CA.
    #[serde(default)]
    pub origin_ca_file: Option<std::path::PathBuf>,
    /// Let requests reach this server's own loopback and unspecified addresses (off: the
    /// console and metrics on 127.0.0.1 are not for browsing through the proxy).
    #[serde(default)]
    pub allow_loopback: bool,
    /// Whether browsers sign in to the proxy with their Haven user name and password
    /// (`off`, `optional`, `required`).
    #[serde(default)]
    pub authenticate: crate::auth::Authenticate,
    /// ClamAV's daemon, for groups with `scan_downloads`: a unix socket path
    /// (`/run/clamav/clamd.ctl`) or `host:port`. Absent: downloads are not scanned.
    #[serde(default)]
    pub clamd: Option<String>,
    /// Largest download held for scanning; a larger one cannot be scanned and gets the group's
    /// `scan_unavailable` (clamd's own `StreamMaxLength` is 25 MiB by default).
    #[serde(default = "default_scan_cap")]
    pub scan_cap_bytes: usize,
    /// Time clamd has for one download, from connecting to its verdict (the download's own
    /// arrival included); past it the download gets the group's `scan_unavailable`.
    #[serde(default = "default_scan_timeout")]
    pub scan_timeout_ms: u64,
}

fn default_listen() -> Vec<String> {
    vec!["127.0.0.1:3128".to_owned()]
}
fn default_connect_timeout() -> u64 {
    10_000
}
fn default_read_timeout() -> u64 {
    30_000
}
fn yes() -> bool {
    true
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_per_client() -> usize {
    128
}
fn default_header_timeout() -> u64 {
    10_000
}
fn default_body_timeout() -> u64 {
    30_000
}
fn default_connect_ports() -> Vec<u16> {
    vec![443]
}
fn default_score_cap() -> usize {
    4 * 1024 * 1024
}
fn default_scan_cap() -> usize {
    25 * 1024 * 1024
}
fn default_scan_timeout() -> u64 {
    60_000
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            listen: default_listen(),
            public_address: None,
            connect_timeout_ms: default_connect_timeout(),
            read_timeout_ms: default_read_timeout(),
            reviews: true,
            max_connections: default_max_connections(),
            max_connections_per_client: default_max_per_client(),
            header_timeout_ms: default_header_timeout(),
            body_timeout_ms: default_body_timeout(),
            connect_ports: default_connect_ports(),
            score_cap_bytes: default_score_cap(),
            hosts: Default::default(),
            origin_ca_file: None,
            allow_loopback: false,
            authenticate: Default::default(),
            clamd: None,
            scan_cap_bytes: default_scan_cap(),
            scan_timeout_ms: default_scan_timeout(),
        }
    }
}

impl ProxyConfig {
    /// Refuses settings that would switch a defence off: a zero timeout or cap.
    pub fn check(&self) -> Result<(), ConfigError> {
        for (key, value) in [
            ("proxy.header_timeout_ms", self.header_timeout_ms),
            ("proxy.body_timeout_ms", self.body_timeout_ms),
            ("proxy.connect_timeout_ms", self.connect_timeout_ms),
            ("proxy.read_timeout_ms", self.read_timeout_ms),
            ("proxy.scan_timeout_ms", self.scan_timeout_ms),
            ("proxy.scan_cap_bytes", self.scan_cap_bytes as u64),
            ("proxy.max_connections", self.max_connections as u64),
            (
                "proxy.max_connections_per_client",
                self.max_connections_per_client as u64,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(key));
            }
        }
        if self.connect_ports.contains(&0) {
            return Err(ConfigError::PortZero);
        }
        // It is written into the PAC file's script.
        if let Some(a) = &self.public_address {
            let sound = !a.is_empty()
                && a.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b".-:[]".contains(&c));
            if !sound {
                return Err(ConfigError::PublicAddress(a.clone()));
            }
        }
        if let Some(c) = &self.clamd {
            crate::clamd::Clamd::parse(c).map_err(|_| ConfigError::Clamd(c.clone()))?;
        }
        Ok(())
    }

    pub(super) fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms.max(1))
    }

    pub(super) fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }
}

/// A `[proxy]` setting refused by [`ProxyConfig::check`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A timeout or cap set to 0, which would switch it off.
    #[error("{0} must be above 0")]
    Zero(&'static str),
    /// Port 0 in `connect_ports`.
    #[error("proxy.connect_ports: 0 is not a port")]
    PortZero,
    /// A `public_address` that is not `host:port` (it is written into the PAC file's script).
    #[error("proxy.public_address: {0:?} is not host:port")]
    PublicAddress(String),
    /// A `clamd` that is neither a socket path nor `host:port`.
    #[error(
        "proxy.clamd: {0:?} is neither a unix socket path (/run/clamav/clamd.ctl) nor host:port"
    )]
    Clamd(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_that_switch_a_defence_off_are_refused() {
        assert!(ProxyConfig::default().check().is_ok());
        let zero = |f: fn(&mut ProxyConfig)| {
            let mut c = ProxyConfig::default();
            f(&mut c);
            c.check().expect_err("refused").to_string()
        };
        assert!(zero(|c| c.header_timeout_ms = 0).contains("proxy.header_timeout_ms"));
        assert!(zero(|c| c.body_timeout_ms = 0).contains("proxy.body_timeout_ms"));
        assert!(
            zero(|c| c.max_connections_per_client = 0).contains("proxy.max_connections_per_client")
        );
        assert!(zero(|c| c.connect_ports = vec![443, 0]).contains("proxy.connect_ports"));
        assert!(
            zero(|c| c.public_address = Some("x\"+alert(1)+\":3128".into()))
                .contains("proxy.public_address")
        );
        assert!(zero(|c| c.scan_timeout_ms = 0).contains("proxy.scan_timeout_ms"));
        assert!(zero(|c| c.clamd = Some("clamd".into())).contains("proxy.clamd"));
    }
}
