//! A child's file sent to their new school and received from their old one (`docs/TRANSFER.md`).
//!
//! Sending: the child's pupil records, with this child's chronology lines, ticks, referrals and
//! attachments (opened from this school's vault), as a `haven-file/1` file sealed to the new
//! school's key and signed with this school's; the transfer is recorded with the sealed file's
//! hash and the new school's signing key, so that its receipt can be checked.
//!
//! Receiving: the file is checked whole (signature, seal, every field, every attachment's hash)
//! before anything is written; then, in one transaction, each record is written as this
//! school's with who wrote it there kept beside it (`origin`), attachments are sealed under this
//! school's key, and a receipt is signed with this school's key and kept: importing the same
//! file again writes nothing and gives the same receipt.

use haven_records::transfer::{self as fmt, File};
use haven_records::{category, EntryKind, RecordKind};
use haven_vault::{hex, Identity, Receipt, Vault};
use sqlx::Row as _;

use crate::audit::{AuditEntry, AuditKind, Subject};
use crate::records::{index_words, Actor};
use crate::{now_ms, Store, StoreError};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The received file's id (its receipt is kept under it).
    pub id: i64,
    /// The pupil the file was filed under.
    pub person: i64,
    /// Records written.
    pub records: u64,
    /// Attachments sealed.
    pub evidence: u64,
    /// The receipt to send back, signed with this school's key.
    pub receipt: String,
    /// The file had been imported before: nothing was written this time.
    pub again: bool,
    /// The sending school, as it names itself.
    pub from_school: String,
}

/// A file received from a child's previous school.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferIn {
    /// Id.
    pub id: i64,
    /// The pupil it was filed under.
    pub person: i64,
    /// Their name.
    pub child: String,
    /// The sending school.
    pub from_school: String,
    /// When it was imported.
    pub received_at_ms: i64,
    /// Records imported.
    pub records: i64,
    /// Attachments imported.
    pub evidence: i64,
    /// The signed receipt.
    pub receipt: String,
}

fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid(what.into())
}

/// How a file is received: the sending school's signing key (from its key line; a file
/// signed by any other key is refused), and the pupil it is for when the DSL chooses (a
/// different name or date of birth is refused unless `despite_mismatch`).
#[derive(Debug, Clone, Copy)]
pub struct Receiving {
    /// The sender's signing key.
    pub from: [u8; 32],
    /// The pupil, when chosen.
    pub person: Option<i64>,
    /// File it under the chosen pupil although their name or date of birth differ.
    pub despite_mismatch: bool,
}

/// Who is acting, by name, for a school named as its policy names it.
#[derive(Debug, Clone, Copy)]
pub struct Acting<'a> {
    /// The DSL, for the record and the audit entry.
    pub actor: Actor<'a>,
    /// Their full name (on the file, or on the receipt).
    pub name: &'a str,
    /// The school's name (the policy's `school`).
    pub school: &'a str,
}

fn vault_err(e: haven_vault::VaultError) -> StoreError {
    invalid(format!("The vault: {e}"))
}

