//! Accounts: who may sign in (to the console, or to the proxy), with what role. Passwords are
//! kept as argon2id hashes; repeated failures lock the account for a while, for the password
//! and for the second factor alike. The proxy has credentials of its own: its failures never
//! lock a console account, and people whose roles need a second factor sign in to it with a
//! separate proxy password only, so their console password never crosses the network in clear.

use argon2::password_hash::{phc::PasswordHash, PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use sqlx::Row as _;

use crate::{now_ms, Store, StoreError};

/// Failed sign-ins in a row that lock an account.
pub const LOCK_AFTER_FAILURES: i64 = 5;
/// How long a locked account stays locked.
pub const LOCK_FOR_MS: i64 = 15 * 60 * 1000;
/// Shortest password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

/// What a person does in Haven (the roles of the product brief); a person may hold several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// A pupil: browses through the filter.
    Pupil,
    /// A teacher.
    Teacher,
    /// A teaching assistant.
    TeachingAssistant,
    /// Runs the filter: lists, policy, devices, certificates.
    NetworkManager,
    /// The Designated Safeguarding Lead.
    Dsl,
    /// A deputy DSL.
    DeputyDsl,
    /// The headteacher.
    Headteacher,
    /// The safeguarding governor: anonymised reports only.
    Governor,
    /// The chair of governors: allegations about the headteacher come to them alone.
    Chair,
    /// The Data Protection Officer: audit and retention.
    Dpo,
    /// Runs Haven itself: accounts and settings.
    Administrator,
    /// A parent or carer.
    Parent,
    /// The school office: image consents and acceptable-use agreements.
    Office,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 13] = [
        Role::Pupil,
        Role::Teacher,
        Role::TeachingAssistant,
        Role::NetworkManager,
        Role::Dsl,
        Role::DeputyDsl,
        Role::Headteacher,
        Role::Governor,
        Role::Chair,
        Role::Dpo,
        Role::Administrator,
        Role::Parent,
        Role::Office,
    ];

    /// The role's id, as written in CSV files and stored.
    pub fn id(self) -> &'static str {
        match self {
            Role::Pupil => "pupil",
            Role::Teacher => "teacher",
            Role::TeachingAssistant => "ta",
            Role::NetworkManager => "network-manager",
            Role::Dsl => "dsl",
            Role::DeputyDsl => "deputy-dsl",
            Role::Headteacher => "headteacher",
            Role::Governor => "governor",
            Role::Chair => "chair-of-governors",
            Role::Dpo => "dpo",
            Role::Administrator => "administrator",
            Role::Parent => "parent",
            Role::Office => "office",
        }
    }

    /// The role from its id (or a common way of writing it: `DSL`, `Deputy DSL`, `TA`).
    pub fn parse(s: &str) -> Option<Role> {
        let norm: String = s
            .trim()
            .chars()
            .map(|c| {
                if c == ' ' || c == '_' {
                    '-'
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let alias = match norm.as_str() {
            "teaching-assistant" => "ta",
            "head" | "head-teacher" | "headteacher" => "headteacher",
            "deputy-designated-safeguarding-lead" => "deputy-dsl",
            "designated-safeguarding-lead" => "dsl",
            "admin" => "administrator",
            "carer" => "parent",
            "school-office" | "office-manager" | "administration" => "office",
            "chair" | "chair-of-the-governors" | "chair-of-governing-body" => "chair-of-governors",
            other => other,
        };
        Role::ALL.into_iter().find(|r| r.id() == alias)
    }

    /// Whether the role sees safeguarding data, so signs in with a second factor. The network
    /// manager is among them: activity holds pupils' search terms.
    pub fn needs_two_factor(self) -> bool {
        matches!(
            self,
            Role::Dsl
                | Role::DeputyDsl
                | Role::Headteacher
                | Role::Chair
                | Role::Dpo
                | Role::Administrator
                | Role::NetworkManager
        )
    }
}

/// A person who signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The person's id in the store.
    pub person_id: i64,
    /// Their user name.
    pub username: String,
    /// Their name, for pages.
    pub display_name: String,
    /// Their policy group.
    pub group: String,
    /// Their roles.
    pub roles: Vec<Role>,
    /// Whether they have set up two-factor sign-in.
    pub totp_enabled: bool,
}

impl Identity {
    /// Whether any of the person's roles needs a second factor.
    pub fn needs_two_factor(&self) -> bool {
        self.roles.iter().any(|r| r.needs_two_factor())
    }
}

/// Why a sign-in failed. Callers show one message for all of them, so that nobody learns
/// which user names exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInError {
    /// Unknown user, no password set, or a leaver.
    Refused,
    /// A wrong password for an account (counted towards its lock).
    Wrong(Failure),
    /// Too many failures: locked until this time (ms since the epoch).
    Locked(i64),
}

