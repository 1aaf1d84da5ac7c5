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
use haven_notify::{Client, ClientError, Limits, Mail, MailError, MailServer, Mailer, Redirects};
use haven_store::alerts::{AlertLevel, Channel, Delivery, Recipient};
use haven_store::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use serde::Deserialize;

/// How long a webhook has to take the alert: connecting, the handshake, the answer, all in.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook client's bounds: everything within [`WEBHOOK_TIMEOUT`], no redirects (a 3xx is
/// a failure), and at most 64 KiB of an answer read.
const WEBHOOK_LIMITS: Limits = Limits {
    connect: WEBHOOK_TIMEOUT,
    handshake: WEBHOOK_TIMEOUT,
    first_byte: WEBHOOK_TIMEOUT,
    idle: WEBHOOK_TIMEOUT,
    whole: WEBHOOK_TIMEOUT,
    max_body: 64 * 1024,
    redirects: Redirects::Refuse,
};

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

/// Why `[alerts]` is refused: each names the key to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `smtp` is not `host:port`.
    #[error("alerts.smtp: {0:?} is not host:port")]
    Smtp(String),
    /// A user name with no encryption, to a mail server not on this machine.
    #[error("alerts.smtp_user: a password is never sent in clear: set smtp_security = \"starttls\" or \"tls\"")]
    PasswordInClear,
    /// An address that cannot go into a mail header.
    #[error("alerts: {0:?} is not an email address")]
    Address(String),
    /// A webhook that is not an http(s) URL.
    #[error("alerts.webhooks: {0:?} is not an http(s) URL")]
    Webhook(String),
    /// `escalate_after_minutes` is negative or not a number.
    #[error("alerts.escalate_after_minutes: a number of minutes, 0 or more")]
    Escalate,
    /// The extra CA file cannot be used.
    #[error("alerts.ca_file: {0}")]
    CaFile(haven_tls::TlsError),
    /// `quiet_hours_alert_grade` is not a grade.
    #[error("alerts.quiet_hours_alert_grade: a grade from 1 to 5")]
    QuietGrade,
    /// `quiet_hours` is not `HH:MM-HH:MM`.
    #[error("alerts.quiet_hours: {0:?} is not HH:MM-HH:MM")]
    QuietHours(String),
}

/// Why one delivery failed (stored with the delivery, shown in the console and logged: it never
/// quotes a webhook's URL, which may carry a secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No mail server can be reached as configured (no TLS, or no `[alerts] smtp`).
    #[error("no mail server: {0}")]
    NoMailer(String),
    /// The mail server, or the message.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The webhook could not be reached, or did not answer in time.
    #[error("{0}")]
    Webhook(String),
    /// The webhook answered, with a status that is not success.
    #[error("the webhook answered {0}")]
    WebhookStatus(hyper::StatusCode),
    /// The whole delivery took too long.
    #[error("timed out")]
    Timeout,
}

impl From<ClientError> for DeliveryError {
    fn from(e: ClientError) -> Self {
        DeliveryError::Webhook(e.reason())
    }
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
    pub fn check(&self) -> Result<(), ConfigError> {
        if !self.smtp.is_empty() && !self.smtp.contains(':') {
            return Err(ConfigError::Smtp(self.smtp.clone()));
        }
        let local = ["127.0.0.1:", "localhost:", "[::1]:"]
            .iter()
            .any(|p| self.smtp.starts_with(p));
        if !self.smtp_user.is_empty() && self.smtp_security == SmtpSecurity::None && !local {
            return Err(ConfigError::PasswordInClear);
        }
        for a in std::iter::once(&self.from)
            .chain(&self.rota)
            .chain(&self.deputies)
        {
            if !usable_address(a) {
                return Err(ConfigError::Address(a.clone()));
            }
        }
        for w in &self.webhooks {
            if !(w.starts_with("http://") || w.starts_with("https://"))
                || w.parse::<hyper::Uri>().is_err()
            {
                return Err(ConfigError::Webhook(w.clone()));
            }
        }
        if !(self.escalate_after_minutes.is_finite() && self.escalate_after_minutes >= 0.0) {
            return Err(ConfigError::Escalate);
        }
        if let Some(ca) = &self.ca_file {
            haven_tls::client_config(Some(ca)).map_err(ConfigError::CaFile)?;
        }
        if !(1..=5).contains(&self.quiet_hours_alert_grade) {
            return Err(ConfigError::QuietGrade);
        }
        self.quiet().map(|_| ())
    }

