//! A real browser through the proxy: headless Chromium driven by ChromeDriver (WebDriver over
//! HTTP), as a pupil would use it. Skipped, saying so, when Chromium or ChromeDriver is missing
//! (the test script installs both).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::dns::free_port;
use super::proxy::{start_proxy_with, Origin};
use super::scratch;

fn have_browser() -> bool {
    let found = ["chromium", "chromedriver"]
        .iter()
        .all(|b| Command::new(b).arg("--version").output().is_ok());
    if !found {
        eprintln!(
            "SKIPPED: chromium and chromedriver are not installed (scripts/test installs them)"
        );
    }
    found
}

/// A ChromeDriver process and one browser session.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One WebDriver request: (status, JSON body).
fn webdriver(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    // Read the head, then exactly Content-Length bytes: ChromeDriver may keep the connection.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length = super::content_length(&head);
    let mut body = vec![0u8; length];
    let _ = s.read_exact(&mut body);
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

impl Browser {
    /// Chromium with every request through the proxy on `proxy_port`, and `home` as its home
    /// (where its certificate store lives).
    fn start(proxy_port: u16, home: &Path) -> Browser {
        Browser::launch(Some(proxy_port), home)
    }

    /// Chromium going straight to the network (a member of staff at the console).
    fn direct(home: &Path) -> Browser {
        Browser::launch(None, home)
    }

    fn launch(proxy_port: Option<u16>, home: &Path) -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("HOME", home)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        for _ in 0..100 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = home.join("profile");
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        if let Some(proxy_port) = proxy_port {
            args.push(format!("--proxy-server=http://127.0.0.1:{proxy_port}"));
            // Loopback addresses go through the proxy too (the test's websites live there).
            args.push("--proxy-bypass-list=<-loopback>".to_owned());
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": args,
        }}}});
        let (status, v) = webdriver(port, "POST", "/session", Some(&caps));
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session ({status}): {v}"))
            .to_owned();
        Browser {
            driver,
            port,
            session,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        webdriver(self.port, method, path, body).1
    }

    fn open(&self, url: &str) {
        self.call(
            "POST",
            &format!("/session/{}/url", self.session),
            Some(&json!({ "url": url })),
        );
    }

    fn source(&self) -> String {
        self.call("GET", &format!("/session/{}/source", self.session), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn element(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&json!({"using": "css selector", "value": css})),
        );
        found["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned()
    }

    fn click(&self, css: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/session/{}/element/{id}/click", self.session),
            Some(&json!({})),
        );
    }

    /// Types `text` into the field `css`, as a person would.
    fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/session/{}/element/{id}/value", self.session),
            Some(&json!({ "text": text })),
        );
    }

    /// The visible text of `css`.
    fn text(&self, css: &str) -> String {
        let id = self.element(css);
        self.call(
            "GET",
            &format!("/session/{}/element/{id}/text", self.session),
            None,
        )["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page source once it contains `what` (pages load after a click).
    fn wait_for(&self, what: &str) -> String {
        let mut page = String::new();
        for _ in 0..100 {
            page = self.source();
            if page.contains(what) {
                return page;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("never saw {what:?}: {page}");
    }

    /// The current address.
    fn url(&self) -> String {
        self.call("GET", &format!("/session/{}/url", self.session), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

#[test]
fn a_pupil_sees_the_block_page_and_requests_a_review() {
    if !have_browser() {
        return;
    }
    let origin = Origin::start();
    let p = start_proxy_with("browser-block", "", &|_| {});
    let home = scratch("browser-block-home");
    let browser = Browser::start(p.port, &home);
    // An allowed page arrives as the website sent it.
    browser.open(&format!("http://127.0.0.1:{}/a", origin.port));
    assert!(browser.source().contains("hello from the origin"));
    // A gambling site: the block page, in words a child can read.
    browser.open("http://bet365.com/");
    let page = browser.source();
    assert!(page.contains("This page is blocked"), "{page}");
    assert!(page.contains("tell your teacher"), "{page}");
    // The button records a review request.
    browser.click("button[type=submit]");
    let mut after = String::new();
    for _ in 0..50 {
        after = browser.source();
        if after.contains("has been sent") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(after.contains("has been sent"), "{after}");
    let reviews = crate::stored_reviews(&p.data);
    assert!(
        reviews.iter().any(|r| r["url"] == "http://bet365.com/"),
        "{reviews:?}"
    );
    drop(browser);
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn decrypted_https_in_a_browser_that_trusts_the_schools_ca() {
    if !have_browser() {
        return;
    }
    let found = Command::new("certutil").arg("-H").output().is_ok();
    if !found {
        eprintln!("SKIPPED: certutil (libnss3-tools) is not installed (scripts/test installs it)");
        return;
    }
    let certs = scratch("browser-tls-certs");
    let (test_ca, cert, key) = super::make_certs(&certs);
    let port = super::proxy::start_https_origin(&cert, &key);
    let extra = format!(
        "connect_ports = [{port}]\nhosts = {{ \"secure.example\" = \"127.0.0.1\" }}\norigin_ca_file = \"{}\"",
        test_ca.display()
    );
    let p = start_proxy_with("browser-tls", &extra, &super::proxy::intercept_pupils);
    // The school's CA installed as a device would have it: in the browser's certificate store.
    let home = scratch("browser-tls-home");
    let nssdb = home.join(".pki/nssdb");
    std::fs::create_dir_all(&nssdb).expect("nssdb");
    let db = format!("sql:{}", nssdb.display());
    let run = |args: &[&str]| {
        let out = Command::new("certutil")
            .args(args)
            .output()
            .expect("certutil");
        assert!(
            out.status.success(),
            "certutil {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["-N", "-d", &db, "--empty-password"]);
    let ca = p.data.join("ca/ca.crt");
    run(&[
        "-A",
        "-d",
        &db,
        "-t",
        "C,,",
        "-n",
        "Haven school CA",
        "-i",
        ca.to_str().expect("p"),
    ]);
    let browser = Browser::start(p.port, &home);
    browser.open(&format!("https://secure.example:{port}/echo/page"));
    let page = browser.source();
    assert!(
        page.contains("GET /echo/page HTTP/1.1"),
        "decrypted and passed on: {page}"
    );
    // Inside HTTPS the block page is served too.
    browser.open(&format!("https://secure.example:{port}/files/setup.exe"));
    let page = browser.source();
    assert!(page.contains("This page is blocked"), "{page}");
    drop(browser);
    let _ = std::fs::remove_dir_all(&home);
    let _ = std::fs::remove_dir_all(&certs);
}

/// The demo school's people, with passwords for a DSL, a teacher and a pupil.
fn demo_people(data: &Path) {
    let people = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-people");
    for kind in ["pupils", "staff"] {
        let file = people.join(format!("{kind}.csv"));
        super::ok(&super::haven(
            data,
            &["people", "import", kind, file.to_str().expect("p")],
        ));
    }
    for user in ["priya.shah", "ben.carter", "tom.lewis"] {
        super::proxy::set_password(data, user, "correct-horse-9");
    }
}

#[test]
fn staff_sign_in_with_a_code_triage_a_capture_find_a_search_and_approve_a_review() {
    if !have_browser() {
        return;
    }
    let origin = Origin::start();
    let console_port = free_port();
    let p = start_proxy_with(
        "browser-console",
        &format!(
            "authenticate = \"optional\"\nhosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
             [console]\nlisten = \"127.0.0.1:{console_port}\""
        ),
        &demo_people,
    );
    // The pupil Tom searches through the proxy, signed in (once with HTML in his words, once
    // for something the risk library grades 5); and a page is blocked for a pupil, who asks
    // for a review from the block page.
    for q in ["%3Cb%3Evolcano%3C%2Fb%3E+facts", "how+do+i+k1ll+myself"] {
        let out = Command::new("curl")
            .args([
                "-s",
                "-x",
                &format!("http://127.0.0.1:{}", p.port),
                "--proxy-user",
                "tom.lewis:correct-horse-9",
                &format!("http://www.google.co.uk:{}/search?q={q}", origin.port),
            ])
            .output()
            .expect("curl");
        assert!(out.status.success());
    }
    let home = scratch("browser-console-home");
    let pupil = Browser::start(p.port, &home.join("pupil"));
    pupil.open("http://bet365.com/");
    pupil.wait_for("This page is blocked");
    pupil.click("button[type=submit]");
    pupil.wait_for("has been sent");
    drop(pupil);

    // The DSL signs in: password, then two-step set-up with the QR code's key.
    let console = format!("http://127.0.0.1:{console_port}");
    let staff = Browser::direct(&home.join("staff"));
    sign_in(&staff, &console, "priya.shah", true);
    staff.click("main a");
    staff.wait_for("Blocks by category");

    // Activity: Tom's searches, with the HTML he typed shown as text.
    staff.open(&format!("{console}/activity"));
    staff.type_into("input[name=user]", "tom.lewis");
    staff.type_into("input[name=search]", "volcano");
    staff.click("form.search button");
    for _ in 0..100 {
        if staff.url().contains("user=tom.lewis") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(staff.url().contains("search=volcano"), "{}", staff.url());
    let page = staff.wait_for("search-term");
    assert_eq!(staff.text("q.search-term"), "<b>volcano</b> facts");
    assert!(
        !page.contains("<b>volcano</b>"),
        "markup typed by a pupil is never markup"
    );

    // Triage: the capture at the top of the queue, opened in context (which acknowledges its
    // alert), dismissed with a reason; the library page then shows the phrases' dismissals.
    staff.open(&format!("{console}/triage"));
    staff.wait_for("k1ll myself");
    staff.click("#triage a[href^='/triage/']");
    let page = staff.wait_for("acknowledged by priya.shah");
    assert!(
        page.contains("tom.lewis") && page.contains("suicide:5"),
        "{page}"
    );
    assert_eq!(staff.text("#capture-text"), "how do i k1ll myself");
    // Which opinion said what: the phrases the library found, and the model's reading.
    assert!(!staff.text("#capture-phrases").is_empty());
    let model = staff.text("#capture-model");
    assert!(
        model.contains('(') && model != "not asked",
        "what the model said is kept with the capture: {model}"
    );
    staff.type_into("input[name=reason]", "a song lyric, checked with the pupil");
    staff.click("button[value=dismiss]");
    staff.wait_for("dismissed");
    staff.open(&format!("{console}/library"));
    let page = staff.wait_for("False-positive rate");
    assert!(
        page.contains(">100%<"),
        "the dismissal counts against the phrases that matched"
    );
    assert!(
        staff.text("#model-in-force").contains("The built-in model"),
        "{}",
        staff.text("#model-in-force")
    );

    // The review request: approved, which allows the site for the pupils' group at once.
    staff.open(&format!("{console}/reviews"));
    staff.wait_for("http://bet365.com/");
    staff.type_into("input[name=note]", "betting maths lesson");
    staff.click("button[value=approve]");
    let page = staff.wait_for("approved");
    assert!(page.contains("allowed now"), "{page}");
    let check = super::ok(&super::haven(
        &p.data,
        &["check", "http://bet365.com/", "--group", "ks2"],
    ));
    assert!(check.starts_with("ALLOW"), "{check}");
    assert!(check.contains("Review 1"), "{check}");

    // Signing out, then a teacher: no second step, and no activity.
    staff.click("form.signout button");
    staff.wait_for("Sign in");
    sign_in(&staff, &console, "ben.carter", false);
    staff.wait_for("Hello, Ben Carter");
    staff.open(&format!("{console}/activity"));
    staff.wait_for("Not for your role");
    drop(staff);
    // Each read and decision is in the audit log, and the chain holds.
    let log = super::ok(&super::haven(&p.data, &["audit", "log", "--limit", "100"]));
    for line in [
        "priya.shah from 127.0.0.1: read activity person ",
        "approve review review 1",
        "read capture capture 1",
        "dismiss capture capture 1",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    assert!(super::ok(&super::haven(&p.data, &["audit", "verify"])).contains("intact"));
    let _ = std::fs::remove_dir_all(&home);
}

/// Signs `user` in at `console`: password, then (for a role with two steps) enrolment with the
/// key shown on the page and a code made from it.
fn sign_in(b: &Browser, console: &str, user: &str, two_step: bool) {
    b.open(&format!("{console}/login"));
    b.wait_for("Sign in");
    b.type_into("input[name=username]", user);
    b.type_into("input[name=password]", "correct-horse-9");
    b.click("form[action='/login'] button");
    if two_step {
        b.wait_for("Set up two-step sign-in");
        let secret = b.text("#secret");
        let key = haven_console::totp::base32_decode(&secret).expect("the key on the page");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("time")
            .as_secs();
        let code = haven_console::totp::code_at(&key, now / haven_console::totp::STEP);
        b.type_into("input[name=code]", &format!("{code:06}"));
        b.click("form[action='/enrol'] button");
        b.wait_for("Two-step sign-in is on");
    } else {
        b.wait_for("Hello,");
    }
}

#[test]
fn a_teacher_logs_a_concern_the_dsl_works_its_procedure_and_refers_it_and_the_teacher_sees_none_of_that(
) {
    if !have_browser() {
        return;
    }
    let console_port = free_port();
    let p = start_proxy_with(
        "browser-records",
        &format!("[console]\nlisten = \"127.0.0.1:{console_port}\""),
        &demo_people,
    );
    let console = format!("http://127.0.0.1:{console_port}");
    let home = scratch("browser-records-home");

    // A teacher finds the child by name, gives her part, and writes what she said.
    let teacher = Browser::direct(&home.join("teacher"));
    sign_in(&teacher, &console, "ben.carter", false);
    teacher.click("nav a[href='/concerns/new']");
    teacher.wait_for("Find a child by name");
    teacher.type_into("#find-child input[name=q]", "Ava Ahmed");
    teacher.click("#find-child button");
    teacher.wait_for("found-");
    teacher.click("#found td.parts a[href*='3Asubject']");
    let page = teacher.wait_for("id=\"chosen-");
    assert!(page.contains("Year 1"), "{page}");
    assert_eq!(teacher.text("#chosen td:nth-child(4)"), "subject");
    teacher.click("select[name=category] option[value=nudes]");
    assert!(teacher.text("#image-warning").contains("never view"));
    teacher.type_into("input[name=place]", "Year 1 cloakroom");
    teacher.type_into(
        "textarea[name=account]",
        "Ava said an older boy asked her to send a photo and said he would tell everyone if she did not.",
    );
    teacher.type_into(
        "textarea[name=actions]",
        "Did not look at her tablet; took it to the office.",
    );
    teacher.click("#save-concern");
    teacher.wait_for("is logged");
    teacher.click("#mine a");
    let wrote = teacher.wait_for("what I wrote");
    assert!(
        wrote.contains("older boy") && wrote.contains("Ava Ahmed"),
        "{wrote}"
    );
    let record_url = teacher.url().replace("/concerns/mine/", "/records/");
    teacher.open(&record_url);
    teacher.wait_for("Not for your role");

    // The DSL works the nudes procedure — the image is never opened — and refers to the police.
    let dsl = Browser::direct(&home.join("dsl"));
    sign_in(&dsl, &console, "priya.shah", true);
    dsl.open(&format!("{console}/records"));
    dsl.wait_for("Open records");
    dsl.click("#records tr[id^=record-] td:last-child a");
    let page = dsl.wait_for("Procedure");
    assert!(
        page.contains("older boy") && page.contains("image-warning"),
        "{page}"
    );
    dsl.click("#step-not-viewed button[value=done]");
    dsl.wait_for("Step recorded");
    assert!(dsl.text("#step-not-viewed").contains("Done by Priya Shah"));
    dsl.type_into(
        "#step-dsl-view-justified input[name=reason]",
        "Nobody viewed the image: not needed",
    );
    dsl.click("#step-dsl-view-justified button[value=skip]");
    // The page before also said "Step recorded": wait for this step's own line.
    dsl.wait_for("Skipped by Priya Shah");
    assert!(dsl
        .text("#step-dsl-view-justified")
        .contains("Skipped by Priya Shah"));
    dsl.click("#refer select[name=agency] option[value=police]");
    dsl.type_into(
        "#refer input[name=contact]",
        "PC Dana Reed, Child Abuse Investigation Team",
    );
    dsl.type_into("#refer input[name=reference]", "CR/2211/26");
    dsl.click("#refer button");
    dsl.wait_for("Referral to the police recorded");
    assert_eq!(dsl.text("#referrals td.reference"), "CR/2211/26");
    assert!(dsl.text("#entry-list").contains("Referred to the police"));
    // The child's chronology holds the concern, the steps and the referral, in order.
    dsl.click("#concern a[href^='/records/people/']");
    let page = dsl.wait_for("Chronology: Ava Ahmed");
    let (concern, referral) = (
        page.find("Concern logged").expect("concern"),
        page.find("Referred to the police").expect("referral"),
    );
    assert!(concern < referral, "in the order it happened");

    // The teacher still sees only what they wrote.
    teacher.open(&format!("{console}/concerns/mine"));
    teacher.click("#mine a");
    let wrote = teacher.wait_for("what I wrote");
    assert!(
        !wrote.contains("CR/2211/26") && !wrote.contains("Dana Reed"),
        "{wrote}"
    );
    drop(teacher);
    drop(dsl);
    let log = super::ok(&super::haven(&p.data, &["audit", "log", "--limit", "200"]));
    for line in [
        "ben.carter from 127.0.0.1: log concern record 1",
        "priya.shah from 127.0.0.1: add referral referral 1",
        "read chronology person ",
    ] {
        assert!(log.contains(line), "{line}: {log}");
    }
    assert!(
        !log.contains("older boy") && !log.contains("CR/2211"),
        "the audit log holds ids, not text"
    );
    assert!(super::ok(&super::haven(&p.data, &["audit", "verify"])).contains("intact"));
    let _ = std::fs::remove_dir_all(&home);
}
