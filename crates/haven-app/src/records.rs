//! Invented safeguarding records for demonstrations and the records benchmark
//! (`bench/records.sh`): concerns about the store's pupils, written through the store as staff
//! write them (each in its transaction, with its audit entry); and the timings the aims
//! are stated in: searching records, and a chronology of 500 entries rendered by the console.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use haven_records::{category, EntryKind, Part, RecordKind};
use haven_store::records::{Actor, Child, NewConcern, NewEntry, RecordQuery, DEFAULT_SCHOOL};
use haven_store::Store;

use crate::demo::Dice;

/// Invented words of accounts: places, things said, things done.
const PLACES: &[&str] = &[
    "playground",
    "classroom",
    "dinner hall",
    "corridor",
    "school bus",
    "library",
    "toilets",
    "field",
    "ICT suite",
    "after-school club",
    "home",
    "group chat",
    "gaming chat",
];
const SAID: &[&str] = &[
    "said someone keeps messaging her at night",
    "was upset after a video was shared in the group chat",
    "told me an older boy asked for a photo",
    "said he had not eaten since yesterday",
    "showed me messages calling him names",
    "said a stranger in a game offered her gift cards",
    "was crying and said everyone laughs at her",
    "said his brother's friends want him to carry a bag",
    "said she does not want to go home tonight",
    "told me about a page telling her not to eat",
    "was searching for ways to hurt himself",
    "had bruises on both arms and said he fell",
];
const DONE: &[&str] = &[
    "Reassured them and told the DSL.",
    "Kept the tablet and took it to the office.",
    "Wrote down their words straight away.",
    "Stayed with them until the DSL came.",
];

/// Writes `count` invented concerns about the store's pupils, spread over the last `days` days,
/// and (when `long` is more than none) gives one pupil a chronology of `long` entries: (concerns
/// written, that pupil's id, seconds taken).
pub async fn generate(store: &Store, count: u64, long: u64, days: u64) -> Result<(u64, i64, f64)> {
    let people = store.find_people("", 100_000).await?;
    let pupils: Vec<i64> = people
        .iter()
        .filter(|p| p.kind == "pupil" && p.active)
        .map(|p| p.id)
        .collect();
    let author = people
        .iter()
        .find(|p| p.kind == "staff")
        .context("import staff first (haven people import staff FILE)")?;
    anyhow::ensure!(
        pupils.len() >= 3,
        "import pupils first (haven people import pupils FILE)"
    );
    let actor = Actor {
        person: author.id,
        username: author.username.as_deref().unwrap_or("cli"),
        address: "cli",
    };
    let mut dice = Dice(7);
    let pupil_categories: Vec<&category::Category> = category::CATEGORIES
        .iter()
        .filter(|k| k.id != "staff-conduct")
        .collect();
    let now = haven_store::now_ms();
    let started = haven_runtime::clock::instant();
    for i in 0..count {
        let n = 1 + (dice.next() % 3) as usize;
        let mut children = Vec::new();
        for _ in 0..n {
            // The first pupil is kept for the long chronology alone.
            let person = *dice.pick(&pupils[1..]);
            if !children.iter().any(|c: &Child| c.person == person) {
                children.push(Child {
                    person,
                    part: if children.is_empty() {
                        Part::Subject
                    } else {
                        *dice.pick(&[Part::Victim, Part::AllegedPerpetrator, Part::Witness])
                    },
                });
            }
        }
        let place = dice.pick(PLACES);
        let account = format!(
            "In the {place}, the child {}. Later the child {}. Concern number {i}.",
            dice.pick(SAID),
            dice.pick(SAID)
        );
        store
            .log_concern(
                &NewConcern {
                    school: DEFAULT_SCHOOL,
                    kind: RecordKind::Pupil,
                    // Allegations about staff are records of their own, not pupils'.
                    category: dice.pick(&pupil_categories).id.to_owned(),
                    children,
                    staff: None,
                    happened_at_ms: now - (dice.next() % (days.max(1) * 86_400_000)) as i64,
                    place: (*place).to_owned(),
                    account,
                    actions: (*dice.pick(DONE)).to_owned(),
                    told_dsl_at_ms: None,
                    capture: None,
                    evidence: Vec::new(),
                    write_up: None,
                    body_map: Vec::new(),
                },
                &actor,
            )
            .await?;
    }
    // One child with a long chronology.
    let child = pupils[0];
    if long == 0 {
        return Ok((count, child, started.elapsed().as_secs_f64()));
    }
    let record = store
        .log_concern(
            &NewConcern {
                school: DEFAULT_SCHOOL,
                kind: RecordKind::Pupil,
                category: "welfare".into(),
                children: vec![Child {
                    person: child,
                    part: Part::Subject,
                }],
                staff: None,
                happened_at_ms: now - 365 * 86_400_000,
                place: "classroom".into(),
                account: "The start of a long chronology.".into(),
                actions: String::new(),
                told_dsl_at_ms: None,
                capture: None,
                evidence: Vec::new(),
                write_up: None,
                body_map: Vec::new(),
            },
            &actor,
        )
        .await?;
    for j in 0..long {
        store
            .add_entry(
                &NewEntry {
                    school: DEFAULT_SCHOOL,
                    record,
                    person: None,
                    at_ms: now - 365 * 86_400_000 + (j as i64) * 3_600_000,
                    kind: *dice.pick(&[
                        EntryKind::Action,
                        EntryKind::Meeting,
                        EntryKind::ParentContact,
                        EntryKind::Note,
                    ]),
                    text: format!("Entry {j}: the child {}.", dice.pick(SAID)),
                    rationale: None,
                },
                &actor,
            )
            .await?;
    }
    Ok((count, child, started.elapsed().as_secs_f64()))
}

