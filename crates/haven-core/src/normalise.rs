//! URL and host normalisation: one canonical form for list entries and requests alike.
//!
//! Both sides of every comparison go through [`Target::parse`], so a list entry and a request that
//! mean the same place compare equal byte for byte. The canonical form is `host` followed by the
//! path (and `?query` when there is one):
//! - host: lower case, trailing dots removed, IDN to punycode, a leading `www.` removed, IPv4 in
//!   any form (dotted, decimal, hex, octal, shortened) as dotted quad, IPv6 compressed in brackets;
//! - path: percent-encoding decoded, zero-width characters removed, lower case, duplicate slashes
//!   collapsed, `.` and `..` segments resolved, fragment dropped.
//!
//! Lower-casing paths and collapsing slashes can only make a rule match more, never less: for a
//! filter, that is the safe direction.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Why an input could not be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NormaliseError {
    /// Nothing to normalise.
    #[error("empty address")]
    Empty,
    /// The host part is empty.
    #[error("no host name")]
    NoHost,
    /// A character that cannot appear in a host name.
    #[error("invalid character {0:?} in host name")]
    BadHostChar(char),
    /// An empty label (`a..b`) or a label over 63 bytes.
    #[error("invalid label in host name")]
    BadLabel,
    /// Over 253 bytes.
    #[error("host name too long")]
    TooLong,
    /// The last label is numeric but the whole is not an IPv4 address.
    #[error("invalid IPv4 address")]
    BadIpv4,
    /// Bracketed but not an IPv6 address.
    #[error("invalid IPv6 address")]
    BadIpv6,
    /// The port is not a number from 0 to 65535.
    #[error("invalid port")]
    BadPort,
    /// IDNA processing refused the name.
    #[error("invalid internationalised domain name")]
    BadIdn,
}

/// What kind of host a target has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKind {
    /// A DNS name.
    Name,
    /// An IPv4 literal.
    Ipv4,
    /// An IPv6 literal.
    Ipv6,
}

/// A normalised URL or host: the form every match is made on.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    buf: Vec<u8>,
    host_len: usize,
    kind: HostKind,
    port: Option<u16>,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", String::from_utf8_lossy(&self.buf))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.buf))
    }
}

const ZERO_WIDTH: &[&[u8]] = &[
    "\u{200b}".as_bytes(),
    "\u{200c}".as_bytes(),
    "\u{200d}".as_bytes(),
    "\u{2060}".as_bytes(),
    "\u{feff}".as_bytes(),
];

impl Target {
    /// Parses and normalises a URL, `host`, `host:port` or `host/path` (a list entry).
    pub fn parse(input: &str) -> Result<Target, NormaliseError> {
        let mut t = Target {
            buf: Vec::with_capacity(input.len() + 1),
            host_len: 0,
            kind: HostKind::Name,
            port: None,
        };
        t.parse_into(input)?;
        Ok(t)
    }

