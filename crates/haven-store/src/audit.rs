//! The audit log: every read of a person's activity or safeguarding data and every change —
//! who, what, when, from where.
//!
//! An entry is built from a kind ([`AuditKind`]), a subject named by its id ([`Subject`]) and
//! facts that are fixed words or numbers ([`Fact`]): nothing a person typed (a capture's words,
//! a search, a reason, a pupil's name) has a way in. The audit log is read by roles that must
//! not see safeguarding records (the administrator, the DPO); it says that something happened
//! and to which record, and the record itself stays behind its own permission.
//!
//! Each entry carries an HMAC-SHA256, under a key kept outside the database
//! (`audit.key`, [`AuditKey`]), of the code of the entry before it and of its own fields, so an
//! entry changed, removed or inserted afterwards breaks the chain, and recomputing the chain
//! from an edited entry onward needs the key, which the database does not hold. `haven audit
//! anchor` prints the newest entry's id and code, themselves coded, to keep off the box: a
//! chain rewritten even by someone holding the key no longer contains the anchor.
//!
//! Entries written before the key (Haven before this change) carry the unkeyed SHA-256 chain
//! and free-text details. They are kept as written, so that their chain still checks, but the
//! key file records the last of them (`unkeyed-through`): they are checked by their old hash,
//! never shown with their subject and details, and no unkeyed entry is accepted after them.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sqlx::Row as _;

use crate::{now_ms, Backend, Store, StoreError};

/// The hash before the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The key file's name, in the data directory.
pub const KEY_FILE: &str = "audit.key";

/// What an entry of the unkeyed era shows instead of its subject and details.
pub const WITHHELD: &str = "(written before entries held only ids: withheld)";

