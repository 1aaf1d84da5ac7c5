//! People, imported from CSV exports of the school's MIS: pupils (UPN, names, date of birth,
//! year group, class), staff (with roles) and parents (linked to their children).
//!
//! An export is the whole of one kind of person: rows are added or updated, and people of that
//! kind missing from the file are leavers — disabled, never deleted. A row that cannot be read
//! is reported by line and changes nothing (its person is not treated as a leaver either).

use std::collections::{HashMap, HashSet};

use sqlx::Row as _;

use crate::accounts::Role;
use crate::{now_ms, Store, StoreError};

/// Which kind of person a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pupils.
    Pupil,
    /// Staff.
    Staff,
    /// Parents and carers.
    Parent,
}

impl Kind {
    /// The kind's id, as stored (`pupil`, `staff`, `parent`).
    pub fn id(self) -> &'static str {
        match self {
            Kind::Pupil => "pupil",
            Kind::Staff => "staff",
            Kind::Parent => "parent",
        }
    }

    /// From `pupils`, `staff`, `parents` (singular or plural).
    pub fn parse(s: &str) -> Option<Kind> {
        match s.trim().to_ascii_lowercase().trim_end_matches('s') {
            "pupil" | "student" => Some(Kind::Pupil),
            "staff" => Some(Kind::Staff),
            "parent" | "carer" => Some(Kind::Parent),
            _ => None,
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Pupil => "pupils",
            Kind::Staff => "staff",
            Kind::Parent => "parents",
        }
    }
}

/// How to import.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Check and count, change nothing.
    pub dry_run: bool,
    /// Accept a file that would make many people leavers at once (normally refused: a
    /// partial export would otherwise disable the rest of the school).
    pub allow_many_leavers: bool,
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The line in the file (1 is the header).
    pub line: u64,
    /// What is wrong, for the person who made the file.
    pub message: String,
}

/// What an import did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// New people.
    pub added: usize,
    /// People whose details changed (including leavers who came back).
    pub updated: usize,
    /// People already as the file says.
    pub unchanged: usize,
    /// People missing from the file, now disabled.
    pub left: usize,
    /// Rows not imported.
    pub errors: Vec<RowError>,
}

/// One person as a file describes them.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    mis_id: String,
    first_name: String,
    last_name: String,
    date_of_birth: Option<String>,
    year_group: Option<String>,
    class: Option<String>,
    email: Option<String>,
    group: String,
    username: Option<String>,
    roles: Vec<Role>,
    /// Parents: their children's UPNs and the relationship.
    children: Vec<String>,
    relationship: Option<String>,
}

/// The columns a file may have, with the names MIS exports give them.
const COLUMNS: &[(&str, &[&str])] = &[
    (
        "id",
        &[
            "upn",
            "id",
            "misid",
            "staffid",
            "parentid",
            "personid",
            "contactid",
        ],
    ),
    (
        "first_name",
        &["firstname", "forename", "legalforename", "givenname"],
    ),
    (
        "last_name",
        &["lastname", "surname", "legalsurname", "familyname"],
    ),
    ("date_of_birth", &["dateofbirth", "dob", "birthdate"]),
    (
        "year_group",
        &["yeargroup", "year", "ncyear", "nationalcurriculumyear"],
    ),
    (
        "class",
        &[
            "class",
            "reggroup",
            "registrationgroup",
            "form",
            "tutorgroup",
        ],
    ),
    ("email", &["email", "emailaddress", "workemail"]),
    ("username", &["username", "login", "logon"]),
    ("roles", &["roles", "role"]),
    (
        "children",
        &["children", "pupils", "pupilupns", "upns", "childupns"],
    ),
    ("relationship", &["relationship", "relation"]),
];

