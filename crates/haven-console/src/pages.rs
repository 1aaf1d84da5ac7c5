//! The console's pages: sign-in (password, then a TOTP code or enrolment for the roles that
//! need it), the dashboard, activity search and a person's timeline, review requests, the
//! policy with its changes, the audit log and API tokens.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use haven_store::accounts::{Failure, Role, SignInError};
use haven_store::audit::{AuditCheck, AuditEntry, AuditKind, Subject};
use haven_store::events::{Cursor, EventQuery, StoredEvent};
use haven_store::tokens::TokenScope;
use serde::Deserialize;

use crate::permissions::Permission;
use crate::totp;
use crate::web::{
    cookie, day_start, html, set_cookie, when, Denied, Peer, Signed, LOGIN_COOKIE, SESSION_COOKIE,
};
use crate::Console;

/// Every page, with the permission each needs (checked inside each handler with
/// [`Signed::need`]; listed here for the role × route table in the tests).
pub const PAGES: &[(&str, &str, Option<Permission>)] = &[
    ("GET", "/", None),
    ("GET", "/account", None),
    ("POST", "/account/password", None),
    ("POST", "/account/proxy-password", None),
    ("POST", "/account/sessions", None),
    ("GET", "/activity", Some(Permission::Activity)),
    ("GET", "/people", Some(Permission::Activity)),
    ("GET", "/people/{id}", Some(Permission::Activity)),
    ("GET", "/reviews", Some(Permission::Reviews)),
    ("POST", "/reviews/{id}", Some(Permission::Reviews)),
    ("GET", "/policy", Some(Permission::PolicyRead)),
    ("POST", "/policy", Some(Permission::PolicyEdit)),
    (
        "POST",
        "/policy/changes/{id}",
        Some(Permission::PolicyApprove),
    ),
    ("GET", "/audit", Some(Permission::Audit)),
    ("POST", "/audit/verify", Some(Permission::Audit)),
    ("GET", "/triage", Some(Permission::Triage)),
    ("GET", "/triage/{id}", Some(Permission::Triage)),
    ("POST", "/triage/{id}", Some(Permission::Triage)),
    ("GET", "/library", Some(Permission::Triage)),
    ("POST", "/library", Some(Permission::Triage)),
    ("POST", "/library/changes/{id}", Some(Permission::Triage)),
    ("GET", "/tokens", Some(Permission::ApiTokens)),
    ("POST", "/tokens", Some(Permission::ApiTokens)),
    ("POST", "/tokens/{id}/revoke", Some(Permission::ApiTokens)),
];

pub(crate) fn routes() -> Router<Console> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/login/totp", get(totp_form).post(totp_check))
        .route("/enrol", get(enrol_form).post(enrol))
        .route("/logout", post(logout))
        .route("/account", get(account))
        .route("/account/password", post(account_password))
        .route("/account/proxy-password", post(account_proxy_password))
        .route("/account/sessions", post(account_sessions))
        .route("/activity", get(activity))
        .route("/activity/rows", get(activity_rows))
        .route("/people", get(people))
        .route("/people/{id}", get(person))
        .route("/reviews", get(reviews))
        .route("/reviews/{id}", post(decide_review))
        .route("/policy", get(policy).post(policy_save))
        .route("/policy/changes/{id}", post(policy_settle))
        .route("/audit", get(audit))
        .route("/audit/verify", post(audit_verify))
        .route("/triage", get(triage))
        .route("/triage/{id}", get(capture_page).post(triage_decide))
        .route("/library", get(library).post(library_save))
        .route("/library/changes/{id}", post(library_settle))
        .route("/tokens", get(tokens).post(token_create))
        .route("/tokens/{id}/revoke", post(token_revoke))
        .route("/static/htmx.min.js", get(htmx))
        .route("/static/haven.css", get(css))
}

async fn htmx() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../static/htmx.min.js"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../static/haven.css"),
    )
        .into_response()
}

/// A link in the header.
#[derive(Debug)]
pub struct NavItem {
    href: &'static str,
    label: &'static str,
}

/// What every page's frame shows.
#[derive(Debug, Default)]
pub struct Layout {
    title: String,
    school: String,
    /// Who is signed in (empty on the sign-in pages).
    user: String,
    csrf: String,
    nav: Vec<NavItem>,
    /// Warnings everyone using the console must see (a full disk), and problems with the
    /// lists in force for those who run the filter (see [`Console::list_alerts`]).
    alerts: Vec<String>,
}

