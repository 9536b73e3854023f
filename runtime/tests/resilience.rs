//! Crash resilience of `ursa run` on the real broker: a worker is `kill -9`ed while a producer keeps writing to a
//! 3-partition topic; a new worker with the same connector (same consumer group) resumes from the last committed
//! offsets. Nothing is lost, and the only records delivered twice are those after the last commit.
//!
//! A second test kills a worker right after a rebalance took partitions away from it: the offsets it commits
//! for revoked partitions must only cover records that are durably in its file. A third has a second worker
//! join under load and the first leave cleanly: the partitions move without loss.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use ursa_testkit::{Kafka, WorkerProcess, create_topic, unique_name, wait_until};

/// Starts `ursa run WORKER CONNECTOR`.
fn start(worker_toml: &Path, connector_toml: &Path) -> WorkerProcess {
    WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[
            worker_toml.to_str().unwrap(),
            connector_toml.to_str().unwrap(),
        ],
    )
    .unwrap()
}

fn worker_toml(dir: &Path, kafka: &Kafka) -> PathBuf {
    let path = dir.join("worker.toml");
    std::fs::write(
        &path,
        format!(
            "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    path
}

/// The consumer group protocol of a connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// The classic protocol, with cooperative-sticky assignment.
    Classic,
    /// KIP-848's `group.protocol=consumer`: the broker assigns, and the session timeout is the group's.
    Consumer,
}

/// A file-sink connector config (classic protocol). A short session timeout lets the group notice a killed
/// member quickly.
fn connector_toml(
    dir: &Path,
    file: &str,
    name: &str,
    topic: &str,
    out: &Path,
    flush: &str,
) -> PathBuf {
    connector_toml_with(dir, file, name, topic, out, flush, Protocol::Classic)
}

fn connector_toml_with(
    dir: &Path,
    file: &str,
    name: &str,
    topic: &str,
    out: &Path,
    flush: &str,
    protocol: Protocol,
) -> PathBuf {
    let path = dir.join(file);
    let group = match protocol {
        Protocol::Classic => {
            "\"consumer.override.session.timeout.ms\" = \"6000\"\n\"consumer.override.heartbeat.interval.ms\" = \"500\"\n"
        }
        // The broker's group.consumer.session.timeout.ms applies (6 s on the test broker).
        Protocol::Consumer => "\"consumer.override.group.protocol\" = \"consumer\"\n",
    };
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"json\"\n\"offset.flush.interval.ms\" = \"{flush}\"\n{group}",
            out.display()
        ),
    )
    .unwrap();
    path
}

/// One line of a sink file: where the record came from and its `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Line {
    partition: i32,
    offset: i64,
    n: i64,
}

/// The complete lines of a sink file. A file whose writer was killed may end with a partial line (the
/// process died in the middle of a write); it is ignored when `killed`, an error otherwise.
fn read_lines(path: &Path, killed: bool) -> Vec<Line> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut complete = &bytes[..];
    if let Some(last) = bytes.iter().rposition(|b| *b == b'\n') {
        complete = &bytes[..=last];
    } else {
        complete = &complete[..0];
    }
    if !killed {
        assert_eq!(
            complete.len(),
            bytes.len(),
            "{} ends with a partial line",
            path.display()
        );
    }
    std::str::from_utf8(complete)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"));
            Line {
                partition: v["partition"].as_i64().unwrap() as i32,
                offset: v["offset"].as_i64().unwrap(),
                n: v["value"]["n"].as_i64().unwrap(),
            }
        })
        .collect()
}

fn by_partition(lines: &[Line]) -> BTreeMap<i32, Vec<i64>> {
    let mut m: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for l in lines {
        m.entry(l.partition).or_default().push(l.offset);
    }
    m
}

/// Offsets of each partition appear in strictly increasing order in one file (in order, never twice).
fn assert_increasing(what: &str, lines: &[Line]) {
    for (p, offsets) in by_partition(lines) {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{what}: partition {p} offsets not strictly increasing: {offsets:?}"
        );
    }
}

/// Produces `total` JSON records `{"n": i}` (key `k{i}`) at a steady pace from a thread; `sent` counts them.
fn spawn_producer(
    kafka: &Kafka,
    topic: &str,
    total: usize,
    per_tick: usize,
    sent: Arc<AtomicUsize>,
) -> JoinHandle<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .config()
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()
        .unwrap();
    let topic = topic.to_owned();
    std::thread::spawn(move || {
        for i in 0..total {
            let key = format!("k{i}");
            let value = format!("{{\"n\":{i}}}");
            let mut record = BaseRecord::to(&topic).key(&key).payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        assert_eq!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                            "{e}"
                        );
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            sent.fetch_add(1, Ordering::Relaxed);
            if (i + 1) % per_tick == 0 {
                // Pacing, not synchronisation: the stream keeps flowing while workers come and go.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    })
}

/// The end offset of every partition (every offset below it holds a record: no transactions here).
fn ends(kafka: &Kafka, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = kafka.config().create().unwrap();
    (0..partitions)
        .map(|p| {
            (
                p,
                c.fetch_watermarks(topic, p, Duration::from_secs(5))
                    .unwrap()
                    .1,
            )
        })
        .collect()
}

/// The group's committed offset of every partition (absent: nothing committed).
fn committed(kafka: &Kafka, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = kafka.config().set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    c.committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// Every (partition, offset) below the ends, and the `n` values 0..total, are in the union of the files.
fn assert_complete(files: &[&[Line]], ends: &BTreeMap<i32, i64>, total: usize) {
    let union: BTreeSet<(i32, i64)> = files
        .iter()
        .flat_map(|f| f.iter().map(|l| (l.partition, l.offset)))
        .collect();
    let mut missing = Vec::new();
    for (&p, &end) in ends {
        for o in 0..end {
            if !union.contains(&(p, o)) {
                missing.push((p, o));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} records lost (partition, offset), first ones: {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let ns: BTreeSet<i64> = files.iter().flat_map(|f| f.iter().map(|l| l.n)).collect();
    assert_eq!(ns.len(), total);
    assert_eq!(ns.last().copied(), Some(total as i64 - 1));
    // The same (partition, offset) always carries the same record.
    let mut at: BTreeMap<(i32, i64), i64> = BTreeMap::new();
    for l in files.iter().flat_map(|f| f.iter()) {
        let n = *at.entry((l.partition, l.offset)).or_insert(l.n);
        assert_eq!(n, l.n, "{l:?}");
    }
}

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
