//! The in-flight byte bound covers what is really held: with a stalled sink and large records, the worker's
//! peak RSS grows by at most the bound plus librdkafka's prefetch queue (a quarter of the bound) plus a
//! constant — records are held once (shared bytes), their JSON form is counted, and retries copy nothing
//! (defect 11). Peak RSS is the kernel's high-water mark of this process (`VmHWM`), reset before the
//! connector starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord};
use support::*;
use ursa_testkit::unique_name;

const MIB: u64 = 1 << 20;

/// A line of `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peak_memory_stays_under_the_bound_with_a_stalled_sink_and_large_records() {
    const RECORD: usize = 512 * 1024;
    const RECORDS: usize = 200;
    const BOUND: u64 = 32 * MIB;
    let topic = topic("sem-memory", 1).await;
    {
        let producer: FutureProducer = kafka()
            .config()
            .set("linger.ms", "5")
            .set("compression.type", "none")
            .set("message.timeout.ms", "60000")
            .create()
            .unwrap();
        // Incompressible values (a cheap xorshift), so that no layer can make them smaller.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..RECORDS {
            let value: Vec<u8> = (0..RECORD)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            producer
                .send(
                    FutureRecord::<(), [u8]>::to(&topic)
                        .partition(0)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .unwrap_or_else(|(e, _)| {
                    panic!("producing the records: {e}\n{}", kafka().diagnose())
                });
        }
    }
    let recorder = Recorder::new();
    recorder.set_put_delay(Duration::from_secs(3600));
    let name = unique_name("sem-memory");
    let bound = BOUND.to_string();
    let config = sink_config(
        &name,
        &topic,
        &[
            ("value.converter", "bytes"),
            ("key.converter", "bytes"),
            ("consumer.max.in.flight.bytes", &bound),
            ("batch.max.records", "8"),
        ],
    );
    let telemetry = ursa::connect::telemetry::Telemetry::new();
    let mut plugins = ursa::connect::sinks::builtin();
    plugins.push(std::sync::Arc::new(TestPlugin(std::sync::Arc::clone(
        &recorder,
    ))));
    let parsed = ursa::connect::config::ConnectorConfig::parse(&config, &plugins).unwrap();
    let before = status("VmRSS:");
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS (VmHWM)");
    let handle = ursa::connect::connector::ConnectorHandle::spawn(
        parsed,
        std::sync::Arc::new(env(telemetry.clone())),
        ursa::connect::pipeline::Target::Running,
    );
    // Until fetching stops: the sink stalls, the bound is reached, nothing more is read for 3 s.
    let mut last = (0.0, Instant::now());
    let read = eventually(
        "fetching to stop at the bound",
        Duration::from_secs(90),
        || {
            let n = metric(&telemetry.render(), "ursa_records_read_total", &name).unwrap_or(0.0);
            if n != last.0 {
                last = (n, Instant::now());
                return None;
            }
            (n > 0.0 && last.1.elapsed() > Duration::from_secs(3)).then_some(n)
        },
    )
    .await;
    let peak = status("VmHWM:");
    handle.shutdown().await;
    let grew = peak.saturating_sub(before);
    eprintln!(
        "read {read} records of {} KiB before stopping; RSS {} MiB before, peak {} MiB (+{} MiB); bound {} MiB",
        RECORD / 1024,
        before / MIB,
        peak / MIB,
        grew / MIB,
        BOUND / MIB
    );
    assert!(
        (read as usize) < RECORDS,
        "everything was read: the bound did not hold"
    );
    let allowed = BOUND + BOUND / 4 + 40 * MIB;
    assert!(
        grew <= allowed,
        "peak RSS grew by {} MiB, more than the bound ({} MiB) + the prefetch queue + 40 MiB",
        grew / MIB,
        BOUND / MIB
    );
}
