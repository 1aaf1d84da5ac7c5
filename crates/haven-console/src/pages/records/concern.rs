//! Logging a concern (any member of staff) and reading back what one wrote.

use super::*;

/// `?q=` searches pupils by name; `?c=ID:PART,…` are the children chosen so far.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    q: String,
    c: String,
    kind: String,
    write_up: String,
}

struct Chosen {
    id: i64,
    name: String,
    year: String,
    class: String,
    part: Part,
}

struct Found {
    id: i64,
    name: String,
    year: String,
    class: String,
    /// The `c` value with this child added in each part: (part label, link).
    add: Vec<(&'static str, String)>,
}

#[derive(Template)]
#[template(path = "concern_new.html")]
struct NewConcernPage {
    l: Layout,
    staff_allegation: bool,
    q: String,
    c: String,
    chosen: Vec<Chosen>,
    /// Without the child (for a "remove" link): the `c` value.
    remove: Vec<String>,
    found: Vec<Found>,
    searched: bool,
    categories: Vec<CategoryOption>,
    staff: Vec<(i64, String)>,
    now: String,
    write_up: String,
    /// The body map's regions (id, name), front then back, and the figure.
    regions: Vec<(&'static str, &'static str)>,
    figure: String,
}

/// The concern form: find the children (names, year and class only — nobody's history), give
/// each their part, then write what happened.
pub(in crate::pages) async fn new_concern(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<NewQuery>,
) -> Result<Response, Denied> {
    let children = parse_children(&q.c)?;
    let mut chosen = Vec::new();
    let mut remove = Vec::new();
    for (i, ch) in children.iter().enumerate() {
        let p = c.store.person(ch.person).await?.ok_or(Denied::NotFound)?;
        if p.kind != "pupil" {
            return Err(Denied::NotFound);
        }
        chosen.push(Chosen {
            id: p.id,
            name: format!("{} {}", p.first_name, p.last_name),
            year: haven_store::people::year_label(p.year_group.as_deref()),
            class: p.class.unwrap_or_default(),
            part: ch.part,
        });
        let rest: Vec<Child> = children
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, c)| *c)
            .collect();
        remove.push(children_value(&rest));
    }
    let mut found = Vec::new();
    let searched = !q.q.trim().is_empty();
    if searched {
        let people = c.store.find_people(q.q.trim(), 40).await?;
        let pupils: Vec<_> = people
            .into_iter()
            .filter(|p| p.kind == "pupil" && p.active)
            .filter(|p| !children.iter().any(|ch| ch.person == p.id))
            .take(20)
            .collect();
        c.store
            .audit(
                &AuditEntry::new(
                    &s.who.username,
                    &s.address,
                    AuditKind::SearchPeople,
                    Subject::Nothing,
                )
                .count("found", pupils.len() as i64)
                .word("via", "concern form"),
            )
            .await?;
        for p in pupils {
            let add = Part::ALL
                .iter()
                .map(|part| {
                    let mut with = children.clone();
                    with.push(Child {
                        person: p.id,
                        part: *part,
                    });
                    (part.label(), children_value(&with))
                })
                .collect();
            found.push(Found {
                id: p.id,
                name: format!("{} {}", p.first_name, p.last_name),
                year: haven_store::people::year_label(p.year_group.as_deref()),
                class: p.class.unwrap_or_default(),
                add,
            });
        }
    }
    let staff_allegation = q.kind == "staff";
    let staff = if staff_allegation {
        c.store
            .find_people("", 2000)
            .await?
            .into_iter()
            .filter(|p| p.kind == "staff" && p.active)
            .map(|p| (p.id, format!("{} {}", p.first_name, p.last_name)))
            .collect()
    } else {
        Vec::new()
    };
    Ok(html(&NewConcernPage {
        l: c.layout("Log a concern", Some(&s)),
        staff_allegation,
        q: q.q,
        c: q.c,
        chosen,
        remove,
        found,
        searched,
        categories: categories(&c).await?,
        staff,
        now: now_local_input(),
        write_up: q.write_up,
        regions: haven_records::body::REGIONS
            .iter()
            .map(|r| (r.id, r.label))
            .collect(),
        figure: haven_records::body::svg(&[]),
    }))
}

