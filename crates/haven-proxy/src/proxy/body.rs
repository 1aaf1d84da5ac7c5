//! The bodies the proxy sends and the pages it makes: its own pages as responses, and a
//! browser's request body with an idle limit.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::page;

/// Errors from inside a body (the origin's, or the client's).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every body the proxy sends: a page it made, or a stream passed through.
pub type Body = http_body_util::combinators::BoxBody<Bytes, BoxError>;

/// A body of the whole of `s`.
pub(crate) fn full(s: String) -> Body {
    Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub(crate) fn empty() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A page the proxy made, with the headers every such page has.
pub(crate) fn page_response(status: StatusCode, html: String) -> Response<Body> {
    let mut resp = Response::new(full(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action *"),
    );
    resp
}

/// "Nothing is here", for an address on the proxy itself that it does not serve.
pub(super) fn not_found(school: &str) -> Response<Body> {
    page_response(
        StatusCode::NOT_FOUND,
        page::error(
            school,
            "Not found",
            "This is the school's web filter. Nothing is here.",
        ),
    )
}

/// The page for a website that could not answer.
pub(super) fn upstream_error(school: &str, status: StatusCode, why: &str) -> Response<Body> {
    let title = if status == StatusCode::GATEWAY_TIMEOUT {
        "The website took too long to answer"
    } else {
        "The website could not be reached"
    };
    page_response(status, page::error(school, title, why))
}

/// A request body from a browser that fails when nothing arrives for `idle`, so a client
/// dripping (or stalling) a body cannot hold its connection, and the website's, for ever.
pub(super) struct IdleBody {
    inner: Incoming,
    idle: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Whether the deadline runs: from the first poll that found nothing to the next piece
    /// (a website slow to take the body does not count against the browser).
    waiting: bool,
}

impl IdleBody {
    pub(super) fn new(inner: Incoming, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
        }
    }
}

impl hyper::body::Body for IdleBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(f)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let until = tokio::time::Instant::now() + this.idle;
                    this.deadline.as_mut().reset(until);
                }
                match this.deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                        "the browser sent nothing of its request body for {} s",
                        this.idle.as_secs_f32()
                    )
                    .into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
