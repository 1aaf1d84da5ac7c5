//! Attacks on the lists.