    /// Quiet hours as minutes of the day, start and end.
    fn quiet(&self) -> Result<Option<(u32, u32)>, ConfigError> {
        if self.quiet_hours.trim().is_empty() {
            return Ok(None);
        }
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let bad = || ConfigError::QuietHours(self.quiet_hours.clone());
        let (a, b) = self.quiet_hours.split_once('-').ok_or_else(bad)?;
        Ok(Some((
            minutes(a).ok_or_else(bad)?,
            minutes(b).ok_or_else(bad)?,
        )))
    }

    /// The mail server as `haven-notify` takes it (None: no email); the password from
    /// `HAVEN_SMTP_PASSWORD`.
    fn mail_server(&self) -> Option<MailServer> {
        let (host, port) = self.smtp.rsplit_once(':')?;
        let credentials = (!self.smtp_user.is_empty()).then(|| haven_notify::Credentials {
            user: self.smtp_user.clone(),
            password: std::env::var("HAVEN_SMTP_PASSWORD").unwrap_or_default(),
        });
        Some(MailServer {
            host: host.trim_matches(['[', ']']).to_owned(),
            port: port.parse().ok()?,
            security: match self.smtp_security {
                SmtpSecurity::None => haven_notify::Security::Plain,
                SmtpSecurity::Starttls => haven_notify::Security::Starttls,
                SmtpSecurity::Tls => haven_notify::Security::Tls,
            },
            credentials,
            hello: self.helo().to_owned(),
        })
    }

    /// The name Haven gives itself to the mail server: the sender's domain.
    fn helo(&self) -> &str {
        self.from.split_once('@').map_or("localhost", |(_, h)| h)
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
}

impl Collector for AlertStats {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, help, value) in [
            (
                "haven_alert_deliveries",
                "Alert messages delivered (email and webhook).",
                &self.delivered,
            ),
            (
                "haven_alert_delivery_failures",
                "Alert deliveries that failed (each tried again).",
                &self.failed,
            ),
            (
                "haven_monitor_pages_skipped",
                "Scored pages left ungraded because the grader was behind.",
                &self.pages_skipped,
            ),
        ] {
            let counter = ConstCounter::new(value.load(Ordering::Relaxed));
            let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(metric)?;
        }
        Ok(())
    }
}

/// What the sender sends with: the webhook client and the mailer (or why there is none).
#[derive(Debug)]
struct Senders {
    webhooks: Client,
    mailer: Result<Mailer, String>,
}

