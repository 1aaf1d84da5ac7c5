//! The DNS filter as a person meets it: `haven serve` on loopback, `dig` from addresses that stand
//! for the pupil, staff and guest networks, and a fake upstream resolver started here.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use haven_dns::wire::{self, rcode, Reply};

use super::*;

/// What the fake upstream knows.
fn upstream_answer(msg: &[u8], tcp: bool, counted: &AtomicUsize) -> Option<Vec<u8>> {
    let q = wire::parse_query(msg).ok()?;
    let reply = Reply::to(&q);
    let out = match q.name.as_str() {
        "allowed.example" => reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 1)),
        "counted.example" => {
            counted.fetch_add(1, Ordering::SeqCst);
            reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 4))
        }
        // An innocent-looking name whose answer leads to a listed one.
        "alias.example" => reply.cname(&q.name, 300, "cdn.bet365.com").a(
            "cdn.bet365.com",
            300,
            Ipv4Addr::new(192, 0, 2, 2),
        ),
        "tcp-only.example" if !tcp => {
            let mut m = reply.build();
            m[2] |= 0x02; // TC: ask again over TCP
            return Some(m);
        }
        "tcp-only.example" => reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 3)),
        "big.example" => (0..40u8).fold(reply, |r, i| {
            r.a(&q.name, 300, Ipv4Addr::new(198, 51, 100, i))
        }),
        // Far more than 1,232 bytes (about 2,800), sent over UDP whatever the asker advertised.
        "huge.example" => (0..100u8).fold(reply, |r, i| {
            r.a(&q.name, 300, Ipv4Addr::new(198, 51, 100, i))
        }),
        "forcesafesearch.google.com" => reply.a(&q.name, 300, Ipv4Addr::new(216, 239, 38, 120)),
        "facebook.com" => reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 5)),
        // Support services (Haven's always-reachable list) and one a list also names.
        "www.internetmatters.org" | "www.childline.org.uk" | "www.kooth.com" => {
            reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 7))
        }
        "slow.example" => {
            counted.fetch_add(1, Ordering::SeqCst);
            // Slow enough for five askers to arrive meanwhile, well inside the servers'
            // 300 ms upstream timeout even on a loaded machine.
            std::thread::sleep(Duration::from_millis(150));
            reply.a(&q.name, 300, Ipv4Addr::new(192, 0, 2, 6))
        }
        _ => reply.rcode(rcode::NXDOMAIN),
    };
    Some(out.build())
}

pub(crate) struct Upstream {
    pub(crate) port: u16,
    pub(crate) counted: Arc<AtomicUsize>,
}

pub(crate) fn start_upstream() -> Upstream {
    // One port for UDP and TCP: the TCP side of a free UDP port may be some other test's
    // connection, so try again until both are ours.
    let (udp, port, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind upstream");
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            break (udp, port, tcp);
        }
    };
    let counted = Arc::new(AtomicUsize::new(0));
    let c = counted.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let udp = Arc::new(udp);
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let (msg, udp, c) = (buf[..n].to_vec(), udp.clone(), c.clone());
            std::thread::spawn(move || {
                if let Some(reply) = upstream_answer(&msg, false, &c) {
                    let _ = udp.send_to(&reply, peer);
                }
            });
        }
    });
    let c = counted.clone();
    std::thread::spawn(move || {
        for stream in tcp.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut len = [0u8; 2];
            if s.read_exact(&mut len).is_err() {
                continue;
            }
            let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
            if s.read_exact(&mut msg).is_err() {
                continue;
            }
            if let Some(reply) = upstream_answer(&msg, true, &c) {
                let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&reply);
                let _ = s.write_all(&framed);
            }
        }
    });
    Upstream { port, counted }
}

