//! The engine in force, replaced whole while requests flow.

use std::sync::Arc;

use arc_swap::ArcSwap;
use haven_core::Engine;

/// The engine in force, replaced whole while requests flow; a failed replacement keeps the old.
#[derive(Debug)]
pub struct LiveEngine {
    current: ArcSwap<Engine>,
}

impl LiveEngine {
    /// Starts with an engine.
    pub fn new(engine: Engine) -> LiveEngine {
        LiveEngine {
            current: ArcSwap::from_pointee(engine),
        }
    }

    /// The engine in force now.
    pub fn current(&self) -> Arc<Engine> {
        self.current.load_full()
    }

    /// Builds a new engine and swaps it in; on error the engine in force stays.
    pub fn replace<E>(&self, build: impl FnOnce(&Engine) -> Result<Engine, E>) -> Result<(), E> {
        let next = build(&self.current.load())?;
        self.current.store(Arc::new(next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::policy::{parse_datetime, DEFAULT_POLICY};
    use haven_core::snapshot::{EntryKind, SnapshotBuilder};
    use haven_core::{Action, Policy, Snapshot, SnapshotError, Target};

    fn engine() -> Engine {
        let mut b = SnapshotBuilder::new();
        let s = b
            .add_source("t/gambling/domains", "gambling")
            .expect("source");
        b.add(s, EntryKind::Domain, "casino.example")
            .expect("entry");
        let snapshot = Arc::new(Snapshot::from_bytes(b.build(0)).expect("snapshot"));
        let policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        Engine::new(snapshot, Arc::new(policy), "test").expect("engine")
    }

    #[test]
    fn a_failed_replacement_keeps_the_engine_in_force() {
        let live = LiveEngine::new(engine());
        let before = live.current().snapshot().checksum();
        let r: Result<(), SnapshotError> = live.replace(|_| {
            let mut bytes = SnapshotBuilder::new().build(0);
            bytes.truncate(bytes.len() - 3);
            Snapshot::from_bytes(bytes).map(|_| unreachable!())
        });
        assert!(r.is_err());
        assert_eq!(live.current().snapshot().checksum(), before);
        let t = Target::parse("casino.example").expect("t");
        let e = live.current();
        let g = e.group_id("ks2").expect("g");
        assert_eq!(
            e.decide(&t, g, None, parse_datetime("2026-11-23T10:00").expect("t"))
                .action,
            Action::Block
        );
        live.replace(|cur| Engine::new(Arc::new(Snapshot::empty()), cur.policy().clone(), "test"))
            .expect("good swap");
        assert_ne!(live.current().snapshot().checksum(), before);
    }
}
