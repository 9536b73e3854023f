//! The `ursa_*` metric families, one `Registry`, and a per-connector index of series handles so that
//! per-record events cost a read lock, two string lookups and an atomic add (no allocation).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Distinct label sets kept per family before folding (see [`OTHER_TOPIC`]).
pub const DEFAULT_SERIES_CAP: usize = 10_000;
/// The topic label of every series past the cap.
pub const OTHER_TOPIC: &str = "_other";
/// The states of `ursa_task_state`, in label order.
pub const TASK_STATES: [&str; 6] = [
    "UNASSIGNED",
    "RUNNING",
    "PAUSED",
    "STOPPED",
    "FAILED",
    "RESTARTING",
];
/// The HTTP content type of [`super::Telemetry::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `kind` label values of `ursa_records_failed_total`, indexed by `usize::from(!permanent)`.
const KINDS: [&str; 2] = ["permanent", "retriable"];
/// Failure slots per topic: stages × kinds.
const FAILED_SLOTS: usize = 6;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabels {
    connector: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    connector: Arc<str>,
    topic: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailedLabels {
    connector: Arc<str>,
    topic: Arc<str>,
    stage: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LagLabels {
    connector: Arc<str>,
    topic: Arc<str>,
    partition: i32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: Arc<str>,
    /// The task (0 … `tasks.max` − 1, at most 256 of them).
    task: u32,
    state: &'static str,
}

type HistogramFamily = Family<ConnectorLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn batch_histogram() -> Histogram {
    // 1 … 16384 records
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

fn lag_histogram() -> Histogram {
    // 10 ms … ~87 min
    Histogram::new(exponential_buckets(0.01, 2.0, 20))
}

fn failed_labels(topic: &TopicLabels, slot: usize) -> FailedLabels {
    FailedLabels {
        connector: topic.connector.clone(),
        topic: topic.topic.clone(),
        stage: super::Stage::ALL[slot / KINDS.len()].as_str(),
        kind: KINDS[slot % KINDS.len()],
    }
}

fn lag_labels(topic: &TopicLabels, partition: i32) -> LagLabels {
    LagLabels {
        connector: topic.connector.clone(),
        topic: topic.topic.clone(),
        partition,
    }
}

fn state_labels(connector: &ConnectorLabels, task: u32, index: usize) -> StateLabels {
    StateLabels {
        connector: connector.connector.clone(),
        task,
        state: TASK_STATES[index],
    }
}

/// The families, registered once in `registry`.
struct Families {
    records_read: Family<TopicLabels, Counter>,
    records_delivered: Family<TopicLabels, Counter>,
    records_failed: Family<FailedLabels, Counter>,
    records_retried: Family<TopicLabels, Counter>,
    records_dead_lettered: Family<TopicLabels, Counter>,
    records_skipped: Family<TopicLabels, Counter>,
    bytes_read: Family<TopicLabels, Counter>,
    sink_latency: HistogramFamily,
    batch_size: HistogramFamily,
    end_to_end_lag: HistogramFamily,
    consumer_lag: Family<LagLabels, Gauge>,
    task_state: Family<StateLabels, Gauge>,
    task_restarts: Family<ConnectorLabels, Counter>,
    offset_commits: Family<ConnectorLabels, Counter>,
    partition_resumes: Family<ConnectorLabels, Counter>,
    redelivered_records: Family<ConnectorLabels, Counter>,
}

impl Families {
    fn new() -> Self {
        Self {
            records_read: Family::default(),
            records_delivered: Family::default(),
            records_failed: Family::default(),
            records_retried: Family::default(),
            records_dead_lettered: Family::default(),
            records_skipped: Family::default(),
            bytes_read: Family::default(),
            sink_latency: Family::new_with_constructor(latency_histogram),
            batch_size: Family::new_with_constructor(batch_histogram),
            end_to_end_lag: Family::new_with_constructor(lag_histogram),
            consumer_lag: Family::default(),
            task_state: Family::default(),
            task_restarts: Family::default(),
            offset_commits: Family::default(),
            partition_resumes: Family::default(),
            redelivered_records: Family::default(),
        }
    }

    /// Counters get `_total` and units their suffix from the encoder.
    fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                "ursa_records_read",
                "Records read from Kafka",
                &self.records_read,
            ),
            (
                "ursa_records_delivered",
                "Records delivered to the sink",
                &self.records_delivered,
            ),
            (
                "ursa_records_retried",
                "Records handed to the sink again after a retriable failure",
                &self.records_retried,
            ),
            (
                "ursa_records_dead_lettered",
                "Records written to the dead letter queue",
                &self.records_dead_lettered,
            ),
            (
                "ursa_records_skipped",
                "Records skipped under errors.tolerance=all without a dead letter queue",
                &self.records_skipped,
            ),
            (
                "ursa_bytes_read",
                "Bytes of records read from Kafka",
                &self.bytes_read,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "ursa_records_failed",
            "Record failures by stage and kind, before error tolerance is applied",
            self.records_failed.clone(),
        );
        registry.register_with_unit(
            "ursa_sink_latency",
            "Duration of one sink call",
            Unit::Seconds,
            self.sink_latency.clone(),
        );
        registry.register(
            "ursa_batch_size",
            "Records in one sink call",
            self.batch_size.clone(),
        );
        registry.register_with_unit(
            "ursa_end_to_end_lag",
            "Delivery time minus record timestamp",
            Unit::Seconds,
            self.end_to_end_lag.clone(),
        );
        registry.register(
            "ursa_consumer_lag",
            "High watermark minus the next offset to consume, per partition",
            self.consumer_lag.clone(),
        );
        registry.register(
            "ursa_task_state",
            "1 for the task's current state, 0 for the others",
            self.task_state.clone(),
        );
        registry.register(
            "ursa_task_restarts",
            "Task restarts, automatic after a failure or requested",
            self.task_restarts.clone(),
        );
        registry.register(
            "ursa_offset_commits",
            "Offset commits",
            self.offset_commits.clone(),
        );
        registry.register(
            "ursa_partition_resumes",
            "Partitions opened at a resume point (each assignment of a partition to this worker)",
            self.partition_resumes.clone(),
        );
        registry.register(
            "ursa_redelivered_records",
            "Records known to be delivered again on resume: what the sink had acknowledged minus where the partition resumed, when the sink tells",
            self.redelivered_records.clone(),
        );
    }
}

/// Handles of one (connector, topic) pair's series.
pub(super) struct TopicSeries {
    labels: TopicLabels,
    pub(super) read: Counter,
    pub(super) bytes: Counter,
    pub(super) delivered: Counter,
    pub(super) retried: Counter,
    pub(super) dead_lettered: Counter,
    pub(super) skipped: Counter,
    /// `ursa_records_failed_total`, created on first failure; slot = stage × 2 + kind.
    failed: [Option<Counter>; FAILED_SLOTS],
    lag: HashMap<i32, Gauge>,
}

impl TopicSeries {
    fn new(families: &Families, labels: TopicLabels) -> Self {
        Self {
            read: families.records_read.get_or_create_owned(&labels),
            bytes: families.bytes_read.get_or_create_owned(&labels),
            delivered: families.records_delivered.get_or_create_owned(&labels),
            retried: families.records_retried.get_or_create_owned(&labels),
            dead_lettered: families.records_dead_lettered.get_or_create_owned(&labels),
            skipped: families.records_skipped.get_or_create_owned(&labels),
            failed: Default::default(),
            lag: HashMap::new(),
            labels,
        }
    }

    fn is_other(&self) -> bool {
        &*self.labels.topic == OTHER_TOPIC
    }

    /// This topic's series counted against the failed and lag caps (`_other`'s failures are not).
    fn counted(&self) -> (usize, usize) {
        let failed = if self.is_other() {
            0
        } else {
            self.failed.iter().flatten().count()
        };
        (failed, self.lag.len())
    }

    fn remove_from(&self, families: &Families) {
        for family in [
            &families.records_read,
            &families.bytes_read,
            &families.records_delivered,
            &families.records_retried,
            &families.records_dead_lettered,
            &families.records_skipped,
        ] {
            family.remove(&self.labels);
        }
        for (slot, counter) in self.failed.iter().enumerate() {
            if counter.is_some() {
                families
                    .records_failed
                    .remove(&failed_labels(&self.labels, slot));
            }
        }
        for partition in self.lag.keys() {
            families
                .consumer_lag
                .remove(&lag_labels(&self.labels, *partition));
        }
    }
}

/// Handles of one connector's series.
pub(super) struct ConnectorSeries {
    labels: ConnectorLabels,
    pub(super) sink_latency: Histogram,
    pub(super) batch_size: Histogram,
    pub(super) end_to_end: Histogram,
    pub(super) restarts: Counter,
    pub(super) commits: Counter,
    pub(super) resumes: Counter,
    pub(super) redelivered: Counter,
    /// `ursa_task_state` per task, created on each task's first state change.
    state: HashMap<u32, [Gauge; TASK_STATES.len()]>,
    topics: HashMap<Arc<str>, TopicSeries>,
}

impl ConnectorSeries {
    fn new(families: &Families, labels: ConnectorLabels) -> Self {
        Self {
            sink_latency: families.sink_latency.get_or_create_owned(&labels),
            batch_size: families.batch_size.get_or_create_owned(&labels),
            end_to_end: families.end_to_end_lag.get_or_create_owned(&labels),
            restarts: families.task_restarts.get_or_create_owned(&labels),
            commits: families.offset_commits.get_or_create_owned(&labels),
            resumes: families.partition_resumes.get_or_create_owned(&labels),
            redelivered: families.redelivered_records.get_or_create_owned(&labels),
            state: HashMap::new(),
            topics: HashMap::new(),
            labels,
        }
    }

    fn remove_from(&self, families: &Families) {
        for family in [
            &families.sink_latency,
            &families.batch_size,
            &families.end_to_end_lag,
        ] {
            family.remove(&self.labels);
        }
        families.task_restarts.remove(&self.labels);
        families.offset_commits.remove(&self.labels);
        families.partition_resumes.remove(&self.labels);
        families.redelivered_records.remove(&self.labels);
        for &task in self.state.keys() {
            for index in 0..TASK_STATES.len() {
                families
                    .task_state
                    .remove(&state_labels(&self.labels, task, index));
            }
        }
        for topic in self.topics.values() {
            topic.remove_from(families);
        }
    }
}

/// The series handles by connector and topic, with the counts the caps apply to.
#[derive(Default)]
struct Index {
    connectors: HashMap<Arc<str>, ConnectorSeries>,
    /// (connector, topic) pairs, `_other` excluded.
    topic_series: usize,
    /// `ursa_records_failed_total` series, `_other` excluded.
    failed_series: usize,
    /// `ursa_consumer_lag` series.
    lag_series: usize,
}

impl Index {
    /// The pair's series, or the connector's `_other` ones once the cap is reached.
    fn lookup(
        &self,
        connector: &str,
        topic: &str,
        cap: usize,
    ) -> Option<(&ConnectorSeries, &TopicSeries)> {
        let c = self.connectors.get(connector)?;
        let t = match c.topics.get(topic) {
            Some(t) => t,
            None if self.topic_series >= cap => c.topics.get(OTHER_TOPIC)?,
            None => return None,
        };
        Some((c, t))
    }
}

/// Which overflow was already logged (each is logged once per registry).
#[derive(Default)]
struct Overflow {
    topics: AtomicBool,
    failed: AtomicBool,
    lag: AtomicBool,
}

/// The registry, its families and the index of handles.
pub(super) struct Metrics {
    registry: Registry,
    families: Families,
    index: RwLock<Index>,
    cap: usize,
    overflow: Overflow,
}

fn warn_once(flag: &AtomicBool, family: &str, connector: &str, topic: &str, cap: usize) {
    if !flag.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            family,
            connector,
            topic,
            cap,
            "metric series cap reached; further topics are folded into topic=\"_other\" (logged once)"
        );
    }
}