impl Senders {
    fn new(config: &AlertsConfig) -> Senders {
        let tls = match haven_tls::client_config(config.ca_file.as_deref()) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "alerts: no TLS for mail or webhooks");
                None
            }
        };
        let mailer = match config.mail_server() {
            None => Err("no mail server is set ([alerts] smtp)".to_owned()),
            Some(server) => {
                let roots = haven_tls::root_certificates(config.ca_file.as_deref()).ok();
                Mailer::new(&server, roots.as_deref()).map_err(|e| e.to_string())
            }
        };
        if let Err(e) = &mailer {
            if !config.smtp.is_empty() {
                tracing::warn!(error = %e, "alerts: cannot send email");
            }
        }
        Senders {
            webhooks: Client::new(tls, WEBHOOK_LIMITS),
            mailer,
        }
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
    let senders = Arc::new(Senders::new(&config));
    let mut warned_nobody = false;
    loop {
        tokio::select! {
            () = monitoring.alerted.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        match pass(&store, &config, &senders, &stats).await {
            Ok(nobody) if nobody && !warned_nobody => {
                warned_nobody = true;
                if config.smtp.is_empty() {
                    tracing::warn!(
                        "alerts: an alert has nobody to go to: no mail server is set ([alerts] smtp) and no webhooks; it waits in the console's triage queue"
                    );
                } else {
                    tracing::warn!(
                        "alerts: an alert has nobody to go to: no active member of staff with the DSL role has an email address (haven people import staff) and [alerts] rota is empty"
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                store.health().failed(&e);
                tracing::error!(error = %e, "alerts: a sending round failed");
            }
        }
    }
}

/// One round: alerts due sent, unacknowledged ones escalated, deliveries due made. True when
/// an alert had nobody to go to.
async fn pass(
    store: &Store,
    config: &Arc<AlertsConfig>,
    senders: &Arc<Senders>,
    stats: &Arc<AlertStats>,
) -> Result<bool, haven_store::StoreError> {
    let now = haven_runtime::clock::local();
    let quiet = config.is_quiet(u32::from(now.hour() as u8) * 60 + now.minute() as u32);
    let held = |grade: i64| quiet && grade < i64::from(config.quiet_hours_alert_grade);
    let mut nobody = false;
    let waiting = store.waiting_alerts(100).await?;
    if !waiting.is_empty() {
        let to = recipients(store, config, AlertLevel::Rota).await?;
        nobody |= to.is_empty();
        for a in waiting.iter().filter(|a| !held(a.grade)) {
            store.queue_deliveries(a.id, AlertLevel::Rota, &to).await?;
        }
    }
    if config.escalate_after_minutes > 0.0 {
        let before = haven_store::now_ms() - (config.escalate_after_minutes * 60_000.0) as i64;
        let due = store.alerts_to_escalate(before).await?;
        if !due.is_empty() {
            let to = recipients(store, config, AlertLevel::Deputy).await?;
            for a in due.iter().filter(|a| !held(a.grade)) {
                store
                    .queue_deliveries(a.id, AlertLevel::Deputy, &to)
                    .await?;
            }
        }
    }
    let deliveries = store.claim_deliveries(120_000, 50).await?;
    let mut sending = tokio::task::JoinSet::new();
    for d in deliveries {
        let (store, config, senders, stats) = (
            store.clone(),
            config.clone(),
            senders.clone(),
            stats.clone(),
        );
        sending.spawn(async move {
            let result =
                tokio::time::timeout(Duration::from_secs(60), deliver(&config, &senders, &d))
                    .await
                    .unwrap_or(Err(DeliveryError::Timeout));
            let stored = match result {
                Ok(()) => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    store.delivered(d.id).await
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    let wait = 5_000i64 << (d.attempts.clamp(1, 8) - 1);
                    tracing::warn!(
                        channel = %d.channel,
                        to = %shown_target(&d),
                        attempt = d.attempts,
                        retry_in_s = wait.min(600_000) / 1000,
                        error = %e,
                        "alerts: a delivery failed; it is tried again"
                    );
                    store
                        .delivery_failed(
                            d.id,
                            &e.to_string(),
                            haven_store::now_ms() + wait.min(600_000),
                        )
                        .await
                }
            };
            if let Err(e) = stored {
                tracing::error!(delivery = d.id, error = %e, "alerts: cannot record a delivery");
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
    level: AlertLevel,
) -> Result<Vec<Recipient>, haven_store::StoreError> {
    let (role, extra) = match level {
        AlertLevel::Rota => ("dsl", &config.rota),
        AlertLevel::Deputy => ("deputy-dsl", &config.deputies),
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
            channel: Channel::Email,
            target,
        }));
    }
    to.extend(config.webhooks.iter().map(|w| Recipient {
        level,
        channel: Channel::Webhook,
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
    let escalated = d.level == AlertLevel::Deputy;
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

/// Where a delivery went, for a log line: an email address as it is, a webhook's scheme, host
/// and port only (its path or user part may be a secret).
fn shown_target(d: &Delivery) -> String {
    match d.channel {
        Channel::Email => d.target.clone(),
        Channel::Webhook => d
            .target
            .parse::<hyper::Uri>()
            .ok()
            .and_then(|u| {
                let host = u.host()?;
                let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
                Some(format!("{}://{host}{port}/…", u.scheme_str()?))
            })
            .unwrap_or_else(|| "a webhook".to_owned()),
    }
}

async fn deliver(
    config: &AlertsConfig,
    senders: &Senders,
    d: &Delivery,
) -> Result<(), DeliveryError> {
    match d.channel {
        Channel::Email => {
            if !usable_address(&d.target) {
                return Err(MailError::Address(d.target.clone()).into());
            }
            let mailer = senders
                .mailer
                .as_ref()
                .map_err(|e| DeliveryError::NoMailer(e.clone()))?;
            let (subject, body) = words(config, d);
            let mail = Mail {
                from_name: "Haven".to_owned(),
                from: config.from.clone(),
                to: d.target.clone(),
                subject,
                body,
                message_id: format!("haven-alert-{}-{}@{}", d.alert_id, d.id, config.helo()),
            };
            mailer.send(&mail).await?;
            Ok(())
        }
        Channel::Webhook => {
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
            let answer = senders
                .webhooks
                .post(&d.target, "application/json", json.to_string())
                .await?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(DeliveryError::WebhookStatus(answer.status()))
            }
        }
    }
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
            level: AlertLevel::Deputy,
            channel: Channel::Email,
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

    #[test]
    fn the_counters_keep_their_names_and_help() {
        let stats = Arc::new(AlertStats::default());
        stats.page_skipped();
        stats.delivered.fetch_add(3, Ordering::Relaxed);
        let text = haven_runtime::metrics::text(stats);
        for line in [
            "# HELP haven_alert_deliveries Alert messages delivered (email and webhook).",
            "haven_alert_deliveries_total 3",
            "haven_alert_delivery_failures_total 0",
            "# HELP haven_monitor_pages_skipped Scored pages left ungraded because the grader was behind.",
            "# TYPE haven_monitor_pages_skipped counter",
            "haven_monitor_pages_skipped_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
        }
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn a_webhook_is_logged_without_its_path_or_user() {
        let mut d = Delivery {
            id: 1,
            alert_id: 1,
            level: AlertLevel::Rota,
            channel: Channel::Webhook,
            target: "https://bot:s3cret@hooks.school.example:8443/services/T0/B0/XyZsecret".into(),
            attempts: 1,
            delivered_at: None,
            error: None,
            capture_id: 1,
            grade: 5,
            category: "suicide".into(),
            source: "search".into(),
            seen_at: 0,
        };
        assert_eq!(shown_target(&d), "https://hooks.school.example:8443/…");
        d.channel = Channel::Email;
        d.target = "p.shah@demo-school.example".into();
        assert_eq!(shown_target(&d), "p.shah@demo-school.example");
        let e = DeliveryError::from(ClientError::Timeout {
            url: "https://hooks.school.example/services/XyZsecret".into(),
            stage: haven_notify::Stage::FirstByte,
        });
        assert!(!e.to_string().contains("XyZsecret"), "{e}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = AlertsConfig {
            smtp: "mail.school.example:25".into(),
            smtp_user: "haven".into(),
            ..AlertsConfig::default()
        }
        .check()
        .expect_err("clear");
        assert!(e.to_string().starts_with("alerts.smtp_user: "), "{e}");
        let e = AlertsConfig {
            quiet_hours: "late".into(),
            ..AlertsConfig::default()
        }
        .check()
        .expect_err("quiet");
        assert_eq!(
            e.to_string(),
            "alerts.quiet_hours: \"late\" is not HH:MM-HH:MM"
        );
    }
}
