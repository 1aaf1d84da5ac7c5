//! Monitoring's shared state: the risk library in force (the built-in one, then the school's
//! files in `<data-dir>/risk/*.txt` in name order), the rules that decide grades and alerts,
//! and the signal that wakes the alert sender. The event writer, the page grader, the ingestion
//! API and the console's library page share one `Monitoring`; a change the DSL makes to the
//! school's file in the console is checked, written, recorded and in force for the next text
//! graded.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use haven_core::risk::{RiskError, RiskLibrary};
use haven_store::captures::{CaptureRules, NewCapture, Recorded};

use crate::rules::MonitorRules;
use haven_store::{Store, StoreError};

/// The starter library (`config/risk/library.txt`).
pub const BUILT_IN: &str = include_str!("../../../config/risk/library.txt");

/// The file in `<data-dir>/risk/` the console edits.
pub const SCHOOL_FILE: &str = "school.txt";

/// What a new school file says before anyone edits it.
const SCHOOL_START: &str = "version 1\n\
# The school's own phrases, added to the built-in library (GRADE | CATEGORY | PHRASE\n\
# [| unless: …], safe | CATEGORY | PHRASE). `off | PHRASE` switches off a built-in phrase\n\
# written the same way, e.g. one whose false-positive rate is high.\n";

/// What a viewer without safeguarding roles sees of a search the risk library grades.
pub const GRADED: &str = "graded: visible to safeguarding roles";

/// Monitoring's shared state.
#[derive(Debug)]
pub struct Monitoring {
    library: RwLock<Arc<RiskLibrary>>,
    /// Grades that alert, and how history raises a grade.
    pub rules: MonitorRules,
    /// The store's part of the rules.
    capture_rules: CaptureRules,
    /// Woken when a capture queues an alert.
    pub alerted: tokio::sync::Notify,
    built_in: String,
    dir: PathBuf,
    /// The learned model in force: the school's own (`<data-dir>/model/school.model`, made by
    /// `haven monitor train --with-decisions`) or the built-in one.
    model: RwLock<Option<(Arc<haven_model::Model>, ModelSource)>>,
}

/// Which model is in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The model Haven ships.
    BuiltIn,
    /// The school's own, trained with its triage decisions.
    School,
}

/// The school's model file under the data directory.
pub fn school_model_path(data_dir: &Path) -> PathBuf {
    data_dir.join("model").join("school.model")
}

/// The school's model if there is one that reads, else the built-in one; a school file that
/// cannot be read is a warning (and the built-in model is used).
fn load_model(
    dir: &Path,
    warnings: &mut Vec<String>,
) -> Option<(Arc<haven_model::Model>, ModelSource)> {
    model_in_force(dir.parent().unwrap_or(dir), warnings)
}

/// The model `serve` puts in force for `data_dir`: the school's own if there is one that
/// reads, else the built-in one; a school file that cannot be read is a warning. `None` only if
/// the built-in model does not read either (grading by the library alone).
pub fn model_in_force(
    data_dir: &Path,
    warnings: &mut Vec<String>,
) -> Option<(Arc<haven_model::Model>, ModelSource)> {
    let path = school_model_path(data_dir);
    if path.exists() {
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| haven_model::Model::from_bytes(&b).map_err(|e| e.to_string()))
        {
            Ok(m) => return Some((Arc::new(m), ModelSource::School)),
            Err(e) => warnings.push(format!("{}: {e}; using the built-in model", path.display())),
        }
    }
    match haven_model::Model::from_bytes(crate::training::BUILT_IN_MODEL) {
        Ok(m) => Some((Arc::new(m), ModelSource::BuiltIn)),
        Err(e) => {
            warnings.push(format!(
                "the built-in model: {e}; grading by the library alone"
            ));
            None
        }
    }
}

/// One source of the library, read on its own (for the console's list of phrases).
#[derive(Debug)]
pub struct Source {
    /// `built-in` or the file's name.
    pub name: String,
    /// What it holds.
    pub library: RiskLibrary,
}

impl Monitoring {
    /// The library from `built_in` and the files in `dir`; lines that cannot be read are
    /// returned as warnings (`file:line: message`) and left out.
    pub fn new(built_in: &str, dir: PathBuf, rules: MonitorRules) -> (Monitoring, Vec<String>) {
        let (sources, mut warnings) = read_sources(built_in, &dir);
        let library = merge(sources);
        let model = load_model(&dir, &mut warnings);
        (
            Monitoring {
                library: RwLock::new(Arc::new(library)),
                model: RwLock::new(model),
                capture_rules: rules.capture_rules(),
                rules,
                alerted: tokio::sync::Notify::new(),
                built_in: built_in.to_owned(),
                dir,
            },
            warnings,
        )
    }