impl Store {
    /// Files received from children's previous schools, newest first.
    pub async fn transfers_in(&self, school: i64) -> Result<Vec<TransferIn>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.id, t.person_id, p.first_name || ' ' || p.last_name, t.from_school, t.received_at, t.records, t.evidence, t.receipt \
             FROM transfers_in t JOIN people p ON p.id = t.person_id WHERE t.school_id = $1 ORDER BY t.received_at DESC, t.id DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TransferIn {
                    id: r.try_get(0)?,
                    person: r.try_get(1)?,
                    child: r.try_get(2)?,
                    from_school: r.try_get(3)?,
                    received_at_ms: r.try_get(4)?,
                    records: r.try_get(5)?,
                    evidence: r.try_get(6)?,
                    receipt: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// The child's file as `haven-file/1`: with `files`, its attachments opened from that
    /// vault (to send); without, listed by name and hash only (to print). Unaudited: the caller
    /// seals and records it ([`Store::send_transfer`]) or prints it.
    pub async fn transfer_file(
        &self,
        files: Option<&Vault>,
        school: i64,
        person: i64,
        from_school: &str,
        sent_by: &str,
    ) -> Result<File, StoreError> {
        let p = self
            .person(person)
            .await?
            .filter(|p| p.kind == "pupil")
            .ok_or_else(|| invalid(format!("Person {person} is not a pupil here.")))?;
        let dob: Option<String> = sqlx::query("SELECT date_of_birth FROM people WHERE id = $1")
            .bind(person)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        let mut records = Vec::new();
        for r in self.records_of_child(school, person).await? {
            if r.kind != RecordKind::Pupil {
                continue;
            }
            let part = r
                .children
                .iter()
                .find(|c| c.person == person)
                .map(|c| c.part)
                .ok_or_else(|| invalid(format!("Record {} does not name the child.", r.id)))?;
            // The other children a record names are theirs: their names are taken out of every
            // text that travels, and the record's files stay here (listed by their hash).
            let others: Vec<String> = r
                .children
                .iter()
                .filter(|c| c.person != person)
                .map(|c| c.name.clone())
                .collect();
            let shared = !others.is_empty();
            let clean = |t: &str| {
                if shared {
                    haven_records::redact::redact(t, &others)
                } else {
                    t.to_owned()
                }
            };
            let clean_opt = |t: &Option<String>| t.as_deref().map(clean);
            let all = self.record_entries(school, r.id).await?;
            let mine: Vec<_> = all
                .into_iter()
                .filter(|e| e.person.is_none_or(|p| p == person))
                .collect();
            let entries = mine
                .iter()
                .map(|e| fmt::Entry {
                    at: fmt::time(e.at_ms),
                    written_at: fmt::time(e.written_at_ms),
                    author: e.author.clone(),
                    kind: e.kind.as_str().to_owned(),
                    text: clean(&e.text),
                    rationale: clean_opt(&e.rationale),
                    corrects: e
                        .supersedes
                        .and_then(|s| mine.iter().position(|o| o.id == s)),
                    reason: clean_opt(&e.reason),
                })
                .collect();
            let steps = self
                .record_steps(school, r.id)
                .await?
                .into_iter()
                .map(|t| fmt::Step {
                    step: t.step,
                    by: t.by,
                    at: fmt::time(t.at_ms),
                    skipped: t.skipped,
                })
                .collect();
            let referrals = self
                .referrals(school, r.id)
                .await?
                .into_iter()
                .map(|f| fmt::Referral {
                    agency: f.agency.as_str().to_owned(),
                    made_at: fmt::time(f.made_at_ms),
                    by: f.by,
                    contact: clean(&f.contact),
                    reference: clean(&f.reference),
                    outcome: clean_opt(&f.outcome),
                    follow_up_on: f.follow_up_on,
                })
                .collect();
            let mut evidence = Vec::new();
            for e in self.evidence_of(school, r.id).await? {
                if e.possible_nude || shared {
                    evidence.push(fmt::Attachment {
                        name: if e.possible_nude {
                            "possible nude image".into()
                        } else {
                            e.name
                        },
                        media_type: e.media_type,
                        sha256: e.sha256,
                        possible_nude: e.possible_nude,
                        withheld: true,
                        content: String::new(),
                    });
                    continue;
                }
                // Printing lists a file by its name and hash; only a transfer opens it.
                let Some(vault) = files else {
                    evidence.push(fmt::Attachment {
                        name: e.name,
                        media_type: e.media_type,
                        sha256: e.sha256,
                        possible_nude: false,
                        withheld: false,
                        content: String::new(),
                    });
                    continue;
                };
                let Some((e, sealed)) = self.evidence_sealed(school, e.id).await? else {
                    continue;
                };
                let bytes = vault
                    .open_sealed(
                        school,
                        &crate::evidence::seal_context(school, &e.sha256),
                        &sealed,
                    )
                    .map_err(vault_err)?;
                use base64::Engine as _;
                evidence.push(fmt::Attachment {
                    name: e.name,
                    media_type: e.media_type,
                    sha256: e.sha256,
                    possible_nude: false,
                    withheld: false,
                    content: base64::engine::general_purpose::STANDARD.encode(bytes),
                });
            }
            records.push(fmt::Record {
                category: r.category.clone(),
                category_name: r.category_name().to_owned(),
                part: part.as_str().to_owned(),
                happened_at: fmt::time(r.happened_at_ms),
                written_at: fmt::time(r.written_at_ms),
                author: r.author.1.clone(),
                place: clean(&r.place),
                account: clean(&r.account),
                actions: clean(&r.actions),
                closed: !r.open,
                outcome: clean_opt(&r.outcome),
                debrief: clean_opt(&r.debrief),
                body_map: r
                    .body_map
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
                entries,
                steps,
                referrals,
                evidence,
            });
        }
        if records.is_empty() {
            return Err(invalid(
                "This child has no safeguarding records here: there is no file to send.",
            ));
        }
        Ok(File {
            format: fmt::FORMAT.into(),
            from_school: from_school.to_owned(),
            sent_at: fmt::time(now_ms()),
            sent_by: sent_by.to_owned(),
            child: fmt::Child {
                first_name: p.first_name,
                last_name: p.last_name,
                date_of_birth: dob,
                year_group: p.year_group,
            },
            records,
        })
    }

    /// Seals the child's file to `to` and records the transfer (the five-day clock's "sent");
    /// the sealed bytes and the transfer's id.
    pub async fn send_transfer(
        &self,
        vault: &Vault,
        school: i64,
        person: i64,
        to: &Identity,
        by: &Acting<'_>,
    ) -> Result<(Vec<u8>, i64), StoreError> {
        if vault.public_signing_key(school).map_err(vault_err)? == to.signing {
            return Err(invalid(
                "That is this school's own key line: seal the file to the new school's line, from their DSL.",
            ));
        }
        let file = self
            .transfer_file(Some(vault), school, person, by.school, by.name)
            .await?;
        // A file Haven would refuse at the other end is never sent (nor its clock started).
        file.check().map_err(|e| invalid(format!("{e}.")))?;
        let sealed = vault
            .seal_transfer(school, to, &file.to_json())
            .map_err(vault_err)?;
        let sha = haven_vault::sha256_hex(&sealed);
        let to_name = if to.school.is_empty() {
            format!("the school with key {}", to.fingerprint())
        } else {
            to.school.clone()
        };
        let key = hex(&to.signing);
        let id = self
            .record_transfer_sealed(
                school,
                person,
                &to_name,
                "Haven sealed transfer",
                now_ms(),
                Some((&sha, &key)),
                &by.actor,
            )
            .await?;
        Ok((sealed, id))
    }

    /// Checks a receipt returned by the new school against the key the file was sealed for,
    /// and records it, stopping the transfer clock; the transfer's id and child.
    pub async fn accept_receipt(
        &self,
        vault: &Vault,
        school: i64,
        text: &str,
        by: &Actor<'_>,
    ) -> Result<(i64, i64, Receipt), StoreError> {
        let own_key = vault.public_signing_key(school).map_err(vault_err)?;
        let sha = text
            .lines()
            .find_map(|l| l.strip_prefix("transfer-sha256: "))
            .ok_or_else(|| invalid("This is not a Haven receipt (no transfer-sha256 line)."))?
            .trim()
            .to_owned();
        let row = sqlx::query(
            "SELECT id, person_id, to_signing_key, receipt_at FROM transfers WHERE school_id = $1 AND package_sha256 = $2",
        )
        .bind(school)
        .bind(&sha)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| {
            invalid("No transfer sent from here matches this receipt: it is for another school's file, or was changed.")
        })?;
        let (id, person): (i64, i64) = (row.try_get(0)?, row.try_get(1)?);
        let key: String = row.try_get(2)?;
        let key: [u8; 32] = haven_vault::unhex(key.trim())
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| invalid("The transfer's recorded key is damaged."))?;
        let receipt = Receipt::verify(text, &key).map_err(|e| invalid(format!("{e}.")))?;
        if key.as_slice() == own_key.as_slice() {
            return Err(invalid(
                "This receipt is signed with this school's own key: only the new school's receipt stops the clock.",
            ));
        }
        if row.try_get::<Option<i64>, _>(3)?.is_some() {
            return Err(invalid(format!(
                "Transfer {id}'s receipt is already recorded."
            )));
        }
        let at = fmt::millis(&receipt.received_at)
            .unwrap_or_else(now_ms)
            .min(now_ms());
        self.confirm_receipt_as(
            school,
            id,
            &format!(
                "{}, {} (signed receipt)",
                receipt.received_by, receipt.school
            ),
            at,
            true,
            by,
        )
        .await?;
        Ok((id, person, receipt))
    }

    /// The pupil a received file is about: the one pupil here with its first and last name
    /// (any case) and date of birth.
    pub async fn match_pupil(&self, child: &fmt::Child) -> Result<i64, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM people WHERE kind = 'pupil' AND LOWER(first_name) = LOWER($1) AND LOWER(last_name) = LOWER($2) AND date_of_birth = $3",
        )
        .bind(child.first_name.trim())
        .bind(child.last_name.trim())
        .bind(child.date_of_birth.as_deref().unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        let who = format!(
            "{} {} (born {})",
            child.first_name,
            child.last_name,
            child
                .date_of_birth
                .as_deref()
                .unwrap_or("on a date not given")
        );
        match rows.as_slice() {
            [one] => Ok(one.try_get(0)?),
            [] => Err(invalid(format!(
                "No pupil here is {who}: import them from the MIS first, or choose the pupil the file is for."
            ))),
            _ => Err(invalid(format!(
                "More than one pupil here is {who}: choose the pupil the file is for."
            ))),
        }
    }

    /// Opens a sealed transfer addressed to `school`, checks it whole, and files it under
    /// `person` (or the one pupil whose name and date of birth it gives). With `from`, the file
    /// must be signed by that school's key.
    pub async fn import_transfer(
        &self,
        vault: &Vault,
        school: i64,
        sealed: &[u8],
        how: &Receiving,
        acting: &Acting<'_>,
    ) -> Result<Imported, StoreError> {
        let by = &acting.actor;
        let opened = vault
            .open_transfer(school, sealed, Some(&how.from))
            .map_err(vault_err)?
            .map_err(|e| invalid(format!("{e}.")))?;
        let file = File::from_json(&opened.payload).map_err(|e| invalid(format!("{e}.")))?;
        let sha = haven_vault::sha256_hex(sealed);
        if let Some(row) = sqlx::query(
            "SELECT person_id, records, evidence, receipt, id FROM transfers_in WHERE school_id = $1 AND package_sha256 = $2",
        )
        .bind(school)
        .bind(&sha)
        .fetch_optional(&self.pool)
        .await?
        {
            return Ok(Imported {
                id: row.try_get(4)?,
                person: row.try_get(0)?,
                records: u64::try_from(row.try_get::<i64, _>(1)?).unwrap_or(0),
                evidence: u64::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                receipt: row.try_get(3)?,
                again: true,
                from_school: file.from_school,
            });
        }
        let person = match how.person {
            Some(p) => {
                let here = self
                    .person(p)
                    .await?
                    .filter(|x| x.kind == "pupil")
                    .ok_or_else(|| invalid(format!("Person {p} is not a pupil here.")))?;
                let dob: Option<String> =
                    sqlx::query("SELECT date_of_birth FROM people WHERE id = $1")
                        .bind(p)
                        .fetch_one(&self.pool)
                        .await?
                        .try_get(0)?;
                let same = here
                    .first_name
                    .trim()
                    .eq_ignore_ascii_case(file.child.first_name.trim())
                    && here
                        .last_name
                        .trim()
                        .eq_ignore_ascii_case(file.child.last_name.trim())
                    && dob.is_some()
                    && dob == file.child.date_of_birth;
                if !same && !how.despite_mismatch {
                    return Err(invalid(format!(
                        "The file is about {} {} (born {}); pupil {p} here is {} {} (born {}). Nothing was imported. If they are the same child (a change of name, say), import it again saying so.",
                        file.child.first_name,
                        file.child.last_name,
                        file.child.date_of_birth.as_deref().unwrap_or("date not given"),
                        here.first_name,
                        here.last_name,
                        dob.as_deref().unwrap_or("date not recorded"),
                    )));
                }
                p
            }
            None => self.match_pupil(&file.child).await?,
        };
        // Every attachment's hash and seal, before anything is written.
        let mut sealed_evidence = Vec::new();
        for (i, r) in file.records.iter().enumerate() {
            for a in r.evidence.iter().filter(|a| !a.withheld) {
                let bytes = a
                    .bytes()
                    .ok_or_else(|| invalid("An attachment is not base64."))?;
                if haven_vault::sha256_hex(&bytes) != a.sha256.to_ascii_lowercase() {
                    return Err(invalid(format!(
                        "The transferred file is not a haven-file/1 file Haven can import: record {} attachment {:?} does not match its SHA-256; nothing was imported.",
                        i + 1,
                        a.name
                    )));
                }
                let sha = a.sha256.to_ascii_lowercase();
                let s = vault
                    .seal(school, &crate::evidence::seal_context(school, &sha), &bytes)
                    .map_err(vault_err)?;
                let version = Vault::version_of(&s).unwrap_or(0);
                sealed_evidence.push((i, a, sha, bytes.len(), s, version));
            }
        }
        let now = now_ms();
        let receipt = Receipt {
            transfer_sha256: sha.clone(),
            received_at: fmt::time(now),
            school: acting.school.to_owned(),
            received_by: acting.name.to_owned(),
            records: file.records.len() as u64,
            evidence: sealed_evidence.len() as u64,
        };
        let receipt_text = vault.sign_receipt(school, &receipt).map_err(vault_err)?;
        let from_school = file.from_school.clone();
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let mut record_ids = Vec::new();
        for r in &file.records {
            let origin = |who: &str| format!("{who} ({from_school})");
            let known = category::find(&r.category).is_some();
            let cat = if known {
                r.category.as_str()
            } else {
                "welfare"
            };
            let ms = |t: &str| fmt::millis(t).unwrap_or(now).min(now);
            let closed = r.closed;
            let id: i64 = sqlx::query(
                "INSERT INTO records (school_id, kind, category, author_id, happened_at, written_at, place, account, actions, body_map, status, outcome, debrief, closed_at, closed_by, origin) \
                 VALUES ($1, 'pupil', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id",
            )
            .bind(school)
            .bind(cat)
            .bind(by.person)
            .bind(ms(&r.happened_at))
            .bind(ms(&r.written_at))
            .bind(&r.place)
            .bind(&r.account)
            .bind(&r.actions)
            .bind(r.body_map.join(","))
            .bind(if closed { "closed" } else { "open" })
            .bind(&r.outcome)
            .bind(&r.debrief)
            .bind(closed.then_some(now))
            .bind(closed.then_some(by.person))
            .bind(origin(&r.author))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            record_ids.push(id);
            sqlx::query(
                "INSERT INTO record_children (school_id, record_id, person_id, part) VALUES ($1, $2, $3, $4)",
            )
            .bind(school)
            .bind(id)
            .bind(person)
            .bind(&r.part)
            .execute(&mut *tx)
            .await?;
            let mut ids: Vec<i64> = Vec::new();
            for e in &r.entries {
                let supersedes = e.corrects.and_then(|k| ids.get(k).copied());
                let eid: i64 = sqlx::query(
                    "INSERT INTO chronology (school_id, record_id, person_id, at, written_at, author_id, kind, text, rationale, supersedes, reason, origin) \
                     VALUES ($1, $2, NULL, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
                )
                .bind(school)
                .bind(id)
                .bind(ms(&e.at))
                .bind(ms(&e.written_at))
                .bind(by.person)
                .bind(&e.kind)
                .bind(&e.text)
                .bind(&e.rationale)
                .bind(supersedes)
                .bind(&e.reason)
                .bind(origin(&e.author))
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
                ids.push(eid);
                index_words(
                    &mut tx,
                    school,
                    id,
                    &format!("{} {}", e.text, e.rationale.as_deref().unwrap_or("")),
                )
                .await?;
            }
            let mut note = format!(
                "Received from {from_school} by sealed transfer (sent {} by {}).",
                day(&file.sent_at),
                file.sent_by
            );
            if !known {
                note.push_str(&format!(
                    " Filed there under {:?}; filed here under Welfare.",
                    r.category_name
                ));
            }
            for a in r.evidence.iter().filter(|a| a.withheld) {
                note.push_str(&format!(
                    " Kept at {from_school}, not sent: {} ({}, SHA-256 {}); ask their DSL if it is needed.",
                    if a.possible_nude {
                        "a possible nude image".to_owned()
                    } else {
                        format!("{:?}", a.name)
                    },
                    a.media_type,
                    a.sha256
                ));
            }
            sqlx::query(
                "INSERT INTO chronology (school_id, record_id, person_id, at, written_at, author_id, kind, text) VALUES ($1, $2, NULL, $3, $3, $4, $5, $6)",
            )
            .bind(school)
            .bind(id)
            .bind(now)
            .bind(by.person)
            .bind(EntryKind::Note.as_str())
            .bind(&note)
            .execute(&mut *tx)
            .await?;
            let mut steps_seen = std::collections::HashSet::new();
            for s in &r.steps {
                if !steps_seen.insert(s.step.as_str()) {
                    continue;
                }
                sqlx::query(
                    "INSERT INTO record_steps (school_id, record_id, step, done_by, done_at, skipped_reason, origin) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(school)
                .bind(id)
                .bind(&s.step)
                .bind(by.person)
                .bind(ms(&s.at))
                .bind(&s.skipped)
                .bind(origin(&s.by))
                .execute(&mut *tx)
                .await?;
            }
            for f in &r.referrals {
                sqlx::query(
                    "INSERT INTO referrals (school_id, record_id, agency, made_at, made_by, contact, reference, outcome, follow_up_on, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(school)
                .bind(id)
                .bind(&f.agency)
                .bind(ms(&f.made_at))
                .bind(by.person)
                .bind(&f.contact)
                .bind(&f.reference)
                .bind(&f.outcome)
                .bind(&f.follow_up_on)
                .bind(origin(&f.by))
                .execute(&mut *tx)
                .await?;
            }
            index_words(
                &mut tx,
                school,
                id,
                &format!(
                    "{} {} {} {} {}",
                    r.place, r.account, r.actions, file.child.first_name, file.child.last_name
                ),
            )
            .await?;
        }
        for (i, a, sha, size, s, version) in &sealed_evidence {
            use base64::Engine as _;
            let record = record_ids
                .get(*i)
                .copied()
                .ok_or_else(|| invalid("record"))?;
            sqlx::query(
                "INSERT INTO evidence (school_id, record_id, name, media_type, size_bytes, sha256, possible_nude, key_version, sealed, added_by, added_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(school)
            .bind(record)
            .bind(haven_records::evidence::clean_name(&a.name))
            .bind(&a.media_type)
            .bind(*size as i64)
            .bind(sha)
            .bind(i64::from(a.possible_nude))
            .bind(i64::from(*version))
            .bind(base64::engine::general_purpose::STANDARD.encode(s))
            .bind(by.person)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let received: i64 = sqlx::query(
            "INSERT INTO transfers_in (school_id, person_id, from_school, from_key, package_sha256, received_at, received_by, records, evidence, receipt) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(school)
        .bind(person)
        .bind(&from_school)
        .bind(hex(&opened.sender))
        .bind(&sha)
        .bind(now)
        .bind(by.person)
        .bind(file.records.len() as i64)
        .bind(sealed_evidence.len() as i64)
        .bind(&receipt_text)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::ImportTransfer,
                Subject::Person(person),
            )
            .count("records", file.records.len() as i64)
            .count("evidence", sealed_evidence.len() as i64)
            .word(
                "pupil",
                match (how.person, how.despite_mismatch) {
                    (None, _) => "matched by name and date of birth",
                    (Some(_), false) => "chosen, name and date of birth agree",
                    (Some(_), true) => "chosen despite a different name or date of birth",
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Imported {
            id: received,
            person,
            records: file.records.len() as u64,
            evidence: sealed_evidence.len() as u64,
            receipt: receipt_text,
            again: false,
            from_school,
        })
    }
}

/// An RFC 3339 time as a date for a note (`2026-11-30`).
fn day(t: &str) -> String {
    t.get(..10).unwrap_or(t).to_owned()
}
