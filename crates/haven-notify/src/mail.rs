//! Mail through `lettre`: SMTP in plain, with STARTTLS or over TLS from the start, signing in
//! with AUTH PLAIN when given credentials; rustls (ring) checks the server's certificate against
//! the roots `haven-tls` trusts (the system's and the school's extra CA file). `lettre` does the
//! protocol (multi-line replies, dot-stuffing) and the message (encoded headers, the date).

use std::time::Duration;

use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue, MIME_VERSION_1_0,
};
use lettre::message::{Body, Mailbox};
use lettre::transport::smtp::authentication::{Credentials as SmtpCredentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};
use rustls::pki_types::CertificateDer;

/// How long each step of a conversation with the mail server may take (connecting, each reply).
const STEP: Duration = Duration::from_secs(60);

/// How the mail server is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP (a relay on the school's network or this machine).
    Plain,
    /// Plain, then upgraded with STARTTLS (which the server must offer).
    Starttls,
    /// TLS from the start.
    Tls,
}

/// A user name and password to sign in with.
#[derive(Clone)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"…")
            .finish()
    }
}

/// The mail server and how to talk to it.
#[derive(Debug, Clone)]
pub struct MailServer {
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Plain, STARTTLS or TLS.
    pub security: Security,
    /// Signed in with these, when given.
    pub credentials: Option<Credentials>,
    /// The name given in EHLO.
    pub hello: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// An address the message cannot carry.
    #[error("{0:?} is not an address Haven can send to")]
    Address(String),
    /// The message could not be put together.
    #[error("the message: {0}")]
    Message(String),
    /// TLS is asked for but cannot be set up (no roots, or a name that cannot be checked).
    #[error("TLS with the mail server: {0}")]
    Tls(String),
    /// The conversation with the mail server failed.
    #[error("the mail server: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
}

/// One message: plain UTF-8 text from Haven, marked as sent automatically.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The sender's display name.
    pub from_name: String,
    /// The sender's address.
    pub from: String,
    /// The one recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Text (lines end in CRLF or LF).
    pub body: String,
    /// The Message-ID, without angle brackets.
    pub message_id: String,
}

/// Sends mail to one server; each message on a connection of its own.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for `server`, trusting `roots` (from `haven_tls::root_certificates`; None when
    /// they could not be read, so that only plain SMTP works).
    pub fn new(
        server: &MailServer,
        roots: Option<&[CertificateDer<'static>]>,
    ) -> Result<Mailer, MailError> {
        let tls = match server.security {
            Security::Plain => Tls::None,
            Security::Starttls => Tls::Required(tls_parameters(&server.host, roots)?),
            Security::Tls => Tls::Wrapper(tls_parameters(&server.host, roots)?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&server.host)
            .port(server.port)
            .tls(tls)
            .hello_name(ClientId::Domain(server.hello.clone()))
            .timeout(Some(STEP));
        if let Some(c) = &server.credentials {
            builder = builder
                .credentials(SmtpCredentials::new(c.user.clone(), c.password.clone()))
                .authentication(vec![Mechanism::Plain]);
        }
        Ok(Mailer {
            transport: builder.build(),
        })
    }

    /// Sends `mail`.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let address = |a: &str| {
            a.parse::<lettre::Address>()
                .map_err(|_| MailError::Address(a.to_owned()))
        };
        // 8-bit text as it is, wrapped; quoted-printable only when a line cannot be wrapped
        // (a long link), which mail programs decode.
        let body = Body::new_with_encoding(wrap(&mail.body), ContentTransferEncoding::EightBit)
            .unwrap_or_else(|_| Body::new(mail.body.clone()));
        let message = lettre::Message::builder()
            .from(Mailbox::new(
                Some(mail.from_name.clone()),
                address(&mail.from)?,
            ))
            .to(Mailbox::new(None, address(&mail.to)?))
            .subject(mail.subject.clone())
            .message_id(Some(format!("<{}>", mail.message_id)))
            .date_now()
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .header(AutoSubmitted)
            .body(body)
            .map_err(|e| MailError::Message(e.to_string()))?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// Lettre sends text as 8-bit only when every line, its CRLF included, is under 76 bytes:
/// longer lines are broken at spaces (a word longer than that, such as a link, is left whole).
const LINE: usize = 72;

/// `text` with each line longer than [`LINE`] broken at spaces; lines end in CRLF.
fn wrap(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let (line, end) = match line
            .strip_suffix("\r\n")
            .or_else(|| line.strip_suffix('\n'))
        {
            Some(l) => (l, "\r\n"),
            None => (line, ""),
        };
        let mut width = 0;
        for (i, word) in line.split(' ').enumerate() {
            if i > 0 {
                if width > 0 && width + 1 + word.len() > LINE {
                    out.push_str("\r\n");
                    width = 0;
                } else {
                    out.push(' ');
                    width += 1;
                }
            }
            out.push_str(word);
            width += word.len();
        }
        out.push_str(end);
    }
    out
}

fn tls_parameters(
    host: &str,
    roots: Option<&[CertificateDer<'static>]>,
) -> Result<TlsParameters, MailError> {
    let roots = roots.ok_or_else(|| MailError::Tls("TLS is not available".to_owned()))?;
    let mut builder =
        TlsParameters::builder(host.to_owned()).certificate_store(CertificateStore::None);
    for root in roots {
        builder = builder.add_root_certificate(
            Certificate::from_der(root.to_vec()).map_err(|e| MailError::Tls(e.to_string()))?,
        );
    }
    builder
        .build_rustls()
        .map_err(|e| MailError::Tls(e.to_string()))
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no auto-replies to Haven's messages.
#[derive(Debug, Clone, Copy)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_addresses_haven_uses_parse() {
        // `[alerts] from` defaults to haven@localhost; staff addresses come from the MIS.
        for a in [
            "haven@localhost",
            "p.shah@demo-school.example",
            "o'brien@school.example",
            "dsl+alerts@school.example",
        ] {
            assert!(a.parse::<lettre::Address>().is_ok(), "{a}");
        }
        assert!("two@at@example".parse::<lettre::Address>().is_err());
    }

    #[test]
    fn long_lines_are_wrapped_at_spaces_and_links_kept_whole() {
        let link = format!("https://haven.school.example/{}", "x".repeat(80));
        let text = format!(
            "Monitoring recorded a grade 5 capture in suicide at 12:34 on Wed 2 Dec 2026 (source: search).\r\n\r\nOpen it: {link}\r\nshort\n"
        );
        let wrapped = wrap(&text);
        assert!(
            wrapped.lines().all(|l| l.len() <= LINE || l == link),
            "{wrapped}"
        );
        assert!(wrapped.contains(&format!("\r\n{link}\r\n")), "{wrapped}");
        assert_eq!(
            wrapped
                .replace("\r\n", " ")
                .split_whitespace()
                .collect::<Vec<_>>(),
            text.split_whitespace().collect::<Vec<_>>()
        );
        assert!(wrapped.ends_with("short\r\n"));
        assert_eq!(wrap("a  b"), "a  b");
    }
}
