//! The alert sender: alerts queued in the store (with their captures) are sent to the DSL rota
//! by email (SMTP, with STARTTLS or TLS and sign-in when configured) and webhook, escalated to
//! the deputies when nobody who triages has opened the capture in time, and held during quiet
//! hours unless their grade is high enough. Each message is a row in the store until it is
//! delivered, so a restart or a mail server that is down loses nothing: a failed delivery is
//! tried again, 5 seconds later, then 10, 20… at most every 10 minutes.
//!
//! Messages say the grade, category, source and time and link to the capture in the console;
//! they never carry a pupil's name or what they wrote, which stay behind the console's
//! two-factor sign-in where every read is audited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::Monitoring;
use haven_store::alerts::{Delivery, Recipient};
use haven_store::Store;
use serde::Deserialize;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::net::TcpStream;

/// `[alerts]` in `haven.toml`: where alerts go.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The mail server, `host:port` (empty: no email).
    #[serde(default)]
    pub smtp: String,
    /// `none`, `starttls` or `tls`.
    #[serde(default)]
    pub smtp_security: SmtpSecurity,
    /// User name to sign in to the mail server with (the password comes from
    /// `HAVEN_SMTP_PASSWORD`, never from this file).
    #[serde(default)]
    pub smtp_user: String,
    /// The sender's address.
    #[serde(default = "default_from")]
    pub from: String,
    /// Addresses that receive alerts besides the staff with the DSL role and an email address.
    #[serde(default)]
    pub rota: Vec<String>,
    /// Addresses that receive escalations besides the staff with the deputy DSL role.
    #[serde(default)]
    pub deputies: Vec<String>,
    /// URLs that receive each alert as a JSON POST.
    #[serde(default)]
    pub webhooks: Vec<String>,
    /// Extra CA certificates (PEM) trusted for the mail server and webhooks, besides the web's
    /// roots (a relay with the school's own certificate).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// The console's address as staff reach it, for the link in each alert (by default the
    /// console's listen address).
    #[serde(default)]
    pub console_url: String,
    /// Minutes after which an alert nobody has acknowledged goes to the deputies (0: never;
    /// fractions allowed).
    #[serde(default = "default_escalate")]
    pub escalate_after_minutes: f64,
    /// Local times, `HH:MM-HH:MM`, when only grades from `quiet_hours_alert_grade` up are sent
    /// at once; the rest wait for the end of quiet hours. Empty: no quiet hours.
    #[serde(default)]
    pub quiet_hours: String,
    /// During quiet hours, alerts of this grade and above are still sent at once.
    #[serde(default = "default_quiet_grade")]
    pub quiet_hours_alert_grade: u8,
}

/// How the mail server is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain SMTP (a relay on the school's network or this machine).
    #[default]
    None,
    /// Plain, then upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the start (port 465).
    Tls,
}

fn default_from() -> String {
    "haven@localhost".to_owned()
}

fn default_escalate() -> f64 {
    15.0
}

fn default_quiet_grade() -> u8 {
    5
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            smtp: String::new(),
            smtp_security: SmtpSecurity::None,
            smtp_user: String::new(),
            from: default_from(),
            rota: Vec::new(),
            deputies: Vec::new(),
            webhooks: Vec::new(),
            ca_file: None,
            console_url: String::new(),
            escalate_after_minutes: default_escalate(),
            quiet_hours: String::new(),
            quiet_hours_alert_grade: default_quiet_grade(),
        }
    }
}

impl AlertsConfig {
    /// Where alerts go, in a few words (for the banner).
    pub fn summary(&self) -> String {
        let mut to = Vec::new();
        if !self.smtp.is_empty() {
            to.push(format!("email via {} to the DSL rota", self.smtp));
        }
        if !self.webhooks.is_empty() {
            to.push(format!("{} webhook(s)", self.webhooks.len()));
        }
        if to.is_empty() {
            return "not sent: no mail server ([alerts] smtp) or webhooks; captures wait in triage"
                .to_owned();
        }
        let mut s = to.join(" and ");
        if self.escalate_after_minutes > 0.0 {
            s += &format!(
                "; to the deputies after {} minutes unopened",
                self.escalate_after_minutes
            );
        }
        if !self.quiet_hours.is_empty() {
            s += &format!(
                "; quiet hours {} (grade {}+ still sent)",
                self.quiet_hours, self.quiet_hours_alert_grade
            );
        }
        s
    }

