//! A child's chronology, the combined view with siblings, and the transfer of a leaver's file.

use super::*;

#[derive(Template)]
#[template(path = "chronology.html")]
struct ChronologyPage {
    l: Layout,
    name: String,
    year: String,
    class: String,
    person: i64,
    records: Vec<(i64, String, String, String, bool)>,
    entries: Vec<EntryRow>,
    siblings: usize,
    /// (id, to, how, sent, receipt, sealed).
    transfers: Vec<(i64, String, String, String, Option<String>, bool)>,
    now: String,
}

/// What the chronology holds that the reader may see in full, or why not.
/// The reader's access to a child's chronology, with the child's records it was judged on
/// (read once, for the page too).
pub(super) async fn chronology_access(
    c: &Console,
    s: &Signed,
    person: i64,
) -> Result<(Access, Vec<rec::Record>), Denied> {
    let me = reader(s);
    let records = c.store.records_of_child(SCHOOL, person).await?;
    if !(me.dsl || me.deputy || me.headteacher) {
        return Ok((Access::None, records));
    }
    let mut worst = Access::Full;
    for r in &records {
        match access(me, r.access_view()) {
            Access::Full => {}
            Access::BreakGlass => worst = Access::BreakGlass,
            Access::Authored | Access::None => return Ok((Access::None, records)),
        }
    }
    Ok((worst, records))
}

pub(in crate::pages) async fn chronology(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    match chronology_access(&c, &s, person).await? {
        (Access::Full, records) => render_chronology(&c, &s, person, records).await,
        (Access::BreakGlass, _) => Ok(html(&BreakGlassPage {
            l: c.layout("Not one of your cases", Some(&s)),
            action: format!("/records/people/{person}/open"),
            what: "this child's chronology".into(),
        })),
        (Access::Authored | Access::None, _) => Err(Denied::NotFound),
    }
}

pub(in crate::pages) async fn chronology_open(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<ReasonForm>,
) -> Result<Response, Denied> {
    let (a, records) = chronology_access(&c, &s, person).await?;
    match a {
        Access::Full => {}
        Access::BreakGlass => {
            reason_given(&f.reason)?;
            c.store
                .break_glass(SCHOOL, None, Some(person), &f.reason, &actor(&s))
                .await?;
        }
        Access::Authored | Access::None => return Err(Denied::NotFound),
    }
    render_chronology(&c, &s, person, records).await
}

async fn render_chronology(
    c: &Console,
    s: &Signed,
    person: i64,
    records: Vec<rec::Record>,
) -> Result<Response, Denied> {
    let p = c.store.person(person).await?.ok_or(Denied::NotFound)?;
    if p.kind != "pupil" {
        return Err(Denied::NotFound);
    }
    let mut children: Vec<rec::NamedChild> = Vec::new();
    for r in &records {
        children.extend(r.children.iter().filter(|ch| ch.person == person).cloned());
    }
    let entries = entry_rows(c.store.chronology(SCHOOL, person).await?, &children);
    audit(c, s, AuditKind::ReadChronology, Subject::Person(person)).await?;
    Ok(html(&ChronologyPage {
        l: c.layout(
            &format!("Chronology: {} {}", p.first_name, p.last_name),
            Some(s),
        ),
        name: format!("{} {}", p.first_name, p.last_name),
        year: haven_store::people::year_label(p.year_group.as_deref()),
        class: p.class.unwrap_or_default(),
        person,
        records: records
            .iter()
            .map(|r| {
                let part = r
                    .children
                    .iter()
                    .find(|ch| ch.person == person)
                    .map_or("", |ch| ch.part.label());
                (
                    r.id,
                    when(r.happened_at_ms),
                    r.category_name().to_owned(),
                    part.to_owned(),
                    r.open,
                )
            })
            .collect(),
        entries,
        siblings: c.store.siblings(person).await?.len(),
        transfers: c
            .store
            .transfers_of(SCHOOL, person)
            .await?
            .into_iter()
            .map(|t| {
                (
                    t.id,
                    t.to_school,
                    t.method,
                    when(t.sent_at_ms),
                    t.receipt.map(|(at, from)| format!("{} ({from})", when(at))),
                    t.sealed,
                )
            })
            .collect(),
        now: now_local_input(),
    }))
}

