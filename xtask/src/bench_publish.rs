//! `cargo xtask bench publish`: ursa's typed publisher against Python confluent-kafka + `AvroSerializer`, in the
//! same run, on Apache Kafka.
//!
//! The measuring is done by `runtime/publish/examples/bench_publish.rs` (release build): it starts Apache Kafka
//! (a KRaft JVM from `target/peers/kafka`, which `cargo xtask test` fetches) and the dev registry, and publishes
//! the same `MessageReceived` event (about 300 bytes framed) with:
//!
//! - ursa's `Publisher` (idempotent, `acks=all`, lz4, `linger.ms=5`, Avro key and value, headers);
//! - Python confluent-kafka's `Producer` with `AvroSerializer` for key and value, configured the same way
//!   (`runtime/publish/bench/publish_peer.py`);
//!
//! each at steady rates (default 1,000 and 10,000 events/s for 10 s, after a 1 s warm-up), measuring the
//! acknowledgement latency of every event from `send`/`produce` to the delivery report, the two publishers
//! alternating run by run and the round repeated 3 times (the table shows medians, and the p99 range); then
//! as fast as possible (200,000 events: events/s until the last acknowledgement). `URSA_BENCH_PUBLISH_RATES`,
//! `URSA_BENCH_PUBLISH_SECONDS`, `URSA_BENCH_PUBLISH_EVENTS`, `URSA_BENCH_PUBLISH_REPETITIONS` and
//! `URSA_BENCH_PUBLISH_LINGER_MS` (both sides) change these. Prints the tables.

use std::fmt::Write as _;
use std::process::{Command, ExitCode, Stdio};

use crate::bench_runtime::median;
use anyhow::{Context, Result, bail};
use serde_json::Value;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.2}"))
}

fn per_s(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |x| format!("{x:.0}"))
}

/// The values of `field` over `runs`, sorted.
fn values(runs: &[Value], field: &str) -> Vec<f64> {
    let mut v: Vec<f64> = runs.iter().filter_map(|r| r[field].as_f64()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// The tables, from the example's JSON: per rate and publisher, the median over the repetitions (p99 with its
/// range), and the largest max.
fn report(r: &Value) -> Result<String> {
    let mut out = String::new();
    let py = &r["python"];
    writeln!(
        out,
        "MessageReceived, {} bytes framed; linger.ms = {}; {} s per run, {} repetitions alternating ursa and Python; Apache Kafka 4.4.0 (1 KRaft node, same machine); librdkafka {} (ursa), confluent-kafka {} / librdkafka {} (Python)\n",
        r["value_bytes"],
        r["linger_ms"],
        r["seconds"],
        r["repetitions"],
        r["librdkafka"].as_str().unwrap_or("?"),
        py["confluent_kafka"].as_str().unwrap_or("?"),
        py["librdkafka"].as_str().unwrap_or("?"),
    )?;
    writeln!(
        out,
        "| publisher | target rate | acknowledged/s | p50 ms | p99 ms (range) | p99.9 ms | max ms | load avg |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let rust = r["rust"]["steady"].as_array().cloned().unwrap_or_default();
    let python = py["steady"].as_array().cloned().unwrap_or_default();
    for (i, ursa) in rust.iter().enumerate() {
        for (name, runs) in [
            ("ursa `Publisher`", Some(ursa)),
            ("Python confluent-kafka + AvroSerializer", python.get(i)),
        ] {
            let runs = runs.and_then(Value::as_array).cloned().unwrap_or_default();
            let Some(first) = runs.first() else { continue };
            let p99 = values(&runs, "p99_ms");
            let loads = values(&runs, "load");
            writeln!(
                out,
                "| {name} | {} | {} | {} | {} ({}–{}) | {} | {} | {}–{} |",
                first["rate"],
                per_s(median(values(&runs, "events_per_s"))),
                ms(median(values(&runs, "p50_ms"))),
                ms(median(p99.iter().copied())),
                ms(p99.first().copied()),
                ms(p99.last().copied()),
                ms(median(values(&runs, "p999_ms"))),
                ms(values(&runs, "max_ms").last().copied()),
                loads.first().map_or("-".into(), |l| format!("{l:.1}")),
                loads.last().map_or("-".into(), |l| format!("{l:.1}")),
            )?;
        }
    }
    writeln!(out, "\n| publisher | events | seconds | events/s |")?;
    writeln!(out, "|---|---:|---:|---:|")?;
    for (name, row) in [
        ("ursa `Publisher`", &r["rust"]["max"]),
        ("Python confluent-kafka + AvroSerializer", &py["max"]),
    ] {
        writeln!(
            out,
            "| {name} | {} | {} | {} |",
            row["events"],
            row["seconds"]
                .as_f64()
                .map_or_else(|| "-".into(), |s| format!("{s:.2}")),
            per_s(row["events_per_s"].as_f64()),
        )?;
    }
    Ok(out)
}

pub fn run() -> Result<ExitCode> {
    crate::test::ensure_python_packages()?;
    let root = crate::codegen::root();
    let rates = env_or("URSA_BENCH_PUBLISH_RATES", "1000,10000");
    let seconds = env_or("URSA_BENCH_PUBLISH_SECONDS", "10");
    let events = env_or("URSA_BENCH_PUBLISH_EVENTS", "200000");
    let linger = env_or("URSA_BENCH_PUBLISH_LINGER_MS", "5");
    let repetitions = env_or("URSA_BENCH_PUBLISH_REPETITIONS", "3");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(&cargo)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            "ursa-publish",
            "--example",
            "bench_publish",
            "--",
            "--rates",
            &rates,
            "--seconds",
            &seconds,
            "--max-events",
            &events,
            "--linger-ms",
            &linger,
            "--repetitions",
            &repetitions,
        ])
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {cargo} run --example bench_publish"))?;
    if !output.status.success() {
        bail!(
            "`cargo run --release -p ursa-publish --example bench_publish` failed ({})",
            output.status
        );
    }
    let result: Value = serde_json::from_slice(&output.stdout)
        .context("parsing the output of the bench_publish example")?;
    println!("\n{}", report(&result)?);
    Ok(ExitCode::SUCCESS)
}