    /// Like [`Target::parse`], reusing this target's buffer (no allocation on the hot path).
    pub fn parse_into(&mut self, input: &str) -> Result<(), NormaliseError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(NormaliseError::Empty);
        }
        if self.parse_plain(s) {
            return Ok(());
        }
        self.parse_general(s)
    }

    /// The common case in one pass, without allocating: `[scheme://]host[:port][path][?query]
    /// [#fragment]` where the host is plain ASCII letters, digits, `-`, `_` and dots (not an IPv4
    /// literal) and the path and query are ASCII with no `%`, `\`, `//` or dot-segment. Returns
    /// false, leaving nothing meaningful behind, when the input needs [`Target::parse_general`];
    /// when it returns true the result is exactly what that would give.
    fn parse_plain(&mut self, s: &str) -> bool {
        let b = s.as_bytes();
        self.buf.clear();
        let mut i = b.iter().take_while(|&&c| is_scheme_char(c)).count();
        let mut default = None;
        if i > 0 && b[i..].starts_with(b"://") {
            default = default_port(&b[..i]);
            i += 3;
        } else {
            i = 0;
        }
        // Host: find where it ends, checking labels on the way, then copy it in one go.
        let host_start = i;
        let mut label = 0usize;
        while let Some(&c) = b.get(i) {
            match c {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' => {
                    label += 1;
                    if label > 63 {
                        return false;
                    }
                }
                // A leading dot or an empty label: the general parser trims or reports it.
                b'.' if label == 0 => return false,
                b'.' => label = 0,
                _ => break,
            }
            i += 1;
        }
        // One trailing dot (`example.com.`) is dropped; the loop refused any other empty label.
        let host_end = if label == 0 { i.saturating_sub(1) } else { i };
        if host_end <= host_start || host_end - host_start > 253 {
            return false;
        }
        self.buf.extend_from_slice(&b[host_start..host_end]);
        self.buf.make_ascii_lowercase();
        let last = self.buf.rsplit(|&c| c == b'.').next().unwrap_or(&self.buf);
        if is_numeric_label(last) {
            return false;
        }
        // Port.
        let mut port = None;
        if b.get(i) == Some(&b':') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 5 {
                return false;
            }
            let Ok(p) = s[i + 1..i + 1 + digits].parse::<u16>() else {
                return false;
            };
            port = Some(p);
            i += 1 + digits;
        }
        if !matches!(b.get(i), None | Some(b'/' | b'?' | b'#')) {
            return false;
        }
        // Path and query, one scan: where the query and fragment start, and whether anything
        // needs decoding or resolving.
        let rest = &b[i..];
        let mut q = None;
        let mut end = rest.len();
        let mut prev = 0u8;
        for (k, &c) in rest.iter().enumerate() {
            match c {
                b'#' => {
                    end = k;
                    break;
                }
                b'%' | b'\\' | 0x80..=0xff => return false,
                b'?' if q.is_none() => q = Some(k),
                b'/' | b'.' if q.is_none() && prev == b'/' => return false,
                _ => {}
            }
            prev = c;
        }
        let q = q.unwrap_or(end);
        let (path, query) = (&rest[..q], rest.get(q + 1..end).unwrap_or_default());
        if self.buf.starts_with(b"www.") && self.buf[4..].contains(&b'.') {
            self.buf.drain(..4);
        }
        self.kind = HostKind::Name;
        self.port = port.filter(|p| Some(*p) != default);
        self.host_len = self.buf.len();
        if path != b"/" {
            self.buf.extend_from_slice(path);
        }
        if !query.is_empty() {
            if self.buf.len() == self.host_len {
                self.buf.push(b'/');
            }
            self.buf.push(b'?');
            self.buf.extend_from_slice(query);
        }
        self.buf[self.host_len..].make_ascii_lowercase();
        true
    }

    /// Every form [`Target::parse`] accepts.
    fn parse_general(&mut self, mut s: &str) -> Result<(), NormaliseError> {
        self.buf.clear();
        self.port = None;
        // Scheme.
        let mut default = None;
        if let Some(pos) = s.find("://") {
            let scheme = &s[..pos];
            if !scheme.is_empty() && scheme.bytes().all(is_scheme_char) {
                default = default_port(scheme.as_bytes());
                s = &s[pos + 3..];
            }
        } else if let Some(rest) = s.strip_prefix("//") {
            s = rest;
        }
        let auth_end = s.find(['/', '?', '#', '\\']).unwrap_or(s.len());
        let (authority, rest) = s.split_at(auth_end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(authority)?;
        self.port = port.filter(|p| Some(*p) != default);
        self.push_host(host)?;
        self.host_len = self.buf.len();
        self.push_path(rest);
        Ok(())
    }

    /// The canonical host: a name, a dotted-quad IPv4 address or a bracketed IPv6 address.
    pub fn host(&self) -> &str {
        // The host is built from ASCII only.
        std::str::from_utf8(&self.buf[..self.host_len]).unwrap_or_default()
    }

    /// The host as bytes.
    pub fn host_bytes(&self) -> &[u8] {
        &self.buf[..self.host_len]
    }

    /// The normalised path and query (empty when the input had none; never just "/").
    pub fn path(&self) -> &[u8] {
        &self.buf[self.host_len..]
    }

    /// The whole canonical form, `host` + path.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The kind of host.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// The port when it was given and is not the scheme's default.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The file extension of the last path segment, lower case, if any (`exe` for `/a/setup.EXE`).
    pub fn extension(&self) -> Option<&str> {
        let path = self.path();
        let path = &path[..path.iter().position(|&c| c == b'?').unwrap_or(path.len())];
        let seg = &path[path.iter().rposition(|&c| c == b'/').map_or(0, |p| p + 1)..];
        let dot = seg.iter().rposition(|&c| c == b'.')?;
        let ext = &seg[dot + 1..];
        (!ext.is_empty() && ext.len() <= 16)
            .then(|| std::str::from_utf8(ext).ok())
            .flatten()
    }

    /// Host-name suffixes from most to least specific (`a.b.c`, `b.c`, `c`); IP literals give one.
    pub fn host_suffixes(&self) -> HostSuffixes<'_> {
        HostSuffixes {
            host: self.host_bytes(),
            next: Some(0),
            whole_only: self.kind != HostKind::Name,
        }
    }

    fn push_host(&mut self, host: &str) -> Result<(), NormaliseError> {
        if host.is_empty() {
            return Err(NormaliseError::NoHost);
        }
        if let Some(inner) = host.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(NormaliseError::BadIpv6)?;
            let inner = inner.split('%').next().unwrap_or(inner); // zone id
            let ip: Ipv6Addr = inner.parse().map_err(|_| NormaliseError::BadIpv6)?;
            return self.push_ipv6(ip);
        }
        if host.contains(':') {
            // A bare IPv6 address (no brackets), as a list entry may give it.
            let ip: Ipv6Addr = host.parse().map_err(|_| NormaliseError::BadIpv6)?;
            return self.push_ipv6(ip);
        }
        // Percent-decode, trim trailing dots, lower-case. The common case (plain ASCII, nothing
        // encoded) goes straight into the buffer without an intermediate allocation.
        let start = self.buf.len();
        if host.is_ascii() && !host.contains('%') {
            self.buf.extend(
                host.trim_end_matches('.')
                    .bytes()
                    .map(|c| c.to_ascii_lowercase()),
            );
        } else {
            let mut name: Vec<u8> = Vec::with_capacity(host.len());
            percent_decode_into(host.as_bytes(), &mut name);
            while name.last() == Some(&b'.') {
                name.pop();
            }
            if name.is_ascii() {
                self.buf.extend(name.iter().map(u8::to_ascii_lowercase));
            } else {
                let text = std::str::from_utf8(&name).map_err(|_| NormaliseError::BadIdn)?;
                let ascii = idna::domain_to_ascii(text).map_err(|_| NormaliseError::BadIdn)?;
                self.buf
                    .extend_from_slice(ascii.trim_end_matches('.').as_bytes());
            }
        }
        self.finish_name(start)
    }

    /// Turns the lower-case ASCII name at `buf[start..]` into its canonical form: an IPv4 literal
    /// in any form becomes a dotted quad; a name is validated and loses a leading `www.`.
    fn finish_name(&mut self, start: usize) -> Result<(), NormaliseError> {
        let name = &self.buf[start..];
        if name.is_empty() {
            return Err(NormaliseError::NoHost);
        }
        let last_label = name.rsplit(|&c| c == b'.').next().unwrap_or(name);
        if is_numeric_label(last_label) {
            let ip = parse_ipv4(name).ok_or(NormaliseError::BadIpv4)?;
            self.kind = HostKind::Ipv4;
            self.buf.truncate(start);
            self.buf.extend_from_slice(ip.to_string().as_bytes());
            return Ok(());
        }
        validate_name(name)?;
        if name.starts_with(b"www.") && name[4..].contains(&b'.') {
            self.buf.drain(start..start + 4);
        }
        self.kind = HostKind::Name;
        Ok(())
    }

    fn push_ipv6(&mut self, ip: Ipv6Addr) -> Result<(), NormaliseError> {
        if let Some(v4) = ip.to_ipv4_mapped() {
            self.kind = HostKind::Ipv4;
            self.buf.extend_from_slice(v4.to_string().as_bytes());
        } else {
            self.kind = HostKind::Ipv6;
            self.buf.push(b'[');
            self.buf.extend_from_slice(ip.to_string().as_bytes());
            self.buf.push(b']');
        }
        Ok(())
    }

    fn push_path(&mut self, rest: &str) {
        let rest = rest.split('#').next().unwrap_or("");
        if is_clean(rest) {
            // Nothing to decode or resolve: the same rules as below, without allocating.
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let path = if path == "/" { "" } else { path };
            self.buf
                .extend(path.bytes().map(|c| c.to_ascii_lowercase()));
            if !query.is_empty() {
                if path.is_empty() {
                    self.buf.push(b'/');
                }
                self.buf.push(b'?');
                self.buf
                    .extend(query.bytes().map(|c| c.to_ascii_lowercase()));
            }
            return;
        }
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let start = self.buf.len();
        let mut decoded = Vec::with_capacity(path.len() + 1);
        percent_decode_into(path.as_bytes(), &mut decoded);
        strip_zero_width(&mut decoded);
        decoded.make_ascii_lowercase();
        // Segments: collapse empty ones (duplicate slashes), resolve dot-segments.
        let trailing = decoded.last().is_some_and(|&c| c == b'/' || c == b'\\');
        let mut segments: Vec<&[u8]> = Vec::new();
        let mut last_was_dot = false;
        for seg in decoded.split(|&c| c == b'/' || c == b'\\') {
            last_was_dot = false;
            match seg {
                b"" => {}
                b"." => last_was_dot = true,
                b".." => {
                    segments.pop();
                    last_was_dot = true;
                }
                s => segments.push(s),
            }
        }
        for seg in &segments {
            self.buf.push(b'/');
            self.buf.extend_from_slice(seg);
        }
        if (trailing || last_was_dot) && !segments.is_empty() {
            self.buf.push(b'/');
        }
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            if self.buf.len() == start {
                self.buf.push(b'/');
            }
            self.buf.push(b'?');
            let qs = self.buf.len();
            percent_decode_into(q.as_bytes(), &mut self.buf);
            let mut tail = self.buf.split_off(qs);
            strip_zero_width(&mut tail);
            tail.make_ascii_lowercase();
            self.buf.extend_from_slice(&tail);
        }
    }
}