#[derive(Template)]
#[template(path = "family.html")]
struct FamilyPage {
    l: Layout,
    children: Vec<(i64, String, String, String)>,
    /// (child or children, the entry).
    entries: Vec<(String, EntryRow)>,
}

/// A child's chronology combined with their siblings' (pupils who share a parent or carer), in
/// the order things happened, each entry saying whose it is; only when the reader may see every
/// one of them in full.
pub(in crate::pages) async fn family(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
) -> Result<Response, Denied> {
    if chronology_access(&c, &s, person).await?.0 == Access::None {
        return Err(Denied::NotFound);
    }
    let mut people = vec![person];
    people.extend(c.store.siblings(person).await?);
    let mut children = Vec::new();
    let mut rows: Vec<(i64, i64, Vec<String>, rec::Entry)> = Vec::new();
    for &p in &people {
        if chronology_access(&c, &s, p).await?.0 != Access::Full {
            return Err(Denied::Invalid(
                "The combined view shows only children whose records you may see in full: open each child's chronology first."
                    .into(),
            ));
        }
        let who = c.store.person(p).await?.ok_or(Denied::NotFound)?;
        let name = format!("{} {}", who.first_name, who.last_name);
        children.push((
            p,
            name.clone(),
            haven_store::people::year_label(who.year_group.as_deref()),
            who.class.unwrap_or_default(),
        ));
        for e in c.store.chronology(SCHOOL, p).await? {
            match rows.iter_mut().find(|r| r.3.id == e.id) {
                Some(r) => r.2.push(name.clone()),
                None => rows.push((e.at_ms, e.id, vec![name.clone()], e)),
            }
        }
    }
    rows.sort_by_key(|r| (r.0, r.1));
    for &p in &people {
        c.store
            .audit(
                &AuditEntry::new(
                    &s.who.username,
                    &s.address,
                    AuditKind::ReadChronology,
                    Subject::Person(p),
                )
                .word("view", "family"),
            )
            .await?;
    }
    let entries = rows
        .into_iter()
        .map(|(_, _, names, e)| {
            let row = entry_rows(vec![e], &[]).pop();
            (names.join(", "), row)
        })
        .filter_map(|(n, r)| r.map(|r| (n, r)))
        .collect();
    Ok(html(&FamilyPage {
        l: c.layout("Chronology with siblings", Some(&s)),
        children,
        entries,
    }))
}

#[derive(Deserialize)]
pub struct TransferForm {
    csrf: String,
    to_school: String,
    method: String,
    sent: String,
}

/// The DSL records that a leaver's file went to their new school.
pub(in crate::pages) async fn transfer(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<TransferForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid("The DSL sends a child's file on.".into()));
    }
    c.store
        .record_transfer(
            SCHOOL,
            person,
            &f.to_school,
            &f.method,
            local_ms("When it was sent", &f.sent)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!("/records/people/{person}")).into_response())
}

#[derive(Deserialize)]
pub struct ReceiptForm {
    csrf: String,
    from: String,
    at: String,
}

/// The DSL records the new school's receipt, which stops the transfer clock.
pub(in crate::pages) async fn receipt(
    State(c): State<Console>,
    s: Signed,
    Path((person, transfer)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<ReceiptForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid("The DSL records the receipt.".into()));
    }
    if !c
        .store
        .transfers_of(SCHOOL, person)
        .await?
        .iter()
        .any(|t| t.id == transfer)
    {
        return Err(Denied::NotFound);
    }
    c.store
        .confirm_receipt(
            SCHOOL,
            transfer,
            &f.from,
            local_ms("When it was received", &f.at)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!("/records/people/{person}")).into_response())
}

crate::web::csrf_field!(TransferForm, ReceiptForm,);
