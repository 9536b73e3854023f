//! The series store: per metric, its live series (counters, gauges, histograms) keyed by their label
//! values, a cardinality guard of its own (a maximum of series and of distinct values per label; label sets
//! past either go to one `__overflow__` series and are counted), and idle expiry.
//!
//! ## Memory per series
//! A series is one hash-map entry: the key (the label values joined by `\x1f`, one reference-counted heap
//! allocation of their length, shared with the partition's contribution to the series) and a 32-byte
//! [`Series`] (the value, or a pointer to a histogram's buckets, the time of its last update and its event
//! time). The partition's contribution is a second entry of the same size under the same key. With the maps'
//! control bytes and load factor that is about 130 bytes plus the label text and the allocator's rounding of
//! it. For the per-label limit, the distinct values of each label are kept once per label (shared by every
//! series that uses them) when a metric has two labels or more; with one label they are the series' keys
//! themselves, and nothing more is kept. `tests/memory.rs` measures it: see the README.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use ursa_connect::{SinkRecord, TopicPartition};

use crate::config::{MetricDef, MetricKind, SampleTime};

/// The separator of label values in a series key (a control character that normalised values never hold
/// in practice; a value holding it is still unambiguous enough for counting, as label order is fixed).
pub const SEP: char = '\u{1f}';

/// The key of the overflow series in a partition's contributions.
pub const OVERFLOW_KEY: &str = "\u{0}overflow";

/// A series' key: its label values joined by [`SEP`], shared by the series and the partitions'
/// contributions to it.
pub type Key = Arc<str>;

/// [`SEP`] as a string, to join label values with.
const SEP_STR: &str = "\u{1f}";

/// Gives memory back once a map is mostly empty (maps keep their capacity when entries are removed).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > 64 && map.len() < map.capacity() / 4 {
        map.shrink_to_fit();
    }
}

/// A histogram's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Hist {
    /// Observations per bucket (not cumulative), the last one `+Inf`.
    pub counts: Box<[u64]>,
    /// The sum of observations.
    pub sum: f64,
    /// The number of observations.
    pub count: u64,
}

/// A series' value.
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    /// A counter's total or a gauge's value.
    Scalar(f64),
    /// A histogram.
    Hist(Box<Hist>),
}

/// One series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Its value.
    pub value: SeriesValue,
    /// Milliseconds since the store's epoch of its last update.
    pub last: u64,
    /// With event time (`metrics.remote.write.time`): the newest event time among its updates, in ms since
    /// the Unix epoch ([`NO_EVENT`] until one has one).
    pub event: i64,
}

/// A series' event time before any update had one.
pub const NO_EVENT: i64 = i64::MIN;

/// One metric's series and guard.
#[derive(Debug)]
pub struct MetricSeries {
    /// The definition.
    pub def: Arc<MetricDef>,
    /// Live series by key.
    pub series: HashMap<Key, Series>,
    /// Per label: its distinct values among live series, with how many series use each. Empty for a
    /// metric of one label, whose values are the series' keys.
    values: Vec<HashMap<Box<str>, u32>>,
    /// [`OVERFLOW_KEY`], allocated once.
    overflow_key: Key,
    /// The `__overflow__` series, once something was folded.
    pub overflow: Option<Series>,
    /// Updates folded into the overflow series.
    pub folded: u64,
    /// Series removed as idle.
    pub expired: u64,
    /// Records whose value field was missing or not a usable number.
    pub invalid: u64,
}

impl MetricSeries {
    fn new(def: Arc<MetricDef>) -> MetricSeries {
        let values = if def.labels.len() > 1 {
            vec![HashMap::new(); def.labels.len()]
        } else {
            Vec::new()
        };
        MetricSeries {
            values,
            overflow_key: Key::from(OVERFLOW_KEY),
            def,
            series: HashMap::new(),
            overflow: None,
            folded: 0,
            expired: 0,
            invalid: 0,
        }
    }

    fn fresh(&self, now: u64) -> Series {
        let value = match &self.def.kind {
            MetricKind::Histogram { buckets } => SeriesValue::Hist(Box::new(Hist {
                counts: vec![0; buckets.len() + 1].into_boxed_slice(),
                sum: 0.0,
                count: 0,
            })),
            _ => SeriesValue::Scalar(0.0),
        };
        Series {
            value,
            last: now,
            event: NO_EVENT,
        }
    }

