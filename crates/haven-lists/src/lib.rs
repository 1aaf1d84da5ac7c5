//! Imports category lists into Haven snapshots: UT1/squidGuard directory trees and tar.gz
//! archives, hosts files, plain domain lists and IWF-style URL lists, from a local path or an
//! http(s) URL. Owns the list state in Haven's data directory.
//!
//! This crate does the I/O; parsing lines and building the snapshot are `haven-core`'s.

pub mod fetch;
pub mod import;
pub mod progress;
pub mod sources;
pub mod store;

pub use import::{FileReport, Format, ImportError, SourceReport, SourceSpec};
pub use progress::Progress;
pub use store::{judge, ListStore, Loaded, Refusal, StoreError};
