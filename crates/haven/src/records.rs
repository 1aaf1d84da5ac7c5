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
    /// Print this school's transfer identity: the line a child's previous school needs to seal
    /// the child's file to this school, and its fingerprint to check by phone. The school's
    /// name is the policy's `school`.
    Identity,
    /// Seal a leaver's file to their new school (its identity line, from `haven records
    /// identity` there) and write it to OUT; records the transfer (the five-day clock's "sent").
    Transfer {
        /// The pupil (person id).
        #[arg(long)]
        person: i64,
        /// The new school's identity line, or a file holding it.
        #[arg(long)]
        to: String,
        /// The line's fingerprint, as the new school's DSL read it to you by phone (so you know
        /// the line is theirs; `haven records identity` prints it there).
        #[arg(long)]
        fingerprint: String,
        /// Where to write the sealed file (must not exist).
        #[arg(long)]
        out: std::path::PathBuf,
        /// The DSL sending it (person id), where the school has more than one.
        #[arg(long)]
        dsl: Option<i64>,
    },
    /// Import a child's file sealed to this school by their previous school, and write the
    /// signed receipt to send back.
    Import {
        /// The sealed file.
        file: std::path::PathBuf,
        /// The sending school's key line (or a file holding it), from their DSL: a file it did
        /// not sign is refused.
        #[arg(long)]
        from: String,
        /// The pupil it is for (person id); by default the one pupil with the file's name and date of birth.
        #[arg(long)]
        person: Option<i64>,
        /// File it under --person although their name or date of birth differ from the file's.
        #[arg(long)]
        despite_mismatch: bool,
        /// The DSL receiving it (person id), where the school has more than one.
        #[arg(long)]
        dsl: Option<i64>,
        /// Where to write the receipt.
        #[arg(long)]
        receipt: std::path::PathBuf,
    },
    /// Record the receipt the new school sent back (checked against its key): stops the
    /// transfer clock.
    Receipt {
        /// The receipt file.
        file: std::path::PathBuf,
    },
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

/// An identity line given on the command line, or the path of a file holding one.
/// (A file may be what `haven records identity` printed: the line is the one that starts with
/// the tag.)
fn line_or_file(text: &str) -> Result<String> {
    if text
        .trim_start()
        .starts_with(haven_vault::transfer::IDENTITY_TAG)
    {
        return Ok(text.to_owned());
    }
    let held = std::fs::read_to_string(text).map_err(|e| {
        anyhow::anyhow!("{text}: not a haven-school-key/1 line, and not a file holding one ({e})")
    })?;
    held.lines()
        .find(|l| {
            l.trim_start()
                .starts_with(haven_vault::transfer::IDENTITY_TAG)
        })
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("{text} holds no haven-school-key/1 line"))
}

/// The school's name, as its policy gives it (the name the other school sees).
fn school_name(ctx: &Context) -> Result<String> {
    Ok(ctx.load_policy(None)?.0.school)
}

const DEFAULT_SCHOOL: i64 = haven_store::records::DEFAULT_SCHOOL;

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
        RecordsCommand::Identity => {
            let id = vault(ctx)?.identity(DEFAULT_SCHOOL, &school_name(ctx)?)?;
            outln!("{}", id.to_line());
            outln!("fingerprint: {}", id.fingerprint());
            outln!(
                "give the line to the sending school's DSL; read the fingerprint to them by phone"
            );
        }
        RecordsCommand::Transfer {
            person,
            to,
            fingerprint,
            out,
            dsl,
        } => {
            let v = vault(ctx)?;
            let to = line_or_file(&to)?;
            let name = school_name(ctx)?;
            let (id, size) = ctx.with_store(async |s| {
                haven_app::records::send(
                    &s,
                    &v,
                    DEFAULT_SCHOOL,
                    &name,
                    person,
                    &to,
                    &fingerprint,
                    dsl,
                    &out,
                )
                .await
            })?;
            outln!(
                "sealed pupil {person}'s file ({size} bytes) to {}; transfer {id} recorded",
                out.display()
            );
            outln!("send it to the new school; the transfer clock stops when their receipt is recorded (haven records receipt FILE)");
        }
        RecordsCommand::Import {
            file,
            from,
            person,
            despite_mismatch,
            dsl,
            receipt,
        } => {
            let v = vault(ctx)?;
            let from = line_or_file(&from)?;
            let name = school_name(ctx)?;
            let got = ctx.with_store(async |s| {
                haven_app::records::receive(
                    &s,
                    &v,
                    DEFAULT_SCHOOL,
                    &name,
                    &file,
                    &from,
                    person,
                    despite_mismatch,
                    dsl,
                    &receipt,
                )
                .await
            })?;
            if got.again {
                outln!(
                    "this file was imported before: nothing was written; its receipt is in {}",
                    receipt.display()
                );
            } else {
                outln!(
                    "imported {} record(s) and {} attachment(s) from {} for pupil {}",
                    got.records,
                    got.evidence,
                    got.from_school,
                    got.person
                );
                outln!(
                    "send the receipt in {} back to {}",
                    receipt.display(),
                    got.from_school
                );
            }
        }
        RecordsCommand::Receipt { file } => {
            let v = vault(ctx)?;
            let (id, r) = ctx.with_store(async |s| {
                haven_app::records::receipt(&s, &v, DEFAULT_SCHOOL, &file).await
            })?;
            outln!(
                "transfer {id}: received by {} at {} on {} ({} records, {} attachments); the clock has stopped",
                r.received_by,
                r.school,
                r.received_at,
                r.records,
                r.evidence
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