/// Whether a path needs no decoding, slash collapsing or dot-segment resolution: it is empty or
/// starts with `/` or `?`, has no `%`, `\\`, `//`, `/.` or non-ASCII byte.
fn is_clean(rest: &str) -> bool {
    let b = rest.as_bytes();
    if b.is_empty() {
        return true;
    }
    if b[0] != b'/' && b[0] != b'?' {
        return false;
    }
    let path_end = b.iter().position(|&c| c == b'?').unwrap_or(b.len());
    let path = &b[..path_end];
    b.is_ascii()
        && !b.contains(&b'%')
        && !path.contains(&b'\\')
        && !path.windows(2).any(|w| w == b"//" || w == b"/.")
}

/// Iterator over a host's suffixes, most specific first.
#[derive(Debug)]
pub struct HostSuffixes<'a> {
    host: &'a [u8],
    next: Option<usize>,
    whole_only: bool,
}

impl<'a> Iterator for HostSuffixes<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        let start = self.next?;
        let suffix = &self.host[start..];
        self.next = if self.whole_only {
            None
        } else {
            suffix
                .iter()
                .position(|&c| c == b'.')
                .map(|p| start + p + 1)
        };
        Some(suffix)
    }
}

fn is_scheme_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'-' || c == b'.'
}

fn default_port(scheme: &[u8]) -> Option<u16> {
    let is = |name: &str| scheme.eq_ignore_ascii_case(name.as_bytes());
    if is("http") || is("ws") {
        Some(80)
    } else if is("https") || is("wss") {
        Some(443)
    } else if is("ftp") {
        Some(21)
    } else {
        None
    }
}

