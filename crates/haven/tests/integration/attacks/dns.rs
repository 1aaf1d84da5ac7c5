//! Attacks on the dns.
