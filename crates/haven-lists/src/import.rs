//! Reads one list source (a directory tree, a tar.gz, a single file, or any of them over
//! http(s)) into a snapshot builder, counting and reporting bad lines without stopping.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use haven_core::category::{self, UT1_MAPPING};
use haven_core::listfmt::{self, LineFormat};
use haven_core::snapshot::{SnapshotBuilder, SourceId};
use haven_core::textfile;
use serde::{Deserialize, Serialize};

use crate::fetch::{self, FetchError};
use crate::progress::Progress;

/// How a source is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Decide from what the location holds.
    #[default]
    Auto,
    /// A UT1/squidGuard tree: one folder per category with `domains`, `urls`, `expressions`.
    Tree,
    /// A hosts file.
    Hosts,
    /// A plain domain list.
    Domains,
    /// A URL list (host/path prefixes).
    Urls,
    /// The IWF child-abuse URL list: illegal, never overridable.
    Iwf,
    /// The CTIRU terrorist-content list: illegal, never overridable.
    Ctiru,
}

impl Format {
    /// Parses the command-line spelling.
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "auto" => Format::Auto,
            "tree" | "ut1" | "squidguard" => Format::Tree,
            "hosts" => Format::Hosts,
            "domains" => Format::Domains,
            "urls" => Format::Urls,
            "iwf" => Format::Iwf,
            "ctiru" => Format::Ctiru,
            _ => return None,
        })
    }
}

/// One registered source: where it is and how to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Short name, unique among sources (`ut1`, `iwf`…); prefixes source names in the snapshot.
    pub name: String,
    /// A local path or an http(s) URL.
    pub location: String,
    /// How to read it.
    #[serde(default)]
    pub format: Format,
    /// Category of a single list (a Haven id or `name:label`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// For trees: `ut1` to map UT1 folder names onto Haven's taxonomy; detected when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping: Option<String>,
    /// Extra CA certificate (PEM) trusted for an https location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

/// Why a source could not be read at all (bad lines are not errors: they are counted).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The location does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// Reading failed.
    #[error("{path}")]
    Io {
        /// What was being read.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Downloading failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The location holds nothing that looks like a list of the requested format.
    #[error("{path}: {message}")]
    Unusable {
        /// Location.
        path: String,
        /// Why.
        message: String,
    },
}

/// What happened to one list file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    /// Source name in the snapshot, e.g. `ut1/gambling/domains`.
    pub file: String,
    /// Category its entries carry.
    pub category: String,
    /// Entries accepted.
    pub accepted: u64,
    /// Lines refused.
    pub bad: u64,
    /// Up to five refused lines, as `file:line: reason: text`.
    pub examples: Vec<String>,
}

/// What happened to one source.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    /// Source name.
    pub name: String,
    /// Per file.
    pub files: Vec<FileReport>,
    /// A download just made, read from where it landed (`.part`) and moved over the cached
    /// copy only once the snapshot built from it is in force: (downloaded, cached).
    #[serde(skip)]
    pub(crate) fresh: Option<(PathBuf, PathBuf)>,
}

impl SourceReport {
    /// Makes a fresh download the cached copy (once the snapshot built from it is in force).
    pub(crate) fn keep_download(&self) -> Result<(), ImportError> {
        match &self.fresh {
            Some((part, dest)) => std::fs::rename(part, dest).map_err(io_err(dest)),
            None => Ok(()),
        }
    }

    /// Throws a fresh download away (the snapshot built from it was refused): the cached copy
    /// stays as it was.
    pub(crate) fn discard_download(&self) {
        if let Some((part, _)) = &self.fresh {
            let _ = std::fs::remove_file(part);
        }
    }

    /// The first refused line, as an example for an error message.
    pub fn first_example(&self) -> Option<&str> {
        self.files
            .iter()
            .find_map(|f| f.examples.first())
            .map(String::as_str)
    }

    /// Entries accepted over all files.
    pub fn accepted(&self) -> u64 {
        self.files.iter().map(|f| f.accepted).sum()
    }
    /// Lines refused over all files.
    pub fn bad(&self) -> u64 {
        self.files.iter().map(|f| f.bad).sum()
    }
}

/// How much of a refused line (and of its reason) an example quotes, in bytes.
const QUOTED: usize = 100;

