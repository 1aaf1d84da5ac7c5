//! Black-box tests: the real `haven` binary, real files, real sockets on loopback.

// These tests wait on a real service with real deadlines: they read the clock themselves.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("haven-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn haven(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("HAVEN_DATA_DIR")
        .env_remove("HAVEN_STORE_URL")
        .output()
        .expect("run haven")
}

#[track_caller]
fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "haven failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[track_caller]
fn fails(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "haven should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Writes a list file in `dir` and imports it into `data` as one category.
fn import_list(dir: &Path, data: &Path, file: &str, contents: &str, category: &str) -> String {
    let list = dir.join(file);
    std::fs::write(&list, contents).expect("write list");
    let path = list.to_str().expect("path");
    ok(&haven(
        data,
        &["lists", "import", path, "--category", category],
    ))
}

/// JSON lines printed by a `haven` command, in order.
fn json_lines(data: &Path, args: &[&str]) -> Vec<serde_json::Value> {
    ok(&haven(data, args))
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The events stored so far, oldest first.
fn stored_events(data: &Path) -> Vec<serde_json::Value> {
    let mut all = json_lines(data, &["events", "search", "--json", "--limit", "1000"]);
    all.reverse();
    all
}

/// The open review requests, oldest first.
fn stored_reviews(data: &Path) -> Vec<serde_json::Value> {
    json_lines(data, &["reviews", "--json"])
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("JSON output")
}

fn check(data: &Path, url: &str, group: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "check",
        url,
        "--group",
        group,
        "--json",
        "--at",
        "2026-11-23T10:00",
    ];
    args.extend_from_slice(extra);
    json(&haven(data, &args))
}

/// The Content-Length of an HTTP message head (0 when absent).
fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
}

/// A TLS server configuration (ring) for a certificate chain and key in PEM files.
fn tls_server_config(cert: &Path, key: &Path) -> std::sync::Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .expect("cert")
        .map(|c| c.expect("cert"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server config");
    std::sync::Arc::new(config)
}

/// A school CA and a certificate it signs for 127.0.0.1 and secure.example, made with openssl in `dir`:
/// (CA certificate, leaf certificate, leaf key), all PEM.
fn make_certs(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ext = dir.join("leaf.ext");
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:secure.example\nbasicConstraints=CA:FALSE\n",
    )
    .expect("w");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let steps: Vec<Vec<&str>> = vec![
        [
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "2",
                "-subj",
                "/CN=Test School CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
        [
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
        ]
        .concat(),
        vec![
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "cert.pem",
            "-extfile",
            "leaf.ext",
        ],
    ];
    for args in steps {
        let made = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

mod alerts;
mod architecture;
mod attacks;
mod browser;
mod dns;
mod lists;
mod monitor;
mod proxy;
mod records;
