//! Downloads a list over http or https to a local file with `haven-notify`'s client: redirects
//! followed (at most 5), a deadline on each step and on the whole download, and a size cap.
//! Server certificates are checked against the system's roots plus an optional extra CA file
//! (`haven-tls`).

use std::path::Path;
use std::time::Duration;

use haven_notify::{Client, ClientError, Limits, Redirects};
use tokio::io::AsyncWriteExt;

use crate::progress::Progress;

/// Largest download accepted (a UT1 tarball is about 20 MB).
pub const MAX_DOWNLOAD: u64 = 2 << 30;
const STEP: Duration = Duration::from_secs(60);

/// A list download's bounds: a minute for each step (connecting, the handshake, the answer,
/// each wait for more of the body), ten for the whole download.
pub const LIMITS: Limits = Limits {
    connect: STEP,
    handshake: STEP,
    first_byte: STEP,
    idle: STEP,
    whole: Duration::from_secs(600),
    max_body: MAX_DOWNLOAD,
    redirects: Redirects::Follow { at_most: 5 },
};

/// Why a download failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The exchange failed: a bad URL, the connection, TLS, the server's answer, too many
    /// redirects, too large, or too slow.
    #[error(transparent)]
    Download(#[from] ClientError),
    /// The extra CA file could not be read.
    #[error("CA file {path}: {message}")]
    CaFile {
        /// Path given.
        path: String,
        /// What happened.
        message: String,
    },
    /// The TLS configuration could not be built.
    #[error("TLS: {0}")]
    Tls(String),
    /// No runtime to download on.
    #[error("{url}: {message}")]
    Runtime {
        /// The URL.
        url: String,
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
    let tls = haven_tls::client_config(extra_ca).map_err(|e| match e {
        haven_tls::TlsError::CaFile { path, message } => FetchError::CaFile { path, message },
        other => FetchError::Tls(other.to_string()),
    })?;
    let client = Client::new(Some(tls), LIMITS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| FetchError::Runtime {
            url: url.to_owned(),
            message: e.to_string(),
        })?;
    rt.block_on(fetch_async(&client, url, dest, progress))
}

async fn fetch_async(
    client: &Client,
    url: &str,
    dest: &Path,
    progress: &mut Progress,
) -> Result<u64, FetchError> {
    let mut response = client.get(url).await?.success()?;
    if let Some(len) = response.content_length() {
        progress.set_total(len);
    }
    let write_err = |source| FetchError::Write {
        path: dest.display().to_string(),
        source,
    };
    let mut file = tokio::fs::File::create(dest).await.map_err(write_err)?;
    let mut written = 0u64;
    while let Some(data) = response.chunk().await? {
        written += data.len() as u64;
        file.write_all(&data).await.map_err(write_err)?;
        progress.set_done(written);
    }
    file.flush().await.map_err(write_err)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_from_paths() {
        // (How redirects resolve is tested with the client, in haven-notify.)
        assert!(is_url("HTTPS://x"));
        assert!(!is_url("/srv/lists"));
    }
}
