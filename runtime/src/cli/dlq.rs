//! `ursa dlq replay`.

use std::process::ExitCode;

use crate::connect::replay::{Bound, Selection, replay};

/// DLQ commands.
#[derive(clap::Subcommand)]
pub enum DlqCommand {
    /// Re-publish dead-lettered records to their original topic (or --target-topic), without the error headers.
    Replay(ReplayArgs),
}

/// Arguments of `dlq replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Kafka bootstrap servers.
    #[arg(long)]
    bootstrap_servers: String,
    /// Extra Kafka client properties (a `key=value` file, e.g. SASL_SSL settings); values may be secret references.
    #[arg(long)]
    command_config: Option<std::path::PathBuf>,
    /// The DLQ topic.
    #[arg(long)]
    dlq_topic: String,
    /// Only records dead-lettered by this connector.
    #[arg(long)]
    connector: Option<String>,
    /// From (inclusive): a DLQ offset, or an RFC 3339 failure time.
    #[arg(long, value_parser = parse_bound)]
    from: Option<Bound>,
    /// From this long ago (e.g. `2h`, `30m`): the same as `--from` with the failure time now minus this.
    #[arg(long, conflicts_with = "from", value_parser = parse_ago)]
    since: Option<std::time::Duration>,
    /// To (exclusive): a DLQ offset, or an RFC 3339 failure time.
    #[arg(long, value_parser = parse_bound)]
    to: Option<Bound>,
    /// HEADER=VALUE that must match, e.g. __connect.errors.stage=VALUE_CONVERTER (repeatable).
    #[arg(long = "filter", value_parser = parse_filter)]
    filters: Vec<(String, String)>,
    /// Publish here instead of each record's original topic.
    #[arg(long)]
    target_topic: Option<String>,
    /// Only count what would be replayed.
    #[arg(long)]
    dry_run: bool,
}

fn parse_bound(s: &str) -> Result<Bound, String> {
    if let Ok(o) = s.parse::<i64>() {
        return Ok(Bound::Offset(o));
    }
    humantime::parse_rfc3339_weak(s)
        .map(|t| {
            Bound::TimeMs(
                t.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64),
            )
        })
        .map_err(|e| format!("{s:?} is neither an offset nor an RFC 3339 time: {e}"))
}

fn parse_ago(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{s:?} is not a duration such as 2h or 30m: {e}"))
}

fn parse_filter(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("{s:?}: expected HEADER=VALUE"))
}

pub async fn run(cmd: DlqCommand) -> ExitCode {
    let DlqCommand::Replay(a) = cmd;
    let kafka = match super::command_config::client_config(
        &a.bootstrap_servers,
        a.command_config.as_deref(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let since = a.since.map(|ago| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Bound::TimeMs(now.saturating_sub(ago).as_millis() as i64)
    });
    let sel = Selection {
        connector: a.connector,
        from: a.from.or(since),
        to: a.to,
        filters: a.filters,
        target_topic: a.target_topic,
    };
    match replay(&kafka, &a.dlq_topic, &sel, a.dry_run).await {
        Ok(report) => {
            let total: usize = report.published.values().sum();
            let verb = if a.dry_run {
                "would replay"
            } else {
                "replayed"
            };
            println!("read {} DLQ record(s); {verb} {total}", report.read);
            for (topic, n) in &report.published {
                println!("  {n} -> {topic}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