/// A failed attempt at one step of signing in to an account (the password, or the second
/// factor), as counted: for the audit log, which records failures by the run, not by the guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Failures in a row on this account, this one included.
    pub in_a_row: i64,
    /// When this failure locked the account (the step): until when (ms since the epoch).
    pub locked_until: Option<i64>,
}

impl Failure {
    fn counted(in_a_row: i64, now: i64) -> Failure {
        Failure {
            in_a_row,
            locked_until: (in_a_row >= LOCK_AFTER_FAILURES).then_some(now + LOCK_FOR_MS),
        }
    }
}

/// A password that worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// Who.
    pub who: Identity,
    /// Wrong passwords in a row before this one (for the audit log).
    pub failures_before: i64,
}

/// Password changes made by this process: a cache of answers (the proxy's) drops what it
/// remembered when this moves. Changes by other processes show in the store's
/// [`Store::credentials_changed_at`].
static CHANGED_HERE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many password changes this process has made (see [`Store::credentials_changed_at`]).
pub fn credential_changes_here() -> u64 {
    CHANGED_HERE.load(std::sync::atomic::Ordering::Acquire)
}

fn credentials_changed() {
    CHANGED_HERE.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// The hasher: argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// An argon2id hash (PHC string) of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, StoreError> {
    use ring::rand::SecureRandom as _;
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| StoreError::Invalid("no randomness for a password salt".into()))?;
    hasher()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches `hash` (a PHC string); a malformed hash matches nothing.
pub fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| hasher().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash to check against when the user does not exist, so that a wrong user name takes as
/// long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
}

