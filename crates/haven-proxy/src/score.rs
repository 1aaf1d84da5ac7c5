//! Real-time content scoring of a response: text/html, text/plain and application/json bodies
//! (gzip, deflate, br or zstd decoded) run through the weighted-phrase scanner. The body is
//! held while it is scored, up to a size cap, so that a page over the group's limit can be
//! replaced by the block page; a larger body passes unscored, and the event says so. Scoring
//! runs on a blocking thread, never on the thread that serves DNS and the proxy.
//!
//! For a group with `classify_pages`, a page under the phrase limit is also read by the learned
//! model ([`haven_model`]), passage by passage: a passage it reads as grade 4 or more in one of
//! the group's categories (a drug shop, a pro-self-harm forum, an escort advert) blocks the
//! page, and the event keeps that passage. Support, health, news and lesson pages use the same
//! words, which is why this is a model and not a word list.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use haven_core::phrases::{Scanner, Score};
use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, SizeHint};
use hyper::header::{self, HeaderMap};
use hyper::Response;

use crate::proxy::{Body, BoxError};

/// Uncompressed pages up to this size are scored on the serving thread (about 50 µs at the
/// scanner's speed); larger or compressed ones on a blocking thread.
const INLINE_BYTES: usize = 16 * 1024;

/// Decoded bytes scanned at most (a page that inflates beyond this is scored on its start).
const DECODED_CAP: usize = 64 * 1024 * 1024;

/// Pages are classified from at most this much of their text (a page shows what it is long
/// before this; the cost grows with the text).
const CLASSIFIED_TEXT: usize = 32 * 1024;

/// A passage must be at least this likely to be of grade 4 or more to block its page. A page is
/// judged by its worst passage, so a passage's false positives multiply by the passages in a
/// page: the lowest likelihood at which no held-out proper training passage is flagged by the
/// page model (`haven_monitor::training::BUILT_IN_PAGE_MODEL`): 2 of 80 at 0.5, none at 0.7;
/// harmful passages caught 65 and 53 of 80. (For the text model it would be 0.6.)
const CLASSIFY_LIKELIHOOD: f32 = 0.7;

/// Pages classified on the serving thread, at most (bytes as they came, uncompressed).
const INLINE_CLASSIFY_BYTES: usize = 4 * 1024;

/// A group's page classification: the model in force and the monitoring categories blocked.
#[derive(Clone)]
pub struct Classify {
    /// The model.
    pub model: Arc<haven_model::Model>,
    /// Monitoring categories whose pages are blocked.
    pub categories: Vec<String>,
}

impl std::fmt::Debug for Classify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classify")
            .field("categories", &self.categories)
            .finish_non_exhaustive()
    }
}

/// A page the model classified in a blocked category.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    /// The monitoring category.
    pub category: &'static str,
    /// The grade it read (4 or 5).
    pub grade: u8,
    /// How likely a grade of 4 or more is.
    pub likelihood: f32,
    /// The passage that decided.
    pub passage: String,
}

/// The filter category a page classified in a monitoring category is counted and explained
/// under (the block page's name and description).
pub fn filter_category(monitoring: &str) -> &'static str {
    match monitoring {
        "self-harm" | "suicide" => "self-harm",
        "drugs" => "drugs",
        "gambling" => "gambling",
        "extremism" => "extremism",
        "pornography" => "pornography",
        "violence" => "violence",
        "discrimination" | "bullying" => "discrimination",
        // Exploitation (escorting, "models wanted", carrying parcels for cash) and other illegal
        // trades: grown-up content, rather than pictures for adults, is what the page should say.
        _ => "adult-themes",
    }
}

/// A page's passages must average at least this likelihood of grade 4 or more: a page is
/// harmful when it is about harm throughout, not when one paragraph of a support or lesson page
/// reads like a concern (the helpline page that quotes what a child might say).
const PAGE_LIKELIHOOD: f32 = 0.3;

