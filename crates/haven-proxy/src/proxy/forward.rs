//! Passing an allowed request on to its website (hop-by-hop headers stripped, origin form,
//! `Via`, a kept connection when there is one) and streaming the answer back; WebSocket
//! upgrades spliced.

use std::sync::Arc;
use std::time::Duration;

use haven_core::Engine;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use super::body::{empty, Body, IdleBody};
use super::filter::Dest;
use super::pool::Returning;
use super::{Conn, Proxy};
use crate::headers::{is_websocket, strip_hop_by_hop, Upgrade};

/// A response of a file type the group blocks (`block_file_types`): its extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BlockedType(pub(super) String);

impl Proxy {
    /// Passes an allowed request on and streams the answer back.
    /// `Err`: the response is a file type in `blocked_types` (by its MIME type or attachment
    /// name); it is dropped unread.
    pub(super) async fn forward(
        &self,
        mut req: Request<Incoming>,
        dest: Dest,
        engine: &Engine,
        blocked_types: &[String],
        conn: &Arc<Conn>,
    ) -> Result<Response<Body>, BlockedType> {
        let school = self.school(engine);
        let uri = req.uri().clone();
        let host = dest.host.as_str();
        let websocket = is_websocket(req.headers());
        let upgrade = if websocket {
            Upgrade::Keep
        } else {
            Upgrade::Strip
        };
        strip_hop_by_hop(req.headers_mut(), upgrade);
        if let Ok(v) = HeaderValue::from_str(&format!("1.1 {}", self.via)) {
            req.headers_mut().append(header::VIA, v);
        }
        // An absolute-form request's Host is its URL's authority, whatever the client sent
        // (RFC 9112 §3.2.2); a decrypted request keeps its own.
        if let Some(authority) = uri.authority() {
            if let Ok(v) = HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(header::HOST, v);
            }
        } else if !req.headers().contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(host) {
                req.headers_mut().insert(header::HOST, v);
            }
        }
        // Origin servers expect the origin form: the path and query only.
        let origin_form = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse::<Uri>()
            .unwrap_or_else(|_| Uri::from_static("/"));
        *req.uri_mut() = origin_form;
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        let key = (dest.host.clone(), dest.port, dest.tls);
        let mut sender = match self.pool.take(&key) {
            Some(s) => s,
            None => match self.handshake(&dest, school).await {
                Ok(sender) => sender,
                Err(resp) => return Ok(resp),
            },
        };
        // A browser that stops sending its request body for the body timeout is cut off.
        let idle = self.config.body_timeout();
        let req = req.map(|b| IdleBody::new(b, idle).boxed());
        let limit = Duration::from_millis(self.config.read_timeout_ms);
        let mut resp = match tokio::time::timeout(limit, sender.send_request(req)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                return Ok(self.failed(
                    school,
                    StatusCode::BAD_GATEWAY,
                    &format!("{host} broke off the answer: {e}"),
                ))
            }
            Err(_) => {
                return Ok(self.failed(
                    school,
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!(
                        "{host} did not start answering within {} s",
                        limit.as_secs_f32()
                    ),
                ))
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client_upgrade) = client_upgrade {
                let origin_upgrade = hyper::upgrade::on(&mut resp);
                let conn = conn.clone();
                tokio::spawn(async move {
                    // The WebSocket keeps the browser connection's slot.
                    let _conn = conn;
                    if let (Ok(c), Ok(o)) = (client_upgrade.await, origin_upgrade.await) {
                        let _ = tokio::io::copy_bidirectional(
                            &mut TokioIo::new(c),
                            &mut TokioIo::new(o),
                        )
                        .await;
                    }
                });
                let (parts, _) = resp.into_parts();
                return Ok(Response::from_parts(parts, empty()));
            }
        }
        if let Some(ext) = crate::filetype::of_response(resp.headers())
            .into_iter()
            .find(|e| blocked_types.contains(e))
        {
            return Err(BlockedType(ext));
        }
        strip_hop_by_hop(resp.headers_mut(), Upgrade::Strip);
        let (parts, body) = resp.into_parts();
        let body = Returning::new(body, self.pool.clone(), key, sender);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// A new connection to the website, ready for a request; an error page when it cannot be
    /// reached.
    async fn handshake(
        &self,
        dest: &Dest,
        school: &str,
    ) -> Result<SendRequest<Body>, Response<Body>> {
        let stream = self
            .dial_origin(dest)
            .await
            .map_err(|e| self.failed(school, e.status(), &e.to_string()))?;
        match hyper::client::conn::http1::Builder::new()
            .handshake::<_, Body>(TokioIo::new(stream))
            .await
        {
            Ok((sender, conn)) => {
                tokio::spawn(conn.with_upgrades());
                Ok(sender)
            }
            Err(e) => Err(self.failed(school, StatusCode::BAD_GATEWAY, &e.to_string())),
        }
    }
}
