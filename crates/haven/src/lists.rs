//! `haven lists …`: import, update, remove and inspect category lists.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use haven_lists::sources::{self, NewSource};
use haven_lists::{Progress, SourceReport, SourceSpec};
use serde::Serialize;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum ListsCommand {
    /// Import a list source (directory, tar.gz, hosts/domain/URL list; path or http(s) URL),
    /// then rebuild the snapshot from every registered source.
    Import(ImportArgs),
    /// Re-read every registered source (downloading URLs again) and rebuild the snapshot.
    Update(UpdateArgs),
    /// Forget a source and rebuild the snapshot without it.
    Remove {
        /// The source's name.
        name: String,
        /// Let the other sources through even when one has shrunk (see `import --allow-shrink`).
        #[arg(long)]
        allow_shrink: bool,
    },
    /// Show the snapshot in force: counts per category and source.
    Info(JsonArg),
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Accept a source that lost more than half of its entries, or has more bad lines than
    /// good ones, or (already registered) none at all: it really is that small now.
    #[arg(long)]
    allow_shrink: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A directory, a tar.gz, a list file, or an http(s) URL of one.
    location: String,
    /// The source's name (default: from the location); importing a name again replaces it.
    #[arg(long)]
    name: Option<String>,
    /// auto, tree (UT1/squidGuard), hosts, domains, urls, iwf, ctiru.
    #[arg(long, default_value = "auto")]
    format: String,
    /// The Haven category of a single list (e.g. gambling); see `haven categories`.
    #[arg(long)]
    category: Option<String>,
    /// For trees: `ut1` maps UT1 folder names onto Haven's categories (detected when absent).
    #[arg(long)]
    mapping: Option<String>,
    /// An extra CA certificate (PEM) to trust for an https URL.
    #[arg(long)]
    ca_file: Option<String>,
    /// Drop every other registered source.
    #[arg(long)]
    replace: bool,
    /// Accept a source that lost more than half of its entries since the snapshot in force, or
    /// has more bad lines than good ones, or (already registered) none at all. Without it such
    /// an import is refused and nothing changes: an error page or an empty download never
    /// replaces a list. A first import with no usable entry is always refused.
    #[arg(long)]
    allow_shrink: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, cmd: ListsCommand) -> Result<ExitCode> {
    match cmd {
        ListsCommand::Import(args) => import(ctx, args),
        ListsCommand::Update(a) => {
            let sources = ctx.lists().sources()?;
            if sources.is_empty() {
                bail!("no sources registered; import one with `haven lists import PATH`");
            }
            rebuild(ctx, &sources, None, a.allow_shrink, a.json)
        }
        ListsCommand::Remove { name, allow_shrink } => {
            let mut sources = ctx.lists().sources()?;
            sources::unregister(&mut sources, &name)?;
            rebuild(ctx, &sources, Some(""), allow_shrink, false)
        }
        ListsCommand::Info(a) => info(ctx, a.json),
    }
}

fn import(ctx: &Context, args: ImportArgs) -> Result<ExitCode> {
    let spec = NewSource {
        location: args.location,
        name: args.name,
        format: args.format,
        category: args.category,
        mapping: args.mapping,
        ca_file: args.ca_file,
    }
    .into_spec()?;
    let name = spec.name.clone();
    let mut sources = if args.replace {
        Vec::new()
    } else {
        ctx.lists().sources()?
    };
    sources::register(&mut sources, spec);
    rebuild(ctx, &sources, Some(&name), args.allow_shrink, args.json)
}

#[derive(Serialize)]
struct ImportSummary<'a> {
    snapshot: String,
    checksum: String,
    bytes: usize,
    hosts: usize,
    illegal_hosts: usize,
    seconds: f64,
    sources: &'a [SourceReport],
}

