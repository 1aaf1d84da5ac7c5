//! The weighted-phrase lists for content scoring in force: Haven's built-in list plus the
//! school's own in `<data-dir>/phrases/*.txt`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use haven_core::phrases::{self, Phrase, PhraseError, Scanner};

use crate::Context;

/// The built-in list (`config/phrases/default.txt`).
pub const DEFAULT_PHRASES: &str = include_str!("../../../config/phrases/default.txt");

/// The lists in force: (phrases, refused lines, list names).
pub fn load(ctx: &Context) -> Result<(Vec<Phrase>, Vec<PhraseError>, Vec<String>)> {
    let (mut all, mut errors) = phrases::parse(DEFAULT_PHRASES, "built-in");
    let mut names = vec!["built-in".to_owned()];
    let dir = ctx.data_dir.join("phrases");
    if dir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        for f in files {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            let (p, e) = phrases::parse(&text, &f.display().to_string());
            all.extend(p);
            errors.extend(e);
            names.push(f.display().to_string());
        }
    }
    Ok((all, errors, names))
}

/// The compiled scanner for the lists in force, with a line describing it and the lines the
/// lists refuse (for the caller to report).
pub fn scanner(ctx: &Context) -> Result<(Scanner, String, Vec<PhraseError>)> {
    let (all, errors, names) = load(ctx)?;
    let scanner = Scanner::new(&all).map_err(anyhow::Error::msg)?;
    let refused = if errors.is_empty() {
        String::new()
    } else {
        format!(", {} lines refused (haven phrases check)", errors.len())
    };
    Ok((
        scanner,
        format!(
            "{} phrases from {} list{}{refused}",
            all.len(),
            names.len(),
            if names.len() == 1 { "" } else { "s" }
        ),
        errors,
    ))
}
