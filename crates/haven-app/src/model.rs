//! `haven monitor train` and the grader the CLI uses: the model trained from the built-in texts
//! (or files given), optionally with the school's triage decisions, measured, written and
//! checksummed.

use std::path::{Path, PathBuf};

use std::sync::Arc;

use anyhow::{Context as _, Result};
use haven_model::{Model, TrainOptions};
use haven_monitor::grader::{Grader, Tuning, TUNING};
use haven_monitor::library::read_library;
use haven_monitor::training::{self, Labelled, Measure, SchoolReport};

use crate::context::Context;

/// The SHA-256 of a model file, in hex.
pub fn sha256(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Which model the CLI grades with.
#[derive(Debug, Clone)]
pub enum ModelChoice {
    /// The school's, else the built-in one (as `serve` does).
    InForce,
    /// This file.
    File(PathBuf),
    /// None: the library alone.
    None,
}

/// The grader the CLI uses: the library as `haven monitor grade` reads it (the file given, or
/// the built-in one and the school's files) and the model chosen. Warnings by line.
pub fn grader(
    ctx: &Context,
    library: Option<&Path>,
    model: &ModelChoice,
) -> Result<(Grader, Vec<String>)> {
    if let (None, ModelChoice::InForce) = (library, model) {
        // Just as `serve` reads them: the library and the model in one go.
        let (m, warnings) = haven_monitor::Monitoring::new(
            haven_monitor::library::BUILT_IN,
            ctx.data_dir.join("risk"),
            haven_monitor::MonitorRules::default(),
        );
        return Ok((m.grader(), warnings));
    }
    let (lib, mut warnings) = read_library(ctx.data_dir.join("risk"), library)?;
    let model = match model {
        ModelChoice::None => None,
        ModelChoice::File(f) => {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            Some(Arc::new(
                Model::from_bytes(&bytes).with_context(|| format!("reading {}", f.display()))?,
            ))
        }
        ModelChoice::InForce => {
            haven_monitor::library::model_in_force(&ctx.data_dir, &mut warnings).map(|(m, _)| m)
        }
    };
    Ok((
        Grader {
            library: Arc::new(lib),
            model,
            tuning: TUNING,
        },
        warnings,
    ))
}

/// Labelled texts from files (or the built-in ones when none are given); lines that cannot be
/// read are returned as warnings.
pub fn labelled(files: &[PathBuf]) -> Result<(Vec<Labelled>, Vec<String>)> {
    if files.is_empty() {
        return Ok((training::built_in(), Vec::new()));
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let text =
            String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8", f.display()))?;
        let (l, errors) = training::read_labelled(&f.display().to_string(), &text);
        out.extend(l);
        warnings.extend(errors.iter().map(ToString::to_string));
    }
    Ok((out, warnings))
}

/// The tunings cross-validation tries: the one shipped first.
pub fn tunings() -> Vec<Tuning> {
    let mut v = vec![TUNING];
    for concern in [0.5, 0.8] {
        for alert in [0.4, 0.5, 0.6, 0.7] {
            for none in [0.3, 0.5, 0.7, 1.01] {
                let t = Tuning {
                    concern,
                    alert,
                    ordinary: TUNING.ordinary,
                    none,
                };
                if t != TUNING {
                    v.push(t);
                }
            }
        }
    }
    v
}

/// Cross-validates on `texts`, each tuning in turn.
pub fn cross_validate(
    grader: &Grader,
    texts: &[Labelled],
    options: &TrainOptions,
    folds: usize,
) -> Vec<(Tuning, Measure)> {
    training::cross_validate(grader, texts, options, folds.max(2), &tunings())
}

/// A model trained and written.
#[derive(Debug)]
pub struct Trained {
    /// Texts trained on, and those left out (labels not understood).
    pub texts: usize,
    /// See `texts`.
    pub skipped: usize,
    /// Bytes in memory.
    pub memory: usize,
    /// The file's SHA-256.
    pub sha256: String,
    /// Where it was written.
    pub out: PathBuf,
    /// With decisions: the figures kept for the library page.
    pub report: Option<SchoolReport>,
}

/// Trains on `texts` (plus `decisions`, when given: the school's model, with its figures kept
/// beside it) and writes the model to `out` (a temporary file renamed, so a model in force is
/// never half-written).
pub fn train(
    before: &Grader,
    texts: &[Labelled],
    decisions: Option<&[Labelled]>,
    options: &TrainOptions,
    out: &Path,
    now_ms: i64,
) -> Result<Trained> {
    let examples: Vec<_> = texts
        .iter()
        .chain(decisions.unwrap_or_default())
        .map(|l| l.example.clone())
        .collect();
    let (model, skipped) = haven_model::train(&examples, options);
    let bytes = model.to_bytes();
    let sha = sha256(&bytes);
    let report = decisions.map(|d| {
        let (was, now) = training::measure_decisions(before, texts, d, options);
        SchoolReport {
            at_ms: now_ms,
            built_in: texts.len(),
            decisions: d.len(),
            sha256: sha.clone(),
            before: was,
            after: now,
        }
    });
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = out.with_extension("model.new");
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    if let Some(dir) = out.parent() {
        let path = dir.join("school.json");
        match &report {
            Some(r) => std::fs::write(&path, serde_json::to_vec_pretty(r)?)
                .with_context(|| format!("writing {}", path.display()))?,
            // A school model trained without decisions: figures about an earlier one would
            // mislead the library page.
            None if out.file_name().is_some_and(|n| n == "school.model") => {
                let _ = std::fs::remove_file(&path);
            }
            None => {}
        }
    }
    Ok(Trained {
        texts: examples.len() - skipped,
        skipped,
        memory: model.memory(),
        sha256: sha,
        out: out.to_owned(),
        report,
    })
}
