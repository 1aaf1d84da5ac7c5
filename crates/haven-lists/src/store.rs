//! Haven's list state in its data directory:
//!
//! ```text
//! <data-dir>/lists/sources.toml       registered sources (what `lists import` added)
//! <data-dir>/lists/snapshot.hvn       the compiled snapshot in force
//! <data-dir>/lists/snapshot.hvn.prev  the one before it
//! <data-dir>/lists/cache/             downloads
//! ```
//!
//! A new snapshot is written beside the old one, read back and fully validated, and only then
//! renamed into place: a bad build never replaces the last good snapshot. A snapshot that fails
//! to load is refused with its error, and the previous one is used instead.

use std::path::{Path, PathBuf};

use haven_core::kept;
use haven_core::snapshot::{EntryKind, Snapshot, SnapshotBuilder, SnapshotError};
use serde::{Deserialize, Serialize};

use crate::import::{self, ImportError, SourceReport, SourceSpec};
use crate::progress::Progress;

/// Why the list store could not do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// File system trouble.
    #[error("{path}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The registry file is not valid.
    #[error("{path}: {message}")]
    Registry {
        /// Path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A source could not be read; nothing was changed.
    #[error("source {name:?}")]
    Source {
        /// Source name.
        name: String,
        /// Cause.
        source: ImportError,
    },
    /// The snapshot just written did not validate; the previous one stays in force.
    #[error("the new snapshot did not validate, the previous one stays in force: {0}")]
    Verify(SnapshotError),
    /// A source read without error but looks like anything but the list it replaces (an error
    /// page, an empty or truncated file): refused, nothing was changed.
    #[error("source {name:?} refused, nothing was changed: {why}{}", example.as_ref().map(|e| format!(" (e.g. {e})")).unwrap_or_default())]
    Refused {
        /// Source name.
        name: String,
        /// Why.
        why: Refusal,
        /// A refused line, quoted briefly.
        example: Option<String>,
    },
    /// The snapshot is missing while sources are registered: serving would let everything
    /// through, so nothing is served until it is rebuilt.
    #[error("{path} is missing but {sources} list sources are registered ({names}); filtering without them would let everything through. Rebuild it from the sources with `haven lists update` (or forget them with `haven lists remove NAME`)")]
    Missing {
        /// Path.
        path: String,
        /// How many sources are registered.
        sources: usize,
        /// Their names.
        names: String,
    },
    /// The snapshot on disk is unusable and there is no usable previous one.
    #[error("{path}")]
    Snapshot {
        /// Path.
        path: String,
        /// Cause.
        source: SnapshotError,
    },
}

/// Why a source that was read is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No usable entry at all.
    #[error("it has no usable entry ({bad} bad lines){}", if *registered { "; if the list is meant to be empty, run again with --allow-shrink, or remove the source" } else { "" })]
    Empty {
        /// Lines refused.
        bad: u64,
        /// Whether the source was registered before (a first import is never let through).
        registered: bool,
    },
    /// More lines refused than accepted: not a list of this format.
    #[error("more of its lines are refused ({bad}) than accepted ({accepted}); if that is right, run again with --allow-shrink")]
    MostlyBad {
        /// Entries accepted.
        accepted: u64,
        /// Lines refused.
        bad: u64,
    },
    /// It lost more than half of its entries.
    #[error("it has {accepted} entries where the snapshot in force has {previous}, fewer than half; if the list really shrank, run again with --allow-shrink")]
    Shrank {
        /// Entries accepted now.
        accepted: u64,
        /// Entries in the snapshot in force.
        previous: u64,
    },
}

