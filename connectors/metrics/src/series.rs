//! The series store: per metric, its live series (counters, gauges, histograms) keyed by their label
//! values, a cardinality guard of its own (a maximum of series and of distinct values per label; label sets
//! past either go to one `__overflow__` series and are counted), idle expiry, and what each open partition
//! contributed to each series (checkpointed with the partition's offset, taken away when it is closed).
//!
//! ## Memory per series
//! A series is one hash-map entry: the key (the label values joined by `\x1f`, one reference-counted heap
//! allocation of their length) and a 48-byte [`Series`]: the value (or a pointer to a histogram's buckets),
//! the time of its last update, its event time, and its [`Owners`]. The partitions' contributions live in the
//! series itself: a series that one partition counted (the common case: records of one key go to one
//! partition) names that partition's slot, as its value is that partition's contribution; only a series that
//! several open partitions counted holds a list of contributions. With the map's control byte and load factor
//! that is 50 to 100 bytes plus the label text and the allocator's rounding of it. For the per-label limit,
//! the distinct values of each label are kept once per label (shared by every series that uses them) when a
//! metric has two labels or more; with one label they are the series' keys themselves, and nothing more is
//! kept. `tests/memory.rs` measures it: see the README.
//!
//! The maps hash with foldhash, seeded per process: label values come from events, so a fixed hash would let
//! crafted values collide.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use ursa_connect::{SinkRecord, TopicPartition};

use crate::config::{MetricDef, MetricKind, SampleTime};
use crate::extract::View;

/// The maps' hasher.
pub type Hasher = foldhash::fast::RandomState;

/// A hash map with the store's hasher.
pub type Map<K, V> = HashMap<K, V, Hasher>;

/// The separator of label values in a series key (a control character that normalised values never hold
/// in practice; a value holding it is still unambiguous enough for counting, as label order is fixed).
pub const SEP: char = '\u{1f}';

/// The key of the overflow series in a partition's checkpoint.
pub const OVERFLOW_KEY: &str = "\u{0}overflow";

/// A series' key: its label values joined by [`SEP`].
pub type Key = Arc<str>;

/// An open partition's number in the store, which its series' [`Owners`] name.
pub type Slot = u32;

/// Gives memory back once a map is mostly empty (maps keep their capacity when entries are removed).
fn shrink<K: std::hash::Hash + Eq, V>(map: &mut Map<K, V>) {
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

/// What one open partition contributed to a series since the checkpoint it started from.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// The partition's share of the value (a last-value gauge: the last value it set).
    pub value: SeriesValue,
    /// The newest event time among its updates ([`NO_EVENT`] without one).
    pub event: i64,
}

/// Which open partitions contributed to a series.
#[derive(Debug, Clone, PartialEq)]
pub enum Owners {
    /// None is open (its partitions were closed; the series stays until idle, a counter's, sum gauge's or
    /// histogram's value at zero).
    None,
    /// One partition, whose contribution is the series' whole value and event time.
    One(Slot),
    /// Several, each with its contribution.
    Many(Box<Vec<(Slot, Contribution)>>),
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
    /// The open partitions that contributed to it.
    pub owners: Owners,
}

/// A series' event time before any update had one.
pub const NO_EVENT: i64 = i64::MIN;

/// Whether a metric's value is the sum of its partitions' contributions (all but last-value gauges).
fn sums(def: &MetricDef) -> bool {
    !matches!(def.kind, MetricKind::Gauge { sum: false })
}

/// A zero value of `def`'s kind.
fn zero(def: &MetricDef) -> SeriesValue {
    match &def.kind {
        MetricKind::Histogram { buckets } => SeriesValue::Hist(Box::new(Hist {
            counts: vec![0; buckets.len() + 1].into_boxed_slice(),
            sum: 0.0,
            count: 0,
        })),
        _ => SeriesValue::Scalar(0.0),
    }
}

