//! Crash resilience of `ursa run` on the real broker: a worker is `kill -9`ed while a producer keeps writing to a
//! 3-partition topic; a new worker with the same connector (same consumer group) resumes from the last committed
//! offsets. Nothing is lost, and the only records delivered twice are those after the last commit.
//!
//! A second test kills a worker right after a rebalance took partitions away from it: the offsets it commits
//! for revoked partitions must only cover records that are durably in its file, and the new owner starts
//! there (it never writes those partitions again). A third has a second worker
//! join under load and the first leave cleanly: the partitions move without loss.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash_kit;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crash_kit::{
    Protocol, assert_complete, assert_increasing, by_partition, committed, connector_toml,
    connector_toml_with, ends, read_lines, spawn_producer, start, worker_toml,
};
use ursa_testkit::{Kafka, create_topic, unique_name, wait_until};

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_stream_loses_nothing_and_duplicates_only_after_the_last_commit() {
    const TOTAL: usize = 3000;
    const PARTITIONS: i32 = 3;
    let kafka = Kafka::shared();
    let topic = unique_name("crash");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_toml(dir.path(), kafka);
    let name = unique_name("crash-file");
    let out1 = dir.path().join("out1.jsonl");
    let out2 = dir.path().join("out2.jsonl");
    let c1 = connector_toml(dir.path(), "c1.toml", &name, &topic, &out1, "300");
    let c2 = connector_toml(dir.path(), "c2.toml", &name, &topic, &out2, "300");

    let sent = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(kafka, &topic, TOTAL, 10, Arc::clone(&sent));
    let w1 = start(&worker, &c1);

    // Mid-stream: some records are durably in the file (the sink flushes before each commit), not all.
    let before = wait_until(
        "600 records in the first file",
        Duration::from_secs(60),
        || {
            let l = read_lines(&out1, true);
            (l.len() >= 600).then_some(l.len())
        },
    )
    .unwrap();
    w1.kill9().unwrap();
    let produced_at_kill = sent.load(Ordering::Relaxed);
    let lines1 = read_lines(&out1, true);
    assert!(
        lines1.len() < TOTAL,
        "the worker was killed after it had everything"
    );
    eprintln!(
        "killed with {before}+ lines in the file ({} after the kill), {produced_at_kill} of {TOTAL} produced",
        lines1.len()
    );

    // What the dead worker committed last; nobody else commits until the second worker runs.
    let last_commit = committed(kafka, &format!("connect-{name}"), &topic, PARTITIONS);
    let mut w2 = start(&worker, &c2);
    producer.join().unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    assert_eq!(ends.values().sum::<i64>(), TOTAL as i64);
    let lines2 = wait_until(
        "every record in one of the files",
        Duration::from_secs(90),
        || {
            let l2 = read_lines(&out2, false);
            let second = by_partition(&l2);
            // Every partition is written to its end by the second worker, but those the first one had
            // committed to the end before it died (on a loaded machine it may get that far).
            let done = ends.iter().filter(|(_, e)| **e > 0).all(|(p, e)| {
                last_commit.get(p).copied().unwrap_or(0) >= *e
                    || second.get(p).and_then(|o| o.last().copied()) == Some(e - 1)
            });
            done.then_some(l2)
        },
    )
    .unwrap();

    assert_increasing("first file", &lines1);
    assert_increasing("second file", &lines2);
    assert_complete(&[&lines1, &lines2], &ends, TOTAL);
    let first = by_partition(&lines1);
    let second = by_partition(&lines2);
    let mut duplicates = 0;
    for (&p, &end) in &ends {
        let committed = last_commit.get(&p).copied().unwrap_or(0);
        let f1 = first.get(&p).cloned().unwrap_or_default();
        let f2 = second.get(&p).cloned().unwrap_or_default();
        // Committed means durable: every record below the commit is in the first file.
        let below: Vec<i64> = f1.iter().copied().filter(|o| *o < committed).collect();
        assert_eq!(
            below,
            (0..committed).collect::<Vec<_>>(),
            "partition {p}: records below the commit {committed} missing from the first file"
        );
        // The second worker resumes exactly at the commit: nothing below it again, nothing skipped.
        assert_eq!(
            f2,
            (committed..end).collect::<Vec<_>>(),
            "partition {p}: the second worker did not resume at the commit {committed}"
        );
        // Hence duplicates are only records at or after the last commit.
        let s2: BTreeSet<i64> = f2.iter().copied().collect();
        for o in f1.iter().filter(|o| s2.contains(o)) {
            assert!(
                *o >= committed,
                "partition {p}: offset {o} duplicated below the commit"
            );
            duplicates += 1;
        }
    }
    eprintln!(
        "last commit {last_commit:?}, ends {ends:?}, {} + {} lines, {duplicates} duplicates",
        lines1.len(),
        lines2.len()
    );
    assert!(w2.terminate().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_right_after_a_rebalance_loses_nothing() {
    const TOTAL: usize = 600;
    const PARTITIONS: i32 = 3;
    let kafka = Kafka::shared();
    let topic = unique_name("revoke-crash");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_toml(dir.path(), kafka);
    let name = unique_name("revoke-crash-file");
    let group = format!("connect-{name}");
    let out_a = dir.path().join("a.jsonl");
    let out_b = dir.path().join("b.jsonl");
    // A commits (and flushes) only on its interval, which does not come during the test; B commits often.
    let ca = connector_toml(dir.path(), "a.toml", &name, &topic, &out_a, "600000");
    let cb = connector_toml(dir.path(), "b.toml", &name, &topic, &out_b, "300");
    spawn_producer(kafka, &topic, TOTAL, 100, Arc::new(AtomicUsize::new(0)))
        .join()
        .unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    assert_eq!(ends.values().sum::<i64>(), TOTAL as i64);

    let a = start(&worker, &ca);
    wait_until("A delivered every record", Duration::from_secs(60), || {
        (a.counter("ursa_records_delivered_total")? >= TOTAL as u64).then_some(())
    })
    .unwrap();
    assert!(committed(kafka, &group, &topic, PARTITIONS).is_empty());

    // B joins: the cooperative rebalance revokes some of A's partitions, and A commits them as it lets go.
    let mut b = start(&worker, &cb);
    let on_revoke = wait_until(
        "A's commit of its revoked partitions",
        Duration::from_secs(60),
        || {
            let c = committed(kafka, &group, &topic, PARTITIONS);
            (!c.is_empty()).then_some(c)
        },
    )
    .unwrap();
    // A crashes right after the rebalance.
    a.kill9().unwrap();
    eprintln!("A committed {on_revoke:?} on revocation; ends {ends:?}");

    // B takes every partition over (once A's session expires) and commits to the end.
    wait_until(
        "B committed every partition to the end",
        Duration::from_secs(90),
        || (committed(kafka, &group, &topic, PARTITIONS) == ends).then_some(()),
    )
    .unwrap();
    let lines_a = read_lines(&out_a, true);
    let lines_b = read_lines(&out_b, false);
    eprintln!(
        "A's file: {} lines, B's file: {} lines",
        lines_a.len(),
        lines_b.len()
    );
    assert_complete(&[&lines_a, &lines_b], &ends, TOTAL);
    // The first commit was A's, on revocation: it covers what A had delivered (everything, to the end), and B,
    // which got those partitions only after it, started there and wrote none of their records. Had A not
    // committed as it let go, B would have started them from the beginning, written them again, and only
    // then committed the same offsets.
    let in_b: BTreeSet<i32> = lines_b.iter().map(|l| l.partition).collect();
    for (p, o) in &on_revoke {
        assert_eq!(
            Some(o),
            ends.get(p),
            "partition {p}: A's revocation commit is not its end"
        );
        assert!(
            !in_b.contains(p),
            "partition {p}: B wrote records of a partition A had committed as it let go (so the first commit was B's)"
        );
    }
    assert!(b.terminate().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_worker_joins_then_the_first_leaves_cleanly_under_load() {
    join_then_leave(Kafka::shared(), Protocol::Classic).await;
}

/// The same with KIP-848's consumer group protocol, which only Apache Kafka 4 serves.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_worker_joins_then_the_first_leaves_with_the_kip_848_protocol() {
    join_then_leave(Kafka::apache(), Protocol::Consumer).await;
}

async fn join_then_leave(kafka: &Kafka, protocol: Protocol) {
    const TOTAL: usize = 6000;
    const PARTITIONS: i32 = 6;
    let topic = unique_name("rebalance");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_toml(dir.path(), kafka);
    let name = unique_name("rebalance-file");
    let out_a = dir.path().join("a.jsonl");
    let out_b = dir.path().join("b.jsonl");
    let ca = connector_toml_with(dir.path(), "a.toml", &name, &topic, &out_a, "300", protocol);
    let cb = connector_toml_with(dir.path(), "b.toml", &name, &topic, &out_b, "300", protocol);

    let sent = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(kafka, &topic, TOTAL, 5, Arc::clone(&sent));
    let mut a = start(&worker, &ca);
    wait_until("A wrote 500 records", Duration::from_secs(60), || {
        (read_lines(&out_a, false).len() >= 500).then_some(())
    })
    .unwrap();

    // B joins mid-stream and gets some of the partitions (cooperative-sticky, or the broker's incremental
    // assignment under KIP-848: A keeps the others).
    let mut b = start(&worker, &cb);
    let b_partitions = wait_until("B wrote records", Duration::from_secs(60), || {
        let p: BTreeSet<i32> = read_lines(&out_b, false)
            .iter()
            .map(|l| l.partition)
            .collect();
        (!p.is_empty()).then_some(p)
    })
    .unwrap();
    let a_partitions: BTreeSet<i32> = read_lines(&out_a, false)
        .iter()
        .map(|l| l.partition)
        .collect();
    let produced_at_join = sent.load(Ordering::Relaxed);

    // A leaves cleanly while records keep flowing: it drains, commits, exits 0, and B takes everything.
    assert!(a.terminate().unwrap());
    let produced_at_leave = sent.load(Ordering::Relaxed);
    assert!(
        produced_at_leave < TOTAL,
        "the producer was done before A left ({produced_at_leave} records)"
    );
    producer.join().unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    assert_eq!(ends.values().sum::<i64>(), TOTAL as i64);
    let group = format!("connect-{name}");
    wait_until(
        "B committed every partition to the end",
        Duration::from_secs(90),
        || (committed(kafka, &group, &topic, PARTITIONS) == ends).then_some(()),
    )
    .unwrap();
    // Committed means flushed: the files are complete now.
    let lines_a = read_lines(&out_a, false);
    let lines_b = read_lines(&out_b, false);
    assert_increasing("A's file", &lines_a);
    assert_increasing("B's file", &lines_b);
    assert_complete(&[&lines_a, &lines_b], &ends, TOTAL);

    let in_a: BTreeSet<i32> = lines_a.iter().map(|l| l.partition).collect();
    let in_b: BTreeSet<i32> = lines_b.iter().map(|l| l.partition).collect();
    assert_eq!(
        in_a.len(),
        PARTITIONS as usize,
        "A had every partition first"
    );
    assert_eq!(
        in_b.len(),
        PARTITIONS as usize,
        "B ends up with every partition"
    );
    assert!(
        b_partitions.len() < PARTITIONS as usize,
        "B got every partition while A was still running: {b_partitions:?}"
    );
    let duplicates = lines_a.len() + lines_b.len() - TOTAL;
    eprintln!(
        "{protocol:?} protocol: A: {} lines, B: {} lines ({duplicates} duplicates); at B's join ({produced_at_join} produced) A had {a_partitions:?}, B got {b_partitions:?}; A left at {produced_at_leave} produced",
        lines_a.len(),
        lines_b.len()
    );
    assert!(b.terminate().unwrap());
}
