//! Signing in: the password (the form tied to its browser by a cookie), then a TOTP code or
//! enrolment for the roles that need one; failures counted per account and per address, and
//! audited counted; signing out.

use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{CsrfForm, Layout};
use crate::totp;
use crate::web::{
    cookie, html, set_cookie, when, Denied, Peer, Pending, PendingForm, SessionCookie, Signed,
    LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::Console;
use haven_store::accounts::Identity;
use haven_store::accounts::{Failure, Role, SignInError};
use haven_store::sessions::Session;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    error: String,
    form_token: String,
    idle: u32,
}

pub(super) async fn login_form(
    State(c): State<Console>,
    headers: HeaderMap,
) -> Result<Response, Denied> {
    // The form is tied to this browser by a cookie, so another site cannot sign someone in.
    let token = match cookie(&headers, LOGIN_COOKIE) {
        Some(t) if t.len() == 32 => t,
        _ => haven_store::sessions::random_hex(16)?,
    };
    let page = LoginPage {
        l: c.layout("Sign in", None),
        error: String::new(),
        form_token: token.clone(),
        idle: c.config.idle_minutes,
    };
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &token, c.config.secure_cookies, None),
        )],
        html(&page),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

pub(super) async fn login(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, Denied> {
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !crate::web::same(&expected, &f.csrf) {
        return Err(Denied::Csrf);
    }
    let username = f.username.trim().to_ascii_lowercase();
    let refused = |error: &str| {
        let page = LoginPage {
            l: c.layout("Sign in", None),
            error: error.to_owned(),
            form_token: expected.clone(),
            idle: c.config.idle_minutes,
        };
        (StatusCode::UNAUTHORIZED, html(&page)).into_response()
    };
    if c.failures
        .too_many(&peer.0, haven_runtime::clock::instant())
    {
        let page = LoginPage {
            l: c.layout("Sign in", None),
            error: "Too many failed sign-ins from this computer: wait a quarter of an hour."
                .to_owned(),
            form_token: expected.clone(),
            idle: c.config.idle_minutes,
        };
        return Ok((StatusCode::TOO_MANY_REQUESTS, html(&page)).into_response());
    }
    let (who, failures_before) = match c.store.sign_in(&username, &f.password).await? {
        Ok(s) => (s.who, s.failures_before),
        Err(SignInError::Refused) => {
            address_failed(&c, &c.failures, &peer, "sign-ins").await?;
            return Ok(refused("That user name and password did not work."));
        }
        Err(SignInError::Wrong(failure)) => {
            address_failed(&c, &c.failures, &peer, "sign-ins").await?;
            audit_failure(&c, &username, &peer.0, Step::Password, failure).await?;
            return Ok(refused("That user name and password did not work."));
        }
        Err(SignInError::Locked(until)) => {
            return Ok(refused(&format!(
                "Too many failed attempts: this account is locked until {}.",
                when(until)
            )))
        }
    };
    if who
        .roles
        .iter()
        .all(|r| matches!(r, Role::Pupil | Role::Parent))
    {
        return Ok(refused(
            "The console is for staff. Pupils and parents sign in elsewhere.",
        ));
    }
    let needs = who.needs_two_factor();
    let (token, _) = c
        .store
        .create_session(who.person_id, &peer.0, !needs)
        .await?;
    c.store
        .audit(
            &AuditEntry::new(
                &who.username,
                &peer.0,
                AuditKind::SignIn,
                Subject::Person(who.person_id),
            )
            .word("by", "password")
            .word("second factor", if needs { "due" } else { "not needed" })
            .count("after wrong passwords", failures_before),
        )
        .await?;
    let next = match (needs, who.totp_enabled) {
        (false, _) => "/",
        (true, true) => "/login/totp",
        (true, false) => "/enrol",
    };
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, &token, c.config.secure_cookies, None),
        )],
        Redirect::to(next),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "totp.html")]
struct TotpPage {
    l: Layout,
    error: String,
}

/// The layout of a page half-way through signing in (no navigation yet).
fn pending_layout(c: &Console, title: &str, csrf: &str) -> Layout {
    let mut l = c.layout(title, None);
    l.csrf = csrf.to_owned();
    l
}

pub(super) async fn totp_form(
    State(c): State<Console>,
    Pending { session, .. }: Pending,
) -> Result<Response, Denied> {
    Ok(html(&TotpPage {
        l: pending_layout(&c, "Your code", &session.csrf),
        error: String::new(),
    }))
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
    csrf: String,
}