/// Adds one update to a value and its event time.
fn add(def: &MetricDef, value: &mut SeriesValue, at: &mut i64, amount: f64, event: i64) {
    // The time never goes back, and moves with every update: a late record (older than the newest) puts it
    // 1 ms past the newest, so that a push after it is a newer sample, which Prometheus takes, not a second
    // value at the same time, which it refuses.
    if event != NO_EVENT || *at != NO_EVENT {
        *at = if event > *at {
            event
        } else {
            at.saturating_add(1)
        };
    }
    match (&def.kind, value) {
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

/// Adds (`sign` 1) or takes away (`sign` -1) a contribution's value to or from a series' total; a
/// last-value gauge takes the value when it is added and keeps it when it is taken away.
fn combine(def: &MetricDef, total: &mut SeriesValue, part: &SeriesValue, sign: f64) {
    match (total, part) {
        (SeriesValue::Scalar(v), SeriesValue::Scalar(p)) if sums(def) => *v += sign * p,
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

impl Series {
    fn fresh(def: &MetricDef, now: u64) -> Series {
        Series {
            value: zero(def),
            last: now,
            event: NO_EVENT,
            owners: Owners::None,
        }
    }

    /// Adds one update from the partition of `slot`.
    fn update(&mut self, def: &MetricDef, slot: Slot, amount: f64, now: u64, event: i64) {
        match &mut self.owners {
            Owners::One(o) if *o == slot => {}
            // With no owner a summed value is zero, so the update alone is the partition's contribution.
            Owners::None => self.owners = Owners::One(slot),
            Owners::One(o) => {
                let theirs = Contribution {
                    value: self.value.clone(),
                    event: self.event,
                };
                let mut mine = Contribution {
                    value: zero(def),
                    event: NO_EVENT,
                };
                add(def, &mut mine.value, &mut mine.event, amount, event);
                self.owners = Owners::Many(Box::new(vec![(*o, theirs), (slot, mine)]));
            }
            Owners::Many(list) => match list.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, c)) => add(def, &mut c.value, &mut c.event, amount, event),
                None => {
                    let mut mine = Contribution {
                        value: zero(def),
                        event: NO_EVENT,
                    };
                    add(def, &mut mine.value, &mut mine.event, amount, event);
                    list.push((slot, mine));
                }
            },
        }
        self.last = now;
        add(def, &mut self.value, &mut self.event, amount, event);
    }

    /// Adds a checkpointed contribution of the partition of `slot` (which has none in it yet).
    fn restore(&mut self, def: &MetricDef, slot: Slot, part: Contribution, now: u64) {
        self.last = now;
        match &mut self.owners {
            Owners::None => {
                if sums(def) {
                    self.value = zero(def);
                }
                combine(def, &mut self.value, &part.value, 1.0);
                self.event = self.event.max(part.event);
                self.owners = Owners::One(slot);
            }
            Owners::One(o) if *o == slot => {
                combine(def, &mut self.value, &part.value, 1.0);
                self.event = self.event.max(part.event);
            }
            Owners::One(o) => {
                let theirs = Contribution {
                    value: self.value.clone(),
                    event: self.event,
                };
                combine(def, &mut self.value, &part.value, 1.0);
                self.event = self.event.max(part.event);
                self.owners = Owners::Many(Box::new(vec![(*o, theirs), (slot, part)]));
            }
            Owners::Many(list) => {
                combine(def, &mut self.value, &part.value, 1.0);
                self.event = self.event.max(part.event);
                list.push((slot, part));
            }
        }
    }

    /// Takes away the contribution of the partition of `slot`, if it has one.
    fn withdraw(&mut self, def: &MetricDef, slot: Slot) {
        match &mut self.owners {
            Owners::One(o) if *o == slot => {
                if sums(def) {
                    self.value = zero(def);
                }
                self.owners = Owners::None;
            }
            Owners::None | Owners::One(_) => {}
            Owners::Many(list) => {
                let Some(i) = list.iter().position(|(s, _)| *s == slot) else {
                    return;
                };
                let (_, gone) = list.swap_remove(i);
                combine(def, &mut self.value, &gone.value, -1.0);
                if sums(def) && list.len() == 1 {
                    // The one left is the whole value again (exactly: no rounding left over by the sums).
                    if let Some((o, c)) = list.pop() {
                        self.value = c.value;
                        self.event = self.event.max(c.event);
                        self.owners = Owners::One(o);
                    }
                } else if list.is_empty() {
                    // Only a last-value gauge gets here (a sum goes back to one owner first), and it keeps
                    // its last value.
                    self.owners = Owners::None;
                }
            }
        }
    }

    /// The contribution of the partition of `slot`: its value and event time.
    pub fn contribution(&self, slot: Slot) -> Option<(&SeriesValue, i64)> {
        match &self.owners {
            Owners::One(o) if *o == slot => Some((&self.value, self.event)),
            Owners::Many(list) => list
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, c)| (&c.value, c.event)),
            _ => None,
        }
    }

    /// Calls `f` with the slot of every partition that contributed to it.
    fn each_owner(&self, mut f: impl FnMut(Slot)) {
        match &self.owners {
            Owners::None => {}
            Owners::One(o) => f(*o),
            Owners::Many(list) => list.iter().for_each(|(s, _)| f(*s)),
        }
    }
}