/// Which column holds each field.
#[derive(Debug, Default)]
struct Layout(HashMap<&'static str, usize>);

impl Layout {
    fn read(headers: &csv::StringRecord) -> Layout {
        let mut map = HashMap::new();
        for (i, h) in headers.iter().enumerate() {
            let norm: String = h
                .chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .map(|c| c.to_ascii_lowercase())
                .collect();
            if let Some((field, _)) = COLUMNS
                .iter()
                .find(|(_, names)| names.contains(&norm.as_str()))
            {
                map.entry(*field).or_insert(i);
            }
        }
        Layout(map)
    }

    fn get<'r>(&self, rec: &'r csv::StringRecord, field: &str) -> Option<&'r str> {
        let v = rec.get(*self.0.get(field)?)?.trim();
        (!v.is_empty()).then_some(v)
    }

    fn needs(&self, kind: Kind) -> Vec<&'static str> {
        let required: &[&str] = match kind {
            Kind::Pupil => &[
                "id",
                "first_name",
                "last_name",
                "date_of_birth",
                "year_group",
            ],
            Kind::Staff => &["id", "first_name", "last_name", "roles"],
            Kind::Parent => &["id", "first_name", "last_name", "children"],
        };
        required
            .iter()
            .copied()
            .filter(|f| !self.0.contains_key(f))
            .collect()
    }
}

/// A year group as the school writes it (`Year 5`, `Y5`, `R`, `Reception`, `N1`) in one form:
/// `N`, `R` or the number.
pub fn year_group(s: &str) -> Option<String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_prefix("year")
        .or_else(|| t.strip_prefix('y'))
        .unwrap_or(&t)
        .trim();
    match t {
        "r" | "reception" => return Some("R".into()),
        "n" | "n1" | "n2" | "nursery" => return Some("N".into()),
        _ => {}
    }
    let n: u8 = t.parse().ok()?;
    (1..=14).contains(&n).then(|| n.to_string())
}

/// A stored year group as pages show it: `Year 5`, `Reception`, `Nursery`.
pub fn year_label(year: Option<&str>) -> String {
    match year {
        None | Some("") => String::new(),
        Some("R") => "Reception".into(),
        Some("N") => "Nursery".into(),
        Some(n) if n.bytes().all(|b| b.is_ascii_digit()) => format!("Year {n}"),
        Some(other) => other.to_owned(),
    }
}

/// The policy group a year group browses in.
pub fn group_for_year(year: &str) -> &'static str {
    match year {
        "N" | "R" => "eyfs",
        "1" | "2" => "ks1",
        "3" | "4" | "5" | "6" => "ks2",
        _ => "ks3+",
    }
}

/// Why a row of an MIS export is not a person (the message of its [`RowError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum RowProblem {
    #[error(
        "{0:?} looks garbled (text once read in the wrong encoding and saved again): \
         export the file from the MIS again as UTF-8"
    )]
    Garbled(String),
    #[error("the id is empty")]
    NoId,
    #[error("id {0:?} is not an identifier (letters, digits, - _ . /)")]
    NotAnIdentifier(String),
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{field} {value:?} is too long or has control characters")]
    BadName { field: &'static str, value: String },
    #[error("email {0:?} is not an address")]
    NotAnEmail(String),
    #[error("user name {0:?} may hold only letters, digits and - _ . @")]
    BadUsername(String),
    #[error("date of birth {0:?} is not a date (use YYYY-MM-DD or DD/MM/YYYY)")]
    NotADate(String),
    #[error("date of birth {0:?} is not plausible")]
    ImplausibleDate(String),
    #[error("year group {0:?} is not N, R or 1 to 14")]
    BadYear(String),
    #[error("role {0:?} is not one of {roles}", roles = Role::ALL.map(Role::id).join(", "))]
    UnknownRole(String),
    #[error("role {0:?} is not a staff role")]
    NotStaffRole(String),
}