/// Rebuilds the snapshot; `download` names the one URL source to fetch again (`None`: all).
fn rebuild(
    ctx: &Context,
    sources: &[SourceSpec],
    download: Option<&str>,
    allow_shrink: bool,
    json: bool,
) -> Result<ExitCode> {
    let started = haven_runtime::clock::instant();
    let mut progress = if json {
        Progress::hidden()
    } else {
        Progress::for_terminal(0)
    };
    let done = haven_app::lists::rebuild(ctx, sources, download, allow_shrink, &mut progress)?;
    let (snapshot, hosts, illegal_hosts) = (&done.snapshot, done.hosts, done.illegal_hosts);
    if let Some(e) = &done.unaudited {
        eprintln!("warning: the lists are in place, but the audit log could not record it: {e:#}");
    }
    let snapshot_path = ctx.lists().snapshot_path();
    if json {
        let summary = ImportSummary {
            snapshot: snapshot_path.display().to_string(),
            checksum: format!("{:016x}", snapshot.checksum()),
            bytes: snapshot.size(),
            hosts,
            illegal_hosts,
            seconds: started.elapsed().as_secs_f64(),
            sources: &done.reports,
        };
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(ExitCode::SUCCESS);
    }
    for r in &done.reports {
        outln!(
            "{}: {} entries from {} files, {} bad lines",
            r.name,
            group(r.accepted()),
            r.files.len(),
            group(r.bad())
        );
        for f in r.files.iter().filter(|f| f.bad > 0) {
            outln!("  {}: {} bad lines, e.g.", f.file, group(f.bad));
            for e in &f.examples {
                outln!("    {e}");
            }
        }
    }
    outln!(
        "snapshot {} written: {} hosts ({} on illegal lists), {:.1} MB, checksum {:016x}, in {:.1} s",
        snapshot_path.display(),
        group(hosts as u64),
        group(illegal_hosts as u64),
        snapshot.size() as f64 / 1e6,
        snapshot.checksum(),
        started.elapsed().as_secs_f64()
    );
    attribution(sources)?;
    Ok(ExitCode::SUCCESS)
}

fn attribution(sources: &[SourceSpec]) -> Result<()> {
    if let Some(credit) = sources::attribution(sources) {
        outln!("{credit}");
    }
    Ok(())
}

fn info(ctx: &Context, json: bool) -> Result<ExitCode> {
    let summary = sources::summary(&ctx.lists())?;
    let (loaded, sources) = (&summary.loaded, &summary.registered);
    let (snap, hosts, illegal) = (&loaded.snapshot, summary.hosts, summary.illegal_hosts);
    if json {
        let out = serde_json::json!({
            "snapshot": loaded.path.as_ref().map(|p| p.display().to_string()),
            "refused": loaded.refused,
            "format_version": haven_core::snapshot::FORMAT_VERSION,
            "checksum": format!("{:016x}", snap.checksum()),
            "created_unix": snap.created_unix(),
            "bytes": snap.size(),
            "hosts": hosts,
            "illegal_hosts": illegal,
            "categories": summary.categories.iter().map(|c| serde_json::json!({
                "id": c.id,
                "name": c.name.unwrap_or(&c.id),
                "entries": c.entries,
                "sources": c.sources,
            })).collect::<Vec<_>>(),
            "sources": snap.sources().iter().map(|s| serde_json::json!({
                "name": s.name,
                "category": snap.categories()[usize::from(s.category)].id,
                "entries": s.entries,
            })).collect::<Vec<_>>(),
            "registered": sources,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = &loaded.path else {
        outln!("No lists imported yet. Import some with: haven lists import PATH-OR-URL");
        return Ok(ExitCode::SUCCESS);
    };
    if let Some(why) = &loaded.refused {
        outln!("WARNING: the current snapshot was refused ({why}); the previous one is in force.");
    }
    let created = jiff::Timestamp::from_second(i64::try_from(snap.created_unix()).unwrap_or(0))
        .map_or_else(
            |_| "?".to_owned(),
            |t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        );
    outln!("Snapshot:  {}", path.display());
    outln!(
        "           format {}, {:.1} MB, checksum {:016x}, compiled {created}",
        haven_core::snapshot::FORMAT_VERSION,
        snap.size() as f64 / 1e6,
        snap.checksum()
    );
    outln!(
        "Hosts:     {} ({} on illegal lists)",
        group(hosts as u64),
        group(illegal as u64)
    );
    outln!("");
    outln!(
        "{:<22} {:<34} {:>10}  sources",
        "category",
        "name",
        "entries"
    );
    for c in &summary.categories {
        let name = c.name.unwrap_or("(kept under its own name)");
        let list = if c.sources.len() > 3 {
            format!(
                "{}, … ({} files)",
                c.sources[..3].join(", "),
                c.sources.len()
            )
        } else {
            c.sources.join(", ")
        };
        outln!(
            "{:<22} {:<34} {:>10}  {}",
            c.id,
            name,
            group(c.entries),
            list
        );
    }
    outln!("");
    outln!("Registered sources:");
    for s in sources {
        outln!(
            "  {:<12} {} ({:?}{})",
            s.name,
            s.location,
            s.format,
            s.category
                .as_ref()
                .map(|c| format!(", category {c}"))
                .unwrap_or_default()
        );
    }
    attribution(sources)?;
    Ok(ExitCode::SUCCESS)
}

/// 1234567 → "1,234,567".
pub fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
