//! The `haven` command: one binary for every part of Haven.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Parser, Subcommand};
use haven_core::policy::DEFAULT_POLICY;
use haven_core::{Engine, Policy};
use haven_lists::ListStore;

/// `println!` that returns an error instead of panicking (a closed pipe is not a crash).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

mod activity;
mod audit;
mod check;
mod demo;
mod devices;
mod lists;
mod monitor;
mod people;
mod phrases;
mod serve;
mod tokens;

/// Haven: web filtering, monitoring and safeguarding records for schools.
#[derive(Debug, Parser)]
#[command(name = "haven", version, about, long_about = None)]
struct Cli {
    /// Where Haven keeps its state (lists, policy, database).
    #[arg(
        long,
        global = true,
        env = "HAVEN_DATA_DIR",
        default_value = "haven-data"
    )]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run Haven: the DNS filter, the filtering proxy, the console, monitoring and alerts.
    Serve(serve::ServeArgs),
    /// Monitoring: the risk library, tried by hand.
    #[command(subcommand)]
    Monitor(monitor::MonitorCommand),
    /// The weighted-phrase lists for content scoring.
    #[command(subcommand)]
    Phrases(phrases::PhrasesCommand),
    /// The school's certificate authority for HTTPS interception.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Import and inspect category lists.
    #[command(subcommand)]
    Lists(lists::ListsCommand),
    /// The policy tester: what happens to a URL or domain, and why.
    Check(check::CheckArgs),
    /// Validate or create the policy.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// List Haven's categories and how UT1 folders map onto them.
    Categories(CategoriesArgs),
    /// People: import the MIS's CSV exports, set passwords, find someone.
    #[command(subcommand)]
    People(people::PeopleCommand),
    /// Devices (name, address, MAC, owner) kept in the store.
    #[command(subcommand)]
    Devices(devices::DevicesCommand),
    /// Networks (subnet → group and site) kept in the store.
    #[command(subcommand)]
    Networks(devices::NetworksCommand),
    /// The recorded activity (every DNS and proxy decision): search it, count it.
    #[command(subcommand)]
    Events(activity::EventsCommand),
    /// Review requests from block pages.
    Reviews(activity::ReviewsArgs),
    /// The audit log: check its chain, anchor it, read it.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// API tokens: list, make, revoke.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file (default: the one in force) against the imported lists.
    Check {
        /// The policy file to check.
        file: Option<PathBuf>,
    },
    /// Write the default primary-school policy to <data-dir>/policy.toml for editing.
    Init {
        /// Replace an existing policy file.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Create the school's CA in <data-dir>/ca (the private key readable by its owner only).
    Init {
        /// Replace an existing CA (every device must then be given the new certificate).
        #[arg(long)]
        force: bool,
    },
    /// Print the CA certificate (PEM) to install on the school's devices.
    Show,
}