    /// The library in force.
    pub fn library(&self) -> Arc<RiskLibrary> {
        match self.library.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The model in force and where it came from.
    pub fn model(&self) -> Option<(Arc<haven_model::Model>, ModelSource)> {
        match self.model.read() {
            Ok(m) => m.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The library and the model in force, to grade with.
    pub fn grader(&self) -> crate::grader::Grader {
        crate::grader::Grader {
            library: self.library(),
            model: self.model().map(|(m, _)| m),
            tuning: crate::grader::TUNING,
        }
    }

    /// Each source on its own, built-in first.
    pub fn sources(&self) -> Vec<Source> {
        read_sources(&self.built_in, &self.dir).0
    }

    /// The school's file (`<data-dir>/risk/school.txt`).
    pub fn school_file(&self) -> PathBuf {
        self.dir.join(SCHOOL_FILE)
    }

    /// The school's file as it is (a starting text when there is none yet).
    pub fn school_text(&self) -> String {
        match std::fs::read(self.school_file()) {
            Ok(bytes) => haven_core::textfile::decode(&bytes),
            Err(_) => SCHOOL_START.to_owned(),
        }
    }

    /// Whether `text` can be the school's file (its errors by line if not); changes nothing.
    pub fn check_school(&self, text: &str) -> Result<(), ReplaceError> {
        let (_, errors) = RiskLibrary::parse_with(text, &self.library().sets);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ReplaceError::Invalid(errors))
        }
    }

    /// Replaces the school's file with `text` and puts the library in force, or refuses it
    /// whole, changing nothing, with its errors by line.
    pub fn replace_school(&self, text: &str) -> Result<(), ReplaceError> {
        self.check_school(text)?;
        std::fs::create_dir_all(&self.dir).map_err(ReplaceError::Write)?;
        let tmp = self.dir.join(".school.txt.new");
        std::fs::write(&tmp, text).map_err(ReplaceError::Write)?;
        std::fs::rename(&tmp, self.school_file()).map_err(ReplaceError::Write)?;
        self.reload();
        Ok(())
    }

    /// The grade-5 phrases of the libraries before the school's file that `new` (a school
    /// file) switches off and `old` did not: switching one off waits for a second person.
    pub fn grade_5_switched_off(&self, old: &str, new: &str) -> Vec<String> {
        let sets = &self.library().sets;
        let off = |text: &str| RiskLibrary::parse_with(text, sets).0.off;
        let (was, now) = (off(old), off(new));
        let earlier: Vec<_> = read_sources(&self.built_in, &self.dir)
            .0
            .into_iter()
            .filter(|s| s.name != SCHOOL_FILE)
            .flat_map(|s| s.library.phrases)
            .filter(|p| p.grade >= 5)
            .collect();
        let mut found: Vec<String> = now
            .iter()
            .filter(|o| !was.iter().any(|w| w.eq_ignore_ascii_case(o)))
            .filter(|o| earlier.iter().any(|p| p.text.eq_ignore_ascii_case(o)))
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        found
    }

    /// Withholds, for a viewer who may not read safeguarding records, every search among
    /// `events` that the risk library grades (what monitoring keeps as a capture): the term
    /// becomes [`GRADED`] and the address loses its query, which holds the term too. When the
    /// viewer searched by a search term (`by_term`), such events are left out altogether, so
    /// that trying words one at a time does not tell them what a pupil searched for.
    pub fn withhold_graded_searches(
        &self,
        events: &mut Vec<haven_store::events::StoredEvent>,
        by_term: bool,
    ) {
        let grader = self.grader();
        if by_term {
            events.retain(|e| {
                e.search
                    .as_deref()
                    .is_none_or(|term| grader.grade(term).grade == 0)
            });
            return;
        }
        for e in events {
            let graded = e
                .search
                .as_deref()
                .is_some_and(|term| grader.grade(term).grade > 0);
            if graded {
                e.search = Some(GRADED.to_owned());
                if let Some(q) = e.name.find('?') {
                    e.name.truncate(q);
                    e.name.push_str("?…");
                }
            }
        }
    }

    /// Reads the library again from its files.
    pub fn reload(&self) -> Vec<String> {
        let (sources, mut warnings) = read_sources(&self.built_in, &self.dir);
        let library = Arc::new(merge(sources));
        match self.library.write() {
            Ok(mut l) => *l = library,
            Err(poisoned) => *poisoned.into_inner() = library,
        }
        let model = load_model(&self.dir, &mut warnings);
        match self.model.write() {
            Ok(mut m) => *m = model,
            Err(poisoned) => *poisoned.into_inner() = model,
        }
        warnings
    }

    /// Records captures (history raising their grades, alerts queued with them) and wakes the
    /// alert sender when one alerts.
    pub async fn record(
        &self,
        store: &Store,
        captures: &[NewCapture],
    ) -> Result<Vec<Recorded>, StoreError> {
        let recorded = store.record_captures(&self.capture_rules, captures).await?;
        if recorded.iter().any(|r| r.alert.is_some()) {
            self.alerted.notify_one();
        }
        Ok(recorded)
    }
}

/// Why the school's file was not replaced.
#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    /// Lines that cannot be read.
    #[error("the library has {} lines that cannot be read", .0.len())]
    Invalid(Vec<RiskError>),
    /// The file could not be written.
    #[error("the library file could not be written: {0}")]
    Write(std::io::Error),
}

