//! The audit sink on the connector SDK: `open` claims the partitions for their generation and creates their
//! tables, `starting_offsets` reads the offsets table, every `put` is one fenced transaction ([`crate::writer`]),
//! `flush` reports what is durable (advisory: Kafka's committed offsets are not what restarts read) and makes the
//! checkpoints of partitions gone idle, `close` checkpoints what is left.
//!
//! A record the sink cannot store (its value does not decode, PII without a data subject) is answered
//! `Permanent` and the records after it in the same call `Retriable`: nothing past it commits, so with
//! `errors.tolerance=none` it is not skipped, and otherwise the runtime dead-letters it and the gap it leaves is
//! recorded with the reason when the next record is written.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::OnceCell;
use tokio::time::Instant;
use ursa_connect::{
    BoxFuture, Conversion, Offsets, Outcome, Sink, SinkContext, SinkError, SinkRecord,
    TopicPartition,
};

use crate::config::AuditConfig;
use crate::error::AuditError;
use crate::keys::KeyStore;
use crate::pool::{Conn, Pool};
use crate::publish::Publisher;
use crate::row::{PrepareError, Prepared, Preparer};
use crate::tables::{Tables, install};
use crate::writer::{self, Context, Partition, Policy, StoredCheckpoint, WriteError};

#[derive(Debug)]
struct PartState {
    generation: i64,
    /// The stored next offset, as of this sink's last look (never ahead of the database).
    committed: Option<i64>,
    /// The last record this sink rejected, and why (the reason of the gap it leaves).
    rejected: Option<(i64, String)>,
    /// Batches committed since the last checkpoint this sink saw.
    dirty: bool,
    last_checkpoint: Instant,
}

struct Metrics {
    rows: Counter,
    batches: Counter,
    checkpoints: Counter,
    fenced: Counter,
    rejected: Counter,
}

struct Inner {
    connector: String,
    schema: String,
    pool: Pool,
    tables: Tables,
    keys: Option<KeyStore>,
    preparer: Preparer,
    policy: Policy,
    interval: Duration,
    publisher: Option<Publisher>,
    installed: OnceCell<()>,
    partitions: Mutex<HashMap<TopicPartition, PartState>>,
    stored_schemas: Mutex<HashSet<u32>>,
    unpublished: Mutex<Vec<StoredCheckpoint>>,
    metrics: Metrics,
    context: SinkContext,
}

/// The `audit-postgres` sink.
pub struct AuditSink {
    inner: Arc<Inner>,
}

impl AuditSink {
    /// The sink for a checked configuration (no I/O: connections are opened on first use).
    pub fn new(config: AuditConfig, context: SinkContext) -> AuditSink {
        let connector = context.connector().to_owned();
        let m = context.metrics();
        let metrics = Metrics {
            rows: m.counter("audit_rows", "Rows written to the audit store"),
            batches: m.counter("audit_batches", "Batches committed to the audit store"),
            checkpoints: m.counter("audit_checkpoints", "Signed checkpoints made"),
            fenced: m.counter(
                "audit_fenced",
                "Batches refused because a newer generation owns the partition",
            ),
            rejected: m.counter(
                "audit_rejected",
                "Records the audit store could not store (dead-lettered)",
            ),
        };
        let sealing = config.master_key.is_some();
        AuditSink {
            inner: Arc::new(Inner {
                tables: Tables::new(&config.schema, &config.table_format, &connector),
                keys: config.master_key.map(|m| KeyStore::new(m, &config.schema)),
                preparer: Preparer::new(&config.subject_fields, config.subject_from_key, sealing),
                policy: Policy {
                    signer: Some(Arc::new(config.signer)),
                    origin: config.origin,
                    every_batches: config.checkpoint_batches,
                    every_ms: i64::try_from(config.checkpoint_interval.as_millis())
                        .unwrap_or(i64::MAX),
                },
                interval: config.checkpoint_interval,
                publisher: config.checkpoint_file.as_deref().map(Publisher::new),
                pool: Pool::new(config.database, config.pool_size),
                schema: config.schema,
                connector,
                installed: OnceCell::new(),
                partitions: Mutex::new(HashMap::new()),
                stored_schemas: Mutex::new(HashSet::new()),
                unpublished: Mutex::new(Vec::new()),
                metrics,
                context,
            }),
        }
    }
}

