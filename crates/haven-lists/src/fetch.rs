//! Downloads a list over http or https to a local file, following redirects, with a size cap.
//!
//! Uses the project's one HTTP stack (hyper) and one TLS stack (rustls with the ring provider);
//! server certificates are checked against the system's roots plus an optional extra CA file.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use haven_core::textfile::clip;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::progress::Progress;

/// Largest download accepted (a UT1 tarball is about 20 MB).
pub const MAX_DOWNLOAD: u64 = 2 << 30;
const TIMEOUT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;
/// How much of a URL an error quotes (a server's redirect may name a very long one).
const URL_QUOTED: usize = 200;

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
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
    /// The TLS handshake or certificate check failed.
    #[error("{}: TLS: {message}", clip(.url, URL_QUOTED))]
    Tls {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{}: server answered {status}", clip(.url, URL_QUOTED))]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// More than the redirect limit.
    #[error("{}: too many redirects", clip(.0, URL_QUOTED))]
    Redirects(String),
    /// Over [`MAX_DOWNLOAD`].
    #[error("{}: larger than the {MAX_DOWNLOAD}-byte limit", clip(.0, URL_QUOTED))]
    TooLarge(String),
    /// Did not finish in time.
    #[error("{}: timed out", clip(.0, URL_QUOTED))]
    Timeout(String),
    /// The extra CA file could not be read.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// Path given.
        path: String,
        /// What happened.
        message: String,
    },
    /// Writing the download failed.
    #[error("writing {path}")]
    Write {
        /// Destination.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
}

/// Whether a location is a URL this module fetches.
pub fn is_url(location: &str) -> bool {
    let l = location.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// Downloads `url` to `dest`, returning the number of bytes written.
pub fn fetch(
    url: &str,
    dest: &Path,
    extra_ca: Option<&Path>,
    progress: &mut Progress,
) -> Result<u64, FetchError> {
    let tls = tls_config(extra_ca)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Connection {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    rt.block_on(async {
        match tokio::time::timeout(TIMEOUT * 10, fetch_async(url, dest, tls, progress)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::Timeout(url.to_owned())),
        }
    })
}

fn tls_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    haven_tls::client_config(extra_ca).map_err(|e| match e {
        haven_tls::TlsError::CaFile { path, message } => FetchError::CaFile { path, message },
        other => FetchError::Tls {
            url: String::new(),
            message: other.to_string(),
        },
    })
}

async fn fetch_async(
    start: &str,
    dest: &Path,
    tls: Arc<rustls::ClientConfig>,
    progress: &mut Progress,
) -> Result<u64, FetchError> {
    let mut url = start.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let uri: Uri = url.parse().map_err(|_| FetchError::BadUrl(url.clone()))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::BadUrl(url)),
        };
        let host = uri
            .host()
            .ok_or_else(|| FetchError::BadUrl(url.clone()))?
            .to_owned();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let conn_err = |message: String| FetchError::Connection {
            url: url.clone(),
            message,
        };
        let tcp = tokio::time::timeout(
            TIMEOUT,
            TcpStream::connect((host.trim_matches(['[', ']']), port)),
        )
        .await
        .map_err(|_| FetchError::Timeout(url.clone()))?
        .map_err(|e| conn_err(e.to_string()))?;
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(
                hyper::header::USER_AGENT,
                concat!("haven/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| conn_err(e.to_string()))?;
        let response = if https {
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|_| FetchError::BadUrl(url.clone()))?;
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| FetchError::Tls {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
            send(TokioIo::new(stream), request)
                .await
                .map_err(conn_err)?
        } else {
            send(TokioIo::new(tcp), request).await.map_err(conn_err)?
        };
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(hyper::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| FetchError::Status {
                    url: url.clone(),
                    status: status.as_u16(),
                })?;
            url = resolve(&uri, location);
            continue;
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url,
                status: status.as_u16(),
            });
        }
        if let Some(len) = response
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        {
            if len > MAX_DOWNLOAD {
                return Err(FetchError::TooLarge(url));
            }
            progress.set_total(len);
        }
        let write_err = |source| FetchError::Write {
            path: dest.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::create(dest).await.map_err(write_err)?;
        let mut body = response.into_body();
        let mut written = 0u64;
        loop {
            let frame = tokio::time::timeout(TIMEOUT, body.frame())
                .await
                .map_err(|_| FetchError::Timeout(url.clone()))?;
            let Some(frame) = frame else { break };
            let frame = frame.map_err(|e| conn_err(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                written += data.len() as u64;
                if written > MAX_DOWNLOAD {
                    return Err(FetchError::TooLarge(url));
                }
                file.write_all(&data).await.map_err(write_err)?;
                progress.set_done(written);
            }
        }
        file.flush().await.map_err(write_err)?;
        return Ok(written);
    }
    Err(FetchError::Redirects(start.to_owned()))
}

async fn send<S>(
    io: TokioIo<S>,
    request: hyper::Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(TIMEOUT, sender.send_request(request))
        .await
        .map_err(|_| "timed out waiting for the response".to_owned())?
        .map_err(|e| e.to_string())
}

/// Resolves a redirect's Location against the URL that answered it.
fn resolve(base: &Uri, location: &str) -> String {
    if is_url(location) {
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
        assert!(is_url("HTTPS://x"));
        assert!(!is_url("/srv/lists"));
    }
}
