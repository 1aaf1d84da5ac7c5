//! The risk library: the phrases in force with their dismissal rates, the school's file
//! edited whole, changes that wait for a second person, and the learned model beside it
//! (which one is in force, and how the school's own did on the school's triage decisions).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use haven_store::reviews::ChangeStatus;
use serde::Deserialize;

use super::{url_encode, Flash, Layout};
use crate::web::{html, when, Denied, SessionForm, Signed};
use crate::Console;

struct LibraryRow {
    source: String,
    grade: String,
    category: String,
    phrase: String,
    unless: String,
    decided: u64,
    rate: String,
}

struct LibraryChangeRow {
    id: i64,
    when: String,
    author: String,
    note: String,
    status: ChangeStatus,
    /// Waiting for a second person.
    pending: bool,
    approver: String,
    /// For a pending change: the grade-5 phrases it switches off.
    switches_off: String,
    /// Whether the person reading wrote it (and so may not approve it).
    mine: bool,
}

/// The learned model as the page shows it.
struct ModelView {
    /// Whether the details below could be read at all.
    read: bool,
    /// Which model is in force (`None`: grading by the library alone).
    in_force: Option<ModelInForce>,
    /// What `haven monitor train --with-decisions` last found (`school.json`).
    report: Option<ReportView>,
    /// Why `school.json` could not be read, when it could not.
    report_error: String,
    /// The first hex digits of the SHA-256 of the page model the proxy classifies pages with.
    page_sha: String,
}

struct ModelInForce {
    /// "The built-in model" or "The school's own model".
    source: String,
    /// For the school's own: when it was trained.
    trained: String,
    /// Megabytes it holds in memory, e.g. "4.7 MB".
    memory: String,
    /// The first 12 hex digits of its SHA-256.
    sha: String,
}

struct ReportView {
    when: String,
    sha: String,
    /// Whether the model it describes is the one in force (else it waits for a restart).
    in_force: bool,
    built_in: usize,
    decisions: usize,
    promoted: usize,
    dismissed: usize,
    before_precision: String,
    before_recall: String,
    after_precision: String,
    after_recall: String,
}

/// How many hex digits of a model's SHA-256 the page shows: enough to tell models apart.
const SHA_SHOWN: usize = 12;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `75% (3 of 4)`, or `–` when there is nothing to count.
fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!(
            "{:.0}% ({part} of {whole})",
            100.0 * part as f64 / whole as f64
        )
    }
}

fn precision(d: &haven_monitor::training::OnDecisions) -> String {
    share(d.promoted_kept, d.promoted_kept + d.dismissed_kept)
}

fn recall(d: &haven_monitor::training::OnDecisions) -> String {
    share(d.promoted_kept, d.promoted)
}

/// The model in force and the school's report, read from the data directory (the one that
/// holds `risk/`, as monitoring reads it), on a blocking thread: hashing a model of a few MB
/// takes milliseconds, which a server answering DNS on the same runtime should not wait for.
/// Nothing here is a pupil's: the report holds counts.
async fn model_view(monitoring: &std::sync::Arc<haven_monitor::Monitoring>) -> ModelView {
    let monitoring = monitoring.clone();
    tokio::task::spawn_blocking(move || read_model_view(&monitoring))
        .await
        .unwrap_or_else(|_| ModelView {
            read: false,
            in_force: None,
            report: None,
            report_error: String::new(),
            page_sha: String::new(),
        })
}

fn read_model_view(monitoring: &haven_monitor::Monitoring) -> ModelView {
    use haven_monitor::library::ModelSource;
    let school_file = monitoring.school_file();
    let data_dir = school_file
        .parent()
        .and_then(std::path::Path::parent)
        .unwrap_or_else(|| std::path::Path::new("."));
    let mut report_error = String::new();
    let report_path = haven_monitor::training::school_report_path(data_dir);
    let report: Option<haven_monitor::training::SchoolReport> = match std::fs::read(&report_path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                report_error = format!("{} cannot be read: {e}", report_path.display());
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            report_error = format!("{} cannot be read: {e}", report_path.display());
            None
        }
    };
    let in_force = monitoring.model().map(|(model, source)| {
        let sha = model_sha(&model);
        (model.memory(), sha, source)
    });
    // The report describes the model in force only when the school's own is in force with
    // the report's checksum (a model trained since waits for a restart).
    let sha_in_force = in_force
        .as_ref()
        .filter(|(_, _, source)| *source == ModelSource::School)
        .map(|(_, sha, _)| sha.as_str());
    let report_view = report.map(|r| ReportView {
        when: when(r.at_ms),
        sha: r.sha256.chars().take(SHA_SHOWN).collect(),
        in_force: Some(r.sha256.as_str()) == sha_in_force,
        built_in: r.built_in,
        decisions: r.decisions,
        promoted: r.before.promoted,
        dismissed: r.before.dismissed,
        before_precision: precision(&r.before),
        before_recall: recall(&r.before),
        after_precision: precision(&r.after),
        after_recall: recall(&r.after),
    });
    let in_force = in_force.map(|(memory, sha, source)| ModelInForce {
        source: match source {
            ModelSource::BuiltIn => "The built-in model".into(),
            ModelSource::School => "The school's own model".into(),
        },
        trained: match source {
            ModelSource::BuiltIn => String::new(),
            ModelSource::School => match &report_view {
                Some(r) if r.in_force => r.when.clone(),
                _ => modified(&haven_monitor::library::school_model_path(data_dir)),
            },
        },
        memory: format!("{:.1} MB", memory as f64 / 1e6),
        sha: sha.chars().take(SHA_SHOWN).collect(),
    });
    ModelView {
        read: true,
        in_force,
        report: report_view,
        report_error,
        page_sha: page_model_sha().to_owned(),
    }
}