    fn apply(def: &MetricDef, s: &mut Series, amount: f64, now: u64, event: i64) {
        s.last = now;
        // The series' time never goes back, and moves with every update: a late record (older than the
        // newest) puts it 1 ms past the newest, so that a push after it is a newer sample, which Prometheus
        // takes, not a second value at the same time, which it refuses.
        if event != NO_EVENT || s.event != NO_EVENT {
            s.event = if event > s.event {
                event
            } else {
                s.event.saturating_add(1)
            };
        }
        match (&def.kind, &mut s.value) {
            (MetricKind::Counter | MetricKind::Gauge { sum: true }, SeriesValue::Scalar(v)) => {
                *v += amount;
            }
            (MetricKind::Gauge { sum: false }, SeriesValue::Scalar(v)) => *v = amount,
            (MetricKind::Histogram { buckets }, SeriesValue::Hist(h)) => {
                let i = buckets
                    .iter()
                    .position(|b| amount <= *b)
                    .unwrap_or(buckets.len());
                if let Some(c) = h.counts.get_mut(i) {
                    *c += 1;
                }
                h.sum += amount;
                h.count += 1;
            }
            _ => {}
        }
    }

    /// Adds one update: `amount` (the increment, the gauge value or the observation) for these label values.
    /// Returns the key of the series it went to ([`OVERFLOW_KEY`] when folded), `None` if the amount was
    /// unusable.
    /// `event` is the record's event time ([`NO_EVENT`] without one).
    pub fn update(&mut self, labels: &[String], amount: f64, now: u64, event: i64) -> Option<Key> {
        if !amount.is_finite() || (matches!(self.def.kind, MetricKind::Counter) && amount < 0.0) {
            self.invalid += 1;
            return None;
        }
        let key = labels.join(SEP_STR);
        if let Some(k) = self
            .series
            .get_key_value(key.as_str())
            .map(|(k, _)| Key::clone(k))
            && let Some(s) = self.series.get_mut(&k)
        {
            Self::apply(&self.def, s, amount, now, event);
            return Some(k);
        }
        let full = self.series.len() >= self.def.max_series;
        // With one label, a new series is a new value of it.
        let new_value_over = if self.values.is_empty() {
            labels.len() == 1 && self.series.len() >= self.def.max_label_values
        } else {
            labels.iter().zip(&self.values).any(|(v, seen)| {
                !seen.contains_key(v.as_str()) && seen.len() >= self.def.max_label_values
            })
        };
        if full || new_value_over {
            self.folded += 1;
            let mut s = match self.overflow.take() {
                Some(s) => s,
                None => self.fresh(now),
            };
            Self::apply(&self.def, &mut s, amount, now, event);
            self.overflow = Some(s);
            return Some(Key::clone(&self.overflow_key));
        }
        for (v, seen) in labels.iter().zip(self.values.iter_mut()) {
            *seen.entry(Box::from(v.as_str())).or_insert(0) += 1;
        }
        let mut s = self.fresh(now);
        Self::apply(&self.def, &mut s, amount, now, event);
        let key = Key::from(key);
        self.series.insert(Key::clone(&key), s);
        Some(key)
    }

    /// The series of `key` ([`OVERFLOW_KEY`] for the overflow series), created if missing (restoring a
    /// checkpoint: the guard decided where it goes when it was first counted).
    fn series_mut(&mut self, key: &Key, now: u64) -> &mut Series {
        if **key == *OVERFLOW_KEY {
            let fresh = self.fresh(now);
            return self.overflow.get_or_insert(fresh);
        }
        let fresh = self.fresh(now);
        let values = &mut self.values;
        self.series.entry(Key::clone(key)).or_insert_with(|| {
            for (v, seen) in key.split(SEP).zip(values.iter_mut()) {
                *seen.entry(Box::from(v)).or_insert(0) += 1;
            }
            fresh
        })
    }

