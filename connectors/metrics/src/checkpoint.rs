//! Checkpoints of each partition's contributions with its next offset, in a compacted Kafka topic: written
//! and acknowledged (`acks=all`) before the runtime commits, read back when the partition is opened, so
//! counts continue from them after a restart or a move, and replayed records (before the checkpoint's
//! offset) are not counted twice.
//!
//! Fencing: a record's key is the connector, the partition and the generation of the assignment that wrote
//! it (`<connector>/<topic>/<partition>@<generation>`), and the newest generation's latest record wins, not
//! the latest record. A zombie (a worker that lost the partition but still flushes) writes under its older
//! generation, so it never replaces the new owner's checkpoint, whatever the order of the writes; this
//! needs no Kafka transactions (which not every broker offers). Generations are the assignments' wall-clock
//! times (see `ursa_connect::sink`), so this holds while the workers' clocks agree to within a session
//! timeout. An owner that opens a partition deletes the older generations' records it read (tombstones),
//! so a partition keeps about two keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::ser::{Serialize, SerializeMap, SerializeTuple, Serializer};
use serde_json::Value;
use ursa_connect::{SinkError, TopicPartition};

use crate::config::{MetricDef, MetricKind};
use crate::series::{
    Contribution, Hist, Key, MetricSeries, NO_EVENT, OVERFLOW_KEY, Restored, SeriesValue, Slot,
    Store,
};

/// Where checkpoints go.
#[derive(Debug, Clone)]
pub struct CheckpointConfig {
    /// The compacted topic.
    pub topic: String,
    /// Its brokers.
    pub bootstrap: String,
}

/// The checkpoint store of one connector.
pub struct Checkpoints {
    config: CheckpointConfig,
    connector: String,
    producer: FutureProducer,
}

impl std::fmt::Debug for Checkpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoints")
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

fn client(config: &CheckpointConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.bootstrap);
    c
}

fn kafka_err(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> SinkError + '_ {
    move |e| SinkError::retriable(format!("metrics checkpoint: {what}: {e}"))
}

/// The record key of a partition's checkpoint written under `generation`.
fn key(connector: &str, tp: &TopicPartition, generation: u64) -> String {
    format!("{}@{generation}", base_key(connector, tp))
}

/// The key without the generation.
fn base_key(connector: &str, tp: &TopicPartition) -> String {
    format!("{connector}/{}/{}", tp.topic, tp.partition)
}

/// A key's base and generation (keys of older versions, without one, are generation 0).
fn split_key(k: &str) -> (&str, u64) {
    match k.rsplit_once('@') {
        Some((base, g)) => match g.parse() {
            Ok(g) => (base, g),
            Err(_) => (k, 0),
        },
        None => (k, 0),
    }
}

/// What the topic holds for the partitions being opened.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Per partition, the newest generation's latest checkpoint.
    pub latest: HashMap<TopicPartition, Value>,
    /// Keys of older generations' checkpoints of those partitions (to delete).
    pub stale: Vec<String>,
}

/// A partition's contributions as JSON text, by metric name:
/// `{"v":1,"next":N,"metrics":{"<name>":[["<key>",<value>(,<event ms>)],…],…}}`, a histogram's value being
/// `{"c":[counts],"s":sum,"n":count}`. Written straight from the store, without a JSON tree: a partition of
/// 100k series would otherwise hold some 150 bytes per series in `Value`s while it is written. The series
/// hold the contributions, so this is one pass over every series of the store.
/// `None` if `tp` is not open in the store.
pub fn encode(
    store: &Store,
    tp: &TopicPartition,
    next: i64,
) -> Option<Result<String, serde_json::Error>> {
    let slot = store.part(tp)?.slot;
    Some(serde_json::to_string(&Encoded { store, slot, next }))
}

/// A partition's checkpoint, serialised as [`encode`] says.
struct Encoded<'a> {
    store: &'a Store,
    slot: Slot,
    next: i64,
}

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("v", &1)?;
        m.serialize_entry("next", &self.next)?;
        m.serialize_entry("metrics", &Metrics(self))?;
        m.end()
    }
}

