//! The model's training texts and how a grader is measured on labelled texts.
//!
//! Training texts are lines of `CATEGORY<TAB>GRADE<TAB>LANG<TAB>VOICE<TAB>TEXT` (category
//! `benign` with grade 0 for an ordinary text), the format of `config/model/train/*.tsv` and of
//! the evaluation corpora in `bench/monitor/`. The built-in ones are compiled in, so that a
//! school's server can retrain with its own triage decisions without the source tree.

use std::collections::BTreeMap;

use haven_model::{Example, TrainOptions};

use crate::grader::{Grader, Tuning};

/// The training texts Haven ships (`config/model/train/`), by file name.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "concerns.tsv",
        include_str!("../../../config/model/train/concerns.tsv"),
    ),
    (
        "ordinary.tsv",
        include_str!("../../../config/model/train/ordinary.tsv"),
    ),
    (
        "mixed.tsv",
        include_str!("../../../config/model/train/mixed.tsv"),
    ),
    (
        "pages.tsv",
        include_str!("../../../config/model/train/pages.tsv"),
    ),
];

/// The model Haven ships, trained from [`BUILT_IN`] with [`OPTIONS`] by `haven monitor train`.
pub const BUILT_IN_MODEL: &[u8] = include_bytes!("../../../config/model/text.model");

/// The model the proxy classifies pages with (`config/model/page.model`): the first model,
/// trained with [`OPTIONS`] from the 7,903 texts `config/model/train/` held at commit d018dbe
/// (that commit's test reproduces it byte for byte). Taught three times as many ordinary texts,
/// the text model grew less sure of harmful pages (72 of 80 blocked against 80 on four page
/// sets, 17 of 20 against 20 on a fifth written after: docs/BENCHMARKS.md), so pages keep it.
pub const BUILT_IN_PAGE_MODEL: &[u8] = include_bytes!("../../../config/model/page.model");

/// How the shipped model is trained.
pub const OPTIONS: TrainOptions = TrainOptions {
    buckets: 1 << 17,
    dim: 32,
    epochs: 30,
    rate: 0.4,
    seed: 14,
    dropout: 0.3,
};

/// One labelled text with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    /// The text and its label.
    pub example: Example,
    /// Its language (`en`, `cy`, `pl`, `ur-Latn`, `ur-Arab`, `ar`, …).
    pub lang: String,
    /// `search`, `chat`, `doc`, `page` or `decision`.
    pub voice: String,
}

/// A line of labelled texts that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct LineError {
    /// The file.
    pub file: String,
    /// The line (1 is the first).
    pub line: usize,
    /// Why.
    pub message: String,
}

/// Reads labelled texts; lines that cannot be read are returned as errors and left out.
pub fn read_labelled(file: &str, text: &str) -> (Vec<Labelled>, Vec<LineError>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| LineError {
            file: file.to_owned(),
            line: i + 1,
            message,
        };
        let f: Vec<&str> = line.splitn(5, '\t').collect();
        let [category, grade, lang, voice, text] = f[..] else {
            errors.push(err(
                "expected CATEGORY, GRADE, LANG, VOICE and TEXT, tab-separated".into(),
            ));
            continue;
        };
        let category = if category == "benign" {
            "none"
        } else {
            category
        };
        if !haven_model::CATEGORIES.contains(&category) {
            errors.push(err(format!("{category:?} is not a category")));
            continue;
        }
        let grade = match grade.trim().parse::<u8>() {
            Ok(g) if g <= 5 && (g == 0) == (category == "none") => g,
            _ => {
                errors.push(err(format!(
                    "{grade:?}: a concern's grade is 1 to 5, an ordinary text's 0"
                )));
                continue;
            }
        };
        out.push(Labelled {
            example: Example {
                text: text.trim().to_owned(),
                category: category.to_owned(),
                grade,
                weight: 1.0,
            },
            lang: lang.to_owned(),
            voice: voice.to_owned(),
        });
    }
    (out, errors)
}

/// The built-in training texts.
pub fn built_in() -> Vec<Labelled> {
    BUILT_IN
        .iter()
        .flat_map(|(file, text)| read_labelled(file, text).0)
        .collect()
}

/// How a grader did on labelled texts: the figures the issue and `docs/BENCHMARKS.md` quote.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Measure {
    /// Concerns of grade 5, and how many alerted (grade 4 or more).
    pub grade_5: (usize, usize),
    /// Concerns of grade 4 or 5, and how many alerted.
    pub grade_4_5: (usize, usize),
    /// Concerns of grade 4 or 5 graded 3 or more.
    pub grade_4_5_captured_3: usize,
    /// Ordinary texts, how many alerted, and how many were graded at all (1 or more).
    pub ordinary: (usize, usize, usize),
    /// Concerns, graded exactly right, and within one grade.
    pub concerns: (usize, usize, usize),
    /// By language: concerns of grade 4 or 5 and how many alerted.
    pub by_lang: BTreeMap<String, (usize, usize)>,
    /// By category: concerns of grade 4 or 5, how many alerted in that category.
    pub by_category: BTreeMap<String, (usize, usize)>,
}

