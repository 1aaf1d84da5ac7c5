//! CONNECT: a tunnel only to `connect_ports`, decided on its host, then on the TLS
//! ClientHello that must open it; a tunnel the filter cannot check is a bypass attempt. For the
//! groups the policy says, the tunnel is decrypted (interception) and each request inside is
//! filtered as plain HTTP is.

use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use haven_core::policy::Action;
use haven_core::{Engine, Target};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::body::{empty, page_response, Body};
use super::decide::{bare_host, Asked, Outcome, Refused, Who};
use super::filter::Dest;
use super::{Conn, Proxy};
use crate::clock;
use crate::metrics::Metrics;
use crate::page;
use crate::sni::{self, Hello};

/// The filter category a tunnel the filter cannot check is recorded in (monitoring makes a
/// blocked attempt in it a bypass capture).
const BYPASS_CATEGORY: &str = "vpn-proxy";
/// The most the start of a tunnel may take before it must have been a whole ClientHello: the
/// largest ClientHello and its record headers.
const HELLO_CAP: usize = sni::MAX_HELLO + 1024;

/// A tunnel a browser asked for.
#[derive(Debug, Clone)]
struct Tunnel {
    /// The host as CONNECT named it (an IPv6 literal without brackets, lower case).
    host: String,
    port: u16,
    /// The address its events record.
    url: String,
}

impl Tunnel {
    fn new(host: String, port: u16) -> Tunnel {
        let url = if port == 443 {
            format!("https://{host}/")
        } else if host.contains(':') {
            format!("https://[{host}]:{port}/")
        } else {
            format!("https://{host}:{port}/")
        };
        Tunnel { host, port, url }
    }
}

/// What the start of a tunnel allows.
#[derive(Debug, PartialEq, Eq)]
enum Opening {
    /// Through, to the site the ClientHello named, if it named one.
    Pass(Option<String>),
    /// Refused, recorded against `url`.
    Refused { refused: Refused, url: String },
    /// Closed, or quiet, before sending anything: nothing reached the website, and there is
    /// nothing to record.
    Nothing,
}

