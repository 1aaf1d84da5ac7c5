//! Mail through lettre against an SMTP sink on loopback: what the server receives.

use std::sync::{Arc, Mutex};

use haven_notify::{Mail, MailServer, Mailer, Security};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// A plain SMTP sink: every line the client sent, in order.
async fn sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let kept = lines.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut io = BufReader::new(s);
                let _ = io.get_mut().write_all(b"220 sink.test ESMTP\r\n").await;
                let mut data = false;
                loop {
                    let mut line = String::new();
                    if io.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    kept.lock().expect("lock").push(line.clone());
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if data {
                        if line == ".\r\n" {
                            data = false;
                            b"250 queued\r\n"
                        } else {
                            continue;
                        }
                    } else if upper.starts_with("EHLO") {
                        b"250-sink.test\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("AUTH") {
                        b"235 ok\r\n"
                    } else if upper.starts_with("DATA") {
                        data = true;
                        b"354 go on\r\n"
                    } else if upper.starts_with("QUIT") {
                        let _ = io.get_mut().write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if io.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, lines)
}

#[tokio::test]
async fn a_message_arrives_dot_stuffed_with_its_headers() {
    let (port, lines) = sink().await;
    let mailer = Mailer::new(
        &MailServer {
            host: "127.0.0.1".into(),
            port,
            security: Security::Plain,
            credentials: None,
            hello: "demo-school.example".into(),
        },
        None,
    )
    .expect("mailer");
    let mail = Mail {
        from_name: "Haven".into(),
        from: "haven@demo-school.example".into(),
        to: "p.shah@demo-school.example".into(),
        subject: "[Haven] Grade 5 capture: suicide".into(),
        body: "Monitoring recorded a grade 5 capture in suicide at 12:34 on Wed 2 Dec 2026 (source: search).\r\n.a line starting with a dot\r\nLast — with a dash.\r\n".into(),
        message_id: "haven-alert-1-2@demo-school.example".into(),
    };
    mailer.send(&mail).await.expect("sent");
    let lines = lines.lock().expect("lock").clone();
    let all = lines.concat();
    assert!(
        lines.iter().any(|l| l == "EHLO demo-school.example\r\n"),
        "{all}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("RCPT TO:<p.shah@demo-school.example>")),
        "{all}"
    );
    for header in [
        "Subject: [Haven] Grade 5 capture: suicide\r\n",
        "From: Haven <haven@demo-school.example>\r\n",
        "Message-ID: <haven-alert-1-2@demo-school.example>\r\n",
        "Auto-Submitted: auto-generated\r\n",
        "Content-Transfer-Encoding: 8bit\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: text/plain; charset=utf-8\r\n",
    ] {
        assert!(lines.iter().any(|l| l == header), "{header:?} in {all}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l == "..a line starting with a dot\r\n"),
        "{all}"
    );
    assert!(
        lines.iter().any(|l| l == "Last — with a dash.\r\n"),
        "{all}"
    );
    // Long lines are wrapped, never cut inside a word.
    assert!(all.contains("(source: search).\r\n"), "{all}");
    assert!(lines.iter().all(|l| l.len() <= 78), "{all}");
}