/// What was done. Each kind is a fixed phrase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditKind {
    /// Signed in with a password.
    SignIn,
    /// A password refused (the first of a run: the rest are counted when the account locks
    /// or signs in).
    SignInRefused,
    /// Too many wrong passwords in a row: the account waits.
    AccountLocked,
    /// A second-factor code refused (the first of a run, as for passwords).
    SecondFactorRefused,
    /// Too many wrong second-factor codes in a row: the step waits.
    SecondFactorLocked,
    /// Too many failures from one address: it waits.
    AddressThrottled,
    /// Passed the second factor.
    SecondFactor,
    /// Set up a second factor.
    EnrolSecondFactor,
    /// Signed out.
    SignOut,
    /// Searched activity, or read a person's timeline.
    ReadActivity,
    /// Searched for people by name or user name.
    SearchPeople,
    /// Read the review queue.
    ReadReviews,
    /// Approved a review request.
    ApproveReview,
    /// Declined a review request.
    DeclineReview,
    /// Read the list of open captures.
    ReadCaptures,
    /// Opened one capture.
    ReadCapture,
    /// Read the decided captures' texts to teach the school's model.
    TrainModel,
    /// Promoted a capture to a safeguarding concern.
    PromoteCapture,
    /// Dismissed a capture.
    DismissCapture,
    /// Text from another capture source stored as a capture.
    IngestCapture,
    /// Changed the policy (in force at once).
    ChangePolicy,
    /// Proposed a policy change for approval.
    ProposePolicyChange,
    /// Approved a policy change.
    ApprovePolicyChange,
    /// Rejected a policy change.
    RejectPolicyChange,
    /// Changed the school's risk library (in force at once).
    ChangeRiskLibrary,
    /// Proposed a risk library change that needs a second person.
    ProposeRiskLibraryChange,
    /// Approved a risk library change.
    ApproveRiskLibraryChange,
    /// Rejected a risk library change.
    RejectRiskLibraryChange,
    /// Created an API token.
    CreateApiToken,
    /// Revoked an API token.
    RevokeApiToken,
    /// Listed API tokens.
    ListApiTokens,
    /// Read the audit log.
    ReadAuditLog,
    /// Checked the audit log's chain.
    VerifyAuditLog,
    /// Took an anchor of the audit log.
    AnchorAuditLog,
    /// Rebuilt the lists.
    RebuildLists,
    /// Imported devices.
    ImportDevices,
    /// Added or changed a network.
    SetNetwork,
    /// Removed a network.
    RemoveNetwork,
    /// Imported people from the MIS.
    ImportPeople,
    /// Set a person's password.
    SetPassword,
    /// Set a person's proxy password.
    SetProxyPassword,
    /// Signed out one's own other sessions.
    SignOutElsewhere,
    /// Logged a safeguarding concern (or an allegation about staff).
    LogConcern,
    /// Read the list of safeguarding records (open cases, clocks).
    ReadRecords,
    /// Opened one safeguarding record.
    ReadRecord,
    /// Opened a record outside one's own cases, with a typed reason (flagged to the DSL).
    BreakGlass,
    /// Read a child's chronology.
    ReadChronology,
    /// Read the concerns one wrote.
    ReadOwnConcerns,
    /// Added an entry to a chronology (an action, decision, meeting, contact).
    AddEntry,
    /// Corrected a chronology entry (the old one kept, superseded).
    CorrectEntry,
    /// Ticked or skipped a procedure step.
    TickStep,
    /// Recorded a referral or escalation.
    AddReferral,
    /// Recorded a referral's outcome.
    UpdateReferral,
    /// Closed a case with its outcome.
    CloseRecord,
    /// Shared an allegation with the DSL.
    ShareRecord,
    /// Added sealed evidence to a record.
    AddEvidence,
    /// Downloaded a piece of evidence (opened from its seal).
    OpenEvidence,
    /// Viewed a possible nude image, with a typed justification (blurred first).
    ViewPossibleNude,
    /// Sealed a piece of evidence again under the school's newest key.
    ResealEvidence,
    /// Added a key to the school's vault (a rotation).
    RotateKey,
    /// Noted a concern told in person, to be written up by its teller.
    NoteToldInPerson,
    /// Read the governors' report (counts only).
    ReadReport,
    /// Gave a pupil's case to a holder.
    AssignCase,
    /// Put a record on legal hold, or lifted the hold.
    LegalHold,
    /// Deleted a record past its retention: the tombstone.
    DeleteRecord,
    /// Read the retention review queue.
    ReadRetention,
    /// Recorded a child's file sent to their new school.
    TransferFile,
    /// Recorded the new school's receipt of a file.
    TransferReceipt,
    /// Exported a person's records for a subject-access request.
    SubjectAccessExport,
    /// Imported a child's file sent by their previous school.
    ImportTransfer,
    /// Printed a child's chronology, or a paper transfer pack, to PDF.
    PrintChronology,
    /// Recorded an image-consent decision.
    RecordConsent,
    /// Read pupils' image consents (a register, a photo check, an export).
    ReadConsents,
    /// Logged a data breach.
    LogBreach,
    /// Changed a data breach's entry (the reporting decision, the report, actions, sign-off).
    UpdateBreach,
    /// Read the data-breach log.
    ReadBreaches,
    /// Recorded staff training (one completion or a file of them).
    RecordTraining,
    /// Published a version of an acceptable-use agreement.
    PublishAgreement,
    /// Recorded a signature of an acceptable-use agreement.
    RecordSignature,
    /// Read who has signed the acceptable-use agreements.
    ReadAgreements,
    /// Recorded, brought forward or signed off a policy review.
    PolicyReview,
    /// Read the policy reviews.
    ReadPolicyReviews,
    /// Logged a search (or what became of what was confiscated).
    LogSearch,
    /// Read the search and confiscation log.
    ReadSearches,
    /// Read the training register.
    ReadTraining,
}

