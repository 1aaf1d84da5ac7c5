//! Monitoring alerts end to end: pupils' searches, pages and blocked attempts through the real
//! proxy, graded into captures, and alerts delivered to a mail server and a webhook the test
//! runs on loopback — escalated when nobody opens them, and kept across a crash while the mail
//! server is down.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::dns::free_port;
use super::proxy::{curl, start_proxy_with, start_proxy_with_env, Origin};
use super::{haven, ok};

/// A message the sink received.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    to: String,
    data: String,
    /// Whether it came over TLS (after STARTTLS).
    tls: bool,
    /// The AUTH PLAIN credentials given, as "user:password".
    auth: Option<String>,
}

/// A mail server that accepts everything and keeps it.
#[derive(Clone)]
pub(crate) struct SmtpSink {
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    pub(crate) fn start(listener: TcpListener) -> SmtpSink {
        SmtpSink::start_with(listener, None)
    }

    /// With `tls`, the sink offers STARTTLS with that certificate.
    fn start_with(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> SmtpSink {
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, tls) = (m.clone(), tls.clone());
                std::thread::spawn(move || {
                    let Ok(clone) = stream.try_clone() else {
                        return;
                    };
                    let upgrade = smtp_session(BufReader::new(stream), &m, false, tls.is_some());
                    if let (Some(tcp), Some(tls)) = (upgrade.then_some(clone), tls) {
                        let Ok(conn) = rustls::ServerConnection::new(tls) else {
                            return;
                        };
                        let secure = rustls::StreamOwned::new(conn, tcp);
                        smtp_session(BufReader::new(secure), &m, true, false);
                    }
                });
            }
        });
        SmtpSink { mails }
    }

    /// A sink spoken to over TLS from the start (port 465's way), with that certificate.
    fn start_tls(listener: TcpListener, tls: Arc<rustls::ServerConfig>) -> SmtpSink {
        let mails = Arc::new(Mutex::new(Vec::new()));
        let m = mails.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (m, tls) = (m.clone(), tls.clone());
                std::thread::spawn(move || {
                    let Ok(conn) = rustls::ServerConnection::new(tls) else {
                        return;
                    };
                    let mut secure = rustls::StreamOwned::new(conn, stream);
                    if secure.write_all(b"220 sink.test ESMTP\r\n").is_ok() {
                        smtp_session(BufReader::new(secure), &m, true, false);
                    }
                });
            }
        });
        SmtpSink { mails }
    }

    pub(crate) fn mails(&self) -> Vec<Mail> {
        self.mails.lock().expect("lock").clone()
    }

    /// Waits up to `secs` for a message to `to` whose text contains `having`.
    pub(crate) fn wait_for(&self, to: &str, having: &str, secs: u64) -> Mail {
        let until = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < until {
            if let Some(m) = self
                .mails()
                .into_iter()
                .find(|m| m.to == to && m.data.contains(having))
            {
                return m;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no mail to {to} with {having:?}: {:?}", self.mails());
    }
}

/// Speaks SMTP on `io` until QUIT; true when the client asked for STARTTLS (and was told to
/// go ahead), so the caller upgrades the connection.
fn smtp_session<S: Read + Write>(
    mut io: BufReader<S>,
    mails: &Mutex<Vec<Mail>>,
    tls: bool,
    offer_tls: bool,
) -> bool {
    let greeting: &[u8] = if tls { b"" } else { b"220 sink.test ESMTP\r\n" };
    if io.get_mut().write_all(greeting).is_err() {
        return false;
    }
    let (mut to, mut auth) = (String::new(), None);
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            if offer_tls {
                b"250-sink.test\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
            }
        } else if upper.starts_with("STARTTLS") && offer_tls {
            let _ = io.get_mut().write_all(b"220 go ahead\r\n");
            return true;
        } else if upper.starts_with("AUTH PLAIN ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(line[11..].trim())
                .unwrap_or_default();
            let parts: Vec<String> = decoded
                .split(|&b| b == 0)
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            auth = Some(parts[1..].join(":"));
            b"235 ok\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to = line[8..].trim().trim_matches(['<', '>']).to_owned();
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            let _ = io.get_mut().write_all(b"354 go on\r\n");
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if io.read_line(&mut l).unwrap_or(0) == 0 {
                    return false;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            mails.lock().expect("lock").push(Mail {
                to: to.clone(),
                data,
                tls,
                auth: auth.clone(),
            });
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = io.get_mut().write_all(b"221 bye\r\n");
            return false;
        } else {
            b"250 OK\r\n"
        };
        if io.get_mut().write_all(reply).is_err() {
            return false;
        }
    }
}

/// A webhook receiver: keeps each POST's body.
fn webhook_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut out = stream;
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut body = vec![0; super::content_length(&head)];
            if reader.read_exact(&mut body).is_ok() {
                b.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = out.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

/// The demo school's staff (with the DSL's and deputy's email addresses) in the store.
pub(crate) fn import_staff(data: &std::path::Path) {
    let staff = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/demo-people/staff.csv"
    );
    ok(&haven(data, &["people", "import", "staff", staff]));
}