/// What the model makes of a page's text: a passage in a blocked category, or nothing. The
/// page is blocked when its worst passage is likely enough to be of grade 4 or more in a blocked
/// category and its passages on average lean that way too.
pub fn classify_text(text: &str, c: &Classify) -> Option<Classified> {
    let mut worst: Option<(haven_model::Opinion, std::ops::Range<usize>)> = None;
    let (mut sum, mut n) = (0f32, 0usize);
    for (o, range) in c.model.judge_passages(text) {
        let a = o.at_least(4);
        sum += a;
        n += 1;
        if worst.as_ref().is_none_or(|(w, _)| a > w.at_least(4)) {
            worst = Some((o, range));
        }
    }
    let (o, range) = worst?;
    let passage = &text[range];
    let likelihood = o.at_least(4);
    if likelihood < CLASSIFY_LIKELIHOOD
        || sum / (n as f32) < PAGE_LIKELIHOOD
        || !c.categories.iter().any(|x| x == o.category)
    {
        return None;
    }
    Some(Classified {
        category: o.category,
        grade: if o.at_least(5) >= 0.5 { 5 } else { 4 },
        likelihood,
        passage: passage.chars().take(300).collect(),
    })
}

/// What became of a response.
#[derive(Debug)]
pub enum Scored {
    /// Not text the scanner reads (an image, a download): passed on as it is.
    NotText(Response<Body>),
    /// Pass it on, with a note for the event: it was not (fully) scored.
    Pass(Response<Body>, Option<String>),
    /// Scored and under the limit: pass it on; the page as it came, for monitoring.
    Read(Response<Body>, Seen),
    /// Over the limit: the block page replaces it.
    Over(Score),
    /// Classified in a blocked category: the block page replaces it.
    Classified(Classified),
}

/// A page that was scored, as it came (perhaps compressed): monitoring reads its text later,
/// off the request path.
#[derive(Debug, Clone)]
pub struct Seen {
    body: Bytes,
    encoding: Encoding,
    html: bool,
}

impl Seen {
    /// Bytes held (as the page came).
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether it is an HTML page (rather than plain text or JSON).
    pub fn is_html(&self) -> bool {
        self.html
    }

    /// Whether the page was empty.
    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    /// The page's text (decoded; for HTML, what a reader sees), at most `cap` bytes.
    pub fn text(&self, cap: usize) -> Result<String, DecodeError> {
        page_text(&self.body, self.encoding, self.html, cap)
    }
}

/// A page's text (decoded; for HTML, what a reader sees), at most `cap` bytes.
fn page_text(body: &[u8], enc: Encoding, html: bool, cap: usize) -> Result<String, DecodeError> {
    let mut reader = reader(body, enc)?;
    let mut raw = Vec::new();
    (&mut reader).take(cap as u64 * 4).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    Ok(if html {
        haven_core::risk::html_text(&text, cap)
    } else {
        let mut end = text.len().min(cap);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text[..end].to_owned()
    })
}