impl Console {
    fn layout(&self, title: &str, signed: Option<&Signed>) -> Layout {
        let mut l = Layout {
            title: title.to_owned(),
            school: self.school(),
            ..Layout::default()
        };
        if self.store.health().disk_full() {
            l.alerts.push(
                "The disk is full: Haven cannot save what the filter records, captures or \
                 alerts until the network manager frees space on the server where Haven keeps \
                 its data. Filtering goes on; what waits is saved once there is room."
                    .to_owned(),
            );
        }
        if let Some(s) = signed {
            l.user = format!(
                "{} ({})",
                s.who.display_name,
                s.who
                    .roles
                    .iter()
                    .map(|r| r.id())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            l.csrf = s.csrf().to_owned();
            for (href, label, p) in [
                ("/", "Dashboard", Permission::Dashboard),
                ("/activity", "Activity", Permission::Activity),
                ("/people", "People", Permission::Activity),
                ("/triage", "Triage", Permission::Triage),
                ("/library", "Risk library", Permission::Triage),
                ("/reviews", "Reviews", Permission::Reviews),
                ("/policy", "Policy", Permission::PolicyRead),
                ("/audit", "Audit log", Permission::Audit),
                ("/tokens", "API tokens", Permission::ApiTokens),
            ] {
                if s.may(p) {
                    l.nav.push(NavItem { href, label });
                }
            }
            l.nav.push(NavItem {
                href: "/account",
                label: "My account",
            });
            if s.may(Permission::PolicyRead) {
                l.alerts.extend(self.list_alerts());
            }
        }
        l
    }

    /// What is wrong with the lists in force, in words for the network manager: the previous
    /// snapshot standing in for a refused one, and policy rules that an illegal list overrides.
    pub fn list_alerts(&self) -> Vec<String> {
        let engine = self.engine.current();
        let mut out = Vec::new();
        if let Some(why) = engine.fallback() {
            out.push(format!(
                "Haven is filtering with its previous snapshot of the lists: the newest one on the \
                 server is damaged and was refused. Pupils are still filtered, with lists that may \
                 be out of date. To rebuild them, run: haven lists update (details: {why})."
            ));
        }
        for o in engine.illegal_overrides() {
            out.push(format!(
                "A policy rule allows an address on an illegal list (IWF or CTIRU); the illegal list \
                 wins and the address stays blocked. Change the rule: {o}."
            ));
        }
        out
    }
}

/// A page with a title and a line of text (errors, refusals).
#[derive(Debug, Template)]
#[template(path = "message.html")]
pub struct Message<'a> {
    /// The heading.
    pub title: &'a str,
    /// What to say.
    pub text: &'a str,
}

/// Renders a template into a response.
pub fn render<T: Template>(t: &T) -> Response {
    html(t)
}

// ---- signing in --------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    l: Layout,
    error: String,
    form_token: String,
    idle: u32,
}

