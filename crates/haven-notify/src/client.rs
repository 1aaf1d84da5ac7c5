//! One outbound HTTP/1.1 client for everything Haven fetches or posts: hyper over a plain TCP
//! connection or rustls (the configuration from `haven-tls`, so a school's extra CA file is
//! trusted here as everywhere else).
//!
//! Every exchange is bounded ([`Limits`]): connecting, the TLS handshake, waiting for the
//! answer's head, each wait for more of the body, and the whole exchange (redirects and body
//! included) each have a deadline, and a body larger than the cap is refused — announced
//! (`Content-Length`) or as it arrives. Redirects are followed only when the caller's limits
//! say so; otherwise a 3xx is handed back like any other answer.

use std::sync::Arc;
use std::time::Duration;

use haven_core::textfile::clip;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// What Haven calls itself to the servers it reaches.
pub const USER_AGENT: &str = concat!("haven/", env!("CARGO_PKG_VERSION"));
/// How much of a URL an error quotes (a server's redirect may name a very long one).
const URL_QUOTED: usize = 200;

/// Whether the client follows redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// A 3xx answer is handed back as it is.
    Refuse,
    /// Followed (the same request, to the new location), at most this many times.
    Follow {
        /// Redirects followed before giving up.
        at_most: usize,
    },
}

/// The bounds on one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connecting (name lookup included).
    pub connect: Duration,
    /// The TLS handshake.
    pub handshake: Duration,
    /// From sending the request to the whole head of the answer.
    pub first_byte: Duration,
    /// Each wait for more of the body.
    pub idle: Duration,
    /// The whole exchange: every redirect, the answer and all of its body.
    pub whole: Duration,
    /// The largest body read, in bytes.
    pub max_body: u64,
    /// Whether redirects are followed.
    pub redirects: Redirects,
}

/// Which step ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stage {
    /// Connecting.
    Connect,
    /// The TLS handshake.
    Handshake,
    /// Waiting for the answer.
    FirstByte,
    /// Reading the body.
    Body,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connecting",
            Stage::Handshake => "in the TLS handshake",
            Stage::FirstByte => "waiting for the answer",
            Stage::Body => "reading the answer",
        })
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not an absolute http(s) URL.
    #[error("{}: not an http or https URL", clip(.0, URL_QUOTED))]
    BadUrl(String),
    /// Could not connect, or the connection broke.
    #[error("{}: {message}", clip(.url, URL_QUOTED))]
    Connection {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The TLS handshake or certificate check failed, or there is no TLS configuration.
    #[error("{}: TLS: {message}", clip(.url, URL_QUOTED))]
    Tls {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The server answered with a status the caller does not accept (or a redirect without a
    /// location).
    #[error("{}: server answered {status}", clip(.url, URL_QUOTED))]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// More redirects than the limit.
    #[error("{}: too many redirects", clip(.0, URL_QUOTED))]
    Redirects(String),
    /// A body over the cap.
    #[error("{}: larger than the {limit}-byte limit", clip(.url, URL_QUOTED))]
    TooLarge {
        /// The URL.
        url: String,
        /// The cap.
        limit: u64,
    },
    /// A step did not finish in time.
    #[error("{}: timed out {stage}", clip(.url, URL_QUOTED))]
    Timeout {
        /// The URL.
        url: String,
        /// Which step.
        stage: Stage,
    },
}

impl ClientError {
    /// What went wrong without the URL (for a URL that may hold a secret, as a webhook's may).
    pub fn reason(&self) -> String {
        match self {
            ClientError::BadUrl(_) => "not an http or https URL".to_owned(),
            ClientError::Connection { message, .. } => format!("connecting: {message}"),
            ClientError::Tls { message, .. } => format!("TLS: {message}"),
            ClientError::Status { status, .. } => format!("server answered {status}"),
            ClientError::Redirects(_) => "too many redirects".to_owned(),
            ClientError::TooLarge { limit, .. } => format!("larger than the {limit}-byte limit"),
            ClientError::Timeout { stage, .. } => format!("timed out {stage}"),
        }
    }
}

/// The client: a TLS configuration (none: https is refused) and the limits of every exchange.
#[derive(Clone)]
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    limits: Limits,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .finish()
    }
}

impl Client {
    /// A client with `tls` (from `haven_tls::client_config`; None when it could not be built,
    /// so that plain http still works) and `limits`.
    pub fn new(tls: Option<Arc<rustls::ClientConfig>>, limits: Limits) -> Client {
        Client { tls, limits }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// GETs `url`.
    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        self.request(Method::GET, url, None, Bytes::new()).await
    }

    /// POSTs `body` as `content_type` to `url`.
    pub async fn post(
        &self,
        url: &str,
        content_type: &'static str,
        body: impl Into<Bytes>,
    ) -> Result<Response, ClientError> {
        self.request(Method::POST, url, Some(content_type), body.into())
            .await
    }

