//! The governors' report: counts of concerns by category, month and key stage, outcomes and
//! referrals, set against the period before, with every count under five (and above none)
//! shown as "fewer than 5" so that no child can be picked out; and its charts as SVG made here
//! (no browser, no script).

use std::collections::BTreeMap;

use crate::{suppress, Agency, SMALL_NUMBER};

/// A key stage, from a stored year group (`N`, `R`, `1`…`14`).
pub fn key_stage(year: Option<&str>) -> &'static str {
    match year {
        Some("N" | "R") => "EYFS",
        Some(y) => match y.parse::<u8>() {
            Ok(1..=2) => "KS1",
            Ok(3..=6) => "KS2",
            Ok(7..=9) => "KS3",
            Ok(10..=11) => "KS4",
            Ok(12..=14) => "KS5",
            _ => "unknown",
        },
        None => "unknown",
    }
}

/// The key stages in the order reports list them.
pub const KEY_STAGES: &[&str] = &["EYFS", "KS1", "KS2", "KS3", "KS4", "KS5", "unknown"];

/// One concern as the report counts it (nothing that names anyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    /// Its category's name.
    pub category: String,
    /// The month it happened (`YYYY-MM`).
    pub month: String,
    /// The key stage of the child it is about.
    pub key_stage: &'static str,
    /// Whether it is closed.
    pub closed: bool,
    /// Where it was referred.
    pub referred: Vec<Agency>,
    /// In the period before this one (for the trend), not this one.
    pub before: bool,
}

/// A count as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// The real count: used for ordering and charts' scale, never shown when suppressed.
    n: u64,
}

impl Cell {
    /// The count as shown: "fewer than 5" for 1 to 4.
    pub fn shown(&self) -> String {
        suppress(self.n)
    }

    /// The count itself (for a chart that draws withheld counts as words, not bars).
    pub fn count(&self) -> u64 {
        self.n
    }

    /// Whether the count is withheld (from 1 to 4).
    pub fn suppressed(&self) -> bool {
        (1..SMALL_NUMBER).contains(&self.n)
    }

    /// The count for a chart: withheld counts are drawn as the threshold, marked as withheld.
    pub fn chart_value(&self) -> u64 {
        if self.suppressed() {
            SMALL_NUMBER
        } else {
            self.n
        }
    }
}

/// A row of a table: its label, this period's count, the period before's, and the trend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What is counted.
    pub label: String,
    /// This period.
    pub now: Cell,
    /// The period before.
    pub before: Cell,
}

impl Row {
    /// Up, down or the same, in words; withheld when either count is.
    pub fn trend(&self) -> &'static str {
        if self.now.suppressed() || self.before.suppressed() {
            "—"
        } else if self.now.n > self.before.n {
            "up"
        } else if self.now.n < self.before.n {
            "down"
        } else {
            "the same"
        }
    }
}

/// The report's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// All concerns.
    pub total: Row,
    /// By category.
    pub by_category: Vec<Row>,
    /// By key stage.
    pub by_key_stage: Vec<Row>,
    /// By month (this period only).
    pub by_month: Vec<Row>,
    /// Open and closed (this period).
    pub outcomes: Vec<Row>,
    /// Referrals by agency.
    pub referrals: Vec<Row>,
}

fn rows(
    now: &BTreeMap<String, u64>,
    before: &BTreeMap<String, u64>,
    order: Option<&[&str]>,
) -> Vec<Row> {
    let mut labels: Vec<String> = now.keys().chain(before.keys()).cloned().collect();
    labels.sort();
    labels.dedup();
    if let Some(order) = order {
        labels.sort_by_key(|l| order.iter().position(|o| o == l).unwrap_or(usize::MAX));
    }
    labels
        .into_iter()
        .map(|label| Row {
            now: Cell {
                n: now.get(&label).copied().unwrap_or(0),
            },
            before: Cell {
                n: before.get(&label).copied().unwrap_or(0),
            },
            label,
        })
        .collect()
}

/// Builds the report from the concerns counted.
pub fn build(concerns: &[Counted]) -> Report {
    let mut cat = (BTreeMap::new(), BTreeMap::new());
    let mut ks = (BTreeMap::new(), BTreeMap::new());
    let mut month = BTreeMap::new();
    let mut outcome = BTreeMap::new();
    let mut refer = (BTreeMap::new(), BTreeMap::new());
    let (mut total_now, mut total_before) = (0, 0);
    for c in concerns {
        let pick = |pair: &mut (BTreeMap<String, u64>, BTreeMap<String, u64>), key: &str| {
            let m = if c.before { &mut pair.1 } else { &mut pair.0 };
            *m.entry(key.to_owned()).or_insert(0) += 1;
        };
        pick(&mut cat, &c.category);
        pick(&mut ks, c.key_stage);
        for a in &c.referred {
            pick(&mut refer, a.label());
        }
        if c.before {
            total_before += 1;
        } else {
            total_now += 1;
            *month.entry(c.month.clone()).or_insert(0) += 1;
            *outcome
                .entry(if c.closed { "closed" } else { "open" }.to_owned())
                .or_insert(0) += 1;
        }
    }
    let mut by_category = rows(&cat.0, &cat.1, None);
    by_category.sort_by(|a, b| b.now.n.cmp(&a.now.n).then(a.label.cmp(&b.label)));
    Report {
        total: Row {
            label: "All concerns".into(),
            now: Cell { n: total_now },
            before: Cell { n: total_before },
        },
        by_category,
        by_key_stage: rows(&ks.0, &ks.1, Some(KEY_STAGES)),
        by_month: rows(&month, &BTreeMap::new(), None),
        outcomes: rows(&outcome, &BTreeMap::new(), Some(&["open", "closed"])),
        referrals: rows(&refer.0, &refer.1, None),
    }
}