/// One metric's series and guard.
#[derive(Debug)]
pub struct MetricSeries {
    /// The definition.
    pub def: Arc<MetricDef>,
    /// Live series by key.
    pub series: Map<Key, Series>,
    /// Per label: its distinct values among live series, with how many series use each. Empty for a
    /// metric of one label, whose values are the series' keys.
    values: Vec<Map<Box<str>, u32>>,
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
            vec![Map::default(); def.labels.len()]
        } else {
            Vec::new()
        };
        MetricSeries {
            values,
            def,
            series: Map::default(),
            overflow: None,
            folded: 0,
            expired: 0,
            invalid: 0,
        }
    }

    /// Counts one new series' label values (in `key`) in the per-label value sets.
    fn count_values(values: &mut [Map<Box<str>, u32>], key: &str) {
        for (v, seen) in key.split(SEP).zip(values.iter_mut()) {
            match seen.get_mut(v) {
                Some(n) => *n += 1,
                None => {
                    seen.insert(Box::from(v), 1);
                }
            }
        }
    }

    /// Adds one update from the partition of `slot`: `amount` (the increment, the gauge value or the
    /// observation) for the label values joined in `key` (by [`SEP`], in label order). `event` is the
    /// record's event time ([`NO_EVENT`] without one).
    pub fn update(&mut self, key: &str, slot: Slot, amount: f64, now: u64, event: i64) {
        if !amount.is_finite() || (matches!(self.def.kind, MetricKind::Counter) && amount < 0.0) {
            self.invalid += 1;
            return;
        }
        let def = &*self.def;
        if let Some(s) = self.series.get_mut(key) {
            s.update(def, slot, amount, now, event);
            return;
        }
        let full = self.series.len() >= def.max_series;
        // With one label, a new series is a new value of it.
        let new_value_over = if self.values.is_empty() {
            def.labels.len() == 1 && self.series.len() >= def.max_label_values
        } else {
            key.split(SEP)
                .zip(&self.values)
                .any(|(v, seen)| !seen.contains_key(v) && seen.len() >= def.max_label_values)
        };
        if full || new_value_over {
            self.folded += 1;
            self.overflow
                .get_or_insert_with(|| Series::fresh(def, now))
                .update(def, slot, amount, now, event);
            return;
        }
        Self::count_values(&mut self.values, key);
        let mut s = Series::fresh(def, now);
        s.update(def, slot, amount, now, event);
        self.series.insert(Key::from(key), s);
    }

    /// Adds a partition's checkpointed contribution to the series of `key` ([`OVERFLOW_KEY`] for the
    /// overflow series), created if missing (the guard decided where it goes when it was first counted).
    fn restore(&mut self, key: Key, slot: Slot, part: Contribution, now: u64) {
        let def = &*self.def;
        if *key == *OVERFLOW_KEY {
            self.overflow
                .get_or_insert_with(|| Series::fresh(def, now))
                .restore(def, slot, part, now);
            return;
        }
        let values = &mut self.values;
        self.series
            .entry(key)
            .or_insert_with_key(|key| {
                Self::count_values(values, key);
                Series::fresh(def, now)
            })
            .restore(def, slot, part, now);
    }

    /// Takes away every contribution of the partition of `slot`.
    fn withdraw(&mut self, slot: Slot) {
        let def = &*self.def;
        for s in self.series.values_mut().chain(self.overflow.as_mut()) {
            s.withdraw(def, slot);
        }
    }

    /// Removes the series not updated since `older_than`; marks the slots of the partitions that had
    /// contributed to one in `touched`.
    fn expire(&mut self, older_than: u64, touched: &mut Vec<bool>) {
        let values = &mut self.values;
        let mut removed = 0;
        let mut mark = |s: &Series| {
            s.each_owner(|slot| {
                let i = slot as usize;
                if touched.len() <= i {
                    touched.resize(i + 1, false);
                }
                touched[i] = true;
            });
        };
        self.series.retain(|key, s| {
            if s.last >= older_than {
                return true;
            }
            removed += 1;
            mark(s);
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
        if let Some(s) = self.overflow.take_if(|s| s.last < older_than) {
            removed += 1;
            mark(&s);
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
        self.values.get(i).map_or(0, Map::len)
    }
}

/// An open partition's place in the store: its slot (which its series' [`Owners`] name) and where its
/// counting stands against its checkpoint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Part {
    /// Its slot.
    pub slot: Slot,
    /// The next offset to count (records before it are counted already: a replay is skipped).
    pub next: Option<i64>,
    /// Changed since the last checkpoint.
    pub dirty: bool,
    /// Bumped on every change (a checkpoint taken at version v is current while it stays v).
    pub version: u64,
    /// The next offset of the last checkpoint written.
    pub saved: Option<i64>,
}

/// A partition's checkpoint, read back: its next offset and, per metric (in definition order), its
/// contributions by series key ([`OVERFLOW_KEY`] for the overflow series).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Restored {
    /// The next offset to count.
    pub next: Option<i64>,
    /// Per metric, its contributions.
    pub metrics: Vec<Vec<(Key, Contribution)>>,
}