impl AuditKind {
    /// Its phrase, as stored and shown.
    pub fn as_str(self) -> &'static str {
        use AuditKind as K;
        match self {
            K::SignIn => "sign in",
            K::SignInRefused => "sign-in refused",
            K::AccountLocked => "account locked",
            K::SecondFactorRefused => "second factor refused",
            K::SecondFactorLocked => "second factor locked",
            K::AddressThrottled => "address throttled",
            K::SecondFactor => "second factor",
            K::EnrolSecondFactor => "enrol second factor",
            K::SignOut => "sign out",
            K::ReadActivity => "read activity",
            K::SearchPeople => "search people",
            K::ReadReviews => "read reviews",
            K::ApproveReview => "approve review",
            K::DeclineReview => "decline review",
            K::ReadCaptures => "read captures",
            K::ReadCapture => "read capture",
            K::TrainModel => "train model",
            K::PromoteCapture => "promote capture",
            K::DismissCapture => "dismiss capture",
            K::IngestCapture => "ingest capture",
            K::ChangePolicy => "change policy",
            K::ProposePolicyChange => "propose policy change",
            K::ApprovePolicyChange => "approve policy change",
            K::RejectPolicyChange => "reject policy change",
            K::ChangeRiskLibrary => "change risk library",
            K::ProposeRiskLibraryChange => "propose risk library change",
            K::ApproveRiskLibraryChange => "approve risk library change",
            K::RejectRiskLibraryChange => "reject risk library change",
            K::CreateApiToken => "create API token",
            K::RevokeApiToken => "revoke API token",
            K::ListApiTokens => "list API tokens",
            K::ReadAuditLog => "read audit log",
            K::VerifyAuditLog => "verify audit log",
            K::AnchorAuditLog => "anchor audit log",
            K::RebuildLists => "rebuild lists",
            K::ImportDevices => "import devices",
            K::SetNetwork => "set network",
            K::RemoveNetwork => "remove network",
            K::ImportPeople => "import people",
            K::SetPassword => "set password",
            K::SetProxyPassword => "set proxy password",
            K::SignOutElsewhere => "sign out elsewhere",
            K::LogConcern => "log concern",
            K::ReadRecords => "read records",
            K::ReadRecord => "read record",
            K::BreakGlass => "break glass",
            K::ReadChronology => "read chronology",
            K::ReadOwnConcerns => "read own concerns",
            K::AddEntry => "add chronology entry",
            K::CorrectEntry => "correct chronology entry",
            K::TickStep => "tick procedure step",
            K::AddReferral => "add referral",
            K::UpdateReferral => "update referral",
            K::CloseRecord => "close record",
            K::ShareRecord => "share record",
            K::AddEvidence => "add evidence",
            K::OpenEvidence => "open evidence",
            K::ViewPossibleNude => "view possible nude image",
            K::ResealEvidence => "reseal evidence",
            K::RotateKey => "rotate key",
            K::NoteToldInPerson => "note told in person",
            K::ReadReport => "read report",
            K::AssignCase => "assign case",
            K::LegalHold => "legal hold",
            K::DeleteRecord => "delete record",
            K::ReadRetention => "read retention queue",
            K::TransferFile => "transfer file",
            K::TransferReceipt => "transfer receipt",
            K::SubjectAccessExport => "subject-access export",
            K::ImportTransfer => "import transfer",
            K::PrintChronology => "print chronology",
            K::RecordConsent => "record consent",
            K::ReadConsents => "read consents",
            K::LogBreach => "log breach",
            K::UpdateBreach => "update breach",
            K::ReadBreaches => "read breaches",
            K::RecordTraining => "record training",
            K::PublishAgreement => "publish agreement",
            K::RecordSignature => "record signature",
            K::ReadAgreements => "read agreements",
            K::PolicyReview => "policy review",
            K::ReadPolicyReviews => "read policy reviews",
            K::LogSearch => "log search",
            K::ReadSearches => "read searches",
            K::ReadTraining => "read training",
        }
    }
}