/// Whether a source just read may replace what the snapshot in force holds from it:
/// `previous` is its entry count there (`None`: not in it), `registered` whether it was
/// registered before. A source with no usable entry is refused; so is one with more bad lines
/// than good, or one with fewer than half its previous entries, unless `allow_shrink` (which
/// never lets a first import with no usable entry through).
pub fn judge(
    accepted: u64,
    bad: u64,
    previous: Option<u64>,
    registered: bool,
    allow_shrink: bool,
) -> Result<(), Refusal> {
    if accepted == 0 && !(allow_shrink && registered) {
        return Err(Refusal::Empty { bad, registered });
    }
    if allow_shrink {
        return Ok(());
    }
    if bad > accepted {
        return Err(Refusal::MostlyBad { accepted, bad });
    }
    match previous {
        Some(previous) if accepted.saturating_mul(2) < previous => {
            Err(Refusal::Shrank { accepted, previous })
        }
        _ => Ok(()),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Registry {
    #[serde(default)]
    source: Vec<SourceSpec>,
}

/// The list state under a data directory.
#[derive(Debug, Clone)]
pub struct ListStore {
    dir: PathBuf,
}

/// A snapshot loaded from disk, and whether the previous one had to stand in.
#[derive(Debug)]
pub struct Loaded {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Where it was read from (`None`: no lists imported yet, an empty snapshot).
    pub path: Option<PathBuf>,
    /// Why the current snapshot was refused, when the previous one is in use.
    pub refused: Option<String>,
}

impl ListStore {
    /// The store under `data_dir`.
    pub fn new(data_dir: &Path) -> ListStore {
        ListStore {
            dir: data_dir.join("lists"),
        }
    }

    /// Path of the snapshot in force.
    pub fn snapshot_path(&self) -> PathBuf {
        self.dir.join("snapshot.hvn")
    }

    fn prev_path(&self) -> PathBuf {
        self.dir.join("snapshot.hvn.prev")
    }

    fn registry_path(&self) -> PathBuf {
        self.dir.join("sources.toml")
    }

    /// Registered sources.
    pub fn sources(&self) -> Result<Vec<SourceSpec>, StoreError> {
        let path = self.registry_path();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str::<Registry>(&text)
                .map(|r| r.source)
                .map_err(|e| StoreError::Registry {
                    path: path.display().to_string(),
                    message: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn save_sources(&self, sources: &[SourceSpec]) -> Result<(), StoreError> {
        let path = self.registry_path();
        let text = toml::to_string(&Registry {
            source: sources.to_vec(),
        })
        .map_err(|e| StoreError::Registry {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        write_atomically(&path, text.as_bytes())
    }

    /// Builds a snapshot from `sources` and installs it with the registry. URL sources named in
    /// `download` (all of them when it is `None`) are downloaded again; the others are read from
    /// their cached download. Every source is judged against what the snapshot in force holds
    /// from it ([`judge`]; `allow_shrink` lets a deliberate shrink through). On any error or
    /// refusal nothing changes on disk: snapshot, registry and cached downloads.
    pub fn rebuild(
        &self,
        sources: &[SourceSpec],
        download: Option<&str>,
        allow_shrink: bool,
        progress: &mut Progress,
    ) -> Result<(Snapshot, Vec<SourceReport>), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let registered = self.sources()?;
        // What the snapshot in force holds from each source (nothing when there is no usable
        // one: then only the first-import rule applies). Counted, then the snapshot let go.
        let in_force: Vec<(String, Option<u64>)> = match self.load() {
            Ok(l) => sources
                .iter()
                .map(|s| (s.name.clone(), entries_of(&l.snapshot, &s.name)))
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut builder = SnapshotBuilder::new();
        let mut reports: Vec<SourceReport> = Vec::new();
        let discard = |reports: &[SourceReport]| reports.iter().for_each(|r| r.discard_download());
        for spec in sources {
            let report = match import::read_source(
                &mut builder,
                spec,
                &self.dir.join("cache"),
                download.is_none_or(|d| d == spec.name),
                progress,
            ) {
                Ok(r) => r,
                Err(source) => {
                    discard(&reports);
                    return Err(StoreError::Source {
                        name: spec.name.clone(),
                        source,
                    });
                }
            };
            let previous = in_force
                .iter()
                .find(|(name, _)| *name == spec.name)
                .and_then(|(_, n)| *n);
            let judged = judge(
                report.accepted(),
                report.bad(),
                previous,
                registered.iter().any(|r| r.name == spec.name),
                allow_shrink,
            );
            let example = report.first_example().map(str::to_owned);
            reports.push(report);
            if let Err(why) = judged {
                discard(&reports);
                return Err(StoreError::Refused {
                    name: spec.name.clone(),
                    why,
                    example,
                });
            }
        }
        progress.finish();
        add_bypass(&mut builder);
        let now = haven_runtime::clock::now_secs();
        let bytes = builder.build(now);
        let snapshot = match self.install(bytes) {
            Ok(s) => s,
            Err(e) => {
                discard(&reports);
                return Err(e);
            }
        };
        self.save_sources(sources)?;
        for r in &reports {
            r.keep_download().map_err(|source| StoreError::Source {
                name: r.name.clone(),
                source,
            })?;
        }
        Ok((snapshot, reports))
    }

    /// Validates snapshot bytes and makes them the snapshot in force, keeping the old one as
    /// the previous snapshot.
    pub fn install(&self, bytes: Vec<u8>) -> Result<Snapshot, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let current = self.snapshot_path();
        let tmp = self.dir.join("snapshot.hvn.tmp");
        std::fs::write(&tmp, &bytes).map_err(io(&tmp))?;
        drop(bytes);
        // Read back what the disk holds, so a short write cannot go live.
        let written = std::fs::read(&tmp).map_err(io(&tmp))?;
        let snapshot = match Snapshot::from_bytes(written) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(StoreError::Verify(e));
            }
        };
        if current.exists() {
            std::fs::rename(&current, self.prev_path()).map_err(io(&current))?;
        }
        std::fs::rename(&tmp, &current).map_err(io(&tmp))?;
        Ok(snapshot)
    }

    /// Loads the snapshot in force; if it is refused, the previous one (with the reason). With
    /// no snapshot at all and no source registered, an empty one; with sources registered, an
    /// error ([`StoreError::Missing`]): no lists must never mean no filtering.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let current = self.snapshot_path();
        let first = match std::fs::read(&current) {
            Ok(bytes) => Snapshot::from_bytes(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.prev_path().exists() => {
                let sources = self.sources()?;
                if !sources.is_empty() {
                    return Err(StoreError::Missing {
                        path: current.display().to_string(),
                        sources: sources.len(),
                        names: sources
                            .iter()
                            .map(|s| s.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                return Ok(Loaded {
                    snapshot: Snapshot::empty(),
                    path: None,
                    refused: None,
                });
            }
            // Missing while a previous one exists: someone removed it; use the previous one.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(SnapshotError::Malformed("the snapshot file is missing"))
            }
            Err(e) => return Err(io(&current)(e)),
        };
        match first {
            Ok(snapshot) => Ok(Loaded {
                snapshot,
                path: Some(current),
                refused: None,
            }),
            Err(err) => {
                let prev = self.prev_path();
                match std::fs::read(&prev).ok().map(Snapshot::from_bytes) {
                    Some(Ok(snapshot)) => Ok(Loaded {
                        snapshot,
                        path: Some(prev),
                        refused: Some(format!("{}: {err}", current.display())),
                    }),
                    _ => Err(StoreError::Snapshot {
                        path: current.display().to_string(),
                        source: err,
                    }),
                }
            }
        }
    }
}

/// Haven's own bypass list (`config/lists/bypass.txt`, compiled in) as a source of every
/// snapshot, one per category (`haven-bypass/vpn-proxy`, …): its entries take their
/// category's action in each group, as any list's do.
fn add_bypass(builder: &mut SnapshotBuilder) {
    let mut sources = std::collections::HashMap::new();
    for (category, domain) in kept::bypass() {
        let source = match sources.get(category) {
            Some(s) => *s,
            None => {
                let name = format!("{}/{category}", kept::BYPASS_SOURCE);
                let Ok(s) = builder.add_source(&name, category) else {
                    continue;
                };
                sources.insert(category, s);
                s
            }
        };
        // The shipped file is checked by haven-core's tests; a line it refused is skipped.
        let _ = builder.add(source, EntryKind::Domain, domain);
    }
}

/// The entries a snapshot holds from the source `name` (its files are `name/...`), or `None`
/// when it holds none of its files.
fn entries_of(snapshot: &Snapshot, name: &str) -> Option<u64> {
    let mut found = None;
    for s in snapshot.sources() {
        if s.name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('/'))
        {
            *found.get_or_insert(0) += u64::from(s.entries);
        }
    }
    found
}

/// Writes a file beside its destination and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_a_source_against_the_snapshot_in_force() {
        // A first import: anything with entries, nothing without.
        assert_eq!(judge(10, 0, None, false, false), Ok(()));
        assert!(matches!(
            judge(0, 0, None, false, false),
            Err(Refusal::Empty { .. })
        ));
        assert!(matches!(
            judge(0, 40, None, false, true),
            Err(Refusal::Empty { .. })
        ));
        // An update: half or more kept is fine, fewer refused unless asked for.
        assert_eq!(judge(50, 0, Some(100), true, false), Ok(()));
        assert_eq!(
            judge(49, 0, Some(100), true, false),
            Err(Refusal::Shrank {
                accepted: 49,
                previous: 100
            })
        );
        assert_eq!(judge(49, 0, Some(100), true, true), Ok(()));
        assert!(matches!(
            judge(0, 3, Some(100), true, false),
            Err(Refusal::Empty { .. })
        ));
        assert_eq!(judge(0, 3, Some(100), true, true), Ok(()));
        // An error page with a stray host-like line: more bad than good.
        assert_eq!(
            judge(1, 7, Some(1), true, false),
            Err(Refusal::MostlyBad {
                accepted: 1,
                bad: 7
            })
        );
        assert_eq!(judge(7, 7, Some(7), true, false), Ok(()));
    }
}