    /// Refuses what cannot work, with the key to change.
    pub fn check(&self) -> Result<(), String> {
        if !self.smtp.is_empty() && !self.smtp.contains(':') {
            return Err(format!("alerts.smtp: {:?} is not host:port", self.smtp));
        }
        let local = ["127.0.0.1:", "localhost:", "[::1]:"]
            .iter()
            .any(|p| self.smtp.starts_with(p));
        if !self.smtp_user.is_empty() && self.smtp_security == SmtpSecurity::None && !local {
            return Err(
                "alerts.smtp_user: a password is never sent in clear: set smtp_security = \"starttls\" or \"tls\""
                    .into(),
            );
        }
        for a in std::iter::once(&self.from)
            .chain(&self.rota)
            .chain(&self.deputies)
        {
            if !usable_address(a) {
                return Err(format!("alerts: {a:?} is not an email address"));
            }
        }
        for w in &self.webhooks {
            if !(w.starts_with("http://") || w.starts_with("https://"))
                || w.parse::<hyper::Uri>().is_err()
            {
                return Err(format!("alerts.webhooks: {w:?} is not an http(s) URL"));
            }
        }
        if !(self.escalate_after_minutes.is_finite() && self.escalate_after_minutes >= 0.0) {
            return Err("alerts.escalate_after_minutes: a number of minutes, 0 or more".into());
        }
        if let Some(ca) = &self.ca_file {
            haven_tls::client_config(Some(ca)).map_err(|e| format!("alerts.ca_file: {e}"))?;
        }
        if !(1..=5).contains(&self.quiet_hours_alert_grade) {
            return Err("alerts.quiet_hours_alert_grade: a grade from 1 to 5".into());
        }
        self.quiet().map(|_| ())
    }

    /// Quiet hours as minutes of the day, start and end.
    fn quiet(&self) -> Result<Option<(u32, u32)>, String> {
        if self.quiet_hours.trim().is_empty() {
            return Ok(None);
        }
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let bad = || {
            format!(
                "alerts.quiet_hours: {:?} is not HH:MM-HH:MM",
                self.quiet_hours
            )
        };
        let (a, b) = self.quiet_hours.split_once('-').ok_or_else(bad)?;
        Ok(Some((
            minutes(a).ok_or_else(bad)?,
            minutes(b).ok_or_else(bad)?,
        )))
    }

    /// Whether `minute` of the day is in quiet hours.
    fn is_quiet(&self, minute: u32) -> bool {
        match self.quiet() {
            Ok(Some((start, end))) if start <= end => (start..end).contains(&minute),
            Ok(Some((start, end))) => minute >= start || minute < end,
            _ => false,
        }
    }
}

/// An address Haven will write into a mail header: no spaces, line breaks or brackets.
fn usable_address(a: &str) -> bool {
    let ok_chars = a
        .chars()
        .all(|c| !c.is_whitespace() && !c.is_control() && !"<>,;\"()".contains(c));
    ok_chars
        && a.split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && !d.is_empty())
}

/// What the sender has done, for the metrics.
#[derive(Debug, Default)]
pub struct AlertStats {
    delivered: AtomicU64,
    failed: AtomicU64,
    pages_skipped: AtomicU64,
}

