//! `haven audit`: check the audit log's chain, anchor it, read it (the reading recorded).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use haven_app::admin;
use haven_store::audit::AuditCheck;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check every entry's code: say whether the log is as written, or where it is not. With
    /// --anchor, also that the chain still holds an anchor taken earlier.
    Verify {
        /// An anchor printed by `haven audit anchor` (kept off this machine).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Print the newest entry's id and code, coded with the audit key, to keep somewhere else
    /// (a password manager, a printed page): `verify --anchor` later shows whether anything up
    /// to it was changed, even by someone holding the key.
    Anchor,
    /// The newest entries (the reading is itself recorded).
    Log {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Context, cmd: AuditCommand) -> Result<ExitCode> {
    match cmd {
        AuditCommand::Verify { anchor } => {
            let check =
                ctx.with_store(async |s| Ok(admin::verify_audit(&s, anchor.as_deref()).await?))?;
            match check {
                AuditCheck::Intact { entries } => {
                    outln!(
                        "audit log intact: {entries} entries, every code as written{}",
                        if anchor.is_some() {
                            "; the anchor is in the chain"
                        } else {
                            ""
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                AuditCheck::Broken { id, why } => {
                    outln!("audit log BROKEN at entry {id}: {why}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::Anchor => {
            let anchor = ctx.with_store(async |s| Ok(admin::audit_anchor(&s).await?))?;
            outln!("{anchor}");
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Log { limit, json } => {
            let entries = ctx.with_store(async |s| Ok(admin::read_audit_log(&s, limit).await?))?;
            for e in entries {
                if json {
                    outln!("{}", serde_json::to_string(&e)?);
                } else {
                    let at = crate::when(e.at_ms);
                    outln!(
                        "{:<6} {at} {} from {}: {} {} {}",
                        e.id,
                        e.actor,
                        e.address,
                        e.action,
                        e.subject,
                        e.detail
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
