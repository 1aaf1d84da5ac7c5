//! The weighted-phrase lists for content scoring in force: Haven's built-in list plus the
//! school's own in `<data-dir>/phrases/*.txt`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

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

/// A phrase list written by [`import`].
#[derive(Debug)]
pub struct Imported {
    /// How many phrases.
    pub phrases: usize,
    /// From how many files (includes counted).
    pub files: usize,
    /// Where the list was written.
    pub path: PathBuf,
    /// The lines left out, and where.
    pub refused: Vec<PhraseError>,
    /// The files left out whole, because their encoding could not be told.
    pub skipped: Vec<Skipped>,
}

/// A list file left out of an import: reading it in a guessed encoding could turn its phrases
/// into ones that match ordinary pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why (`not UTF-8 and its encoding could not be told`).
    pub reason: phrases::Undecided,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "skipped {}: {}", self.path.display(), self.reason)
    }
}

/// Why nothing was imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The list's name cannot be a file name here.
    #[error("--name {0:?}: letters, digits, - and _ only")]
    Name(String),
    /// A path given is neither a file nor a folder.
    #[error("{}: no such file or folder", .0.display())]
    Missing(PathBuf),
    /// A folder or a file given could not be read.
    #[error("reading {}", .path.display())]
    Read {
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No phrase in any file (`refused`: the lines left out, `skipped`: the files left out,
    /// for the caller to report).
    #[error("no phrases found in {files} files; nothing written")]
    Empty {
        /// Files read.
        files: usize,
        /// The lines left out.
        refused: Vec<PhraseError>,
        /// The files left out whole.
        skipped: Vec<Skipped>,
    },
    /// The phrases do not compile into a scanner.
    #[error("{0}")]
    Compile(String),
    /// The list could not be written.
    #[error("{what} {}", .path.display())]
    Write {
        /// `creating` or `writing`.
        what: &'static str,
        /// The folder or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Imports e2guardian / DansGuardian weighted phrase lists (files, and every file under the
/// folders given, `.Include<path>` lines followed once each, as e2guardian does) into
/// `<data-dir>/phrases/<name>.txt`, checking first that they compile. Bad lines are left out
/// and returned; so are files whose encoding cannot be told (never read in a guessed one).
pub fn import(
    ctx: &Context,
    paths: &[PathBuf],
    name: &str,
    category: &str,
) -> Result<Imported, ImportError> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ImportError::Name(name.to_owned()));
    }
    let mut files = Vec::new();
    for p in paths {
        files_under(p, &mut files)?;
    }
    let mut all = Vec::new();
    let mut errors = Vec::new();
    let mut queue: Vec<(PathBuf, Option<String>)> =
        files.iter().rev().map(|f| (f.clone(), None)).collect();
    let mut seen = HashSet::new();
    let mut read_files = 0;
    let mut skipped = Vec::new();
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
                None => return Err(ImportError::Read { path: f, source: e }),
            },
        };
        read_files += 1;
        let (p, e, includes) = match phrases::import_e2guardian_with_includes(
            &bytes,
            &f.display().to_string(),
            category,
        ) {
            Ok(read) => read,
            Err(reason) => {
                skipped.push(Skipped { path: f, reason });
                continue;
            }
        };
        all.extend(p);
        errors.extend(e);
        for (path, at) in includes.into_iter().rev() {
            queue.push((PathBuf::from(path), Some(at)));
        }
    }
    if all.is_empty() {
        return Err(ImportError::Empty {
            files: read_files,
            refused: errors,
            skipped,
        });
    }
    // Check that they compile before anything is written.
    Scanner::new(&all).map_err(|e| ImportError::Compile(e.to_string()))?;
    let dir = ctx.data_dir.join("phrases");
    let failed = |what, path: &Path| {
        let path = path.to_owned();
        move |source| ImportError::Write { what, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(failed("creating", &dir))?;
    let out = dir.join(format!("{name}.txt"));
    let tmp = dir.join(format!(".{name}.txt.tmp"));
    std::fs::write(&tmp, phrases::write(&all)).map_err(failed("writing", &tmp))?;
    std::fs::rename(&tmp, &out).map_err(failed("writing", &out))?;
    Ok(Imported {
        phrases: all.len(),
        files: read_files,
        path: out,
        refused: errors,
        skipped,
    })
}

/// Every file at or under `path`, in name order.
fn files_under(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), ImportError> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| ImportError::Read {
                path: path.to_owned(),
                source,
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            files_under(&e, out)?;
        }
    } else if path.is_file() {
        out.push(path.to_owned());
    } else {
        return Err(ImportError::Missing(path.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_is_refused_before_anything_is_read_or_written() {
        let ctx = Context {
            data_dir: PathBuf::from("/nonexistent/haven-data"),
        };
        let bad_name = import(&ctx, &[], "a b", "imported");
        assert!(
            matches!(bad_name, Err(ImportError::Name(_))),
            "{bad_name:?}"
        );
        let missing = import(&ctx, &[PathBuf::from("/nonexistent/x")], "ok", "imported")
            .expect_err("no such file");
        assert_eq!(
            missing.to_string(),
            "/nonexistent/x: no such file or folder"
        );
        let empty = import(&ctx, &[], "ok", "imported");
        assert!(
            matches!(empty, Err(ImportError::Empty { files: 0, .. })),
            "{empty:?}"
        );
    }
}
