//! `ursa-outbox`: runs the outbox relay as a process (`relay`), and a demo writer that commits events into an
//! outbox inside its own transactions (`demo-writer`: the crash tests kill it, and it shows how a service writes
//! to the outbox).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_postgres::NoTls;
use ursa_avro::uuid::Uuid;
use ursa_publish::{Outbox, PublisherConfig, Relay, RelayConfig, SchemaIdPolicy};

#[derive(Parser)]
#[command(
    name = "ursa-outbox",
    about = "The transactional outbox: relay, and a demo writer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publishes committed outbox rows to Kafka in order and marks them sent, until SIGTERM or SIGINT.
    Relay(RelayArgs),
    /// Commits demo `MessageReceived` events (with a demo business row each) through the outbox, forever or
    /// `--count` times.
    DemoWriter(WriterArgs),
}

#[derive(clap::Args)]
struct RelayArgs {
    /// The database holding the outbox.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// `bootstrap.servers`.
    #[arg(long)]
    bootstrap_servers: String,
    /// The schema registry.
    #[arg(long)]
    registry_url: String,
    /// The outbox table.
    #[arg(long, default_value = "ursa_outbox")]
    table: String,
    /// The relay's name (`client.id`, and the `connector` of its dead-letter records).
    #[arg(long, default_value = "ursa-outbox-relay")]
    producer: String,
    /// Rows per batch.
    #[arg(long, default_value_t = 500)]
    batch_size: i64,
    /// How often an idle relay or a standby looks again (ms).
    #[arg(long, default_value_t = 1000)]
    poll_interval_ms: u64,
    /// Prepended to every topic.
    #[arg(long, default_value = "")]
    topic_prefix: String,
    /// Register writer schemas the registry does not have (development).
    #[arg(long)]
    auto_register: bool,
    /// Extra librdkafka properties, `key=value` (repeatable).
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    kafka: Vec<String>,
}

#[derive(clap::Args)]
struct WriterArgs {
    /// The database holding the outbox.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The outbox table (the demo rows go to `<table>_demo`).
    #[arg(long, default_value = "ursa_outbox")]
    table: String,
    /// Transactions to commit (default: until killed).
    #[arg(long)]
    count: Option<u64>,
    /// Distinct keys (conversations) the events are spread over.
    #[arg(long, default_value_t = 10)]
    keys: u32,
    /// Events per transaction, at most (each transaction takes 1 to this many).
    #[arg(long, default_value_t = 3)]
    events_per_transaction: u32,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Relay(args) => relay(args).await,
            Command::DemoWriter(args) => demo_writer(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn relay(args: RelayArgs) -> Result<(), BoxError> {
    let outbox = Outbox::new(args.producer.clone()).with_table(&args.table)?;
    let mut publisher =
        PublisherConfig::new(&args.bootstrap_servers, &args.registry_url, &args.producer);
    publisher.topic_prefix = args.topic_prefix.clone();
    if args.auto_register {
        publisher.schema_ids = SchemaIdPolicy::AutoRegister;
    }
    for kv in &args.kafka {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("-X {kv}: expected KEY=VALUE"))?;
        publisher
            .kafka
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let mut config = RelayConfig::new(&args.database_url);
    config.batch_size = args.batch_size;
    config.poll_interval = Duration::from_millis(args.poll_interval_ms);
    let relay = Relay::new(outbox, publisher, config)?;
    let stats = relay.run(shutdown_signal()).await?;
    tracing::info!(
        sent = stats.sent,
        failed = stats.failed,
        batches = stats.batches,
        "outbox relay stopped"
    );
    Ok(())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The demo conversation of key `i` (stable across runs, so sequence numbers continue).
fn conversation(i: u32) -> Uuid {
    Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | u128::from(i))
}

/// Every database call of the demo writer has this deadline.
const DEADLINE: Duration = Duration::from_secs(10);

/// Awaits `f` for at most [`DEADLINE`].
async fn deadline<T, E: Into<BoxError>>(
    what: &str,
    f: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, BoxError> {
    match tokio::time::timeout(DEADLINE, f).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(format!("{what}: no answer within {DEADLINE:?}").into()),
    }
}

async fn demo_writer(args: WriterArgs) -> Result<(), BoxError> {
    let outbox = Outbox::new("demo-writer")
        .with_table(&args.table)?
        .with_timeout(DEADLINE);
    let mut pg: tokio_postgres::Config = args.database_url.parse()?;
    pg.connect_timeout(DEADLINE);
    let (mut client, connection) = deadline("connecting", pg.connect(NoTls)).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "database connection");
        }
    });
    outbox.install(&client).await?;
    let demo = format!("{}_demo", args.table);
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {demo} (
            event_id text PRIMARY KEY,
            conversation text NOT NULL,
            seq integer NOT NULL,
            outbox_id bigint NOT NULL
        )"
    );
    deadline("creating the demo table", client.batch_execute(&ddl)).await?;
    let keys = args.keys.max(1);
    let mut next_seq = vec![0i32; keys as usize];
    let progress = format!("SELECT conversation, max(seq) FROM {demo} GROUP BY conversation");
    for row in deadline("reading progress", client.query(&progress, &[])).await? {
        let conv: String = row.try_get(0)?;
        let max: i32 = row.try_get(1)?;
        if let Some(i) = (0..keys).find(|i| conversation(*i).to_string() == conv) {
            next_seq[i as usize] = max + 1;
        }
    }
    let insert = format!(
        "INSERT INTO {demo} (event_id, conversation, seq, outbox_id) VALUES ($1, $2, $3, $4)"
    );
    let mut state = ursa_publish::demo::uuid().as_u128() as u64 | 1;
    let mut random = move || {
        // xorshift64: enough to vary keys and transaction sizes.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut committed = 0u64;
    while args.count.is_none_or(|n| committed < n) {
        let tx = deadline("beginning", client.transaction()).await?;
        let events = 1 + (random() % u64::from(args.events_per_transaction.max(1))) as u32;
        for _ in 0..events {
            let k = (random() % u64::from(keys)) as u32;
            let seq = next_seq[k as usize];
            let event = ursa_publish::demo::message_received(conversation(k), seq, "hello bear");
            // The outbox row and the service's own row, in one transaction.
            let id = outbox.write(&tx, &event).await?;
            let (event_id, conv) = (
                event.metadata.event_id.to_string(),
                conversation(k).to_string(),
            );
            deadline(
                "writing the demo row",
                tx.execute(&insert, &[&event_id, &conv, &seq, &id]),
            )
            .await?;
            next_seq[k as usize] += 1;
        }
        deadline("committing", tx.commit()).await?;
        committed += 1;
    }
    println!("committed {committed} transactions");
    Ok(())
}