/// A date as `YYYY-MM-DD`, from that form or the UK's `DD/MM/YYYY`; a real date, not in the
/// future.
fn date_of_birth(s: &str) -> Result<String, RowProblem> {
    let iso = match s.split('/').collect::<Vec<_>>()[..] {
        [d, m, y] => format!("{y:0>4}-{m:0>2}-{d:0>2}"),
        _ => s.to_owned(),
    };
    let date: jiff::civil::Date = iso
        .parse()
        .map_err(|_| RowProblem::NotADate(s.to_owned()))?;
    let today = haven_runtime::clock::local().date();
    if date > today || date.year() < 1900 {
        return Err(RowProblem::ImplausibleDate(s.to_owned()));
    }
    Ok(date.to_string())
}

fn name(field: &'static str, s: Option<&str>) -> Result<String, RowProblem> {
    let s = s.ok_or(RowProblem::Empty(field))?;
    if s.chars().count() > 100 || s.chars().any(char::is_control) {
        return Err(RowProblem::BadName {
            field,
            value: s.to_owned(),
        });
    }
    Ok(s.to_owned())
}

fn identifier(s: Option<&str>) -> Result<String, RowProblem> {
    let s = s.ok_or(RowProblem::NoId)?;
    if s.len() > 40
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
    {
        return Err(RowProblem::NotAnIdentifier(s.to_owned()));
    }
    Ok(s.to_owned())
}

fn username(s: &str) -> Result<String, RowProblem> {
    let u = s.to_ascii_lowercase();
    if u.len() > 64
        || !u
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.@".contains(&c))
    {
        return Err(RowProblem::BadUsername(s.to_owned()));
    }
    Ok(u)
}

/// The items of a list cell (`a; b`, `a, b`, `a | b`).
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split([';', ',', '|'])
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn parse_row(kind: Kind, layout: &Layout, rec: &csv::StringRecord) -> Result<Row, RowProblem> {
    if let Some(bad) = rec.iter().find_map(haven_core::textfile::garbled) {
        return Err(RowProblem::Garbled(bad.to_owned()));
    }
    let mis_id = identifier(layout.get(rec, "id"))?;
    let first_name = name("first name", layout.get(rec, "first_name"))?;
    let last_name = name("last name", layout.get(rec, "last_name"))?;
    let email = match layout.get(rec, "email") {
        Some(e) if !e.contains('@') || e.contains(char::is_whitespace) => {
            return Err(RowProblem::NotAnEmail(e.to_owned()))
        }
        e => e.map(str::to_owned),
    };
    let username = layout.get(rec, "username").map(username).transpose()?;
    let mut row = Row {
        mis_id,
        first_name,
        last_name,
        date_of_birth: None,
        year_group: None,
        class: layout.get(rec, "class").map(str::to_owned),
        email,
        group: String::new(),
        username,
        roles: Vec::new(),
        children: Vec::new(),
        relationship: layout.get(rec, "relationship").map(str::to_owned),
    };
    match kind {
        Kind::Pupil => {
            let dob = layout
                .get(rec, "date_of_birth")
                .ok_or(RowProblem::Empty("date of birth"))?;
            row.date_of_birth = Some(date_of_birth(dob)?);
            let raw = layout
                .get(rec, "year_group")
                .ok_or(RowProblem::Empty("year group"))?;
            let year = year_group(raw).ok_or_else(|| RowProblem::BadYear(raw.to_owned()))?;
            row.group = group_for_year(&year).to_owned();
            row.year_group = Some(year);
            row.roles = vec![Role::Pupil];
        }
        Kind::Staff => {
            let raw = layout.get(rec, "roles").ok_or(RowProblem::Empty("roles"))?;
            for r in items(raw) {
                let role = Role::parse(r).ok_or_else(|| RowProblem::UnknownRole(r.to_owned()))?;
                if matches!(role, Role::Pupil | Role::Parent) {
                    return Err(RowProblem::NotStaffRole(r.to_owned()));
                }
                if !row.roles.contains(&role) {
                    row.roles.push(role);
                }
            }
            row.roles.sort();
            row.group = "staff".to_owned();
        }
        Kind::Parent => {
            let raw = layout
                .get(rec, "children")
                .ok_or(RowProblem::Empty("children"))?;
            row.children = items(raw).map(str::to_owned).collect();
            row.group = "guest".to_owned();
            row.roles = vec![Role::Parent];
        }
    }
    Ok(row)
}

