//! `ursa topics apply`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ursa_catalog::Catalog;

use crate::topics::{Action, Admin, plan};

/// Topic commands.
#[derive(clap::Subcommand)]
pub enum TopicsCommand {
    /// Create or update topics from the catalog (partitions, retention, cleanup policy, configs), showing the
    /// diff first. Never deletes a topic or removes partitions.
    Apply(ApplyArgs),
}

/// Arguments of `topics apply`.
#[derive(clap::Args)]
pub struct ApplyArgs {
    /// Kafka bootstrap servers, e.g. 127.0.0.1:9092.
    #[arg(long)]
    bootstrap_servers: String,
    /// The topic catalog.
    #[arg(long, default_value = "schemas/topics.toml")]
    catalog: PathBuf,
    /// Only print the plan.
    #[arg(long)]
    dry_run: bool,
    /// Extra Kafka client properties (a `key=value` file, as Kafka's tools take; e.g. SASL_SSL settings), whose
    /// values may be secret references (`${env:VAR}`, `${file:/path:key}`).
    #[arg(long)]
    command_config: Option<PathBuf>,
    /// Timeout of each admin request.
    #[arg(long, default_value = "30s", value_parser = humantime_duration)]
    timeout: Duration,
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration {s:?}: {e}"))
}

pub async fn run(cmd: TopicsCommand) -> ExitCode {
    match cmd {
        TopicsCommand::Apply(args) => apply(args).await,
    }
}

async fn apply(args: ApplyArgs) -> ExitCode {
    let catalog = match Catalog::load(&args.catalog) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let config = match super::command_config::client_config(
        &args.bootstrap_servers,
        args.command_config.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let admin = match Admin::with_config(config, args.timeout) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let names: Vec<String> = catalog.topics.iter().map(|t| t.name.clone()).collect();
    let existing = match admin.describe(&names).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!(
                "error: cannot read topics from {}: {e}",
                args.bootstrap_servers
            );
            return ExitCode::from(2);
        }
    };
    let actions = plan(&catalog, &existing);
    if actions.is_empty() {
        println!(
            "topics are up to date ({} in the catalog)",
            catalog.topics.len()
        );
        return ExitCode::SUCCESS;
    }
    println!(
        "plan ({} change(s)):",
        actions
            .iter()
            .filter(|a| !matches!(a, Action::Refuse { .. }))
            .count()
    );
    for a in &actions {
        println!("{a}");
    }
    if args.dry_run {
        println!("dry run: nothing applied");
        return ExitCode::SUCCESS;
    }
    let (mut applied, mut failed) = (0usize, Vec::new());
    for a in actions
        .iter()
        .filter(|a| !matches!(a, Action::Refuse { .. }))
    {
        match admin.apply(a).await {
            Ok(()) => applied += 1,
            Err(e) => failed.push(format!("{e}")),
        }
    }
    println!("applied {applied} change(s)");
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failed {
            eprintln!("error: not applied: {f}");
        }
        ExitCode::from(1)
    }
}
