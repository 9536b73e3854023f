//! A harness for connector authors: builds a sink from a plugin and a flat config, and drives it through
//! open → starting offsets → put → flush → close → stop as the runtime does, checking the contract on the
//! way (one outcome per record, one partition per `put`, only open partitions, flushed offsets never past
//! what was done). Records are built from JSON values, text or Confluent Avro bytes. Run tests under tokio's
//! paused clock (`#[tokio::test(start_paused = true)]`) and move time with [`advance`]; the sink's
//! [`SinkContext`] clock is the same one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::avro::AvroWriter;
use crate::config::{FieldErrors, Key, Kind, parse};
use crate::context::{Request, SinkContext, SinkMetrics};
use crate::outcome::{Outcome, SinkError};
use crate::record::{Format, Offsets, Payload, SinkRecord, TimestampType, TopicPartition};
use crate::sink::{Sink, SinkPlugin};

/// Why the harness could not build a sink, or a contract the sink broke.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The config did not parse or validate.
    #[error("invalid config: {0:?}")]
    Config(FieldErrors),
    /// The plugin refused to build.
    #[error("build failed: {0}")]
    Build(SinkError),
    /// The sink answered.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The sink broke the contract (or the test drove it wrong).
    #[error("contract: {0}")]
    Contract(String),
}

/// A sink under test.
pub struct Harness {
    sink: Arc<dyn Sink>,
    context: SinkContext,
    requests: mpsc::UnboundedReceiver<Request>,
    generation: u64,
    open: BTreeSet<TopicPartition>,
    done: Offsets,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("generation", &self.generation)
            .field("open", &self.open)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Harness {
    /// Parses `config` against the plugin's keys (plus `name`), runs its `validate`, and builds the sink for
    /// connector `name` (default `test`).
    pub fn build(
        plugin: &dyn SinkPlugin,
        config: &[(&str, &str)],
    ) -> Result<Harness, HarnessError> {
        let mut keys = plugin.keys();
        keys.push(Key::optional(
            "name",
            Kind::String,
            "test",
            "common",
            "The connector's name.",
        ));
        let raw: BTreeMap<String, String> = config
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let parsed = parse(&keys, &[], &raw).map_err(HarnessError::Config)?;
        let errors = plugin.validate(&parsed);
        if !errors.is_empty() {
            return Err(HarnessError::Config(errors));
        }
        let name = parsed.string("name").unwrap_or("test").to_owned();
        let (context, requests) = SinkContext::new(
            &name,
            format!("{name}-0"),
            SinkMetrics::new(&name, SinkMetrics::DEFAULT_CAP),
        );
        let sink = plugin
            .build(&parsed, context.clone())
            .map_err(HarnessError::Build)?;
        Ok(Harness {
            sink,
            context,
            requests,
            generation: 0,
            open: BTreeSet::new(),
            done: Offsets::new(),
        })
    }

    /// The sink.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.sink
    }

    /// The sink's context.
    pub fn context(&self) -> &SinkContext {
        &self.context
    }

    /// The generation of the last `open`.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Assigns partitions: `open` with a new generation, then `starting_offsets`, which it returns.
    pub async fn open(&mut self, partitions: &[(&str, i32)]) -> Result<Offsets, HarnessError> {
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect();
        self.generation += 1;
        self.sink.open(&tps, self.generation).await?;
        self.open.extend(tps.iter().cloned());
        let start = self.sink.starting_offsets(&tps).await?;
        if let Some(tp) = start.keys().find(|tp| !tps.contains(tp)) {
            return Err(HarnessError::Contract(format!(
                "starting offset for {tp}, which was not being opened"
            )));
        }
        Ok(start)
    }

