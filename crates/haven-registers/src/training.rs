//! Staff training: each course's validity (induction once; the safeguarding update, KCSIE
//! Part 1 and online safety every year; DSL training and Prevent every two years), when a
//! completion expires, how a member of staff stands, and completions read from a CSV file
//! (the school's training provider's export, or a spreadsheet), each bad row named.

use jiff::civil::Date;

use crate::Course;

impl Course {
    /// Months a completion is good for; `None`: once is enough.
    pub fn valid_months(self) -> Option<i32> {
        match self {
            Course::Induction => None,
            Course::SafeguardingUpdate | Course::KcsiePart1 | Course::OnlineSafety => Some(12),
            Course::Dsl | Course::Prevent => Some(24),
        }
    }
}

/// When a completion of `course` on `completed` expires (`None`: it does not).
pub fn expires(course: Course, completed: Date) -> Option<Date> {
    let months = course.valid_months()?;
    completed.checked_add(jiff::Span::new().months(months)).ok()
}

/// Days before expiry a course shows as due soon.
pub const DUE_SOON_DAYS: i32 = 30;

/// How a member of staff stands for one course.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Standing {
    /// Never done.
    Missing,
    /// Expired.
    Overdue,
    /// Expires within [`DUE_SOON_DAYS`].
    DueSoon,
    /// Current.
    Current,
}

impl Standing {
    /// The word pages use (and style by).
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Missing => "missing",
            Standing::Overdue => "overdue",
            Standing::DueSoon => "due-soon",
            Standing::Current => "current",
        }
    }
}

/// The standing on `today` of the latest completion (if any) of a course.
pub fn standing(today: Date, course: Course, latest: Option<Date>) -> Standing {
    let Some(done) = latest else {
        return Standing::Missing;
    };
    match expires(course, done) {
        None => Standing::Current,
        Some(end) if today >= end => Standing::Overdue,
        Some(end) => {
            let soon = end
                .checked_sub(jiff::Span::new().days(DUE_SOON_DAYS))
                .unwrap_or(end);
            if today >= soon {
                Standing::DueSoon
            } else {
                Standing::Current
            }
        }
    }
}

/// The courses a role must keep: everyone the induction, the update, KCSIE Part 1, online
/// safety and Prevent; the DSL and deputies DSL training too.
pub fn required(dsl: bool) -> Vec<Course> {
    Course::ALL
        .iter()
        .copied()
        .filter(|c| dsl || *c != Course::Dsl)
        .collect()
}

/// One completion read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The line it came from.
    pub line: usize,
    /// Who: a staff id from the MIS, or an email address.
    pub who: String,
    /// The course.
    pub course: Course,
    /// When it was completed.
    pub completed: Date,
}

/// What was wrong with a row (or the file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RowError {
    /// The line (1 is the header).
    pub line: usize,
    /// What is wrong, for the person who made the file.
    pub problem: String,
}

/// A date as schools write them: `2026-09-03` or `03/09/2026` (day first).
pub fn parse_date(text: &str) -> Option<Date> {
    let t = text.trim();
    if let Ok(d) = t.parse::<Date>() {
        return Some(d);
    }
    let mut parts = t.split('/');
    let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// Reads completions from CSV with the columns `Staff` (staff id or email), `Course` (a course
/// word, e.g. `safeguarding-update`) and `Completed` (a date, not after `today`). Every row is
/// checked; any bad row makes the whole file an error listing every bad row (nothing is half
/// imported).
pub fn parse_csv(text: &[u8], today: Date) -> Result<Vec<Row>, Vec<RowError>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text));
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return Err(vec![RowError {
                line: 1,
                problem: format!("the header row cannot be read ({e})"),
            }])
        }
    };
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(who_col), Some(course_col), Some(date_col)) =
        (col("Staff"), col("Course"), col("Completed"))
    else {
        return Err(vec![RowError {
            line: 1,
            problem: "the header row must name the columns Staff, Course and Completed".into(),
        }]);
    };
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                errors.push(RowError {
                    line,
                    problem: format!("cannot be read ({e})"),
                });
                continue;
            }
        };
        let get = |c: usize| record.get(c).unwrap_or("").trim().to_owned();
        let who = get(who_col);
        let course_text = get(course_col);
        let date_text = get(date_col);
        if who.is_empty() {
            errors.push(RowError {
                line,
                problem: "no staff id or email".into(),
            });
            continue;
        }
        let course = match course_text.parse::<Course>() {
            Ok(c) => c,
            Err(e) => {
                errors.push(RowError {
                    line,
                    problem: e.to_string(),
                });
                continue;
            }
        };
        let Some(completed) = parse_date(&date_text) else {
            errors.push(RowError {
                line,
                problem: format!(
                    "{:?} is not a date (2026-09-03 or 03/09/2026)",
                    date_text.chars().take(30).collect::<String>()
                ),
            });
            continue;
        };
        if completed > today {
            errors.push(RowError {
                line,
                problem: format!("{completed} is in the future"),
            });
            continue;
        }
        rows.push(Row {
            line,
            who: who.chars().take(200).collect(),
            course,
            completed,
        });
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn courses_expire_after_their_months_and_show_as_due_a_month_before() {
        assert_eq!(expires(Course::Induction, date(2020, 9, 1)), None);
        assert_eq!(
            expires(Course::SafeguardingUpdate, date(2025, 9, 1)),
            Some(date(2026, 9, 1))
        );
        assert_eq!(
            expires(Course::Dsl, date(2025, 1, 31)),
            Some(date(2027, 1, 31))
        );
        let today = date(2026, 8, 10);
        let c = Course::SafeguardingUpdate;
        assert_eq!(standing(today, c, None), Standing::Missing);
        assert_eq!(
            standing(today, c, Some(date(2025, 9, 1))),
            Standing::DueSoon
        );
        assert_eq!(
            standing(today, c, Some(date(2025, 8, 10))),
            Standing::Overdue
        );
        assert_eq!(
            standing(today, c, Some(date(2026, 1, 5))),
            Standing::Current
        );
        assert_eq!(
            standing(today, Course::Induction, Some(date(2001, 1, 1))),
            Standing::Current
        );
        assert!(required(true).contains(&Course::Dsl));
        assert!(!required(false).contains(&Course::Dsl));
    }

    #[test]
    fn a_csv_of_completions_is_read_whole_or_every_bad_row_is_named() {
        let today = date(2026, 12, 2);
        let good = "\u{feff}Staff,Course,Completed\nT001,safeguarding-update,03/09/2026\nb.carter@demo-school.example,kcsie-part-1,2026-09-04\n";
        let rows = parse_csv(good.as_bytes(), today).expect("reads");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].completed, date(2026, 9, 3));
        assert_eq!(rows[1].course, Course::KcsiePart1);
        let bad = "Staff,Course,Completed\nT001,first aid,2026-09-03\n,online-safety,2026-09-03\nT002,dsl,31/02/2026\nT003,prevent,2027-01-01\nT004,prevent,2026-01-01\n";
        let errs = parse_csv(bad.as_bytes(), today).expect_err("bad rows");
        let lines: Vec<usize> = errs.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 4, 5], "{errs:?}");
        assert!(errs[0].problem.contains("\"first aid\""), "{}", errs[0]);
        assert!(errs[3].problem.contains("future"));
        let no_header = parse_csv(b"Name,When\nx,y\n", today).expect_err("no columns");
        assert!(no_header[0].problem.contains("Staff, Course and Completed"));
    }
}
