//! `schema check --against registry` (being written).

use std::process::ExitCode;

use crate::ToolError;
use crate::cli::CheckArgs;

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode, ToolError> {
    Err(ToolError::Usage(format!(
        "checking against {:?} is not available yet",
        args.registry_url()
    )))
}
