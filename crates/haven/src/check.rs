//! `haven check`: the policy tester (what-if simulator).

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Args;
use haven_app::squid::{self, AskedAs};
use haven_core::policy::parse_datetime;
use haven_core::Target;
use jiff::civil::DateTime;

use crate::Context;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A URL, a domain, or host:port. Not needed with --batch.
    url: Option<String>,
    /// The group to test as (eyfs, ks1, ks2, ks3+, staff, guest, or the policy's own).
    #[arg(long)]
    group: String,
    /// The class, for lesson modes set for a class.
    #[arg(long)]
    class: Option<String>,
    /// Local time to test at: YYYY-MM-DDTHH:MM, "YYYY-MM-DD HH:MM", HH:MM (today) or now.
    #[arg(long, default_value = "now")]
    at: String,
    /// A policy file to test instead of the one in force.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Read requests from standard input, one a line (the first word is the URL, as Squid sends
    /// them to a URL-rewrite helper), and answer each as a Squid helper: `ERR` to let it through,
    /// `OK status=302 url=…` to send it to the block page.
    #[arg(long, conflicts_with = "json")]
    batch: bool,
}

fn resolve_time(at: &str) -> Result<DateTime> {
    let now = haven_runtime::clock::local().datetime();
    if at == "now" {
        return Ok(now);
    }
    if let Some(dt) = parse_datetime(at) {
        return Ok(dt);
    }
    if let Ok(t) = at.parse::<jiff::civil::Time>() {
        return Ok(now.date().to_datetime(t));
    }
    bail!("--at {at:?}: expected YYYY-MM-DDTHH:MM, \"YYYY-MM-DD HH:MM\", HH:MM or now")
}

pub fn run(ctx: &Context, args: &CheckArgs) -> Result<ExitCode> {
    let at = resolve_time(&args.at)?;
    let engine = ctx.engine(args.policy.as_deref())?;
    let Some(group) = engine.group_id(&args.group) else {
        let names: Vec<&str> = engine
            .policy()
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        bail!(
            "--group {:?}: no such group (the policy has {})",
            args.group,
            names.join(", ")
        );
    };
    if args.batch {
        let asked = AskedAs {
            group,
            class: args.class.as_deref(),
            at,
        };
        let input = BufReader::with_capacity(1 << 16, std::io::stdin().lock());
        let out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        squid::answer(&engine, asked, input, out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(url) = &args.url else {
        bail!("give a URL or domain to check (or --batch)");
    };
    let target = Target::parse(url)
        .with_context(|| format!("{url:?} is not a URL or domain Haven can read"))?;
    let decision = engine.decide(&target, group, args.class.as_deref(), at);
    let x = engine.explain(&target, group, &decision);
    if args.json {
        let mut v = serde_json::to_value(&x)?;
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "at".into(),
                at.strftime("%Y-%m-%dT%H:%M:%S").to_string().into(),
            );
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{}  {}  (group {}, {})",
        x.action.as_str().to_uppercase(),
        x.target,
        x.group,
        at.strftime("%a %Y-%m-%d %H:%M")
    );
    outln!("  reason:    {}", x.reason);
    outln!("  rule:      {}", x.rule);
    for c in &x.categories {
        outln!("  category:  {} ({}): {}", c.name, c.id, c.description);
    }
    if let Some(entry) = &x.list_entry {
        outln!("  listed as: {entry}");
        outln!("  source:    {}", x.sources.join(", "));
    }
    if let Some(s) = &x.safe_search {
        outln!("  safe search: {s}");
    }
    outln!("  policy:    {}", x.policy);
    outln!("  snapshot:  {}", x.snapshot);
    Ok(ExitCode::SUCCESS)
}