fn percentiles(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    let at = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
    (at(0.5), at(0.99))
}

/// Times searches of the records (p50, p99) and the chronology of `child` rendered by the
/// console in this process (the store's reads, the page and its audit entry), as the DSL
/// opens it: one line each.
pub async fn bench(
    store: &Store,
    data_dir: &std::path::Path,
    child: i64,
    rounds: usize,
) -> Result<Vec<String>> {
    let mut dice = Dice(42);
    let mut out = Vec::new();
    let words: Vec<String> = PLACES
        .iter()
        .chain(SAID)
        .flat_map(|s| s.split(' '))
        .filter(|w| w.len() > 3)
        .map(str::to_owned)
        .collect();
    let pupils: Vec<String> = store
        .find_people("", 100_000)
        .await?
        .into_iter()
        .filter(|p| p.kind == "pupil")
        .map(|p| p.last_name)
        .collect();
    type MakeQuery<'a> = &'a dyn Fn(&mut Dice) -> RecordQuery;
    let kinds: [(&str, MakeQuery<'_>); 4] = [
        ("a word", &|d: &mut Dice| RecordQuery {
            words: d.pick(&words).clone(),
            limit: 50,
            ..RecordQuery::default()
        }),
        ("a child's surname", &|d: &mut Dice| RecordQuery {
            words: d.pick(&pupils).clone(),
            limit: 50,
            ..RecordQuery::default()
        }),
        ("two words, open records", &|d: &mut Dice| RecordQuery {
            words: format!("{} {}", d.pick(&words), d.pick(&words)),
            open_only: true,
            limit: 50,
            ..RecordQuery::default()
        }),
        ("a concern's number", &|d: &mut Dice| RecordQuery {
            words: format!("number {}", d.next() % 100_000),
            limit: 50,
            ..RecordQuery::default()
        }),
    ];
    for (name, make) in kinds {
        let mut times = Vec::with_capacity(rounds);
        let mut rows = 0;
        for _ in 0..rounds {
            let q = make(&mut dice);
            let t = haven_runtime::clock::instant();
            rows += store.search_records(DEFAULT_SCHOOL, &q).await?.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99) = percentiles(times);
        out.push(format!(
            "search: {name:<26} p50 {p50:>8.2} ms  p99 {p99:>8.2} ms  ({rows} records in {rounds} searches)"
        ));
    }
    // The chronology page, through the console's router, as the DSL (two factors given).
    let entries = store.chronology(DEFAULT_SCHOOL, child).await?.len();
    let mut dsl = None;
    for p in store.find_people("", 100_000).await? {
        if let (true, Some(u)) = (p.kind == "staff", p.username) {
            if let Some(who) = store.identity(&u).await? {
                if who.roles.contains(&haven_store::accounts::Role::Dsl) {
                    dsl = Some(who);
                    break;
                }
            }
        }
    }
    let who = dsl.context("no DSL among the staff: import staff with a DSL first")?;
    let (token, _) = store
        .create_session(who.person_id, "127.0.0.1", true)
        .await?;
    let engine = haven_core::Engine::new(
        Arc::new(haven_core::Snapshot::empty()),
        Arc::new(haven_core::Policy::from_toml(
            haven_core::policy::DEFAULT_POLICY,
        )?),
        "bench",
    )?;
    let (monitoring, _) = haven_monitor::Monitoring::new(
        "",
        data_dir.join("risk"),
        haven_monitor::MonitorRules::default(),
    );
    let console = haven_console::Console::new(
        store.clone(),
        Arc::new(haven_runtime::LiveEngine::new(engine)),
        data_dir.join("policy.toml"),
        haven_console::ConsoleConfig::default(),
        Arc::new(monitoring),
    );
    let mut router = console.router();
    let mut times = Vec::with_capacity(rounds);
    let mut size = 0;
    for _ in 0..rounds {
        let req = hyper::Request::get(format!("/records/people/{child}"))
            .header("cookie", format!("haven_session={token}"))
            .body(http_body_util::Empty::<hyper::body::Bytes>::new())?;
        let t = haven_runtime::clock::instant();
        let resp = tower_service::Service::call(&mut router, req).await?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(status.is_success(), "the chronology page answered {status}");
        size = body.len();
    }
    let (p50, p99) = percentiles(times);
    out.push(format!(
        "chronology page, {entries} entries ({} KiB)    p50 {p50:>8.2} ms  p99 {p99:>8.2} ms",
        size / 1024
    ));
    Ok(out)
}

/// Adds a key to the school's vault; with `reseal`, seals every piece of the school's evidence
/// again under it (so the old keys open nothing new and can be retired): (the new version,
/// how many were sealed again).
pub async fn rotate(
    store: &Store,
    vault: &haven_vault::Vault,
    school: i64,
    reseal: bool,
) -> Result<(u32, usize)> {
    let operator = crate::admin::operator();
    let actor = Actor {
        person: operator_person(store).await?,
        username: &operator,
        address: "cli",
    };
    let version = vault.rotate(school)?;
    store
        .audit(
            &haven_store::audit::AuditEntry::new(
                &operator,
                "cli",
                haven_store::audit::AuditKind::RotateKey,
                haven_store::audit::Subject::Records,
            )
            .count("school", school)
            .count("key version", i64::from(version)),
        )
        .await?;
    let mut n = 0;
    if reseal {
        for id in store.evidence_ids(school).await? {
            let Some((e, sealed)) = store.evidence_sealed(school, id).await? else {
                continue;
            };
            if i64::from(version) == e.key_version {
                continue;
            }
            let again = vault.reseal(
                school,
                &haven_store::evidence::seal_context(school, &e.sha256),
                &sealed,
            )?;
            let v = haven_vault::Vault::version_of(&again).unwrap_or(version);
            store
                .reseal_evidence(school, id, i64::from(v), &again, &actor)
                .await?;
            n += 1;
        }
    }
    Ok((version, n))
}

/// The person id the store's write records for a command run at the server: the first member
/// of staff (records name a person; the audit entry names the operator).
async fn operator_person(store: &Store) -> Result<i64> {
    store
        .find_people("", 100_000)
        .await?
        .into_iter()
        .find(|p| p.kind == "staff")
        .map(|p| p.id)
        .context("no staff in the store: import staff first")
}

/// Copies the vault's key files into a new directory under `dest`, readable by its owner only:
/// its path and how many files.
pub fn backup(
    vault_dir: &std::path::Path,
    dest: &std::path::Path,
    stamp: &str,
) -> Result<(std::path::PathBuf, usize)> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    let out = dest.join(format!("haven-vault-{stamp}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&out)
        .with_context(|| format!("making {}", out.display()))?;
    let mut n = 0;
    for entry in
        std::fs::read_dir(vault_dir).with_context(|| format!("reading {}", vault_dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        let text = name.to_string_lossy();
        if !(text.ends_with(".keys")
            || text.ends_with(".signing.p8")
            || text.ends_with(".transfer.key"))
        {
            continue;
        }
        let bytes = std::fs::read(entry.path())
            .with_context(|| format!("reading {}", entry.path().display()))?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(out.join(&name))
            .with_context(|| format!("writing {}", out.join(&name).display()))?;
        std::io::Write::write_all(&mut f, &bytes)?;
        f.sync_all()?;
        n += 1;
    }
    anyhow::ensure!(
        n > 0,
        "{} holds no keys yet: nothing has been sealed",
        vault_dir.display()
    );
    Ok((out, n))
}

/// The DSL a command run at the server acts as: the one named (a person id), or the school's
/// only DSL. (id, full name.)
pub async fn dsl_for(store: &Store, named: Option<i64>) -> Result<(i64, String)> {
    let dsls = store.staff_with_role("dsl").await?;
    match named {
        Some(id) => dsls.into_iter().find(|d| d.0 == id).with_context(|| {
            format!("person {id} is not a DSL here (the DSL sends and receives a child's file)")
        }),
        None => match dsls.as_slice() {
            [one] => Ok(one.clone()),
            [] => {
                anyhow::bail!("this school has no DSL: give a member of staff the DSL role first")
            }
            _ => anyhow::bail!(
                "this school has {} DSLs: say which one is acting with --dsl ID ({})",
                dsls.len(),
                dsls.iter()
                    .map(|d| format!("{} {}", d.0, d.1))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    }
}

/// Seals a child's file to the school whose identity line is `to`, writes it to `out` (a new
/// file, the owner's only), and records the transfer: the transfer's id and the file's size.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    store: &Store,
    vault: &haven_vault::Vault,
    school: i64,
    school_name: &str,
    person: i64,
    to: &str,
    fingerprint: &str,
    dsl: Option<i64>,
    out: &std::path::Path,
) -> Result<(i64, usize)> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let to = haven_vault::Identity::parse(to)?;
    // The key line came by email; its fingerprint, read over the phone by the new school's
    // DSL, is what shows the line is theirs.
    anyhow::ensure!(
        fingerprint.trim().eq_ignore_ascii_case(&to.fingerprint()),
        "the key line's fingerprint is {}, not {}: check the line with the new school's DSL by phone before sealing the file to it",
        to.fingerprint(),
        fingerprint.trim()
    );
    let (id, name) = dsl_for(store, dsl).await?;
    let operator = crate::admin::operator();
    let actor = Actor {
        person: id,
        username: &operator,
        address: "cli",
    };
    // The file is made first (refusing one that exists), so a transfer is recorded only when
    // its file can be written.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .with_context(|| format!("writing {} (it must not exist yet)", out.display()))?;
    let acting = haven_store::transfer::Acting {
        actor,
        name: &name,
        school: school_name,
    };
    let sent = store
        .send_transfer(vault, school, person, &to, &acting)
        .await;
    let (bytes, transfer) = match sent {
        Ok(s) => s,
        Err(e) => {
            drop(f);
            let _ = std::fs::remove_file(out);
            return Err(e.into());
        }
    };
    std::io::Write::write_all(&mut f, &bytes)?;
    f.sync_all()?;
    Ok((transfer, bytes.len()))
}

/// Imports a sealed file sent to this school; writes the signed receipt to `receipt_out`.
#[allow(clippy::too_many_arguments)]
pub async fn receive(
    store: &Store,
    vault: &haven_vault::Vault,
    school: i64,
    school_name: &str,
    file: &std::path::Path,
    from: &str,
    person: Option<i64>,
    despite_mismatch: bool,
    dsl: Option<i64>,
    receipt_out: &std::path::Path,
) -> Result<haven_store::transfer::Imported> {
    let sealed = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let from = haven_vault::Identity::parse(from)?;
    let (id, name) = dsl_for(store, dsl).await?;
    let operator = crate::admin::operator();
    let actor = Actor {
        person: id,
        username: &operator,
        address: "cli",
    };
    let got = store
        .import_transfer(
            vault,
            school,
            &sealed,
            &haven_store::transfer::Receiving {
                from: from.signing,
                person,
                despite_mismatch,
            },
            &haven_store::transfer::Acting {
                actor,
                name: &name,
                school: school_name,
            },
        )
        .await?;
    std::fs::write(receipt_out, &got.receipt)
        .with_context(|| format!("writing the receipt to {}", receipt_out.display()))?;
    Ok(got)
}

/// Records a receipt returned by the new school (checked against its key): the transfer's id.
pub async fn receipt(
    store: &Store,
    vault: &haven_vault::Vault,
    school: i64,
    file: &std::path::Path,
) -> Result<(i64, haven_vault::Receipt)> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let operator = crate::admin::operator();
    let actor = Actor {
        person: match dsl_for(store, None).await {
            Ok(d) => d.0,
            Err(_) => operator_person(store).await?,
        },
        username: &operator,
        address: "cli",
    };
    let (id, _, r) = store.accept_receipt(vault, school, &text, &actor).await?;
    Ok((id, r))
}
