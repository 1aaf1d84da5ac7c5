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
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                format!("--proxy-server=http://127.0.0.1:{proxy_port}"),
                // Loopback addresses go through the proxy too (the test's websites live there).
                "--proxy-bypass-list=<-loopback>",
                format!("--user-data-dir={}", profile.display()),
            ]
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

    fn click(&self, css: &str) {
        let found = self.call(
            "POST",
            &format!("/session/{}/element", self.session),
            Some(&json!({"using": "css selector", "value": css})),
        );
        let id = found["value"]
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_owned();
        self.call(
            "POST",
            &format!("/session/{}/element/{id}/click", self.session),
            Some(&json!({})),
        );
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
        "hosts = {{ \"secure.example\" = \"127.0.0.1\" }}\norigin_ca_file = \"{}\"",
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
