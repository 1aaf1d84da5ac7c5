//! The console's pages: their table ([`PAGES`]), the frame every page shares ([`Layout`], with
//! the navigation made from the table), and a module per area: sign-in (password, then a TOTP
//! code or enrolment for the roles that need it), my account, the dashboard, activity search
//! and a person's timeline, review requests, the policy with its changes, the audit log,
//! triage and the risk library, API tokens.

mod account;
mod activity;
mod audit;
mod dashboard;
mod library;
mod policy;
mod records;
mod registers;
mod reports;
mod reviews;
mod signin;
mod tokens;
mod triage;

pub(crate) use activity::{find_people_audited, search_activity_audited};
pub(crate) use dashboard::today_start;
pub(crate) use reviews::reviews_audited;

use askama::Template;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::permissions::Permission;
use crate::route;
use crate::routes::{Guard, Route};
use crate::web::{html, Signed};
use crate::Console;

use Guard::{Need, Public, SignedIn};
use Permission as P;

/// Every page, with who may open it: the router, the navigation (the routes with a label, in
/// this order) and the role × route test are made from this table. A new page is a line here
/// plus its handler and template.
pub const PAGES: &[Route] = &[
    route!(GET "/", SignedIn, dashboard::home).nav_for("Dashboard", P::Dashboard),
    route!(GET "/activity", Need(P::Activity), activity::activity).nav("Activity"),
    route!(GET "/activity/rows", Need(P::Activity), activity::activity_rows),
    route!(GET "/people", Need(P::Activity), activity::people).nav("People"),
    route!(GET "/people/{id}", Need(P::Activity), activity::person),
    route!(GET "/triage", Need(P::Triage), triage::triage).nav("Triage"),
    route!(GET "/triage/{id}", Need(P::Triage), triage::capture_page),
    route!(POST "/triage/{id}", Need(P::Triage), triage::triage_decide),
    route!(GET "/triage/{id}/promote", Need(P::Triage), triage::promote_form),
    route!(POST "/triage/{id}/promote", Need(P::Triage), triage::promote),
    route!(GET "/library", Need(P::Triage), library::library).nav("Risk library"),
    route!(POST "/library", Need(P::Triage), library::library_save),
    route!(POST "/library/changes/{id}", Need(P::Triage), library::library_settle),
    route!(GET "/records", Need(P::Records), records::records).nav("Records"),
    route!(POST "/records/categories", Need(P::Records), records::add_category),
    route!(GET "/records/retention", Need(P::Records), records::retention),
    route!(POST "/records/{id}/hold", Need(P::Records), records::legal_hold),
    route!(POST "/records/{id}/delete", Need(P::Records), records::delete_record),
    route!(POST "/records/told", Need(P::Records), records::told_in_person),
    route!(GET "/records/{id}", Need(P::Records), records::record),
    route!(POST "/records/{id}/open", Need(P::Records), records::record_open),
    route!(POST "/records/{id}/steps", Need(P::Records), records::record_step),
    route!(POST "/records/{id}/referrals", Need(P::Records), records::record_referral),
    route!(POST "/records/{id}/entries", Need(P::Records), records::record_entry),
    route!(POST "/records/{id}/entries/{entry}/correct", Need(P::Records), records::record_correct),
    route!(POST "/records/{id}/close", Need(P::Records), records::record_close),
    route!(POST "/records/{id}/share", Need(P::Records), records::record_share),
    route!(POST "/records/{id}/assign", Need(P::Records), records::record_assign),
    route!(POST "/records/{id}/referrals/{referral}/outcome", Need(P::Records), records::referral_outcome),
    route!(UPLOAD "/records/{id}/evidence", Need(P::Records), records::record_evidence_add),
    route!(GET "/records/{id}/evidence/{eid}", Need(P::Records), records::evidence_download),
    route!(POST "/records/{id}/evidence/{eid}/view", Need(P::Records), records::evidence_view),
    route!(GET "/records/people/{id}", Need(P::Records), records::chronology),
    route!(GET "/records/people/{id}/family", Need(P::Records), records::family),
    route!(POST "/records/people/{id}/open", Need(P::Records), records::chronology_open),
    route!(POST "/records/people/{id}/transfers", Need(P::Records), records::transfer),
    route!(POST "/records/people/{id}/transfers/{transfer}/receipt", Need(P::Records), records::receipt),
    route!(POST "/records/people/{id}/print", Need(P::Records), records::chronology_pdf),
    route!(POST "/records/people/{id}/transfers/sealed", Need(P::Records), records::transfer_sealed),
    route!(POST "/records/people/{id}/transfers/{transfer}/pack", Need(P::Records), records::paper_pack),
    route!(GET "/records/transfers", Need(P::Records), records::transfers),
    route!(UPLOAD_TRANSFER "/records/transfers/import", Need(P::Records), records::transfer_import),
    route!(GET "/records/transfers/in/{id}/receipt", Need(P::Records), records::transfer_in_receipt),
    route!(POST "/records/transfers/receipt", Need(P::Records), records::transfer_receipt),
    route!(GET "/reports", Need(P::Reports), reports::reports).nav("Report"),
    route!(GET "/sar", Need(P::SubjectAccess), records::sar_find).nav("Subject access"),
    route!(GET "/sar/{id}", Need(P::SubjectAccess), records::sar),
    route!(GET "/sar/{id}/json", Need(P::SubjectAccess), records::sar_json),
    route!(GET "/reports.csv", Need(P::Reports), reports::reports_csv),
    route!(GET "/reports.pdf", Need(P::Reports), reports::reports_pdf),
    route!(GET "/registers/consent", Need(P::Consents), registers::consent).nav("Consent"),
    route!(GET "/registers/consent.csv", Need(P::Consents), registers::consent_csv),
    route!(GET "/registers/consent/{id}", Need(P::Consents), registers::consent_pupil),
    route!(POST "/registers/consent/{id}", Need(P::Consents), registers::consent_record),
    route!(GET "/registers/agreements", Need(P::Agreements), registers::agreements)
        .nav("Agreements"),
    route!(GET "/registers/agreements.csv", Need(P::Agreements), registers::agreements_csv),
    route!(GET "/registers/agreements/versions/{id}", Need(P::Agreements), registers::agreement_version),
    route!(POST "/registers/agreements", Need(P::Agreements), registers::agreement_publish),
    route!(POST "/registers/agreements/signatures", Need(P::Agreements), registers::agreement_sign),
    route!(GET "/registers/reviews", Need(P::PolicyReviews), registers::policy_reviews)
        .nav("Policy reviews"),
    route!(POST "/registers/reviews", Need(P::PolicyReviews), registers::policy_review_step),
    route!(GET "/registers/searches", Need(P::Searches), registers::searches).nav("Searches"),
    route!(POST "/registers/searches", Need(P::Searches), registers::search_new),
    route!(POST "/registers/searches/{id}", Need(P::Searches), registers::search_outcome),
    route!(GET "/registers/breaches", Need(P::Breaches), registers::breaches).nav("Breaches"),
    route!(GET "/registers/breaches.csv", Need(P::Breaches), registers::breaches_csv),
    route!(POST "/registers/breaches", Need(P::Breaches), registers::breach_new),
    route!(POST "/registers/breaches/{id}", Need(P::Breaches), registers::breach_step),
    route!(GET "/registers/training", Need(P::Training), registers::training).nav("Training"),
    route!(GET "/registers/training.csv", Need(P::Training), registers::training_csv),
    route!(POST "/registers/training", Need(P::Training), registers::training_add),
    route!(UPLOAD "/registers/training/import", Need(P::Training), registers::training_import),
    route!(GET "/concerns/new", Need(P::LogConcern), records::new_concern).nav("Log a concern"),
    route!(UPLOAD "/concerns", Need(P::LogConcern), records::log_concern),
    route!(GET "/concerns/mine", Need(P::LogConcern), records::my_concerns).nav("My concerns"),
    route!(GET "/concerns/mine/{id}", Need(P::LogConcern), records::my_concern),
    route!(GET "/reviews", Need(P::Reviews), reviews::reviews).nav("Reviews"),
    route!(POST "/reviews/{id}", Need(P::Reviews), reviews::decide_review),
    route!(GET "/policy", Need(P::PolicyRead), policy::policy).nav("Policy"),
    route!(POST "/policy", Need(P::PolicyEdit), policy::policy_save),
    route!(POST "/policy/changes/{id}", Need(P::PolicyApprove), policy::policy_settle),
    route!(GET "/audit", Need(P::Audit), audit::audit).nav("Audit log"),
    route!(POST "/audit/verify", Need(P::Audit), audit::audit_verify),
    route!(GET "/tokens", Need(P::ApiTokens), tokens::tokens).nav("API tokens"),
    route!(POST "/tokens", Need(P::ApiTokens), tokens::token_create),
    route!(POST "/tokens/{id}/revoke", Need(P::ApiTokens), tokens::token_revoke),
    route!(GET "/account", SignedIn, account::account).nav("My account"),
    route!(POST "/account/password", SignedIn, account::account_password),
    route!(POST "/account/proxy-password", SignedIn, account::account_proxy_password),
    route!(POST "/account/sessions", SignedIn, account::account_sessions),
    // Signing in: each step reads the session it needs itself.
    route!(GET "/login", Public, signin::login_form),
    route!(POST "/login", Public, signin::login),
    route!(GET "/login/totp", Public, signin::totp_form),
    route!(POST "/login/totp", Public, signin::totp_check),
    route!(GET "/enrol", Public, signin::enrol_form),
    route!(POST "/enrol", Public, signin::enrol),
    route!(POST "/logout", Public, signin::logout),
    route!(GET "/static/htmx.min.js", Public, htmx),
    route!(GET "/static/haven.css", Public, css),
];

async fn htmx() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../../static/htmx.min.js"),
    )
        .into_response()
}

async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../../static/haven.css"),
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
            for route in PAGES {
                if let Some(nav) = route.nav.filter(|n| crate::routes::shown(n, s)) {
                    l.nav.push(NavItem {
                        href: route.path,
                        label: nav.label,
                    });
                }
            }
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

/// A page's status: 400 when it shows why something was refused, else 200.
fn status_for(error: &str) -> axum::http::StatusCode {
    if error.is_empty() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::BAD_REQUEST
    }
}

/// A message passed to the page a form redirects to (`?done=…`).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(crate) struct Flash {
    pub(crate) done: String,
}

/// A form with nothing but its token.
#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

crate::web::csrf_field!(CsrfForm);

pub use crate::web::url_encode;
