//! Attacks on the store: a disk that fills up under a running Haven.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::alerts::{import_staff, SmtpSink, DSL};
use crate::dns::free_port;
use crate::proxy::{curl, start_proxy_with, Origin};

/// A small tmpfs mounted for the test's data directory, unmounted when dropped (after the
/// server using it has stopped: declare it before the server).
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    /// Moves the directory `data` onto a fresh tmpfs of `mib` MiB mounted in its place; None
    /// (and why) when this machine does not let the test mount one.
    fn replace(data: &Path, mib: u32) -> Result<SmallDisk, String> {
        let kept = data.with_extension("kept");
        std::fs::rename(data, &kept).map_err(|e| e.to_string())?;
        std::fs::create_dir(data).map_err(|e| e.to_string())?;
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(data)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !mounted.status.success() {
            std::fs::remove_dir(data).map_err(|e| e.to_string())?;
            std::fs::rename(&kept, data).map_err(|e| e.to_string())?;
            return Err(String::from_utf8_lossy(&mounted.stderr).trim().to_owned());
        }
        let copied = Command::new("cp")
            .arg("-a")
            .arg(kept.join("."))
            .arg(data)
            .status()
            .map_err(|e| e.to_string())?;
        assert!(
            copied.success(),
            "copying the data directory onto the tmpfs"
        );
        Ok(SmallDisk {
            at: data.to_owned(),
        })
    }

    /// Fills what is left of the disk with a file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write as _;
        let path = self.at.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial blocks too.
        while f.write_all(&block[..512]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// A metric's value from the metrics endpoint (0 when absent).
fn metric(port: u16, name: &str) -> f64 {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://127.0.0.1:{port}/metrics"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A console page, fetched without signing in.
fn console_page(port: u16, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Signs in to the console at `port` with a password: (status, page).
fn console_sign_in(port: u16, jar: &Path, username: &str, password: &str) -> (String, String) {
    let base = format!("http://127.0.0.1:{port}");
    let page = Command::new("curl")
        .args(["-s", "--max-time", "10", "-c"])
        .arg(jar)
        .arg(format!("{base}/login"))
        .output()
        .expect("curl");
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    let token = page
        .split_once("name=\"csrf\" value=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(t, _)| t.to_owned())
        .unwrap_or_else(|| panic!("no form token on the sign-in page: {page}"));
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}", "-b"])
        .arg(jar)
        .args([
            "--data",
            &format!("csrf={token}&username={username}&password={password}"),
        ])
        .arg(format!("{base}/login"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_owned(), body.to_owned())
}

/// The DNS filter's port, from the configuration the harness wrote.
fn dns_port(data: &Path) -> u16 {
    let config = std::fs::read_to_string(data.join("haven.toml")).expect("config");
    config
        .split_once("[dns]\nlisten = [\"127.0.0.1:")
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(port, _)| port.parse().ok())
        .expect("the DNS port in haven.toml")
}

/// Asks the DNS filter for `count` different blocked names from 127.0.0.2, without waiting
/// for answers: each becomes an event, and together they make large batches for the store.
fn blocked_questions(port: u16, count: u16) {
    let socket = std::net::UdpSocket::bind("127.0.0.2:0").expect("bind");
    for i in 0..count {
        let mut q = vec![0u8; 12];
        q[0..2].copy_from_slice(&i.to_be_bytes());
        q[2] = 0x01; // recursion desired
        q[5] = 1; // one question
        for label in [format!("n{i}").as_str(), "bet365", "com"] {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.extend_from_slice(&[0, 0, 1, 0, 1]);
        let _ = socket.send_to(&q, ("127.0.0.1", port));
    }
}

fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: not within {secs} s");
}

#[test]
fn a_full_disk_is_named_counted_and_survived_without_a_restart() {
    let origin = Origin::start();
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let sink = SmtpSink::start(smtp);
    let (metrics, console) = (free_port(), free_port());
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nfrom = \"haven@demo-school.example\"\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n[console]\nlisten = \"127.0.0.1:{console}\"\n"
    );
    let disk: std::cell::RefCell<Option<Result<SmallDisk, String>>> = Default::default();
    let p = start_proxy_with("full-disk", &extra, &|data| {
        import_staff(data);
        let set = Command::new(env!("CARGO_BIN_EXE_haven"))
            .arg("--data-dir")
            .arg(data)
            .args(["people", "password", "owen.price"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write as _;
                c.stdin
                    .take()
                    .expect("stdin")
                    .write_all(b"a long test password\n")?;
                c.wait()
            })
            .expect("haven people password");
        assert!(set.success());
        *disk.borrow_mut() = Some(SmallDisk::replace(data, 48));
    });
    let disk = match disk.into_inner().expect("prepared") {
        Ok(d) => d,
        Err(why) => {
            eprintln!("SKIPPED: a_full_disk_…: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    let port = origin.port;
    let search = |q: &str| {
        let (code, _, _) = curl(
            &p,
            "127.0.0.2",
            &[&format!("http://www.google.co.uk:{port}/search?q={q}")],
        );
        assert_eq!(code, "200", "the filter keeps answering whatever the disk");
    };
    search("volcano+homework");
    wait_until("the first event stored", 10, || {
        metric(metrics, "haven_events_stored_total") >= 1.0
    });
    let jar = p.data.with_extension("cookies");

    // The disk fills up. Pupils are still filtered; what they do cannot be kept.
    let filler = disk.fill();
    search("how+do+i+k1ll+myself");
    // Many events at once: a batch too large for SQLite's cache fails inside the transaction,
    // which SQLite then rolls back itself, leaving the driver's connection counting an open
    // transaction (the bug: every later write on it was refused until a restart).
    blocked_questions(dns_port(&p.data), 20_000);
    wait_until("store failures counted, the disk named full", 20, || {
        metric(metrics, "haven_store_failures_total") >= 1.0
            && metric(metrics, "haven_store_disk_full") == 1.0
    });
    // The network manager is told, in words, on the console's pages (here the sign-in page).
    let page = console_page(console, "/login");
    assert!(page.contains("The disk is full"), "{page}");

    // Space comes back: with no restart the store takes what waited, the alert goes out (if
    // its capture was small enough to be kept already, it may have gone while the disk was
    // full) and the console signs people in again.
    std::fs::remove_file(&filler).expect("free the space");
    let stored_before = metric(metrics, "haven_events_stored_total");
    sink.wait_for(DSL, "Grade 5 capture: suicide", 30);
    wait_until("the waiting events stored", 30, || {
        metric(metrics, "haven_events_stored_total") >= stored_before + 1000.0
    });
    wait_until("the full-disk alarm cleared", 30, || {
        metric(metrics, "haven_store_disk_full") == 0.0
    });
    // Every connection to the store is fit again: more traffic, and not one more failure.
    let failures = metric(metrics, "haven_store_failures_total");
    let stored = metric(metrics, "haven_events_stored_total");
    for round in 0..5 {
        blocked_questions(dns_port(&p.data), 2_000);
        search(&format!("volcano+homework+{round}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    wait_until("the later events stored", 30, || {
        metric(metrics, "haven_events_stored_total") >= stored + 1000.0
    });
    assert_eq!(
        metric(metrics, "haven_store_failures_total"),
        failures,
        "no store failure once the disk has room"
    );
    assert!(!console_page(console, "/login").contains("The disk is full"));
    let (code, page) = console_sign_in(console, &jar, "owen.price", "a+long+test+password");
    assert_eq!(code, "303", "signed in again: {page}");
    let captures = crate::json_lines(&p.data, &["monitor", "captures", "--json"]);
    assert!(
        captures.iter().any(|c| c["text"] == "how do i k1ll myself"),
        "{captures:?}"
    );
    drop(p);
    drop(disk);
}

#[test]
fn an_mis_export_in_two_encodings_never_stores_mojibake() {
    let dir = crate::scratch("mixed-encodings");
    let data = dir.join("data");
    // Lines from a UTF-8 export and from a Windows export (0xE2 â, 0x92 a curly apostrophe)
    // in one file, and a row that was already garbled before it reached Haven.
    let mut csv = b"UPN,Legal Forename,Legal Surname,DOB,Year,Reg Group\r\n".to_vec();
    csv.extend_from_slice(b"H800000000101,Ren\xC3\xA9e,Dupont,2015-03-02,Year 6,6A\r\n");
    csv.extend_from_slice(b"H800000000102,Si\xE2n,O\x92Brien,2015-05-09,Year 6,6A\r\n");
    csv.extend_from_slice(b"H800000000103,Zo\xC3\x83\xC2\xABe,Marsh,2015-01-20,Year 6,6B\r\n");
    let file = dir.join("pupils.csv");
    std::fs::write(&file, &csv).expect("csv");
    let out = crate::haven(
        &data,
        &["people", "import", "pupils", file.to_str().expect("path")],
    );
    // The garbled row is refused by line, saying what to do; the others are kept as written.
    let stderr =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a refused row is an error: {stderr}");
    assert!(
        stderr.contains("pupils.csv:4:") && stderr.contains("garbled") && stderr.contains("UTF-8"),
        "{stderr}"
    );
    let found = crate::ok(&crate::haven(&data, &["people", "find", "Dupont"]));
    assert!(found.contains("Renée"), "{found}");
    let found = crate::ok(&crate::haven(&data, &["people", "find", "Brien"]));
    assert!(
        found.contains("Siân") && found.contains("O’Brien"),
        "{found}"
    );
    for name in ["Dupont", "Brien", "Marsh"] {
        let found = crate::ok(&crate::haven(&data, &["people", "find", name]));
        assert!(!found.contains('Ã') && !found.contains('Â'), "{found}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_megabyte_field_in_an_mis_export_is_named_not_echoed() {
    let dir = crate::scratch("huge-field");
    let data = dir.join("data");
    let huge = "Y".repeat(1_000_000);
    let csv = format!(
        "UPN,Legal Forename,Legal Surname,DOB,Year,Reg Group\r\n\
         H800000000201,Ada,Lovelace,2015-03-02,{huge},6A\r\n"
    );
    let file = dir.join("pupils.csv");
    std::fs::write(&file, csv).expect("csv");
    let out = crate::haven(
        &data,
        &["people", "import", "pupils", file.to_str().expect("path")],
    );
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("pupils.csv:2:"), "{said}");
    assert!(
        said.len() < 1_000,
        "{} bytes of error for one bad field",
        said.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
