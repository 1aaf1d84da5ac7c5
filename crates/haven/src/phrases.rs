//! `haven phrases`: the weighted-phrase lists used for content scoring — Haven's built-in list
//! plus the school's own in `<data-dir>/phrases/*.txt`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use haven_app::phrases::{import, load, scanner, ImportError};
use haven_core::phrases::Scanner;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum PhrasesCommand {
    /// Import e2guardian / DansGuardian weighted phrase lists (files or folders) into
    /// <data-dir>/phrases/<name>.txt; bad lines are reported by file:line and left out.
    Import {
        /// Files or folders of `weighted*` lists.
        paths: Vec<PathBuf>,
        /// The name of the list written.
        #[arg(long, default_value = "imported")]
        name: String,
        /// Category for entries in a file without `#listcategory:`.
        #[arg(long, default_value = "imported")]
        category: String,
    },
    /// Show the lists in force and any lines they refuse.
    Check,
    /// Score text from standard input, as the proxy would a page.
    Score {
        /// Read it as HTML (skip tags, scripts and styles).
        #[arg(long)]
        html: bool,
    },
}

pub fn run(ctx: &Context, cmd: PhrasesCommand) -> Result<ExitCode> {
    match cmd {
        PhrasesCommand::Import {
            paths,
            name,
            category,
        } => {
            let done = import(ctx, &paths, &name, &category).inspect_err(|e| {
                if let ImportError::Empty {
                    refused, skipped, ..
                } = e
                {
                    for s in skipped {
                        eprintln!("warning: {s}");
                    }
                    for e in refused.iter().take(20) {
                        eprintln!("{}: {}", e.at, e.message);
                    }
                }
            })?;
            for s in &done.skipped {
                eprintln!("warning: {s}");
            }
            outln!(
                "{} phrases from {} files written to {}; {} lines refused, {} files skipped.",
                done.phrases,
                done.files - done.skipped.len(),
                done.path.display(),
                done.refused.len(),
                done.skipped.len()
            );
            for e in done.refused.iter().take(20) {
                outln!("  {}: {}", e.at, e.message);
            }
            if done.refused.len() > 20 {
                outln!("  … and {} more", done.refused.len() - 20);
            }
            outln!("haven serve picks them up at its next start.");
        }
        PhrasesCommand::Check => {
            let (all, errors, names) = load(ctx)?;
            Scanner::new(&all).map_err(anyhow::Error::msg)?;
            outln!("{} phrases from: {}", all.len(), names.join(", "));
            for e in &errors {
                outln!("  refused {}: {}", e.at, e.message);
            }
            if !errors.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        PhrasesCommand::Score { html } => {
            let (scanner, _, errors) = scanner(ctx)?;
            for e in errors.iter().take(20) {
                eprintln!("warning: phrase list {}: {}", e.at, e.message);
            }
            let mut text = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
            let s = scanner.score(&text, html);
            outln!("score {}", s.total);
            for (c, v) in &s.categories {
                outln!("  {c}: {v}");
            }
            for (p, n) in &s.phrases {
                outln!("  {p:?} x{n}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
