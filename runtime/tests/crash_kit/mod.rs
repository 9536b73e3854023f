//! Shared helpers of the crash tests (`resilience`, `crash_recovery`): `ursa run` workers as processes, worker
//! and file-sink connector configs, a paced producer of `{"n": i}` records, readers of the sink files, of the
//! topic's end offsets and of the group's committed offsets, and completeness checks.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use ursa_testkit::{Kafka, WorkerProcess};

/// Starts `ursa run WORKER CONNECTOR`.
pub fn start(worker_toml: &Path, connector_toml: &Path) -> WorkerProcess {
    WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[
            worker_toml.to_str().unwrap(),
            connector_toml.to_str().unwrap(),
        ],
    )
    .unwrap()
}

pub fn worker_toml(dir: &Path, kafka: &Kafka) -> PathBuf {
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
pub enum Protocol {
    /// The classic protocol, with cooperative-sticky assignment.
    Classic,
    /// KIP-848's `group.protocol=consumer`: the broker assigns, and the session timeout is the group's.
    Consumer,
}

/// A file-sink connector config (classic protocol). A short session timeout lets the group notice a killed
/// member quickly.
pub fn connector_toml(
    dir: &Path,
    file: &str,
    name: &str,
    topic: &str,
    out: &Path,
    flush: &str,
) -> PathBuf {
    connector_toml_with(dir, file, name, topic, out, flush, Protocol::Classic)
}

pub fn connector_toml_with(
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
pub struct Line {
    /// The record's partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its `n`.
    pub n: i64,
}

/// The complete lines of a sink file. A file whose writer was killed may end with a partial line (the
/// process died in the middle of a write); it is ignored when `killed`, an error otherwise.
pub fn read_lines(path: &Path, killed: bool) -> Vec<Line> {
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

pub fn by_partition(lines: &[Line]) -> BTreeMap<i32, Vec<i64>> {
    let mut m: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for l in lines {
        m.entry(l.partition).or_default().push(l.offset);
    }
    m
}

/// Offsets of each partition appear in strictly increasing order in one file (in order, never twice).
pub fn assert_increasing(what: &str, lines: &[Line]) {
    for (p, offsets) in by_partition(lines) {
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "{what}: partition {p} offsets not strictly increasing: {offsets:?}"
        );
    }
}

/// Produces `total` JSON records `{"n": i}` (key `k{i}`) at a steady pace from a thread; `sent` counts them.
pub fn spawn_producer(
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
pub fn ends(kafka: &Kafka, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
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
pub fn committed(kafka: &Kafka, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
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
pub fn assert_complete(files: &[&[Line]], ends: &BTreeMap<i32, i64>, total: usize) {
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

/// A worker config `file` with a stable `id` (what static group membership derives its instance ids from).
pub fn worker_toml_as(dir: &Path, kafka: &Kafka, file: &str, id: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "id = \"{id}\"\ndrain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    path
}

/// A file-sink connector config with the runtime's defaults for the group (session timeout, heartbeat,
/// commit interval), plus `extra` TOML lines.
pub fn default_connector_toml(
    dir: &Path,
    file: &str,
    name: &str,
    topic: &str,
    out: &Path,
    extra: &str,
) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"json\"\n{extra}",
            out.display()
        ),
    )
    .unwrap();
    path
}

/// How many complete lines a sink file holds (cheap: no parsing).
pub fn count_lines(path: &Path) -> usize {
    std::fs::read(path)
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0)
}
