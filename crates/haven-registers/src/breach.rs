//! The data-breach log's clock. A personal data breach that is likely to result in a risk to
//! people's rights and freedoms is reported to the ICO within 72 hours of the school becoming
//! aware of it (UK GDPR article 33). The clock runs from discovery until the breach is reported
//! or the DPO records that it is not reportable; it warns at 48 hours and is overdue at 72.

/// Hours the school has to report a breach to the ICO.
pub const REPORT_HOURS: i64 = 72;
/// Hours after which the clock warns.
pub const WARN_HOURS: i64 = 48;
const HOUR_MS: i64 = 3_600_000;

/// Where a breach's clock stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Running, under 48 hours in: the hours left.
    Running {
        /// Whole hours left until 72.
        hours_left: i64,
    },
    /// Between 48 and 72 hours: the hours left.
    Warning {
        /// Whole hours left until 72.
        hours_left: i64,
    },
    /// Past 72 hours and neither reported nor decided not reportable.
    Overdue {
        /// Whole hours past 72.
        hours_over: i64,
    },
    /// Reported to the ICO: in time or late.
    Reported {
        /// Reported within 72 hours of discovery.
        in_time: bool,
    },
    /// The DPO decided it is not reportable (the reason is in the log).
    NotReportable,
}

impl Clock {
    /// The word pages use (and style by).
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::Running { .. } => "running",
            Clock::Warning { .. } => "warning",
            Clock::Overdue { .. } => "overdue",
            Clock::Reported { .. } => "reported",
            Clock::NotReportable => "not-reportable",
        }
    }

    /// The clock in words.
    pub fn describe(self) -> String {
        match self {
            Clock::Running { hours_left } => format!("{hours_left} hours left to report to the ICO"),
            Clock::Warning { hours_left } => {
                format!("{hours_left} hours left to report to the ICO: decide now")
            }
            Clock::Overdue { hours_over } => format!(
                "{hours_over} hours past the 72 allowed: report to the ICO now, with the reasons for the delay"
            ),
            Clock::Reported { in_time: true } => "reported to the ICO in time".into(),
            Clock::Reported { in_time: false } => "reported to the ICO late".into(),
            Clock::NotReportable => "not reportable (the DPO's reasons are recorded)".into(),
        }
    }
}

/// The clock of a breach discovered at `discovered_ms`, on `now_ms`; `reportable` is the DPO's
/// decision once made, `reported_ms` when it was reported.
pub fn clock(
    discovered_ms: i64,
    now_ms: i64,
    reportable: Option<bool>,
    reported_ms: Option<i64>,
) -> Clock {
    if let Some(at) = reported_ms {
        return Clock::Reported {
            in_time: at - discovered_ms <= REPORT_HOURS * HOUR_MS,
        };
    }
    if reportable == Some(false) {
        return Clock::NotReportable;
    }
    let elapsed = (now_ms - discovered_ms).max(0);
    let deadline = REPORT_HOURS * HOUR_MS;
    if elapsed >= deadline {
        return Clock::Overdue {
            hours_over: (elapsed - deadline) / HOUR_MS,
        };
    }
    let hours_left = (deadline - elapsed + HOUR_MS - 1) / HOUR_MS;
    if elapsed >= WARN_HOURS * HOUR_MS {
        Clock::Warning { hours_left }
    } else {
        Clock::Running { hours_left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_warns_at_48_hours_and_is_overdue_at_72() {
        let found = 1_000 * HOUR_MS;
        assert_eq!(
            clock(found, found, None, None),
            Clock::Running { hours_left: 72 }
        );
        assert_eq!(
            clock(found, found + 47 * HOUR_MS + 59 * 60_000, None, None),
            Clock::Running { hours_left: 25 }
        );
        assert_eq!(
            clock(found, found + 48 * HOUR_MS, None, None),
            Clock::Warning { hours_left: 24 }
        );
        assert_eq!(
            clock(found, found + 72 * HOUR_MS - 1, None, None),
            Clock::Warning { hours_left: 1 }
        );
        assert_eq!(
            clock(found, found + 72 * HOUR_MS, None, None),
            Clock::Overdue { hours_over: 0 }
        );
        assert_eq!(
            clock(found, found + 80 * HOUR_MS, Some(true), None),
            Clock::Overdue { hours_over: 8 }
        );
        // Reported, or decided not reportable: the clock stops.
        assert_eq!(
            clock(
                found,
                found + 100 * HOUR_MS,
                Some(true),
                Some(found + 70 * HOUR_MS)
            ),
            Clock::Reported { in_time: true }
        );
        assert_eq!(
            clock(
                found,
                found + 100 * HOUR_MS,
                Some(true),
                Some(found + 73 * HOUR_MS)
            ),
            Clock::Reported { in_time: false }
        );
        assert_eq!(
            clock(found, found + 100 * HOUR_MS, Some(false), None),
            Clock::NotReportable
        );
        // A discovery "in the future" (a clock a little fast) is a full 72 hours.
        assert_eq!(
            clock(found, found - HOUR_MS, None, None),
            Clock::Running { hours_left: 72 }
        );
    }
}
