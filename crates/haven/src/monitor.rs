//! `haven monitor`: the risk library, tried by hand. `grade` reads texts from standard input,
//! one a line, and says how each grades against the library (so a DSL can try a phrase).

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::Subcommand;
use haven_core::risk::{Grade, RiskLibrary};

use crate::Context;

/// The starter library (`config/risk/library.txt`).
pub const BUILT_IN: &str = include_str!("../../../config/risk/library.txt");

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Grade texts from standard input, one a line: the grade (0 to 5) and the categories.
    /// With --json, each line in is {"text": ...} and each line out is a JSON object with
    /// grade, categories, matched and set_aside.
    Grade {
        /// JSON lines in and out.
        #[arg(long)]
        json: bool,
        /// Use this library file instead of the built-in one and <data-dir>/risk/*.txt.
        #[arg(long)]
        library: Option<PathBuf>,
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

/// The library: the built-in one and the school's own files in `<data-dir>/risk/`, or the
/// file given. Lines that cannot be read are reported and left out.
pub fn library(ctx: &Context, file: Option<&PathBuf>) -> Result<RiskLibrary> {
    if let Some(f) = file {
        let text = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let (lib, errors) = RiskLibrary::parse(&haven_core::textfile::decode(&text));
        for e in errors {
            eprintln!("{}:{}: {}", f.display(), e.line, e.message);
        }
        return Ok(lib);
    }
    let (m, warnings) = haven_console::monitoring::Monitoring::new(
        BUILT_IN,
        ctx.data_dir.join("risk"),
        haven_store::captures::MonitorRules::default(),
    );
    for w in warnings {
        eprintln!("{w}");
    }
    Ok((*m.library()).clone())
}

/// Turns the data plane's events into captures: search terms the risk library grades 1 or
/// more, and blocked attempts in the categories `[monitor] blocked` names (one capture per
/// person and category in ten minutes: a browser retries, and a page pulls many addresses).
#[derive(Debug, Default)]
pub struct Watcher {
    /// A keyed hash of (who, filter category) → when its last blocked-attempt capture was.
    recent: std::collections::HashMap<u64, u64>,
    keys: std::collections::hash_map::RandomState,
}

/// Blocked attempts by one person in one category within this time are one capture.
const BLOCKED_WINDOW_MS: u64 = 10 * 60_000;

impl Watcher {
    /// Adds the captures `e` makes to `out`.
    pub fn see(
        &mut self,
        library: &RiskLibrary,
        rules: &haven_store::captures::MonitorRules,
        e: &haven_core::event::Event,
        out: &mut Vec<haven_store::captures::NewCapture>,
    ) {
        if let Some(term) = e.search.as_deref() {
            let g = library.grade(term);
            if g.grade > 0 {
                out.push(haven_store::captures::NewCapture::graded(
                    &g,
                    e.at_ms as i64,
                    "search",
                    &e.client.to_string(),
                    e.user.as_deref(),
                    &e.name,
                    term,
                ));
            }
        }
        if e.action != haven_core::policy::Action::Block {
            return;
        }
        let Some(category) = e.category.as_deref() else {
            return;
        };
        let Some(&grade) = rules.blocked.get(category) else {
            return;
        };
        // Hashed rather than kept: a blocked name asked again and again costs no allocation.
        let key = {
            use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
            let mut h = self.keys.build_hasher();
            match &e.user {
                Some(u) => u.hash(&mut h),
                None => e.client.hash(&mut h),
            }
            category.hash(&mut h);
            h.finish()
        };
        if self
            .recent
            .get(&key)
            .is_some_and(|&at| e.at_ms.saturating_sub(at) < BLOCKED_WINDOW_MS)
        {
            return;
        }
        if self.recent.len() >= 100_000 {
            let now = e.at_ms;
            self.recent
                .retain(|_, at| now.saturating_sub(*at) < BLOCKED_WINDOW_MS);
        }
        self.recent.insert(key, e.at_ms);
        let counts_in = haven_store::captures::blocked_category(category);
        out.push(haven_store::captures::NewCapture {
            at_ms: e.at_ms as i64,
            source: if counts_in == "bypass" {
                "bypass".to_owned()
            } else {
                "blocked".to_owned()
            },
            client: e.client.to_string(),
            user: e.user.clone(),
            url: e.name.clone(),
            text: format!(
                "{} blocked ({category}): {}",
                if e.source == haven_core::event::Source::Dns {
                    "DNS lookup"
                } else {
                    "web request"
                },
                e.name
            ),
            grade,
            categories: format!("{counts_in}:{grade}"),
            matched: format!("blocked {category}"),
        });
    }
}

fn as_json(text: &str, g: &Grade) -> serde_json::Value {
    serde_json::json!({
        "text": text,
        "grade": g.grade,
        "categories": g.categories.iter().map(|(c, n)| serde_json::json!({"category": c, "grade": n})).collect::<Vec<_>>(),
        "matched": g.matched,
        "set_aside": g.set_aside,
    })
}

pub fn run(ctx: &Context, cmd: MonitorCommand) -> Result<ExitCode> {
    let (json, file) = match cmd {
        MonitorCommand::Grade { json, library } => (json, library),
        MonitorCommand::Captures { min_grade, json } => return captures(ctx, min_grade, json),
    };
    let lib = library(ctx, file.as_ref())?;
    let mut refused = false;
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
                Some(t) => outln!("{}", as_json(&t, &lib.grade(&t))),
                None => {
                    refused = true;
                    outln!(
                        "{}",
                        serde_json::json!({"error": "expected a JSON object with a \"text\" string", "line": line})
                    );
                }
            }
        } else {
            let g = lib.grade(&line);
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
    Ok(if refused {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn captures(ctx: &Context, min_grade: i64, json: bool) -> Result<ExitCode> {
    let found = ctx.with_store(async |s| {
        s.audit(
            &haven_store::audit::AuditEntry::new(
                &crate::people::operator(),
                "cli",
                haven_store::audit::AuditKind::ReadCaptures,
                haven_store::audit::Subject::OpenCaptures,
            )
            .count("min grade", min_grade),
        )
        .await?;
        Ok(s.open_captures(min_grade, 1000).await?)
    })?;
    for c in found {
        if json {
            outln!("{}", serde_json::to_string(&c)?);
        } else {
            let at = jiff::Timestamp::from_millisecond(c.at_ms)
                .map_or_else(|_| c.at_ms.to_string(), |t| t.to_string());
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
}

#[cfg(test)]
mod watcher_tests {
    use super::*;
    use haven_core::event::Event;
    use haven_core::policy::Action;

    fn event(at_ms: u64, name: &str, action: Action, category: Option<&str>) -> Event {
        Event {
            at_ms,
            source: haven_core::event::Source::Dns,
            client: "10.20.1.5".parse().expect("ip"),
            group: "ks2".into(),
            user: None,
            name: name.into(),
            qtype: Some(1),
            action,
            category: category.map(str::to_owned),
            reason: None,
            search: None,
            latency_us: 1,
        }
    }

    #[test]
    fn blocked_attempts_are_one_capture_per_person_and_category_in_ten_minutes() {
        let (library, _) = RiskLibrary::parse("version 1\n5 | suicide | kill myself\n");
        let rules = haven_store::captures::MonitorRules::default();
        let mut w = Watcher::default();
        let mut out = Vec::new();
        let t = 1_790_000_000_000;
        for (dt, name, category) in [
            (0, "pornhub.com", "pornography"),
            (1_000, "xvideos.com", "pornography"),
            (2_000, "nordvpn.com", "vpn-proxy"),
            (3_000, "bet365.com", "games"),
            (11 * 60_000, "pornhub.com", "pornography"),
        ] {
            w.see(
                &library,
                &rules,
                &event(t + dt, name, Action::Block, Some(category)),
                &mut out,
            );
        }
        // Allowed requests in a blocked-attempt category are not attempts.
        w.see(
            &library,
            &rules,
            &event(t, "pornhub.com", Action::Allow, Some("pornography")),
            &mut out,
        );
        let seen: Vec<(&str, &str, u8)> = out
            .iter()
            .map(|c| (c.source.as_str(), c.categories.as_str(), c.grade))
            .collect();
        assert_eq!(
            seen,
            [
                ("blocked", "pornography:3", 3),
                ("bypass", "bypass:2", 2),
                ("blocked", "pornography:3", 3),
            ]
        );
        // A search term is graded whatever the decision.
        let mut search = event(
            t,
            "https://www.google.com/search?q=x",
            Action::Rewrite,
            None,
        );
        search.search = Some("i want to kill myself".into());
        out.clear();
        w.see(&library, &rules, &search, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].source.as_str(), out[0].grade), ("search", 5));
    }
}