/// The SHA-256 of the model in force, worked out once a model: the page asks on every view, and
/// serialising and hashing 4.7 MB each time cost about half a second in a debug build. A model
/// reloaded (SIGHUP, a retrained school model) is a new `Arc`, so it is hashed afresh.
fn model_sha(model: &std::sync::Arc<haven_model::Model>) -> String {
    type Last = Option<(std::sync::Arc<haven_model::Model>, String)>;
    static LAST: std::sync::Mutex<Last> = std::sync::Mutex::new(None);
    let mut last = LAST
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*last {
        Some((m, sha)) if std::sync::Arc::ptr_eq(m, model) => sha.clone(),
        _ => {
            let sha = hex(ring::digest::digest(&ring::digest::SHA256, &model.to_bytes()).as_ref());
            *last = Some((model.clone(), sha.clone()));
            sha
        }
    }
}

/// The page model's checksum, worked out once (it is compiled in and never changes).
fn page_model_sha() -> &'static str {
    static SHA: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SHA.get_or_init(|| {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            haven_monitor::training::BUILT_IN_PAGE_MODEL,
        );
        hex(d.as_ref()).chars().take(SHA_SHOWN).collect()
    })
}

/// When a file was last written, as the console shows times (empty when unknown).
fn modified(path: &std::path::Path) -> String {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .map(when)
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "library.html")]
struct LibraryPage {
    l: Layout,
    rows: Vec<LibraryRow>,
    text: String,
    note: String,
    errors: Vec<String>,
    changes: Vec<LibraryChangeRow>,
    model: ModelView,
    message: String,
}

async fn library_page(
    c: &Console,
    s: &Signed,
    text: Option<String>,
    note: String,
    errors: Vec<String>,
    message: String,
) -> Result<Response, Denied> {
    let records: std::collections::HashMap<String, (u64, u64)> = c
        .store
        .phrase_records()
        .await?
        .into_iter()
        .map(|p| (p.phrase, (p.decided, p.dismissed)))
        .collect();
    let in_force = c.monitoring.library();
    let in_force: std::collections::HashSet<&str> =
        in_force.phrases.iter().map(|q| q.text.as_str()).collect();
    let mut rows = Vec::new();
    for source in c.monitoring.sources() {
        for p in &source.library.phrases {
            let (decided, dismissed) = records.get(&p.text).copied().unwrap_or((0, 0));
            let off = !in_force.contains(p.text.as_str());
            rows.push(LibraryRow {
                source: source.name.clone(),
                grade: match (p.grade, off) {
                    (0, false) => "sign".to_owned(),
                    (0, true) => "sign (off)".to_owned(),
                    (g, true) => format!("{g} (off)"),
                    (g, false) => g.to_string(),
                },
                category: p.category.clone(),
                phrase: p.text.clone(),
                unless: p.unless.join("; "),
                decided,
                rate: if decided == 0 {
                    "–".into()
                } else {
                    format!("{:.0}%", 100.0 * dismissed as f64 / decided as f64)
                },
            });
        }
        for safe in &source.library.safe {
            rows.push(LibraryRow {
                source: source.name.clone(),
                grade: "safe".into(),
                category: safe.category.clone(),
                phrase: safe.text.clone(),
                unless: String::new(),
                decided: 0,
                rate: "–".into(),
            });
        }
    }
    let changes = c
        .store
        .library_changes(20)
        .await?
        .into_iter()
        .map(|ch| LibraryChangeRow {
            id: ch.id,
            when: when(ch.at_ms),
            switches_off: if ch.status == ChangeStatus::Pending {
                c.monitoring
                    .grade_5_switched_off(&c.monitoring.school_text(), &ch.text)
                    .join("; ")
            } else {
                String::new()
            },
            mine: ch.author == s.who.username,
            author: ch.author,
            note: ch.note,
            pending: ch.status == ChangeStatus::Pending,
            status: ch.status,
            approver: ch.approver.unwrap_or_default(),
        })
        .collect();
    Ok(html(&LibraryPage {
        l: c.layout("Risk library", Some(s)),
        rows,
        text: text.unwrap_or_else(|| c.monitoring.school_text()),
        note,
        errors,
        changes,
        model: model_view(&c.monitoring).await,
        message,
    }))
}