    /// Calls `put` with records of one open partition, checks the outcomes, and tracks what is done.
    pub async fn put(&mut self, records: &[SinkRecord]) -> Result<Vec<Outcome>, HarnessError> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let tp = first.topic_partition();
        if records.iter().any(|r| r.topic_partition() != tp) {
            return Err(HarnessError::Contract(
                "a put gets records of one partition".into(),
            ));
        }
        if !self.open.contains(&tp) {
            return Err(HarnessError::Contract(format!("{tp} is not open")));
        }
        let outcomes = self.sink.put(records).await?;
        if outcomes.len() != records.len() {
            return Err(HarnessError::Contract(format!(
                "{} outcomes for {} records",
                outcomes.len(),
                records.len()
            )));
        }
        // Done: up to the first record that must be retried (permanent ones are dead-lettered or skipped).
        let mut next = None;
        for (r, o) in records.iter().zip(&outcomes) {
            if matches!(o, Outcome::Retriable { .. }) {
                break;
            }
            next = Some(r.offset + 1);
        }
        if let Some(n) = next {
            let e = self.done.entry(tp).or_insert(n);
            *e = (*e).max(n);
        }
        Ok(outcomes)
    }

    /// What the harness considers done per partition (what it passes to `flush`).
    pub fn done(&self) -> &Offsets {
        &self.done
    }

    /// Calls `flush` with what is done and checks that the answer is never past it.
    pub async fn flush(&mut self) -> Result<Offsets, HarnessError> {
        let durable = self.sink.flush(&self.done).await?;
        for (tp, o) in &durable {
            match self.done.get(tp) {
                Some(d) if o <= d => {}
                _ => {
                    return Err(HarnessError::Contract(format!(
                        "flush says {tp} is durable up to {o}, past what was done ({:?})",
                        self.done.get(tp)
                    )));
                }
            }
        }
        Ok(durable)
    }

    /// Revokes partitions: `close`.
    pub async fn close(&mut self, partitions: &[(&str, i32)]) -> Result<(), HarnessError> {
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|(t, p)| TopicPartition::new(*t, *p))
            .collect();
        self.sink.close(&tps).await?;
        for tp in &tps {
            self.open.remove(tp);
            self.done.remove(tp);
        }
        Ok(())
    }

    /// Closes every open partition, then stops the sink.
    pub async fn stop(mut self) -> Result<(), HarnessError> {
        let tps: Vec<TopicPartition> = std::mem::take(&mut self.open).into_iter().collect();
        if !tps.is_empty() {
            self.sink.close(&tps).await?;
        }
        self.sink.stop().await;
        Ok(())
    }

    /// The requests (pause, resume, commit) the sink made so far.
    pub fn requests(&mut self) -> Vec<Request> {
        let mut out = Vec::new();
        while let Ok(r) = self.requests.try_recv() {
            out.push(r);
        }
        out
    }
}

/// Moves tokio's paused clock (the sink's clock) forward.
pub async fn advance(by: Duration) {
    tokio::time::advance(by).await;
}

fn record(topic: &str, partition: i32, offset: i64, value: Payload) -> SinkRecord {
    let mut r = SinkRecord::new(topic, partition, offset);
    r.timestamp = Some(1_700_000_000_000 + offset);
    r.timestamp_type = TimestampType::CreateTime;
    r.value = value;
    r
}

/// A record whose value is this JSON (its bytes are the JSON text).
pub fn json_record(
    topic: &str,
    partition: i32,
    offset: i64,
    value: serde_json::Value,
) -> SinkRecord {
    record(topic, partition, offset, Payload::json_value(value))
}

/// A record whose value is UTF-8 text (the `string` converter).
pub fn text_record(topic: &str, partition: i32, offset: i64, text: &str) -> SinkRecord {
    record(
        topic,
        partition,
        offset,
        Payload::new(Bytes::copy_from_slice(text.as_bytes()), Format::String),
    )
}

/// A record whose value is Confluent Avro bytes (magic byte, schema id, datum) written with `writer`.
pub fn avro_record(
    topic: &str,
    partition: i32,
    offset: i64,
    writer: &Arc<AvroWriter>,
    framed: impl Into<Bytes>,
) -> SinkRecord {
    record(
        topic,
        partition,
        offset,
        Payload::new(framed.into(), Format::Avro(Arc::clone(writer))),
    )
}
