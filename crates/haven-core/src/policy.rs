//! The policy: who may reach what, when. Parsed from TOML (unknown keys rejected) into serde
//! structs, then validated into [`Policy`], the runtime form.
//!
//! A policy names groups (eyfs, ks1, ks2, ks3+, staff, guest by default). Each group has an action
//! per category (allow, block, warn, alert-only) and a default for everything else, optional time
//! rules that change actions while a schedule is active (school day, term dates), blocked file
//! types, and safe-search enforcement. Allow and deny overrides name sites (domains or URL
//! prefixes). Lesson modes give a group or class a time-boxed allow-only or extra-allow set.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::{Date, DateTime, Time, Weekday};
use serde::{Deserialize, Serialize};

use crate::category;
use crate::normalise::Target;

/// The policy Haven ships: what a primary school starts from (`config/policy.toml`).
pub const DEFAULT_POLICY: &str = include_str!("../../../config/policy.toml");

/// What happens to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Let it through.
    Allow,
    /// Let it through and raise an alert.
    AlertOnly,
    /// Show a warning the user may click through; the click is logged.
    Warn,
    /// Refuse it and show the block page.
    Block,
    /// Let it through with safe search enforced (never a category action).
    Rewrite,
}

impl Action {
    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::AlertOnly => "alert-only",
            Action::Warn => "warn",
            Action::Block => "block",
            Action::Rewrite => "rewrite",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        match s {
            "allow" => Some(Action::Allow),
            "alert-only" | "alert" => Some(Action::AlertOnly),
            "warn" => Some(Action::Warn),
            "block" => Some(Action::Block),
            _ => None,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Safe-search strength for one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SafeSearchMode {
    /// Not enforced.
    #[default]
    Off,
    /// YouTube's moderate restricted mode (other engines treat it as strict).
    Moderate,
    /// Strict.
    Strict,
}

/// Per-engine safe-search enforcement for a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafeSearch {
    /// Google search (all country domains).
    #[serde(default)]
    pub google: SafeSearchMode,
    /// Bing.
    #[serde(default)]
    pub bing: SafeSearchMode,
    /// DuckDuckGo.
    #[serde(default)]
    pub duckduckgo: SafeSearchMode,
    /// YouTube restricted mode.
    #[serde(default)]
    pub youtube: SafeSearchMode,
}

// ---------------------------------------------------------------------------------------------
// The file format.

/// A policy file as written (see `config/policy.toml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// The school's name, shown on block pages.
    pub school: Option<String>,
    /// Named schedules used by time rules.
    #[serde(default)]
    pub schedules: BTreeMap<String, ScheduleFile>,
    /// Term dates (inclusive).
    #[serde(default)]
    pub terms: Vec<TermFile>,
    /// Days inside term when the school is closed (INSET days, bank holidays).
    #[serde(default)]
    pub closures: Vec<String>,
    /// Groups by name.
    pub groups: BTreeMap<String, GroupFile>,
    /// Allow overrides.
    #[serde(default)]
    pub allow: Vec<OverrideFile>,
    /// Deny overrides.
    #[serde(default)]
    pub deny: Vec<OverrideFile>,
    /// Lesson modes.
    #[serde(default)]
    pub lesson: Vec<LessonFile>,
    /// What the proxy never decrypts, whatever a group's `intercept` says.
    #[serde(default)]
    pub never_intercept: NeverInterceptFile,
}

/// `[never_intercept]`: banking, health, support services and apps that pin their certificates.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeverInterceptFile {
    /// Categories whose sites are never decrypted (`banking`, `finance`…).
    #[serde(default)]
    pub categories: Vec<String>,
    /// Sites never decrypted (host names or URL prefixes, as in overrides).
    #[serde(default)]
    pub sites: Vec<String>,
}

/// A named schedule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleFile {
    /// Days of the week: `mon` … `sun`.
    pub days: Vec<String>,
    /// Start time, `HH:MM`, inclusive.
    pub from: String,
    /// End time, `HH:MM`, exclusive. Earlier than `from` means overnight.
    pub to: String,
    /// Only on term days that are not closures.
    #[serde(default)]
    pub in_term: bool,
}

/// One term.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermFile {
    /// E.g. "Autumn 1".
    pub name: String,
    /// First day, `YYYY-MM-DD`.
    pub start: String,
    /// Last day, `YYYY-MM-DD`.
    pub end: String,
}

