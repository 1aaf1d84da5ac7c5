//! What to do with a query, decided by the policy engine. Pure: no sockets, no clock.

use haven_core::engine::{Engine, GroupId, Rule};
use haven_core::policy::Action;
use haven_core::Target;
use jiff::civil::DateTime;

use crate::wire::ede;

/// Names that tell devices to keep using the network's resolver: Firefox's DNS-over-HTTPS canary
/// and iCloud Private Relay. Answered NXDOMAIN for everyone.
pub const CANARIES: &[&str] = &[
    "use-application-dns.net",
    "mask.icloud.com",
    "mask-h2.icloud.com",
];

/// Categories blocked for security rather than suitability (RFC 8914 "Blocked").
const SECURITY: &[&str] = &["malware", "phishing", "hacking", "spyware"];

/// Why a name is blocked, in the form the answer carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The deciding category's id (empty when a rule, not a category, decided).
    pub category: String,
    /// RFC 8914 code: Censored for illegal lists, Blocked for security, Filtered otherwise.
    pub ede: u16,
    /// Short text for the extended error and the event: category and rule.
    pub reason: String,
    /// Whether a warning page could let the user through (the block-page mode answers it).
    pub warn: bool,
}

/// The plan for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Ask upstream, then check every CNAME target of the answer. The action is what the
    /// event records: `allow`, or `alert-only` and `warn` (passed) with their reason, so that
    /// monitoring sees them.
    Forward(Action, Option<Blocked>),
    /// Answer with the block response.
    Block(Blocked),
    /// Answer with a CNAME to the engine's safe-search host.
    SafeSearch(&'static str),
    /// A canary name: NXDOMAIN.
    Canary,
}

/// Decides on one name for a group at a local time. `warn_as_block` makes `warn` decisions
/// block (so a block page can offer the click-through); otherwise they pass.
pub fn plan(
    engine: &Engine,
    name: &str,
    group: GroupId,
    at: DateTime,
    warn_as_block: bool,
) -> Plan {
    if CANARIES.contains(&name) {
        return Plan::Canary;
    }
    // One target per thread, reused: no allocation per query.
    thread_local! {
        static TARGET: std::cell::RefCell<Option<Target>> = const { std::cell::RefCell::new(None) };
    }
    let d = TARGET.with_borrow_mut(|slot| {
        let parsed = match slot {
            Some(t) => t.parse_into(name).map(|()| &*t),
            None => Target::parse(name).map(|t| &*slot.insert(t)),
        };
        parsed.ok().map(|t| engine.decide(t, group, None, at))
    });
    let Some(d) = d else {
        // A name Haven cannot read cannot be judged: fail closed.
        return Plan::Block(Blocked {
            category: String::new(),
            ede: ede::FILTERED,
            reason: "unreadable name".to_owned(),
            warn: false,
        });
    };
    match d.action {
        Action::Allow => Plan::Forward(Action::Allow, None),
        Action::AlertOnly => Plan::Forward(Action::AlertOnly, Some(blocked(engine, group, &d))),
        Action::Warn if !warn_as_block => {
            Plan::Forward(Action::Warn, Some(blocked(engine, group, &d)))
        }
        Action::Rewrite => match d.safe_search.and_then(|(e, m)| e.safe_host(m)) {
            Some(host) => Plan::SafeSearch(host),
            None => Plan::Forward(Action::Allow, None),
        },
        Action::Warn | Action::Block => Plan::Block(blocked(engine, group, &d)),
    }
}

/// Checks the names an upstream answer leads to (CNAME targets); the first blocked one blocks.
pub fn check_chain<'a>(
    engine: &Engine,
    names: impl IntoIterator<Item = &'a str>,
    group: GroupId,
    at: DateTime,
    warn_as_block: bool,
) -> Option<Blocked> {
    names
        .into_iter()
        .find_map(|name| match plan(engine, name, group, at, warn_as_block) {
            Plan::Block(b) => Some(Blocked {
                reason: format!("{} (via CNAME {name})", b.reason),
                ..b
            }),
            _ => None,
        })
}

fn blocked(engine: &Engine, group: GroupId, d: &haven_core::Decision) -> Blocked {
    let (category, rule) = engine.brief(group, d);
    let category = category.unwrap_or("");
    let code = if d.rule == Rule::Illegal {
        ede::CENSORED
    } else if SECURITY.contains(&category) {
        ede::BLOCKED
    } else {
        ede::FILTERED
    };
    let what = haven_core::category::by_id(category).map_or(category, |c| c.name);
    let reason = if what.is_empty() {
        format!("Haven: {rule}")
    } else {
        format!("Haven: {what} ({rule})")
    };
    Blocked {
        category: category.to_owned(),
        ede: code,
        reason,
        warn: d.action == Action::Warn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::policy::{parse_datetime, DEFAULT_POLICY};
    use haven_core::snapshot::{EntryKind, SnapshotBuilder};
    use haven_core::{Policy, Snapshot};
    use std::sync::Arc;

    fn engine() -> Engine {
        let mut b = SnapshotBuilder::new();
        for (cat, name) in [
            ("extremism", "extreme.example"),
            ("streaming", "videos.example"),
            ("gambling", "casino.example"),
        ] {
            let s = b.add_source(cat, cat).expect("source");
            b.add(s, EntryKind::Domain, name).expect("entry");
        }
        let snap = Snapshot::from_bytes(b.build(0)).expect("snapshot");
        Engine::new(
            Arc::new(snap),
            Arc::new(Policy::from_toml(DEFAULT_POLICY).expect("policy")),
            "test",
        )
        .expect("engine")
    }

    #[test]
    fn monitoring_sees_alert_only_and_passed_warnings() {
        let e = engine();
        let ks2 = e.group_id("ks2").expect("ks2");
        let at = parse_datetime("2026-11-23T10:00").expect("time");
        match plan(&e, "extreme.example", ks2, at, false) {
            Plan::Forward(Action::AlertOnly, Some(b)) => {
                assert!(b.reason.contains("Extremism"), "{}", b.reason);
                assert_eq!(b.category, "extremism");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            plan(&e, "videos.example", ks2, at, false),
            Plan::Forward(Action::Warn, Some(_))
        ));
        assert!(matches!(
            plan(&e, "videos.example", ks2, at, true),
            Plan::Block(Blocked { warn: true, .. })
        ));
        assert_eq!(
            plan(&e, "unlisted.example", ks2, at, false),
            Plan::Forward(Action::Allow, None)
        );
        assert_eq!(
            plan(&e, "use-application-dns.net", ks2, at, false),
            Plan::Canary
        );
        assert_eq!(
            plan(&e, "www.google.co.uk", ks2, at, false),
            Plan::SafeSearch("forcesafesearch.google.com")
        );
        match plan(&e, "casino.example", ks2, at, false) {
            Plan::Block(b) => {
                assert_eq!((b.ede, b.category.as_str()), (ede::FILTERED, "gambling"));
                assert_eq!(b.reason, "Haven: Gambling (groups.ks2.categories.gambling)");
            }
            other => panic!("{other:?}"),
        }
    }
}
