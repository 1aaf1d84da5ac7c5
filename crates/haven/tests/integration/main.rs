//! Black-box tests: the real `haven` binary, real files, real sockets on loopback.

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

mod dns;
mod lists;
