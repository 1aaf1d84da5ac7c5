//! Attacks on the console's and the metrics endpoint's listeners: idle connections by the
//! hundred, headers and bodies dripped a byte at a time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::dns::{free_port, import_demo_lists};
use crate::proxy::Origin;
use crate::scratch;

struct Serve {
    child: Child,
    dns: u16,
    proxy: u16,
    console: u16,
    metrics: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `haven serve` with every listener on loopback, allowed only `open_files` file descriptors
/// (soft and hard: it cannot raise them), and `console` lines in `[console]`.
fn start(name: &str, open_files: u32, console_extra: &str) -> Serve {
    let data = scratch(name).join("data");
    import_demo_lists(&data);
    let (dns, proxy, console, metrics) = (free_port(), free_port(), free_port(), free_port());
    std::fs::write(
        data.join("haven.toml"),
        format!(
            "default_group = \"ks2\"\n[dns]\nlisten = [\"127.0.0.1:{dns}\"]\nupstreams = [\"127.0.0.1:9\"]\n\
             [proxy]\nlisten = [\"127.0.0.1:{proxy}\"]\nallow_loopback = true\n\
             [console]\nlisten = \"127.0.0.1:{console}\"\n{console_extra}\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n"
        ),
    )
    .expect("config");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {open_files} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haven serve");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    for line in lines.by_ref() {
        if line.expect("banner").starts_with("Ctrl-C") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Serve {
        child,
        dns,
        proxy,
        console,
        metrics,
    }
}

/// Connects from `from` (a loopback address) to a port on 127.0.0.1.
pub(crate) fn connect_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().expect("addr");
    socket.bind(&local.into())?;
    let to: SocketAddr = ([127, 0, 0, 1], port).into();
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    Ok(socket.into())
}

/// A GET from `from`: the status line, or why there was none.
fn get(from: &str, port: u16, path: &str) -> String {
    let Ok(mut s) = connect_from(from, port) else {
        return "no connection".into();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return "write failed".into();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.lines().next().unwrap_or("no answer").to_owned()
}

/// How long the server takes to close a connection that drips `head` (then, for a body, a
/// byte every 200 ms), or None if it is still open after `give_up`.
fn dripped(port: u16, head: &str, give_up: Duration) -> Option<(Duration, String)> {
    let mut s = connect_from("127.0.0.9", port).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let started = Instant::now();
    let mut bytes = head.bytes();
    let mut answer = Vec::new();
    while started.elapsed() < give_up {
        let byte = bytes.next().unwrap_or(b'x');
        if s.write_all(&[byte]).is_err() {
            return Some((started.elapsed(), String::from_utf8_lossy(&answer).into()));
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), String::from_utf8_lossy(&answer).into())),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some((started.elapsed(), String::from_utf8_lossy(&answer).into())),
        }
    }
    None
}

#[test]
fn idle_console_connections_cannot_starve_dns_or_the_proxy_of_file_descriptors() {
    let have_dig = Command::new("dig").arg("-v").output().is_ok();
    let origin = Origin::start();
    let s = start("fd-starve", 256, "");
    // A device opens connection after connection to the console and never sends a byte: more
    // than the process may open files.
    let mut held = Vec::new();
    for _ in 0..400 {
        if let Ok(c) = connect_from("127.0.0.5", s.console) {
            held.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // DNS over TCP still answers, and the proxy still forwards.
    if have_dig {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &s.dns.to_string(), "-b", "127.0.0.2"])
            .args(["bet365.com", "+tcp", "+tries=1", "+time=3"])
            .output()
            .expect("dig");
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("status: NXDOMAIN"), "DNS over TCP: {out}");
    } else {
        eprintln!("skipped the DNS part: dig is not installed (Debian package dnsutils)");
    }
    let through = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
        ])
        .args(["-x", &format!("http://127.0.0.1:{}", s.proxy)])
        .arg(format!("http://127.0.0.1:{}/hello", origin.port))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&through.stdout), "200", "the proxy");
    // The console itself still serves someone else, and so does the metrics endpoint.
    assert!(
        get("127.0.0.6", s.console, "/login").contains("200"),
        "the console from another address"
    );
    assert!(get("127.0.0.6", s.metrics, "/metrics").contains("200"));
    drop(held);
}

#[test]
fn dripped_headers_and_bodies_are_cut_off_by_the_console_and_metrics() {
    let s = start("drip", 1024, "request_timeout_seconds = 2");
    let give_up = Duration::from_secs(8);
    // Headers a byte at a time, never finished.
    let (took, _) = dripped(
        s.console,
        "GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        give_up,
    )
    .expect("the console never closed a connection dripping its headers");
    assert!(took < Duration::from_secs(5), "console headers: {took:?}");
    // A form whose body never finishes arriving.
    let (took, answer) = dripped(
        s.console,
        "POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\nusername=",
        give_up,
    )
    .expect("the console never gave up on a dripped body");
    assert!(took < Duration::from_secs(6), "console body: {took:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // The metrics endpoint's headers have a deadline too.
    let (took, _) = dripped(
        s.metrics,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        give_up,
    )
    .expect("the metrics endpoint never closed a connection dripping its headers");
    assert!(took < Duration::from_secs(7), "metrics headers: {took:?}");
    // Meanwhile a normal request is served.
    assert!(get("127.0.0.1", s.console, "/login").contains("200"));
}
