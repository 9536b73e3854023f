//! `ursa registry serve`: the Confluent-compatible dev registry.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use ursa_registry::{Server, ServerConfig};

/// Registry commands.
#[derive(clap::Subcommand)]
pub enum RegistryCommand {
    /// Serve the dev registry until SIGINT/SIGTERM.
    Serve(ServeArgs),
}

/// Arguments of `registry serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Keep schemas in this file (an append-only log synced before each write is acknowledged).
    #[arg(long)]
    data: Option<PathBuf>,
}

pub async fn run(cmd: RegistryCommand) -> ExitCode {
    match cmd {
        RegistryCommand::Serve(args) => {
            let server = match Server::bind(ServerConfig {
                listen: args.listen,
                data: args.data,
            })
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            println!("dev schema registry listening on {}", server.url());
            match server.run(crate::cli::shutdown_signal()).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
