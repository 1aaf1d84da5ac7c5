//! Attacks on the lists: the illegal lists (IWF, CTIRU) must never fail open — not through an
//! error page or an empty file taking the list's place, not through a policy rule that an
//! update puts over a new entry, not through a deleted or corrupt snapshot.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::dns::free_port;
use crate::lists::{serve_http, serve_http_on};
use crate::proxy::{curl, start_proxy_with, Proxy};
use std::net::TcpListener;

use crate::{check, fails, haven, ok, scratch};

/// A good IWF list: four URLs.
const IWF: &str = "http://abuse-demo.example/images/1\nhttps://whole-demo.example/\n\
                   http://third-demo.example/a\nhttp://fourth-demo.example/b\n";

/// What a list server answers when it is down, with status 200 or as a saved file: a page that
/// holds one line that reads as a host name, and one very long line.
fn error_page() -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body>\n\
         <h1>Service Unavailable</h1>\n<p>The server is temporarily unable to service your request.</p>\n\
         status.example.net\n<script>var x = \"{}\";</script>\n</body></html>\n",
        "A".repeat(5000)
    )
}

fn abuse_blocked(data: &std::path::Path) {
    for group in ["ks2", "staff"] {
        let v = check(data, "http://abuse-demo.example/images/1", group, &[]);
        assert_eq!(v["action"], "block", "{v}");
        assert_eq!(v["rule"], "illegal list iwf", "{v}");
    }
}

/// The snapshot (current and previous), the registry and the download cache, as bytes.
fn list_state(data: &std::path::Path) -> Vec<(String, Option<Vec<u8>>)> {
    let lists = data.join("lists");
    let mut files = vec![
        "snapshot.hvn".to_owned(),
        "snapshot.hvn.prev".to_owned(),
        "sources.toml".to_owned(),
    ];
    if let Ok(dir) = std::fs::read_dir(lists.join("cache")) {
        let mut cached: Vec<String> = dir
            .filter_map(Result::ok)
            .map(|e| format!("cache/{}", e.file_name().to_string_lossy()))
            .collect();
        cached.sort();
        files.extend(cached);
    }
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(lists.join(&f)).ok();
            (f, bytes)
        })
        .collect()
}

/// A refusal is clear: it says what was refused and how to go on, and quotes little of the file.
#[track_caller]
fn clearly_refused(err: &str) {
    assert!(err.contains("refused"), "{err}");
    assert!(
        err.lines().all(|l| l.len() <= 300),
        "an error line quotes too much of the file: {err}"
    );
    assert!(!err.contains(&"A".repeat(120)), "{err}");
}

