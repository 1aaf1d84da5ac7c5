//! The Watcher: the data plane's events into captures (search terms, blocked and bypass
//! attempts), on the event writer's thread.

use crate::rules::MonitorRules;

/// Turns the data plane's events into captures: search terms the risk library grades 1 or
/// more, and blocked attempts in the categories `[monitor] blocked` names (one capture per
/// person and category in ten minutes: a browser retries, and a page pulls many addresses).
#[derive(Debug, Default)]
pub struct Watcher {
    /// A keyed hash of (who, filter category) → when its last blocked-attempt capture was.
    recent: std::collections::HashMap<u64, u64>,
    keys: std::collections::hash_map::RandomState,
}

/// Blocked attempts by one person in one category within this time are one capture.
const BLOCKED_WINDOW_MS: u64 = 10 * 60_000;

impl Watcher {
    /// Adds the captures `e` makes to `out`.
    pub fn see(
        &mut self,
        grader: &crate::grader::Grader,
        rules: &MonitorRules,
        e: &haven_core::event::Event,
        out: &mut Vec<haven_store::captures::NewCapture>,
    ) {
        if let Some(term) = e.search.as_deref() {
            let a = grader.assess(term);
            if a.grade.grade > 0 {
                out.push(a.capture(
                    e.at_ms as i64,
                    "search",
                    &e.client.to_string(),
                    e.user.as_deref(),
                    &e.name,
                    term,
                ));
            }
        }
        if e.action != haven_core::policy::Action::Block {
            return;
        }
        let Some(category) = e.category.as_deref() else {
            return;
        };
        let Some(&grade) = rules.blocked.get(category) else {
            return;
        };
        // Hashed rather than kept: a blocked name asked again and again costs no allocation.
        let key = {
            use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
            let mut h = self.keys.build_hasher();
            match &e.user {
                Some(u) => u.hash(&mut h),
                None => e.client.hash(&mut h),
            }
            category.hash(&mut h);
            h.finish()
        };
        if self
            .recent
            .get(&key)
            .is_some_and(|&at| e.at_ms.saturating_sub(at) < BLOCKED_WINDOW_MS)
        {
            return;
        }
        if self.recent.len() >= 100_000 {
            let now = e.at_ms;
            self.recent
                .retain(|_, at| now.saturating_sub(*at) < BLOCKED_WINDOW_MS);
        }
        self.recent.insert(key, e.at_ms);
        let counts_in = crate::rules::blocked_category(category);
        out.push(haven_store::captures::NewCapture {
            at_ms: e.at_ms as i64,
            source: if counts_in == "bypass" {
                "bypass".to_owned()
            } else {
                "blocked".to_owned()
            },
            client: e.client.to_string(),
            user: e.user.clone(),
            url: e.name.clone(),
            text: format!(
                "{} blocked ({category}): {}",
                if e.source == haven_core::event::Source::Dns {
                    "DNS lookup"
                } else {
                    "web request"
                },
                e.name
            ),
            grade,
            categories: format!("{counts_in}:{grade}"),
            model: None,
            matched: format!("blocked {category}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_core::event::Event;
    use haven_core::policy::Action;
    use haven_core::risk::RiskLibrary;

    fn event(at_ms: u64, name: &str, action: Action, category: Option<&str>) -> Event {
        Event {
            at_ms,
            source: haven_core::event::Source::Dns,
            client: "10.20.1.5".parse().expect("ip"),
            group: "ks2".into(),
            user: None,
            name: name.into(),
            qtype: Some(1),
            action,
            category: category.map(str::to_owned),
            reason: None,
            search: None,
            latency_us: 1,
        }
    }

    #[test]
    fn blocked_attempts_are_one_capture_per_person_and_category_in_ten_minutes() {
        let (library, _) = RiskLibrary::parse("version 1\n5 | suicide | kill myself\n");
        let library = crate::grader::Grader {
            library: std::sync::Arc::new(library),
            model: None,
            tuning: crate::grader::TUNING,
        };
        let rules = MonitorRules::default();
        let mut w = Watcher::default();
        let mut out = Vec::new();
        let t = 1_790_000_000_000;
        for (dt, name, category) in [
            (0, "pornhub.com", "pornography"),
            (1_000, "xvideos.com", "pornography"),
            (2_000, "nordvpn.com", "vpn-proxy"),
            (3_000, "bet365.com", "games"),
            (11 * 60_000, "pornhub.com", "pornography"),
        ] {
            w.see(
                &library,
                &rules,
                &event(t + dt, name, Action::Block, Some(category)),
                &mut out,
            );
        }
        // Allowed requests in a blocked-attempt category are not attempts.
        w.see(
            &library,
            &rules,
            &event(t, "pornhub.com", Action::Allow, Some("pornography")),
            &mut out,
        );
        let seen: Vec<(&str, &str, u8)> = out
            .iter()
            .map(|c| (c.source.as_str(), c.categories.as_str(), c.grade))
            .collect();
        assert_eq!(
            seen,
            [
                ("blocked", "pornography:3", 3),
                ("bypass", "bypass:2", 2),
                ("blocked", "pornography:3", 3),
            ]
        );
        // A search term is graded whatever the decision.
        let mut search = event(
            t,
            "https://www.google.com/search?q=x",
            Action::Rewrite,
            None,
        );
        search.search = Some("i want to kill myself".into());
        out.clear();
        w.see(&library, &rules, &search, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].source.as_str(), out[0].grade), ("search", 5));
    }
}