/// At most `n` characters, with an ellipsis when cut.
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A horizontal bar chart of a table's counts for this period, as SVG (presentation
/// attributes only: no style, no script). Withheld counts are drawn hatched at the threshold
/// and labelled "fewer than 5".
pub fn svg_bars(title: &str, rows: &[Row]) -> String {
    const LABEL_W: u64 = 300;
    const BAR_W: u64 = 300;
    const ROW_H: u64 = 26;
    let height = 34 + ROW_H * rows.len() as u64;
    let max = rows
        .iter()
        .map(|r| r.now.chart_value())
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {height}\" width=\"{w}\" role=\"img\" aria-label=\"{t}\">\
         <defs><pattern id=\"withheld\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">\
         <rect width=\"3\" height=\"6\" fill=\"#9aa5b5\"/></pattern></defs>\
         <text x=\"0\" y=\"18\" font-size=\"15\" font-weight=\"600\" fill=\"#1d2330\">{t}</text>",
        w = LABEL_W + BAR_W + 120,
        t = escape(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 30 + ROW_H * i as u64;
        let w = (r.now.chart_value() * BAR_W / max).max(1);
        let fill = if r.now.suppressed() {
            "url(#withheld)"
        } else {
            "#1f5fae"
        };
        out.push_str(&format!(
            "<text x=\"{lx}\" y=\"{ty}\" font-size=\"13\" text-anchor=\"end\" fill=\"#1d2330\">{label}</text>\
             <rect x=\"{bx}\" y=\"{y}\" width=\"{w}\" height=\"18\" fill=\"{fill}\"/>\
             <text x=\"{vx}\" y=\"{ty}\" font-size=\"13\" fill=\"#1d2330\">{value}</text>",
            lx = LABEL_W - 8,
            ty = y + 14,
            label = escape(&clip(&r.label, 40)),
            bx = LABEL_W,
            vx = LABEL_W + w + 6,
            value = escape(&r.now.shown()),
        ));
    }
    out.push_str("</svg>");
    out
}

/// A CSV field: quoted when it holds a comma, quote or line break; a leading formula
/// character (`=`, `+`, `-`, `@`) defused with `'` (and quoted) so a spreadsheet shows it as
/// text. Every CSV export Haven makes goes through this.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(['=', '+', '-', '@']) {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_owned()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report as CSV (table, label, this period, period before, trend), counts as shown.
pub fn csv(report: &Report) -> String {
    let mut out = String::from("table,label,this period,period before,trend\r\n");
    let field = csv_field;
    for (table, rows) in [
        ("total", std::slice::from_ref(&report.total)),
        ("category", &report.by_category[..]),
        ("key stage", &report.by_key_stage[..]),
        ("month", &report.by_month[..]),
        ("outcome", &report.outcomes[..]),
        ("referral", &report.referrals[..]),
    ] {
        for r in rows {
            out.push_str(&format!(
                "{},{},{},{},{}\r\n",
                field(table),
                field(&r.label),
                field(&r.now.shown()),
                field(&r.before.shown()),
                field(r.trend())
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(category: &str, ks: &'static str, before: bool) -> Counted {
        Counted {
            category: category.into(),
            month: "2026-11".into(),
            key_stage: ks,
            closed: false,
            referred: vec![],
            before,
        }
    }

    #[test]
    fn counts_under_five_never_show_and_trends_hide_with_them() {
        let mut all: Vec<Counted> = (0..7).map(|_| c("Cyberbullying", "KS2", false)).collect();
        all.extend((0..5).map(|_| c("Cyberbullying", "KS2", true)));
        all.extend((0..2).map(|_| c("Welfare", "KS1", false)));
        let r = build(&all);
        assert_eq!(r.total.now.shown(), "9");
        let cyber = &r.by_category[0];
        assert_eq!(
            (cyber.label.as_str(), cyber.now.shown(), cyber.trend()),
            ("Cyberbullying", "7".into(), "up")
        );
        let welfare = &r.by_category[1];
        assert_eq!(welfare.now.shown(), "fewer than 5");
        assert_eq!(
            welfare.trend(),
            "—",
            "a trend would give a small number away"
        );
        assert_eq!(
            r.by_key_stage
                .iter()
                .map(|k| k.label.as_str())
                .collect::<Vec<_>>(),
            ["KS1", "KS2"]
        );
        let csv = csv(&r);
        assert!(csv.contains("category,Welfare,fewer than 5,0,—"), "{csv}");
        assert!(
            !csv.contains(",2,"),
            "the real small count is nowhere: {csv}"
        );
        let svg = svg_bars("By category", &r.by_category);
        assert!(
            svg.contains("fewer than 5") && svg.contains("url(#withheld)") && !svg.contains(">2<"),
            "{svg}"
        );
        assert!(!svg.contains("style=") && !svg.contains("<script"));
    }

    #[test]
    fn key_stages_from_year_groups() {
        assert_eq!(key_stage(Some("R")), "EYFS");
        assert_eq!(key_stage(Some("2")), "KS1");
        assert_eq!(key_stage(Some("6")), "KS2");
        assert_eq!(key_stage(Some("11")), "KS4");
        assert_eq!(key_stage(None), "unknown");
    }

    #[test]
    fn a_label_cannot_break_out_of_the_svg_or_the_csv() {
        let r = build(&[
            c("<script>alert(1)</script>", "KS2", false),
            c("=HYPERLINK(\"x\")", "KS2", false),
        ]);
        let svg = svg_bars("t", &r.by_category);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(
            csv(&r).contains("\"'=HYPERLINK(\"\"x\"\")\""),
            "{}",
            csv(&r)
        );
    }
}
