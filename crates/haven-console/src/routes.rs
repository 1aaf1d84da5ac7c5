//! The route tables' shape: a [`Route`] is a method, a path, the [`Guard`] it states (who may
//! call it) and its handler, and optionally a link in the navigation. The page table
//! ([`crate::pages::PAGES`]) and the API table ([`crate::api::ROUTES`]) are lists of these;
//! the router, the navigation and the role × route test are all made from them.
//!
//! The guard is enforced here, in one place, before the handler runs: [`router`] wraps every
//! route in a layer that signs the request in (session cookie, or bearer token for the API)
//! and checks the permission, answering with today's refusal (the sign-in, code or enrolment
//! page as a redirect, a 403 page, or JSON for the API). The handler then takes the
//! [`Signed`] (or [`crate::api::Bearer`]) the guard found as an extractor.

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use crate::permissions::Permission;
use crate::web::{Peer, Signed};
use crate::Console;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone: signing in and its steps (which read the session themselves), static files,
    /// the OpenAPI document.
    Public,
    /// Anyone signed in to the console (second factor given where their roles need one).
    SignedIn,
    /// Signed in, and one of their roles holds the permission.
    Need(Permission),
    /// An API token in force whose scope allows the permission (to change something on a
    /// POST, to read on a GET) and whose owner's roles hold it; `None`: any token in force.
    Token(Option<Permission>),
}

impl Guard {
    /// The permission the route needs, if any.
    pub const fn permission(self) -> Option<Permission> {
        match self {
            Guard::Public | Guard::SignedIn | Guard::Token(None) => None,
            Guard::Need(p) | Guard::Token(Some(p)) => Some(p),
        }
    }
}

/// A link in the console's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nav {
    /// What the link says.
    pub label: &'static str,
    /// Who sees it (`None`: everyone signed in).
    pub shown_to: Option<Permission>,
}

/// One route of a table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, in axum's syntax (`/reviews/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub guard: Guard,
    /// Its link in the navigation, in table order, if it has one.
    pub nav: Option<Nav>,
    /// The handler, as a method router for the path.
    pub handler: fn() -> MethodRouter<Console>,
}

impl Route {
    /// The route with a link in the navigation, shown to those who may call it.
    pub const fn nav(self, label: &'static str) -> Route {
        Route {
            nav: Some(Nav {
                label,
                shown_to: self.guard.permission(),
            }),
            ..self
        }
    }

    /// The route with a link in the navigation, shown to those who hold `p` (a page open to
    /// everyone signed in whose link only some need).
    pub const fn nav_for(self, label: &'static str, p: Permission) -> Route {
        Route {
            nav: Some(Nav {
                label,
                shown_to: Some(p),
            }),
            ..self
        }
    }

    /// Whether calling it changes something (a `POST`; an API token's scope is asked for
    /// that), or only reads.
    pub fn changes(&self) -> bool {
        self.method == "POST"
    }
}

/// A line of a route table: `route!(GET "/path", guard, handler)`.
#[macro_export]
#[doc(hidden)]
macro_rules! route {
    (GET $path:literal, $guard:expr, $handler:path) => {
        $crate::routes::Route {
            method: "GET",
            path: $path,
            guard: $guard,
            nav: None,
            handler: || ::axum::routing::get($handler),
        }
    };
    (UPLOAD $path:literal, $guard:expr, $handler:path) => {
        $crate::routes::Route {
            method: "POST",
            path: $path,
            guard: $guard,
            nav: None,
            handler: || {
                ::axum::routing::post($handler).layer(::axum::extract::DefaultBodyLimit::max(
                    $crate::routes::UPLOAD_LIMIT_BYTES,
                ))
            },
        }
    };
    (UPLOAD_TRANSFER $path:literal, $guard:expr, $handler:path) => {
        $crate::routes::Route {
            method: "POST",
            path: $path,
            guard: $guard,
            nav: None,
            handler: || {
                ::axum::routing::post::<_, _, $crate::Console>($handler)
                    .layer::<_, ::std::convert::Infallible>(::axum::extract::DefaultBodyLimit::max(
                        $crate::routes::TRANSFER_LIMIT_BYTES + 1024 * 1024,
                    ))
                    .layer(::axum::Extension($crate::web::FileCap(
                        $crate::routes::TRANSFER_LIMIT_BYTES,
                    )))
            },
        }
    };
    (POST $path:literal, $guard:expr, $handler:path) => {
        $crate::routes::Route {
            method: "POST",
            path: $path,
            guard: $guard,
            nav: None,
            handler: || ::axum::routing::post($handler),
        }
    };
}

/// The router for a table: each route's handler behind its guard.
/// The most a form with files may send (`route!(UPLOAD …)`): a 10 MiB attachment and the
/// form around it. Every other route keeps axum's 2 MB.
pub const UPLOAD_LIMIT_BYTES: usize = haven_records::evidence::MAX_BYTES + 1024 * 1024;

/// The largest sealed transfer the console imports (`route!(UPLOAD_TRANSFER …)`): a child's
/// file with a few full-size attachments. A larger one is imported with `haven records import`.
pub const TRANSFER_LIMIT_BYTES: usize = 48 * 1024 * 1024;

pub(crate) fn router(table: &[Route], console: &Console) -> Router<Console> {
    table.iter().fold(Router::new(), |router, route| {
        let handler = (route.handler)();
        let handler = match route.guard {
            Guard::Public => handler,
            guard => handler.route_layer(axum::middleware::from_fn_with_state(
                (console.clone(), guard),
                check,
            )),
        };
        router.route(route.path, handler)
    })
}

/// The guard of a route, before its handler: who is asking (kept in the request for the
/// handler's [`Signed`] or [`crate::api::Bearer`]), refused unless the guard lets them in.
async fn check(
    State((c, guard)): State<(Console, Guard)>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = Peer::of(req.extensions());
    match guard {
        Guard::Public => {}
        Guard::SignedIn | Guard::Need(_) => {
            let signed = match c.signed(req.headers(), &peer).await {
                Ok(s) => s,
                Err(denied) => return denied.into_response(),
            };
            if let Some(p) = guard.permission() {
                if let Err(denied) = signed.need(p) {
                    return denied.into_response();
                }
            }
            req.extensions_mut().insert(signed);
        }
        Guard::Token(need) => {
            let access = if req.method() == Method::POST {
                crate::api::Access::Change
            } else {
                crate::api::Access::Read
            };
            match c.token_holder(req.headers(), &peer, need, access).await {
                Ok(bearer) => {
                    req.extensions_mut().insert(bearer);
                }
                Err(denied) => return crate::api::ApiError::from(denied).into_response(),
            }
        }
    }
    next.run(req).await
}

/// Whether `signed` may see a link.
pub(crate) fn shown(nav: &Nav, signed: &Signed) -> bool {
    nav.shown_to.is_none_or(|p| signed.may(p))
}
