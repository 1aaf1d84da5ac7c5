//! Attacks on the store.