pub(super) async fn library(
    State(c): State<Console>,
    s: Signed,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    library_page(&c, &s, None, String::new(), Vec::new(), flash.done).await
}

#[derive(Deserialize)]
pub struct LibraryForm {
    csrf: String,
    text: String,
    #[serde(default)]
    note: String,
}

/// Replaces the school's risk library file: checked whole (an error on any line changes
/// nothing), written, recorded with the author, reason and the hash of the text it replaced,
/// audited, and in force for the next text graded.
pub(super) async fn library_save(
    State(c): State<Console>,
    s: Signed,
    SessionForm(f): SessionForm<LibraryForm>,
) -> Result<Response, Denied> {
    let text = f.text.replace("\r\n", "\n");
    if f.note.trim().is_empty() {
        return library_page(
            &c,
            &s,
            Some(text),
            f.note,
            vec!["Say why the library changes: the reason is kept with the change.".into()],
            String::new(),
        )
        .await;
    }
    let before = c.monitoring.school_text();
    let before_hash = haven_store::sessions::secret_hash(&before);
    // Switching off a built-in grade-5 phrase waits for a second person: checked whole now,
    // recorded, and in force only once someone else approves it; anything else is in force now.
    let switched_off = c.monitoring.grade_5_switched_off(&before, &text);
    let pending = !switched_off.is_empty();
    let checked = if pending {
        c.monitoring.check_school(&text)
    } else {
        c.monitoring.replace_school(&text)
    };
    if let Err(e) = checked {
        let errors = library_errors(e);
        return library_page(&c, &s, Some(text), f.note, errors, String::new()).await;
    }
    let (status, kind) = if pending {
        (ChangeStatus::Pending, AuditKind::ProposeRiskLibraryChange)
    } else {
        (ChangeStatus::Applied, AuditKind::ChangeRiskLibrary)
    };
    let id = c
        .store
        .record_library_change(&s.who.username, &f.note, &before_hash, &text, status)
        .await?;
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            kind,
            Subject::LibraryChange(id),
        ))
        .await?;
    let done = if pending {
        format!(
            "Library change {id} switches off grade-5 phrases ({}): it waits for a second person to approve it.",
            switched_off.join("; ")
        )
    } else {
        format!("Library change {id} is in force.")
    };
    Ok(Redirect::to(&format!("/library?done={}", url_encode(&done))).into_response())
}

fn library_errors(e: haven_monitor::library::ReplaceError) -> Vec<String> {
    match e {
        haven_monitor::library::ReplaceError::Invalid(errors) => errors
            .into_iter()
            .map(|e| format!("line {}: {}", e.line, e.message))
            .collect(),
        other => vec![other.to_string()],
    }
}

#[derive(Deserialize)]
pub struct SettleForm {
    csrf: String,
    decision: String,
}

/// Approves or rejects a library change waiting for a second person: never by its author;
/// one written against a school file that has changed since must be made again.
pub(super) async fn library_settle(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    SessionForm(f): SessionForm<SettleForm>,
) -> Result<Response, Denied> {
    let approve = crate::web::decision(&f.decision, "approve", "reject")?;
    let change = c.store.library_change(id).await?.ok_or(Denied::NotFound)?;
    if change.status != ChangeStatus::Pending {
        return Err(Denied::Invalid(format!(
            "Library change {id} is already {}.",
            change.status
        )));
    }
    // The author may withdraw their own change, never approve it.
    if approve && change.author == s.who.username {
        return Err(Denied::Invalid(
            "A change needs a second person: someone else must approve it.".into(),
        ));
    }
    if approve {
        let now = haven_store::sessions::secret_hash(&c.monitoring.school_text());
        if now != change.before_hash {
            return Err(Denied::Invalid(format!(
                "The school's phrases have changed since library change {id} was made; it must be made again."
            )));
        }
        c.monitoring
            .replace_school(&change.text)
            .map_err(|e| Denied::Invalid(format!("Library change {id}: {e}")))?;
    }
    let status = if approve {
        ChangeStatus::Applied
    } else {
        ChangeStatus::Rejected
    };
    if !c
        .store
        .settle_library_change(id, status, &s.who.username)
        .await?
    {
        return Err(Denied::Invalid(format!(
            "Library change {id} was settled meanwhile."
        )));
    }
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            if approve {
                AuditKind::ApproveRiskLibraryChange
            } else {
                AuditKind::RejectRiskLibraryChange
            },
            Subject::LibraryChange(id),
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/library?done={}",
        url_encode(&format!("Library change {id} {status}."))
    ))
    .into_response())
}

crate::web::csrf_field!(LibraryForm, SettleForm);