fn unix_secs() -> u64 {
    haven_runtime::clock::now_secs()
}

pub(super) async fn totp_check(
    State(c): State<Console>,
    peer: Peer,
    SessionCookie(token): SessionCookie,
    PendingForm(Pending { who, session }, f): PendingForm<CodeForm>,
) -> Result<Response, Denied> {
    let page = |status: StatusCode, error: String| {
        (
            status,
            html(&TotpPage {
                l: pending_layout(&c, "Your code", &session.csrf),
                error,
            }),
        )
            .into_response()
    };
    if c.code_failures
        .too_many(&peer.0, haven_runtime::clock::instant())
    {
        return Ok(page(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong codes from this computer: wait a quarter of an hour.".into(),
        ));
    }
    let secret = c
        .store
        .totp_secret(who.person_id, c.totp_key()?)
        .await?
        .filter(|_| who.totp_enabled)
        .and_then(|(s, _)| totp::base32_decode(&s));
    let Some(secret) = secret else {
        return Ok(Redirect::to("/enrol").into_response());
    };
    // Every attempt is counted before the code is looked at, per account (across sessions
    // and addresses): five wrong in a row lock the step a quarter of an hour.
    let failure = match c.store.second_factor_attempt(who.person_id).await? {
        Ok(failure) => failure,
        Err(until) => {
            return Ok(page(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong codes: two-step sign-in for this account is locked until {}.",
                    when(until)
                ),
            ))
        }
    };
    let by_code = match totp::matching_step(&secret, &f.code, unix_secs()) {
        // A code works once: the step is recorded, and an older or equal one refused.
        Some(step) => c.store.use_totp_step(who.person_id, step as i64).await?,
        None => false,
    };
    let ok = by_code || c.store.use_recovery_code(who.person_id, &f.code).await?;
    if !ok {
        address_failed(&c, &c.code_failures, &peer, "second-factor codes").await?;
        audit_failure(&c, &who.username, &peer.0, Step::Code, failure).await?;
        return Ok(match failure.locked_until {
            Some(until) => page(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "Too many wrong codes: two-step sign-in for this account is locked until {}.",
                    when(until)
                ),
            ),
            None => page(
                StatusCode::UNAUTHORIZED,
                "That code did not work. Codes change every 30 seconds; each works once.".into(),
            ),
        });
    }
    let failures_before = c.store.second_factor_passed(who.person_id).await?;
    c.store.pass_second_factor(&token).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &who.username,
                &peer.0,
                AuditKind::SecondFactor,
                Subject::Person(who.person_id),
            )
            .word("by", if by_code { "code" } else { "recovery code" })
            .count("after wrong codes", failures_before),
        )
        .await?;
    Ok(Redirect::to("/").into_response())
}

/// A step of signing in whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Password,
    Code,
}

impl Step {
    /// (the first failure's kind, the lock's kind, what is wrong, in the plural).
    fn words(self) -> (AuditKind, AuditKind, &'static str) {
        match self {
            Step::Password => (
                AuditKind::SignInRefused,
                AuditKind::AccountLocked,
                "wrong passwords",
            ),
            Step::Code => (
                AuditKind::SecondFactorRefused,
                AuditKind::SecondFactorLocked,
                "wrong codes",
            ),
        }
    }
}

/// Records a failure at one step of signing in, counted rather than one entry per guess: an
/// entry for the first failure in a row, and one each time the step locks, saying how many in
/// a row; the failures between are counted in the next of these or in the sign-in after them.
pub(super) async fn audit_failure(
    c: &Console,
    username: &str,
    address: &str,
    step: Step,
    failure: Failure,
) -> Result<(), Denied> {
    let (first, locked, wrong) = step.words();
    let entry = |kind| async move {
        let subject = c
            .store
            .identity(username)
            .await?
            .map_or(Subject::Nothing, |w| Subject::Person(w.person_id));
        Ok::<_, Denied>(AuditEntry::new(username, address, kind, subject))
    };
    let entry = match failure.locked_until {
        Some(until) => entry(locked)
            .await?
            .count(wrong, failure.in_a_row)
            .count("locked until (ms)", until),
        None if failure.in_a_row == 1 => entry(first).await?,
        None => return Ok(()),
    };
    c.store.audit(&entry).await?;
    Ok(())
}