fn sink_error(e: AuditError) -> SinkError {
    e.into()
}

impl Inner {
    async fn conn(&self) -> Result<Conn<'_>, SinkError> {
        let conn = self.pool.get().await.map_err(|e| sink_error(e.into()))?;
        self.installed
            .get_or_try_init(|| async { install(conn.client(), &self.schema).await.map(|_| ()) })
            .await
            .map_err(sink_error)?;
        Ok(conn)
    }

    fn state<R>(&self, tp: &TopicPartition, f: impl FnOnce(&mut PartState) -> R) -> Option<R> {
        self.partitions.lock().ok()?.get_mut(tp).map(f)
    }

    async fn publish(&self, mut new: Vec<StoredCheckpoint>) {
        let Some(p) = &self.publisher else {
            return;
        };
        let mut all = self
            .unpublished
            .lock()
            .map(|mut u| std::mem::take(&mut *u))
            .unwrap_or_default();
        all.append(&mut new);
        if all.is_empty() {
            return;
        }
        if let Err(e) = p.publish(all.clone()).await {
            tracing::warn!(connector = %self.connector, file = %p.path().display(), error = %e, "checkpoints not published yet");
            if let Ok(mut u) = self.unpublished.lock() {
                all.append(&mut u);
                *u = all;
            }
        }
    }

    async fn open(&self, partitions: &[TopicPartition], generation: u64) -> Result<(), SinkError> {
        let generation = i64::try_from(generation).map_err(|_| {
            SinkError::permanent(format!("generation {generation} is out of range"))
        })?;
        let conn = self.conn().await?;
        let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        for (topic, parts) in &by_topic {
            self.tables
                .ensure(conn.client(), topic)
                .await
                .map_err(sink_error)?;
            for &partition in parts {
                let p = Partition {
                    connector: &self.connector,
                    topic,
                    partition,
                    generation,
                };
                if let Err(e) = writer::claim(conn.client(), &self.schema, &p).await {
                    if matches!(e, AuditError::Fenced { .. }) {
                        self.metrics.fenced.inc();
                    }
                    return Err(sink_error(e));
                }
            }
            if let Some(p) = &self.publisher {
                let missing = p
                    .missing(conn.client(), &self.schema, &self.connector, topic, parts)
                    .await
                    .map_err(sink_error)?;
                self.publish(missing).await;
            }
        }
        conn.release();
        if let Ok(mut states) = self.partitions.lock() {
            for tp in partitions {
                states.insert(
                    tp.clone(),
                    PartState {
                        generation,
                        committed: None,
                        rejected: None,
                        dirty: false,
                        last_checkpoint: self.context.now(),
                    },
                );
            }
        }
        Ok(())
    }

    async fn starting_offsets(&self, partitions: &[TopicPartition]) -> Result<Offsets, SinkError> {
        let conn = self.conn().await?;
        let mut by_topic: HashMap<&str, Vec<i32>> = HashMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let mut out = Offsets::new();
        for (topic, parts) in by_topic {
            let next =
                writer::next_offsets(conn.client(), &self.schema, &self.connector, topic, &parts)
                    .await
                    .map_err(sink_error)?;
            for (partition, offset) in next {
                let tp = TopicPartition::new(topic, partition);
                self.state(&tp, |s| s.committed = Some(offset));
                out.insert(tp, offset);
            }
        }
        conn.release();
        Ok(out)
    }

    /// Prepares `records` (sealing PII with their subjects' keys): the rows, and the first rejected record.
    async fn prepare(
        &self,
        conn: &Conn<'_>,
        records: &[SinkRecord],
    ) -> Result<(Vec<Prepared>, Option<(usize, String)>), SinkError> {
        let mut rows = Vec::with_capacity(records.len());
        let subjects: Vec<Result<Option<String>, PrepareError>> = records
            .iter()
            .map(|r| self.preparer.sealing_subject(r))
            .collect();
        // Every subject's key at once: one query for the batch's subjects not cached yet, one insert for the new
        // ones (not a round trip per record).
        if let Some(keys) = &self.keys {
            let wanted: Vec<&str> = subjects
                .iter()
                .filter_map(|s| s.as_ref().ok().and_then(Option::as_deref))
                .collect();
            keys.prefetch(conn.client(), &wanted)
                .await
                .map_err(sink_error)?;
        }
        for (i, (r, subject)) in records.iter().zip(subjects).enumerate() {
            let key = match (subject, &self.keys) {
                (Ok(None), _) | (Ok(Some(_)), None) => None,
                (Ok(Some(subject)), Some(keys)) => Some(
                    keys.for_subject(conn.client(), &subject)
                        .await
                        .map_err(sink_error)?,
                ),
                (Err(PrepareError::Reject(why)), _) => return Ok((rows, Some((i, why)))),
                (Err(PrepareError::Fatal(why) | PrepareError::NeedKey(why)), _) => {
                    return Err(SinkError::permanent(why));
                }
            };
            match self.preparer.prepare(r, key.as_deref()) {
                Ok(p) => rows.push(p),
                Err(PrepareError::Reject(why)) => return Ok((rows, Some((i, why)))),
                Err(PrepareError::Fatal(why) | PrepareError::NeedKey(why)) => {
                    return Err(SinkError::permanent(why));
                }
            }
        }
        Ok((rows, None))
    }

    async fn put(&self, records: &[SinkRecord]) -> Result<Vec<Outcome>, SinkError> {
        let Some(first) = records.first() else {
            return Ok(Vec::new());
        };
        let tp = first.topic_partition();
        let (generation, committed, rejected) = self
            .state(&tp, |s| (s.generation, s.committed, s.rejected.clone()))
            .ok_or_else(|| SinkError::retriable(format!("{tp} is not open")))?;
        // Records this sink saw committed are done already (a retry of a call whose answer was lost).
        let skip = committed.map_or(0, |n| records.iter().take_while(|r| r.offset < n).count());
        let mut outcomes = vec![Outcome::Delivered; skip];
        let records = &records[skip..];
        if records.is_empty() {
            return Ok(outcomes);
        }
        let p = Partition {
            connector: &self.connector,
            topic: &tp.topic,
            partition: tp.partition,
            generation,
        };
        let gap_reason = move |from: i64, to: i64| -> String {
            match &rejected {
                Some((o, why)) if *o == from && to == from + 1 => {
                    format!("rejected by the audit sink and dead-lettered (or skipped) by the runtime: {why}")
                }
                _ => "never delivered to the audit sink: dead-lettered or skipped by the runtime (a converter \
                      failure), a transaction marker, or compacted away"
                    .to_owned(),
            }
        };
        let mut attempts = 0;
        let (committed, written, reject) = loop {
            attempts += 1;
            let mut conn = self.conn().await?;
            let table = self
                .tables
                .ensure(conn.client(), &tp.topic)
                .await
                .map_err(sink_error)?;
            let (rows, reject) = self.prepare(&conn, records).await?;
            if rows.is_empty() {
                conn.release();
                break (None, 0, reject);
            }
            let stored = self
                .stored_schemas
                .lock()
                .map(|s| s.clone())
                .unwrap_or_default();
            let ctx = Context {
                schema: &self.schema,
                tables: &self.tables,
                keys: self.keys.as_ref(),
                policy: &self.policy,
                stored_schemas: &stored,
            };
            match writer::write(&mut conn, &ctx, &p, &table, &rows, &gap_reason).await {
                Ok(c) => {
                    conn.release();
                    if let Some(columns) = c.columns {
                        table.set_columns(columns);
                    }
                    if let Ok(mut s) = self.stored_schemas.lock() {
                        s.extend(&c.schemas);
                    }
                    break (Some((c.next_offset, c.checkpoint)), c.written, reject);
                }
                Err(WriteError::KeysErased(ids)) if attempts < 4 => {
                    drop(conn);
                    if let Some(k) = &self.keys {
                        k.evict(&ids);
                    }
                }
                Err(WriteError::KeysErased(_)) => {
                    return Err(SinkError::retriable(
                        "data keys keep being destroyed while sealing",
                    ));
                }
                Err(WriteError::Audit(e)) => {
                    if matches!(e, AuditError::Fenced { .. }) {
                        self.metrics.fenced.inc();
                    }
                    return Err(sink_error(e));
                }
            }
        };
        let delivered = match &reject {
            Some((i, _)) => *i,
            None => records.len(),
        };
        if let Some((next, checkpoint)) = committed {
            self.metrics.rows.inc_by(written as u64);
            self.metrics.batches.inc();
            let made = checkpoint.is_some();
            self.state(&tp, |s| {
                if next.is_some() {
                    s.committed = next;
                }
                if made {
                    s.dirty = false;
                    s.last_checkpoint = self.context.now();
                } else if written > 0 {
                    s.dirty = true;
                }
            });
            if let Some(cp) = checkpoint {
                self.metrics.checkpoints.inc();
                self.publish(vec![cp]).await;
            }
        }
        outcomes.extend(std::iter::repeat_n(Outcome::Delivered, delivered));
        if let Some((i, why)) = reject {
            self.metrics.rejected.inc();
            let offset = records[i].offset;
            self.state(&tp, |s| s.rejected = Some((offset, why.clone())));
            outcomes.push(Outcome::Permanent {
                reason: why,
                detail: Some(format!("audit-postgres rejected {tp}@{offset}")),
            });
            outcomes.extend(std::iter::repeat_n(
                Outcome::retriable("held back behind a rejected record"),
                records.len() - i - 1,
            ));
        }
        Ok(outcomes)
    }

    /// Checkpoints of partitions with rows since their last one: when the interval has passed, or `force`.
    async fn idle_checkpoints(
        &self,
        only: Option<&[TopicPartition]>,
        force: bool,
    ) -> Result<(), SinkError> {
        let now = self.context.now();
        let due: Vec<(TopicPartition, i64)> = match self.partitions.lock() {
            Ok(states) => states
                .iter()
                .filter(|(tp, s)| {
                    s.dirty
                        && only.is_none_or(|o| o.contains(tp))
                        && (force || now.duration_since(s.last_checkpoint) >= self.interval)
                })
                .map(|(tp, s)| (tp.clone(), s.generation))
                .collect(),
            Err(_) => Vec::new(),
        };
        if due.is_empty() {
            self.publish(Vec::new()).await;
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut made = Vec::new();
        for (tp, generation) in due {
            let p = Partition {
                connector: &self.connector,
                topic: &tp.topic,
                partition: tp.partition,
                generation,
            };
            match writer::checkpoint(&mut conn, &self.schema, &self.policy, &p, force).await {
                Ok(cp) => {
                    self.state(&tp, |s| {
                        s.dirty = false;
                        s.last_checkpoint = now;
                    });
                    if let Some(cp) = cp {
                        self.metrics.checkpoints.inc();
                        made.push(cp);
                    }
                }
                Err(WriteError::Audit(e)) => {
                    // The connection is in an unknown state: drop it.
                    self.publish(made).await;
                    return Err(sink_error(e));
                }
                Err(WriteError::KeysErased(_)) => {}
            }
        }
        conn.release();
        self.publish(made).await;
        Ok(())
    }
}