/// One group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupFile {
    /// Who the group is.
    pub description: Option<String>,
    /// A group whose settings this one starts from.
    pub inherits: Option<String>,
    /// Action for sites in no listed category, and for categories not named.
    pub default: Option<String>,
    /// Action per category id.
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    /// Time rules, first active one wins.
    #[serde(default)]
    pub when: Vec<WhenFile>,
    /// File extensions to block (`exe`, `msi`…).
    pub block_file_types: Option<Vec<String>>,
    /// Safe-search enforcement.
    pub safe_search: Option<SafeSearch>,
    /// Whether the proxy decrypts this group's HTTPS (with the school's CA) to see whole pages.
    pub intercept: Option<bool>,
    /// Content score over which a page is blocked (the weighted-phrase scanner); absent: pages
    /// are not scored.
    pub phrase_limit: Option<i64>,
    /// Monitoring categories (`self-harm`, `drugs`, …) whose pages are blocked when the learned
    /// model reads a passage of the page as of grade 4 or more in that category.
    pub classify_pages: Option<Vec<String>>,
    /// Google sign-in allowed only for these domains (Google Workspace), by the
    /// `X-GoogApps-Allowed-Domains` header on visible requests to Google.
    pub google_allowed_domains: Option<Vec<String>>,
    /// HTTPS tunnels through the proxy to a bare address (`CONNECT 203.0.113.7:443`, or a TLS
    /// ClientHello naming no site) that no list or rule names: `allow` or `block` (the default:
    /// the filter cannot tell which site an address is).
    pub address_tunnels: Option<String>,
    /// Image search (Google's, Bing's and DuckDuckGo's image results), where the proxy sees the
    /// URL: `allow` (the default) or `block`.
    pub image_search: Option<String>,
    /// Whether the proxy has downloads scanned by ClamAV (`[proxy] clamd`) before they reach
    /// this group.
    pub scan_downloads: Option<bool>,
    /// What a download gets when it cannot be scanned (clamd down or slow, or the file over the
    /// scanning cap): `block` (the default) or `allow`.
    pub scan_unavailable: Option<String>,
}

/// A time rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenFile {
    /// The schedule during which this rule applies.
    pub schedule: String,
    /// Category actions while it applies.
    #[serde(default)]
    pub categories: BTreeMap<String, String>,
    /// Default action while it applies.
    pub default: Option<String>,
}

/// An allow or deny override.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideFile {
    /// A name for explanations ("School platforms").
    pub name: Option<String>,
    /// Domains (matching subdomains) or URL prefixes.
    pub sites: Vec<String>,
    /// Groups it applies to; all when absent.
    pub groups: Option<Vec<String>>,
    /// Why it exists (change control).
    pub reason: Option<String>,
}

/// A lesson mode.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LessonFile {
    /// What the lesson is.
    pub name: String,
    /// The group it applies to.
    pub group: Option<String>,
    /// The class it applies to (a class name from the MIS).
    pub class: Option<String>,
    /// `allow-only` or `extra-allow`.
    pub mode: String,
    /// Sites of the lesson.
    pub sites: Vec<String>,
    /// Start, `YYYY-MM-DDTHH:MM`.
    pub starts: String,
    /// End (exclusive), `YYYY-MM-DDTHH:MM`.
    pub ends: String,
    /// Who set it.
    pub teacher: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Errors.

/// Why a policy was refused. The message names the offending rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Not valid TOML, or a key the schema does not know.
    #[error("{0}")]
    Syntax(String),
    /// A value that is not allowed where it stands.
    #[error("{rule}: {problem}")]
    Invalid {
        /// Where in the policy, e.g. `groups.ks2.categories.gamblin`.
        rule: String,
        /// What is wrong.
        problem: String,
    },
}

