//! The governors' report: concerns counted by category, key stage and month, outcomes and
//! referrals, against the period before, small numbers suppressed; with SVG charts made on the
//! server and a CSV of the same tables. Nothing in it names a child.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use haven_records::report::{self, Counted, Report};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::Layout;
use crate::web::{html, Denied, Signed};
use crate::Console;

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` (the period, `to` included); the last 90 days by default.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Period {
    from: String,
    to: String,
}

/// The days a report covers when none are chosen.
const DEFAULT_DAYS: i32 = 90;

struct Chosen {
    from: jiff::civil::Date,
    to: jiff::civil::Date,
    /// The period before, as long.
    before: jiff::civil::Date,
}

fn start_ms(d: jiff::civil::Date) -> Result<i64, Denied> {
    d.to_zoned(jiff::tz::TimeZone::system())
        .map(|z| z.timestamp().as_millisecond())
        .map_err(|_| Denied::Invalid(format!("{d} is not a day here.")))
}

fn chosen(p: &Period) -> Result<Chosen, Denied> {
    let today = haven_runtime::clock::local().date();
    let parse = |t: &str, what: &str| -> Result<Option<jiff::civil::Date>, Denied> {
        match t.trim() {
            "" => Ok(None),
            t => t.parse().map(Some).map_err(|_| {
                Denied::Invalid(format!(
                    "{what}: {:?} is not a date.",
                    t.chars().take(20).collect::<String>()
                ))
            }),
        }
    };
    let to = parse(&p.to, "To")?.unwrap_or(today);
    let from = match parse(&p.from, "From")? {
        Some(d) => d,
        None => to
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .map_err(|_| Denied::Invalid("That period is out of range.".into()))?,
    };
    if from > to {
        return Err(Denied::Invalid("The period ends before it begins.".into()));
    }
    let len = (to - from).get_days() + 1;
    let before = from
        .checked_sub(jiff::Span::new().days(len))
        .map_err(|_| Denied::Invalid("That period is out of range.".into()))?;
    Ok(Chosen { from, to, before })
}

async fn build(c: &Console, s: &Signed, p: &Chosen, via: &'static str) -> Result<Report, Denied> {
    let end = start_ms(
        p.to.tomorrow()
            .map_err(|_| Denied::Invalid("That period is out of range.".into()))?,
    )?;
    let from = start_ms(p.from)?;
    let rows = c
        .store
        .report_rows(
            haven_store::records::DEFAULT_SCHOOL,
            start_ms(p.before)?,
            end,
        )
        .await?;
    let counted: Vec<Counted> = rows
        .iter()
        .map(|r| Counted {
            category: haven_records::category::find(&r.category)
                .map_or(r.category.clone(), |k| k.name.to_owned()),
            month: jiff::Timestamp::from_millisecond(r.happened_at_ms)
                .map(|t| {
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%Y-%m")
                        .to_string()
                })
                .unwrap_or_default(),
            key_stage: report::key_stage(r.year.as_deref()),
            closed: r.closed,
            referred: r.referred.clone(),
            before: r.happened_at_ms < from,
        })
        .collect();
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadReport,
                Subject::Records,
            )
            .word("as", via)
            .count("records counted", counted.len() as i64),
        )
        .await?;
    Ok(report::build(&counted))
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportPage {
    l: Layout,
    from: String,
    to: String,
    before: String,
    r: Report,
    by_category: String,
    by_key_stage: String,
    by_month: String,
    /// (heading, element id, rows).
    tables: Vec<(&'static str, &'static str, Vec<report::Row>)>,
}

pub(super) async fn reports(
    State(c): State<Console>,
    s: Signed,
    Query(p): Query<Period>,
) -> Result<Response, Denied> {
    let period = chosen(&p)?;
    let r = build(&c, &s, &period, "page").await?;
    Ok(html(&ReportPage {
        l: c.layout("Report for governors", Some(&s)),
        from: period.from.to_string(),
        to: period.to.to_string(),
        before: period.before.to_string(),
        by_category: report::svg_bars("Concerns by category", &r.by_category),
        by_key_stage: report::svg_bars("Concerns by key stage", &r.by_key_stage),
        by_month: report::svg_bars("Concerns by month", &r.by_month),
        tables: vec![
            ("By category", "by-category", r.by_category.clone()),
            ("By key stage", "by-key-stage", r.by_key_stage.clone()),
            ("Open and closed", "outcomes", r.outcomes.clone()),
            (
                "Referrals and escalations",
                "referrals",
                r.referrals.clone(),
            ),
        ],
        r,
    }))
}

/// The same tables as CSV, as a download.
pub(super) async fn reports_csv(
    State(c): State<Console>,
    s: Signed,
    Query(p): Query<Period>,
) -> Result<Response, Denied> {
    let period = chosen(&p)?;
    let r = build(&c, &s, &period, "csv").await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"safeguarding-{}-to-{}.csv\"",
                    period.from, period.to
                ),
            ),
        ],
        report::csv(&r),
    )
        .into_response())
}

/// The same report as PDF (charts and tables, counts as shown), as a download.
pub(super) async fn reports_pdf(
    State(c): State<Console>,
    s: Signed,
    Query(p): Query<Period>,
) -> Result<Response, Denied> {
    let period = chosen(&p)?;
    let r = build(&c, &s, &period, "pdf").await?;
    let bytes = haven_records::printed::report(
        &r,
        &c.school(),
        &period.from.to_string(),
        &period.to.to_string(),
        &period.before.to_string(),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"safeguarding-{}-to-{}.pdf\"",
                    period.from, period.to
                ),
            ),
        ],
        bytes,
    )
        .into_response())
}
