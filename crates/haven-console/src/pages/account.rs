//! "My account": changing one's console or proxy password, and one's sessions.

use askama::Template;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::signin::{audit_failure, Step};
use super::Layout;
use crate::web::{
    html, set_cookie, when, Denied, SessionCookie, SessionForm, Signed, SESSION_COOKIE,
};
use crate::Console;
use haven_store::accounts::SignInError;

/// A session in "My account".
struct SessionRow {
    id: String,
    started: String,
    last_used: String,
    address: String,
    second_factor: bool,
    this_browser: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    l: Layout,
    notice: String,
    error: String,
    username: String,
    /// Whether the proxy takes only a proxy password from this person (a second factor role).
    proxy_only: bool,
    has_proxy_password: bool,
    sessions: Vec<SessionRow>,
    idle: u32,
    hours: u32,
}

async fn account_page(
    c: &Console,
    s: &Signed,
    cookie_value: &str,
    notice: String,
    error: String,
) -> Result<Response, Denied> {
    let mine = haven_store::sessions::secret_hash(cookie_value);
    let sessions = c
        .store
        .sessions_of(s.who.person_id)
        .await?
        .into_iter()
        .map(|x| SessionRow {
            this_browser: x.id == mine,
            id: x.id,
            started: when(x.created_at),
            last_used: when(x.last_seen),
            address: x.address,
            second_factor: x.second_factor,
        })
        .collect();
    Ok((
        super::status_for(&error),
        html(&AccountPage {
            l: c.layout("My account", Some(s)),
            notice,
            error,
            username: s.who.username.clone(),
            proxy_only: s.who.needs_two_factor(),
            has_proxy_password: c.store.has_proxy_password(s.who.person_id).await?,
            sessions,
            idle: c.config.idle_minutes,
            hours: c.config.session_hours,
        }),
    )
        .into_response())
}

pub(super) async fn account(
    State(c): State<Console>,
    SessionCookie(mine): SessionCookie,
    s: Signed,
) -> Result<Response, Denied> {
    account_page(&c, &s, &mine, String::new(), String::new()).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    repeat: String,
}

/// Checks the signed-in person's console password before a change: `None` when it is right,
/// else why not. A wrong one counts like a wrong sign-in (a session left open is no way round
/// the lock).
async fn check_current(c: &Console, s: &Signed, current: &str) -> Result<Option<String>, Denied> {
    Ok(match c.store.sign_in(&s.who.username, current).await? {
        Ok(_) => None,
        Err(SignInError::Wrong(failure)) => {
            audit_failure(c, &s.who.username, &s.address, Step::Password, failure).await?;
            Some("Your current password was not right.".into())
        }
        Err(SignInError::Locked(until)) => Some(format!(
            "Too many failed attempts: this account is locked until {}.",
            when(until)
        )),
        Err(SignInError::Refused) => Some("Your current password was not right.".into()),
    })
}

/// Which password a form on "My account" sets.
#[derive(Debug, Clone, Copy)]
enum PasswordKind {
    /// The console (and, for roles without a second factor, the proxy) password.
    Console,
    /// The proxy-only password.
    Proxy,
}

/// Sets a password from its form: the new one typed twice alike, the current one right (which
/// counts like a sign-in), the new one acceptable to the store. Why not, when refused (nothing
/// changed then).
async fn set_from_form(
    c: &Console,
    s: &Signed,
    f: &PasswordForm,
    kind: PasswordKind,
) -> Result<Option<String>, Denied> {
    if f.new != f.repeat {
        return Ok(Some("The new passwords differ.".into()));
    }
    if let Some(why) = check_current(c, s, &f.current).await? {
        return Ok(Some(why));
    }
    let set = match kind {
        PasswordKind::Console => c.store.set_password(&s.who.username, &f.new).await,
        PasswordKind::Proxy => c.store.set_proxy_password(&s.who.username, &f.new).await,
    };
    match set {
        Ok(()) => Ok(None),
        Err(haven_store::StoreError::Invalid(why)) => Ok(Some(why)),
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn account_password(
    State(c): State<Console>,
    SessionCookie(mine): SessionCookie,
    s: Signed,
    SessionForm(f): SessionForm<PasswordForm>,
) -> Result<Response, Denied> {
    set_password(&c, &mine, s, &f, PasswordKind::Console).await
}

pub(super) async fn account_proxy_password(
    State(c): State<Console>,
    SessionCookie(mine): SessionCookie,
    s: Signed,
    SessionForm(f): SessionForm<PasswordForm>,
) -> Result<Response, Denied> {
    set_password(&c, &mine, s, &f, PasswordKind::Proxy).await
}

/// Sets the password a form on "My account" names, and shows the page again with what
/// happened (a 400 and why, when refused).
async fn set_password(
    c: &Console,
    mine: &str,
    s: Signed,
    f: &PasswordForm,
    kind: PasswordKind,
) -> Result<Response, Denied> {
    if let Some(why) = set_from_form(c, &s, f, kind).await? {
        return account_page(c, &s, mine, String::new(), why).await;
    }
    if let PasswordKind::Proxy = kind {
        c.store
            .audit(&AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::SetProxyPassword,
                Subject::Person(s.who.person_id),
            ))
            .await?;
        return account_page(
            c,
            &s,
            mine,
            "Proxy password set: use it (not your console password) when the browser asks you to sign in to the internet.".into(),
            String::new(),
        )
        .await;
    }
    // Every session ended with the old password, this one too: this browser goes on in a new
    // one (a new cookie), with the second factor it had already given.
    let (token, session) = c
        .store
        .create_session(s.who.person_id, &s.address, true)
        .await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::SetPassword,
                Subject::Person(s.who.person_id),
            )
            .word("other sessions", "ended"),
        )
        .await?;
    let s = Signed {
        session: Some(session),
        ..s
    };
    let page = account_page(
        c,
        &s,
        &token,
        "Password changed. You were signed out everywhere else, and the proxy no longer takes the old one.".into(),
        String::new(),
    )
    .await?;
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, &token, c.config.secure_cookies, None),
        )],
        page,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct EndSessionForm {
    csrf: String,
    /// One session to end, by its id in the list.
    session: Option<String>,
    /// Or every session but this one.
    everywhere: Option<String>,
}

pub(super) async fn account_sessions(
    State(c): State<Console>,
    SessionCookie(mine): SessionCookie,
    s: Signed,
    SessionForm(f): SessionForm<EndSessionForm>,
) -> Result<Response, Denied> {
    let ended = match (&f.session, &f.everywhere) {
        (Some(id), _) if !id.is_empty() => {
            if haven_store::sessions::secret_hash(&mine) == *id {
                return Err(Denied::Invalid(
                    "That is this browser's session: use Sign out.".into(),
                ));
            }
            u64::from(c.store.end_session_of(s.who.person_id, id).await?)
        }
        (_, Some(_)) => c.store.end_other_sessions(s.who.person_id, &mine).await?,
        _ => return Err(Denied::Invalid("Say which session to end.".into())),
    };
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::SignOutElsewhere,
                Subject::Person(s.who.person_id),
            )
            .count("sessions ended", i64::try_from(ended).unwrap_or(i64::MAX)),
        )
        .await?;
    let notice = match ended {
        0 => "That session had already ended.".to_owned(),
        1 => "Signed out there.".to_owned(),
        n => format!("Signed out of {n} other sessions."),
    };
    account_page(&c, &s, &mine, notice, String::new()).await
}

crate::web::csrf_field!(PasswordForm, EndSessionForm);