    async fn request(
        &self,
        method: Method,
        start: &str,
        content_type: Option<&'static str>,
        body: Bytes,
    ) -> Result<Response, ClientError> {
        let deadline = Instant::now() + self.limits.whole;
        let follow = match self.limits.redirects {
            Redirects::Refuse => None,
            Redirects::Follow { at_most } => Some(at_most),
        };
        let mut url = start.to_owned();
        for _ in 0..=follow.unwrap_or(0) {
            let (uri, answer, conn) = self
                .exchange(&method, &url, content_type, &body, deadline)
                .await?;
            let status = answer.status();
            if status.is_redirection() && follow.is_some() {
                let location = answer
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| ClientError::Status {
                        url: url.clone(),
                        status: status.as_u16(),
                    })?;
                url = resolve(&uri, location);
                continue;
            }
            if let Some(len) = content_length(answer.headers()) {
                if len > self.limits.max_body {
                    return Err(ClientError::TooLarge {
                        url,
                        limit: self.limits.max_body,
                    });
                }
            }
            let (head, body) = answer.into_parts();
            return Ok(Response {
                url,
                status: head.status,
                headers: head.headers,
                body,
                deadline,
                idle: self.limits.idle,
                max_body: self.limits.max_body,
                read: 0,
                _conn: conn,
            });
        }
        Err(ClientError::Redirects(start.to_owned()))
    }

    /// One request and the head of its answer.
    async fn exchange(
        &self,
        method: &Method,
        url: &str,
        content_type: Option<&'static str>,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<(Uri, hyper::Response<Incoming>, Conn), ClientError> {
        let bad = || ClientError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad()),
        };
        let host = uri
            .host()
            .ok_or_else(bad)?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let conn_err = |message: String| ClientError::Connection {
            url: url.to_owned(),
            message,
        };
        let tcp = within(
            self.limits.connect,
            deadline,
            Stage::Connect,
            url,
            TcpStream::connect((host.as_str(), port)),
        )
        .await?
        .map_err(|e| conn_err(e.to_string()))?;
        let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
        let mut request = hyper::Request::builder()
            .method(method.clone())
            .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, USER_AGENT);
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| conn_err(e.to_string()))?;
        let (answer, conn) = if https {
            let tls = self.tls.clone().ok_or_else(|| ClientError::Tls {
                url: url.to_owned(),
                message: "TLS is not available".to_owned(),
            })?;
            let name = ServerName::try_from(host).map_err(|_| bad())?;
            let stream = within(
                self.limits.handshake,
                deadline,
                Stage::Handshake,
                url,
                tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
            )
            .await?
            .map_err(|e| ClientError::Tls {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
            self.send(TokioIo::new(stream), request, deadline, url)
                .await?
        } else {
            self.send(TokioIo::new(tcp), request, deadline, url).await?
        };
        Ok((uri, answer, conn))
    }

    async fn send<S>(
        &self,
        io: TokioIo<S>,
        request: hyper::Request<Full<Bytes>>,
        deadline: Instant,
        url: &str,
    ) -> Result<(hyper::Response<Incoming>, Conn), ClientError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let conn_err = |e: hyper::Error| ClientError::Connection {
            url: url.to_owned(),
            message: e.to_string(),
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(conn_err)?;
        let conn = Conn(
            tokio::spawn(async move {
                let _ = connection.await;
            })
            .abort_handle(),
        );
        let answer = within(
            self.limits.first_byte,
            deadline,
            Stage::FirstByte,
            url,
            sender.send_request(request),
        )
        .await?
        .map_err(conn_err)?;
        Ok((answer, conn))
    }
}

/// An answer: its status and headers, and its body read a chunk at a time within the limits.
#[derive(Debug)]
pub struct Response {
    url: String,
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
    deadline: Instant,
    idle: Duration,
    max_body: u64,
    read: u64,
    _conn: Conn,
}

impl Response {
    /// The URL that answered (after any redirects).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The length the server announced (never over the cap: a larger one was refused).
    pub fn content_length(&self) -> Option<u64> {
        content_length(&self.headers)
    }

    /// The answer, or [`ClientError::Status`] unless its status is 2xx.
    pub fn success(self) -> Result<Response, ClientError> {
        if self.status.is_success() {
            Ok(self)
        } else {
            Err(ClientError::Status {
                url: self.url,
                status: self.status.as_u16(),
            })
        }
    }

    /// The next piece of the body (None at its end); an error past the cap or a deadline.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let frame = within(
                self.idle,
                self.deadline,
                Stage::Body,
                &self.url,
                self.body.frame(),
            )
            .await?;
            let Some(frame) = frame else {
                return Ok(None);
            };
            let frame = frame.map_err(|e| ClientError::Connection {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
            if let Ok(data) = frame.into_data() {
                self.read += data.len() as u64;
                if self.read > self.max_body {
                    return Err(ClientError::TooLarge {
                        url: self.url.clone(),
                        limit: self.max_body,
                    });
                }
                return Ok(Some(data));
            }
        }
    }

    /// The whole body.
    pub async fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut all = Vec::new();
        while let Some(data) = self.chunk().await? {
            all.extend_from_slice(&data);
        }
        Ok(all)
    }
}

/// The connection's task, ended when the answer is dropped (a server still sending is cut off).
#[derive(Debug)]
struct Conn(tokio::task::AbortHandle);

impl Drop for Conn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `step`, given `limit` and never past `deadline`.
async fn within<T>(
    limit: Duration,
    deadline: Instant,
    stage: Stage,
    url: &str,
    step: impl std::future::Future<Output = T>,
) -> Result<T, ClientError> {
    let until = deadline.min(Instant::now() + limit);
    tokio::time::timeout_at(until, step)
        .await
        .map_err(|_| ClientError::Timeout {
            url: url.to_owned(),
            stage,
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
}

/// Resolves a redirect's Location against the URL that answered it.
fn resolve(base: &Uri, location: &str) -> String {
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return location.to_owned();
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map_or("", |a| a.as_str());
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve() {
        let base: Uri = "https://lists.example/a/b/list.tar.gz"
            .parse()
            .expect("uri");
        assert_eq!(resolve(&base, "/x.tgz"), "https://lists.example/x.tgz");
        assert_eq!(resolve(&base, "y.tgz"), "https://lists.example/a/b/y.tgz");
        assert_eq!(resolve(&base, "//cdn.example/z"), "https://cdn.example/z");
        assert_eq!(
            resolve(&base, "http://other.example/"),
            "http://other.example/"
        );
    }
}