/// Takes the lowest free slot of `slots` (slots in use).
fn free_slot(slots: &mut Vec<bool>) -> Slot {
    let i = match slots.iter().position(|used| !used) {
        Some(i) => i,
        None => {
            slots.push(false);
            slots.len() - 1
        }
    };
    slots[i] = true;
    Slot::try_from(i).unwrap_or(Slot::MAX)
}

/// Every metric's series.
#[derive(Debug)]
pub struct Store {
    /// Per definition, in definition order.
    pub metrics: Vec<MetricSeries>,
    /// Per open partition, its state.
    parts: Map<TopicPartition, Part>,
    /// Slots in use.
    slots: Vec<bool>,
    /// The partition of the last record counted, and its slot (records come in runs of one partition).
    recent: Option<(TopicPartition, Slot)>,
    epoch: Instant,
    idle: Duration,
    /// Where a record's event time comes from (`Processing`: none is kept).
    time: SampleTime,
    /// The series key being built (kept for its capacity).
    key: String,
}

impl Store {
    /// An empty store for these definitions; series idle for `idle` are removed by [`Store::expire`].
    pub fn new(defs: &[Arc<MetricDef>], idle: Duration) -> Store {
        Store {
            metrics: defs.iter().cloned().map(MetricSeries::new).collect(),
            parts: Map::default(),
            slots: Vec::new(),
            recent: None,
            epoch: Instant::now(),
            idle,
            time: SampleTime::Processing,
            key: String::new(),
        }
    }

    /// Keeps each series' newest event time from `time` (for remote write's samples).
    pub fn with_time(mut self, time: SampleTime) -> Store {
        self.time = time;
        self
    }