impl Sink for AuditSink {
    fn open<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(self.inner.open(partitions, generation))
    }

    fn starting_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(self.inner.starting_offsets(partitions))
    }

    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(self.inner.put(records))
    }

    fn flush<'a>(&'a self, done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            // Advisory only: restarts read the offsets table. Still, commit what is durable, for lag metrics.
            let mut out = Offsets::new();
            if let Ok(states) = self.inner.partitions.lock() {
                for (tp, done) in done {
                    if let Some(next) = states.get(tp).and_then(|s| s.committed) {
                        out.insert(tp.clone(), next.min(*done));
                    }
                }
            }
            if let Err(e) = self.inner.idle_checkpoints(None, false).await {
                tracing::warn!(connector = %self.inner.connector, error = %e, "idle checkpoints not made yet");
            }
            Ok(out)
        })
    }

    fn close<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            if let Err(e) = self.inner.idle_checkpoints(Some(partitions), true).await {
                tracing::warn!(connector = %self.inner.connector, error = %e, "closing without a last checkpoint");
            }
            if let Ok(mut states) = self.inner.partitions.lock() {
                for tp in partitions {
                    states.remove(tp);
                }
            }
            Ok(())
        })
    }

    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let conn = self.inner.conn().await?;
            conn.client()
                .simple_query("SELECT 1")
                .await
                .map_err(|e| sink_error(e.into()))?;
            conn.release();
            Ok(())
        })
    }

    fn conversion(&self) -> Conversion {
        Conversion::OnDemand
    }
}
