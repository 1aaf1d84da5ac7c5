//! Reload: the lists and the policy built again and swapped in on SIGHUP and when their files
//! change; a refused one keeps those in force. SIGHUP also reads the risk library and the
//! text model again (`haven monitor train` writes the school's model; it is in force from the
//! next SIGHUP or start). Also waits for the signal to stop.

use std::sync::Arc;

use anyhow::Result;
use haven_monitor::Monitoring;
use haven_runtime::LiveEngine;

use crate::metrics::ListHealth;
use crate::Context;

/// The files whose change means a reload: the snapshot in force and the policy.
fn watched(ctx: &Context) -> Vec<Option<std::time::SystemTime>> {
    [
        ctx.lists().snapshot_path(),
        ctx.data_dir.join("policy.toml"),
    ]
    .iter()
    .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
    .collect()
}

/// Reads the risk library and the model again (the school's model if there is one that
/// reads, else the built-in one), off the serving thread; logs what is in force.
async fn reload_monitoring(monitoring: &Arc<Monitoring>) {
    let monitoring = monitoring.clone();
    let read = tokio::task::spawn_blocking(move || {
        let warnings = monitoring.reload();
        (warnings, monitoring.model().map(|(_, source)| source))
    })
    .await;
    match read {
        Ok((warnings, source)) => {
            for w in warnings {
                tracing::warn!(warning = %w, "risk library or model read with a warning");
            }
            let model = match source {
                Some(haven_monitor::library::ModelSource::School) => "school",
                Some(haven_monitor::library::ModelSource::BuiltIn) => "built-in",
                None => "none",
            };
            tracing::info!(model, "risk library and model reloaded");
        }
        Err(e) => tracing::error!(error = %e, "reloading the risk library and model failed"),
    }
}

/// SIGHUP and SIGTERM, caught from the moment this is made.
#[derive(Debug)]
pub struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Catches SIGHUP and SIGTERM (inside the runtime).
    pub fn new() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
        })
    }
}

/// Reloads on SIGHUP and on a file change until SIGTERM or Ctrl-C.
pub async fn wait_and_reload(
    ctx: &Context,
    live: &Arc<LiveEngine>,
    health: &Arc<ListHealth>,
    monitoring: &Arc<Monitoring>,
    signals: Signals,
) -> Result<()> {
    let Signals { mut hup, mut term } = signals;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
    let mut seen = watched(ctx);
    // Loading a large snapshot takes a moment: do it off the serving thread, then swap.
    let reload = |why: &'static str| {
        let ctx = ctx.clone();
        let live = live.clone();
        let health = health.clone();
        async move {
            let built = tokio::task::spawn_blocking(move || ctx.engine_logged(None)).await;
            match built.map_err(anyhow::Error::from).and_then(|r| r) {
                Ok(engine) => {
                    live.replace(|_| Ok::<_, anyhow::Error>(engine)).ok();
                    tracing::info!(
                        why,
                        snapshot = %format_args!("{:016x}", live.current().snapshot().checksum()),
                        "reloaded"
                    );
                }
                Err(e) => {
                    health.reload_refused();
                    tracing::error!(
                        why,
                        error = %format_args!("{e:#}"),
                        "reload refused, the lists and policy in force stay"
                    );
                }
            }
        }
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                reload("SIGHUP").await;
                reload_monitoring(monitoring).await;
            }
            _ = tick.tick() => {
                let now = watched(ctx);
                if now != seen {
                    seen = now;
                    reload("a list or policy file changed").await;
                }
            }
            _ = term.recv() => return Ok(()),
            r = tokio::signal::ctrl_c() => return r.map_err(Into::into),
        }
    }
}
