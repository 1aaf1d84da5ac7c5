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
use std::time::{SystemTime, UNIX_EPOCH};

use haven_core::snapshot::{Snapshot, SnapshotBuilder, SnapshotError};
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
    /// The snapshot on disk is unusable and there is no usable previous one.
    #[error("{path}")]
    Snapshot {
        /// Path.
        path: String,
        /// Cause.
        source: SnapshotError,
    },
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
    /// their cached download. On any error nothing changes on disk.
    pub fn rebuild(
        &self,
        sources: &[SourceSpec],
        download: Option<&str>,
        progress: &mut Progress,
    ) -> Result<(Snapshot, Vec<SourceReport>), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let mut builder = SnapshotBuilder::new();
        let mut reports = Vec::new();
        for spec in sources {
            let report = import::read_source(
                &mut builder,
                spec,
                &self.dir.join("cache"),
                download.is_none_or(|d| d == spec.name),
                progress,
            )
            .map_err(|source| StoreError::Source {
                name: spec.name.clone(),
                source,
            })?;
            reports.push(report);
        }
        progress.finish();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let bytes = builder.build(now);
        let snapshot = self.install(bytes)?;
        self.save_sources(sources)?;
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
    /// no snapshot at all, an empty one.
    pub fn load(&self) -> Result<Loaded, StoreError> {
        let current = self.snapshot_path();
        let first = match std::fs::read(&current) {
            Ok(bytes) => Snapshot::from_bytes(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.prev_path().exists() => {
                return Ok(Loaded {
                    snapshot: Snapshot::empty(),
                    path: None,
                    refused: None,
                })
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

/// Writes a file beside its destination and renames it into place.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}
