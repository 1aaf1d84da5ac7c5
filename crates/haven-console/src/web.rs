//! What every page and API route shares: who is signed in (session cookie, or API token), the
//! second factor, permissions, CSRF, and turning refusals into responses.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use haven_store::accounts::Identity;
use haven_store::sessions::Session;
use haven_store::StoreError;

use crate::permissions::{any_allowed, Permission};
use crate::Console;

/// The session cookie.
pub const SESSION_COOKIE: &str = "haven_session";
/// The cookie that ties the sign-in form to the browser that asked for it.
pub const LOGIN_COOKIE: &str = "haven_login";

/// The client's address (for the audit log and sessions).
#[derive(Debug, Clone)]
pub struct Peer(pub String);

impl Peer {
    /// The address a request came from (`unknown` when the connection did not say).
    pub fn of(extensions: &axum::http::Extensions) -> Peer {
        Peer(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string()),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer::of(&parts.extensions))
    }
}

/// A cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole console.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Equal, in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Failures counted by address (a client's address as text).
pub type Failures = haven_core::throttle::Failures<String>;

/// Failed sign-ins (or wrong codes) from one address, within `FAILURE_WINDOW`, after which it
/// must wait.
pub const FAILURES_PER_ADDRESS: u32 = 20;
/// The window for [`FAILURES_PER_ADDRESS`].
pub const FAILURE_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// A signed-in person (second factor given when their roles need one).
#[derive(Debug, Clone)]
pub struct Signed {
    /// Who.
    pub who: Identity,
    /// Their session (none for an API token).
    pub session: Option<Session>,
    /// From where.
    pub address: String,
}

impl Signed {
    /// Refuses unless one of their roles holds `p`.
    pub fn need(&self, p: Permission) -> Result<(), Denied> {
        if any_allowed(&self.who.roles, p) {
            Ok(())
        } else {
            Err(Denied::Forbidden(p))
        }
    }

    /// Whether they hold `p`.
    pub fn may(&self, p: Permission) -> bool {
        any_allowed(&self.who.roles, p)
    }

    /// Refuses a form whose CSRF token is not this session's (from the `csrf` field, or the
    /// `X-CSRF-Token` header htmx sends).
    pub fn check_csrf(&self, form: Option<&str>, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(session) = &self.session else {
            // API tokens are not cookies: a browser cannot send one by itself.
            return Ok(());
        };
        let given = form.map(str::to_owned).or_else(|| {
            headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        });
        match given {
            Some(t) if same(&t, &session.csrf) => Ok(()),
            _ => Err(Denied::Csrf),
        }
    }

    /// The CSRF token for forms on the page.
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.csrf.as_str())
    }
}

/// The signed-in person, as the route's guard found them ([`crate::routes::Guard`]: signed
/// in, second factor given where due, the route's permission held). On a route whose guard
/// does not sign in, the person behind the session cookie, or the same refusals.
impl FromRequestParts<Console> for Signed {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Signed>() {
            Some(s) => Ok(s.clone()),
            None => c.signed(&parts.headers, &Peer::of(&parts.extensions)).await,
        }
    }
}

/// A form with a `csrf` field.
pub trait CsrfField {
    /// The token the form carries.
    fn csrf(&self) -> &str;
}

/// Implements [`CsrfField`] for forms whose token is their `csrf` field.
macro_rules! csrf_field {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::web::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use csrf_field;

/// A form posted by the signed-in person from this session: read as axum's `Form` reads it
/// (its refusals unchanged), then refused unless its token is this session's
/// ([`Signed::check_csrf`]). The one place forms are checked.
#[derive(Debug)]
pub struct SessionForm<T>(pub T);

impl<T> axum::extract::FromRequest<Console> for SessionForm<T>
where
    T: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, c: &Console) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, c)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let axum::Form(form) = axum::Form::<T>::from_request(req, c)
            .await
            .map_err(IntoResponse::into_response)?;
        signed
            .check_csrf(Some(form.csrf()), &headers)
            .map_err(IntoResponse::into_response)?;
        Ok(SessionForm(form))
    }
}

/// A file sent with a form.
#[derive(Debug)]
pub struct Upload {
    /// The field it came in.
    pub field: String,
    /// Its name, as the browser gave it (clean it before keeping it).
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Most text fields (and bytes in each) a form with files may carry.
const MULTIPART_FIELDS: usize = 64;
const MULTIPART_TEXT_BYTES: usize = 64 * 1024;
/// Most files one form may carry.
pub const MULTIPART_FILES: usize = 5;

/// A form with files (`multipart/form-data`) posted by the signed-in person from this session.
/// Its first field must be the session's `csrf` token, checked before anything else is read;
/// text fields and files are capped ([`MULTIPART_FIELDS`], 64 KiB a text field,
/// [`MULTIPART_FILES`] files of `haven_records::evidence::MAX_BYTES` each), and a file chosen
/// in no field (empty, with no name) is left out.
#[derive(Debug)]
pub struct SessionMultipart {
    /// The text fields.
    pub fields: std::collections::HashMap<String, String>,
    /// The files.
    pub files: Vec<Upload>,
}

impl SessionMultipart {
    /// A text field, or "".
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }
}

