//! Attacks on the outbound client from the servers it reaches: origins that drip their answer
//! a byte at a time, never answer, send more than the cap (announced or not), or redirect
//! forever. Each test has a deadline of its own well past the client's, so a client without the
//! limit fails the test instead of hanging it.

use std::future::Future;
use std::time::Duration;

use haven_notify::client::Stage;
use haven_notify::{Client, ClientError, Limits, Redirects};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const SHORT: Limits = Limits {
    connect: Duration::from_secs(1),
    handshake: Duration::from_secs(1),
    first_byte: Duration::from_secs(1),
    idle: Duration::from_secs(1),
    whole: Duration::from_secs(2),
    max_body: 1 << 20,
    redirects: Redirects::Refuse,
};

/// Serves every connection on loopback with `answer` (after reading the request head).
async fn origin<F, Fut>(answer: F) -> String
where
    F: Fn(TcpStream, String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            tokio::spawn(answer(s, String::from_utf8_lossy(&head).into_owned()));
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// Runs `f` with a deadline of its own: a client that never gives up fails here.
async fn guarded<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("the client gave up by itself, well before 10 s")
}

#[tokio::test]
async fn a_body_dripped_a_byte_at_a_time_is_cut_off_by_the_whole_deadline() {
    // Each byte comes well within the idle limit; only the deadline on the whole exchange ends it.
    let base = origin(|mut s, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            .await;
        loop {
            if s.write_all(b"x").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let client = Client::new(None, SHORT);
    let started = Instant::now();
    let result = guarded(async {
        let mut r = client.get(&format!("{base}/list")).await?;
        while r.chunk().await?.is_some() {}
        Ok::<_, ClientError>(())
    })
    .await;
    assert!(
        matches!(
            result,
            Err(ClientError::Timeout {
                stage: Stage::Body,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_head_dripped_a_byte_at_a_time_is_cut_off_by_the_first_byte_deadline() {
    let base = origin(|mut s, _| async move {
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n").await;
        loop {
            if s.write_all(b"X-A: b\r\n").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let client = Client::new(None, SHORT);
    let result = guarded(client.post(&format!("{base}/hook"), "application/json", "{}")).await;
    assert!(
        matches!(
            result,
            Err(ClientError::Timeout {
                stage: Stage::FirstByte,
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_is_left_after_the_first_byte_deadline() {
    let base = origin(|s, _| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(s);
    })
    .await;
    let client = Client::new(None, SHORT);
    let result = guarded(client.post(&format!("{base}/hook"), "application/json", "{}")).await;
    assert!(
        matches!(result, Err(ClientError::Timeout { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_whether_announced_or_not() {
    // Not announced: read until the connection closes, and cut off past the cap.
    let base = origin(|mut s, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .await;
        let block = vec![b'x'; 64 * 1024];
        for _ in 0..64 {
            if s.write_all(&block).await.is_err() {
                return;
            }
        }
    })
    .await;
    let client = Client::new(None, SHORT);
    let mut response = guarded(client.get(&format!("{base}/big")))
        .await
        .expect("head");
    let mut read = 0usize;
    let result = guarded(async {
        while let Some(data) = response.chunk().await? {
            read += data.len();
        }
        Ok::<_, ClientError>(())
    })
    .await;
    assert!(
        matches!(result, Err(ClientError::TooLarge { limit, .. }) if limit == 1 << 20),
        "{result:?}"
    );
    assert!(read <= 1 << 20, "handed on {read} bytes");
    // Announced: refused before a byte of the body is read.
    let base = origin(|mut s, _| async move {
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4194304\r\n\r\nxxxx")
            .await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    })
    .await;
    let result = guarded(client.get(&format!("{base}/big"))).await;
    assert!(
        matches!(result, Err(ClientError::TooLarge { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn redirects_are_followed_only_when_asked_and_only_so_far() {
    let base = origin(|mut s, head| async move {
        let answer = if head.starts_with("GET /final ") {
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".to_owned()
        } else if head.starts_with("GET /loop") {
            "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        } else {
            "HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_owned()
        };
        let _ = s.write_all(answer.as_bytes()).await;
    })
    .await;
    let refuse = Client::new(None, SHORT);
    let r = guarded(refuse.get(&format!("{base}/start")))
        .await
        .expect("answer");
    assert_eq!(r.status(), 302);
    assert!(matches!(
        r.success(),
        Err(ClientError::Status { status: 302, .. })
    ));
    let follow = Client::new(
        None,
        Limits {
            redirects: Redirects::Follow { at_most: 3 },
            ..SHORT
        },
    );
    let r = guarded(follow.get(&format!("{base}/start")))
        .await
        .expect("answer");
    assert_eq!(r.url(), format!("{base}/final"));
    assert_eq!(guarded(r.bytes()).await.expect("body"), b"ok");
    let r = guarded(follow.get(&format!("{base}/loop"))).await;
    assert!(matches!(r, Err(ClientError::Redirects(_))), "{r:?}");
}

#[tokio::test]
async fn https_without_a_tls_configuration_and_other_schemes_are_refused() {
    let client = Client::new(None, SHORT);
    let r = guarded(client.get("ftp://lists.example/x")).await;
    assert!(matches!(r, Err(ClientError::BadUrl(_))), "{r:?}");
    let base = origin(|_, _| async {}).await;
    let https = base.replace("http://", "https://");
    let r = guarded(client.get(&https)).await;
    assert!(matches!(r, Err(ClientError::Tls { .. })), "{r:?}");
    assert!(r.expect_err("tls").to_string().contains("TLS"));
}
