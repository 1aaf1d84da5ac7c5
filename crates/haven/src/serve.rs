//! `haven serve`: Haven's main job (the DNS filter, the filtering proxy, the console,
//! monitoring and alerts), built and run by `haven-app`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use crate::Context;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Service configuration (default: <data-dir>/haven.toml, else the built-in one).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run the demo: the built-in configuration, and sample lists when none are imported.
    #[arg(long)]
    demo: bool,
}

pub fn run(ctx: &Context, args: &ServeArgs) -> Result<ExitCode> {
    haven_app::serve(
        ctx,
        &haven_app::ServeOptions {
            config: args.config.clone(),
            demo: args.demo,
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
