//! The server name in a TLS ClientHello (RFC 8446 §4.1.2, RFC 6066 §3), read from the first
//! bytes a client sends through a CONNECT tunnel, without taking part in the handshake.

/// What the first bytes of a tunnel say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A ClientHello naming this server (lower case, no trailing dot).
    Sni(String),
    /// A ClientHello without a server name (an address, or an old client).
    NoSni,
    /// Not yet a whole ClientHello: read more (up to the limit).
    Incomplete,
    /// Not TLS, or a malformed ClientHello.
    NotTls,
}

/// The most a ClientHello may take before Haven gives up waiting for it (a post-quantum key
/// share makes them a few kilobytes).
pub const MAX_HELLO: usize = 16 * 1024;

/// Reads the server name from the start of a TLS stream: one or more handshake records holding a
/// ClientHello.
pub fn parse(data: &[u8]) -> Hello {
    // Gather the handshake message from as many records as it spans.
    let mut msg = Vec::new();
    let mut at = 0;
    loop {
        let Some(header) = data.get(at..at + 5) else {
            return if msg.is_empty() && !data.is_empty() && data[0] != 22 {
                Hello::NotTls
            } else {
                Hello::Incomplete
            };
        };
        if header[0] != 22 || header[1] != 3 {
            return Hello::NotTls;
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16_384 + 256 {
            return Hello::NotTls;
        }
        let Some(body) = data.get(at + 5..at + 5 + len) else {
            return Hello::Incomplete;
        };
        msg.extend_from_slice(body);
        at += 5 + len;
        if msg.len() >= 4 {
            if msg[0] != 1 {
                return Hello::NotTls;
            }
            let need =
                4 + (usize::from(msg[1]) << 16 | usize::from(msg[2]) << 8 | usize::from(msg[3]));
            if need > MAX_HELLO {
                return Hello::NotTls;
            }
            if msg.len() >= need {
                return client_hello(&msg[4..need]).unwrap_or(Hello::NotTls);
            }
        }
    }
}

/// A cursor over a byte slice; every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| usize::from(b[0]))
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(n)
    }
}

fn client_hello(body: &[u8]) -> Option<Hello> {
    let mut r = Reader(body);
    r.take(2)?; // legacy_version
    r.take(32)?; // random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    if r.0.is_empty() {
        return Some(Hello::NoSni);
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        if kind != 0 {
            continue;
        }
        // server_name: a list of (type, name); type 0 is a host name.
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let name_type = list.u8()?;
            let name = list.vec16()?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic()) {
                    return None;
                }
                return Some(Hello::Sni(name.trim_end_matches('.').to_ascii_lowercase()));
            }
        }
        return Some(Hello::NoSni);
    }
    Some(Hello::NoSni)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record with the given extensions.
    fn hello(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0); // session id
        body.extend_from_slice(&[0, 2, 0x13, 0x01]); // one cipher suite
        body.extend_from_slice(&[1, 0]); // null compression
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
        let mut msg = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
        msg.extend_from_slice(&body);
        let mut rec = vec![22, 3, 1, (msg.len() >> 8) as u8, msg.len() as u8];
        rec.extend_from_slice(&msg);
        rec
    }

    fn sni_ext(name: &str) -> Vec<u8> {
        let mut entry = vec![0];
        entry.extend_from_slice(&(name.len() as u16).to_be_bytes());
        entry.extend_from_slice(name.as_bytes());
        let mut list = (entry.len() as u16).to_be_bytes().to_vec();
        list.extend_from_slice(&entry);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&(list.len() as u16).to_be_bytes());
        ext.extend_from_slice(&list);
        ext
    }

    #[test]
    fn finds_the_server_name() {
        // Another extension first (supported_versions), then SNI.
        let mut exts = vec![0, 43, 0, 3, 2, 3, 4];
        exts.extend_from_slice(&sni_ext("WWW.Example.COM."));
        assert_eq!(parse(&hello(&exts)), Hello::Sni("www.example.com".into()));
        assert_eq!(parse(&hello(&[0, 43, 0, 3, 2, 3, 4])), Hello::NoSni);
    }

    #[test]
    fn waits_for_the_rest_and_spans_records() {
        let rec = hello(&sni_ext("a.example"));
        for cut in [0, 1, 4, 5, 20, rec.len() - 1] {
            assert_eq!(parse(&rec[..cut]), Hello::Incomplete, "cut at {cut}");
        }
        // The same handshake message split over two records.
        let msg = &rec[5..];
        let (a, b) = msg.split_at(30);
        let mut two = vec![22, 3, 1, 0, a.len() as u8];
        two.extend_from_slice(a);
        two.extend_from_slice(&[22, 3, 1, (b.len() >> 8) as u8, b.len() as u8]);
        two.extend_from_slice(b);
        assert_eq!(parse(&two), Hello::Sni("a.example".into()));
    }

    #[test]
    fn refuses_what_is_not_a_client_hello() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n\r\n"), Hello::NotTls);
        assert_eq!(parse(b"SSH-2.0-OpenSSH_9.2\r\n"), Hello::NotTls);
        let mut rec = hello(&sni_ext("a.example"));
        rec[5] = 2; // a ServerHello
        assert_eq!(parse(&rec), Hello::NotTls);
        // A name list that claims more than it has.
        let mut bad = sni_ext("a.example");
        bad[5] = 0xff;
        assert_eq!(parse(&hello(&bad)), Hello::NotTls);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let base = hello(&sni_ext("fuzz.example"));
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let mut m = base.clone();
            let i = (seed as usize) % m.len();
            m[i] = (seed >> 32) as u8;
            m.truncate((seed >> 40) as usize % (m.len() + 1));
            let _ = parse(&m);
        }
    }
}