async fn login_form(State(c): State<Console>, headers: HeaderMap) -> Result<Response, Denied> {
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
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login(
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
    if c.failures.too_many(&peer.0, std::time::Instant::now()) {
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
            audit_failure(&c, &username, &peer, Step::Password, failure).await?;
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

async fn totp_form(State(c): State<Console>, headers: HeaderMap) -> Result<Response, Denied> {
    let (_, session) = c.session_of(&headers).await?;
    Ok(html(&TotpPage {
        l: pending_layout(&c, "Your code", &session.csrf),
        error: String::new(),
    }))
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
    csrf: String,
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn totp_check(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Denied> {
    let (who, session) = c.session_of(&headers).await?;
    if !crate::web::same(&f.csrf, &session.csrf) {
        return Err(Denied::Csrf);
    }
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
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
    if c.code_failures.too_many(&peer.0, std::time::Instant::now()) {
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
        audit_failure(&c, &who.username, &peer, Step::Code, failure).await?;
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
enum Step {
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
async fn audit_failure(
    c: &Console,
    username: &str,
    peer: &Peer,
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
        Ok::<_, Denied>(AuditEntry::new(username, &peer.0, kind, subject))
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
    let n = failures.failed(&peer.0, std::time::Instant::now());
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

async fn enrol_form(State(c): State<Console>, headers: HeaderMap) -> Result<Response, Denied> {
    let (who, session) = c.session_of(&headers).await?;
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
    let issuer = format!("Haven ({})", c.school());
    let uri = totp::otpauth_uri(&issuer, &who.username, &secret);
    Ok(html(&EnrolPage {
        l: pending_layout(&c, "Two-step sign-in", &session.csrf),
        qr: totp::qr_svg(&uri).unwrap_or_default(),
        secret,
        error: String::new(),
    }))
}

#[derive(Template)]
#[template(path = "enrolled.html")]
struct EnrolledPage {
    l: Layout,
    codes: Vec<String>,
}

async fn enrol(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Denied> {
    let (who, session) = c.session_of(&headers).await?;
    if !crate::web::same(&f.csrf, &session.csrf) {
        return Err(Denied::Csrf);
    }
    if who.totp_enabled {
        return Ok(Redirect::to("/").into_response());
    }
    let Some((secret_b32, _)) = c.store.totp_secret(who.person_id, c.totp_key()?).await? else {
        return Ok(Redirect::to("/enrol").into_response());
    };
    let secret = totp::base32_decode(&secret_b32).unwrap_or_default();
    let step = totp::matching_step(&secret, &f.code, unix_secs());
    let Some(step) = step else {
        let issuer = format!("Haven ({})", c.school());
        let uri = totp::otpauth_uri(&issuer, &who.username, &secret_b32);
        return Ok((
            StatusCode::UNAUTHORIZED,
            html(&EnrolPage {
                l: pending_layout(&c, "Two-step sign-in", &session.csrf),
                qr: totp::qr_svg(&uri).unwrap_or_default(),
                secret: secret_b32,
                error: "That code did not match. Check the app shows Haven and try the new code."
                    .into(),
            }),
        )
            .into_response());
    };
    c.store.use_totp_step(who.person_id, step as i64).await?;
    c.store.enable_totp(who.person_id).await?;
    let codes = c.store.new_recovery_codes(who.person_id).await?;
    let token = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
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
    let signed = c.signed(&headers, &peer).await?;
    Ok(html(&EnrolledPage {
        l: c.layout("Two-step sign-in is on", Some(&signed)),
        codes,
    }))
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
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

// ---- my account: password, proxy password, sessions -----------------------------------------

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
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((
        status,
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

async fn account(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    let mine = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    account_page(&c, &s, &mine, String::new(), String::new()).await
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current: String,
    new: String,
    repeat: String,
}

/// Checks the signed-in person's console password before a change: `None` when it is right,
/// else why not. A wrong one counts like a wrong sign-in (a session left open is no way round
/// the lock).
async fn check_current(
    c: &Console,
    s: &Signed,
    peer: &Peer,
    current: &str,
) -> Result<Option<String>, Denied> {
    Ok(match c.store.sign_in(&s.who.username, current).await? {
        Ok(_) => None,
        Err(SignInError::Wrong(failure)) => {
            audit_failure(c, &s.who.username, peer, Step::Password, failure).await?;
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
    peer: &Peer,
    f: &PasswordForm,
    kind: PasswordKind,
) -> Result<Option<String>, Denied> {
    if f.new != f.repeat {
        return Ok(Some("The new passwords differ.".into()));
    }
    if let Some(why) = check_current(c, s, peer, &f.current).await? {
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

async fn account_password(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let mine = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if let Some(why) = set_from_form(&c, &s, &peer, &f, PasswordKind::Console).await? {
        return account_page(&c, &s, &mine, String::new(), why).await;
    }
    // Every session ended with the old password, this one too: this browser goes on in a new
    // one (a new cookie), with the second factor it had already given.
    let (token, session) = c
        .store
        .create_session(s.who.person_id, &peer.0, true)
        .await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &peer.0,
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
        &c,
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

async fn account_proxy_password(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let mine = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
    if let Some(why) = set_from_form(&c, &s, &peer, &f, PasswordKind::Proxy).await? {
        return account_page(&c, &s, &mine, String::new(), why).await;
    }
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &peer.0,
            AuditKind::SetProxyPassword,
            Subject::Person(s.who.person_id),
        ))
        .await?;
    account_page(
        &c,
        &s,
        &mine,
        "Proxy password set: use it (not your console password) when the browser asks you to sign in to the internet.".into(),
        String::new(),
    )
    .await
}

#[derive(Deserialize)]
struct EndSessionForm {
    csrf: String,
    /// One session to end, by its id in the list.
    session: Option<String>,
    /// Or every session but this one.
    everywhere: Option<String>,
}

async fn account_sessions(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<EndSessionForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let mine = cookie(&headers, SESSION_COOKIE).unwrap_or_default();
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
                &peer.0,
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

// ---- the dashboard -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    l: Layout,
    name: String,
    roles: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    l: Layout,
    /// (id, name, blocks)
    categories: Vec<(String, String, i64)>,
    most: i64,
    sites: Vec<(String, i64)>,
    open_reviews: usize,
    /// Open captures graded 4 or 5: (grade, when, who, categories, text).
    captures: Vec<(i64, String, String, String, String)>,
}

/// Midnight today, local time, in ms since the epoch.
pub(crate) fn today_start() -> i64 {
    let now = jiff::Zoned::now();
    now.start_of_day()
        .map_or(now.timestamp().as_millisecond(), |z| {
            z.timestamp().as_millisecond()
        })
}

async fn home(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    if !s.may(Permission::Dashboard) {
        return Ok(html(&HomePage {
            l: c.layout("Haven", Some(&s)),
            name: s.who.display_name.clone(),
            roles: s
                .who
                .roles
                .iter()
                .map(|r| r.id())
                .collect::<Vec<_>>()
                .join(", "),
        }));
    }
    let from = today_start();
    let categories: Vec<(String, String, i64)> = c
        .store
        .blocks_by_category(from)
        .await?
        .into_iter()
        .map(|(id, n)| {
            let name =
                haven_core::category::by_id(&id).map_or_else(|| id.clone(), |k| k.name.to_owned());
            (id, name, n)
        })
        .collect();
    let most = categories.iter().map(|c| c.2).max().unwrap_or(1);
    let sites = c.store.top_blocked(from, 10).await?;
    let open_reviews = c.store.reviews("open", 1000).await?.len();
    // Captures are safeguarding data: shown to those who triage them, and the read audited.
    let captures = if s.may(Permission::Triage) {
        let found = c.store.open_captures(4, 20).await?;
        if !found.is_empty() {
            c.store
                .audit(
                    &AuditEntry::new(
                        &s.who.username,
                        &s.address,
                        AuditKind::ReadCaptures,
                        Subject::OpenCaptures,
                    )
                    .word("on", "dashboard")
                    .count("min grade", 4)
                    .count("shown", found.len() as i64),
                )
                .await?;
        }
        found
            .into_iter()
            .map(|k| {
                (
                    k.grade,
                    when(k.at_ms),
                    k.user.unwrap_or(k.client),
                    k.categories,
                    k.text,
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(html(&DashboardPage {
        l: c.layout("Dashboard", Some(&s)),
        categories,
        most,
        sites,
        open_reviews,
        captures,
    }))
}

// ---- activity ----------------------------------------------------------------------------

/// The search form, as typed.
#[derive(Debug, Default, Deserialize, Clone)]
#[serde(default)]
pub struct ActivityForm {
    user: String,
    client: String,
    category: String,
    action: String,
    search: String,
    searches: String,
    from: String,
    to: String,
    before: String,
}

impl ActivityForm {
    fn query(&self) -> Result<EventQuery, Denied> {
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        let date = |s: &str, field: &str| -> Result<Option<i64>, Denied> {
            match text(s) {
                None => Ok(None),
                Some(d) => day_start(&d)
                    .map(Some)
                    .ok_or_else(|| Denied::Invalid(format!("{field}: {d:?} is not a date"))),
            }
        };
        let to = date(&self.to, "To")?.map(|t| t + 86_400_000);
        Ok(EventQuery {
            user: text(&self.user).map(|u| u.to_ascii_lowercase()),
            client: text(&self.client),
            category: text(&self.category),
            action: text(&self.action),
            source: None,
            search: match (text(&self.search), self.searches == "1") {
                (Some(s), _) => Some(s),
                (None, true) => Some(String::new()),
                (None, false) => None,
            },
            from_ms: date(&self.from, "From")?,
            to_ms: to,
            before: match text(&self.before) {
                Some(t) => Some(
                    Cursor::parse(&t)
                        .ok_or_else(|| Denied::Invalid("That page link is not valid.".into()))?,
                ),
                None => None,
            },
            limit: 50,
        })
    }

    /// The query string for the page after `last`.
    fn next(&self, last: Cursor) -> String {
        let mut f = self.clone();
        f.before = last.token();
        let pairs = [
            ("user", &f.user),
            ("client", &f.client),
            ("category", &f.category),
            ("action", &f.action),
            ("search", &f.search),
            ("searches", &f.searches),
            ("from", &f.from),
            ("to", &f.to),
            ("before", &f.before),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", url_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `s` percent-encoded for a query string or form (everything but unreserved characters).
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One event, ready for the table.
#[derive(Debug)]
struct Row {
    when: String,
    user: Option<String>,
    client: String,
    name: String,
    search: Option<String>,
    action: String,
    reason: Option<String>,
    repeats: i64,
}

fn rows_of(events: Vec<StoredEvent>) -> Vec<Row> {
    events
        .into_iter()
        .map(|e| Row {
            when: when(e.at_ms),
            user: e.user,
            client: e.client,
            name: e.name,
            search: e.search,
            action: e.action,
            reason: e.reason,
            repeats: e.repeats,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "activity.html")]
struct ActivityPage {
    l: Layout,
    heading: String,
    person: Option<haven_store::people::Person>,
    q: ActivityForm,
    actions: &'static [&'static str],
    rows: Vec<Row>,
    more: String,
    more_page: String,
}

#[derive(Template)]
#[template(path = "rows.html")]
struct RowsFragment {
    rows: Vec<Row>,
    more: String,
    more_page: String,
}

const ACTIONS: &[&str] = &["", "block", "allow", "warn", "alert-only", "rewrite"];

/// Links to the next page of a search, if there is one: (rows for htmx to append, the whole
/// next page at `page`).
fn next_links(next: Option<String>, page: &str) -> (String, String) {
    match next {
        Some(n) => (format!("/activity/rows?{n}"), format!("{page}?{n}")),
        None => (String::new(), String::new()),
    }
}

/// People whose name, id or user name holds `text` (50 at most), the search recorded in the
/// audit log with how many it found, never the words searched for.
pub(crate) async fn find_people_audited(
    c: &Console,
    s: &Signed,
    text: &str,
    via: &'static str,
) -> Result<Vec<haven_store::people::Person>, Denied> {
    let found = c.store.find_people(text, 50).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::SearchPeople,
                Subject::Nothing,
            )
            .count("found", i64::try_from(found.len()).unwrap_or(i64::MAX))
            .word("via", via),
        )
        .await?;
    Ok(found)
}

/// Review requests with `status` (`limit` at most), the reading recorded in the audit log with
/// how many were shown.
pub(crate) async fn reviews_audited(
    c: &Console,
    s: &Signed,
    status: &str,
    limit: i64,
    via: &'static str,
) -> Result<Vec<haven_store::reviews::Review>, Denied> {
    let found = c.store.reviews(status, limit).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadReviews,
                Subject::ReviewQueue,
            )
            .count("shown", i64::try_from(found.len()).unwrap_or(i64::MAX))
            .word("via", via),
        )
        .await?;
    Ok(found)
}

/// Records a read of activity (see [`haven_store::Store::audit_activity_read`]).
pub(crate) async fn audit_activity_read(
    c: &Console,
    s: &Signed,
    q: &haven_store::events::EventQuery,
    via: &'static str,
) -> Result<(), Denied> {
    Ok(c.store
        .audit_activity_read(&s.who.username, &s.address, q, via)
        .await?)
}

/// Runs an activity search for a signed-in person, recording the read: (rows, the query
/// string of the next page, if any).
async fn search_activity(
    c: &Console,
    s: &Signed,
    f: &ActivityForm,
) -> Result<(Vec<Row>, Option<String>), Denied> {
    s.need(Permission::Activity)?;
    let mut q = f.query()?;
    // A device may be named rather than addressed.
    if let Some(named) = q
        .client
        .clone()
        .filter(|c| c.parse::<std::net::IpAddr>().is_err())
    {
        let device = c
            .store
            .devices()
            .await?
            .into_iter()
            .find(|d| d.name.eq_ignore_ascii_case(&named))
            .ok_or_else(|| Denied::Invalid(format!("No device is called {named:?}.")))?;
        q.client = Some(device.address.ok_or_else(|| {
            Denied::Invalid(format!("{named:?} has no fixed address to search by."))
        })?);
    }
    audit_activity_read(c, s, &q, "page").await?;
    let mut events = c.store.search_events(&q).await?;
    let next = (events.len() as i64 == q.limit)
        .then(|| events.last().map(|e| f.next(e.cursor())))
        .flatten();
    if !s.may(Permission::Triage) {
        c.monitoring
            .withhold_graded_searches(&mut events, q.search.is_some());
    }
    Ok((rows_of(events), next))
}

async fn activity(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    let (rows, next) = search_activity(&c, &s, &f).await?;
    let (more, more_page) = next_links(next, "/activity");
    Ok(html(&ActivityPage {
        l: c.layout("Activity", Some(&s)),
        heading: "Activity".into(),
        person: None,
        q: f,
        actions: ACTIONS,
        rows,
        more,
        more_page,
    }))
}

/// The next rows of a search, for htmx to append.
async fn activity_rows(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    let (rows, next) = search_activity(&c, &s, &f).await?;
    let (more, more_page) = next_links(next, "/activity");
    Ok(html(&RowsFragment {
        rows,
        more,
        more_page,
    }))
}

#[derive(Template)]
#[template(path = "people.html")]
struct PeoplePage {
    l: Layout,
    q: String,
    people: Vec<haven_store::people::Person>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeopleQuery {
    q: String,
}

/// Finding someone by name, UPN or user name, to open their timeline.
async fn people(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<PeopleQuery>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Activity)?;
    let text = q.q.trim().to_owned();
    let people = if text.is_empty() {
        Vec::new()
    } else {
        find_people_audited(&c, &s, &text, "page").await?
    };
    Ok(html(&PeoplePage {
        l: c.layout("People", Some(&s)),
        q: text,
        people,
    }))
}

/// A person's timeline: their details and their activity, newest first.
async fn person(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(mut f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Activity)?;
    let p = c.store.person(id).await?.ok_or(Denied::NotFound)?;
    let Some(user) = p.username.clone() else {
        return Err(Denied::Invalid(format!(
            "{} {} has no user name, so no activity is recorded against them.",
            p.first_name, p.last_name
        )));
    };
    f.user = user;
    let (rows, next) = search_activity(&c, &s, &f).await?;
    let (more, more_page) = next_links(next, &format!("/people/{id}"));
    Ok(html(&ActivityPage {
        l: c.layout(&format!("{} {}", p.first_name, p.last_name), Some(&s)),
        heading: format!("{} {}", p.first_name, p.last_name),
        person: Some(p),
        q: f,
        actions: ACTIONS,
        rows,
        more,
        more_page,
    }))
}

// ---- review requests ---------------------------------------------------------------------

struct ReviewRow {
    id: i64,
    when: String,
    client: String,
    user: Option<String>,
    group: String,
    url: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "reviews.html")]
struct ReviewsPage {
    l: Layout,
    reviews: Vec<ReviewRow>,
    message: String,
    approval: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Flash {
    done: String,
}

async fn reviews(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Reviews)?;
    let open = reviews_audited(&c, &s, "open", 200, "page").await?;
    let reviews = open
        .into_iter()
        .map(|r| ReviewRow {
            id: r.id,
            when: when(r.at_ms),
            client: r.client,
            user: r.user,
            group: r.group,
            url: r.url,
            reason: r.reason,
        })
        .collect();
    Ok(html(&ReviewsPage {
        l: c.layout("Review requests", Some(&s)),
        reviews,
        message: flash.done,
        approval: c.config.policy_approval,
    }))
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    scope: String,
}

async fn decide_review(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Reviews)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let approve = crate::web::decision(&f.decision, "approve", "decline")?;
    let outcome = c
        .decide_review(id, approve, f.scope != "page", &f.note, &s)
        .await?;
    let done = match outcome {
        None => format!("Review {id} declined."),
        Some(crate::change::Outcome::Applied(change)) => {
            format!("Review {id} approved: allowed now (policy change {change}).")
        }
        Some(crate::change::Outcome::Pending(change)) => {
            format!("Review {id} approved: policy change {change} waits for a second person.")
        }
    };
    Ok(Redirect::to(&format!("/reviews?done={}", url_encode(&done))).into_response())
}

// ---- policy ------------------------------------------------------------------------------

struct ChangeRow {
    id: i64,
    when: String,
    author: String,
    summary: String,
    reason: String,
    status: String,
    approver: Option<String>,
}

/// One list source in the snapshot in force.
struct ListRow {
    name: String,
    category: String,
    entries: u32,
}

#[derive(Template)]
#[template(path = "policy.html")]
struct PolicyPage {
    l: Layout,
    origin: String,
    snapshot: String,
    built: String,
    hosts: usize,
    lists: Vec<ListRow>,
    approval: bool,
    text: String,
    can_edit: bool,
    can_approve: bool,
    changes: Vec<ChangeRow>,
    message: String,
    error: String,
}

async fn policy_page(
    c: &Console,
    s: &Signed,
    text: Option<String>,
    message: String,
    error: String,
) -> Result<Response, Denied> {
    let engine = c.engine.current();
    let changes = c
        .store
        .policy_changes(50)
        .await?
        .into_iter()
        .map(|ch| ChangeRow {
            id: ch.id,
            when: when(ch.at_ms),
            author: ch.author,
            summary: ch.summary,
            reason: ch.reason,
            status: ch.status,
            approver: ch.approver,
        })
        .collect();
    let status = if error.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok((
        status,
        html(&PolicyPage {
            l: c.layout("Policy", Some(s)),
            origin: if c.policy_path.is_file() {
                c.policy_path.display().to_string()
            } else {
                "the built-in default policy".into()
            },
            snapshot: format!("{:016x}", engine.snapshot().checksum()),
            built: when(engine.snapshot().created_unix() as i64 * 1000),
            hosts: engine.snapshot().host_count().0 + engine.snapshot().host_count().1,
            lists: engine
                .snapshot()
                .sources()
                .iter()
                .map(|src| ListRow {
                    name: src.name.clone(),
                    category: engine
                        .snapshot()
                        .categories()
                        .get(usize::from(src.category))
                        .map_or_else(String::new, |c| c.id.clone()),
                    entries: src.entries,
                })
                .collect(),
            approval: c.config.policy_approval,
            text: text.unwrap_or_else(|| c.policy_text()),
            can_edit: s.may(Permission::PolicyEdit),
            can_approve: s.may(Permission::PolicyApprove),
            changes,
            message,
            error,
        }),
    )
        .into_response())
}

async fn policy(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::PolicyRead)?;
    policy_page(&c, &s, None, flash.done, String::new()).await
}

#[derive(Deserialize)]
struct PolicyForm {
    csrf: String,
    policy: String,
    reason: String,
}

async fn policy_save(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<PolicyForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::PolicyEdit)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    // Browsers send CRLF line ends from a textarea.
    let text = f.policy.replace("\r\n", "\n");
    match c
        .propose(&s, &f.reason, &text, "edited in the console")
        .await
    {
        Ok(crate::change::Outcome::Applied(id)) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!("Policy change {id} is in force."))
        ))
        .into_response()),
        Ok(crate::change::Outcome::Pending(id)) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!(
                "Policy change {id} is waiting for a second person to approve it."
            ))
        ))
        .into_response()),
        // A policy that does not validate: shown again with the reason, nothing changed.
        Err(Denied::Invalid(why)) => policy_page(&c, &s, Some(text), String::new(), why).await,
        Err(e) => Err(e),
    }
}

async fn policy_settle(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::PolicyApprove)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let approve = crate::web::decision(&f.decision, "approve", "reject")?;
    match c.settle(id, approve, &s).await {
        Ok(()) => Ok(Redirect::to(&format!(
            "/policy?done={}",
            url_encode(&format!(
                "Policy change {id} {}.",
                if approve {
                    "approved and in force"
                } else {
                    "rejected"
                }
            ))
        ))
        .into_response()),
        Err(Denied::Invalid(why)) => policy_page(&c, &s, None, String::new(), why).await,
        Err(e) => Err(e),
    }
}

// ---- audit -------------------------------------------------------------------------------

struct AuditRow {
    id: i64,
    when: String,
    actor: String,
    address: String,
    action: String,
    subject: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    l: Layout,
    entries: Vec<AuditRow>,
    latest: String,
    more: String,
    check: String,
    check_ok: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuditQuery {
    before: Option<i64>,
}

async fn audit_page(
    c: &Console,
    s: &Signed,
    before: Option<i64>,
    check: Option<AuditCheck>,
) -> Result<Response, Denied> {
    s.need(Permission::Audit)?;
    let entries = c
        .store
        .read_audit_log(&s.who.username, &s.address, before, 100)
        .await?;
    let latest = c
        .store
        .audit_log(None, 1)
        .await?
        .first()
        .map(|e| e.hash.clone())
        .unwrap_or_default();
    let more = (entries.len() == 100)
        .then(|| entries.last().map(|e| format!("/audit?before={}", e.id)))
        .flatten()
        .unwrap_or_default();
    let (check, check_ok) = match check {
        None => (String::new(), true),
        Some(AuditCheck::Intact { entries }) => (
            format!("The chain is intact: {entries} entries, every hash as written."),
            true,
        ),
        Some(AuditCheck::Broken { id, why }) => {
            (format!("The chain is BROKEN at entry {id}: {why}."), false)
        }
    };
    Ok(html(&AuditPage {
        l: c.layout("Audit log", Some(s)),
        entries: entries
            .into_iter()
            .map(|e| AuditRow {
                id: e.id,
                when: when(e.at_ms),
                actor: e.actor,
                address: e.address,
                action: e.action,
                subject: e.subject,
                detail: e.detail,
            })
            .collect(),
        latest,
        more,
        check,
        check_ok,
    }))
}

async fn audit(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    audit_page(&c, &s, q.before, None).await
}

async fn audit_verify(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Audit)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            AuditKind::VerifyAuditLog,
            Subject::AuditLog,
        ))
        .await?;
    let check = c.store.verify_audit().await?;
    audit_page(&c, &s, None, Some(check)).await
}

// ---- triage -------------------------------------------------------------------------------

struct CaptureRow {
    id: i64,
    grade: i64,
    when: String,
    user: Option<String>,
    client: String,
    text: String,
    url: String,
    categories: String,
    matched: String,
}

struct PhraseRow {
    phrase: String,
    decided: u64,
    dismissed: u64,
    rate: String,
}

#[derive(Template)]
#[template(path = "triage.html")]
struct TriagePage {
    l: Layout,
    captures: Vec<CaptureRow>,
    phrases: Vec<PhraseRow>,
    message: String,
}

async fn triage(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    let found = c.store.open_captures(1, 200).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadCaptures,
                Subject::OpenCaptures,
            )
            .word("on", "triage")
            .count("shown", found.len() as i64),
        )
        .await?;
    let captures = found
        .into_iter()
        .map(|k| CaptureRow {
            id: k.id,
            grade: k.grade,
            when: when(k.at_ms),
            user: k.user,
            client: k.client,
            text: k.text,
            url: k.url,
            categories: k.categories,
            matched: k.matched,
        })
        .collect();
    let phrases = c
        .store
        .phrase_records()
        .await?
        .into_iter()
        .map(|p| PhraseRow {
            rate: format!(
                "{:.0}%",
                100.0 * p.dismissed as f64 / p.decided.max(1) as f64
            ),
            phrase: p.phrase,
            decided: p.decided,
            dismissed: p.dismissed,
        })
        .collect();
    Ok(html(&TriagePage {
        l: c.layout("Triage", Some(&s)),
        captures,
        phrases,
        message: flash.done,
    }))
}

#[derive(Deserialize)]
struct TriageForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn triage_decide(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<TriageForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let promote = crate::web::decision(&f.decision, "promote", "dismiss")?;
    let capture = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    let done = if promote {
        let concern = c
            .store
            .promote_capture(id, &s.who.username)
            .await?
            .ok_or_else(|| Denied::Invalid(format!("Capture {id} was already decided.")))?;
        format!("Capture {id} promoted to concern {concern}.")
    } else {
        if f.reason.trim().is_empty() {
            return Err(Denied::Invalid(
                "Say why the capture is dismissed: the reason counts against the phrases that matched."
                    .into(),
            ));
        }
        if !c
            .store
            .dismiss_capture(id, &s.who.username, &f.reason)
            .await?
        {
            return Err(Denied::Invalid(format!(
                "Capture {id} was already decided."
            )));
        }
        format!("Capture {id} dismissed.")
    };
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                if promote {
                    AuditKind::PromoteCapture
                } else {
                    AuditKind::DismissCapture
                },
                Subject::Capture(id),
            )
            .count("grade", capture.grade),
        )
        .await?;
    Ok(Redirect::to(&format!("/triage?done={}", url_encode(&done))).into_response())
}

/// One line about an alert and where it went.
struct AlertRow {
    id: i64,
    state: String,
    deliveries: Vec<String>,
}

struct HistoryRow {
    id: i64,
    when: String,
    grade: i64,
    source: String,
    text: String,
    status: String,
}

struct NearbyRow {
    when: String,
    action: String,
    name: String,
    search: String,
}

#[derive(Template)]
#[template(path = "capture.html")]
struct CapturePage {
    l: Layout,
    k: haven_store::captures::Capture,
    when: String,
    alerts: Vec<AlertRow>,
    history: Vec<HistoryRow>,
    nearby: Vec<NearbyRow>,
}

/// A capture opened in context: what was seen and where, the alerts it raised, the person's
/// other captures in the last 30 days and their activity ten minutes either side. Opening it
/// acknowledges its alerts (so they are not escalated); the read is audited.
async fn capture_page(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    let k = c.store.capture(id).await?.ok_or(Denied::NotFound)?;
    let acknowledged = c.store.acknowledge_alerts(id, &s.who.username).await?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ReadCapture,
                Subject::Capture(id),
            )
            .count("alerts acknowledged", acknowledged as i64),
        )
        .await?;
    let mut alerts = Vec::new();
    for a in c.store.capture_alerts(id).await? {
        let mut state = vec![format!("raised {}", when(a.created_at))];
        match a.sent_at {
            Some(t) => state.push(format!("sent {}", when(t))),
            None => state.push("waiting (quiet hours or no one to send to)".into()),
        }
        if let Some(t) = a.escalated_at {
            state.push(format!("escalated to the deputies {}", when(t)));
        }
        if let (Some(t), Some(by)) = (a.acknowledged_at, &a.acknowledged_by) {
            state.push(format!("acknowledged by {by} {}", when(t)));
        }
        let deliveries = c
            .store
            .alert_deliveries(a.id)
            .await?
            .into_iter()
            .map(|d| {
                let state = match (d.delivered_at, &d.error) {
                    (Some(t), _) => format!("delivered {}", when(t)),
                    (None, Some(e)) => format!("not yet delivered after {} tries: {e}", d.attempts),
                    (None, None) => "sending".into(),
                };
                format!("{} ({}) to {}: {state}", d.channel, d.level, d.target)
            })
            .collect();
        alerts.push(AlertRow {
            id: a.id,
            state: state.join("; "),
            deliveries,
        });
    }
    let history = c
        .store
        .captures_of(k.user.as_deref(), &k.client, k.at_ms - 30 * 86_400_000, 50)
        .await?
        .into_iter()
        .filter(|h| h.id != id)
        .map(|h| HistoryRow {
            id: h.id,
            when: when(h.at_ms),
            grade: h.grade,
            source: h.source,
            text: h.text,
            status: h.status,
        })
        .collect();
    let nearby = c
        .store
        .search_events(&haven_store::events::EventQuery {
            user: k.user.clone(),
            client: if k.user.is_none() {
                Some(k.client.clone())
            } else {
                None
            },
            from_ms: Some(k.at_ms - 600_000),
            to_ms: Some(k.at_ms + 600_000),
            limit: 100,
            ..Default::default()
        })
        .await?
        .into_iter()
        .map(|e| NearbyRow {
            when: when(e.at_ms),
            action: e.action,
            name: e.name,
            search: e.search.unwrap_or_default(),
        })
        .collect();
    Ok(html(&CapturePage {
        l: c.layout(&format!("Capture {id}"), Some(&s)),
        when: when(k.at_ms),
        k,
        alerts,
        history,
        nearby,
    }))
}

