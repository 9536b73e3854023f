//! The `schema` subcommands, shared by `cargo xtask schema` and `ursa schema`.

mod check;
mod compat;
mod lint;
mod register;
mod registry;
mod registry_check;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

pub use check::CheckArgs;
pub use compat::{CompatArgs, parse_level};
pub use lint::LintArgs;
pub use register::RegisterArgs;

/// Schema governance commands. Exit codes: 0 compatible / clean, 1 incompatible / findings, 2 bad input.
#[derive(clap::Subcommand, Debug)]
pub enum SchemaCommand {
    /// Check a new schema file against older files at a compatibility level.
    Compat(CompatArgs),
    /// Check every catalog subject against git history (`--against git:REF`) or a live registry.
    Check(CheckArgs),
    /// Lint the schema folder.
    Lint(LintArgs),
    /// Register the catalog's schemas (references first), set subject levels; `--dry-run` prints the plan.
    Register(RegisterArgs),
}

/// Registry connection options.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Basic auth user (`--registry-password` or URSA_REGISTRY_PASSWORD holds the password).
    #[arg(long, env = "URSA_REGISTRY_USER")]
    pub registry_user: Option<String>,
    /// Basic auth password.
    #[arg(long, env = "URSA_REGISTRY_PASSWORD", hide_env_values = true)]
    pub registry_password: Option<String>,
    /// Bearer token.
    #[arg(long, env = "URSA_REGISTRY_TOKEN", hide_env_values = true)]
    pub registry_token: Option<String>,
    /// A PEM CA certificate to trust for the registry's TLS.
    #[arg(long)]
    pub registry_ca: Option<PathBuf>,
    /// Timeout of each registry request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub registry_timeout: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

/// Runs a schema command and prints its result; errors are bad input (exit 2).
pub fn run(cmd: &SchemaCommand) -> ExitCode {
    let result = match cmd {
        SchemaCommand::Compat(a) => compat::run(a),
        SchemaCommand::Check(a) => check::run(a),
        SchemaCommand::Lint(a) => lint::run(a),
        SchemaCommand::Register(a) => register::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
