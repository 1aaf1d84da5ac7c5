//! The DNS request path's parsing: any datagram is a query, a FORMERR or nothing; never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match haven_dns::wire::parse_query(data) {
        Ok(q) => {
            let reply = haven_dns::wire::Reply::to(&q).rcode(haven_dns::wire::rcode::NXDOMAIN).build();
            assert!(haven_dns::wire::parse_response(&reply).is_ok());
        }
        Err(_) => {
            let _ = haven_dns::wire::formerr(data);
        }
    }
    let _ = haven_dns::wire::parse_response(data);
});
