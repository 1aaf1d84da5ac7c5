//! The decision engine: a snapshot and a policy compiled together. One call per request, no
//! allocation, no I/O; every decision can explain itself.
//!
//! Precedence, first that applies wins:
//! 1. an illegal-list entry (IWF, CTIRU): block, for everyone, always — whatever the policy
//!    says: a rule that would allow such an entry does not stop the engine being built (the
//!    lists must always take effect), it is reported ([`Engine::illegal_overrides`]) and loses;
//! 2. a deny override for the group;
//! 3. a blocked file type for the group;
//! 4. an active lesson mode: its sites are allowed; in allow-only mode everything else is blocked;
//! 5. an allow override for the group;
//! 6. the categories of the most specific list entry (and of any matching regular expression): the
//!    strictest of their actions for the group, with active time rules applied;
//! 7. the group's default (with active time rules applied).
//!
//! An allowed search-engine request for a group that enforces safe search becomes `rewrite`.

use std::sync::Arc;

use jiff::civil::DateTime;
use serde::Serialize;

use crate::category;
use crate::normalise::Target;
use crate::policy::{Action, LessonKind, PatternSet, Policy, PolicyError, SafeSearchMode};
use crate::safesearch::{self, SearchEngine};
use crate::snapshot::{Hit, ListTable, Snapshot};

/// Identifies a group inside an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupId(usize);

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// An illegal-list entry.
    Illegal,
    /// A deny override (index into the policy's deny list).
    Deny(usize),
    /// A blocked file type.
    FileType,
    /// A support, health or online-safety service on Haven's always-reachable list (index of
    /// the entry, `config/lists/always-reachable.txt`).
    AlwaysReachable(usize),
    /// Outside an allow-only lesson's sites (lesson index).
    LessonOnly(usize),
    /// A lesson's site (lesson index).
    Lesson(usize),
    /// An allow override (index into the policy's allow list).
    Allow(usize),
    /// A category action; `when` is the active time rule that set it.
    Category {
        /// Snapshot category index.
        category: u16,
        /// Index of the group's time rule, when one set the action.
        when: Option<usize>,
    },
    /// The group is not in the policy in force (an id kept across a policy change): fail closed.
    UnknownGroup,
    /// An image search, blocked for the group (`image_search = "block"`).
    ImageSearch(SearchEngine),
    /// The group's default; `when` is the active time rule that set it.
    Default {
        /// Index of the group's time rule, when one set the action.
        when: Option<usize>,
    },
}

/// The outcome for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do.
    pub action: Action,
    /// Why.
    pub rule: Rule,
    /// The list entry that matched, if any.
    pub hit: Option<Hit>,
    /// The search engine whose safe search applies, with its mode.
    pub safe_search: Option<(SearchEngine, SafeSearchMode)>,
}

struct CompiledGroup {
    /// Action per snapshot category, and the time-rule variants.
    actions: Vec<Action>,
    when: Vec<(usize, Vec<Option<Action>>, Option<Action>)>,
    allow: PatternSet,
    deny: PatternSet,
}

/// A policy rule that would allow an entry of an illegal list (IWF, CTIRU). It never does: the
/// list wins. The engine reports it so the school can narrow or remove the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IllegalOverride {
    /// The rule, e.g. `allow[2] "School platforms"` or `lesson "Art"`.
    pub rule: String,
    /// The site the rule names.
    pub site: String,
    /// The illegal entry it would allow.
    pub entry: String,
    /// Which list (`iwf`, `ctiru`).
    pub list: String,
}

impl std::fmt::Display for IllegalOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: site {:?} would allow {:?}, which is on the {} list; illegal lists apply to everyone and cannot be overridden, so the list wins (narrow or remove the rule)",
            self.rule, self.site, self.entry, self.list
        )
    }
}

/// A snapshot and a policy, compiled together.
pub struct Engine {
    snapshot: Arc<Snapshot>,
    policy: Arc<Policy>,
    groups: Vec<CompiledGroup>,
    policy_origin: String,
    illegal_overrides: Vec<IllegalOverride>,
    fallback: Option<String>,
    /// Haven's always-reachable list (`kept::always_reachable`): sites and their names.
    always: PatternSet,
    always_names: Vec<String>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("snapshot", &self.snapshot)
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Compiles a policy against a snapshot. A rule that would allow an illegal-list entry
    /// does not stop it (the entry is blocked all the same): it is listed in
    /// [`Engine::illegal_overrides`]. The lists never depend on the policy being valid.
    pub fn new(
        snapshot: Arc<Snapshot>,
        policy: Arc<Policy>,
        policy_origin: &str,
    ) -> Result<Engine, PolicyError> {
        let illegal_overrides = illegal_overrides(&snapshot, &policy);
        let mut groups = Vec::with_capacity(policy.groups.len());
        for g in &policy.groups {
            let action_of = |id: &str, illegal: bool| -> Action {
                if illegal {
                    Action::Block
                } else {
                    g.categories.get(id).map_or(g.default, |(a, _)| *a)
                }
            };
            let actions = snapshot
                .categories()
                .iter()
                .map(|c| action_of(&c.id, c.illegal))
                .collect();
            let when = g
                .when
                .iter()
                .map(|w| {
                    let per_cat = snapshot
                        .categories()
                        .iter()
                        .map(|c| {
                            if c.illegal {
                                Some(Action::Block)
                            } else {
                                w.categories.get(&c.id).copied()
                            }
                        })
                        .collect();
                    (w.schedule, per_cat, w.default)
                })
                .collect();
            let mut allow = PatternSet::default();
            let mut deny = PatternSet::default();
            for (set, list) in [(&mut allow, &policy.allow), (&mut deny, &policy.deny)] {
                for (i, o) in list.iter().enumerate() {
                    if o.groups.as_ref().is_some_and(|gs| !gs.contains(&g.name)) {
                        continue;
                    }
                    for s in &o.sites {
                        if let Ok(t) = Target::parse(s) {
                            set.insert(&t, i as u32);
                        }
                    }
                }
            }
            groups.push(CompiledGroup {
                actions,
                when,
                allow,
                deny,
            });
        }
        let (always, always_names) = crate::kept::always_reachable();
        Ok(Engine {
            snapshot,
            policy,
            groups,
            policy_origin: policy_origin.to_owned(),
            illegal_overrides,
            fallback: None,
            always,
            always_names,
        })
    }

