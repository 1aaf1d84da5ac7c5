//! Upstream resolvers: plain DNS (UDP, with TCP when truncated) or DNS over TLS (RFC 7858).
//!
//! A TLS upstream is written `tls://ADDRESS[:PORT][#NAME]` (port 853 by default); its certificate
//! must be valid for NAME (or for the address when no name is given), checked against the
//! system's roots and an optional extra CA file. Connections are kept and reused.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// One upstream resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// Plain DNS on UDP and TCP.
    Plain(SocketAddr),
    /// DNS over TLS.
    Tls {
        /// Where it listens.
        addr: SocketAddr,
        /// The name its certificate must carry (the address when `None`).
        name: Option<String>,
    },
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Plain(a) => write!(f, "{a}"),
            Upstream::Tls {
                addr,
                name: Some(n),
            } => write!(f, "tls://{addr}#{n}"),
            Upstream::Tls { addr, name: None } => write!(f, "tls://{addr}"),
        }
    }
}

fn socket_addr(s: &str, default_port: u16) -> Option<SocketAddr> {
    s.parse::<SocketAddr>().ok().or_else(|| {
        s.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, default_port))
    })
}

impl Upstream {
    /// Parses `1.2.3.4`, `1.2.3.4:53`, `[::1]:53`, `::1`, or `tls://1.2.3.4[:853][#name]`.
    pub fn parse(s: &str) -> Option<Upstream> {
        match s.strip_prefix("tls://") {
            Some(rest) => {
                let (addr, name) = match rest.split_once('#') {
                    Some((a, n)) if !n.is_empty() => (a, Some(n.to_owned())),
                    Some(_) => return None,
                    None => (rest, None),
                };
                Some(Upstream::Tls {
                    addr: socket_addr(addr, 853)?,
                    name,
                })
            }
            None => socket_addr(s, 53).map(Upstream::Plain),
        }
    }
}

/// Connections kept per TLS upstream.
const POOL: usize = 8;

/// The TLS side of forwarding: one client configuration and a pool of open connections.
pub struct TlsClient {
    connector: tokio_rustls::TlsConnector,
    pool: Mutex<HashMap<SocketAddr, Vec<TlsStream<TcpStream>>>>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient").finish_non_exhaustive()
    }
}

impl TlsClient {
    /// A client trusting the system's roots and, when given, the certificates in `extra_ca`.
    pub fn new(extra_ca: Option<&Path>) -> Result<TlsClient, haven_tls::TlsError> {
        Ok(TlsClient {
            connector: tokio_rustls::TlsConnector::from(haven_tls::client_config(extra_ca)?),
            pool: Mutex::new(HashMap::new()),
        })
    }

    async fn connect(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
    ) -> io::Result<TlsStream<TcpStream>> {
        let server_name = match name {
            Some(n) => ServerName::try_from(n.to_owned())
                .map_err(|_| io::Error::other(format!("{n:?} is not a server name")))?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        self.connector.connect(server_name, tcp).await
    }

    /// Sends one query (unframed) and returns the answer, over a kept connection when there is
    /// one (and a fresh one if that has gone stale).
    pub async fn exchange(
        &self,
        addr: SocketAddr,
        name: Option<&str>,
        query: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        let kept = self
            .pool
            .lock()
            .ok()
            .and_then(|mut p| p.get_mut(&addr).and_then(Vec::pop));
        let answer = match kept {
            Some(mut conn) => match tokio::time::timeout(timeout, ask(&mut conn, query)).await {
                Ok(Ok(a)) => Some((a, conn)),
                // The server closed an idle connection: try once more on a new one.
                _ => None,
            },
            None => None,
        };
        let (answer, conn) = match answer {
            Some(x) => x,
            None => {
                let fresh = async {
                    let mut conn = self.connect(addr, name).await?;
                    let a = ask(&mut conn, query).await?;
                    Ok::<_, io::Error>((a, conn))
                };
                tokio::time::timeout(timeout, fresh).await.map_err(|_| {
                    io::Error::new(io::ErrorKind::TimedOut, "TLS upstream timed out")
                })??
            }
        };
        if let Ok(mut p) = self.pool.lock() {
            let kept = p.entry(addr).or_default();
            if kept.len() < POOL {
                kept.push(conn);
            }
        }
        Ok(answer)
    }
}

/// One framed exchange on a TLS stream.
async fn ask(conn: &mut TlsStream<TcpStream>, query: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(query.len()).map_err(|_| io::Error::other("query too long"))?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    conn.write_all(&framed).await?;
    conn.flush().await?;
    let mut len = [0u8; 2];
    conn.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    conn.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            Upstream::parse(input).map(|u| u.to_string()).as_deref(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn upstreams_parse() {
        check("9.9.9.9", Some("9.9.9.9:53"));
        check("[::1]:5300", Some("[::1]:5300"));
        check("::1", Some("[::1]:53"));
        check(
            "tls://1.1.1.1#cloudflare-dns.com",
            Some("tls://1.1.1.1:853#cloudflare-dns.com"),
        );
        check("tls://9.9.9.9:8853", Some("tls://9.9.9.9:8853"));
        check("tls://9.9.9.9#", None);
        check("resolver.example", None);
        check("tls://resolver.example", None);
    }
}