/// A library file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reading {}", .path.display())]
pub struct ReadError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The library to try by hand: the file given, or else the built-in one and the school's own
/// files in `dir` (`<data-dir>/risk`), as monitoring reads them. Lines that cannot be read are
/// returned as warnings (`file:line: message`) and left out.
pub fn read_library(
    dir: PathBuf,
    file: Option<&Path>,
) -> Result<(RiskLibrary, Vec<String>), ReadError> {
    if let Some(f) = file {
        let text = std::fs::read(f).map_err(|source| ReadError {
            path: f.to_owned(),
            source,
        })?;
        let (lib, errors) = RiskLibrary::parse(&haven_core::textfile::decode(&text));
        let warnings = errors
            .iter()
            .map(|e| format!("{}:{}: {}", f.display(), e.line, e.message))
            .collect();
        return Ok((lib, warnings));
    }
    let (m, warnings) = Monitoring::new(BUILT_IN, dir, MonitorRules::default());
    Ok(((*m.library()).clone(), warnings))
}

fn read_sources(built_in: &str, dir: &Path) -> (Vec<Source>, Vec<String>) {
    let mut texts = vec![("built-in".to_owned(), built_in.to_owned())];
    let mut warnings = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "txt"))
            .collect();
        paths.sort();
        for p in paths {
            match std::fs::read(&p) {
                Ok(bytes) => texts.push((
                    p.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                    haven_core::textfile::decode(&bytes),
                )),
                Err(e) => warnings.push(format!("{}: {e}", p.display())),
            }
        }
    }
    // Each file may use the word classes of the files before it.
    let mut sets = std::collections::BTreeMap::new();
    let sources = texts
        .into_iter()
        .map(|(name, text)| {
            let (library, errors) = RiskLibrary::parse_with(&text, &sets);
            for e in errors {
                warnings.push(format!("{name}:{}: {}", e.line, e.message));
            }
            sets.extend(library.sets.clone());
            Source { name, library }
        })
        .collect();
    (sources, warnings)
}

fn merge(sources: Vec<Source>) -> RiskLibrary {
    let mut lib = RiskLibrary::default();
    for s in sources {
        lib.extend(s.library);
    }
    lib
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_library_reads_cleanly_and_grades() {
        let (lib, errors) = RiskLibrary::parse(BUILT_IN);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(lib.phrases.len() > 90, "{}", lib.phrases.len());
        for category in haven_core::risk::CATEGORIES {
            assert!(
                lib.phrases.iter().any(|p| p.category == *category),
                "{category} has phrases"
            );
        }
        assert_eq!(lib.grade("how do i kill myself").grade, 5);
        assert_eq!(lib.grade("suicide prevention assembly").grade, 0);
        assert_eq!(lib.grade("history of the holocaust homework").grade, 0);
        assert_eq!(lib.grade("Scunthorpe United results").grade, 0);
        assert_eq!(lib.grade("chcę umrzeć").grade, 5);
    }

    /// The library's alerts on ordinary texts that only name a harm (texts of our own, written
    /// to look like the kinds of false alert found in the project's training texts).
    #[test]
    fn naming_a_harm_or_signing_off_with_kisses_does_not_alert() {
        let (lib, _) = RiskLibrary::parse(BUILT_IN);
        for ordinary in [
            "see you at grandad's on sunday, love you loads xxx",
            "kocham cię babciu, do zobaczenia w sobotę xxx",
            "news: teenager jailed for county lines dealing in seaside town",
            "a guide for parents: what sextortion is and how to report it",
            "ks3 bitesize: what was the holocaust",
            "how to make a bath bomb with citric acid",
            "drama club: in the last scene the villain gets stabbed (fake blood!)",
            "shh it's our little secret, the surprise party for miss is on friday",
        ] {
            let g = lib.grade(ordinary);
            assert!(g.grade < 4, "{ordinary:?} alerted: {g:?}");
        }
        // What still alerts: the search for porn, sextortion under way, a plan.
        for concern in [
            "free xxx videos",
            "he says he'll send my pics to everyone unless i pay by tonight",
            "i'm going to kill myself on friday",
        ] {
            let g = lib.grade(concern);
            assert!(g.grade >= 4, "{concern:?} did not alert: {g:?}");
        }
    }
}