    /// The policy's rules that would allow an illegal-list entry (they lose to the list).
    pub fn illegal_overrides(&self) -> &[IllegalOverride] {
        &self.illegal_overrides
    }

    /// Marks the snapshot as the previous one, standing in for the current one, which was
    /// refused for `reason`: the people who run the filter must be told.
    #[must_use]
    pub fn with_fallback(mut self, reason: String) -> Engine {
        self.fallback = Some(reason);
        self
    }

    /// Why the current snapshot was refused, when the previous one is in use.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    /// The policy in use.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// A group by name.
    pub fn group_id(&self, name: &str) -> Option<GroupId> {
        self.policy
            .groups
            .iter()
            .position(|g| g.name == name)
            .map(GroupId)
    }

    /// Whether the proxy should decrypt `t`'s HTTPS for `group`: the group intercepts, and the
    /// site is neither on the never-intercept list nor in a never-intercept category.
    pub fn intercepts(&self, t: &Target, group: GroupId) -> bool {
        let Some(pg) = self.policy.groups.get(group.0) else {
            return false;
        };
        if !pg.intercept || self.policy.never_intercept_sites.find(t).is_some() {
            return false;
        }
        let never = &self.policy.never_intercept_categories;
        if never.is_empty() {
            return true;
        }
        let cats = self.snapshot.categories();
        !self.snapshot.lookup(t).is_some_and(|hit| {
            self.snapshot.set_categories(hit.set).any(|c| {
                cats.get(usize::from(c))
                    .is_some_and(|c| never.contains(&c.id))
            })
        })
    }

    /// Decides a request by a member of `group` (and `class`, for lessons) at local time `at`.
    pub fn decide(
        &self,
        t: &Target,
        group: GroupId,
        class: Option<&str>,
        at: DateTime,
    ) -> Decision {
        let (Some(g), Some(pg)) = (self.groups.get(group.0), self.policy.groups.get(group.0))
        else {
            return Decision {
                action: Action::Block,
                rule: Rule::UnknownGroup,
                hit: None,
                safe_search: None,
            };
        };
        let mut d = self.decide_lists(t, g, pg, class, at);
        // Image results cannot be checked picture by picture: blocked for groups that say so,
        // whatever let the search engine through.
        if pg.image_search_blocked && d.action != Action::Block {
            if let Some(engine) = safesearch::image_search(t) {
                d.action = Action::Block;
                d.rule = Rule::ImageSearch(engine);
                d.hit = None;
                return d;
            }
        }
        if d.action == Action::Allow {
            if let Some(engine) = safesearch::engine_for(t.host_bytes()) {
                let mode = engine.mode_in(&pg.safe_search);
                if mode != SafeSearchMode::Off {
                    d.action = Action::Rewrite;
                    d.safe_search = Some((engine, mode));
                }
            }
        }
        d
    }

    fn decide_lists(
        &self,
        t: &Target,
        g: &CompiledGroup,
        pg: &crate::policy::Group,
        class: Option<&str>,
        at: DateTime,
    ) -> Decision {
        let decision = |action, rule, hit| Decision {
            action,
            rule,
            hit,
            safe_search: None,
        };
        if let Some(hit) = self.snapshot.lookup_illegal(t) {
            return decision(Action::Block, Rule::Illegal, Some(hit));
        }
        if let Some(i) = g.deny.find(t) {
            return decision(Action::Block, Rule::Deny(i as usize), None);
        }
        if !pg.block_file_types.is_empty() {
            if let Some(ext) = t.extension() {
                if pg.block_file_types.iter().any(|b| b == ext) {
                    return decision(Action::Block, Rule::FileType, None);
                }
            }
        }
        // Support services win over lessons, every list category and the group's default
        // (never over the illegal lists, checked first).
        if let Some(i) = self.always.find(t) {
            return decision(Action::Allow, Rule::AlwaysReachable(i as usize), None);
        }
        for (i, lesson) in self.policy.lessons.iter().enumerate() {
            if lesson.applies(&pg.name, class, at) {
                if lesson.patterns.find(t).is_some() {
                    return decision(Action::Allow, Rule::Lesson(i), None);
                }
                if lesson.kind == LessonKind::AllowOnly {
                    return decision(Action::Block, Rule::LessonOnly(i), None);
                }
            }
        }
        if let Some(i) = g.allow.find(t) {
            return decision(Action::Allow, Rule::Allow(i as usize), None);
        }
        let active = g
            .when
            .iter()
            .position(|(s, _, _)| self.policy.schedule_active(*s, at));
        let listed = self.snapshot.lookup(t);
        let regex = if self.snapshot.has_regexes() {
            self.snapshot.lookup_regex(t)
        } else {
            None
        };
        let mut best: Option<(Action, Rule, Hit)> = None;
        for hit in [listed, regex].into_iter().flatten() {
            for c in self.snapshot.set_categories(hit.set) {
                let (action, when) = match active.and_then(|w| {
                    g.when[w]
                        .1
                        .get(usize::from(c))
                        .copied()
                        .flatten()
                        .map(|a| (a, w))
                }) {
                    Some((a, w)) => (a, Some(w)),
                    None => (
                        g.actions.get(usize::from(c)).copied().unwrap_or(pg.default),
                        None,
                    ),
                };
                if best.is_none_or(|(b, _, _)| action > b) {
                    best = Some((action, Rule::Category { category: c, when }, hit));
                }
            }
        }
        if let Some((action, rule, hit)) = best {
            return decision(action, rule, Some(hit));
        }
        match active.and_then(|w| g.when[w].2.map(|a| (a, w))) {
            Some((a, w)) => decision(a, Rule::Default { when: Some(w) }, None),
            None => decision(pg.default, Rule::Default { when: None }, None),
        }
    }

