//! `haven monitor`: the risk library and the model, tried by hand, and the model trained.
//! `grade` reads texts from standard input, one a line, and says how each grades (so a DSL can
//! try a phrase); `train` trains the model (`--with-decisions`: the school's own, from its
//! triage decisions; `--folds K`: measure by cross-validation instead).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use haven_app::model::ModelChoice;
use haven_monitor::grader::Assessment;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Grade texts from standard input, one a line: the grade (0 to 5) and the categories.
    /// With --json, each line in is {"text": ...} and each line out is a JSON object with the
    /// grade Haven acts on (grade, categories, matched, set_aside) and both opinions ("library":
    /// its grade and categories; "model": its category, grade and likelihoods).
    Grade {
        /// JSON lines in and out.
        #[arg(long)]
        json: bool,
        /// Use this library file instead of the built-in one and <data-dir>/risk/*.txt.
        #[arg(long)]
        library: Option<PathBuf>,
        /// Use this model file instead of the school's (<data-dir>/model/school.model) or the
        /// built-in one.
        #[arg(long, conflicts_with = "no_model")]
        model: Option<PathBuf>,
        /// Grade by the library alone.
        #[arg(long)]
        no_model: bool,
        /// Also print, on standard error, how long grading took per text (median, 99th
        /// percentile, slowest) and the model's memory.
        #[arg(long)]
        timing: bool,
    },
    /// Train the text model. By default from the built-in texts (config/model/train) into
    /// <data-dir>/model/school.model, which `serve` then uses; the same texts and seed give the
    /// same file (its SHA-256 is printed).
    Train {
        /// Train on these labelled files (CATEGORY, GRADE, LANG, VOICE, TEXT, tab-separated)
        /// instead of the built-in texts.
        #[arg(long)]
        data: Vec<PathBuf>,
        /// Add the school's triage decisions (dismissed: ordinary; promoted: a concern) and
        /// measure the model on them before and after. Reading them is audited; nothing leaves
        /// the school.
        #[arg(long)]
        with_decisions: bool,
        /// Measure by K-fold cross-validation on the texts (each tuning of the combined grade)
        /// and write nothing.
        #[arg(long)]
        folds: Option<usize>,
        /// Where to write the model.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The seed (the order of examples and the starting weights).
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.seed)]
        seed: u64,
        /// Passes over the texts.
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.epochs)]
        epochs: u32,
        /// Length of a text's vector.
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.dim)]
        dim: usize,
        /// The learning rate at the start.
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.rate)]
        rate: f32,
        /// Feature rows (a power of two is quickest).
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.buckets)]
        buckets: u32,
        /// The share of a text's features left out at random in each pass.
        #[arg(long, default_value_t = haven_monitor::training::OPTIONS.dropout)]
        dropout: f32,
    },
    /// Captures awaiting triage, highest grade first (reading them is audited).
    Captures {
        /// Only these grades and above.
        #[arg(long, default_value_t = 1)]
        min_grade: i64,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

fn as_json(text: &str, a: &Assessment) -> serde_json::Value {
    let g = &a.grade;
    let cats = |c: &[(String, u8)]| {
        c.iter()
            .map(|(c, n)| serde_json::json!({"category": c, "grade": n}))
            .collect::<Vec<_>>()
    };
    serde_json::json!({
        "text": text,
        "grade": g.grade,
        "categories": cats(&g.categories),
        "matched": g.matched,
        "set_aside": g.set_aside,
        "library": {"grade": a.library.grade, "categories": cats(&a.library.categories), "matched": a.library.matched},
        "model": a.model,
    })
}

pub fn run(ctx: &Context, cmd: MonitorCommand) -> Result<ExitCode> {
    let (json, timing, file, model) = match cmd {
        MonitorCommand::Grade {
            json,
            library,
            model,
            no_model,
            timing,
        } => (
            json,
            timing,
            library,
            match (model, no_model) {
                (_, true) => ModelChoice::None,
                (Some(f), _) => ModelChoice::File(f),
                (None, false) => ModelChoice::InForce,
            },
        ),
        MonitorCommand::Captures { min_grade, json } => return captures(ctx, min_grade, json),
        MonitorCommand::Train {
            data,
            with_decisions,
            folds,
            out,
            seed,
            epochs,
            dim,
            rate,
            dropout,
            buckets,
        } => {
            let options = haven_model::TrainOptions {
                seed,
                epochs,
                dim,
                rate,
                dropout,
                buckets,
            };
            return train(ctx, &data, with_decisions, folds, out, &options);
        }
    };
    let (grader, warnings) = haven_app::model::grader(ctx, file.as_deref(), &model)?;
    for w in warnings {
        eprintln!("{w}");
    }
    let mut refused = false;
    let mut took = Vec::new();
    let mut timed = |text: &str| {
        let start = haven_runtime::clock::instant();
        let a = grader.assess(text);
        took.push(start.elapsed());
        a
    };
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading standard input")?;
        if json {
            if line.trim().is_empty() {
                continue;
            }
            let text = serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned));
            match text {
                Some(t) => outln!("{}", as_json(&t, &timed(&t))),
                None => {
                    refused = true;
                    outln!(
                        "{}",
                        serde_json::json!({"error": "expected a JSON object with a \"text\" string", "line": line})
                    );
                }
            }
        } else {
            let g = timed(&line).grade;
            let cats: Vec<String> = g
                .categories
                .iter()
                .map(|(c, n)| format!("{c}:{n}"))
                .collect();
            outln!(
                "{}\t{}\t{}",
                g.grade,
                if cats.is_empty() {
                    "-".to_owned()
                } else {
                    cats.join(",")
                },
                line
            );
        }
    }
    if timing && !took.is_empty() {
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize];
        eprintln!(
            "graded {} texts: median {:?}, p99 {:?}, slowest {:?}; model {:.1} MB in memory",
            took.len(),
            at(0.5),
            at(0.99),
            took[took.len() - 1],
            grader.model.as_ref().map_or(0, |m| m.memory()) as f64 / 1e6
        );
    }
    Ok(if refused {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn train(
    ctx: &Context,
    data: &[PathBuf],
    with_decisions: bool,
    folds: Option<usize>,
    out: Option<PathBuf>,
    options: &haven_model::TrainOptions,
) -> Result<ExitCode> {
    let (texts, warnings) = haven_app::model::labelled(data)?;
    for w in &warnings {
        eprintln!("{w}");
    }
    let (before, _) = haven_app::model::grader(ctx, None, &ModelChoice::InForce)?;
    if let Some(k) = folds {
        eprintln!("cross-validating on {} texts, {k} folds", texts.len());
        for (t, m) in haven_app::model::cross_validate(&before, &texts, options, k) {
            outln!(
                "tuning: concern {} alert {} ordinary {} none {}",
                t.concern,
                t.alert,
                t.ordinary,
                t.none
            );
            outln!("summary: {}", m.summary());
            outln!("{}", m.report());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let decisions = if with_decisions {
        let decided =
            ctx.with_store(async |s| Ok(haven_app::admin::decided_captures(&s).await?))?;
        Some(haven_monitor::training::from_decisions(&decided))
    } else {
        None
    };
    let out = out.unwrap_or_else(|| haven_monitor::library::school_model_path(&ctx.data_dir));
    let started = haven_runtime::clock::instant();
    let t = haven_app::model::train(
        &before,
        &texts,
        decisions.as_deref(),
        options,
        &out,
        haven_store::now_ms(),
    )?;
    outln!(
        "trained on {} texts ({} left out) in {:.1} s: {} ({:.1} MB in memory), sha256 {}",
        t.texts,
        t.skipped,
        started.elapsed().as_secs_f64(),
        t.out.display(),
        t.memory as f64 / 1e6,
        t.sha256
    );
    if let Some(r) = &t.report {
        let pct = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{:.0}%", v * 100.0));
        outln!(
            "the school's decisions: {} promoted, {} dismissed",
            r.before.promoted,
            r.before.dismissed
        );
        outln!(
            "  before: precision {}, recall {}",
            pct(r.before.precision()),
            pct(r.before.recall())
        );
        outln!(
            "  after:  precision {}, recall {} (each decision judged by a model trained without it)",
            pct(r.after.precision()),
            pct(r.after.recall())
        );
    }
    outln!(
        "`haven serve` uses <data-dir>/model/school.model from its next start or reload (SIGHUP)."
    );
    Ok(ExitCode::SUCCESS)
}

fn captures(ctx: &Context, min_grade: i64, json: bool) -> Result<ExitCode> {
    let found =
        ctx.with_store(async |s| Ok(haven_app::admin::open_captures(&s, min_grade).await?))?;
    for c in found {
        if json {
            outln!("{}", serde_json::to_string(&c)?);
        } else {
            let at = crate::when(c.at_ms);
            outln!(
                "{:<6} grade {} {at} {:<15} {:<14} {:<20} {:?}",
                c.id,
                c.grade,
                c.client,
                c.user.as_deref().unwrap_or("-"),
                c.categories,
                c.text
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