// ---- the risk library ---------------------------------------------------------------------

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
    status: String,
    approver: String,
    /// For a pending change: the grade-5 phrases it switches off.
    switches_off: String,
    /// Whether the person reading wrote it (and so may not approve it).
    mine: bool,
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
    let mut rows = Vec::new();
    for source in c.monitoring.sources() {
        for p in &source.library.phrases {
            let (decided, dismissed) = records.get(&p.text).copied().unwrap_or((0, 0));
            let off = !in_force.phrases.iter().any(|q| q.text == p.text);
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
            switches_off: if ch.status == "pending" {
                c.monitoring
                    .grade_5_switched_off(&c.monitoring.school_text(), &ch.text)
                    .join("; ")
            } else {
                String::new()
            },
            mine: ch.author == s.who.username,
            author: ch.author,
            note: ch.note,
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
        message,
    }))
}

async fn library(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    library_page(&c, &s, None, String::new(), Vec::new(), flash.done).await
}

#[derive(Deserialize)]
struct LibraryForm {
    csrf: String,
    text: String,
    #[serde(default)]
    note: String,
}

/// Replaces the school's risk library file: checked whole (an error on any line changes
/// nothing), written, recorded with the author, reason and the hash of the text it replaced,
/// audited, and in force for the next text graded.
async fn library_save(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<LibraryForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
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
    // recorded, and in force only once someone else approves it.
    let switched_off = c.monitoring.grade_5_switched_off(&before, &text);
    if !switched_off.is_empty() {
        if let Err(e) = c.monitoring.check_school(&text) {
            let errors = library_errors(e);
            return library_page(&c, &s, Some(text), f.note, errors, String::new()).await;
        }
        let id = c
            .store
            .record_library_change(&s.who.username, &f.note, &before_hash, &text, true)
            .await?;
        c.store
            .audit(&AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::ProposeRiskLibraryChange,
                Subject::LibraryChange(id),
            ))
            .await?;
        return Ok(Redirect::to(&format!(
            "/library?done={}",
            url_encode(&format!(
                "Library change {id} switches off grade-5 phrases ({}): it waits for a second person to approve it.",
                switched_off.join("; ")
            ))
        ))
        .into_response());
    }
    if let Err(e) = c.monitoring.replace_school(&text) {
        let errors = library_errors(e);
        return library_page(&c, &s, Some(text), f.note, errors, String::new()).await;
    }
    let id = c
        .store
        .record_library_change(&s.who.username, &f.note, &before_hash, &text, false)
        .await?;
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            AuditKind::ChangeRiskLibrary,
            Subject::LibraryChange(id),
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/library?done={}",
        url_encode(&format!("Library change {id} is in force."))
    ))
    .into_response())
}