const LIST_FILES: &[(&str, LineFormat)] = &[
    ("domains", LineFormat::Domains),
    ("urls", LineFormat::Urls),
    ("expressions", LineFormat::Expressions),
];

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads one source into the builder. A URL source is downloaded when `download` is set or no
/// earlier download is cached; otherwise the cached copy is read. A fresh download is left
/// beside the cached copy (see [`SourceReport`]): the caller keeps or discards it.
pub fn read_source(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    cache_dir: &Path,
    download: bool,
    progress: &mut Progress,
) -> Result<SourceReport, ImportError> {
    let mut fresh = None;
    let local: PathBuf = if fetch::is_url(&spec.location) {
        std::fs::create_dir_all(cache_dir).map_err(io_err(cache_dir))?;
        let dest = cache_dir.join(format!("{}.download", spec.name));
        if download || !dest.is_file() {
            // Download beside the cached copy, so a failed download, or one whose snapshot is
            // refused, leaves the old one.
            let part = cache_dir.join(format!("{}.part", spec.name));
            progress.set_label(&format!("downloading {}", spec.location));
            fetch::fetch(
                &spec.location,
                &part,
                spec.ca_file.as_deref().map(Path::new),
                progress,
            )?;
            fresh = Some((part.clone(), dest));
            part
        } else {
            dest
        }
    } else {
        PathBuf::from(&spec.location)
    };
    let read = read_local(builder, spec, &local, progress);
    match read {
        Ok(mut report) => {
            report.fresh = fresh;
            Ok(report)
        }
        Err(e) => {
            if let Some((part, _)) = fresh {
                let _ = std::fs::remove_file(part);
            }
            Err(e)
        }
    }
}

fn read_local(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    local: &Path,
    progress: &mut Progress,
) -> Result<SourceReport, ImportError> {
    let meta =
        std::fs::metadata(local).map_err(|_| ImportError::NotFound(spec.location.clone()))?;
    let mut report = SourceReport {
        name: spec.name.clone(),
        ..SourceReport::default()
    };
    if meta.is_dir() {
        if !matches!(spec.format, Format::Auto | Format::Tree) {
            return Err(ImportError::Unusable {
                path: spec.location.clone(),
                message: "is a directory; a directory is read as a UT1/squidGuard tree (format auto or tree)".into(),
            });
        }
        read_tree_dir(builder, spec, local, progress, &mut report)?;
    } else {
        read_file(builder, spec, local, meta.len(), progress, &mut report)?;
    }
    if report.files.is_empty() {
        return Err(ImportError::Unusable {
            path: spec.location.clone(),
            message: "holds no list files (expected domains, urls or expressions files, or a list)"
                .into(),
        });
    }
    Ok(report)
}

/// The category of a tree folder's entries: the source's own `--category` when given, else the
/// folder mapped onto Haven's taxonomy.
fn tree_category(spec: &SourceSpec, mapping: &str, folder: &str) -> String {
    if let Some(c) = &spec.category {
        return c.clone();
    }
    let id = category::map_folder(mapping, folder);
    // Only an explicit IWF/CTIRU import may fill the illegal lists.
    if category::is_illegal(&id) && !matches!(spec.format, Format::Iwf | Format::Ctiru) {
        format!("{mapping}:{folder}")
    } else {
        id
    }
}

fn detect_mapping(spec: &SourceSpec, folders: &[String], has_global_usage: bool) -> String {
    if let Some(m) = &spec.mapping {
        return m.clone();
    }
    let known = folders
        .iter()
        .filter(|f| UT1_MAPPING.iter().any(|(u, _)| u == f))
        .count();
    if has_global_usage || (known > 0 && known * 2 >= folders.len()) {
        "ut1".to_owned()
    } else {
        spec.name.clone()
    }
}

