//! `haven.toml`: the whole service configuration in one place — its top-level struct, where it
//! is read from, its defaults and its validation. Each service's own section is a type of its
//! crate (`[dns]`, `[proxy]`, `[console]`, `[monitor]`, `[alerts]`), composed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use haven_core::clients::{DeviceFile, NetworkFile};
use haven_dns::DnsConfig;
use serde::Deserialize;

/// The configuration Haven ships (`config/haven.toml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/haven.toml");

/// `haven.toml`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Group for addresses no network or device names.
    pub default_group: String,
    /// The DNS filter.
    #[serde(default)]
    pub dns: DnsConfig,
    /// The filtering proxy (`listen = []` switches it off).
    #[serde(default)]
    pub proxy: haven_proxy::ProxyConfig,
    /// Networks and their groups.
    #[serde(default)]
    pub networks: Vec<NetworkFile>,
    /// Known devices.
    #[serde(default)]
    pub devices: Vec<DeviceFile>,
    /// The metrics endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The event log.
    #[serde(default)]
    pub events: EventsConfig,
    /// The store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The console.
    #[serde(default)]
    pub console: haven_console::ConsoleConfig,
    /// Monitoring: sources, grading by history, the grades that alert.
    #[serde(default)]
    pub monitor: haven_monitor::MonitorRules,
    /// Where alerts go.
    #[serde(default)]
    pub alerts: haven_monitor::alerts::AlertsConfig,
    /// The server's log.
    #[serde(default)]
    pub log: LogConfig,
}

/// `[store]`: where people, events and the audit log are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`; by default the SQLite file
    /// `<data-dir>/haven.db`. (`HAVEN_STORE_URL` overrides it, keeping a password out of the
    /// file.)
    pub url: Option<String>,
}

/// `[metrics]`: where Prometheus scrapes `/metrics` (off when `listen` is absent).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address to listen on, e.g. `127.0.0.1:9153`.
    pub listen: Option<String>,
}

/// `[events]`: every decision is written to the store, in batches, off the serving thread.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Write events at all.
    #[serde(default = "yes")]
    pub log: bool,
    /// Events buffered between the filter and the writer; beyond this they are dropped and
    /// counted, never waited for.
    #[serde(default = "default_buffer")]
    pub buffer: usize,
    /// Days events are kept, by source (`dns`, `proxy`); older ones are deleted hourly.
    #[serde(default = "default_retention")]
    pub retention_days: BTreeMap<String, u32>,
    /// Seconds over which an allowed DNS question repeated by the same device is stored once,
    /// with its count (0: every question is its own row).
    #[serde(default = "default_repeat_window")]
    pub repeat_window_seconds: u64,
}

fn default_repeat_window() -> u64 {
    10
}

fn default_retention() -> BTreeMap<String, u32> {
    [("dns".to_owned(), 30), ("proxy".to_owned(), 180)].into()
}

fn yes() -> bool {
    true
}

fn default_buffer() -> usize {
    65_536
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            log: true,
            buffer: default_buffer(),
            retention_days: default_retention(),
            repeat_window_seconds: default_repeat_window(),
        }
    }
}

/// `[log]`: the server's log on standard error. `HAVEN_LOG` and `HAVEN_LOG_FORMAT` override
/// these settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (readable; coloured on a terminal) or `json` (one object a line, for a SIEM).
    #[serde(default)]
    pub format: LogFormat,
    /// `error`, `warn`, `info` (the default), `debug` or `trace`, or a filter such as
    /// `info,haven_dns=debug`.
    #[serde(default)]
    pub level: Option<String>,
}

/// How the server's log is written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// Where the configuration came from, for messages and the banner.
pub type Origin = String;

impl Config {
    /// Parses a configuration's text; `origin` names it in the error.
    pub fn parse(text: &str, origin: &str) -> Result<Config> {
        toml::from_str(text).with_context(|| format!("configuration {origin} refused"))
    }

    /// Reads and parses a configuration file.
    pub fn read(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The configuration `haven serve` uses: the file given, else `<data-dir>/haven.toml`
    /// when present, else the built-in one (always the built-in one for the demo).
    pub fn load(data_dir: &Path, file: Option<&PathBuf>, demo: bool) -> Result<(Config, Origin)> {
        let path = if demo {
            None
        } else {
            file.cloned()
                .or_else(|| Some(data_dir.join("haven.toml")).filter(|p| p.is_file()))
        };
        let (text, origin) = match &path {
            Some(p) => (
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                p.display().to_string(),
            ),
            None => (
                DEFAULT_CONFIG.to_owned(),
                "built-in configuration".to_owned(),
            ),
        };
        let config = Config::parse(&text, &origin)?;
        Ok((config, origin))
    }

    /// Validates what the types alone cannot, and fills in what follows from other settings
    /// (alerts link to the console when no address is given for it).
    pub fn check(&mut self, origin: &str) -> Result<()> {
        let refused =
            |e: &dyn std::fmt::Display| anyhow::anyhow!("configuration {origin} refused: {e}");
        self.monitor.check().map_err(|e| refused(&e))?;
        self.alerts.check().map_err(|e| refused(&e))?;
        self.proxy.check().map_err(|e| refused(&e))?;
        if self.alerts.console_url.is_empty() && !self.console.listen.is_empty() {
            self.alerts.console_url = format!("http://{}", self.console.listen);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::clients::ClientMap;
    use haven_core::policy::DEFAULT_POLICY;
    use haven_core::Policy;

    #[test]
    fn the_shipped_configuration_parses_and_fits_the_default_policy() {
        let config: Config = toml::from_str(DEFAULT_CONFIG).expect("config/haven.toml parses");
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        ClientMap::new(
            &config.networks,
            &config.devices,
            &config.default_group,
            |g| policy.group(g).is_some(),
        )
        .expect("every group the configuration names is in the default policy");
        assert_eq!(config.dns.listen, ["127.0.0.1:5353"]);
        config.proxy.check().expect("the shipped proxy settings");
        // The shipped file says what the defaults are.
        let defaults = haven_proxy::ProxyConfig::default();
        assert_eq!(config.proxy.connect_ports, defaults.connect_ports);
        assert_eq!(config.proxy.header_timeout_ms, defaults.header_timeout_ms);
        assert_eq!(config.proxy.body_timeout_ms, defaults.body_timeout_ms);
        assert_eq!(
            config.proxy.max_connections_per_client,
            defaults.max_connections_per_client
        );
        assert!(config.metrics.listen.is_some());
        assert!(config.events.log);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err =
            toml::from_str::<Config>("default_group = \"ks2\"\n[dns]\nlisten = []\nport = 53\n")
                .expect_err("refused");
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
    }
}