impl Proxy {
    /// CONNECT: only to `connect_ports`; decided on the host (an address as itself), then on
    /// the first bytes through the tunnel, which must be a TLS ClientHello naming the host (or,
    /// through a tunnel to an address, a site the group may reach). A tunnel the filter cannot
    /// check is a bypass attempt: closed, and recorded in the category `vpn-proxy`, which
    /// monitoring makes a bypass capture.
    pub(super) async fn connect(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        conn: Arc<Conn>,
        who: Who,
        started: Instant,
    ) -> Response<Body> {
        let engine = self.engine.current();
        let school = self.school(&engine);
        let Some(authority) = req.uri().authority().cloned() else {
            return page_response(
                StatusCode::BAD_REQUEST,
                page::error(school, "Bad request", "CONNECT needs host:port."),
            );
        };
        let tunnel = Tunnel::new(
            bare_host(authority.host()),
            authority.port_u16().unwrap_or(443),
        );
        if let Err(refused) = self.decide_tunnel(&engine, &who.group, &tunnel) {
            let reason = self.refuse(&who, &tunnel.url, refused, started);
            let mut resp = page_response(
                StatusCode::FORBIDDEN,
                page::error(school, "Blocked by the school's filter", &reason),
            );
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return resp;
        }
        let origin = match self.dial(&tunnel.host, tunnel.port).await {
            Ok(s) => s,
            Err(e) => return self.failed(school, e.status(), &e.to_string()),
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        Metrics::add(&self.metrics.tunnels);
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            self.tunnel(TokioIo::new(upgraded), origin, tunnel, conn, who, started)
                .await;
        });
        Response::new(empty())
    }

    /// The decision on a tunnel before it opens: its port, then its host (an address as
    /// itself).
    fn decide_tunnel(&self, engine: &Engine, group: &str, tunnel: &Tunnel) -> Result<(), Refused> {
        let port = tunnel.port;
        if !self.config.connect_ports.contains(&port) {
            return Err(Refused::Bypass(format!(
                "CONNECT to port {port}, which is not in proxy.connect_ports"
            )));
        }
        match tunnel.host.parse::<IpAddr>() {
            Ok(ip) => self.decide_address(engine, group, ip),
            Err(_) => self.decide_host(engine, group, &tunnel.host),
        }
    }

    /// An open tunnel: nothing passes until its start is a ClientHello the policy allows; then
    /// it is spliced to the website, or decrypted.
    async fn tunnel(
        self: Arc<Self>,
        mut client: TokioIo<hyper::upgrade::Upgraded>,
        mut origin: tokio::net::TcpStream,
        tunnel: Tunnel,
        conn: Arc<Conn>,
        who: Who,
        started: Instant,
    ) {
        let (first, hello) = self.read_hello(&mut client).await;
        let engine = self.engine.current();
        let to = origin.peer_addr().ok().map(|a| a.ip());
        let sent = !first.is_empty();
        let sni = match self.opening(&engine, &who.group, &tunnel, hello, sent, to) {
            Opening::Pass(sni) => sni,
            Opening::Refused { refused, url } => {
                self.refuse(&who, &url, refused, started);
                return;
            }
            Opening::Nothing => return,
        };
        // Decrypt when the group's policy says so and the site is not on the never list.
        let name = sni.unwrap_or_else(|| tunnel.host.clone());
        if let Some(ca) = self.ca.clone() {
            let intercepts = engine
                .group_id(&who.group)
                .is_some_and(|g| Target::parse(&name).is_ok_and(|t| engine.intercepts(&t, g)));
            if intercepts {
                drop(origin);
                let site = Dest {
                    host: name,
                    port: tunnel.port,
                    tls: true,
                };
                self.intercept(ca, first, client, site, conn, who).await;
                return;
            }
        }
        let asked = Asked {
            who: &who,
            url: &tunnel.url,
            search: None,
            started,
        };
        let allowed = Outcome {
            action: Action::Allow,
            category: None,
            reason: None,
        };
        self.emit(&asked, allowed);
        if origin.write_all(&first).await.is_err() {
            return;
        }
        // The tunnel keeps the browser connection's slot while it lasts.
        let _conn = conn;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut origin).await;
    }

    /// The decision on the start of a tunnel (`hello`; `sent`: whether any bytes came) going
    /// to the address `to`. A ClientHello must name the tunnel's host; through a tunnel to an
    /// address, it must name a site the group may reach, or, naming none, the address must
    /// be one the group may reach.
    fn opening(
        &self,
        engine: &Engine,
        group: &str,
        tunnel: &Tunnel,
        hello: Hello,
        sent: bool,
        to: Option<IpAddr>,
    ) -> Opening {
        let Tunnel { host, port, url } = tunnel;
        let refused = |refused| Opening::Refused {
            refused,
            url: url.clone(),
        };
        match hello {
            // Closed or silent before a whole ClientHello: nothing reached the website. Only
            // bytes that were something else are an attempt (a browser's unused
            // pre-connection sends nothing).
            Hello::Incomplete if !sent => Opening::Nothing,
            Hello::Incomplete => refused(Refused::Bypass(format!(
                "the tunnel to {host}:{port} did not finish a TLS ClientHello in time"
            ))),
            Hello::NotTls => refused(Refused::Bypass(format!(
                "the tunnel to {host}:{port} did not start with TLS"
            ))),
            // No name: decided as the address the tunnel goes to.
            Hello::NoSni => {
                let Some(to) = to else {
                    return Opening::Nothing;
                };
                match self.decide_address(engine, group, to) {
                    Ok(()) => Opening::Pass(None),
                    Err(Refused::Bypass(why)) => refused(Refused::Bypass(format!(
                        "a TLS ClientHello naming no site, to {host}: {why}"
                    ))),
                    Err(r) => refused(r),
                }
            }
            // To an address (allowed already): the name must be allowed too.
            Hello::Sni(name) if host.parse::<IpAddr>().is_ok() => {
                match self.decide_host(engine, group, &name) {
                    Ok(()) => Opening::Pass(Some(name)),
                    Err(refused) => Opening::Refused {
                        refused,
                        url: format!("https://{name}/"),
                    },
                }
            }
            Hello::Sni(name) if name != *host => refused(Refused::Bypass(format!(
                "the TLS server name {name} does not match the CONNECT host {host}"
            ))),
            Hello::Sni(name) => Opening::Pass(Some(name)),
        }
    }

    /// The start of a tunnel: bytes until they make a whole ClientHello, or plainly are not
    /// one, within the header timeout and the size of the largest ClientHello (records
    /// included). `Incomplete`: the browser closed, or went quiet, first.
    async fn read_hello<T: tokio::io::AsyncRead + Unpin>(
        &self,
        client: &mut T,
    ) -> (Vec<u8>, Hello) {
        let deadline = tokio::time::Instant::now() + self.config.header_timeout();
        let mut first = Vec::with_capacity(2048);
        let mut buf = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, client.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return (first, Hello::Incomplete),
                Err(_) => {
                    Metrics::add(&self.metrics.client_timeouts);
                    return (first, Hello::Incomplete);
                }
                Ok(Ok(n)) => first.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
            match sni::parse(&first) {
                Hello::Incomplete if first.len() < HELLO_CAP => continue,
                Hello::Incomplete => return (first, Hello::NotTls),
                h => return (first, h),
            }
        }
    }

    /// Records a refused tunnel (a bypass attempt is counted, and recorded in the category
    /// `vpn-proxy` so monitoring makes it a bypass capture); its reason.
    fn refuse(&self, who: &Who, url: &str, refused: Refused, started: Instant) -> String {
        let (category, reason) = match refused {
            Refused::Blocked(category, reason) => (category, reason),
            Refused::Bypass(why) => {
                Metrics::add(&self.metrics.bypass);
                self.metrics.blocked(Some(BYPASS_CATEGORY));
                (
                    Some(BYPASS_CATEGORY.to_owned()),
                    format!("bypass attempt: {why}"),
                )
            }
        };
        let asked = Asked {
            who,
            url,
            search: None,
            started,
        };
        self.emit(&asked, Outcome::blocked(category.as_deref(), &reason));
        reason
    }

    /// Decrypts a tunnel to `site`: the browser gets a certificate for its name minted by the
    /// school's CA, and each request inside is filtered as plain HTTP is.
    async fn intercept(
        self: Arc<Self>,
        ca: Arc<crate::ca::SchoolCa>,
        first: Vec<u8>,
        client: TokioIo<hyper::upgrade::Upgraded>,
        site: Dest,
        conn: Arc<Conn>,
        who: Who,
    ) {
        let Dest {
            host: name, port, ..
        } = site;
        let Ok(key) = ca.certified_key(&name) else {
            return;
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let Ok(builder) = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
        else {
            return;
        };
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(FixedCert(key)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        // The browser has the header timeout to finish its handshake.
        let handshake = acceptor.accept(Replay::new(first, client));
        let Ok(Ok(tls)) = tokio::time::timeout(self.config.header_timeout(), handshake).await
        else {
            return;
        };
        Metrics::add(&self.metrics.intercepted);
        let authority = if port == 443 {
            name.clone()
        } else {
            format!("{name}:{port}")
        };
        let me = self.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let me = me.clone();
            let authority = authority.clone();
            let name = name.clone();
            let who = who.clone();
            let conn = conn.clone();
            async move {
                let started = clock::instant();
                let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
                let url = format!("https://{authority}{pq}");
                let dest = Dest {
                    host: name,
                    port,
                    tls: true,
                };
                Ok::<_, Infallible>(me.filtered(req, url, dest, &conn, &who, started).await)
            }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(self.config.header_timeout())
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades()
            .await;
        if served.is_err_and(|e| e.is_timeout()) {
            Metrics::add(&self.metrics.client_timeouts);
        }
    }
}

/// Always the one certificate minted for the site being decrypted.
#[derive(Debug)]
struct FixedCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A stream that first gives back bytes already read from it (the ClientHello the proxy
/// inspected), then reads on.
struct Replay<T> {
    first: Vec<u8>,
    at: usize,
    inner: T,
}

impl<T> Replay<T> {
    fn new(first: Vec<u8>, inner: T) -> Self {
        Replay {
            first,
            at: 0,
            inner,
        }
    }
}

impl<T: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Replay<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.at);
            buf.put_slice(&this.first[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<T: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Replay<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyConfig;
    use haven_core::clients::ClientMap;
    use haven_core::policy::DEFAULT_POLICY;
    use haven_core::snapshot::{EntryKind, SnapshotBuilder};
    use haven_core::{Policy, Snapshot};
    use haven_runtime::LiveEngine;

    /// A proxy with the shipped policy, `casino.example` listed as gambling, every client in
    /// ks2.
    fn proxy() -> Proxy {
        let mut b = SnapshotBuilder::new();
        let s = b.add_source("t", "gambling").expect("source");
        b.add(s, EntryKind::Domain, "casino.example")
            .expect("entry");
        let snapshot = Snapshot::from_bytes(b.build(0)).expect("snapshot");
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        let engine = Engine::new(Arc::new(snapshot), Arc::new(policy), "test").expect("engine");
        let clients = ClientMap::new(&[], &[], "ks2", |_| true).expect("clients");
        Proxy::new(
            ProxyConfig::default(),
            Arc::new(LiveEngine::new(engine)),
            Arc::new(clients),
            || jiff::civil::date(2026, 11, 23).at(10, 0, 0, 0),
            vec![],
        )
    }

    fn bypass(r: Result<(), Refused>) -> String {
        match r {
            Err(Refused::Bypass(why)) => why,
            other => panic!("not a bypass attempt: {other:?}"),
        }
    }

    #[test]
    fn a_tunnel_is_recorded_as_the_address_it_names() {
        assert_eq!(
            Tunnel::new("a.example".into(), 443).url,
            "https://a.example/"
        );
        assert_eq!(
            Tunnel::new("a.example".into(), 8443).url,
            "https://a.example:8443/"
        );
        assert_eq!(
            Tunnel::new("2001:db8::1".into(), 8443).url,
            "https://[2001:db8::1]:8443/"
        );
    }

    #[test]
    fn a_tunnel_is_decided_on_its_port_then_its_host() {
        let p = proxy();
        let engine = p.engine.current();
        let decide =
            |host: &str, port| p.decide_tunnel(&engine, "ks2", &Tunnel::new(host.into(), port));
        assert!(decide("www.example.org", 443).is_ok());
        assert!(bypass(decide("www.example.org", 22)).contains("port 22"));
        match decide("casino.example", 443) {
            Err(Refused::Blocked(Some(category), reason)) => {
                assert_eq!(category, "gambling");
                assert!(reason.contains("gambling"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        // ks2 does not tunnel to bare addresses: the filter cannot tell which site it is.
        assert!(bypass(decide("203.0.113.7", 443)).contains("address_tunnels"));
        assert!(matches!(
            p.decide_tunnel(
                &engine,
                "nobody",
                &Tunnel::new("www.example.org".into(), 443)
            ),
            Err(Refused::Blocked(None, _))
        ));
    }

    #[test]
    fn a_tunnel_opens_only_with_a_client_hello_naming_its_host() {
        let p = proxy();
        let engine = p.engine.current();
        let to: Option<IpAddr> = Some("192.0.2.1".parse().expect("ip"));
        let site = Tunnel::new("www.example.org".into(), 443);
        let open =
            |tunnel: &Tunnel, hello, sent| p.opening(&engine, "ks2", tunnel, hello, sent, to);
        assert_eq!(
            open(&site, Hello::Sni("www.example.org".into()), true),
            Opening::Pass(Some("www.example.org".into()))
        );
        let refused_bypass = |o: Opening| match o {
            Opening::Refused {
                refused: Refused::Bypass(why),
                url,
            } => {
                assert_eq!(url, "https://www.example.org/");
                why
            }
            other => panic!("{other:?}"),
        };
        let other = open(&site, Hello::Sni("casino.example".into()), true);
        assert!(refused_bypass(other).contains("does not match"));
        assert!(refused_bypass(open(&site, Hello::NotTls, true)).contains("did not start with TLS"));
        assert!(refused_bypass(open(&site, Hello::Incomplete, true)).contains("in time"));
        // A browser's unused pre-connection sends nothing: nothing to record.
        assert_eq!(open(&site, Hello::Incomplete, false), Opening::Nothing);
        let no_name = refused_bypass(open(&site, Hello::NoSni, true));
        assert!(no_name.contains("naming no site"), "{no_name}");
    }

    #[test]
    fn through_a_tunnel_to_an_address_the_named_site_is_decided() {
        let p = proxy();
        let engine = p.engine.current();
        let to: Option<IpAddr> = Some("203.0.113.7".parse().expect("ip"));
        let address = Tunnel::new("203.0.113.7".into(), 443);
        assert_eq!(
            p.opening(
                &engine,
                "ks2",
                &address,
                Hello::Sni("www.example.org".into()),
                true,
                to
            ),
            Opening::Pass(Some("www.example.org".into()))
        );
        match p.opening(
            &engine,
            "ks2",
            &address,
            Hello::Sni("casino.example".into()),
            true,
            to,
        ) {
            Opening::Refused {
                refused: Refused::Blocked(Some(category), _),
                url,
            } => {
                assert_eq!(category, "gambling");
                assert_eq!(url, "https://casino.example/");
            }
            other => panic!("{other:?}"),
        }
    }
}