fn captures(data: &std::path::Path) -> Vec<serde_json::Value> {
    crate::json_lines(data, &["monitor", "captures", "--json"])
}

fn wait_captures(
    data: &std::path::Path,
    until: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let all = captures(data);
        if until(&all) {
            return all;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the expected captures never came: {:?}", captures(data));
}

pub(crate) const DSL: &str = "p.shah@demo-school.example";
const DEPUTY: &str = "g.lloyd@demo-school.example";

#[test]
fn a_paraphrase_no_phrase_names_alerts_by_the_model() {
    let origin = Origin::start();
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let sink = SmtpSink::start(smtp);
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nfrom = \"haven@demo-school.example\"\n"
    );
    let p = start_proxy_with("alerts-model", &extra, &import_staff);
    // A farewell that never names suicide (written for this test): no library phrase.
    let words = "ive+written+the+letters+for+mum+and+my+sister+tonight+is+the+night+im+done";
    let (code, _, _) = curl(
        &p,
        "127.0.0.2",
        &[&format!(
            "http://www.google.co.uk:{}/search?q={words}",
            origin.port
        )],
    );
    assert_eq!(code, "200");
    let mail = sink.wait_for(DSL, "Grade 5 capture: suicide", 10);
    assert!(!mail.data.contains("letters"), "{}", mail.data);
    let all = captures(&p.data);
    let c = &all[0];
    assert_eq!(c["grade"], 5, "{all:?}");
    assert_eq!(c["matched"], "", "no phrase of the library: {c}");
    assert!(
        c["model"]
            .as_str()
            .is_some_and(|m| m.starts_with("suicide 5")),
        "the capture says the model graded it: {c}"
    );
}

#[test]
fn a_grade_5_search_alerts_the_dsl_at_once_and_escalates_when_nobody_opens_it() {
    let origin = Origin::start();
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let sink = SmtpSink::start(smtp);
    let (hook_port, hooks) = webhook_sink();
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\", \"forum.example\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nfrom = \"haven@demo-school.example\"\n\
         webhooks = [\"http://127.0.0.1:{hook_port}/hook\"]\nescalate_after_minutes = 0.05\n\
         console_url = \"https://haven.demo-school.example\"\n"
    );
    let p = start_proxy_with("alerts", &extra, &import_staff);
    let port = origin.port;
    let search = |q: &str| {
        let (code, _, _) = curl(
            &p,
            "127.0.0.2",
            &[&format!("http://www.google.co.uk:{port}/search?q={q}")],
        );
        assert_eq!(code, "200");
    };
    // An educational search shares the words but is not a capture, and alerts nobody.
    search("suicide+prevention+week+assembly+ideas");
    search("how+do+i+k1ll+myself");
    let mail = sink.wait_for(DSL, "Grade 5 capture: suicide", 10);
    let all = captures(&p.data);
    assert_eq!(
        all[0]["text"], "how do i k1ll myself",
        "top of the queue: {all:?}"
    );
    assert_eq!(all[0]["grade"], 5);
    assert!(
        !all.iter()
            .any(|c| c["text"].as_str().unwrap_or("").contains("prevention")),
        "{all:?}"
    );
    let id = all[0]["id"].as_i64().expect("id");
    // The email links to the capture and carries neither the pupil's words nor who they are.
    assert!(
        mail.data
            .contains(&format!("https://haven.demo-school.example/triage/{id}")),
        "{}",
        mail.data
    );
    assert!(!mail.data.contains("k1ll") && !mail.data.contains("127.0.0.2"));
    assert!(mail
        .data
        .contains("Subject: [Haven] Grade 5 capture: suicide"));
    // The webhook had it too, as JSON.
    let hook = (0..100)
        .find_map(|_| {
            let found = hooks.lock().expect("lock").first().cloned();
            if found.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            found
        })
        .expect("a webhook POST");
    let hook: serde_json::Value = serde_json::from_str(&hook).expect("json");
    assert_eq!(hook["grade"], 5);
    assert_eq!(hook["capture"], id);
    assert_eq!(hook["level"], "rota");
    // Nobody opened it: after three seconds it goes to the deputy.
    let escalation = sink.wait_for(DEPUTY, "Not yet opened", 15);
    assert!(
        escalation.data.contains(&format!("/triage/{id}")),
        "{}",
        escalation.data
    );
    // Only the DSL on the rota got the first one; the deputy only the escalation.
    assert!(!sink
        .mails()
        .iter()
        .any(|m| m.to == DEPUTY && !m.data.contains("Not yet opened")));
    // A page a pupil reads is graded too, keeping the passage that counted.
    let (code, _, _) = curl(
        &p,
        "127.0.0.2",
        &[
            "--compressed",
            &format!("http://forum.example:{port}/forum"),
        ],
    );
    assert_eq!(code, "200");
    let all = wait_captures(&p.data, |c| c.iter().any(|c| c["source"] == "page"));
    let page = all.iter().find(|c| c["source"] == "page").expect("page");
    assert_eq!(page["grade"], 5);
    assert!(
        page["text"]
            .as_str()
            .is_some_and(|t| t.contains("just want to die") && !t.contains("<p>")),
        "{page}"
    );
    // A blocked attempt at a pornography site is a grade-3 capture; it alerts nobody.
    let (code, _, _) = curl(&p, "127.0.0.2", &["http://pornhub.com/"]);
    assert_eq!(code, "403");
    let all = wait_captures(&p.data, |c| c.iter().any(|c| c["source"] == "blocked"));
    let blocked = all
        .iter()
        .find(|c| c["source"] == "blocked")
        .expect("blocked");
    assert_eq!(blocked["grade"], 3);
    assert!(blocked["categories"]
        .as_str()
        .is_some_and(|c| c.starts_with("pornography:3")));
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        !sink.mails().iter().any(|m| m.data.contains("pornography")),
        "grade 3 is under the alerting grade"
    );
}

