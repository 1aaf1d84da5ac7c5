//! The server's log: `tracing` events on standard error, as readable lines (coloured on a
//! terminal) or as JSON lines for a SIEM. The level comes from `HAVEN_LOG`, else `[log] level`,
//! else `info`; the format from `HAVEN_LOG_FORMAT` (`text` or `json`), else `[log] format`.
//! Under systemd both reach the journal through standard error (no journald client is linked).
//! What is meant for the person at the terminal (the banner, command output) is printed, not
//! logged.

use std::io::IsTerminal as _;

use anyhow::{bail, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// Sets up the log for `haven serve` (once; a second call changes nothing).
pub fn init(config: &LogConfig) -> Result<()> {
    let format = match std::env::var("HAVEN_LOG_FORMAT")
        .ok()
        .filter(|f| !f.is_empty())
    {
        None => config.format,
        Some(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        Some(f) if f.eq_ignore_ascii_case("json") => LogFormat::Json,
        Some(f) => bail!("HAVEN_LOG_FORMAT: {f:?} is neither text nor json"),
    };
    let level = std::env::var("HAVEN_LOG")
        .ok()
        .filter(|l| !l.is_empty())
        .or_else(|| config.level.clone())
        .unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&level)
        .map_err(|e| anyhow::anyhow!("log level {level:?} refused: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
    // Already set up (tests that run the service twice in one process): keep the first.
    drop(installed);
    Ok(())
}
