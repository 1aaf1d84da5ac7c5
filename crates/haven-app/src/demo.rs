//! The demo school: sample lists (`config/demo-lists/`), invented people
//! (`config/demo-people/`) and invented activity, so that a newcomer sees a populated Haven at
//! once; and the same activity generator for benchmarks.

use std::net::IpAddr;

use anyhow::{Context as _, Result};
use haven_core::event::{Event, Source};
use haven_core::policy::Action;
use haven_lists::{Format, Progress, SourceSpec};
use haven_store::events::EventQuery;
use haven_store::people::{ImportOptions, Kind};
use haven_store::Store;

/// Sample lists for `--demo` (`config/demo-lists/`), by Haven category.
const DEMO_LISTS: &[(&str, &str)] = &[
    (
        "gambling",
        include_str!("../../../config/demo-lists/gambling/domains"),
    ),
    (
        "pornography",
        include_str!("../../../config/demo-lists/pornography/domains"),
    ),
    (
        "social-networks",
        include_str!("../../../config/demo-lists/social-networks/domains"),
    ),
    (
        "chat",
        include_str!("../../../config/demo-lists/chat/domains"),
    ),
    (
        "games",
        include_str!("../../../config/demo-lists/games/domains"),
    ),
    (
        "doh",
        include_str!("../../../config/demo-lists/doh/domains"),
    ),
    (
        "vpn-proxy",
        include_str!("../../../config/demo-lists/vpn-proxy/domains"),
    ),
    (
        "dating",
        include_str!("../../../config/demo-lists/dating/domains"),
    ),
    (
        "malware",
        include_str!("../../../config/demo-lists/malware/domains"),
    ),
];

/// Writes the sample lists into the data directory and imports them, unless lists exist.
pub fn ensure_lists(ctx: &crate::Context) -> Result<()> {
    let store = ctx.lists();
    if !store.sources()?.is_empty() {
        return Ok(());
    }
    let dir = ctx.data_dir.join("demo-lists");
    for (category, text) in DEMO_LISTS {
        let d = dir.join(category);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        std::fs::write(d.join("domains"), text)
            .with_context(|| format!("writing {}", d.display()))?;
    }
    let spec = SourceSpec {
        name: "demo".to_owned(),
        location: dir.display().to_string(),
        format: Format::Tree,
        category: None,
        mapping: Some("haven".to_owned()),
        ca_file: None,
    };
    store.rebuild(&[spec], None, false, &mut Progress::hidden())?;
    Ok(())
}

/// The demo's password for every invented person (printed in the banner).
pub const DEMO_PASSWORD: &str = "demo-password";

const PUPILS: &str = include_str!("../../../config/demo-people/pupils.csv");
const STAFF: &str = include_str!("../../../config/demo-people/staff.csv");
const PARENTS: &str = include_str!("../../../config/demo-people/parents.csv");

/// Imports the demo people and gives them activity, unless the store already has people.
/// Returns whether it did.
pub async fn ensure_people(store: &Store) -> Result<bool> {
    if !store.find_people("", 1).await?.is_empty() {
        return Ok(false);
    }
    for (kind, csv) in [
        (Kind::Pupil, PUPILS),
        (Kind::Staff, STAFF),
        (Kind::Parent, PARENTS),
    ] {
        let report = store
            .import_people(kind, csv.as_bytes(), ImportOptions::default())
            .await?;
        anyhow::ensure!(
            report.errors.is_empty(),
            "the demo {} did not import: {:?}",
            kind.id(),
            report.errors
        );
    }
    for p in store.find_people("", 1000).await? {
        if let Some(user) = &p.username {
            store.set_password(user, DEMO_PASSWORD).await?;
        }
    }
    generate(store, 20_000, 7).await?;
    demo_captures(store).await?;
    // Invented safeguarding records over the last two terms, so Records and the governors'
    // report have something in them.
    crate::records::generate(store, 60, 0, 180).await?;
    Ok(true)
}

