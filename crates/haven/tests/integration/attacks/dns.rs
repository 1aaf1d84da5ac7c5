//! Attacks on the DNS filter: amplification by a large advertised EDNS size, malformed and
//! future EDNS, negative answers a client cannot cache, one address holding every TCP slot, and a
//! query flood from one address. The real `haven serve` on loopback; packets built by hand.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haven_dns::wire::{self, rcode, rtype};

use crate::dns::{start_haven, start_haven_with, start_upstream, Server};

/// A query for `name` with one OPT record advertising `size` bytes and EDNS `version`.
fn edns_query(id: u16, name: &str, qtype: u16, size: u16, version: u8) -> Vec<u8> {
    let mut q = wire::build_query(id, name, qtype).expect("query");
    // build_query ends with an OPT record: root, type, class (the size), TTL, RDLENGTH 0.
    let opt = q.len() - 11;
    assert_eq!(&q[opt..opt + 3], &[0, 0, 41], "an OPT record last");
    q[opt + 3..opt + 5].copy_from_slice(&size.to_be_bytes());
    q[opt + 6] = version;
    q
}

/// A query with no OPT record (a client without EDNS).
fn plain_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = wire::build_query(id, name, rtype::A).expect("query");
    q.truncate(q.len() - 11);
    q[10..12].copy_from_slice(&0u16.to_be_bytes());
    q
}

/// Sends `msg` over UDP from `from` and returns the reply.
fn udp(from: &str, server: &Server, msg: &[u8]) -> Vec<u8> {
    let sock = UdpSocket::bind((from, 0)).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    sock.send_to(msg, ("127.0.0.1", server.port)).expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).expect("a reply over UDP");
    buf.truncate(n);
    buf
}

/// A TCP connection to the server from the address `from`.
fn tcp_from(from: &str, port: u16) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let stream = rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4()?;
        s.bind(SocketAddr::new(from.parse::<IpAddr>().expect("ip"), 0))?;
        s.connect(SocketAddr::from(([127, 0, 0, 1], port))).await
    })?;
    let stream = stream.into_std()?;
    stream.set_nonblocking(false)?;
    Ok(stream)
}

/// One query and its reply over a TCP connection (length-prefixed both ways).
fn tcp_exchange(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<Vec<u8>> {
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    s.write_all(&framed)?;
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut reply)?;
    Ok(reply)
}

fn u16_at(m: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([m[at], m[at + 1]])
}

/// A reply's records after the question, as (owner, type, class, TTL, rdata) by section.
type Rr = (String, u16, u16, u32, Vec<u8>);
fn sections(m: &[u8]) -> [Vec<Rr>; 3] {
    let (_, mut pos) = wire::read_name(m, 12).expect("question name");
    pos += 4;
    let mut out: [Vec<Rr>; 3] = Default::default();
    for (i, count) in [u16_at(m, 6), u16_at(m, 8), u16_at(m, 10)]
        .into_iter()
        .enumerate()
    {
        for _ in 0..count {
            let (owner, after) = wire::read_name(m, pos).expect("owner");
            let ttl = u32::from_be_bytes([m[after + 4], m[after + 5], m[after + 6], m[after + 7]]);
            let len = usize::from(u16_at(m, after + 8));
            let rdata = m[after + 10..after + 10 + len].to_vec();
            out[i].push((owner, u16_at(m, after), u16_at(m, after + 2), ttl, rdata));
            pos = after + 10 + len;
        }
    }
    assert_eq!(pos, m.len(), "nothing after the records");
    out
}

/// The SOA of a negative answer: (owner, TTL, MINIMUM).
fn soa(reply: &[u8]) -> (String, u32, u32) {
    let [_, authority, _] = sections(reply);
    let soa = authority
        .iter()
        .find(|r| r.1 == rtype::SOA)
        .unwrap_or_else(|| panic!("no SOA in the authority section: {reply:?}"));
    let rdata = &soa.4;
    let minimum = u32::from_be_bytes(rdata[rdata.len() - 4..].try_into().expect("4"));
    (soa.0.clone(), soa.3, minimum)
}

/// The OPT record of a reply: (its UDP size, extended RCODE bits, version).
fn opt(reply: &[u8]) -> Option<(u16, u8, u8)> {
    let [_, _, additional] = sections(reply);
    let o = additional.iter().find(|r| r.1 == rtype::OPT)?;
    Some((o.2, (o.3 >> 24) as u8, (o.3 >> 16) as u8))
}

