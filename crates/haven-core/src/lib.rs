//! Haven's pure core: the category taxonomy, URL normalisation, the compiled list snapshot and the
//! policy engine.
//!
//! Architecture invariant: nothing in this crate performs I/O, reads a clock or spawns a thread,
//! and it holds no runtime plumbing (no channels, no arc-swap, no metric rendering: those live in
//! `haven-runtime`). Callers pass bytes in (a snapshot file, a policy's text, list lines) and a
//! local time; the core returns values. That keeps every decision reproducible and testable without sockets or files.

pub mod category;
pub mod clients;
pub mod engine;
pub mod event;
pub mod kept;
pub mod listfmt;
pub mod normalise;
pub mod phrases;
pub mod policy;
pub mod risk;
pub mod safesearch;
pub mod searchterm;
pub mod snapshot;
pub mod textfile;
pub mod throttle;

pub use engine::{Decision, Engine, Explanation, GroupId, IllegalOverride, Rule};
pub use normalise::Target;
pub use policy::{Action, Policy, PolicyError};
pub use snapshot::{Snapshot, SnapshotBuilder, SnapshotError};
