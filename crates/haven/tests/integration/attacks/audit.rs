//! Attacks on the audit log: safeguarding text read out of it by roles that must not see it,
//! and a chain rewritten by someone with the database in hand.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::dns::free_port;
use crate::proxy::{start_proxy_with, Origin, Proxy};
use crate::{fails, haven, ok, scratch};

const PASSWORD: &str = "correct-horse-9";

/// One request to the console: (status, head, body).
fn http(
    port: u16,
    method: &str,
    path: &str,
    cookie: &str,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("console");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    match form {
        Some(f) => req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{f}",
            f.len()
        )),
        None => req.push_str("\r\n"),
    }
    s.write_all(req.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn set_cookie(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("set-cookie")
                .then(|| v.trim().split(';').next().unwrap_or("").to_owned())
        })
        .unwrap_or_default()
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).map_or(0, |i| i + start.len());
    let rest = &text[from..];
    &rest[..rest.find(end).unwrap_or(rest.len())]
}

fn csrf(page: &str) -> String {
    between(page, "name=\"csrf\" value=\"", "\"").to_owned()
}

/// Signs `user` in through the pages (password, then setting up two-step sign-in with the
/// key the page shows): the session cookie.
pub(crate) fn sign_in(port: u16, user: &str) -> String {
    let (_, head, page) = http(port, "GET", "/login", "", None, &[]);
    let login = set_cookie(&head);
    let form = format!("csrf={}&username={user}&password={PASSWORD}", csrf(&page));
    let (status, head, _) = http(port, "POST", "/login", &login, Some(&form), &[]);
    assert_eq!(status, 303, "{user} signs in: {head}");
    let session = set_cookie(&head);
    let (_, _, page) = http(port, "GET", "/enrol", &session, None, &[]);
    let secret = between(&page, "<code id=\"secret\">", "</code>");
    let key = haven_console::totp::base32_decode(secret).expect("the key on the page");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs();
    let code = haven_console::totp::code_at(&key, now / haven_console::totp::STEP);
    let form = format!("csrf={}&code={code:06}", csrf(&page));
    let (status, _, page) = http(port, "POST", "/enrol", &session, Some(&form), &[]);
    assert_eq!(status, 200, "{user} enrols: {page}");
    session
}

/// The demo school with passwords for the DSL, the administrator, the DPO and the pupil Tom.
fn school(data: &Path) {
    let people = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-people");
    for kind in ["pupils", "staff"] {
        let file = people.join(format!("{kind}.csv"));
        ok(&haven(
            data,
            &["people", "import", kind, file.to_str().expect("p")],
        ));
    }
    for user in [
        "priya.shah",
        "sam.idris",
        "dev.mistry",
        "owen.price",
        "tom.lewis",
    ] {
        crate::proxy::set_password(data, user, PASSWORD);
    }
}

/// A server with its console on a free port and a search origin on loopback: (server, console
/// port, origin).
fn server(name: &str) -> (Proxy, u16, Origin) {
    let origin = Origin::start();
    let console = free_port();
    let p = start_proxy_with(
        name,
        &format!(
            "authenticate = \"optional\"\nhosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
             [console]\nlisten = \"127.0.0.1:{console}\""
        ),
        &school,
    );
    (p, console, origin)
}

/// Tom searches for something the risk library grades 5: the capture's id, once stored.
fn toms_capture(p: &Proxy, origin: &Origin, words: &str) -> i64 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-x",
            &format!("http://127.0.0.1:{}", p.port),
            "--proxy-user",
            &format!("tom.lewis:{PASSWORD}"),
            &format!(
                "http://www.google.co.uk:{}/search?q={}",
                origin.port,
                words.replace(' ', "+")
            ),
        ])
        .output()
        .expect("curl");
    assert!(out.status.success());
    for _ in 0..100 {
        let found = ok(&haven(&p.data, &["monitor", "captures", "--json"]));
        if let Some(id) = found
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|c| c["text"] == words)
            .and_then(|c| c["id"].as_i64())
        {
            return id;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no capture of {words:?}");
}

/// What must never be read out of the audit log: the capture's words, the DSL's reason, and
/// the pupil's name and user name.
#[track_caller]
fn holds_no_safeguarding_text(what: &str, text: &str) {
    for secret in [
        "k1ll",
        "myself",
        "PSHE",
        "researching",
        "tom.lewis",
        "Lewis",
    ] {
        assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
    }
}