    /// The deciding category's id and the rule, cheaply (for answers and events on the hot path;
    /// [`Engine::explain`] gives the full account).
    pub fn brief(&self, group: GroupId, d: &Decision) -> (Option<&str>, std::borrow::Cow<'_, str>) {
        use std::borrow::Cow;
        let snap = &self.snapshot;
        let category = match d.rule {
            Rule::Category { category, .. } => snap
                .categories()
                .get(usize::from(category))
                .map(|c| c.id.as_str()),
            Rule::Illegal => d
                .hit
                .and_then(|h| snap.set_categories(h.set).next())
                .and_then(|c| snap.categories().get(usize::from(c)))
                .map(|c| c.id.as_str()),
            _ => None,
        };
        let Some(pg) = self.policy.groups.get(group.0) else {
            return (category, Cow::Borrowed("unknown group"));
        };
        let rule = match d.rule {
            Rule::Illegal => Cow::Owned(format!("illegal list {}", category.unwrap_or("?"))),
            Rule::Deny(i) => self
                .policy
                .deny
                .get(i)
                .map_or(Cow::Borrowed("deny"), |o| Cow::Borrowed(o.label.as_str())),
            Rule::Allow(i) => self
                .policy
                .allow
                .get(i)
                .map_or(Cow::Borrowed("allow"), |o| Cow::Borrowed(o.label.as_str())),
            Rule::FileType => Cow::Borrowed("block_file_types"),
            Rule::AlwaysReachable(_) => Cow::Borrowed("always-reachable"),
            Rule::ImageSearch(e) => Cow::Owned(format!(
                "image search on {}: pictures in search results cannot be checked one by one (groups.{}.image_search)",
                e.name(),
                pg.name
            )),
            Rule::Lesson(i) | Rule::LessonOnly(i) => self
                .policy
                .lessons
                .get(i)
                .map_or(Cow::Borrowed("lesson"), |l| {
                    Cow::Owned(format!("lesson {:?}", l.name))
                }),
            Rule::UnknownGroup => Cow::Borrowed("unknown group"),
            Rule::Category { when: Some(w), .. } | Rule::Default { when: Some(w) } => {
                pg.when.get(w).map_or(Cow::Borrowed("time rule"), |w| {
                    Cow::Borrowed(w.origin.as_str())
                })
            }
            Rule::Category { .. } => category
                .and_then(|id| pg.categories.get(id))
                .map_or(Cow::Borrowed(pg.default_origin.as_str()), |(_, origin)| {
                    Cow::Borrowed(origin.as_str())
                }),
            Rule::Default { when: None } => Cow::Borrowed(pg.default_origin.as_str()),
        };
        (category, rule)
    }

