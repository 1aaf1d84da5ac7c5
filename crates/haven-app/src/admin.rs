//! The work behind the `haven` commands that read or change the store: each is recorded in
//! the audit log as done by [`operator`] from the address `cli`. The binary parses the
//! arguments, calls one of these inside [`crate::Context::with_store`], and prints the result.

use haven_store::audit::{AuditCheck, AuditEntry, AuditKind, AuditRecord, Subject};
use haven_store::captures::Capture;
use haven_store::devices::DeviceReport;
use haven_store::events::{EventQuery, StoredEvent};
use haven_store::people::{ImportOptions, ImportReport, Kind, Person};
use haven_store::reviews::Review;
use haven_store::tokens::{TokenInfo, TokenScope};
use haven_store::UnknownText;
use haven_store::{Store, StoreError};

/// Why a command's work was not done.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No active person has the user name given.
    #[error("no active person with the user name {0:?}")]
    NoSuchPerson(String),
    /// A review status that is not one.
    #[error(transparent)]
    Status(#[from] UnknownText),
}

type Result<T, E = AdminError> = std::result::Result<T, E>;

/// The address recorded for work done at the terminal.
const CLI: &str = "cli";

/// Who is at the keyboard, for the audit log.
pub fn operator() -> String {
    // The process's user id, from the owner of /proc/self (not from the environment, which
    // whoever runs the command sets); its name from /etc/passwd. `SUDO_USER` is what sudo
    // says about who asked, recorded beside it as a claim.
    #[cfg(unix)]
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    };
    #[cfg(not(unix))]
    let uid: Option<u32> = None;
    let sudo = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| format!(", sudo from {}", clean(&u)))
        .unwrap_or_default();
    match uid {
        Some(uid) => {
            let name = user_name(uid).unwrap_or_else(|| "?".to_owned());
            format!("cli:{name} (uid {uid}{sudo})")
        }
        None => {
            let user = std::env::var("USER").unwrap_or_default();
            format!("cli:{} (uid unknown{sudo})", clean(&user))
        }
    }
}

/// A user name as recorded: at most 32 printable characters.
fn clean(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// The name /etc/passwd gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| clean(name))
    })
}

/// Imports a CSV export of one kind of person (recorded unless a dry run).
pub async fn import_people(
    s: &Store,
    kind: Kind,
    bytes: &[u8],
    options: ImportOptions,
) -> Result<ImportReport> {
    let report = s.import_people(kind, bytes, options).await?;
    if !options.dry_run {
        s.audit(
            &AuditEntry::new(
                &operator(),
                CLI,
                AuditKind::ImportPeople,
                Subject::Roster(kind.id()),
            )
            .count("added", report.added as i64)
            .count("updated", report.updated as i64)
            .count("left", report.left as i64)
            .count("refused", report.errors.len() as i64),
        )
        .await?;
    }
    Ok(report)
}

/// Which password [`set_password`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordKind {
    /// The console password.
    Console,
    /// The proxy password (in place of the console one).
    Proxy,
}

/// Sets someone's password.
pub async fn set_password(
    s: &Store,
    username: &str,
    password: &str,
    which: PasswordKind,
) -> Result<()> {
    match which {
        PasswordKind::Proxy => s.set_proxy_password(username, password).await?,
        PasswordKind::Console => s.set_password(username, password).await?,
    }
    let subject = s
        .identity(username)
        .await?
        .map_or(Subject::Nothing, |who| Subject::Person(who.person_id));
    let kind = match which {
        PasswordKind::Proxy => AuditKind::SetProxyPassword,
        PasswordKind::Console => AuditKind::SetPassword,
    };
    s.audit(&AuditEntry::new(&operator(), CLI, kind, subject))
        .await?;
    Ok(())
}

/// Finds people by name, id or user name (at most 50).
pub async fn find_people(s: &Store, text: &str) -> Result<Vec<Person>> {
    let found = s.find_people(text, 50).await?;
    s.audit(
        &AuditEntry::new(&operator(), CLI, AuditKind::SearchPeople, Subject::Nothing)
            .count("found", found.len() as i64)
            .word("via", CLI),
    )
    .await?;
    Ok(found)
}

/// Imports devices from CSV.
pub async fn import_devices(s: &Store, bytes: &[u8]) -> Result<DeviceReport> {
    let report = s.import_devices(bytes).await?;
    s.audit(
        &AuditEntry::new(&operator(), CLI, AuditKind::ImportDevices, Subject::Devices)
            .count("stored", report.stored as i64)
            .count("refused", report.errors.len() as i64),
    )
    .await?;
    Ok(report)
}

