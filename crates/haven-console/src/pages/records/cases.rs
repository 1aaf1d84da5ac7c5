//! The safeguarding team's records: the list with its clocks and search, a record (its
//! procedure, referrals, chronology entries, corrections, close, holder), break-glass reads,
//! told-in-person notes and the school's own categories.

use super::*;

struct RecordRow {
    id: i64,
    written: String,
    category: String,
    kind: &'static str,
    about: String,
    children: Vec<(i64, String, String)>,
    author: String,
    glass: bool,
}

struct ClockRow {
    record: i64,
    what: String,
    due: String,
    state: &'static str,
}

#[derive(Template)]
#[template(path = "records.html")]
struct RecordsPage {
    l: Layout,
    rows: Vec<RecordRow>,
    clocks: Vec<ClockRow>,
    glass: Vec<(String, String, String)>,
    message: String,
    closed: bool,
    q: String,
    category: String,
    categories: Vec<CategoryOption>,
    own: Vec<(String, String)>,
    dsl: bool,
    staff: Vec<(i64, String)>,
    pupils: Vec<(i64, String)>,
    now: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RecordsQuery {
    done: String,
    closed: String,
    q: String,
    category: String,
}

/// The records the reader may see, and the clocks running on them.
pub(in crate::pages) async fn records(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<RecordsQuery>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    let closed = q.closed == "yes";
    let searching = !q.q.trim().is_empty() || !q.category.is_empty();
    let all = if searching {
        c.store
            .search_records(
                SCHOOL,
                &rec::RecordQuery {
                    words: q.q.clone(),
                    category: Some(q.category.clone()).filter(|k| !k.is_empty()),
                    open_only: !closed,
                    limit: 200,
                },
            )
            .await?
    } else {
        c.store.records(SCHOOL, !closed, 1000).await?
    };
    let today = today();
    let mut rows = Vec::new();
    let mut clocks = Vec::new();
    for r in &all {
        let a = access(me, r.access_view());
        if matches!(a, Access::None | Access::Authored) {
            continue;
        }
        let glass = a == Access::BreakGlass;
        rows.push(RecordRow {
            id: r.id,
            written: when(r.written_at_ms),
            category: r.category_name().to_owned(),
            kind: r.kind.label(),
            // A record outside the reader's cases is listed without who it is about or who
            // wrote it: that is for those who open it, with a reason.
            about: if glass {
                "(not your case)".to_owned()
            } else {
                about(r)
            },
            children: if glass {
                Vec::new()
            } else {
                r.children
                    .iter()
                    .map(|ch| (ch.person, ch.name.clone(), ch.part.label().to_owned()))
                    .collect()
            },
            author: if glass {
                String::new()
            } else {
                r.author.1.clone()
            },
            glass,
        });
        if !r.open || a != Access::Full {
            continue;
        }
        if matches!(r.kind, RecordKind::Staff | RecordKind::Headteacher) {
            let told = c
                .store
                .referrals(SCHOOL, r.id)
                .await?
                .iter()
                .any(|f| f.agency == Agency::Lado);
            if !told {
                let due = clock::lado_due(date_of(r.written_at_ms), &[]);
                clocks.push(ClockRow {
                    record: r.id,
                    what: "Tell the LADO (within one working day of the allegation)".into(),
                    due: due.to_string(),
                    state: clock::state(today, due).as_str(),
                });
            }
        }
    }
    for f in c
        .store
        .follow_ups_due(
            SCHOOL,
            today
                .checked_add(jiff::Span::new().days(7))
                .unwrap_or(today),
        )
        .await?
    {
        let Some(r) = all.iter().find(|r| r.id == f.record) else {
            continue;
        };
        if access(me, r.access_view()) != Access::Full {
            continue;
        }
        let due: jiff::civil::Date = f
            .follow_up_on
            .as_deref()
            .and_then(|d| d.parse().ok())
            .unwrap_or(today);
        clocks.push(ClockRow {
            record: f.record,
            what: format!(
                "Follow up the referral to {} ({})",
                f.agency.label(),
                f.reference
            ),
            due: due.to_string(),
            state: clock::state(today, due).as_str(),
        });
    }
    if me.dsl || me.deputy || me.headteacher {
        for w in c.store.pending_write_ups(SCHOOL, None).await? {
            let due = clock::write_up_due(date_of(w.told_at_ms));
            clocks.push(ClockRow {
                record: 0,
                what: format!(
                    "{} to write up what they told you in person about {}",
                    w.staff.1, w.child.1
                ),
                due: due.to_string(),
                state: clock::state(today, due).as_str(),
            });
        }
    }
    if me.dsl {
        for l in c.store.leavers_with_records(SCHOOL).await? {
            if l.transfers.iter().any(|t| t.receipt.is_some()) {
                continue;
            }
            // School days as the policy's term calendar says (terms, closures); none given:
            // weekdays.
            let engine = c.engine.current();
            let policy = engine.policy();
            let due = clock::transfer_due_where(date_of(l.left_at_ms), |d| {
                !policy.has_terms() || policy.in_term(d)
            });
            clocks.push(ClockRow {
                record: 0,
                what: format!(
                    "Send {}'s file to their new school and get its receipt (five school days after leaving){}",
                    l.name,
                    if l.transfers.is_empty() { "" } else { ": sent, awaiting the receipt" }
                ),
                due: due.to_string(),
                state: clock::state(today, due).as_str(),
            });
        }
    }
    clocks.sort_by(|a, b| a.due.cmp(&b.due));
    let glass = if me.dsl {
        c.store
            .audit_of_kind(AuditKind::BreakGlass, 50)
            .await?
            .into_iter()
            .map(|e| (when(e.at_ms), e.actor, e.subject))
            .collect()
    } else {
        Vec::new()
    };
    audit(&c, &s, AuditKind::ReadRecords, Subject::Records).await?;
    Ok(html(&RecordsPage {
        l: c.layout("Safeguarding records", Some(&s)),
        rows,
        clocks,
        glass,
        message: q.done,
        closed,
        categories: categories(&c).await?,
        own: c.store.school_categories(SCHOOL).await?,
        dsl: me.dsl,
        staff: if me.dsl || me.deputy {
            people_of(&c, "staff").await?
        } else {
            Vec::new()
        },
        pupils: if me.dsl || me.deputy {
            people_of(&c, "pupil").await?
        } else {
            Vec::new()
        },
        now: now_local_input(),
        q: q.q,
        category: q.category,
    }))
}

struct StepRow {
    id: &'static str,
    text: &'static str,
    tick: Option<String>,
}

struct ReferralRow {
    id: i64,
    outcome: Option<String>,
    made: String,
    agency: &'static str,
    by: String,
    contact: String,
    reference: String,
    follow_up: String,
}

#[derive(Template)]
#[template(path = "record.html")]
struct RecordPage {
    l: Layout,
    r: rec::Record,
    category_name: String,
    happened: String,
    written: String,
    told: Option<String>,
    steps: Vec<StepRow>,
    image_warning: bool,
    debrief: bool,
    referrals: Vec<ReferralRow>,
    entries: Vec<EntryRow>,
    agencies: &'static [Agency],
    kinds: Vec<EntryKind>,
    now: String,
    message: String,
    may_share: bool,
    evidence: Vec<haven_store::evidence::Evidence>,
    may_view_nude: bool,
    /// Whether the reader may add to it (not a break-glass reader).
    may_write: bool,
    /// Who may hold the case (for the DSL's form), and who holds it.
    holders: Vec<(i64, String)>,
    holder: String,
    /// The body map with the marked regions, and their names ("" when none).
    body_svg: String,
    body_list: String,
}

async fn render_record(
    c: &Console,
    s: &Signed,
    r: rec::Record,
    message: String,
) -> Result<Response, Denied> {
    let ticks = c.store.record_steps(SCHOOL, r.id).await?;
    let steps = category::steps_for(&r.category)
        .iter()
        .map(|st| StepRow {
            id: st.id,
            text: st.text,
            tick: ticks
                .iter()
                .find(|t| t.step == st.id)
                .map(|t| match &t.skipped {
                    None => format!("Done by {} {}", t.by, when(t.at_ms)),
                    Some(why) => format!("Skipped by {} {}: {why}", t.by, when(t.at_ms)),
                }),
        })
        .collect();
    let referrals = c
        .store
        .referrals(SCHOOL, r.id)
        .await?
        .into_iter()
        .map(|f| ReferralRow {
            id: f.id,
            outcome: f.outcome,
            made: when(f.made_at_ms),
            agency: f.agency.label(),
            by: f.by,
            contact: f.contact,
            reference: f.reference,
            follow_up: f.follow_up_on.unwrap_or_default(),
        })
        .collect();
    let entries = entry_rows(c.store.record_entries(SCHOOL, r.id).await?, &r.children);
    let found = category::find(&r.category);
    let me = reader(s);
    Ok(html(&RecordPage {
        l: c.layout(&format!("Record {}", r.id), Some(s)),
        category_name: r.category_name().to_owned(),
        happened: when(r.happened_at_ms),
        written: when(r.written_at_ms),
        told: r.told_dsl_at_ms.map(when),
        steps,
        image_warning: found.is_some_and(|k| k.image_warning),
        debrief: found.is_some_and(|k| k.debrief),
        referrals,
        entries,
        agencies: Agency::ALL,
        kinds: EntryKind::ALL
            .iter()
            .copied()
            .filter(|k| {
                !matches!(
                    k,
                    EntryKind::Concern
                        | EntryKind::Checklist
                        | EntryKind::Outcome
                        | EntryKind::Referral
                )
            })
            .collect(),
        now: now_local_input(),
        message,
        evidence: c.store.evidence_of(SCHOOL, r.id).await?,
        may_view_nude: (me.dsl || me.deputy) && access(me, r.access_view()) == Access::Full,
        may_write: access(me, r.access_view()) == Access::Full,
        body_svg: {
            let marked = haven_records::body::parse(&r.body_map).unwrap_or_default();
            if marked.is_empty() {
                String::new()
            } else {
                haven_records::body::svg(&marked)
            }
        },
        body_list: haven_records::body::parse(&r.body_map)
            .unwrap_or_default()
            .iter()
            .map(|m| m.label)
            .collect::<Vec<_>>()
            .join(", "),
        holders: if me.dsl && r.kind == RecordKind::Pupil {
            c.store.staff_with_role("deputy-dsl").await?
        } else {
            Vec::new()
        },
        holder: match r.holder {
            Some(h) => c
                .store
                .person(h)
                .await?
                .map(|p| format!("{} {}", p.first_name, p.last_name))
                .unwrap_or_default(),
            None => String::new(),
        },
        may_share: r.open
            && !r.shared_with_dsl
            && ((r.kind == RecordKind::Staff && me.headteacher)
                || (r.kind == RecordKind::Headteacher && me.chair)),
        r,
    }))
}

/// The record, when the reader may see all of it; a page asking for the reason when they must
/// break the glass; "not found" otherwise (not even that it exists).
pub(in crate::pages) async fn record(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    match access(reader(&s), r.access_view()) {
        Access::Full => {
            audit(&c, &s, AuditKind::ReadRecord, Subject::Record(id)).await?;
            render_record(&c, &s, r, flash.done).await
        }
        Access::BreakGlass => Ok(html(&BreakGlassPage {
            l: c.layout("Not one of your cases", Some(&s)),
            action: format!("/records/{id}/open"),
            what: format!("record {id}"),
        })),
        Access::Authored => Ok(Redirect::to(&format!("/concerns/mine/{id}")).into_response()),
        Access::None => Err(Denied::NotFound),
    }
}

/// Opening a record outside one's cases: the typed reason is required, the read audited as a
/// break-glass read and listed on the DSL's records page. (The reason itself is not kept in the
/// audit log, which holds no text; its length is.)
pub(in crate::pages) async fn record_open(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<ReasonForm>,
) -> Result<Response, Denied> {
    let r = c.store.record(SCHOOL, id).await?.ok_or(Denied::NotFound)?;
    match access(reader(&s), r.access_view()) {
        Access::Full => {}
        Access::BreakGlass => {
            reason_given(&f.reason)?;
            c.store
                .break_glass(SCHOOL, Some(id), None, &f.reason, &actor(&s))
                .await?;
        }
        Access::Authored | Access::None => return Err(Denied::NotFound),
    }
    audit(&c, &s, AuditKind::ReadRecord, Subject::Record(id)).await?;
    render_record(&c, &s, r, String::new()).await
}

#[derive(Deserialize)]
pub struct StepForm {
    csrf: String,
    step: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

pub(in crate::pages) async fn record_step(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<StepForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let tick = if crate::web::decision(&f.decision, "done", "skip")? {
        Tick::Done
    } else {
        Tick::Skipped(f.reason)
    };
    c.store
        .tick_step(SCHOOL, id, &f.step, &tick, &actor(&s))
        .await?;
    Ok(back(id, "Step recorded."))
}

#[derive(Deserialize)]
pub struct ReferralForm {
    csrf: String,
    agency: String,
    made: String,
    contact: String,
    #[serde(default)]
    reference: String,
    #[serde(default)]
    follow_up: String,
}

pub(in crate::pages) async fn record_referral(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<ReferralForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let agency: Agency = f
        .agency
        .parse()
        .map_err(|e: haven_records::WordError| Denied::Invalid(e.to_string()))?;
    let follow_up_on =
        match f.follow_up.trim() {
            "" => None,
            d => Some(d.parse().map_err(|_| {
                Denied::Invalid(format!("Follow up on: {:?} is not a date.", clip(d)))
            })?),
        };
    c.store
        .add_referral(
            &NewReferral {
                school: SCHOOL,
                record: id,
                agency,
                made_at_ms: local_ms("When the referral was made", &f.made)?,
                contact: f.contact,
                reference: f.reference,
                follow_up_on,
            },
            &actor(&s),
        )
        .await?;
    Ok(back(
        id,
        &format!("Referral to {} recorded.", agency.label()),
    ))
}

#[derive(Deserialize)]
pub struct OutcomeForm {
    csrf: String,
    outcome: String,
}

pub(in crate::pages) async fn referral_outcome(
    State(c): State<Console>,
    s: Signed,
    Path((id, referral)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<OutcomeForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    if !c
        .store
        .referrals(SCHOOL, id)
        .await?
        .iter()
        .any(|r| r.id == referral)
    {
        return Err(Denied::NotFound);
    }
    c.store
        .record_referral_outcome(SCHOOL, referral, &f.outcome, &actor(&s))
        .await?;
    Ok(back(id, "The referral's outcome is recorded."))
}

#[derive(Deserialize)]
pub struct AssignForm {
    csrf: String,
    #[serde(default)]
    holder: String,
}

/// The DSL gives a pupil's case to a deputy (or takes it back).
pub(in crate::pages) async fn record_assign(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<AssignForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    if !reader(&s).dsl {
        return Err(Denied::Invalid(
            "Only the DSL gives a case to someone.".into(),
        ));
    }
    let holder = match f.holder.trim() {
        "" => None,
        h => {
            let h: i64 = h
                .parse()
                .map_err(|_| Denied::Invalid("Choose who holds the case.".into()))?;
            if !c
                .store
                .roles(h)
                .await?
                .iter()
                .any(|r| matches!(r, Role::DeputyDsl | Role::Dsl | Role::Headteacher))
            {
                return Err(Denied::Invalid(
                    "A case goes to a deputy DSL, the DSL or the headteacher.".into(),
                ));
            }
            Some(h)
        }
    };
    c.store.assign_case(SCHOOL, id, holder, &actor(&s)).await?;
    Ok(back(id, "The case's holder is changed."))
}

#[derive(Deserialize)]
pub struct EntryForm {
    csrf: String,
    kind: String,
    at: String,
    #[serde(default)]
    child: String,
    text: String,
    #[serde(default)]
    rationale: String,
}

pub(in crate::pages) async fn record_entry(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<EntryForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let kind: EntryKind = f
        .kind
        .parse()
        .map_err(|e: haven_records::WordError| Denied::Invalid(e.to_string()))?;
    let person = match f.child.trim() {
        "" => None,
        p => Some(
            p.parse()
                .map_err(|_| Denied::Invalid(format!("{:?} is not a child.", clip(p))))?,
        ),
    };
    c.store
        .add_entry(
            &NewEntry {
                school: SCHOOL,
                record: id,
                person,
                at_ms: local_ms("When it happened", &f.at)?,
                kind,
                text: f.text,
                rationale: Some(f.rationale),
            },
            &actor(&s),
        )
        .await?;
    Ok(back(id, "Entry added to the chronology."))
}

#[derive(Deserialize)]
pub struct CorrectForm {
    csrf: String,
    text: String,
    reason: String,
}

pub(in crate::pages) async fn record_correct(
    State(c): State<Console>,
    s: Signed,
    Path((id, entry)): Path<(i64, i64)>,
    SessionForm(f): SessionForm<CorrectForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    let belongs = c
        .store
        .record_entries(SCHOOL, id)
        .await?
        .iter()
        .any(|e| e.id == entry);
    if !belongs {
        return Err(Denied::NotFound);
    }
    c.store
        .correct_entry(SCHOOL, entry, &f.text, &f.reason, &actor(&s))
        .await?;
    Ok(back(
        id,
        &format!("Entry {entry} corrected; the original is kept."),
    ))
}

#[derive(Deserialize)]
pub struct CloseForm {
    csrf: String,
    outcome: String,
    #[serde(default)]
    debrief: String,
}

pub(in crate::pages) async fn record_close(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<CloseForm>,
) -> Result<Response, Denied> {
    writable(&c, &s, id).await?;
    c.store
        .close_record(SCHOOL, id, &f.outcome, &f.debrief, &actor(&s))
        .await?;
    Ok(back(id, "The case is closed."))
}

/// The headteacher (or chair) shares an allegation with the DSL.
pub(in crate::pages) async fn record_share(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(_f): SessionForm<crate::pages::CsrfForm>,
) -> Result<Response, Denied> {
    let r = writable(&c, &s, id).await?;
    let me = reader(&s);
    let owner = (r.kind == RecordKind::Staff && me.headteacher)
        || (r.kind == RecordKind::Headteacher && me.chair);
    if !owner {
        return Err(Denied::Invalid(
            "Only the headteacher shares an allegation about staff, and only the chair one about the headteacher."
                .into(),
        ));
    }
    c.store.share_with_dsl(SCHOOL, id, &actor(&s)).await?;
    Ok(back(id, "Shared with the DSL."))
}

#[derive(Deserialize)]
pub struct ToldForm {
    csrf: String,
    staff: String,
    child: String,
    told_at: String,
}

/// The DSL (or a deputy) notes a concern told in person: its teller must write it up today.
pub(in crate::pages) async fn told_in_person(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<ToldForm>,
) -> Result<Response, Denied> {
    let me = reader(&s);
    if !(me.dsl || me.deputy) {
        return Err(Denied::Invalid(
            "The DSL or a deputy notes what they were told.".into(),
        ));
    }
    let id = |t: &str, what: &str| {
        t.trim()
            .parse::<i64>()
            .map_err(|_| Denied::Invalid(format!("Choose the {what}.")))
    };
    c.store
        .note_told_in_person(
            SCHOOL,
            id(&f.staff, "member of staff")?,
            id(&f.child, "child")?,
            local_ms("When they told you", &f.told_at)?,
            &actor(&s),
        )
        .await?;
    Ok(Redirect::to(&format!(
        "/records?done={}",
        url_encode("Noted: they will see it on My concerns, to write up by the end of the day.")
    ))
    .into_response())
}

#[derive(Deserialize)]
pub struct CategoryForm {
    csrf: String,
    name: String,
}

/// The DSL adds a category of the school's own (it follows the general procedure).
pub(in crate::pages) async fn add_category(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<CategoryForm>,
) -> Result<Response, Denied> {
    if !reader(&s).dsl {
        return Err(Denied::Invalid(
            "Only the DSL adds the school's own categories.".into(),
        ));
    }
    let id = c
        .store
        .add_school_category(SCHOOL, &f.name, &actor(&s))
        .await?;
    Ok(Redirect::to(&format!(
        "/records?done={}",
        url_encode(&format!(
            "The category {:?} is added ({id}).",
            f.name.trim()
        ))
    ))
    .into_response())
}

crate::web::csrf_field!(
    StepForm,
    ReferralForm,
    OutcomeForm,
    AssignForm,
    EntryForm,
    CorrectForm,
    CloseForm,
    ToldForm,
    CategoryForm,
);
