//! `schema register` (being written).

use std::process::ExitCode;

use crate::ToolError;

/// Arguments of `schema register`.
#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// The registry URL.
    #[arg(long)]
    registry_url: String,
    /// Print the plan only.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run(args: &RegisterArgs) -> Result<ExitCode, ToolError> {
    Err(ToolError::Usage(format!(
        "registering at {} is not available yet (dry run: {})",
        args.registry_url, args.dry_run
    )))
}
