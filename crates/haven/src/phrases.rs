//! `haven phrases`: the weighted-phrase lists used for content scoring — Haven's built-in list
//! plus the school's own in `<data-dir>/phrases/*.txt`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use haven_app::phrases::{load, scanner};
use haven_core::phrases::{self, PhraseError, Scanner};

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

fn files_under(path: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            files_under(&e, out)?;
        }
    } else if path.is_file() {
        out.push(path.to_owned());
    } else {
        bail!("{}: no such file or folder", path.display());
    }
    Ok(())
}

pub fn run(ctx: &Context, cmd: PhrasesCommand) -> Result<ExitCode> {
    match cmd {
        PhrasesCommand::Import {
            paths,
            name,
            category,
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!("--name {name:?}: letters, digits, - and _ only");
            }
            let mut files = Vec::new();
            for p in &paths {
                files_under(p, &mut files)?;
            }
            let mut all = Vec::new();
            let mut errors = Vec::new();
            // `.Include<path>` lines are followed (each file once), as e2guardian does.
            let mut queue: Vec<(PathBuf, Option<String>)> =
                files.iter().rev().map(|f| (f.clone(), None)).collect();
            let mut seen = std::collections::HashSet::new();
            let mut read_files = 0;
            while let Some((f, named_at)) = queue.pop() {
                if !seen.insert(f.clone()) {
                    continue;
                }
                let bytes = match std::fs::read(&f) {
                    Ok(b) => b,
                    Err(e) => match named_at {
                        Some(at) => {
                            errors.push(PhraseError {
                                at,
                                message: format!("include {}: {e}", f.display()),
                            });
                            continue;
                        }
                        None => bail!("reading {}: {e}", f.display()),
                    },
                };
                read_files += 1;
                let (p, e, includes) = phrases::import_e2guardian_with_includes(
                    &bytes,
                    &f.display().to_string(),
                    &category,
                );
                all.extend(p);
                errors.extend(e);
                for (path, at) in includes.into_iter().rev() {
                    queue.push((PathBuf::from(path), Some(at)));
                }
            }
            if all.is_empty() {
                for e in errors.iter().take(20) {
                    eprintln!("{}: {}", e.at, e.message);
                }
                bail!("no phrases found in {read_files} files; nothing written");
            }
            // Check that they compile before anything is written.
            Scanner::new(&all).map_err(anyhow::Error::msg)?;
            let dir = ctx.data_dir.join("phrases");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let out = dir.join(format!("{name}.txt"));
            let tmp = dir.join(format!(".{name}.txt.tmp"));
            std::fs::write(&tmp, phrases::write(&all))
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &out).with_context(|| format!("writing {}", out.display()))?;
            outln!(
                "{} phrases from {} files written to {}; {} lines refused.",
                all.len(),
                read_files,
                out.display(),
                errors.len()
            );
            for e in errors.iter().take(20) {
                outln!("  {}: {}", e.at, e.message);
            }
            if errors.len() > 20 {
                outln!("  … and {} more", errors.len() - 20);
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
