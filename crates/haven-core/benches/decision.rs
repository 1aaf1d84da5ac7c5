//! Criterion benchmarks of the hot path: normalising a URL and deciding on it.
//!
//! Uses the UT1 lists beside the repository (`../shared/data/ut1`) when present, otherwise a
//! synthetic list of the same size. Run: `cargo bench -p haven-core --bench decision`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use haven_core::listfmt::{parse_line, LineFormat};
use haven_core::policy::{parse_datetime, DEFAULT_POLICY};
use haven_core::snapshot::{EntryKind, SnapshotBuilder};
use haven_core::{Engine, Policy, Snapshot, Target};

fn build() -> (Snapshot, Vec<String>) {
    let ut1 = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ut1");
    let mut b = SnapshotBuilder::new();
    let mut listed = Vec::new();
    if let Ok(dirs) = std::fs::read_dir(&ut1) {
        let mut dirs: Vec<_> = dirs.flatten().filter(|d| d.path().is_dir()).collect();
        dirs.sort_by_key(|d| d.file_name());
        for d in dirs {
            let folder = d.file_name().to_string_lossy().into_owned();
            let cat = haven_core::category::map_ut1(&folder);
            for (file, format) in [("domains", LineFormat::Domains), ("urls", LineFormat::Urls)] {
                let Ok(text) = std::fs::read_to_string(d.path().join(file)) else {
                    continue;
                };
                let Ok(src) = b.add_source(&format!("ut1/{folder}/{file}"), &cat) else {
                    continue;
                };
                for line in text.lines() {
                    for e in parse_line(format, line).unwrap_or_default() {
                        if b.add(src, format.entry_kind(), e).is_ok()
                            && listed.len() < 200_000
                            && file == "domains"
                        {
                            listed.push(e.to_owned());
                        }
                    }
                }
            }
        }
    } else {
        eprintln!(
            "{} not present: using 560,000 synthetic names",
            ut1.display()
        );
        let src = b.add_source("synthetic", "gambling").expect("source");
        for i in 0..560_000 {
            let name = format!("site{i}.example");
            b.add(src, EntryKind::Domain, &name).expect("entry");
            listed.push(name);
        }
    }
    (Snapshot::from_bytes(b.build(0)).expect("snapshot"), listed)
}

fn bench(c: &mut Criterion) {
    let (snapshot, listed) = build();
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
    let engine = Engine::new(Arc::new(snapshot), Arc::new(policy), "bench").expect("engine");
    let ks2 = engine.group_id("ks2").expect("group");
    let at = parse_datetime("2026-11-23T10:00").expect("time");
    // A mix: listed names with prefixes, unlisted names, URLs with paths, CONNECT-style host:port.
    let mut mix = Vec::new();
    for (i, name) in listed.iter().step_by(97).take(4096).enumerate() {
        mix.push(match i % 4 {
            0 => format!("http://www.{name}/index.html"),
            1 => format!("https://cdn.unlisted-{i}.example/assets/app.js?v={i}"),
            2 => format!("{name}:443"),
            _ => format!("http://static.{name}/img/a%20b/../c.png"),
        });
    }
    // Listed IP literals make `www.<ip>` unreadable (as it should be); keep what parses.
    mix.retain(|u| Target::parse(u).is_ok());
    let targets: Vec<Target> = mix
        .iter()
        .map(|u| Target::parse(u).expect("parses"))
        .collect();

    let mut g = c.benchmark_group("decision");
    g.throughput(Throughput::Elements(mix.len() as u64));
    g.bench_function("normalise", |b| {
        let mut t = Target::parse("x.invalid").expect("seed");
        b.iter(|| {
            for u in &mix {
                let _ = black_box(t.parse_into(black_box(u)));
            }
        });
    });
    g.bench_function("decide (normalised)", |b| {
        b.iter(|| {
            for t in &targets {
                black_box(engine.decide(black_box(t), ks2, None, at));
            }
        });
    });
    g.bench_function("normalise + decide", |b| {
        let mut t = Target::parse("x.invalid").expect("seed");
        b.iter(|| {
            for u in &mix {
                if t.parse_into(black_box(u)).is_ok() {
                    black_box(engine.decide(&t, ks2, None, at));
                }
            }
        });
    });
    g.finish();
}

/// The phrase scanner over a 35 KiB page, with e2guardian's packaged lists when installed
/// (Debian's e2guardian, 6,897 phrases), otherwise Haven's built-in list.
fn phrases(c: &mut Criterion) {
    use haven_core::phrases::{import_e2guardian_with_includes, parse, Scanner};
    let mut all = Vec::new();
    let mut queue = vec!["/etc/e2guardian/lists/weightedphraselist".to_owned()];
    while let Some(f) = queue.pop() {
        let Ok(bytes) = std::fs::read(&f) else {
            continue;
        };
        let Ok((p, _, inc)) = import_e2guardian_with_includes(&bytes, &f, "x") else {
            continue;
        };
        all.extend(p);
        queue.extend(inc.into_iter().map(|(p, _)| p));
    }
    if all.is_empty() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/phrases/default.txt"),
        )
        .unwrap_or_default();
        all = parse(&text, "built-in").0;
    }
    let scanner = Scanner::new(&all).expect("scanner");
    let words = "the school library opens at nine and pupils may borrow two books each week for \
                 reading at home our year five class visited the science museum to learn about";
    let mut page = String::from("<html><body>");
    while page.len() < 35 * 1024 {
        page.push_str("<p>");
        page.push_str(words);
        page.push_str("</p>\n");
    }
    let mut g = c.benchmark_group("phrases");
    g.throughput(Throughput::Bytes(page.len() as u64));
    g.bench_function(format!("score 35 KiB, {} phrases", all.len()), |b| {
        b.iter(|| black_box(scanner.score(black_box(page.as_bytes()), true)))
    });
    g.finish();
}

criterion_group!(benches, bench, phrases);
criterion_main!(benches);