    /// A record's event time in ms since the Unix epoch, as `self.time` says ([`NO_EVENT`] without one).
    fn event_time(&self, record: &SinkRecord, value: View<'_>) -> i64 {
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

    /// The state of an open partition.
    pub fn part(&self, tp: &TopicPartition) -> Option<&Part> {
        self.parts.get(tp)
    }

    /// The state of an open partition, to change.
    pub fn part_mut(&mut self, tp: &TopicPartition) -> Option<&mut Part> {
        self.parts.get_mut(tp)
    }

    /// Every open partition's state.
    pub fn parts(&self) -> impl Iterator<Item = (&TopicPartition, &Part)> {
        self.parts.iter()
    }

    /// The state of `tp`, opened (with nothing restored) if it was not.
    fn part_entry(&mut self, tp: &TopicPartition) -> &mut Part {
        let slots = &mut self.slots;
        self.parts.entry(tp.clone()).or_insert_with(|| Part {
            slot: free_slot(slots),
            ..Part::default()
        })
    }

    /// Opens a partition, restoring its checkpointed contributions (added to the series).
    pub fn open(&mut self, tp: TopicPartition, restored: Option<Restored>) {
        self.close(&tp);
        let now = self.now();
        let restored = restored.unwrap_or_default();
        let slot = self.part_entry(&tp).slot;
        for (m, contrib) in self.metrics.iter_mut().zip(restored.metrics) {
            for (key, c) in contrib {
                m.restore(key, slot, c, now);
            }
        }
        if let Some(part) = self.parts.get_mut(&tp) {
            part.next = restored.next;
            part.saved = restored.next;
        }
    }

    /// Closes a partition: its contributions leave the series (its new owner restores them).
    pub fn close(&mut self, tp: &TopicPartition) {
        let Some(part) = self.parts.remove(tp) else {
            return;
        };
        for m in &mut self.metrics {
            m.withdraw(part.slot);
        }
        if let Some(used) = self.slots.get_mut(part.slot as usize) {
            *used = false;
        }
        if self.recent.as_ref().is_some_and(|(t, _)| t == tp) {
            self.recent = None;
        }
    }

    /// The slot of the record's partition, which is opened if it was not; `None` if the record was counted
    /// already (its offset is before the partition's next). Moves the partition's next offset past it.
    fn take(&mut self, record: &SinkRecord) -> Option<Slot> {
        let tp = match &self.recent {
            Some((tp, _)) if tp.partition == record.partition && tp.topic == record.topic => {
                tp.clone()
            }
            _ => record.topic_partition(),
        };
        let part = self.part_entry(&tp);
        if part.next.is_some_and(|next| record.offset < next) {
            return None;
        }
        part.next = Some(record.offset + 1);
        part.dirty = true;
        part.version += 1;
        let slot = part.slot;
        self.recent = Some((tp, slot));
        Some(slot)
    }

    /// Counts one record (`value` is its value's JSON form) in every metric it matches; `false` if it was
    /// counted already (its offset is before the partition's next).
    /// A record whose value did not decode (`value` `None`) only moves the partition's offset.
    pub fn apply(&mut self, record: &SinkRecord, value: Option<&Value>) -> bool {
        let now = self.now();
        self.apply_at(record, value.map(View::Json), now)
    }

    /// As [`Store::apply`], with the value as the definitions read it (its JSON form or the wanted parts of an
    /// Avro datum), at `now` (the store's milliseconds, [`Store::now`]: one reading of the clock serves a batch).
    pub fn apply_at(&mut self, record: &SinkRecord, value: Option<View<'_>>, now: u64) -> bool {
        let Some(slot) = self.take(record) else {
            return false;
        };
        let Some(value) = value else { return true };
        let event = match &self.time {
            SampleTime::Processing => NO_EVENT,
            _ => self.event_time(record, value),
        };
        let key = &mut self.key;
        for m in &mut self.metrics {
            let def = &*m.def;
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
            key.clear();
            for (i, l) in def.labels.iter().enumerate() {
                if i > 0 {
                    key.push(SEP);
                }
                l.write_value(record, value, key);
            }
            m.update(key, slot, amount, now, event);
        }
        true
    }

    /// Removes series not updated for the idle time (and so their partitions' contributions); returns how
    /// many.
    pub fn expire(&mut self) -> u64 {
        let idle = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX);
        let older_than = self.now().saturating_sub(idle);
        if older_than == 0 {
            return 0;
        }
        let before: u64 = self.metrics.iter().map(|m| m.expired).sum();
        let mut touched = Vec::new();
        for m in &mut self.metrics {
            m.expire(older_than, &mut touched);
        }
        for part in self.parts.values_mut() {
            if touched.get(part.slot as usize).copied().unwrap_or(false) {
                part.dirty = true;
                part.version += 1;
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