impl AlertStats {
    /// A scored page left ungraded: the grader was behind.
    pub fn page_skipped(&self) {
        self.pages_skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text.
    pub fn render(&self) -> String {
        format!(
            "# HELP haven_alert_deliveries_total Alert messages delivered (email and webhook).\n\
             # TYPE haven_alert_deliveries_total counter\nhaven_alert_deliveries_total {}\n\
             # HELP haven_alert_delivery_failures_total Alert deliveries that failed (each tried again).\n\
             # TYPE haven_alert_delivery_failures_total counter\nhaven_alert_delivery_failures_total {}\n\
             # HELP haven_monitor_pages_skipped_total Scored pages left ungraded because the grader was behind.\n\
             # TYPE haven_monitor_pages_skipped_total counter\nhaven_monitor_pages_skipped_total {}\n",
            self.delivered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.pages_skipped.load(Ordering::Relaxed),
        )
    }
}

/// Sends alerts until the service stops: woken by each alerting capture, and every second for
/// retries, escalations and the end of quiet hours.
pub async fn run(
    store: Store,
    monitoring: Arc<Monitoring>,
    config: Arc<AlertsConfig>,
    stats: Arc<AlertStats>,
) {
    let tls = match haven_tls::client_config(config.ca_file.as_deref()) {
        Ok(t) => Some(t),
        Err(e) => {
            eprintln!("alerts: no TLS for mail or webhooks ({e})");
            None
        }
    };
    let mut warned_nobody = false;
    loop {
        tokio::select! {
            () = monitoring.alerted.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match pass(&store, &config, tls.clone(), &stats).await {
            Ok(nobody) if nobody && !warned_nobody => {
                warned_nobody = true;
                if config.smtp.is_empty() {
                    eprintln!(
                        "alerts: an alert has nobody to go to: no mail server is set ([alerts] smtp) and no webhooks; it waits in the console's triage queue"
                    );
                } else {
                    eprintln!(
                        "alerts: an alert has nobody to go to: no active member of staff with the DSL role has an email address (haven people import staff) and [alerts] rota is empty"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                store.health().failed(&e);
                eprintln!("alerts: {e}");
            }
        }
    }
}

/// One round: alerts due sent, unacknowledged ones escalated, deliveries due made. True when
/// an alert had nobody to go to.
async fn pass(
    store: &Store,
    config: &Arc<AlertsConfig>,
    tls: Option<Arc<rustls::ClientConfig>>,
    stats: &Arc<AlertStats>,
) -> Result<bool, haven_store::StoreError> {
    let now = jiff::Zoned::now();
    let quiet = config.is_quiet(u32::from(now.hour() as u8) * 60 + now.minute() as u32);
    let held = |grade: i64| quiet && grade < i64::from(config.quiet_hours_alert_grade);
    let mut nobody = false;
    let waiting = store.waiting_alerts(100).await?;
    if !waiting.is_empty() {
        let to = recipients(store, config, "rota").await?;
        nobody |= to.is_empty();
        for a in waiting.iter().filter(|a| !held(a.grade)) {
            store.queue_deliveries(a.id, false, &to).await?;
        }
    }
    if config.escalate_after_minutes > 0.0 {
        let before = haven_store::now_ms() - (config.escalate_after_minutes * 60_000.0) as i64;
        let due = store.alerts_to_escalate(before).await?;
        if !due.is_empty() {
            let to = recipients(store, config, "deputy").await?;
            for a in due.iter().filter(|a| !held(a.grade)) {
                store.queue_deliveries(a.id, true, &to).await?;
            }
        }
    }
    let deliveries = store.claim_deliveries(120_000, 50).await?;
    let mut sending = tokio::task::JoinSet::new();
    for d in deliveries {
        let (store, config, tls, stats) =
            (store.clone(), config.clone(), tls.clone(), stats.clone());
        sending.spawn(async move {
            let result = tokio::time::timeout(Duration::from_secs(60), deliver(&config, tls, &d))
                .await
                .unwrap_or_else(|_| Err("timed out".to_owned()));
            let stored = match result {
                Ok(()) => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    store.delivered(d.id).await
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let wait = 5_000i64 << (d.attempts.clamp(1, 8) - 1);
                    eprintln!(
                        "alerts: {} to {} failed (try {}): {e}; trying again in {} s",
                        d.channel,
                        d.target,
                        d.attempts,
                        wait.min(600_000) / 1000
                    );
                    store
                        .delivery_failed(d.id, &e, haven_store::now_ms() + wait.min(600_000))
                        .await
                }
            };
            if let Err(e) = stored {
                eprintln!("alerts: cannot record delivery {}: {e}", d.id);
            }
        });
    }
    while sending.join_next().await.is_some() {}
    Ok(nobody)
}

/// Who a level of alert goes to: staff with the role and an email address, the extra
/// addresses configured, and the webhooks.
async fn recipients(
    store: &Store,
    config: &AlertsConfig,
    level: &'static str,
) -> Result<Vec<Recipient>, haven_store::StoreError> {
    let (role, extra) = match level {
        "rota" => ("dsl", &config.rota),
        _ => ("deputy-dsl", &config.deputies),
    };
    let mut to = Vec::new();
    if !config.smtp.is_empty() {
        let mut addresses: Vec<String> = store
            .role_emails(role)
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .chain(extra.iter().cloned())
            .collect();
        addresses.sort();
        addresses.dedup();
        to.extend(addresses.into_iter().map(|target| Recipient {
            level,
            channel: "email",
            target,
        }));
    }
    to.extend(config.webhooks.iter().map(|w| Recipient {
        level,
        channel: "webhook",
        target: w.clone(),
    }));
    Ok(to)
}

/// The alert in words: (subject, body).
fn words(config: &AlertsConfig, d: &Delivery) -> (String, String) {
    let seen = jiff::Timestamp::from_millisecond(d.seen_at)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%H:%M on %a %-d %b %Y")
                .to_string()
        })
        .unwrap_or_default();
    let escalated = d.level == "deputy";
    let subject = format!(
        "[Haven] {}Grade {} capture: {}",
        if escalated { "Not yet opened: " } else { "" },
        d.grade,
        d.category
    );
    let mut body = format!(
        "Monitoring recorded a grade {} capture in {} at {seen} (source: {}).\r\n\r\n\
         Open it in the console: {}\r\n",
        d.grade,
        d.category,
        d.source,
        link(config, d)
    );
    if escalated {
        body.push_str(&format!(
            "\r\nYou are receiving this as a deputy: nobody on the DSL rota has opened it in {} minutes.\r\n",
            config.escalate_after_minutes
        ));
    }
    body.push_str(
        "\r\nWho and what are not sent by email: they are in the console, behind two-factor \
         sign-in, where every read is recorded.\r\n",
    );
    (subject, body)
}

fn link(config: &AlertsConfig, d: &Delivery) -> String {
    format!(
        "{}/triage/{}",
        config.console_url.trim_end_matches('/'),
        d.capture_id
    )
}

async fn deliver(
    config: &AlertsConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    d: &Delivery,
) -> Result<(), String> {
    match d.channel.as_str() {
        "email" => {
            if !usable_address(&d.target) {
                return Err(format!(
                    "{:?} is not an address Haven can send to",
                    d.target
                ));
            }
            let (subject, body) = words(config, d);
            let host = config.from.split_once('@').map_or("localhost", |(_, h)| h);
            let message = format!(
                "Date: {}\r\nFrom: Haven <{}>\r\nTo: <{}>\r\nSubject: {subject}\r\n\
                 Message-ID: <haven-alert-{}-{}@{host}>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\
                 Auto-Submitted: auto-generated\r\n\r\n{body}",
                jiff::Zoned::now().strftime("%a, %d %b %Y %H:%M:%S %z"),
                config.from,
                d.target,
                d.alert_id,
                d.id,
            );
            send_mail(config, tls, &d.target, &message).await
        }
        "webhook" => {
            let (subject, _) = words(config, d);
            let json = serde_json::json!({
                "text": format!("{subject}: {}", link(config, d)),
                "alert": d.alert_id,
                "capture": d.capture_id,
                "grade": d.grade,
                "category": d.category,
                "source": d.source,
                "seen_at_ms": d.seen_at,
                "level": d.level,
                "link": link(config, d),
            });
            post_json(&d.target, tls, json.to_string()).await
        }
        other => Err(format!("unknown channel {other}")),
    }
}

// ---- SMTP ---------------------------------------------------------------------------------

/// One SMTP conversation.
struct Smtp<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    /// Reads a reply (all its lines): its code, and its text.
    async fn reply(&mut self) -> Result<(u16, String), String> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = (&mut self.io)
                .take(4096)
                .read_line(&mut line)
                .await
                .map_err(|e| format!("reading from the mail server: {e}"))?;
            if n == 0 {
                return Err("the mail server closed the connection".into());
            }
            let code = line
                .get(..3)
                .and_then(|c| c.parse::<u16>().ok())
                .ok_or_else(|| format!("the mail server said {:?}", line.trim_end()))?;
            text.push_str(line.get(4..).unwrap_or("").trim_end());
            text.push('\n');
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok((code, text));
            }
        }
    }

    async fn expect(&mut self, ok: &[u16], what: &str) -> Result<String, String> {
        let (code, text) = self.reply().await?;
        if ok.contains(&code) {
            Ok(text)
        } else {
            Err(format!(
                "{what}: the mail server said {code} {}",
                text.trim_end()
            ))
        }
    }

    async fn command(&mut self, line: &str, ok: &[u16], what: &str) -> Result<String, String> {
        let io = self.io.get_mut();
        io.write_all(line.as_bytes())
            .await
            .and(io.write_all(b"\r\n").await)
            .and(io.flush().await)
            .map_err(|e| format!("writing to the mail server: {e}"))?;
        self.expect(ok, what).await
    }

    /// From EHLO to QUIT.
    async fn send(
        &mut self,
        config: &AlertsConfig,
        helo: &str,
        to: &str,
        message: &str,
    ) -> Result<(), String> {
        self.command(&format!("EHLO {helo}"), &[250], "EHLO")
            .await?;
        if !config.smtp_user.is_empty() {
            use base64::Engine as _;
            let password = std::env::var("HAVEN_SMTP_PASSWORD").unwrap_or_default();
            let token = base64::engine::general_purpose::STANDARD
                .encode(format!("\0{}\0{password}", config.smtp_user));
            self.command(&format!("AUTH PLAIN {token}"), &[235], "signing in")
                .await?;
        }
        self.command(&format!("MAIL FROM:<{}>", config.from), &[250], "MAIL FROM")
            .await?;
        self.command(&format!("RCPT TO:<{to}>"), &[250, 251], "RCPT TO")
            .await?;
        self.command("DATA", &[354], "DATA").await?;
        let mut data = String::with_capacity(message.len() + 8);
        for line in message.split("\r\n") {
            // Dot-stuffing: a line that starts with a dot gets another.
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
            data.push_str("\r\n");
        }
        data.push('.');
        self.command(&data, &[250], "the message").await?;
        let _ = self.command("QUIT", &[221], "QUIT").await;
        Ok(())
    }
}

