//! The measuring side of `cargo xtask bench publish` (run it through the xtask): starts Apache Kafka (a KRaft
//! JVM from `target/peers/kafka`) and the dev registry, then publishes the same `MessageReceived` event with
//! ursa's [`Publisher`] and with Python confluent-kafka + `AvroSerializer` (`bench/publish_peer.py`), each at
//! the same steady rates (acknowledgement latency from `send` to the broker's `acks=all` answer) and then as
//! fast as it goes. Prints one JSON object.
//!
//! `cargo run --release -p ursa-publish --example bench_publish -- [--rates 1000,10000] [--seconds 10]
//! [--max-events 200000] [--linger-ms 5] [--repetitions 3]`
//!
//! The steady runs alternate: ursa at the first rate, the peer at the first rate, ursa at the second, …, and the
//! whole round is repeated, so that load from elsewhere on the machine hits both alike.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use ursa_avro::AvroRecord;
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_publish::{Publisher, PublisherConfig, SchemaIdPolicy};
use ursa_registry::{Server, ServerConfig};
use ursa_testkit::{Kafka, create_topic};

struct Args {
    linger_ms: u64,
    repetitions: u32,
    rates: Vec<u64>,
    seconds: f64,
    max_events: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        linger_ms: 5,
        repetitions: 3,
        rates: vec![1_000, 10_000],
        seconds: 10.0,
        max_events: 200_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--rates" => {
                a.rates = value
                    .split(',')
                    .map(|r| r.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--seconds" => a.seconds = value.parse()?,
            "--linger-ms" => a.linger_ms = value.parse()?,
            "--repetitions" => a.repetitions = value.parse()?,
            "--max-events" => a.max_events = value.parse()?,
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(a)
}

fn percentile(sorted: &[Duration], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0)
}

/// The event as the JSON record fastavro takes (logical types as their underlying values; the peer converts).
fn as_record(e: &MessageReceived) -> Value {
    let m = &e.metadata;
    json!({
        "metadata": {
            "event_id": m.event_id.to_string(),
            "occurred_at": m.occurred_at.millis().unwrap_or(0),
            "correlation_id": null,
            "causation_id": null,
            "producer": m.producer,
            "schema_version": m.schema_version,
            "trace_parent": null,
        },
        "message_id": e.message_id.to_string(),
        "conversation_id": e.conversation_id.to_string(),
        "child": {
            "child_id": e.child.child_id.to_string(),
            "household_id": e.child.household_id.to_string(),
        },
        "device": {"device_id": e.device.device_id, "firmware_version": e.device.firmware_version},
        "sequence_number": e.sequence_number,
        "text": e.text,
        "modality": e.modality.as_str(),
        "detected_emotion": null,
        "audio_duration_ms": e.audio_duration_ms,
        "asr_confidence": e.asr_confidence,
        "captured_at": e.captured_at.micros().unwrap_or(0),
    })
}

/// Sends at `rate` events/s for `seconds`; the acknowledgement latency of each event.
async fn steady(
    publisher: &Publisher,
    event: &MessageReceived,
    rate: u64,
    seconds: f64,
) -> Result<(u64, f64, Vec<Duration>)> {
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(
        (rate as f64 * seconds) as usize,
    )));
    let mut waiting = tokio::task::JoinSet::new();
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        if elapsed >= seconds {
            break;
        }
        let due = (elapsed * rate as f64) as u64 + 1;
        while sent < due {
            let t0 = Instant::now();
            let delivery = publisher.send(event).await?;
            let latencies = Arc::clone(&latencies);
            waiting.spawn(async move {
                if delivery.await.is_ok() {
                    latencies.lock().unwrap().push(t0.elapsed());
                }
            });
            sent += 1;
        }
    }
    publisher.flush(Duration::from_secs(60)).await?;
    // Every acknowledgement has arrived once flush returns (as in the peer, whose flush serves the callbacks).
    let took = start.elapsed().as_secs_f64();
    while waiting.join_next().await.is_some() {}
    let mut l = std::mem::take(&mut *latencies.lock().unwrap());
    l.sort();
    Ok((sent, took, l))
}

/// The Python peer, on its own topic of the same broker: steady `rates` (may be empty), then `max_events`
/// (may be 0) as fast as it goes.
struct Peer {
    python: String,
    fixed: Vec<String>,
}