fn ca(ctx: &Context, cmd: CaCommand) -> Result<ExitCode> {
    let dir = ctx.data_dir.join("ca");
    match cmd {
        CaCommand::Init { force } => {
            let (policy, _) = ctx.load_policy(None)?;
            let existing = if force {
                haven_proxy::ca::Existing::Replace
            } else {
                haven_proxy::ca::Existing::Keep
            };
            let made = haven_proxy::ca::init(&dir, &policy.school, existing)?;
            outln!("Created the CA for {} in {}.", policy.school, dir.display());
            outln!(
                "Install {} on the school's devices (as a trusted root), or download it from the proxy at /haven-ca.crt.",
                dir.join("ca.crt").display()
            );
            outln!("Then set intercept = true for the groups to decrypt, in the policy.");
            drop(made);
        }
        CaCommand::Show => {
            let loaded = haven_proxy::ca::load(&dir)?;
            outln!("{}", loaded.certificate_pem().trim_end());
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
struct CategoriesArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What every command needs: where the state is.
pub(crate) struct Context {
    pub data_dir: PathBuf,
}

impl Context {
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
    pub fn store_url(&self, config: Option<&serve::ConfigFile>) -> Result<String> {
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
                read = path
                    .is_file()
                    .then(|| serve::read_config(&path))
                    .transpose()?;
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
            let mut store = haven_store::Store::open(&url)
                .await
                .with_context(|| format!("opening the store {}", haven_store::redact(&url)))?;
            if store.backend() == haven_store::Backend::Postgres {
                store.use_audit_key(&self.data_dir).await?;
            }
            let result = work(store.clone()).await;
            store.close().await;
            result
        })
    }

    /// The snapshot and policy in force, compiled together. A missing snapshot while sources
    /// are registered is an error (never an empty list); the previous snapshot standing in
    /// for a refused one is marked on the engine (the console and the metrics show it); a
    /// policy rule over an illegal-list entry is a warning (the list wins).
    pub fn engine(&self, policy_file: Option<&Path>) -> Result<Engine> {
        let loaded = self.lists().load()?;
        if let Some(why) = &loaded.refused {
            eprintln!("warning: snapshot refused, using the previous one: {why}");
        }
        if loaded.path.is_none() {
            eprintln!("note: no lists imported yet (haven lists import PATH); only the policy's own rules apply");
        }
        let (policy, origin) = self.load_policy(policy_file)?;
        let mut engine = Engine::new(Arc::new(loaded.snapshot), Arc::new(policy), &origin)?;
        if let Some(why) = loaded.refused {
            engine = engine.with_fallback(why);
        }
        for o in engine.illegal_overrides() {
            eprintln!("warning: {o}");
        }
        Ok(engine)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = Context {
        data_dir: cli.data_dir,
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Ca(cmd) => ca(&ctx, cmd),
        Command::Phrases(cmd) => phrases::run(&ctx, cmd),
        Command::Monitor(cmd) => monitor::run(&ctx, cmd),
        Command::Lists(cmd) => lists::run(&ctx, cmd),
        Command::Check(args) => check::run(&ctx, &args),
        Command::Policy(cmd) => policy(&ctx, cmd),
        Command::Categories(args) => categories(&args),
        Command::People(cmd) => people::run(&ctx, cmd),
        Command::Events(cmd) => activity::run(&ctx, cmd),
        Command::Devices(cmd) => devices::devices(&ctx, cmd),
        Command::Networks(cmd) => devices::networks(&ctx, cmd),
        Command::Reviews(args) => activity::reviews(&ctx, &args),
        Command::Audit(cmd) => audit::run(&ctx, cmd),
        Command::Tokens(cmd) => tokens::run(&ctx, cmd),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`haven lists info | head`) is the reader's choice, not a failure.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn policy(ctx: &Context, cmd: PolicyCommand) -> Result<ExitCode> {
    match cmd {
        PolicyCommand::Check { file } => {
            let engine = ctx.engine(file.as_deref())?;
            // The filter runs with such a rule (the list wins), but the policy has a mistake
            // to mend: the check says so and fails.
            if let Some(o) = engine.illegal_overrides().first() {
                bail!(
                    "{} rule(s) would allow an illegal-list entry; the first: {o}",
                    engine.illegal_overrides().len()
                );
            }
            let p = engine.policy();
            outln!(
                "policy OK: {} ({} groups, {} allow and {} deny overrides, {} lessons, {} schedules) against {} list sources",
                file.as_ref().map_or_else(|| ctx.policy_path().map_or("built-in default policy".into(), |p| p.display().to_string()), |f| f.display().to_string()),
                p.groups.len(),
                p.allow.len(),
                p.deny.len(),
                p.lessons.len(),
                p.schedules.len(),
                engine.snapshot().sources().len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Init { force } => {
            let path = ctx.data_dir.join("policy.toml");
            if path.exists() && !force {
                bail!(
                    "{} already exists (use --force to replace it)",
                    path.display()
                );
            }
            haven_lists::store::write_atomically(&path, DEFAULT_POLICY.as_bytes())?;
            outln!(
                "wrote {}; edit it, then run `haven policy check`",
                path.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn categories(args: &CategoriesArgs) -> Result<ExitCode> {
    use haven_core::category::{TAXONOMY, UT1_MAPPING};
    if args.json {
        let ut1: serde_json::Map<String, serde_json::Value> = UT1_MAPPING
            .iter()
            .map(|(f, c)| ((*f).to_owned(), serde_json::Value::from(*c)))
            .collect();
        let out = serde_json::json!({ "categories": TAXONOMY, "ut1_mapping": ut1 });
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("{:<20} {:<15} {:<38} UT1 folders", "id", "class", "name");
    for c in TAXONOMY {
        let folders: Vec<&str> = UT1_MAPPING
            .iter()
            .filter(|(_, id)| *id == c.id)
            .map(|(f, _)| *f)
            .collect();
        let class = serde_json::to_value(c.class)?
            .as_str()
            .unwrap_or_default()
            .to_owned();
        outln!(
            "{:<20} {:<15} {:<38} {}",
            c.id,
            class,
            c.name,
            folders.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