pub(crate) fn free_port() -> u16 {
    // A port free for both UDP and TCP, below the kernel's ephemeral range (32768 and up), so
    // that no test's outgoing connection can take it between this check and the server's bind.
    use std::sync::atomic::AtomicU16;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 12;
    loop {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20_000 + (start.wrapping_add(n)) % 12_000;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
}

pub(crate) struct Server {
    pub(crate) child: std::process::Child,
    pub(crate) port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Imports the demo lists into `data`.
pub(crate) fn import_demo_lists(data: &Path) {
    ok(&haven(
        data,
        &[
            "lists",
            "import",
            demo_lists().to_str().expect("p"),
            "--name",
            "demo",
            "--mapping",
            "haven",
        ],
    ));
}

pub(crate) fn demo_lists() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/demo-lists")
}

/// Imports the demo lists and starts `haven serve` with upstreams `first` (a dead one, to test
/// failover) and the fake.
pub(crate) fn start_haven(name: &str, upstream: &Upstream, block: &str) -> (Server, PathBuf) {
    start_haven_with(name, upstream, block, "")
}

pub(crate) fn start_haven_with(
    name: &str,
    upstream: &Upstream,
    block: &str,
    extra: &str,
) -> (Server, PathBuf) {
    let dead = UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let upstreams = format!("[\"127.0.0.1:{dead}\", \"127.0.0.1:{}\"]", upstream.port);
    start_haven_on(name, &upstreams, block, extra)
}

/// Imports the demo lists and starts `haven serve` with the given upstreams line.
pub(crate) fn start_haven_on(
    name: &str,
    upstreams: &str,
    block: &str,
    extra: &str,
) -> (Server, PathBuf) {
    start_haven_prepared(name, upstreams, block, extra, |_, _| {})
}

/// As [`start_haven_on`], with `prepare(dir, data)` run after the demo lists are imported and
/// before the server starts (more lists, say).
pub(crate) fn start_haven_prepared(
    name: &str,
    upstreams: &str,
    block: &str,
    extra: &str,
    prepare: impl FnOnce(&Path, &Path),
) -> (Server, PathBuf) {
    let dir = scratch(name);
    let data = dir.join("data");
    import_demo_lists(&data);
    prepare(&dir, &data);
    let port = free_port();
    // Also on IPv6 loopback where the machine has it (and the port is free there too).
    let listen =
        if UdpSocket::bind(("::1", port)).is_ok() && TcpListener::bind(("::1", port)).is_ok() {
            format!("\"127.0.0.1:{port}\", \"[::1]:{port}\"")
        } else {
            format!("\"127.0.0.1:{port}\"")
        };
    let config = format!(
        "default_group = \"ks2\"\n[dns]\nlisten = [{listen}]\nupstreams = {upstreams}\ntimeout_ms = 300\nblock = \"{block}\"\nblock_page = [\"192.0.2.80\"]\n\
         {extra}\n[proxy]\nlisten = []\n[[networks]]\ncidr = \"127.0.0.2/32\"\ngroup = \"ks2\"\n[[networks]]\ncidr = \"127.0.0.3/32\"\ngroup = \"staff\"\n[[networks]]\ncidr = \"127.0.0.4/32\"\ngroup = \"guest\"\n"
    );
    std::fs::write(data.join("haven.toml"), config).expect("config");
    if block == "block-page" {
        ok(&haven(&data, &["policy", "init"]));
        let policy = std::fs::read_to_string(data.join("policy.toml")).expect("policy");
        let warned = policy.replacen("games = \"block\"", "games = \"warn\"", 1);
        assert_ne!(policy, warned);
        std::fs::write(data.join("policy.toml"), warned).expect("policy");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start haven serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut banner = String::new();
    for line in lines.by_ref().take(2) {
        banner.push_str(&line.expect("banner"));
        banner.push('\n');
    }
    // Keep draining what the server writes, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || BufReader::new(stderr).lines().for_each(drop));
    assert!(
        banner.contains(&format!("udp+tcp 127.0.0.1:{port}")),
        "{banner}"
    );
    (Server { child, port }, dir)
}

pub(crate) fn have_dig() -> bool {
    let found = Command::new("dig").arg("-v").output().is_ok();
    if !found {
        eprintln!(
            "skipped: dig is not installed (Debian package dnsutils; scripts/test installs it)"
        );
    }
    found
}

/// Runs dig from `from` and returns its output.
pub(crate) fn dig(server: &Server, from: &str, name: &str, extra: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            "@127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-b",
            from,
            name,
            "+tries=1",
            "+time=3",
        ])
        .args(extra)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("(none)")
}

