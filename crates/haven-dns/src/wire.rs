//! DNS messages on the wire (RFC 1035, EDNS RFC 6891, extended errors RFC 8914): just what a
//! filtering forwarder needs, parsed with every length and pointer checked. No I/O.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Record types Haven looks at.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority (negative-cache TTL).
    pub const SOA: u16 = 6;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// EDNS pseudo-record.
    pub const OPT: u16 = 41;
    /// Service binding (HTTPS records carry DoH hints).
    pub const HTTPS: u16 = 65;
}

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// The query was malformed.
    pub const FORMERR: u8 = 1;
    /// The server failed.
    pub const SERVFAIL: u8 = 2;
    /// The name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented (opcode).
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
    /// An EDNS version the server does not implement (RFC 6891 6.1.3). An extended RCODE: its
    /// upper eight bits go in the OPT record, so it needs the query to have used EDNS.
    pub const BADVERS: u16 = 16;
}

/// RFC 8914 extended DNS error codes Haven sends.
pub mod ede {
    /// Blocked by the server's policy.
    pub const BLOCKED: u16 = 15;
    /// Censored by an outside requirement (illegal lists).
    pub const CENSORED: u16 = 16;
    /// Filtered at the client's request (the school's filtering).
    pub const FILTERED: u16 = 17;
}

const EDE_OPTION: u16 = 15;
const HEADER: usize = 12;

/// The largest UDP answer Haven sends, and the UDP payload size it advertises (RFC 6891 with the
/// DNS Flag Day 2020 figure): an answer that fits in one unfragmented packet on any path. Larger
/// answers are truncated, so the client asks again over TCP; whatever size a client advertises, a
/// small forged-source query cannot draw a large answer at a victim.
pub const MAX_UDP: usize = 1232;

/// The synthetic SOA of Haven's own negative answers: `haven.invalid.` (a name that can never
/// exist, RFC 6761) as MNAME and `blocked.haven.invalid.` as RNAME, then SERIAL, REFRESH, RETRY
/// and EXPIRE; the MINIMUM (the negative TTL) follows.
const SOA_RDATA: &[u8] = b"\x05haven\x07invalid\x00\x07blocked\x05haven\x07invalid\x00\
\x00\x00\x00\x01\x00\x00\x07\x08\x00\x00\x03\x84\x00\x09\x3a\x80";

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its contents claim.
    #[error("message truncated")]
    Truncated,
    /// A name with a bad label, too long, or a compression loop.
    #[error("malformed name")]
    BadName,
    /// Not exactly one question.
    #[error("expected one question")]
    QuestionCount,
    /// A response where a query was expected, or the reverse.
    #[error("wrong direction (QR bit)")]
    Direction,
    /// More than one OPT record (RFC 6891 6.1.1: FORMERR).
    #[error("more than one OPT record")]
    DuplicateOpt,
    /// An OPT record owned by a name other than the root (RFC 6891 6.1.2).
    #[error("OPT record not owned by the root")]
    OptOwner,
}

/// A parsed query: what the filter needs to decide and to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Message id.
    pub id: u16,
    /// Opcode (0 is a standard query).
    pub opcode: u8,
    /// Recursion desired.
    pub rd: bool,
    /// Checking disabled.
    pub cd: bool,
    /// Query name, lower case, no trailing dot ("" for the root).
    pub name: String,
    /// Query type.
    pub qtype: u16,
    /// Query class.
    pub qclass: u16,
    /// The question section as sent (name in its original case), for echoing.
    pub question: Vec<u8>,
    /// EDNS: the client's UDP payload size, when it sent an OPT record.
    pub edns_size: Option<u16>,
    /// EDNS DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// EDNS version of the client's OPT record (0 without one).
    pub edns_version: u8,
    /// Where the OPT record's UDP payload size is in the message, when it has one (so the copy
    /// forwarded upstream can advertise Haven's own size).
    pub edns_size_at: Option<usize>,
}