/// The `metrics` object of a checkpoint.
struct Metrics<'a>(&'a Encoded<'a>);

impl Serialize for Metrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let metrics = &self.0.store.metrics;
        let mut m = s.serialize_map(Some(metrics.len()))?;
        for series in metrics {
            m.serialize_entry(&series.def.name, &Contributions(series, self.0.slot))?;
        }
        m.end()
    }
}

/// One metric's contributions from one partition: an array of `[key, value(, event)]`.
struct Contributions<'a>(&'a MetricSeries, Slot);

impl Serialize for Contributions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let slot = self.1;
        let named = self
            .0
            .series
            .iter()
            .map(|(k, series)| (&**k, series))
            .chain(self.0.overflow.iter().map(|o| (OVERFLOW_KEY, o)));
        s.collect_seq(named.filter_map(|(k, series)| {
            series
                .contribution(slot)
                .map(|(value, event)| Entry(k, value, event))
        }))
    }
}

/// One series' contribution.
struct Entry<'a>(&'a str, &'a SeriesValue, i64);

impl Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The newest event time, when kept (remote write with event time).
        let stamped = self.2 != NO_EVENT;
        let mut t = s.serialize_tuple(if stamped { 3 } else { 2 })?;
        t.serialize_element(self.0)?;
        match self.1 {
            SeriesValue::Scalar(v) => t.serialize_element(v)?,
            SeriesValue::Hist(h) => t.serialize_element(&HistJson(h))?,
        }
        if stamped {
            t.serialize_element(&self.2)?;
        }
        t.end()
    }
}

/// A histogram's state: `{"c":[counts],"s":sum,"n":count}`.
struct HistJson<'a>(&'a Hist);

impl Serialize for HistJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("c", &self.0.counts)?;
        m.serialize_entry("s", &self.0.sum)?;
        m.serialize_entry("n", &self.0.count)?;
        m.end()
    }
}

/// Contributions back from JSON; series of metrics no longer defined (or whose buckets changed) are
/// dropped.
pub fn decode(defs: &[Arc<MetricDef>], v: &Value) -> Option<Restored> {
    let next = v["next"].as_i64()?;
    let mut part = Restored {
        next: Some(next),
        metrics: vec![Vec::new(); defs.len()],
    };
    for (def, contrib) in defs.iter().zip(&mut part.metrics) {
        let Some(series) = v["metrics"][&def.name].as_array() else {
            continue;
        };
        contrib.reserve(series.len());
        for s in series {
            let Some(k) = s[0].as_str() else { continue };
            let value = match (&def.kind, &s[1]) {
                (MetricKind::Histogram { buckets }, h) => {
                    let counts: Vec<u64> = h["c"]
                        .as_array()
                        .map(|c| c.iter().filter_map(Value::as_u64).collect())
                        .unwrap_or_default();
                    if counts.len() != buckets.len() + 1 {
                        continue;
                    }
                    SeriesValue::Hist(Box::new(Hist {
                        counts: counts.into_boxed_slice(),
                        sum: h["s"].as_f64().unwrap_or(0.0),
                        count: h["n"].as_u64().unwrap_or(0),
                    }))
                }
                (_, n) => match n.as_f64() {
                    Some(n) => SeriesValue::Scalar(n),
                    None => continue,
                },
            };
            let event = s[2].as_i64().unwrap_or(NO_EVENT);
            contrib.push((Key::from(k), Contribution { value, event }));
        }
    }
    Some(part)
}

impl Checkpoints {
    /// A producer for `connector`'s checkpoints (no I/O yet).
    pub fn new(config: CheckpointConfig, connector: &str) -> Result<Checkpoints, SinkError> {
        let producer: FutureProducer = client(&config)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.max.bytes", "16777216")
            .set("compression.type", "lz4")
            .create()
            .map_err(|e| SinkError::permanent(format!("metrics checkpoint producer: {e}")))?;
        Ok(Checkpoints {
            config,
            connector: connector.to_owned(),
            producer,
        })
    }