/// Counts a failure from the address; the one that reaches the limit is audited (once per
/// window), since from then on that address waits.
async fn address_failed(
    c: &Console,
    failures: &crate::web::Failures,
    peer: &Peer,
    what: &'static str,
) -> Result<(), Denied> {
    let n = failures.failed(&peer.0, haven_runtime::clock::instant());
    if n == failures.limit() {
        let subject = peer.0.parse().map_or(Subject::Nothing, Subject::Device);
        c.store
            .audit(
                &AuditEntry::new("haven", &peer.0, AuditKind::AddressThrottled, subject)
                    .word("failed", what)
                    .count("within 15 minutes", i64::from(n)),
            )
            .await?;
    }
    Ok(())
}

#[derive(Template)]
#[template(path = "enrol.html")]
struct EnrolPage {
    l: Layout,
    qr: String,
    secret: String,
    error: String,
}

/// The enrolment page: the secret as a QR code and as text, and why the last code failed.
fn enrol_page(c: &Console, who: &Identity, csrf: &str, secret: String, error: &str) -> Response {
    let issuer = format!("Haven ({})", c.school());
    let uri = totp::otpauth_uri(&issuer, &who.username, &secret);
    html(&EnrolPage {
        l: pending_layout(c, "Two-step sign-in", csrf),
        qr: totp::qr_svg(&uri).unwrap_or_default(),
        secret,
        error: error.to_owned(),
    })
}

pub(super) async fn enrol_form(
    State(c): State<Console>,
    Pending { who, session }: Pending,
) -> Result<Response, Denied> {
    if who.totp_enabled {
        // Enrolment is for those without a second factor; changing it is another matter.
        return Ok(Redirect::to(if session.second_factor {
            "/"
        } else {
            "/login/totp"
        })
        .into_response());
    }
    let secret = totp::base32(&haven_store::sessions::random_bytes(20)?);
    c.store
        .set_totp_secret(who.person_id, &secret, c.totp_key()?)
        .await?;
    Ok(enrol_page(&c, &who, &session.csrf, secret, ""))
}

#[derive(Template)]
#[template(path = "enrolled.html")]
struct EnrolledPage {
    l: Layout,
    codes: Vec<String>,
}

pub(super) async fn enrol(
    State(c): State<Console>,
    peer: Peer,
    SessionCookie(token): SessionCookie,
    PendingForm(Pending { who, session }, f): PendingForm<CodeForm>,
) -> Result<Response, Denied> {
    if who.totp_enabled {
        return Ok(Redirect::to("/").into_response());
    }
    let Some((secret_b32, _)) = c.store.totp_secret(who.person_id, c.totp_key()?).await? else {
        return Ok(Redirect::to("/enrol").into_response());
    };
    let secret = totp::base32_decode(&secret_b32).unwrap_or_default();
    let step = totp::matching_step(&secret, &f.code, unix_secs());
    let Some(step) = step else {
        let page = enrol_page(
            &c,
            &who,
            &session.csrf,
            secret_b32,
            "That code did not match. Check the app shows Haven and try the new code.",
        );
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    };
    c.store.use_totp_step(who.person_id, step as i64).await?;
    c.store.enable_totp(who.person_id).await?;
    let codes = c.store.new_recovery_codes(who.person_id).await?;
    c.store.pass_second_factor(&token).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &who.username,
                &peer.0,
                AuditKind::EnrolSecondFactor,
                Subject::Person(who.person_id),
            )
            .word("with", "TOTP and ten recovery codes"),
        )
        .await?;
    // Signed in now, with both factors.
    let signed = Signed {
        who,
        session: Some(Session {
            second_factor: true,
            ..session
        }),
        address: peer.0,
    };
    Ok(html(&EnrolledPage {
        l: c.layout("Two-step sign-in is on", Some(&signed)),
        codes,
    }))
}

pub(super) async fn logout(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Denied> {
    if let Ok((who, session)) = c.session_of(&headers).await {
        if !crate::web::same(&f.csrf, &session.csrf) {
            return Err(Denied::Csrf);
        }
        if let Some(token) = cookie(&headers, SESSION_COOKIE) {
            c.store.end_session(&token).await?;
        }
        c.store
            .audit(&AuditEntry::new(
                &who.username,
                &peer.0,
                AuditKind::SignOut,
                Subject::Person(who.person_id),
            ))
            .await?;
    }
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", c.config.secure_cookies, Some(0)),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

crate::web::csrf_field!(CodeForm);