/// A new password's hash, off the async threads; refuses short passwords.
async fn new_hash(password: &str) -> Result<String, StoreError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(StoreError::Invalid(format!(
            "a password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    let owned = password.to_owned();
    tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing stopped: {e}")))?
}

/// Whether `password` matches `hash`, off the async threads.
async fn matches_off_thread(password: &str, hash: String) -> bool {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .unwrap_or(false)
}

impl Store {
    /// Sets a person's password (by user name). Refuses short passwords. Every console session
    /// of theirs ends, and the proxy forgets the old password.
    pub async fn set_password(&self, username: &str, password: &str) -> Result<(), StoreError> {
        let hash = new_hash(password).await?;
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE people SET password_hash = $1, failed_logins = 0, locked_until = NULL, updated_at = $2, credentials_at = $2 WHERE username = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(username)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid(format!(
                "no person has the user name {username:?}"
            )));
        }
        sqlx::query(
            "DELETE FROM sessions WHERE person_id IN (SELECT id FROM people WHERE username = $1)",
        )
        .bind(username)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        credentials_changed();
        Ok(())
    }

    /// Sets a person's proxy password: what they give the proxy instead of their console
    /// password. Refuses short passwords and their console password itself.
    pub async fn set_proxy_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), StoreError> {
        let console: Option<String> =
            sqlx::query("SELECT password_hash FROM people WHERE username = $1 AND active = 1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| {
                    StoreError::Invalid(format!("no person has the user name {username:?}"))
                })?
                .try_get(0)?;
        if let Some(console) = console {
            if matches_off_thread(password, console).await {
                return Err(StoreError::Invalid(
                    "the proxy password must not be the console password: browsers send it in clear"
                        .into(),
                ));
            }
        }
        let hash = new_hash(password).await?;
        let now = now_ms();
        sqlx::query(
            "UPDATE people SET proxy_password_hash = $1, updated_at = $2, credentials_at = $2 WHERE username = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(username)
        .execute(&self.pool)
        .await?;
        credentials_changed();
        Ok(())
    }

    /// Whether the person has a proxy password of their own.
    pub async fn has_proxy_password(&self, person_id: i64) -> Result<bool, StoreError> {
        Ok(
            sqlx::query("SELECT 1 FROM people WHERE id = $1 AND proxy_password_hash IS NOT NULL")
                .bind(person_id)
                .fetch_optional(&self.pool)
                .await?
                .is_some(),
        )
    }

    /// Checks a user name and password given to the proxy. Failures here count towards no
    /// account's lock (the proxy slows guessing by client address instead), so that nobody can
    /// lock a member of staff out of the console from a pupil's device. People whose roles need
    /// a second factor are checked against their proxy password only (none set: refused); others
    /// against their proxy password when they have one, else their account password.
    pub async fn proxy_sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Identity>, StoreError> {
        let who = self.identity(username).await?;
        let hash = match &who {
            Some(who) => {
                let row = sqlx::query(
                    "SELECT proxy_password_hash, password_hash FROM people WHERE id = $1",
                )
                .bind(who.person_id)
                .fetch_optional(&self.pool)
                .await?;
                match row {
                    Some(r) => {
                        let proxy: Option<String> = r.try_get(0)?;
                        let account: Option<String> = r.try_get(1)?;
                        if who.needs_two_factor() {
                            proxy
                        } else {
                            proxy.or(account)
                        }
                    }
                    None => None,
                }
            }
            None => None,
        };
        let known = hash.is_some();
        // A wrong user name (or no proxy password) takes as long as a wrong password.
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let matched = matches_off_thread(password, hash).await && known;
        Ok(who.filter(|_| matched))
    }

    /// When a password (console or proxy) last changed, by any process (ms since the epoch):
    /// a cache of answers drops what it remembered when this moves.
    pub async fn credentials_changed_at(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(credentials_at), 0) FROM people")
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        )
    }

    /// The active person with this user name.
    pub async fn identity(&self, username: &str) -> Result<Option<Identity>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, username, first_name, last_name, grp, totp_enabled FROM people WHERE username = $1 AND active = 1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let person_id: i64 = row.try_get(0)?;
        let roles = self.roles(person_id).await?;
        Ok(Some(Identity {
            person_id,
            username: row.try_get(1)?,
            display_name: format!(
                "{} {}",
                row.try_get::<String, _>(2)?,
                row.try_get::<String, _>(3)?
            ),
            group: row.try_get(4)?,
            roles,
            totp_enabled: row.try_get::<i64, _>(5)? != 0,
        }))
    }

    /// A person's roles.
    pub async fn roles(&self, person_id: i64) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query("SELECT role FROM person_roles WHERE person_id = $1 ORDER BY role")
            .bind(person_id)
            .fetch_all(&self.pool)
            .await?;
        let mut roles = Vec::with_capacity(rows.len());
        for r in rows {
            if let Some(role) = Role::parse(&r.try_get::<String, _>(0)?) {
                roles.push(role);
            }
        }
        Ok(roles)
    }

    /// Checks a user name and password: the identity, or why not. Failures count towards the
    /// lock; a success clears the count. The hash is checked on a blocking thread.
    pub async fn sign_in(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Result<SignedIn, SignInError>, StoreError> {
        let now = now_ms();
        let row = sqlx::query(
            "SELECT password_hash, failed_logins, locked_until FROM people WHERE username = $1 AND active = 1",
        )
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        let (hash, failures_before, locked_until) = match &row {
            Some(r) => (
                r.try_get::<Option<String>, _>(0)?,
                r.try_get::<i64, _>(1)?,
                r.try_get::<Option<i64>, _>(2)?,
            ),
            None => (None, 0, None),
        };
        if let Some(until) = locked_until.filter(|&u| u > now) {
            return Ok(Err(SignInError::Locked(until)));
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| decoy_hash().to_owned());
        let matched = matches_off_thread(password, hash).await && known;
        if row.is_none() || !known {
            return Ok(Err(SignInError::Refused));
        }
        if !matched {
            // One statement, so two failures at once both count.
            let mut tx = self.write_tx().await?;
            sqlx::query(
                "UPDATE people SET failed_logins = failed_logins + 1, \
                 locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
                 WHERE username = $3",
            )
            .bind(LOCK_AFTER_FAILURES)
            .bind(now + LOCK_FOR_MS)
            .bind(username)
            .execute(&mut *tx)
            .await?;
            let in_a_row: i64 = sqlx::query("SELECT failed_logins FROM people WHERE username = $1")
                .bind(username)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            tx.commit().await?;
            return Ok(Err(SignInError::Wrong(Failure::counted(in_a_row, now))));
        }
        sqlx::query("UPDATE people SET failed_logins = 0, locked_until = NULL WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(self
            .identity(username)
            .await?
            .map(|who| SignedIn {
                who,
                failures_before,
            })
            .ok_or(SignInError::Refused))
    }

    /// Takes one attempt at the second factor (a TOTP or recovery code): refused with the
    /// lock's end while the account's second factor is locked. The attempt counts as a failure
    /// from the start, in one statement, so that attempts made at the same moment (from many
    /// sessions) cannot pass the limit together; [`Store::second_factor_passed`] takes it back.
    /// Five failures in a row lock the step for a quarter of an hour; after that every further
    /// failure locks it again.
    pub async fn second_factor_attempt(
        &self,
        person_id: i64,
    ) -> Result<Result<Failure, i64>, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let done = sqlx::query(
            "UPDATE people SET factor_failures = factor_failures + 1, \
             factor_locked_until = CASE WHEN factor_failures + 1 >= $1 THEN $2 ELSE factor_locked_until END \
             WHERE id = $3 AND (factor_locked_until IS NULL OR factor_locked_until <= $4)",
        )
        .bind(LOCK_AFTER_FAILURES)
        .bind(now + LOCK_FOR_MS)
        .bind(person_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let row =
            sqlx::query("SELECT factor_failures, factor_locked_until FROM people WHERE id = $1")
                .bind(person_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        let (in_a_row, until) = match row {
            Some(r) => (r.try_get::<i64, _>(0)?, r.try_get::<Option<i64>, _>(1)?),
            None => return Ok(Err(now + LOCK_FOR_MS)),
        };
        if done.rows_affected() == 0 {
            return Ok(Err(until.unwrap_or(now + LOCK_FOR_MS)));
        }
        Ok(Ok(Failure::counted(in_a_row, now)))
    }

    /// The attempt taken by [`Store::second_factor_attempt`] succeeded: the count starts again
    /// and the lock it may have set goes. How many failed before it, in a row.
    pub async fn second_factor_passed(&self, person_id: i64) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let before: i64 = sqlx::query("SELECT factor_failures FROM people WHERE id = $1")
            .bind(person_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(1);
        sqlx::query(
            "UPDATE people SET factor_failures = 0, factor_locked_until = NULL WHERE id = $1",
        )
        .bind(person_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((before - 1).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_as_schools_write_them() {
        for (text, role) in [
            ("DSL", Role::Dsl),
            ("Deputy DSL", Role::DeputyDsl),
            ("deputy_dsl", Role::DeputyDsl),
            ("TA", Role::TeachingAssistant),
            ("Teaching Assistant", Role::TeachingAssistant),
            ("Network Manager", Role::NetworkManager),
            ("Head Teacher", Role::Headteacher),
        ] {
            assert_eq!(Role::parse(text), Some(role), "{text}");
        }
        assert_eq!(Role::parse("caretaker"), None);
        assert!(Role::Dsl.needs_two_factor() && Role::Administrator.needs_two_factor());
        assert!(!Role::Teacher.needs_two_factor() && !Role::Governor.needs_two_factor());
    }

    #[test]
    fn passwords_are_argon2id_and_salted() {
        let a = hash_password("correct horse").expect("hash");
        let b = hash_password("correct horse").expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(password_matches("correct horse", &a));
        assert!(!password_matches("correct horsE", &a));
        assert!(!password_matches("correct horse", "not a hash"));
    }
}
