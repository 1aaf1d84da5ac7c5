//! The `haven` command: one binary for every part of Haven.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};
use haven_core::policy::DEFAULT_POLICY;

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
mod devices;
mod lists;
mod monitor;
mod people;
mod phrases;
mod records;
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
    /// Safeguarding records: invented ones for demonstrations and benchmarks (records are
    /// worked in the console).
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// The vault of keys that seal evidence: rotate a school's key, back the keys up.
    #[command(subcommand)]
    Vault(records::VaultCommand),
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

/// A time stored as Unix milliseconds, as the commands print it (RFC 3339, UTC).
fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map_or_else(|_| ms.to_string(), |t| t.to_string())
}

/// What every command needs: where the state is.
pub(crate) use haven_app::Context;

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
        Command::Records(cmd) => records::records(&ctx, cmd),
        Command::Vault(cmd) => records::vault_command(&ctx, cmd),
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