impl Query {
    /// Largest UDP response Haven sends this client: what it advertised, at least 512 (RFC 6891
    /// 6.2.5) and at most [`MAX_UDP`].
    pub fn udp_limit(&self) -> usize {
        usize::from(self.edns_size.unwrap_or(512)).clamp(512, MAX_UDP)
    }
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WireError> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(WireError::Truncated)
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WireError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(WireError::Truncated)
}

/// Reads a (possibly compressed) name at `at`; returns it lower-case dotted and the offset just
/// after it in the message.
pub fn read_name(msg: &[u8], at: usize) -> Result<(String, usize), WireError> {
    let mut name = String::new();
    let mut pos = at;
    let mut end = None;
    let mut jumps = 0;
    let mut len_total = 0usize;
    loop {
        let len = *msg.get(pos).ok_or(WireError::Truncated)?;
        match len & 0xC0 {
            0x00 => {
                if len == 0 {
                    let after = end.unwrap_or(pos + 1);
                    return Ok((name, after));
                }
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(WireError::Truncated)?;
                len_total += usize::from(len) + 1;
                if len_total > 255 {
                    return Err(WireError::BadName);
                }
                if name.is_empty() {
                    // One allocation for the usual name, none for the root.
                    name.reserve(64);
                } else {
                    name.push('.');
                }
                for &c in label {
                    // Keep names printable and unambiguous; anything else is escaped as \DDD.
                    if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                        name.push(char::from(c.to_ascii_lowercase()));
                    } else {
                        name.push_str(&format!("\\{c:03}"));
                    }
                }
                pos += 1 + usize::from(len);
            }
            0xC0 => {
                let ptr = usize::from(u16_at(msg, pos)? & 0x3FFF);
                if end.is_none() {
                    end = Some(pos + 2);
                }
                jumps += 1;
                // Pointers must go backwards; a bounded number of them stops any loop.
                if ptr >= pos || jumps > 64 {
                    return Err(WireError::BadName);
                }
                pos = ptr;
            }
            _ => return Err(WireError::BadName),
        }
    }
}

/// Appends a dotted name in wire form (no compression).
pub fn write_name(out: &mut Vec<u8>, name: &str) -> Result<(), WireError> {
    let start = out.len();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = label.as_bytes();
        if bytes.len() > 63 {
            return Err(WireError::BadName);
        }
        out.push(bytes.len() as u8);
        out.extend_from_slice(bytes);
    }
    out.push(0);
    if out.len() - start > 255 {
        out.truncate(start);
        return Err(WireError::BadName);
    }
    Ok(())
}

/// Parses a query. Malformed input is an error, never a panic.
pub fn parse_query(msg: &[u8]) -> Result<Query, WireError> {
    if msg.len() < HEADER {
        return Err(WireError::Truncated);
    }
    let id = u16_at(msg, 0)?;
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 != 0 {
        return Err(WireError::Direction);
    }
    let qdcount = u16_at(msg, 4)?;
    let ancount = u16_at(msg, 6)?;
    let nscount = u16_at(msg, 8)?;
    let arcount = u16_at(msg, 10)?;
    if qdcount != 1 {
        return Err(WireError::QuestionCount);
    }
    let (name, after) = read_name(msg, HEADER)?;
    let qtype = u16_at(msg, after)?;
    let qclass = u16_at(msg, after + 2)?;
    let question = msg[HEADER..after + 4].to_vec();
    let mut pos = after + 4;
    // Skip answer and authority records (a query should have none), then look for OPT.
    for _ in 0..(u32::from(ancount) + u32::from(nscount)) {
        pos = skip_record(msg, pos)?;
    }
    let mut edns_size = None;
    let mut edns_size_at = None;
    let mut edns_version = 0;
    let mut dnssec_ok = false;
    for _ in 0..arcount {
        let (owner, after_name) = read_name(msg, pos)?;
        let t = u16_at(msg, after_name)?;
        if t == rtype::OPT {
            if edns_size.is_some() {
                return Err(WireError::DuplicateOpt);
            }
            if !owner.is_empty() {
                return Err(WireError::OptOwner);
            }
            edns_size = Some(u16_at(msg, after_name + 2)?);
            edns_size_at = Some(after_name + 2);
            // TTL: extended RCODE (8 bits), VERSION (8), DO (1), Z (15).
            let ttl = u32_at(msg, after_name + 4)?;
            edns_version = (ttl >> 16) as u8;
            dnssec_ok = ttl & 0x8000 != 0;
        }
        pos = skip_record(msg, pos)?;
    }
    Ok(Query {
        id,
        opcode: ((flags >> 11) & 0xF) as u8,
        rd: flags & 0x0100 != 0,
        cd: flags & 0x0010 != 0,
        name,
        qtype,
        qclass,
        question,
        edns_size,
        dnssec_ok,
        edns_version,
        edns_size_at,
    })
}