fn library_errors(e: crate::monitoring::ReplaceError) -> Vec<String> {
    match e {
        crate::monitoring::ReplaceError::Invalid(errors) => errors
            .into_iter()
            .map(|e| format!("line {}: {}", e.line, e.message))
            .collect(),
        other => vec![other.to_string()],
    }
}

#[derive(Deserialize)]
struct SettleForm {
    csrf: String,
    decision: String,
}

/// Approves or rejects a library change waiting for a second person: never by its author;
/// one written against a school file that has changed since must be made again.
async fn library_settle(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<SettleForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::Triage)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let approve = crate::web::decision(&f.decision, "approve", "reject")?;
    let change = c.store.library_change(id).await?.ok_or(Denied::NotFound)?;
    if change.status != "pending" {
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
    let status = if approve { "applied" } else { "rejected" };
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

// ---- API tokens --------------------------------------------------------------------------

struct TokenRow {
    id: i64,
    owner: String,
    name: String,
    scope: String,
    created: String,
    expires: String,
    last_used: String,
    live: bool,
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage {
    l: Layout,
    token: String,
    tokens: Vec<TokenRow>,
    scopes: &'static [TokenScope],
    message: String,
}

/// The tokens page: a new token (shown once) and the tokens listed — one's own, or everyone's
/// for the administrator.
async fn tokens_page(
    c: &Console,
    s: &Signed,
    token: String,
    message: String,
) -> Result<Response, Denied> {
    let all = s
        .who
        .roles
        .contains(&haven_store::accounts::Role::Administrator);
    let now = haven_store::now_ms();
    let tokens = c
        .store
        .api_tokens((!all).then_some(s.who.person_id))
        .await?
        .into_iter()
        .map(|t| TokenRow {
            live: !t.revoked && t.expires_at.is_none_or(|e| e > now),
            id: t.id,
            owner: t.username,
            name: t.name,
            scope: t.scope,
            created: when(t.created_at),
            expires: if t.revoked {
                "revoked".into()
            } else {
                t.expires_at.map_or_else(
                    || "never (made before tokens expired: replace it)".into(),
                    when,
                )
            },
            last_used: t.last_used.map_or_else(|| "never".into(), when),
        })
        .collect();
    Ok(html(&TokensPage {
        l: c.layout("API tokens", Some(s)),
        token,
        tokens,
        scopes: &TokenScope::ALL,
        message,
    }))
}

async fn tokens(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::ApiTokens)?;
    tokens_page(&c, &s, String::new(), flash.done).await
}

fn default_days() -> i64 {
    90
}

#[derive(Deserialize)]
struct TokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    scope: String,
    #[serde(default = "default_days")]
    days: i64,
}

