//! The store's repository tests, run against SQLite always and against PostgreSQL when
//! `HAVEN_TEST_POSTGRES` names a server (`postgres://user@host:port/db`; `scripts/test` starts
//! one). Each test gets a database of its own.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use haven_core::event::{Event, Source};
use haven_core::policy::Action;
use haven_store::accounts::{Failure, SignInError};
use haven_store::audit::{AuditCheck, AuditEntry, AuditKind, Subject};
use haven_store::captures::CaptureRules;
use haven_store::events::EventQuery;
use haven_store::people::{ImportOptions, Kind};
use haven_store::{Store, StoreError};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A fresh SQLite store, and a fresh PostgreSQL one when a server is given: (which, store, URL).
async fn stores_at(name: &str) -> Vec<(String, Store, String)> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("haven-store-{}-{name}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let url = format!("sqlite://{}?mode=rwc", dir.join("haven.db").display());
    let mut out = vec![(
        "sqlite".to_owned(),
        Store::open(&url).await.expect("open sqlite"),
        url,
    )];
    match std::env::var("HAVEN_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => {
            let db = format!("haven_t{}_{n}", std::process::id());
            let admin = Store::raw(&url).await.expect("connect to PostgreSQL");
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&admin)
                .await
                .expect("drop");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&admin)
                .await
                .expect("create database");
            admin.close().await;
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            let url = format!("{base}/{db}");
            let mut store = Store::open(&url).await.expect("open postgres");
            store
                .use_audit_key(&dir.join("postgres"))
                .await
                .expect("audit key");
            out.push(("postgres".to_owned(), store, url));
        }
        _ => eprintln!("{name}: PostgreSQL skipped (HAVEN_TEST_POSTGRES not set)"),
    }
    out
}

/// As [`stores_at`], without the URLs.
async fn stores(name: &str) -> Vec<(String, Store)> {
    stores_at(name)
        .await
        .into_iter()
        .map(|(d, s, _)| (d, s))
        .collect()
}

trait Raw {
    async fn raw(url: &str) -> Result<sqlx::AnyPool, sqlx::Error>;
}