fn unreadable(e: impl std::fmt::Display) -> Response {
    Denied::Invalid(format!("The form could not be read: {e}.")).into_response()
}

/// The largest file a form with files takes on its route, when it is not an attachment's
/// 10 MiB (a sealed transfer holds several attachments): set by `route!(UPLOAD_TRANSFER …)`.
#[derive(Debug, Clone, Copy)]
pub struct FileCap(pub usize);

impl axum::extract::FromRequest<Console> for SessionMultipart {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, c: &Console) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let signed = Signed::from_request_parts(&mut parts, c)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let cap = parts
            .extensions
            .get::<FileCap>()
            .map_or(haven_records::evidence::MAX_BYTES, |c| c.0);
        let req = axum::extract::Request::from_parts(parts, body);
        let mut form = axum::extract::Multipart::from_request(req, c)
            .await
            .map_err(IntoResponse::into_response)?;
        let mut out = SessionMultipart {
            fields: std::collections::HashMap::new(),
            files: Vec::new(),
        };
        let mut checked = false;
        while let Some(mut field) = form.next_field().await.map_err(unreadable)? {
            let name = field.name().unwrap_or_default().to_owned();
            if !checked {
                // Nothing is read from a form that did not come from this session.
                let token = if name == "csrf" {
                    field.text().await.map_err(unreadable)?
                } else {
                    String::new()
                };
                signed
                    .check_csrf(Some(&token), &headers)
                    .map_err(IntoResponse::into_response)?;
                checked = true;
                continue;
            }
            match field.file_name().map(str::to_owned) {
                Some(file_name) => {
                    let mut bytes = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                        bytes.extend_from_slice(&chunk);
                        if bytes.len() > cap {
                            return Err(Denied::Invalid(format!(
                                "The file {:?} is over {} MiB, the most this form takes.",
                                haven_records::evidence::clean_name(&file_name),
                                cap / (1024 * 1024)
                            ))
                            .into_response());
                        }
                    }
                    if file_name.is_empty() && bytes.is_empty() {
                        continue; // a file input left empty
                    }
                    if out.files.len() == MULTIPART_FILES {
                        return Err(Denied::Invalid(format!(
                            "At most {MULTIPART_FILES} files go with one form."
                        ))
                        .into_response());
                    }
                    out.files.push(Upload {
                        field: name,
                        name: file_name,
                        bytes,
                    });
                }
                None => {
                    let mut text = Vec::new();
                    while let Some(chunk) = field.chunk().await.map_err(unreadable)? {
                        text.extend_from_slice(&chunk);
                        if text.len() > MULTIPART_TEXT_BYTES {
                            return Err(unreadable(format!("the field {name:?} is too long")));
                        }
                    }
                    if out.fields.len() == MULTIPART_FIELDS {
                        return Err(unreadable("too many fields"));
                    }
                    let text = String::from_utf8(text)
                        .map_err(|_| unreadable("text that is not UTF-8"))?;
                    out.fields.insert(name, text);
                }
            }
        }
        if !checked {
            signed
                .check_csrf(Some(""), &headers)
                .map_err(IntoResponse::into_response)?;
        }
        Ok(out)
    }
}

/// The session cookie's value as the browser sent it (empty when there is none).
#[derive(Debug)]
pub struct SessionCookie(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionCookie {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(SessionCookie(
            cookie(&parts.headers, SESSION_COOKIE).unwrap_or_default(),
        ))
    }
}

/// Someone half-way through signing in: their session, second factor given or not (for the
/// code and enrolment steps themselves). Refused, as a redirect to the sign-in page, when
/// there is no session.
#[derive(Debug)]
pub struct Pending {
    /// Who.
    pub who: Identity,
    /// Their session.
    pub session: Session,
}

impl FromRequestParts<Console> for Pending {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, c: &Console) -> Result<Self, Denied> {
        let (who, session) = c.session_of(&parts.headers).await?;
        Ok(Pending { who, session })
    }
}

/// A form posted half-way through signing in: read as axum's `Form` reads it, then refused
/// unless there is a session and the form carries its token.
#[derive(Debug)]
pub struct PendingForm<T>(pub Pending, pub T);

impl<T> axum::extract::FromRequest<Console> for PendingForm<T>
where
    T: serde::de::DeserializeOwned + CsrfField + Send,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, c: &Console) -> Result<Self, Response> {
        let headers = req.headers().clone();
        let axum::Form(form) = axum::Form::<T>::from_request(req, c)
            .await
            .map_err(IntoResponse::into_response)?;
        let (who, session) = c
            .session_of(&headers)
            .await
            .map_err(IntoResponse::into_response)?;
        if !same(form.csrf(), &session.csrf) {
            return Err(Denied::Csrf.into_response());
        }
        Ok(PendingForm(Pending { who, session }, form))
    }
}