#[test]
fn an_alert_waits_out_a_mail_server_that_is_down_and_a_crash() {
    let origin = Origin::start();
    let smtp_port = free_port();
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nfrom = \"haven@demo-school.example\"\n\
         escalate_after_minutes = 0\n"
    );
    let mut p = start_proxy_with("alerts-restart", &extra, &import_staff);
    let (code, _, _) = curl(
        &p,
        "127.0.0.2",
        &[&format!(
            "http://www.google.co.uk:{}/search?q=i+want+to+end+my+life",
            origin.port
        )],
    );
    assert_eq!(code, "200");
    wait_captures(&p.data, |c| !c.is_empty());
    // The mail server is down: the delivery fails and waits. Haven dies without warning.
    std::thread::sleep(Duration::from_millis(1500));
    p.kill_and_restart();
    // The mail server comes back; the alert queued in the store still reaches the DSL.
    let sink = SmtpSink::start(TcpListener::bind(("127.0.0.1", smtp_port)).expect("bind"));
    let mail = sink.wait_for(DSL, "Grade 5 capture: suicide", 30);
    assert!(mail.data.contains("/triage/"), "{}", mail.data);
    assert_eq!(
        sink.mails().iter().filter(|m| m.to == DSL).count(),
        1,
        "sent once"
    );
}

#[test]
fn alerts_reach_a_mail_server_over_starttls_with_a_sign_in() {
    let origin = Origin::start();
    let certs = crate::scratch("alerts-tls-certs");
    let (ca, cert, key) = crate::make_certs(&certs);
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let sink = SmtpSink::start_with(smtp, Some(crate::tls_server_config(&cert, &key)));
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nsmtp_security = \"starttls\"\n\
         smtp_user = \"haven@demo-school.example\"\nca_file = \"{}\"\n\
         from = \"haven@demo-school.example\"\nescalate_after_minutes = 0\n",
        ca.display()
    );
    // The password comes from the environment, never the file.
    let p = start_proxy_with_env(
        "alerts-tls",
        &extra,
        &import_staff,
        &[("HAVEN_SMTP_PASSWORD", "relay-secret-7")],
    );
    let (code, _, _) = curl(
        &p,
        "127.0.0.2",
        &[&format!(
            "http://www.google.co.uk:{}/search?q=i+want+to+end+my+life",
            origin.port
        )],
    );
    assert_eq!(code, "200");
    let mail = sink.wait_for(DSL, "Grade 5 capture: suicide", 15);
    assert!(mail.tls, "the message went over TLS");
    assert_eq!(
        mail.auth.as_deref(),
        Some("haven@demo-school.example:relay-secret-7")
    );
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn alerts_reach_a_mail_server_over_tls_from_the_start_with_a_sign_in() {
    let origin = Origin::start();
    let certs = crate::scratch("alerts-tls465-certs");
    let (ca, cert, key) = crate::make_certs(&certs);
    let smtp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let smtp_port = smtp.local_addr().expect("addr").port();
    let sink = SmtpSink::start_tls(smtp, crate::tls_server_config(&cert, &key));
    let extra = format!(
        "hosts = {{ \"www.google.co.uk\" = \"127.0.0.1\" }}\n\
         [alerts]\nsmtp = \"127.0.0.1:{smtp_port}\"\nsmtp_security = \"tls\"\n\
         smtp_user = \"haven@demo-school.example\"\nca_file = \"{}\"\n\
         from = \"haven@demo-school.example\"\nescalate_after_minutes = 0\n",
        ca.display()
    );
    let p = start_proxy_with_env(
        "alerts-tls465",
        &extra,
        &import_staff,
        &[("HAVEN_SMTP_PASSWORD", "relay-secret-7")],
    );
    let (code, _, _) = curl(
        &p,
        "127.0.0.2",
        &[&format!(
            "http://www.google.co.uk:{}/search?q=i+want+to+end+my+life",
            origin.port
        )],
    );
    assert_eq!(code, "200");
    let mail = sink.wait_for(DSL, "Grade 5 capture: suicide", 15);
    assert!(mail.tls, "the message went over TLS");
    assert_eq!(
        mail.auth.as_deref(),
        Some("haven@demo-school.example:relay-secret-7")
    );
    let _ = std::fs::remove_dir_all(&certs);
}
