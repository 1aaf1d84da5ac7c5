//! Activity: the audited search (one use-case for the page and the API), its rows for htmx,
//! finding a person and their timeline.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use haven_store::audit::{AuditEntry, AuditKind, Subject};
use serde::Deserialize;

use super::{url_encode, Layout};
use crate::permissions::Permission;
use crate::web::{day_start, html, when, Denied, Signed};
use crate::Console;
use haven_store::events::{Cursor, EventQuery, StoredEvent};

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
            user: text(&self.user),
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

/// An activity search by a signed-in person, for the page and the API alike: a user name
/// folded to lower case (as user names are kept), a device named rather than addressed looked
/// up by its name in any case, the read recorded in the audit log (`via` the page or the API)
/// before anything is read, and searches that graded as captures withheld from those who do
/// not triage. The events, newest first, and where the next page starts when `q.limit` were
/// found.
pub(crate) async fn search_activity_audited(
    c: &Console,
    s: &Signed,
    mut q: EventQuery,
    via: &'static str,
) -> Result<(Vec<StoredEvent>, Option<Cursor>), Denied> {
    q.user = q.user.map(|u| u.to_ascii_lowercase());
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
    c.store
        .audit_activity_read(&s.who.username, &s.address, &q, via)
        .await?;
    let mut events = c.store.search_events(&q).await?;
    let next = (events.len() as i64 == q.limit)
        .then(|| events.last().map(StoredEvent::cursor))
        .flatten();
    if !s.may(Permission::Triage) {
        c.monitoring
            .withhold_graded_searches(&mut events, q.search.is_some());
    }
    Ok((events, next))
}

/// The page's search: the rows, and links to the next page of them if there is one (rows for
/// htmx to append, and the whole next page at `page`).
async fn search_activity(
    c: &Console,
    s: &Signed,
    f: &ActivityForm,
    page: &str,
) -> Result<(Vec<Row>, String, String), Denied> {
    let (events, next) = search_activity_audited(c, s, f.query()?, "page").await?;
    let (more, more_page) = match next.map(|last| f.next(last)) {
        Some(n) => (format!("/activity/rows?{n}"), format!("{page}?{n}")),
        None => (String::new(), String::new()),
    };
    Ok((rows_of(events), more, more_page))
}

pub(super) async fn activity(
    State(c): State<Console>,
    s: Signed,
    Query(f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let (rows, more, more_page) = search_activity(&c, &s, &f, "/activity").await?;
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
pub(super) async fn activity_rows(
    State(c): State<Console>,
    s: Signed,
    Query(f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let (rows, more, more_page) = search_activity(&c, &s, &f, "/activity").await?;
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
pub struct PeopleQuery {
    q: String,
}

/// Finding someone by name, UPN or user name, to open their timeline.
pub(super) async fn people(
    State(c): State<Console>,
    s: Signed,
    Query(q): Query<PeopleQuery>,
) -> Result<Response, Denied> {
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
pub(super) async fn person(
    State(c): State<Console>,
    s: Signed,
    Path(id): Path<i64>,
    Query(mut f): Query<ActivityForm>,
) -> Result<Response, Denied> {
    let p = c.store.person(id).await?.ok_or(Denied::NotFound)?;
    let Some(user) = p.username.clone() else {
        return Err(Denied::Invalid(format!(
            "{} {} has no user name, so no activity is recorded against them.",
            p.first_name, p.last_name
        )));
    };
    f.user = user;
    let (rows, more, more_page) = search_activity(&c, &s, &f, &format!("/people/{id}")).await?;
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