/// What an entry was done to, by its id: never a name or a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// Nothing in particular.
    Nothing,
    /// Everyone's activity (a search not narrowed to a person or device).
    Everyone,
    /// A person, by id.
    Person(i64),
    /// A device, by address.
    Device(std::net::IpAddr),
    /// A network: its address and prefix length.
    Network(std::net::IpAddr, u8),
    /// A capture.
    Capture(i64),
    /// A review request.
    Review(i64),
    /// A policy change.
    PolicyChange(i64),
    /// A change to the school's risk library.
    LibraryChange(i64),
    /// An API token.
    Token(i64),
    /// An MIS import of one kind of person (`pupil`, `staff`, `parent`).
    Roster(&'static str),
    /// The filter's lists.
    Lists,
    /// The device table.
    Devices,
    /// The open captures.
    OpenCaptures,
    /// The captures someone has decided (dismissed or promoted).
    DecidedCaptures,
    /// The review queue.
    ReviewQueue,
    /// The audit log itself.
    AuditLog,
    /// A safeguarding record (a concern and what followed).
    Record(i64),
    /// An entry of a chronology.
    Entry(i64),
    /// A referral.
    Referral(i64),
    /// The safeguarding records of the school (a list, the clocks).
    Records,
    /// A piece of evidence.
    Evidence(i64),
    /// An entry of the data-breach log.
    Breach(i64),
    /// A register of the school (consents, breaches, training), as a whole.
    Register(&'static str),
}

impl Subject {
    /// A network from its `ADDRESS/PREFIX` or `ADDRESS` text; [`Subject::Nothing`] if it is
    /// neither.
    pub fn network(cidr: &str) -> Subject {
        let (addr, len) = cidr.split_once('/').unwrap_or((cidr, ""));
        match addr.trim().parse::<std::net::IpAddr>() {
            Ok(ip) => {
                let full = if ip.is_ipv4() { 32 } else { 128 };
                Subject::Network(ip, len.trim().parse().unwrap_or(full).min(full))
            }
            Err(_) => Subject::Nothing,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Nothing => Ok(()),
            Subject::Everyone => f.write_str("all activity"),
            Subject::Person(id) => write!(f, "person {id}"),
            Subject::Device(ip) => write!(f, "device {ip}"),
            Subject::Network(ip, len) => write!(f, "network {ip}/{len}"),
            Subject::Capture(id) => write!(f, "capture {id}"),
            Subject::Review(id) => write!(f, "review {id}"),
            Subject::PolicyChange(id) => write!(f, "policy change {id}"),
            Subject::LibraryChange(id) => write!(f, "library change {id}"),
            Subject::Token(id) => write!(f, "API token {id}"),
            Subject::Roster(kind) => write!(f, "{kind} roster"),
            Subject::Lists => f.write_str("lists"),
            Subject::Devices => f.write_str("devices"),
            Subject::OpenCaptures => f.write_str("open captures"),
            Subject::DecidedCaptures => f.write_str("decided captures"),
            Subject::ReviewQueue => f.write_str("review queue"),
            Subject::AuditLog => f.write_str("audit log"),
            Subject::Record(id) => write!(f, "record {id}"),
            Subject::Entry(id) => write!(f, "chronology entry {id}"),
            Subject::Referral(id) => write!(f, "referral {id}"),
            Subject::Records => f.write_str("safeguarding records"),
            Subject::Evidence(id) => write!(f, "evidence {id}"),
            Subject::Breach(id) => write!(f, "breach {id}"),
            Subject::Register(name) => write!(f, "{name} register"),
        }
    }
}

/// A fact about an entry: a fixed word and a number, or two fixed words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    /// `what=n`.
    Count(&'static str, i64),
    /// `what=word`.
    Word(&'static str, &'static str),
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Count(what, n) => write!(f, "{what}={n}"),
            Fact::Word(what, w) => write!(f, "{what}={w}"),
        }
    }
}

/// Something to record: who, from where, what, to which record, and facts that are words
/// fixed in the code or numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    actor: &'a str,
    address: &'a str,
    kind: AuditKind,
    subject: Subject,
    facts: Vec<Fact>,
}

impl<'a> AuditEntry<'a> {
    /// `actor` (a member of staff's user name, `cli:…` for the command line, `haven` for the
    /// system) did `kind` to `subject` from `address` (an address, or `cli`).
    pub fn new(actor: &'a str, address: &'a str, kind: AuditKind, subject: Subject) -> Self {
        AuditEntry {
            actor,
            address,
            kind,
            subject,
            facts: Vec::new(),
        }
    }

    /// With `what=n`.
    #[must_use]
    pub fn count(mut self, what: &'static str, n: i64) -> Self {
        self.facts.push(Fact::Count(what, n));
        self
    }

    /// With `what=word`.
    #[must_use]
    pub fn word(mut self, what: &'static str, word: &'static str) -> Self {
        self.facts.push(Fact::Word(what, word));
        self
    }

    /// The facts as stored.
    fn detail(&self) -> String {
        self.facts
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An entry from its row (`id, at, actor, address, action, subject, detail, hash`), its subject
/// and details withheld when it is of the unkeyed era (`id <= through`).
fn audit_record(r: &sqlx::any::AnyRow, through: i64) -> Result<AuditRecord, StoreError> {
    let id: i64 = r.try_get(0)?;
    let unkeyed = id <= through;
    let shown = |i: usize| -> Result<String, StoreError> {
        Ok(if unkeyed {
            WITHHELD.to_owned()
        } else {
            r.try_get(i)?
        })
    };
    Ok(AuditRecord {
        id,
        at_ms: r.try_get(1)?,
        actor: r.try_get(2)?,
        address: r.try_get(3)?,
        action: r.try_get(4)?,
        subject: shown(5)?,
        detail: shown(6)?,
        hash: r.try_get(7)?,
    })
}

/// One entry as stored. Entries of the unkeyed era show [`WITHHELD`] for their subject and
/// details.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRecord {
    /// Its number.
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// Who.
    pub actor: String,
    /// From where.
    pub address: String,
    /// What kind of thing.
    pub action: String,
    /// To what (a record's kind and id).
    pub subject: String,
    /// Facts (fixed words and numbers).
    pub detail: String,
    /// This entry's code.
    pub hash: String,
}

/// The result of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditCheck {
    /// Every entry is as written.
    Intact {
        /// Entries checked.
        entries: u64,
    },
    /// The first entry that does not follow from the ones before it.
    Broken {
        /// Its id.
        id: i64,
        /// What is wrong.
        why: String,
    },
}

