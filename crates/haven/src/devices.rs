//! `haven devices` and `haven networks`: who is asking, kept in the store (beside
//! `[[devices]]` and `[[networks]]` in `haven.toml`); read when `haven serve` starts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _, Result};
use clap::Subcommand;
use haven_app::admin;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Import devices from CSV: name, address, mac, owner (a user name), group (optional:
    /// the owner's group otherwise). Rows are added or updated by name.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// List the devices.
    List,
}

#[derive(Debug, Subcommand)]
pub enum NetworksCommand {
    /// Add a network, or change its site and group.
    Set {
        /// `10.20.0.0/16`, `2001:db8::/48` or one address.
        cidr: String,
        /// The group its devices browse as.
        #[arg(long)]
        group: String,
        /// The site (for a trust with several schools).
        #[arg(long, default_value = "")]
        site: String,
    },
    /// Remove a network.
    Remove {
        /// As it was added.
        cidr: String,
    },
    /// List the networks.
    List,
}

/// Refuses a group the policy in force does not have.
fn check_group(ctx: &Context, group: &str) -> Result<()> {
    let (policy, origin) = ctx.load_policy(None)?;
    if policy.group(group).is_none() {
        bail!("group {group:?} is not in the policy ({origin})");
    }
    Ok(())
}

pub fn devices(ctx: &Context, cmd: DevicesCommand) -> Result<ExitCode> {
    match cmd {
        DevicesCommand::Import { file } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let report = ctx.with_store(async |s| Ok(admin::import_devices(&s, &bytes).await?))?;
            for e in &report.errors {
                eprintln!("{}:{}: {}", file.display(), e.line, e.message);
            }
            outln!(
                "{} devices stored, {} rows refused (haven serve reads them when it starts)",
                report.stored,
                report.errors.len()
            );
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
        DevicesCommand::List => {
            for d in ctx.with_store(async |s| Ok(s.devices().await?))? {
                outln!(
                    "{:<28} {:<16} {:<18} {:<16} {}",
                    d.name,
                    d.address.as_deref().unwrap_or("-"),
                    d.mac.as_deref().unwrap_or("-"),
                    d.owner.as_deref().unwrap_or("-"),
                    d.group.as_deref().unwrap_or("(owner's)")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn networks(ctx: &Context, cmd: NetworksCommand) -> Result<ExitCode> {
    match cmd {
        NetworksCommand::Set { cidr, group, site } => {
            check_group(ctx, &group)?;
            ctx.with_store(async |s| Ok(admin::set_network(&s, &cidr, &site, &group).await?))?;
            outln!("{cidr} → {group} (haven serve reads networks when it starts)");
        }
        NetworksCommand::Remove { cidr } => {
            let removed = ctx.with_store(async |s| Ok(admin::remove_network(&s, &cidr).await?))?;
            if !removed {
                bail!("no network {cidr} in the store");
            }
            outln!("removed {cidr}");
        }
        NetworksCommand::List => {
            for n in ctx.with_store(async |s| Ok(s.networks().await?))? {
                outln!(
                    "{:<20} {:<10} {}",
                    n.cidr,
                    n.group,
                    n.site.as_deref().unwrap_or("")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