/// Invented searches by invented pupils, graded by the built-in risk library and model, so that the
/// demo's triage queue has something in it (their alerts go nowhere until `[alerts]` is set).
async fn demo_captures(store: &Store) -> Result<()> {
    let (library, _) = haven_core::risk::RiskLibrary::parse(haven_monitor::library::BUILT_IN);
    let grader = haven_monitor::grader::Grader {
        library: std::sync::Arc::new(library),
        model: haven_model::Model::from_bytes(haven_monitor::training::BUILT_IN_MODEL)
            .ok()
            .map(std::sync::Arc::new),
        tuning: haven_monitor::grader::TUNING,
    };
    let pupils: Vec<String> = store
        .find_people("", 1000)
        .await?
        .into_iter()
        .filter(|p| p.kind == "pupil")
        .filter_map(|p| p.username)
        .collect();
    let now = haven_store::now_ms();
    let mut captures = Vec::new();
    for (i, (minutes_ago, text)) in [
        (300, "everyone at school hates me"),
        (240, "how to hide cuts from my mum"),
        (180, "online c@sino free spins"),
        (120, "nobody likes me and they keep hitting me"),
        (45, "how do i k1ll myself"),
        (20, "suicide prevention week assembly"),
    ]
    .into_iter()
    .enumerate()
    {
        let Some(user) = pupils.get(pupils.len().saturating_sub(1 + i % 3)) else {
            break;
        };
        let a = grader.assess(text);
        if a.grade.grade == 0 {
            continue;
        }
        captures.push(a.capture(
            now - minutes_ago * 60_000,
            "search",
            &format!("10.20.6.{}", 10 + i),
            Some(user),
            &format!(
                "https://www.google.co.uk/search?q={}",
                text.replace(' ', "+")
            ),
            text,
        ));
    }
    store
        .record_captures(&haven_store::captures::CaptureRules::default(), &captures)
        .await?;
    Ok(())
}

/// A small, fast, seeded generator: the same activity every run.
/// A small seeded random-number generator for invented data (the same seed, the same data).
pub(crate) struct Dice(pub(crate) u64);

