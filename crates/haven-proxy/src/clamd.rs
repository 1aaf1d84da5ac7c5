//! ClamAV's daemon over its socket: a download streamed to it with `INSTREAM` (each chunk its
//! length as four bytes, big-endian, then the bytes; a zero length ends it) and its one-line
//! verdict (`stream: OK`, `stream: NAME FOUND`, or `… ERROR`).

use std::path::PathBuf;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The longest verdict line read from clamd (a signature name is well under 200 bytes).
const REPLY_CAP: usize = 1024;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clamd {
    /// A unix socket (`LocalSocket` in clamd.conf; Debian's is `/run/clamav/clamd.ctl`).
    Unix(PathBuf),
    /// A TCP address (`TCPSocket`, `TCPAddr`): `host:port`.
    Tcp(String),
}

/// A `clamd` setting that is neither a path nor `host:port`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is neither a unix socket path nor host:port")]
pub struct BadAddress(pub String);

/// What clamd said of a download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// A signature matched: its name (`Eicar-Test-Signature`).
    Found(String),
}

/// Why clamd gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// clamd could not be reached, or the connection failed.
    #[error("ClamAV (clamd at {at}) could not be reached: {source}")]
    Io {
        /// Where.
        at: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// clamd answered with an error (`INSTREAM size limit exceeded. ERROR`) or something else.
    #[error("ClamAV (clamd at {at}) refused it: {reply}")]
    Refused {
        /// Where.
        at: String,
        /// Its answer, clipped.
        reply: String,
    },
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

impl Clamd {
    /// `/path/to/socket` (an absolute path) or `host:port`.
    pub fn parse(s: &str) -> Result<Clamd, BadAddress> {
        if s.starts_with('/') {
            return Ok(Clamd::Unix(PathBuf::from(s)));
        }
        match s.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
                Ok(Clamd::Tcp(s.to_owned()))
            }
            _ => Err(BadAddress(s.to_owned())),
        }
    }

    /// Where, for messages.
    pub fn at(&self) -> String {
        match self {
            Clamd::Unix(p) => p.display().to_string(),
            Clamd::Tcp(a) => a.clone(),
        }
    }

    /// Opens an `INSTREAM` scan.
    pub async fn begin(&self) -> Result<Scan, ScanError> {
        let failed = |source| ScanError::Io {
            at: self.at(),
            source,
        };
        let mut stream: Box<dyn Io> = match self {
            #[cfg(unix)]
            Clamd::Unix(p) => Box::new(tokio::net::UnixStream::connect(p).await.map_err(failed)?),
            #[cfg(not(unix))]
            Clamd::Unix(_) => {
                return Err(failed(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "unix sockets",
                )))
            }
            Clamd::Tcp(a) => Box::new(
                tokio::net::TcpStream::connect(a.as_str())
                    .await
                    .map_err(failed)?,
            ),
        };
        stream.write_all(b"zINSTREAM\0").await.map_err(failed)?;
        Ok(Scan {
            stream,
            at: self.at(),
        })
    }
}

/// A scan under way: the download's bytes go to clamd as they arrive.
pub struct Scan {
    stream: Box<dyn Io>,
    at: String,
}

impl std::fmt::Debug for Scan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan").field("at", &self.at).finish()
    }
}

impl Scan {
    fn failed(&self, source: std::io::Error) -> ScanError {
        ScanError::Io {
            at: self.at.clone(),
            source,
        }
    }

    /// Sends the next bytes of the download.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ScanError> {
        if data.is_empty() {
            return Ok(());
        }
        let len = u32::try_from(data.len()).map_err(|_| ScanError::Refused {
            at: self.at.clone(),
            reply: "a chunk over 4 GiB".to_owned(),
        })?;
        let sent = async {
            self.stream.write_all(&len.to_be_bytes()).await?;
            self.stream.write_all(data).await
        }
        .await;
        sent.map_err(|e| self.failed(e))
    }

    /// Ends the download and reads clamd's verdict.
    pub async fn verdict(mut self) -> Result<Verdict, ScanError> {
        if let Err(e) = self.stream.write_all(&0u32.to_be_bytes()).await {
            return Err(self.failed(e));
        }
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = match self.stream.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => return Err(self.failed(e)),
            };
            let chunk = buf.get(..n).unwrap_or_default();
            reply.extend_from_slice(chunk);
            if n == 0 || chunk.contains(&0) || reply.len() >= REPLY_CAP {
                break;
            }
        }
        parse_reply(&reply).ok_or_else(|| ScanError::Refused {
            at: self.at.clone(),
            reply: haven_core::textfile::clip(
                String::from_utf8_lossy(&reply)
                    .trim_end_matches('\0')
                    .trim(),
                100,
            )
            .into_owned(),
        })
    }
}

/// `stream: OK` or `stream: NAME FOUND` (up to the first NUL or new line).
fn parse_reply(reply: &[u8]) -> Option<Verdict> {
    let end = reply
        .iter()
        .position(|&b| b == 0 || b == b'\n')
        .unwrap_or(reply.len());
    let line = std::str::from_utf8(reply.get(..end)?).ok()?.trim();
    let rest = line.strip_prefix("stream:")?.trim();
    if rest == "OK" {
        return Some(Verdict::Clean);
    }
    let name = rest.strip_suffix(" FOUND")?.trim();
    (!name.is_empty()).then(|| Verdict::Found(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_verdicts_are_read() {
        assert_eq!(
            Clamd::parse("/run/clamav/clamd.ctl"),
            Ok(Clamd::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(
            Clamd::parse("10.0.0.5:3310"),
            Ok(Clamd::Tcp("10.0.0.5:3310".into()))
        );
        for bad in ["clamd", "host:", ":3310", "host:0", "host:x", ""] {
            assert!(Clamd::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_reply(b"stream: OK\0"), Some(Verdict::Clean));
        assert_eq!(
            parse_reply(b"stream: Eicar-Test-Signature.UNOFFICIAL FOUND\0"),
            Some(Verdict::Found("Eicar-Test-Signature.UNOFFICIAL".into()))
        );
        assert_eq!(parse_reply(b"INSTREAM size limit exceeded. ERROR\0"), None);
        assert_eq!(parse_reply(b""), None);
        assert_eq!(parse_reply(b"stream:  FOUND\0"), None);
    }
}