/// Splits `host:port`, leaving bracketed IPv6 and bare IPv6 (several colons) intact.
fn split_port(authority: &str) -> Result<(&str, Option<u16>), NormaliseError> {
    if authority.starts_with('[') {
        return match authority.rfind("]:") {
            Some(p) => Ok((&authority[..=p], Some(parse_port(&authority[p + 2..])?))),
            None => Ok((authority, None)),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            if p.is_empty() {
                Ok((h, None))
            } else {
                Ok((h, Some(parse_port(p)?)))
            }
        }
        _ => Ok((authority, None)),
    }
}

fn parse_port(p: &str) -> Result<u16, NormaliseError> {
    if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
        return Err(NormaliseError::BadPort);
    }
    p.parse().map_err(|_| NormaliseError::BadPort)
}

fn validate_name(name: &[u8]) -> Result<(), NormaliseError> {
    if name.len() > 253 {
        return Err(NormaliseError::TooLong);
    }
    for label in name.split(|&c| c == b'.') {
        if label.is_empty() || label.len() > 63 {
            return Err(NormaliseError::BadLabel);
        }
        if let Some(&c) = label
            .iter()
            .find(|&&c| !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        {
            return Err(NormaliseError::BadHostChar(c as char));
        }
    }
    Ok(())
}

/// The WHATWG rule: a host whose last label is a number is an IPv4 address or an error.
fn is_numeric_label(label: &[u8]) -> bool {
    if label.is_empty() {
        return false;
    }
    if label.iter().all(u8::is_ascii_digit) {
        return true;
    }
    matches!(label, [b'0', b'x' | b'X', rest @ ..] if rest.iter().all(u8::is_ascii_hexdigit))
}

/// Parses IPv4 in the forms browsers and `inet_aton` accept: 1 to 4 parts, each decimal, `0x` hex
/// or `0` octal; the last part fills the remaining bytes.
fn parse_ipv4(name: &[u8]) -> Option<Ipv4Addr> {
    let parts: Vec<&[u8]> = name.split(|&c| c == b'.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut nums = [0u64; 4];
    for (i, p) in parts.iter().enumerate() {
        nums[i] = parse_ipv4_part(p)?;
    }
    let n = parts.len();
    let mut value: u64 = 0;
    for (i, &num) in nums.iter().enumerate().take(n - 1) {
        if num > 255 {
            return None;
        }
        value |= num << (8 * (3 - i));
    }
    let last = nums[n - 1];
    if last >= 1u64 << (8 * (5 - n)) {
        return None;
    }
    value |= last;
    u32::try_from(value).ok().map(Ipv4Addr::from)
}

fn parse_ipv4_part(p: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(p).ok()?;
    let (digits, radix) = if let Some(h) = text.strip_prefix("0x").or(text.strip_prefix("0X")) {
        (h, 16)
    } else if text.len() > 1 && text.starts_with('0') {
        (&text[1..], 8)
    } else {
        (text, 10)
    };
    if digits.is_empty() {
        return (radix == 16).then_some(0);
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn percent_decode_into(input: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' && i + 2 < input.len() {
            if let (Some(h), Some(l)) = (hex(input[i + 1]), hex(input[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
}

fn strip_zero_width(bytes: &mut Vec<u8>) {
    // Every zero-width character starts with 0xE2 or 0xEF in UTF-8.
    if !bytes.iter().any(|&c| c == 0xE2 || c == 0xEF) {
        return;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    'outer: while i < bytes.len() {
        for zw in ZERO_WIDTH {
            if bytes[i..].starts_with(zw) {
                i += zw.len();
                continue 'outer;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    *bytes = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expected: &str) {
        match Target::parse(input) {
            Ok(t) => assert_eq!(t.to_string(), expected, "normalising {input:?}"),
            Err(e) => panic!("{input:?} failed: {e}"),
        }
    }

    #[track_caller]
    fn check_err(input: &str, expected: NormaliseError) {
        assert_eq!(Target::parse(input), Err(expected), "{input:?}");
    }

    #[test]
    fn hosts() {
        check("Example.COM", "example.com");
        check("example.com.", "example.com");
        check("example.com..", "example.com");
        check("www.example.com", "example.com");
        check("WWW.Example.com.", "example.com");
        check("www.com", "www.com");
        check("wwwexample.com", "wwwexample.com");
        check("example.com:8080", "example.com");
        check("http://example.com:80/", "example.com");
        check("https://user:pw@Example.com:443/", "example.com");
        check("//example.com/a", "example.com/a");
        check("ex%41mple.com", "example.com");
        check("under_score.example.com", "under_score.example.com");
        check("  spaced.example.com \t", "spaced.example.com");
    }

    #[test]
    fn idn() {
        check("bücher.example", "xn--bcher-kva.example");
        check("BÜCHER.example", "xn--bcher-kva.example");
        check("http://münchen.de/Straße", "xn--mnchen-3ya.de/straße");
        check("xn--bcher-kva.example", "xn--bcher-kva.example");
        check("例え.テスト", "xn--r8jz45g.xn--zckzah");
    }

    #[test]
    fn ipv4_forms() {
        for form in [
            "192.168.1.1",
            "3232235777",
            "0xC0A80101",
            "0xc0.0xa8.0x1.0x1",
            "0300.0250.0001.0001",
            "192.168.257",
            "192.11010305",
            "http://3232235777/",
            "[::ffff:192.168.1.1]",
            "192.168.1.1.",
        ] {
            check(form, "192.168.1.1");
        }
        check("0", "0.0.0.0");
        check("127.1", "127.0.0.1");
        check_err("256.1.1.1", NormaliseError::BadIpv4);
        check_err("1.2.3.4.5", NormaliseError::BadIpv4);
        check_err("example.123", NormaliseError::BadIpv4);
        check("0x1.0xgg", "0x1.0xgg"); // last label is not a number: a name
    }

    #[test]
    fn ipv6_forms() {
        check("[2001:DB8::1]", "[2001:db8::1]");
        check(
            "[2001:0db8:0000:0000:0000:0000:0000:0001]:443",
            "[2001:db8::1]",
        );
        check("http://[2001:db8::1]:8080/x", "[2001:db8::1]/x");
        check("2001:db8::1", "[2001:db8::1]");
        check_err("[2001:db8::zz]", NormaliseError::BadIpv6);
    }

    #[test]
    fn paths() {
        check("example.com/A/B", "example.com/a/b");
        check("example.com//a//b", "example.com/a/b");
        check("example.com/a/./b/../c", "example.com/a/c");
        check("example.com/a/b/..", "example.com/a/");
        check("example.com/../../a", "example.com/a");
        check("example.com/a%2Fb", "example.com/a/b");
        check("example.com/%7Euser", "example.com/~user");
        check("example.com/a%20b", "example.com/a b");
        check("example.com/a/#frag", "example.com/a/");
        check("example.com/a?Q=1#f", "example.com/a?q=1");
        check("example.com?q=1", "example.com/?q=1");
        check("example.com/?q=1", "example.com/?q=1");
        check("example.com/?", "example.com");
        check("example.com/a?", "example.com/a");
        check("example.com/A/?B", "example.com/a/?b");
        check("example.com/a/.hidden", "example.com/a/.hidden");
        check("example.com/a/%2e%2e/b", "example.com/b");
        check("example.com/", "example.com");
        check("example.com/a%", "example.com/a%");
        check("example.com/a%zz", "example.com/a%zz");
        check("example.com\\a\\b", "example.com/a/b");
        // Real UT1 mess: a zero-width space, percent-encoded, inside a URL entry.
        check(
            "337726.com/%40%40%E2%80%8Bjd75.imonation.fr%E2%80%8B",
            "337726.com/@@jd75.imonation.fr",
        );
        check("45.90.163.37//arm4", "45.90.163.37/arm4");
    }

    #[test]
    fn errors() {
        check_err("", NormaliseError::Empty);
        check_err("   ", NormaliseError::Empty);
        check_err("http:///path", NormaliseError::NoHost);
        check_err("exa mple.com", NormaliseError::BadHostChar(' '));
        check_err("https;//example.com/a", NormaliseError::BadHostChar(';'));
        check_err("a..b.com", NormaliseError::BadLabel);
        check_err("example.com:99999", NormaliseError::BadPort);
        check_err("example.com:http", NormaliseError::BadPort);
        check_err(&format!("{}.com", "a".repeat(64)), NormaliseError::BadLabel);
    }

    mod differential {
        use super::super::*;
        use proptest::prelude::*;

        fn piece() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("".to_owned()),
                Just("/".to_owned()),
                Just("//".to_owned()),
                Just(".".to_owned()),
                Just("..".to_owned()),
                Just("%2F".to_owned()),
                Just("%41".to_owned()),
                Just("?".to_owned()),
                Just("#".to_owned()),
                Just("\\".to_owned()),
                Just(":".to_owned()),
                Just("@".to_owned()),
                Just("\u{200b}".to_owned()),
                Just("é".to_owned()),
                Just("www.".to_owned()),
                Just("WWW.".to_owned()),
                Just("0x7f".to_owned()),
                Just("192.168.0.1".to_owned()),
                Just("[::1]".to_owned()),
                Just(":8080".to_owned()),
                "[a-zA-Z0-9_-]{1,8}",
            ]
        }

        proptest! {
            /// Any text at all gives a target or an error, never a panic; a target's host is
            /// non-empty ASCII.
            #[test]
            fn arbitrary_input_never_panics(input in "\\PC{0,80}", raw in proptest::collection::vec(any::<u8>(), 0..80)) {
                for text in [input, String::from_utf8_lossy(&raw).into_owned()] {
                    if let Ok(t) = Target::parse(&text) {
                        prop_assert!(!t.host().is_empty() && t.host().is_ascii(), "{:?} -> {:?}", text, t);
                    }
                }
            }

            /// The one-pass fast path gives exactly what the general parser gives, whenever it
            /// accepts an input at all.
            #[test]
            fn fast_path_agrees_with_the_general_parser(
                scheme in prop_oneof![Just(""), Just("http://"), Just("HTTPS://"), Just("ftp://"), Just("//"), Just("x-y+z://")],
                pieces in proptest::collection::vec(piece(), 1..12),
            ) {
                let input = format!("{scheme}{}", pieces.concat());
                let mut fast = Target::parse("seed.invalid").expect("seed");
                if fast.parse_plain(input.trim()) {
                    let mut general = Target::parse("seed.invalid").expect("seed");
                    prop_assert!(general.parse_general(input.trim()).is_ok(), "{:?}: fast accepted, general refused", input);
                    prop_assert_eq!(&fast.buf, &general.buf, "{:?}", input);
                    prop_assert_eq!(fast.host_len, general.host_len, "{:?}", input);
                    prop_assert_eq!(fast.kind, general.kind, "{:?}", input);
                    prop_assert_eq!(fast.port, general.port, "{:?}", input);
                }
            }
        }
    }

    #[test]
    fn suffixes_and_extension() {
        let t = Target::parse("https://a.b.example.com/dl/Setup.EXE?x=1").expect("parses");
        let s: Vec<_> = t
            .host_suffixes()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(
            s,
            ["a.b.example.com", "b.example.com", "example.com", "com"]
        );
        assert_eq!(t.extension(), Some("exe"));
        assert_eq!(
            Target::parse("example.com/dir.d/")
                .expect("parses")
                .extension(),
            None
        );
        let ip = Target::parse("10.0.0.1").expect("parses");
        assert_eq!(ip.host_suffixes().count(), 1);
        assert_eq!(ip.kind(), HostKind::Ipv4);
    }
}