async fn token_create(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Form(f): Form<TokenForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::ApiTokens)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let name = f.name.trim();
    if name.is_empty() {
        return Err(Denied::Invalid("Say what the token is for.".into()));
    }
    let scope = TokenScope::parse(&f.scope).ok_or_else(|| {
        Denied::Invalid("Choose what the token may do: ingest, read or admin.".into())
    })?;
    let (id, token) = c
        .store
        .create_api_token(s.who.person_id, name, scope, f.days)
        .await
        .map_err(|e| match e {
            haven_store::StoreError::Invalid(why) => Denied::Invalid(why),
            other => Denied::Store(other),
        })?;
    c.store
        .audit(
            &AuditEntry::new(
                &s.who.username,
                &s.address,
                AuditKind::CreateApiToken,
                Subject::Token(id),
            )
            .word("scope", scope.id())
            .count("days", f.days),
        )
        .await?;
    tokens_page(&c, &s, token, String::new()).await
}

/// Revokes a token: one's own, or anyone's for the administrator.
async fn token_revoke(
    State(c): State<Console>,
    peer: Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Denied> {
    let s = c.signed(&headers, &peer).await?;
    s.need(Permission::ApiTokens)?;
    s.check_csrf(Some(&f.csrf), &headers)?;
    let all = s
        .who
        .roles
        .contains(&haven_store::accounts::Role::Administrator);
    if !c
        .store
        .revoke_api_token(id, (!all).then_some(s.who.person_id))
        .await?
    {
        return Err(Denied::NotFound);
    }
    c.store
        .audit(&AuditEntry::new(
            &s.who.username,
            &s.address,
            AuditKind::RevokeApiToken,
            Subject::Token(id),
        ))
        .await?;
    Ok(Redirect::to(&format!(
        "/tokens?done={}",
        url_encode(&format!("Token {id} revoked."))
    ))
    .into_response())
}
