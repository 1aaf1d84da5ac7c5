//! Records on paper: a child's chronology, the paper transfer pack (the whole file, ending in
//! a receipt page for the new school to sign and return) and the governors' report, as PDF
//! ([`crate::pdf`]). The caller gives the time zone times are shown in; nothing here reads a
//! clock.

use jiff::tz::TimeZone;

use crate::pdf::Doc;
use crate::report::{Report, Row};
use crate::transfer::{self, File};
use crate::{category, Agency, EntryKind, Part};

/// Printed on every page of a record.
pub const MARKING: &str = "OFFICIAL-SENSITIVE: safeguarding record. Keep locked away; do not copy.";

/// An RFC 3339 time as pages show it (`2026-11-30 09:15`), in `tz`.
fn shown(t: &str, tz: &TimeZone) -> String {
    transfer::millis(t)
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| t.to_owned())
}

fn part(p: &str) -> &str {
    p.parse::<Part>().map_or(p, |x| x.label())
}

fn kind(k: &str) -> &str {
    k.parse::<EntryKind>().map_or(k, |x| x.label())
}

fn agency(a: &str) -> &str {
    a.parse::<Agency>().map_or(a, |x| x.label())
}

fn category_name(r: &transfer::Record) -> &str {
    category::find(&r.category).map_or(r.category_name.as_str(), |c| c.name)
}

fn step_text(category: &str, step: &str) -> String {
    category::steps_for(category)
        .iter()
        .find(|s| s.id == step)
        .map_or_else(|| step.to_owned(), |s| s.text.to_owned())
}

/// A note when some of the file's text cannot be printed in the PDF's character set.
fn unprintable_note(doc: &mut Doc, f: &File) {
    let n = crate::pdf::unprintable(&String::from_utf8_lossy(&f.to_json()));
    if n > 0 {
        doc.note(&format!(
            "{n} character(s) in this file are outside the PDF's character set (Western European) and print as \"?\"; the console shows them as written."
        ));
    }
}

fn child_fields(doc: &mut Doc, f: &File) {
    doc.field(
        "Child",
        &format!("{} {}", f.child.first_name, f.child.last_name),
    );
    doc.field(
        "Date of birth",
        f.child.date_of_birth.as_deref().unwrap_or("not recorded"),
    );
    doc.field(
        "Year group",
        f.child.year_group.as_deref().unwrap_or("not recorded"),
    );
    doc.field("School", &f.from_school);
}

/// One chronology line as a table row: when, who, what (with its rationale, and what corrects
/// it or what it corrects).
/// With `accounts`, the line that logged a concern carries what it said (where, the account,
/// what was done at once), as a chronology on its own must.
fn entry_rows(f: &File, tz: &TimeZone, accounts: bool) -> Vec<(String, Vec<String>)> {
    let mut rows = Vec::new();
    for r in &f.records {
        let corrected: Vec<Option<usize>> = r.entries.iter().map(|e| e.corrects).collect();
        for (i, e) in r.entries.iter().enumerate() {
            let mut what = format!("{}: {}", kind(&e.kind), e.text);
            if accounts && e.kind == EntryKind::Concern.as_str() {
                if !r.place.is_empty() {
                    what.push_str(&format!("\nWhere: {}", r.place));
                }
                what.push_str(&format!("\nWhat happened: {}", r.account));
                if !r.actions.is_empty() {
                    what.push_str(&format!("\nDone at once: {}", r.actions));
                }
            }
            if let Some(why) = &e.rationale {
                what.push_str(&format!("\nRationale: {why}"));
            }
            if e.corrects.is_some() {
                what.push_str(&format!(
                    "\nCorrects an earlier entry: {}",
                    e.reason.as_deref().unwrap_or("")
                ));
            }
            if corrected.contains(&Some(i)) {
                what.push_str("\n[Superseded by a correction below; kept as written.]");
            }
            let mut when = shown(&e.at, tz);
            if e.written_at.get(..16) != e.at.get(..16) {
                when.push_str(&format!("\n(written {})", shown(&e.written_at, tz)));
            }
            rows.push((
                e.at.clone(),
                vec![when, e.author.clone(), category_name(r).to_owned(), what],
            ));
        }
    }
    // RFC 3339 UTC times of one format sort as text; a stable sort keeps each record's order.
    rows.sort_by(|a, b| {
        transfer::millis(&a.0)
            .unwrap_or(0)
            .cmp(&transfer::millis(&b.0).unwrap_or(0))
    });
    rows
}

