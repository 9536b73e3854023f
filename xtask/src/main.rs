//! `cargo xtask`: the project's tasks — code generation, the full test run with its services, benchmarks.

mod bench;
mod bench_audit;
mod bench_governance;
mod bench_metrics;
mod bench_notify;
mod bench_runtime;
mod codegen;
mod node;
mod peers;
mod postgres;
mod prometheus;
mod test;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "ursa development tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate Rust from Avro schemas (default: the `ursa-events` crate and the test fixtures).
    Codegen(codegen::Args),
    /// Set up what the tests need (Python packages, …) and run every test, lint and freshness check.
    Test(test::Args),
    /// Schema governance (the same commands as `ursa schema`): compat, check, lint, register.
    #[command(subcommand)]
    Schema(ursa_schema_tools::cli::SchemaCommand),
    /// Run a benchmark suite side by side with its peers and print the ratios (`codegen`, …).
    Bench(bench::Args),
    /// The main job: regenerate the event types, then run the example that encodes and decodes an event.
    Demo,
}

/// The last 30 lines of a log a child process wrote, for an error message (work directories are removed when a
/// bench or a cluster ends, so the message carries the lines rather than the path).
pub(crate) fn log_tail(path: &std::path::Path) -> String {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Codegen(args) => codegen::run(&args),
        Command::Test(args) => test::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Schema(cmd) => Ok(ursa_schema_tools::cli::run(&cmd)),
        Command::Demo => codegen::run(&codegen::Args::default()).and_then(|code| {
            if code != std::process::ExitCode::SUCCESS {
                return Ok(code);
            }
            test::cargo(&[
                "run",
                "--quiet",
                "-p",
                "ursa-events",
                "--example",
                "roundtrip",
            ])?;
            Ok(std::process::ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
