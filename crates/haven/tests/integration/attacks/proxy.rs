//! Attacks on the proxy.