impl Dice {
    pub(crate) fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const ALLOWED: &[&str] = &[
    "www.bbc.co.uk",
    "www.bbc.co.uk/bitesize",
    "www.google.co.uk",
    "en.wikipedia.org",
    "www.youtube.com",
    "scratch.mit.edu",
    "www.topmarks.co.uk",
    "classroom.google.com",
    "www.oxfordowl.co.uk",
    "ttrockstars.com",
    "www.natgeokids.com",
    "www.purplemash.com",
];

const BLOCKED: &[(&str, &str)] = &[
    ("bet365.com", "gambling"),
    ("www.pokerstars.com", "gambling"),
    ("www.tiktok.com", "social-networks"),
    ("www.instagram.com", "social-networks"),
    ("discord.com", "chat"),
    ("www.roblox.com", "games"),
    ("www.hidemyass.com", "vpn-proxy"),
    ("pornhub.com", "pornography"),
];

const SEARCHES: &[&str] = &[
    "volcano facts for kids",
    "how do plants grow",
    "minecraft seeds",
    "times tables games",
    "roman soldiers homework",
    "free robux",
    "unblocked games",
    "vpn to get round school filter",
    "how to draw a dragon",
    "<b>bold</b> & \"quoted\" search",
    "why is the sky blue",
    "best football boots",
];

/// Writes `count` invented events spread over the last `days` days, oldest first, in the
/// event writer's batch sizes: (events written, seconds taken by the store).
pub async fn generate(store: &Store, count: u64, days: u64) -> Result<(u64, f64)> {
    let users: Vec<(String, String)> = store
        .find_people("", 1000)
        .await?
        .into_iter()
        .filter(|p| p.active && p.kind != "parent")
        .filter_map(|p| Some((p.username?, p.group)))
        .collect();
    let now = haven_store::now_ms() as u64;
    let span = days.max(1) * 86_400_000;
    let start = now.saturating_sub(span);
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    const BATCH: usize = 256 * haven_runtime::EVENT_BATCH;
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    let mut busy = 0f64;
    let mut chunk = (0u64, 0f64);
    for i in 0..count {
        let at_ms = start + span * i / count.max(1);
        let device = (dice.next() % 250) as u8 + 2;
        let (user, group) = match users.is_empty() {
            true => (None, "ks2".to_owned()),
            false => {
                let (u, g) = dice.pick(&users);
                (Some(u.clone()), g.clone())
            }
        };
        let client = IpAddr::from([10, 20, (dice.next() % 4) as u8, device]);
        let roll = dice.next() % 100;
        let e = if roll < 55 {
            Event {
                at_ms,
                source: Source::Dns,
                client,
                group,
                user: None,
                name: dice
                    .pick(ALLOWED)
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .to_owned(),
                qtype: Some(1),
                action: Action::Allow,
                category: None,
                reason: None,
                search: None,
                latency_us: 30 + dice.next() % 400,
            }
        } else if roll < 85 {
            Event {
                at_ms,
                source: Source::Proxy,
                client,
                group,
                user,
                name: format!("https://{}/", dice.pick(ALLOWED)),
                qtype: None,
                action: Action::Allow,
                category: None,
                reason: None,
                search: None,
                latency_us: 900 + dice.next() % 40_000,
            }
        } else if roll < 95 {
            let (site, category) = *dice.pick(BLOCKED);
            Event {
                at_ms,
                source: if roll % 2 == 0 {
                    Source::Dns
                } else {
                    Source::Proxy
                },
                client,
                group: group.clone(),
                user: if roll % 2 == 0 { None } else { user },
                name: site.to_owned(),
                qtype: (roll % 2 == 0).then_some(1),
                action: Action::Block,
                category: Some(category.to_owned()),
                reason: Some(format!("{category} (groups.{group}.categories.{category})")),
                search: None,
                latency_us: 20 + dice.next() % 100,
            }
        } else {
            let term = *dice.pick(SEARCHES);
            Event {
                at_ms,
                source: Source::Proxy,
                client,
                group,
                user,
                name: format!(
                    "https://www.google.co.uk/search?q={}",
                    term.replace(' ', "+")
                ),
                qtype: None,
                action: Action::Rewrite,
                category: None,
                reason: Some("safe search: google (strict)".to_owned()),
                search: Some(term.to_owned()),
                latency_us: 2000 + dice.next() % 80_000,
            }
        };
        batch.push(e);
        if batch.len() == BATCH || i + 1 == count {
            let t = haven_runtime::clock::instant();
            store.insert_events(&batch).await?;
            let took = t.elapsed().as_secs_f64();
            busy += took;
            chunk.0 += batch.len() as u64;
            chunk.1 += took;
            written += batch.len() as u64;
            batch.clear();
            // Large runs report each million, so a slowdown as the database grows shows.
            if count >= 2_000_000 && (chunk.0 >= 1_000_000 || i + 1 == count) {
                eprintln!(
                    "  events {:>10} to {:>10}: {:.0} events/s",
                    written - chunk.0,
                    written,
                    chunk.0 as f64 / chunk.1.max(1e-9)
                );
                chunk = (0, 0.0);
            }
        }
    }
    store.refresh_statistics().await?;
    Ok((written, busy))
}

/// Times typical activity searches: one line per kind, with p50 and p99 in milliseconds.
pub async fn bench_search(store: &Store, rounds: usize) -> Result<Vec<String>> {
    let users: Vec<String> = store
        .find_people("", 1000)
        .await?
        .into_iter()
        .filter_map(|p| p.username)
        .collect();
    let now = haven_store::now_ms();
    let mut dice = Dice(42);
    let mut out = Vec::new();
    type MakeQuery<'a> = &'a dyn Fn(&mut Dice) -> EventQuery;
    let kinds: [(&str, MakeQuery<'_>); 6] = [
        ("a person's latest activity", &|d: &mut Dice| EventQuery {
            user: users
                .get((d.next() % users.len().max(1) as u64) as usize)
                .cloned(),
            ..Default::default()
        }),
        ("a device's latest activity", &|d: &mut Dice| EventQuery {
            client: Some(format!("10.20.{}.{}", d.next() % 4, d.next() % 250 + 2)),
            ..Default::default()
        }),
        ("blocks in a category", &|d: &mut Dice| EventQuery {
            category: Some(d.pick(BLOCKED).1.to_owned()),
            action: Some("block".into()),
            ..Default::default()
        }),
        ("searches containing a word", &|d: &mut Dice| EventQuery {
            search: Some(d.pick(SEARCHES).split(' ').next().unwrap_or("a").to_owned()),
            ..Default::default()
        }),
        ("a person's blocks, last day", &|d: &mut Dice| EventQuery {
            user: users
                .get((d.next() % users.len().max(1) as u64) as usize)
                .cloned(),
            action: Some("block".into()),
            from_ms: Some(now - 86_400_000),
            ..Default::default()
        }),
        ("everything, a day a week ago", &|d: &mut Dice| EventQuery {
            from_ms: Some(now - 7 * 86_400_000 + (d.next() % 3_600_000) as i64),
            to_ms: Some(now - 6 * 86_400_000),
            ..Default::default()
        }),
    ];
    for (name, make) in kinds {
        let mut times = Vec::with_capacity(rounds);
        let mut rows = 0usize;
        for _ in 0..rounds {
            let q = make(&mut dice);
            let t = haven_runtime::clock::instant();
            let first = store.search_events(&q).await?;
            // And the next page, as a person scrolling would.
            if let Some(last) = first.last() {
                let next = EventQuery {
                    before: Some(last.cursor()),
                    ..q
                };
                rows += store.search_events(&next).await?.len();
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0 / 2.0);
            rows += first.len();
        }
        times.sort_by(f64::total_cmp);
        let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        out.push(format!(
            "{name:<32} p50 {:>8.2} ms  p99 {:>8.2} ms  ({} rows in {} searches)",
            at(0.5),
            at(0.99),
            rows,
            rounds * 2
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_lists_cover_every_category_they_claim() {
        for (category, text) in DEMO_LISTS {
            assert!(
                haven_core::category::by_id(category).is_some(),
                "{category}"
            );
            assert!(text.lines().count() >= 2, "{category}");
        }
    }
}
