//! Attacks on the console.