/// Why a page could not be decoded (and so was not scored).
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A `Content-Encoding` the proxy does not decode.
    #[error("content-encoding {0}")]
    UnknownEncoding(String),
    /// A zstd frame header that does not read.
    #[error("zstd: {0}")]
    Zstd(#[source] ruzstd::decoding::errors::FrameDecoderError),
    /// The compressed stream broke off or is not what it says.
    #[error("could not decode ({0})")]
    Read(#[from] std::io::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
    Brotli,
    Zstd,
}

/// Whether a response is text the scanner reads: `Some(html)`.
fn scored_kind(headers: &HeaderMap) -> Option<bool> {
    let ct = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = ct.split(';').next()?.trim().to_ascii_lowercase();
    match essence.as_str() {
        "text/html" | "application/xhtml+xml" => Some(true),
        "text/plain" | "application/json" => Some(false),
        _ => None,
    }
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, DecodeError> {
    let Some(v) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let v = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
    Ok(match v.as_str() {
        "" | "identity" => Encoding::Identity,
        "gzip" | "x-gzip" => Encoding::Gzip,
        "deflate" => Encoding::Deflate,
        "br" => Encoding::Brotli,
        "zstd" => Encoding::Zstd,
        other => return Err(DecodeError::UnknownEncoding(other.to_owned())),
    })
}

/// Scores `resp` against the scanner's limit and classifies it, holding at most `cap` bytes.
pub async fn score(
    resp: Response<Body>,
    scanner: Option<(Arc<Scanner>, i64)>,
    classify: Option<Classify>,
    cap: usize,
) -> Scored {
    let Some(html) = scored_kind(resp.headers()) else {
        return Scored::NotText(resp);
    };
    let enc = match encoding(resp.headers()) {
        Ok(e) => e,
        Err(e) => return Scored::Pass(resp, Some(format!("not scored: {e}"))),
    };
    let (parts, mut body) = resp.into_parts();
    let mut raw: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    raw.extend_from_slice(&data);
                    if raw.len() > cap {
                        let note = format!("not scored: larger than {cap} bytes");
                        let rest = Prepend {
                            first: Some(Bytes::from(raw)),
                            rest: body,
                        };
                        return Scored::Pass(Response::from_parts(parts, rest.boxed()), Some(note));
                    }
                }
            }
            Err(e) => {
                // The website broke off: pass on what came, as a browser would have seen it.
                let note = format!("not scored: the website broke off ({e})");
                let partial = http_body_util::Full::new(Bytes::from(raw))
                    .map_err(|never| match never {})
                    .boxed();
                return Scored::Pass(Response::from_parts(parts, partial), Some(note));
            }
        }
    }
    // A small page is scored in place (a few microseconds); a large one on a blocking thread,
    // so the thread serving DNS and the proxy never waits on it.
    let inline = if classify.is_some() {
        INLINE_CLASSIFY_BYTES
    } else {
        INLINE_BYTES
    };
    let run = move |raw: Vec<u8>| {
        let mut result = match &scanner {
            Some((s, limit)) => {
                decode_and_score(&raw, enc, s, html, *limit).map(|o| o.map(Scored::Over))
            }
            None => Ok(None),
        };
        // Pages only (HTML): an API's JSON or a plain-text file is not a page a pupil reads.
        if let (Ok(None), Some(c), true) = (&result, &classify, html) {
            result = page_text(&raw, enc, html, CLASSIFIED_TEXT)
                .map(|text| classify_text(&text, c).map(Scored::Classified));
        }
        (raw, result)
    };
    let scored = if raw.len() <= inline && enc == Encoding::Identity {
        Ok(run(raw))
    } else {
        tokio::task::spawn_blocking(move || run(raw)).await
    };
    let Ok((raw, result)) = scored else {
        let r = Response::from_parts(parts, crate::proxy::empty());
        return Scored::Pass(r, Some("not scored: scoring failed".into()));
    };
    let raw = Bytes::from(raw);
    let body = http_body_util::Full::new(raw.clone())
        .map_err(|never| match never {})
        .boxed();
    match result {
        Ok(Some(s)) => s,
        Ok(None) => Scored::Read(
            Response::from_parts(parts, body),
            Seen {
                body: raw,
                encoding: enc,
                html,
            },
        ),
        Err(e) => Scored::Pass(
            Response::from_parts(parts, body),
            Some(format!("not scored: {e}")),
        ),
    }
}