impl Peer {
    async fn run(
        &self,
        rates: &[u64],
        seconds: f64,
        max_events: u64,
        linger_ms: u64,
    ) -> Result<Value> {
        let rates: Vec<String> = rates.iter().map(u64::to_string).collect();
        let mut argv = self.fixed.clone();
        argv.extend([
            rates.join(","),
            seconds.to_string(),
            max_events.to_string(),
            linger_ms.to_string(),
        ]);
        let python = self.python.clone();
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(python)
                .args(argv)
                .stderr(std::process::Stdio::inherit())
                .output()
        })
        .await?
        .with_context(|| format!("running {} {}", self.python, self.fixed[0]))?;
        if !out.status.success() {
            bail!("{} failed ({})", self.fixed[0], out.status);
        }
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("parsing the output of {}", self.fixed[0]))
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let kafka = tokio::task::spawn_blocking(Kafka::start_apache).await??;
    let registry = Server::bind(ServerConfig::ephemeral()).await?.spawn();
    let rust_topic = "rust.message.received";
    let py_topic = "python.message.received";
    for t in [rust_topic, py_topic] {
        create_topic(&kafka, t, 3).await?;
    }
    let mut config = PublisherConfig::new(kafka.bootstrap(), registry.url(), "bench");
    config.topic_prefix = "rust.".into();
    config.schema_ids = SchemaIdPolicy::AutoRegister;
    config.dead_letter_topic = None;
    config.linger = Duration::from_millis(args.linger_ms);
    let publisher = Publisher::new(config)?;
    let event = ursa_publish::demo::message_received(
        ursa_publish::demo::uuid(),
        1,
        "Can you tell me the story about the bear who lost his honey pot again?",
    );
    let value_bytes = event.to_avro_datum()?.len() + 5;
    publisher.prepare::<MessageReceived>().await?;

    let dir = tempfile::tempdir()?;
    let schema = dir.path().join("schema.avsc");
    std::fs::write(&schema, MessageReceived::SCHEMA)?;
    let record = dir.path().join("record.json");
    std::fs::write(&record, as_record(&event).to_string())?;
    let peer = Peer {
        python: std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()),
        fixed: vec![
            concat!(env!("CARGO_MANIFEST_DIR"), "/bench/publish_peer.py").into(),
            kafka.bootstrap().into(),
            registry.url(),
            py_topic.into(),
            schema.display().to_string(),
            record.display().to_string(),
        ],
    };

    // Steady rates: ursa and the peer alternate (rate by rate, repetition by repetition), so that both see
    // the same machine, load included.
    let mut rust_steady: Vec<Vec<Value>> = vec![Vec::new(); args.rates.len()];
    let mut python_steady: Vec<Vec<Value>> = vec![Vec::new(); args.rates.len()];
    let mut python_versions = Value::Null;
    for _ in 0..args.repetitions {
        for (i, &rate) in args.rates.iter().enumerate() {
            steady(&publisher, &event, rate, 1.0).await?;
            let (sent, took, l) = steady(&publisher, &event, rate, args.seconds).await?;
            rust_steady[i].push(json!({
                "rate": rate,
                "sent": sent,
                "acked": l.len(),
                "events_per_s": l.len() as f64 / took,
                "p50_ms": percentile(&l, 50.0),
                "p99_ms": percentile(&l, 99.0),
                "p999_ms": percentile(&l, 99.9),
                "max_ms": l.last().map(|d| d.as_secs_f64() * 1000.0),
                "load": load(),
            }));
            let mut p = peer.run(&[rate], args.seconds, 0, args.linger_ms).await?;
            if let Some(mut run) = p["steady"].get(0).cloned() {
                run["load"] = load().into();
                python_steady[i].push(run);
            }
            python_versions = json!({"confluent_kafka": p["confluent_kafka"].take(), "librdkafka": p["librdkafka"].take()});
        }
    }

    // Throughput: as fast as each goes.
    let start = Instant::now();
    let mut deliveries = Vec::with_capacity(args.max_events as usize);
    for _ in 0..args.max_events {
        deliveries.push(publisher.send(&event).await?);
    }
    publisher.flush(Duration::from_secs(120)).await?;
    let took = start.elapsed().as_secs_f64();
    let mut failed = 0;
    for d in deliveries {
        if d.await.is_err() {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} deliveries failed in the throughput run");
    }
    publisher.shutdown(Duration::from_secs(30)).await?;
    let python_max = peer.run(&[], 0.0, args.max_events, args.linger_ms).await?;

    let result = json!({
        "event": "MessageReceived",
        "value_bytes": value_bytes,
        "seconds": args.seconds,
        "repetitions": args.repetitions,
        "linger_ms": args.linger_ms,
        "rust": {
            "steady": rust_steady,
            "max": {"events": args.max_events, "seconds": took, "events_per_s": args.max_events as f64 / took},
        },
        "python": {
            "confluent_kafka": python_versions["confluent_kafka"],
            "librdkafka": python_versions["librdkafka"],
            "steady": python_steady,
            "max": python_max["max"],
        },
        "librdkafka": rdkafka::util::get_rdkafka_version().1,
    });
    println!("{result}");
    registry.stop().await?;
    Ok(())
}

/// The 1-minute load average.
fn load() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
