//! Everything Haven sends out: one HTTP client ([`client`]) for list downloads and alert
//! webhooks — hyper over rustls with `haven-tls`'s configuration, with connect, handshake,
//! first-byte and whole-exchange deadlines, a cap on what it reads, and redirects only when the
//! caller asks — and mail ([`mail`]) through `lettre` with the same TLS stack and roots.
//!
//! Nothing here decides what to send or to whom: the list importer and the alert sender do.

pub mod client;
pub mod mail;

pub use client::{Client, ClientError, Limits, Redirects, Response, Stage};
pub use mail::{Credentials, Mail, MailError, MailServer, Mailer, Security};
