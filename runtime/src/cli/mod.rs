//! Command-line interface of `ursa`.

mod audit;
mod command_config;
mod dlq;
mod registry;
mod run;
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
    /// The Confluent-compatible dev schema registry.
    #[command(subcommand)]
    Registry(registry::RegistryCommand),
    /// Run a worker with connectors (standalone: connector files on the command line).
    Run(run::RunArgs),
    /// Check a worker config and connector configs (and with --connect, reachability).
    Validate(run::ValidateArgs),
    /// Connector types and their config keys.
    #[command(subcommand)]
    Connectors(run::ConnectorsCommand),
    /// Dead letter queue tools.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// The compliance audit store: verify, forget and show a data subject, keys.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Parses arguments and runs the command; exit codes: 0 success, 1 findings or failed changes, 2 bad input.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Schema commands are synchronous (registry calls run on a runtime of their own).
    let command = match cli.command {
        Command::Schema(cmd) => return ursa_schema_tools::cli::run(&cmd),
        Command::Connectors(cmd) => return run::connectors(cmd),
        other => other,
    };
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
        match command {
            Command::Topics(cmd) => topics::run(cmd).await,
            Command::Registry(cmd) => registry::run(cmd).await,
            Command::Run(args) => run::run(args).await,
            Command::Validate(args) => run::validate(args).await,
            Command::Dlq(cmd) => dlq::run(cmd).await,
            Command::Audit(cmd) => audit::run(cmd).await,
            Command::Schema(_) | Command::Connectors(_) => ExitCode::from(2),
        }
    })
}
