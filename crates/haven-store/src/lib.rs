//! Haven's store: people and their accounts, devices and networks, the data plane's events,
//! review requests and the hash-chained audit log.
//!
//! One schema and one SQL layer (sqlx's run-time `Any` driver) for both databases: SQLite, a
//! file under the data directory, for one school; PostgreSQL, by URL, for a trust. Queries are
//! written once, with `$1`-style parameters, which both databases read.

#[macro_use]
mod stored;
pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod captures;
pub mod devices;
pub mod events;
pub mod evidence;
pub mod people;
pub mod records;
pub mod registers;
pub mod reviews;
mod schema;
pub mod sealed;
pub mod sessions;
pub mod tokens;
pub mod transfer;

pub use stored::UnknownText;

use std::path::Path;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection as _, Executor as _};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed; the database keeps the schema it had.
    #[error("schema migration {version} failed: {source}")]
    Migration {
        /// The migration's number.
        version: i64,
        /// What the database said.
        source: sqlx::Error,
    },
    /// The database was written by a newer Haven.
    #[error("the database has schema version {found}, newer than this Haven knows ({known}): upgrade Haven")]
    TooNew {
        /// The database's version.
        found: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// A store URL that names no supported database.
    #[error("unsupported store {0:?}: use a file path, sqlite://PATH or postgres://…")]
    Unsupported(String),
    /// Input that cannot be stored (a clear reason for the person who gave it).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// Whether the database could not write because its disk (or quota) is full: SQLite's
    /// `SQLITE_FULL`, PostgreSQL's `disk_full` (53100), or the system's "no space left".
    pub fn is_disk_full(&self) -> bool {
        let sql = match self {
            StoreError::Database(e) | StoreError::Migration { source: e, .. } => e,
            _ => return false,
        };
        match sql {
            sqlx::Error::Database(db) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or("");
                // SQLite reports its (extended) result code; the primary code is its low byte.
                code.parse::<u32>().is_ok_and(|c| c & 0xff == 13)
                    || code == "53100"
                    || db.message().contains("disk is full")
            }
            sqlx::Error::Io(io) => io.raw_os_error() == Some(28), // ENOSPC
            _ => false,
        }
    }
}

/// How the store's writes have fared in this process: failures counted, and whether the disk
/// is full. Shared by every handle on the store and read by the metrics endpoint and the
/// console. A nearly full disk still takes small writes while large ones fail, so one write
/// that succeeds does not clear the alarm: it clears once writes succeed and none has failed
/// for want of space for [`Health::FULL_CLEARS_AFTER_MS`].
#[derive(Debug, Default)]
pub struct Health {
    failures: AtomicU64,
    /// When a write last failed for want of space (ms since the epoch; 0: the disk has room).
    last_full_ms: AtomicI64,
}

impl Health {
    /// How long after the last write refused for want of space a success clears the alarm.
    pub const FULL_CLEARS_AFTER_MS: i64 = 5_000;

    /// Store operations that failed since start.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether the disk is full: a write failed for want of space, and none has succeeded
    /// well after it.
    pub fn disk_full(&self) -> bool {
        self.last_full_ms.load(Ordering::Relaxed) != 0
    }

    /// Notes how a write went, and passes its result on.
    pub fn note<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        match &result {
            Ok(_) => {
                let last = self.last_full_ms.load(Ordering::Relaxed);
                if last != 0 && now_ms() - last > Self::FULL_CLEARS_AFTER_MS {
                    // Unless another failure came in between.
                    let _ = self.last_full_ms.compare_exchange(
                        last,
                        0,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
            }
            Err(e) => self.failed(e),
        }
        result
    }

    /// Notes a failure (of a read or a write; reads succeeding say nothing about the disk).
    pub fn failed(&self, e: &StoreError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if e.is_disk_full() {
            self.last_full_ms.store(now_ms().max(1), Ordering::Relaxed);
        }
    }
}

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, embedded.
    Sqlite,
    /// PostgreSQL, over the network.
    Postgres,
}

/// The store: a pool of connections to one database, migrated to the newest schema.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Audit entries join the chain one at a time.
    audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    health: Arc<Health>,
    /// The key that codes the audit chain (`audit.key`, outside the database).
    audit_key: Option<std::sync::Arc<audit::AuditKey>>,
}