impl Measure {
    /// Adds one text's outcome: its label and the grade and categories given.
    pub fn add(&mut self, l: &Labelled, grade: u8, categories: &[(String, u8)]) {
        let e = &l.example;
        let alerted = grade >= 4;
        if e.grade == 0 {
            self.ordinary.0 += 1;
            self.ordinary.1 += usize::from(alerted);
            self.ordinary.2 += usize::from(grade >= 1);
            return;
        }
        self.concerns.0 += 1;
        self.concerns.1 += usize::from(grade == e.grade);
        self.concerns.2 += usize::from(grade.abs_diff(e.grade) <= 1);
        if e.grade == 5 {
            self.grade_5.0 += 1;
            self.grade_5.1 += usize::from(alerted);
        }
        if e.grade >= 4 {
            self.grade_4_5.0 += 1;
            self.grade_4_5.1 += usize::from(alerted);
            self.grade_4_5_captured_3 += usize::from(grade >= 3);
            let lang = self.by_lang.entry(l.lang.clone()).or_default();
            lang.0 += 1;
            lang.1 += usize::from(alerted);
            let right = categories.iter().any(|(c, n)| *c == e.category && *n >= 4);
            let cat = self.by_category.entry(e.category.clone()).or_default();
            cat.0 += 1;
            cat.1 += usize::from(right);
        }
    }

    /// The main figures on one line.
    pub fn summary(&self) -> String {
        let p = |a: usize, n: usize| {
            if n == 0 {
                0.0
            } else {
                100.0 * a as f64 / n as f64
            }
        };
        let mut s = format!(
            "g5 {:.0}% rec45 {:.1}% benign-alert {:.1}% benign-graded {:.1}% exact {:.1}% within1 {:.1}% |",
            p(self.grade_5.1, self.grade_5.0),
            p(self.grade_4_5.1, self.grade_4_5.0),
            p(self.ordinary.1, self.ordinary.0),
            p(self.ordinary.2, self.ordinary.0),
            p(self.concerns.1, self.concerns.0),
            p(self.concerns.2, self.concerns.0),
        );
        for (lang, (n, a)) in &self.by_lang {
            s.push_str(&format!(" {lang} {:.0}", p(*a, *n)));
        }
        s
    }

    /// The figures as a few lines of text.
    pub fn report(&self) -> String {
        let pct = |a: usize, n: usize| {
            if n == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * a as f64 / n as f64)
            }
        };
        let mut s = format!(
            "grade 5 alerting:        {} of {} ({})\n\
             grade 4-5 alert recall:  {} of {} ({}); captured at 3+: {}\n\
             ordinary texts alerting: {} of {} ({}); graded at all: {} ({})\n\
             exact grade:             {} of {} concerns ({}); within one: {}\n",
            self.grade_5.1,
            self.grade_5.0,
            pct(self.grade_5.1, self.grade_5.0),
            self.grade_4_5.1,
            self.grade_4_5.0,
            pct(self.grade_4_5.1, self.grade_4_5.0),
            pct(self.grade_4_5_captured_3, self.grade_4_5.0),
            self.ordinary.1,
            self.ordinary.0,
            pct(self.ordinary.1, self.ordinary.0),
            self.ordinary.2,
            pct(self.ordinary.2, self.ordinary.0),
            self.concerns.1,
            self.concerns.0,
            pct(self.concerns.1, self.concerns.0),
            pct(self.concerns.2, self.concerns.0),
        );
        s.push_str("grade 4-5 alert recall by language:");
        for (lang, (n, a)) in &self.by_lang {
            s.push_str(&format!(" {lang} {}", pct(*a, *n)));
        }
        s.push_str("\ngrade 4-5 alerting in their own category:");
        for (c, (n, a)) in &self.by_category {
            s.push_str(&format!(" {c} {}", pct(*a, *n)));
        }
        s.push('\n');
        s
    }
}

/// Measures `grader` on `texts`.
pub fn measure(grader: &Grader, texts: &[Labelled]) -> Measure {
    let mut m = Measure::default();
    for l in texts {
        let g = grader.grade(&l.example.text);
        m.add(l, g.grade, &g.categories);
    }
    m
}

/// `k`-fold cross-validation of the combined grader on `texts`: each fold graded by a model
/// trained on the others, with the library in `grader` and each of `tunings`. Folds are drawn
/// by a fixed rule (the text's position), so the figures are the same every run.
pub fn cross_validate(
    grader: &Grader,
    texts: &[Labelled],
    options: &TrainOptions,
    k: usize,
    tunings: &[Tuning],
) -> Vec<(Tuning, Measure)> {
    let mut out: Vec<(Tuning, Measure)> =
        tunings.iter().map(|t| (*t, Measure::default())).collect();
    for fold in 0..k {
        let train: Vec<Example> = texts
            .iter()
            .enumerate()
            .filter(|(i, _)| i % k != fold)
            .map(|(_, l)| l.example.clone())
            .collect();
        let (model, _) = haven_model::train(&train, options);
        let model = std::sync::Arc::new(model);
        for (i, l) in texts.iter().enumerate() {
            if i % k != fold {
                continue;
            }
            let library = grader.library.grade(&l.example.text);
            let opinion = model.judge(&l.example.text);
            for (t, m) in &mut out {
                let a = crate::grader::combine(library.clone(), opinion.as_ref(), t);
                m.add(l, a.grade.grade, &a.grade.categories);
            }
        }
    }
    out
}

