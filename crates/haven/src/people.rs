//! `haven people`: the school's people, from the MIS's CSV exports.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use haven_store::audit::{AuditEntry, AuditKind, Subject};
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

/// Who is at the keyboard, for the audit log.
pub fn operator() -> String {
    // The process's user id, from the owner of /proc/self (not from the environment, which
    // whoever runs the command sets); its name from /etc/passwd. `SUDO_USER` is what sudo
    // says about who asked, recorded beside it as a claim.
    #[cfg(unix)]
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").ok().map(|m| m.uid())
    };
    #[cfg(not(unix))]
    let uid: Option<u32> = None;
    let sudo = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| format!(", sudo from {}", clean(&u)))
        .unwrap_or_default();
    match uid {
        Some(uid) => {
            let name = user_name(uid).unwrap_or_else(|| "?".to_owned());
            format!("cli:{name} (uid {uid}{sudo})")
        }
        None => {
            let user = std::env::var("USER").unwrap_or_default();
            format!("cli:{} (uid unknown{sudo})", clean(&user))
        }
    }
}

/// A user name as recorded: at most 32 printable characters.
fn clean(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// The name /etc/passwd gives `uid`.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id = f.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| clean(name))
    })
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
            let report = ctx.with_store(async |store| {
                let report = store.import_people(kind, &bytes, options).await?;
                if !dry_run {
                    store
                        .audit(
                            &AuditEntry::new(
                                &operator(),
                                "cli",
                                AuditKind::ImportPeople,
                                Subject::Roster(kind.id()),
                            )
                            .count("added", report.added as i64)
                            .count("updated", report.updated as i64)
                            .count("left", report.left as i64)
                            .count("refused", report.errors.len() as i64),
                        )
                        .await?;
                }
                Ok(report)
            })?;
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
            ctx.with_store(async |store| {
                if proxy {
                    store.set_proxy_password(&username, &password).await?;
                } else {
                    store.set_password(&username, &password).await?;
                }
                let subject = store
                    .identity(&username)
                    .await?
                    .map_or(Subject::Nothing, |who| Subject::Person(who.person_id));
                store
                    .audit(&AuditEntry::new(
                        &operator(),
                        "cli",
                        if proxy {
                            AuditKind::SetProxyPassword
                        } else {
                            AuditKind::SetPassword
                        },
                        subject,
                    ))
                    .await?;
                Ok(())
            })?;
            outln!(
                "{} set for {username}",
                if proxy { "proxy password" } else { "password" }
            );
            Ok(ExitCode::SUCCESS)
        }
        PeopleCommand::Find { text } => {
            let found = ctx.with_store(async |store| {
                let found = store.find_people(&text, 50).await?;
                store
                    .audit(
                        &AuditEntry::new(
                            &operator(),
                            "cli",
                            AuditKind::SearchPeople,
                            Subject::Nothing,
                        )
                        .count("found", found.len() as i64)
                        .word("via", "cli"),
                    )
                    .await?;
                Ok(found)
            })?;
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
