//! Checkpoints in a compacted Kafka topic against a zombie: a sink that lost its partition to a newer owner
//! (a later generation) but still flushes must not replace the newer owner's checkpoint. The next owner
//! restores the newest generation's counts and offset, whatever was written last.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use serde_json::json;
use ursa_connect::testing::json_record;
use ursa_connect::{Sink, SinkContext, SinkPlugin, SinkRecord, TopicPartition};
use ursa_connector_metrics::{MetricsPlugin, MetricsSink};
use ursa_testkit::{Kafka, unique_name};

const DEFS: &str = r#"
[[metric]]
name = "events"
help = "Events"
type = "counter"
"#;

fn sink(topic: &str) -> MetricsSink {
    let raw = [
        ("metrics.definitions", DEFS.to_owned()),
        ("metrics.listen", String::new()),
        ("metrics.checkpoint.topic", topic.to_owned()),
        (
            "metrics.checkpoint.bootstrap.servers",
            Kafka::shared().bootstrap().to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let parsed = ursa_connect::config::parse(&MetricsPlugin.keys(), &[], &raw).unwrap();
    MetricsSink::start(
        MetricsPlugin::config(&parsed).unwrap(),
        SinkContext::detached("fenced"),
    )
    .unwrap()
}

fn records(range: std::ops::Range<i64>) -> Vec<SinkRecord> {
    range
        .map(|o| json_record("events", 0, o, json!({"n": o})))
        .collect()
}

fn total(s: &MetricsSink) -> f64 {
    let text = s.render(false).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("events_total "))
        .map_or(0.0, |v| v.parse().unwrap())
}

/// Puts `range` and flushes it: the checkpoint is written.
async fn count(s: &MetricsSink, range: std::ops::Range<i64>) {
    let end = range.end;
    s.put(&records(range)).await.unwrap();
    let done = BTreeMap::from([(TopicPartition::new("events", 0), end)]);
    s.flush(&done).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_checkpoint_never_replaces_a_newer_owners() {
    let topic = unique_name("metrics-fencing");
    let tp = [TopicPartition::new("events", 0)];
    let a = sink(&topic);
    a.open(&tp, 100).await.unwrap();
    count(&a, 0..5).await;
    // B takes the partition over (a later assignment): it continues from A's checkpoint.
    let b = sink(&topic);
    b.open(&tp, 200).await.unwrap();
    assert_eq!(b.starting_offsets(&tp).await.unwrap().get(&tp[0]), Some(&5));
    assert_eq!(total(&b), 5.0);
    count(&b, 5..8).await;
    // A, a zombie that never saw the revocation, goes on and flushes after B: its checkpoint is later
    // in the topic, but of an older generation.
    count(&a, 5..10).await;
    // The next owner takes B's: 8 counted, resuming at 8.
    let c = sink(&topic);
    c.open(&tp, 300).await.unwrap();
    assert_eq!(
        c.starting_offsets(&tp).await.unwrap().get(&tp[0]),
        Some(&8),
        "resumes where the newest owner's checkpoint says"
    );
    assert_eq!(
        total(&c),
        8.0,
        "the newest owner's counts, not the zombie's"
    );
}
