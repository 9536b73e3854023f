//! What every partition of a running connector shares: its config, sink, converters, DLQ, telemetry, the
//! in-flight bounds (with RAII accounting: a record's share is released whenever it is dropped, whatever
//! path drops it), and the channel through which a fatal failure stops the connector.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use crate::connect::active_topics::ActiveTopics;
use crate::connect::config::ConnectorConfig;
use crate::connect::convert::Converter;
use crate::connect::dlq::DeadLetterQueue;
use crate::connect::record::RawRecord;
use crate::connect::sink::Sink;
use crate::connect::telemetry::Telemetry;

use super::keys::PipelineConfig;

/// A failure that stops the connector (errors.tolerance=none, a DLQ that cannot be written, a sink that
/// fails, panics or hangs).
#[derive(Debug, Clone)]
pub struct Fatal {
    /// The error and its causes, for the FAILED status trace.
    pub trace: String,
}

/// The in-flight bounds of a connector: records and bytes fetched and not yet done.
#[derive(Debug, Default)]
pub struct Bounds {
    records: AtomicUsize,
    bytes: AtomicUsize,
    max_records: usize,
    max_bytes: usize,
    /// Notified when records leave the pipeline (the consumer waits on it before pausing).
    pub released: tokio::sync::Notify,
}

impl Bounds {
    /// Bounds of at most `max_records` records and `max_bytes` bytes.
    pub fn new(max_records: usize, max_bytes: usize) -> Arc<Bounds> {
        Arc::new(Bounds {
            max_records,
            max_bytes,
            ..Bounds::default()
        })
    }

    /// Counts records entering the pipeline; the returned share releases them when dropped.
    pub fn admit(self: &Arc<Self>, records: usize, bytes: usize) -> Held {
        self.records.fetch_add(records, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        Held {
            bounds: Arc::clone(self),
            records,
            bytes,
        }
    }

    /// Records and bytes in flight.
    pub fn in_flight(&self) -> (usize, usize) {
        (
            self.records.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }

    /// Whether fetching should pause.
    pub fn over(&self) -> bool {
        let (r, b) = self.in_flight();
        r >= self.max_records || b >= self.max_bytes
    }

    /// Whether fetching may resume (hysteresis: below half of both bounds).
    pub fn under_resume_mark(&self) -> bool {
        let (r, b) = self.in_flight();
        r <= self.max_records / 2 && b <= self.max_bytes / 2
    }
}

/// A share of the in-flight bounds, released on drop.
#[derive(Debug)]
pub struct Held {
    bounds: Arc<Bounds>,
    records: usize,
    bytes: usize,
}

impl Held {
    /// Counts more bytes held for the same records (e.g. their JSON form once built).
    pub fn grow(&mut self, bytes: usize) {
        self.bounds.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.bytes += bytes;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.bounds
            .records
            .fetch_sub(self.records, Ordering::AcqRel);
        self.bounds.bytes.fetch_sub(self.bytes, Ordering::AcqRel);
        self.bounds.released.notify_waiters();
    }
}

/// A fetched record with its share of the bounds.
#[derive(Debug)]
pub struct Fetched {
    /// The record.
    pub raw: RawRecord,
    /// Its share.
    pub held: Held,
}

/// Shared by the partitions of one connector.
pub struct ConnectorCtx {
    /// The config.
    pub config: ConnectorConfig,
    /// The pipeline's keys.
    pub pipeline: PipelineConfig,
    /// The sink.
    pub sink: Arc<dyn Sink>,
    /// Key converter.
    pub key_converter: Converter,
    /// Value converter.
    pub value_converter: Converter,
    /// The DLQ, when configured.
    pub dlq: Option<DeadLetterQueue>,
    /// Telemetry.
    pub telemetry: Telemetry,
    /// The in-flight bounds.
    pub bounds: Arc<Bounds>,
    /// Reports a fatal failure (the first one wins).
    pub fatal: mpsc::Sender<Fatal>,
    /// Serialises flushes: a sink never sees two at once.
    pub flush_lock: tokio::sync::Mutex<()>,
    /// The task's id.
    pub task: u32,
    /// Where the topics it consumes records of are recorded (KIP-558).
    pub active_topics: Arc<ActiveTopics>,
}

impl ConnectorCtx {
    /// Counts one fetched record entering the pipeline.
    pub fn admit(&self, raw: RawRecord) -> Fetched {
        let held = self.bounds.admit(1, raw.size());
        Fetched { raw, held }
    }

    /// Reports a fatal failure (the first one wins; later ones are dropped).
    pub fn fail(&self, trace: impl Into<String>) {
        let _ = self.fatal.try_send(Fatal {
            trace: trace.into(),
        });
    }
}

/// A generation for an assignment: the wall-clock time in microseconds, bumped to stay strictly increasing
/// within the process (see `ursa_connect::sink` on fencing).
pub fn next_generation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    let mut last = LAST.load(Ordering::Acquire);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange(last, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}
