//! The registers: image-consent decisions (a history: the latest for a pupil and purpose
//! counts, so a withdrawal takes effect at once), the data-breach log, and staff training
//! completions. The rules are `haven_registers`'; this module keeps what they read. Every write
//! is one transaction with its audit entry (ids, never text); every table carries its school.

use haven_registers::consent::Decision;
use haven_registers::{Course, Purpose, Risk};
use sqlx::Row as _;

use crate::audit::{AuditEntry, AuditKind, Subject};
use crate::records::Actor;
use crate::{now_ms, Store, StoreError};

fn invalid(what: impl Into<String>) -> StoreError {
    StoreError::Invalid(what.into())
}

fn text(name: &str, t: &str, needed: bool, max: usize) -> Result<String, StoreError> {
    let t = t.trim();
    if needed && t.is_empty() {
        return Err(invalid(format!("{name} is needed.")));
    }
    if t.chars().count() > max {
        return Err(invalid(format!("{name} is longer than {max} characters.")));
    }
    Ok(t.to_owned())
}

fn parse<T: std::str::FromStr>(t: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    t.parse::<T>()
        .map_err(|e| StoreError::Database(sqlx::Error::Decode(e.to_string().into())))
}

/// A consent decision as the register lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    /// The decision.
    pub decision: Decision,
    /// A note (how it came: the form, an email, a phone call).
    pub note: String,
    /// Who recorded it (name).
    pub recorded_by: String,
}

/// An entry of the data-breach log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// Id.
    pub id: i64,
    /// A short title.
    pub title: String,
    /// What happened.
    pub what: String,
    /// When the school became aware of it.
    pub discovered_at_ms: i64,
    /// What data was involved.
    pub data_involved: String,
    /// How many people's data.
    pub people_affected: i64,
    /// The risk to them.
    pub risk: Risk,
    /// The DPO's decision: reportable to the ICO or not (none yet).
    pub reportable: Option<bool>,
    /// Why.
    pub decision_reason: Option<String>,
    /// When it was reported to the ICO, and their reference.
    pub reported: Option<(i64, String)>,
    /// Actions taken.
    pub actions: String,
    /// The DPO's sign-off: who and when.
    pub signed_off: Option<(String, i64)>,
    /// Who logged it (name), and when.
    pub recorded: (String, i64),
}

/// A breach to log.
#[derive(Debug, Clone)]
pub struct NewBreach {
    /// The school.
    pub school: i64,
    /// A short title.
    pub title: String,
    /// What happened.
    pub what: String,
    /// When the school became aware of it.
    pub discovered_at_ms: i64,
    /// What data was involved.
    pub data_involved: String,
    /// How many people's data.
    pub people_affected: i64,
    /// The risk to them.
    pub risk: Risk,
}

/// What happens next to a breach.
#[derive(Debug, Clone)]
pub enum BreachStep {
    /// The DPO decides whether it is reportable, with the reason.
    Decide {
        /// Reportable to the ICO.
        reportable: bool,
        /// Why.
        reason: String,
    },
    /// Reported to the ICO, when, with their reference.
    Reported {
        /// When.
        at_ms: i64,
        /// The ICO's reference.
        reference: String,
    },
    /// Actions taken (added to what is there, dated).
    Action(String),
    /// The DPO signs the entry off (it takes nothing more).
    SignOff,
}

/// A member of staff's training, course by course (the latest completion of each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffTraining {
    /// Person id.
    pub person: i64,
    /// Name.
    pub name: String,
    /// Whether they hold the DSL or deputy DSL role (DSL training is theirs to keep).
    pub dsl: bool,
    /// Latest completion of each course done.
    pub latest: Vec<(Course, jiff::civil::Date)>,
}

const MAX_SHORT: usize = 200;
const MAX_TEXT: usize = 10_000;

