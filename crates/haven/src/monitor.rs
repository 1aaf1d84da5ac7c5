//! `haven monitor`: the risk library, tried by hand. `grade` reads texts from standard input,
//! one a line, and says how each grades against the library (so a DSL can try a phrase).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use haven_core::risk::Grade;
use haven_monitor::library::read_library;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Grade texts from standard input, one a line: the grade (0 to 5) and the categories.
    /// With --json, each line in is {"text": ...} and each line out is a JSON object with
    /// grade, categories, matched and set_aside.
    Grade {
        /// JSON lines in and out.
        #[arg(long)]
        json: bool,
        /// Use this library file instead of the built-in one and <data-dir>/risk/*.txt.
        #[arg(long)]
        library: Option<PathBuf>,
    },
    /// Captures awaiting triage, highest grade first (reading them is audited).
    Captures {
        /// Only these grades and above.
        #[arg(long, default_value_t = 1)]
        min_grade: i64,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

fn as_json(text: &str, g: &Grade) -> serde_json::Value {
    serde_json::json!({
        "text": text,
        "grade": g.grade,
        "categories": g.categories.iter().map(|(c, n)| serde_json::json!({"category": c, "grade": n})).collect::<Vec<_>>(),
        "matched": g.matched,
        "set_aside": g.set_aside,
    })
}

pub fn run(ctx: &Context, cmd: MonitorCommand) -> Result<ExitCode> {
    let (json, file) = match cmd {
        MonitorCommand::Grade { json, library } => (json, library),
        MonitorCommand::Captures { min_grade, json } => return captures(ctx, min_grade, json),
    };
    let (lib, warnings) = read_library(ctx.data_dir.join("risk"), file.as_deref())?;
    for w in warnings {
        eprintln!("{w}");
    }
    let mut refused = false;
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        if json {
            if line.trim().is_empty() {
                continue;
            }
            let text = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned));
            match text {
                Some(t) => outln!("{}", as_json(&t, &lib.grade(&t))),
                None => {
                    refused = true;
                    outln!(
                        "{}",
                        serde_json::json!({"error": "expected a JSON object with a \"text\" string", "line": line})
                    );
                }
            }
        } else {
            let g = lib.grade(&line);
            let cats: Vec<String> = g
                .categories
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect();
            outln!(
                "{}\t{}\t{}",
                g.grade,
                if cats.is_empty() {
                    "-".to_owned()
                } else {
                    cats.join(",")
                },
                line
            );
        }
    }
    Ok(if refused {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn captures(ctx: &Context, min_grade: i64, json: bool) -> Result<ExitCode> {
    let found =
        ctx.with_store(async |s| Ok(haven_app::admin::open_captures(&s, min_grade).await?))?;
    for c in found {
        if json {
            outln!("{}", serde_json::to_string(&c)?);
        } else {
            let at = crate::when(c.at_ms);
            outln!(
                "{:<6} grade {} {at} {:<15} {:<14} {:<20} {:?}",
                c.id,
                c.grade,
                c.client,
                c.user.as_deref().unwrap_or("-"),
                c.categories,
                c.text
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
