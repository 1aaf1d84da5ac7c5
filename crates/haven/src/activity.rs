//! `haven events`: search the recorded activity. Reading someone's activity is recorded in
//! the audit log.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use haven_app::admin;
use haven_store::events::{Cursor, EventQuery};

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Events matching every filter given, newest first.
    Search(SearchArgs),
    /// How many events are stored.
    Count,
    /// Write invented activity (for demonstrations and benchmarks): events spread over the
    /// last days, from the people in the store, written as the event writer writes them.
    Generate(GenerateArgs),
    /// Time typical activity searches over the stored events (p50, p99).
    #[command(hide = true)]
    BenchSearch {
        /// Searches of each kind.
        #[arg(long, default_value_t = 100)]
        rounds: usize,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many events.
    #[arg(long, default_value_t = 10_000)]
    count: u64,
    /// Spread over this many days, ending now.
    #[arg(long, default_value_t = 7)]
    days: u64,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// By user name.
    #[arg(long)]
    user: Option<String>,
    /// By client address.
    #[arg(long)]
    client: Option<String>,
    /// By category id.
    #[arg(long)]
    category: Option<String>,
    /// By action (allow, block, warn, alert-only, rewrite).
    #[arg(long)]
    action: Option<String>,
    /// By source (dns, proxy).
    #[arg(long)]
    source: Option<String>,
    /// Searches containing this text ("" for every search).
    #[arg(long)]
    search: Option<String>,
    /// Only events before this one (the next page): AT-ID, as printed after a page.
    #[arg(long)]
    before: Option<String>,
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: i64,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, cmd: EventsCommand) -> Result<ExitCode> {
    match cmd {
        EventsCommand::Count => {
            let n = ctx.with_store(async |s| Ok(s.count_events().await?))?;
            outln!("{n}");
        }
        EventsCommand::Generate(g) => {
            let (n, secs) =
                ctx.with_store(async |s| haven_app::demo::generate(&s, g.count, g.days).await)?;
            outln!(
                "wrote {n} events in {secs:.2} s: {:.0} events/s",
                n as f64 / secs.max(1e-9)
            );
        }
        EventsCommand::BenchSearch { rounds } => {
            let lines =
                ctx.with_store(async |s| haven_app::demo::bench_search(&s, rounds).await)?;
            for l in lines {
                outln!("{l}");
            }
        }
        EventsCommand::Search(a) => {
            let q = EventQuery {
                user: a.user,
                client: a.client,
                category: a.category,
                action: a.action,
                source: a.source,
                search: a.search,
                before: match a.before.as_deref() {
                    Some(t) => Some(
                        Cursor::parse(t)
                            .ok_or_else(|| anyhow::anyhow!("--before {t:?} is not AT-ID"))?,
                    ),
                    None => None,
                },
                limit: a.limit,
                ..Default::default()
            };
            let found = ctx.with_store(async |s| Ok(admin::search_events(&s, &q).await?))?;
            let next = (found.len() as i64 == a.limit)
                .then(|| found.last().map(|e| e.cursor().token()))
                .flatten();
            for e in found {
                if a.json {
                    outln!("{}", serde_json::to_string(&e)?);
                } else {
                    let at = crate::when(e.at_ms);
                    let action = if e.repeats > 1 {
                        format!("{} x{}", e.action, e.repeats)
                    } else {
                        e.action.clone()
                    };
                    outln!(
                        "{:<8} {at} {:<5} {:<15} {:<10} {:<10} {}{}{}",
                        e.id,
                        e.source,
                        e.client,
                        e.user.as_deref().unwrap_or("-"),
                        action,
                        e.name,
                        e.search
                            .as_deref()
                            .map(|s| format!("  search: {s:?}"))
                            .unwrap_or_default(),
                        e.reason
                            .as_deref()
                            .map(|r| format!("  ({r})"))
                            .unwrap_or_default()
                    );
                }
            }
            if let (Some(next), false) = (next, a.json) {
                outln!("more: --before {next}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ReviewsArgs {
    /// open, approved or declined.
    #[arg(long, default_value = "open")]
    status: String,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

pub fn reviews(ctx: &Context, a: &ReviewsArgs) -> Result<ExitCode> {
    let found = ctx.with_store(async |s| Ok(admin::reviews(&s, &a.status).await?))?;
    for r in found {
        if a.json {
            outln!("{}", serde_json::to_string(&r)?);
        } else {
            let at = crate::when(r.at_ms);
            outln!(
                "{:<6} {at} {:<15} {:<12} {}  ({})",
                r.id,
                r.client,
                r.user.as_deref().unwrap_or("-"),
                r.url,
                r.reason
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