impl Metrics {
    pub(super) fn new(cap: usize) -> Self {
        let families = Families::new();
        let mut registry = Registry::default();
        families.register(&mut registry);
        Self {
            registry,
            families,
            index: RwLock::default(),
            cap,
            overflow: Overflow::default(),
        }
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn connector_entry<'a>(
        &self,
        connectors: &'a mut HashMap<Arc<str>, ConnectorSeries>,
        connector: &str,
    ) -> &'a mut ConnectorSeries {
        let key: Arc<str> = Arc::from(connector);
        connectors.entry(key.clone()).or_insert_with(|| {
            ConnectorSeries::new(&self.families, ConnectorLabels { connector: key })
        })
    }

    /// The pair's series (created), or the connector's `_other` ones past the cap.
    fn topic_entry<'a>(
        &self,
        index: &'a mut Index,
        connector: &str,
        topic: &str,
    ) -> &'a mut TopicSeries {
        let full = index.topic_series >= self.cap;
        let c = self.connector_entry(&mut index.connectors, connector);
        let name = if full && topic != OTHER_TOPIC && !c.topics.contains_key(topic) {
            warn_once(
                &self.overflow.topics,
                "ursa_records_*_total",
                connector,
                topic,
                self.cap,
            );
            OTHER_TOPIC
        } else {
            topic
        };
        let key: Arc<str> = Arc::from(name);
        match c.topics.entry(key.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(v) => {
                if name != OTHER_TOPIC {
                    index.topic_series += 1;
                }
                let labels = TopicLabels {
                    connector: c.labels.connector.clone(),
                    topic: key,
                };
                v.insert(TopicSeries::new(&self.families, labels))
            }
        }
    }

    /// Runs `f` on the connector's series, creating them on first use.
    pub(super) fn with_connector(&self, connector: &str, f: impl FnOnce(&ConnectorSeries)) {
        if let Some(c) = self.read().connectors.get(connector) {
            f(c);
            return;
        }
        let mut index = self.write();
        f(self.connector_entry(&mut index.connectors, connector));
    }

    /// Runs `f` on the pair's series (or `_other`'s past the cap), creating them on first use.
    pub(super) fn with_topic(
        &self,
        connector: &str,
        topic: &str,
        f: impl FnOnce(&ConnectorSeries, &TopicSeries),
    ) {
        if let Some((c, t)) = self.read().lookup(connector, topic, self.cap) {
            f(c, t);
            return;
        }
        self.topic_entry(&mut self.write(), connector, topic);
        // Re-read so that `f` runs under the shared lock; a concurrent removal drops the event.
        if let Some((c, t)) = self.read().lookup(connector, topic, self.cap) {
            f(c, t);
        }
    }

    /// Counts one failure; `kind` is 0 for permanent, 1 for retriable.
    pub(super) fn failed(&self, connector: &str, topic: &str, stage: usize, kind: usize) {
        let slot = stage * KINDS.len() + kind;
        {
            let index = self.read();
            if let Some((c, t)) = index.lookup(connector, topic, self.cap) {
                if let Some(counter) = &t.failed[slot] {
                    counter.inc();
                    return;
                }
                let other = c
                    .topics
                    .get(OTHER_TOPIC)
                    .and_then(|o| o.failed[slot].as_ref());
                if let (true, Some(counter)) = (index.failed_series >= self.cap, other) {
                    counter.inc();
                    return;
                }
            }
        }
        let mut index = self.write();
        let full = index.failed_series >= self.cap;
        let t = self.topic_entry(&mut index, connector, topic);
        let fold = t.failed[slot].is_none() && full && !t.is_other();
        let t = if fold {
            warn_once(
                &self.overflow.failed,
                "ursa_records_failed_total",
                connector,
                topic,
                self.cap,
            );
            self.topic_entry(&mut index, connector, OTHER_TOPIC)
        } else {
            t
        };
        let counted = t.failed[slot].is_none() && !t.is_other();
        let counter = match &mut t.failed[slot] {
            Some(counter) => counter,
            empty => empty.insert(
                self.families
                    .records_failed
                    .get_or_create_owned(&failed_labels(&t.labels, slot)),
            ),
        };
        counter.inc();
        if counted {
            index.failed_series += 1;
        }
    }

    /// Sets a partition's lag; past the cap (or for a topic folded into `_other`) the value is dropped, as a
    /// gauge cannot be summed.
    pub(super) fn consumer_lag(&self, connector: &str, topic: &str, partition: i32, lag: i64) {
        {
            let index = self.read();
            let c = index.connectors.get(connector);
            match c.and_then(|c| c.topics.get(topic)) {
                Some(t) => {
                    if let Some(gauge) = t.lag.get(&partition) {
                        gauge.set(lag);
                        return;
                    }
                    if index.lag_series >= self.cap {
                        warn_once(
                            &self.overflow.lag,
                            "ursa_consumer_lag",
                            connector,
                            topic,
                            self.cap,
                        );
                        return;
                    }
                }
                None if index.topic_series >= self.cap && topic != OTHER_TOPIC => {
                    warn_once(
                        &self.overflow.topics,
                        "ursa_consumer_lag",
                        connector,
                        topic,
                        self.cap,
                    );
                    return;
                }
                None => {}
            }
        }
        let mut index = self.write();
        let full = index.lag_series >= self.cap;
        let t = self.topic_entry(&mut index, connector, topic);
        if &*t.labels.topic != topic {
            return;
        }
        let created = match t.lag.entry(partition) {
            Entry::Occupied(e) => {
                e.get().set(lag);
                false
            }
            Entry::Vacant(_) if full => {
                warn_once(
                    &self.overflow.lag,
                    "ursa_consumer_lag",
                    connector,
                    topic,
                    self.cap,
                );
                false
            }
            Entry::Vacant(v) => {
                let gauge = self
                    .families
                    .consumer_lag
                    .get_or_create_owned(&lag_labels(&t.labels, partition));
                gauge.set(lag);
                v.insert(gauge);
                true
            }
        };
        if created {
            index.lag_series += 1;
        }
    }

    /// Sets the task's state gauge `index` to 1 and its others to 0.
    pub(super) fn task_state(&self, connector: &str, task: u32, state: usize) {
        let mut index = self.write();
        let c = self.connector_entry(&mut index.connectors, connector);
        let labels = &c.labels;
        let gauges = c.state.entry(task).or_insert_with(|| {
            std::array::from_fn(|i| {
                self.families
                    .task_state
                    .get_or_create_owned(&state_labels(labels, task, i))
            })
        });
        for (i, gauge) in gauges.iter().enumerate() {
            gauge.set(i64::from(i == state));
        }
    }

    /// Drops the state series of one task of the connector (it now runs on another worker).
    pub(super) fn remove_task(&self, connector: &str, task: u32) {
        let mut index = self.write();
        let Some(c) = index.connectors.get_mut(connector) else {
            return;
        };
        if c.state.remove(&task).is_some() {
            for i in 0..TASK_STATES.len() {
                self.families
                    .task_state
                    .remove(&state_labels(&c.labels, task, i));
            }
        }
    }

    /// Drops every series of the connector; returns whether it had any.
    pub(super) fn remove_connector(&self, connector: &str) -> bool {
        let mut index = self.write();
        let Some(c) = index.connectors.remove(connector) else {
            return false;
        };
        c.remove_from(&self.families);
        for t in c.topics.values() {
            let (failed, lag) = t.counted();
            if !t.is_other() {
                index.topic_series = index.topic_series.saturating_sub(1);
            }
            index.failed_series = index.failed_series.saturating_sub(failed);
            index.lag_series = index.lag_series.saturating_sub(lag);
        }
        true
    }

    /// The OpenMetrics text exposition, ending in `# EOF`.
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        if let Err(error) = text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}