fn read_tree_dir(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    dir: &Path,
    progress: &mut Progress,
    report: &mut SourceReport,
) -> Result<(), ImportError> {
    let has_lists = |d: &Path| LIST_FILES.iter().any(|(f, _)| d.join(f).is_file());
    // A single category folder (e.g. ut1/gambling) or a tree of them.
    let folders: Vec<(String, PathBuf)> = if has_lists(dir) {
        let name = dir
            .file_name()
            .map_or_else(|| spec.name.clone(), |n| n.to_string_lossy().into_owned());
        vec![(name, dir.to_path_buf())]
    } else {
        let mut v = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            // Alias folders are symbolic links in UT1; reading them would count entries twice.
            let ft = entry.file_type().map_err(io_err(dir))?;
            if ft.is_dir() && has_lists(&entry.path()) {
                v.push((
                    entry.file_name().to_string_lossy().into_owned(),
                    entry.path(),
                ));
            }
        }
        v.sort();
        v
    };
    let names: Vec<String> = folders.iter().map(|(n, _)| n.clone()).collect();
    let mapping = detect_mapping(spec, &names, dir.join("global_usage").is_file());
    let mut files = Vec::new();
    let mut total = 0;
    for (folder, path) in &folders {
        for (file, format) in LIST_FILES {
            let p = path.join(file);
            if let Ok(m) = std::fs::metadata(&p) {
                total += m.len();
                files.push((folder.clone(), (*file).to_owned(), *format, p));
            }
        }
    }
    progress.set_total(total);
    for (folder, file, format, path) in files {
        let category = tree_category(spec, &mapping, &folder);
        let label = format!("{}/{folder}/{file}", spec.name);
        progress.set_label(&label);
        let f = File::open(&path).map_err(io_err(&path))?;
        let counter = Arc::new(AtomicU64::new(0));
        let start = progress.done();
        let reader = Counting {
            inner: f,
            count: counter.clone(),
        };
        let r = read_lines(
            builder,
            &label,
            &category,
            format,
            BufReader::with_capacity(1 << 16, reader),
            &mut |p| {
                p.set_done(start + counter.load(Ordering::Relaxed));
            },
            progress,
        )
        .map_err(io_err(&path))?;
        report.files.push(r);
    }
    Ok(())
}

fn read_file(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    path: &Path,
    size: u64,
    progress: &mut Progress,
    report: &mut SourceReport,
) -> Result<(), ImportError> {
    let mut head = [0u8; 2];
    let n = File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(io_err(path))?;
    let gz = n == 2 && head == [0x1f, 0x8b];
    let counter = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: File::open(path).map_err(io_err(path))?,
        count: counter.clone(),
    };
    progress.set_total(size);
    let file_name = path
        .file_name()
        .map_or_else(|| spec.name.clone(), |n| n.to_string_lossy().into_owned());
    if gz {
        let mut decoded = BufReader::with_capacity(1 << 16, MultiGzDecoder::new(counting));
        let peek = decoded.fill_buf().map_err(io_err(path))?;
        let is_tar = peek.len() >= 262 && &peek[257..262] == b"ustar";
        if is_tar {
            drop(decoded);
            return read_tar(builder, spec, path, progress, report).map_err(io_err(path));
        }
        let stem = file_name.trim_end_matches(".gz").to_owned();
        return read_single(builder, spec, &stem, decoded, &counter, progress, report)
            .map_err(io_err(path));
    }
    if matches!(spec.format, Format::Tree) {
        return Err(ImportError::Unusable {
            path: spec.location.clone(),
            message: "format tree needs a directory or a tar.gz".into(),
        });
    }
    read_single(
        builder,
        spec,
        &file_name,
        BufReader::with_capacity(1 << 16, counting),
        &counter,
        progress,
        report,
    )
    .map_err(io_err(path))
}

/// The folder, file name and format of a tar member that is a list file.
fn list_member<R: Read>(
    entry: &tar::Entry<'_, R>,
    spec: &SourceSpec,
) -> std::io::Result<Option<(String, String, LineFormat)>> {
    if !entry.header().entry_type().is_file() {
        return Ok(None);
    }
    let path = entry.path()?;
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some((_, format)) = LIST_FILES.iter().find(|(f, _)| *f == file) else {
        return Ok(None);
    };
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .map_or_else(|| spec.name.clone(), |f| f.to_string_lossy().into_owned());
    Ok(Some((folder, file, *format)))
}