/// A child's chronology, as the DSL prints it: who the child is, their records, then every
/// line in the order things happened (a back-dated line says when it was written; corrections
/// and what they correct both shown).
pub fn chronology(f: &File, printed_by: &str, printed_at: &str, tz: &TimeZone) -> Vec<u8> {
    let name = format!("{} {}", f.child.first_name, f.child.last_name);
    let mut doc = Doc::new(&format!("Chronology: {name}"));
    doc.footer_note(MARKING);
    doc.heading(&format!("Chronology: {name}"));
    child_fields(&mut doc, f);
    doc.field("Printed", &format!("{printed_at} by {printed_by}"));
    unprintable_note(&mut doc, f);
    doc.subheading("Records");
    let records: Vec<Vec<String>> = f
        .records
        .iter()
        .map(|r| {
            vec![
                shown(&r.happened_at, tz),
                category_name(r).to_owned(),
                part(&r.part).to_owned(),
                if r.closed {
                    format!("Closed: {}", r.outcome.as_deref().unwrap_or(""))
                } else {
                    "Open".to_owned()
                },
            ]
        })
        .collect();
    doc.table(
        &["Happened", "Category", "Part", "Status"],
        &[0.18, 0.3, 0.17, 0.35],
        &records,
    );
    doc.subheading("Chronology");
    let rows: Vec<Vec<String>> = entry_rows(f, tz, true).into_iter().map(|r| r.1).collect();
    if rows.is_empty() {
        doc.para("No entries.");
    } else {
        doc.table(
            &["When", "By", "Record", "What"],
            &[0.17, 0.17, 0.16, 0.5],
            &rows,
        );
    }
    doc.finish()
}

