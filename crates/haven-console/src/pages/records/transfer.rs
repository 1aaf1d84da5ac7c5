//! A child's file between schools, and records on paper: this school's transfer identity,
//! sealing a leaver's file to their new school's key, importing a file sent here (and its
//! signed receipt), recording a receipt that came back, the paper transfer pack for a school
//! without Haven, and a chronology printed to PDF. The DSL sends and receives files; printing
//! a chronology is for whoever may read it in full.

use super::*;

/// A PDF download, never cached (it is a safeguarding record).
fn pdf(bytes: Vec<u8>, name: &str) -> Response {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/pdf".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

/// A name fit for a download's file name: letters, digits and hyphens.
fn file_word(text: &str) -> String {
    let w: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let w = w.trim_matches('-').to_owned();
    if w.is_empty() {
        "child".into()
    } else {
        w
    }
}

fn dsl_only(s: &Signed, what: &str) -> Result<(), Denied> {
    if reader(s).dsl {
        Ok(())
    } else {
        Err(Denied::Invalid(format!("The DSL {what}.")))
    }
}

fn acting<'a>(c: &'a Console, s: &'a Signed, school: &'a str) -> haven_store::transfer::Acting<'a> {
    let _ = c;
    haven_store::transfer::Acting {
        actor: actor(s),
        name: &s.who.display_name,
        school,
    }
}

/// The child's chronology as PDF, for a reader who may see it in full (or who breaks the glass
/// with a reason, as for the page).
pub(in crate::pages) async fn chronology_pdf(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<ReasonForm>,
) -> Result<Response, Denied> {
    match chronology_access(&c, &s, person).await?.0 {
        Access::Full => {}
        Access::BreakGlass => {
            reason_given(&f.reason)?;
            c.store
                .break_glass(SCHOOL, None, Some(person), &f.reason, &actor(&s))
                .await?;
        }
        Access::Authored | Access::None => return Err(Denied::NotFound),
    }
    let file = c
        .store
        .transfer_file(None, SCHOOL, person, &c.school(), &s.who.display_name)
        .await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::PrintChronology,
                Subject::Person(person),
            )
            .word("as", "pdf"),
        )
        .await?;
    let now = haven_runtime::clock::local()
        .strftime("%Y-%m-%d %H:%M")
        .to_string();
    let bytes = haven_records::printed::chronology(
        &file,
        &s.who.display_name,
        &now,
        &jiff::tz::TimeZone::system(),
    );
    Ok(pdf(
        bytes,
        &format!(
            "chronology-{}-{}.pdf",
            file_word(&file.child.first_name),
            file_word(&file.child.last_name)
        ),
    ))
}

/// The paper pack for a transfer already recorded: the whole file and a receipt page.
pub(in crate::pages) async fn paper_pack(
    State(c): State<Console>,
    s: Signed,
    Path((person, transfer)): Path<(i64, i64)>,
    SessionForm(_f): SessionForm<crate::pages::CsrfForm>,
) -> Result<Response, Denied> {
    dsl_only(&s, "prints a child's file for their new school")?;
    let t = c
        .store
        .transfers_of(SCHOOL, person)
        .await?
        .into_iter()
        .find(|t| t.id == transfer)
        .ok_or(Denied::NotFound)?;
    let mut file = c
        .store
        .transfer_file(None, SCHOOL, person, &c.school(), &s.who.display_name)
        .await?;
    // The pack says when the file was sent and by whom, not when it was printed.
    file.sent_at = haven_records::transfer::time(t.sent_at_ms);
    file.sent_by = t.sent_by.clone();
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::PrintChronology,
                Subject::Person(person),
            )
            .word("as", "paper pack")
            .count("transfer", transfer),
        )
        .await?;
    let bytes = haven_records::printed::paper_pack(
        &file,
        &t.to_school,
        transfer,
        &jiff::tz::TimeZone::system(),
    );
    Ok(pdf(
        bytes,
        &format!(
            "transfer-{transfer}-{}-{}.pdf",
            file_word(&file.child.first_name),
            file_word(&file.child.last_name)
        ),
    ))
}

#[derive(Deserialize)]
pub struct SealForm {
    csrf: String,
    to: String,
    /// The fingerprint the DSL confirms they read with the new school's DSL (the second step).
    #[serde(default)]
    confirm: String,
}

#[derive(Template)]
#[template(path = "transfer_confirm.html")]
struct ConfirmSealPage {
    l: Layout,
    person: i64,
    child: String,
    to: String,
    school: String,
    fingerprint: String,
}

