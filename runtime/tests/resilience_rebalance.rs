//! Rebalancing under load with `ursa run` on the real broker: worker A consumes a 6-partition topic while a
//! producer keeps writing; worker B with the same connector (same consumer group) joins mid-stream, then A is
//! stopped with SIGTERM (a clean leave) while records keep flowing. Every record is delivered at least once
//! across the two files, both workers processed partitions, and each file has every partition in offset order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use ursa_testkit::{Kafka, create_topic, unique_name, wait_until};

/// A running `ursa run`; killed (SIGKILL) when dropped.
struct Worker {
    child: Child,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Worker {
    fn start(worker_toml: &Path, connector_toml: &Path) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ursa"))
            .args([
                "run",
                worker_toml.to_str().unwrap(),
                connector_toml.to_str().unwrap(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.trim()
                .rsplit(' ')
                .next()
                .unwrap()
                .starts_with("http://"),
            "unexpected first line {line:?}"
        );
        Worker { child }
    }

    /// `kill -TERM`, then expects a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
    }
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

/// A file-sink connector config. A short session timeout lets the group notice a killed member quickly.
fn connector_toml(
    dir: &Path,
    file: &str,
    name: &str,
    topic: &str,
    out: &Path,
    flush: &str,
) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"json\"\n\"offset.flush.interval.ms\" = \"{flush}\"\n\"consumer.override.session.timeout.ms\" = \"6000\"\n\"consumer.override.heartbeat.interval.ms\" = \"500\"\n",
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
async fn a_second_worker_joins_then_the_first_leaves_cleanly_under_load() {
    const TOTAL: usize = 6000;
    const PARTITIONS: i32 = 6;
    let kafka = Kafka::shared();
    let topic = unique_name("rebalance");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let worker = worker_toml(dir.path(), kafka);
    let name = unique_name("rebalance-file");
    let out_a = dir.path().join("a.jsonl");
    let out_b = dir.path().join("b.jsonl");
    let ca = connector_toml(dir.path(), "a.toml", &name, &topic, &out_a, "300");
    let cb = connector_toml(dir.path(), "b.toml", &name, &topic, &out_b, "300");

    let sent = Arc::new(AtomicUsize::new(0));
    let producer = spawn_producer(kafka, &topic, TOTAL, 5, Arc::clone(&sent));
    let a = Worker::start(&worker, &ca);
    wait_until("A wrote 500 records", Duration::from_secs(60), || {
        (read_lines(&out_a, false).len() >= 500).then_some(())
    })
    .unwrap();

    // B joins mid-stream and gets some of the partitions (cooperative-sticky: A keeps the others).
    let b = Worker::start(&worker, &cb);
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
    a.terminate();
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
        "A: {} lines, B: {} lines ({duplicates} duplicates); at B's join ({produced_at_join} produced) A had {a_partitions:?}, B got {b_partitions:?}; A left at {produced_at_leave} produced",
        lines_a.len(),
        lines_b.len()
    );
    b.terminate();
}