async fn send_mail(
    config: &AlertsConfig,
    tls: Option<Arc<rustls::ClientConfig>>,
    to: &str,
    message: &str,
) -> Result<(), String> {
    let tcp = TcpStream::connect(&config.smtp)
        .await
        .map_err(|e| format!("connecting to {}: {e}", config.smtp))?;
    let host = config
        .smtp
        .rsplit_once(':')
        .map_or(config.smtp.as_str(), |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_owned();
    let helo = config.from.split_once('@').map_or("localhost", |(_, h)| h);
    let upgrade = |tcp: TcpStream| {
        let tls = tls.clone();
        let host = host.clone();
        async move {
            let tls = tls.ok_or("TLS is not available")?;
            let name = rustls::pki_types::ServerName::try_from(host)
                .map_err(|_| "the mail server's name cannot be checked".to_owned())?;
            tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with the mail server: {e}"))
        }
    };
    match config.smtp_security {
        SmtpSecurity::None => {
            let mut s = Smtp {
                io: BufReader::new(tcp),
            };
            s.expect(&[220], "greeting").await?;
            s.send(config, helo, to, message).await
        }
        SmtpSecurity::Tls => {
            let mut s = Smtp {
                io: BufReader::new(upgrade(tcp).await?),
            };
            s.expect(&[220], "greeting").await?;
            s.send(config, helo, to, message).await
        }
        SmtpSecurity::Starttls => {
            let mut plain = Smtp {
                io: BufReader::new(tcp),
            };
            plain.expect(&[220], "greeting").await?;
            plain
                .command(&format!("EHLO {helo}"), &[250], "EHLO")
                .await?;
            plain.command("STARTTLS", &[220], "STARTTLS").await?;
            let mut s = Smtp {
                io: BufReader::new(upgrade(plain.io.into_inner()).await?),
            };
            s.send(config, helo, to, message).await
        }
    }
}

// ---- webhooks -----------------------------------------------------------------------------

async fn post_json(
    url: &str,
    tls: Option<Arc<rustls::ClientConfig>>,
    json: String,
) -> Result<(), String> {
    use http_body_util::Full;
    use hyper::body::Bytes;
    let uri: hyper::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("the URL has no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let request = hyper::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(
            hyper::header::HOST,
            uri.authority().map_or(host.as_str(), |a| a.as_str()),
        )
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("haven/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(json)))
        .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| format!("connecting: {e}"))?;
    let status = if https {
        let tls = tls.ok_or("TLS is not available")?;
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|_| "the host name cannot be checked".to_owned())?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        send_request(hyper_util::rt::TokioIo::new(stream), request).await?
    } else {
        send_request(hyper_util::rt::TokioIo::new(tcp), request).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {status}"))
    }
}