/// Seals the child's file to the new school's identity and records the transfer; the sealed
/// file is the download.
pub(in crate::pages) async fn transfer_sealed(
    State(c): State<Console>,
    s: Signed,
    Path(person): Path<i64>,
    SessionForm(f): SessionForm<SealForm>,
) -> Result<Response, Denied> {
    dsl_only(&s, "sends a child's file on")?;
    let to = haven_vault::Identity::parse(&f.to)
        .map_err(|e| Denied::Invalid(format!("The new school's key: {e}.")))?;
    // First the line's school and fingerprint, to check with their DSL by phone; only a
    // confirmed fingerprint seals the file.
    if f.confirm.trim() != to.fingerprint() {
        let p = c.store.person(person).await?.ok_or(Denied::NotFound)?;
        return Ok(html(&ConfirmSealPage {
            l: c.layout("Check the new school's key", Some(&s)),
            person,
            child: format!("{} {}", p.first_name, p.last_name),
            to: to.to_line(),
            school: if to.school.is_empty() {
                "(the line names no school)".into()
            } else {
                to.school.clone()
            },
            fingerprint: to.fingerprint(),
        }));
    }
    let school = c.school();
    let (bytes, id) = c
        .store
        .send_transfer(c.vault()?, SCHOOL, person, &to, &acting(&c, &s, &school))
        .await?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"transfer-{id}.haven\""),
            ),
            (axum::http::header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "transfers.html")]
struct TransfersPage {
    l: Layout,
    message: String,
    identity: String,
    fingerprint: String,
    school: String,
    /// (id, child id, child, from, received, records, attachments).
    received: Vec<(i64, i64, String, String, String, i64, i64)>,
}

/// This school's identity, and files received.
pub(in crate::pages) async fn transfers(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<crate::pages::Flash>,
) -> Result<Response, Denied> {
    dsl_only(&s, "sends and receives children's files")?;
    let school = c.school();
    let id = c.vault()?.identity(SCHOOL, &school)?;
    let received = c
        .store
        .transfers_in(SCHOOL)
        .await?
        .into_iter()
        .map(|t| {
            (
                t.id,
                t.person,
                t.child,
                t.from_school,
                when(t.received_at_ms),
                t.records,
                t.evidence,
            )
        })
        .collect();
    Ok(html(&TransfersPage {
        l: c.layout("Files between schools", Some(&s)),
        message: q.done,
        identity: id.to_line(),
        fingerprint: id.fingerprint(),
        school,
        received,
    }))
}

#[derive(Template)]
#[template(path = "transfer_in.html")]
struct ImportedPage {
    l: Layout,
    person: i64,
    id: i64,
    from: String,
    records: u64,
    evidence: u64,
    again: bool,
    receipt: String,
}

/// Imports a sealed file sent to this school (checked whole first) and shows the receipt.
pub(in crate::pages) async fn transfer_import(
    State(c): State<Console>,
    s: Signed,
    f: crate::web::SessionMultipart,
) -> Result<Response, Denied> {
    dsl_only(&s, "receives a child's file")?;
    let file = f
        .files
        .iter()
        .find(|u| u.field == "file" && !u.bytes.is_empty())
        .ok_or_else(|| Denied::Invalid("Choose the sealed file (.haven) to import.".into()))?;
    let from = match f.field("from").trim() {
        "" => {
            return Err(Denied::Invalid(
                "Paste the sending school's key line (from their DSL): a file is imported only when that school signed it.".into(),
            ))
        }
        line => haven_vault::Identity::parse(line)
            .map_err(|e| Denied::Invalid(format!("The sending school's key: {e}.")))?,
    };
    let person = match f.field("person").trim() {
        "" => None,
        p => Some(p.parse::<i64>().map_err(|_| {
            Denied::Invalid("The pupil: give their person number, or leave it empty.".into())
        })?),
    };
    let school = c.school();
    let got = c
        .store
        .import_transfer(
            c.vault()?,
            SCHOOL,
            &file.bytes,
            &haven_store::transfer::Receiving {
                from: from.signing,
                person,
                despite_mismatch: f.field("despite_mismatch") == "yes",
            },
            &acting(&c, &s, &school),
        )
        .await?;
    let id = got.id;
    Ok(html(&ImportedPage {
        l: c.layout("File received", Some(&s)),
        person: got.person,
        id,
        from: got.from_school,
        records: got.records,
        evidence: got.evidence,
        again: got.again,
        receipt: got.receipt,
    }))
}

/// A received file's receipt again, as a download to send back.
pub(in crate::pages) async fn transfer_in_receipt(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    dsl_only(&s, "sends receipts")?;
    let t = c
        .store
        .transfers_in(SCHOOL)
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(Denied::NotFound)?;
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_owned(),
            ),
            (
                axum::http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"receipt-{id}.txt\""),
            ),
        ],
        t.receipt,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct SignedReceiptForm {
    csrf: String,
    receipt: String,
}

/// Records a signed receipt that came back from the new school: checked against the key the
/// file was sealed for; stops the transfer clock.
pub(in crate::pages) async fn transfer_receipt(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<SignedReceiptForm>,
) -> Result<Response, Denied> {
    dsl_only(&s, "records the receipt")?;
    let (id, person, r) = c
        .store
        .accept_receipt(c.vault()?, SCHOOL, &f.receipt, &actor(&s))
        .await?;
    let _ = person;
    Ok(Redirect::to(&format!(
        "/records/transfers?done={}",
        url_encode(&format!(
            "Transfer {id}: receipt from {} recorded; its clock has stopped.",
            r.school
        ))
    ))
    .into_response())
}

crate::web::csrf_field!(SealForm, SignedReceiptForm,);