    /// Creates the compacted topic if it is missing.
    pub async fn ensure_topic(&self) -> Result<(), SinkError> {
        let admin: AdminClient<DefaultClientContext> = client(&self.config)
            .create()
            .map_err(kafka_err("admin client"))?;
        let topic = NewTopic::new(&self.config.topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact")
            .set("max.message.bytes", "16777216");
        let results = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
            )
            .await
            .map_err(kafka_err("creating the topic"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((t, code)) => {
                    return Err(SinkError::retriable(format!(
                        "metrics checkpoint: creating {t}: {code}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The newest generation's latest checkpoint of each of `partitions`, and the older generations' keys
    /// (reads the topic to its end, off the async threads).
    pub async fn load(&self, partitions: &[TopicPartition]) -> Result<Loaded, SinkError> {
        let wanted: HashMap<String, TopicPartition> = partitions
            .iter()
            .map(|tp| (base_key(&self.connector, tp), tp.clone()))
            .collect();
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || read_all(&config, &wanted))
            .await
            .map_err(|e| SinkError::retriable(format!("metrics checkpoint: {e}")))?
    }

    /// Deletes checkpoints by key (tombstones), waiting for the broker's acknowledgements.
    pub async fn forget(&self, keys: &[String]) -> Result<(), SinkError> {
        for k in keys {
            self.producer
                .send(
                    FutureRecord::<str, [u8]>::to(&self.config.topic).key(k),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| {
                    SinkError::retriable(format!("metrics checkpoint: deleting {k}: {e}"))
                })?;
        }
        Ok(())
    }

    /// Writes one partition's checkpoint under the generation of its assignment and waits for the broker's
    /// acknowledgement.
    pub async fn save(
        &self,
        tp: &TopicPartition,
        generation: u64,
        payload: &str,
    ) -> Result<(), SinkError> {
        let k = key(&self.connector, tp, generation);
        self.producer
            .send(
                FutureRecord::to(&self.config.topic)
                    .key(&k)
                    .payload(payload),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| SinkError::retriable(format!("metrics checkpoint: writing: {e}")))?;
        Ok(())
    }
}

fn read_all(
    config: &CheckpointConfig,
    wanted: &HashMap<String, TopicPartition>,
) -> Result<Loaded, SinkError> {
    let consumer: BaseConsumer = client(config)
        .set("group.id", "ursa-metrics-checkpoint-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .map_err(kafka_err("consumer"))?;
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(&config.topic), timeout)
        .map_err(kafka_err("metadata"))?;
    let partitions: Vec<i32> = md
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    // Per partition, per generation: the key and the latest value.
    let mut found: HashMap<TopicPartition, std::collections::BTreeMap<u64, (String, Value)>> =
        HashMap::new();
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&config.topic, p, timeout)
            .map_err(kafka_err("watermarks"))?;
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(&config.topic, p, Offset::Beginning)
                .map_err(kafka_err("assign"))?;
        }
    }
    if ends.is_empty() {
        return Ok(Loaded::default());
    }
    consumer.assign(&tpl).map_err(kafka_err("assign"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(SinkError::retriable(
                "metrics checkpoint: reading the topic timed out",
            ));
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.map_err(kafka_err("reading"))?;
        if let Some(k) = m.key().and_then(|k| std::str::from_utf8(k).ok()) {
            let (base, generation) = split_key(k);
            if let Some(tp) = wanted.get(base) {
                let versions = found.entry(tp.clone()).or_default();
                match m
                    .payload()
                    .and_then(|p| serde_json::from_slice::<Value>(p).ok())
                {
                    Some(v) => {
                        versions.insert(generation, (k.to_owned(), v));
                    }
                    None => {
                        versions.remove(&generation);
                    }
                }
            }
        }
        if ends
            .get(&m.partition())
            .is_some_and(|end| m.offset() + 1 >= *end)
        {
            ends.remove(&m.partition());
        }
    }
    let mut loaded = Loaded::default();
    for (tp, mut versions) in found {
        if let Some((_, (_, newest))) = versions.pop_last() {
            loaded.latest.insert(tp, newest);
        }
        loaded.stale.extend(versions.into_values().map(|(k, _)| k));
    }
    Ok(loaded)
}