/// The key that codes the chain, with the last entry written before there was one. Kept in
/// `audit.key` (mode 0600) in the data directory, never in the database.
pub struct AuditKey {
    key: ring::hmac::Key,
    unkeyed_through: i64,
    path: PathBuf,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditKey")
            .field("path", &self.path)
            .field("unkeyed_through", &self.unkeyed_through)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why the audit key file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum KeyFileError {
    #[error("the key is not 64 hex digits")]
    NotHex,
    #[error("unkeyed-through is not a number")]
    NotANumber,
    #[error("a line that is not `key HEX` or `unkeyed-through N`")]
    UnknownLine,
    #[error("no `key` line")]
    NoKey,
    #[error("no `unkeyed-through` line")]
    NoUnkeyedThrough,
}

/// Why an anchor's text is not an anchor taken with this key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum AnchorError {
    #[error("not an anchor: `haven-audit-anchor id=N hash=HEX taken=MS code=HEX`")]
    NoCode,
    #[error("not an anchor: it must start `haven-audit-anchor`")]
    NoStart,
    #[error("not an anchor: no {0}")]
    Missing(&'static str),
    #[error("the anchor's id is not a number")]
    Id,
    #[error("the anchor's time is not a number")]
    Time,
    #[error(
        "the anchor's code does not fit this audit key: it was altered, or taken with another key"
    )]
    Code,
}

impl AuditKey {
    /// Reads `<dir>/audit.key`, or makes it (32 random bytes, mode 0600) recording
    /// `last_unkeyed` (the newest entry already in the database) as the end of the unkeyed era.
    /// Two processes making it at once agree: the second reads the first's.
    pub fn load_or_create(dir: &Path, last_unkeyed: i64) -> Result<AuditKey, StoreError> {
        let path = dir.join(KEY_FILE);
        let bad = |why: String| StoreError::Invalid(format!("{}: {why}", path.display()));
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return AuditKey::parse(&text, path.clone()).map_err(|e| bad(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bad(e.to_string())),
        }
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| bad("the system's random source failed".into()))?;
        let text = format!(
            "# Haven's audit key: it codes the audit log's chain. Keep it secret, keep a copy off\n\
             # this machine, and give every node sharing one PostgreSQL database the same file.\n\
             key {}\nunkeyed-through {last_unkeyed}\n",
            hex(&bytes)
        );
        std::fs::create_dir_all(dir).map_err(|e| bad(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut f) => {
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| bad(e.to_string()))?;
                AuditKey::parse(&text, path.clone()).map_err(|e| bad(e.to_string()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
                AuditKey::parse(&text, path.clone()).map_err(|e| bad(e.to_string()))
            }
            Err(e) => Err(bad(e.to_string())),
        }
    }

    fn parse(text: &str, path: PathBuf) -> Result<AuditKey, KeyFileError> {
        let mut key = None;
        let mut through = None;
        for line in text.lines().map(str::trim) {
            if let Some(k) = line.strip_prefix("key ") {
                key = Some(
                    unhex(k.trim())
                        .filter(|k| k.len() >= 32)
                        .ok_or(KeyFileError::NotHex)?,
                );
            } else if let Some(n) = line.strip_prefix("unkeyed-through ") {
                through = Some(
                    n.trim()
                        .parse::<i64>()
                        .map_err(|_| KeyFileError::NotANumber)?,
                );
            } else if !line.is_empty() && !line.starts_with('#') {
                return Err(KeyFileError::UnknownLine);
            }
        }
        Ok(AuditKey {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key.ok_or(KeyFileError::NoKey)?),
            unkeyed_through: through.ok_or(KeyFileError::NoUnkeyedThrough)?,
            path,
        })
    }

    /// Where it is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sign(&self, text: &str) -> String {
        hex(ring::hmac::sign(&self.key, text.as_bytes()).as_ref())
    }

    fn check(&self, text: &str, code: &str) -> bool {
        unhex(code).is_some_and(|c| ring::hmac::verify(&self.key, text.as_bytes(), &c).is_ok())
    }
}

