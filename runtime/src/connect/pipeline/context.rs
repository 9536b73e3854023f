//! What every partition of a running connector shares: its config, sink, converters, DLQ, telemetry, the
//! in-flight bounds, and the channel through which a fatal failure stops the connector.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;

use crate::connect::config::ConnectorConfig;
use crate::connect::convert::Converter;
use crate::connect::dlq::DeadLetterQueue;
use crate::connect::sink::Sink;
use crate::connect::telemetry::Telemetry;

/// A failure that stops the connector (errors.tolerance=none, or a DLQ that cannot be written).
#[derive(Debug, Clone)]
pub struct Fatal {
    /// The error and its causes, for the FAILED status trace.
    pub trace: String,
}

/// Shared by the partitions of one connector.
pub struct ConnectorCtx {
    /// The config.
    pub config: ConnectorConfig,
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
    /// Records fetched and not yet done.
    pub in_flight_records: AtomicUsize,
    /// Bytes fetched and not yet done.
    pub in_flight_bytes: AtomicUsize,
    /// Reports a fatal failure (the first one wins).
    pub fatal: mpsc::Sender<Fatal>,
    /// Notified when records leave the pipeline (the consumer waits on it before pausing).
    pub released: tokio::sync::Notify,
}

impl ConnectorCtx {
    /// Counts records entering the pipeline.
    pub fn admit(&self, records: usize, bytes: usize) {
        self.in_flight_records.fetch_add(records, Ordering::Relaxed);
        self.in_flight_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts records leaving the pipeline (done or abandoned).
    pub fn release(&self, records: usize, bytes: usize) {
        self.in_flight_records.fetch_sub(records, Ordering::Relaxed);
        self.in_flight_bytes.fetch_sub(bytes, Ordering::Relaxed);
        self.released.notify_waiters();
    }

    /// Whether fetching should pause.
    pub fn over_bounds(&self) -> bool {
        self.in_flight_records.load(Ordering::Relaxed) >= self.config.max_in_flight_records
            || self.in_flight_bytes.load(Ordering::Relaxed) >= self.config.max_in_flight_bytes
    }

    /// Whether fetching may resume (hysteresis: below half of both bounds).
    pub fn under_resume_mark(&self) -> bool {
        self.in_flight_records.load(Ordering::Relaxed) <= self.config.max_in_flight_records / 2
            && self.in_flight_bytes.load(Ordering::Relaxed) <= self.config.max_in_flight_bytes / 2
    }
}
