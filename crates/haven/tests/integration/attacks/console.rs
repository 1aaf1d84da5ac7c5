//! Attacks on the console and on signing in: guessing the second factor, locking staff out
//! through the proxy, the DSL's console password on the proxy, sessions that outlive a password
//! change, and the TOTP secret in the database file.
//!
//! The real `haven serve` with its console and proxy on loopback; curl from several source
//! addresses stands for several computers (127.0.0.2 is the pupils' network).

use std::process::Command;
use std::time::Duration;

use crate::dns::free_port;
use crate::proxy::{curl, set_password, start_proxy_with, Origin, Proxy};
use crate::{haven, ok};

const PASSWORD: &str = "correct-horse-9";

/// The demo school's people, with the console password for a DSL, the network manager and a
/// teacher.
fn demo_people(data: &std::path::Path) {
    let people = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-people");
    for kind in ["pupils", "staff"] {
        let file = people.join(format!("{kind}.csv"));
        ok(&haven(
            data,
            &["people", "import", kind, file.to_str().expect("p")],
        ));
    }
    for user in ["priya.shah", "owen.price", "ben.carter"] {
        set_password(data, user, PASSWORD);
    }
}

/// `haven serve` with the console and the proxy (credentials optional), the demo people, and
/// `site.example` answered by `origin`.
fn start(name: &str) -> (Proxy, u16) {
    let console = free_port();
    let p = start_proxy_with(
        name,
        &format!(
            "authenticate = \"optional\"\nhosts = {{ \"site.example\" = \"127.0.0.1\" }}\n\
             [console]\nlisten = \"127.0.0.1:{console}\""
        ),
        &demo_people,
    );
    (p, console)
}

/// A console answer.
struct Answer {
    status: u16,
    location: String,
    /// `name=value` of the session cookie set, if any.
    session: Option<String>,
    body: String,
}