/// A user name made from a name (`jo.bloggs`), ASCII letters only, unique among `taken`.
fn make_username(first: &str, last: &str, taken: &HashSet<String>) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter_map(|c| {
                let c = fold(c);
                c.is_ascii_alphanumeric().then(|| c.to_ascii_lowercase())
            })
            .collect()
    };
    let base = format!("{}.{}", clean(first), clean(last));
    let base = if base == "." { "user".to_owned() } else { base };
    if !taken.contains(&base) {
        return base;
    }
    (2..)
        .map(|n| format!("{base}{n}"))
        .find(|u| !taken.contains(u))
        .unwrap_or(base)
}

/// A Latin letter without its accent (é → e), for user names.
fn fold(c: char) -> char {
    const FROM: &str = "àáâãäåāçćčèéêëēėęìíîïīłñńòóôõöøōśšùúûüūýÿźżž";
    const TO: &str = "aaaaaaaccceeeeeeeiiiiilnnooooooossuuuuuyyzzz";
    let lower = c.to_lowercase().next().unwrap_or(c);
    FROM.chars()
        .position(|f| f == lower)
        .and_then(|i| TO.chars().nth(i))
        .unwrap_or(c)
}

/// A reader of a CSV export: rows may be short, cells are trimmed.
pub(crate) fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes())
}

/// A person as stored, for comparison with the file.
#[derive(Debug)]
struct Existing {
    id: i64,
    row: Row,
    active: bool,
}