impl Store {
    /// Opens (creating if need be) the SQLite database at `path`.
    pub async fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        Store::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens the database at `url` (`sqlite://PATH?mode=rwc` or `postgres://…`) and migrates it.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::Unsupported(redact(url)));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // WAL with NORMAL: a commit survives the process being killed;
                            // readers never wait for the writer.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            // Pages are read through a mapping, not copied in by read(2)
                            // again and again; the cache (32 MiB; 8 MiB cost a fifth of the
                            // ingestion rate at ten million events) holds what is written.
                            conn.execute("PRAGMA cache_size = -32768").await?;
                            conn.execute("PRAGMA mmap_size = 2147418112").await?;
                            // Checkpoints mostly run beside the writers (below); past 8,192
                            // pages a commit finishes one itself, which bounds the WAL (a
                            // checkpoint racing a busy writer never catches up alone).
                            conn.execute("PRAGMA wal_autocheckpoint = 8192").await?;
                            conn.execute("PRAGMA journal_size_limit = 67108864").await?;
                            Ok(())
                        })
                    })
                    .after_release(|conn, _| Box::pin(clean_after_use(conn)))
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .max_connections(10)
                    .after_release(|conn, _| Box::pin(clean_after_use(conn)))
                    .connect_with(options)
                    .await?
            }
        };
        let mut store = Store {
            pool,
            backend,
            audit_lock: std::sync::Arc::default(),
            health: Arc::default(),
            audit_key: None,
        };
        schema::migrate(&store).await?;
        // SQLite keeps the audit key beside its database file (the data directory).
        if let Some(dir) = sqlite_dir(url) {
            store.use_audit_key(&dir).await?;
        }
        if backend == Backend::Sqlite {
            tokio::spawn(checkpoints(store.pool.clone()));
        }
        Ok(store)
    }

    /// A transaction that will write. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`): a deferred transaction that reads first and then writes cannot upgrade if
    /// another connection (the server, a command run beside it) committed in between, and fails
    /// at once whatever the busy timeout; one that waits for the lock up front does not.
    pub(crate) async fn write_tx(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// How this store's writes have fared (failures, a full disk).
    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    /// This handle, sharing `health` with the other handles on the same database in this
    /// process (the event writer opens its own).
    pub fn sharing_health(mut self, health: Arc<Health>) -> Store {
        self.health = health;
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The schema version in force.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        use sqlx::Row as _;
        Ok(
            sqlx::query("SELECT COALESCE(MAX(version), 0) FROM haven_schema")
                .fetch_one(&self.pool)
                .await?
                .try_get::<i64, _>(0)?,
        )
    }

    /// Closes every connection (waiting for queries under way).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a connection handed back to the pool is fit to be used again. A transaction whose
/// COMMIT failed (a full disk: SQLite may already have rolled it back itself, so the ROLLBACK
/// queued when the transaction is dropped fails too) leaves the driver counting an open
/// transaction, and every later `BEGIN` on that connection would be refused for ever; such a
/// connection is closed instead, and the pool opens a fresh one when it is next needed.
async fn clean_after_use(conn: &mut sqlx::AnyConnection) -> Result<bool, sqlx::Error> {
    if conn.is_in_transaction() {
        // Lets a queued rollback run first (commands on a connection run in order).
        conn.ping().await?;
    }
    Ok(!conn.is_in_transaction())
}

/// SQLite's WAL copied back into the database every half second on a connection of its own, so
/// that a commit never stops to do it (a passive checkpoint waits for nobody). Ends when the
/// pool closes; the last connection to close checkpoints what is left.
async fn checkpoints(pool: AnyPool) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        // Busy (another checkpoint under way) is no error here: the next tick tries again.
        let _ = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
    }
}

/// The directory of a SQLite database file named by `url`, if it names one.
fn sqlite_dir(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    Path::new(path).parent().map(|p| {
        if p.as_os_str().is_empty() {
            std::path::PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    })
}

/// A store URL fit for messages: any password replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    haven_runtime::clock::now_ms() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://haven:s3cret@db.example:5432/haven"),
            "postgres://haven:***@db.example:5432/haven"
        );
        assert_eq!(
            redact("sqlite:///var/lib/haven/haven.db"),
            "sqlite:///var/lib/haven/haven.db"
        );
    }
}