/// Adds a network, or changes its site and group.
pub async fn set_network(s: &Store, cidr: &str, site: &str, group: &str) -> Result<()> {
    s.set_network(cidr, site, group).await?;
    s.audit(&AuditEntry::new(
        &operator(),
        CLI,
        AuditKind::SetNetwork,
        Subject::network(cidr),
    ))
    .await?;
    Ok(())
}

/// Removes a network; whether there was one.
pub async fn remove_network(s: &Store, cidr: &str) -> Result<bool> {
    let removed = s.remove_network(cidr).await?;
    if removed {
        s.audit(&AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::RemoveNetwork,
            Subject::network(cidr),
        ))
        .await?;
    }
    Ok(removed)
}

/// Searches the recorded activity (the reading recorded first).
pub async fn search_events(s: &Store, q: &EventQuery) -> Result<Vec<StoredEvent>> {
    s.audit_activity_read(&operator(), CLI, q, CLI).await?;
    Ok(s.search_events(q).await?)
}

/// Review requests with the status given (`open`, `approved` or `declined`; at most 1000).
pub async fn reviews(s: &Store, status: &str) -> Result<Vec<Review>> {
    let found = s.reviews(status.parse()?, 1000).await?;
    s.audit(
        &AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::ReadReviews,
            Subject::ReviewQueue,
        )
        .count("shown", found.len() as i64)
        .word("via", CLI),
    )
    .await?;
    Ok(found)
}

/// Captures awaiting triage at `min_grade` and above (at most 1000).
pub async fn open_captures(s: &Store, min_grade: i64) -> Result<Vec<Capture>> {
    s.audit(
        &AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::ReadCaptures,
            Subject::OpenCaptures,
        )
        .count("min grade", min_grade),
    )
    .await?;
    Ok(s.open_captures(min_grade, 1000).await?)
}

/// The decided captures (dismissed or promoted), to teach the school's model: reading their
/// texts is recorded, with how many were read.
pub async fn decided_captures(s: &Store) -> Result<Vec<Capture>> {
    let found = s.decided_captures(100_000).await?;
    s.audit(
        &AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::TrainModel,
            Subject::DecidedCaptures,
        )
        .count("read", found.len() as i64),
    )
    .await?;
    Ok(found)
}

/// Checks the audit log's chain (and that it holds `anchor`, when given).
pub async fn verify_audit(s: &Store, anchor: Option<&str>) -> Result<AuditCheck> {
    s.audit(&AuditEntry::new(
        &operator(),
        CLI,
        AuditKind::VerifyAuditLog,
        Subject::AuditLog,
    ))
    .await?;
    Ok(match anchor {
        Some(a) => s.verify_audit_anchor(a).await?,
        None => s.verify_audit().await?,
    })
}

/// The newest entry's anchor.
pub async fn audit_anchor(s: &Store) -> Result<String> {
    Ok(s.audit_anchor(&operator(), CLI).await?)
}

/// The newest `limit` audit entries.
pub async fn read_audit_log(s: &Store, limit: i64) -> Result<Vec<AuditRecord>> {
    Ok(s.read_audit_log(&operator(), CLI, None, limit).await?)
}

/// Every API token.
pub async fn api_tokens(s: &Store) -> Result<Vec<TokenInfo>> {
    s.audit(&AuditEntry::new(
        &operator(),
        CLI,
        AuditKind::ListApiTokens,
        Subject::Nothing,
    ))
    .await?;
    Ok(s.api_tokens(None).await?)
}

/// Makes a token for `user`; the token (shown once).
pub async fn create_api_token(
    s: &Store,
    user: &str,
    name: &str,
    scope: TokenScope,
    days: i64,
) -> Result<String> {
    let Some(who) = s.identity(user).await? else {
        return Err(AdminError::NoSuchPerson(user.to_owned()));
    };
    let (id, token) = s.create_api_token(who.person_id, name, scope, days).await?;
    s.audit(
        &AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::CreateApiToken,
            Subject::Token(id),
        )
        .word("scope", scope.id())
        .count("days", days),
    )
    .await?;
    Ok(token)
}

/// Revokes a token; whether one was in force.
pub async fn revoke_api_token(s: &Store, id: i64) -> Result<bool> {
    let revoked = s.revoke_api_token(id, None).await?;
    if revoked {
        s.audit(&AuditEntry::new(
            &operator(),
            CLI,
            AuditKind::RevokeApiToken,
            Subject::Token(id),
        ))
        .await?;
    }
    Ok(revoked)
}

/// Records a rebuild of the lists.
pub async fn record_list_rebuild(s: &Store, hosts: usize, sources: usize) -> Result<()> {
    s.audit(
        &AuditEntry::new(&operator(), CLI, AuditKind::RebuildLists, Subject::Lists)
            .count("hosts", hosts as i64)
            .count("sources", sources as i64),
    )
    .await?;
    Ok(())
}