#[test]
fn a_large_answer_cannot_be_amplified_over_udp() {
    let upstream = start_upstream();
    let (server, dir) = start_haven("attack-dns-amplify", &upstream, "nxdomain");
    // A 40-byte query advertising 4,096 bytes for a name whose answer is about 2,800 bytes.
    let q = edns_query(0x4141, "huge.example", rtype::A, 4096, 0);
    let reply = udp("127.0.0.2", &server, &q);
    assert!(
        reply.len() <= 1232,
        "a UDP answer of {} bytes to a {}-byte query",
        reply.len(),
        q.len()
    );
    assert_eq!(
        reply[2] & 0x02,
        0x02,
        "truncated (TC), so the client retries over TCP"
    );
    assert_eq!(u16_at(&reply, 0), 0x4141);
    assert_eq!(
        opt(&reply).map(|o| o.0),
        Some(1232),
        "the truncated answer still says EDNS, with Haven's size"
    );
    // Over TCP the whole answer comes.
    let mut s = tcp_from("127.0.0.2", server.port).expect("connect");
    let full = tcp_exchange(&mut s, &q).expect("an answer over TCP");
    assert_eq!(full[2] & 0x02, 0, "not truncated over TCP");
    let r = wire::parse_response(&full).expect("parses");
    assert_eq!(r.answers.len(), 100, "every record over TCP");
    assert!(full.len() > 2000);
    // An answer that fits in 1,232 bytes still comes whole over UDP.
    let reply = udp(
        "127.0.0.2",
        &server,
        &edns_query(0x4242, "big.example", rtype::A, 4096, 0),
    );
    assert_eq!(reply[2] & 0x02, 0, "{} bytes not truncated", reply.len());
    assert_eq!(
        wire::parse_response(&reply).expect("parses").answers.len(),
        40
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_query_with_two_opt_records_is_a_format_error() {
    let upstream = start_upstream();
    let (server, dir) = start_haven("attack-dns-two-opt", &upstream, "nxdomain");
    let mut q = edns_query(0x5151, "allowed.example", rtype::A, 1232, 0);
    let opt = q[q.len() - 11..].to_vec();
    q.extend_from_slice(&opt);
    q[10..12].copy_from_slice(&2u16.to_be_bytes());
    let reply = udp("127.0.0.2", &server, &q);
    assert_eq!(u16_at(&reply, 0), 0x5151);
    assert_eq!(reply[2] & 0x80, 0x80, "a response");
    assert_eq!(reply[3] & 0x0F, rcode::FORMERR, "{reply:?}");
    assert_eq!(u16_at(&reply, 6), 0, "no answer");
    // The same query with one OPT record is answered.
    let reply = udp(
        "127.0.0.2",
        &server,
        &edns_query(0x5152, "allowed.example", rtype::A, 1232, 0),
    );
    assert_eq!(reply[3] & 0x0F, rcode::NOERROR);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_edns_version_gets_badvers_not_an_answer() {
    let upstream = start_upstream();
    let (server, dir) = start_haven("attack-dns-badvers", &upstream, "nxdomain");
    for (i, name) in ["allowed.example", "bet365.com"].into_iter().enumerate() {
        let id = 0x6160 + i as u16;
        let reply = udp(
            "127.0.0.2",
            &server,
            &edns_query(id, name, rtype::A, 1232, 1),
        );
        assert_eq!(u16_at(&reply, 0), id);
        // BADVERS is 16: 0 in the header's four bits, 1 in the OPT's upper eight.
        assert_eq!(reply[3] & 0x0F, 0, "{name}: {reply:?}");
        assert_eq!(
            opt(&reply),
            Some((1232, 1, 0)),
            "{name}: BADVERS with an OPT of version 0"
        );
        assert_eq!(u16_at(&reply, 6), 0, "{name}: no answer records");
    }
    // Over TCP too.
    let mut s = tcp_from("127.0.0.2", server.port).expect("connect");
    let reply = tcp_exchange(
        &mut s,
        &edns_query(0x6170, "allowed.example", rtype::A, 1232, 3),
    )
    .expect("answer");
    assert_eq!(opt(&reply), Some((1232, 1, 0)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn havens_own_negative_answers_carry_an_soa_for_negative_caching() {
    let upstream = start_upstream();
    // The default: five minutes.
    let (server, dir) = start_haven("attack-dns-soa", &upstream, "nxdomain");
    for (from, name) in [
        ("127.0.0.2", "www.bet365.com"),
        ("127.0.0.3", "use-application-dns.net"),
        ("127.0.0.3", "mask.icloud.com"),
        ("127.0.0.3", "mask-h2.icloud.com"),
    ] {
        let reply = udp(from, &server, &edns_query(1, name, rtype::A, 1232, 0));
        assert_eq!(reply[3] & 0x0F, rcode::NXDOMAIN, "{name}");
        assert_eq!(soa(&reply), (name.to_owned(), 300, 300), "{name}");
        let r = wire::parse_response(&reply).expect("parses");
        assert_eq!(r.negative_ttl, Some(300), "{name}");
    }
    // The block keeps its extended error.
    let reply = udp(
        "127.0.0.2",
        &server,
        &edns_query(2, "bet365.com", rtype::AAAA, 1232, 0),
    );
    let [_, _, additional] = sections(&reply);
    let ede = &additional[0].4;
    assert_eq!(&ede[..2], &15u16.to_be_bytes(), "EDE option");
    assert_eq!(&ede[4..6], &17u16.to_be_bytes(), "Filtered");
    drop(server);
    // A configured TTL, in block-page mode: types with no block address get no data, with an SOA.
    let (server, dir2) = start_haven_with(
        "attack-dns-soa-ttl",
        &upstream,
        "block-page",
        "negative_ttl = 120\n",
    );
    let reply = udp(
        "127.0.0.2",
        &server,
        &edns_query(3, "bet365.com", 16, 1232, 0),
    );
    assert_eq!(
        (reply[3] & 0x0F, u16_at(&reply, 6)),
        (rcode::NOERROR, 0),
        "no data"
    );
    assert_eq!(soa(&reply), ("bet365.com".to_owned(), 120, 120));
    // Without EDNS as well (a client without EDNS gets no OPT, but the same SOA).
    let reply = udp(
        "127.0.0.3",
        &server,
        &plain_query(4, "use-application-dns.net"),
    );
    assert_eq!(reply[3] & 0x0F, rcode::NXDOMAIN);
    assert_eq!(soa(&reply).2, 120);
    assert_eq!(opt(&reply), None);
    drop(server);
    for d in [dir, dir2] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn one_address_cannot_hold_every_tcp_slot() {
    let upstream = start_upstream();
    let (server, dir) = start_haven("attack-dns-tcp-slots", &upstream, "nxdomain");
    // One device opens more connections than Haven serves at once (1,024), and says nothing.
    let mut held = Vec::new();
    for i in 0..1100 {
        match tcp_from("127.0.0.2", server.port) {
            Ok(s) => held.push(s),
            Err(e) => panic!("connection {i}: {e} (this test needs about 1,200 file descriptors)"),
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // Another device is still answered over TCP.
    let q = wire::build_query(0x7171, "allowed.example", rtype::A).expect("query");
    let mut s = tcp_from("127.0.0.3", server.port).expect("connect");
    let reply = tcp_exchange(&mut s, &q).expect("another address is answered over TCP");
    assert_eq!(
        (u16_at(&reply, 0), reply[3] & 0x0F),
        (0x7171, rcode::NOERROR)
    );
    // The first device's first connections still work: a cap per address, not a blanket refusal.
    let reply = tcp_exchange(&mut held[0], &q).expect("the first connection is served");
    assert_eq!(reply[3] & 0x0F, rcode::NOERROR);
    // Most of its others were closed by the server.
    let mut closed = 0;
    for s in held.iter_mut().skip(100) {
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let mut b = [0u8; 1];
        // Closed: end of stream (or a reset); still open: the read times out.
        match s.read(&mut b) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    assert!(
        closed >= 900,
        "only {closed} of 1,000 excess connections closed"
    );
    drop(held);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_query_flood_from_one_address_is_limited_by_default() {
    let upstream = start_upstream();
    let (server, dir) = start_haven("attack-dns-flood", &upstream, "nxdomain");
    let port = server.port;
    // Warm the cache so every query of the flood is answered at once.
    assert_eq!(
        crate::dns::ask("127.0.0.3", port, "allowed.example", 1).map(|a| a.0),
        Some(rcode::NOERROR)
    );
    let sock = UdpSocket::bind("127.0.0.2:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let reader = sock.try_clone().expect("clone");
    let (answered, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    // Returns when the last answer came: the server decided every query before then.
    let counting = {
        let (answered, refused, done) = (answered.clone(), refused.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            let mut last = Instant::now();
            loop {
                match reader.recv(&mut buf) {
                    Ok(n) if n >= 12 => {
                        last = Instant::now();
                        match buf[3] & 0x0F {
                            rcode::NOERROR => answered.fetch_add(1, Ordering::SeqCst),
                            rcode::REFUSED => refused.fetch_add(1, Ordering::SeqCst),
                            _ => 0,
                        };
                    }
                    Ok(_) => {}
                    Err(_) if done.load(Ordering::SeqCst) => return last,
                    Err(_) => {}
                }
            }
        })
    };
    // 20,000 queries as fast as the reader keeps up, over a second or two.
    let q = wire::build_query(2, "allowed.example", rtype::A).expect("query");
    let mut victim_answered = 0;
    for i in 0..20_000u32 {
        sock.send_to(&q, ("127.0.0.1", port)).expect("send");
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_micros(500));
        }
        // Meanwhile another device is answered.
        if i % 5000 == 0
            && crate::dns::ask("127.0.0.3", port, "allowed.example", i as u16).map(|a| a.0)
                == Some(rcode::NOERROR)
        {
            victim_answered += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    done.store(true, Ordering::SeqCst);
    let last = counting.join().expect("reader");
    let elapsed = last.saturating_duration_since(started).as_secs_f64();
    let (answered, refused) = (
        answered.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    assert_eq!(
        victim_answered, 4,
        "the other device was answered throughout"
    );
    // The default: 1,000 a second, bursts of 2,000.
    assert!(
        refused > 1000 && (answered as f64) <= 2000.0 + 1000.0 * elapsed + 10.0,
        "{answered} answered, {refused} refused in {elapsed:.2} s"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
