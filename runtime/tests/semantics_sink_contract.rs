//! The sink contract on the real broker, with connectors run directly (no worker around them):
//! - a flush that hangs neither stops delivery nor the drain: it is cut at `sink.flush.timeout`, nothing is
//!   committed for it, and a stop finishes within the drain deadline (defect 3);
//! - flushes that keep failing fail the connector with the sink's reason, instead of stopping commits
//!   silently (defect 4), and a permanent flush error fails it at once;
//! - a sink can ask for an early commit, and pause and resume its partitions, through its context, and its own
//!   metrics are served with the worker's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use support::*;
use ursa::connect::api::State;
use ursa::connect::connector::ConnectorHandle;
use ursa::connect::sink::{Request, SinkError, TopicPartition};
use ursa_testkit::unique_name;

async fn wait_failed(handle: &ConnectorHandle, what: &str) -> String {
    eventually(format!("the connector FAILED ({what})"), DEADLINE, || {
        let s = handle.status();
        (s.state == State::Failed).then(|| s.trace.unwrap_or_default())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hanging_flush_stops_neither_delivery_nor_the_drain() {
    let topic = topic("sem-hang", 1).await;
    let producer = Producer::new();
    producer
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    recorder.set_flush(FlushMode::Hang);
    let name = unique_name("sem-hang");
    let config = sink_config(
        &name,
        &topic,
        &[
            ("sink.flush.timeout", "300ms"),
            ("sink.flush.failures.max", "1000"),
        ],
    );
    let handle = spawn_connector(&recorder, &config);
    eventually("the first records", DEADLINE, || {
        recorder.all_delivered(&name, &[10]).then_some(())
    })
    .await;
    eventually("flushes attempted", DEADLINE, || {
        (recorder.flushes().len() >= 2).then_some(())
    })
    .await;
    // Records produced while flushes hang are still delivered.
    producer
        .send_many(&topic, 0, 10..20, |i| format!("v{i}"))
        .await;
    eventually("the records produced while flushes hang", DEADLINE, || {
        recorder.all_delivered(&name, &[20]).then_some(())
    })
    .await;
    assert_eq!(handle.status().state, State::Running);
    // The stop (drain deadline 2 s) flushes once more, which hangs too: it is cut, and the stop finishes.
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), handle.shutdown())
        .await
        .expect("the stop hung on the sink's flush");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        Committed::of_connector(&name, &topic, 1).get().await,
        vec![None],
        "committed although no flush answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flushes_that_keep_failing_fail_the_connector_loudly() {
    let topic = topic("sem-flush-fail", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..5, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    recorder.set_flush(FlushMode::Fail(SinkError::retriable("disk full")));
    let name = unique_name("sem-flush-fail");
    let config = sink_config(
        &name,
        &topic,
        &[
            ("sink.flush.failures.max", "3"),
            ("restart.auto.enable", "false"),
        ],
    );
    let handle = spawn_connector(&recorder, &config);
    let trace = wait_failed(&handle, "after 3 failed flushes").await;
    assert!(
        trace.contains("flush failed 3 times in a row") && trace.contains("disk full"),
        "{trace}"
    );
    assert_eq!(
        Committed::of_connector(&name, &topic, 1).get().await,
        vec![None]
    );
    handle.shutdown().await;

    // A permanent flush error fails the connector at once.
    let recorder = Recorder::new();
    recorder.set_flush(FlushMode::Fail(SinkError::permanent(
        "read-only file system",
    )));
    let name = unique_name("sem-flush-perm");
    let config = sink_config(&name, &topic, &[("restart.auto.enable", "false")]);
    let handle = spawn_connector(&recorder, &config);
    let trace = wait_failed(&handle, "on a permanent flush error").await;
    assert!(trace.contains("read-only file system"), "{trace}");
    // Failed at the first flush (the drain after it flushes once more, and nothing else does).
    assert!(recorder.flushes().len() <= 2, "{:?}", recorder.flushes());
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_asks_for_an_early_commit_and_pauses_and_resumes_its_partitions() {
    let topic = topic("sem-requests", 2).await;
    let producer = Producer::new();
    producer
        .send_many(&topic, 0, 0..5, |i| format!("a{i}"))
        .await;
    let recorder = Recorder::new();
    let name = unique_name("sem-requests");
    // No periodic commit during the test.
    let config = sink_config(&name, &topic, &[("offset.flush.interval.ms", "600000")]);
    let telemetry = ursa::connect::telemetry::Telemetry::new();
    let handle = spawn_connector_in(&recorder, &config, &telemetry);
    let committed = Committed::of_connector(&name, &topic, 2);
    eventually("the first records", DEADLINE, || {
        recorder.all_delivered(&name, &[5]).then_some(())
    })
    .await;
    assert_eq!(
        committed.get().await,
        vec![None, None],
        "no periodic commit"
    );
    // The sink asks for a commit in its next put.
    recorder.request_on_next_put(Request::Commit);
    producer.send(&topic, 0, None, Some(b"a5"), &[]).await;
    committed
        .wait_for("the commit the sink asked for", &[Some(6), None])
        .await;
    // The sink pauses partition 0: records written there wait, partition 1's flow.
    let p0 = TopicPartition::new(topic.as_str(), 0);
    recorder.request_on_next_put(Request::Pause(vec![p0.clone()]));
    producer.send(&topic, 1, None, Some(b"b0"), &[]).await;
    eventually("the pausing put", DEADLINE, || {
        recorder.all_delivered(&name, &[6, 1]).then_some(())
    })
    .await;
    // A record of partition 1 fetched after the request: by then the pause is in force.
    producer.send(&topic, 1, None, Some(b"b1"), &[]).await;
    eventually("a record after the pause", DEADLINE, || {
        recorder.all_delivered(&name, &[6, 2]).then_some(())
    })
    .await;
    producer
        .send_many(&topic, 0, 6..9, |i| format!("a{i}"))
        .await;
    producer.send(&topic, 1, None, Some(b"b2"), &[]).await;
    eventually("partition 1 still flowing", DEADLINE, || {
        recorder.all_delivered(&name, &[6, 3]).then_some(())
    })
    .await;
    assert!(
        !recorder
            .delivered(&name)
            .iter()
            .any(|d| d.partition == 0 && d.offset >= 6),
        "partition 0 delivered while paused"
    );
    // And resumes it.
    recorder.request_on_next_put(Request::Resume(vec![p0]));
    producer.send(&topic, 1, None, Some(b"b3"), &[]).await;
    eventually("partition 0 resumed", DEADLINE, || {
        recorder.all_delivered(&name, &[9, 4]).then_some(())
    })
    .await;
    // The sink's own metrics are served with the worker's.
    let puts = metric(&telemetry.render(), "ursa_plugin_test_puts_total", &name).unwrap_or(0.0);
    assert!(puts >= 3.0, "{}", telemetry.render());
    handle.shutdown().await;
}
