//! `haven audit`: check the audit log's hash chain; read it.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use haven_store::audit::AuditCheck;

use crate::Context;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute every entry's hash: say whether the log is as written, or where it is not.
    Verify,
    /// The newest entries.
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
        AuditCommand::Verify => match ctx.with_store(async |s| Ok(s.verify_audit().await?))? {
            AuditCheck::Intact { entries } => {
                outln!("audit log intact: {entries} entries, every hash as written");
                Ok(ExitCode::SUCCESS)
            }
            AuditCheck::Broken { id, why } => {
                outln!("audit log BROKEN at entry {id}: {why}");
                Ok(ExitCode::FAILURE)
            }
        },
        AuditCommand::Log { limit, json } => {
            let entries = ctx.with_store(async |s| Ok(s.audit_log(None, limit).await?))?;
            for e in entries {
                if json {
                    outln!("{}", serde_json::to_string(&e)?);
                } else {
                    let at = jiff::Timestamp::from_millisecond(e.at_ms)
                        .map_or_else(|_| e.at_ms.to_string(), |t| t.to_string());
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
