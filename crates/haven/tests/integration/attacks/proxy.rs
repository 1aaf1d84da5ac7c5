//! Attacks on the proxy: tunnels past the filter, slow clients holding every slot, script in
//! the PAC file, IPv6 literals, and review requests filed under the wrong person or group.
//! Source addresses stand for the networks: 127.0.0.2 pupils (ks2), 127.0.0.3 staff; any
//! other loopback address falls to the default group (ks2).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::proxy::{
    client_hello, curl, echo_server, events, import_people, start_https_origin, start_proxy,
    start_proxy_with, Origin, Proxy,
};

/// A TCP connection to `port` on 127.0.0.1 from the loopback address `from`.
fn connect_from(from: &str, port: u16) -> TcpStream {
    super::listeners::connect_from(from, port).expect("connect")
}

/// Reads an HTTP response head (to the blank line) byte by byte; None when the connection
/// closed first.
fn read_head(s: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// CONNECT to `target` from `from`: the answer's head and the stream.
fn open_tunnel(p: &Proxy, from: &str, target: &str) -> (String, TcpStream) {
    let mut s = connect_from(from, p.port);
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").expect("write");
    let head = read_head(&mut s).unwrap_or_default();
    (head, s)
}

/// Sends `first` into an open tunnel and reads what comes back: None when the proxy closed
/// the tunnel instead of passing the bytes on.
fn through(mut s: TcpStream, first: &[u8]) -> Option<Vec<u8>> {
    s.write_all(first).ok()?;
    let mut back = vec![0u8; first.len()];
    s.read_exact(&mut back).ok().map(|()| back)
}

/// The open captures, waited for until `until` holds (the event writer grades every 200 ms).
fn captures(p: &Proxy, until: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..50 {
        found = crate::json_lines(&p.data, &["monitor", "captures", "--json"]);
        if until(&found) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the expected captures never arrived: {found:?}");
}

/// A proxy that allows CONNECT to the echo server's port (as if it were 443), where
/// `school.example` (an uncategorised, allowed site) lives.
fn tunnel_proxy(name: &str, port: u16) -> Proxy {
    start_proxy(
        name,
        &format!("connect_ports = [{port}]\nhosts = {{ \"school.example\" = \"127.0.0.1\" }}"),
    )
}

/// A tunnel to an allowed name whose first bytes are `first` is closed without passing them
/// on, and leaves a bypass capture for the pupil.
fn assert_tunnel_refused(name: &str, first: &[u8]) {
    let port = echo_server();
    let p = tunnel_proxy(name, port);
    let (head, s) = open_tunnel(&p, "127.0.0.2", &format!("school.example:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(through(s, first), None, "the bytes reached the service");
    let found = captures(&p, |c| c.iter().any(|c| c["source"] == "bypass"));
    let capture = found
        .iter()
        .find(|c| c["source"] == "bypass")
        .expect("a bypass capture");
    assert_eq!(capture["client"], "127.0.0.2", "{capture}");
}

#[test]
fn a_pupil_cannot_connect_to_a_port_other_than_443() {
    let port = echo_server();
    // No connect_ports: the default, 443 only.
    let p = start_proxy(
        "attack-connect-port",
        "hosts = { \"school.example\" = \"127.0.0.1\" }",
    );
    let (head, s) = open_tunnel(&p, "127.0.0.2", &format!("school.example:{port}"));
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let hello = client_hello("school.example");
    assert_ne!(
        through(s, &hello),
        Some(hello),
        "the tunnel reached the service"
    );
    let all = events(&p, |e| {
        e.iter()
            .any(|e| e["name"] == format!("https://school.example:{port}/"))
    });
    let ev = all
        .iter()
        .find(|e| e["name"] == format!("https://school.example:{port}/"))
        .expect("the event");
    assert_eq!(ev["action"], "block", "{ev}");
    assert!(
        ev["reason"]
            .as_str()
            .is_some_and(|r| r.contains("connect_ports")),
        "{ev}"
    );
}

#[test]
fn a_pupil_cannot_tunnel_plain_http_through_connect() {
    assert_tunnel_refused(
        "attack-tunnel-http",
        b"GET / HTTP/1.1\r\nHost: school.example\r\n\r\n",
    );
}

#[test]
fn a_pupil_cannot_tunnel_ssh_through_connect() {
    assert_tunnel_refused("attack-tunnel-ssh", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
}

#[test]
fn a_pupil_cannot_tunnel_tls_without_a_server_name() {
    // A ClientHello whose only extension is supported_versions: no server name.
    let mut hello = client_hello("school.example");
    // Rebuild it without SNI: the record's handshake body ends in the extensions block.
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
    let exts = [0u8, 43, 0, 3, 2, 3, 4];
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut msg = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    msg.extend_from_slice(&body);
    hello.clear();
    hello.extend_from_slice(&[22, 3, 1, (msg.len() >> 8) as u8, msg.len() as u8]);
    hello.extend_from_slice(&msg);
    assert_tunnel_refused("attack-tunnel-nosni", &hello);
}

#[test]
fn a_pupil_cannot_tunnel_to_a_bare_ip_address() {
    let port = echo_server();
    let p = tunnel_proxy("attack-tunnel-ip", port);
    // An allowed name in the ClientHello does not make an address a site.
    let (head, s) = open_tunnel(&p, "127.0.0.2", &format!("127.0.0.1:{port}"));
    let passed =
        head.starts_with("HTTP/1.1 200") && through(s, &client_hello("school.example")).is_some();
    assert!(!passed, "a pupil reached a bare address: {head}");
    let found = captures(&p, |c| c.iter().any(|c| c["source"] == "bypass"));
    assert!(
        found
            .iter()
            .any(|c| c["source"] == "bypass" && c["client"] == "127.0.0.2"),
        "{found:?}"
    );
    // Staff may (the shipped policy's staff group allows address tunnels).
    let (head, s) = open_tunnel(&p, "127.0.0.3", &format!("127.0.0.1:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let hello = client_hello("school.example");
    assert_eq!(through(s, &hello), Some(hello));
    // ...and the name in the ClientHello decides too: staff do not gamble either.
    let (head, s) = open_tunnel(&p, "127.0.0.3", &format!("127.0.0.1:{port}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(through(s, &client_hello("bet365.com")), None);
}

#[test]
fn an_allowed_server_name_still_tunnels_end_to_end() {
    let certs = crate::scratch("attack-tunnel-tls-certs");
    let (test_ca, cert, key) = crate::make_certs(&certs);
    let port = start_https_origin(&cert, &key);
    let echo = echo_server();
    let p = start_proxy(
        "attack-tunnel-tls",
        &format!(
            "connect_ports = [{port}, {echo}]\nhosts = {{ \"secure.example\" = \"127.0.0.1\", \"school.example\" = \"127.0.0.1\" }}"
        ),
    );
    let (code, body, stderr) = curl(
        &p,
        "127.0.0.2",
        &[
            "--cacert",
            test_ca.to_str().expect("path"),
            &format!("https://secure.example:{port}/echo/page"),
        ],
    );
    assert_eq!(code, "200", "{stderr}");
    assert!(body.starts_with("GET /echo/page HTTP/1.1"), "{body}");
    // A ClientHello that arrives in pieces (several TCP segments) is waited for and passes.
    let (head, mut s) = open_tunnel(&p, "127.0.0.2", &format!("school.example:{echo}"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let hello = client_hello("school.example");
    let (a, b) = hello.split_at(7);
    s.write_all(a).expect("write");
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b).expect("write");
    let mut back = vec![0u8; hello.len()];
    s.read_exact(&mut back).expect("the whole hello came back");
    assert_eq!(back, hello);
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn dripping_headers_are_cut_off_while_others_are_served() {
    let origin = Origin::start();
    let p = start_proxy("attack-drip-headers", "header_timeout_ms = 1000");
    let mut slow = connect_from("127.0.0.2", p.port);
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let request = format!(
        "GET http://127.0.0.1:{}/a HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drip: {}\r\n\r\n",
        origin.port,
        "a".repeat(200)
    );
    let started = Instant::now();
    let mut cut = None;
    for b in request.as_bytes() {
        if slow.write_all(&[*b]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                cut = Some(started.elapsed());
                break;
            }
            // An answer (408, say) before the headers were done is a cut too.
            Ok(_) => {
                cut = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
        // Meanwhile a normal request is answered.
        if started.elapsed() > Duration::from_millis(500)
            && started.elapsed() < Duration::from_millis(700)
        {
            let (code, body, _) = curl(
                &p,
                "127.0.0.3",
                &[&format!("http://127.0.0.1:{}/b", origin.port)],
            );
            assert_eq!(
                (code.as_str(), body.as_str()),
                ("200", "hello from the origin")
            );
        }
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let cut = cut.expect("the dripping client was still connected after 4 s");
    assert!(cut >= Duration::from_millis(900), "cut too early: {cut:?}");
}

#[test]
fn dripping_a_request_body_is_cut_off() {
    let p = start_proxy("attack-drip-body", "body_timeout_ms = 1000");
    let mut slow = connect_from("127.0.0.2", p.port);
    slow.set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    // The review form: a body promised, a little sent, then nothing.
    write!(
        slow,
        "POST http://127.0.0.1:{}/_haven/review HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\nurl=http",
        p.port
    )
    .expect("write");
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = slow.read_to_end(&mut answer);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(3500),
        "still waiting for the body after {took:?}"
    );
}

#[test]
fn one_address_cannot_hold_every_slot() {
    let origin = Origin::start();
    let p = start_proxy(
        "attack-per-client",
        "max_connections = 20\nmax_connections_per_client = 5",
    );
    // One pupil's device opens as many connections as the whole proxy allows, and sits on them.
    let held: Vec<TcpStream> = (0..20).map(|_| connect_from("127.0.0.2", p.port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Another device is still served.
    let (code, body, stderr) = curl(
        &p,
        "127.0.0.3",
        &[&format!("http://127.0.0.1:{}/a", origin.port)],
    );
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", "hello from the origin"),
        "{stderr}"
    );
    drop(held);
}

#[test]
fn the_pac_file_does_not_echo_a_hostile_host_header() {
    let p = start_proxy("attack-pac-host", "");
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(
        b"GET /proxy.pac HTTP/1.1\r\nHost: x\"; } alert(document.cookie); function y() { return \"\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut pac = String::new();
    let _ = s.read_to_string(&mut pac);
    assert!(pac.starts_with("HTTP/1.1 200"), "{pac}");
    assert!(!pac.contains("alert"), "{pac}");
    assert!(
        pac.contains(&format!("PROXY 127.0.0.1:{}", p.port)),
        "{pac}"
    );
}

#[test]
fn an_ipv6_literal_url_is_forwarded_and_loopback_still_refused() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        eprintln!("skipped: ::1 is not available in this network namespace");
        return;
    };
    let origin = Origin::start_on(listener);
    let url = format!("http://[::1]:{}/a", origin.port);
    let p = start_proxy("attack-ipv6", "");
    let (code, body, stderr) = curl(&p, "127.0.0.2", &["-g", &url]);
    assert_eq!(
        (code.as_str(), body.as_str()),
        ("200", "hello from the origin"),
        "{stderr}"
    );
    let all = events(&p, |e| e.iter().any(|e| e["name"] == url.as_str()));
    assert!(all
        .iter()
        .any(|e| e["name"] == url.as_str() && e["action"] == "allow"));
    // Without allow_loopback, ::1 (in any spelling) is this server, as 127.0.0.1 is.
    let q = start_proxy("attack-ipv6-self", "allow_loopback = false");
    for url in [
        url.clone(),
        format!("http://[0:0:0:0:0:0:0:1]:{}/a", origin.port),
        format!("http://[::ffff:127.0.0.1]:{}/a", origin.port),
    ] {
        let (code, body, _) = curl(&q, "127.0.0.2", &["-g", &url]);
        assert_eq!(code, "502", "{url}: {body}");
        assert!(body.contains("this server itself"), "{url}: {body}");
    }
    assert_eq!(origin.seen().len(), 1, "only the allowed request arrived");
}

/// The hidden fields of the block page's review form.
fn review_form(page: &str) -> Vec<(String, String)> {
    let form = page
        .split("<form")
        .find(|f| f.contains("Request a review"))
        .expect("a review form");
    form.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|input| {
            let name = input.split("name=\"").nth(1)?.split('"').next()?;
            let value = input.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.replace("&amp;", "&")))
        })
        .collect()
}

/// Posts the review form from `from` straight to the proxy (as a browser does: the PAC file
/// sends the proxy's own address direct): (status, page).
fn post_review(p: &Proxy, from: &str, fields: &[(String, String)]) -> (String, String) {
    let mut args = vec![
        "-s".to_owned(),
        "--interface".to_owned(),
        from.to_owned(),
        "-w".to_owned(),
        "\n%{http_code}".to_owned(),
    ];
    for (k, v) in fields {
        args.push("--data-urlencode".to_owned());
        args.push(format!("{k}={v}"));
    }
    args.push(format!("http://127.0.0.1:{}/_haven/review", p.port));
    let out = Command::new("curl").args(&args).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

/// A pupil signed in on the staff network asks for a review of a page blocked for pupils.
fn pupil_asks_for_review(name: &str) -> (Proxy, Vec<(String, String)>) {
    let p = start_proxy_with(name, "authenticate = \"optional\"", &import_people);
    let (code, page, _) = curl(
        &p,
        "127.0.0.3",
        &[
            "--proxy-user",
            "amara.okafor:purple-giraffe-7",
            "http://bet365.com/",
        ],
    );
    assert_eq!(code, "403", "{page}");
    let fields = review_form(&page);
    let (code, page) = post_review(&p, "127.0.0.3", &fields);
    assert_eq!(code, "200", "{page}");
    assert!(page.contains("has been sent"), "{page}");
    (p, fields)
}

#[test]
fn a_review_request_records_the_signed_in_pupil_and_their_own_group() {
    let (p, _) = pupil_asks_for_review("attack-review-who");
    let reviews = crate::stored_reviews(&p.data);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(reviews[0]["user"], "amara.okafor", "{reviews:?}");
    assert_eq!(
        reviews[0]["group"], "ks2",
        "the pupil's group, not the staff network's"
    );
    assert_eq!(reviews[0]["client"], "127.0.0.3");
}

#[test]
fn a_second_identical_review_request_is_not_stored_twice() {
    let (p, fields) = pupil_asks_for_review("attack-review-twice");
    let (code, page) = post_review(&p, "127.0.0.3", &fields);
    assert_eq!(code, "200", "{page}");
    assert!(page.contains("already"), "{page}");
    let reviews = crate::stored_reviews(&p.data);
    assert_eq!(reviews.len(), 1, "{reviews:?}");
}
