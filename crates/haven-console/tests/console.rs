//! The console through its router (axum `oneshot`), over a real SQLite store holding the demo
//! school's invented people: sign-in with TOTP, the role × route table, CSRF, escaping, review
//! decisions through change control, idle sessions and the JSON API.

// These tests wait on a real service with real deadlines: they read the clock themselves.
#![allow(clippy::disallowed_methods)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use haven_console::permissions::any_allowed;
use haven_console::routes::Guard;
use haven_console::{Console, ConsoleConfig};
use haven_core::event::{Event, Source};
use haven_core::policy::{Action, DEFAULT_POLICY};
use haven_core::{Engine, Policy, Snapshot, Target};
use haven_monitor::MonitorRules;
use haven_monitor::Monitoring;
use haven_runtime::LiveEngine;
use haven_store::captures::CaptureRules;
use haven_store::people::{ImportOptions, Kind};
use haven_store::Store;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

static NEXT: AtomicU32 = AtomicU32::new(0);

struct Harness {
    app: Router,
    store: Store,
    engine: Arc<LiveEngine>,
    dir: PathBuf,
    monitoring: Arc<Monitoring>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const PASSWORD: &str = "correct-horse-9";

async fn harness(config: ConsoleConfig) -> Harness {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("haven-console-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Store::open_sqlite(&dir.join("haven.db"))
        .await
        .expect("store");
    for (kind, csv) in [
        (
            Kind::Pupil,
            include_str!("../../../config/demo-people/pupils.csv"),
        ),
        (
            Kind::Staff,
            include_str!("../../../config/demo-people/staff.csv"),
        ),
    ] {
        let r = store
            .import_people(kind, csv.as_bytes(), ImportOptions::default())
            .await
            .expect("import");
        assert!(r.errors.is_empty(), "{r:?}");
    }
    for user in [
        "priya.shah",
        "gareth.lloyd",
        "helen.marsh",
        "owen.price",
        "ben.carter",
        "lucy.adams",
        "dev.mistry",
        "ruth.ellison",
        "sam.idris",
        "tom.lewis",
        "nia.ormerod",
    ] {
        store.set_password(user, PASSWORD).await.expect("password");
    }
    let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
    let engine =
        Engine::new(Arc::new(Snapshot::empty()), Arc::new(policy), "test").expect("engine");
    let engine = Arc::new(LiveEngine::new(engine));
    let (monitoring, warnings) = Monitoring::new(
        include_str!("../../../config/risk/library.txt"),
        dir.join("risk"),
        MonitorRules::default(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let monitoring = Arc::new(monitoring);
    let console = Console::new(
        store.clone(),
        engine.clone(),
        dir.join("policy.toml"),
        config,
        monitoring.clone(),
    );
    Harness {
        app: console.router(),
        store,
        engine,
        dir,
        monitoring,
    }
}

fn config() -> ConsoleConfig {
    ConsoleConfig {
        listen: "127.0.0.1:0".into(),
        ..ConsoleConfig::default()
    }
}

/// One request: (status, headers, body).
async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    cookies: &str,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut req = Request::builder().method(method).uri(uri);
    if !cookies.is_empty() {
        req = req.header(header::COOKIE, cookies);
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned())),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn location(h: &HeaderMap) -> &str {
    h.get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The `name=value` of a response's Set-Cookie.
fn set_cookie(h: &HeaderMap) -> String {
    h.get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .to_owned()
}

/// A session cookie for someone who has passed both steps, and its CSRF token.
async fn signed_in(store: &Store, user: &str) -> (String, String) {
    let who = store.identity(user).await.expect("db").expect(user);
    let (token, session) = store
        .create_session(who.person_id, "127.0.0.1", true)
        .await
        .expect("session");
    (format!("haven_session={token}"), session.csrf)
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map_or(0, |i| i + start.len());
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn code_now(secret_b32: &str) -> String {
    let secret = haven_console::totp::base32_decode(secret_b32).expect("base32");
    let step = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        / haven_console::totp::STEP;
    format!("{:06}", haven_console::totp::code_at(&secret, step))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn sign_in_takes_a_totp_code_for_safeguarding_roles() {
    rt().block_on(async {
        let h = harness(config()).await;
        let app = &h.app;
        let (status, headers, _) = call(app, Method::GET, "/", "", None, &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/login")
        );
        let (_, headers, page) = call(app, Method::GET, "/login", "", None, &[]).await;
        let login_cookie = set_cookie(&headers);
        let form_token = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        assert!(login_cookie.starts_with("haven_login="), "{login_cookie}");
        // The form must come with its cookie.
        let form = format!("csrf={form_token}&username=priya.shah&password={PASSWORD}");
        let (status, _, _) = call(app, Method::POST, "/login", "", Some(&form), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let wrong = format!("csrf={form_token}&username=priya.shah&password=nope");
        let (status, _, page) = call(
            app,
            Method::POST,
            "/login",
            &login_cookie,
            Some(&wrong),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("did not work"), "{page}");
        // The DSL has no second factor yet: enrolment comes first, and nothing else opens.
        let (status, headers, _) =
            call(app, Method::POST, "/login", &login_cookie, Some(&form), &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/enrol")
        );
        let session = set_cookie(&headers);
        let (status, headers, _) = call(app, Method::GET, "/activity", &session, None, &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/enrol")
        );
        let (_, _, page) = call(app, Method::GET, "/enrol", &session, None, &[]).await;
        assert!(page.contains("<svg"), "a QR code");
        let secret = between(&page, "<code id=\"secret\">", "</code>").to_owned();
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        let (status, _, _) = call(
            app,
            Method::POST,
            "/enrol",
            &session,
            Some(&format!("csrf={csrf}&code=000000")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let code = code_now(&secret);
        let (status, _, page) = call(
            app,
            Method::POST,
            "/enrol",
            &session,
            Some(&format!("csrf={csrf}&code={code}")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let list = between(&page, "<ul class=\"codes\" id=\"recovery-codes\">", "</ul>");
        let recovery: Vec<String> = list
            .split("<li>")
            .skip(1)
            .map(|c| c.trim_end_matches("</li>").to_owned())
            .collect();
        assert_eq!(recovery.len(), 10, "{list}");
        let (status, _, page) = call(app, Method::GET, "/", &session, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Blocks by category") || page.contains("Nothing blocked today"),
            "{page}"
        );

        // Next time: password, then the code. The code just used does not work twice.
        let (_, headers, _) =
            call(app, Method::POST, "/login", &login_cookie, Some(&form), &[]).await;
        assert_eq!(location(&headers), "/login/totp");
        let second = set_cookie(&headers);
        let (_, _, page) = call(app, Method::GET, "/login/totp", &second, None, &[]).await;
        let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        let (status, _, _) = call(
            app,
            Method::POST,
            "/login/totp",
            &second,
            Some(&format!("csrf={csrf}&code={code}")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a replayed code");
        let (status, headers, _) = call(
            app,
            Method::POST,
            "/login/totp",
            &second,
            Some(&format!("csrf={csrf}&code={}", recovery[0])),
            &[],
        )
        .await;
        assert_eq!((status, location(&headers)), (StatusCode::SEE_OTHER, "/"));
        let (status, _, _) = call(app, Method::GET, "/activity", &second, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            !h.store
                .use_recovery_code(
                    h.store
                        .identity("priya.shah")
                        .await
                        .expect("db")
                        .expect("p")
                        .person_id,
                    &recovery[0]
                )
                .await
                .expect("db"),
            "used once"
        );

        // A teacher needs no second factor, and has no activity search.
        let teacher = format!("csrf={form_token}&username=ben.carter&password={PASSWORD}");
        let (_, headers, _) = call(
            app,
            Method::POST,
            "/login",
            &login_cookie,
            Some(&teacher),
            &[],
        )
        .await;
        assert_eq!(location(&headers), "/");
        let t = set_cookie(&headers);
        let (status, _, page) = call(app, Method::GET, "/activity", &t, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(page.contains("Not for your role"), "{page}");
        // Every step is in the audit log.
        let log = h.store.audit_log(None, 100).await.expect("audit");
        for action in [
            "sign in",
            "enrol second factor",
            "second factor refused",
            "second factor",
        ] {
            assert!(log.iter().any(|e| e.action == action), "{action}");
        }
    });
}

/// The person who holds each role in the demo school.
const HOLDERS: &[(&str, haven_store::accounts::Role)] = &[
    ("tom.lewis", haven_store::accounts::Role::Pupil),
    ("ben.carter", haven_store::accounts::Role::Teacher),
    ("lucy.adams", haven_store::accounts::Role::TeachingAssistant),
    ("owen.price", haven_store::accounts::Role::NetworkManager),
    ("priya.shah", haven_store::accounts::Role::Dsl),
    ("gareth.lloyd", haven_store::accounts::Role::DeputyDsl),
    ("helen.marsh", haven_store::accounts::Role::Headteacher),
    ("ruth.ellison", haven_store::accounts::Role::Governor),
    ("dev.mistry", haven_store::accounts::Role::Dpo),
    ("sam.idris", haven_store::accounts::Role::Administrator),
    ("grace.whitfield", haven_store::accounts::Role::Chair),
    ("nia.ormerod", haven_store::accounts::Role::Office),
];

#[test]
fn every_route_refuses_the_roles_the_table_refuses() {
    rt().block_on(async {
        let h = harness(config()).await;
        for (user, role) in HOLDERS {
            let who = h.store.identity(user).await.expect("db").expect(user);
            assert!(who.roles.contains(role), "{user} holds {role:?}");
            let (cookie, csrf) = signed_in(&h.store, user).await;
            for route in haven_console::pages::PAGES {
                // Signing in and its steps (and static files) are open to anyone.
                if route.guard == Guard::Public {
                    continue;
                }
                let (method, path, permission) =
                    (route.method, route.path, route.guard.permission());
                let uri = path.replace("{id}", "999999");
                let (m, form) = match method {
                    "POST" => (
                        Method::POST,
                        Some(format!(
                            "csrf={csrf}&decision=approve&policy=x&reason=x&name=x&text=x"
                        )),
                    ),
                    _ => (Method::GET, None),
                };
                let (status, _, _) = call(&h.app, m, &uri, &cookie, form.as_deref(), &[]).await;
                let allowed = permission.is_none_or(|p| any_allowed(&who.roles, p));
                assert_eq!(
                    status == StatusCode::FORBIDDEN,
                    !allowed,
                    "{user} {method} {uri}: {status}"
                );
            }
            let token = h
                .store
                .create_api_token(
                    who.person_id,
                    "test",
                    haven_store::tokens::TokenScope::Admin,
                    30,
                )
                .await
                .expect("token")
                .1;
            let bearer = format!("Bearer {token}");
            for route in haven_console::api::ROUTES {
                if route.guard == Guard::Public {
                    continue;
                }
                let (method, path, permission) =
                    (route.method, route.path, route.guard.permission());
                let uri = path.replace("{id}", "999999");
                let m = if method == "POST" {
                    Method::POST
                } else {
                    Method::GET
                };
                let extra = [
                    ("authorization", bearer.as_str()),
                    ("content-type", "application/json"),
                ];
                let mut req = Request::builder().method(m).uri(&uri);
                for (k, v) in extra {
                    req = req.header(k, v);
                }
                let body = if method == "POST" {
                    Body::from("{\"decision\":\"decline\"}")
                } else {
                    Body::empty()
                };
                let status = h
                    .app
                    .clone()
                    .oneshot(req.body(body).expect("req"))
                    .await
                    .expect("resp")
                    .status();
                let allowed = permission.is_none_or(|p| any_allowed(&who.roles, p));
                assert_eq!(
                    status == StatusCode::FORBIDDEN,
                    !allowed,
                    "{user} API {method} {uri}: {status}"
                );
            }
        }
        // Without a token the API answers 401, in JSON.
        let (status, _, body) = call(&h.app, Method::GET, "/api/v1/me", "", None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"error\""), "{body}");
    });
}

#[test]
fn forms_need_their_token_and_pages_escape_what_pupils_typed() {
    rt().block_on(async {
        let h = harness(config()).await;
        let nasty = "<script>alert('x')</script> & \"friends\"";
        h.store
            .insert_events(&[Event {
                at_ms: haven_store::now_ms() as u64,
                source: Source::Proxy,
                client: "10.20.1.5".parse().expect("ip"),
                group: "ks2".into(),
                user: Some("tom.lewis".into()),
                name: "https://www.google.co.uk/search?q=%3Cscript%3E".into(),
                qtype: None,
                action: Action::Rewrite,
                category: None,
                reason: Some("safe search".into()),
                search: Some(nasty.into()),
                latency_us: 10,
            }])
            .await
            .expect("event");
        let (cookie, csrf) = signed_in(&h.store, "priya.shah").await;
        let (status, headers, page) = call(
            &h.app,
            Method::GET,
            "/activity?user=tom.lewis&search=script",
            &cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains(
                "&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62; &#38; &#34;friends&#34;"
            ),
            "{page}"
        );
        assert!(
            !page.contains("<script>alert"),
            "the search term is text, never markup"
        );
        let csp = headers
            .get(header::CONTENT_SECURITY_POLICY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        // A capture graded 5 waits on the dashboard, its text shown as text, the read audited.
        h.store
            .record_captures(
                &CaptureRules::default(),
                &[haven_store::captures::NewCapture {
                    at_ms: haven_store::now_ms(),
                    source: "search".into(),
                    client: "10.20.1.5".into(),
                    user: Some("tom.lewis".into()),
                    url: "https://www.google.co.uk/search?q=x".into(),
                    text: nasty.into(),
                    grade: 5,
                    categories: "suicide:5".into(),
                    matched: "kill myself".into(),
                    model: None,
                }],
            )
            .await
            .expect("capture");
        let (status, _, page) = call(&h.app, Method::GET, "/", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("id=\"captures\""), "{page}");
        assert!(
            page.contains("&#60;script&#62;alert(&#39;x&#39;)"),
            "{page}"
        );
        assert!(!page.contains("<script>alert"), "{page}");
        let log = h.store.audit_log(None, 5).await.expect("audit");
        assert!(log
            .iter()
            .any(|e| e.action == "read captures" && e.actor == "priya.shah"));
        // A device can be searched by its name.
        h.store
            .import_devices(b"name,address\nLibrary PC 1,10.20.1.5\n")
            .await
            .expect("device");
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            "/activity?client=library+pc+1",
            &cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("search-term"), "{page}");
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            "/activity?client=Nowhere",
            &cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("No device is called"), "{page}");
        // Reading Tom's activity left a trace.
        let log = h.store.audit_log(None, 10).await.expect("audit");
        let tom = h
            .store
            .identity("tom.lewis")
            .await
            .expect("db")
            .expect("tom");
        assert!(log.iter().any(|e| e.action == "read activity"
            && e.subject == format!("person {}", tom.person_id)
            && e.actor == "priya.shah"));
        // A form without this session's token changes nothing.
        let id = h
            .store
            .add_review(
                1,
                "10.20.1.5",
                "ks2",
                None,
                "http://bet365.com/",
                "gambling",
            )
            .await
            .expect("review")
            .expect("a new request");
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/reviews/{id}"),
            &cookie,
            Some("decision=decline&csrf=forged"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(page.contains("Form expired"), "{page}");
        assert_eq!(
            h.store
                .review(id)
                .await
                .expect("db")
                .expect("r")
                .status
                .as_str(),
            "open"
        );
        // With it (here from htmx's header), it goes through.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/reviews/{id}"),
            &cookie,
            Some("decision=decline&csrf="),
            &[("x-csrf-token", &csrf)],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an empty field is not the header"
        );
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/reviews/{id}"),
            &cookie,
            Some(&format!("decision=decline&csrf={csrf}")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            h.store
                .review(id)
                .await
                .expect("db")
                .expect("r")
                .status
                .as_str(),
            "declined"
        );
    });
}

fn allowed_for(engine: &LiveEngine, url: &str, group: &str) -> bool {
    let e = engine.current();
    let g = e.group_id(group).expect("group");
    let at = "2026-11-23T10:00".parse().expect("time");
    e.decide(&Target::parse(url).expect("url"), g, None, at)
        .action
        == Action::Allow
}

#[test]
fn approving_a_review_changes_the_policy_through_change_control() {
    rt().block_on(async {
        // Straight away when no approval is configured.
        let h = harness(config()).await;
        // Pupils' default is block here, so the site is blocked until the review allows it.
        let policy = DEFAULT_POLICY.replacen(
            "Key stage 2 pupils (years 3 to 6)\"\ndefault = \"allow\"",
            "Key stage 2 pupils (years 3 to 6)\"\ndefault = \"block\"",
            1,
        );
        assert_ne!(policy, DEFAULT_POLICY);
        std::fs::write(h.dir.join("policy.toml"), &policy).expect("policy");
        let engine = Engine::new(
            Arc::new(Snapshot::empty()),
            Arc::new(Policy::from_toml(&policy).expect("p")),
            "t",
        )
        .expect("e");
        h.engine
            .replace(|_| Ok::<_, std::convert::Infallible>(engine))
            .ok();
        assert!(!allowed_for(&h.engine, "http://games.example/", "ks2"));
        let id = h
            .store
            .add_review(
                1,
                "10.20.1.5",
                "ks2",
                None,
                "http://games.example/maths",
                "groups.ks2.default",
            )
            .await
            .expect("review")
            .expect("a new request");
        let (cookie, csrf) = signed_in(&h.store, "owen.price").await;
        let (status, headers, _) = call(
            &h.app,
            Method::POST,
            &format!("/reviews/{id}"),
            &cookie,
            Some(&format!(
                "decision=approve&scope=site&note=maths+games&csrf={csrf}"
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            location(&headers).contains("allowed%20now"),
            "{}",
            location(&headers)
        );
        let written = std::fs::read_to_string(h.dir.join("policy.toml")).expect("policy");
        assert!(
            written.contains("name = \"Review 1\"")
                && written.contains("sites = [\"games.example\"]"),
            "{written}"
        );
        let changes = h.store.policy_changes(10).await.expect("changes");
        assert_eq!(
            (changes[0].status.as_str(), changes[0].author.as_str()),
            ("applied", "owen.price")
        );
        assert!(
            changes[0].reason.contains("maths games"),
            "{:?}",
            changes[0]
        );
        // In force for the running filters at once, for that group only.
        assert!(allowed_for(&h.engine, "http://games.example/other", "ks2"));
        assert!(!allowed_for(&h.engine, "http://other.example/", "ks2"));

        // With approval configured: pending, not by the author, then in force.
        let h = harness(ConsoleConfig {
            policy_approval: true,
            ..config()
        })
        .await;
        let id = h
            .store
            .add_review(
                1,
                "10.20.1.5",
                "ks2",
                None,
                "http://bet365.com/",
                "gambling",
            )
            .await
            .expect("review")
            .expect("a new request");
        let (owen, owen_csrf) = signed_in(&h.store, "owen.price").await;
        let (_, headers, _) = call(
            &h.app,
            Method::POST,
            &format!("/reviews/{id}"),
            &owen,
            Some(&format!("decision=approve&csrf={owen_csrf}")),
            &[],
        )
        .await;
        assert!(
            location(&headers).contains("waits%20for%20a%20second%20person"),
            "{}",
            location(&headers)
        );
        assert!(!h.dir.join("policy.toml").exists(), "nothing written yet");
        let change = h.store.policy_changes(1).await.expect("c")[0].clone();
        assert_eq!(change.status.as_str(), "pending");
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/policy/changes/{}", change.id),
            &owen,
            Some(&format!("decision=approve&csrf={owen_csrf}")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("second person"), "{page}");
        let (sam, sam_csrf) = signed_in(&h.store, "sam.idris").await;
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/policy/changes/{}", change.id),
            &sam,
            Some(&format!("decision=approve&csrf={sam_csrf}")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(std::fs::read_to_string(h.dir.join("policy.toml"))
            .expect("p")
            .contains("bet365.com"));
        let change = h
            .store
            .policy_change(change.id)
            .await
            .expect("c")
            .expect("c");
        assert_eq!(
            (change.status.as_str(), change.approver.as_deref()),
            ("applied", Some("sam.idris"))
        );
        // A policy that does not validate is refused and changes nothing.
        let before = std::fs::read_to_string(h.dir.join("policy.toml")).expect("p");
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            "/policy",
            &sam,
            Some(&format!(
                "csrf={sam_csrf}&reason=oops&policy=%5Bgroups.ks2%5D%0Adefault+%3D+%22sometimes%22"
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("was not changed"), "{page}");
        assert_eq!(
            std::fs::read_to_string(h.dir.join("policy.toml")).expect("p"),
            before
        );
        assert_eq!(
            h.store.verify_audit().await.expect("verify"),
            haven_store::audit::AuditCheck::Intact { entries: 3 }
        );
    });
}

#[test]
fn idle_sessions_end_and_the_api_speaks_json() {
    rt().block_on(async {
        let h = harness(ConsoleConfig {
            idle_minutes: 1,
            ..config()
        })
        .await;
        let (cookie, _) = signed_in(&h.store, "owen.price").await;
        let (status, _, _) = call(&h.app, Method::GET, "/activity", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        // Two minutes without use, as the store sees it.
        let pool = sqlx_pool(&h).await;
        sqlx::query("UPDATE sessions SET last_seen = last_seen - 120000")
            .execute(&pool)
            .await
            .expect("age");
        let (status, headers, _) = call(&h.app, Method::GET, "/activity", &cookie, None, &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/login")
        );
        // Sessions nobody came back to are deleted by the hourly upkeep.
        let _ = signed_in(&h.store, "owen.price").await;
        sqlx::query("UPDATE sessions SET last_seen = last_seen - 120000")
            .execute(&pool)
            .await
            .expect("age");
        assert_eq!(h.store.end_idle_sessions(60_000).await.expect("upkeep"), 1);

        let who = h
            .store
            .identity("owen.price")
            .await
            .expect("db")
            .expect("owen");
        let token = h
            .store
            .create_api_token(who.person_id, "nightly report", haven_store::tokens::TokenScope::Admin, 30)
            .await
            .expect("token").1;
        let bearer = format!("Bearer {token}");
        h.store
            .insert_events(&[Event {
                at_ms: 1_790_000_000_000,
                source: Source::Dns,
                client: "10.20.1.5".parse().expect("ip"),
                group: "ks2".into(),
                user: None,
                name: "bet365.com".into(),
                qtype: Some(1),
                action: Action::Block,
                category: Some("gambling".into()),
                reason: Some("gambling (groups.ks2.categories.gambling)".into()),
                search: None,
                latency_us: 20,
            }])
            .await
            .expect("event");
        let (status, _, body) = call(
            &h.app,
            Method::GET,
            "/api/v1/events?category=gambling",
            "",
            None,
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(json["events"][0]["name"], "bet365.com");
        // A policy change through the API: refused unless it validates, then in force.
        let post = |body: String| {
            let app = h.app.clone();
            let bearer = bearer.clone();
            async move {
                let req = Request::builder()
                    .method(Method::POST)
                    .uri("/api/v1/policy")
                    .header("authorization", bearer)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .expect("req");
                let resp = app.oneshot(req).await.expect("resp");
                let status = resp.status();
                let bytes = resp.into_body().collect().await.expect("body").to_bytes();
                (status, String::from_utf8_lossy(&bytes).into_owned())
            }
        };
        let (status, body) = post("{}".into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "no reason given: {body}");
        let bad = serde_json::json!({ "policy": "[groups.ks2]\ndefault = \"sometimes\"\n", "reason": "test" });
        let (status, body) = post(bad.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("was not changed"), "{body}");
        let good = DEFAULT_POLICY.replacen("school = \"Demo Primary School\"", "school = \"Renamed Primary\"", 1);
        assert_ne!(good, DEFAULT_POLICY);
        let (status, body) = post(serde_json::json!({ "policy": good, "reason": "new name" }).to_string()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"applied\""), "{body}");
        assert_eq!(h.engine.current().policy().school, "Renamed Primary");
        let (status, _, body) = call(&h.app, Method::GET, "/api/v1/people?q=lewis", "", None, &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"tom.lewis\""), "{body}");
        let (status, _, body) = call(&h.app, Method::GET, "/api/v1/dashboard", "", None, &[("authorization", &bearer)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("\"open_reviews\""), "{body}");
        let (status, _, body) = call(
            &h.app,
            Method::GET,
            "/api/v1/me",
            "",
            None,
            &[("authorization", &bearer)],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("\"network-manager\""), "{body}");
        // The OpenAPI document describes every route.
        let (status, _, body) = call(&h.app, Method::GET, "/api/openapi.json", "", None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&body).expect("openapi json");
        for route in haven_console::api::ROUTES {
            let (method, path) = (route.method, route.path);
            if route.guard == Guard::Public {
                continue;
            }
            assert!(
                doc["paths"][path][method.to_lowercase()].is_object(),
                "{method} {path} documented"
            );
        }
    });
}

async fn sqlx_pool(h: &Harness) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(&format!("sqlite://{}", h.dir.join("haven.db").display()))
        .await
        .expect("pool")
}

#[test]
fn guessing_from_one_address_is_slowed() {
    rt().block_on(async {
        let h = harness(config()).await;
        let (_, headers, page) = call(&h.app, Method::GET, "/login", "", None, &[]).await;
        let login = set_cookie(&headers);
        let token = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        // Twenty wrong guesses spread over many accounts: none is locked, but the address is.
        for (i, user) in HOLDERS.iter().map(|(u, _)| *u).cycle().take(20).enumerate() {
            let form = format!("csrf={token}&username={user}&password=guess{i}");
            let (status, _, _) =
                call(&h.app, Method::POST, "/login", &login, Some(&form), &[]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let right = format!("csrf={token}&username=ben.carter&password={PASSWORD}");
        let (status, _, page) =
            call(&h.app, Method::POST, "/login", &login, Some(&right), &[]).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert!(
            page.contains("Too many failed sign-ins from this computer"),
            "{page}"
        );
        // No account was locked by it.
        assert!(h
            .store
            .sign_in("ben.carter", PASSWORD)
            .await
            .expect("db")
            .is_ok());
    });
}

fn capture(text: &str, matched: &str) -> haven_store::captures::NewCapture {
    haven_store::captures::NewCapture {
        at_ms: haven_store::now_ms(),
        source: "search".into(),
        client: "10.20.1.5".into(),
        user: Some("tom.lewis".into()),
        url: "https://www.google.co.uk/search?q=x".into(),
        text: text.into(),
        grade: 5,
        categories: "suicide:5".into(),
        matched: matched.into(),
        model: None,
    }
}

#[test]
fn the_dsl_triages_captures_dismissals_count_against_phrases() {
    rt().block_on(async {
        let h = harness(config()).await;
        h.store
            .record_captures(
                &CaptureRules::default(),
                &[
                    capture("how do i kill myself", "kill myself")
                        .with_model(Some("suicide 5 (alert 0.93)".into())),
                    capture("kill myself laughing at this meme", "kill myself"),
                ],
            )
            .await
            .expect("captures");
        let open = h.store.open_captures(1, 10).await.expect("open");
        let id_of = |text: &str| open.iter().find(|k| k.text == text).expect(text).id;
        let (serious, meme) = (
            id_of("how do i kill myself"),
            id_of("kill myself laughing at this meme"),
        );
        let (cookie, csrf) = signed_in(&h.store, "priya.shah").await;
        let (status, _, page) = call(&h.app, Method::GET, "/triage", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("kill myself laughing"), "{page}");
        // Each capture says which opinion found what: the phrases, and the model when asked.
        let row = between(&page, &format!("id=\"capture-{serious}\""), "</tr>");
        assert!(row.contains("Phrases found: kill myself"), "{row}");
        assert!(row.contains("Model: suicide 5 (alert 0.93)"), "{row}");
        let row = between(&page, &format!("id=\"capture-{meme}\""), "</tr>");
        assert!(row.contains("Phrases found: kill myself"), "{row}");
        assert!(!row.contains("Model:"), "{row}");
        let (_, _, opened) = call(
            &h.app,
            Method::GET,
            &format!("/triage/{serious}"),
            &cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(
            between(&opened, "id=\"capture-phrases\">", "</td>"),
            "kill myself"
        );
        assert_eq!(
            between(&opened, "id=\"capture-model\">", "</td>"),
            "suicide 5 (alert 0.93)"
        );
        // Dismissing needs a reason.
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{meme}"),
            &cookie,
            Some(&format!("csrf={csrf}&decision=dismiss&reason=")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("Say why"), "{page}");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{meme}"),
            &cookie,
            Some(&format!(
                "csrf={csrf}&decision=dismiss&reason=a+joke+about+a+meme"
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        // Promoting asks for the child, a note and a confirmation, then opens a real concern
        // whose chronology begins with the capture.
        let (status, headers, _) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{serious}"),
            &cookie,
            Some(&format!("csrf={csrf}&decision=promote")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(location(&headers), format!("/triage/{serious}/promote"));
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/triage/{serious}/promote"),
            &cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Tom Lewis") && page.contains("value=\"welfare\" selected"),
            "{page}"
        );
        let tom = h
            .store
            .identity("tom.lewis")
            .await
            .expect("db")
            .expect("tom")
            .person_id;
        let promote = |extra: &str| format!("csrf={csrf}&child={tom}&category=welfare{extra}");
        for (extra, says) in [
            ("&note=Spoke+to+Tom", "Confirm"),
            ("&confirm=yes", "note is needed"),
        ] {
            let (status, _, page) = call(
                &h.app,
                Method::POST,
                &format!("/triage/{serious}/promote"),
                &cookie,
                Some(&promote(extra)),
                &[],
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{extra}");
            assert!(page.contains(says), "{says}: {page}");
        }
        assert_eq!(
            h.store.open_captures(1, 10).await.expect("open").len(),
            1,
            "nothing changed yet"
        );
        let (status, headers, _) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{serious}/promote"),
            &cookie,
            Some(&promote(
                "&note=Spoke+to+Tom%3B+referring+to+CAMHS&confirm=yes",
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            location(&headers).starts_with("/records/"),
            "{}",
            location(&headers)
        );
        let chronology = h.store.chronology(1, tom).await.expect("chronology");
        assert!(
            chronology[0].text.contains("how do i kill myself")
                && chronology[0].text.contains("suicide 5 (alert 0.93)"),
            "{chronology:?}"
        );
        assert_eq!(
            chronology
                .iter()
                .find(|e| e.kind == haven_records::EntryKind::Decision)
                .and_then(|e| e.rationale.clone())
                .as_deref(),
            Some("Spoke to Tom; referring to CAMHS")
        );
        assert!(h.store.open_captures(1, 10).await.expect("open").is_empty());
        // The phrase's record: two decided, one dismissed.
        let records = h.store.phrase_records().await.expect("records");
        assert_eq!(
            (
                records[0].phrase.as_str(),
                records[0].decided,
                records[0].dismissed
            ),
            ("kill myself", 2, 1)
        );
        let (_, _, page) = call(&h.app, Method::GET, "/triage", &cookie, None, &[]).await;
        assert!(page.contains("50%"), "{page}");
        // Deciding twice is refused; so is a network manager (technical logs, not safeguarding).
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{serious}/promote"),
            &cookie,
            Some(&promote("&note=again&confirm=yes")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (owen, _) = signed_in(&h.store, "owen.price").await;
        let (status, _, _) = call(&h.app, Method::GET, "/triage", &owen, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let log = h.store.audit_log(None, 20).await.expect("audit");
        for action in ["dismiss capture", "promote capture", "read captures"] {
            assert!(log.iter().any(|e| e.action == action), "{action}");
        }
    });
}

/// A JSON POST with a bearer token: (status, body).
async fn post_json(app: &Router, uri: &str, bearer: &str, json: &str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::AUTHORIZATION, bearer)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json.to_owned()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn text_ingested_through_the_api_is_graded_opened_in_context_and_the_library_edited() {
    rt().block_on(async {
        let h = harness(config()).await;
        let owen = h.store.identity("owen.price").await.expect("db").expect("owen");
        let token = h
            .store
            .create_api_token(owen.person_id, "device agent", haven_store::tokens::TokenScope::Admin, 30)
            .await
            .expect("token").1;
        let bearer = format!("Bearer {token}");
        // A grade-5 text from a device agent: stored, alerting; an ordinary one is not stored.
        let (status, body) = post_json(
            &h.app,
            "/api/v1/captures",
            &bearer,
            r#"{"text": "i want to kill myself tonight", "source": "agent", "user": "tom.lewis", "device": "Year 5 laptop 12", "url": "app://notes"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["grade"], 5, "{body}");
        assert_eq!(v["alert"], true, "{body}");
        let id = v["capture"].as_i64().expect("capture id");
        let (status, body) = post_json(
            &h.app,
            "/api/v1/captures",
            &bearer,
            r#"{"text": "homework about the water cycle", "source": "agent"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains(r#""capture":null"#), "{body}");
        // Bad input is refused and stores nothing.
        for bad in [
            r#"{"text": "", "source": "agent"}"#,
            r#"{"text": "kill myself", "source": "Agent Smith"}"#,
            r#"{"text": "kill myself", "source": "agent", "user": "nobody.at.all"}"#,
            r#"{"text": "kill myself", "source": "agent", "at_ms": 1}"#,
            r#"{"text": "kill myself"}"#,
            r#"not json"#,
        ] {
            let (status, body) = post_json(&h.app, "/api/v1/captures", &bearer, bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        }
        assert_eq!(h.store.open_captures(1, 50).await.expect("open").len(), 1);
        // A DSL's token may not send text in (the table says ingest is the network manager's).
        let priya = h.store.identity("priya.shah").await.expect("db").expect("priya");
        let dsl_token = h
            .store
            .create_api_token(priya.person_id, "mine", haven_store::tokens::TokenScope::Admin, 30)
            .await
            .expect("token").1;
        let (status, _) = post_json(
            &h.app,
            "/api/v1/captures",
            &format!("Bearer {dsl_token}"),
            r#"{"text": "x", "source": "agent"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The DSL opens the capture in context: its alert is acknowledged, the read audited.
        let (cookie, csrf) = signed_in(&h.store, "priya.shah").await;
        let (status, _, page) =
            call(&h.app, Method::GET, &format!("/triage/{id}"), &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("i want to kill myself tonight"), "{page}");
        assert!(page.contains("Year 5 laptop 12"), "{page}");
        assert!(page.contains("acknowledged by priya.shah"), "{page}");
        let alerts = h.store.capture_alerts(id).await.expect("alerts");
        assert_eq!(alerts[0].acknowledged_by.as_deref(), Some("priya.shah"));
        let log = h.store.audit_log(None, 50).await.expect("audit");
        for action in ["ingest capture", "read capture"] {
            assert!(log.iter().any(|e| e.action == action), "{action}");
        }

        // The library page lists every phrase; a school file with a bad line changes nothing.
        let (status, _, page) = call(&h.app, Method::GET, "/library", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("kill myself"), "{page}");
        let form = |text: &str, note: &str| {
            format!(
                "csrf={csrf}&text={}&note={}",
                haven_console::pages::url_encode(text),
                haven_console::pages::url_encode(note)
            )
        };
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            "/library",
            &cookie,
            Some(&form("version 1\n4 | bullying | the bench behind the gym\n9 | weather | rain\n", "local terms")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("line 3"), "{page}");
        assert_eq!(h.monitoring.library().grade("the bench behind the gym").grade, 0);
        assert!(h.store.library_changes(10).await.expect("changes").is_empty());
        // A good one is in force at once, recorded and audited; `off` silences a built-in phrase.
        let (status, headers, _) = call(
            &h.app,
            Method::POST,
            "/library",
            &cookie,
            Some(&form(
                "version 1\n4 | bullying | the bench behind the gym\noff | kill myself\n",
                "a phrase from a Year 8 incident; kill myself is covered by the intent phrases",
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(location(&headers).starts_with("/library?done="));
        // Switching off a grade-5 phrase waits for a second person: the deputy approves.
        let changes = h.store.library_changes(10).await.expect("changes");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].author, "priya.shah");
        assert_eq!(changes[0].status.as_str(), "pending");
        let (gareth, gareth_csrf) = signed_in(&h.store, "gareth.lloyd").await;
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/library/changes/{}", changes[0].id),
            &gareth,
            Some(&format!("csrf={gareth_csrf}&decision=approve")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            h.monitoring.library().grade("meet at the bench behind the gym").grade,
            4
        );
        assert_eq!(h.monitoring.library().grade("kill myself").grade, 0);
        assert!(std::fs::read_to_string(h.dir.join("risk/school.txt"))
            .expect("file")
            .contains("the bench behind the gym"));
        // The dismissal of a capture shows as the phrase's false-positive rate on the page.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/triage/{id}"),
            &cookie,
            Some(&format!("csrf={csrf}&decision=dismiss&reason=song+lyrics")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/library", &cookie, None, &[]).await;
        let row = page
            .lines()
            .find(|l| l.contains("<td>want to die</td>") || l.contains("<td>kill myself</td>"))
            .unwrap_or("");
        assert!(row.contains("100%"), "{row}");
        let log = h.store.audit_log(None, 50).await.expect("audit");
        assert!(log.iter().any(|e| e.action == "propose risk library change"));
    });
}

// ---- issue 12: what the audit log, tokens and non-safeguarding roles may read --------------

/// A token made on the tokens page by `user`, with `scope` and lifetime in days: the token.
async fn token_from_page(h: &Harness, user: &str, name: &str, scope: &str) -> String {
    let (cookie, csrf) = signed_in(&h.store, user).await;
    let form = format!("csrf={csrf}&name={name}&scope={scope}&days=30");
    let (status, _, page) = call(&h.app, Method::POST, "/tokens", &cookie, Some(&form), &[]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    between(&page, "<code id=\"new-token\">", "</code>").to_owned()
}

async fn get_with(h: &Harness, uri: &str, bearer: &str) -> (StatusCode, String) {
    let (status, _, body) = call(
        &h.app,
        Method::GET,
        uri,
        "",
        None,
        &[("authorization", bearer)],
    )
    .await;
    (status, body)
}

/// Tom's two searches through the proxy: one the risk library grades 5, one it does not.
async fn toms_searches(h: &Harness) {
    let event = |at: u64, q: &str| Event {
        at_ms: at,
        source: Source::Proxy,
        client: "10.20.1.5".parse().expect("ip"),
        group: "ks2".into(),
        user: Some("tom.lewis".into()),
        name: format!("http://www.google.co.uk/search?q={}", q.replace(' ', "+")),
        qtype: None,
        action: Action::Allow,
        category: Some("search-engines".into()),
        reason: None,
        search: Some(q.into()),
        latency_us: 20,
    };
    h.store
        .insert_events(&[
            event(1_790_000_000_000, "how do i k1ll myself"),
            event(1_790_000_001_000, "volcano facts"),
        ])
        .await
        .expect("events");
}

#[test]
fn a_network_managers_activity_search_never_shows_a_search_that_graded_as_a_capture() {
    rt().block_on(async {
        let h = harness(config()).await;
        toms_searches(&h).await;
        // The network manager, on the page and through the API.
        let (owen, _) = signed_in(&h.store, "owen.price").await;
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            "/activity?user=tom.lewis",
            &owen,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("volcano facts"), "{page}");
        assert!(
            !page.contains("k1ll"),
            "the network manager reads the search:\n{page}"
        );
        assert!(
            page.contains("its words are visible to safeguarding roles only"),
            "{page}"
        );
        let bearer = format!(
            "Bearer {}",
            token_from_page(&h, "owen.price", "report", "read").await
        );
        let (status, body) = get_with(&h, "/api/v1/events?user=tom.lewis", &bearer).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("volcano facts"), "{body}");
        assert!(
            !body.contains("k1ll"),
            "the network manager's API reads the search:\n{body}"
        );
        assert!(
            body.contains("graded: visible to safeguarding roles"),
            "{body}"
        );
        // Trying words as search filters does not confirm what Tom searched for.
        for probe in ["k1ll", "myself"] {
            let (status, _, page) = call(
                &h.app,
                Method::GET,
                &format!("/activity?user=tom.lewis&search={probe}"),
                &owen,
                None,
                &[],
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                !page.contains("graded: visible") && !page.contains("how do i"),
                "{probe}: {page}"
            );
            let (_, body) = get_with(
                &h,
                &format!("/api/v1/events?user=tom.lewis&search={probe}"),
                &bearer,
            )
            .await;
            assert!(body.contains("\"events\":[]"), "{probe}: {body}");
        }
        // The DSL reads it as typed.
        let (priya, _) = signed_in(&h.store, "priya.shah").await;
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            "/activity?user=tom.lewis",
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("how do i k1ll myself"), "{page}");
    });
}

/// The id of the token called `name` on the tokens page.
fn token_id(page: &str, name: &str) -> i64 {
    let at = page
        .find(&format!("<td>{name}</td>"))
        .expect("the token is listed");
    let row = &page[..at];
    let start = row.rfind("id=\"token-").expect("row id") + "id=\"token-".len();
    row[start..]
        .split('"')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number")
}

#[test]
fn an_ingest_token_cannot_read_events_or_post_policy_and_old_or_revoked_tokens_are_refused() {
    rt().block_on(async {
        let h = harness(config()).await;
        toms_searches(&h).await;
        let ingest = format!(
            "Bearer {}",
            token_from_page(&h, "owen.price", "agent", "ingest").await
        );
        // It sends text in …
        let (status, body) = post_json(
            &h.app,
            "/api/v1/captures",
            &ingest,
            r#"{"text": "homework about rivers", "source": "agent"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // … and nothing else.
        let (status, body) = get_with(&h, "/api/v1/events?user=tom.lewis", &ingest).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an ingest token reads events: {body}"
        );
        let (status, body) = get_with(&h, "/api/v1/people?q=lewis", &ingest).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an ingest token searches people: {body}"
        );
        let policy = serde_json::json!({ "policy": DEFAULT_POLICY, "reason": "x" }).to_string();
        let (status, body) = post_json(&h.app, "/api/v1/policy", &ingest, &policy).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "an ingest token posts policy: {body}"
        );
        // A read token reads but changes nothing.
        let read = format!(
            "Bearer {}",
            token_from_page(&h, "owen.price", "report", "read").await
        );
        let (status, body) = get_with(&h, "/api/v1/events?user=tom.lewis", &read).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = post_json(&h.app, "/api/v1/policy", &read, &policy).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a read token posts policy: {body}"
        );
        // Tokens are listed on the page; one revoked there is refused at once.
        let (cookie, csrf) = signed_in(&h.store, "owen.price").await;
        let (status, _, page) = call(&h.app, Method::GET, "/tokens", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("<td>agent</td>") && page.contains("<td>report</td>"),
            "{page}"
        );
        let id = token_id(&page, "report");
        let (status, _, body) = call(
            &h.app,
            Method::POST,
            &format!("/tokens/{id}/revoke"),
            &cookie,
            Some(&format!("csrf={csrf}")),
            &[],
        )
        .await;
        assert!(
            status.is_redirection() || status.is_success(),
            "{status}: {body}"
        );
        let (status, _) = get_with(&h, "/api/v1/me", &read).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a revoked token still works"
        );
        // A token past its time is refused.
        let pool = sqlx_pool(&h).await;
        sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE name = 'agent'")
            .execute(&pool)
            .await
            .expect("expire the token");
        let (status, _) = get_with(&h, "/api/v1/me", &ingest).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "an expired token still works"
        );
    });
}

#[test]
fn a_grade_5_phrase_switched_off_waits_for_a_second_person_who_is_not_its_author() {
    rt().block_on(async {
        let h = harness(config()).await;
        assert_eq!(h.monitoring.library().grade("kill myself").grade, 5);
        let (priya, csrf) = signed_in(&h.store, "priya.shah").await;
        let form = format!(
            "csrf={csrf}&text={}&note={}",
            haven_console::pages::url_encode("version 1\noff | kill myself\n"),
            haven_console::pages::url_encode("too many false alerts")
        );
        let (status, _, _) = call(&h.app, Method::POST, "/library", &priya, Some(&form), &[]).await;
        assert!(status.is_redirection() || status.is_success(), "{status}");
        assert_eq!(
            h.monitoring.library().grade("kill myself").grade,
            5,
            "one person switched off a grade-5 phrase"
        );
        let changes = h.store.library_changes(10).await.expect("changes");
        assert_eq!(changes.len(), 1);
        let id = changes[0].id;
        // The author cannot approve it.
        let settle = |csrf: &str, decision: &str| format!("csrf={csrf}&decision={decision}");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/library/changes/{id}"),
            &priya,
            Some(&settle(&csrf, "approve")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(h.monitoring.library().grade("kill myself").grade, 5);
        // Nor is she offered the button: her page says it waits for someone else.
        let (_, _, page) = call(&h.app, Method::GET, "/library", &priya, None, &[]).await;
        assert!(
            page.contains("someone else who triages must approve it")
                && !page.contains("value=\"approve\""),
            "{page}"
        );
        // A second person with the right to triage can.
        let (gareth, csrf) = signed_in(&h.store, "gareth.lloyd").await;
        let (status, _, page) = call(&h.app, Method::GET, "/library", &gareth, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("waits for a second person"), "{page}");
        let (status, _, body) = call(
            &h.app,
            Method::POST,
            &format!("/library/changes/{id}"),
            &gareth,
            Some(&settle(&csrf, "approve")),
            &[],
        )
        .await;
        assert!(status.is_redirection(), "{status}: {body}");
        assert_eq!(h.monitoring.library().grade("kill myself").grade, 0);
        let log = h.store.audit_log(None, 20).await.expect("audit");
        assert!(log
            .iter()
            .any(|e| e.action == "approve risk library change" && e.actor == "gareth.lloyd"));
    });
}

#[test]
fn people_searches_the_review_queue_and_api_reads_are_audited_without_their_words() {
    rt().block_on(async {
        let h = harness(config()).await;
        toms_searches(&h).await;
        let (priya, _) = signed_in(&h.store, "priya.shah").await;
        let (status, _, page) =
            call(&h.app, Method::GET, "/people?q=lewis", &priya, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let (status, _, _) = call(&h.app, Method::GET, "/reviews", &priya, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let bearer = format!(
            "Bearer {}",
            token_from_page(&h, "owen.price", "report", "read").await
        );
        let (status, _) =
            get_with(&h, "/api/v1/events?user=tom.lewis&search=volcano", &bearer).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get_with(&h, "/api/v1/people?q=lewis", &bearer).await;
        assert_eq!(status, StatusCode::OK);
        let log = h.store.audit_log(None, 50).await.expect("audit");
        let has =
            |actor: &str, action: &str| log.iter().any(|e| e.actor == actor && e.action == action);
        assert!(has("priya.shah", "search people"), "{log:#?}");
        assert!(has("priya.shah", "read reviews"), "{log:#?}");
        assert!(has("owen.price", "search people"), "{log:#?}");
        let api_read = log
            .iter()
            .find(|e| e.actor == "owen.price" && e.action == "read activity")
            .expect("the API read");
        let text = format!("{api_read:?}");
        assert!(text.contains("search"), "the filter's kind is kept: {text}");
        for words in ["volcano", "lewis", "tom."] {
            assert!(
                !format!("{log:?}").to_lowercase().contains(words),
                "{words} in {log:#?}"
            );
        }
    });
}

#[test]
fn a_session_past_its_absolute_lifetime_is_refused_even_when_active() {
    rt().block_on(async {
        let h = harness(config()).await;
        let (cookie, _) = signed_in(&h.store, "owen.price").await;
        let (status, _, _) = call(&h.app, Method::GET, "/activity", &cookie, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        // Started thirteen hours ago, used a moment ago: past the twelve hours a session lasts.
        let pool = sqlx_pool(&h).await;
        sqlx::query("UPDATE sessions SET created_at = created_at - 46800000")
            .execute(&pool)
            .await
            .expect("age");
        let (status, headers, _) = call(&h.app, Method::GET, "/activity", &cookie, None, &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/login"),
            "a session kept busy lived past its absolute lifetime"
        );
    });
}

#[test]
fn my_sessions_lists_them_and_signing_out_another_ends_it() {
    rt().block_on(async {
        let h = harness(config()).await;
        let (mine, csrf) = signed_in(&h.store, "ben.carter").await;
        let (other, _) = signed_in(&h.store, "ben.carter").await;
        let (someone_else, _) = signed_in(&h.store, "lucy.adams").await;
        let (status, _, page) = call(&h.app, Method::GET, "/account", &mine, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<&str> = page
            .split("name=\"session\" value=\"")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .collect();
        assert_eq!(ids.len(), 1, "one other session to end: {page}");
        assert!(page.contains("This browser"), "{page}");
        // Someone else's session cannot be ended from here.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/account/sessions",
            &mine,
            Some("csrf=nope&session=x"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/account/sessions",
            &mine,
            Some(&format!("csrf={csrf}&session={}", ids[0])),
            &[],
        )
        .await;
        assert!(status.is_redirection() || status.is_success(), "{status}");
        let (status, headers, _) = call(&h.app, Method::GET, "/", &other, None, &[]).await;
        assert_eq!(
            (status, location(&headers)),
            (StatusCode::SEE_OTHER, "/login"),
            "the session signed out elsewhere goes on"
        );
        for cookie in [&mine, &someone_else] {
            let (status, _, _) = call(&h.app, Method::GET, "/", cookie, None, &[]).await;
            assert_eq!(status, StatusCode::OK);
        }
    });
}

#[test]
fn guessing_console_passwords_is_audited_counted_not_one_row_per_guess() {
    rt().block_on(async {
        let h = harness(config()).await;
        let (_, headers, page) = call(&h.app, Method::GET, "/login", "", None, &[]).await;
        let login = set_cookie(&headers);
        let token = between(&page, "name=\"csrf\" value=\"", "\"").to_owned();
        for i in 0..9 {
            let form = format!("csrf={token}&username=ben.carter&password=guess{i}");
            let (status, _, _) =
                call(&h.app, Method::POST, "/login", &login, Some(&form), &[]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let log = h.store.audit_log(None, 100).await.expect("audit");
        let rows: Vec<_> = log
            .iter()
            .filter(|e| e.actor == "ben.carter" && e.action != "sign in")
            .collect();
        assert!(
            !rows.is_empty() && rows.len() <= 3,
            "{} rows for nine guesses: {rows:?}",
            rows.len()
        );
        assert!(
            rows.iter()
                .any(|e| e.action == "account locked" && e.detail.contains("wrong passwords=5")),
            "{rows:?}"
        );
    });
}

/// Every byte but letters and digits percent-encoded, for a form field.
fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn list_alerts_are_a_banner_for_those_who_run_the_filter() {
    rt().block_on(async {
        let h = harness(config()).await;
        // An IWF entry under a policy rule, and the previous snapshot standing in.
        let mut b = haven_core::snapshot::SnapshotBuilder::new();
        let s = b.add_source("iwf/iwf.txt", "iwf").expect("source");
        b.add(
            s,
            haven_core::snapshot::EntryKind::Url,
            "abuse-demo.example/img/1",
        )
        .expect("entry");
        let snapshot = Arc::new(Snapshot::from_bytes(b.build(0)).expect("snapshot"));
        let text = format!(
            "{DEFAULT_POLICY}\n[[allow]]\nname = \"Image CDN\"\nsites = [\"abuse-demo.example\"]\n"
        );
        std::fs::write(h.dir.join("policy.toml"), &text).expect("policy");
        let policy = Arc::new(Policy::from_toml(&text).expect("policy"));
        let engine = Engine::new(snapshot, policy, "test")
            .expect("the lists never wait for the policy")
            .with_fallback("snapshot.hvn: checksum <mismatch>".to_owned());
        h.engine
            .replace(|_| Ok::<_, std::convert::Infallible>(engine))
            .expect("swap");
        let (owen, owen_csrf) = signed_in(&h.store, "owen.price").await;
        let (_, _, page) = call(&h.app, Method::GET, "/", &owen, None, &[]).await;
        assert!(page.contains("id=\"list-alerts\""), "{page}");
        assert!(page.contains("previous snapshot"), "{page}");
        assert!(
            page.contains("checksum &#60;mismatch&#62;"),
            "escaped: {page}"
        );
        assert!(page.contains("Image CDN"), "{page}");
        // Not for a teacher.
        let (ben, _) = signed_in(&h.store, "ben.carter").await;
        let (_, _, page) = call(&h.app, Method::GET, "/", &ben, None, &[]).await;
        assert!(!page.contains("list-alerts"), "{page}");
        // A change that adds another rule over the entry is refused; one that keeps the known
        // rule and changes something else goes through, and the fallback stays marked.
        let worse =
            format!("{text}\n[[allow]]\nname = \"Worse\"\nsites = [\"abuse-demo.example/img\"]\n");
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            "/policy",
            &owen,
            Some(&format!(
                "csrf={owen_csrf}&reason=test&policy={}",
                form_encode(&worse)
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
        assert!(page.contains("Worse"), "{page}");
        let other = text.replacen("gambling = \"block\"", "gambling = \"warn\"", 1);
        assert_ne!(other, text);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            "/policy",
            &owen,
            Some(&format!(
                "csrf={owen_csrf}&reason=test&policy={}",
                form_encode(&other)
            )),
            &[],
        )
        .await;
        assert!(
            status.is_redirection() || status.is_success(),
            "{status} {page}"
        );
        assert_eq!(
            std::fs::read_to_string(h.dir.join("policy.toml")).expect("p"),
            other
        );
        assert!(h.engine.current().fallback().is_some());
        let t = Target::parse("http://abuse-demo.example/img/1").expect("t");
        let e = h.engine.current();
        let g = e.group_id("staff").expect("staff");
        let at = haven_core::policy::parse_datetime("2026-11-23T10:00").expect("t");
        assert_eq!(e.decide(&t, g, None, at).action, Action::Block);
    });
}

/// The first 12 hex digits of the SHA-256 of `bytes`, as the library page shows a model's.
fn sha12(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_library_page_says_which_model_is_in_force_and_how_it_did_on_the_schools_decisions() {
    use haven_monitor::training::{OnDecisions, SchoolReport, BUILT_IN_MODEL, BUILT_IN_PAGE_MODEL};
    rt().block_on(async {
        let h = harness(config()).await;
        let built_in = sha12(BUILT_IN_MODEL);
        let page_model = sha12(BUILT_IN_PAGE_MODEL);
        let (dsl, _) = signed_in(&h.store, "priya.shah").await;
        let (status, _, page) = call(&h.app, Method::GET, "/library", &dsl, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let model = between(&page, "<section id=\"model\">", "</section>");
        assert!(model.contains("The built-in model"), "{model}");
        assert!(
            model.contains(&format!("<code>{built_in}</code>")),
            "{model}"
        );
        assert!(model.contains(" MB</td>"), "{model}");
        // Which model classifies pages, and that the school's training does not change it.
        assert!(model.contains("id=\"page-model\""), "{model}");
        let pages = between(model, "<p class=\"muted\" id=\"page-model\">", "</p>");
        assert!(
            pages.contains(&format!("<code>{page_model}</code>")) && page_model != built_in,
            "{pages}"
        );
        assert!(model.contains("id=\"model-no-decisions\""), "{model}");
        assert!(
            model.contains("haven monitor train --with-decisions"),
            "{model}"
        );
        // A network manager (no safeguarding access) cannot open the page at all.
        let (owen, _) = signed_in(&h.store, "owen.price").await;
        let (status, _, page) = call(&h.app, Method::GET, "/library", &owen, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(!page.contains(&built_in), "{page}");
        // The school's own model, trained with its decisions, and its report beside it.
        let model_dir = h.dir.join("model");
        std::fs::create_dir_all(&model_dir).expect("model dir");
        std::fs::write(model_dir.join("school.model"), BUILT_IN_MODEL).expect("model");
        let full_sha = |bytes: &[u8]| -> String {
            ring::digest::digest(&ring::digest::SHA256, bytes)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let mut report = SchoolReport {
            at_ms: haven_store::now_ms(),
            built_in: 4860,
            decisions: 6,
            sha256: full_sha(BUILT_IN_MODEL),
            before: OnDecisions {
                promoted: 2,
                dismissed: 4,
                promoted_kept: 2,
                dismissed_kept: 4,
            },
            after: OnDecisions {
                promoted: 2,
                dismissed: 4,
                promoted_kept: 1,
                dismissed_kept: 0,
            },
        };
        let write = |r: &SchoolReport| {
            std::fs::write(
                model_dir.join("school.json"),
                serde_json::to_vec(r).expect("json"),
            )
            .expect("school.json")
        };
        write(&report);
        // Trained but not yet in force: the page says what to do.
        let (_, _, page) = call(&h.app, Method::GET, "/library", &dsl, None, &[]).await;
        let model = between(&page, "<section id=\"model\">", "</section>");
        assert!(model.contains("The built-in model"), "{model}");
        assert!(model.contains("id=\"model-not-in-force\""), "{model}");
        // Once reloaded, it is the school's own, with its figures before and after.
        assert!(h.monitoring.reload().is_empty());
        let (_, _, page) = call(&h.app, Method::GET, "/library", &dsl, None, &[]).await;
        let model = between(&page, "<section id=\"model\">", "</section>");
        assert!(
            model.contains("The school&#39;s own model, trained"),
            "{model}"
        );
        assert!(!model.contains("model-not-in-force"), "{model}");
        assert!(
            model.contains("6 triage decisions\n(2 promoted, 4 dismissed)"),
            "{model}"
        );
        let figures = between(model, "<table id=\"model-decisions\">", "</table>");
        let before = between(figures, "Before:", "</tr>");
        let after = between(
            figures,
            "After: each decision judged by a model trained without it",
            "</tr>",
        );
        assert!(
            before.contains("33% (2 of 6)") && before.contains("100% (2 of 2)"),
            "{before}"
        );
        assert!(
            after.contains("100% (1 of 1)") && after.contains("50% (1 of 2)"),
            "{after}"
        );
        // A model trained since (another checksum) waits for a restart; a damaged report is
        // named, and the page still opens.
        report.sha256 = "0".repeat(64);
        write(&report);
        let (_, _, page) = call(&h.app, Method::GET, "/library", &dsl, None, &[]).await;
        assert!(page.contains("id=\"model-not-in-force\""), "{page}");
        std::fs::write(model_dir.join("school.json"), "{not json").expect("damaged");
        let (status, _, page) = call(&h.app, Method::GET, "/library", &dsl, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("school.json cannot be read"), "{page}");
        assert!(page.contains("id=\"model-no-decisions\""), "{page}");
    });
}

/// A `multipart/form-data` body: text fields in order, then files (field, name, bytes).
fn multipart(pairs: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----haven-test-7d3a";
    let mut body = Vec::new();
    for (k, v) in pairs {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (field, name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Posts a multipart body: (status, headers, body as bytes).
async fn post_multipart(
    app: &Router,
    uri: &str,
    cookies: &str,
    (content_type, body): (String, Vec<u8>),
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.expect("body").to_bytes().to_vec(),
    )
}

/// A concern Ben Carter (`author`) logs about `child`, through the store: its id.
#[allow(clippy::too_many_arguments)]
async fn concern(
    store: &Store,
    author: i64,
    child: i64,
    part: haven_records::Part,
    category: &str,
    place: &str,
    account: &str,
    happened_at_ms: i64,
) -> i64 {
    store
        .log_concern(
            &haven_store::records::NewConcern {
                school: 1,
                kind: haven_records::RecordKind::Pupil,
                category: category.into(),
                children: vec![haven_store::records::Child {
                    person: child,
                    part,
                }],
                staff: None,
                happened_at_ms,
                place: place.into(),
                account: account.into(),
                actions: String::new(),
                told_dsl_at_ms: None,
                capture: None,
                evidence: Vec::new(),
                write_up: None,
                body_map: Vec::new(),
            },
            &haven_store::records::Actor {
                person: author,
                username: "ben.carter",
                address: "10.0.0.5",
            },
        )
        .await
        .expect("a concern")
}

fn fields(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn a_teacher_logs_a_concern_and_sees_only_what_they_wrote_while_the_dsl_works_it() {
    rt().block_on(async {
        let h = harness(config()).await;
        let pupil = |name: &'static str| {
            let store = h.store.clone();
            async move { store.find_people(name, 1).await.expect("find")[0].id }
        };
        let (ava, noah) = (pupil("Ava Ahmed").await, pupil("Noah Price").await);
        let sofia_s = pupil("Sofia Rossi").await.to_string();
        let (ben, ben_csrf) = signed_in(&h.store, "ben.carter").await;
        let (priya, priya_csrf) = signed_in(&h.store, "priya.shah").await;
        let (gareth, gareth_csrf) = signed_in(&h.store, "gareth.lloyd").await;
        let (helen, helen_csrf) = signed_in(&h.store, "helen.marsh").await;
        let (lucy, _) = signed_in(&h.store, "lucy.adams").await;

        // The teacher finds the children by name: name, year and class, nothing else.
        let (status, _, page) =
            call(&h.app, Method::GET, "/concerns/new?q=ava", &ben, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("Ava Ahmed") && page.contains("Year 1"),
            "{page}"
        );
        assert!(page.contains(&format!("c={ava}%3Asubject")), "{page}");

        let children = format!("{ava}:victim,{noah}:alleged-perpetrator");
        let pairs = [
            ("csrf", ben_csrf.as_str()),
            ("kind", "pupil"),
            ("category", "cyberbullying"),
            ("children", children.as_str()),
            ("happened", "2026-11-30T10:15"),
            ("place", "Playground"),
            (
                "account",
                "Ava said <script>alert(1)</script> \"he keeps posting about me\"",
            ),
            ("actions", "Reassured her"),
            ("region-left-arm-front", "yes"),
            ("region-chest", "yes"),
        ];
        let note: &[u8] = b"Screenshot text: you're such a loser (sealed-marker-41)";
        let (status, headers, page) = post_multipart(
            &h.app,
            "/concerns",
            &ben,
            multipart(&pairs, &[("attachment", "../../message.txt", note)]),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::SEE_OTHER,
            "{}",
            String::from_utf8_lossy(&page)
        );
        assert!(location(&headers).starts_with("/concerns/mine?done="));
        let id = h.store.records(1, true, 10).await.expect("records")[0].id;
        // The attachment is sealed: its words are nowhere in the database file.
        let db = std::fs::read(h.dir.join("haven.db")).expect("db");
        let wal = std::fs::read(h.dir.join("haven.db-wal")).unwrap_or_default();
        let marker = b"sealed-marker-41";
        assert!(
            !db.windows(marker.len()).any(|w| w == marker)
                && !wal.windows(marker.len()).any(|w| w == marker)
        );

        // Without the session's token nothing is logged; nor with the token after a file.
        let mut forged = pairs;
        forged[0].1 = "forged";
        let (status, _, _) =
            post_multipart(&h.app, "/concerns", &ben, multipart(&forged, &[])).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = post_multipart(
            &h.app,
            "/concerns",
            &ben,
            multipart(&[], &[("attachment", "a.txt", b"x")]),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // Bad input is refused with its reason, and nothing is written.
        let no_child = [
            ("csrf", ben_csrf.as_str()),
            ("category", "cyberbullying"),
            ("happened", "2026-11-30T10:15"),
            ("account", "something"),
        ];
        let (status, _, page) =
            post_multipart(&h.app, "/concerns", &ben, multipart(&no_child, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&page).contains("at least one child"));
        let mut with_children = pairs;
        with_children[7].1 = "more";
        let (status, _, page) = post_multipart(
            &h.app,
            "/concerns",
            &ben,
            multipart(
                &with_children,
                &[("attachment", "photo.jpg", b"MZ\x90\x00 a program")],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a program is not evidence");
        assert!(String::from_utf8_lossy(&page).contains("not a photo"));
        assert_eq!(
            h.store.records(1, false, 10).await.expect("records").len(),
            1,
            "nothing half-written"
        );

        // The author reads back what they wrote, escaped, and nothing else.
        let (status, _, page) = call(&h.app, Method::GET, "/concerns/mine", &ben, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&format!("/concerns/mine/{id}")), "{page}");
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/concerns/mine/{id}"),
            &ben,
            None,
            &[],
        )
        .await;
        assert!(
            page.contains("&#60;script&#62;") && !page.contains("<script>alert"),
            "{page}"
        );
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &ben,
            None,
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a teacher does not work records"
        );
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/concerns/mine/{id}"),
            &lucy,
            None,
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "another member of staff does not see it"
        );

        // The DSL sees it, each child with their own part, and works it; finds it by its words.
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/records?q=Posting+Ahmed",
            &priya,
            None,
            &[],
        )
        .await;
        assert!(
            page.contains(&format!("id=\"record-{id}\"")),
            "found by its words and the child's name: {page}"
        );
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/records?q=posting+bicycle",
            &priya,
            None,
            &[],
        )
        .await;
        assert!(
            page.contains("id=\"no-records\""),
            "every word must be there: {page}"
        );
        let (status, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&format!("/records/{id}")), "{page}");
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("Ava Ahmed")
                && page.contains("victim")
                && page.contains("alleged perpetrator")
        );
        assert!(
            page.contains("id=\"body-map\"")
                && (page.contains("left arm (front), chest")
                    || page.contains("chest, left arm (front)")),
            "{page}"
        );
        // The file: listed with its hash, downloaded only as a download, opened from its seal.
        let evidence = h.store.evidence_of(1, id).await.expect("evidence");
        assert_eq!(
            (
                evidence.len(),
                evidence[0].name.as_str(),
                evidence[0].media_type.as_str()
            ),
            (1, "message.txt", "text/plain")
        );
        assert!(page.contains(&evidence[0].sha256), "{page}");
        let (status, headers, body) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}/evidence/{}", evidence[0].id),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.as_bytes(), note);
        assert!(headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment;"));
        assert_eq!(headers[header::CONTENT_TYPE], "application/octet-stream");
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}/evidence/{}", evidence[0].id),
            &gareth,
            None,
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "not without breaking the glass"
        );

        // A possible nude image: sealed, never downloaded, viewed by the DSL only with a
        // justification, blurred first.
        let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-really";
        let (status, _, _) = post_multipart(
            &h.app,
            &format!("/records/{id}/evidence"),
            &priya,
            multipart(
                &[("csrf", priya_csrf.as_str()), ("possible_nude", "yes")],
                &[("attachment", "img.png", png)],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let nude = h.store.evidence_of(1, id).await.expect("evidence")[1].clone();
        assert!(nude.possible_nude);
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}/evidence/{}", nude.id),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "never downloaded");
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert!(
            !page.contains(&format!("/evidence/{}\" download", nude.id))
                && page.contains("Possible nude image")
        );
        let view = format!("/records/{id}/evidence/{}/view", nude.id);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &view,
            &priya,
            Some(&fields(&[
                ("csrf", priya_csrf.as_str()),
                ("justification", "x"),
            ])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a justification is needed");
        let why = fields(&[
            ("csrf", priya_csrf.as_str()),
            (
                "justification",
                "Police asked us to confirm what the image shows",
            ),
        ]);
        let (status, _, page) = call(&h.app, Method::POST, &view, &priya, Some(&why), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("evidence-blurred") && page.contains("data:image/png;base64,"),
            "{page}"
        );
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &view,
            &helen,
            Some(&why.replace(&priya_csrf, &helen_csrf)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not the headteacher");

        let refer = fields(&[
            ("csrf", priya_csrf.as_str()),
            ("agency", "parents"),
            ("made", "2026-11-30T15:00"),
            ("contact", "Ava's mother"),
            ("reference", "PHONE-0930"),
            ("follow_up", "2026-12-07"),
        ]);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/referrals"),
            &priya,
            Some(&refer),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let tick = fields(&[
            ("csrf", priya_csrf.as_str()),
            ("step", "evidence"),
            ("decision", "skip"),
            ("reason", ""),
        ]);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/steps"),
            &priya,
            Some(&tick),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "a skip needs its reason");
        assert!(page.contains("say why"), "{page}");
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert!(page.contains("PHONE-0930"), "{page}");
        let (_, _, mine) = call(
            &h.app,
            Method::GET,
            &format!("/concerns/mine/{id}"),
            &ben,
            None,
            &[],
        )
        .await;
        assert!(
            !mine.contains("PHONE-0930"),
            "the author does not see what followed"
        );
        // The child's chronology, with their name, year and class.
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ava}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Chronology: Ava Ahmed") && page.contains("PHONE-0930"),
            "{page}"
        );

        // A deputy sees that the record exists, not whom it is about, until he breaks the glass.
        let (_, _, list) = call(&h.app, Method::GET, "/records", &gareth, None, &[]).await;
        assert!(
            list.contains(&format!("id=\"record-{id}\"")) && list.contains("(not your case)"),
            "{list}"
        );
        let row = between(&list, &format!("id=\"record-{id}\""), "</tr>");
        assert!(
            !row.contains("Ava") && !row.contains("Noah") && !row.contains("Ben Carter"),
            "{row}"
        );
        // A deputy breaks the glass with a reason, and the DSL sees that they did.
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &gareth,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("Not one of your cases") && !page.contains("keeps posting"),
            "{page}"
        );
        let short = fields(&[("csrf", gareth_csrf.as_str()), ("reason", "x")]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/open"),
            &gareth,
            Some(&short),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let why = fields(&[
            ("csrf", gareth_csrf.as_str()),
            ("reason", "Covering while the DSL is on a course"),
        ]);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/open"),
            &gareth,
            Some(&why),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("keeps posting")
                && page.contains("id=\"read-only\"")
                && !page.contains("id=\"add-entry\""),
            "read, not write: {page}"
        );
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(
            page.contains("Opened outside their cases") && page.contains("gareth.lloyd"),
            "{page}"
        );

        // An allegation about a teacher goes to the headteacher, and not to the DSL.
        let allegation = [
            ("csrf", ben_csrf.as_str()),
            ("kind", "staff"),
            ("staff", sofia_s.as_str()),
            ("category", "staff-conduct"),
            ("happened", "2026-11-30T12:00"),
            ("account", "A pupil said Ms Rossi messaged her on Instagram"),
        ];
        let (status, _, _) =
            post_multipart(&h.app, "/concerns", &ben, multipart(&allegation, &[])).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let all = h.store.records(1, true, 10).await.expect("records");
        let staff_id = all
            .iter()
            .find(|r| r.staff.is_some())
            .expect("allegation")
            .id;
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{staff_id}"),
            &helen,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Instagram"), "{page}");
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/records/{staff_id}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the DSL does not see an allegation about staff"
        );
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(!page.contains(&format!("/records/{staff_id}\"")), "{page}");
        let (_, _, page) = call(&h.app, Method::GET, "/records", &helen, None, &[]).await;
        assert!(
            page.contains("Tell the LADO"),
            "the LADO clock runs: {page}"
        );

        // Every read is audited, by id.
        let log = h.store.audit_log(None, 500).await.expect("audit");
        for action in [
            "log concern",
            "read record",
            "break glass",
            "read chronology",
            "add referral",
            "read own concerns",
            "open evidence",
            "add evidence",
            "view possible nude image",
        ] {
            assert!(log.iter().any(|e| e.action == action), "{action}");
        }
        assert!(!log
            .iter()
            .any(|e| e.detail.contains("Instagram") || e.detail.contains("posting")));
    });
}

#[test]
fn told_in_person_is_written_up_siblings_are_seen_together_and_the_school_adds_a_category() {
    rt().block_on(async {
        let h = harness(config()).await;
        let parents = "Contact ID,Forename,Surname,Email,Children,Relationship\n\
            C900,Jo,Ahmed,jo@home.example,H800000007919;H800000015838,Mother\n";
        let r = h
            .store
            .import_people(Kind::Parent, parents.as_bytes(), ImportOptions::default())
            .await
            .expect("parents");
        assert!(r.errors.is_empty(), "{r:?}");
        let pupil = |name: &'static str| {
            let store = h.store.clone();
            async move { store.find_people(name, 1).await.expect("find")[0].id }
        };
        let (ava, noah, ivy) = (
            pupil("Ava Ahmed").await,
            pupil("Noah Price").await,
            pupil("Ivy Khan").await,
        );
        let ben_id = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let (ben, ben_csrf) = signed_in(&h.store, "ben.carter").await;
        let (lucy, lucy_csrf) = signed_in(&h.store, "lucy.adams").await;
        let (priya, priya_csrf) = signed_in(&h.store, "priya.shah").await;
        let (helen, helen_csrf) = signed_in(&h.store, "helen.marsh").await;

        // The DSL notes what Ben told her in the corridor; he must write it up today.
        let told = fields(&[
            ("csrf", priya_csrf.as_str()),
            ("staff", &ben_id.to_string()),
            ("child", &ava.to_string()),
            ("told_at", "2026-11-30T08:40"),
        ]);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            "/records/told",
            &priya,
            Some(&told),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(
            page.contains("Ben Carter to write up what they told you in person about Ava Ahmed"),
            "{page}"
        );
        assert!(
            page.contains("clock-overdue"),
            "told on a past day and not written: red: {page}"
        );
        let (_, _, page) = call(&h.app, Method::GET, "/concerns/mine", &ben, None, &[]).await;
        let write_up = h
            .store
            .pending_write_ups(1, Some(ben_id))
            .await
            .expect("pending")[0]
            .id;
        assert!(
            page.contains("To write up today") && page.contains(&format!("write_up={write_up}")),
            "{page}"
        );
        let concern_form = |csrf: &str, child: i64, wid: i64| {
            vec![
                ("csrf".to_owned(), csrf.to_owned()),
                ("kind".to_owned(), "pupil".to_owned()),
                ("category".to_owned(), "welfare".to_owned()),
                ("children".to_owned(), format!("{child}:subject")),
                ("happened".to_owned(), "2026-11-30T08:30".to_owned()),
                (
                    "account".to_owned(),
                    "Ava said she had no breakfast again".to_owned(),
                ),
                ("write_up".to_owned(), wid.to_string()),
            ]
        };
        let as_pairs = |v: &[(String, String)]| {
            v.iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<Vec<_>>()
        };
        // Someone else cannot write up Ben's.
        let lucys = as_pairs(&concern_form(&lucy_csrf, ava, write_up));
        let pairs: Vec<(&str, &str)> = lucys
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let (status, _, _) =
            post_multipart(&h.app, "/concerns", &lucy, multipart(&pairs, &[])).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let bens = as_pairs(&concern_form(&ben_csrf, ava, write_up));
        let pairs: Vec<(&str, &str)> = bens.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (status, _, _) =
            post_multipart(&h.app, "/concerns", &ben, multipart(&pairs, &[])).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            h.store
                .pending_write_ups(1, None)
                .await
                .expect("pending")
                .is_empty(),
            "written up"
        );
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(!page.contains("to write up what they told you"), "{page}");

        // Siblings (one parent in the MIS): a combined chronology, each entry saying whose.
        let noah_concern = concern(
            &h.store,
            ben_id,
            noah,
            haven_records::Part::Victim,
            "cyberbullying",
            "group chat",
            "Noah was sent names in the class group chat",
            haven_store::now_ms() - 60_000,
        )
        .await;
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ava}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert!(page.contains("Combined view with 1 sibling"), "{page}");
        let (status, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ava}/family"),
            &priya,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("no breakfast") || page.contains("Concern logged: Welfare"),
            "{page}"
        );
        assert!(
            page.contains("Concern logged: Cyberbullying")
                && page.contains("Noah Price")
                && page.contains("Ava Ahmed"),
            "{page}"
        );
        assert!(noah_concern > 0);
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ivy}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert!(!page.contains("Combined view"), "no siblings: {page}");
        // The headteacher, for whom these are not her cases, sees no combined view without the glass.
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ava}/family"),
            &helen,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        // The school's own category: the DSL adds it, the form offers it, the headteacher cannot add one.
        let add = fields(&[("csrf", priya_csrf.as_str()), ("name", "Vaping on site")]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/records/categories",
            &priya,
            Some(&add),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/concerns/new", &ben, None, &[]).await;
        assert!(page.contains("value=\"school:vaping-on-site\""), "{page}");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/records/categories",
            &priya,
            Some(&add),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "twice");
        let head = fields(&[("csrf", helen_csrf.as_str()), ("name", "Uniform")]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/records/categories",
            &helen,
            Some(&head),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    });
}

#[test]
fn governors_see_counts_with_small_numbers_suppressed_and_no_names() {
    rt().block_on(async {
        let h = harness(config()).await;
        let ben = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let pupils: Vec<(i64, String)> = h
            .store
            .find_people("", 1000)
            .await
            .expect("people")
            .into_iter()
            .filter(|p| p.kind == "pupil")
            .map(|p| (p.id, p.last_name))
            .collect();
        let now = haven_store::now_ms();
        for (i, (category, n)) in [("cyberbullying", 8), ("welfare", 2)]
            .into_iter()
            .enumerate()
        {
            for j in 0..n {
                concern(
                    &h.store,
                    ben,
                    pupils[i * 10 + j].0,
                    haven_records::Part::Subject,
                    category,
                    "playground",
                    "invented",
                    now - 86_400_000,
                )
                .await;
            }
        }
        let (ruth, _) = signed_in(&h.store, "ruth.ellison").await;
        let (status, _, page) = call(&h.app, Method::GET, "/reports", &ruth, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let row = between(&page, "<td>Cyberbullying</td>", "</tr>");
        assert!(row.contains(">8<"), "{row}");
        let row = between(&page, "<td>Welfare</td>", "</tr>");
        assert!(
            row.contains("fewer than 5") && !row.contains(">2<"),
            "{row}"
        );
        assert!(
            page.contains("<svg") && page.contains("url(#withheld)"),
            "charts drawn on the server"
        );
        for (_, surname) in pupils.iter().take(25) {
            assert!(
                !page.contains(&format!(">{surname}<")),
                "no names: {surname}"
            );
        }
        let (status, headers, csv) =
            call(&h.app, Method::GET, "/reports.csv", &ruth, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv"));
        assert!(
            csv.contains("category,Cyberbullying,8,0,up")
                && csv.contains("category,Welfare,fewer than 5,0,—"),
            "{csv}"
        );
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            "/reports?from=2026-12-31&to=2026-01-01",
            &ruth,
            None,
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a period that ends before it begins"
        );
        // Governors see the report and nothing of the records.
        let (status, _, _) = call(&h.app, Method::GET, "/records", &ruth, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let log = h.store.audit_log(None, 50).await.expect("audit");
        assert!(log
            .iter()
            .any(|e| e.action == "read report" && e.actor == "ruth.ellison"));
    });
}

#[test]
fn the_dsl_gives_a_case_to_a_deputy_and_a_referrals_outcome_stops_its_clock() {
    rt().block_on(async {
        let h = harness(config()).await;
        let ben = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let gareth_id = h
            .store
            .identity("gareth.lloyd")
            .await
            .expect("db")
            .expect("gareth")
            .person_id;
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        let id = concern(
            &h.store,
            ben,
            ava,
            haven_records::Part::Subject,
            "welfare",
            "classroom",
            "Ava fell asleep in class again",
            haven_store::now_ms() - 60_000,
        )
        .await;
        let (priya, priya_csrf) = signed_in(&h.store, "priya.shah").await;
        let (gareth, gareth_csrf) = signed_in(&h.store, "gareth.lloyd").await;
        // Not his case: the glass. Given to him: his.
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &gareth,
            None,
            &[],
        )
        .await;
        assert!(page.contains("Not one of your cases"), "{page}");
        let give = fields(&[
            ("csrf", gareth_csrf.as_str()),
            ("holder", &gareth_id.to_string()),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/assign"),
            &gareth,
            Some(&give),
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a deputy does not give himself a case"
        );
        let give = fields(&[
            ("csrf", priya_csrf.as_str()),
            ("holder", &gareth_id.to_string()),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/assign"),
            &priya,
            Some(&give),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/{id}"),
            &gareth,
            None,
            &[],
        )
        .await;
        assert!(
            page.contains("Ava fell asleep")
                && page.contains("Held by <strong>Gareth Lloyd</strong>"),
            "{page}"
        );
        // His referral, with a follow-up: a clock until its outcome is recorded.
        let refer = fields(&[
            ("csrf", gareth_csrf.as_str()),
            ("agency", "social-care"),
            ("made", "2026-11-30T11:00"),
            ("contact", "Duty social worker"),
            ("reference", "SC-7781"),
            ("follow_up", "2026-12-01"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/referrals"),
            &gareth,
            Some(&refer),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/records", &gareth, None, &[]).await;
        assert!(
            page.contains("Follow up the referral to children&#39;s social care (SC-7781)")
                || page.contains("SC-7781"),
            "{page}"
        );
        assert!(
            page.contains("clock-overdue"),
            "a past follow-up date is red: {page}"
        );
        let referral = h.store.referrals(1, id).await.expect("referrals")[0].id;
        let outcome = fields(&[
            ("csrf", gareth_csrf.as_str()),
            ("outcome", "Early help assessment agreed"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/referrals/{referral}/outcome"),
            &gareth,
            Some(&outcome),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{id}/referrals/{referral}/outcome"),
            &gareth,
            Some(&outcome),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "once");
        let (_, _, page) = call(&h.app, Method::GET, "/records", &gareth, None, &[]).await;
        assert!(!page.contains("SC-7781"), "the clock stopped: {page}");
        let entries = h.store.record_entries(1, id).await.expect("entries");
        assert!(entries
            .iter()
            .any(|e| e.text.contains("Case given to Gareth Lloyd")));
        assert!(entries.iter().any(|e| e.text.contains(
            "Outcome of the referral to children's social care: Early help assessment agreed"
        )));
    });
}

#[test]
fn a_record_past_its_retention_is_kept_on_legal_hold_or_deleted_leaving_a_tombstone() {
    rt().block_on(async {
        let h = harness(config()).await;
        // A pupil who left long ago: born in 1995, so their records were due at 25, in 2020.
        let old = format!(
            "{}Z900000000001,Rowan,Old,1995-01-01,Year 6,6A\n",
            include_str!("../../../config/demo-people/pupils.csv")
        );
        let r = h
            .store
            .import_people(Kind::Pupil, old.as_bytes(), ImportOptions::default())
            .await
            .expect("import");
        assert!(r.errors.is_empty(), "{r:?}");
        let rowan = h.store.find_people("Rowan Old", 1).await.expect("find")[0].id;
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        let ben = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let mut ids = Vec::new();
        for child in [rowan, ava] {
            ids.push(
                concern(
                    &h.store,
                    ben,
                    child,
                    haven_records::Part::Subject,
                    "welfare",
                    "classroom",
                    "an old concern",
                    haven_store::now_ms() - 60_000,
                )
                .await,
            );
        }
        let (old_id, young_id) = (ids[0], ids[1]);
        let (priya, csrf) = signed_in(&h.store, "priya.shah").await;
        let (_, _, page) = call(&h.app, Method::GET, "/records/retention", &priya, None, &[]).await;
        assert!(
            page.contains(&format!("id=\"due-{old_id}\"")) && page.contains("2020-01-01"),
            "{page}"
        );
        assert!(
            !page.contains(&format!("id=\"due-{young_id}\"")),
            "a young child's record is not due"
        );
        // On legal hold, it cannot be deleted.
        let hold = fields(&[
            ("csrf", csrf.as_str()),
            ("hold", "on"),
            ("reason", "The inquiry asked us to keep it"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{old_id}/hold"),
            &priya,
            Some(&hold),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let delete = fields(&[("csrf", csrf.as_str()), ("confirm", "delete")]);
        let (status, _, page) = call(
            &h.app,
            Method::POST,
            &format!("/records/{old_id}/delete"),
            &priya,
            Some(&delete),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(page.contains("legal hold"), "{page}");
        let lift = fields(&[
            ("csrf", csrf.as_str()),
            ("hold", "off"),
            ("reason", "The inquiry has closed"),
        ]);
        call(
            &h.app,
            Method::POST,
            &format!("/records/{old_id}/hold"),
            &priya,
            Some(&lift),
            &[],
        )
        .await;
        // Not yet due, or not confirmed: refused.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{young_id}/delete"),
            &priya,
            Some(&delete),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "not due");
        let unconfirmed = fields(&[("csrf", csrf.as_str()), ("confirm", "yes")]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{old_id}/delete"),
            &priya,
            Some(&unconfirmed),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "the word must be typed");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/{old_id}/delete"),
            &priya,
            Some(&delete),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(h.store.record(1, old_id).await.expect("read").is_none());
        assert!(
            h.store
                .chronology(1, rowan)
                .await
                .expect("chronology")
                .is_empty(),
            "nothing of it is left"
        );
        assert!(h.store.record(1, young_id).await.expect("read").is_some());
        let log = h.store.audit_log(None, 100).await.expect("log");
        let tomb = log
            .iter()
            .find(|e| e.action == "delete record")
            .expect("a tombstone");
        assert_eq!(tomb.subject, format!("record {old_id}"));
        assert!(
            tomb.detail.contains("entries=") && tomb.detail.contains("record=1"),
            "{}",
            tomb.detail
        );
        assert!(matches!(
            h.store.verify_audit().await.expect("verify"),
            haven_store::audit::AuditCheck::Intact { .. }
        ));
    });
}

#[test]
fn a_leavers_file_has_five_school_days_to_reach_the_new_school_and_its_receipt_stops_the_clock() {
    rt().block_on(async {
        let h = harness(config()).await;
        let ben = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        concern(
            &h.store,
            ben,
            ava,
            haven_records::Part::Subject,
            "welfare",
            "classroom",
            "a concern",
            haven_store::now_ms() - 60_000,
        )
        .await;
        // Ava leaves: the next MIS export no longer has her.
        let without: String = include_str!("../../../config/demo-people/pupils.csv")
            .lines()
            .filter(|l| !l.contains("Ava,Ahmed"))
            .map(|l| format!("{l}\n"))
            .collect();
        h.store
            .import_people(Kind::Pupil, without.as_bytes(), ImportOptions::default())
            .await
            .expect("import");
        let (priya, csrf) = signed_in(&h.store, "priya.shah").await;
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(
            page.contains("Send Ava Ahmed&#39;s file") || page.contains("Send Ava Ahmed's file"),
            "{page}"
        );
        let sent = fields(&[
            ("csrf", csrf.as_str()),
            ("to_school", "Hillside Academy"),
            ("method", "secure transfer"),
            ("sent", "2026-11-30T09:00"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/people/{ava}/transfers"),
            &priya,
            Some(&sent),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(
            page.contains("awaiting the receipt"),
            "sent is not received: {page}"
        );
        let transfer = h.store.transfers_of(1, ava).await.expect("transfers")[0].id;
        let got = fields(&[
            ("csrf", csrf.as_str()),
            ("from", "Mr Cole, DSL at Hillside"),
            ("at", "2026-12-01T10:00"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/people/{ava}/transfers/{transfer}/receipt"),
            &priya,
            Some(&got),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/records/people/{ava}/transfers/{transfer}/receipt"),
            &priya,
            Some(&got),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "once");
        let (_, _, page) = call(&h.app, Method::GET, "/records", &priya, None, &[]).await;
        assert!(
            !page.contains("file to their new school"),
            "the clock stopped: {page}"
        );
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            &format!("/records/people/{ava}"),
            &priya,
            None,
            &[],
        )
        .await;
        assert!(
            page.contains("Hillside Academy") && page.contains("Mr Cole"),
            "{page}"
        );
    });
}

#[test]
fn the_dpo_exports_a_pupils_records_with_other_childrens_names_taken_out() {
    rt().block_on(async {
        let h = harness(config()).await;
        let ben = h
            .store
            .identity("ben.carter")
            .await
            .expect("db")
            .expect("ben")
            .person_id;
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        let noah = h.store.find_people("Noah Price", 1).await.expect("find")[0].id;
        let id = h
            .store
            .log_concern(
                &haven_store::records::NewConcern {
                    school: 1,
                    kind: haven_records::RecordKind::Pupil,
                    category: "child-on-child".into(),
                    children: vec![
                        haven_store::records::Child {
                            person: ava,
                            part: haven_records::Part::Victim,
                        },
                        haven_store::records::Child {
                            person: noah,
                            part: haven_records::Part::AllegedPerpetrator,
                        },
                    ],
                    staff: None,
                    happened_at_ms: haven_store::now_ms() - 60_000,
                    place: "playground".into(),
                    account: "Ava said NOAH PRICE pushed her; Noah laughed".into(),
                    actions: "Separated them".into(),
                    told_dsl_at_ms: None,
                    capture: None,
                    evidence: Vec::new(),
                    write_up: None,
                    body_map: Vec::new(),
                },
                &haven_store::records::Actor {
                    person: ben,
                    username: "ben.carter",
                    address: "10.0.0.5",
                },
            )
            .await
            .expect("concern");
        let priya = h
            .store
            .identity("priya.shah")
            .await
            .expect("db")
            .expect("priya")
            .person_id;
        let dsl = haven_store::records::Actor {
            person: priya,
            username: "priya.shah",
            address: "10.0.0.6",
        };
        let about_noah = haven_store::records::NewEntry {
            school: 1,
            record: id,
            person: Some(noah),
            at_ms: haven_store::now_ms() - 30_000,
            kind: haven_records::EntryKind::ParentContact,
            text: "Spoke to Noah's father about his temper".into(),
            rationale: None,
        };
        h.store.add_entry(&about_noah, &dsl).await.expect("entry");
        let (dev, _) = signed_in(&h.store, "dev.mistry").await;
        let (status, _, page) =
            call(&h.app, Method::GET, "/sar?q=Ava+Ahmed", &dev, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains(&format!("/sar/{ava}")), "{page}");
        let (status, _, page) =
            call(&h.app, Method::GET, &format!("/sar/{ava}"), &dev, None, &[]).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("Ava said [another person] pushed her; [another person] laughed"),
            "{page}"
        );
        assert!(
            !page.contains("Noah") && !page.contains("NOAH") && !page.contains("temper"),
            "{page}"
        );
        assert!(
            page.contains("victim") && !page.contains("alleged perpetrator"),
            "only her part"
        );
        let (status, headers, json) = call(
            &h.app,
            Method::GET,
            &format!("/sar/{ava}/json"),
            &dev,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .starts_with("attachment"));
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["records"][0]["part"], "victim");
        assert!(!json.contains("Noah"));
        // The DSL works records; the export is the DPO's.
        let (priya_cookie, _) = signed_in(&h.store, "priya.shah").await;
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            &format!("/sar/{ava}"),
            &priya_cookie,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let log = h.store.audit_log(None, 50).await.expect("audit");
        assert!(log
            .iter()
            .any(|e| e.action == "subject-access export" && e.subject == format!("person {ava}")));
    });
}

/// A form posted, the answer's bytes kept as they are (a PDF, a sealed file).
async fn post_bytes(
    app: &Router,
    uri: &str,
    cookies: &str,
    form: &str,
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_owned()))
        .expect("request");
    let resp = app.clone().oneshot(req).await.expect("response");
    let (parts, body) = resp.into_parts();
    (
        parts.status,
        parts.headers,
        body.collect().await.expect("body").to_bytes().to_vec(),
    )
}

/// A PDF's text as poppler's pdftotext reads it (an independent PDF reader).
fn pdf_text(pdf: &[u8]) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path = std::env::temp_dir().join(format!(
        "haven-console-pdf-{}-{}.pdf",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output()
        .expect("pdftotext (Debian package poppler-utils) reads the PDF");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "pdftotext: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // One space between words, as a reader sees them.
    text.split('\n')
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Text as a page escaped it, unescaped.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn a_chronology_prints_to_pdf_and_a_file_goes_sealed_from_one_schools_console_to_anothers() {
    rt().block_on(async {
        let old = harness(config()).await;
        let new = harness(config()).await;
        let id_of = |h: &Harness, name: &'static str| {
            let store = h.store.clone();
            async move { store.find_people(name, 1).await.expect("find")[0].id }
        };
        let (ben, ava) = (
            id_of(&old, "Ben Carter").await,
            id_of(&old, "Ava Ahmed").await,
        );
        concern(
            &old.store,
            ben,
            ava,
            haven_records::Part::Victim,
            "cyberbullying",
            "Year 1 classroom",
            "Ava said the older pupils took her snack and laughed at her.",
            haven_store::now_ms() - 3_600_000,
        )
        .await;
        let (priya, csrf) = signed_in(&old.store, "priya.shah").await;
        let form = fields(&[("csrf", csrf.as_str())]);

        // The DSL prints Ava's chronology: a PDF whose text a PDF reader gives back.
        let (status, headers, pdf) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/print"),
            &priya,
            &form,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&pdf));
        assert_eq!(headers[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        let text = pdf_text(&pdf);
        assert!(text.contains("Chronology: Ava Ahmed"), "{text}");
        assert!(text.contains("took her snack"), "{text}");
        assert!(
            text.contains("Ben Carter") && text.contains("OFFICIAL-SENSITIVE"),
            "{text}"
        );
        // Without its token it is refused; a teacher (who wrote the concern) cannot print it.
        let (status, _, _) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/print"),
            &priya,
            "csrf=x",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (ben_cookie, ben_csrf) = signed_in(&old.store, "ben.carter").await;
        let (status, _, body) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/print"),
            &ben_cookie,
            &fields(&[("csrf", ben_csrf.as_str())]),
        )
        .await;
        assert_ne!(status, StatusCode::OK);
        assert!(!String::from_utf8_lossy(&body).contains("snack"));

        // The governors' report as PDF: one concern, so its count is withheld; no name in it.
        let (status, _, body) =
            call(&old.app, Method::GET, "/reports.pdf", &priya, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let req = Request::builder()
            .uri("/reports.pdf")
            .header(header::COOKIE, &priya)
            .body(Body::empty())
            .expect("request");
        let resp = old.app.clone().oneshot(req).await.expect("response");
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let text = pdf_text(&bytes);
        assert!(text.contains("Safeguarding report for governors"), "{text}");
        assert!(text.contains("fewer than 5"), "{text}");
        assert!(!text.contains("Ava") && !text.contains("Ahmed"), "{text}");
        drop(body);

        // The new school's DSL gives their key line; the old school's DSL seals Ava's file to it.
        let (their_priya, their_csrf) = signed_in(&new.store, "priya.shah").await;
        let (_, _, page) = call(
            &new.app,
            Method::GET,
            "/records/transfers",
            &their_priya,
            None,
            &[],
        )
        .await;
        let line = unescape(between(
            &page,
            "<pre id=\"identity-line\" class=\"wrap\">",
            "</pre>",
        ));
        assert!(line.starts_with("haven-school-key/1 "), "{page}");
        let (_, _, page) = call(
            &old.app,
            Method::GET,
            "/records/transfers",
            &priya,
            None,
            &[],
        )
        .await;
        let old_line = unescape(between(
            &page,
            "<pre id=\"identity-line\" class=\"wrap\">",
            "</pre>",
        ));
        let bad = fields(&[
            ("csrf", csrf.as_str()),
            ("to", "haven-school-key/1 nonsense"),
        ]);
        let (status, _, _) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/transfers/sealed"),
            &priya,
            &bad,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            old.store.transfers_of(1, ava).await.expect("t").is_empty(),
            "nothing recorded"
        );
        // First the line's fingerprint, to read back with the new school's DSL: nothing is
        // sealed or recorded until it is confirmed.
        let (status, _, page) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/transfers/sealed"),
            &priya,
            &fields(&[("csrf", csrf.as_str()), ("to", &line)]),
        )
        .await;
        let page = String::from_utf8_lossy(&page).into_owned();
        assert_eq!(status, StatusCode::OK);
        let (_, _, theirs) = call(
            &new.app,
            Method::GET,
            "/records/transfers",
            &their_priya,
            None,
            &[],
        )
        .await;
        let fingerprint = between(&theirs, "<strong id=\"fingerprint\">", "</strong>").to_owned();
        assert_eq!(fingerprint.len(), 23, "{theirs}");
        assert!(
            page.contains(&fingerprint) && page.contains("Check the new school"),
            "{page}"
        );
        assert!(old.store.transfers_of(1, ava).await.expect("t").is_empty());
        let (status, _, page) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/transfers/sealed"),
            &priya,
            &fields(&[
                ("csrf", csrf.as_str()),
                ("to", &line),
                ("confirm", "00000-00000-00000-00000"),
            ]),
        )
        .await;
        assert!(String::from_utf8_lossy(&page).contains("Check the new school"));
        assert_eq!(status, StatusCode::OK);
        assert!(old.store.transfers_of(1, ava).await.expect("t").is_empty());
        let (status, headers, sealed) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/transfers/sealed"),
            &priya,
            &fields(&[
                ("csrf", csrf.as_str()),
                ("to", &line),
                ("confirm", &fingerprint),
            ]),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("ascii")
            .contains(".haven"));
        assert!(sealed.starts_with(b"HVT1"));
        assert!(!sealed.windows(5).any(|w| w == b"snack"), "sealed");

        // Without the sending school's key line it is not imported.
        let (status, _, _) = post_multipart(
            &new.app,
            "/records/transfers/import",
            &their_priya,
            multipart(
                &[("csrf", their_csrf.as_str()), ("from", ""), ("person", "")],
                &[("file", "transfer-1.haven", &sealed)],
            ),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(new.store.transfers_in(1).await.expect("in").is_empty());
        // The new school imports it: Ava is found by name and date of birth.
        let (status, _, page) = post_multipart(
            &new.app,
            "/records/transfers/import",
            &their_priya,
            multipart(
                &[
                    ("csrf", their_csrf.as_str()),
                    ("from", &old_line),
                    ("person", ""),
                ],
                &[("file", "transfer-1.haven", &sealed)],
            ),
        )
        .await;
        let page = String::from_utf8_lossy(&page).into_owned();
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(page.contains("Imported 1 record(s)"), "{page}");
        let receipt = unescape(between(
            &page,
            "<pre id=\"receipt\" class=\"wrap\">",
            "</pre>",
        ));
        assert!(receipt.starts_with("haven-receipt/1"), "{page}");
        let their_ava = id_of(&new, "Ava Ahmed").await;
        let (_, _, chron) = call(
            &new.app,
            Method::GET,
            &format!("/records/people/{their_ava}"),
            &their_priya,
            None,
            &[],
        )
        .await;
        assert!(chron.contains("Received from"), "{chron}");
        let recs = new
            .store
            .records_of_child(1, their_ava)
            .await
            .expect("records");
        assert!(recs[0].account.contains("took her snack"));
        assert!(
            recs[0].author.1.starts_with("Ben Carter ("),
            "{:?}",
            recs[0].author
        );

        // The receipt goes back: a changed one is refused; the real one stops the clock.
        let forged = receipt.replace("records: 1", "records: 9");
        let (status, _, _) = call(
            &old.app,
            Method::POST,
            "/records/transfers/receipt",
            &priya,
            Some(&fields(&[("csrf", csrf.as_str()), ("receipt", &forged)])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(old.store.transfers_of(1, ava).await.expect("t")[0]
            .receipt
            .is_none());
        let (status, headers, _) = call(
            &old.app,
            Method::POST,
            "/records/transfers/receipt",
            &priya,
            Some(&fields(&[("csrf", csrf.as_str()), ("receipt", &receipt)])),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(location(&headers).starts_with("/records/transfers?done="));
        let t = &old.store.transfers_of(1, ava).await.expect("t")[0];
        assert!(
            t.receipt
                .as_ref()
                .is_some_and(|r| r.1.contains("signed receipt")),
            "{t:?}"
        );

        // The paper pack for the same transfer ends with a receipt page to sign.
        let (status, _, pack) = post_bytes(
            &old.app,
            &format!("/records/people/{ava}/transfers/{}/pack", t.id),
            &priya,
            &form,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let text = pdf_text(&pack);
        let last = text
            .rsplit('\u{c}')
            .find(|p| !p.trim().is_empty())
            .unwrap_or("");
        assert!(
            last.contains("Receipt") && last.contains("Signature"),
            "{last}"
        );
    });
}

#[test]
fn a_sealed_file_larger_than_one_attachment_imports_through_the_page() {
    use base64::Engine as _;
    use haven_records::transfer::{time, Attachment, Child, File, Record, FORMAT};
    rt().block_on(async {
        let h = harness(config()).await;
        let (priya, csrf) = signed_in(&h.store, "priya.shah").await;
        let (_, _, page) = call(&h.app, Method::GET, "/records/transfers", &priya, None, &[]).await;
        let ours = haven_vault::Identity::parse(&unescape(between(
            &page,
            "<pre id=\"identity-line\" class=\"wrap\">",
            "</pre>",
        )))
        .expect("our key line");
        // Another school's vault seals a file with a near-full-size attachment: more than the
        // 10 MiB an attachment form takes once it is base64 inside the sealed file.
        let sender_dir = h.dir.join("sender-vault");
        let sender = haven_vault::Vault::open(&sender_dir).expect("vault");
        let big = vec![b'a'; 8 * 1024 * 1024];
        let now = haven_store::now_ms();
        let file = File {
            format: FORMAT.into(),
            from_school: "Larchfield Primary".into(),
            sent_at: time(now),
            sent_by: "Rhiannon Vale".into(),
            child: Child {
                first_name: "Ava".into(),
                last_name: "Ahmed".into(),
                date_of_birth: Some("2021-04-06".into()),
                year_group: Some("1".into()),
            },
            records: vec![Record {
                category: "welfare".into(),
                category_name: "Welfare".into(),
                part: "subject".into(),
                happened_at: time(now - 86_400_000),
                written_at: time(now - 86_400_000),
                author: "Owain Teague".into(),
                place: "Reception class".into(),
                account: "Ava was hungry every morning this week.".into(),
                actions: String::new(),
                closed: false,
                outcome: None,
                debrief: None,
                body_map: vec![],
                entries: vec![],
                steps: vec![],
                referrals: vec![],
                evidence: vec![Attachment {
                    name: "log.txt".into(),
                    media_type: "text/plain".into(),
                    sha256: haven_vault::sha256_hex(&big),
                    possible_nude: false,
                    withheld: false,
                    content: base64::engine::general_purpose::STANDARD.encode(&big),
                }],
            }],
        };
        let sealed = sender
            .seal_transfer(1, &ours, &file.to_json())
            .expect("seal");
        assert!(sealed.len() > 10 * 1024 * 1024, "{}", sealed.len());
        let from = sender
            .identity(1, "Larchfield Primary")
            .expect("id")
            .to_line();
        let (status, _, page) = post_multipart(
            &h.app,
            "/records/transfers/import",
            &priya,
            multipart(
                &[("csrf", csrf.as_str()), ("from", &from), ("person", "")],
                &[("file", "transfer-9.haven", &sealed)],
            ),
        )
        .await;
        let page = String::from_utf8_lossy(&page).into_owned();
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.contains("Imported 1 record(s) and 1 attachment(s)"),
            "{page}"
        );
        // Other forms with files keep their 10 MiB: the larger cap is this route's alone.
        let record = h.store.records(1, false, 10).await.expect("records")[0].id;
        let (status, _, page) = post_multipart(
            &h.app,
            &format!("/records/{record}/evidence"),
            &priya,
            multipart(
                &[("csrf", csrf.as_str())],
                &[("attachment", "big.txt", &vec![b'a'; 11 * 1024 * 1024])],
            ),
        )
        .await;
        assert_ne!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&page));
    });
}

#[test]
fn the_office_checks_a_photo_a_withdrawal_says_no_at_once_and_the_breach_clock_warns_then_runs_out()
{
    rt().block_on(async {
        let h = harness(config()).await;
        let (nia, csrf) = signed_in(&h.store, "nia.ormerod").await;
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        let check = "/registers/consent?purpose=website&pupils=Ava%20Ahmed%0AIvy%20Khan%0ANobody%20Here";
        let (status, _, page) = call(&h.app, Method::GET, check, &nia, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        let result = between(&page, "id=\"check-result\"", "</table>");
        assert!(result.contains("nobody has given consent"), "{result}");
        assert!(result.contains("no pupil here has that name"), "{result}");
        // Consent given by Ava's mother: yes for the website, still no for social media.
        let given = fields(&[
            ("csrf", csrf.as_str()),
            ("purpose", "website"),
            ("decision", "given"),
            ("decided_by", "Mrs Ahmed (mother)"),
            ("note", "consent form, September"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/consent/{ava}"),
            &nia,
            Some(&given),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, check, &nia, None, &[]).await;
        let result = between(&page, "id=\"check-result\"", "</table>");
        let ava_row = between(result, "Ava Ahmed", "</tr>");
        assert!(ava_row.contains("Yes") && ava_row.contains("Mrs Ahmed"), "{ava_row}");
        assert!(page.contains("Do not use the photo as it is"), "Ivy has no consent");
        // Withdrawn by phone: the very next check says no.
        let withdrawn = given
            .replace("decision=given", "decision=withdrawn")
            .replace("September", "phone%20call");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/consent/{ava}"),
            &nia,
            Some(&withdrawn),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, check, &nia, None, &[]).await;
        let ava_row = between(between(&page, "id=\"check-result\"", "</table>"), "Ava Ahmed", "</tr>");
        assert!(ava_row.contains("No") && ava_row.contains("withdrawn by Mrs Ahmed"), "{ava_row}");
        // A purpose Haven does not know, or a decision that is neither, changes nothing.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/consent/{ava}"),
            &nia,
            Some(&given.replace("purpose=website", "purpose=billboard")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(h.store.consents_of(1, ava).await.expect("h").len(), 2);
        let (_, _, export) = call(&h.app, Method::GET, "/registers/consent.csv", &nia, None, &[]).await;
        let line = export.lines().find(|l| l.starts_with("Ava Ahmed")).expect("Ava's row");
        assert!(line.contains("withdrawn"), "{line}");
        // A teacher has no consent register; the office has no breach log.
        let (ben, _) = signed_in(&h.store, "ben.carter").await;
        let (status, _, _) = call(&h.app, Method::GET, "/registers/consent", &ben, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = call(&h.app, Method::GET, "/registers/breaches", &nia, None, &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The DPO logs two breaches, found 49 and 73 hours ago (the clock is the store's time).
        let (dev, dev_csrf) = signed_in(&h.store, "dev.mistry").await;
        let local = |hours_ago: i64| {
            jiff::Timestamp::from_millisecond(haven_store::now_ms() - hours_ago * 3_600_000)
                .expect("time")
                .to_zoned(jiff::tz::TimeZone::system())
                .strftime("%Y-%m-%dT%H:%M")
                .to_string()
        };
        for (title, ago) in [("Laptop left on a train", 49), ("Spreadsheet on the website", 73)] {
            let form = fields(&[
                ("csrf", dev_csrf.as_str()),
                ("title", title),
                ("what", "Invented for the test."),
                ("discovered", &local(ago)),
                ("data", "names and dates of birth"),
                ("people", "30"),
                ("risk", "high"),
            ]);
            let (status, _, _) =
                call(&h.app, Method::POST, "/registers/breaches", &dev, Some(&form), &[]).await;
            assert_eq!(status, StatusCode::SEE_OTHER);
        }
        let (_, _, page) = call(&h.app, Method::GET, "/registers/breaches", &dev, None, &[]).await;
        let laptop = between(&page, "Laptop left on a train", "</section>");
        assert!(laptop.contains("hours left to report to the ICO: decide now"), "{laptop}");
        let sheet = between(&page, "Spreadsheet on the website", "</section>");
        assert!(sheet.contains("hours past the 72 allowed"), "{sheet}");
        // Decided not reportable, with the reason: the clock stops; the DPO signs it off.
        let id = h.store.breaches(1).await.expect("log")[0].id;
        let decide = fields(&[
            ("csrf", dev_csrf.as_str()),
            ("step", "decide"),
            ("reportable", "no"),
            ("text", "Encrypted laptop, recovered the same day"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/breaches/{id}"),
            &dev,
            Some(&decide),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/registers/breaches", &dev, None, &[]).await;
        assert!(page.contains("not reportable (the DPO"), "{page}");
        // The headteacher may read the log but not sign an entry off.
        let (helen, helen_csrf) = signed_in(&h.store, "helen.marsh").await;
        let sign = |csrf: &str| fields(&[("csrf", csrf), ("step", "sign-off")]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/breaches/{id}"),
            &helen,
            Some(&sign(&helen_csrf)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/breaches/{id}"),
            &dev,
            Some(&sign(&dev_csrf)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(h.store.breaches(1).await.expect("log").iter().any(|b| b.signed_off.is_some()));

        // Training: a file with a bad row records nothing; a good one records every row.
        let (priya, priya_csrf) = signed_in(&h.store, "priya.shah").await;
        let bad = "Staff,Course,Completed\nT001,dsl,2026-09-01\nT005,first aid,2026-09-01\n";
        let (status, _, body) = post_multipart(
            &h.app,
            "/registers/training/import",
            &priya,
            multipart(&[("csrf", priya_csrf.as_str())], &[("file", "t.csv", bad.as_bytes())]),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(String::from_utf8_lossy(&body).contains("line 3"), "{}", String::from_utf8_lossy(&body));
        assert!(h.store.training(1).await.expect("t").iter().all(|s| s.latest.is_empty()));
        let good = "Staff,Course,Completed\nT001,dsl,2026-09-01\ns.rossi@demo-school.example,safeguarding-update,01/09/2026\n";
        let (status, _, _) = post_multipart(
            &h.app,
            "/registers/training/import",
            &priya,
            multipart(&[("csrf", priya_csrf.as_str())], &[("file", "t.csv", good.as_bytes())]),
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/registers/training", &priya, None, &[]).await;
        let sofia = between(&page, "Sofia Rossi", "</tr>");
        assert!(sofia.contains("2026-09-01 (until 2027-09-01)"), "{sofia}");
        assert!(sofia.contains("training missing"), "her induction is missing: {sofia}");
    });
}

#[test]
fn the_office_publishes_the_ks1_agreement_a_parent_signs_and_a_new_version_makes_it_due_again() {
    rt().block_on(async {
        let h = harness(config()).await;
        let (nia, csrf) = signed_in(&h.store, "nia.ormerod").await;
        let today = haven_runtime::clock::local().date().to_string();
        let publish = |text: &str| {
            fields(&[
                ("csrf", csrf.as_str()),
                ("audience", "eyfs-ks1"),
                ("effective", &today),
                ("body", text),
            ])
        };
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/agreements",
            &nia,
            Some(&publish("I ask a grown-up before I go online.")),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/registers/agreements?audience=eyfs-ks1",
            &nia,
            None,
            &[],
        )
        .await;
        let ivy = h.store.find_people("Ivy Khan", 1).await.expect("find")[0].id;
        let row = between(&page, &format!("id=\"due-{ivy}\""), "</tr>").to_owned();
        assert!(
            row.contains("never signed") && row.contains("parent or carer of Ivy Khan"),
            "{row}"
        );
        let version = between(&row, "name=\"version\" value=\"", "\"").to_owned();
        let sign = fields(&[
            ("csrf", csrf.as_str()),
            ("person", &ivy.to_string()),
            ("version", &version),
            ("signed_on", &today),
            ("how", "paper"),
            ("signed_by", "Mr Khan (father)"),
            ("back", "audience=eyfs-ks1"),
        ]);
        let (status, headers, _) = call(
            &h.app,
            Method::POST,
            "/registers/agreements/signatures",
            &nia,
            Some(&sign),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            location(&headers).ends_with("&audience=eyfs-ks1"),
            "{}",
            location(&headers)
        );
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/registers/agreements?audience=eyfs-ks1",
            &nia,
            None,
            &[],
        )
        .await;
        assert!(
            !page.contains(&format!("id=\"due-{ivy}\"")),
            "Ivy's parent has signed"
        );
        // The same signature for a Year 5 pupil is refused: it is not their agreement.
        let ava = h.store.find_people("Ava Ahmed", 1).await.expect("find")[0].id;
        let year5 = h
            .store
            .find_people("", 1000)
            .await
            .expect("people")
            .into_iter()
            .find(|p| p.kind == "pupil" && p.year_group.as_deref() == Some("5"))
            .expect("a Year 5 pupil")
            .id;
        assert_ne!(year5, ava);
        let wrong = sign.replace(&format!("person={ivy}"), &format!("person={year5}"));
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/agreements/signatures",
            &nia,
            Some(&wrong),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // A new version, in force today: Ivy must sign again.
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/agreements",
            &nia,
            Some(&publish(
                "I ask a grown-up, and I tell them if something worries me.",
            )),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/registers/agreements?audience=eyfs-ks1",
            &nia,
            None,
            &[],
        )
        .await;
        let row = between(&page, &format!("id=\"due-{ivy}\""), "</tr>");
        assert!(row.contains("signed an older version"), "{row}");
        // Teachers do not keep the agreements.
        let (ben, _) = signed_in(&h.store, "ben.carter").await;
        let (status, _, _) = call(
            &h.app,
            Method::GET,
            "/registers/agreements",
            &ben,
            None,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    });
}

#[test]
fn a_policy_review_is_brought_forward_and_signed_by_the_chair_and_a_search_is_logged_and_returned()
{
    rt().block_on(async {
        let h = harness(config()).await;
        let (priya, csrf) = signed_in(&h.store, "priya.shah").await;
        let today = haven_runtime::clock::local().date().to_string();
        let review = fields(&[
            ("csrf", csrf.as_str()),
            ("step", "review"),
            ("policy", "Online safety policy"),
            ("reviewed_on", &today),
            ("reviewed_by", "DSL, headteacher and safeguarding governor"),
            ("next_on", ""),
            ("text", "Added AI chatbots to the filtering section"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/reviews",
            &priya,
            Some(&review),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/registers/reviews", &priya, None, &[]).await;
        let row = between(&page, "Online safety policy</td>", "</tr>").to_owned();
        assert!(row.contains("awaiting the chair"), "{row}");
        // An incident brings it forward: due now, with the reason.
        let forward = fields(&[
            ("csrf", csrf.as_str()),
            ("step", "forward"),
            ("policy", "Online safety policy"),
            ("text", "A pupil reached an unfiltered chatbot"),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/reviews",
            &priya,
            Some(&forward),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/registers/reviews", &priya, None, &[]).await;
        assert!(
            page.contains("due now</strong>: brought forward by Priya Shah"),
            "{page}"
        );
        // The DSL cannot sign it off; the chair can.
        let id = h.store.policy_reviews(1).await.expect("reviews").0[0].id;
        let sign = |csrf: &str| {
            fields(&[
                ("csrf", csrf),
                ("step", "sign-off"),
                ("review", &id.to_string()),
            ])
        };
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/reviews",
            &priya,
            Some(&sign(&csrf)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (grace, grace_csrf) = signed_in(&h.store, "grace.whitfield").await;
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/reviews",
            &grace,
            Some(&sign(&grace_csrf)),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(&h.app, Method::GET, "/registers/reviews", &grace, None, &[]).await;
        assert!(page.contains("Grace Whitfield, "), "signed off: {page}");

        // The headteacher logs a search with a witness; the phone goes back to a parent.
        let (helen, helen_csrf) = signed_in(&h.store, "helen.marsh").await;
        let now = haven_runtime::clock::local()
            .strftime("%Y-%m-%dT%H:%M")
            .to_string();
        let search = fields(&[
            ("csrf", helen_csrf.as_str()),
            ("pupil", "Ava Ahmed"),
            ("at", &now),
            ("device", "mobile phone"),
            ("reason", "Reported to be sharing a photo of another pupil"),
            ("authorised_by", "Helen Marsh"),
            ("searched_by", "Helen Marsh"),
            ("witness", "Helen Marsh"),
            ("found", "Nothing of concern"),
            ("held", "Headteacher's safe"),
            ("record", ""),
        ]);
        let (status, _, body) = call(
            &h.app,
            Method::POST,
            "/registers/searches",
            &helen,
            Some(&search),
            &[],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "a witness of one's own search: {body}"
        );
        let search = search.replace("witness=Helen%20Marsh", "witness=Gareth%20Lloyd");
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            "/registers/searches",
            &helen,
            Some(&search),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let id = h.store.searches(1).await.expect("log")[0].id;
        let back = fields(&[
            ("csrf", helen_csrf.as_str()),
            ("step", "returned"),
            ("to", "Mrs Ahmed (mother)"),
            ("at", &now),
        ]);
        let (status, _, _) = call(
            &h.app,
            Method::POST,
            &format!("/registers/searches/{id}"),
            &helen,
            Some(&back),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, _, page) = call(
            &h.app,
            Method::GET,
            "/registers/searches",
            &helen,
            None,
            &[],
        )
        .await;
        assert!(page.contains("Returned to Mrs Ahmed (mother)"), "{page}");
        // The office keeps neither register.
        let (nia, _) = signed_in(&h.store, "nia.ormerod").await;
        for page in ["/registers/searches", "/registers/reviews"] {
            let (status, _, _) = call(&h.app, Method::GET, page, &nia, None, &[]).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        }
    });
}