/// The fields of an entry, in the order they are coded.
struct Fields<'a> {
    at: i64,
    actor: &'a str,
    address: &'a str,
    action: &'a str,
    subject: &'a str,
    detail: &'a str,
}

impl Fields<'_> {
    /// Every field after the previous code, encoded unambiguously.
    fn encode(&self, prev: &str) -> String {
        serde_json::json!([
            prev,
            self.at,
            self.actor,
            self.address,
            self.action,
            self.subject,
            self.detail
        ])
        .to_string()
    }

    /// The unkeyed hash of the era before the key.
    fn unkeyed(&self, prev: &str) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, self.encode(prev).as_bytes()).as_ref())
    }
}

/// A head of the chain to keep elsewhere: an entry's id and code and when it was taken, coded
/// with the audit key. Its text is `haven-audit-anchor id=N hash=HEX taken=MS code=HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The entry.
    pub id: i64,
    /// Its code.
    pub hash: String,
    /// When the anchor was taken (ms since the epoch).
    pub taken_ms: i64,
}

impl Anchor {
    fn body(&self) -> String {
        format!(
            "haven-audit-anchor id={} hash={} taken={}",
            self.id, self.hash, self.taken_ms
        )
    }

    /// Its text, coded with `key`.
    fn text(&self, key: &AuditKey) -> String {
        let body = self.body();
        format!("{body} code={}", key.sign(&body))
    }

    /// Reads an anchor's text and checks its code against `key`.
    fn parse(text: &str, key: &AuditKey) -> Result<Anchor, AnchorError> {
        let text = text.trim();
        let (body, code) = text.rsplit_once(" code=").ok_or(AnchorError::NoCode)?;
        let mut words = body.split(' ');
        if words.next() != Some("haven-audit-anchor") {
            return Err(AnchorError::NoStart);
        }
        let mut field = |name: &'static str| {
            words
                .next()
                .and_then(|w| w.strip_prefix(name))
                .map(str::to_owned)
                .ok_or(AnchorError::Missing(name))
        };
        let anchor = Anchor {
            id: field("id=")?.parse().map_err(|_| AnchorError::Id)?,
            hash: field("hash=")?,
            taken_ms: field("taken=")?.parse().map_err(|_| AnchorError::Time)?,
        };
        if anchor.body() != body || !key.check(body, code) {
            return Err(AnchorError::Code);
        }
        Ok(anchor)
    }
}

impl Store {
    /// Uses `<dir>/audit.key` for the chain (made on first use). SQLite stores take the key
    /// beside their database file by themselves; a PostgreSQL store needs this call (every
    /// node with the same key file).
    pub async fn use_audit_key(&mut self, dir: &Path) -> Result<(), StoreError> {
        let last: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM audit")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        self.audit_key = Some(std::sync::Arc::new(AuditKey::load_or_create(dir, last)?));
        Ok(())
    }

    fn audit_key(&self) -> Result<&AuditKey, StoreError> {
        self.audit_key.as_deref().ok_or_else(|| {
            StoreError::Invalid(
                "the audit log's key is not loaded (audit.key in the data directory)".into(),
            )
        })
    }

    /// Appends an entry to the chain.
    pub async fn audit(&self, e: &AuditEntry<'_>) -> Result<(), StoreError> {
        // Entries join the chain one at a time: in this process by the lock, across nodes
        // sharing PostgreSQL by an advisory lock held until the entry commits.
        let _one = self.audit_lock.lock().await;
        let mut tx = self.write_tx().await?;
        self.audit_in(&mut tx, e).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The lock that keeps entries joining the chain one at a time: held by a write that puts
    /// its audit entry in its own transaction ([`Store::audit_in`]) until it commits.
    pub(crate) async fn audit_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.audit_lock.lock().await
    }

