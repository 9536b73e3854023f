//! The sink connector interface: records in, one outcome per record out.
//!
//! A [`Sink`] receives the records of one partition at a time, in offset order; the runtime calls it for
//! several partitions concurrently, so implementations take `&self` and do their own synchronisation. For
//! every record it reports an [`Outcome`]: delivered, retriable (optionally after a delay the remote asked
//! for), or permanent with a reason. The runtime retries only the retriable records, dead-letters or skips
//! permanent ones per `errors.tolerance`, and commits an offset only once every record before it is done.

use std::sync::Arc;
use std::time::Duration;

use crate::connect::api::BoxFuture;
use crate::connect::config::{Key, Parsed};
use crate::connect::convert::{ConvertError, Converted};

/// A record as a sink sees it.
#[derive(Debug, Clone)]
pub struct SinkRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record timestamp (ms since the epoch), if any.
    pub timestamp: Option<i64>,
    /// Headers in order (a header may have no value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// The raw key.
    pub key: Option<Vec<u8>>,
    /// The raw value.
    pub value: Option<Vec<u8>>,
    /// The key as converted (JSON-like).
    pub key_json: serde_json::Value,
    /// The value as converted (JSON-like).
    pub value_json: serde_json::Value,
    /// The registry schema id of the value, for Avro.
    pub value_schema_id: Option<u32>,
    /// The converted value, for typed decoding ([`SinkRecord::value_as`]); `None` when built by hand.
    pub value_converted: Option<Converted>,
    /// How many times delivery was attempted before this call (0 on the first).
    pub attempt: u32,
}

impl SinkRecord {
    /// Decodes the value into a generated type (Avro values; resolution from the writer schema applies).
    pub fn value_as<T: ursa_avro::AvroRecord>(&self) -> Result<Option<T>, ConvertError> {
        match &self.value_converted {
            Some(c) => c.decode_as::<T>(),
            None => Ok(None),
        }
    }
}

/// What happened to one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written; the offset may move past it.
    Delivered,
    /// Failed in a way that may pass later (timeouts, 5xx, 429); `retry_after` honours a remote's request.
    Retriable {
        /// Why.
        reason: String,
        /// The delay the remote asked for.
        retry_after: Option<Duration>,
    },
    /// Will never succeed (a 4xx, invalid content): dead-lettered or skipped per `errors.tolerance`.
    Permanent {
        /// Why.
        reason: String,
        /// The sink's own detail for the DLQ header (e.g. an HTTP status and body).
        detail: Option<String>,
    },
}

/// Where a sink wants partitions to start: ((topic, partition), offset).
pub type StartingOffsets = Vec<((String, i32), i64)>;

/// A sink-level failure (not about one record).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What failed.
    pub message: String,
    /// Whether trying again later may work.
    pub retriable: bool,
}

impl SinkError {
    /// A failure that may pass.
    pub fn retriable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retriable: true,
        }
    }

    /// A failure that will not pass.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retriable: false,
        }
    }

    /// Whether trying again later may work.
    pub fn is_retriable(&self) -> bool {
        self.retriable
    }
}

/// A running sink.
pub trait Sink: Send + Sync + 'static {
    /// Delivers records of ONE partition, in offset order; returns exactly one outcome per record, in order.
    fn put<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Vec<Outcome>>;

    /// Makes delivered records durable; called before offsets are committed.
    fn flush(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// For sinks that keep their own offsets (exactly-once): where to start each newly assigned partition.
    fn starting_offsets<'a>(
        &'a self,
        _partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Result<StartingOffsets, SinkError>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Whether the sink's destination is reachable (`ursa validate --connect`, readiness).
    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// Releases resources; called once when the connector stops.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// A kind of sink: its name, its config keys, and how to build it.
pub trait SinkPlugin: Send + Sync + 'static {
    /// The `connector.class` value, e.g. `file`.
    fn name(&self) -> &'static str;
    /// Other accepted `connector.class` values (Kafka Connect class names).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// One line on what it does.
    fn description(&self) -> &'static str;
    /// The sink's own config keys (besides the runtime's common keys).
    fn keys(&self) -> Vec<Key>;
    /// Builds the sink from its parsed config (no I/O beyond opening what it needs).
    fn build(&self, config: &Parsed) -> Result<Arc<dyn Sink>, SinkError>;
}