fn skip_record(msg: &[u8], at: usize) -> Result<usize, WireError> {
    let (_, after) = read_name(msg, at)?;
    let rdlen = usize::from(u16_at(msg, after + 8)?);
    let end = after + 10 + rdlen;
    if end > msg.len() {
        return Err(WireError::Truncated);
    }
    Ok(end)
}

/// One answer record of an upstream response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lower case.
    pub name: String,
    /// Type.
    pub rtype: u16,
    /// Time to live.
    pub ttl: u32,
    /// Offset of the TTL field in the message (for ageing cached answers).
    pub ttl_at: usize,
    /// For CNAME records, the target.
    pub cname: Option<String>,
}

/// What Haven reads from an upstream response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Message id.
    pub id: u16,
    /// Response code.
    pub rcode: u8,
    /// Truncated: ask again over TCP.
    pub truncated: bool,
    /// Question name, lower case.
    pub name: String,
    /// Question type.
    pub qtype: u16,
    /// Answer records.
    pub answers: Vec<Record>,
    /// TTL offsets of every record but OPT (answers, authority, additional).
    pub ttl_fields: Vec<usize>,
    /// Negative-caching TTL: the SOA minimum in the authority section, capped by the SOA TTL.
    pub negative_ttl: Option<u32>,
}

impl Response {
    /// The smallest TTL among the answers (for caching).
    pub fn min_ttl(&self) -> Option<u32> {
        self.answers.iter().map(|r| r.ttl).min()
    }
}

/// Parses an upstream response.
pub fn parse_response(msg: &[u8]) -> Result<Response, WireError> {
    if msg.len() < HEADER {
        return Err(WireError::Truncated);
    }
    let flags = u16_at(msg, 2)?;
    if flags & 0x8000 == 0 {
        return Err(WireError::Direction);
    }
    let (qd, an, ns, ar) = (
        u16_at(msg, 4)?,
        u16_at(msg, 6)?,
        u16_at(msg, 8)?,
        u16_at(msg, 10)?,
    );
    if qd != 1 {
        return Err(WireError::QuestionCount);
    }
    let (name, after) = read_name(msg, HEADER)?;
    let qtype = u16_at(msg, after)?;
    let mut pos = after + 4;
    let mut answers = Vec::new();
    let mut ttl_fields = Vec::new();
    let mut negative_ttl = None;
    for section in 0..3 {
        let count = [an, ns, ar][section];
        for _ in 0..count {
            let (rname, after_name) = read_name(msg, pos)?;
            let t = u16_at(msg, after_name)?;
            let ttl = u32_at(msg, after_name + 4)?;
            let rdlen = usize::from(u16_at(msg, after_name + 8)?);
            let rdata = after_name + 10;
            if rdata + rdlen > msg.len() {
                return Err(WireError::Truncated);
            }
            if t != rtype::OPT {
                ttl_fields.push(after_name + 4);
            }
            if section == 0 {
                let cname = if t == rtype::CNAME {
                    Some(read_name(msg, rdata)?.0)
                } else {
                    None
                };
                answers.push(Record {
                    name: rname,
                    rtype: t,
                    ttl,
                    ttl_at: after_name + 4,
                    cname,
                });
            } else if section == 1 && t == rtype::SOA {
                // MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
                let (_, after_m) = read_name(msg, rdata)?;
                let (_, after_r) = read_name(msg, after_m)?;
                let minimum = u32_at(msg, after_r + 16)?;
                negative_ttl = Some(minimum.min(ttl));
            }
            pos = rdata + rdlen;
        }
    }
    Ok(Response {
        id: u16_at(msg, 0)?,
        rcode: (flags & 0xF) as u8,
        truncated: flags & 0x0200 != 0,
        name,
        qtype,
        answers,
        ttl_fields,
        negative_ttl,
    })
}