impl Raw for Store {
    async fn raw(url: &str) -> Result<sqlx::AnyPool, sqlx::Error> {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(url).await
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

const PUPILS: &str = "\u{feff}UPN,Legal Forename,Legal Surname,DOB,Year,Reg Group\n\
A123456789012,Amara,Okafor,09/03/2016,Year 5,5B\n\
B123456789012,Zoë,Nowak,2019-11-30,R,RS\n\
C123456789012,Tom,Ellis,2013-01-15,8,8T\n\
D123456789012,Bad,Date,31/02/2016,Year 5,5B\n\
E123456789012,No,Year,2016-01-01,Year 15,5B\n";

#[test]
fn schema_migrates_once_and_refuses_a_newer_database() {
    rt().block_on(async {
        for (db, store) in stores("schema").await {
            assert_eq!(store.schema_version().await.expect("version"), 9, "{db}");
            store.close().await;
        }
        // Reopening a migrated file is a no-op; a file from a newer Haven is refused.
        let dir = std::env::temp_dir().join(format!("haven-store-newer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("haven.db");
        let store = Store::open_sqlite(&path).await.expect("first open");
        store.close().await;
        let store = Store::open_sqlite(&path).await.expect("second open");
        assert_eq!(store.schema_version().await.expect("version"), 9);
        store.close().await;
        let raw = Store::raw(&format!("sqlite://{}", path.display()))
            .await
            .expect("raw");
        sqlx::query(
            "INSERT INTO haven_schema (version, name, applied_at) VALUES (99, 'future', 0)",
        )
        .execute(&raw)
        .await
        .expect("insert");
        raw.close().await;
        match Store::open_sqlite(&path).await {
            Err(StoreError::TooNew {
                found: 99,
                known: 9,
            }) => {}
            other => panic!("expected TooNew, got {other:?}"),
        }
    });
}

#[test]
fn one_open_review_request_per_person_and_site() {
    rt().block_on(async {
        for (db, store) in stores("reviews-once").await {
            let add = |user: Option<&'static str>, client: &'static str, url: &'static str| {
                let store = store.clone();
                async move {
                    store
                        .add_review(1, client, "ks2", user, url, "gambling")
                        .await
                        .expect("add")
                }
            };
            let first = add(Some("amara.okafor"), "10.0.0.5", "http://bet365.com/").await;
            assert!(first.is_some(), "{db}");
            // The same pupil again, from another device or for another page of the site: kept once.
            assert_eq!(
                add(Some("amara.okafor"), "10.0.0.6", "http://bet365.com/").await,
                None,
                "{db}"
            );
            assert_eq!(
                add(Some("amara.okafor"), "10.0.0.5", "http://bet365.com/odds").await,
                None,
                "{db}"
            );
            // Another pupil, another site, or an unsigned device: each its own.
            assert!(
                add(Some("tom.ellis"), "10.0.0.5", "http://bet365.com/")
                    .await
                    .is_some(),
                "{db}"
            );
            assert!(
                add(Some("amara.okafor"), "10.0.0.5", "http://poker.example/")
                    .await
                    .is_some(),
                "{db}"
            );
            assert!(
                add(None, "10.0.0.7", "http://bet365.com/").await.is_some(),
                "{db}"
            );
            assert_eq!(
                add(None, "10.0.0.7", "http://bet365.com/").await,
                None,
                "{db}"
            );
            // Once decided, the pupil may ask again.
            let id = first.expect("id");
            assert!(store
                .decide_review(id, false, "owen.price", "no")
                .await
                .expect("decide"));
            assert!(
                add(Some("amara.okafor"), "10.0.0.5", "http://bet365.com/")
                    .await
                    .is_some(),
                "{db}"
            );
            assert_eq!(
                store
                    .reviews(haven_store::reviews::ReviewStatus::Open, 100)
                    .await
                    .expect("open")
                    .len(),
                4,
                "{db}"
            );
            store.close().await;
        }
    });
}

#[test]
fn pupils_import_with_row_errors_updates_and_leavers() {
    rt().block_on(async {
        for (db, store) in stores("pupils").await {
            let r = store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("import");
            assert_eq!((r.added, r.updated, r.left), (3, 0, 0), "{db}: {r:?}");
            let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [5, 6], "{db}: {:?}", r.errors);
            assert!(r.errors[0].message.contains("31/02/2016"), "{:?}", r.errors);
            assert!(r.errors[1].message.contains("Year 15"), "{:?}", r.errors);

            let amara = &store.find_people("amara", 10).await.expect("find")[0];
            assert_eq!(
                (
                    amara.group.as_str(),
                    amara.year_group.as_deref(),
                    amara.class.as_deref()
                ),
                ("ks2", Some("5"), Some("5B"))
            );
            assert_eq!(amara.username.as_deref(), Some("amara.okafor"));
            let zoe = &store.find_people("nowak", 10).await.expect("find")[0];
            assert_eq!(
                (zoe.first_name.as_str(), zoe.group.as_str()),
                ("Zoë", "eyfs")
            );
            assert_eq!(zoe.username.as_deref(), Some("zoe.nowak"));

            // A dry run of a changed file changes nothing.
            let moved = PUPILS.replace("Year 5,5B\nB", "Year 5,5C\nB");
            let dry = store
                .import_people(
                    Kind::Pupil,
                    moved.as_bytes(),
                    ImportOptions {
                        dry_run: true,
                        ..Default::default()
                    },
                )
                .await
                .expect("dry run");
            assert_eq!((dry.updated, dry.unchanged), (1, 2), "{db}: {dry:?}");
            assert_eq!(
                store.find_people("amara", 1).await.expect("find")[0]
                    .class
                    .as_deref(),
                Some("5B")
            );
            // The same file again, with a class change: one update, the rest unchanged.
            let r = store
                .import_people(Kind::Pupil, moved.as_bytes(), ImportOptions::default())
                .await
                .expect("re-import");
            assert_eq!(
                (r.added, r.updated, r.unchanged, r.left),
                (0, 1, 2, 0),
                "{db}: {r:?}"
            );
            assert_eq!(
                store.find_people("amara", 1).await.expect("find")[0]
                    .class
                    .as_deref(),
                Some("5C")
            );

            // Tom is not in the next export: a leaver, disabled but kept.
            let without_tom: String = moved
                .lines()
                .filter(|l| !l.contains("Ellis"))
                .map(|l| format!("{l}\n"))
                .collect();
            let r = store
                .import_people(
                    Kind::Pupil,
                    without_tom.as_bytes(),
                    ImportOptions::default(),
                )
                .await
                .expect("import without Tom");
            assert_eq!(r.left, 1, "{db}: {r:?}");
            let tom = &store.find_people("ellis", 1).await.expect("find")[0];
            assert!(!tom.active, "{db}");
            // A row whose id cannot be read makes nobody a leaver.
            let r = store
                .import_people(
                    Kind::Pupil,
                    "UPN,Forename,Surname,DOB,Year\n,X,Y,2016-01-01,5\n".as_bytes(),
                    ImportOptions::default(),
                )
                .await
                .expect("import with an unreadable id");
            assert_eq!((r.left, r.errors.len()), (0, 1), "{db}: {r:?}");
            // He comes back.
            let r = store
                .import_people(Kind::Pupil, moved.as_bytes(), ImportOptions::default())
                .await
                .expect("import with Tom");
            assert_eq!((r.updated, r.left), (1, 0), "{db}: {r:?}");
            assert!(store.find_people("ellis", 1).await.expect("find")[0].active);
            store.close().await;
        }
    });
}

#[test]
fn a_partial_export_does_not_disable_the_school() {
    rt().block_on(async {
        for (db, store) in stores("partial").await {
            let mut csv = String::from("UPN,Forename,Surname,DOB,Year\n");
            for i in 0..30 {
                csv.push_str(&format!("P{i:04},Child{i},Test,2016-01-01,4\n"));
            }
            store
                .import_people(Kind::Pupil, csv.as_bytes(), ImportOptions::default())
                .await
                .expect("import");
            let one_class: String = csv.lines().take(6).map(|l| format!("{l}\n")).collect();
            let err = store
                .import_people(Kind::Pupil, one_class.as_bytes(), ImportOptions::default())
                .await
                .expect_err("refused");
            assert!(
                err.to_string().contains("25 of 30 active pupils"),
                "{db}: {err}"
            );
            assert!(
                store.find_people("child29", 1).await.expect("find")[0].active,
                "{db}: nothing changed"
            );
            let r = store
                .import_people(
                    Kind::Pupil,
                    one_class.as_bytes(),
                    ImportOptions {
                        allow_many_leavers: true,
                        ..Default::default()
                    },
                )
                .await
                .expect("allowed");
            assert_eq!(r.left, 25, "{db}");
            let err = store
                .import_people(
                    Kind::Pupil,
                    "Name,Age\nA,3\n".as_bytes(),
                    ImportOptions::default(),
                )
                .await
                .expect_err("no columns");
            assert!(
                err.to_string().contains("no column for id, first_name"),
                "{db}: {err}"
            );
            store.close().await;
        }
    });
}

#[test]
fn staff_roles_parents_and_sign_in() {
    rt().block_on(async {
        for (db, store) in stores("staff").await {
            store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("pupils");
            let staff = "Staff ID,First Name,Last Name,Email,Roles\n\
                S1,Priya,Shah,p.shah@demo-school.example,DSL; Teacher\n\
                S2,Owen,Price,o.price@demo-school.example,Network Manager\n\
                S3,Kim,Lee,k.lee@demo-school.example,Caretaker\n\
                S4,Ada,Teach,a.teach@demo-school.example,Teacher\n";
            let r = store
                .import_people(Kind::Staff, staff.as_bytes(), ImportOptions::default())
                .await
                .expect("staff");
            assert_eq!(r.added, 3, "{db}: {r:?}");
            assert_eq!(r.errors.len(), 1, "{db}");
            assert!(
                r.errors[0].message.contains("\"Caretaker\""),
                "{:?}",
                r.errors
            );
            let parents = "Contact ID,Forename,Surname,Email,Children,Relationship\n\
                G1,Ada,Okafor,ada@home.example,A123456789012,Mother\n\
                G2,Ben,Nobody,ben@home.example,Z999,Father\n";
            let r = store
                .import_people(Kind::Parent, parents.as_bytes(), ImportOptions::default())
                .await
                .expect("parents");
            assert_eq!((r.added, r.errors.len()), (1, 1), "{db}: {r:?}");
            assert_eq!(r.errors[0].line, 3);

            let who = store
                .identity("priya.shah")
                .await
                .expect("identity")
                .expect("Priya");
            assert_eq!(who.group, "staff");
            assert!(who.needs_two_factor(), "a DSL needs two factors");
            assert!(
                store
                    .identity("owen.price")
                    .await
                    .expect("identity")
                    .expect("Owen")
                    .needs_two_factor(),
                "the network manager sees pupils' searches"
            );
            assert!(!store
                .identity("ada.teach")
                .await
                .expect("identity")
                .expect("Ada")
                .needs_two_factor());

            // Passwords: short refused, then sign in; wrong ones count; five lock the account.
            assert!(store.set_password("amara.okafor", "short").await.is_err());
            store
                .set_password("amara.okafor", "purple-giraffe-7")
                .await
                .expect("set");
            let ok = store
                .sign_in("amara.okafor", "purple-giraffe-7")
                .await
                .expect("db");
            assert_eq!(ok.map(|s| s.who.group), Ok("ks2".to_owned()), "{db}");
            assert_eq!(
                store.sign_in("amara.okafor", "wrong").await.expect("db"),
                Err(SignInError::Wrong(Failure {
                    in_a_row: 1,
                    locked_until: None
                }))
            );
            assert_eq!(
                store.sign_in("nobody.here", "x").await.expect("db"),
                Err(SignInError::Refused)
            );
            for _ in 0..4 {
                let _ = store.sign_in("amara.okafor", "wrong").await.expect("db");
            }
            assert!(
                matches!(
                    store
                        .sign_in("amara.okafor", "purple-giraffe-7")
                        .await
                        .expect("db"),
                    Err(SignInError::Locked(_))
                ),
                "{db}: locked after five failures"
            );
            // A leaver cannot sign in.
            store
                .set_password("tom.ellis", "another-pass-9")
                .await
                .expect("set");
            let without_tom: String = PUPILS
                .lines()
                .filter(|l| !l.contains("Ellis"))
                .map(|l| format!("{l}\n"))
                .collect();
            store
                .import_people(
                    Kind::Pupil,
                    without_tom.as_bytes(),
                    ImportOptions::default(),
                )
                .await
                .expect("import");
            assert_eq!(
                store
                    .sign_in("tom.ellis", "another-pass-9")
                    .await
                    .expect("db"),
                Err(SignInError::Refused)
            );
            store.close().await;
        }
    });
}

fn event(
    n: u64,
    user: Option<&str>,
    action: Action,
    category: Option<&str>,
    search: Option<&str>,
) -> Event {
    Event {
        at_ms: 1_790_000_000_000 + n * 1000,
        source: if search.is_some() {
            Source::Proxy
        } else {
            Source::Dns
        },
        client: IpAddr::from([10, 0, (n % 7) as u8, 2]),
        group: "ks2".into(),
        user: user.map(str::to_owned),
        name: format!("site{n}.example"),
        qtype: search.is_none().then_some(1),
        action,
        category: category.map(str::to_owned),
        reason: category.map(|c| format!("{c} (groups.ks2.categories.{c})")),
        search: search.map(str::to_owned),
        latency_us: 40,
    }
}

#[test]
fn events_are_stored_searched_paged_and_pruned() {
    rt().block_on(async {
        for (db, store) in stores("events").await {
            let mut batch = Vec::new();
            for n in 0..1000u64 {
                let e = match n % 10 {
                    0 => event(
                        n,
                        Some("amara.okafor"),
                        Action::Block,
                        Some("gambling"),
                        None,
                    ),
                    1 => event(
                        n,
                        Some("amara.okafor"),
                        Action::Rewrite,
                        None,
                        Some(if n % 20 == 1 {
                            "100% <b>volcano</b>"
                        } else {
                            "lego"
                        }),
                    ),
                    _ => event(n, None, Action::Allow, None, None),
                };
                batch.push(e);
            }
            store.insert_events(&batch).await.expect("insert");
            assert_eq!(store.count_events().await.expect("count"), 1000, "{db}");
            // One row standing for a question asked five times counts five.
            let repeated = event(1500, None, Action::Allow, None, None);
            store
                .insert_counted(&[(&repeated, 5)])
                .await
                .expect("counted");
            assert_eq!(store.count_events().await.expect("count"), 1005, "{db}");
            let found = store
                .search_events(&EventQuery {
                    from_ms: Some(repeated.at_ms as i64),
                    limit: 1,
                    ..Default::default()
                })
                .await
                .expect("search");
            assert_eq!(found[0].repeats, 5, "{db}");

            let blocked = store
                .search_events(&EventQuery {
                    user: Some("amara.okafor".into()),
                    action: Some("block".into()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("search");
            assert_eq!(blocked.len(), 100, "{db}");
            assert!(
                blocked.windows(2).all(|w| w[0].id > w[1].id),
                "newest first"
            );
            assert_eq!(blocked[0].category.as_deref(), Some("gambling"));
            // The search text is matched literally: '%' is not a wildcard.
            let found = store
                .search_events(&EventQuery {
                    search: Some("100% <B>VOLCANO".into()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("search text");
            assert_eq!(found.len(), 50, "{db}");
            assert_eq!(found[0].search.as_deref(), Some("100% <b>volcano</b>"));
            let none = store
                .search_events(&EventQuery {
                    search: Some("1000".into()),
                    ..Default::default()
                })
                .await
                .expect("search text");
            assert!(none.is_empty(), "{db}");
            let all_searches = store
                .search_events(&EventQuery {
                    search: Some(String::new()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("searches");
            assert_eq!(all_searches.len(), 100, "{db}");
            // Paging: three pages of 40 by address, no overlap, none missed.
            let mut seen = Vec::new();
            let mut before = None;
            loop {
                let page = store
                    .search_events(&EventQuery {
                        client: Some("10.0.3.2".into()),
                        before,
                        limit: 40,
                        ..Default::default()
                    })
                    .await
                    .expect("page");
                if page.is_empty() {
                    break;
                }
                before = page.last().map(|e| e.cursor());
                seen.extend(page.into_iter().map(|e| e.id));
            }
            let expected = (0..1000).filter(|n| n % 7 == 3).count();
            assert_eq!(seen.len(), expected, "{db}");
            let in_range = store
                .search_events(&EventQuery {
                    from_ms: Some(1_790_000_000_000 + 100_000),
                    to_ms: Some(1_790_000_000_000 + 200_000),
                    category: Some("gambling".into()),
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .expect("range");
            assert_eq!(in_range.len(), 10, "{db}");
            // Events at the same millisecond page by id: none repeated, none skipped.
            let same: Vec<Event> = (0..30)
                .map(|n| Event {
                    at_ms: 1_790_000_000_000 + 2_000_000,
                    name: format!("same{n}.example"),
                    ..event(n, None, Action::Allow, None, None)
                })
                .collect();
            store.insert_events(&same).await.expect("insert");
            let (mut names, mut before) = (Vec::new(), None);
            loop {
                let page = store
                    .search_events(&EventQuery {
                        from_ms: Some(1_790_000_000_000 + 2_000_000),
                        before,
                        limit: 7,
                        ..Default::default()
                    })
                    .await
                    .expect("page");
                let Some(last) = page.last() else { break };
                before = Some(last.cursor());
                names.extend(page.iter().map(|e| e.name.clone()));
            }
            names.sort();
            names.dedup();
            assert_eq!(names.len(), 30, "{db}");
            // Retention: DNS events older than the 500th second go; proxy events stay.
            let gone = store
                .prune_events(Some("dns"), 1_790_000_000_000 + 500_000)
                .await
                .expect("prune");
            assert_eq!(gone, 450, "{db}");
            assert_eq!(store.count_events().await.expect("count"), 585, "{db}");
            store.close().await;
        }
    });
}

#[test]
fn the_audit_chain_shows_tampering() {
    rt().block_on(async {
        for (db, store, url) in stores_at("audit").await {
            for (i, kind) in [
                AuditKind::SignIn,
                AuditKind::ReadActivity,
                AuditKind::ApproveReview,
                AuditKind::ReadActivity,
            ]
            .into_iter()
            .enumerate()
            {
                store
                    .audit(
                        &AuditEntry::new("priya.shah", "127.0.0.1", kind, Subject::Person(1))
                            .count("step", i as i64),
                    )
                    .await
                    .expect("audit");
            }
            assert_eq!(
                store.verify_audit().await.expect("verify"),
                AuditCheck::Intact { entries: 4 },
                "{db}"
            );
            let log = store.audit_log(None, 10).await.expect("log");
            assert_eq!(log.len(), 4);
            assert_eq!(log[0].detail, "step=3", "newest first");
            assert_eq!(log[0].subject, "person 1");
            // Someone edits the second entry directly in the database.
            let raw = Store::raw(&url).await.expect("raw connection");
            sqlx::query("UPDATE audit SET detail = 'nothing to see' WHERE id = $1")
                .bind(log[2].id)
                .execute(&raw)
                .await
                .expect("tamper");
            raw.close().await;
            match store.verify_audit().await.expect("verify") {
                AuditCheck::Broken { id, why } => {
                    assert_eq!(id, log[2].id, "{db}");
                    assert!(why.contains("changed"), "{why}");
                }
                other => panic!("{db}: {other:?}"),
            }
            store.close().await;
        }
    });
}

/// The unkeyed SHA-256 of an entry of the era before the audit key, as Haven wrote it.
fn unkeyed_hash(prev: &str, at: i64, fields: [&str; 5]) -> String {
    let json = serde_json::json!([prev, at, fields[0], fields[1], fields[2], fields[3], fields[4]]);
    ring::digest::digest(&ring::digest::SHA256, json.to_string().as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn entries_from_before_the_key_still_check_but_are_never_shown_or_forged_after_it() {
    rt().block_on(async {
        let dir = std::env::temp_dir().join(format!("haven-store-legacy-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("haven.db");
        let url = format!("sqlite://{}", path.display());
        // A database as an older Haven left it: two entries with free text, unkeyed.
        Store::open_sqlite(&path).await.expect("create").close().await;
        std::fs::remove_file(dir.join("audit.key")).expect("no key yet");
        let raw = Store::raw(&url).await.expect("raw");
        let mut prev = "0".repeat(64);
        for (at, detail) in [(1_i64, "\"how do i k1ll myself\"; PSHE"), (2, "tom.lewis")] {
            let fields = ["priya.shah", "10.0.0.1", "dismiss capture", "capture 1", detail];
            let hash = unkeyed_hash(&prev, at, fields);
            sqlx::query("INSERT INTO audit (at, actor, address, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(at).bind(fields[0]).bind(fields[1]).bind(fields[2]).bind(fields[3]).bind(fields[4])
                .bind(&prev).bind(&hash)
                .execute(&raw).await.expect("legacy row");
            prev = hash;
        }
        // The upgraded Haven makes its key, which records where the unkeyed era ends.
        let store = Store::open_sqlite(&path).await.expect("upgrade");
        let key = std::fs::read_to_string(dir.join("audit.key")).expect("key file");
        assert!(key.contains("unkeyed-through 2"), "{key}");
        store
            .audit(&AuditEntry::new("dev.mistry", "cli", AuditKind::ReadAuditLog, Subject::AuditLog))
            .await
            .expect("keyed entry");
        assert_eq!(store.verify_audit().await.expect("verify"), AuditCheck::Intact { entries: 3 });
        let log = store.audit_log(None, 10).await.expect("log");
        let shown = format!("{log:?}");
        assert!(!shown.contains("k1ll") && !shown.contains("tom.lewis"), "{shown}");
        assert_eq!(log[2].action, "dismiss capture", "the kind is still shown");
        // A keyed entry rewritten with the old unkeyed hash (to edit it without the key) is
        // caught: after the era's end only keyed codes count.
        let fields = ["dev.mistry", "cli", "read audit log", "audit log", "nothing"];
        let at: i64 = sqlx::query_scalar("SELECT at FROM audit WHERE id = 3").fetch_one(&raw).await.expect("at");
        sqlx::query("UPDATE audit SET detail = $1, hash = $2 WHERE id = 3")
            .bind(fields[4])
            .bind(unkeyed_hash(&prev, at, fields))
            .execute(&raw)
            .await
            .expect("forge");
        match store.verify_audit().await.expect("verify") {
            AuditCheck::Broken { id, why } => {
                assert_eq!(id, 3);
                assert!(why.contains("changed"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        // An unkeyed entry edited and rehashed breaks the first keyed entry after it.
        let fields = ["priya.shah", "10.0.0.1", "dismiss capture", "capture 1", "tom.lewis"];
        let first = unkeyed_hash(&"0".repeat(64), 1, ["priya.shah", "10.0.0.1", "dismiss capture", "capture 1", "edited"]);
        sqlx::query("UPDATE audit SET detail = 'edited', hash = $1 WHERE id = 1").bind(&first).execute(&raw).await.expect("edit");
        sqlx::query("UPDATE audit SET prev_hash = $1, hash = $2 WHERE id = 2")
            .bind(&first)
            .bind(unkeyed_hash(&first, 2, fields))
            .execute(&raw)
            .await
            .expect("rehash");
        match store.verify_audit().await.expect("verify") {
            AuditCheck::Broken { id, why } => {
                assert_eq!(id, 3, "the keyed entry no longer follows");
                assert!(why.contains("does not follow"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        raw.close().await;
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}

#[test]
fn networks_and_devices_say_who_is_asking() {
    rt().block_on(async {
        for (db, store) in stores("devices").await {
            store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("pupils");
            store
                .set_network("10.20.0.0/16", "Main site", "ks2")
                .await
                .expect("network");
            store
                .set_network("10.20.0.0/16", "Main site", "ks1")
                .await
                .expect("changed");
            assert!(store.set_network("10.20.0.0/33", "x", "ks2").await.is_err());
            let nets = store.networks().await.expect("networks");
            assert_eq!(nets.len(), 1, "{db}");
            assert_eq!(
                (nets[0].group.as_str(), nets[0].site.as_deref()),
                ("ks1", Some("Main site"))
            );
            let csv = "name,address,mac,owner,group\n\
                Amara's tablet,10.20.3.7,AA-BB-CC-DD-EE-01,amara.okafor,\n\
                Library PC 1,10.20.9.1,,,staff\n\
                Broken,10.20.999.1,,,\n\
                Nobody's,10.20.3.8,,no.body,\n\
                Spare,,aabb.ccdd.ee02,,\n";
            let r = store.import_devices(csv.as_bytes()).await.expect("devices");
            assert_eq!(r.stored, 3, "{db}: {r:?}");
            assert_eq!(r.errors.iter().map(|e| e.line).collect::<Vec<_>>(), [4, 5]);
            let map = store.device_map().await.expect("map");
            // The tablet takes its owner's group and says whose it is; the spare has no address.
            let tablet = map
                .iter()
                .find(|d| d.name == "Amara's tablet")
                .expect("tablet");
            assert_eq!(
                (tablet.group.as_str(), tablet.owner.as_deref()),
                ("ks2", Some("amara.okafor"))
            );
            assert_eq!(map.len(), 2, "{db}: {map:?}");
            let all = store.devices().await.expect("devices");
            assert_eq!(
                all.iter()
                    .find(|d| d.name == "Spare")
                    .and_then(|d| d.mac.clone())
                    .as_deref(),
                Some("aa:bb:cc:dd:ee:02")
            );
            assert!(store.remove_network("10.20.0.0/16").await.expect("remove"));
            assert!(store.networks().await.expect("n").is_empty());
            store.close().await;
        }
    });
}

#[test]
fn captures_are_triaged_and_count_against_their_phrases() {
    rt().block_on(async {
        for (db, store) in stores("captures").await {
            let new = |text: &str, grade: u8| haven_store::captures::NewCapture {
                at_ms: 1_790_000_000_000 + u64::from(grade) as i64,
                source: "search".into(),
                client: "10.20.1.5".into(),
                user: Some("amara.okafor".into()),
                url: "https://www.google.co.uk/search?q=x".into(),
                text: text.into(),
                grade,
                categories: format!("suicide:{grade}"),
                matched: "kill myself; want to die".into(),
                model: None,
            };
            store
                .record_captures(&CaptureRules::default(), &[new("low", 2), new("high", 5)])
                .await
                .expect("captures");
            let open = store.open_captures(1, 10).await.expect("open");
            assert_eq!(
                open.iter().map(|c| c.text.as_str()).collect::<Vec<_>>(),
                ["high", "low"],
                "{db}"
            );
            assert_eq!(
                store.open_captures(4, 10).await.expect("open").len(),
                1,
                "{db}"
            );
            assert!(
                store
                    .dismiss_capture(open[1].id, "priya.shah", " ")
                    .await
                    .is_err(),
                "a reason is needed"
            );
            assert!(store
                .dismiss_capture(open[1].id, "priya.shah", "homework")
                .await
                .expect("dismiss"));
            assert!(!store
                .dismiss_capture(open[1].id, "priya.shah", "again")
                .await
                .expect("dismiss"));
            let concern = store
                .promote_capture(open[0].id, "priya.shah")
                .await
                .expect("promote");
            assert!(concern.is_some(), "{db}");
            assert_eq!(
                store
                    .promote_capture(open[0].id, "priya.shah")
                    .await
                    .expect("again"),
                None
            );
            let records = store.phrase_records().await.expect("records");
            assert_eq!(records.len(), 2, "{db}");
            assert!(
                records.iter().all(|r| r.decided == 2 && r.dismissed == 1),
                "{db}: {records:?}"
            );
            store.close().await;
        }
    });
}

#[test]
fn history_raises_grades_and_alerts_are_sent_once_escalated_and_acknowledged() {
    rt().block_on(async {
        for (db, store) in stores("alerts").await {
            let rules = CaptureRules::default();
            let at = haven_store::now_ms();
            let new = |user: &str, minutes_ago: i64, grade: u8, category: &str| {
                haven_store::captures::NewCapture {
                    at_ms: at - minutes_ago * 60_000,
                    source: "search".into(),
                    client: "10.20.1.5".into(),
                    user: Some(user.into()),
                    url: "https://www.bing.com/search?q=x".into(),
                    text: "invented text".into(),
                    grade,
                    categories: format!("{category}:{grade}"),
                    matched: "some phrase".into(),
                    model: None,
                }
            };
            // Three earlier grade-3 bullying captures for one pupil: the fourth is raised to 4
            // and alerts; another pupil's, or another category's, is not raised.
            let first = store
                .record_captures(
                    &rules,
                    &[
                        new("amara.okafor", 50, 3, "bullying"),
                        new("amara.okafor", 40, 3, "bullying"),
                        new("amara.okafor", 30, 3, "bullying"),
                    ],
                )
                .await
                .expect("record");
            assert!(
                first.iter().all(|r| r.grade == 3 && r.alert.is_none()),
                "{db}: {first:?}"
            );
            let later = store
                .record_captures(
                    &rules,
                    &[
                        new("amara.okafor", 0, 3, "bullying"),
                        new("amara.okafor", 0, 3, "gambling"),
                        new("leo.fischer", 0, 3, "bullying"),
                    ],
                )
                .await
                .expect("record");
            let grades: Vec<u8> = later.iter().map(|r| r.grade).collect();
            assert_eq!(grades, [4, 3, 3], "{db}");
            assert!(later[0].alert.is_some() && later[1].alert.is_none(), "{db}");
            let raised = store.capture(later[0].id).await.expect("c").expect("there");
            assert_eq!(raised.base_grade, Some(3), "{db}");
            assert!(
                raised
                    .raised
                    .as_deref()
                    .unwrap_or("")
                    .contains("3 earlier bullying"),
                "{db}: {raised:?}"
            );
            // A grade-5 capture alerts at once; the per-category rule lowers the bar.
            // (That the per-category rule must name a monitoring category is tested with
            // `haven_monitor::MonitorRules`, which reads `[monitor]`.)
            let strict = CaptureRules {
                alert_grade_by_category: [("gambling".to_owned(), 2)].into(),
                ..CaptureRules::default()
            };
            let r = store
                .record_captures(&strict, &[new("leo.fischer", 0, 2, "gambling")])
                .await
                .expect("record");
            assert!(r[0].alert.is_some(), "{db}");

            // Sending: queued once for the rota, whoever asks twice.
            let waiting = store.waiting_alerts(10).await.expect("waiting");
            assert_eq!(waiting.len(), 2, "{db}");
            let alert = waiting[0].clone();
            assert_eq!(alert.capture_id, later[0].id);
            let rota = [haven_store::alerts::Recipient {
                level: haven_store::alerts::AlertLevel::Rota,
                channel: haven_store::alerts::Channel::Email,
                target: "p.shah@demo-school.example".into(),
            }];
            assert!(store
                .queue_deliveries(alert.id, haven_store::alerts::AlertLevel::Rota, &rota)
                .await
                .expect("q"));
            assert!(!store
                .queue_deliveries(alert.id, haven_store::alerts::AlertLevel::Rota, &rota)
                .await
                .expect("q"));
            let claimed = store.claim_deliveries(60_000, 10).await.expect("claim");
            assert_eq!(claimed.len(), 1, "{db}");
            assert_eq!(claimed[0].grade, 4);
            assert_eq!(claimed[0].category, "bullying");
            assert!(
                store
                    .claim_deliveries(60_000, 10)
                    .await
                    .expect("claim")
                    .is_empty(),
                "a claimed delivery is not handed out twice"
            );
            // A failure is tried again when due; then it is delivered.
            store
                .delivery_failed(claimed[0].id, "connection refused", 0)
                .await
                .expect("failed");
            let again = store.claim_deliveries(60_000, 10).await.expect("claim");
            assert_eq!(again.len(), 1);
            assert_eq!(again[0].attempts, 2);
            store.delivered(again[0].id).await.expect("delivered");
            assert!(store
                .claim_deliveries(60_000, 10)
                .await
                .expect("c")
                .is_empty());
            // Not acknowledged: due for escalation once its time has passed, and escalated once.
            let due = store
                .alerts_to_escalate(haven_store::now_ms() + 1)
                .await
                .expect("due");
            assert_eq!(
                due.iter().map(|a| a.id).collect::<Vec<_>>(),
                [alert.id],
                "{db}"
            );
            assert!(store
                .alerts_to_escalate(haven_store::now_ms() - 3_600_000)
                .await
                .expect("due")
                .is_empty());
            let deputies = [haven_store::alerts::Recipient {
                level: haven_store::alerts::AlertLevel::Deputy,
                channel: haven_store::alerts::Channel::Email,
                target: "g.lloyd@demo-school.example".into(),
            }];
            assert!(store
                .queue_deliveries(alert.id, haven_store::alerts::AlertLevel::Deputy, &deputies)
                .await
                .expect("q"));
            assert!(!store
                .queue_deliveries(alert.id, haven_store::alerts::AlertLevel::Deputy, &deputies)
                .await
                .expect("q"));
            assert_eq!(store.alert_deliveries(alert.id).await.expect("d").len(), 2);
            // Opened by the DSL: acknowledged, and nothing more escalates.
            assert_eq!(
                store
                    .acknowledge_alerts(later[0].id, "priya.shah")
                    .await
                    .expect("ack"),
                1
            );
            let a = store.capture_alerts(later[0].id).await.expect("alerts");
            assert_eq!(a[0].acknowledged_by.as_deref(), Some("priya.shah"), "{db}");
            // Dismissing the other one acknowledges it before it was ever escalated.
            let other = waiting[1].clone();
            assert!(store
                .queue_deliveries(other.id, haven_store::alerts::AlertLevel::Rota, &rota)
                .await
                .expect("q"));
            assert!(store
                .dismiss_capture(other.capture_id, "priya.shah", "a maths game")
                .await
                .expect("dismiss"));
            assert!(
                store
                    .alerts_to_escalate(haven_store::now_ms() + 1)
                    .await
                    .expect("due")
                    .is_empty(),
                "{db}"
            );
            let emails = store.role_emails("dsl").await.expect("emails");
            assert!(emails.is_empty() || emails.iter().all(|(_, e)| e.contains('@')));
            store.close().await;
        }
    });
}

/// A full disk (a small tmpfs): a large batch fails inside its transaction, which SQLite rolls
/// back by itself. Once space returns every connection in the pool must write again — before
/// the fix the connection kept counting an open transaction and refused every later `BEGIN`
/// ("begin_with at non-zero transaction depth") until a restart.
#[test]
fn a_full_disk_leaves_no_connection_stuck_in_a_transaction() {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("haven-store-full-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&dir)
        .output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: a_full_disk_…: cannot mount a tmpfs here ({mounted:?})");
        return;
    }
    rt().block_on(async {
        let url = format!("sqlite://{}?mode=rwc", dir.join("haven.db").display());
        let store = Store::open(&url).await.expect("open");
        let filler = dir.join("filler");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&filler).expect("filler");
            let block = vec![0u8; 4096];
            while f.write_all(&block).is_ok() {}
            while f.write_all(&block[..512]).is_ok() {}
        }
        let batch: Vec<Event> = (0..20_000)
            .map(|n| {
                event(
                    n,
                    Some("amara.okafor"),
                    Action::Block,
                    Some("gambling"),
                    None,
                )
            })
            .collect();
        let rows: Vec<(&Event, u64)> = batch.iter().map(|e| (e, 1)).collect();
        let failed = store
            .insert_counted(&rows)
            .await
            .expect_err("the disk is full");
        assert!(failed.is_disk_full(), "{failed}");
        assert!(store.health().note::<()>(Err(failed)).is_err());
        assert!(store.health().disk_full());
        std::fs::remove_file(&filler).expect("free the space");
        // Every connection the pool holds gets used (more writes than connections).
        for round in 0..8u64 {
            let small: Vec<(&Event, u64)> = batch[..100].iter().map(|e| (e, round + 1)).collect();
            store
                .insert_counted(&small)
                .await
                .unwrap_or_else(|e| panic!("write {round} after space returned: {e}"));
        }
        store.close().await;
    });
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(&dir)
        .status();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn second_factor_failures_and_proxy_credentials_count_apart_from_the_password() {
    rt().block_on(async {
        for (db, store) in stores("factors").await {
            let staff = "Staff ID,First Name,Last Name,Email,Roles\n\
                S1,Priya,Shah,p.shah@demo-school.example,DSL\n\
                S4,Ada,Teach,a.teach@demo-school.example,Teacher\n";
            store
                .import_people(Kind::Staff, staff.as_bytes(), ImportOptions::default())
                .await
                .expect("staff");
            for user in ["priya.shah", "ada.teach"] {
                store
                    .set_password(user, "console-pass-1")
                    .await
                    .expect("set");
            }
            let priya = store.identity("priya.shah").await.expect("db").expect("p");
            // Five attempts at the second factor count; the fifth locks; the sixth is refused.
            for n in 1..=5 {
                let f = store
                    .second_factor_attempt(priya.person_id)
                    .await
                    .expect("db")
                    .expect("not locked yet");
                assert_eq!(f.in_a_row, n, "{db}");
                assert_eq!(f.locked_until.is_some(), n == 5, "{db}");
            }
            assert!(store
                .second_factor_attempt(priya.person_id)
                .await
                .expect("db")
                .is_err());
            // The password step is not locked by it.
            assert!(store
                .sign_in("priya.shah", "console-pass-1")
                .await
                .expect("db")
                .is_ok());
            // A DSL's console password is not a proxy password; a proxy password of her own is.
            assert!(store
                .proxy_sign_in("priya.shah", "console-pass-1")
                .await
                .expect("db")
                .is_none());
            assert!(store
                .set_proxy_password("priya.shah", "console-pass-1")
                .await
                .is_err());
            let before = store.credentials_changed_at().await.expect("db");
            store
                .set_proxy_password("priya.shah", "browse-pass-2")
                .await
                .expect("set");
            assert!(store.credentials_changed_at().await.expect("db") >= before);
            assert!(store
                .proxy_sign_in("priya.shah", "browse-pass-2")
                .await
                .expect("db")
                .is_some());
            // A teacher's school password works on the proxy; wrong ones lock nothing.
            for _ in 0..8 {
                assert!(store
                    .proxy_sign_in("ada.teach", "wrong-pass")
                    .await
                    .expect("db")
                    .is_none());
            }
            assert!(store
                .proxy_sign_in("ada.teach", "console-pass-1")
                .await
                .expect("db")
                .is_some());
            assert!(store
                .sign_in("ada.teach", "console-pass-1")
                .await
                .expect("db")
                .is_ok());
            store.close().await;
        }
    });
}

#[test]
fn api_tokens_are_scoped_expire_and_are_revoked() {
    use haven_store::tokens::TokenScope;
    rt().block_on(async {
        for (db, store, url) in stores_at("tokens").await {
            store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("people");
            let person = store.find_people("Amara", 1).await.expect("find")[0].id;
            assert!(store
                .create_api_token(person, "x", TokenScope::Read, 0)
                .await
                .is_err());
            assert!(store
                .create_api_token(person, " ", TokenScope::Read, 30)
                .await
                .is_err());
            let (id, token) = store
                .create_api_token(person, "agent", TokenScope::Ingest, 30)
                .await
                .expect("token");
            let holder = store
                .api_token_holder(&token)
                .await
                .expect("db")
                .expect("live");
            assert_eq!(
                (holder.token_id, holder.scope),
                (id, TokenScope::Ingest),
                "{db}"
            );
            let listed = store.api_tokens(Some(person)).await.expect("list");
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].scope, "ingest");
            assert!(listed[0].last_used.is_some());
            assert!(store
                .api_tokens(Some(person + 1000))
                .await
                .expect("list")
                .is_empty());
            // Someone else's token is not theirs to revoke; the owner's is.
            assert!(!store
                .revoke_api_token(id, Some(person + 1000))
                .await
                .expect("db"));
            assert!(store.revoke_api_token(id, Some(person)).await.expect("db"));
            assert!(store.api_token_holder(&token).await.expect("db").is_none());
            // A token past its time is refused.
            let (other, token) = store
                .create_api_token(person, "report", TokenScope::Read, 1)
                .await
                .expect("token");
            let raw = Store::raw(&url).await.expect("raw");
            sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE id = $1")
                .bind(other)
                .execute(&raw)
                .await
                .expect("expire");
            raw.close().await;
            assert!(
                store.api_token_holder(&token).await.expect("db").is_none(),
                "{db}"
            );
            store.close().await;
        }
    });
}

fn invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, says: &str) {
    match r {
        Err(StoreError::Invalid(m)) => assert!(m.contains(says), "{m:?} should say {says:?}"),
        other => panic!("expected Invalid({says:?}), got {other:?}"),
    }
}

#[test]
fn a_concern_keeps_each_childs_part_its_chronology_supersedes_and_it_closes_by_its_procedure() {
    use haven_records::procedure::Tick;
    use haven_records::{Agency, EntryKind, Part, RecordKind};
    use haven_store::records::{Actor, Child, NewConcern, NewEntry, NewReferral, DEFAULT_SCHOOL};
    const S: i64 = DEFAULT_SCHOOL;
    rt().block_on(async {
        for (db, store) in stores("records").await {
            store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("pupils");
            let staff = "Staff ID,First Name,Last Name,Email,Roles\n\
                S1,Priya,Shah,p.shah@demo-school.example,DSL\n\
                S4,Ada,Teach,a.teach@demo-school.example,Teacher\n";
            store
                .import_people(Kind::Staff, staff.as_bytes(), ImportOptions::default())
                .await
                .expect("staff");
            let id_of = |name: &'static str| {
                let store = &store;
                async move { store.find_people(name, 1).await.expect("find")[0].id }
            };
            let (amara, tom, zoe) = (
                id_of("Amara").await,
                id_of("Tom Ellis").await,
                id_of("Zoë").await,
            );
            let (dsl_id, ada_id) = (id_of("Priya").await, id_of("Ada Teach").await);
            let ada = Actor {
                person: ada_id,
                username: "ada.teach",
                address: "10.0.0.5",
            };
            let dsl = Actor {
                person: dsl_id,
                username: "priya.shah",
                address: "10.0.0.6",
            };
            let now = haven_store::now_ms();
            let concern = NewConcern {
                school: S,
                kind: RecordKind::Pupil,
                category: "nudes".into(),
                children: vec![
                    Child {
                        person: amara,
                        part: Part::Subject,
                    },
                    Child {
                        person: tom,
                        part: Part::AllegedPerpetrator,
                    },
                ],
                staff: None,
                happened_at_ms: now - 3_600_000,
                place: "Year 5 classroom".into(),
                account: "She said \"he sent it round the group chat\".".into(),
                actions: "Took no image; told the DSL at once.".into(),
                told_dsl_at_ms: Some(now - 1_800_000),
                capture: None,
                evidence: Vec::new(),
                write_up: None,
                body_map: Vec::new(),
            };

            // Bad input: a clear reason, and nothing written.
            let bad = |f: fn(&mut NewConcern)| {
                let mut c = concern.clone();
                f(&mut c);
                c
            };
            invalid(
                store.log_concern(&bad(|c| c.children.clear()), &ada).await,
                "at least one child",
            );
            invalid(
                store
                    .log_concern(&bad(|c| c.category = "gossip".into()), &ada)
                    .await,
                "not a category",
            );
            invalid(
                store
                    .log_concern(&bad(|c| c.account = "  ".into()), &ada)
                    .await,
                "What happened",
            );
            invalid(
                store
                    .log_concern(
                        &bad(|c| c.happened_at_ms = haven_store::now_ms() + 86_400_000),
                        &ada,
                    )
                    .await,
                "future",
            );
            invalid(
                store
                    .log_concern(&bad(|c| c.children[1].person = c.children[0].person), &ada)
                    .await,
                "named twice",
            );
            invalid(
                store
                    .log_concern(&bad(|c| c.body_map = vec!["elbow".into()]), &ada)
                    .await,
                "body map",
            );
            let mut not_a_pupil = concern.clone();
            not_a_pupil.children[1].person = dsl_id;
            invalid(store.log_concern(&not_a_pupil, &ada).await, "not a pupil");
            assert!(
                store
                    .records(S, false, 100)
                    .await
                    .expect("records")
                    .is_empty(),
                "{db}: nothing half-written"
            );

            let id = store.log_concern(&concern, &ada).await.expect("log");
            assert_eq!(
                store
                    .records_written_by(S, ada_id, 10)
                    .await
                    .expect("mine")
                    .len(),
                1
            );
            assert!(store
                .records_written_by(S, dsl_id, 10)
                .await
                .expect("dsl's")
                .is_empty());
            let r = store.record(S, id).await.expect("read").expect("there");
            assert_eq!(r.author.1, "Ada Teach");
            let parts: Vec<(String, Part)> = r
                .children
                .iter()
                .map(|c| (c.name.clone(), c.part))
                .collect();
            assert_eq!(
                parts,
                [
                    ("Tom Ellis".to_owned(), Part::AllegedPerpetrator),
                    ("Amara Okafor".to_owned(), Part::Subject)
                ]
            );
            assert!(
                store
                    .record(S + 1, id)
                    .await
                    .expect("other school")
                    .is_none(),
                "{db}: another school's record is not found"
            );

            // Found by the words of its account and its children's names, whole words, any case.
            use haven_store::records::RecordQuery;
            let find = |words: &str| RecordQuery {
                words: words.into(),
                limit: 10,
                ..RecordQuery::default()
            };
            let found =
                |r: Vec<haven_store::records::Record>| r.iter().map(|r| r.id).collect::<Vec<_>>();
            assert_eq!(
                found(
                    store
                        .search_records(S, &find("GROUP chat"))
                        .await
                        .expect("search")
                ),
                [id],
                "{db}"
            );
            assert_eq!(
                found(
                    store
                        .search_records(S, &find("ellis"))
                        .await
                        .expect("search")
                ),
                [id],
                "{db}: by a child's name"
            );
            assert!(
                store
                    .search_records(S, &find("group bicycle"))
                    .await
                    .expect("search")
                    .is_empty(),
                "every word"
            );
            assert!(store
                .search_records(
                    S,
                    &RecordQuery {
                        category: Some("welfare".into()),
                        ..find("chat")
                    }
                )
                .await
                .expect("search")
                .is_empty());

            // The procedure: a step once, a skip with its reason, no step that is not the procedure's.
            store
                .tick_step(S, id, "not-viewed", &Tick::Done, &dsl)
                .await
                .expect("tick");
            invalid(
                store
                    .tick_step(S, id, "not-viewed", &Tick::Done, &dsl)
                    .await,
                "already been ticked",
            );
            invalid(
                store
                    .tick_step(
                        S,
                        id,
                        "dsl-view-justified",
                        &Tick::Skipped(" ".into()),
                        &dsl,
                    )
                    .await,
                "say why",
            );
            invalid(
                store
                    .tick_step(S, id, "view-the-image", &Tick::Done, &dsl)
                    .await,
                "no step",
            );

            // A referral with its reference and follow-up, and the clock that shows it.
            let follow = jiff::civil::date(2026, 12, 10);
            store
                .add_referral(
                    &NewReferral {
                        school: S,
                        record: id,
                        agency: Agency::Police,
                        made_at_ms: now,
                        contact: "PC Dana Reed".into(),
                        reference: "CR/0412/26".into(),
                        follow_up_on: Some(follow),
                    },
                    &dsl,
                )
                .await
                .expect("refer");
            let due = store.follow_ups_due(S, follow).await.expect("due");
            assert_eq!(
                (due.len(), due[0].reference.as_str()),
                (1, "CR/0412/26"),
                "{db}"
            );
            assert!(store
                .follow_ups_due(S, jiff::civil::date(2026, 12, 9))
                .await
                .expect("due")
                .is_empty());

            // An entry for one child stays in that child's chronology; a decision needs its rationale.
            let contact = NewEntry {
                school: S,
                record: id,
                person: Some(amara),
                at_ms: now,
                kind: EntryKind::ParentContact,
                text: "Rang Amara's mother; she will collect at 3.".into(),
                rationale: None,
            };
            let contact_id = store.add_entry(&contact, &dsl).await.expect("entry");
            invalid(
                store
                    .add_entry(
                        &NewEntry {
                            kind: EntryKind::Decision,
                            text: "Not referring to social care".into(),
                            person: None,
                            ..contact.clone()
                        },
                        &dsl,
                    )
                    .await,
                "rationale",
            );
            invalid(
                store
                    .add_entry(
                        &NewEntry {
                            person: Some(zoe),
                            ..contact.clone()
                        },
                        &dsl,
                    )
                    .await,
                "not named",
            );
            // Back-dated: written now, happened before the concern; it sorts into place.
            let early = store
                .add_entry(
                    &NewEntry {
                        at_ms: now - 7 * 86_400_000,
                        kind: EntryKind::Note,
                        text: "Earlier worry about phone use".into(),
                        person: None,
                        ..contact.clone()
                    },
                    &dsl,
                )
                .await
                .expect("back-dated");
            let amaras = store.chronology(S, amara).await.expect("chronology");
            let toms = store.chronology(S, tom).await.expect("chronology");
            assert_eq!(
                amaras[0].id, early,
                "{db}: the back-dated entry sorts first"
            );
            assert!(amaras[0].written_at_ms > amaras[0].at_ms);
            assert!(amaras.iter().any(|e| e.id == contact_id));
            assert!(
                !toms.iter().any(|e| e.id == contact_id),
                "{db}: Amara's contact is not in Tom's chronology"
            );
            assert!(toms.iter().any(|e| e.kind == EntryKind::Concern));
            assert!(store.chronology(S, zoe).await.expect("zoe").is_empty());

            // Corrected, never edited: both stay, linked.
            let fixed = store
                .correct_entry(
                    S,
                    contact_id,
                    "Rang Amara's father; he will collect at 3.",
                    "Wrong parent named",
                    &dsl,
                )
                .await
                .expect("correct");
            invalid(
                store
                    .correct_entry(S, contact_id, "again", "again", &dsl)
                    .await,
                "already been corrected",
            );
            invalid(
                store.correct_entry(S, fixed, "x", " ", &dsl).await,
                "reason",
            );
            assert_eq!(
                found(
                    store
                        .search_records(S, &find("father"))
                        .await
                        .expect("search")
                ),
                [id],
                "{db}: corrections are found"
            );
            let amaras = store.chronology(S, amara).await.expect("chronology");
            let old = amaras
                .iter()
                .find(|e| e.id == contact_id)
                .expect("old kept");
            let new = amaras.iter().find(|e| e.id == fixed).expect("new");
            assert_eq!(
                (old.superseded_by, new.supersedes),
                (Some(fixed), Some(contact_id))
            );
            assert!(old.text.contains("mother") && new.text.contains("father"));

            // Closing: every step settled, an outcome, and the debrief this procedure asks for.
            invalid(
                store.close_record(S, id, "Resolved", "", &dsl).await,
                "neither done nor skipped",
            );
            for step in haven_records::category::steps_for("nudes").iter().skip(1) {
                store
                    .tick_step(
                        S,
                        id,
                        step.id,
                        &Tick::Skipped("Not needed in this case".into()),
                        &dsl,
                    )
                    .await
                    .expect("skip");
            }
            invalid(store.close_record(S, id, " ", "", &dsl).await, "outcome");
            invalid(
                store.close_record(S, id, "Resolved", "", &dsl).await,
                "debrief",
            );
            store
                .close_record(
                    S,
                    id,
                    "Resolved with the police",
                    "Pupils need a talk on consent",
                    &dsl,
                )
                .await
                .expect("close");
            invalid(store.add_entry(&contact, &dsl).await, "closed");
            assert!(store.records(S, true, 10).await.expect("open").is_empty());

            // An allegation about staff names the member of staff, and no child is needed.
            let allegation = NewConcern {
                kind: RecordKind::Staff,
                category: "staff-conduct".into(),
                children: vec![],
                staff: Some(ada_id),
                ..concern.clone()
            };
            invalid(
                store
                    .log_concern(
                        &NewConcern {
                            staff: None,
                            ..allegation.clone()
                        },
                        &dsl,
                    )
                    .await,
                "member of staff",
            );
            store
                .log_concern(&allegation, &dsl)
                .await
                .expect("allegation");

            // Retention: a legal hold stops deletion; deleting takes everything of the record and
            // leaves a tombstone in the chain.
            let facts = store.retention_facts(S).await.expect("facts");
            assert!(
                facts.iter().any(|f| f.record == id && f.births.len() == 2),
                "{db}: {facts:?}"
            );
            store
                .set_legal_hold(S, id, true, "An inquiry", &dsl)
                .await
                .expect("hold");
            invalid(store.delete_record(S, id, &dsl).await, "legal hold");
            store
                .set_legal_hold(S, id, false, "The inquiry closed", &dsl)
                .await
                .expect("lift");
            store.delete_record(S, id, &dsl).await.expect("delete");
            assert!(store.record(S, id).await.expect("read").is_none(), "{db}");
            assert!(
                store
                    .chronology(S, amara)
                    .await
                    .expect("chronology")
                    .is_empty(),
                "{db}: {:?}",
                store.chronology(S, amara).await
            );
            assert!(
                !found(
                    store
                        .search_records(S, &find("chat"))
                        .await
                        .expect("search")
                )
                .contains(&id),
                "{db}"
            );
            assert!(
                store.referrals(S, id).await.expect("referrals").is_empty(),
                "{db}"
            );

            // Every write is in the audit chain, by id, and no text of the record is.
            assert!(
                matches!(
                    store.verify_audit().await.expect("verify"),
                    AuditCheck::Intact { .. }
                ),
                "{db}"
            );
            let log = store.audit_log(None, 1000).await.expect("log");
            assert!(log
                .iter()
                .any(|e| e.action == "log concern" && e.subject == format!("record {id}")));
            for e in &log {
                for word in ["group chat", "mother", "father", "CR/0412", "Dana"] {
                    assert!(
                        !e.detail.contains(word) && !e.subject.contains(word),
                        "{db}: {e:?}"
                    );
                }
            }
        }
    });
}

#[test]
fn a_childs_file_goes_sealed_to_their_new_school_which_returns_a_signed_receipt() {
    use haven_records::{Agency, EntryKind, Part, RecordKind};
    use haven_store::evidence::{seal_context, NewEvidence};
    use haven_store::records::{Actor, Child, NewConcern, NewEntry, NewReferral, DEFAULT_SCHOOL};
    const S: i64 = DEFAULT_SCHOOL;
    rt().block_on(async {
        let olds = stores("transfer-old").await;
        let news = stores("transfer-new").await;
        for ((db, old), (_, new)) in olds.into_iter().zip(news) {
            let scratch = std::env::temp_dir().join(format!(
                "haven-store-transfer-vaults-{}-{db}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&scratch);
            std::fs::create_dir_all(&scratch).expect("scratch");
            let old_vault = haven_vault::Vault::open(&scratch.join("old")).expect("vault");
            let new_vault = haven_vault::Vault::open(&scratch.join("new")).expect("vault");
            let other_vault = haven_vault::Vault::open(&scratch.join("other")).expect("vault");
            let staff = "Staff ID,First Name,Last Name,Email,Roles\n\
                S1,Priya,Shah,p.shah@demo-school.example,DSL\n\
                S4,Ada,Teach,a.teach@demo-school.example,Teacher\n";
            for s in [&old, &new] {
                s.import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                    .await
                    .expect("pupils");
                s.import_people(Kind::Staff, staff.as_bytes(), ImportOptions::default())
                    .await
                    .expect("staff");
            }
            let id_of = |s: &Store, name: &'static str| {
                let s = s.clone();
                async move { s.find_people(name, 1).await.expect("find")[0].id }
            };
            let (amara, tom) = (id_of(&old, "Amara").await, id_of(&old, "Tom Ellis").await);
            let dsl = Actor {
                person: id_of(&old, "Priya").await,
                username: "priya.shah",
                address: "10.0.0.6",
            };
            let ada = Actor {
                person: id_of(&old, "Ada Teach").await,
                username: "ada.teach",
                address: "10.0.0.5",
            };
            let their_dsl = Actor {
                person: id_of(&new, "Priya").await,
                username: "priya.shah",
                address: "10.1.0.6",
            };
            let sender = haven_store::transfer::Acting {
                actor: dsl,
                name: "Priya Shah",
                school: "Elm Park Primary",
            };
            let receiver = haven_store::transfer::Acting {
                actor: their_dsl,
                name: "Priya Shah",
                school: "Oak Hill Academy",
            };
            // The sending school: a concern with an attachment, a correction, a referral.
            let photo = b"\x89PNG\r\n\x1a\n invented screenshot bytes".to_vec();
            let sha = haven_vault::sha256_hex(&photo);
            let sealed = old_vault
                .seal(S, &seal_context(S, &sha), &photo)
                .expect("seal");
            let now = haven_store::now_ms();
            let record = old
                .log_concern(
                    &NewConcern {
                        school: S,
                        kind: RecordKind::Pupil,
                        category: "cyberbullying".into(),
                        children: vec![
                            Child {
                                person: amara,
                                part: Part::Victim,
                            },
                            Child {
                                person: tom,
                                part: Part::AllegedPerpetrator,
                            },
                        ],
                        staff: None,
                        happened_at_ms: now - 86_400_000,
                        place: "Class chat".into(),
                        account: "Amara said Tom Ellis laughed at her photo.".into(),
                        actions: "Kept the screenshot; told the DSL.".into(),
                        told_dsl_at_ms: None,
                        capture: None,
                        evidence: vec![NewEvidence {
                            name: "chat.png".into(),
                            media_type: "image/png".into(),
                            size_bytes: photo.len() as i64,
                            sha256: sha.clone(),
                            possible_nude: false,
                            key_version: i64::from(
                                haven_vault::Vault::version_of(&sealed).expect("v"),
                            ),
                            sealed,
                        }],
                        write_up: None,
                        body_map: vec![],
                    },
                    &ada,
                )
                .await
                .expect("concern");
            let entry = NewEntry {
                school: S,
                record,
                person: Some(amara),
                at_ms: now - 3_600_000,
                kind: EntryKind::ParentContact,
                text: "Rang Amara's aunt.".into(),
                rationale: None,
            };
            let wrong = old.add_entry(&entry, &dsl).await.expect("entry");
            old.correct_entry(
                S,
                wrong,
                "Rang Amara's mother.",
                "Wrong relative named",
                &dsl,
            )
            .await
            .expect("correct");
            // A line for Tom alone does not travel in Amara's file.
            old.add_entry(
                &NewEntry {
                    person: Some(tom),
                    text: "Spoke to Tom's father about the chat.".into(),
                    ..entry.clone()
                },
                &dsl,
            )
            .await
            .expect("tom's line");
            old.add_referral(
                &NewReferral {
                    school: S,
                    record,
                    agency: Agency::Parents,
                    made_at_ms: now - 1_800_000,
                    contact: "Mother; Tom's mother told too".into(),
                    reference: String::new(),
                    follow_up_on: None,
                },
                &dsl,
            )
            .await
            .expect("referral");
            // A second record, about Amara alone, whose attachment travels.
            let note = b"A note Amara wrote in class.".to_vec();
            let note_sha = haven_vault::sha256_hex(&note);
            let note_sealed = old_vault
                .seal(S, &seal_context(S, &note_sha), &note)
                .expect("seal");
            old.log_concern(
                &NewConcern {
                    school: S,
                    kind: RecordKind::Pupil,
                    category: "welfare".into(),
                    children: vec![Child {
                        person: amara,
                        part: Part::Subject,
                    }],
                    staff: None,
                    happened_at_ms: now - 7_200_000,
                    place: "Year 5 classroom".into(),
                    account: "Amara wrote that she is scared of the bus.".into(),
                    actions: String::new(),
                    told_dsl_at_ms: None,
                    capture: None,
                    evidence: vec![NewEvidence {
                        name: "note.txt".into(),
                        media_type: "text/plain".into(),
                        size_bytes: note.len() as i64,
                        sha256: note_sha,
                        possible_nude: false,
                        key_version: 1,
                        sealed: note_sealed,
                    }],
                    write_up: None,
                    body_map: vec![],
                },
                &ada,
            )
            .await
            .expect("second concern");
            // Sealing to this school's own key line is refused.
            let own = old_vault.identity(S, "Oak Hill Academy").expect("own");
            let err = old
                .send_transfer(&old_vault, S, amara, &own, &sender)
                .await
                .expect_err("own key");
            assert!(err.to_string().contains("own key line"), "{err}");

            // Sealed to the new school's key; the sealed file does not show the child's name.
            let to = new_vault.identity(S, "Oak Hill Academy").expect("identity");
            let (file, transfer) = old
                .send_transfer(&old_vault, S, amara, &to, &sender)
                .await
                .expect("send");
            assert!(
                !file.windows(6).any(|w| w == b"Okafor"),
                "{db}: the file is sealed"
            );
            let sent = old.transfers_of(S, amara).await.expect("transfers");
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].to_school, "Oak Hill Academy");
            assert!(
                sent[0].receipt.is_none(),
                "{db}: the clock runs until the receipt"
            );
            // A hand-written receipt does not stop a sealed transfer's clock.
            let err = old
                .confirm_receipt(S, transfer, "anyone at all", now, &dsl)
                .await
                .expect_err("a sealed transfer needs its signed receipt");
            assert!(err.to_string().contains("signed"), "{err}");
            let from = old_vault.identity(S, "").expect("id").signing;
            let pinned = |from: [u8; 32]| haven_store::transfer::Receiving {
                from,
                person: None,
                despite_mismatch: false,
            };
            // Another school cannot open it, and nothing is written there.
            let err = new
                .import_transfer(&other_vault, S, &file, &pinned(from), &receiver)
                .await
                .expect_err("sealed for Oak Hill only");
            assert!(err.to_string().contains("another school"), "{db}: {err}");
            // A changed byte is refused whole.
            let mut changed = file.clone();
            let mid = changed.len() / 2;
            changed[mid] ^= 1;
            assert!(new
                .import_transfer(&new_vault, S, &changed, &pinned(from), &receiver)
                .await
                .is_err());
            // Pinned to another sender, it is refused.
            let stranger = other_vault.identity(S, "").expect("id").signing;
            let err = new
                .import_transfer(&new_vault, S, &file, &pinned(stranger), &receiver)
                .await
                .expect_err("not from the stranger");
            assert!(
                err.to_string().contains("not by the school key you gave"),
                "{err}"
            );
            // Filed under a pupil whose name and date of birth differ: refused unless the DSL
            // says they are the same child.
            let their_tom = id_of(&new, "Tom Ellis").await;
            let err = new
                .import_transfer(
                    &new_vault,
                    S,
                    &file,
                    &haven_store::transfer::Receiving {
                        person: Some(their_tom),
                        ..pinned(from)
                    },
                    &receiver,
                )
                .await
                .expect_err("Amara's file is not Tom's");
            assert!(
                err.to_string().contains("The file is about Amara Okafor"),
                "{err}"
            );
            assert!(new.records(S, false, 10).await.expect("records").is_empty());

            // The new school imports it: the pupil is found by name and date of birth.
            let got = new
                .import_transfer(&new_vault, S, &file, &pinned(from), &receiver)
                .await
                .expect("import");
            let their_amara = id_of(&new, "Amara").await;
            assert_eq!(
                (got.person, got.records, got.evidence, got.again),
                (their_amara, 2, 1, false),
                "{db}: the shared record's file stays behind"
            );
            assert_eq!(got.from_school, "Elm Park Primary");
            let recs = new.records_of_child(S, their_amara).await.expect("records");
            assert_eq!(recs.len(), 2, "{db}");
            let r = recs
                .iter()
                .find(|r| r.category == "cyberbullying")
                .expect("the shared record");
            // Tom's name is taken out of what travels; his part is not listed.
            assert_eq!(
                r.account, "Amara said [another person] laughed at her photo.",
                "{db}"
            );
            assert_eq!(r.author.1, "Ada Teach (Elm Park Primary)", "{db}");
            assert_eq!(
                r.children.len(),
                1,
                "{db}: only Amara travels, with her own part"
            );
            assert_eq!(r.children[0].part, Part::Victim);
            let lines = new.chronology(S, their_amara).await.expect("chronology");
            let texts: Vec<&str> = lines.iter().map(|e| e.text.as_str()).collect();
            assert!(texts.contains(&"Rang Amara's mother."), "{db}: {texts:?}");
            assert!(
                !texts.iter().any(|t| t.contains("Tom's father")),
                "{db}: {texts:?}"
            );
            assert!(texts
                .iter()
                .any(|t| t.starts_with("Received from Elm Park Primary")));
            let aunt = lines
                .iter()
                .find(|e| e.text == "Rang Amara's aunt.")
                .expect("kept");
            let mother = lines
                .iter()
                .find(|e| e.text == "Rang Amara's mother.")
                .expect("kept");
            assert_eq!(
                aunt.superseded_by,
                Some(mother.id),
                "{db}: the correction still supersedes"
            );
            assert_eq!(mother.author, "Priya Shah (Elm Park Primary)");
            let refs = new.referrals(S, r.id).await.expect("refs");
            assert_eq!(refs[0].agency, Agency::Parents);
            assert!(!refs[0].contact.contains("Tom"), "{:?}", refs[0]);
            assert!(new.evidence_of(S, r.id).await.expect("e").is_empty());
            assert!(
                texts
                    .iter()
                    .any(|t| t.contains("Kept at Elm Park Primary, not sent: \"chat.png\"")),
                "{db}: {texts:?}"
            );
            let r = recs
                .iter()
                .find(|r| r.category == "welfare")
                .expect("Amara's own record");
            let ev = new.evidence_of(S, r.id).await.expect("evidence");
            let (e, sealed) = new
                .evidence_sealed(S, ev[0].id)
                .await
                .expect("q")
                .expect("there");
            let opened = new_vault
                .open_sealed(S, &seal_context(S, &e.sha256), &sealed)
                .expect("sealed under the new school's key");
            assert_eq!(opened, note);
            assert!(!new
                .search_records(
                    S,
                    &haven_store::records::RecordQuery {
                        words: "scared".into(),
                        limit: 10,
                        ..Default::default()
                    }
                )
                .await
                .expect("search")
                .is_empty());
            // Importing again writes nothing and gives the same receipt.
            let again = new
                .import_transfer(&new_vault, S, &file, &pinned(from), &receiver)
                .await
                .expect("again");
            assert!(again.again);
            assert_eq!(again.receipt, got.receipt);
            assert_eq!(
                new.records_of_child(S, their_amara).await.expect("r").len(),
                2
            );

            // The receipt: a changed one is refused; the real one stops the clock, once.
            let forged = got.receipt.replace("records: 2", "records: 3");
            assert_ne!(forged, got.receipt);
            // A receipt this school signed itself is refused.
            let own_receipt = old_vault
                .sign_receipt(
                    S,
                    &haven_vault::Receipt {
                        transfer_sha256: haven_vault::sha256_hex(&file),
                        received_at: "2026-12-01T10:00:00Z".into(),
                        school: "Oak Hill Academy".into(),
                        received_by: "Nobody".into(),
                        records: 2,
                        evidence: 1,
                    },
                )
                .expect("sign");
            assert!(old
                .accept_receipt(&old_vault, S, &own_receipt, &dsl)
                .await
                .is_err());
            assert!(old
                .accept_receipt(&old_vault, S, &forged, &dsl)
                .await
                .is_err());
            assert!(old.transfers_of(S, amara).await.expect("t")[0]
                .receipt
                .is_none());
            let (id, person, receipt) = old
                .accept_receipt(&old_vault, S, &got.receipt, &dsl)
                .await
                .expect("receipt");
            assert_eq!((id, person), (transfer, amara));
            assert_eq!(receipt.school, "Oak Hill Academy");
            let done = old.transfers_of(S, amara).await.expect("t");
            assert!(
                done[0]
                    .receipt
                    .as_ref()
                    .is_some_and(|r| r.1.contains("Oak Hill Academy")),
                "{db}"
            );
            assert!(
                old.accept_receipt(&old_vault, S, &got.receipt, &dsl)
                    .await
                    .is_err(),
                "recorded once"
            );
            let _ = std::fs::remove_dir_all(&scratch);
        }
    });
}

#[test]
fn registers_keep_consent_history_the_breach_log_in_order_and_training_all_or_none() {
    use haven_registers::consent::{may_use, Answer};
    use haven_registers::{breach, Course, Purpose, Risk};
    use haven_store::records::{Actor, DEFAULT_SCHOOL};
    use haven_store::registers::{BreachStep, NewBreach};
    const S: i64 = DEFAULT_SCHOOL;
    rt().block_on(async {
        for (db, store) in stores("registers").await {
            store
                .import_people(Kind::Pupil, PUPILS.as_bytes(), ImportOptions::default())
                .await
                .expect("pupils");
            let staff = "Staff ID,First Name,Last Name,Email,Roles\n\
                S1,Priya,Shah,p.shah@demo-school.example,DSL\n\
                S7,Dee,Poe,d.poe@demo-school.example,DPO\n";
            store
                .import_people(Kind::Staff, staff.as_bytes(), ImportOptions::default())
                .await
                .expect("staff");
            let amara = store.find_people("Amara", 1).await.expect("find")[0].id;
            let dpo_id = store.find_people("Dee Poe", 1).await.expect("find")[0].id;
            let dpo = Actor {
                person: dpo_id,
                username: "dee.poe",
                address: "10.0.0.9",
            };
            // Consent given, then withdrawn: the photo check says no at once.
            store
                .record_consent(S, amara, Purpose::Website, true, "Mrs Okafor", "form", &dpo)
                .await
                .expect("given");
            let history: Vec<_> = store
                .consents_of(S, amara)
                .await
                .expect("history")
                .into_iter()
                .map(|c| c.decision)
                .collect();
            assert!(may_use(&history, Purpose::Website).yes(), "{db}");
            store
                .record_consent(
                    S,
                    amara,
                    Purpose::Website,
                    false,
                    "Mrs Okafor",
                    "phone call",
                    &dpo,
                )
                .await
                .expect("withdrawn");
            let history: Vec<_> = store
                .consents_of(S, amara)
                .await
                .expect("history")
                .into_iter()
                .map(|c| c.decision)
                .collect();
            assert!(
                matches!(
                    may_use(&history, Purpose::Website),
                    Answer::Refused {
                        withdrawn: true,
                        ..
                    }
                ),
                "{db}: {history:?}"
            );
            assert_eq!(history.len(), 2, "both decisions are kept");
            // A staff member is not a pupil; an empty "who decided" is refused.
            assert!(store
                .record_consent(S, dpo_id, Purpose::Website, true, "x", "", &dpo)
                .await
                .is_err());
            assert!(store
                .record_consent(S, amara, Purpose::Newsletter, true, "  ", "", &dpo)
                .await
                .is_err());
            assert_eq!(store.consents_of(S, amara).await.expect("h").len(), 2);

            // A breach: decided reportable, reported, signed off, in that order only.
            let now = haven_store::now_ms();
            let id = store
                .log_breach(
                    &NewBreach {
                        school: S,
                        title: "Class list emailed to the wrong parent".into(),
                        what: "A teacher sent Year 5's reading levels to one parent.".into(),
                        discovered_at_ms: now - 50 * 3_600_000,
                        data_involved: "names, reading levels".into(),
                        people_affected: 28,
                        risk: Risk::Medium,
                    },
                    &dpo,
                )
                .await
                .expect("logged");
            let b = &store.breaches(S).await.expect("log")[0];
            assert!(
                matches!(
                    breach::clock(b.discovered_at_ms, now, b.reportable, None),
                    breach::Clock::Warning { .. }
                ),
                "{db}: 50 hours in, the clock warns"
            );
            for (step, says) in [
                (BreachStep::SignOff, "reportable first"),
                (
                    BreachStep::Reported {
                        at_ms: now,
                        reference: "ICO-1".into(),
                    },
                    "decision that it is reportable",
                ),
            ] {
                let err = store.breach_step(S, id, &step, &dpo).await.expect_err(says);
                assert!(err.to_string().contains(says), "{db}: {err}");
            }
            store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Decide {
                        reportable: true,
                        reason: "Children's attainment sent to a stranger to them".into(),
                    },
                    &dpo,
                )
                .await
                .expect("decide");
            // Decided again the same way: refused; changed: the old decision is kept.
            assert!(store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Decide {
                        reportable: true,
                        reason: "again".into(),
                    },
                    &dpo,
                )
                .await
                .is_err());
            store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Decide {
                        reportable: false,
                        reason: "The parent deleted it at once".into(),
                    },
                    &dpo,
                )
                .await
                .expect("changed");
            store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Decide {
                        reportable: true,
                        reason: "Attainment data of 28 children: reportable after all".into(),
                    },
                    &dpo,
                )
                .await
                .expect("changed back");
            let kept = &store.breaches(S).await.expect("log")[0].actions;
            assert!(
                kept.contains("decision changed; it had been reportable (Children's attainment")
                    && kept.contains("it had been not reportable (The parent deleted it"),
                "{db}: {kept}"
            );
            store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Action("Asked the parent to delete it".into()),
                    &dpo,
                )
                .await
                .expect("action");
            assert!(store
                .breach_step(S, id, &BreachStep::SignOff, &dpo)
                .await
                .is_err());
            store
                .breach_step(
                    S,
                    id,
                    &BreachStep::Reported {
                        at_ms: now,
                        reference: "ICO-00912".into(),
                    },
                    &dpo,
                )
                .await
                .expect("reported");
            store
                .breach_step(S, id, &BreachStep::SignOff, &dpo)
                .await
                .expect("signed off");
            assert!(store
                .breach_step(S, id, &BreachStep::Action("more".into()), &dpo)
                .await
                .is_err());
            let b = &store.breaches(S).await.expect("log")[0];
            assert_eq!(b.reported.as_ref().map(|r| r.1.as_str()), Some("ICO-00912"));
            assert!(
                b.actions.ends_with("Asked the parent to delete it"),
                "{:?}",
                b.actions
            );
            assert_eq!(b.signed_off.as_ref().map(|s| s.0.as_str()), Some("Dee Poe"));
            assert_eq!(
                breach::clock(
                    b.discovered_at_ms,
                    now,
                    b.reportable,
                    b.reported.as_ref().map(|r| r.0)
                ),
                breach::Clock::Reported { in_time: true }
            );

            // Training: a row naming nobody here records nothing of the file.
            let d = jiff::civil::date(2026, 9, 3);
            let err = store
                .record_training(
                    S,
                    &[
                        ("S1".into(), Course::Dsl, d),
                        ("nobody@example.org".into(), Course::Prevent, d),
                    ],
                    &dpo,
                )
                .await
                .expect_err("nobody");
            assert!(err.to_string().contains("nobody@example.org"), "{err}");
            // A bare number in a file is an MIS staff id, never Haven's own person id.
            let err = store
                .record_training(S, &[(dpo_id.to_string(), Course::Dsl, d)], &dpo)
                .await
                .expect_err("a bare number is not a person id");
            assert!(err.to_string().contains("No member of staff"), "{err}");
            store
                .record_training(S, &[(format!("id:{dpo_id}"), Course::Prevent, d)], &dpo)
                .await
                .expect("the console's form names people by id");
            let n = store
                .record_training(
                    S,
                    &[
                        ("S1".into(), Course::Dsl, d),
                        (
                            "d.poe@demo-school.example".into(),
                            Course::SafeguardingUpdate,
                            d,
                        ),
                        ("S1".into(), Course::Dsl, jiff::civil::date(2024, 9, 1)),
                    ],
                    &dpo,
                )
                .await
                .expect("recorded");
            assert_eq!(n, 3);
            let t = store.training(S).await.expect("training");
            let priya = t.iter().find(|s| s.name == "Priya Shah").expect("Priya");
            assert!(priya.dsl);
            assert_eq!(
                priya.latest,
                vec![(Course::Dsl, d)],
                "{db}: the latest completion"
            );
            assert!(!t.iter().find(|s| s.name == "Dee Poe").expect("Dee").dsl);

            // Agreements: Amara (Year 5) signs the KS2 agreement; a new version makes her due.
            use haven_registers::agreements::{in_force, standing, Standing};
            use haven_registers::Audience;
            let today = jiff::civil::date(2026, 12, 2);
            let v1 = store
                .publish_agreement(
                    S,
                    Audience::Ks2,
                    jiff::civil::date(2026, 9, 1),
                    "Be kind online.",
                    &dpo,
                )
                .await
                .expect("publish");
            store
                .publish_agreement(
                    S,
                    Audience::Staff,
                    jiff::civil::date(2026, 9, 1),
                    "Staff AUP.",
                    &dpo,
                )
                .await
                .expect("publish");
            assert_eq!(v1, 1);
            let versions = store.agreement_versions(S).await.expect("versions");
            let ks2 = versions
                .iter()
                .find(|v| v.audience == Audience::Ks2)
                .expect("ks2");
            let staff_v = versions
                .iter()
                .find(|v| v.audience == Audience::Staff)
                .expect("staff");
            let sig = |version: i64, on: jiff::civil::Date| haven_store::registers::NewSignature {
                school: S,
                person: amara,
                version,
                signed_on: on,
                on_paper: true,
                signed_by: "Amara Okafor and Mrs Okafor".into(),
            };
            let err = store
                .record_signature(&sig(staff_v.id, today), today, &dpo)
                .await
                .expect_err("the staff agreement is not Amara's");
            assert!(err.to_string().contains("signs ks2"), "{db}: {err}");
            assert!(store
                .record_signature(&sig(ks2.id, jiff::civil::date(2026, 12, 3)), today, &dpo)
                .await
                .is_err());
            store
                .record_signature(&sig(ks2.id, jiff::civil::date(2026, 9, 8)), today, &dpo)
                .await
                .expect("signed");
            let amara_now = |signers: Vec<haven_store::registers::Signer>| {
                signers
                    .into_iter()
                    .find(|s| s.person == amara)
                    .expect("Amara signs")
            };
            let a = amara_now(store.signers(S).await.expect("signers"));
            assert_eq!(a.audience, Audience::Ks2);
            let in_force_now = |vs: &[haven_store::registers::AgreementVersion]| {
                in_force(
                    today,
                    &vs.iter()
                        .filter(|v| v.audience == Audience::Ks2)
                        .map(|v| (v.version, v.effective_on))
                        .collect::<Vec<_>>(),
                )
                .expect("in force")
            };
            assert_eq!(
                standing(today, in_force_now(&versions), a.latest),
                Standing::Current
            );
            store
                .publish_agreement(
                    S,
                    Audience::Ks2,
                    jiff::civil::date(2026, 11, 30),
                    "Be kind; ask first.",
                    &dpo,
                )
                .await
                .expect("v2");
            let versions = store.agreement_versions(S).await.expect("versions");
            let a = amara_now(store.signers(S).await.expect("signers"));
            assert_eq!(
                standing(today, in_force_now(&versions), a.latest),
                Standing::OldVersion,
                "{db}: the new version makes her due"
            );

            // Policy reviews: the next a year on; brought forward only once reviewed; signed
            // off once.
            let err = store
                .bring_review_forward(S, "Online safety policy", "new AI tools", &dpo)
                .await
                .expect_err("never reviewed");
            assert!(err.to_string().contains("no review recorded"), "{err}");
            let review = store
                .record_policy_review(
                    S,
                    "Online safety policy",
                    jiff::civil::date(2026, 9, 10),
                    "DSL and headteacher",
                    None,
                    "Added AI chatbots",
                    today,
                    &dpo,
                )
                .await
                .expect("review");
            assert!(
                store
                    .record_policy_review(S, "X", today, "Y", Some(today), "", today, &dpo)
                    .await
                    .is_err(),
                "the next review comes after this one"
            );
            store
                .bring_review_forward(S, "Online safety policy", "A pupil reached a chatbot", &dpo)
                .await
                .expect("forward");
            store
                .sign_off_review(S, review, &dpo)
                .await
                .expect("signed");
            assert!(store.sign_off_review(S, review, &dpo).await.is_err());
            let (reviews, triggers) = store.policy_reviews(S).await.expect("reviews");
            assert_eq!(reviews[0].next_on, jiff::civil::date(2027, 9, 10));
            assert!(reviews[0].signed_off.is_some());
            assert_eq!(triggers.len(), 1);

            // Searches: a witness who is not the searcher; one outcome, never before the search.
            use haven_store::registers::NewSearch;
            let search = NewSearch {
                school: S,
                pupil: amara,
                at_ms: now - 3_600_000,
                device: "mobile phone".into(),
                reason: "Reported filming in the changing room".into(),
                authorised_by: "Helen Marsh, headteacher".into(),
                searched_by: "Priya Shah".into(),
                witness: "Priya Shah".into(),
                found: String::new(),
                held: "Headteacher's safe".into(),
                record: None,
            };
            let err = store.log_search(&search, &dpo).await.expect_err("witness");
            assert!(err.to_string().contains("witness"), "{err}");
            let id = store
                .log_search(
                    &NewSearch {
                        witness: "Gareth Lloyd".into(),
                        ..search.clone()
                    },
                    &dpo,
                )
                .await
                .expect("search");
            assert!(
                store
                    .search_outcome(S, id, Some(("Mrs Okafor", now - 7_200_000)), None, &dpo)
                    .await
                    .is_err(),
                "returned before it was taken"
            );
            store
                .search_outcome(S, id, Some(("Mrs Okafor", now)), None, &dpo)
                .await
                .expect("returned");
            assert!(
                store
                    .search_outcome(S, id, None, Some("PC Reed"), &dpo)
                    .await
                    .is_err(),
                "one outcome"
            );
            let logged = store.searches(S).await.expect("log");
            assert_eq!(
                logged[0].returned.as_ref().map(|r| r.0.as_str()),
                Some("Mrs Okafor")
            );
        }
    });
}
