//! Crash recovery in seconds (issue 13), on the selected broker (`URSA_TEST_BACKEND`), with the runtime's
//! defaults for the group: a worker `kill -9`ed five times during a 200k-record stream and restarted at once
//! resumes within 2 s each time and loses nothing; a worker lost for good has its partitions taken over by the
//! survivor within the default bound (10 s); a graceful restart (SIGTERM, then start) moves no partition and
//! delivers nothing twice. Times are measured with `Instant` around what the test observes (sink file lines),
//! and printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod crash_kit;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crash_kit::{
    Line, assert_complete, committed, count_lines, default_connector_toml, ends, read_lines,
    spawn_producer, start, worker_toml_as,
};
use ursa_testkit::{Kafka, create_topic, unique_name, wait_until};

/// The longest a restarted worker may take to write its first record.
const RESUME_BOUND: Duration = Duration::from_secs(2);
/// The default bound for a lost worker's partitions to be taken over.
const TAKEOVER_BOUND: Duration = Duration::from_secs(10);

/// The partitions with a line at index `from` or later.
fn partitions_from(lines: &[Line], from: usize) -> BTreeSet<i32> {
    lines.iter().skip(from).map(|l| l.partition).collect()
}

/// The highest offset per partition.
fn last_offsets(lines: &[Line]) -> BTreeMap<i32, i64> {
    let mut m = BTreeMap::new();
    for l in lines {
        let e = m.entry(l.partition).or_insert(l.offset);
        *e = (*e).max(l.offset);
    }
    m
}

/// How many (partition, offset) appear more than once over all files.
fn duplicates(files: &[Vec<Line>]) -> usize {
    let total: usize = files.iter().map(Vec::len).sum();
    let distinct: BTreeSet<(i32, i64)> = files
        .iter()
        .flatten()
        .map(|l| (l.partition, l.offset))
        .collect();
    total - distinct.len()
}