    /// Adds (`sign` 1) or takes away (`sign` -1) a partition's contribution to a series.
    fn merge(&mut self, key: &Key, part: &Series, sign: f64, now: u64) {
        let sum = !matches!(self.def.kind, MetricKind::Gauge { sum: false });
        let s = self.series_mut(key, now);
        if sign > 0.0 {
            s.last = now;
            s.event = s.event.max(part.event);
        }
        match (&mut s.value, &part.value) {
            (SeriesValue::Scalar(v), SeriesValue::Scalar(p)) if sum => *v += sign * p,
            (SeriesValue::Scalar(v), SeriesValue::Scalar(p)) if sign > 0.0 => *v = *p,
            (SeriesValue::Hist(h), SeriesValue::Hist(p)) => {
                for (c, pc) in h.counts.iter_mut().zip(p.counts.iter()) {
                    *c = if sign > 0.0 {
                        c.saturating_add(*pc)
                    } else {
                        c.saturating_sub(*pc)
                    };
                }
                h.sum += sign * p.sum;
                h.count = if sign > 0.0 {
                    h.count.saturating_add(p.count)
                } else {
                    h.count.saturating_sub(p.count)
                };
            }
            _ => {}
        }
    }

    fn expire(&mut self, older_than: u64, gone: &mut Vec<Key>) {
        let values = &mut self.values;
        let mut removed = 0;
        self.series.retain(|key, s| {
            if s.last >= older_than {
                return true;
            }
            removed += 1;
            gone.push(Key::clone(key));
            for (v, seen) in key.split(SEP).zip(values.iter_mut()) {
                if let Some(n) = seen.get_mut(v) {
                    *n -= 1;
                    if *n == 0 {
                        seen.remove(v);
                    }
                }
            }
            false
        });
        if self.overflow.as_ref().is_some_and(|s| s.last < older_than) {
            self.overflow = None;
            removed += 1;
            gone.push(Key::clone(&self.overflow_key));
        }
        shrink(&mut self.series);
        for seen in &mut self.values {
            shrink(seen);
        }
        self.expired += removed;
    }

    /// Distinct values of label `i` among live series.
    pub fn distinct_values(&self, i: usize) -> usize {
        if self.values.is_empty() {
            return if i < self.def.labels.len() {
                self.series.len()
            } else {
                0
            };
        }
        self.values.get(i).map_or(0, HashMap::len)
    }
}

/// What one partition contributed to each metric's series since the checkpoint it started from: what is
/// checkpointed with its offset, and what is taken away when the partition is closed (moved elsewhere).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// The next offset to count (records before it are counted already: a replay is skipped).
    pub next: Option<i64>,
    /// Per metric: contributions by series key ([`OVERFLOW_KEY`] for the overflow series).
    pub metrics: Vec<HashMap<Key, Series>>,
    /// Changed since the last checkpoint.
    pub dirty: bool,
    /// Bumped on every change (a checkpoint taken at version v is current while it stays v).
    pub version: u64,
    /// The next offset of the last checkpoint written.
    pub saved: Option<i64>,
}

/// Every metric's series.
#[derive(Debug)]
pub struct Store {
    /// Per definition, in definition order.
    pub metrics: Vec<MetricSeries>,
    /// Per open partition, its contributions.
    pub parts: HashMap<TopicPartition, Part>,
    epoch: Instant,
    idle: Duration,
    /// Where a record's event time comes from (`Processing`: none is kept).
    time: SampleTime,
}

impl Store {
    /// An empty store for these definitions; series idle for `idle` are removed by [`Store::expire`].
    pub fn new(defs: &[Arc<MetricDef>], idle: Duration) -> Store {
        Store {
            metrics: defs.iter().cloned().map(MetricSeries::new).collect(),
            parts: HashMap::new(),
            epoch: Instant::now(),
            idle,
            time: SampleTime::Processing,
        }
    }

    /// Keeps each series' newest event time from `time` (for remote write's samples).
    pub fn with_time(mut self, time: SampleTime) -> Store {
        self.time = time;
        self
    }

    /// A record's event time in ms since the Unix epoch, as `self.time` says ([`NO_EVENT`] without one).
    fn event_time(&self, record: &SinkRecord, value: &Value) -> i64 {
        match &self.time {
            SampleTime::Processing => NO_EVENT,
            SampleTime::Record => record.timestamp.unwrap_or(NO_EVENT),
            SampleTime::Field(path) => path
                .lookup(record, value)
                .and_then(|f| f.epoch_millis())
                .unwrap_or(NO_EVENT),
        }
    }

