//! The schema, one for both databases: numbered migrations written once, with the few words
//! the two dialects spell differently marked `{pk}` (the primary key) and `{, id}` (the end of
//! an index, which SQLite has implicitly).

use sqlx::Row as _;

use crate::{Backend, Store, StoreError};

/// One step of the schema.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Never edit one that has shipped: add another.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "people, accounts, devices, networks, events, captures, reviews, audit",
        sql: r#"
CREATE TABLE people (
    id {pk},
    kind TEXT NOT NULL,
    mis_id TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    date_of_birth TEXT,
    year_group TEXT,
    class TEXT,
    email TEXT,
    grp TEXT NOT NULL,
    username TEXT,
    password_hash TEXT,
    totp_secret TEXT,
    totp_enabled BIGINT NOT NULL DEFAULT 0,
    totp_last_step BIGINT NOT NULL DEFAULT 0,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT,
    active BIGINT NOT NULL DEFAULT 1,
    left_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX people_mis ON people (kind, mis_id);
CREATE UNIQUE INDEX people_username ON people (username);
CREATE INDEX people_name ON people (last_name, first_name);
CREATE TABLE person_roles (
    person_id BIGINT NOT NULL REFERENCES people (id),
    role TEXT NOT NULL,
    PRIMARY KEY (person_id, role)
);
CREATE TABLE guardians (
    parent_id BIGINT NOT NULL REFERENCES people (id),
    pupil_id BIGINT NOT NULL REFERENCES people (id),
    relationship TEXT,
    PRIMARY KEY (parent_id, pupil_id)
);
CREATE TABLE recovery_codes (
    person_id BIGINT NOT NULL REFERENCES people (id),
    code_hash TEXT NOT NULL,
    used_at BIGINT,
    PRIMARY KEY (person_id, code_hash)
);
CREATE TABLE networks (
    id {pk},
    cidr TEXT NOT NULL UNIQUE,
    site TEXT NOT NULL,
    grp TEXT NOT NULL
);
CREATE TABLE devices (
    id {pk},
    name TEXT NOT NULL UNIQUE,
    address TEXT,
    mac TEXT,
    owner_id BIGINT REFERENCES people (id),
    grp TEXT
);
CREATE TABLE events (
    id {pk},
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    client TEXT NOT NULL,
    grp TEXT NOT NULL,
    username TEXT,
    name TEXT NOT NULL,
    qtype BIGINT,
    action TEXT NOT NULL,
    category TEXT,
    reason TEXT,
    search TEXT,
    latency_us BIGINT NOT NULL,
    repeats BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX events_at ON events (at, id);
CREATE INDEX events_user ON events (username, at, id) WHERE username IS NOT NULL;
CREATE INDEX events_client ON events (client, at, id);
CREATE INDEX events_category ON events (category, at, id) WHERE category IS NOT NULL;
CREATE INDEX events_searches ON events (at, id) WHERE search IS NOT NULL;
CREATE TABLE captures (
    id {pk},
    at BIGINT NOT NULL,
    source TEXT NOT NULL,
    client TEXT NOT NULL,
    username TEXT,
    url TEXT NOT NULL,
    text TEXT NOT NULL,
    grade BIGINT NOT NULL,
    categories TEXT NOT NULL,
    matched TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    decided_by TEXT,
    decided_at BIGINT,
    reason TEXT
);
CREATE INDEX captures_open ON captures (status, grade, at);
CREATE TABLE concerns (
    id {pk},
    at BIGINT NOT NULL,
    capture_id BIGINT REFERENCES captures (id),
    username TEXT,
    client TEXT NOT NULL,
    category TEXT NOT NULL,
    summary TEXT NOT NULL,
    created_by TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open'
);
CREATE TABLE reviews (
    id {pk},
    at BIGINT NOT NULL,
    client TEXT NOT NULL,
    grp TEXT NOT NULL,
    username TEXT,
    url TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    decided_by TEXT,
    decided_at BIGINT,
    note TEXT
);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    person_id BIGINT NOT NULL REFERENCES people (id),
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    address TEXT NOT NULL,
    csrf TEXT NOT NULL,
    second_factor BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE api_tokens (
    id {pk},
    token_hash TEXT NOT NULL UNIQUE,
    person_id BIGINT NOT NULL REFERENCES people (id),
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE policy_changes (
    id {pk},
    at BIGINT NOT NULL,
    author TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    approver TEXT,
    decided_at BIGINT,
    policy TEXT NOT NULL,
    base_hash TEXT NOT NULL,
    summary TEXT NOT NULL
);
CREATE TABLE audit (
    id {pk},
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    address TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)
"#,
    },
    Migration {
        version: 2,
        name: "monitoring: capture history, alerts and their deliveries, risk library changes",
        sql: r#"
ALTER TABLE captures ADD COLUMN category TEXT;
ALTER TABLE captures ADD COLUMN base_grade BIGINT;
ALTER TABLE captures ADD COLUMN raised TEXT;
CREATE INDEX captures_user ON captures (username, at) WHERE username IS NOT NULL;
CREATE INDEX captures_client ON captures (client, at);
CREATE TABLE alerts (
    id {pk},
    capture_id BIGINT NOT NULL REFERENCES captures (id),
    grade BIGINT NOT NULL,
    category TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    sent_at BIGINT,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    escalated_at BIGINT
);
CREATE INDEX alerts_capture ON alerts (capture_id);
CREATE INDEX alerts_waiting ON alerts (created_at) WHERE sent_at IS NULL;
CREATE INDEX alerts_unacknowledged ON alerts (sent_at) WHERE acknowledged_at IS NULL AND escalated_at IS NULL;
CREATE TABLE deliveries (
    id {pk},
    alert_id BIGINT NOT NULL REFERENCES alerts (id),
    level TEXT NOT NULL,
    channel TEXT NOT NULL,
    target TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    attempts BIGINT NOT NULL DEFAULT 0,
    delivered_at BIGINT,
    error TEXT
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE delivered_at IS NULL;
CREATE INDEX deliveries_alert ON deliveries (alert_id);
CREATE TABLE library_changes (
    id {pk},
    at BIGINT NOT NULL,
    author TEXT NOT NULL,
    note TEXT NOT NULL,
    before_hash TEXT NOT NULL,
    text TEXT NOT NULL
)
"#,
    },
    Migration {
        version: 3,
        name: "sign-in: second-factor failures and lock, proxy passwords, when credentials changed",
        sql: r#"
ALTER TABLE people ADD COLUMN factor_failures BIGINT NOT NULL DEFAULT 0;
ALTER TABLE people ADD COLUMN factor_locked_until BIGINT;
ALTER TABLE people ADD COLUMN proxy_password_hash TEXT;
ALTER TABLE people ADD COLUMN credentials_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX people_credentials ON people (credentials_at)
"#,
    },
    Migration {
        version: 4,
        name: "API token scopes and lifetimes; risk library changes that wait for a second person",
        sql: r#"
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;
ALTER TABLE library_changes ADD COLUMN status TEXT NOT NULL DEFAULT 'applied';
ALTER TABLE library_changes ADD COLUMN approver TEXT;
ALTER TABLE library_changes ADD COLUMN decided_at BIGINT
"#,
    },
    Migration {
        version: 5,
        name: "reviews: one open request per person and site",
        sql: r#"
ALTER TABLE reviews ADD COLUMN site TEXT;
CREATE UNIQUE INDEX reviews_open_per_person ON reviews (COALESCE(username, client), site) WHERE status = 'open'
"#,
    },
    Migration {
        version: 6,
        name: "captures: what the learned model said",
        sql: r#"
ALTER TABLE captures ADD COLUMN model TEXT
"#,
    },
    Migration {
        version: 7,
        name: "schools; safeguarding records: concerns, children and their parts, chronology, procedure steps, referrals, sealed evidence, write-ups due, the search index",
        sql: r#"
CREATE TABLE schools (
    id {pk},
    name TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO schools (name, created_at) VALUES ('This school', 0);
CREATE TABLE record_categories (
    school_id BIGINT NOT NULL REFERENCES schools (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    added_by BIGINT NOT NULL REFERENCES people (id),
    added_at BIGINT NOT NULL,
    PRIMARY KEY (school_id, id)
);
CREATE TABLE records (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    kind TEXT NOT NULL,
    category TEXT NOT NULL,
    author_id BIGINT NOT NULL REFERENCES people (id),
    happened_at BIGINT NOT NULL,
    written_at BIGINT NOT NULL,
    place TEXT NOT NULL,
    account TEXT NOT NULL,
    actions TEXT NOT NULL,
    told_dsl_at BIGINT,
    capture_id BIGINT REFERENCES captures (id),
    staff_id BIGINT REFERENCES people (id),
    holder_id BIGINT REFERENCES people (id),
    shared_with_dsl BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'open',
    outcome TEXT,
    debrief TEXT,
    closed_at BIGINT,
    closed_by BIGINT REFERENCES people (id),
    legal_hold BIGINT NOT NULL DEFAULT 0,
    body_map TEXT NOT NULL DEFAULT ''
);
CREATE INDEX records_open ON records (school_id, status, written_at);
CREATE INDEX records_author ON records (school_id, author_id, written_at);
CREATE TABLE record_children (
    school_id BIGINT NOT NULL REFERENCES schools (id),
    record_id BIGINT NOT NULL REFERENCES records (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    part TEXT NOT NULL,
    PRIMARY KEY (record_id, person_id)
);
CREATE INDEX record_children_person ON record_children (school_id, person_id);
CREATE TABLE chronology (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    record_id BIGINT REFERENCES records (id),
    person_id BIGINT REFERENCES people (id),
    at BIGINT NOT NULL,
    written_at BIGINT NOT NULL,
    author_id BIGINT NOT NULL REFERENCES people (id),
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    rationale TEXT,
    supersedes BIGINT REFERENCES chronology (id),
    reason TEXT
);
CREATE INDEX chronology_person ON chronology (school_id, person_id, at);
CREATE INDEX chronology_record ON chronology (record_id, at);
CREATE UNIQUE INDEX chronology_superseded_once ON chronology (supersedes) WHERE supersedes IS NOT NULL;
CREATE TABLE record_steps (
    school_id BIGINT NOT NULL REFERENCES schools (id),
    record_id BIGINT NOT NULL REFERENCES records (id),
    step TEXT NOT NULL,
    done_by BIGINT NOT NULL REFERENCES people (id),
    done_at BIGINT NOT NULL,
    skipped_reason TEXT,
    PRIMARY KEY (record_id, step)
);
CREATE TABLE referrals (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    record_id BIGINT NOT NULL REFERENCES records (id),
    agency TEXT NOT NULL,
    made_at BIGINT NOT NULL,
    made_by BIGINT NOT NULL REFERENCES people (id),
    contact TEXT NOT NULL,
    reference TEXT NOT NULL,
    outcome TEXT,
    follow_up_on TEXT
);
CREATE INDEX referrals_record ON referrals (record_id);
CREATE INDEX referrals_follow_up ON referrals (school_id, follow_up_on) WHERE follow_up_on IS NOT NULL;
CREATE TABLE evidence (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    record_id BIGINT NOT NULL REFERENCES records (id),
    name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    possible_nude BIGINT NOT NULL DEFAULT 0,
    key_version BIGINT NOT NULL,
    sealed TEXT NOT NULL,
    added_by BIGINT NOT NULL REFERENCES people (id),
    added_at BIGINT NOT NULL
);
CREATE INDEX evidence_record ON evidence (record_id);
CREATE TABLE write_ups (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    staff_id BIGINT NOT NULL REFERENCES people (id),
    child_id BIGINT NOT NULL REFERENCES people (id),
    told_at BIGINT NOT NULL,
    noted_by BIGINT NOT NULL REFERENCES people (id),
    noted_at BIGINT NOT NULL,
    record_id BIGINT REFERENCES records (id)
);
CREATE INDEX write_ups_pending ON write_ups (school_id, staff_id) WHERE record_id IS NULL;
CREATE TABLE transfers (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    to_school TEXT NOT NULL,
    method TEXT NOT NULL,
    sent_at BIGINT NOT NULL,
    sent_by BIGINT NOT NULL REFERENCES people (id),
    receipt_at BIGINT,
    receipt_from TEXT
);
CREATE INDEX transfers_person ON transfers (school_id, person_id);
CREATE TABLE record_words (
    school_id BIGINT NOT NULL REFERENCES schools (id),
    word TEXT NOT NULL,
    record_id BIGINT NOT NULL REFERENCES records (id),
    PRIMARY KEY (school_id, word, record_id)
)
"#,
    },
    Migration {
        version: 8,
        name: "records that arrived from another school (who wrote them there); transfers sealed to a school's key, and files received",
        sql: r#"
ALTER TABLE records ADD COLUMN origin TEXT;
ALTER TABLE chronology ADD COLUMN origin TEXT;
ALTER TABLE record_steps ADD COLUMN origin TEXT;
ALTER TABLE referrals ADD COLUMN origin TEXT;
ALTER TABLE transfers ADD COLUMN package_sha256 TEXT;
ALTER TABLE transfers ADD COLUMN to_signing_key TEXT;
CREATE TABLE transfers_in (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    from_school TEXT NOT NULL,
    from_key TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    received_by BIGINT NOT NULL REFERENCES people (id),
    records BIGINT NOT NULL,
    evidence BIGINT NOT NULL,
    receipt TEXT NOT NULL
);
CREATE UNIQUE INDEX transfers_in_package ON transfers_in (school_id, package_sha256)
"#,
    },
    Migration {
        version: 9,
        name: "registers: acceptable-use agreements and signatures, image consent decisions, the data-breach log, staff training, policy reviews, searches and confiscation",
        sql: r#"
CREATE TABLE consents (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    purpose TEXT NOT NULL,
    given BIGINT NOT NULL,
    decided_by TEXT NOT NULL,
    note TEXT NOT NULL,
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX consents_person ON consents (school_id, person_id, purpose, recorded_at);
CREATE TABLE breaches (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    title TEXT NOT NULL,
    what TEXT NOT NULL,
    discovered_at BIGINT NOT NULL,
    data_involved TEXT NOT NULL,
    people_affected BIGINT NOT NULL,
    risk TEXT NOT NULL,
    reportable BIGINT,
    decision_reason TEXT,
    reported_at BIGINT,
    ico_reference TEXT,
    actions TEXT NOT NULL DEFAULT '',
    signed_off_by BIGINT REFERENCES people (id),
    signed_off_at BIGINT,
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX breaches_school ON breaches (school_id, discovered_at);
CREATE TABLE training (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    course TEXT NOT NULL,
    completed_on TEXT NOT NULL,
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX training_person ON training (school_id, person_id, course, completed_on);
CREATE TABLE agreement_versions (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    audience TEXT NOT NULL,
    version BIGINT NOT NULL,
    effective_on TEXT NOT NULL,
    body TEXT NOT NULL,
    published_by BIGINT NOT NULL REFERENCES people (id),
    published_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX agreement_versions_number ON agreement_versions (school_id, audience, version);
CREATE TABLE signatures (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    person_id BIGINT NOT NULL REFERENCES people (id),
    version_id BIGINT NOT NULL REFERENCES agreement_versions (id),
    signed_on TEXT NOT NULL,
    how TEXT NOT NULL,
    signed_by TEXT NOT NULL,
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX signatures_person ON signatures (school_id, person_id);
CREATE TABLE policy_reviews (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    policy TEXT NOT NULL,
    reviewed_on TEXT NOT NULL,
    reviewed_by TEXT NOT NULL,
    next_on TEXT NOT NULL,
    notes TEXT NOT NULL,
    signed_off_by BIGINT REFERENCES people (id),
    signed_off_at BIGINT,
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX policy_reviews_policy ON policy_reviews (school_id, policy, reviewed_on);
CREATE TABLE policy_review_triggers (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    policy TEXT NOT NULL,
    reason TEXT NOT NULL,
    at BIGINT NOT NULL,
    by_person BIGINT NOT NULL REFERENCES people (id)
);
CREATE TABLE searches (
    id {pk},
    school_id BIGINT NOT NULL REFERENCES schools (id),
    pupil_id BIGINT NOT NULL REFERENCES people (id),
    at BIGINT NOT NULL,
    device TEXT NOT NULL,
    reason TEXT NOT NULL,
    authorised_by TEXT NOT NULL,
    searched_by TEXT NOT NULL,
    witness TEXT NOT NULL,
    found TEXT NOT NULL,
    held TEXT NOT NULL,
    returned_to TEXT,
    returned_at BIGINT,
    police TEXT,
    record_id BIGINT REFERENCES records (id),
    recorded_by BIGINT NOT NULL REFERENCES people (id),
    recorded_at BIGINT NOT NULL
);
CREATE INDEX searches_school ON searches (school_id, at)
"#,
    },
];

impl Backend {
    /// The migration text in this database's dialect.
    fn dialect(self, sql: &str) -> String {
        match self {
            Backend::Sqlite => sql.replace("{pk}", "INTEGER PRIMARY KEY"),
            Backend::Postgres => sql.replace(
                "{pk}",
                "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            ),
        }
    }
}

/// Brings the database up to the newest schema, each migration in its own transaction. Refuses
/// a database written by a newer Haven.
pub(crate) async fn migrate(store: &Store) -> Result<i64, StoreError> {
    let pool = &store.pool;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS haven_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.version);
    for m in MIGRATIONS {
        let mut tx = store.write_tx().await?;
        if store.backend == Backend::Postgres {
            // Several nodes starting at once: one migrates, the others wait and then see it done.
            sqlx::query("SELECT pg_advisory_xact_lock(7274836)")
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("SELECT COUNT(*) FROM haven_schema WHERE version = $1")
            .bind(m.version)
            .fetch_one(&mut *tx)
            .await?
            .try_get::<i64, _>(0)?;
        if done > 0 {
            tx.commit().await?;
            continue;
        }
        for statement in store.backend.dialect(m.sql).split(";\n") {
            if statement.trim().is_empty() {
                continue;
            }
            // The schema's own text, fixed at build time.
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut *tx)
                .await
                .map_err(|source| StoreError::Migration {
                    version: m.version,
                    source,
                })?;
        }
        sqlx::query("INSERT INTO haven_schema (version, name, applied_at) VALUES ($1, $2, $3)")
            .bind(m.version)
            .bind(m.name)
            .bind(crate::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    }
    let found = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM haven_schema")
        .fetch_one(pool)
        .await?
        .try_get::<i64, _>(0)?;
    if found > newest {
        return Err(StoreError::TooNew {
            found,
            known: newest,
        });
    }
    Ok(found)
}