async fn send_request<S>(
    io: hyper_util::rt::TokioIo<S>,
    request: hyper::Request<http_body_util::Full<hyper::body::Bytes>>,
) -> Result<hyper::StatusCode, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(resp.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_hours_wrap_midnight_and_bad_settings_are_refused() {
        let c = AlertsConfig {
            quiet_hours: "22:00-07:00".into(),
            ..AlertsConfig::default()
        };
        assert!(c.check().is_ok());
        assert!(c.is_quiet(23 * 60));
        assert!(c.is_quiet(6 * 60 + 59));
        assert!(!c.is_quiet(7 * 60));
        assert!(!c.is_quiet(12 * 60));
        let day = AlertsConfig {
            quiet_hours: "12:00-13:30".into(),
            ..AlertsConfig::default()
        };
        assert!(day.is_quiet(12 * 60 + 45) && !day.is_quiet(13 * 60 + 30));
        for bad in [
            AlertsConfig {
                quiet_hours: "10pm-7am".into(),
                ..AlertsConfig::default()
            },
            AlertsConfig {
                rota: vec!["dsl@school.example\r\nBcc: x@y".into()],
                ..AlertsConfig::default()
            },
            AlertsConfig {
                webhooks: vec!["ftp://x".into()],
                ..AlertsConfig::default()
            },
            AlertsConfig {
                smtp: "mail.school.example".into(),
                ..AlertsConfig::default()
            },
            AlertsConfig {
                smtp: "mail.school.example:25".into(),
                smtp_user: "haven".into(),
                ..AlertsConfig::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn alerts_carry_no_names_or_text() {
        let d = Delivery {
            id: 3,
            alert_id: 2,
            level: "deputy".into(),
            channel: "email".into(),
            target: "g.lloyd@demo-school.example".into(),
            attempts: 1,
            delivered_at: None,
            error: None,
            capture_id: 41,
            grade: 5,
            category: "suicide".into(),
            source: "search".into(),
            seen_at: 1_790_000_000_000,
        };
        let c = AlertsConfig {
            console_url: "https://haven.school.example/".into(),
            ..AlertsConfig::default()
        };
        let (subject, body) = words(&c, &d);
        assert_eq!(subject, "[Haven] Not yet opened: Grade 5 capture: suicide");
        assert!(
            body.contains("https://haven.school.example/triage/41"),
            "{body}"
        );
        assert!(body.contains("15 minutes"), "{body}");
    }
}
