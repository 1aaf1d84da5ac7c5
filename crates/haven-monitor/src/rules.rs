//! `[monitor]` in `haven.toml`: what monitoring captures (blocked attempts, pages) and what
//! becomes of a capture once graded (history raising its grade, the grade that alerts).

use std::collections::BTreeMap;

use haven_store::captures::CaptureRules;

/// What monitoring captures and what becomes of a capture once graded: blocked attempts and
/// pages as sources, how a person's recent history raises a grade, and the grade at which it
/// alerts the safeguarding team (`[monitor]` in `haven.toml`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorRules {
    /// A capture at or above this grade alerts the DSL rota.
    #[serde(default = "default_alert_grade")]
    pub alert_grade: u8,
    /// The alerting grade for particular categories (`{ bullying = 3 }`).
    #[serde(default)]
    pub alert_grade_by_category: BTreeMap<String, u8>,
    /// Days of a person's earlier captures that count towards raising a new one.
    #[serde(default = "default_history_days")]
    pub history_days: u32,
    /// Earlier captures in the same category within `history_days` (not dismissed) that raise
    /// a new capture one grade (0: history never raises a grade).
    #[serde(default = "default_history_count")]
    pub history_count: u32,
    /// Blocked attempts in these filter categories are captures of the grade given (a person's
    /// attempts in one category within ten minutes are one capture). Bypass attempts
    /// (`vpn-proxy`, `doh`) are captures in the category `bypass`.
    #[serde(default = "default_blocked")]
    pub blocked: BTreeMap<String, u8>,
    /// Pages the proxy scores (groups with a `phrase_limit`) are graded by the risk library.
    #[serde(default = "yes")]
    pub pages: bool,
    /// Page text graded a second, at most, in KiB (as the pages came): grading takes CPU
    /// (the library and the model together about 170 µs a KiB of text), so past this pages are
    /// left ungraded and counted.
    #[serde(default = "default_page_kib")]
    pub page_kib_per_second: u32,
}

/// A `[monitor]` setting that cannot be used, named with its key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(String);

fn default_page_kib() -> u32 {
    1024
}

fn yes() -> bool {
    true
}

fn default_blocked() -> BTreeMap<String, u8> {
    [
        ("iwf", 5),
        ("ctiru", 5),
        ("self-harm", 4),
        ("extremism", 4),
        ("pornography", 3),
        ("violence", 3),
        ("discrimination", 3),
        ("hate-speech", 3),
        ("drugs", 2),
        ("gambling", 2),
        ("vpn-proxy", 2),
        ("doh", 2),
    ]
    .into_iter()
    .map(|(c, g)| (c.to_owned(), g))
    .collect()
}

/// The monitoring category a blocked attempt in a filter category counts in.
pub fn blocked_category(filter_category: &str) -> &str {
    match filter_category {
        "iwf" => "illegal",
        "ctiru" => "extremism",
        "hate-speech" => "discrimination",
        "vpn-proxy" | "doh" => "bypass",
        other => other,
    }
}

fn default_alert_grade() -> u8 {
    CaptureRules::default().alert_grade
}

fn default_history_days() -> u32 {
    CaptureRules::default().history_days
}

fn default_history_count() -> u32 {
    CaptureRules::default().history_count
}

impl Default for MonitorRules {
    fn default() -> Self {
        MonitorRules {
            alert_grade: default_alert_grade(),
            alert_grade_by_category: Default::default(),
            history_days: default_history_days(),
            history_count: default_history_count(),
            blocked: default_blocked(),
            pages: true,
            page_kib_per_second: default_page_kib(),
        }
    }
}

impl MonitorRules {
    /// Whether a capture of `grade` in `category` alerts.
    pub fn alerts(&self, category: &str, grade: u8) -> bool {
        self.capture_rules().alerts(category, grade)
    }

    /// What the store needs to record a capture.
    pub fn capture_rules(&self) -> CaptureRules {
        CaptureRules {
            alert_grade: self.alert_grade,
            alert_grade_by_category: self.alert_grade_by_category.clone(),
            history_days: self.history_days,
            history_count: self.history_count,
        }
    }

    /// Refuses grades outside 1 to 5 and categories the risk library does not have.
    pub fn check(&self) -> Result<(), RulesError> {
        let bad = |g: u8| !(1..=5).contains(&g);
        if bad(self.alert_grade) {
            return Err(RulesError(format!(
                "monitor.alert_grade: {} is not a grade from 1 to 5",
                self.alert_grade
            )));
        }
        for (c, g) in &self.alert_grade_by_category {
            if !haven_core::risk::CATEGORIES.contains(&c.as_str()) && c != "bypass" {
                return Err(RulesError(format!(
                    "monitor.alert_grade_by_category: {c:?} is not a monitoring category ({}, bypass)",
                    haven_core::risk::CATEGORIES.join(", ")
                )));
            }
            if bad(*g) {
                return Err(RulesError(format!(
                    "monitor.alert_grade_by_category.{c}: {g} is not a grade from 1 to 5"
                )));
            }
        }
        for (c, g) in &self.blocked {
            if haven_core::category::by_id(c).is_none() {
                return Err(RulesError(format!(
                    "monitor.blocked: {c:?} is not a filter category"
                )));
            }
            if bad(*g) {
                return Err(RulesError(format!(
                    "monitor.blocked.{c}: {g} is not a grade from 1 to 5"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (Moved from the store's alert test, which now takes the store's `CaptureRules`.)
    #[test]
    fn a_category_rule_must_name_a_monitoring_category() {
        let strict = MonitorRules {
            alert_grade_by_category: [("gambling".to_owned(), 2)].into(),
            ..MonitorRules::default()
        };
        assert!(strict.check().is_ok());
        assert!(strict.alerts("gambling", 2));
        let bad = MonitorRules {
            alert_grade_by_category: [("weather".to_owned(), 2)].into(),
            ..MonitorRules::default()
        };
        assert!(bad.check().is_err());
    }

    #[test]
    fn the_defaults_are_the_stores() {
        assert_eq!(
            MonitorRules::default().capture_rules(),
            CaptureRules::default()
        );
    }
}
