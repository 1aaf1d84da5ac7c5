//! HTTPS through a forward proxy, as a browser does it: `CONNECT host:port`, TLS with the
//! certificate the proxy presents (checked against `--ca`), then `GET`s. With `--new`, every
//! request is a new connection (CONNECT and handshake each time); otherwise each of `--conns`
//! connections is kept alive. Prints requests a second, errors and the mean latency.
//!
//!   tls-load --proxy 127.0.0.1:3128 --url https://secure.example:8443/1k.html --ca ca.pem \
//!            [--conns 32] [--seconds 10] [--new]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Target {
    proxy: String,
    host: String,
    port: u16,
    path: String,
    tls: Arc<rustls::ClientConfig>,
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    errors: AtomicU64,
    latency_us: AtomicU64,
}

async fn read_response<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<(u16, bool), Error> {
    let mut line = String::new();
    r.read_line(&mut line).await?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status line")?;
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err("closed in the head".into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse()?;
            } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    let mut body = vec![0u8; length];
    r.read_exact(&mut body).await?;
    Ok((status, close))
}

async fn open(t: &Target) -> Result<BufReader<tokio_rustls::client::TlsStream<TcpStream>>, Error> {
    let mut tcp = TcpStream::connect(&t.proxy).await?;
    tcp.set_nodelay(true)?;
    let authority = format!("{}:{}", t.host, t.port);
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await?;
    // The proxy's answer, read a byte at a time so nothing of the tunnel is taken.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if tcp.read(&mut b).await? == 0 {
            return Err("the proxy closed the CONNECT".into());
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 200") && !head.starts_with(b"HTTP/1.0 200") {
        return Err(format!("CONNECT: {}", String::from_utf8_lossy(&head)).into());
    }
    let name = ServerName::try_from(t.host.clone())?;
    let tls = tokio_rustls::TlsConnector::from(t.tls.clone())
        .connect(name, tcp)
        .await?;
    Ok(BufReader::new(tls))
}

async fn worker(t: Arc<Target>, counts: Arc<Counts>, until: Instant, new_each: bool) {
    // Host names the port too when it is not 443, as browsers send it.
    let host = if t.port == 443 {
        t.host.clone()
    } else {
        format!("{}:{}", t.host, t.port)
    };
    let keep = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n", t.path);
    let close = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        t.path
    );
    let mut conn = None;
    while Instant::now() < until {
        let started = Instant::now();
        let result: Result<bool, Error> = async {
            if conn.is_none() {
                conn = Some(open(&t).await?);
            }
            let c = conn.as_mut().ok_or("no connection")?;
            c.get_mut()
                .write_all(if new_each {
                    close.as_bytes()
                } else {
                    keep.as_bytes()
                })
                .await?;
            let (status, closed) = read_response(c).await?;
            if status != 200 {
                return Err(format!("status {status}").into());
            }
            Ok(closed)
        }
        .await;
        match result {
            Ok(closed) => {
                counts.ok.fetch_add(1, Ordering::Relaxed);
                counts
                    .latency_us
                    .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                if closed || new_each {
                    conn = None;
                }
            }
            Err(e) => {
                if counts.errors.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("error: {e}");
                }
                conn = None;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (mut proxy, mut url, mut ca) = (String::new(), String::new(), String::new());
    let (mut conns, mut seconds, mut new_each) = (32usize, 10u64, false);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--proxy" => proxy = args.next().ok_or("--proxy ADDRESS")?,
            "--url" => url = args.next().ok_or("--url URL")?,
            "--ca" => ca = args.next().ok_or("--ca FILE")?,
            "--conns" => conns = args.next().ok_or("--conns N")?.parse()?,
            "--seconds" => seconds = args.next().ok_or("--seconds N")?.parse()?,
            "--new" => new_each = true,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let rest = url
        .strip_prefix("https://")
        .ok_or("--url must be https://")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.parse()?),
        None => (authority.to_owned(), 443),
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&ca)? {
        roots.add(c?)?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let target = Arc::new(Target {
        proxy,
        host,
        port,
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
        tls: Arc::new(tls),
    });
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            tasks.push(tokio::spawn(worker(
                target.clone(),
                counts.clone(),
                until,
                new_each,
            )));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let took = started.elapsed().as_secs_f64();
    let ok = counts.ok.load(Ordering::Relaxed);
    let mean = counts.latency_us.load(Ordering::Relaxed) as f64 / ok.max(1) as f64 / 1000.0;
    println!(
        "{:.0} req/s  ({ok} in {took:.1} s, {} errors, mean {mean:.2} ms)",
        ok as f64 / took,
        counts.errors.load(Ordering::Relaxed)
    );
    Ok(())
}
