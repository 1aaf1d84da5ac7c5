//! The registered sources as the commands change them (a source added, replaced or dropped),
//! what a snapshot holds per category, and the credit some lists ask for.

use std::collections::BTreeMap;
use std::path::Path;

use haven_core::{category, textfile, Snapshot};

use crate::{Format, ListStore, Loaded, SourceSpec, StoreError};

/// Why a source cannot be registered or dropped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The format is not one Haven reads.
    #[error("--format {0:?}: expected auto, tree, hosts, domains, urls, iwf or ctiru")]
    Format(String),
    /// The category is neither a Haven id nor a `source:name` label.
    #[error(
        "--category {0:?}: not a Haven category (see `haven categories`) nor a `source:name` label"
    )]
    Category(String),
    /// The name cannot be a source's.
    #[error("--name {0:?}: use letters, digits, - and _")]
    Name(String),
    /// No source has that name.
    #[error("no source named {0:?}")]
    NoSuchSource(String),
}

/// A source to register, as given on the command line.
#[derive(Debug, Clone, Default)]
pub struct NewSource {
    /// A directory, a tar.gz, a list file, or an http(s) URL of one.
    pub location: String,
    /// The source's name (default: from the location).
    pub name: Option<String>,
    /// The format's command-line spelling (`auto`, `tree`, …).
    pub format: String,
    /// The Haven category of a single list.
    pub category: Option<String>,
    /// For trees: `ut1` maps UT1 folder names onto Haven's categories.
    pub mapping: Option<String>,
    /// An extra CA certificate (PEM) to trust for an https URL.
    pub ca_file: Option<String>,
}

impl NewSource {
    /// Checks it and makes the spec registered: a local location made absolute, the name
    /// defaulted from the location (`iwf` and `ctiru` for those formats).
    pub fn into_spec(self) -> Result<SourceSpec, SourceError> {
        let Some(format) = Format::parse(&self.format) else {
            return Err(SourceError::Format(clipped(&self.format)));
        };
        if let Some(c) = &self.category {
            if !category::is_valid_id(c) {
                return Err(SourceError::Category(clipped(c)));
            }
        }
        let location = if crate::fetch::is_url(&self.location) {
            self.location.clone()
        } else {
            std::fs::canonicalize(Path::new(&self.location))
                .map_or_else(|_| self.location.clone(), |c| c.display().to_string())
        };
        let name = self.name.unwrap_or_else(|| match format {
            Format::Iwf => "iwf".to_owned(),
            Format::Ctiru => "ctiru".to_owned(),
            _ => default_name(&self.location),
        });
        if name.is_empty() || name.contains(['/', ' ']) {
            return Err(SourceError::Name(clipped(&name)));
        }
        Ok(SourceSpec {
            name,
            location,
            format,
            category: self.category,
            mapping: self.mapping,
            ca_file: self.ca_file,
        })
    }
}

/// At most 100 characters of what was given, for an error.
fn clipped(text: &str) -> String {
    textfile::clip(text, 100).into_owned()
}

/// A source's name from its location: the last part's stem, lower-cased, anything but
/// letters, digits, `-` and `_` made `-`.
pub fn default_name(location: &str) -> String {
    let trimmed = location.trim_end_matches('/');
    let last = trimmed.rsplit('/').next().unwrap_or(trimmed);
    let stem = last.split('.').next().unwrap_or(last);
    let clean: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if clean.is_empty() {
        "list".to_owned()
    } else {
        clean
    }
}

/// `spec` put in place of the source with its name, or added.
pub fn register(sources: &mut Vec<SourceSpec>, spec: SourceSpec) {
    match sources.iter_mut().find(|s| s.name == spec.name) {
        Some(existing) => *existing = spec,
        None => sources.push(spec),
    }
}

/// Drops the source named `name`.
pub fn unregister(sources: &mut Vec<SourceSpec>, name: &str) -> Result<(), SourceError> {
    let before = sources.len();
    sources.retain(|s| s.name != name);
    if sources.len() == before {
        return Err(SourceError::NoSuchSource(clipped(name)));
    }
    Ok(())
}

/// The credit the UT1 blacklists ask for, when a source is (or looks like) UT1.
pub fn attribution(sources: &[SourceSpec]) -> Option<&'static str> {
    let uses_ut1 = sources.iter().any(|s| {
        s.mapping.as_deref() == Some("ut1") || s.location.to_ascii_lowercase().contains("ut1")
    });
    uses_ut1.then_some(
        "UT1 blacklists: Université Toulouse 1 Capitole (Fabrice Prigent), CC BY-SA 4.0.",
    )
}

/// What `haven lists info` shows: the snapshot in force, the sources registered, and the
/// entries per category.
#[derive(Debug)]
pub struct Summary {
    /// The snapshot in force.
    pub loaded: Loaded,
    /// The sources registered.
    pub registered: Vec<SourceSpec>,
    /// Hosts in the snapshot.
    pub hosts: usize,
    /// Of which on illegal lists.
    pub illegal_hosts: usize,
    /// Entries per category, by id.
    pub categories: Vec<CategoryCount>,
}

/// A category's entries, summed over the sources that carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryCount {
    /// The category's id.
    pub id: String,
    /// Its Haven name (`None`: a label kept under its own name).
    pub name: Option<&'static str>,
    /// Entries.
    pub entries: u64,
    /// The snapshot's sources that carry it.
    pub sources: Vec<String>,
}

/// The [`Summary`] of the lists in `store`.
pub fn summary(store: &ListStore) -> Result<Summary, StoreError> {
    let loaded = store.load()?;
    let registered = store.sources()?;
    let (hosts, illegal_hosts) = loaded.snapshot.host_count();
    let categories = per_category(&loaded.snapshot);
    Ok(Summary {
        loaded,
        registered,
        hosts,
        illegal_hosts,
        categories,
    })
}

/// Entries per category, by id, summed over the sources that carry it.
pub fn per_category(snapshot: &Snapshot) -> Vec<CategoryCount> {
    let mut out: BTreeMap<String, (u64, Vec<String>)> = BTreeMap::new();
    for s in snapshot.sources() {
        let id = snapshot.categories()[usize::from(s.category)].id.clone();
        let e = out.entry(id).or_default();
        e.0 += u64::from(s.entries);
        e.1.push(s.name.clone());
    }
    out.into_iter()
        .map(|(id, (entries, sources))| CategoryCount {
            name: category::by_id(&id).map(|c| c.name),
            id,
            entries,
            sources,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_location() {
        assert_eq!(default_name("/tmp/UT1/blacklists.tar.gz"), "blacklists");
        assert_eq!(default_name("https://x.test/lists/my list.txt"), "my-list");
        assert_eq!(default_name("/"), "list");
    }

    #[test]
    fn registering_replaces_by_name_and_unregistering_needs_the_name() {
        let spec = |name: &str, location: &str| SourceSpec {
            name: name.into(),
            location: location.into(),
            format: Format::Auto,
            category: None,
            mapping: None,
            ca_file: None,
        };
        let mut sources = vec![spec("a", "/a")];
        register(&mut sources, spec("a", "/b"));
        register(&mut sources, spec("c", "/c"));
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].location, "/b");
        assert!(matches!(
            unregister(&mut sources, "nope"),
            Err(SourceError::NoSuchSource(_))
        ));
        unregister(&mut sources, "a").expect("a is registered");
        assert_eq!(sources.len(), 1);
        assert!(attribution(&sources).is_none());
        register(&mut sources, spec("ut1", "/srv/UT1"));
        assert!(attribution(&sources).is_some());
    }
}
