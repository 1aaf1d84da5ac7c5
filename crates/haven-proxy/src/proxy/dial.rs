//! Reaching a website: the address (`hosts` before DNS; never this server itself unless
//! `allow_loopback`), TCP within the connect timeout, then TLS with the certificate checked.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hyper::StatusCode;
use tokio::net::TcpStream;

use super::filter::Dest;
use super::Proxy;

/// Addresses that are this machine whatever it is called: loopback and unspecified.
fn is_own_host(ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    ip.is_loopback() || ip.is_unspecified()
}

/// A connection to a website, plain or TLS.
pub(super) trait OriginIo:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send
{
}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> OriginIo for T {}

/// Why a website could not be reached, in words for the error page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum Unreachable {
    /// It could not be found, refused, or did not prove who it is (502).
    #[error("{0}")]
    Failed(String),
    /// It did not answer in time (504).
    #[error("{0}")]
    TimedOut(String),
}

impl Unreachable {
    /// The status of the error page that says so.
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Unreachable::Failed(_) => StatusCode::BAD_GATEWAY,
            Unreachable::TimedOut(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl Proxy {
    /// Connects to a website, within the connect timeout.
    pub(super) async fn dial(&self, host: &str, port: u16) -> Result<TcpStream, Unreachable> {
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        let attempt = async {
            let addrs: Vec<SocketAddr> = match self.config.hosts.get(host) {
                Some(ip) => vec![SocketAddr::new(*ip, port)],
                None => tokio::net::lookup_host((host, port))
                    .await
                    .map_err(|e| Unreachable::Failed(format!("{host} could not be found: {e}")))?
                    .collect(),
            };
            let mut last = format!("{host} has no address");
            for addr in addrs {
                // The server's own services (the console, metrics) are not for pupils to
                // reach through the proxy; checked on the resolved address, so a name that
                // resolves to loopback is refused too.
                if !self.config.allow_loopback && is_own_host(addr.ip()) {
                    last = format!("{host} is this server itself, which the proxy does not reach");
                    continue;
                }
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(s);
                    }
                    Err(e) => last = format!("{host} ({addr}) refused the connection: {e}"),
                }
            }
            Err(Unreachable::Failed(last))
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Unreachable::TimedOut(format!(
                "{host} did not answer within {} s",
                limit.as_secs_f32()
            ))),
        }
    }

    /// Connects to a website for a request: TCP, then TLS with the certificate checked when
    /// `dest` is over TLS. A certificate that does not check out is an error page, never a
    /// silent pass.
    pub(super) async fn dial_origin(&self, dest: &Dest) -> Result<Box<dyn OriginIo>, Unreachable> {
        let host = dest.host.as_str();
        let tcp = self.dial(host, dest.port).await?;
        if !dest.tls {
            return Ok(Box::new(tcp));
        }
        let Some(config) = self.origin_tls.clone() else {
            return Err(Unreachable::Failed(
                "no TLS configuration for websites".to_owned(),
            ));
        };
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| Unreachable::Failed(format!("{host}: {e}")))?;
        let limit = Duration::from_millis(self.config.connect_timeout_ms);
        match tokio::time::timeout(
            limit,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        {
            Ok(Ok(s)) => Ok(Box::new(s)),
            Ok(Err(e)) => Err(Unreachable::Failed(format!(
                "{host} did not prove who it is, so the filter will not pass it on ({e})"
            ))),
            Err(_) => Err(Unreachable::TimedOut(format!(
                "{host} did not finish its TLS handshake in time"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_server_is_its_loopback_and_unspecified_addresses_however_written() {
        for own in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "::1",
            "::",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_own_host(own.parse().expect("ip")), "{own}");
        }
        for other in ["10.0.0.1", "192.0.2.7", "2001:db8::1", "::ffff:10.0.0.1"] {
            assert!(!is_own_host(other.parse().expect("ip")), "{other}");
        }
    }
}
