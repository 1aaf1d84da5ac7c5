//! Kept connections to websites (keep-alive to the origin), and the response body that puts
//! its connection back once it has been read to the end.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use hyper::body::{Body as _, Bytes, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use super::body::{Body, BoxError};

/// Idle connections kept per website.
const IDLE_PER_ORIGIN: usize = 64;

/// A website as connections to it are kept: host, port, and whether over TLS.
pub(super) type OriginKey = (String, u16, bool);

/// Kept connections to websites, for keep-alive to the origin.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<OriginKey, Vec<SendRequest<Body>>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    pub(super) fn take(&self, key: &OriginKey) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(key)?;
        while let Some(s) = list.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    pub(super) fn give_back(&self, key: OriginKey, sender: SendRequest<Body>) {
        if !sender.is_ready() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(key).or_default();
            if list.len() < IDLE_PER_ORIGIN {
                list.push(sender);
            }
        }
    }
}

/// A response body passed through from a website that puts its connection back in the pool
/// once the body has been read to its end.
pub(super) struct Returning {
    inner: Incoming,
    back: Option<(Arc<Pool>, OriginKey, SendRequest<Body>)>,
}

impl Returning {
    pub(super) fn new(
        inner: Incoming,
        pool: Arc<Pool>,
        key: OriginKey,
        sender: SendRequest<Body>,
    ) -> Self {
        let mut r = Returning {
            inner,
            back: Some((pool, key, sender)),
        };
        if r.inner.is_end_stream() {
            r.finish();
        }
        r
    }

    fn finish(&mut self) {
        if let Some((pool, key, sender)) = self.back.take() {
            pool.give_back(key, sender);
        }
    }
}

impl hyper::body::Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(f))) => {
                let end = this.inner.is_end_stream();
                if end {
                    this.finish();
                }
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::rt::TokioIo;

    /// A connection to a pretend website, ready for a request; the website's end, and the
    /// task that drives the connection.
    async fn connection() -> (
        SendRequest<Body>,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<()>,
    ) {
        let (client, website) = tokio::io::duplex(1024);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client))
            .await
            .expect("handshake");
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.ready().await.expect("ready");
        (sender, website, driver)
    }

    #[tokio::test]
    async fn kept_connections_are_bounded_per_website_and_a_closed_one_is_never_handed_out() {
        let pool = Pool::default();
        let key: OriginKey = ("a.example".into(), 80, false);
        let mut websites = Vec::new();
        for _ in 0..IDLE_PER_ORIGIN + 2 {
            let (sender, website, driver) = connection().await;
            pool.give_back(key.clone(), sender);
            websites.push((website, driver));
        }
        assert_eq!(
            pool.idle.lock().expect("lock").get(&key).map(Vec::len),
            Some(IDLE_PER_ORIGIN)
        );
        // Kept per website (host, port and TLS): another one has none.
        assert!(pool.take(&("a.example".into(), 443, true)).is_none());
        assert!(pool.take(&key).is_some());
        // The websites close their ends: none of those connections is handed out again.
        for (website, driver) in websites {
            drop(website);
            driver.await.expect("driver");
        }
        assert!(pool.take(&key).is_none());
    }
}
