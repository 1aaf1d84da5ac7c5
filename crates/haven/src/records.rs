//! `haven records` (invented records for demonstrations and the benchmark) and `haven vault`
//! (the keys that seal evidence: rotate, back up). Working the records themselves is the
//! console's: every read there is audited and needs two factors.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum RecordsCommand {
    /// Write invented concerns about the store's pupils (for demonstrations and benchmarks),
    /// each as a member of staff writes one, and give one pupil a long chronology.
    Generate(GenerateArgs),
    /// Time record searches and a chronology page (p50, p99).
    #[command(hide = true)]
    Bench {
        /// The pupil whose chronology is rendered (as `generate` printed).
        #[arg(long)]
        child: i64,
        /// Timings of each kind.
        #[arg(long, default_value_t = 200)]
        rounds: usize,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// How many concerns.
    #[arg(long, default_value_t = 1_000)]
    count: u64,
    /// Entries in the one long chronology (0: none).
    #[arg(long, default_value_t = 500)]
    long: u64,
    /// Spread over this many days, ending now.
    #[arg(long, default_value_t = 730)]
    days: u64,
}

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Add a new key for the school: evidence is sealed with it from now on, and old evidence
    /// still opens with the old keys. With --reseal, every piece of evidence is sealed again
    /// under the new key, so the old keys open nothing and can be retired.
    Rotate {
        /// The school.
        #[arg(long, default_value_t = haven_store::records::DEFAULT_SCHOOL)]
        school: i64,
        /// Seal the school's evidence again under the new key.
        #[arg(long)]
        reseal: bool,
    },
    /// Copy the vault's keys into a new directory inside DIR, readable by its owner only. Keep
    /// the copy apart from database backups: the two together open every sealed file.
    Backup {
        /// Where to put the copy (an encrypted USB stick, say).
        dir: std::path::PathBuf,
    },
    /// The school's key versions.
    Versions {
        /// The school.
        #[arg(long, default_value_t = haven_store::records::DEFAULT_SCHOOL)]
        school: i64,
    },
}

fn vault(ctx: &Context) -> Result<haven_vault::Vault> {
    Ok(haven_vault::Vault::open(&ctx.data_dir.join("vault"))?)
}

pub fn records(ctx: &Context, cmd: RecordsCommand) -> Result<ExitCode> {
    match cmd {
        RecordsCommand::Generate(g) => {
            let (n, child, secs) = ctx.with_store(async |s| {
                haven_app::records::generate(&s, g.count, g.long, g.days).await
            })?;
            outln!(
                "wrote {n} concerns and a chronology of {} entries for pupil {child} in {secs:.1} s",
                g.long
            );
        }
        RecordsCommand::Bench { child, rounds } => {
            let lines = ctx.with_store(async |s| {
                haven_app::records::bench(&s, &ctx.data_dir, child, rounds).await
            })?;
            for l in lines {
                outln!("{l}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vault_command(ctx: &Context, cmd: VaultCommand) -> Result<ExitCode> {
    match cmd {
        VaultCommand::Rotate { school, reseal } => {
            let v = vault(ctx)?;
            let (version, n) =
                ctx.with_store(async |s| haven_app::records::rotate(&s, &v, school, reseal).await)?;
            outln!("school {school}: evidence is sealed with key version {version} from now on");
            if reseal {
                outln!("sealed again under it: {n} file(s)");
            }
            outln!("back up the vault now: haven vault backup DIR");
        }
        VaultCommand::Backup { dir } => {
            let stamp = haven_runtime::clock::local()
                .strftime("%Y%m%d-%H%M%S")
                .to_string();
            let (out, n) = haven_app::records::backup(&ctx.data_dir.join("vault"), &dir, &stamp)?;
            outln!("copied {n} key file(s) to {}", out.display());
            outln!("keep this copy apart from database backups, locked away (see docs/VAULT.md)");
        }
        VaultCommand::Versions { school } => {
            let versions = vault(ctx)?.versions(school)?;
            if versions.is_empty() {
                outln!("school {school}: no keys yet (nothing has been sealed)");
            } else {
                let list: Vec<String> = versions.iter().map(u32::to_string).collect();
                outln!("school {school}: key versions {}", list.join(", "));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
