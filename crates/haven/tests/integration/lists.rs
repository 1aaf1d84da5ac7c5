//! Lists, the policy tester and the policy, through the real binary.

use super::*;

fn ut1() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/ut1");
    if p.is_dir() {
        Some(p)
    } else {
        eprintln!("skipped: {} is not present", p.display());
        None
    }
}

#[test]
fn a_new_user_imports_ut1_and_checks_a_gambling_site() {
    let Some(ut1) = ut1() else { return };
    let data = scratch("ut1");
    let out = ok(&haven(
        &data,
        &["lists", "import", ut1.to_str().expect("path")],
    ));
    assert!(out.contains("ut1: "), "{out}");
    assert!(
        out.contains("CC BY-SA 4.0"),
        "UT1 attribution is shown: {out}"
    );
    let gambling = std::fs::read_to_string(ut1.join("gambling/domains")).expect("gambling list");
    let domain = gambling
        .lines()
        .find(|l| l.contains("casino"))
        .expect("a casino domain");
    let v = check(&data, &format!("https://www.{domain}/"), "ks2", &[]);
    assert_eq!(v["action"], "block");
    assert_eq!(v["categories"][0]["id"], "gambling");
    assert_eq!(v["rule"], "groups.ks2.categories.gambling");
    assert!(
        v["sources"]
            .as_array()
            .expect("sources")
            .iter()
            .any(|s| s == "ut1/gambling/domains"),
        "{v}"
    );
    assert!(
        v["reason"].as_str().expect("reason").contains("Gambling"),
        "{v}"
    );
    // UT1 files Internet Matters (online safety for parents) under games and Missing People
    // (116 000 for runaways) under celebrity; Haven's always-reachable list wins for every
    // pupil group.
    let games = std::fs::read_to_string(ut1.join("games/domains")).expect("games list");
    assert!(
        games.lines().any(|l| l == "internetmatters.org"),
        "UT1 changed"
    );
    for group in ["ks2", "ks1", "eyfs"] {
        for site in [
            "https://www.internetmatters.org/",
            "https://www.missingpeople.org.uk/",
        ] {
            let v = check(&data, site, group, &[]);
            assert_eq!(v["action"], "allow", "{site} {group}: {v}");
            assert_eq!(v["rule"], "always-reachable", "{v}");
        }
    }
    // Haven's own bypass list is a source of the snapshot: a dynamic-DNS name UT1 lacks.
    let v = check(&data, "https://home.dynv6.com/", "ks2", &[]);
    assert_eq!(v["action"], "block", "{v}");
    assert_eq!(v["rule"], "groups.ks2.categories.dynamic-dns", "{v}");
    // The same site for staff is blocked too (gambling), a social network is only warned in the day.
    assert_eq!(
        check(&data, "https://facebook.com/", "staff", &[])["action"],
        "warn"
    );
    assert_eq!(
        check(&data, "https://facebook.com/", "ks2", &[])["action"],
        "block"
    );
    // Text output names the rule and the source for a network manager.
    let text = ok(&haven(
        &data,
        &[
            "check",
            domain,
            "--group",
            "ks2",
            "--at",
            "2026-11-23 10:00",
        ],
    ));
    assert!(text.starts_with("BLOCK"), "{text}");
    assert!(
        text.contains("rule:      groups.ks2.categories.gambling"),
        "{text}"
    );
    let info = json(&haven(&data, &["lists", "info", "--json"]));
    let cats = info["categories"].as_array().expect("categories");
    let entries = |id: &str| {
        cats.iter()
            .find(|c| c["id"] == id)
            .map(|c| c["entries"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(entries("gambling") > 30_000, "{info}");
    assert!(entries("pornography") > 1_000, "adult URLs: {info}");
    assert!(info["hosts"].as_u64().expect("hosts") > 500_000);
    assert!(
        cats.iter()
            .all(|c| !c["id"].as_str().unwrap_or("").starts_with("ut1:")),
        "every UT1 folder maps"
    );
    let _ = std::fs::remove_dir_all(&data);
}

/// A small squidGuard-style tree: a known category, an unknown one, a URL list, an expression.
fn write_tree(root: &Path) {
    let put = |p: &str, text: &str| {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    put(
        "blacklists/gambling/domains",
        "bet-demo.example\nwww.casino-demo.example\n",
    );
    put("blacklists/gambling/urls", "news-demo.example/betting/\n");
    put("blacklists/stargazing/domains", "stars-demo.example\n");
    put("blacklists/ads/expressions", "(/banner/|/sponsor/)\n");
}

fn tar_gz(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    write_tree(&tree);
    let archive = dir.join("lists.tar.gz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(&tree)
        .arg("blacklists")
        .status()
        .expect("tar");
    assert!(status.success());
    archive
}

#[test]
fn tar_gz_tree_keeps_unknown_categories_under_their_own_name() {
    let dir = scratch("targz");
    let archive = tar_gz(&dir);
    let data = dir.join("data");
    let v = json(&haven(
        &data,
        &[
            "lists",
            "import",
            archive.to_str().expect("p"),
            "--name",
            "mini",
            "--json",
        ],
    ));
    let files = v["sources"][0]["files"].as_array().expect("files");
    assert_eq!(files.len(), 4, "{v}");
    assert!(
        files.iter().any(|f| f["category"] == "mini:stargazing"),
        "unknown folder kept: {v}"
    );
    assert!(files.iter().any(|f| f["category"] == "gambling"));
    assert_eq!(
        check(&data, "http://www.bet-demo.example/", "ks2", &[])["action"],
        "block"
    );
    assert_eq!(
        check(&data, "casino-demo.example", "ks2", &[])["action"],
        "block"
    );
    let v = check(&data, "https://NEWS-demo.example//betting/odds", "ks2", &[]);
    assert_eq!(
        v["action"], "block",
        "URL entry with doubled slash and case: {v}"
    );
    assert_eq!(v["list_entry"], "news-demo.example/betting/");
    assert_eq!(
        check(&data, "https://news-demo.example/sport", "ks2", &[])["action"],
        "allow"
    );
    let v = check(&data, "stars-demo.example", "ks2", &[]);
    assert_eq!(v["categories"][0]["id"], "mini:stargazing");
    assert_eq!(
        v["action"], "allow",
        "unknown categories take the group default"
    );
    let v = check(
        &data,
        "http://anything.example/img/banner/1.gif",
        "ks2",
        &[],
    );
    assert_eq!(v["action"], "block", "expression rule: {v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_lists_with_bad_lines_and_the_illegal_invariant() {
    let dir = scratch("single");
    let data = dir.join("data");
    let hosts = dir.join("ads.hosts");
    std::fs::write(&hosts, "# ad servers\n127.0.0.1 localhost\n0.0.0.0 ads-demo.example tracker-demo.example\nthis line is wrong\n0.0.0.0 bad..name\n").expect("w");
    let out = ok(&haven(
        &data,
        &[
            "lists",
            "import",
            hosts.to_str().expect("p"),
            "--format",
            "hosts",
            "--category",
            "ads",
        ],
    ));
    assert!(out.contains("2 entries from 1 files, 2 bad lines"), "{out}");
    assert!(
        out.contains(
            "ads/ads.hosts:4: hosts line does not start with an IP address: this line is wrong"
        ),
        "{out}"
    );
    assert!(
        out.contains("ads/ads.hosts:5: invalid label in host name: 0.0.0.0 bad..name"),
        "{out}"
    );
    assert_eq!(
        check(&data, "tracker-demo.example", "ks2", &[])["action"],
        "block"
    );

    import_list(
        &dir,
        &data,
        "dating.txt",
        "date-demo.example\n\u{feff}\nBÜCHER-DATE.example\n",
        "dating",
    );
    assert_eq!(
        check(&data, "xn--bcher-date-9db.example", "ks2", &[])["action"],
        "block",
        "IDN entry matched in punycode"
    );
    assert_eq!(
        check(&data, "ads-demo.example", "ks2", &[])["action"],
        "block",
        "earlier source still registered"
    );

    let iwf = dir.join("iwf.txt");
    std::fs::write(
        &iwf,
        "http://abuse-demo.example/images/1\nhttps://whole-demo.example/\n",
    )
    .expect("w");
    ok(&haven(
        &data,
        &[
            "lists",
            "import",
            iwf.to_str().expect("p"),
            "--format",
            "iwf",
        ],
    ));
    for group in ["ks2", "staff", "guest"] {
        let v = check(&data, "http://abuse-demo.example/images/1?x", group, &[]);
        assert_eq!(v["action"], "block");
        assert_eq!(v["rule"], "illegal list iwf");
    }
    // A policy that would allow an IWF entry fails `policy check`, naming the rule.
    let policy = dir.join("policy.toml");
    let text = format!(
        "{}\n[[allow]]\nname = \"Whole site\"\nsites = [\"whole-demo.example/page\"]\n",
        haven_default_policy(&data)
    );
    std::fs::write(&policy, text).expect("w");
    let err = fails(&haven(
        &data,
        &["policy", "check", policy.to_str().expect("p")],
    ));
    assert!(err.contains("allow[2] \"Whole site\""), "{err}");
    assert!(err.contains("iwf list"), "{err}");
    // The filter itself never depends on it (issue 12): the list wins, and the rule is named.
    let out = haven(
        &data,
        &[
            "check",
            "https://whole-demo.example/page",
            "--group",
            "ks2",
            "--json",
            "--policy",
            policy.to_str().expect("p"),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("cannot be overridden"), "{err}");
    assert!(err.contains("allow[2] \"Whole site\""), "{err}");
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v["action"], "block", "{v}");
    assert_eq!(v["rule"], "illegal list iwf", "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn haven_default_policy(data: &Path) -> String {
    ok(&haven(data, &["policy", "init", "--force"]));
    let text = std::fs::read_to_string(data.join("policy.toml")).expect("policy");
    std::fs::remove_file(data.join("policy.toml")).expect("rm");
    text
}

#[test]
fn a_corrupt_snapshot_is_refused_and_the_previous_one_stays_in_force() {
    let dir = scratch("corrupt");
    let data = dir.join("data");
    let list = dir.join("games.txt");
    import_list(&dir, &data, "games.txt", "game-one.example\n", "games");
    std::fs::write(&list, "game-one.example\ngame-two.example\n").expect("w");
    ok(&haven(&data, &["lists", "update"]));
    assert_eq!(
        check(&data, "game-two.example", "ks2", &[])["action"],
        "block"
    );
    // Flip a byte in the snapshot in force.
    let snap = data.join("lists/snapshot.hvn");
    let mut bytes = std::fs::read(&snap).expect("snapshot");
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&snap, &bytes).expect("w");
    let out = haven(
        &data,
        &["check", "game-one.example", "--group", "ks2", "--json"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("checksum mismatch"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v["action"], "block", "the previous snapshot still answers");
    assert_eq!(
        check(&data, "game-two.example", "ks2", &[])["action"],
        "allow",
        "…and it is the previous one"
    );
    let info = ok(&haven(&data, &["lists", "info"]));
    assert!(
        info.contains("WARNING: the current snapshot was refused"),
        "{info}"
    );
    // Truncate the previous one too: now a clear error.
    let prev = data.join("lists/snapshot.hvn.prev");
    let bytes = std::fs::read(&prev).expect("prev");
    std::fs::write(&prev, &bytes[..bytes.len() / 2]).expect("w");
    let err = fails(&haven(
        &data,
        &["check", "game-one.example", "--group", "ks2"],
    ));
    assert!(err.contains("checksum mismatch"), "{err}");
    // With the current one gone altogether, the previous one is used, and says so.
    let snap_bytes = std::fs::read(&snap).expect("snapshot");
    std::fs::remove_file(&snap).expect("rm");
    std::fs::write(&prev, &bytes).expect("restore prev");
    let out = haven(&data, &["check", "game-one.example", "--group", "ks2"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing"),
        "{out:?}"
    );
    assert!(ok(&out).starts_with("BLOCK"));
    std::fs::write(&snap, snap_bytes).expect("restore");
    // A fresh import repairs it.
    ok(&haven(&data, &["lists", "update"]));
    assert_eq!(
        check(&data, "game-two.example", "ks2", &[])["action"],
        "block"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_import_changes_nothing() {
    let dir = scratch("failed");
    let data = dir.join("data");
    let list = dir.join("chat.txt");
    import_list(&dir, &data, "chat.txt", "chat-demo.example\n", "chat");
    let before = std::fs::read(data.join("lists/snapshot.hvn")).expect("snapshot");
    let registry = std::fs::read(data.join("lists/sources.toml")).expect("registry");
    let err = fails(&haven(
        &data,
        &["lists", "import", dir.join("missing").to_str().expect("p")],
    ));
    assert!(err.contains("no such file or directory"), "{err}");
    let err = fails(&haven(
        &data,
        &[
            "lists",
            "import",
            list.to_str().expect("p"),
            "--category",
            "gamblin",
        ],
    ));
    assert!(err.contains("not a Haven category"), "{err}");
    let err = fails(&haven(
        &data,
        &["lists", "import", "http://127.0.0.1:9/none.tar.gz"],
    ));
    assert!(err.contains("127.0.0.1:9"), "{err}");
    assert_eq!(
        std::fs::read(data.join("lists/snapshot.hvn")).expect("snapshot"),
        before
    );
    assert_eq!(
        std::fs::read(data.join("lists/sources.toml")).expect("registry"),
        registry
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_policies_never_replace_the_defaults_silently() {
    let dir = scratch("policy");
    let data = dir.join("data");
    ok(&haven(&data, &["policy", "init"]));
    let err = fails(&haven(&data, &["policy", "init"]));
    assert!(err.contains("already exists"), "{err}");
    let path = data.join("policy.toml");
    let text = std::fs::read_to_string(&path).expect("policy");
    std::fs::write(
        &path,
        text.replace("gambling = \"block\"", "gambling = \"blocked\""),
    )
    .expect("w");
    let err = fails(&haven(&data, &["check", "x.example", "--group", "ks2"]));
    assert!(
        err.contains("groups.ks2.categories.gambling: \"blocked\" is not an action"),
        "{err}"
    );
    std::fs::write(
        &path,
        text.replace("school = ", "colour = \"red\"\nschool = "),
    )
    .expect("w");
    let err = fails(&haven(&data, &["policy", "check"]));
    assert!(err.contains("unknown field `colour`"), "{err}");
    std::fs::write(&path, &text).expect("w");
    let out = ok(&haven(&data, &["policy", "check"]));
    assert!(out.starts_with("policy OK"), "{out}");
    let err = fails(&haven(&data, &["check", "x.example", "--group", "year9"]));
    assert!(err.contains("no such group"), "{err}");
    let err = fails(&haven(&data, &["check", "exa mple.com", "--group", "ks2"]));
    assert!(err.contains("not a URL or domain"), "{err}");
    let err = fails(&haven(
        &data,
        &["check", "x.example", "--group", "ks2", "--at", "tuesday"],
    ));
    assert!(err.contains("--at"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn data_dir_from_the_environment_and_batch_mode() {
    let dir = scratch("env");
    let data = dir.join("data");
    let list = dir.join("g.txt");
    std::fs::write(&list, "bet-demo.example\n").expect("w");
    let status = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args([
            "lists",
            "import",
            list.to_str().expect("p"),
            "--category",
            "gambling",
        ])
        .env("HAVEN_DATA_DIR", &data)
        .stdout(Stdio::null())
        .status()
        .expect("run");
    assert!(status.success());
    assert!(
        data.join("lists/snapshot.hvn").is_file(),
        "HAVEN_DATA_DIR was used"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .args([
            "check",
            "--batch",
            "--group",
            "ks2",
            "--at",
            "2026-11-23T10:00",
        ])
        .env("HAVEN_DATA_DIR", &data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"http://www.bet-demo.example/x 10.0.0.1/- - GET\nhttp://fine.example/ 10.0.0.1/- - GET\nbet-demo.example:443 10.0.0.1/- - CONNECT\nhttp://[bad/ 10.0.0.1/- - GET\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines[0], "OK status=302 url=http://haven.invalid/blocked");
    assert_eq!(lines[1], "ERR");
    assert_eq!(lines[2], "OK status=302 url=http://haven.invalid/blocked");
    assert_eq!(
        lines[3], "OK status=302 url=http://haven.invalid/blocked",
        "unreadable requests fail closed"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves one body over plain HTTP on loopback: the first request is redirected, the second served.
pub(crate) fn serve_http(body: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    (port, serve_http_on(listener, body))
}

/// As [`serve_http`], on a listener the caller bound (so a second body can follow on the same
/// port, through a clone of it).
pub(crate) fn serve_http_on(listener: TcpListener, body: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for (i, stream) in listener.incoming().take(2).enumerate() {
            let mut s = stream.expect("accept");
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            if i == 0 {
                let _ = s.write_all(b"HTTP/1.1 302 Found\r\nLocation: /lists/real.tar.gz\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            } else {
                assert!(
                    String::from_utf8_lossy(&req).starts_with("GET /lists/real.tar.gz "),
                    "redirect followed"
                );
                let _ = s.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .as_bytes(),
                );
                let _ = s.write_all(&body);
            }
        }
    })
}

#[test]
fn imports_over_http_and_https() {
    let dir = scratch("http");
    let archive = tar_gz(&dir);
    let body = std::fs::read(&archive).expect("archive");
    let data = dir.join("data");
    let (port, server) = serve_http(body);
    let url = format!("http://127.0.0.1:{port}/lists/latest");
    let out = ok(&haven(
        &data,
        &["lists", "import", &url, "--name", "mirror"],
    ));
    assert!(out.contains("mirror: 5 entries from 4 files"), "{out}");
    server.join().expect("server");
    assert_eq!(
        check(&data, "bet-demo.example", "ks2", &[])["action"],
        "block"
    );

    // HTTPS with a certificate made here and trusted through --ca-file.
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped https: openssl is not installed");
        return;
    }
    let www = dir.join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    std::fs::copy(&archive, www.join("lists.tar.gz")).expect("copy");
    let (ca, cert, key) = make_certs(&dir);
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-WWW", "-accept"])
        .arg(port.to_string())
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .current_dir(&www)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let url = format!("https://127.0.0.1:{port}/lists.tar.gz");
    let mut last = None;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Without trusting the school's CA the download is refused, and nothing changes.
    let err = fails(&haven(
        &data,
        &["lists", "import", &url, "--name", "secure"],
    ));
    assert!(err.contains("TLS"), "{err}");
    for _ in 0..3 {
        let out = haven(
            &data,
            &[
                "lists",
                "import",
                &url,
                "--name",
                "secure",
                "--ca-file",
                ca.to_str().expect("p"),
            ],
        );
        if out.status.success() {
            last = Some(String::from_utf8_lossy(&out.stdout).into_owned());
            break;
        }
        eprintln!("retrying: {}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let _ = server.kill();
    let _ = server.wait();
    let out = last.expect("https import succeeded");
    assert!(out.contains("secure: 5 entries from 4 files"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
