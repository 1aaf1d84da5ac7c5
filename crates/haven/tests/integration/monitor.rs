//! `haven monitor grade`, as a DSL tries a phrase: texts in, grades out (the library's and the
//! model's opinions beside the grade acted on); `haven monitor train`, reproducible, and with the
//! school's triage decisions.

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
    // (The library alone: the model has its own opinion of this text.)
    let (ok, out) = grade(&data, &["--no-model"], "meet at the bench behind the gym\n");
    assert!(ok);
    assert!(out.starts_with("4\tbullying:4\t"), "{out}");
    // Something that is not JSON gets an error line and the exit status says so.
    let (ok, out) = grade(&data, &["--json"], "not json\n");
    assert!(!ok);
    assert!(out.contains("\"error\""), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A farewell that never names suicide or harm: no phrase of the library says it.
const FAREWELL: &str = "thank you for everything, you won't have to worry about me after tonight";

fn one_json(out: &str) -> serde_json::Value {
    serde_json::from_str(out.lines().next().expect("a line")).expect("a JSON line")
}

#[test]
fn grade_json_gives_the_grade_acted_on_and_both_opinions_and_the_model_reads_a_farewell() {
    let dir = scratch("monitor-grade-model");
    let data = dir.join("data");
    let input = format!("{}\n", serde_json::json!({ "text": FAREWELL }));
    let (ok, out) = grade(&data, &["--json"], &input);
    assert!(ok, "{out}");
    let v = one_json(&out);
    // The library finds nothing; the model reads it as suicide, and its grade is acted on.
    assert_eq!(v["library"]["grade"], 0, "{v}");
    assert_eq!(v["library"]["matched"], serde_json::json!([]), "{v}");
    assert_eq!(v["model"]["category"], "suicide", "{v}");
    let model_grade = v["model"]["grade"].as_u64().expect("model grade");
    assert!(model_grade >= 4, "an alert: {v}");
    assert_eq!(v["grade"].as_u64(), Some(model_grade), "{v}");
    assert_eq!(v["categories"][0]["category"], "suicide", "{v}");
    assert!(
        v["model"]["alert_p"].as_f64().expect("alert_p") >= 0.5,
        "{v}"
    );
    // Without the model, the library alone grades it 0.
    let (ok, out) = grade(&data, &["--json", "--no-model"], &input);
    assert!(ok, "{out}");
    let v = one_json(&out);
    assert_eq!(v["grade"], 0, "{v}");
    assert!(v["model"].is_null(), "{v}");
    // A grade-5 phrase of the library stands, and says which phrase it was.
    let (ok, out) = grade(
        &data,
        &["--json"],
        "{\"text\": \"how do I k i l l myself\"}\n",
    );
    assert!(ok, "{out}");
    let v = one_json(&out);
    assert_eq!(
        (v["grade"].as_u64(), v["library"]["grade"].as_u64()),
        (Some(5), Some(5)),
        "{v}"
    );
    assert!(v["library"]["matched"][0].is_string(), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The sha256 `haven monitor train` printed.
fn printed_sha(out: &str) -> String {
    out.split("sha256 ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("no sha256 in {out}"))
        .to_owned()
}

#[test]
fn training_twice_gives_the_same_model_as_the_one_shipped() {
    let dir = scratch("monitor-train-twice");
    let data = dir.join("data");
    let mut models = Vec::new();
    for name in ["a.model", "b.model"] {
        let out_path = dir.join(name);
        let out = crate::ok(&crate::haven(
            &data,
            &[
                "monitor",
                "train",
                "--out",
                out_path.to_str().expect("path"),
            ],
        ));
        assert!(out.contains("MB in memory"), "{out}");
        let bytes = std::fs::read(&out_path).expect("the model written");
        assert_eq!(printed_sha(&out), haven_app::model::sha256(&bytes), "{out}");
        models.push((printed_sha(&out), bytes));
    }
    assert_eq!(models[0].0, models[1].0, "the same checksum twice");
    assert!(models[0].1 == models[1].1, "the same bytes twice");
    let shipped = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/model/text.model"
    ))
    .expect("config/model/text.model");
    assert!(
        models[0].1 == shipped,
        "config/model/text.model is what `haven monitor train` makes: retrain and commit it"
    );
    // Training wrote nothing else: the school's model is only written when asked for.
    assert!(!haven_monitor::library::school_model_path(&data).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// An invented capture of a search.
fn decided(text: &str, categories: &str, matched: &str) -> haven_store::captures::NewCapture {
    haven_store::captures::NewCapture {
        at_ms: haven_store::now_ms() - 3_600_000,
        source: "search".into(),
        client: "10.20.6.31".into(),
        user: Some("amira.hussain".into()),
        url: "https://www.bing.com/search?q=x".into(),
        text: text.into(),
        grade: 3,
        categories: categories.into(),
        matched: matched.into(),
        model: None,
    }
}

#[test]
fn a_dismissed_capture_becomes_a_training_example_for_the_schools_own_model() {
    const DISMISSED: &str = "granny's recipe says brown the lamb then kill the heat xx";
    const PROMOTED: &str = "they keep sending my photo round the group chat and laughing";
    let dir = scratch("monitor-train-decisions");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    // Two captures recorded through the store, then triaged: one dismissed, one promoted.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store = haven_store::Store::open_sqlite(&data.join("haven.db"))
            .await
            .expect("store");
        let recorded = store
            .record_captures(
                &haven_store::captures::CaptureRules::default(),
                &[
                    decided(DISMISSED, "violence:3", "kill"),
                    decided(PROMOTED, "bullying:3", "sending my photo"),
                ],
            )
            .await
            .expect("captures");
        let open = store.open_captures(1, 10).await.expect("open");
        assert_eq!(open.len(), 2, "{recorded:?}");
        let id = |t: &str| open.iter().find(|k| k.text == t).expect(t).id;
        assert!(store
            .dismiss_capture(id(DISMISSED), "priya.shah", "a recipe")
            .await
            .expect("dismiss"));
        assert!(store
            .promote_capture(id(PROMOTED), "priya.shah")
            .await
            .expect("promote")
            .is_some());
        store.close().await;
    });
    let out = crate::ok(&crate::haven(
        &data,
        &["monitor", "train", "--with-decisions"],
    ));
    assert!(
        out.contains("the school's decisions: 1 promoted, 1 dismissed"),
        "{out}"
    );
    assert!(out.contains("before: precision"), "{out}");
    assert!(out.contains("after:  precision"), "{out}");
    // The school's model and its report, beside each other in the data directory.
    let model = std::fs::read(haven_monitor::library::school_model_path(&data)).expect("model");
    let report: haven_monitor::training::SchoolReport = serde_json::from_slice(
        &std::fs::read(haven_monitor::training::school_report_path(&data)).expect("school.json"),
    )
    .expect("a school report");
    assert_eq!(report.decisions, 2, "{report:?}");
    assert_eq!((report.before.promoted, report.before.dismissed), (1, 1));
    assert_eq!((report.after.promoted, report.after.dismissed), (1, 1));
    assert_eq!(report.sha256, haven_app::model::sha256(&model));
    assert_eq!(printed_sha(&out), report.sha256);
    assert!(report.sha256 != haven_app::model::sha256(haven_monitor::training::BUILT_IN_MODEL));
    // Reading the decisions is audited, with the count and never the words.
    let log = crate::ok(&crate::haven(&data, &["audit", "log", "--json"]));
    let entry: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["action"] == "train model")
        .unwrap_or_else(|| panic!("no `train model` entry in {log}"));
    assert_eq!(entry["subject"], "decided captures", "{entry}");
    assert!(
        entry["detail"].as_str().expect("detail").contains("read=2"),
        "{entry}"
    );
    for words in [DISMISSED, PROMOTED, "granny", "photo"] {
        assert!(!log.contains(words), "the audit log holds {words:?}: {log}");
    }
    // Monitoring as `serve` builds it puts the school's model in force.
    let (monitoring, warnings) = haven_monitor::Monitoring::new(
        haven_monitor::library::BUILT_IN,
        data.join("risk"),
        haven_monitor::MonitorRules::default(),
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let (in_force, source) = monitoring.model().expect("a model");
    assert_eq!(source, haven_monitor::library::ModelSource::School);
    assert_eq!(
        haven_app::model::sha256(&in_force.to_bytes()),
        report.sha256
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits for a line of `haven serve`'s JSON log with `message` and returns it.
fn log_line(lines: &std::sync::mpsc::Receiver<String>, message: &str) -> serde_json::Value {
    loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no log line {message:?}"));
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["fields"]["message"] == message {
                return v;
            }
        }
    }
}

#[test]
fn sighup_puts_a_newly_trained_school_model_in_force() {
    use std::io::BufRead as _;
    let dir = scratch("monitor-sighup-model");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    std::fs::write(
        data.join("haven.toml"),
        "default_group = \"ks2\"\n[dns]\nlisten = []\n[proxy]\nlisten = []\n[console]\nlisten = \"\"\n[log]\nformat = \"json\"\n",
    )
    .expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_haven"))
        .arg("--data-dir")
        .arg(&data)
        .arg("serve")
        .env_remove("HAVEN_LOG")
        .env_remove("HAVEN_LOG_FORMAT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("haven serve");
    let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let banner: Vec<String> = out
        .by_ref()
        .map_while(Result::ok)
        .take_while(|l| !l.starts_with("Ctrl-C"))
        .collect();
    // Keep draining what the server writes, so it never blocks on a full pipe.
    std::thread::spawn(move || out.for_each(drop));
    let mut server = crate::dns::Server { child, port: 0 };
    assert!(
        banner.iter().any(|l| l.contains("monitoring:")),
        "{banner:?}"
    );
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = server.child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let hup = |pid: u32| {
        assert!(Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill")
            .success());
    };
    let pid = server.child.id();
    hup(pid);
    assert_eq!(
        log_line(&lines, "risk library and model reloaded")["fields"]["model"],
        "built-in"
    );
    // `haven monitor train` wrote the school's model: in force from the next SIGHUP.
    let school = haven_monitor::library::school_model_path(&data);
    std::fs::create_dir_all(school.parent().expect("dir")).expect("model dir");
    std::fs::write(&school, haven_monitor::training::BUILT_IN_MODEL).expect("model");
    hup(pid);
    assert_eq!(
        log_line(&lines, "risk library and model reloaded")["fields"]["model"],
        "school"
    );
    // A damaged one is named in the log, and the built-in model is used instead.
    std::fs::write(&school, b"not a model").expect("damaged");
    hup(pid);
    let warning = log_line(&lines, "risk library or model read with a warning");
    assert!(
        warning["fields"]["warning"]
            .as_str()
            .is_some_and(|w| w.contains("school.model") && w.contains("built-in")),
        "{warning}"
    );
    assert_eq!(
        log_line(&lines, "risk library and model reloaded")["fields"]["model"],
        "built-in"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
