//! Serving HTTP on a listener anyone on the LAN can reach (the console, the metrics endpoint):
//! connections capped in all and per address, request headers and whole requests (bodies
//! included) given deadlines, so a device dripping bytes or holding idle connections cannot
//! take the listener, or the process's file descriptors, from everyone else.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// How much of a listener one client, and everyone together, may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once; past this a new one is closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub per_client: usize,
    /// Time allowed for a request's headers (and for the next request on a kept-alive
    /// connection), after which the connection is closed.
    pub header_timeout: Duration,
    /// Time allowed for a whole request, body included, after which it is answered 408.
    pub request_timeout: Duration,
}

impl Limits {
    /// The console's limits: `max_connections` in all, a quarter of them (at most 32) from
    /// one address, a whole request within `request_timeout` and its headers within ten
    /// seconds (or the request timeout, if shorter).
    pub fn console(max_connections: usize, request_timeout: Duration) -> Limits {
        let max_connections = max_connections.max(1);
        Limits {
            max_connections,
            per_client: (max_connections / 4).clamp(1, 32),
            header_timeout: request_timeout.min(Duration::from_secs(10)),
            request_timeout,
        }
    }

    /// The metrics endpoint's limits (a scraper or two).
    pub fn metrics() -> Limits {
        Limits {
            max_connections: 16,
            per_client: 4,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Connections open per address, with a slot released when its guard drops.
#[derive(Debug, Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    fn take(self: &Arc<Self>, ip: IpAddr, cap: usize) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(ClientSlot(self.clone(), ip))
    }
}

struct ClientSlot(Arc<PerClient>, IpAddr);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.1);
            }
        }
    }
}

/// Serves HTTP/1.1 on `listener` until it fails, each connection answered by the service
/// `make(peer)` returns, within `limits`. Connections past a cap are closed at once, before
/// anything is read; an accept that fails (out of file descriptors) is retried after a pause
/// rather than in a busy loop.
pub async fn serve<S, B, F, Fut>(listener: tokio::net::TcpListener, limits: Limits, make: S)
where
    S: Fn(SocketAddr) -> F + Send + Sync + 'static,
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + From<&'static str> + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let make = Arc::new(make);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of descriptors, most likely: give others a moment to close theirs.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let Some(slot) = per_client.take(peer.ip(), limits.per_client) else {
            drop(stream);
            continue;
        };
        let handler = Arc::new(make(peer));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let answer = tokio::time::timeout(limits.request_timeout, handler(req)).await;
                    Ok::<_, Infallible>(answer.unwrap_or_else(|_| too_slow()))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop((permit, slot));
        });
    }
}

/// The answer to a request that took longer than its deadline (a dripped body).
fn too_slow<B: From<&'static str>>() -> Response<B> {
    let mut resp = Response::new(B::from("The request took too long to arrive.\n"));
    *resp.status_mut() = hyper::StatusCode::REQUEST_TIMEOUT;
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_holds_at_most_its_share() {
        let per = Arc::new(PerClient::default());
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let held: Vec<_> = (0..3).filter_map(|_| per.take(a, 3)).collect();
        assert_eq!(held.len(), 3);
        assert!(per.take(a, 3).is_none(), "a fourth from the same address");
        assert!(per.take(b, 3).is_some(), "another address still gets in");
        drop(held);
        assert!(
            per.take(a, 3).is_some(),
            "slots come back when connections close"
        );
    }
}