/// `raw` decoded as it is read.
fn reader(raw: &[u8], enc: Encoding) -> Result<Box<dyn Read + '_>, DecodeError> {
    Ok(match enc {
        Encoding::Identity => Box::new(raw),
        Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw)),
        // HTTP's deflate is zlib-wrapped; some servers send it raw.
        Encoding::Deflate if raw.first().is_some_and(|b| b & 0x0F == 8) => {
            Box::new(flate2::read::ZlibDecoder::new(raw))
        }
        Encoding::Deflate => Box::new(flate2::read::DeflateDecoder::new(raw)),
        Encoding::Brotli => Box::new(brotli_decompressor::Decompressor::new(raw, 16 * 1024)),
        Encoding::Zstd => {
            Box::new(ruzstd::decoding::StreamingDecoder::new(raw).map_err(DecodeError::Zstd)?)
        }
    })
}

/// `Ok(None)`: under the limit; `Ok(Some(score))`: over it, with the report.
fn decode_and_score(
    raw: &[u8],
    enc: Encoding,
    scanner: &Scanner,
    html: bool,
    limit: i64,
) -> Result<Option<Score>, DecodeError> {
    let verdict = |mut scan: haven_core::phrases::Scan<'_>| {
        if scan.total() > limit {
            Some(scan.report())
        } else {
            None
        }
    };
    if enc == Encoding::Identity {
        // Plain text is scanned where it lies.
        let mut scan = scanner.scan(html);
        scan.feed(&raw[..raw.len().min(DECODED_CAP)]);
        return Ok(verdict(scan));
    }
    let mut reader = reader(raw, enc)?;
    let mut scan = scanner.scan(html);
    let mut buf = vec![0u8; 16 * 1024];
    let mut total = 0;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                scan.feed(&buf[..n]);
                total += n;
                if total >= DECODED_CAP {
                    break;
                }
            }
            Err(e) => return Err(DecodeError::Read(e)),
        }
    }
    Ok(verdict(scan))
}

/// A body whose first bytes were already read.
pub(crate) struct Prepend {
    pub(crate) first: Option<Bytes>,
    pub(crate) rest: Body,
}

impl hyper::body::Body for Prepend {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let extra = self.first.as_ref().map_or(0, |b| b.len() as u64);
        let mut h = SizeHint::new();
        // Upper first: a lower bound above the upper one is refused.
        if let Some(u) = rest.upper() {
            h.set_upper(u.saturating_add(extra));
        }
        h.set_lower(rest.lower().saturating_add(extra));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn scanner() -> Scanner {
        let (p, e) = haven_core::phrases::parse("category: gambling\n40 online casino\n", "t");
        assert!(e.is_empty());
        Scanner::new(&p).expect("scanner")
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn every_encoding_is_read() {
        let s = scanner();
        let page = b"<p>The best ONLINE casino, an online casino</p>";
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(page).expect("gz");
        let gz = gz.finish().expect("gz");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(page).expect("z");
        let z = z.finish().expect("z");
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        raw.write_all(page).expect("d");
        let raw = raw.finish().expect("d");
        let zstd = ruzstd::encoding::compress_to_vec(
            &page[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        // The page as the reference brotli encoder (Python's `brotli.compress`) writes it.
        let br = hex("0b17803c703e5468652062657374204f4e4c494e4520636173696e6f2c20616e206f6e6c696e6520636173696e6f3c2f703e03");
        for (enc, bytes) in [
            (Encoding::Identity, page.to_vec()),
            (Encoding::Zstd, zstd),
            (Encoding::Brotli, br),
            (Encoding::Gzip, gz),
            (Encoding::Deflate, z),
            (Encoding::Deflate, raw),
        ] {
            let over = decode_and_score(&bytes, enc, &s, true, 79).expect("decodes");
            assert_eq!(over.map(|s| s.total), Some(80), "{enc:?}");
            let under = decode_and_score(&bytes, enc, &s, true, 80).expect("decodes");
            assert_eq!(under, None, "{enc:?}");
        }
        assert!(decode_and_score(b"\x1f\x8b garbage", Encoding::Gzip, &s, true, 1).is_err());
        assert!(decode_and_score(b"garbage", Encoding::Zstd, &s, true, 1).is_err());
    }
}