/// Builds responses to a query.
#[derive(Debug)]
pub struct Reply<'q> {
    query: &'q Query,
    /// Response code, extended (the upper eight bits go in the OPT record).
    rcode: u16,
    answers: Vec<u8>,
    ancount: u16,
    ede: Option<(u16, &'q str)>,
    aa: bool,
    /// Negative-caching TTL: adds the synthetic SOA to the authority section.
    negative_ttl: Option<u32>,
}

impl<'q> Reply<'q> {
    /// An empty NOERROR reply to `query`.
    pub fn to(query: &'q Query) -> Reply<'q> {
        Reply {
            query,
            rcode: u16::from(rcode::NOERROR),
            answers: Vec::new(),
            ancount: 0,
            ede: None,
            aa: false,
            negative_ttl: None,
        }
    }

    /// Sets the response code (an extended one, such as [`rcode::BADVERS`], needs the query to
    /// have used EDNS).
    pub fn rcode(mut self, rcode: impl Into<u16>) -> Self {
        self.rcode = rcode.into();
        self
    }

    /// Makes this a negative answer clients may cache for `ttl` seconds (RFC 2308): an SOA in
    /// the authority section, owned by the query name, with that TTL and MINIMUM. The owner is
    /// the name itself (as AdGuard does) rather than a fixed zone: an ancestor-or-self of the
    /// question is what every cache accepts, and the only name it can be remembered for is the
    /// blocked one.
    pub fn negative_ttl(mut self, ttl: u32) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Marks the answer authoritative (Haven's own answers: blocks, canaries, safe search).
    pub fn authoritative(mut self) -> Self {
        self.aa = true;
        self
    }

    /// Adds an RFC 8914 extended error (sent when the client used EDNS).
    /// The text is cut to at most 200 bytes, at a character boundary.
    pub fn extended_error(mut self, code: u16, text: &'q str) -> Self {
        let mut end = text.len().min(200);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.ede = Some((code, &text[..end]));
        self
    }

    fn record(&mut self, name: &str, t: u16, ttl: u32, rdata: &[u8]) {
        if write_name(&mut self.answers, name).is_err() {
            return;
        }
        self.answers.extend_from_slice(&t.to_be_bytes());
        self.answers.extend_from_slice(&1u16.to_be_bytes());
        self.answers.extend_from_slice(&ttl.to_be_bytes());
        self.answers
            .extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        self.answers.extend_from_slice(rdata);
        self.ancount += 1;
    }

    /// Adds an A record for the query name.
    pub fn a(mut self, name: &str, ttl: u32, ip: Ipv4Addr) -> Self {
        self.record(name, rtype::A, ttl, &ip.octets());
        self
    }

    /// Adds an AAAA record.
    pub fn aaaa(mut self, name: &str, ttl: u32, ip: Ipv6Addr) -> Self {
        self.record(name, rtype::AAAA, ttl, &ip.octets());
        self
    }

    /// Adds a CNAME record.
    pub fn cname(mut self, name: &str, ttl: u32, target: &str) -> Self {
        let mut rdata = Vec::new();
        if write_name(&mut rdata, target).is_ok() {
            self.record(name, rtype::CNAME, ttl, &rdata);
        }
        self
    }

    /// The message bytes.
    pub fn build(self) -> Vec<u8> {
        let q = self.query;
        let ede = self.ede.map_or(0, |(_, t)| 6 + t.len());
        let soa = if self.negative_ttl.is_some() {
            12 + SOA_RDATA.len() + 4
        } else {
            0
        };
        let mut out =
            Vec::with_capacity(HEADER + q.question.len() + self.answers.len() + soa + 11 + ede);
        out.extend_from_slice(&q.id.to_be_bytes());
        let flags: u16 = 0x8000
            | (u16::from(q.opcode & 0xF) << 11)
            | if self.aa { 0x0400 } else { 0 }
            | if q.rd { 0x0100 } else { 0 }
            | 0x0080
            | if q.cd { 0x0010 } else { 0 }
            | (self.rcode & 0xF);
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&self.ancount.to_be_bytes());
        out.extend_from_slice(&u16::from(self.negative_ttl.is_some()).to_be_bytes());
        let edns = q.edns_size.is_some();
        out.extend_from_slice(&u16::from(edns).to_be_bytes());
        out.extend_from_slice(&q.question);
        out.extend_from_slice(&self.answers);
        if let Some(ttl) = self.negative_ttl {
            // Owner: a pointer to the question's name, which is always at offset 12.
            out.extend_from_slice(&[0xC0, HEADER as u8]);
            out.extend_from_slice(&rtype::SOA.to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            out.extend_from_slice(&ttl.to_be_bytes());
            out.extend_from_slice(&((SOA_RDATA.len() + 4) as u16).to_be_bytes());
            out.extend_from_slice(SOA_RDATA);
            out.extend_from_slice(&ttl.to_be_bytes());
        }
        if edns {
            push_opt(&mut out, self.ede, (self.rcode >> 4) as u8);
        }
        out
    }
}

/// Appends an OPT record: Haven's UDP size, the upper bits of the response code, version 0
/// (the highest Haven implements), and an extended error when there is one.
fn push_opt(out: &mut Vec<u8>, ede: Option<(u16, &str)>, extended_rcode: u8) {
    out.push(0); // root name
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&(MAX_UDP as u16).to_be_bytes()); // our UDP payload size
    out.extend_from_slice(&[extended_rcode, 0, 0, 0]); // extended rcode, version 0, flags
    match ede {
        Some((code, text)) => {
            let len = 2 + text.len();
            out.extend_from_slice(&((4 + len) as u16).to_be_bytes());
            out.extend_from_slice(&EDE_OPTION.to_be_bytes());
            out.extend_from_slice(&(len as u16).to_be_bytes());
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(text.as_bytes());
        }
        None => out.extend_from_slice(&0u16.to_be_bytes()),
    }
}

/// A reply to a message too broken to parse as a query: FORMERR with its id, when it has one.
pub fn formerr(msg: &[u8]) -> Option<Vec<u8>> {
    if msg.len() < 2 {
        return None;
    }
    // A response (QR set) is never answered: that is how reflection loops start.
    if msg.len() >= 3 && msg[2] & 0x80 != 0 {
        return None;
    }
    let mut out = vec![0u8; HEADER];
    out[..2].copy_from_slice(&msg[..2]);
    out[2] = 0x80;
    out[3] = rcode::FORMERR;
    Some(out)
}

/// Truncates a UDP response that is too big: the header and question with TC set, so the client
/// retries over TCP, and an OPT record when the client used EDNS (RFC 6891 7).
pub fn truncate(msg: &[u8], query: &Query) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + query.question.len() + 11);
    out.extend_from_slice(&msg[..HEADER.min(msg.len())]);
    out.resize(HEADER, 0);
    out[2] |= 0x02; // TC
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..12].fill(0);
    out.extend_from_slice(&query.question);
    if query.edns_size.is_some() {
        out[11] = 1;
        push_opt(&mut out, None, 0);
    }
    out
}