/// Waits for the first line of `out` (a worker just started) and returns how long it took since `since`.
fn first_line_after(out: &Path, since: Instant, what: &str) -> Duration {
    wait_until(what, Duration::from_secs(90), || {
        (count_lines(out) > 0).then(Instant::now)
    })
    .unwrap()
    .duration_since(since)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_five_times_during_200k_records_resumes_within_2s_and_loses_nothing() {
    const TOTAL: usize = 200_000;
    const PARTITIONS: i32 = 3;
    const KILLS: usize = 5;
    let kafka = Kafka::shared();
    let topic = unique_name("crash-recovery");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_toml_as(dir.path(), kafka, "worker.toml", "crash-worker-1");
    let name = unique_name("crash-recovery-file");
    let group = format!("connect-{name}");

    let sent = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(kafka, &topic, TOTAL, 100, Arc::clone(&sent));
    let mut outs = Vec::new();
    let mut gaps = Vec::new();
    let mut last = None;
    for run in 0..=KILLS {
        let out = dir.path().join(format!("out{run}.jsonl"));
        let connector =
            default_connector_toml(dir.path(), &format!("c{run}.toml"), &name, &topic, &out, "");
        let started = Instant::now();
        let w = start(&worker, &connector);
        let gap = first_line_after(&out, started, &format!("run {run}'s first record"));
        eprintln!("run {run}: first new record {gap:?} after the (re)start");
        outs.push(out.clone());
        if run > 0 {
            gaps.push(gap);
            assert!(
                gap <= RESUME_BOUND,
                "restart {run}: the first new record came {gap:?} after the restart (bound {RESUME_BOUND:?})"
            );
        }
        if run == KILLS {
            last = Some(w);
            break;
        }
        // Let it work a little, then kill it mid-stream.
        wait_until(
            &format!("run {run} wrote 5000 records"),
            Duration::from_secs(60),
            || (count_lines(&out) >= 5000).then_some(()),
        )
        .unwrap();
        w.kill9().unwrap();
        let written: BTreeSet<(i32, i64)> = outs
            .iter()
            .flat_map(|o| read_lines(o, true))
            .map(|l| (l.partition, l.offset))
            .collect();
        assert!(
            written.len() < TOTAL,
            "kill {}: the stream was already fully written",
            run + 1
        );
        eprintln!(
            "kill {}: {} distinct records written, {} produced",
            run + 1,
            written.len(),
            sent.load(Ordering::Relaxed)
        );
    }
    let mut last = last.unwrap();
    producer.join().unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    assert_eq!(ends.values().sum::<i64>(), TOTAL as i64);
    wait_until(
        "the last worker committed every partition to the end",
        Duration::from_secs(120),
        || (committed(kafka, &group, &topic, PARTITIONS) == ends).then_some(()),
    )
    .unwrap();
    assert!(last.terminate().unwrap());
    let files: Vec<Vec<Line>> = outs.iter().map(|o| read_lines(o, true)).collect();
    let refs: Vec<&[Line]> = files.iter().map(Vec::as_slice).collect();
    assert_complete(&refs, &ends, TOTAL);
    let longest = gaps.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{KILLS} kills during {TOTAL} records: 0 lost, {} duplicates, longest restart-to-first-record {longest:?} (all: {gaps:?})",
        duplicates(&files)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_lost_for_good_has_its_partitions_taken_over_within_the_bound() {
    const TOTAL: usize = 60_000;
    const PARTITIONS: i32 = 3;
    let kafka = Kafka::shared();
    let topic = unique_name("lost-worker");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("lost-worker-file");
    let group = format!("connect-{name}");
    let wa = worker_toml_as(dir.path(), kafka, "a.toml", "lost-worker-a");
    let wb = worker_toml_as(dir.path(), kafka, "b.toml", "lost-worker-b");
    let out_a = dir.path().join("a.jsonl");
    let out_b = dir.path().join("b.jsonl");
    let ca = default_connector_toml(dir.path(), "ca.toml", &name, &topic, &out_a, "");
    let cb = default_connector_toml(dir.path(), "cb.toml", &name, &topic, &out_b, "");

    let producer = spawn_producer(kafka, &topic, TOTAL, 20, Arc::new(AtomicUsize::new(0)));
    let a = start(&wa, &ca);
    wait_until("A wrote records", Duration::from_secs(60), || {
        (count_lines(&out_a) >= 500).then_some(())
    })
    .unwrap();
    let mut b = start(&wb, &cb);
    wait_until("B wrote records", Duration::from_secs(60), || {
        (count_lines(&out_b) > 0).then_some(())
    })
    .unwrap();
    // The assignment settles: A keeps writing its partitions after B got its own.
    let a_mark = count_lines(&out_a);
    wait_until("A wrote 1000 more records", Duration::from_secs(60), || {
        (count_lines(&out_a) >= a_mark + 1000).then_some(())
    })
    .unwrap();
    a.kill9().unwrap();
    let killed = Instant::now();
    let lines_b = read_lines(&out_b, false);
    let lines_a = read_lines(&out_a, true);
    let b_before = last_offsets(&lines_b);
    let a_parts: BTreeSet<i32> = partitions_from(&lines_a, a_mark);
    let b_parts: BTreeSet<i32> = b_before.keys().copied().collect();
    assert!(!a_parts.is_empty(), "A owned nothing when it was killed");
    eprintln!("killed A owning {a_parts:?}; B owned {b_parts:?}");

    // B owns A's partitions once it writes a record of each it had not written before the kill.
    let takeover = wait_until(
        "B wrote records of every partition A owned",
        Duration::from_secs(90),
        || {
            let now = last_offsets(&read_lines(&out_b, false));
            a_parts
                .iter()
                .all(|p| now.get(p).copied() > b_before.get(p).copied())
                .then(Instant::now)
        },
    )
    .unwrap()
    .duration_since(killed);
    eprintln!(
        "the survivor owns every partition {takeover:?} after the kill (bound {TAKEOVER_BOUND:?})"
    );
    assert!(
        takeover <= TAKEOVER_BOUND,
        "the survivor took A's partitions over {takeover:?} after the kill (bound {TAKEOVER_BOUND:?})"
    );
    producer.join().unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    wait_until(
        "B committed every partition to the end",
        Duration::from_secs(120),
        || (committed(kafka, &group, &topic, PARTITIONS) == ends).then_some(()),
    )
    .unwrap();
    assert!(b.terminate().unwrap());
    let files = [read_lines(&out_a, true), read_lines(&out_b, false)];
    assert_complete(&[&files[0], &files[1]], &ends, TOTAL);
    eprintln!("0 lost, {} duplicates", duplicates(&files));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_restart_moves_no_partition_and_loses_nothing() {
    graceful_restart(Kafka::shared(), "").await;
}

/// The same with KIP-848's consumer group protocol (Apache Kafka 4): the restarted member leaves as a static
/// member (epoch -2), and the group keeps its assignment for the same instance id.
#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_restart_moves_no_partition_with_the_kip_848_protocol() {
    graceful_restart(
        Kafka::apache(),
        "\"consumer.override.group.protocol\" = \"consumer\"\n",
    )
    .await;
}

async fn graceful_restart(kafka: &Kafka, extra: &str) {
    const TOTAL: usize = 40_000;
    const PARTITIONS: i32 = 3;
    let topic = unique_name("graceful");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("graceful-file");
    let group = format!("connect-{name}");
    let wa = worker_toml_as(dir.path(), kafka, "a.toml", "graceful-a");
    let wb = worker_toml_as(dir.path(), kafka, "b.toml", "graceful-b");
    let out_a1 = dir.path().join("a1.jsonl");
    let out_a2 = dir.path().join("a2.jsonl");
    let out_b = dir.path().join("b.jsonl");
    let ca1 = default_connector_toml(dir.path(), "ca1.toml", &name, &topic, &out_a1, extra);
    let ca2 = default_connector_toml(dir.path(), "ca2.toml", &name, &topic, &out_a2, extra);
    let cb = default_connector_toml(dir.path(), "cb.toml", &name, &topic, &out_b, extra);

    let sent = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(kafka, &topic, TOTAL, 10, Arc::clone(&sent));
    let mut a = start(&wa, &ca1);
    wait_until("A wrote records", Duration::from_secs(60), || {
        (count_lines(&out_a1) >= 500).then_some(())
    })
    .unwrap();
    let mut b = start(&wb, &cb);
    wait_until("B wrote records", Duration::from_secs(60), || {
        (count_lines(&out_b) > 0).then_some(())
    })
    .unwrap();
    let a_mark = count_lines(&out_a1);
    let b_mark = count_lines(&out_b);
    wait_until(
        "both wrote 500 more records",
        Duration::from_secs(60),
        || {
            (count_lines(&out_a1) >= a_mark + 500 && count_lines(&out_b) >= b_mark + 500)
                .then_some(())
        },
    )
    .unwrap();
    let a_parts = partitions_from(&read_lines(&out_a1, false), a_mark);
    let b_parts = partitions_from(&read_lines(&out_b, false), b_mark);
    assert!(a_parts.is_disjoint(&b_parts), "{a_parts:?} {b_parts:?}");

    // Every assignment of a partition to B counts one resume: a rebalance that moved anything to B shows.
    let b_resumes = b.counter("ursa_partition_resumes_total").unwrap();
    // SIGTERM, then start again with the same worker id.
    assert!(a.terminate().unwrap());
    let b_at_stop = count_lines(&out_b);
    let restarted = Instant::now();
    let mut a2 = start(&wa, &ca2);
    let gap = first_line_after(&out_a2, restarted, "the restarted A's first record");
    assert!(
        sent.load(Ordering::Relaxed) < TOTAL,
        "the stream ended before the restart"
    );
    producer.join().unwrap();
    let b_resumes_after = b.counter("ursa_partition_resumes_total").unwrap();
    let a2_resumes = a2.counter("ursa_partition_resumes_total").unwrap();
    let ends = ends(kafka, &topic, PARTITIONS);
    wait_until(
        "every partition committed to the end",
        Duration::from_secs(120),
        || (committed(kafka, &group, &topic, PARTITIONS) == ends).then_some(()),
    )
    .unwrap();
    assert!(a2.terminate().unwrap());
    assert!(b.terminate().unwrap());
    let files = [
        read_lines(&out_a1, false),
        read_lines(&out_a2, false),
        read_lines(&out_b, false),
    ];
    let a2_parts = partitions_from(&files[1], 0);
    let b_after = partitions_from(&files[2], b_at_stop);
    eprintln!(
        "graceful restart: A owned {a_parts:?}, after its restart {a2_parts:?} (first record {gap:?} after the start, {a2_resumes} partitions opened); B owned {b_parts:?}, after A's stop {b_after:?}, partitions opened {b_resumes} before and {b_resumes_after} after; {} duplicates",
        duplicates(&files)
    );
    assert_eq!(
        b_resumes_after, b_resumes,
        "B was assigned partitions while A restarted (a rebalance)"
    );
    assert_eq!(
        a2_resumes as usize,
        a_parts.len(),
        "the restarted A opened other partitions than its own"
    );
    assert_complete(&[&files[0], &files[1], &files[2]], &ends, TOTAL);
    assert_eq!(
        a2_parts, a_parts,
        "the restarted A did not get its partitions back"
    );
    assert!(
        b_after.is_subset(&b_parts),
        "B wrote partitions it did not own while A restarted: {b_after:?} (it owned {b_parts:?})"
    );
    assert_eq!(
        duplicates(&files),
        0,
        "a graceful restart delivered records twice"
    );
}
