//! The lists rebuilt from the command line: the snapshot rebuilt from the sources given, and
//! the change recorded in the audit log.

use anyhow::Result;
use haven_core::Snapshot;
use haven_lists::{Progress, SourceReport, SourceSpec};

use crate::Context;

/// A rebuilt snapshot and what went into it.
#[derive(Debug)]
pub struct Rebuilt {
    /// The snapshot now in force.
    pub snapshot: Snapshot,
    /// What each source gave.
    pub reports: Vec<SourceReport>,
    /// Hosts in the snapshot.
    pub hosts: usize,
    /// Of which on illegal lists.
    pub illegal_hosts: usize,
    /// The audit log could not record the rebuild (the lists are in place all the same).
    pub unaudited: Option<anyhow::Error>,
}

/// Rebuilds the snapshot from `sources` (`download` names the one URL source to fetch again;
/// `None`: all) and records it in the audit log.
pub fn rebuild(
    ctx: &Context,
    sources: &[SourceSpec],
    download: Option<&str>,
    allow_shrink: bool,
    progress: &mut Progress,
) -> Result<Rebuilt> {
    let (snapshot, reports) = ctx
        .lists()
        .rebuild(sources, download, allow_shrink, progress)?;
    let (hosts, illegal_hosts) = snapshot.host_count();
    // Every change is in the audit log. The lists are in place by now, so a store that cannot
    // be reached is a warning, not a failure.
    let unaudited = ctx
        .with_store(
            async |s| Ok(crate::admin::record_list_rebuild(&s, hosts, sources.len()).await?),
        )
        .err();
    Ok(Rebuilt {
        snapshot,
        reports,
        hosts,
        illegal_hosts,
        unaudited,
    })
}