/// Makes a query's copy for an upstream advertise Haven's own UDP size ([`MAX_UDP`]) instead of
/// the client's: larger answers come truncated and are fetched over TCP, never as IP fragments
/// (which can be forged into the cache).
pub fn set_edns_size(msg: &mut [u8], query: &Query) {
    if let Some(s) = query.edns_size_at.and_then(|at| msg.get_mut(at..at + 2)) {
        s.copy_from_slice(&(MAX_UDP as u16).to_be_bytes());
    }
}

/// Rewrites the id of a message in place.
pub fn set_id(msg: &mut [u8], id: u16) {
    if msg.len() >= 2 {
        msg[..2].copy_from_slice(&id.to_be_bytes());
    }
}

/// Puts the client's own question back into an answer (a cached answer carries the first
/// asker's): resolvers that randomise the case of names (DNS 0x20) check it. Only a question of
/// the same length is copied, so nothing else in the message moves.
pub fn set_question(msg: &mut [u8], question: &[u8]) {
    if let Some(q) = msg.get_mut(HEADER..HEADER + question.len()) {
        if q.eq_ignore_ascii_case(question) {
            q.copy_from_slice(question);
        }
    }
}

/// Lowers every TTL field (given by offset) by `elapsed` seconds, for a cached answer.
pub fn age_ttls(msg: &mut [u8], fields: impl IntoIterator<Item = usize>, elapsed: u32) {
    for at in fields {
        if let Some(s) = msg.get_mut(at..at + 4) {
            let ttl = u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
            s.copy_from_slice(&ttl.saturating_sub(elapsed).to_be_bytes());
        }
    }
}