impl Store {
    /// Records a consent decision for a pupil and purpose (given, or refused or withdrawn),
    /// as told by `decided_by`; the latest for the purpose counts from now.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_consent(
        &self,
        school: i64,
        person: i64,
        purpose: Purpose,
        given: bool,
        decided_by: &str,
        note: &str,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let decided_by = text("Who decided", decided_by, true, MAX_SHORT)?;
        let note = text("The note", note, false, MAX_SHORT)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let kind: Option<String> = sqlx::query("SELECT kind FROM people WHERE id = $1")
            .bind(person)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if kind.as_deref() != Some("pupil") {
            return Err(invalid(format!("Person {person} is not a pupil here.")));
        }
        // Strictly later than the pupil's last decision, so that the order of decisions is the
        // order they were recorded in, even within one millisecond.
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(recorded_at) FROM consents WHERE school_id = $1 AND person_id = $2",
        )
        .bind(school)
        .bind(person)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let at = now_ms().max(last.map_or(0, |l| l + 1));
        let id: i64 = sqlx::query(
            "INSERT INTO consents (school_id, person_id, purpose, given, decided_by, note, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(school)
        .bind(person)
        .bind(purpose.as_str())
        .bind(i64::from(given))
        .bind(&decided_by)
        .bind(&note)
        .bind(by.person)
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::RecordConsent,
                Subject::Person(person),
            )
            .word("purpose", purpose.as_str())
            .word(
                "consent",
                if given {
                    "given"
                } else {
                    "refused or withdrawn"
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A pupil's consent decisions, oldest first. Unaudited: the caller records the read.
    pub async fn consents_of(
        &self,
        school: i64,
        person: i64,
    ) -> Result<Vec<ConsentRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.purpose, c.given, c.recorded_at, c.decided_by, c.note, p.first_name || ' ' || p.last_name \
             FROM consents c JOIN people p ON p.id = c.recorded_by \
             WHERE c.school_id = $1 AND c.person_id = $2 ORDER BY c.recorded_at, c.id",
        )
        .bind(school)
        .bind(person)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConsentRow {
                    decision: Decision {
                        purpose: parse(&r.try_get::<String, _>(0)?)?,
                        given: r.try_get::<i64, _>(1)? != 0,
                        at_ms: r.try_get(2)?,
                        by: r.try_get(3)?,
                    },
                    note: r.try_get(4)?,
                    recorded_by: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Every pupil's decisions (for the register's export and its "who has not answered"),
    /// as (person, decisions) for pupils with any.
    pub async fn all_consents(
        &self,
        school: i64,
    ) -> Result<std::collections::BTreeMap<i64, Vec<Decision>>, StoreError> {
        let rows = sqlx::query(
            "SELECT person_id, purpose, given, recorded_at, decided_by FROM consents WHERE school_id = $1 ORDER BY recorded_at, id",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut out: std::collections::BTreeMap<i64, Vec<Decision>> = Default::default();
        for r in rows {
            out.entry(r.try_get(0)?).or_default().push(Decision {
                purpose: parse(&r.try_get::<String, _>(1)?)?,
                given: r.try_get::<i64, _>(2)? != 0,
                at_ms: r.try_get(3)?,
                by: r.try_get(4)?,
            });
        }
        Ok(out)
    }

    /// Logs a data breach (its 72-hour clock runs from `discovered_at_ms`); its id.
    pub async fn log_breach(&self, b: &NewBreach, by: &Actor<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        let title = text("The title", &b.title, true, MAX_SHORT)?;
        let what = text("What happened", &b.what, true, MAX_TEXT)?;
        let data = text("The data involved", &b.data_involved, true, MAX_TEXT)?;
        if b.discovered_at_ms > now + 10 * 60_000 || b.discovered_at_ms < 0 {
            return Err(invalid("When it was discovered is in the future."));
        }
        if !(0..=10_000_000).contains(&b.people_affected) {
            return Err(invalid("How many people: a number from 0."));
        }
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO breaches (school_id, title, what, discovered_at, data_involved, people_affected, risk, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(b.school)
        .bind(&title)
        .bind(&what)
        .bind(b.discovered_at_ms)
        .bind(&data)
        .bind(b.people_affected)
        .bind(b.risk.as_str())
        .bind(by.person)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::LogBreach,
                Subject::Breach(id),
            )
            .word("risk", b.risk.as_str()),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The next step of a breach's entry. A signed-off entry takes nothing more; it is
    /// reported only once decided reportable; it is signed off only once decided (and, when
    /// reportable, reported).
    pub async fn breach_step(
        &self,
        school: i64,
        id: i64,
        step: &BreachStep,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT reportable, reported_at, signed_off_at, discovered_at FROM breaches WHERE school_id = $1 AND id = $2",
        )
        .bind(school)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| invalid(format!("There is no breach {id}.")))?;
        let reportable: Option<i64> = row.try_get(0)?;
        let reported: Option<i64> = row.try_get(1)?;
        let signed: Option<i64> = row.try_get(2)?;
        let discovered: i64 = row.try_get(3)?;
        if signed.is_some() {
            return Err(invalid(format!(
                "Breach {id} is signed off: it takes nothing more."
            )));
        }
        let word = match step {
            BreachStep::Decide {
                reportable: r,
                reason,
            } => {
                let reason = text("The reason", reason, true, MAX_TEXT)?;
                if reported.is_some() {
                    return Err(invalid("It has been reported: the decision stands."));
                }
                if reportable == Some(i64::from(*r)) {
                    return Err(invalid("That is already the decision."));
                }
                // A changed decision keeps the one it replaces, in the actions.
                if let Some(old) = reportable {
                    let old_reason: Option<String> = sqlx::query(
                        "SELECT decision_reason FROM breaches WHERE school_id = $1 AND id = $2",
                    )
                    .bind(school)
                    .bind(id)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                    let line = format!(
                        "decision changed; it had been {} ({})",
                        if old == 1 {
                            "reportable"
                        } else {
                            "not reportable"
                        },
                        old_reason.unwrap_or_default()
                    );
                    append_action(&mut tx, school, id, now, &line).await?;
                }
                sqlx::query(
                    "UPDATE breaches SET reportable = $1, decision_reason = $2 WHERE school_id = $3 AND id = $4",
                )
                .bind(i64::from(*r))
                .bind(&reason)
                .bind(school)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if *r {
                    "decided reportable"
                } else {
                    "decided not reportable"
                }
            }
            BreachStep::Reported { at_ms, reference } => {
                let reference = text("The ICO's reference", reference, true, MAX_SHORT)?;
                if reportable != Some(1) {
                    return Err(invalid(
                        "Record the decision that it is reportable first (with the reason).",
                    ));
                }
                if reported.is_some() {
                    return Err(invalid("It is already recorded as reported."));
                }
                if *at_ms > now + 10 * 60_000 || *at_ms < discovered {
                    return Err(invalid(
                        "When it was reported: not in the future, and not before it was discovered.",
                    ));
                }
                sqlx::query(
                    "UPDATE breaches SET reported_at = $1, ico_reference = $2 WHERE school_id = $3 AND id = $4",
                )
                .bind(at_ms)
                .bind(&reference)
                .bind(school)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                "reported"
            }
            BreachStep::Action(action) => {
                let action = text("The action", action, true, MAX_TEXT)?;
                append_action(&mut tx, school, id, now, &action).await?;
                "action"
            }
            BreachStep::SignOff => {
                match (reportable, reported) {
                    (None, _) => {
                        return Err(invalid(
                            "Record whether it is reportable first: the entry is signed off once decided.",
                        ))
                    }
                    (Some(1), None) => {
                        return Err(invalid(
                            "It was decided reportable: record the report to the ICO before signing off.",
                        ))
                    }
                    _ => {}
                }
                sqlx::query(
                    "UPDATE breaches SET signed_off_by = $1, signed_off_at = $2 WHERE school_id = $3 AND id = $4",
                )
                .bind(by.person)
                .bind(now)
                .bind(school)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                "signed off"
            }
        };
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::UpdateBreach,
                Subject::Breach(id),
            )
            .word("step", word),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The breach log, newest first. Unaudited: the caller records the read.
    pub async fn breaches(&self, school: i64) -> Result<Vec<Breach>, StoreError> {
        let rows = sqlx::query(
            "SELECT b.id, b.title, b.what, b.discovered_at, b.data_involved, b.people_affected, b.risk, b.reportable, \
             b.decision_reason, b.reported_at, b.ico_reference, b.actions, s.first_name || ' ' || s.last_name, b.signed_off_at, \
             r.first_name || ' ' || r.last_name, b.recorded_at \
             FROM breaches b JOIN people r ON r.id = b.recorded_by LEFT JOIN people s ON s.id = b.signed_off_by \
             WHERE b.school_id = $1 ORDER BY b.discovered_at DESC, b.id DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let reported_at: Option<i64> = r.try_get(9)?;
                let signed_at: Option<i64> = r.try_get(13)?;
                Ok(Breach {
                    id: r.try_get(0)?,
                    title: r.try_get(1)?,
                    what: r.try_get(2)?,
                    discovered_at_ms: r.try_get(3)?,
                    data_involved: r.try_get(4)?,
                    people_affected: r.try_get(5)?,
                    risk: parse(&r.try_get::<String, _>(6)?)?,
                    reportable: r.try_get::<Option<i64>, _>(7)?.map(|v| v != 0),
                    decision_reason: r.try_get(8)?,
                    reported: reported_at
                        .map(|at| {
                            Ok::<_, StoreError>((
                                at,
                                r.try_get::<Option<String>, _>(10)?.unwrap_or_default(),
                            ))
                        })
                        .transpose()?,
                    actions: r.try_get(11)?,
                    signed_off: signed_at
                        .map(|at| {
                            Ok::<_, StoreError>((
                                r.try_get::<Option<String>, _>(12)?.unwrap_or_default(),
                                at,
                            ))
                        })
                        .transpose()?,
                    recorded: (r.try_get(14)?, r.try_get(15)?),
                })
            })
            .collect()
    }

    /// Records training completions, all or none: each `(who, course, completed)` names a
    /// member of staff by id, MIS staff id or email. Returns how many were recorded.
    pub async fn record_training(
        &self,
        school: i64,
        rows: &[(String, Course, jiff::civil::Date)],
        by: &Actor<'_>,
    ) -> Result<usize, StoreError> {
        let now = now_ms();
        if rows.is_empty() {
            return Err(invalid("There is nothing to record."));
        }
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let mut missing = Vec::new();
        let mut people = Vec::new();
        for (who, _, _) in rows {
            let w = who.trim();
            // `id:N` is Haven's own person id (the console's form); anything else is the MIS
            // staff id or the email address, which must name exactly one member of staff.
            let found = match w.strip_prefix("id:").and_then(|n| n.parse::<i64>().ok()) {
                Some(n) => sqlx::query("SELECT id FROM people WHERE kind = 'staff' AND id = $1")
                    .bind(n)
                    .fetch_all(&mut *tx)
                    .await?,
                None => sqlx::query(
                    "SELECT id FROM people WHERE kind = 'staff' AND (LOWER(mis_id) = LOWER($1) OR LOWER(email) = LOWER($1))",
                )
                .bind(w)
                .fetch_all(&mut *tx)
                .await?,
            };
            match found.as_slice() {
                [one] => people.push(one.try_get::<i64, _>(0)?),
                _ => missing.push(w.chars().take(60).collect::<String>()),
            }
        }
        if !missing.is_empty() {
            return Err(invalid(format!(
                "No member of staff here is {}: nothing was recorded.",
                missing
                    .iter()
                    .map(|m| format!("{m:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for ((_, course, done), person) in rows.iter().zip(&people) {
            sqlx::query(
                "INSERT INTO training (school_id, person_id, course, completed_on, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(school)
            .bind(person)
            .bind(course.as_str())
            .bind(done.to_string())
            .bind(by.person)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::RecordTraining,
                Subject::Register("training"),
            )
            .count("completions", rows.len() as i64),
        )
        .await?;
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Every current member of staff with the latest completion of each course they have done.
    pub async fn training(&self, school: i64) -> Result<Vec<StaffTraining>, StoreError> {
        let staff = sqlx::query(
            "SELECT p.id, p.first_name || ' ' || p.last_name, \
             (SELECT COUNT(*) FROM person_roles r WHERE r.person_id = p.id AND r.role IN ('dsl', 'deputy-dsl')) \
             FROM people p WHERE p.kind = 'staff' AND p.active = 1 ORDER BY p.last_name, p.first_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let done = sqlx::query(
            "SELECT person_id, course, MAX(completed_on) FROM training WHERE school_id = $1 GROUP BY person_id, course",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut latest: std::collections::HashMap<i64, Vec<(Course, jiff::civil::Date)>> =
            Default::default();
        for r in done {
            latest.entry(r.try_get(0)?).or_default().push((
                parse(&r.try_get::<String, _>(1)?)?,
                parse(&r.try_get::<String, _>(2)?)?,
            ));
        }
        staff
            .iter()
            .map(|r| {
                let person: i64 = r.try_get(0)?;
                Ok(StaffTraining {
                    person,
                    name: r.try_get(1)?,
                    dsl: r.try_get::<i64, _>(2)? > 0,
                    latest: latest.remove(&person).unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A version of an acceptable-use agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgreementVersion {
    /// Id.
    pub id: i64,
    /// Who it is for.
    pub audience: haven_registers::Audience,
    /// Its number (1, 2, …) within its audience.
    pub version: u32,
    /// In force from.
    pub effective_on: jiff::civil::Date,
    /// Its text.
    pub body: String,
    /// Who published it (name), and when.
    pub published: (String, i64),
}

/// Someone an agreement is for, with their latest signature of their audience's agreement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// Person id.
    pub person: i64,
    /// Name.
    pub name: String,
    /// Their class (pupils).
    pub class: String,
    /// Their agreement's audience.
    pub audience: haven_registers::Audience,
    /// The version they last signed, and when.
    pub latest: Option<(u32, jiff::civil::Date)>,
}

/// A signature to record.
#[derive(Debug, Clone)]
pub struct NewSignature {
    /// The school.
    pub school: i64,
    /// Whose agreement it is (the pupil, for a parent signing for an infant).
    pub person: i64,
    /// The version signed.
    pub version: i64,
    /// When.
    pub signed_on: jiff::civil::Date,
    /// On paper (recorded by staff) or online.
    pub on_paper: bool,
    /// Who signed (the person, or their parent or carer), by name.
    pub signed_by: String,
}

impl Store {
    /// Publishes a new version of an audience's agreement, in force from `effective_on`: its
    /// number.
    pub async fn publish_agreement(
        &self,
        school: i64,
        audience: haven_registers::Audience,
        effective_on: jiff::civil::Date,
        body: &str,
        by: &Actor<'_>,
    ) -> Result<u32, StoreError> {
        let body = text("The agreement's text", body, true, 50_000)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let last: Option<i64> = sqlx::query(
            "SELECT MAX(version) FROM agreement_versions WHERE school_id = $1 AND audience = $2",
        )
        .bind(school)
        .bind(audience.as_str())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let version = last.unwrap_or(0) + 1;
        let id: i64 = sqlx::query(
            "INSERT INTO agreement_versions (school_id, audience, version, effective_on, body, published_by, published_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(school)
        .bind(audience.as_str())
        .bind(version)
        .bind(effective_on.to_string())
        .bind(&body)
        .bind(by.person)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::PublishAgreement,
                Subject::Register("agreements"),
            )
            .word("audience", audience.as_str())
            .count("version", version)
            .count("id", id),
        )
        .await?;
        tx.commit().await?;
        Ok(u32::try_from(version).unwrap_or(u32::MAX))
    }

    /// Every version of every audience's agreement, newest first.
    pub async fn agreement_versions(
        &self,
        school: i64,
    ) -> Result<Vec<AgreementVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.id, v.audience, v.version, v.effective_on, v.body, p.first_name || ' ' || p.last_name, v.published_at \
             FROM agreement_versions v JOIN people p ON p.id = v.published_by WHERE v.school_id = $1 ORDER BY v.audience, v.version DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AgreementVersion {
                    id: r.try_get(0)?,
                    audience: parse(&r.try_get::<String, _>(1)?)?,
                    version: u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
                    effective_on: parse(&r.try_get::<String, _>(3)?)?,
                    body: r.try_get(4)?,
                    published: (r.try_get(5)?, r.try_get(6)?),
                })
            })
            .collect()
    }

    /// Records a signature of the version given, for the person it is for. The version must
    /// be of the person's audience, and the date not in the future.
    pub async fn record_signature(
        &self,
        s: &NewSignature,
        today: jiff::civil::Date,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let signed_by = text("Who signed", &s.signed_by, true, MAX_SHORT)?;
        if s.signed_on > today {
            return Err(invalid("When it was signed is in the future."));
        }
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let audience: String =
            sqlx::query("SELECT audience FROM agreement_versions WHERE school_id = $1 AND id = $2")
                .bind(s.school)
                .bind(s.version)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| invalid(format!("There is no agreement version {}.", s.version)))?
                .try_get(0)?;
        let theirs = self.audience_of_tx(&mut tx, s.person).await?;
        if theirs.map(|a| a.as_str()) != Some(audience.as_str()) {
            return Err(invalid(format!(
                "That agreement is for {}; person {} signs {}.",
                audience,
                s.person,
                theirs.map_or("none", |a| a.as_str())
            )));
        }
        let id: i64 = sqlx::query(
            "INSERT INTO signatures (school_id, person_id, version_id, signed_on, how, signed_by, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(s.school)
        .bind(s.person)
        .bind(s.version)
        .bind(s.signed_on.to_string())
        .bind(if s.on_paper { "paper" } else { "online" })
        .bind(&signed_by)
        .bind(by.person)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::RecordSignature,
                Subject::Person(s.person),
            )
            .count("version", s.version)
            .word("how", if s.on_paper { "paper" } else { "online" }),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn audience_of_tx(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        person: i64,
    ) -> Result<Option<haven_registers::Audience>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT kind, year_group, (SELECT COUNT(*) FROM person_roles r WHERE r.person_id = p.id AND r.role IN ('governor', 'chair-of-governors')) \
             FROM people p WHERE id = $1 AND active = 1",
        )
        .bind(person)
        .fetch_optional(&mut **tx)
        .await?
        else {
            return Ok(None);
        };
        Ok(audience_from(
            &row.try_get::<String, _>(0)?,
            row.try_get::<Option<String>, _>(1)?.as_deref(),
            row.try_get::<i64, _>(2)? > 0,
        ))
    }

    /// Everyone an agreement is for (current pupils, staff, governors, parents), each with
    /// the version they last signed of their audience's agreement.
    pub async fn signers(&self, school: i64) -> Result<Vec<Signer>, StoreError> {
        let people = sqlx::query(
            "SELECT p.id, p.first_name || ' ' || p.last_name, COALESCE(p.class, ''), p.kind, p.year_group, \
             (SELECT COUNT(*) FROM person_roles r WHERE r.person_id = p.id AND r.role IN ('governor', 'chair-of-governors')) \
             FROM people p WHERE p.active = 1 ORDER BY p.kind, p.class, p.last_name, p.first_name",
        )
        .fetch_all(&self.pool)
        .await?;
        let signed = sqlx::query(
            "SELECT s.person_id, v.audience, v.version, s.signed_on FROM signatures s JOIN agreement_versions v ON v.id = s.version_id \
             WHERE s.school_id = $1",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let mut latest: std::collections::HashMap<(i64, String), (u32, jiff::civil::Date)> =
            Default::default();
        for r in signed {
            let key = (r.try_get::<i64, _>(0)?, r.try_get::<String, _>(1)?);
            let v = u32::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0);
            let on: jiff::civil::Date = parse(&r.try_get::<String, _>(3)?)?;
            let e = latest.entry(key).or_insert((v, on));
            if (v, on) > *e {
                *e = (v, on);
            }
        }
        let mut out = Vec::new();
        for r in people {
            let Some(audience) = audience_from(
                &r.try_get::<String, _>(3)?,
                r.try_get::<Option<String>, _>(4)?.as_deref(),
                r.try_get::<i64, _>(5)? > 0,
            ) else {
                continue;
            };
            let person: i64 = r.try_get(0)?;
            out.push(Signer {
                person,
                name: r.try_get(1)?,
                class: r.try_get(2)?,
                audience,
                latest: latest.remove(&(person, audience.as_str().to_owned())),
            });
        }
        Ok(out)
    }
}

/// Adds a dated line to a breach's actions: lines are only ever added, in order.
async fn append_action(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    school: i64,
    id: i64,
    now: i64,
    line: &str,
) -> Result<(), StoreError> {
    let stamp = jiff::Timestamp::from_millisecond(now)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let line = format!("{stamp}: {line}");
    sqlx::query(
        "UPDATE breaches SET actions = CASE WHEN actions = '' THEN $1 ELSE actions || $2 END WHERE school_id = $3 AND id = $4",
    )
    .bind(&line)
    .bind(format!("\n{line}"))
    .bind(school)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Whose agreement a person signs: a pupil's by year group; a governor's; staff's; a parent's.
fn audience_from(
    kind: &str,
    year: Option<&str>,
    governor: bool,
) -> Option<haven_registers::Audience> {
    use haven_registers::Audience as A;
    match kind {
        "pupil" => haven_registers::agreements::pupil_audience(year),
        "staff" if governor => Some(A::Governors),
        "staff" => Some(A::Staff),
        "parent" => Some(A::Parents),
        _ => None,
    }
}

/// A review of one of the school's policies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyReview {
    /// Id.
    pub id: i64,
    /// The policy's name.
    pub policy: String,
    /// When it was reviewed.
    pub reviewed_on: jiff::civil::Date,
    /// Who reviewed it (names).
    pub reviewed_by: String,
    /// The next review.
    pub next_on: jiff::civil::Date,
    /// What changed, or why nothing did.
    pub notes: String,
    /// The chair of governors' sign-off: who and when.
    pub signed_off: Option<(String, i64)>,
}

/// A reason a policy's review was brought forward (an incident, a change of technology).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewTrigger {
    /// The policy.
    pub policy: String,
    /// Why.
    pub reason: String,
    /// When (milliseconds).
    pub at_ms: i64,
    /// Who (name).
    pub by: String,
}

/// A search of a pupil or their device, and what became of anything confiscated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// Id.
    pub id: i64,
    /// The pupil (id, name).
    pub pupil: (i64, String),
    /// When.
    pub at_ms: i64,
    /// What was searched (a phone, a bag).
    pub device: String,
    /// Why.
    pub reason: String,
    /// Who authorised it (the headteacher or whom they authorised).
    pub authorised_by: String,
    /// Who searched.
    pub searched_by: String,
    /// The witness.
    pub witness: String,
    /// What was found.
    pub found: String,
    /// Where it is held.
    pub held: String,
    /// Returned: to whom and when.
    pub returned: Option<(String, i64)>,
    /// Handed to the police: the note (who, the reference).
    pub police: Option<String>,
    /// The safeguarding record it belongs to.
    pub record: Option<i64>,
}

/// A search to log.
#[derive(Debug, Clone)]
pub struct NewSearch {
    /// The school.
    pub school: i64,
    /// The pupil.
    pub pupil: i64,
    /// When.
    pub at_ms: i64,
    /// What was searched.
    pub device: String,
    /// Why.
    pub reason: String,
    /// Who authorised it.
    pub authorised_by: String,
    /// Who searched.
    pub searched_by: String,
    /// The witness.
    pub witness: String,
    /// What was found.
    pub found: String,
    /// Where it is held.
    pub held: String,
    /// The safeguarding record it belongs to.
    pub record: Option<i64>,
}

impl Store {
    /// Records a policy review (the next one a year on unless given): its id.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_policy_review(
        &self,
        school: i64,
        policy: &str,
        reviewed_on: jiff::civil::Date,
        reviewed_by: &str,
        next_on: Option<jiff::civil::Date>,
        notes: &str,
        today: jiff::civil::Date,
        by: &Actor<'_>,
    ) -> Result<i64, StoreError> {
        let policy = text("The policy", policy, true, MAX_SHORT)?;
        let reviewed_by = text("Who reviewed it", reviewed_by, true, MAX_SHORT)?;
        let notes = text("The notes", notes, false, MAX_TEXT)?;
        if reviewed_on > today {
            return Err(invalid("When it was reviewed is in the future."));
        }
        let next = match next_on {
            Some(n) if n <= reviewed_on => {
                return Err(invalid("The next review comes after this one."))
            }
            Some(n) => n,
            None => haven_registers::reviews::next_review(reviewed_on)
                .ok_or_else(|| invalid("That date is out of range."))?,
        };
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO policy_reviews (school_id, policy, reviewed_on, reviewed_by, next_on, notes, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(school)
        .bind(&policy)
        .bind(reviewed_on.to_string())
        .bind(&reviewed_by)
        .bind(next.to_string())
        .bind(&notes)
        .bind(by.person)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::PolicyReview,
                Subject::Register("policy reviews"),
            )
            .count("review", id),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Brings a policy's review forward (it is due now), with the reason.
    pub async fn bring_review_forward(
        &self,
        school: i64,
        policy: &str,
        reason: &str,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let policy = text("The policy", policy, true, MAX_SHORT)?;
        let reason = text("The reason", reason, true, MAX_TEXT)?;
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let known: i64 =
            sqlx::query("SELECT COUNT(*) FROM policy_reviews WHERE school_id = $1 AND policy = $2")
                .bind(school)
                .bind(&policy)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if known == 0 {
            return Err(invalid(format!(
                "{:?} has no review recorded yet: record its first review.",
                policy.chars().take(60).collect::<String>()
            )));
        }
        sqlx::query(
            "INSERT INTO policy_review_triggers (school_id, policy, reason, at, by_person) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(school)
        .bind(&policy)
        .bind(&reason)
        .bind(now_ms())
        .bind(by.person)
        .execute(&mut *tx)
        .await?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::PolicyReview,
                Subject::Register("policy reviews"),
            )
            .word("step", "brought forward"),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The chair of governors signs a review off.
    pub async fn sign_off_review(
        &self,
        school: i64,
        id: i64,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE policy_reviews SET signed_off_by = $1, signed_off_at = $2 WHERE school_id = $3 AND id = $4 AND signed_off_at IS NULL",
        )
        .bind(by.person)
        .bind(now_ms())
        .bind(school)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(invalid(format!(
                "Review {id} does not exist or is already signed off."
            )));
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::PolicyReview,
                Subject::Register("policy reviews"),
            )
            .word("step", "signed off")
            .count("review", id),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every review (newest first) and every reason a review was brought forward.
    pub async fn policy_reviews(
        &self,
        school: i64,
    ) -> Result<(Vec<PolicyReview>, Vec<ReviewTrigger>), StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.policy, r.reviewed_on, r.reviewed_by, r.next_on, r.notes, s.first_name || ' ' || s.last_name, r.signed_off_at \
             FROM policy_reviews r LEFT JOIN people s ON s.id = r.signed_off_by WHERE r.school_id = $1 ORDER BY r.reviewed_on DESC, r.id DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let reviews = rows
            .iter()
            .map(|r| {
                let at: Option<i64> = r.try_get(7)?;
                Ok(PolicyReview {
                    id: r.try_get(0)?,
                    policy: r.try_get(1)?,
                    reviewed_on: parse(&r.try_get::<String, _>(2)?)?,
                    reviewed_by: r.try_get(3)?,
                    next_on: parse(&r.try_get::<String, _>(4)?)?,
                    notes: r.try_get(5)?,
                    signed_off: at
                        .map(|at| {
                            Ok::<_, StoreError>((
                                r.try_get::<Option<String>, _>(6)?.unwrap_or_default(),
                                at,
                            ))
                        })
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = sqlx::query(
            "SELECT t.policy, t.reason, t.at, p.first_name || ' ' || p.last_name FROM policy_review_triggers t JOIN people p ON p.id = t.by_person \
             WHERE t.school_id = $1 ORDER BY t.at DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        let triggers = rows
            .iter()
            .map(|r| {
                Ok(ReviewTrigger {
                    policy: r.try_get(0)?,
                    reason: r.try_get(1)?,
                    at_ms: r.try_get(2)?,
                    by: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok((reviews, triggers))
    }

    /// Logs a search of a pupil or their device: its id.
    pub async fn log_search(&self, s: &NewSearch, by: &Actor<'_>) -> Result<i64, StoreError> {
        let now = now_ms();
        let device = text("What was searched", &s.device, true, MAX_SHORT)?;
        let reason = text("Why", &s.reason, true, MAX_TEXT)?;
        let authorised = text("Who authorised it", &s.authorised_by, true, MAX_SHORT)?;
        let searched = text("Who searched", &s.searched_by, true, MAX_SHORT)?;
        let witness = text("The witness", &s.witness, true, MAX_SHORT)?;
        let found = text("What was found", &s.found, false, MAX_TEXT)?;
        let held = text("Where it is held", &s.held, false, MAX_SHORT)?;
        if s.at_ms > now + 10 * 60_000 || s.at_ms < 0 {
            return Err(invalid("When it happened is in the future."));
        }
        if searched.eq_ignore_ascii_case(&witness) {
            return Err(invalid(
                "The witness is someone other than the member of staff who searched.",
            ));
        }
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let kind: Option<String> = sqlx::query("SELECT kind FROM people WHERE id = $1")
            .bind(s.pupil)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if kind.as_deref() != Some("pupil") {
            return Err(invalid(format!("Person {} is not a pupil here.", s.pupil)));
        }
        if let Some(r) = s.record {
            let n: i64 = sqlx::query(
                "SELECT COUNT(*) FROM records r JOIN record_children c ON c.record_id = r.id \
                 WHERE r.school_id = $1 AND r.id = $2 AND c.person_id = $3",
            )
            .bind(s.school)
            .bind(r)
            .bind(s.pupil)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            if n == 0 {
                return Err(invalid(format!(
                    "Record {r} is not a record about this pupil."
                )));
            }
        }
        let id: i64 = sqlx::query(
            "INSERT INTO searches (school_id, pupil_id, at, device, reason, authorised_by, searched_by, witness, found, held, record_id, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(s.school)
        .bind(s.pupil)
        .bind(s.at_ms)
        .bind(&device)
        .bind(&reason)
        .bind(&authorised)
        .bind(&searched)
        .bind(&witness)
        .bind(&found)
        .bind(&held)
        .bind(s.record)
        .bind(by.person)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::LogSearch,
                Subject::Person(s.pupil),
            )
            .count("search", id),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// What became of what was confiscated: returned (to whom, when) or handed to the police
    /// (the note). Each once.
    pub async fn search_outcome(
        &self,
        school: i64,
        id: i64,
        returned: Option<(&str, i64)>,
        police: Option<&str>,
        by: &Actor<'_>,
    ) -> Result<(), StoreError> {
        let _one = self.audit_guard().await;
        let mut tx = self.write_tx().await?;
        let done = match (returned, police) {
            (Some((to, at)), None) => {
                let to = text("Returned to", to, true, MAX_SHORT)?;
                if at > now_ms() + 10 * 60_000 {
                    return Err(invalid("When it was returned is in the future."));
                }
                sqlx::query(
                    "UPDATE searches SET returned_to = $1, returned_at = $2 WHERE school_id = $3 AND id = $4 AND returned_at IS NULL AND police IS NULL AND at <= $2",
                )
                .bind(&to)
                .bind(at)
                .bind(school)
                .bind(id)
                .execute(&mut *tx)
                .await?
            }
            (None, Some(note)) => {
                let note = text("The handover", note, true, MAX_SHORT)?;
                sqlx::query(
                    "UPDATE searches SET police = $1 WHERE school_id = $2 AND id = $3 AND returned_at IS NULL AND police IS NULL",
                )
                .bind(&note)
                .bind(school)
                .bind(id)
                .execute(&mut *tx)
                .await?
            }
            _ => {
                return Err(invalid(
                    "Say whether it was returned or handed to the police.",
                ))
            }
        };
        if done.rows_affected() != 1 {
            return Err(invalid(format!(
                "Search {id} does not exist, already has its outcome, or the return is dated before the search."
            )));
        }
        self.audit_in(
            &mut tx,
            &AuditEntry::new(
                by.username,
                by.address,
                AuditKind::LogSearch,
                Subject::Register("searches"),
            )
            .count("search", id)
            .word(
                "step",
                if police.is_some() {
                    "police"
                } else {
                    "returned"
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The search log, newest first.
    pub async fn searches(&self, school: i64) -> Result<Vec<Search>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.pupil_id, p.first_name || ' ' || p.last_name, s.at, s.device, s.reason, s.authorised_by, s.searched_by, s.witness, \
             s.found, s.held, s.returned_to, s.returned_at, s.police, s.record_id \
             FROM searches s JOIN people p ON p.id = s.pupil_id WHERE s.school_id = $1 ORDER BY s.at DESC, s.id DESC",
        )
        .bind(school)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let to: Option<String> = r.try_get(11)?;
                let at: Option<i64> = r.try_get(12)?;
                Ok(Search {
                    id: r.try_get(0)?,
                    pupil: (r.try_get(1)?, r.try_get(2)?),
                    at_ms: r.try_get(3)?,
                    device: r.try_get(4)?,
                    reason: r.try_get(5)?,
                    authorised_by: r.try_get(6)?,
                    searched_by: r.try_get(7)?,
                    witness: r.try_get(8)?,
                    found: r.try_get(9)?,
                    held: r.try_get(10)?,
                    returned: at.map(|at| (to.unwrap_or_default(), at)),
                    police: r.try_get(13)?,
                    record: r.try_get(14)?,
                })
            })
            .collect()
    }
}