impl Store {
    /// Imports one kind of person from a CSV export (`bytes`: UTF-8 or Latin-1, with or
    /// without a byte-order mark). See the module documentation for what it does.
    pub async fn import_people(
        &self,
        kind: Kind,
        bytes: &[u8],
        options: ImportOptions,
    ) -> Result<ImportReport, StoreError> {
        let text = haven_core::textfile::decode(bytes);
        let mut reader = csv_reader(&text);
        let headers = reader
            .headers()
            .map_err(|e| StoreError::Invalid(format!("cannot read the header line: {e}")))?
            .clone();
        let layout = Layout::read(&headers);
        let missing = layout.needs(kind);
        if !missing.is_empty() {
            return Err(StoreError::Invalid(format!(
                "the file has no column for {} (it has: {})",
                missing.join(", "),
                headers.iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let mut report = ImportReport::default();
        let mut rows: Vec<(u64, Row)> = Vec::new();
        // Ids seen on any line, readable or not: nobody named in the file is a leaver.
        let mut seen: HashSet<String> = HashSet::new();
        for (i, rec) in reader.records().enumerate() {
            let line = i as u64 + 2;
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    report.errors.push(RowError {
                        line,
                        message: format!("unreadable row: {e}"),
                    });
                    continue;
                }
            };
            if rec.iter().all(str::is_empty) {
                continue;
            }
            if let Some(id) = layout.get(&rec, "id") {
                if !seen.insert(id.to_owned()) {
                    report.errors.push(RowError {
                        line,
                        message: format!("id {id:?} appears on an earlier line too"),
                    });
                    continue;
                }
            }
            match parse_row(kind, &layout, &rec) {
                Ok(row) => rows.push((line, row)),
                Err(e) => report.errors.push(RowError {
                    line,
                    message: e.to_string(),
                }),
            }
        }
        let unreadable_ids = report
            .errors
            .iter()
            .any(|e| e.message.starts_with("unreadable row") || e.message.starts_with("the id"));

        let mut tx = self.write_tx().await?;
        let existing = load_existing(&mut tx, kind).await?;
        let mut taken: HashSet<String> =
            sqlx::query("SELECT username FROM people WHERE username IS NOT NULL")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .collect();
        let pupils: HashMap<String, i64> = if kind == Kind::Parent {
            sqlx::query("SELECT mis_id, id FROM people WHERE kind = 'pupil'")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                .collect()
        } else {
            HashMap::new()
        };
        let leavers: Vec<i64> = if unreadable_ids {
            // Some rows could not even be identified: nobody is made a leaver this time.
            Vec::new()
        } else {
            existing
                .values()
                .filter(|e| e.active && !seen.contains(&e.row.mis_id))
                .map(|e| e.id)
                .collect()
        };
        let active = existing.values().filter(|e| e.active).count();
        if !options.allow_many_leavers && leavers.len() > 5 && leavers.len() * 5 > active {
            return Err(StoreError::Invalid(format!(
                "this file would make {} of {active} active {} leavers: if it is the whole export, import it again allowing many leavers",
                leavers.len(),
                kind.plural()
            )));
        }
        let now = now_ms();
        for (line, mut row) in rows {
            if kind == Kind::Parent {
                if let Some(missing) = row.children.iter().find(|c| !pupils.contains_key(*c)) {
                    report.errors.push(RowError {
                        line,
                        message: format!("no pupil has the UPN {missing:?} (import pupils first)"),
                    });
                    continue;
                }
            }
            let old = existing.get(&row.mis_id);
            if let Some(u) = &row.username {
                let own = old.and_then(|o| o.row.username.as_ref()) == Some(u);
                if taken.contains(u) && !own {
                    report.errors.push(RowError {
                        line,
                        message: format!("user name {u:?} is someone else's"),
                    });
                    continue;
                }
            }
            if row.username.is_none() && kind != Kind::Parent {
                // Keep the name a person already signs in with; make one for newcomers.
                row.username = match old.and_then(|o| o.row.username.clone()) {
                    Some(u) => Some(u),
                    None => Some(make_username(&row.first_name, &row.last_name, &taken)),
                };
            }
            if let Some(u) = &row.username {
                taken.insert(u.clone());
            }
            match old {
                Some(o) if o.row == row && o.active => report.unchanged += 1,
                Some(o) => {
                    report.updated += 1;
                    if !options.dry_run {
                        update_person(&mut tx, o.id, &row, now).await?;
                    }
                }
                None => {
                    report.added += 1;
                    if !options.dry_run {
                        insert_person(&mut tx, kind, &row, &pupils, now).await?;
                    }
                }
            }
        }
        report.left = leavers.len();
        // A message quotes the field it refuses; a hostile or broken file could make that
        // field megabytes long, so a message keeps about 100 bytes of it.
        for e in &mut report.errors {
            e.message = haven_core::textfile::clip(&e.message, 160).into_owned();
        }
        if options.dry_run {
            tx.rollback().await?;
            return Ok(report);
        }
        for id in leavers {
            sqlx::query(
                "UPDATE people SET active = 0, left_at = $1, updated_at = $1 WHERE id = $2",
            )
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// People by name or id, for the console's search (active ones first).
    pub async fn find_people(&self, text: &str, limit: i64) -> Result<Vec<Person>, StoreError> {
        let like = format!("%{}%", text.trim().to_lowercase());
        let rows = sqlx::query(
            "SELECT id, kind, mis_id, first_name, last_name, year_group, class, grp, username, active \
             FROM people WHERE LOWER(first_name || ' ' || last_name) LIKE $1 OR LOWER(mis_id) LIKE $1 \
             OR LOWER(COALESCE(username, '')) LIKE $1 ORDER BY active DESC, last_name, first_name LIMIT $2",
        )
        .bind(like)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(person_from).collect()
    }

    /// Active people, by kind: (pupils, staff, parents).
    pub async fn count_people(&self) -> Result<(i64, i64, i64), StoreError> {
        let mut out = (0, 0, 0);
        for r in sqlx::query("SELECT kind, COUNT(*) FROM people WHERE active = 1 GROUP BY kind")
            .fetch_all(&self.pool)
            .await?
        {
            let n: i64 = r.try_get(1)?;
            match r.try_get::<String, _>(0)?.as_str() {
                "pupil" => out.0 = n,
                "staff" => out.1 = n,
                _ => out.2 = n,
            }
        }
        Ok(out)
    }

    /// One person by id.
    pub async fn person(&self, id: i64) -> Result<Option<Person>, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, mis_id, first_name, last_name, year_group, class, grp, username, active \
             FROM people WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(person_from).transpose()
    }
}

/// A person, as the console shows them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Person {
    /// Id in the store.
    pub id: i64,
    /// `pupil`, `staff` or `parent`.
    pub kind: String,
    /// UPN or MIS id.
    pub mis_id: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Year group (pupils).
    pub year_group: Option<String>,
    /// Class (pupils).
    pub class: Option<String>,
    /// Policy group.
    pub group: String,
    /// User name, when they have one.
    pub username: Option<String>,
    /// False for leavers.
    pub active: bool,
}

fn person_from(r: &sqlx::any::AnyRow) -> Result<Person, StoreError> {
    Ok(Person {
        id: r.try_get(0)?,
        kind: r.try_get(1)?,
        mis_id: r.try_get(2)?,
        first_name: r.try_get(3)?,
        last_name: r.try_get(4)?,
        year_group: r.try_get(5)?,
        class: r.try_get(6)?,
        group: r.try_get(7)?,
        username: r.try_get(8)?,
        active: r.try_get::<i64, _>(9)? != 0,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

async fn load_existing(
    tx: &mut Tx<'_>,
    kind: Kind,
) -> Result<HashMap<String, Existing>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, mis_id, first_name, last_name, date_of_birth, year_group, class, email, grp, username, active \
         FROM people WHERE kind = $1",
    )
    .bind(kind.id())
    .fetch_all(&mut **tx)
    .await?;
    let mut roles: HashMap<i64, Vec<Role>> = HashMap::new();
    for r in sqlx::query(
        "SELECT r.person_id, r.role FROM person_roles r JOIN people p ON p.id = r.person_id WHERE p.kind = $1",
    )
    .bind(kind.id())
    .fetch_all(&mut **tx)
    .await?
    {
        if let Some(role) = Role::parse(&r.try_get::<String, _>(1)?) {
            roles.entry(r.try_get(0)?).or_default().push(role);
        }
    }
    let mut children: HashMap<i64, (Vec<String>, Option<String>)> = HashMap::new();
    if kind == Kind::Parent {
        for r in sqlx::query(
            "SELECT g.parent_id, p.mis_id, g.relationship FROM guardians g JOIN people p ON p.id = g.pupil_id ORDER BY p.mis_id",
        )
        .fetch_all(&mut **tx)
        .await?
        {
            let e = children.entry(r.try_get(0)?).or_default();
            e.0.push(r.try_get(1)?);
            e.1 = r.try_get(2)?;
        }
    }
    let mut out = HashMap::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get(0)?;
        let mut role_list = roles.remove(&id).unwrap_or_default();
        role_list.sort();
        let (kids, relationship) = children.remove(&id).unwrap_or_default();
        let row = Row {
            mis_id: r.try_get(1)?,
            first_name: r.try_get(2)?,
            last_name: r.try_get(3)?,
            date_of_birth: r.try_get(4)?,
            year_group: r.try_get(5)?,
            class: r.try_get(6)?,
            email: r.try_get(7)?,
            group: r.try_get(8)?,
            username: r.try_get(9)?,
            roles: role_list,
            children: kids,
            relationship,
        };
        out.insert(
            row.mis_id.clone(),
            Existing {
                id,
                row,
                active: r.try_get::<i64, _>(10)? != 0,
            },
        );
    }
    Ok(out)
}

async fn insert_person(
    tx: &mut Tx<'_>,
    kind: Kind,
    row: &Row,
    pupils: &HashMap<String, i64>,
    now: i64,
) -> Result<(), StoreError> {
    let id: i64 = sqlx::query(
        "INSERT INTO people (kind, mis_id, first_name, last_name, date_of_birth, year_group, class, email, grp, username, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(kind.id())
    .bind(&row.mis_id)
    .bind(&row.first_name)
    .bind(&row.last_name)
    .bind(&row.date_of_birth)
    .bind(&row.year_group)
    .bind(&row.class)
    .bind(&row.email)
    .bind(&row.group)
    .bind(&row.username)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    write_links(tx, id, row, pupils).await
}

async fn update_person(tx: &mut Tx<'_>, id: i64, row: &Row, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE people SET first_name = $1, last_name = $2, date_of_birth = $3, year_group = $4, class = $5, \
         email = $6, grp = $7, username = $8, active = 1, left_at = NULL, updated_at = $9 WHERE id = $10",
    )
    .bind(&row.first_name)
    .bind(&row.last_name)
    .bind(&row.date_of_birth)
    .bind(&row.year_group)
    .bind(&row.class)
    .bind(&row.email)
    .bind(&row.group)
    .bind(&row.username)
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM person_roles WHERE person_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM guardians WHERE parent_id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    let pupils = if row.children.is_empty() {
        HashMap::new()
    } else {
        sqlx::query("SELECT mis_id, id FROM people WHERE kind = 'pupil'")
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
            .collect()
    };
    write_links(tx, id, row, &pupils).await
}

async fn write_links(
    tx: &mut Tx<'_>,
    id: i64,
    row: &Row,
    pupils: &HashMap<String, i64>,
) -> Result<(), StoreError> {
    for role in &row.roles {
        sqlx::query("INSERT INTO person_roles (person_id, role) VALUES ($1, $2)")
            .bind(id)
            .bind(role.id())
            .execute(&mut **tx)
            .await?;
    }
    for child in &row.children {
        if let Some(pupil) = pupils.get(child) {
            sqlx::query(
                "INSERT INTO guardians (parent_id, pupil_id, relationship) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(pupil)
            .bind(&row.relationship)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn year_groups_as_schools_write_them() {
        for (text, year, group) in [
            ("Year 5", "5", "ks2"),
            ("Y1", "1", "ks1"),
            ("R", "R", "eyfs"),
            ("Reception", "R", "eyfs"),
            ("N1", "N", "eyfs"),
            ("7", "7", "ks3+"),
            ("year 11", "11", "ks3+"),
        ] {
            let y = year_group(text).expect(text);
            assert_eq!((y.as_str(), group_for_year(&y)), (year, group), "{text}");
        }
        for bad in ["", "Year 15", "Y0", "Alpha"] {
            assert_eq!(year_group(bad), None, "{bad}");
        }
    }

    #[test]
    fn dates_of_birth_in_either_form() {
        assert_eq!(date_of_birth("2016-03-09").as_deref(), Ok("2016-03-09"));
        assert_eq!(date_of_birth("9/3/2016").as_deref(), Ok("2016-03-09"));
        assert!(date_of_birth("31/02/2016").is_err());
        assert!(date_of_birth("2999-01-01").is_err());
        assert!(date_of_birth("yesterday").is_err());
    }

    #[test]
    fn user_names_are_plain_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(make_username("Zoë", "O'Brien", &taken), "zoe.obrien");
        taken.insert("zoe.obrien".to_owned());
        assert_eq!(make_username("Zoë", "O'Brien", &taken), "zoe.obrien2");
        assert_eq!(make_username("李", "王", &taken), "user");
    }
}
