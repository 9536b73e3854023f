//! Command-line interface of `ursa`.

mod topics;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ursa",
    version,
    about = "Event streaming on Kafka: schema governance, topics, connectors"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Schema governance: compatibility checks, lint, registration.
    #[command(subcommand)]
    Schema(ursa_schema_tools::cli::SchemaCommand),
    /// Topic management from the catalog.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
}

/// Parses arguments and runs the command; exit codes: 0 success, 1 findings or failed changes, 2 bad input.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Topics(cmd) => topics::run(cmd).await,
            Command::Schema(cmd) => {
                tokio::task::block_in_place(|| ursa_schema_tools::cli::run(&cmd))
            }
        }
    })
}