fn invalid(rule: impl Into<String>, problem: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        rule: rule.into(),
        problem: problem.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The runtime form.

/// Sites of an override or lesson, for most-specific matching.
#[derive(Debug, Default, Clone)]
pub struct PatternSet {
    /// Per host: (path prefix, empty for the whole host; rule number), longest prefix first.
    hosts: HashMap<Box<[u8]>, Vec<SitePattern>>,
}

type SitePattern = (Box<[u8]>, u32);

impl PatternSet {
    /// Adds a site with a rule number.
    pub fn insert(&mut self, site: &Target, rule: u32) {
        let v = self.hosts.entry(site.host_bytes().into()).or_default();
        v.push((site.path().into(), rule));
        v.sort_by_key(|p| std::cmp::Reverse(p.0.len()));
    }

    /// The rule of the most specific site covering the target.
    pub fn find(&self, t: &Target) -> Option<u32> {
        if self.hosts.is_empty() {
            return None;
        }
        let path = t.path();
        for suffix in t.host_suffixes() {
            if let Some(v) = self.hosts.get(suffix) {
                if let Some((_, rule)) = v.iter().find(|(p, _)| p.is_empty() || path.starts_with(p))
                {
                    return Some(*rule);
                }
            }
        }
        None
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A named schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its name.
    pub name: String,
    days: [bool; 7],
    from: Time,
    to: Time,
    in_term: bool,
}

/// A time rule of a group.
#[derive(Debug, Clone)]
pub struct When {
    /// Index into the policy's schedules.
    pub schedule: usize,
    /// Category actions while active.
    pub categories: BTreeMap<String, Action>,
    /// Default while active.
    pub default: Option<Action>,
    /// Where it was written, e.g. `groups.ks2.when[0]`.
    pub origin: String,
}

/// A group's settings, after inheritance.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its name.
    pub name: String,
    /// Who it is.
    pub description: String,
    /// Action for anything not named.
    pub default: Action,
    /// Where the default was set.
    pub default_origin: String,
    /// Action and origin per category id.
    pub categories: BTreeMap<String, (Action, String)>,
    /// Time rules.
    pub when: Vec<When>,
    /// Blocked file extensions (lower case).
    pub block_file_types: Vec<String>,
    /// Safe search.
    pub safe_search: SafeSearch,
    /// Whether the proxy decrypts this group's HTTPS.
    pub intercept: bool,
    /// Content score over which a page is blocked.
    pub phrase_limit: Option<i64>,
    /// Monitoring categories whose pages the learned model blocks.
    pub classify_pages: Vec<String>,
    /// Google Workspace domains pupils may sign in to (empty: no restriction).
    pub google_allowed_domains: Vec<String>,
    /// Whether HTTPS tunnels to bare addresses no list or rule names are allowed.
    pub address_tunnels: bool,
    /// Whether image search results are blocked (where the proxy sees the URL).
    pub image_search_blocked: bool,
    /// Whether downloads are scanned by ClamAV.
    pub scan_downloads: bool,
    /// Whether a download that cannot be scanned is let through (otherwise blocked).
    pub scan_unavailable_allows: bool,
}

/// An allow or deny override.
#[derive(Debug, Clone)]
pub struct Override {
    /// `allow[0] "School platforms"` or similar.
    pub label: String,
    /// Why it exists.
    pub reason: Option<String>,
    /// Sites as written.
    pub sites: Vec<String>,
    /// Group names it applies to (`None`: all).
    pub groups: Option<Vec<String>>,
}

/// Lesson mode kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LessonKind {
    /// Only the lesson's sites are reachable.
    AllowOnly,
    /// The lesson's sites are reachable in addition to what the group may reach.
    ExtraAllow,
}

/// A lesson mode.
#[derive(Debug, Clone)]
pub struct Lesson {
    /// What the lesson is.
    pub name: String,
    /// Group it applies to.
    pub group: Option<String>,
    /// Class it applies to.
    pub class: Option<String>,
    /// Kind.
    pub kind: LessonKind,
    /// Sites as written.
    pub sites: Vec<String>,
    /// Compiled sites.
    pub patterns: PatternSet,
    /// Start (inclusive).
    pub starts: DateTime,
    /// End (exclusive).
    pub ends: DateTime,
    /// Who set it.
    pub teacher: Option<String>,
}

impl Lesson {
    /// Whether the lesson applies to this group or class at this time.
    pub fn applies(&self, group: &str, class: Option<&str>, at: DateTime) -> bool {
        let who = self.group.as_deref() == Some(group)
            || (self.class.is_some() && self.class.as_deref() == class);
        who && self.starts <= at && at < self.ends
    }
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The school's name.
    pub school: String,
    /// Groups in name order.
    pub groups: Vec<Group>,
    /// Schedules.
    pub schedules: Vec<Schedule>,
    terms: Vec<(String, Date, Date)>,
    closures: Vec<Date>,
    /// Allow overrides.
    pub allow: Vec<Override>,
    /// Deny overrides.
    pub deny: Vec<Override>,
    /// Lesson modes.
    pub lessons: Vec<Lesson>,
    /// Categories never decrypted.
    pub never_intercept_categories: Vec<String>,
    /// Sites never decrypted.
    pub never_intercept_sites: PatternSet,
}