#[test]
fn the_audit_log_never_shows_a_dismissed_captures_words_reason_or_pupil() {
    let (p, console, origin) = server("audit-leak");
    let id = toms_capture(&p, &origin, "how do i k1ll myself");

    // The DSL opens the capture and dismisses it with a reason.
    let dsl = sign_in(console, "priya.shah");
    let (status, _, page) = http(console, "GET", &format!("/triage/{id}"), &dsl, None, &[]);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("k1ll"), "the DSL sees the capture");
    let form = format!(
        "csrf={}&decision=dismiss&reason=pupil+was+researching+for+PSHE",
        csrf(&page)
    );
    let (status, head, _) = http(
        console,
        "POST",
        &format!("/triage/{id}"),
        &dsl,
        Some(&form),
        &[],
    );
    assert_eq!(status, 303, "{head}");

    // The administrator reads the audit log page, and the API with a read-only token.
    let admin = sign_in(console, "sam.idris");
    let (status, _, page) = http(console, "GET", "/audit", &admin, None, &[]);
    assert_eq!(status, 200, "{page}");
    holds_no_safeguarding_text("the audit page", &page);
    assert!(
        page.contains(&format!("capture {id}")),
        "the entries still name the capture by its id:\n{page}"
    );
    let (_, _, tokens) = http(console, "GET", "/tokens", &admin, None, &[]);
    let form = format!(
        "csrf={}&name=audit+export&scope=read&days=30",
        csrf(&tokens)
    );
    let (status, _, made) = http(console, "POST", "/tokens", &admin, Some(&form), &[]);
    assert_eq!(status, 200, "{made}");
    let token = between(&made, "<code id=\"new-token\">", "</code>").to_owned();
    let bearer = format!("Bearer {token}");
    let (status, _, api) = http(
        console,
        "GET",
        "/api/v1/audit",
        "",
        None,
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 200, "{api}");
    holds_no_safeguarding_text("the audit API", &api);

    // The DPO reads the page too.
    let dpo = sign_in(console, "dev.mistry");
    let (status, _, page) = http(console, "GET", "/audit", &dpo, None, &[]);
    assert_eq!(status, 200, "{page}");
    holds_no_safeguarding_text("the DPO's audit page", &page);

    // And from the command line.
    let cli = ok(&haven(&p.data, &["audit", "log", "--limit", "200"]));
    holds_no_safeguarding_text("haven audit log", &cli);
    let json = ok(&haven(
        &p.data,
        &["audit", "log", "--limit", "200", "--json"],
    ));
    holds_no_safeguarding_text("haven audit log --json", &json);

    // Every one of those reads is itself in the log.
    let log: Vec<serde_json::Value> = json
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let reads = |actor: &str| {
        log.iter()
            .filter(|e| e["action"] == "read audit log" && e["actor"].as_str() == Some(actor))
            .count()
    };
    assert!(reads("sam.idris") >= 2, "the page and the API:\n{json}");
    assert_eq!(reads("dev.mistry"), 1, "{json}");
    assert!(
        log.iter().any(|e| e["action"] == "read audit log"
            && e["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("cli:") && a.contains("(uid "))),
        "the first command-line read is in the second's output:\n{json}"
    );
}

/// Changes the `detail` of audit entry `id` and recomputes the unkeyed SHA-256 chain from
/// there onward, as someone with the database file (and Haven's source) could.
fn rewrite_chain_from(data: &Path, id: i64, detail: &str) {
    let db = data.join("haven.db");
    let rows = Command::new("sqlite3")
        .arg(&db)
        .arg("-json")
        .arg("SELECT id, at, actor, address, action, subject, detail, prev_hash FROM audit ORDER BY id")
        .output()
        .expect("sqlite3");
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&rows.stdout).expect("sqlite3 -json");
    let mut prev: Option<String> = None;
    let mut sql = String::from("BEGIN;\n");
    for r in rows {
        let this = r["id"].as_i64().expect("id");
        if this < id {
            continue;
        }
        let prev_hash = prev
            .clone()
            .unwrap_or_else(|| r["prev_hash"].as_str().expect("prev").to_owned());
        let detail = if this == id {
            detail.to_owned()
        } else {
            r["detail"].as_str().expect("detail").to_owned()
        };
        let fields = serde_json::json!([
            prev_hash,
            r["at"],
            r["actor"],
            r["address"],
            r["action"],
            r["subject"],
            detail
        ]);
        let hash: String = ring_free_sha256(fields.to_string().as_bytes());
        sql.push_str(&format!(
            "UPDATE audit SET detail = '{}', prev_hash = '{prev_hash}', hash = '{hash}' WHERE id = {this};\n",
            detail.replace('\'', "''")
        ));
        prev = Some(hash);
    }
    sql.push_str("COMMIT;\n");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(&sql)
        .output()
        .expect("sqlite3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// SHA-256 in hex, by `sha256sum` (what an attacker has on any box).
fn ring_free_sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_owned()
}

/// Some audit entries made from the command line (networks set and removed).
fn some_entries(data: &Path, n: usize) {
    for i in 0..n {
        ok(&haven(
            data,
            &[
                "networks",
                "set",
                &format!("10.9.{i}.0/24"),
                "--group",
                "ks2",
            ],
        ));
    }
}

#[test]
fn an_audit_row_edited_and_the_unkeyed_chain_recomputed_is_caught() {
    let dir = scratch("audit-rechain");
    let data = dir.join("data");
    some_entries(&data, 4);
    ok(&haven(&data, &["audit", "verify"]));
    let second = 2;
    rewrite_chain_from(&data, second, "nothing happened here");
    let edited = Command::new("sqlite3")
        .arg(data.join("haven.db"))
        .arg(format!("SELECT detail FROM audit WHERE id = {second}"))
        .output()
        .expect("sqlite3");
    assert_eq!(
        String::from_utf8_lossy(&edited.stdout).trim(),
        "nothing happened here",
        "the row was rewritten"
    );
    let out = haven(&data, &["audit", "verify"]);
    fails(&out);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("BROKEN at entry {second}")),
        "{said}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_anchor_kept_off_the_box_catches_a_later_rewrite() {
    let dir = scratch("audit-anchor");
    let data = dir.join("data");
    some_entries(&data, 3);
    let anchor = ok(&haven(&data, &["audit", "anchor"]));
    let anchor = anchor.trim();
    assert!(!anchor.is_empty());
    // Untouched, and with more entries since, the chain still holds the anchor.
    some_entries(&data, 1);
    ok(&haven(&data, &["audit", "verify", "--anchor", anchor]));
    // An anchor with its entry changed (its code no longer fits) is refused.
    let id = between(anchor, "id=", " ");
    let forged = anchor.replacen(&format!("id={id} "), "id=1 ", 1);
    assert_ne!(forged, anchor);
    fails(&haven(&data, &["audit", "verify", "--anchor", &forged]));
    // Someone with the box (and so its key) deletes every entry and lets Haven write a fresh
    // chain: the chain checks out by itself, but no longer holds the anchor kept elsewhere.
    let out = Command::new("sqlite3")
        .arg(data.join("haven.db"))
        .arg("DELETE FROM audit")
        .output()
        .expect("sqlite3");
    assert!(out.status.success());
    some_entries(&data, 5);
    ok(&haven(&data, &["audit", "verify"]));
    let out = haven(&data, &["audit", "verify", "--anchor", anchor]);
    fails(&out);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_token_revoked_from_the_command_line_is_refused_at_once() {
    let (p, console, _origin) = server("audit-token-cli");
    let token = ok(&haven(
        &p.data,
        &[
            "tokens",
            "create",
            "--user",
            "owen.price",
            "--name",
            "agent",
            "--scope",
            "ingest",
            "--days",
            "7",
        ],
    ))
    .trim()
    .to_owned();
    let bearer = format!("Bearer {token}");
    let me = |bearer: &str| {
        http(
            console,
            "GET",
            "/api/v1/me",
            "",
            None,
            &[("Authorization", bearer)],
        )
    };
    let (status, _, body) = me(&bearer);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"scope\":\"ingest\""), "{body}");
    // An ingestion token reads no events.
    let (status, _, body) = http(
        console,
        "GET",
        "/api/v1/events",
        "",
        None,
        &[("Authorization", &bearer)],
    );
    assert_eq!(status, 403, "{body}");
    let list = ok(&haven(&p.data, &["tokens", "list", "--json"]));
    let listed: serde_json::Value =
        serde_json::from_str(list.lines().next().expect("a token")).expect("json");
    assert_eq!(listed["name"], "agent");
    assert!(!list.contains(&token), "the list never shows a token");
    let id = listed["id"].as_i64().expect("id").to_string();
    ok(&haven(&p.data, &["tokens", "revoke", &id]));
    let (status, _, body) = me(&bearer);
    assert_eq!(status, 401, "a revoked token still works: {body}");
    fails(&haven(&p.data, &["tokens", "revoke", &id]));
    fails(&haven(
        &p.data,
        &[
            "tokens",
            "create",
            "--user",
            "owen.price",
            "--name",
            "x",
            "--scope",
            "everything",
        ],
    ));
}