/// One request to the console from `from`, with `cookies` and, for a POST, `form`.
fn web(port: u16, from: &str, path: &str, cookies: &str, form: Option<&str>) -> Answer {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--max-time", "10", "--interface", from]);
    if !cookies.is_empty() {
        cmd.args(["-H", &format!("Cookie: {cookies}")]);
    }
    if let Some(f) = form {
        cmd.args(["--data", f]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let header = |name: &str| -> Vec<String> {
        head.lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .collect()
    };
    Answer {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        location: header("location").into_iter().next().unwrap_or_default(),
        session: header("set-cookie")
            .into_iter()
            .filter_map(|c| c.split(';').next().map(str::to_owned))
            .find(|c| c.starts_with("haven_session=") && c.len() > "haven_session=".len()),
        body: body.to_owned(),
    }
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map_or(0, |i| i + start.len());
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

/// The password step from `from`: the answer (a session cookie and where it goes next).
fn password_step(port: u16, from: &str, user: &str, password: &str) -> Answer {
    let form = web(port, from, "/login", "", None);
    let token = between(&form.body, "name=\"csrf\" value=\"", "\"").to_owned();
    let login_cookie = format!("haven_login={token}");
    web(
        port,
        from,
        "/login",
        &login_cookie,
        Some(&format!("csrf={token}&username={user}&password={password}")),
    )
}

/// The CSRF token on a page.
fn csrf(port: u16, from: &str, path: &str, session: &str) -> String {
    let page = web(port, from, path, session, None);
    between(&page.body, "name=\"csrf\" value=\"", "\"").to_owned()
}

fn unix_step() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs()
        / haven_console::totp::STEP
}

fn code(secret_b32: &str, step: u64) -> String {
    let secret = haven_console::totp::base32_decode(secret_b32).expect("base32");
    format!("{:06}", haven_console::totp::code_at(&secret, step))
}

/// Signs the DSL in for the first time and enrols her second factor: (the TOTP secret, her
/// ten recovery codes, the step used).
fn enrol_dsl(port: u16) -> (String, Vec<String>, u64) {
    let first = password_step(port, "127.0.0.3", "priya.shah", PASSWORD);
    assert_eq!((first.status, first.location.as_str()), (303, "/enrol"));
    let session = first.session.expect("a session");
    let page = web(port, "127.0.0.3", "/enrol", &session, None);
    let secret = between(&page.body, "<code id=\"secret\">", "</code>").to_owned();
    let token = between(&page.body, "name=\"csrf\" value=\"", "\"").to_owned();
    let step = unix_step();
    let done = web(
        port,
        "127.0.0.3",
        "/enrol",
        &session,
        Some(&format!("csrf={token}&code={}", code(&secret, step))),
    );
    assert_eq!(done.status, 200, "{}", done.body);
    let list = between(
        &done.body,
        "<ul class=\"codes\" id=\"recovery-codes\">",
        "</ul>",
    );
    let recovery: Vec<String> = list
        .split("<li>")
        .skip(1)
        .map(|c| c.trim_end_matches("</li>").trim().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{list}");
    (secret, recovery, step)
}

/// The audit log's lines.
fn audit_log(p: &Proxy) -> Vec<String> {
    ok(&haven(&p.data, &["audit", "log", "--limit", "1000"]))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Guesses `guesses` at the second-factor step, spread over four attackers (four addresses,
/// each with a session of its own from the stolen password).
fn guess_second_factor(port: u16, guesses: &[String]) {
    let attackers: Vec<(String, String, String)> = (11..15)
        .map(|n| {
            let from = format!("127.0.0.{n}");
            let step = password_step(port, &from, "priya.shah", PASSWORD);
            assert_eq!(
                (step.status, step.location.as_str()),
                (303, "/login/totp"),
                "the password is right"
            );
            let session = step.session.expect("a session");
            let token = csrf(port, &from, "/login/totp", &session);
            (from, session, token)
        })
        .collect();
    for (i, guess) in guesses.iter().enumerate() {
        let (from, session, token) = &attackers[i % attackers.len()];
        let answer = web(
            port,
            from,
            "/login/totp",
            session,
            Some(&format!("csrf={token}&code={guess}")),
        );
        assert_ne!(answer.status, 303, "guess {guess} was let in");
    }
}

#[test]
fn guessing_totp_codes_after_the_password_is_locked_out_across_sessions_and_addresses() {
    let (p, port) = start("attack-totp-guess");
    let (secret, _, enrolled) = enrol_dsl(port);
    // The right codes for now (a step either side) are never among the guesses.
    let right: Vec<String> = (enrolled.saturating_sub(2)..enrolled + 4)
        .map(|s| code(&secret, s))
        .collect();
    let guesses: Vec<String> = (0..24u32)
        .map(|n| format!("{:06}", 100_000 + n * 37_003))
        .filter(|g| !right.contains(g))
        .take(20)
        .collect();
    guess_second_factor(port, &guesses);
    // Locked: even the right code, from a new address and a new session, is refused now.
    let step = password_step(port, "127.0.0.20", "priya.shah", PASSWORD);
    let session = step.session.expect("a session");
    let token = csrf(port, "127.0.0.20", "/login/totp", &session);
    let right = code(&secret, unix_step() + 1);
    let answer = web(
        port,
        "127.0.0.20",
        "/login/totp",
        &session,
        Some(&format!("csrf={token}&code={right}")),
    );
    assert_ne!(
        answer.status, 303,
        "twenty guesses did not lock the second factor: the right code let the guesser in"
    );
    assert!(
        answer.body.contains("Too many wrong codes"),
        "{}",
        answer.body
    );
    // The audit log counts the failures: a few rows, not one per guess, and one says how many.
    let log = audit_log(&p);
    let refused: Vec<&String> = log
        .iter()
        .filter(|l| l.contains("second factor refused") || l.contains("second factor locked"))
        .collect();
    assert!(
        !refused.is_empty() && refused.len() <= 4,
        "{} rows for {} guesses:\n{}",
        refused.len(),
        guesses.len(),
        log.join("\n")
    );
    assert!(
        log.iter()
            .any(|l| l.contains("second factor locked") && l.contains("wrong codes=5")),
        "{}",
        log.join("\n")
    );
}

#[test]
fn guessing_recovery_codes_is_locked_out_like_totp_codes() {
    let (p, port) = start("attack-recovery-guess");
    let (_, recovery, _) = enrol_dsl(port);
    let guesses: Vec<String> = (0..20u32)
        .map(|n| format!("{:05x}-{:05x}", n * 7919, n * 104_729))
        .filter(|g| !recovery.contains(g))
        .collect();
    guess_second_factor(port, &guesses);
    let step = password_step(port, "127.0.0.21", "priya.shah", PASSWORD);
    let session = step.session.expect("a session");
    let token = csrf(port, "127.0.0.21", "/login/totp", &session);
    let answer = web(
        port,
        "127.0.0.21",
        "/login/totp",
        &session,
        Some(&format!("csrf={token}&code={}", recovery[3])),
    );
    assert_ne!(
        answer.status, 303,
        "twenty guessed recovery codes did not lock the second factor"
    );
    let log = audit_log(&p);
    let rows = log
        .iter()
        .filter(|l| l.contains("second factor refused") || l.contains("second factor locked"))
        .count();
    assert!(rows <= 4, "{rows} rows:\n{}", log.join("\n"));
}

#[test]
fn wrong_proxy_passwords_for_the_dsl_from_a_pupil_device_do_not_lock_her_console() {
    let origin = Origin::start();
    let (p, port) = start("attack-proxy-lockout");
    let url = format!("http://site.example:{}/echo", origin.port);
    for n in 0..8 {
        let (code, _, _) = curl(
            &p,
            "127.0.0.2",
            &["--proxy-user", &format!("priya.shah:guess-{n}"), &url],
        );
        assert_eq!(code, "407");
    }
    // The DSL signs in to the console as usual: on to her second factor, not locked out.
    let step = password_step(port, "127.0.0.3", "priya.shah", PASSWORD);
    assert_eq!(
        (step.status, step.location.as_str()),
        (303, "/enrol"),
        "{}",
        step.body
    );
    // The pupil's device, guessing on, is throttled by its address.
    for n in 8..30 {
        let _ = curl(
            &p,
            "127.0.0.2",
            &["--proxy-user", &format!("ben.carter:guess-{n}"), &url],
        );
    }
    let (code, body, _) = curl(
        &p,
        "127.0.0.2",
        &["--proxy-user", &format!("ben.carter:{PASSWORD}"), &url],
    );
    assert_eq!(code, "407", "{body}");
    assert!(body.contains("Too many"), "{body}");
    // Another device is not.
    let (code, _, _) = curl(
        &p,
        "127.0.0.4",
        &["--proxy-user", &format!("ben.carter:{PASSWORD}"), &url],
    );
    assert_eq!(code, "200");
}

#[test]
fn the_dsls_console_password_is_refused_by_the_proxy_and_her_proxy_password_works() {
    let origin = Origin::start();
    let (p, _) = start("attack-proxy-console-password");
    let url = format!("http://site.example:{}/echo", origin.port);
    for user in ["priya.shah", "owen.price"] {
        let (code, body, _) = curl(
            &p,
            "127.0.0.3",
            &["--proxy-user", &format!("{user}:{PASSWORD}"), &url],
        );
        assert_eq!(
            code, "407",
            "{user}'s console password was accepted by the proxy: {body}"
        );
    }
    // A teacher (no second factor) still signs in to the proxy with the school password.
    let (code, _, _) = curl(
        &p,
        "127.0.0.3",
        &["--proxy-user", &format!("ben.carter:{PASSWORD}"), &url],
    );
    assert_eq!(code, "200");
    // The DSL gets a proxy password of her own, which works (her console password still not).
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(&p.data)
        .args(["people", "password", "priya.shah", "--proxy"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("haven people password --proxy");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        b"browsing-only-4\n",
    )
    .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut worked = false;
    for _ in 0..30 {
        let (code, _, _) = curl(
            &p,
            "127.0.0.3",
            &["--proxy-user", "priya.shah:browsing-only-4", &url],
        );
        if code == "200" {
            worked = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(worked, "her proxy password does not work");
    let (code, _, _) = curl(
        &p,
        "127.0.0.3",
        &["--proxy-user", &format!("priya.shah:{PASSWORD}"), &url],
    );
    assert_eq!(code, "407");
}

#[test]
fn changing_a_password_ends_other_sessions_and_the_proxy_drops_the_old_one_at_once() {
    let origin = Origin::start();
    let (p, port) = start("attack-password-change");
    let url = format!("http://site.example:{}/echo", origin.port);
    // The teacher is signed in on two computers, and browses through the proxy.
    let a = password_step(port, "127.0.0.3", "ben.carter", PASSWORD)
        .session
        .expect("session a");
    let b = password_step(port, "127.0.0.5", "ben.carter", PASSWORD)
        .session
        .expect("session b");
    assert_eq!(web(port, "127.0.0.5", "/", &b, None).status, 200);
    let (code, _, _) = curl(
        &p,
        "127.0.0.3",
        &["--proxy-user", &format!("ben.carter:{PASSWORD}"), &url],
    );
    assert_eq!(code, "200");
    // He changes his password on the first (it leaked).
    let token = csrf(port, "127.0.0.3", "/account", &a);
    let changed = web(
        port,
        "127.0.0.3",
        "/account/password",
        &a,
        Some(&format!(
            "csrf={token}&current={PASSWORD}&new=fresh-kettle-8&repeat=fresh-kettle-8"
        )),
    );
    assert!(
        changed.status == 200 || changed.status == 303,
        "{} {}",
        changed.status,
        changed.body
    );
    // The other computer's session has ended; this one goes on (with a new cookie).
    let other = web(port, "127.0.0.5", "/", &b, None);
    assert_eq!(
        (other.status, other.location.as_str()),
        (303, "/login"),
        "the other session outlived the password change"
    );
    let mine = changed.session.unwrap_or(a);
    assert_eq!(web(port, "127.0.0.3", "/", &mine, None).status, 200);
    // The proxy refuses the old password at once (it had it remembered), takes the new one.
    let (code, _, _) = curl(
        &p,
        "127.0.0.3",
        &["--proxy-user", &format!("ben.carter:{PASSWORD}"), &url],
    );
    assert_eq!(code, "407", "the proxy still took the old password");
    let (code, _, _) = curl(
        &p,
        "127.0.0.3",
        &["--proxy-user", "ben.carter:fresh-kettle-8", &url],
    );
    assert_eq!(code, "200");
    // A password set by the command line, by another process, reaches the proxy too.
    set_password(&p.data, "ben.carter", "third-kettle-7");
    let mut refused = false;
    for _ in 0..40 {
        let (code, _, _) = curl(
            &p,
            "127.0.0.3",
            &["--proxy-user", "ben.carter:fresh-kettle-8", &url],
        );
        if code == "407" {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        refused,
        "the proxy kept the password the command line replaced"
    );
    assert_eq!(
        web(port, "127.0.0.3", "/", &mine, None).location,
        "/login",
        "the command line's change ends every session"
    );
}

#[test]
fn the_totp_secret_is_not_in_the_database_in_clear() {
    let (p, port) = start("attack-totp-at-rest");
    let (secret, _, _) = enrol_dsl(port);
    let raw = haven_console::totp::base32_decode(&secret).expect("secret");
    let mut db = Vec::new();
    for file in ["haven.db", "haven.db-wal"] {
        if let Ok(bytes) = std::fs::read(p.data.join(file)) {
            db.extend_from_slice(&bytes);
        }
    }
    assert!(!db.is_empty());
    let found = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(
        !found(secret.as_bytes()) && !found(&raw),
        "the DSL's TOTP secret is in the database file in clear"
    );
    // The key is a file of its own, readable by Haven's user only.
    let key = p.data.join("totp.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key).expect("the key file").permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");
}