    /// Explains a decision in words for people and as fields for programs.
    pub fn explain(&self, t: &Target, group: GroupId, d: &Decision) -> Explanation {
        let Some(pg) = self.policy.groups.get(group.0) else {
            return Explanation {
                target: t.to_string(),
                group: String::new(),
                action: d.action,
                categories: Vec::new(),
                rule: "unknown group".to_owned(),
                reason: "The filter could not tell which group this is for, so it blocked the page to be safe.".to_owned(),
                list_entry: None,
                sources: Vec::new(),
                safe_search: None,
                policy: self.policy_origin.clone(),
                snapshot: format!("{:016x}", self.snapshot.checksum()),
            };
        };
        let snap = &self.snapshot;
        let mut categories = Vec::new();
        let mut sources = Vec::new();
        let mut list_entry = None;
        if let Some(hit) = &d.hit {
            list_entry = Some(snap.entry_text(hit));
            for &s in snap.set(hit.set) {
                if let Some(src) = snap.sources().get(usize::from(s)) {
                    sources.push(src.name.clone());
                }
            }
            for c in snap.set_categories(hit.set) {
                categories.push(category_view(&snap.categories()[usize::from(c)].id));
            }
        }
        let deciding = match d.rule {
            Rule::Category { category, .. } => {
                Some(snap.categories()[usize::from(category)].id.clone())
            }
            Rule::Illegal => categories.first().map(|c| c.id.clone()),
            _ => None,
        };
        // A safe-search rewrite is an allow with enforcement on top; the reason speaks of the allow.
        let base = if d.safe_search.is_some() {
            Action::Allow
        } else {
            d.action
        };
        let cat_name =
            |id: &str| category::by_id(id).map_or_else(|| id.to_owned(), |c| c.name.to_owned());
        let (rule, reason) = match d.rule {
            Rule::Illegal => {
                let list = deciding.clone().unwrap_or_default();
                let mut reason = format!("{} is on the {} list, which is blocked for everyone and cannot be overridden.", list_entry.clone().unwrap_or_default(), cat_name(&list));
                // A rule of the school's that would have allowed it is named: it lost.
                let allow = self
                    .groups
                    .get(group.0)
                    .and_then(|g| g.allow.find(t))
                    .and_then(|i| self.policy.allow.get(i as usize))
                    .map(|o| o.label.clone());
                let lesson = self
                    .policy
                    .lessons
                    .iter()
                    .find(|l| l.patterns.find(t).is_some())
                    .map(|l| format!("lesson {:?}", l.name));
                if let Some(rule) = allow.or(lesson) {
                    reason.push_str(&format!(
                        " The policy's rule {rule} would allow it; the list wins over every rule."
                    ));
                }
                (format!("illegal list {list}"), reason)
            }
            Rule::Deny(i) => {
                let o = &self.policy.deny[i];
                (
                    o.label.clone(),
                    format!(
                        "The school has blocked this site ({}).",
                        o.reason.clone().unwrap_or_else(|| o.label.clone())
                    ),
                )
            }
            Rule::FileType => (
                format!("groups.{}.block_file_types", pg.name),
                format!(
                    "Downloading .{} files is blocked for {}.",
                    t.extension().unwrap_or_default(),
                    pg.name
                ),
            ),
            Rule::AlwaysReachable(i) => (
                "always-reachable".to_owned(),
                format!(
                    "{} is a support, health or online-safety service every pupil can always reach (Haven's always-reachable list); no list category can block it.",
                    self.always_names.get(i).map_or("This site", String::as_str)
                ),
            ),
            Rule::ImageSearch(e) => (
                format!("groups.{}.image_search", pg.name),
                format!(
                    "Image search on {} is blocked for {}: the pictures in search results cannot be checked one by one. A web search is allowed.",
                    e.name(),
                    pg.name
                ),
            ),
            Rule::LessonOnly(i) => {
                let l = &self.policy.lessons[i];
                (
                    format!("lesson {:?}", l.name),
                    format!(
                        "During the lesson \"{}\" only the lesson's sites can be used.",
                        l.name
                    ),
                )
            }
            Rule::Lesson(i) => {
                let l = &self.policy.lessons[i];
                (
                    format!("lesson {:?}", l.name),
                    format!("This site is part of the lesson \"{}\".", l.name),
                )
            }
            Rule::Allow(i) => {
                let o = &self.policy.allow[i];
                (
                    o.label.clone(),
                    format!(
                        "The school allows this site ({}).",
                        o.reason.clone().unwrap_or_else(|| o.label.clone())
                    ),
                )
            }
            Rule::Category { when, .. } => {
                let id = deciding.clone().unwrap_or_default();
                let origin = match when {
                    Some(w) => format!(
                        "{} (schedule {})",
                        pg.when[w].origin, self.policy.schedules[pg.when[w].schedule].name
                    ),
                    None => pg
                        .categories
                        .get(&id)
                        .map_or_else(|| pg.default_origin.clone(), |(_, o)| o.clone()),
                };
                (
                    origin,
                    format!(
                        "{} is in the category {}, which is set to {} for {}.",
                        list_entry.clone().unwrap_or_default(),
                        cat_name(&id),
                        base,
                        pg.name
                    ),
                )
            }
            // Only an engine without the group gives this rule, and that engine returned above.
            Rule::UnknownGroup => ("unknown group".to_owned(), "The filter could not tell which group this is for, so it blocked the page to be safe.".to_owned()),
            Rule::Default { when } => {
                let origin = match when {
                    Some(w) => format!(
                        "{}.default (schedule {})",
                        pg.when[w].origin, self.policy.schedules[pg.when[w].schedule].name
                    ),
                    None => pg.default_origin.clone(),
                };
                (
                    origin,
                    format!(
                        "No list names this site; the default for {} is {}.",
                        pg.name, base
                    ),
                )
            }
        };
        let reason = match d.safe_search {
            Some((engine, mode)) => format!(
                "{reason} Safe search is enforced on {} ({}).",
                engine.name(),
                mode_name(mode)
            ),
            None => reason,
        };
        Explanation {
            target: t.to_string(),
            group: pg.name.clone(),
            action: d.action,
            categories,
            rule,
            reason,
            list_entry,
            sources,
            safe_search: d
                .safe_search
                .map(|(e, m)| format!("{}:{}", e.id(), mode_name(m))),
            policy: self.policy_origin.clone(),
            snapshot: format!("{:016x}", snap.checksum()),
        }
    }
}

fn mode_name(m: SafeSearchMode) -> &'static str {
    match m {
        SafeSearchMode::Off => "off",
        SafeSearchMode::Moderate => "moderate",
        SafeSearchMode::Strict => "strict",
    }
}

fn category_view(id: &str) -> CategoryView {
    match category::by_id(id) {
        Some(c) => CategoryView {
            id: c.id.to_owned(),
            name: c.name.to_owned(),
            description: c.description.to_owned(),
        },
        None => CategoryView {
            id: id.to_owned(),
            name: id.to_owned(),
            description: "A category from an imported list.".to_owned(),
        },
    }
}

/// A category as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CategoryView {
    /// Stable id.
    pub id: String,
    /// Plain-English name.
    pub name: String,
    /// One line a child can understand.
    pub description: String,
}