    /// Now, in the store's milliseconds.
    pub fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Opens a partition, restoring its checkpointed contributions (added to the series).
    pub fn open(&mut self, tp: TopicPartition, restored: Option<Part>) {
        let now = self.now();
        if let Some(old) = self.parts.remove(&tp) {
            self.subtract(&old);
        }
        let mut part = restored.unwrap_or_default();
        part.metrics.resize_with(self.metrics.len(), HashMap::new);
        for (m, contrib) in self.metrics.iter_mut().zip(&mut part.metrics) {
            for (key, s) in contrib.iter_mut() {
                s.last = now;
                m.merge(key, s, 1.0, now);
            }
        }
        part.dirty = false;
        part.saved = part.next;
        self.parts.insert(tp, part);
    }

    fn subtract(&mut self, part: &Part) {
        let now = self.now();
        for (m, contrib) in self.metrics.iter_mut().zip(&part.metrics) {
            for (key, s) in contrib {
                m.merge(key, s, -1.0, now);
            }
        }
    }

    /// Closes a partition: its contributions leave the series (its new owner restores them).
    pub fn close(&mut self, tp: &TopicPartition) {
        if let Some(old) = self.parts.remove(tp) {
            self.subtract(&old);
        }
    }

    /// Counts one record (`value` is its value's JSON form) in every metric it matches; `false` if it was
    /// counted already (its offset is before the partition's next).
    /// A record whose value did not decode (`value` `None`) only moves the partition's offset.
    pub fn apply(&mut self, record: &SinkRecord, value: Option<&Value>) -> bool {
        let now = self.now();
        let tp = record.topic_partition();
        let n = self.metrics.len();
        let event = match (&self.time, value) {
            (SampleTime::Processing, _) | (_, None) => NO_EVENT,
            (_, Some(v)) => self.event_time(record, v),
        };
        let part = self.parts.entry(tp).or_default();
        if part.next.is_some_and(|next| record.offset < next) {
            return false;
        }
        part.next = Some(record.offset + 1);
        part.dirty = true;
        part.version += 1;
        let Some(value) = value else { return true };
        part.metrics.resize_with(n, HashMap::new);
        for (m, contrib) in self.metrics.iter_mut().zip(&mut part.metrics) {
            let def = Arc::clone(&m.def);
            if !def.topics.is_empty() && !def.topics.iter().any(|t| **t == *record.topic) {
                continue;
            }
            if !def.filter.matches(record, value) {
                continue;
            }
            let amount = match &def.value {
                None => 1.0,
                Some(p) => match p.lookup(record, value).and_then(|f| f.number()) {
                    Some(v) => v * def.scale,
                    None => {
                        m.invalid += 1;
                        continue;
                    }
                },
            };
            let labels: Vec<String> = def.labels.iter().map(|l| l.value(record, value)).collect();
            if let Some(key) = m.update(&labels, amount, now, event) {
                let fresh = m.fresh(now);
                let s = contrib.entry(key).or_insert(fresh);
                MetricSeries::apply(&def, s, amount, now, event);
            }
        }
        true
    }

    /// Removes series not updated for the idle time (from every partition's contributions too); returns
    /// how many.
    pub fn expire(&mut self) -> u64 {
        let idle = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let older_than = self.now().saturating_sub(idle);
        if older_than == 0 {
            return 0;
        }
        let before: u64 = self.metrics.iter().map(|m| m.expired).sum();
        for (i, m) in self.metrics.iter_mut().enumerate() {
            let mut gone = Vec::new();
            m.expire(older_than, &mut gone);
            if gone.is_empty() {
                continue;
            }
            for part in self.parts.values_mut() {
                if let Some(contrib) = part.metrics.get_mut(i) {
                    for key in &gone {
                        if contrib.remove(key).is_some() {
                            part.dirty = true;
                            part.version += 1;
                        }
                    }
                    shrink(contrib);
                }
            }
        }
        self.metrics.iter().map(|m| m.expired).sum::<u64>() - before
    }

    /// Live series, overflow series included.
    pub fn live(&self) -> usize {
        self.metrics
            .iter()
            .map(|m| m.series.len() + usize::from(m.overflow.is_some()))
            .sum()
    }
}