pub(in crate::pages) async fn log_concern(
    State(c): State<Console>,
    s: Signed,
    f: crate::web::SessionMultipart,
) -> Result<Response, Denied> {
    let happened = local_ms("When it happened", f.field("happened"))?;
    let told = if f.field("told_dsl") == "yes" {
        Some(if f.field("told_at").trim().is_empty() {
            i64::try_from(haven_runtime::clock::now_ms()).unwrap_or(i64::MAX)
        } else {
            local_ms("When you told the DSL", f.field("told_at"))?
        })
    } else {
        None
    };
    let possible_nude = f.field("possible_nude") == "yes";
    let mut evidence = Vec::new();
    for u in f.files.iter().filter(|u| u.field == "attachment") {
        evidence.push(seal_upload(&c, u, possible_nude).await?);
    }
    let (kind, staff, children) = if f.field("kind") == "staff" {
        let id: i64 = f.field("staff").trim().parse().map_err(|_| {
            Denied::Invalid("Choose the member of staff the allegation is about.".into())
        })?;
        let head = c.store.roles(id).await?.contains(&Role::Headteacher);
        let kind = if head {
            RecordKind::Headteacher
        } else {
            RecordKind::Staff
        };
        (kind, Some(id), Vec::new())
    } else {
        (
            RecordKind::Pupil,
            None,
            parse_children(f.field("children"))?,
        )
    };
    let id = c
        .store
        .log_concern(
            &NewConcern {
                school: SCHOOL,
                kind,
                category: f.field("category").trim().to_owned(),
                children,
                staff,
                happened_at_ms: happened,
                place: f.field("place").to_owned(),
                account: f.field("account").to_owned(),
                actions: f.field("actions").to_owned(),
                told_dsl_at_ms: told,
                capture: None,
                evidence,
                body_map: f
                    .fields
                    .iter()
                    .filter(|(k, v)| k.starts_with("region-") && v.as_str() == "yes")
                    .map(|(k, _)| k.trim_start_matches("region-").to_owned())
                    .collect(),
                write_up: match f.field("write_up").trim() {
                    "" => None,
                    w => Some(w.parse().map_err(|_| {
                        Denied::Invalid(format!("{:?} is not a write-up.", clip(w)))
                    })?),
                },
            },
            &actor(&s),
        )
        .await?;
    let done = match kind {
        RecordKind::Pupil => format!(
            "Concern {id} is logged and the safeguarding team can see it. If a child is in danger now, tell the DSL in person as well."
        ),
        RecordKind::Staff => format!("Allegation {id} is logged and has gone to the headteacher alone."),
        RecordKind::Headteacher => {
            format!("Allegation {id} is logged and has gone to the chair of governors alone.")
        }
    };
    Ok(Redirect::to(&format!("/concerns/mine?done={}", url_encode(&done))).into_response())
}

struct MineRow {
    id: i64,
    written: String,
    category: String,
    about: String,
}

#[derive(Template)]
#[template(path = "concerns_mine.html")]
struct MinePage {
    l: Layout,
    rows: Vec<MineRow>,
    message: String,
    /// (write-up id, child id, child's name, when told).
    to_write: Vec<(i64, i64, String, String)>,
}

pub(in crate::pages) async fn my_concerns(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let mine = c
        .store
        .records_written_by(SCHOOL, s.who.person_id, 500)
        .await?;
    audit(&c, &s, AuditKind::ReadOwnConcerns, Subject::Records).await?;
    let rows = mine
        .iter()
        .map(|r| MineRow {
            id: r.id,
            written: when(r.written_at_ms),
            category: r.category_name().to_owned(),
            about: about(r),
        })
        .collect();
    let to_write = c
        .store
        .pending_write_ups(SCHOOL, Some(s.who.person_id))
        .await?
        .into_iter()
        .map(|w| (w.id, w.child.0, w.child.1, when(w.told_at_ms)))
        .collect();
    Ok(html(&MinePage {
        l: c.layout("My concerns", Some(&s)),
        rows,
        message: flash.done,
        to_write,
    }))
}

#[derive(Template)]
#[template(path = "concern_mine.html")]
struct MineOne {
    l: Layout,
    r: rec::Record,
    happened: String,
    written: String,
    told: Option<String>,
}

/// One concern as its author wrote it: nothing of what followed.
pub(in crate::pages) async fn my_concern(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    if r.author.0 != s.who.person_id {
        return Err(Denied::NotFound);
    }
    audit(&c, &s, AuditKind::ReadOwnConcerns, Subject::Record(id)).await?;
    Ok(html(&MineOne {
        l: c.layout(&format!("Concern {id}"), Some(&s)),
        happened: when(r.happened_at_ms),
        written: when(r.written_at_ms),
        told: r.told_dsl_at_ms.map(when),
        r,
    }))
}