fn parse_date(rule: &str, s: &str) -> Result<Date, PolicyError> {
    s.parse()
        .map_err(|_| invalid(rule, format!("{s:?} is not a date (YYYY-MM-DD)")))
}

fn parse_time(rule: &str, s: &str) -> Result<Time, PolicyError> {
    s.parse()
        .map_err(|_| invalid(rule, format!("{s:?} is not a time (HH:MM)")))
}

/// Parses a local date-time as written in policy files and on the command line.
pub fn parse_datetime(s: &str) -> Option<DateTime> {
    s.trim().replace(' ', "T").parse().ok()
}

fn parse_action(rule: &str, s: &str) -> Result<Action, PolicyError> {
    Action::parse(s).ok_or_else(|| {
        invalid(
            rule,
            format!("{s:?} is not an action (allow, block, warn, alert-only)"),
        )
    })
}

fn parse_site(rule: &str, s: &str) -> Result<Target, PolicyError> {
    Target::parse(s).map_err(|e| invalid(rule, format!("site {s:?}: {e}")))
}

fn check_category(rule: &str, id: &str, action: Action) -> Result<(), PolicyError> {
    if !category::is_valid_id(id) {
        return Err(invalid(
            rule,
            format!("unknown category {id:?} (see `haven categories`)"),
        ));
    }
    if category::is_illegal(id) && action != Action::Block {
        return Err(invalid(
            rule,
            format!(
                "{id} is an illegal list; it is blocked for everyone and no rule may change that"
            ),
        ));
    }
    Ok(())
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Policy {
    /// Parses and validates a policy file's text.
    pub fn from_toml(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = toml::from_str(text)
            .map_err(|e| PolicyError::Syntax(e.to_string().trim_end().to_owned()))?;
        Policy::from_file(file)
    }

    /// Validates a parsed policy file.
    pub fn from_file(file: PolicyFile) -> Result<Policy, PolicyError> {
        let mut schedules = Vec::new();
        for (name, s) in &file.schedules {
            let rule = format!("schedules.{name}");
            let mut days = [false; 7];
            for d in &s.days {
                let i = WEEKDAYS
                    .iter()
                    .position(|w| d.to_ascii_lowercase().starts_with(w))
                    .ok_or_else(|| invalid(&rule, format!("{d:?} is not a day (mon … sun)")))?;
                days[i] = true;
            }
            let from = parse_time(&format!("{rule}.from"), &s.from)?;
            let to = parse_time(&format!("{rule}.to"), &s.to)?;
            if from == to {
                return Err(invalid(rule, "from and to are the same time"));
            }
            schedules.push(Schedule {
                name: name.clone(),
                days,
                from,
                to,
                in_term: s.in_term,
            });
        }
        let mut terms = Vec::new();
        for (i, t) in file.terms.iter().enumerate() {
            let rule = format!("terms[{i}]");
            let start = parse_date(&rule, &t.start)?;
            let end = parse_date(&rule, &t.end)?;
            if end < start {
                return Err(invalid(rule, "term ends before it starts"));
            }
            terms.push((t.name.clone(), start, end));
        }
        let closures = file
            .closures
            .iter()
            .enumerate()
            .map(|(i, d)| parse_date(&format!("closures[{i}]"), d))
            .collect::<Result<Vec<_>, _>>()?;
        if file.groups.is_empty() {
            return Err(invalid("groups", "a policy needs at least one group"));
        }
        let mut groups = Vec::new();
        for name in file.groups.keys() {
            groups.push(resolve_group(&file, name, &schedules, &mut Vec::new())?);
        }
        let group_exists = |g: &str| file.groups.contains_key(g);
        let overrides = |list: &[OverrideFile], kind: &str| -> Result<Vec<Override>, PolicyError> {
            let mut out = Vec::new();
            for (i, o) in list.iter().enumerate() {
                let label = match &o.name {
                    Some(n) => format!("{kind}[{i}] {n:?}"),
                    None => format!("{kind}[{i}]"),
                };
                if o.sites.is_empty() {
                    return Err(invalid(&label, "no sites"));
                }
                for s in &o.sites {
                    parse_site(&label, s)?;
                }
                for g in o.groups.iter().flatten() {
                    if !group_exists(g) {
                        return Err(invalid(&label, format!("unknown group {g:?}")));
                    }
                }
                out.push(Override {
                    label,
                    reason: o.reason.clone(),
                    sites: o.sites.clone(),
                    groups: o.groups.clone(),
                });
            }
            Ok(out)
        };
        let allow = overrides(&file.allow, "allow")?;
        let deny = overrides(&file.deny, "deny")?;
        for c in &file.never_intercept.categories {
            if !category::is_valid_id(c) {
                return Err(invalid(
                    "never_intercept.categories",
                    format!("unknown category {c:?} (see `haven categories`)"),
                ));
            }
        }
        let mut never_intercept_sites = PatternSet::default();
        for (i, s) in file.never_intercept.sites.iter().enumerate() {
            never_intercept_sites.insert(&parse_site("never_intercept.sites", s)?, i as u32);
        }
        let mut policy = Policy {
            school: file.school.clone().unwrap_or_else(|| "Haven".to_owned()),
            groups,
            schedules,
            terms,
            closures,
            allow,
            deny,
            lessons: Vec::new(),
            never_intercept_categories: file.never_intercept.categories.clone(),
            never_intercept_sites,
        };
        for (i, l) in file.lesson.iter().enumerate() {
            policy.add_lesson_at(l.clone(), &format!("lesson[{i}]"))?;
        }
        Ok(policy)
    }

    /// Adds a lesson mode (as a teacher does at run time), validating it.
    pub fn add_lesson(&mut self, lesson: LessonFile) -> Result<(), PolicyError> {
        let rule = format!("lesson {:?}", lesson.name);
        self.add_lesson_at(lesson, &rule)
    }

    fn add_lesson_at(&mut self, l: LessonFile, rule: &str) -> Result<(), PolicyError> {
        let kind = match l.mode.as_str() {
            "allow-only" => LessonKind::AllowOnly,
            "extra-allow" => LessonKind::ExtraAllow,
            m => {
                return Err(invalid(
                    rule,
                    format!("mode {m:?} is not allow-only or extra-allow"),
                ))
            }
        };
        if l.group.is_none() && l.class.is_none() {
            return Err(invalid(rule, "a lesson needs a group or a class"));
        }
        if let Some(g) = &l.group {
            if self.group(g).is_none() {
                return Err(invalid(rule, format!("unknown group {g:?}")));
            }
        }
        let starts = parse_datetime(&l.starts).ok_or_else(|| {
            invalid(
                rule,
                format!(
                    "starts {:?} is not a date-time (YYYY-MM-DDTHH:MM)",
                    l.starts
                ),
            )
        })?;
        let ends = parse_datetime(&l.ends).ok_or_else(|| {
            invalid(
                rule,
                format!("ends {:?} is not a date-time (YYYY-MM-DDTHH:MM)", l.ends),
            )
        })?;
        if ends <= starts {
            return Err(invalid(rule, "a lesson must end after it starts"));
        }
        let mut patterns = PatternSet::default();
        for s in &l.sites {
            patterns.insert(&parse_site(rule, s)?, 0);
        }
        if kind == LessonKind::ExtraAllow && l.sites.is_empty() {
            return Err(invalid(rule, "an extra-allow lesson needs sites"));
        }
        self.lessons.push(Lesson {
            name: l.name,
            group: l.group,
            class: l.class,
            kind,
            sites: l.sites,
            patterns,
            starts,
            ends,
            teacher: l.teacher,
        });
        Ok(())
    }

    /// A group by name.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// Whether the policy gives term dates at all.
    pub fn has_terms(&self) -> bool {
        !self.terms.is_empty()
    }

    /// Whether a date is a school day in term (not a closure).
    pub fn in_term(&self, date: Date) -> bool {
        self.terms.iter().any(|(_, s, e)| *s <= date && date <= *e)
            && !self.closures.contains(&date)
    }

    /// Whether a schedule is active at a local time.
    pub fn schedule_active(&self, schedule: usize, at: DateTime) -> bool {
        let Some(s) = self.schedules.get(schedule) else {
            return false;
        };
        let time = at.time();
        // An overnight schedule belongs to the day it started on.
        let (in_window, day) = if s.from < s.to {
            (s.from <= time && time < s.to, at.date())
        } else if time >= s.from {
            (true, at.date())
        } else {
            (time < s.to, at.date().yesterday().unwrap_or(at.date()))
        };
        in_window && s.days[weekday_index(day.weekday())] && (!s.in_term || self.in_term(day))
    }
}

fn weekday_index(w: Weekday) -> usize {
    usize::try_from(w.to_monday_zero_offset()).unwrap_or(0)
}

fn resolve_group(
    file: &PolicyFile,
    name: &str,
    schedules: &[Schedule],
    chain: &mut Vec<String>,
) -> Result<Group, PolicyError> {
    let rule = format!("groups.{}", quote_key(name));
    if chain.iter().any(|c| c == name) {
        return Err(invalid(
            &rule,
            format!("inherits in a loop: {} -> {name}", chain.join(" -> ")),
        ));
    }
    let g = file.groups.get(name).ok_or_else(|| {
        invalid(
            format!(
                "{}.inherits",
                chain
                    .last()
                    .map(|c| format!("groups.{c}"))
                    .unwrap_or_default()
            ),
            format!("unknown group {name:?}"),
        )
    })?;
    chain.push(name.to_owned());
    let mut out = match &g.inherits {
        Some(parent) => {
            let mut p = resolve_group(file, parent, schedules, chain)?;
            p.name = name.to_owned();
            p
        }
        None => Group {
            name: name.to_owned(),
            description: String::new(),
            default: Action::Allow,
            default_origin: "the built-in default (allow)".to_owned(),
            categories: BTreeMap::new(),
            when: Vec::new(),
            block_file_types: Vec::new(),
            safe_search: SafeSearch::default(),
            intercept: false,
            phrase_limit: None,
            classify_pages: Vec::new(),
            google_allowed_domains: Vec::new(),
            address_tunnels: false,
            image_search_blocked: false,
            scan_downloads: false,
            scan_unavailable_allows: false,
        },
    };
    chain.pop();
    if let Some(d) = &g.description {
        out.description = d.clone();
    }
    if let Some(d) = &g.default {
        out.default = parse_action(&format!("{rule}.default"), d)?;
        out.default_origin = format!("{rule}.default");
    }
    for (cat, act) in &g.categories {
        let r = format!("{rule}.categories.{cat}");
        let a = parse_action(&r, act)?;
        check_category(&r, cat, a)?;
        out.categories.insert(cat.clone(), (a, r));
    }
    if !g.when.is_empty() {
        // A group's own time rules replace inherited ones: they are read as one list.
        out.when.clear();
    }
    for (i, w) in g.when.iter().enumerate() {
        let r = format!("{rule}.when[{i}]");
        let schedule = schedules
            .iter()
            .position(|s| s.name == w.schedule)
            .ok_or_else(|| invalid(&r, format!("unknown schedule {:?}", w.schedule)))?;
        let mut categories = BTreeMap::new();
        for (cat, act) in &w.categories {
            let rc = format!("{r}.categories.{cat}");
            let a = parse_action(&rc, act)?;
            check_category(&rc, cat, a)?;
            categories.insert(cat.clone(), a);
        }
        let default = w
            .default
            .as_deref()
            .map(|d| parse_action(&format!("{r}.default"), d))
            .transpose()?;
        out.when.push(When {
            schedule,
            categories,
            default,
            origin: r,
        });
    }
    if let Some(types) = &g.block_file_types {
        out.block_file_types = types
            .iter()
            .map(|t| t.trim_start_matches('.').to_ascii_lowercase())
            .collect();
    }
    if let Some(s) = g.safe_search {
        out.safe_search = s;
    }
    if let Some(i) = g.intercept {
        out.intercept = i;
    }
    let allow_or_block = |key: &str, value: &str| match value {
        "allow" => Ok(true),
        "block" => Ok(false),
        other => Err(invalid(
            format!("{rule}.{key}"),
            format!("{other:?} is not allow or block"),
        )),
    };
    if let Some(a) = &g.address_tunnels {
        out.address_tunnels = allow_or_block("address_tunnels", a)?;
    }
    if let Some(a) = &g.image_search {
        out.image_search_blocked = !allow_or_block("image_search", a)?;
    }
    if let Some(a) = g.scan_downloads {
        out.scan_downloads = a;
    }
    if let Some(a) = &g.scan_unavailable {
        out.scan_unavailable_allows = allow_or_block("scan_unavailable", a)?;
    }
    if let Some(l) = g.phrase_limit {
        if l <= 0 {
            return Err(invalid(
                format!("groups.{name}.phrase_limit"),
                "must be above 0",
            ));
        }
        out.phrase_limit = Some(l);
    }
    if let Some(cats) = &g.classify_pages {
        let mut clean = Vec::with_capacity(cats.len());
        for c in cats {
            let c = c.trim().to_ascii_lowercase();
            if !crate::risk::CATEGORIES.contains(&c.as_str()) {
                return Err(invalid(
                    format!("groups.{name}.classify_pages"),
                    format!(
                        "{c:?} is not a monitoring category ({})",
                        crate::risk::CATEGORIES.join(", ")
                    ),
                ));
            }
            clean.push(c);
        }
        out.classify_pages = clean;
    }
    if let Some(domains) = &g.google_allowed_domains {
        let mut clean = Vec::with_capacity(domains.len());
        for d in domains {
            let d = d.trim().to_ascii_lowercase();
            let sound = d.contains('.')
                && !d.starts_with('.')
                && !d.ends_with('.')
                && d.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
            if !sound {
                return Err(invalid(
                    format!("groups.{name}.google_allowed_domains"),
                    format!("{d:?} is not a domain name"),
                ));
            }
            clean.push(d);
        }
        out.google_allowed_domains = clean;
    }
    Ok(out)
}

fn quote_key(name: &str) -> String {
    if name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        name.to_owned()
    } else {
        format!("{name:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        school = "Test School"
        closures = ["2026-11-27"]
        [schedules.school-day]
        days = ["mon", "tue", "wed", "thu", "fri"]
        from = "08:30"
        to = "15:30"
        in_term = true
        [schedules.night]
        days = ["fri"]
        from = "22:00"
        to = "06:00"
        [[terms]]
        name = "Autumn 2"
        start = "2026-11-02"
        end = "2026-12-18"
        [groups.ks2]
        default = "allow"
        categories = { gambling = "block" }
        [groups.ks1]
        inherits = "ks2"
        categories = { games = "block" }
    "#;

    fn at(s: &str) -> DateTime {
        parse_datetime(s).expect("date-time")
    }

    #[test]
    fn schedule_boundaries() {
        let p = Policy::from_toml(BASE).expect("valid");
        let day = p
            .schedules
            .iter()
            .position(|s| s.name == "school-day")
            .expect("schedule");
        let check =
            |t: &str, expected: bool| assert_eq!(p.schedule_active(day, at(t)), expected, "{t}");
        check("2026-11-23T08:29:59", false); // Monday, a second before
        check("2026-11-23T08:30", true);
        check("2026-11-23T15:29:59", true);
        check("2026-11-23T15:30", false); // end is exclusive
        check("2026-11-22T10:00", false); // Sunday
        check("2026-11-27T10:00", false); // Friday closure (INSET day)
        check("2026-12-18T10:00", true); // last day of term
        check("2026-12-21T10:00", false); // holidays
        check("2026-11-01T10:00", false); // Sunday before term
        check("2026-11-02T10:00", true); // first day of term
        let night = p
            .schedules
            .iter()
            .position(|s| s.name == "night")
            .expect("schedule");
        assert!(p.schedule_active(night, at("2026-11-27T23:00"))); // Friday night
        assert!(p.schedule_active(night, at("2026-11-28T05:59"))); // still Friday's night
        assert!(!p.schedule_active(night, at("2026-11-28T06:00")));
        assert!(!p.schedule_active(night, at("2026-11-28T23:00"))); // Saturday night
    }

    #[test]
    fn inheritance() {
        let p = Policy::from_toml(BASE).expect("valid");
        let ks1 = p.group("ks1").expect("ks1");
        assert_eq!(ks1.categories["gambling"].0, Action::Block);
        assert_eq!(
            ks1.categories["gambling"].1,
            "groups.ks2.categories.gambling"
        );
        assert_eq!(ks1.categories["games"].0, Action::Block);
        assert!(!p
            .group("ks2")
            .expect("ks2")
            .categories
            .contains_key("games"));
    }

    #[test]
    fn address_tunnels_are_blocked_unless_a_group_allows_them() {
        let shipped = Policy::from_toml(DEFAULT_POLICY).expect("the shipped policy");
        let allows = |p: &Policy, g: &str| p.group(g).expect("group").address_tunnels;
        assert!(!allows(&shipped, "ks2"));
        assert!(!allows(&shipped, "ks1"), "inherited");
        assert!(
            !allows(&shipped, "guest"),
            "the default when a group says nothing"
        );
        assert!(allows(&shipped, "staff"));
        check_err(
            "[groups.x]\naddress_tunnels = \"yes\"",
            "groups.x.address_tunnels: \"yes\" is not allow or block",
        );
    }

    #[test]
    fn pupils_have_image_search_blocked_and_downloads_scanned() {
        let shipped = Policy::from_toml(DEFAULT_POLICY).expect("the shipped policy");
        for g in ["ks2", "ks1", "eyfs", "ks3+"] {
            let g = shipped.group(g).expect("group");
            assert!(g.image_search_blocked, "{}", g.name);
            assert!(g.scan_downloads && !g.scan_unavailable_allows, "{}", g.name);
        }
        let staff = shipped.group("staff").expect("staff");
        assert!(!staff.image_search_blocked);
        check_err(
            "[groups.x]\nimage_search = \"strict\"",
            "groups.x.image_search: \"strict\" is not allow or block",
        );
        check_err(
            "[groups.x]\nscan_unavailable = \"warn\"",
            "groups.x.scan_unavailable: \"warn\" is not allow or block",
        );
    }

    #[track_caller]
    fn check_err(extra: &str, expected: &str) {
        let err = Policy::from_toml(&format!("{BASE}\n{extra}"))
            .expect_err("must be refused")
            .to_string();
        assert!(
            err.contains(expected),
            "error {err:?} should contain {expected:?}"
        );
    }

    #[test]
    fn bad_policies_name_the_rule() {
        check_err(
            "[groups.x]\ncategories = { gamblin = \"block\" }",
            "groups.x.categories.gamblin: unknown category",
        );
        check_err(
            "[groups.x]\ncategories = { gambling = \"maybe\" }",
            "groups.x.categories.gambling: \"maybe\" is not an action",
        );
        check_err(
            "[groups.x]\ncategories = { iwf = \"allow\" }",
            "groups.x.categories.iwf: iwf is an illegal list",
        );
        check_err("[groups.x]\ninherits = \"nope\"", "unknown group \"nope\"");
        check_err(
            "[groups.x]\ninherits = \"y\"\n[groups.y]\ninherits = \"x\"",
            "inherits in a loop",
        );
        check_err("[groups.x]\ncolour = \"red\"", "unknown field `colour`");
        check_err(
            "[[groups.x.when]]\nschedule = \"lunch\"",
            "groups.x.when[0]: unknown schedule \"lunch\"",
        );
        check_err(
            "[[allow]]\nsites = [\"exa mple.com\"]",
            "allow[0]: site \"exa mple.com\"",
        );
        check_err(
            "[[deny]]\nsites = [\"x.com\"]\ngroups = [\"ks9\"]",
            "deny[0]: unknown group \"ks9\"",
        );
        check_err(
            "[[lesson]]\nname = \"Maths\"\ngroup = \"ks2\"\nmode = \"allow-only\"\nsites = []\nstarts = \"2026-11-23T10:00\"\nends = \"2026-11-23T09:00\"",
            "lesson[0]: a lesson must end after it starts",
        );
        check_err(
            "[schedules.bad]\ndays = [\"someday\"]\nfrom = \"08:00\"\nto = \"09:00\"",
            "schedules.bad: \"someday\" is not a day",
        );
        let bad_date = BASE.replace("2026-11-27", "2026-13-01");
        let err = Policy::from_toml(&bad_date)
            .expect_err("bad date")
            .to_string();
        assert!(
            err.contains("closures[0]: \"2026-13-01\" is not a date"),
            "{err}"
        );
    }

    #[test]
    fn pattern_sets_prefer_the_most_specific() {
        let mut s = PatternSet::default();
        s.insert(&Target::parse("example.com").expect("t"), 1);
        s.insert(&Target::parse("example.com/docs").expect("t"), 2);
        s.insert(&Target::parse("a.example.com").expect("t"), 3);
        let find = |u: &str| s.find(&Target::parse(u).expect("t"));
        assert_eq!(find("example.com/"), Some(1));
        assert_eq!(find("www.example.com/docs/x"), Some(2));
        assert_eq!(find("x.a.example.com/docs"), Some(3));
        assert_eq!(find("example.org"), None);
    }
}