/// A decision in words: what the policy tester prints and block pages show.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The normalised address decided on.
    pub target: String,
    /// The group.
    pub group: String,
    /// The action.
    pub action: Action,
    /// Categories of the matching list entry.
    pub categories: Vec<CategoryView>,
    /// The rule that decided, as a place in the policy or a list.
    pub rule: String,
    /// The reason in plain words.
    pub reason: String,
    /// The list entry that matched.
    pub list_entry: Option<String>,
    /// The source files that list the entry.
    pub sources: Vec<String>,
    /// Safe search applied, as `engine:mode`.
    pub safe_search: Option<String>,
    /// Where the policy came from.
    pub policy: String,
    /// The snapshot's checksum.
    pub snapshot: String,
}

/// Whether two sites overlap: their hosts are equal or one is under the other, and their paths
/// (when both have one) are prefixes one of the other.
fn overlaps(a_host: &str, a_path: &str, b_host: &str, b_path: &str) -> bool {
    let under = |x: &str, y: &str| {
        x == y
            || (x.len() > y.len() && x.ends_with(y) && x.as_bytes()[x.len() - y.len() - 1] == b'.')
    };
    let hosts = under(a_host, b_host) || under(b_host, a_host);
    let paths = a_path.is_empty()
        || b_path.is_empty()
        || a_path.starts_with(b_path)
        || b_path.starts_with(a_path);
    hosts && paths
}

fn illegal_overrides(snapshot: &Snapshot, policy: &Policy) -> Vec<IllegalOverride> {
    let mut found = Vec::new();
    let illegal = snapshot.illegal_entries();
    if illegal.is_empty() {
        return found;
    }
    let rules = policy
        .allow
        .iter()
        .map(|o| (o.label.clone(), &o.sites))
        .chain(
            policy
                .lessons
                .iter()
                .map(|l| (format!("lesson {:?}", l.name), &l.sites)),
        );
    for (label, sites) in rules {
        for site in sites {
            let Ok(t) = Target::parse(site) else { continue };
            let path = String::from_utf8_lossy(t.path());
            for (host, ipath) in &illegal {
                if overlaps(t.host(), &path, host, ipath.as_deref().unwrap_or("")) {
                    let probe =
                        Target::parse(&format!("{host}{}", ipath.as_deref().unwrap_or(""))).ok();
                    let list = probe
                        .and_then(|p| snapshot.lookup_illegal(&p))
                        .and_then(|h| snapshot.set_categories(h.set).next())
                        .map_or_else(
                            || "illegal".to_owned(),
                            |c| snapshot.categories()[usize::from(c)].id.clone(),
                        );
                    found.push(IllegalOverride {
                        rule: label.clone(),
                        site: site.clone(),
                        entry: format!("{host}{}", ipath.as_deref().unwrap_or("")),
                        list,
                    });
                    // One entry is enough to name the site; the next site of the rule.
                    break;
                }
            }
        }
    }
    found
}