/// Why a request was refused.
#[derive(Debug)]
pub enum Denied {
    /// Not signed in (or the session ended).
    SignIn,
    /// Password given; the TOTP code is still to come.
    SecondFactor,
    /// The role needs two factors and none is set up yet.
    Enrol,
    /// Signed in, but the role does not allow this.
    Forbidden(Permission),
    /// A form without this session's token.
    Csrf,
    /// Something that does not exist.
    NotFound,
    /// Input that cannot be used, with why.
    Invalid(String),
    /// The store failed.
    Store(StoreError),
    /// The vault (the keys that seal evidence) failed.
    Vault(haven_vault::VaultError),
}

impl From<haven_vault::VaultError> for Denied {
    fn from(e: haven_vault::VaultError) -> Self {
        Denied::Vault(e)
    }
}

impl From<StoreError> for Denied {
    fn from(e: StoreError) -> Self {
        match e {
            // Input the store refused, with its reason for the person who gave it.
            StoreError::Invalid(why) => Denied::Invalid(why),
            e => Denied::Store(e),
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            Denied::SignIn => return Redirect::to("/login").into_response(),
            Denied::SecondFactor => return Redirect::to("/login/totp").into_response(),
            Denied::Enrol => return Redirect::to("/enrol").into_response(),
            Denied::Forbidden(p) => (
                StatusCode::FORBIDDEN,
                "Not for your role",
                format!(
                    "Your role does not allow this page ({}). If you need it, ask the school's Haven administrator.",
                    p.id()
                ),
            ),
            Denied::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form did not come from your current session. Go back, reload the page and try again.".to_owned(),
            ),
            Denied::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.".to_owned(),
            ),
            Denied::Invalid(why) => (StatusCode::BAD_REQUEST, "Not accepted", why),
            Denied::Store(e) if e.is_disk_full() => {
                tracing::error!(error = %e, "console: the store's disk is full");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The disk is full",
                    "Haven's disk is full, so it cannot save anything, not even a sign-in. The \
                     filter goes on filtering. The network manager must free space on the server \
                     where Haven keeps its data; Haven carries on by itself once there is room, \
                     and nothing that waited is lost."
                        .to_owned(),
                )
            }
            Denied::Vault(e) => {
                tracing::error!(error = %e, "console: vault error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The vault could not be opened",
                    "Haven could not seal or open evidence with the school's keys. Nothing was \
                     changed. Tell the network manager: Haven's log says what is wrong with the \
                     vault."
                        .to_owned(),
                )
            }
            Denied::Store(e) => {
                tracing::error!(error = %e, "console: store error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "Haven could not reach its store. Try again in a moment.".to_owned(),
                )
            }
        };
        let page = crate::pages::Message { title, text: &text };
        (status, crate::pages::render(&page)).into_response()
    }
}

impl Console {
    /// The signed-in person behind a request's session cookie: refused when there is none, it
    /// has been idle too long, or a second factor is due.
    pub async fn signed(&self, headers: &HeaderMap, peer: &Peer) -> Result<Signed, Denied> {
        let (who, session) = self.session_of(headers).await?;
        if who.needs_two_factor() && !session.second_factor {
            return Err(if who.totp_enabled {
                Denied::SecondFactor
            } else {
                Denied::Enrol
            });
        }
        Ok(Signed {
            who,
            session: Some(session),
            address: peer.0.clone(),
        })
    }

    /// The session and its person, second factor or not (for the sign-in steps themselves).
    pub async fn session_of(&self, headers: &HeaderMap) -> Result<(Identity, Session), Denied> {
        let token = cookie(headers, SESSION_COOKIE).ok_or(Denied::SignIn)?;
        let idle = i64::from(self.config.idle_minutes.max(1)) * 60_000;
        let lifetime = i64::from(self.config.session_hours.max(1)) * 3_600_000;
        let session = self
            .store
            .session(&token, idle, lifetime)
            .await?
            .ok_or(Denied::SignIn)?;
        let who = self
            .store
            .identity_by_id(session.person_id)
            .await?
            .ok_or(Denied::SignIn)?;
        Ok((who, session))
    }
}

/// Renders a template, or a plain error when it cannot.
pub fn html<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(s) => Html(s).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "console: a page template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "page error").into_response()
        }
    }
}

/// A decision as a form or JSON body gives it: `yes` or `no`, nothing else.
pub fn decision(text: &str, yes: &str, no: &str) -> Result<bool, Denied> {
    match text {
        t if t == yes => Ok(true),
        t if t == no => Ok(false),
        other => Err(Denied::Invalid(format!(
            "decision: {other:?} is not {yes} or {no}"
        ))),
    }
}

/// A time for people: the server's local time, to the second.
pub fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| {
            t.to_zoned(jiff::tz::TimeZone::system())
                .strftime("%a %d %b %Y %H:%M:%S")
                .to_string()
        })
        .unwrap_or_else(|_| ms.to_string())
}

/// Milliseconds since the epoch at the start of a local date (`YYYY-MM-DD`).
pub fn day_start(date: &str) -> Option<i64> {
    let d: jiff::civil::Date = date.trim().parse().ok()?;
    let z = d.to_zoned(jiff::tz::TimeZone::system()).ok()?;
    Some(z.timestamp().as_millisecond())
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