#[test]
fn groups_block_and_explain_by_source_address() {
    if !have_dig() {
        return;
    }
    let upstream = start_upstream();
    let (server, dir) = start_haven("dns-groups", &upstream, "nxdomain");
    // A pupil: gambling is blocked, with the reason as an RFC 8914 extended error.
    let out = dig(&server, "127.0.0.2", "www.bet365.com", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(
        out.contains("EDE: 17 (Filtered): (Haven: Gambling (groups.ks2.categories.gambling))"),
        "{out}"
    );
    // Staff are blocked from gambling too, but social networks only warn in the school day, so
    // with NXDOMAIN blocking (no page to click through) they pass.
    assert_eq!(
        status(&dig(&server, "127.0.0.3", "bet365.com", &[])),
        "NXDOMAIN"
    );
    let out = dig(&server, "127.0.0.2", "facebook.com", &[]);
    assert_eq!(
        status(&out),
        "NXDOMAIN",
        "pupils: social networks blocked: {out}"
    );
    let out = dig(&server, "127.0.0.3", "facebook.com", &[]);
    assert_eq!(status(&out), "NOERROR", "staff: {out}");
    assert!(out.contains("192.0.2.5"), "{out}");
    // An address no network names falls to the default (pupil) group: fail closed.
    assert_eq!(
        status(&dig(&server, "127.0.0.9", "bet365.com", &[])),
        "NXDOMAIN"
    );
    // Allowed names are forwarded (past a dead first upstream) and answered.
    let out = dig(&server, "127.0.0.2", "allowed.example", &[]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("192.0.2.1"), "{out}");
    assert_eq!(
        status(&dig(&server, "127.0.0.2", "nowhere.example", &[])),
        "NXDOMAIN"
    );
    // DoH resolvers are blocked for pupils; the Firefox canary and Private Relay for everyone.
    assert_eq!(
        status(&dig(&server, "127.0.0.2", "dns.google", &[])),
        "NXDOMAIN"
    );
    for canary in [
        "use-application-dns.net",
        "mask.icloud.com",
        "mask-h2.icloud.com",
    ] {
        assert_eq!(
            status(&dig(&server, "127.0.0.3", canary, &[])),
            "NXDOMAIN",
            "{canary}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn support_services_are_always_reachable_and_bypass_services_are_not() {
    if !have_dig() {
        return;
    }
    let upstream = start_upstream();
    let upstreams = format!("[\"127.0.0.1:{}\"]", upstream.port);
    let (server, dir) =
        start_haven_prepared("dns-kept", &upstreams, "nxdomain", "", |dir, data| {
            // As UT1 has it: an online-safety charity for parents filed under games.
            import_list(
                dir,
                data,
                "games.txt",
                "internetmatters.org\nchildline.org.uk\n",
                "games",
            );
            // A name on Haven's always-reachable list that an illegal list also names: the
            // illegal list wins (as if someone had added an IWF-listed name to the list).
            let iwf = dir.join("iwf.txt");
            std::fs::write(&iwf, "https://www.kooth.com/\n").expect("write");
            ok(&haven(
                data,
                &[
                    "lists",
                    "import",
                    iwf.to_str().expect("p"),
                    "--format",
                    "iwf",
                ],
            ));
        });
    // Every pupil group reaches the support services, though a list blocks games for them.
    for name in ["www.internetmatters.org", "www.childline.org.uk"] {
        for from in ["127.0.0.2", "127.0.0.4", "127.0.0.9"] {
            let out = dig(&server, from, name, &[]);
            assert_eq!(status(&out), "NOERROR", "{name} from {from}: {out}");
            assert!(out.contains("192.0.2.7"), "{out}");
        }
    }
    // The IWF-listed name stays blocked for everyone.
    for from in ["127.0.0.2", "127.0.0.3"] {
        let out = dig(&server, from, "www.kooth.com", &[]);
        assert_eq!(status(&out), "NXDOMAIN", "{out}");
        assert!(out.contains("illegal list iwf"), "{out}");
    }
    // Bypass services beyond UT1, one of each kind, blocked for pupils with their category.
    for (name, category) in [
        ("psiphon.ca", "vpn-proxy"),
        ("www.croxyproxy.com", "vpn-proxy"),
        ("bridges.torproject.org", "vpn-proxy"),
        ("parsec.app", "remote-access"),
        ("my-home-pc.duckdns.org", "dynamic-dns"),
        ("dns.nextdns.io", "doh"),
    ] {
        let out = dig(&server, "127.0.0.2", name, &[]);
        assert_eq!(status(&out), "NXDOMAIN", "{name}: {out}");
        assert!(
            out.contains(&format!("(groups.ks2.categories.{category})")),
            "{name}: {out}"
        );
    }
    let explained = ok(&haven(
        &dir.join("data"),
        &[
            "check",
            "https://www.internetmatters.org/",
            "--group",
            "ks2",
        ],
    ));
    assert!(explained.contains("always-reachable"), "{explained}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cname_chains_safe_search_tcp_and_truncation() {
    if !have_dig() {
        return;
    }
    let upstream = start_upstream();
    let (server, dir) = start_haven("dns-cname", &upstream, "nxdomain");
    // The answer for an allowed name leads to a blocked one: blocked.
    let out = dig(&server, "127.0.0.2", "alias.example", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("via CNAME cdn.bet365.com"), "{out}");
    // Safe search by CNAME, with the target's address.
    let out = dig(&server, "127.0.0.2", "www.google.co.uk", &[]);
    assert!(
        out.contains("www.google.co.uk.\t300\tIN\tCNAME\tforcesafesearch.google.com."),
        "{out}"
    );
    assert!(out.contains("216.239.38.120"), "{out}");
    // Every name DuckDuckGo documents for enforcing safe search on a network (and its
    // no-JavaScript page) is sent to safe.duckduckgo.com.
    for name in [
        "duckduckgo.com",
        "www.duckduckgo.com",
        "start.duckduckgo.com",
        "html.duckduckgo.com",
    ] {
        let out = dig(&server, "127.0.0.2", name, &[]);
        let cname = format!("{name}. 300 IN CNAME safe.duckduckgo.com.");
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == cname),
            "{name}: {out}"
        );
    }
    // Over TCP too.
    let out = dig(&server, "127.0.0.2", "bet365.com", &["+tcp"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(out.contains("(TCP)"), "{out}");
    // The upstream truncates over UDP: Haven asks again over TCP.
    let out = dig(&server, "127.0.0.2", "tcp-only.example", &[]);
    assert!(out.contains("192.0.2.3"), "{out}");
    // An answer too big for a client without EDNS: truncated, and dig retries over TCP.
    let out = dig(&server, "127.0.0.2", "big.example", &["+noedns"]);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("198.51.100.39"), "{out}");
    // Answers are cached: the upstream hears the question once.
    for _ in 0..3 {
        assert!(dig(&server, "127.0.0.3", "counted.example", &[]).contains("192.0.2.4"));
    }
    assert_eq!(upstream.counted.load(Ordering::SeqCst), 1, "cached");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn block_page_mode_and_malformed_packets() {
    if !have_dig() {
        return;
    }
    let upstream = start_upstream();
    let (server, dir) = start_haven("dns-page", &upstream, "block-page");
    let out = dig(&server, "127.0.0.2", "bet365.com", &[]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(
        out.contains("bet365.com.\t\t60\tIN\tA\t192.0.2.80"),
        "{out}"
    );
    // In block-page mode a warning goes to the page, where it can be clicked through (this
    // data directory's policy warns KS2 about games); in NXDOMAIN mode it would pass.
    let out = dig(&server, "127.0.0.2", "roblox.com", &[]);
    assert!(
        out.contains("roblox.com.\t\t60\tIN\tA\t192.0.2.80"),
        "{out}"
    );
    // Garbage never stops the server: short datagrams, a response, a pointer loop.
    let sock = UdpSocket::bind("127.0.0.2:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let target: SocketAddr = (
        "127.0.0.1".parse::<std::net::IpAddr>().expect("ip"),
        server.port,
    )
        .into();
    for junk in [
        &b""[..],
        b"\x00",
        b"\x12\x34\x81\x80",
        &[
            0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1,
        ][..],
    ] {
        sock.send_to(junk, target).expect("send");
    }
    // The pointer loop gets FORMERR with its id.
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("a FORMERR reply");
    assert_eq!(
        (&buf[..2], buf[3] & 0x0F),
        (&[0x12, 0x34][..], rcode::FORMERR),
        "{:?}",
        &buf[..n]
    );
    // A datagram longer than any query (5,000 bytes) is malformed: FORMERR with its id.
    let mut long = vec![0x56, 0x78, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    long.resize(5000, b'a');
    sock.send_to(&long, target).expect("send");
    let (n, _) = sock
        .recv_from(&mut buf)
        .expect("a FORMERR reply to the long datagram");
    assert_eq!(
        (&buf[..2], buf[3] & 0x0F),
        (&[0x56, 0x78][..], rcode::FORMERR),
        "{:?}",
        &buf[..n]
    );
    let out = dig(&server, "127.0.0.2", "allowed.example", &[]);
    assert!(out.contains("192.0.2.1"), "still answering: {out}");
    // IPv6 and IPv4 clients served side by side: each answer reaches its asker. (Both
    // listeners share one thread; their batched receives must not mix up sender addresses.)
    if let Ok(sock6) = UdpSocket::bind("[::1]:0") {
        sock6
            .set_read_timeout(Some(Duration::from_millis(1500)))
            .expect("timeout");
        for round in 0..3u16 {
            let q = wire::build_query(0x6000 + round, "bet365.com", 1).expect("query");
            sock6.send_to(&q, ("::1", server.port)).expect("send v6");
            let (n, from) = sock6.recv_from(&mut buf).expect("an answer over IPv6");
            assert_eq!(from.port(), server.port);
            assert_eq!(
                &buf[..2],
                &(0x6000 + round).to_be_bytes()[..],
                "{:?}",
                &buf[..n]
            );
            let out = dig(&server, "127.0.0.2", "bet365.com", &[]);
            assert!(out.contains("192.0.2.80"), "IPv4 still answered: {out}");
        }
    }
    // Types other than A and AAAA for a blocked name: no data, with the reason.
    let out = dig(&server, "127.0.0.2", "bet365.com", &["TXT"]);
    assert_eq!(status(&out), "NOERROR");
    assert!(out.contains("ANSWER: 0"), "{out}");
    assert!(out.contains("EDE: 17"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends one query from `from` and waits for its answer: (rcode, answer bytes).
pub(crate) fn ask(from: &str, port: u16, name: &str, id: u16) -> Option<(u8, Vec<u8>)> {
    let sock = UdpSocket::bind((from, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(1500)))
        .ok()?;
    sock.send_to(&wire::build_query(id, name, 1).ok()?, ("127.0.0.1", port))
        .ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    Some((buf[3] & 0x0F, buf[..n].to_vec()))
}

pub(crate) fn metrics(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn events_metrics_and_reload_under_load() {
    let upstream = start_upstream();
    let mport = free_port();
    let (server, dir) = start_haven_with(
        "dns-reload",
        &upstream,
        "nxdomain",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{mport}\"\n[events]\nrepeat_window_seconds = 1\n"
        ),
    );
    let data = dir.join("data");
    assert_eq!(
        ask("127.0.0.2", server.port, "bet365.com", 1)
            .expect("answer")
            .0,
        rcode::NXDOMAIN
    );
    assert_eq!(
        ask("127.0.0.2", server.port, "allowed.example", 2)
            .expect("answer")
            .0,
        rcode::NOERROR
    );
    // Queries keep being answered while the lists are reloaded, by SIGHUP and by a file change.
    let port = server.port;
    let load = std::thread::spawn(move || {
        let mut unanswered = 0;
        for i in 0..300u16 {
            if ask("127.0.0.2", port, "allowed.example", i).is_none() {
                unanswered += 1;
            }
        }
        unanswered
    });
    let pid = server.child.id().to_string();
    for _ in 0..3 {
        assert!(Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .expect("kill")
            .success());
        std::thread::sleep(Duration::from_millis(100));
    }
    // A new list, imported while Haven runs, is picked up without a signal.
    import_list(&dir, &data, "new.txt", "newly-listed.example\n", "gambling");
    assert_eq!(
        load.join().expect("load"),
        0,
        "no query went unanswered during reloads"
    );
    let mut blocked = false;
    for _ in 0..40 {
        if ask("127.0.0.2", port, "newly-listed.example", 9).map(|a| a.0) == Some(rcode::NXDOMAIN) {
            blocked = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(blocked, "the file change was picked up");
    // A broken policy is refused and the one in force stays.
    std::fs::write(
        data.join("policy.toml"),
        "[groups.ks2]\ndefault = \"sometimes\"\n",
    )
    .expect("bad policy");
    std::thread::sleep(Duration::from_millis(2600));
    assert_eq!(
        ask("127.0.0.2", port, "bet365.com", 10).expect("answer").0,
        rcode::NXDOMAIN
    );
    assert_eq!(
        ask("127.0.0.2", port, "allowed.example", 11)
            .expect("answer")
            .0,
        rcode::NOERROR
    );
    // Metrics.
    let text = metrics(mport);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("haven_dns_blocked_total{category=\"gambling\"}"),
        "{text}"
    );
    let queries: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("haven_dns_queries_total "))
        .and_then(|n| n.parse().ok())
        .expect("queries");
    assert!(queries >= 300, "{text}");
    // Events: every query, with its action and reason; an allowed name asked again and again by
    // one device is one row with its count.
    let mut stored = 0;
    for _ in 0..50 {
        stored = ok(&haven(&data, &["events", "count"]))
            .trim()
            .parse::<u64>()
            .expect("a count");
        if stored >= queries {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(stored >= 300, "{stored} of {queries} queries stored");
    let events = crate::stored_events(&data);
    let repeated = events
        .iter()
        .filter(|e| e["name"] == "allowed.example")
        .map(|e| e["repeats"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    assert!(
        repeated > 100,
        "allowed.example stored with its count: {repeated}"
    );
    let first = events.first().expect("an event");
    assert_eq!(first["name"], "bet365.com");
    assert_eq!(first["action"], "block");
    assert_eq!(first["group"], "ks2");
    assert_eq!(first["client"], "127.0.0.2");
    assert!(
        first["reason"]
            .as_str()
            .expect("reason")
            .contains("Gambling"),
        "{first}"
    );
    assert_eq!(first["category"], "gambling");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `haven_events_stored_total` figure on a metrics page.
fn stored_total(port: u16) -> u64 {
    metrics(port)
        .lines()
        .find_map(|l| l.strip_prefix("haven_events_stored_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn events_acknowledged_as_stored_survive_kill_9_during_ingestion() {
    let upstream = start_upstream();
    let mport = free_port();
    // Repeated questions are gathered for a second before they are written.
    let (mut server, dir) = start_haven_with(
        "dns-kill",
        &upstream,
        "nxdomain",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:{mport}\"\n[events]\nrepeat_window_seconds = 1\n"
        ),
    );
    let data = dir.join("data");
    let port = server.port;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = stop.clone();
    // Queries keep coming while the server is killed.
    let load = std::thread::spawn(move || {
        let mut id = 0u16;
        while !sending.load(Ordering::Relaxed) {
            id = id.wrapping_add(1);
            let _ = ask("127.0.0.2", port, "bet365.com", id);
        }
    });
    let mut acknowledged = 0;
    for _ in 0..100 {
        acknowledged = stored_total(mport);
        if acknowledged >= 1000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(acknowledged >= 1000, "only {acknowledged} events stored");
    // Read the figure, then kill -9 at once: every event counted as stored must be there.
    let acknowledged = stored_total(mport);
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    let count: u64 = ok(&haven(&data, &["events", "count"]))
        .trim()
        .parse()
        .expect("a count");
    assert!(
        count >= acknowledged,
        "{acknowledged} acknowledged, {count} in the store after kill -9"
    );
    let newest = crate::json_lines(&data, &["events", "search", "--json", "--limit", "1"]);
    assert_eq!(newest[0]["name"], "bet365.com");
    assert_eq!(newest[0]["category"], "gambling");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate_limits_and_identical_questions_asked_once() {
    let upstream = start_upstream();
    let (server, dir) = start_haven_with("dns-limits", &upstream, "nxdomain", "");
    // Five clients ask the same slow question at once: the upstream hears it once.
    let port = server.port;
    let askers: Vec<_> = (0..5u16)
        .map(|i| std::thread::spawn(move || ask("127.0.0.2", port, "slow.example", i)))
        .collect();
    for a in askers {
        assert_eq!(a.join().expect("asker").expect("answer").0, rcode::NOERROR);
    }
    assert_eq!(
        upstream.counted.load(Ordering::SeqCst),
        1,
        "asked upstream once"
    );
    drop(server);
    // Five queries a second per client, bursts of ten: a flood from one pupil is refused, and
    // another client is still answered.
    let (server, dir2) =
        start_haven_with("dns-rate", &upstream, "nxdomain", "rate_limit_qps = 5\n");
    let started = std::time::Instant::now();
    let answers: Vec<u8> = (0..40u16)
        .filter_map(|i| ask("127.0.0.2", server.port, "allowed.example", i))
        .map(|a| a.0)
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(answers.len(), 40, "refusals are answers too");
    let allowed = answers.iter().filter(|&&r| r == rcode::NOERROR).count() as f64;
    // The burst of ten, plus five a second for however long this took on a busy machine.
    assert!(
        allowed >= 10.0 && allowed <= 10.0 + 5.0 * elapsed + 1.0,
        "{allowed} of 40 allowed in {elapsed:.2} s"
    );
    assert!(
        answers.contains(&rcode::REFUSED) || elapsed > 6.0,
        "a flood is refused"
    );
    assert_eq!(answers[0], rcode::NOERROR);
    assert_eq!(
        ask("127.0.0.3", server.port, "allowed.example", 99)
            .expect("answer")
            .0,
        rcode::NOERROR
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// A DNS-over-TLS upstream: rustls over plain threads, answering as the fake upstream does.
/// Returns its port and a count of the TLS connections it accepted.
fn start_tls_upstream(
    cert: &Path,
    key: &Path,
    counted: Arc<AtomicUsize>,
) -> (u16, Arc<AtomicUsize>) {
    let config = super::tls_server_config(cert, key);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let conns = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            conns.fetch_add(1, Ordering::SeqCst);
            let (config, counted) = (config.clone(), counted.clone());
            std::thread::spawn(move || {
                let Ok(conn) = rustls::ServerConnection::new(config) else {
                    return;
                };
                let mut tls = rustls::StreamOwned::new(conn, stream);
                loop {
                    let mut len = [0u8; 2];
                    if tls.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    if tls.read_exact(&mut msg).is_err() {
                        return;
                    }
                    let Some(reply) = upstream_answer(&msg, true, &counted) else {
                        return;
                    };
                    let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&reply);
                    if tls.write_all(&framed).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, connections)
}

#[test]
fn dns_over_tls_upstream_with_the_schools_ca() {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("skipped: openssl is not installed");
        return;
    }
    let certs_dir = scratch("dot-certs");
    let (ca, cert, key) = make_certs(&certs_dir);
    let (port, connections) = start_tls_upstream(&cert, &key, Arc::new(AtomicUsize::new(0)));
    let upstreams = format!("[\"tls://127.0.0.1:{port}\"]");
    let trusted = format!("tls_ca_file = \"{}\"\n", ca.display());
    let (server, dir) = start_haven_on("dns-dot", &upstreams, "nxdomain", &trusted);
    for (i, name) in ["allowed.example", "facebook.com", "tcp-only.example"]
        .iter()
        .enumerate()
    {
        let (rc, answer) = ask("127.0.0.3", server.port, name, i as u16).expect("answer");
        assert_eq!(rc, rcode::NOERROR, "{name}");
        assert!(
            wire::parse_response(&answer).expect("parses").answers.len() == 1,
            "{name}"
        );
    }
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one TLS connection, kept and reused"
    );
    // Blocked names never reach the upstream at all.
    assert_eq!(
        ask("127.0.0.2", server.port, "bet365.com", 9)
            .expect("answer")
            .0,
        rcode::NXDOMAIN
    );
    drop(server);
    // Without the school's CA the upstream's certificate is not trusted: no answer from it.
    let (server, dir2) = start_haven_on("dns-dot-untrusted", &upstreams, "nxdomain", "");
    assert_eq!(
        ask("127.0.0.3", server.port, "allowed.example", 1)
            .expect("answer")
            .0,
        rcode::SERVFAIL
    );
    drop(server);
    for d in [certs_dir, dir, dir2] {
        let _ = std::fs::remove_dir_all(d);
    }
}