/// Where a hit came from, for events and block pages.
pub fn hit_is_illegal(hit: &Hit) -> bool {
    hit.table == ListTable::Illegal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{parse_datetime, LessonFile, DEFAULT_POLICY};
    use crate::snapshot::{EntryKind, SnapshotBuilder};

    fn snapshot() -> Arc<Snapshot> {
        let mut b = SnapshotBuilder::new();
        let add =
            |b: &mut SnapshotBuilder, name: &str, cat: &str, kind: EntryKind, entries: &[&str]| {
                let s = b.add_source(name, cat).expect("source");
                for e in entries {
                    b.add(s, kind, e).expect("entry");
                }
            };
        add(
            &mut b,
            "t/gambling/domains",
            "gambling",
            EntryKind::Domain,
            &["casino.example", "bet.example"],
        );
        add(
            &mut b,
            "t/bank/domains",
            "banking",
            EntryKind::Domain,
            &["bank.example"],
        );
        add(
            &mut b,
            "t/games/domains",
            "games",
            EntryKind::Domain,
            &["games.example", "topmarks.co.uk"],
        );
        add(
            &mut b,
            "t/audio-video/domains",
            "streaming",
            EntryKind::Domain,
            &["videos.example"],
        );
        add(
            &mut b,
            "t/social/domains",
            "social-networks",
            EntryKind::Domain,
            &["social.example"],
        );
        add(
            &mut b,
            "t/shop/domains",
            "shopping",
            EntryKind::Domain,
            &["shop.example"],
        );
        add(
            &mut b,
            "t/edu/domains",
            "education",
            EntryKind::Domain,
            &["kids.abuse-host.example"],
        );
        add(
            &mut b,
            "iwf-list",
            "iwf",
            EntryKind::Url,
            &["abuse-host.example/img/", "whole-site.example"],
        );
        Arc::new(Snapshot::from_bytes(b.build(0)).expect("snapshot"))
    }

    fn engine_with(policy_text: &str) -> Result<Engine, PolicyError> {
        let policy = Policy::from_toml(policy_text)?;
        Engine::new(snapshot(), Arc::new(policy), "test")
    }

    fn engine() -> Engine {
        engine_with(DEFAULT_POLICY).expect("default policy compiles")
    }

    const MONDAY_10: &str = "2026-11-23T10:00";

    #[test]
    fn interception_by_group_never_for_banking_or_listed_sites() {
        let off = engine();
        let intercepts = |e: &Engine, url: &str, group: &str| {
            e.intercepts(
                &Target::parse(url).expect("url"),
                e.group_id(group).expect("group"),
            )
        };
        assert!(!intercepts(&off, "games.example", "ks2"), "off by default");
        let on = engine_with(&DEFAULT_POLICY.replacen("intercept = false", "intercept = true", 1))
            .expect("policy");
        assert!(intercepts(&on, "games.example", "ks2"));
        assert!(intercepts(&on, "games.example", "ks1"), "inherited");
        assert!(!intercepts(&on, "games.example", "staff"));
        assert!(
            !intercepts(&on, "www.childline.org.uk", "ks2"),
            "a listed site"
        );
        assert!(
            !intercepts(&on, "bank.example", "ks2"),
            "a never-intercept category"
        );
        let bad =
            DEFAULT_POLICY.replacen("categories = [\"banking\"", "categories = [\"bankin\"", 1);
        assert!(engine_with(&bad)
            .expect_err("unknown category")
            .to_string()
            .contains("never_intercept.categories"));
    }

    #[track_caller]
    fn check(e: &Engine, url: &str, group: &str, at: &str, expected: Action) -> Explanation {
        check_class(e, url, group, None, at, expected)
    }

    #[track_caller]
    fn check_class(
        e: &Engine,
        url: &str,
        group: &str,
        class: Option<&str>,
        at: &str,
        expected: Action,
    ) -> Explanation {
        let t = Target::parse(url).expect("url");
        let g = e.group_id(group).expect("group");
        let d = e.decide(&t, g, class, parse_datetime(at).expect("time"));
        let x = e.explain(&t, g, &d);
        assert_eq!(d.action, expected, "{url} for {group} at {at}: {x:?}");
        x
    }

    #[test]
    fn categories_per_group() {
        let e = engine();
        let x = check(
            &e,
            "https://www.casino.example/slots",
            "ks2",
            MONDAY_10,
            Action::Block,
        );
        assert_eq!(x.categories[0].id, "gambling");
        assert_eq!(x.rule, "groups.ks2.categories.gambling");
        assert_eq!(x.sources, ["t/gambling/domains"]);
        assert_eq!(x.list_entry.as_deref(), Some("casino.example"));
        assert!(x.reason.contains("Gambling"), "{}", x.reason);
        check(&e, "casino.example", "staff", MONDAY_10, Action::Block);
        check(&e, "videos.example", "ks2", MONDAY_10, Action::Warn);
        let x = check(&e, "videos.example", "ks1", MONDAY_10, Action::Block);
        assert_eq!(x.rule, "groups.ks1.categories.streaming");
        // The brief form agrees with the full explanation.
        let (t, g) = (
            Target::parse("videos.example").expect("t"),
            e.group_id("ks1").expect("g"),
        );
        let d = e.decide(&t, g, None, parse_datetime(MONDAY_10).expect("time"));
        assert_eq!(e.brief(g, &d), (Some("streaming"), x.rule.clone().into()));
        let x = check(&e, "games.example", "eyfs", MONDAY_10, Action::Block);
        assert_eq!(
            x.rule, "groups.ks2.categories.games",
            "inherited rules name where they were written"
        );
        check(&e, "videos.example", "ks3+", MONDAY_10, Action::Allow);
        let x = check(&e, "unlisted.example", "ks2", MONDAY_10, Action::Allow);
        assert_eq!(x.rule, "groups.ks2.default");
        assert!(x.categories.is_empty());
    }

    #[test]
    fn time_rules_apply_around_their_boundaries() {
        let e = engine();
        // Staff: social networks warn in the school day, allowed at lunch and after school.
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T08:29",
            Action::Allow,
        );
        let x = check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T08:30",
            Action::Warn,
        );
        assert_eq!(x.rule, "groups.staff.when[1] (schedule school-day)");
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T11:59",
            Action::Warn,
        );
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T12:00",
            Action::Allow,
        );
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T13:00",
            Action::Warn,
        );
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-23T15:30",
            Action::Allow,
        );
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-28T10:00",
            Action::Allow,
        ); // Saturday
        check(
            &e,
            "social.example",
            "staff",
            "2026-11-27T10:00",
            Action::Allow,
        ); // INSET day
        check(
            &e,
            "social.example",
            "staff",
            "2026-12-22T10:00",
            Action::Allow,
        ); // holidays
        check(&e, "shop.example", "staff", MONDAY_10, Action::Warn);
    }

    #[test]
    fn illegal_lists_block_everyone_always() {
        let e = engine();
        for group in ["eyfs", "ks2", "staff", "guest"] {
            let x = check(
                &e,
                "http://abuse-host.example/img/1.jpg",
                group,
                MONDAY_10,
                Action::Block,
            );
            assert_eq!(x.rule, "illegal list iwf");
            check(
                &e,
                "http://sub.whole-site.example/",
                group,
                MONDAY_10,
                Action::Block,
            );
        }
        // A more specific entry in another list does not hide an illegal entry.
        check(
            &e,
            "http://kids.abuse-host.example/img/x",
            "staff",
            MONDAY_10,
            Action::Block,
        );
        check(
            &e,
            "http://abuse-host.example/other",
            "staff",
            MONDAY_10,
            Action::Allow,
        );
    }

    #[test]
    fn a_rule_that_would_allow_an_illegal_entry_loses_and_is_reported() {
        for (site, url) in [
            ("abuse-host.example", "http://abuse-host.example/img/1.jpg"),
            (
                "abuse-host.example/img/1",
                "http://abuse-host.example/img/1.jpg",
            ),
            ("cdn.whole-site.example", "https://cdn.whole-site.example/x"),
            ("whole-site.example/page", "https://whole-site.example/page"),
        ] {
            let text =
                format!("{DEFAULT_POLICY}\n[[allow]]\nname = \"Risky\"\nsites = [\"{site}\"]\n");
            let e = engine_with(&text).expect("the lists never wait for the policy");
            let o = e.illegal_overrides();
            assert_eq!(o.len(), 1, "{site}: {o:?}");
            assert_eq!(o[0].rule, "allow[2] \"Risky\"");
            assert_eq!(o[0].list, "iwf");
            assert!(
                o[0].to_string().contains("cannot be overridden"),
                "{}",
                o[0]
            );
            for group in ["ks2", "staff"] {
                let x = check(&e, url, group, MONDAY_10, Action::Block);
                assert_eq!(x.rule, "illegal list iwf", "{site}");
                assert!(x.reason.contains("allow[2] \"Risky\""), "{}", x.reason);
            }
        }
        // A sibling path on the same host does not overlap the listed one.
        let ok =
            format!("{DEFAULT_POLICY}\n[[allow]]\nsites = [\"abuse-host.example/homework\"]\n");
        let e = engine_with(&ok).expect("a path beside the listed one is fine");
        assert!(e.illegal_overrides().is_empty());
        check(
            &e,
            "http://abuse-host.example/homework",
            "ks2",
            MONDAY_10,
            Action::Allow,
        );
        // Lessons are checked too.
        let lesson = format!(
            "{DEFAULT_POLICY}\n[[lesson]]\nname = \"Art\"\ngroup = \"ks2\"\nmode = \"extra-allow\"\nsites = [\"whole-site.example\"]\nstarts = \"2026-11-23T10:00\"\nends = \"2026-11-23T11:00\"\n"
        );
        let e = engine_with(&lesson).expect("lesson");
        assert_eq!(e.illegal_overrides()[0].rule, "lesson \"Art\"");
        let x = check(
            &e,
            "https://whole-site.example/",
            "ks2",
            "2026-11-23T10:30",
            Action::Block,
        );
        assert!(x.reason.contains("lesson \"Art\""), "{}", x.reason);
        // And a category action on an illegal list.
        let err = engine_with(
            &DEFAULT_POLICY.replace("gambling = \"block\"\nmalware", "iwf = \"warn\"\nmalware"),
        )
        .expect_err("iwf action");
        assert!(
            err.to_string().contains("groups.ks2.categories.iwf"),
            "{err}"
        );
    }

    #[test]
    fn file_types() {
        let e = engine();
        let x = check(
            &e,
            "https://downloads.example/Setup.EXE",
            "ks2",
            MONDAY_10,
            Action::Block,
        );
        assert_eq!(x.rule, "groups.ks2.block_file_types");
        check(
            &e,
            "https://downloads.example/setup.exe?x=1",
            "eyfs",
            MONDAY_10,
            Action::Block,
        );
        check(
            &e,
            "https://downloads.example/setup.exe",
            "staff",
            MONDAY_10,
            Action::Allow,
        );
        check(
            &e,
            "https://downloads.example/exe/readme",
            "ks2",
            MONDAY_10,
            Action::Allow,
        );
    }

    #[test]
    fn safe_search_is_a_rewrite() {
        let e = engine();
        let x = check(
            &e,
            "https://www.google.co.uk/search?q=volcano",
            "ks2",
            MONDAY_10,
            Action::Rewrite,
        );
        assert_eq!(x.safe_search.as_deref(), Some("google:strict"));
        assert!(
            x.reason
                .starts_with("No list names this site; the default for ks2 is allow."),
            "{}",
            x.reason
        );
        let x = check(
            &e,
            "https://m.youtube.com/watch?v=1",
            "staff",
            MONDAY_10,
            Action::Rewrite,
        );
        assert_eq!(x.safe_search.as_deref(), Some("youtube:moderate"));
        check(
            &e,
            "https://mail.google.com/",
            "ks2",
            MONDAY_10,
            Action::Allow,
        );
    }

    #[test]
    fn overrides_and_their_precedence() {
        let e = engine();
        // topmarks.co.uk is in the games list but on the school-platforms allow list.
        let x = check(
            &e,
            "https://www.topmarks.co.uk/maths",
            "ks2",
            MONDAY_10,
            Action::Allow,
        );
        assert_eq!(x.rule, "allow[0] \"School platforms\"");
        let text = format!("{DEFAULT_POLICY}\n[[deny]]\nname = \"Not this one\"\nsites = [\"topmarks.co.uk/games\"]\ngroups = [\"ks2\"]\n");
        let e = engine_with(&text).expect("valid");
        check(
            &e,
            "https://topmarks.co.uk/games/x",
            "ks2",
            MONDAY_10,
            Action::Block,
        );
        check(
            &e,
            "https://topmarks.co.uk/maths",
            "ks2",
            MONDAY_10,
            Action::Allow,
        );
        check(
            &e,
            "https://topmarks.co.uk/games/x",
            "ks1",
            MONDAY_10,
            Action::Allow,
        );
    }

    #[test]
    fn support_services_win_over_lists_lessons_and_defaults_but_not_illegal_lists() {
        let mut b = SnapshotBuilder::new();
        let games = b.add_source("ut1/games/domains", "games").expect("s");
        b.add(games, EntryKind::Domain, "internetmatters.org")
            .expect("e");
        let iwf = b.add_source("iwf-list", "iwf").expect("s");
        b.add(iwf, EntryKind::Url, "www.nhs.uk/illegal/")
            .expect("e");
        let snapshot = Arc::new(Snapshot::from_bytes(b.build(0)).expect("snapshot"));
        let text = format!(
            "{DEFAULT_POLICY}\n[groups.locked]\ndefault = \"block\"\n\n[[deny]]\nname = \"Not here\"\nsites = [\"samaritans.org\"]\ngroups = [\"ks2\"]\n"
        );
        let mut policy = Policy::from_toml(&text).expect("policy");
        policy
            .add_lesson(lesson("allow-only", Some("ks2"), None, &["natgeokids.com"]))
            .expect("lesson");
        let e = Engine::new(snapshot, Arc::new(policy), "test").expect("engine");
        for group in ["ks2", "ks1", "eyfs", "locked"] {
            let x = check(
                &e,
                "https://www.internetmatters.org/parental-controls/",
                group,
                MONDAY_10,
                Action::Allow,
            );
            assert_eq!(x.rule, "always-reachable");
            assert!(x.reason.contains("internetmatters.org"), "{}", x.reason);
        }
        // In an allow-only lesson too.
        check(
            &e,
            "https://childline.org.uk/",
            "ks2",
            "2026-11-23T10:30",
            Action::Allow,
        );
        // The illegal list wins, and so does the school's own deny rule.
        let x = check(
            &e,
            "https://www.nhs.uk/illegal/x",
            "ks2",
            MONDAY_10,
            Action::Block,
        );
        assert_eq!(x.rule, "illegal list iwf");
        check(
            &e,
            "https://www.nhs.uk/conditions/",
            "locked",
            MONDAY_10,
            Action::Allow,
        );
        check(
            &e,
            "https://www.samaritans.org/",
            "ks2",
            MONDAY_10,
            Action::Block,
        );
        check(
            &e,
            "https://www.samaritans.org/",
            "ks1",
            MONDAY_10,
            Action::Allow,
        );
    }

    #[test]
    fn image_search_is_blocked_for_pupils_and_web_search_is_not() {
        let e = engine();
        for url in [
            "https://www.google.co.uk/search?q=volcano&tbm=isch",
            "https://www.bing.com/images/search?q=volcano",
            "https://duckduckgo.com/?q=volcano&ia=images&iax=images",
        ] {
            let x = check(&e, url, "ks2", MONDAY_10, Action::Block);
            assert_eq!(x.rule, "groups.ks2.image_search");
            assert!(x.reason.contains("Image search on"), "{}", x.reason);
            check(&e, url, "eyfs", MONDAY_10, Action::Block);
            check(&e, url, "staff", MONDAY_10, Action::Rewrite);
        }
        check(
            &e,
            "https://www.google.co.uk/search?q=volcano",
            "ks2",
            MONDAY_10,
            Action::Rewrite,
        );
    }

    fn lesson(kind: &str, group: Option<&str>, class: Option<&str>, sites: &[&str]) -> LessonFile {
        LessonFile {
            name: "Volcanoes".into(),
            group: group.map(Into::into),
            class: class.map(Into::into),
            mode: kind.into(),
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            starts: "2026-11-23T10:00".into(),
            ends: "2026-11-23T11:00".into(),
            teacher: Some("Ms Example".into()),
        }
    }

    #[test]
    fn lesson_modes_start_and_expire() {
        let mut policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        policy
            .add_lesson(lesson(
                "allow-only",
                None,
                Some("5B"),
                &["natgeokids.com", "videos.example"],
            ))
            .expect("lesson");
        let e = Engine::new(snapshot(), Arc::new(policy), "test").expect("engine");
        let in_lesson = "2026-11-23T10:30";
        let x = check_class(
            &e,
            "https://bbc.co.uk/news",
            "ks2",
            Some("5B"),
            in_lesson,
            Action::Block,
        );
        assert_eq!(x.rule, "lesson \"Volcanoes\"");
        check_class(
            &e,
            "https://videos.example/lava",
            "ks2",
            Some("5B"),
            in_lesson,
            Action::Allow,
        );
        check_class(
            &e,
            "https://bbc.co.uk/news",
            "ks2",
            Some("5A"),
            in_lesson,
            Action::Allow,
        );
        check_class(
            &e,
            "https://bbc.co.uk/news",
            "ks2",
            Some("5B"),
            "2026-11-23T09:59",
            Action::Allow,
        );
        check_class(
            &e,
            "https://bbc.co.uk/news",
            "ks2",
            Some("5B"),
            "2026-11-23T11:00",
            Action::Allow,
        );
        check_class(
            &e,
            "https://videos.example/lava",
            "ks2",
            Some("5B"),
            "2026-11-23T11:00",
            Action::Warn,
        );
        // Illegal lists still win inside a lesson.
        check_class(
            &e,
            "https://abuse-host.example/img/1",
            "ks2",
            Some("5B"),
            in_lesson,
            Action::Block,
        );

        let mut policy = Policy::from_toml(DEFAULT_POLICY).expect("policy");
        policy
            .add_lesson(lesson("extra-allow", Some("ks1"), None, &["games.example"]))
            .expect("lesson");
        let e = Engine::new(snapshot(), Arc::new(policy), "test").expect("engine");
        check(&e, "games.example", "ks1", in_lesson, Action::Allow);
        check(&e, "casino.example", "ks1", in_lesson, Action::Block);
        check(&e, "games.example", "ks2", in_lesson, Action::Block);
        check(
            &e,
            "games.example",
            "ks1",
            "2026-11-23T11:00",
            Action::Block,
        );
    }

    #[test]
    fn a_group_id_from_another_policy_fails_closed() {
        let full = engine();
        let staff = full.group_id("staff").expect("staff");
        let small = engine_with("[groups.only]\ndefault = \"allow\"\n").expect("engine");
        let t = Target::parse("unlisted.example").expect("t");
        let d = small.decide(&t, staff, None, parse_datetime(MONDAY_10).expect("t"));
        assert_eq!((d.action, d.rule), (Action::Block, Rule::UnknownGroup));
        assert!(small
            .explain(&t, staff, &d)
            .reason
            .contains("blocked the page to be safe"));
    }
}