/// Reads a tar.gz tree in two streaming passes: folder names first (the mapping depends on all of
/// them), then each list member straight into the builder. Memory stays bounded whatever the
/// archive holds.
fn read_tar(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    path: &Path,
    progress: &mut Progress,
    report: &mut SourceReport,
) -> std::io::Result<()> {
    type GzTar = tar::Archive<BufReader<MultiGzDecoder<Counting<File>>>>;
    let open = || -> std::io::Result<(GzTar, Arc<AtomicU64>)> {
        let counter = Arc::new(AtomicU64::new(0));
        let file = Counting {
            inner: File::open(path)?,
            count: counter.clone(),
        };
        Ok((
            tar::Archive::new(BufReader::with_capacity(1 << 16, MultiGzDecoder::new(file))),
            counter,
        ))
    };
    progress.set_label(&format!("{}: reading the archive's folders", spec.name));
    let (mut archive, _) = open()?;
    let mut folders = std::collections::BTreeSet::new();
    for entry in archive.entries()? {
        if let Some((folder, _, _)) = list_member(&entry?, spec)? {
            folders.insert(folder);
        }
    }
    let mapping = detect_mapping(spec, &folders.into_iter().collect::<Vec<_>>(), false);
    let (mut archive, counter) = open()?;
    for entry in archive.entries()? {
        let entry = entry?;
        let Some((folder, file, format)) = list_member(&entry, spec)? else {
            continue;
        };
        let category = tree_category(spec, &mapping, &folder);
        let label = format!("{}/{folder}/{file}", spec.name);
        progress.set_label(&label);
        let tick = &mut |p: &mut Progress| p.set_done(counter.load(Ordering::Relaxed));
        report.files.push(read_lines(
            builder,
            &label,
            &category,
            format,
            BufReader::new(entry),
            tick,
            progress,
        )?);
    }
    Ok(())
}

fn read_single<R: BufRead>(
    builder: &mut SnapshotBuilder,
    spec: &SourceSpec,
    file_name: &str,
    mut reader: R,
    counter: &Arc<AtomicU64>,
    progress: &mut Progress,
    report: &mut SourceReport,
) -> std::io::Result<()> {
    let format = match spec.format {
        Format::Hosts => LineFormat::Hosts,
        Format::Domains => LineFormat::Domains,
        Format::Urls | Format::Iwf | Format::Ctiru => LineFormat::Urls,
        Format::Auto | Format::Tree => {
            let peek = reader.fill_buf()?;
            listfmt::sniff(&String::from_utf8_lossy(&peek[..peek.len().min(1 << 16)]))
        }
    };
    let category = match spec.format {
        Format::Iwf => "iwf".to_owned(),
        Format::Ctiru => "ctiru".to_owned(),
        _ => spec.category.clone().unwrap_or_else(|| {
            let stem = file_name.split('.').next().unwrap_or(file_name);
            format!("{}:{stem}", spec.name)
        }),
    };
    let label = format!("{}/{file_name}", spec.name);
    progress.set_label(&label);
    let r = read_lines(
        builder,
        &label,
        &category,
        format,
        reader,
        &mut |p| {
            p.set_done(counter.load(Ordering::Relaxed));
        },
        progress,
    )?;
    report.files.push(r);
    Ok(())
}

/// Reads lines into the builder; the only error is a read error (bad lines are counted).
fn read_lines<R: BufRead>(
    builder: &mut SnapshotBuilder,
    label: &str,
    category: &str,
    format: LineFormat,
    mut reader: R,
    tick: &mut dyn FnMut(&mut Progress),
    progress: &mut Progress,
) -> std::io::Result<FileReport> {
    let mut report = FileReport {
        file: label.to_owned(),
        category: category.to_owned(),
        ..FileReport::default()
    };
    let source: SourceId = match builder.add_source(label, category) {
        Ok(s) => s,
        Err(e) => {
            report.bad = 1;
            report.examples.push(format!("{label}: {e}"));
            return Ok(report);
        }
    };
    let kind = format.entry_kind();
    let mut buf = Vec::with_capacity(256);
    let mut line_no = 0u64;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        // Lists come in legacy 8-bit encodings too; anything not UTF-8 is replaced, not fatal.
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']);
        let result = listfmt::parse_line(format, line)
            .map_err(|e| e.to_string())
            .and_then(|entries| {
                for e in entries {
                    builder
                        .add(source, kind, e)
                        .map_err(|err| err.to_string())?;
                }
                Ok(())
            });
        match result {
            Ok(()) => {}
            Err(reason) => {
                report.bad += 1;
                if report.examples.len() < 5 {
                    // A list file is anyone's text: quote a little of it, on one line.
                    report.examples.push(format!(
                        "{label}:{line_no}: {}: {}",
                        textfile::clip(reason.lines().next().unwrap_or(""), QUOTED),
                        textfile::clip(line, QUOTED)
                    ));
                }
            }
        }
        if line_no % 4096 == 0 {
            tick(progress);
        }
    }
    tick(progress);
    report.accepted = u64::from(builder.source_entries(source));
    Ok(report)
}

/// Counts bytes read, for the progress bar.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse() {
        assert_eq!(Format::parse("ut1"), Some(Format::Tree));
        assert_eq!(Format::parse("iwf"), Some(Format::Iwf));
        assert_eq!(Format::parse("csv"), None);
    }
}