/// The school's triage decisions as labelled texts: a dismissed capture is an ordinary text; a
/// promoted one is a concern in its category (the highest it graded in) at its grade.
pub fn from_decisions(decided: &[haven_store::captures::Capture]) -> Vec<Labelled> {
    use haven_store::captures::CaptureStatus;
    decided
        .iter()
        .filter_map(|c| {
            let (category, grade) = match c.status {
                CaptureStatus::Dismissed => ("none".to_owned(), 0),
                CaptureStatus::Promoted => {
                    let top = c.categories.split(',').next()?.split(':').next()?;
                    if !haven_model::CATEGORIES[1..].contains(&top) {
                        return None;
                    }
                    (top.to_owned(), c.grade.clamp(1, 5) as u8)
                }
                CaptureStatus::Open => return None,
            };
            Some(Labelled {
                example: Example {
                    text: c.text.clone(),
                    category,
                    grade,
                    // A decision is the school's own word: it counts twice.
                    weight: 2.0,
                },
                lang: "school".to_owned(),
                voice: "decision".to_owned(),
            })
        })
        .collect()
}

/// How a grader does on the school's decisions: of the promoted captures, how many it still
/// grades at all (recall), and of all it grades, how many were promoted (precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OnDecisions {
    /// Promoted captures.
    pub promoted: usize,
    /// Dismissed captures.
    pub dismissed: usize,
    /// Promoted captures still graded 1 or more.
    pub promoted_kept: usize,
    /// Dismissed captures still graded 1 or more.
    pub dismissed_kept: usize,
}

impl OnDecisions {
    /// Adds one decision and whether the grader graded it.
    pub fn add(&mut self, promoted: bool, kept: bool) {
        if promoted {
            self.promoted += 1;
            self.promoted_kept += usize::from(kept);
        } else {
            self.dismissed += 1;
            self.dismissed_kept += usize::from(kept);
        }
    }

    /// Of the promoted, the share still graded.
    pub fn recall(&self) -> Option<f64> {
        (self.promoted > 0).then(|| self.promoted_kept as f64 / self.promoted as f64)
    }

    /// Of all still graded, the share promoted.
    pub fn precision(&self) -> Option<f64> {
        let kept = self.promoted_kept + self.dismissed_kept;
        (kept > 0).then(|| self.promoted_kept as f64 / kept as f64)
    }
}

/// What `haven monitor train --with-decisions` found, kept beside the school's model for the
/// library page.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SchoolReport {
    /// When it was trained (ms since the epoch).
    pub at_ms: i64,
    /// The built-in texts trained on.
    pub built_in: usize,
    /// The school's decisions trained on.
    pub decisions: usize,
    /// The model's SHA-256.
    pub sha256: String,
    /// The grader in force before, on the decisions.
    pub before: OnDecisions,
    /// The new model on the decisions, each judged by a model trained without it (five folds).
    pub after: OnDecisions,
}

/// The file beside the school's model that holds its [`SchoolReport`].
pub fn school_report_path(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("model").join("school.json")
}

/// Measures `before` on the decisions, then each fold of the decisions with a model trained on
/// `base` and the other folds (honest "after" figures: no decision judges itself), with the
/// library of `before`.
pub fn measure_decisions(
    before: &Grader,
    base: &[Labelled],
    decisions: &[Labelled],
    options: &TrainOptions,
) -> (OnDecisions, OnDecisions) {
    let mut was = OnDecisions::default();
    for d in decisions {
        was.add(d.example.grade > 0, before.grade(&d.example.text).grade > 0);
    }
    let mut now = OnDecisions::default();
    let k = 5.min(decisions.len());
    for fold in 0..k {
        let train: Vec<Example> = base
            .iter()
            .map(|l| l.example.clone())
            .chain(
                decisions
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % k != fold)
                    .map(|(_, l)| l.example.clone()),
            )
            .collect();
        let grader = Grader {
            model: Some(std::sync::Arc::new(haven_model::train(&train, options).0)),
            ..before.clone()
        };
        for (_, d) in decisions.iter().enumerate().filter(|(i, _)| i % k == fold) {
            now.add(d.example.grade > 0, grader.grade(&d.example.text).grade > 0);
        }
    }
    (was, now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_text_and_page_models_load_with_the_shipped_options() {
        for bytes in [super::BUILT_IN_MODEL, super::BUILT_IN_PAGE_MODEL] {
            let m = haven_model::Model::from_bytes(bytes).expect("a model");
            assert_eq!(
                (m.buckets(), m.dim()),
                (super::OPTIONS.buckets, super::OPTIONS.dim)
            );
        }
        assert_ne!(super::BUILT_IN_MODEL, super::BUILT_IN_PAGE_MODEL);
    }
}