    /// Appends `e` to the chain inside `tx`; the caller holds the audit lock.
    pub(crate) async fn audit_in(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        e: &AuditEntry<'_>,
    ) -> Result<(), StoreError> {
        let key = self.audit_key()?;
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock(7274837)")
                .execute(&mut **tx)
                .await?;
        }
        let prev: String = sqlx::query("SELECT hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .unwrap_or_else(|| GENESIS.to_owned());
        let (subject, detail) = (e.subject.to_string(), e.detail());
        let fields = Fields {
            at: now_ms(),
            actor: e.actor,
            address: e.address,
            action: e.kind.as_str(),
            subject: &subject,
            detail: &detail,
        };
        let hash = key.sign(&fields.encode(&prev));
        sqlx::query(
            "INSERT INTO audit (at, actor, address, action, subject, detail, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(fields.at)
        .bind(fields.actor)
        .bind(fields.address)
        .bind(fields.action)
        .bind(fields.subject)
        .bind(fields.detail)
        .bind(prev)
        .bind(hash)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// The newest entries of one kind (ids and kinds only, as every entry): the DSL's list of
    /// break-glass reads. Entries of the unkeyed era are left out.
    pub async fn audit_of_kind(
        &self,
        kind: AuditKind,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let through = self
            .audit_key
            .as_ref()
            .map_or(i64::MAX, |k| k.unkeyed_through);
        let rows = sqlx::query(
            "SELECT id, at, actor, address, action, subject, detail, hash FROM audit WHERE action = $1 AND id > $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(kind.as_str())
        .bind(through)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| audit_record(r, through)).collect()
    }

    /// Entries, newest first, older than `before_id` when given. Unrecorded: a person reading
    /// the log goes through [`Store::read_audit_log`].
    pub async fn audit_log(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let through = self
            .audit_key
            .as_ref()
            .map_or(i64::MAX, |k| k.unkeyed_through);
        let rows = sqlx::query(
            "SELECT id, at, actor, address, action, subject, detail, hash FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(before_id.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| audit_record(r, through)).collect()
    }

    /// Entries as [`Store::audit_log`], the read itself recorded first (by `actor` from
    /// `address`).
    pub async fn read_audit_log(
        &self,
        actor: &str,
        address: &str,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut e = AuditEntry::new(actor, address, AuditKind::ReadAuditLog, Subject::AuditLog)
            .count("limit", limit.clamp(1, 1000));
        if let Some(b) = before_id {
            e = e.count("before", b);
        }
        self.audit(&e).await?;
        self.audit_log(before_id, limit).await
    }

    /// Walks the whole chain from the first entry, checking every entry's code (the unkeyed
    /// hash for the entries before the key).
    pub async fn verify_audit(&self) -> Result<AuditCheck, StoreError> {
        Ok(self.walk_audit(None).await?.0)
    }

    /// The newest entry as an anchor to keep elsewhere (the taking recorded first, so the
    /// anchor covers it and the log is never empty).
    pub async fn audit_anchor(&self, actor: &str, address: &str) -> Result<String, StoreError> {
        let key = self.audit_key()?;
        self.audit(&AuditEntry::new(
            actor,
            address,
            AuditKind::AnchorAuditLog,
            Subject::AuditLog,
        ))
        .await?;
        let row = sqlx::query("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Anchor {
            id: row.try_get(0)?,
            hash: row.try_get(1)?,
            taken_ms: now_ms(),
        }
        .text(key))
    }

    /// Checks the chain as [`Store::verify_audit`] and that it still holds `anchor` (taken by
    /// `haven audit anchor`): the anchored entry with the same code, so nothing up to it was
    /// changed, removed or rewritten since. An anchor whose own code does not fit is an error.
    pub async fn verify_audit_anchor(&self, anchor: &str) -> Result<AuditCheck, StoreError> {
        let key = self.audit_key()?;
        let anchor = Anchor::parse(anchor, key).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let (check, seen) = self.walk_audit(Some(anchor.id)).await?;
        if let AuditCheck::Broken { .. } = check {
            return Ok(check);
        }
        Ok(match seen {
            Some(hash) if hash == anchor.hash => check,
            Some(_) => AuditCheck::Broken {
                id: anchor.id,
                why: "it is not the entry the anchor recorded: the chain up to it was rewritten"
                    .into(),
            },
            None => AuditCheck::Broken {
                id: anchor.id,
                why: "the anchored entry is gone: the log was cut back or rewritten".into(),
            },
        })
    }

    /// Walks the chain; with `watch`, also the stored code of that entry.
    async fn walk_audit(
        &self,
        watch: Option<i64>,
    ) -> Result<(AuditCheck, Option<String>), StoreError> {
        let key = self.audit_key()?;
        let mut prev = GENESIS.to_owned();
        let mut after = 0i64;
        let mut entries = 0u64;
        let mut seen = None;
        loop {
            let rows = sqlx::query(
                "SELECT id, at, actor, address, action, subject, detail, prev_hash, hash FROM audit WHERE id > $1 ORDER BY id LIMIT 1000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                return Ok((AuditCheck::Intact { entries }, seen));
            }
            for r in &rows {
                let id: i64 = r.try_get(0)?;
                let (actor, address, action, subject, detail): (
                    String,
                    String,
                    String,
                    String,
                    String,
                ) = (
                    r.try_get(2)?,
                    r.try_get(3)?,
                    r.try_get(4)?,
                    r.try_get(5)?,
                    r.try_get(6)?,
                );
                let stored_prev: String = r.try_get(7)?;
                let stored: String = r.try_get(8)?;
                let broken = |why: &str| {
                    Ok((
                        AuditCheck::Broken {
                            id,
                            why: why.to_owned(),
                        },
                        None,
                    ))
                };
                if stored_prev != prev {
                    return broken(
                        "it does not follow the entry before it (an entry was removed or inserted)",
                    );
                }
                let fields = Fields {
                    at: r.try_get(1)?,
                    actor: &actor,
                    address: &address,
                    action: &action,
                    subject: &subject,
                    detail: &detail,
                };
                let holds = if id <= key.unkeyed_through {
                    fields.unkeyed(&prev) == stored
                } else {
                    key.check(&fields.encode(&prev), &stored)
                };
                if !holds {
                    return broken(
                        "its contents were changed after it was written (or it was coded with another audit key)",
                    );
                }
                if watch == Some(id) {
                    seen = Some(stored.clone());
                }
                prev = stored;
                after = id;
                entries += 1;
            }
        }
    }
}

impl Store {
    /// Records a read of activity by `actor` from `address`: whose (a person's id, a device,
    /// or everyone), which kinds of filter narrowed it (never their values: a search term is a
    /// pupil's words), and `via` what (page, API, cli).
    pub async fn audit_activity_read(
        &self,
        actor: &str,
        address: &str,
        q: &crate::events::EventQuery,
        via: &'static str,
    ) -> Result<(), StoreError> {
        let subject = match (&q.user, &q.client) {
            (Some(u), _) => self
                .identity(u)
                .await?
                .map_or(Subject::Nothing, |who| Subject::Person(who.person_id)),
            (None, Some(ip)) => ip.parse().map_or(Subject::Nothing, Subject::Device),
            (None, None) => Subject::Everyone,
        };
        let mut e =
            AuditEntry::new(actor, address, AuditKind::ReadActivity, subject).word("via", via);
        for (set, kind) in [
            (q.category.is_some(), "category"),
            (q.action.is_some(), "action"),
            (q.source.is_some(), "source"),
            (q.search.is_some(), "search"),
            (q.from_ms.is_some(), "from"),
            (q.to_ms.is_some(), "to"),
            (q.before.is_some(), "next page"),
        ] {
            if set {
                e = e.word("filter", kind);
            }
        }
        self.audit(&e).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_records_by_id_only() {
        assert_eq!(Subject::Capture(7).to_string(), "capture 7");
        assert_eq!(
            Subject::network("10.20.0.0/16").to_string(),
            "network 10.20.0.0/16"
        );
        assert_eq!(
            Subject::network("10.20.0.9").to_string(),
            "network 10.20.0.9/32"
        );
        assert_eq!(Subject::network("nonsense"), Subject::Nothing);
        let e = AuditEntry::new(
            "dsl",
            "10.0.0.1",
            AuditKind::ReadCaptures,
            Subject::OpenCaptures,
        )
        .count("shown", 3)
        .word("via", "API");
        assert_eq!(e.detail(), "shown=3, via=API");
    }

    #[test]
    fn a_key_file_is_private_and_an_anchor_must_fit_it() {
        let dir = std::env::temp_dir().join(format!("haven-audit-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let key = AuditKey::load_or_create(&dir, 4).expect("made");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = AuditKey::load_or_create(&dir, 99).expect("read");
        assert_eq!(
            again.unkeyed_through, 4,
            "the era's end is fixed when the key is made"
        );
        let anchor = Anchor {
            id: 5,
            hash: "ab".repeat(32),
            taken_ms: 1,
        };
        let text = anchor.text(&key);
        assert_eq!(Anchor::parse(&text, &again), Ok(anchor));
        assert!(Anchor::parse(&text.replace("id=5", "id=4"), &again).is_err());
        assert!(Anchor::parse("haven-audit-anchor id=5", &again).is_err());
        let other = AuditKey::load_or_create(&dir.join("other"), 0).expect("another");
        assert!(Anchor::parse(&text, &other).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
