//! `haven people`: the school's people, from the MIS's CSV exports.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use haven_app::admin::{self, PasswordKind};
use haven_store::people::{ImportOptions, Kind};

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum PeopleCommand {
    /// Import a CSV export of one kind of person: pupils, staff or parents. People of that
    /// kind missing from the file become leavers (disabled, kept).
    Import {
        /// pupils, staff or parents.
        kind: String,
        /// The CSV file.
        file: PathBuf,
        /// Check the file and say what would change, changing nothing.
        #[arg(long)]
        dry_run: bool,
        /// Accept a file that makes more than a fifth of that kind of person leavers at once.
        #[arg(long)]
        allow_many_leavers: bool,
    },
    /// Set someone's password, read from standard input (one line). Their console sessions
    /// end and the proxy forgets the old one.
    Password {
        /// Their user name.
        username: String,
        /// Set their proxy password instead: what they give the proxy in place of their
        /// console password (the only one it takes from roles with a second factor).
        #[arg(long)]
        proxy: bool,
    },
    /// Find people by name, id or user name.
    Find {
        /// Part of a name, an id or a user name.
        text: String,
    },
}

pub fn run(ctx: &Context, cmd: PeopleCommand) -> Result<ExitCode> {
    match cmd {
        PeopleCommand::Import {
            kind,
            file,
            dry_run,
            allow_many_leavers,
        } => {
            let Some(kind) = Kind::parse(&kind) else {
                bail!("{kind:?} is not pupils, staff or parents");
            };
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let options = ImportOptions {
                dry_run,
                allow_many_leavers,
            };
            let report = ctx
                .with_store(async |s| Ok(admin::import_people(&s, kind, &bytes, options).await?))?;
            for e in &report.errors {
                eprintln!("{}:{}: {}", file.display(), e.line, e.message);
            }
            outln!(
                "{}{} added, {} updated, {} unchanged, {} leavers disabled, {} rows refused",
                if dry_run {
                    "dry run (nothing changed): "
                } else {
                    ""
                },
                report.added,
                report.updated,
                report.unchanged,
                report.left,
                report.errors.len()
            );
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        PeopleCommand::Password { username, proxy } => {
            let mut line = String::new();
            std::io::stdin()
                .take(1024)
                .read_to_string(&mut line)
                .context("reading the password from standard input")?;
            let password = line.lines().next().unwrap_or("").to_owned();
            let which = if proxy {
                PasswordKind::Proxy
            } else {
                PasswordKind::Console
            };
            ctx.with_store(async |s| {
                Ok(admin::set_password(&s, &username, &password, which).await?)
            })?;
            outln!(
                "{} set for {username}",
                if proxy { "proxy password" } else { "password" }
            );
            Ok(ExitCode::SUCCESS)
        }
        PeopleCommand::Find { text } => {
            let found = ctx.with_store(async |s| Ok(admin::find_people(&s, &text).await?))?;
            for p in found {
                outln!(
                    "{:<6} {:<7} {:<15} {:<28} {:<6} {:<6} {:<8} {}{}",
                    p.id,
                    p.kind,
                    p.mis_id,
                    format!("{} {}", p.first_name, p.last_name),
                    p.year_group.as_deref().unwrap_or("-"),
                    p.class.as_deref().unwrap_or("-"),
                    p.group,
                    p.username.as_deref().unwrap_or("-"),
                    if p.active { "" } else { " (left)" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
