//! `haven tokens`: API tokens listed, made and revoked from the command line (each recorded
//! in the audit log).

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::Subcommand;
use haven_app::admin;
use haven_store::tokens::TokenScope;

use crate::{when, Context};

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Every token: id, owner, what for, scope, when it ends, last used (never the token).
    List {
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Make a token for a member of staff (printed once). It can do no more than their roles
    /// allow, and no more than its scope.
    Create {
        /// Whose (a user name).
        #[arg(long)]
        user: String,
        /// What it is for.
        #[arg(long)]
        name: String,
        /// `ingest` (only sends text in), `read` (changes nothing) or `admin`.
        #[arg(long)]
        scope: String,
        /// Days until it ends (1 to 366).
        #[arg(long, default_value_t = 90)]
        days: i64,
    },
    /// Revoke a token by its id: refused at once.
    Revoke {
        /// Its id (from `haven tokens list`).
        id: i64,
    },
}

pub fn run(ctx: &Context, cmd: TokensCommand) -> Result<ExitCode> {
    match cmd {
        TokensCommand::List { json } => {
            let tokens = ctx.with_store(async |s| Ok(admin::api_tokens(&s).await?))?;
            for t in tokens {
                if json {
                    outln!("{}", serde_json::to_string(&t)?);
                } else {
                    outln!(
                        "{:<5} {:<16} {:<24} {:<7} ends {} last used {}",
                        t.id,
                        t.username,
                        t.name,
                        t.scope,
                        if t.revoked {
                            "(revoked)".to_owned()
                        } else {
                            t.expires_at.map_or_else(|| "never".to_owned(), when)
                        },
                        t.last_used.map_or_else(|| "never".to_owned(), when)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Create {
            user,
            name,
            scope,
            days,
        } => {
            let Some(scope) = TokenScope::parse(&scope) else {
                bail!("--scope {scope:?}: ingest, read or admin");
            };
            let token = ctx.with_store(async |s| {
                Ok(admin::create_api_token(&s, &user, &name, scope, days).await?)
            })?;
            outln!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke { id } => {
            let revoked = ctx.with_store(async |s| Ok(admin::revoke_api_token(&s, id).await?))?;
            if !revoked {
                bail!("no token {id} in force");
            }
            outln!("token {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}