/// The paper transfer pack, for a new school without Haven: the whole file, record by record,
/// then a receipt page to sign and return. Attachments are listed by name and hash, not
/// printed (a possible nude image is never copied).
pub fn paper_pack(f: &File, to_school: &str, transfer: i64, tz: &TimeZone) -> Vec<u8> {
    let name = format!("{} {}", f.child.first_name, f.child.last_name);
    let mut doc = Doc::new(&format!("Child protection file: {name}"));
    doc.footer_note(MARKING);
    doc.heading(&format!("Child protection file: {name}"));
    child_fields(&mut doc, f);
    doc.field("Sent to", to_school);
    doc.field(
        "Transfer",
        &format!(
            "{transfer}, sent {} by {}",
            shown(&f.sent_at, tz),
            f.sent_by
        ),
    );
    unprintable_note(&mut doc, f);
    doc.note("Keeping children safe in education: a child protection file is transferred within five school days, separately from the main pupil file, and its receipt confirmed. Please sign and return the last page.");
    for (i, r) in f.records.iter().enumerate() {
        doc.page_break();
        doc.heading(&format!(
            "Record {} of {}: {}",
            i + 1,
            f.records.len(),
            category_name(r)
        ));
        doc.field("The child's part", part(&r.part));
        doc.field("Happened", &shown(&r.happened_at, tz));
        doc.field(
            "Written",
            &format!("{} by {}", shown(&r.written_at, tz), r.author),
        );
        doc.field("Where", &r.place);
        doc.field("What happened", &r.account);
        if !r.actions.is_empty() {
            doc.field("What was done at once", &r.actions);
        }
        doc.field(
            "Status",
            &if r.closed {
                format!("Closed. Outcome: {}", r.outcome.as_deref().unwrap_or(""))
            } else {
                "Open when the child left".to_owned()
            },
        );
        if let Some(d) = &r.debrief {
            doc.field("Debrief and lessons learnt", d);
        }
        if !r.body_map.is_empty() {
            let regions: Vec<&str> = r
                .body_map
                .iter()
                .map(|id| {
                    crate::body::parse(id)
                        .ok()
                        .and_then(|v| v.first().map(|x| x.label))
                        .unwrap_or(id.as_str())
                })
                .collect();
            doc.field("Body map", &regions.join(", "));
        }
        if !r.steps.is_empty() {
            doc.subheading("Procedure");
            let rows: Vec<Vec<String>> = r
                .steps
                .iter()
                .map(|s| {
                    vec![
                        step_text(&r.category, &s.step),
                        match &s.skipped {
                            Some(why) => format!("Skipped: {why}"),
                            None => "Done".to_owned(),
                        },
                        format!("{}\n{}", s.by, shown(&s.at, tz)),
                    ]
                })
                .collect();
            doc.table(&["Step", "", "By, when"], &[0.55, 0.2, 0.25], &rows);
        }
        if !r.referrals.is_empty() {
            doc.subheading("Referrals");
            let rows: Vec<Vec<String>> = r
                .referrals
                .iter()
                .map(|x| {
                    vec![
                        agency(&x.agency).to_owned(),
                        format!("{}\n{}", shown(&x.made_at, tz), x.by),
                        format!("{} {}", x.contact, x.reference).trim().to_owned(),
                        x.outcome.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            doc.table(
                &["To", "When, by", "Contact, reference", "Outcome"],
                &[0.22, 0.24, 0.27, 0.27],
                &rows,
            );
        }
        let one = File {
            records: vec![r.clone()],
            ..f.clone()
        };
        let rows: Vec<Vec<String>> = entry_rows(&one, tz, false)
            .into_iter()
            .map(|(_, mut row)| {
                row.remove(2);
                row
            })
            .collect();
        if !rows.is_empty() {
            doc.subheading("Chronology");
            doc.table(&["When", "By", "What"], &[0.2, 0.2, 0.6], &rows);
        }
        if !r.evidence.is_empty() {
            doc.subheading("Attachments (kept sealed at the sending school)");
            let rows: Vec<Vec<String>> = r
                .evidence
                .iter()
                .map(|a| {
                    vec![
                        if a.possible_nude {
                            "Possible nude image: never copied or printed".to_owned()
                        } else if a.withheld {
                            format!(
                                "{} ({}; not sent: the record names other children)",
                                a.name, a.media_type
                            )
                        } else {
                            format!("{} ({})", a.name, a.media_type)
                        },
                        format!("SHA-256 {}", a.sha256),
                    ]
                })
                .collect();
            doc.table(&["Attachment", "Fingerprint"], &[0.45, 0.55], &rows);
            doc.note("Ask the sending school's DSL for a copy of an attachment you need; its fingerprint shows the copy is the same file.");
        }
    }
    doc.page_break();
    doc.heading("Receipt");
    doc.para(&format!(
        "We have received the child protection file of {name} (born {}), transfer {transfer} from {}, {} record(s).",
        f.child.date_of_birth.as_deref().unwrap_or("date not recorded"),
        f.from_school,
        f.records.len()
    ));
    doc.para(&format!(
        "Please sign, date and return this page to the Designated Safeguarding Lead of {} within five school days.",
        f.from_school
    ));
    doc.space(12.0);
    doc.blank("Received by (name)");
    doc.blank("Role");
    doc.blank(&format!("School (expected: {to_school})"));
    doc.blank("Date received");
    doc.blank("Signature");
    doc.finish()
}

/// The governors' report as PDF: the same tables and charts as the page, counts as shown
/// (fewer than 5 withheld), no child named.
pub fn report(r: &Report, school: &str, from: &str, to: &str, before: &str) -> Vec<u8> {
    let mut doc = Doc::new(&format!(
        "Safeguarding report for governors, {from} to {to}"
    ));
    doc.footer_note("No child is named; counts from 1 to 4 are shown as \"fewer than 5\".");
    doc.heading("Safeguarding report for governors");
    doc.field("School", school);
    doc.field(
        "Period",
        &format!("{from} to {to}, compared with {before} onwards"),
    );
    doc.field(
        "Concerns",
        &format!(
            "{} (the period before: {})",
            r.total.now.shown(),
            r.total.before.shown()
        ),
    );
    let bars = |rows: &[Row]| -> Vec<(String, Option<u64>)> {
        rows.iter()
            .map(|x| {
                (
                    x.label.clone(),
                    (!x.now.suppressed()).then_some(x.now.count()),
                )
            })
            .collect()
    };
    let suppressed = format!("fewer than {}", crate::SMALL_NUMBER);
    doc.bars("Concerns by category", &bars(&r.by_category), &suppressed);
    doc.bars("Concerns by key stage", &bars(&r.by_key_stage), &suppressed);
    doc.bars("Concerns by month", &bars(&r.by_month), &suppressed);
    for (title, rows) in [
        ("By category", &r.by_category),
        ("By key stage", &r.by_key_stage),
        ("Open and closed", &r.outcomes),
        ("Referrals and escalations", &r.referrals),
    ] {
        doc.subheading(title);
        let t: Vec<Vec<String>> = rows
            .iter()
            .map(|x| {
                vec![
                    x.label.clone(),
                    x.now.shown(),
                    x.before.shown(),
                    x.trend().to_owned(),
                ]
            })
            .collect();
        if t.is_empty() {
            doc.para("None.");
        } else {
            doc.table(
                &["", "This period", "Period before", "Trend"],
                &[0.4, 0.2, 0.2, 0.2],
                &t,
            );
        }
    }
    doc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdf::tests::pages;
    use crate::transfer::{time, Attachment, Child, Entry, Record, Step, FORMAT};

    const DAY: i64 = 86_400_000;
    const T0: i64 = 1_780_000_000_000;

    fn entry(at: i64, written: i64, author: &str, kind: &str, text: &str) -> Entry {
        Entry {
            at: time(at),
            written_at: time(written),
            author: author.into(),
            kind: kind.into(),
            text: text.into(),
            rationale: None,
            corrects: None,
            reason: None,
        }
    }

    fn file() -> File {
        let mut late = entry(
            T0 - 9 * DAY,
            T0,
            "Rhiannon Vale",
            "note",
            "Earlier worry: tired and withdrawn in PE",
        );
        late.rationale = None;
        let mut fix = entry(
            T0 + DAY,
            T0 + DAY,
            "Rhiannon Vale",
            "parent-contact",
            "Rang Bryn's grandmother",
        );
        fix.corrects = Some(1);
        fix.reason = Some("Wrong relative named".into());
        let mut decision = entry(
            T0 + 2 * DAY,
            T0 + 2 * DAY,
            "Rhiannon Vale",
            "decision",
            "Not referring to social care",
        );
        decision.rationale = Some("Family engaged; support through the school nurse".into());
        File {
            format: FORMAT.into(),
            from_school: "Larchfield Primary".into(),
            sent_at: time(T0 + 30 * DAY),
            sent_by: "Rhiannon Vale".into(),
            child: Child {
                first_name: "Bryn".into(),
                last_name: "Castellan".into(),
                date_of_birth: Some("2015-06-01".into()),
                year_group: Some("6".into()),
            },
            records: vec![Record {
                category: "nudes".into(),
                category_name: "Sharing nudes".into(),
                part: "subject".into(),
                happened_at: time(T0),
                written_at: time(T0),
                author: "Owain Teague".into(),
                place: "Year 6 classroom".into(),
                account: "Bryn said an older boy asked for a photo.".into(),
                actions: "Did not look at the phone; told the DSL.".into(),
                closed: true,
                outcome: Some("Police advice followed; image removed".into()),
                debrief: Some("Talk to Year 6 about Report Remove".into()),
                body_map: vec![],
                entries: vec![
                    entry(
                        T0,
                        T0,
                        "Owain Teague",
                        "concern",
                        "Concern logged: Sharing nudes",
                    ),
                    entry(
                        T0 + DAY,
                        T0 + DAY,
                        "Rhiannon Vale",
                        "parent-contact",
                        "Rang Bryn's aunt",
                    ),
                    fix,
                    decision,
                    late,
                ],
                steps: vec![Step {
                    step: "not-viewed".into(),
                    by: "Rhiannon Vale".into(),
                    at: time(T0 + DAY),
                    skipped: None,
                }],
                referrals: vec![],
                evidence: vec![Attachment {
                    name: "IMG_4410.jpg".into(),
                    media_type: "image/jpeg".into(),
                    sha256: "ab".repeat(32),
                    possible_nude: true,
                    withheld: true,
                    content: String::new(),
                }],
            }],
        }
    }

    #[test]
    fn a_printed_chronology_reads_in_the_order_things_happened_with_corrections_kept() {
        let tz = TimeZone::UTC;
        let text = pages(&chronology(
            &file(),
            "Rhiannon Vale",
            "2026-12-02 10:00",
            &tz,
        ))
        .join("\n");
        assert!(text.contains("Chronology: Bryn Castellan"), "{text}");
        assert!(
            text.contains(MARKING.get(..40).unwrap_or_default()),
            "{text}"
        );
        let order = [
            "Earlier worry",
            "Concern logged",
            "Rang Bryn's aunt",
            "Rang Bryn's grandmother",
            "Not referring to social care",
        ];
        let at: Vec<usize> = order
            .iter()
            .map(|w| {
                text.find(w)
                    .unwrap_or_else(|| panic!("{w} missing from\n{text}"))
            })
            .collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "out of order: {at:?}\n{text}"
        );
        assert!(
            text.contains("(written "),
            "a back-dated line says when it was written"
        );
        assert!(text.contains("Superseded by a correction"), "{text}");
        assert!(text.contains("Corrects an earlier entry: Wrong relative named"));
        assert!(text.contains("Rationale: Family engaged"), "{text}");
        assert!(!text.contains("outside the PDF's character set"));
        let mut f = file();
        f.child.first_name = "Łucja".into();
        let text = pages(&chronology(&f, "R", "now", &tz)).join("\n");
        assert!(text.contains("Chronology: ?ucja Castellan"), "{text}");
        assert!(
            text.contains("1 character(s) in this file are outside"),
            "{text}"
        );
    }

    #[test]
    fn the_paper_pack_ends_with_a_receipt_and_never_names_a_possible_nude_image() {
        let p = pages(&paper_pack(&file(), "Ashgrove High", 7, &TimeZone::UTC));
        let all = p.join("\n");
        let last = p.last().expect("pages");
        assert!(
            last.contains("Receipt") && last.contains("Received by (name)"),
            "{last}"
        );
        assert!(last.contains("Signature") && last.contains("Larchfield Primary"));
        assert!(last.contains("School (expected: Ashgrove High)"));
        assert!(all.contains("Bryn said an older boy asked for a photo."));
        assert!(
            all.contains("Staff did not view"),
            "the procedure's step in words: {all}"
        );
        assert!(all.contains("Possible nude image: never copied or printed"));
        assert!(!all.contains("IMG_4410"), "the image's name is not printed");
        assert!(all.contains("Talk to Year 6 about Report Remove"));
    }

    #[test]
    fn the_governors_report_on_paper_withholds_small_numbers() {
        let counted: Vec<crate::report::Counted> = (0..9)
            .map(|i| crate::report::Counted {
                category: if i < 7 {
                    "Cyberbullying"
                } else {
                    "Radicalisation"
                }
                .into(),
                month: "2026-10".into(),
                key_stage: "KS2",
                closed: i % 2 == 0,
                referred: vec![],
                before: false,
            })
            .collect();
        let r = crate::report::build(&counted);
        let text = pages(&report(
            &r,
            "Larchfield Primary",
            "2026-09-01",
            "2026-11-30",
            "2026-06-03",
        ))
        .join("\n");
        assert!(text.contains("Cyberbullying 7"), "{text}");
        assert!(text.contains("Radicalisation fewer than 5"), "{text}");
        assert!(!text.contains("Radicalisation 2"), "{text}");
        assert!(text.contains("Safeguarding report for governors"));
    }
}
