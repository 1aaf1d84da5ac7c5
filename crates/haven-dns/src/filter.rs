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
    /// Ask upstream, then check every CNAME target of the answer.
    Forward,
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
    let Ok(target) = Target::parse(name) else {
        // A name Haven cannot read cannot be judged: fail closed.
        return Plan::Block(Blocked {
            category: String::new(),
            ede: ede::FILTERED,
            reason: "unreadable name".to_owned(),
            warn: false,
        });
    };
    let d = engine.decide(&target, group, None, at);
    match d.action {
        Action::Allow | Action::AlertOnly => Plan::Forward,
        Action::Rewrite => match d.safe_search.and_then(|(e, m)| e.safe_host(m)) {
            Some(host) => Plan::SafeSearch(host),
            None => Plan::Forward,
        },
        Action::Warn if !warn_as_block => Plan::Forward,
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
