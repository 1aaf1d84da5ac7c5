//! What every command and the service need: where the state is, and the lists, policy, engine
//! and store found there.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use haven_core::policy::DEFAULT_POLICY;
use haven_core::{Engine, Policy};
use haven_lists::ListStore;

use crate::config::Config;

/// Where Haven keeps its state (lists, policy, database).
#[derive(Debug, Clone)]
pub struct Context {
    /// The data directory.
    pub data_dir: PathBuf,
}

/// Something worth saying about the engine just built (the engine is built all the same).
#[derive(Debug)]
pub enum EngineNote {
    /// The snapshot was refused and the previous one stands in (why).
    SnapshotRefused(String),
    /// No lists are imported: only the policy's own rules apply.
    NoLists,
    /// A policy rule over an illegal-list entry (the list wins).
    IllegalOverride(String),
}

impl EngineNote {
    /// Whether it is a warning (else a note).
    pub fn is_warning(&self) -> bool {
        !matches!(self, EngineNote::NoLists)
    }
}

impl std::fmt::Display for EngineNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineNote::SnapshotRefused(why) => {
                write!(f, "snapshot refused, using the previous one: {why}")
            }
            EngineNote::NoLists => f.write_str(
                "no lists imported yet (haven lists import PATH); only the policy's own rules apply",
            ),
            EngineNote::IllegalOverride(o) => f.write_str(o),
        }
    }
}

impl Context {
    /// The list store in the data directory.
    pub fn lists(&self) -> ListStore {
        ListStore::new(&self.data_dir)
    }

    /// The policy file in force: `<data-dir>/policy.toml` when present.
    pub fn policy_path(&self) -> Option<PathBuf> {
        let p = self.data_dir.join("policy.toml");
        p.is_file().then_some(p)
    }

    /// Loads a policy: the given file, the data directory's, or the built-in default.
    pub fn load_policy(&self, file: Option<&Path>) -> Result<(Policy, String)> {
        let path = file.map(Path::to_path_buf).or_else(|| self.policy_path());
        match path {
            Some(p) => {
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("reading policy {}", p.display()))?;
                let policy = Policy::from_toml(&text)
                    .with_context(|| format!("policy {} refused", p.display()))?;
                Ok((policy, p.display().to_string()))
            }
            None => Ok((
                Policy::from_toml(DEFAULT_POLICY).context("the built-in policy")?,
                "built-in default policy".to_owned(),
            )),
        }
    }

    /// The store's URL: `HAVEN_STORE_URL`, else `[store] url` in `<data-dir>/haven.toml`,
    /// else the SQLite file `<data-dir>/haven.db`.
    pub fn store_url(&self, config: Option<&Config>) -> Result<String> {
        if let Some(url) = std::env::var("HAVEN_STORE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            return Ok(url);
        }
        let read;
        let config = match config {
            Some(c) => Some(c),
            None => {
                let path = self.data_dir.join("haven.toml");
                read = path.is_file().then(|| Config::read(&path)).transpose()?;
                read.as_ref()
            }
        };
        if let Some(url) = config.and_then(|c| c.store.url.clone()) {
            return Ok(url);
        }
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating {}", self.data_dir.display()))?;
        Ok(format!(
            "sqlite://{}?mode=rwc",
            self.data_dir.join("haven.db").display()
        ))
    }

    /// Opens the store at `url` (on PostgreSQL, with the audit key from the data directory).
    pub async fn open_store(&self, url: &str) -> Result<haven_store::Store> {
        let mut store = haven_store::Store::open(url)
            .await
            .with_context(|| format!("opening the store {}", haven_store::redact(url)))?;
        // PostgreSQL: the audit key lives in the data directory (the same file on every node).
        if store.backend() == haven_store::Backend::Postgres {
            store.use_audit_key(&self.data_dir).await?;
        }
        Ok(store)
    }

    /// Runs a command's work against the store, on a runtime of its own.
    pub fn with_store<T>(
        &self,
        work: impl AsyncFnOnce(haven_store::Store) -> Result<T>,
    ) -> Result<T> {
        let url = self.store_url(None)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let store = self.open_store(&url).await?;
            let result = work(store.clone()).await;
            store.close().await;
            result
        })
    }

    /// The snapshot and policy in force, compiled together; `note` hears what is worth
    /// saying about them as it is found. A missing snapshot while sources are registered is an
    /// error (never an empty list); the previous snapshot standing in for a refused one is
    /// marked on the engine (the console and the metrics show it); a policy rule over an
    /// illegal-list entry is a warning (the list wins).
    pub fn load_engine(
        &self,
        policy_file: Option<&Path>,
        mut note: impl FnMut(EngineNote),
    ) -> Result<Engine> {
        let loaded = self.lists().load()?;
        if let Some(why) = &loaded.refused {
            note(EngineNote::SnapshotRefused(why.clone()));
        }
        if loaded.path.is_none() {
            note(EngineNote::NoLists);
        }
        let (policy, origin) = self.load_policy(policy_file)?;
        let mut engine = Engine::new(Arc::new(loaded.snapshot), Arc::new(policy), &origin)?;
        if let Some(why) = loaded.refused {
            engine = engine.with_fallback(why);
        }
        for o in engine.illegal_overrides() {
            note(EngineNote::IllegalOverride(o.to_string()));
        }
        Ok(engine)
    }

    /// [`Context::load_engine`] for a command run at a terminal: the notes are printed on
    /// standard error.
    pub fn engine(&self, policy_file: Option<&Path>) -> Result<Engine> {
        self.load_engine(policy_file, |n| {
            let kind = if n.is_warning() { "warning" } else { "note" };
            eprintln!("{kind}: {n}");
        })
    }

    /// [`Context::load_engine`] for the service: the notes go to the log.
    pub fn engine_logged(&self, policy_file: Option<&Path>) -> Result<Engine> {
        self.load_engine(policy_file, |n| {
            if n.is_warning() {
                tracing::warn!("{n}");
            } else {
                tracing::info!("{n}");
            }
        })
    }
}