#[test]
fn an_error_page_or_an_empty_file_imported_as_iwf_cannot_empty_the_illegal_list() {
    let dir = scratch("attack-iwf-error-page");
    let data = dir.join("data");
    let iwf = dir.join("iwf.txt");
    std::fs::write(&iwf, IWF).expect("w");
    let p = |path: &std::path::Path| path.to_str().expect("path").to_owned();
    ok(&haven(
        &data,
        &[
            "lists",
            "import",
            &p(&iwf),
            "--format",
            "iwf",
            "--name",
            "iwf",
        ],
    ));
    abuse_blocked(&data);
    let before = list_state(&data);

    // The operator saves the list server's error page and imports it in the list's place.
    let page = dir.join("error-page.html");
    std::fs::write(&page, error_page()).expect("w");
    let out = haven(
        &data,
        &[
            "lists",
            "import",
            &p(&page),
            "--format",
            "iwf",
            "--name",
            "iwf",
        ],
    );
    let err = fails(&out);
    clearly_refused(&err);
    assert!(err.contains("--allow-shrink"), "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().all(|l| l.len() <= 300), "{stdout}");
    assert_eq!(list_state(&data), before, "nothing changed");
    abuse_blocked(&data);

    // An empty file, likewise.
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, "").expect("w");
    let err = fails(&haven(
        &data,
        &[
            "lists",
            "import",
            &p(&empty),
            "--format",
            "iwf",
            "--name",
            "iwf",
        ],
    ));
    clearly_refused(&err);
    assert_eq!(list_state(&data), before, "nothing changed");
    abuse_blocked(&data);

    // The registered file itself replaced by the error page, then `lists update`.
    std::fs::write(&iwf, error_page()).expect("w");
    let err = fails(&haven(&data, &["lists", "update"]));
    clearly_refused(&err);
    assert_eq!(list_state(&data), before, "nothing changed");
    abuse_blocked(&data);

    // A first import of a file with no usable entry registers nothing, nor one of an error
    // page (its one line that reads as a host name is outnumbered), even with --allow-shrink.
    std::fs::write(&iwf, IWF).expect("w");
    let err = fails(&haven(
        &data,
        &[
            "lists",
            "import",
            &p(&empty),
            "--format",
            "ctiru",
            "--allow-shrink",
        ],
    ));
    assert!(err.contains("source \"ctiru\""), "{err}");
    assert!(err.contains("no usable entry"), "{err}");
    clearly_refused(&err);
    assert_eq!(list_state(&data), before, "nothing registered");
    let err = fails(&haven(
        &data,
        &["lists", "import", &p(&page), "--format", "ctiru"],
    ));
    assert!(err.contains("source \"ctiru\""), "{err}");
    clearly_refused(&err);
    assert_eq!(list_state(&data), before, "nothing registered");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_deliberate_shrink_of_the_iwf_list_needs_allow_shrink() {
    let dir = scratch("attack-iwf-shrink");
    let data = dir.join("data");
    let iwf = dir.join("iwf.txt");
    std::fs::write(&iwf, IWF).expect("w");
    let path = iwf.to_str().expect("path");
    ok(&haven(&data, &["lists", "import", path, "--format", "iwf"]));
    let before = list_state(&data);
    // One entry of four left: more than half lost.
    std::fs::write(&iwf, "http://abuse-demo.example/images/1\n").expect("w");
    let err = fails(&haven(&data, &["lists", "update"]));
    clearly_refused(&err);
    assert!(err.contains("iwf"), "names the source: {err}");
    assert_eq!(list_state(&data), before, "nothing changed");
    let v = check(&data, "http://third-demo.example/a", "staff", &[]);
    assert_eq!(v["rule"], "illegal list iwf", "{v}");
    // Said on purpose, it goes through.
    ok(&haven(&data, &["lists", "update", "--allow-shrink"]));
    abuse_blocked(&data);
    let v = check(&data, "http://third-demo.example/a", "staff", &[]);
    assert_ne!(v["rule"], "illegal list iwf", "{v}");
    // Growing, or losing less than half, needs nothing.
    std::fs::write(&iwf, IWF).expect("w");
    ok(&haven(&data, &["lists", "update"]));
    std::fs::write(&iwf, &IWF[..IWF.rfind("http://fourth").expect("line")]).expect("w");
    ok(&haven(&data, &["lists", "update"]));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_page_downloaded_over_http_cannot_empty_the_illegal_list() {
    let dir = scratch("attack-iwf-http");
    let data = dir.join("data");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{port}/iwf/latest");
    let server = serve_http_on(
        listener.try_clone().expect("clone"),
        IWF.as_bytes().to_vec(),
    );
    ok(&haven(
        &data,
        &["lists", "import", &url, "--format", "iwf", "--name", "iwf"],
    ));
    server.join().expect("server");
    abuse_blocked(&data);
    let before = list_state(&data);
    assert!(
        before
            .iter()
            .any(|(f, b)| f.starts_with("cache/") && b.is_some()),
        "the download is cached: {:?}",
        before.iter().map(|(f, _)| f).collect::<Vec<_>>()
    );
    // The list server answers 200 with its error page.
    let server = serve_http_on(
        listener.try_clone().expect("clone"),
        error_page().into_bytes(),
    );
    let err = fails(&haven(&data, &["lists", "update"]));
    server.join().expect("server");
    clearly_refused(&err);
    assert_eq!(
        list_state(&data),
        before,
        "snapshot, registry and cache unchanged"
    );
    abuse_blocked(&data);
    // Another source imported later still reads the IWF list's good cached copy.
    let games = dir.join("games.txt");
    std::fs::write(&games, "game-demo.example\n").expect("w");
    ok(&haven(
        &data,
        &[
            "lists",
            "import",
            games.to_str().expect("p"),
            "--category",
            "games",
        ],
    ));
    abuse_blocked(&data);
    // And a first import from a server that answers with an error page registers nothing.
    let (port, server) = serve_http(error_page().into_bytes());
    let before = list_state(&data);
    let err = fails(&haven(
        &data,
        &[
            "lists",
            "import",
            &format!("http://127.0.0.1:{port}/ctiru"),
            "--format",
            "ctiru",
        ],
    ));
    server.join().expect("server");
    assert!(err.contains("source \"ctiru\""), "{err}");
    clearly_refused(&err);
    assert_eq!(list_state(&data), before, "nothing registered or cached");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls the proxy until `url` from the pupil's address answers `want`, for up to `secs`.
fn pupil_sees(p: &Proxy, url: &str, want: &str, secs: u64) -> String {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, _, _) = curl(p, "127.0.0.2", &[url]);
        if code == want || Instant::now() > until {
            return code;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The default policy with an allow rule for the whole of `cdn-demo.example`.
fn allow_cdn(data: &std::path::Path) {
    ok(&haven(data, &["policy", "init"]));
    let path = data.join("policy.toml");
    let text = std::fs::read_to_string(&path).expect("policy");
    std::fs::write(
        &path,
        format!("{text}\n[[allow]]\nname = \"Image CDN\"\nsites = [\"cdn-demo.example\"]\n"),
    )
    .expect("policy");
}

fn import_iwf(data: &std::path::Path, text: &str) {
    let file = data.parent().expect("dir").join("iwf.txt");
    std::fs::write(&file, text).expect("w");
    ok(&haven(
        data,
        &[
            "lists",
            "import",
            file.to_str().expect("p"),
            "--format",
            "iwf",
        ],
    ));
}

#[test]
fn an_iwf_entry_under_an_allow_rule_is_blocked_after_update_and_restart() {
    let mut p = start_proxy_with("attack-iwf-allow", "", &|data| {
        allow_cdn(data);
        import_iwf(data, IWF);
    });
    let url = "http://cdn-demo.example/pics/1.jpg";
    // Allowed by the school's rule (no such site, so the proxy answers a gateway error).
    let first = pupil_sees(&p, url, "403", 0);
    assert_ne!(first, "403");
    // The IWF list now names a page on that CDN.
    let file = p.data.parent().expect("dir").join("iwf.txt");
    std::fs::write(&file, format!("{IWF}http://cdn-demo.example/pics/1.jpg\n")).expect("w");
    ok(&haven(&p.data, &["lists", "update"]));
    assert_eq!(
        pupil_sees(&p, url, "403", 10),
        "403",
        "the running filter took the new IWF list"
    );
    // The policy tester agrees, for staff too, and names the rule that no longer applies.
    let out = haven(&p.data, &["check", url, "--group", "staff", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v["action"], "block", "{v}");
    assert_eq!(v["rule"], "illegal list iwf", "{v}");
    assert!(stderr.contains("\"Image CDN\""), "{stderr}");
    assert!(stderr.contains("iwf"), "{stderr}");
    // `policy check` names it as well.
    let out = haven(&p.data, &["policy", "check"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("\"Image CDN\""), "{all}");
    // After a restart: the filter starts, and the entry is blocked.
    p.kill_and_restart();
    assert_eq!(pupil_sees(&p, url, "403", 5), "403");
    // Other pages of the CDN are still allowed by the rule.
    assert_ne!(
        pupil_sees(&p, "http://cdn-demo.example/pics/2.jpg", "403", 0),
        "403"
    );
}

/// Starts `haven serve` on `data` and waits up to ten seconds for it to exit: its exit status
/// and standard error, or `None` when it is still running (it was then stopped).
fn serve_exits(data: &std::path::Path) -> Option<(std::process::ExitStatus, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(data)
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start haven serve");
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            use std::io::Read as _;
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            return Some((status, err));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_deleted_snapshot_with_registered_sources_does_not_let_a_pupil_through() {
    let mut p = start_proxy_with("attack-snapshot-deleted", "", &|data| import_iwf(data, IWF));
    let url = "http://abuse-demo.example/images/1";
    assert_eq!(pupil_sees(&p, url, "403", 5), "403");
    let lists = p.data.join("lists");
    std::fs::remove_file(lists.join("snapshot.hvn")).expect("rm");
    std::fs::remove_file(lists.join("snapshot.hvn.prev")).expect("rm");
    // The running filter notices within a few seconds; the pupil is still blocked.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(pupil_sees(&p, url, "403", 0), "403");
    // The policy tester does not answer "allow" from no lists at all.
    let out = haven(&p.data, &["check", url, "--group", "ks2", "--json"]);
    let err = fails(&out);
    assert!(err.contains("haven lists update"), "{err}");
    // A restart refuses to serve pupils with no lists, and says how to recover.
    p.stop();
    let (status, err) = serve_exits(&p.data).expect("serve must not start without its lists");
    assert!(!status.success());
    assert!(err.contains("haven lists update"), "{err}");
    // Which rebuilds the snapshot from the registered sources.
    ok(&haven(&p.data, &["lists", "update"]));
    p.kill_and_restart();
    assert_eq!(pupil_sees(&p, url, "403", 5), "403");
}

/// Signs `user` in to the console at `base` with curl (password, then setting up two-step
/// sign-in); returns the cookie jar.
fn console_sign_in(base: &str, jar: &std::path::Path, user: &str, password: &str) {
    let curl = |args: &[&str]| -> String {
        let out = Command::new("curl")
            .args(["-s", "-S", "--max-time", "10", "-L", "-c"])
            .arg(jar)
            .arg("-b")
            .arg(jar)
            .args(args)
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let field = |page: &str, before: &str, end: char| -> String {
        page.split(before)
            .nth(1)
            .and_then(|s| s.split(end).next())
            .unwrap_or_else(|| panic!("{before} in {page}"))
            .to_owned()
    };
    let login = curl(&[&format!("{base}/login")]);
    let csrf = field(&login, "name=\"csrf\" value=\"", '"');
    let enrol = curl(&[
        "--data-urlencode",
        &format!("csrf={csrf}"),
        "--data-urlencode",
        &format!("username={user}"),
        "--data-urlencode",
        &format!("password={password}"),
        &format!("{base}/login"),
    ]);
    let secret = field(&enrol, "id=\"secret\">", '<');
    let csrf = field(&enrol, "name=\"csrf\" value=\"", '"');
    let key = haven_console::totp::base32_decode(&secret).expect("key");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let code = haven_console::totp::code_at(&key, now / haven_console::totp::STEP);
    let done = curl(&[
        "--data-urlencode",
        &format!("csrf={csrf}"),
        "--data-urlencode",
        &format!("code={code:06}"),
        &format!("{base}/enrol"),
    ]);
    assert!(done.contains("Two-step sign-in is on"), "{done}");
}

fn http_get(url: &str, jar: Option<&std::path::Path>) -> String {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "10"]);
    if let Some(jar) = jar {
        cmd.arg("-b").arg(jar);
    }
    let out = cmd.arg(url).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_corrupt_snapshot_falling_back_to_prev_alerts_the_network_manager() {
    let (metrics, console) = (free_port(), free_port());
    let extra = format!(
        "\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[console]\nlisten = \"127.0.0.1:{console}\"\n"
    );
    let mut p = start_proxy_with("attack-snapshot-prev", &extra, &|data| {
        import_iwf(data, IWF);
        ok(&haven(data, &["lists", "update"]));
        let staff = data.parent().expect("dir").join("staff.csv");
        std::fs::write(
            &staff,
            "Staff ID,First Name,Last Name,Email,Roles\nS1,Nia,Hughes,n.hughes@demo-school.example,Network Manager\n",
        )
        .expect("w");
        ok(&haven(
            data,
            &["people", "import", "staff", staff.to_str().expect("p")],
        ));
        crate::proxy::set_password(data, "nia.hughes", "server-room-key-4");
    });
    let metrics_url = format!("http://127.0.0.1:{metrics}/metrics");
    let fallback = "haven_lists_snapshot_fallback";
    assert_eq!(metric(&http_get(&metrics_url, None), fallback), Some(0.0));
    // Flip a byte in the snapshot in force.
    let snap = p.data.join("lists/snapshot.hvn");
    let mut bytes = std::fs::read(&snap).expect("snapshot");
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&snap, &bytes).expect("w");
    let until = Instant::now() + Duration::from_secs(10);
    while metric(&http_get(&metrics_url, None), fallback) != Some(1.0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        metric(&http_get(&metrics_url, None), fallback),
        Some(1.0),
        "the fallback is a metric"
    );
    // The previous snapshot (the same lists here) still blocks.
    assert_eq!(
        pupil_sees(&p, "http://abuse-demo.example/images/1", "403", 0),
        "403"
    );
    // The network manager sees it on the console.
    let base = format!("http://127.0.0.1:{console}");
    let jar = p.data.parent().expect("dir").join("cookies.txt");
    console_sign_in(&base, &jar, "nia.hughes", "server-room-key-4");
    let page = http_get(&format!("{base}/"), Some(&jar));
    assert!(page.contains("id=\"list-alerts\""), "{page}");
    assert!(page.contains("previous snapshot"), "{page}");
    assert!(page.contains("checksum mismatch"), "{page}");
    // Still so after a restart on the corrupt snapshot.
    p.kill_and_restart();
    assert_eq!(
        metric(&http_get(&metrics_url, None), fallback),
        Some(1.0),
        "{}",
        http_get(&metrics_url, None)
    );
    // A rebuild ends the alert.
    ok(&haven(&p.data, &["lists", "update"]));
    let until = Instant::now() + Duration::from_secs(10);
    while metric(&http_get(&metrics_url, None), fallback) != Some(0.0) && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(metric(&http_get(&metrics_url, None), fallback), Some(0.0));
}
