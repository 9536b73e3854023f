//! Rebalances on the real broker, with two workers of one connector in this process (one consumer group):
//! - busy rebalances: puts in flight on revoked partitions finish (within `sink.revoke.timeout`) instead of
//!   being cancelled, and everything the revoked partitions held is released from the in-flight bounds, so the
//!   connector keeps delivering after many rebalances (defect 2);
//! - a revocation commits exactly what the sink's flush said is durable — not nothing, not everything done —
//!   and the new owner starts there (defect 15's revocation test, which passed when nothing was committed),
//!   also on a single-threaded runtime (defect 13: nothing blocks an async thread).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::*;
use ursa_testkit::unique_name;

/// The newest sink build of `name` (the worker that created it last).
fn newest_build(recorder: &Recorder, name: &str) -> u64 {
    recorder
        .builds()
        .iter()
        .filter(|b| b.connector == name)
        .map(|b| b.generation)
        .max()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn busy_rebalances_let_puts_in_flight_finish_and_release_what_they_held() {
    const PARTITIONS: i32 = 4;
    let topic = topic("sem-rebalance", PARTITIONS).await;
    // Records keep coming while workers come and go.
    let flowing = Arc::new(AtomicBool::new(true));
    let feed = {
        let (topic, flowing) = (topic.clone(), Arc::clone(&flowing));
        tokio::spawn(async move {
            let producer = Producer::new();
            let mut next = 0;
            while flowing.load(Ordering::Acquire) {
                for p in 0..PARTITIONS {
                    producer
                        .send_many(&topic, p, next..next + 5, |i| format!("v{i}"))
                        .await;
                }
                next += 5;
                // Pacing, not synchronisation: the stream flows through every rebalance.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let recorder = Recorder::new();
    // Slow puts, small bounds: the bounds are reached and fetching pauses and resumes all the time, and every
    // revocation finds puts in flight and records queued.
    recorder.set_put_delay(Duration::from_millis(30));
    let name = unique_name("sem-rebalance");
    let config = sink_config(
        &name,
        &topic,
        &[
            ("batch.max.records", "10"),
            ("consumer.max.in.flight.records", "60"),
            ("sink.revoke.timeout", "10s"),
        ],
    );
    // Connectors run directly (two of the same name: one group), so that nothing but the pipeline is tested.
    let a = spawn_connector(&recorder, &config);
    eventually("A delivering", DEADLINE, || {
        (recorder.delivered(&name).len() >= 40).then_some(())
    })
    .await;
    for round in 0..3 {
        // B's sink is the next build of the connector; waiting for it (not reading the newest build at once,
        // which may still be A's or the previous B's) makes this round wait for B itself to deliver.
        let generation = newest_build(&recorder, &name) + 1;
        let b = spawn_connector(&recorder, &config);
        eventually(format!("round {round}: B's sink built"), DEADLINE, || {
            (newest_build(&recorder, &name) >= generation).then_some(())
        })
        .await;
        eventually(format!("round {round}: B delivering"), DEADLINE, || {
            recorder
                .delivered(&name)
                .iter()
                .any(|d| d.generation == generation)
                .then_some(())
        })
        .await;
        // B leaves: A gets its partitions back (another revocation on B's side, an assignment on A's).
        b.shutdown().await;
    }
    // A alone must still deliver everything and commit it: nothing it held before is still counted.
    flowing.store(false, Ordering::Release);
    feed.await.unwrap();
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        ends.push(end_offset(&topic, p).await);
    }
    let committed = Committed::of_connector(&name, &topic, PARTITIONS);
    committed
        .wait_for(
            "every partition committed to its end after the rebalances",
            &ends.iter().map(|e| Some(*e)).collect::<Vec<_>>(),
        )
        .await;
    assert!(recorder.all_delivered(&name, &ends));
    a.shutdown().await;
    let puts = recorder.puts();
    let cancelled: Vec<&PutSpan> = puts.iter().filter(|p| p.finished.is_none()).collect();
    assert!(
        cancelled.is_empty(),
        "{} of {} puts were cancelled instead of finishing: {:?}",
        cancelled.len(),
        puts.len(),
        &cancelled[..cancelled.len().min(5)]
    );
    // Every revocation closed its partitions in the sink, after their puts. Apache Kafka's cooperative
    // rebalances revoke in several steps; nisshi revokes the moved partitions in one (a broker difference).
    let least = if kafka().backend() == ursa_testkit::Backend::Nisshi {
        1
    } else {
        3
    };
    assert!(
        recorder.revoked().len() >= least,
        "{:?}",
        recorder.revoked()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revocation_commits_exactly_what_the_sink_flushed() {
    revocation_commit().await;
}

/// Defect 13: rebalance callbacks, their flush and synchronous commit, and closing the consumer run on the
/// consumer's own thread, never on an async thread — so they work on a single-threaded runtime too (where
/// the old callback, which blocked its async thread, skipped the flush and the commit).
#[tokio::test(flavor = "current_thread")]
async fn on_a_single_threaded_runtime_a_revocation_flushes_and_commits_too() {
    revocation_commit().await;
}

async fn revocation_commit() {
    let topic = topic("sem-revoke-commit", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    // Durable only below offset 7, though all 10 are delivered.
    recorder.set_flush(FlushMode::Below(7));
    let name = unique_name("sem-revoke-commit");
    // No periodic commit during the test: only the revocation commits.
    let config = sink_config(&name, &topic, &[("offset.flush.interval.ms", "600000")]);
    let a = spawn_connector(&recorder, &config);
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &[10]).then_some(())
    })
    .await;
    let committed = Committed::of_connector(&name, &topic, 1);
    assert_eq!(
        committed.get().await,
        vec![None],
        "no commit before the revocation"
    );
    // A restart revokes the partition (the pipeline drains, flushes, commits): the commit is what the flush
    // said.
    let flushes_before = recorder.flushes().len();
    a.restart();
    committed
        .wait_for("the revocation's commit", &[Some(7)])
        .await;
    assert!(
        recorder.flushes().len() > flushes_before,
        "committed without a flush"
    );
    // The next owner starts there: records 7..10 again, nothing below.
    eventually("the new sink", DEADLINE, || {
        (newest_build(&recorder, &name) == 2).then_some(())
    })
    .await;
    let second = eventually("the new sink redelivering 7..10", DEADLINE, || {
        let g = 2;
        let again: Vec<i64> = recorder
            .delivered(&name)
            .iter()
            .filter(|d| d.generation == g)
            .map(|d| d.offset)
            .collect();
        (again.len() >= 3).then_some(again)
    })
    .await;
    assert_eq!(second, vec![7, 8, 9]);
    a.shutdown().await;
}
