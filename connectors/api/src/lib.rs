//! `ursa-connect`, the connector SDK of ursa (Kafka Connect's connect-api): what a sink connector
//! implements and what it gets from the runtime, with no dependency on the runtime itself.
//!
//! - [`Sink`] and [`SinkPlugin`]: the interface, with its life cycle, deadlines and cancel-safety
//!   ([`sink`] documents them).
//! - [`SinkRecord`], [`Payload`]: records with shared bytes and lazily built JSON; [`Outcome`] per record
//!   and [`SinkError`] per call. A sink says which form the runtime builds before `put`
//!   ([`Sink::conversion`]): the JSON tree (fields of generic values), the JSON text (sinks that write JSON
//!   out: Avro goes straight into text, no tree), or nothing (typed sinks decode with `value_as`).
//! - [`config`]: typed config keys ([`Key`], [`Kind`], [`Parsed`]) and [`Secret`]s.
//! - [`SinkContext`]: names, metrics with bounded labels, tokio's clock, pause/resume/commit requests.
//! - [`limit`]: a shared rate and concurrency limiter with per-key limits; [`batch`]: batching across
//!   partitions with linger.
//! - `testing` (feature `testing`): a harness that drives a sink through open/put/flush/close.

pub mod avro;
pub mod batch;
pub mod config;
pub mod context;
pub mod limit;
pub mod outcome;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod record;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;
use std::pin::Pin;

/// A boxed future (the SDK's traits are object-safe).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub use avro::AvroWriter;
pub use batch::{BatchConfig, Batcher};
pub use config::{FieldErrors, Key, Kind, Parsed, Secret, SecretError, Value};
pub use context::{Request, SinkContext, SinkMetrics};
pub use limit::{LimitConfig, Limiter, Permit, Rate};
pub use outcome::{Outcome, SinkError};
pub use record::{
    DecodeError, Format, Header, Offsets, Payload, SinkRecord, TimestampType, TopicPartition,
};
pub use sink::{Conversion, Sink, SinkPlugin};

/// Where a sink wants partitions to start (see [`Sink::starting_offsets`]).
pub type StartingOffsets = Offsets;