/// Builds a query message (for upstream lookups Haven makes itself, such as safe-search targets).
pub fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(HEADER + name.len() + 16);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes()); // RD
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 1]);
    write_name(&mut out, name)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    push_opt(&mut out, None, 0);
    Ok(out)
}

/// The A and AAAA records of an answer, as (type, rdata) pairs.
pub fn address_rdata(msg: &[u8], resp: &Response) -> Vec<(u16, Vec<u8>)> {
    resp.answers
        .iter()
        .filter(|r| r.rtype == rtype::A || r.rtype == rtype::AAAA)
        .filter_map(|r| {
            let rdlen = usize::from(u16_at(msg, r.ttl_at + 4).ok()?);
            msg.get(r.ttl_at + 6..r.ttl_at + 6 + rdlen)
                .map(|d| (r.rtype, d.to_vec()))
        })
        .collect()
}

impl Reply<'_> {
    /// Adds a record with raw rdata (used to copy an upstream's addresses).
    pub fn raw(mut self, name: &str, t: u16, ttl: u32, rdata: &[u8]) -> Self {
        self.record(name, t, ttl, rdata);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        build_query(0x1234, name, qtype).expect("query")
    }

    #[test]
    fn queries_round_trip() {
        let q = parse_query(&query("WWW.Example.COM", rtype::A)).expect("parses");
        assert_eq!(q.name, "www.example.com");
        assert_eq!((q.id, q.qtype, q.qclass, q.rd), (0x1234, rtype::A, 1, true));
        assert_eq!(q.edns_size, Some(1232));
        let reply = Reply::to(&q)
            .a("www.example.com", 60, Ipv4Addr::new(192, 0, 2, 1))
            .build();
        let r = parse_response(&reply).expect("response");
        assert_eq!(r.id, 0x1234);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].ttl, 60);
        assert_eq!(
            address_rdata(&reply, &r),
            vec![(rtype::A, vec![192, 0, 2, 1])]
        );
    }

    #[test]
    fn extended_errors_are_sent_with_edns() {
        let q = parse_query(&query("casino.example", rtype::A)).expect("parses");
        let reply = Reply::to(&q)
            .rcode(rcode::NXDOMAIN)
            .extended_error(ede::FILTERED, "gambling")
            .build();
        let r = parse_response(&reply).expect("response");
        assert_eq!(r.rcode, rcode::NXDOMAIN);
        // OPT record at the end: option 15, code 17, the text.
        let tail = &reply[reply.len() - 14..];
        assert_eq!(&tail[..4], &[0, 15, 0, 10]);
        assert_eq!(&tail[4..6], &17u16.to_be_bytes());
        assert_eq!(&tail[6..], b"gambling");
    }

    #[test]
    fn cname_chains_are_read() {
        let q = parse_query(&query("www.google.co.uk", rtype::A)).expect("parses");
        let reply = Reply::to(&q)
            .cname("www.google.co.uk", 300, "forcesafesearch.google.com")
            .a(
                "forcesafesearch.google.com",
                300,
                Ipv4Addr::new(216, 239, 38, 120),
            )
            .build();
        let r = parse_response(&reply).expect("response");
        assert_eq!(
            r.answers[0].cname.as_deref(),
            Some("forcesafesearch.google.com")
        );
        assert_eq!(r.answers[1].name, "forcesafesearch.google.com");
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        assert_eq!(parse_query(&[]), Err(WireError::Truncated));
        assert_eq!(parse_query(&[0; 11]), Err(WireError::Truncated));
        let mut m = query("example.com", rtype::A);
        m[2] |= 0x80;
        assert_eq!(parse_query(&m), Err(WireError::Direction));
        let mut m = query("example.com", rtype::A);
        m[5] = 2;
        assert_eq!(parse_query(&m), Err(WireError::QuestionCount));
        // A compression pointer to itself.
        let mut m = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xC0, 12, 0, 1, 0, 1];
        assert_eq!(parse_query(&m), Err(WireError::BadName));
        m[13] = 200;
        assert_eq!(parse_query(&m), Err(WireError::BadName));
        // A label running past the end.
        assert_eq!(
            parse_query(&[0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a']),
            Err(WireError::Truncated)
        );
        // Every truncation of a good query is refused cleanly.
        let good = query("a.b.example.com", rtype::AAAA);
        for n in 0..good.len() {
            let _ = parse_query(&good[..n]);
            let _ = parse_response(&good[..n]);
        }
        assert_eq!(formerr(&m).expect("formerr")[3], rcode::FORMERR);
        let mut resp = m.clone();
        resp[2] |= 0x80;
        assert_eq!(formerr(&resp), None, "responses are never answered");
    }

    /// `query` with its OPT record's UDP size and version changed, and perhaps a second OPT.
    fn edns(size: u16, version: u8, opts: usize) -> Vec<u8> {
        let mut m = query("example.com", rtype::A);
        let opt = m.len() - 11;
        m[opt + 3..opt + 5].copy_from_slice(&size.to_be_bytes());
        m[opt + 6] = version;
        let record = m[opt..].to_vec();
        for _ in 1..opts {
            m.extend_from_slice(&record);
        }
        m[10..12].copy_from_slice(&(opts as u16).to_be_bytes());
        m
    }

    #[test]
    fn edns_is_read_and_udp_answers_are_capped() {
        let q = parse_query(&edns(4096, 0, 1)).expect("parses");
        assert_eq!((q.edns_size, q.edns_version), (Some(4096), 0));
        assert_eq!(q.udp_limit(), MAX_UDP, "4,096 advertised, 1,232 sent");
        assert_eq!(parse_query(&edns(100, 0, 1)).expect("q").udp_limit(), 512);
        assert_eq!(parse_query(&edns(1000, 0, 1)).expect("q").udp_limit(), 1000);
        let mut no_edns = query("example.com", rtype::A);
        no_edns.truncate(no_edns.len() - 11);
        no_edns[11] = 0;
        let plain = parse_query(&no_edns).expect("q");
        assert_eq!((plain.edns_size, plain.udp_limit()), (None, 512));
        // The copy for the upstream advertises Haven's size.
        let mut m = edns(4096, 0, 1);
        set_edns_size(&mut m, &q);
        assert_eq!(parse_query(&m).expect("q").edns_size, Some(1232));
        let before = no_edns.clone();
        set_edns_size(&mut no_edns, &plain);
        assert_eq!(no_edns, before, "nothing to change without EDNS");
        assert_eq!(parse_query(&edns(1232, 1, 1)).expect("q").edns_version, 1);
    }

    #[test]
    fn two_opt_records_or_one_not_at_the_root_are_malformed() {
        assert_eq!(parse_query(&edns(1232, 0, 2)), Err(WireError::DuplicateOpt));
        assert_eq!(parse_query(&edns(1232, 0, 3)), Err(WireError::DuplicateOpt));
        let mut m = edns(1232, 0, 1);
        let opt = m.len() - 11;
        // The OPT record owned by "a." instead of the root.
        m.splice(opt..=opt, [1, b'a', 0]);
        assert_eq!(parse_query(&m), Err(WireError::OptOwner));
    }

    #[test]
    fn badvers_puts_the_upper_bits_in_an_opt_of_version_0() {
        let q = parse_query(&edns(1232, 1, 1)).expect("parses");
        let reply = Reply::to(&q).rcode(rcode::BADVERS).build();
        assert_eq!(reply[3] & 0x0F, 0, "16 & 0xF in the header");
        let opt = &reply[reply.len() - 11..];
        assert_eq!(&opt[..3], &[0, 0, 41]);
        assert_eq!(&opt[3..5], &1232u16.to_be_bytes());
        assert_eq!(
            &opt[5..9],
            &[1, 0, 0, 0],
            "extended RCODE 1 (16 >> 4), version 0"
        );
        assert_eq!(parse_response(&reply).expect("parses").answers.len(), 0);
    }

    #[test]
    fn negative_answers_carry_an_soa_with_the_ttl() {
        let q = parse_query(&query("Casino.Example", rtype::A)).expect("parses");
        let reply = Reply::to(&q)
            .rcode(rcode::NXDOMAIN)
            .negative_ttl(300)
            .extended_error(ede::FILTERED, "gambling")
            .build();
        assert_eq!(
            &reply[6..12],
            &[0, 0, 0, 1, 0, 1],
            "no answer, one SOA, one OPT"
        );
        let r = parse_response(&reply).expect("parses");
        assert_eq!((r.rcode, r.negative_ttl), (rcode::NXDOMAIN, Some(300)));
        // The SOA: owned by the question's name, then MNAME and RNAME.
        let soa = 12 + q.question.len();
        assert_eq!(
            read_name(&reply, soa).expect("owner"),
            ("casino.example".into(), soa + 2)
        );
        assert_eq!(&reply[soa + 2..soa + 4], &rtype::SOA.to_be_bytes());
        assert_eq!(&reply[soa + 6..soa + 10], &300u32.to_be_bytes());
        let (mname, after) = read_name(&reply, soa + 12).expect("mname");
        let (rname, after) = read_name(&reply, after).expect("rname");
        assert_eq!(
            (mname.as_str(), rname.as_str()),
            ("haven.invalid", "blocked.haven.invalid")
        );
        assert_eq!(
            &reply[after + 16..after + 20],
            &300u32.to_be_bytes(),
            "MINIMUM"
        );
        // The EDE is still there, after it.
        assert_eq!(&reply[reply.len() - 8..], b"gambling");
        // Without EDNS: the SOA, no OPT.
        let mut no_edns = query("casino.example", 16);
        no_edns.truncate(no_edns.len() - 11);
        no_edns[11] = 0;
        let q = parse_query(&no_edns).expect("q");
        let reply = Reply::to(&q).negative_ttl(60).build();
        assert_eq!(&reply[6..12], &[0, 0, 0, 1, 0, 0]);
        assert_eq!(
            parse_response(&reply).expect("parses").negative_ttl,
            Some(60)
        );
    }

    #[test]
    fn truncation_and_ageing() {
        let q = parse_query(&query("big.example", rtype::A)).expect("parses");
        let mut reply = Reply::to(&q)
            .a("big.example", 100, Ipv4Addr::LOCALHOST)
            .build();
        let t = truncate(&reply, &q);
        assert_eq!(t[2] & 0x02, 0x02);
        assert_eq!(parse_response(&t).expect("parses").answers.len(), 0);
        // The client used EDNS, so the truncated answer carries an OPT record.
        assert_eq!(&t[10..12], &[0, 1]);
        assert_eq!(&t[t.len() - 11..t.len() - 6], &[0, 0, 41, 4, 208]);
        let r = parse_response(&reply).expect("parses");
        age_ttls(&mut reply, r.ttl_fields.iter().copied(), 30);
        assert_eq!(parse_response(&reply).expect("parses").answers[0].ttl, 70);
        set_id(&mut reply, 7);
        assert_eq!(parse_response(&reply).expect("parses").id, 7);
        // The asker's own letter case comes back.
        let mixed = parse_query(&build_query(8, "BiG.eXaMpLe", rtype::A).expect("q")).expect("q");
        set_question(&mut reply, &mixed.question);
        assert_eq!(&reply[12..12 + mixed.question.len()], &mixed.question[..]);
        let other = parse_query(&build_query(8, "small.example", rtype::A).expect("q")).expect("q");
        let before = reply.clone();
        set_question(&mut reply, &other.question);
        assert_eq!(reply, before, "another question is never copied in");
    }
}
