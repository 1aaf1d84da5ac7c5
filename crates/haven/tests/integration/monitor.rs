//! `haven monitor grade`, as a DSL tries a phrase: texts in, grades out.

use std::io::Write;
use std::process::{Command, Stdio};

use super::scratch;

fn grade(data: &std::path::Path, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(data)
        .args(["monitor", "grade"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("haven monitor grade");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_dsl_tries_phrases_against_the_library() {
    let dir = scratch("monitor-grade");
    let data = dir.join("data");
    let (ok, out) = grade(
        &data,
        &["--json"],
        "{\"text\": \"how do I k i l l myself\"}\n{\"text\": \"Year 6 suicide prevention assembly\"}\n",
    );
    assert!(ok, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines[0]["grade"], 5);
    assert_eq!(lines[0]["categories"][0]["category"], "suicide");
    assert_eq!(lines[1]["grade"], 0);
    assert_eq!(lines[1]["set_aside"][0], "suicide*");
    // The school's own phrases join the built-in ones; a bad line is reported, the rest used.
    std::fs::create_dir_all(data.join("risk")).expect("dir");
    std::fs::write(
        data.join("risk/local.txt"),
        "version 1\n4 | bullying | the bench behind the gym\n9 | bullying | oops\n",
    )
    .expect("local list");
    // (By the library alone: the model has its own opinion of meeting somewhere.)
    let (ok, out) = grade(&data, &["--no-model"], "meet at the bench behind the gym\n");
    assert!(ok);
    assert!(out.starts_with("4\tbullying:4\t"), "{out}");
    // Something that is not JSON gets an error line and the exit status says so.
    let (ok, out) = grade(&data, &["--json"], "not json\n");
    assert!(!ok);
    assert!(out.contains("\"error\""), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
