//! The sink interface (Kafka Connect's `SinkTask`): partitions opened on assignment and closed on
//! revocation, records in with one outcome each, a pre-commit flush that says what is durable.
//!
//! ## The life of a sink
//! 1. [`SinkPlugin::build`] once per run of a connector (a restart builds a new sink), with its
//!    [`SinkContext`].
//! 2. On every assignment: [`Sink::open`] with the partitions and a new generation, then
//!    [`Sink::starting_offsets`], both before the first fetch of those partitions.
//! 3. [`Sink::put`] with records of ONE partition in offset order; calls for different partitions run
//!    concurrently, so implementations take `&self` and synchronise themselves.
//! 4. [`Sink::flush`] before every commit, with what the runtime considers done per partition; the runtime
//!    commits exactly what it returns (never more than it passed).
//! 5. On revocation: in-flight `put`s finish (within `sink.revoke.timeout`), a flush and commit, then
//!    [`Sink::close`] with the revoked partitions. On stop the same for every partition, then
//!    [`Sink::stop`].
//!
//! ## Deadlines and cancel-safety
//! Every call has a deadline (`sink.put.timeout`, `sink.flush.timeout`, `sink.open.timeout`,
//! `sink.close.timeout`, `sink.offsets.timeout`). Past it the runtime drops the call's future: a `put` is
//! then retried (a retriable failure of the whole call), a `flush` counts as failed (nothing is committed),
//! a hung or failed `open` or `starting_offsets` fails the connector (retriable errors are retried within
//! the deadline first), a hung or failed `close` is logged. The stop (SIGTERM) drain covers the last flush,
//! commit, `close` and `stop` within the worker's drain deadline. So every call must be cancel-safe:
//! dropped at any `.await`, it must leave the sink usable — work it started may still complete (the
//! runtime delivers at least once), but it must not leave locks held or state half-updated. Blocking work
//! belongs in `tokio::task::spawn_blocking`, whose result a dropped call simply never reads.
//!
//! ## Generations
//! The generation passed to `open` changes on every assignment and grows across the workers of a group as
//! long as their clocks agree to within a session timeout (it is the assignment's wall-clock time in
//! microseconds, bumped to stay strictly increasing within a process). An exactly-once sink stores it with
//! its offsets and refuses writes from an older generation: a zombie whose partition was taken over is
//! fenced.

use std::sync::Arc;

use crate::BoxFuture;
use crate::config::{FieldErrors, Key, Parsed};
use crate::context::SinkContext;
use crate::outcome::{Outcome, SinkError};
use crate::record::{Offsets, SinkRecord, TopicPartition};

/// A running sink.
pub trait Sink: Send + Sync + 'static {
    /// Partitions were assigned, with a generation that changes on every assignment.
    fn open<'a>(
        &'a self,
        _partitions: &'a [TopicPartition],
        _generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// For sinks that keep their own offsets (exactly-once): where to start each newly opened partition.
    /// Asked right after `open`, before the first fetch; partitions left out start at the group's
    /// committed offset.
    fn starting_offsets<'a>(
        &'a self,
        _partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async { Ok(Offsets::new()) })
    }

    /// Delivers records of ONE partition, in offset order: exactly one outcome per record, in order; or a
    /// sink-level error (the destination is down) for the whole call, retried per
    /// [`SinkError::is_retriable`].
    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>>;

    /// Pre-commit: makes delivered records durable and returns, per partition, the offset up to which they
    /// are (the next offset to read after a restart). `done` is what the runtime considers done (every
    /// record before it delivered, dead-lettered or skipped); the runtime commits what this returns,
    /// capped at `done`. The default says everything done is durable; a sink that keeps its own offsets
    /// returns an empty map (nothing to commit in Kafka) or what it stored.
    fn flush<'a>(&'a self, done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move { Ok(done.clone()) })
    }

    /// Partitions were revoked (after their last flush and commit): release what belongs to them.
    fn close<'a>(
        &'a self,
        _partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the sink's destination is reachable (`ursa validate --connect`, readiness).
    fn health(&self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }

    /// The connector stops: every partition has been closed. Called once.
    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// What the runtime builds from every record's key and value before `put` (see [`Conversion`]); a
    /// payload that does not decode into it is a converter failure, dead-lettered with stage
    /// `KEY_CONVERTER`/`VALUE_CONVERTER`. The default, [`Conversion::JsonTree`], suits sinks that read
    /// fields of generic values.
    fn conversion(&self) -> Conversion {
        Conversion::JsonTree
    }
}

/// What the runtime builds from each key and value before a sink's `put` ([`Sink::conversion`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Conversion {
    /// The JSON tree ([`crate::Payload::json`]): for sinks that read fields of generic values.
    #[default]
    JsonTree,
    /// The JSON text ([`crate::Payload::write_json`]): for sinks that write JSON out (a JSON-lines file, an
    /// HTTP body). Avro is written straight into text, no tree is built; [`crate::Payload::json`] still
    /// builds the tree if asked.
    JsonText,
    /// Nothing beyond checking the framing (and resolving Avro writer schemas): for typed sinks that decode
    /// with [`crate::SinkRecord::value_as`] and sinks that use the bytes. Either JSON form is built if asked
    /// for, and a payload that does not decode is then the sink's to report.
    OnDemand,
}

/// A kind of sink: its name, its config keys, its own checks, and how to build it.
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

    /// Checks across the sink's keys, after every key parsed (`ursa validate`,
    /// `PUT /connector-plugins/{p}/config/validate`, and before every start): errors per key. No I/O.
    fn validate(&self, _config: &Parsed) -> FieldErrors {
        FieldErrors::new()
    }

    /// Builds the sink from its parsed config (no I/O beyond opening what it needs).
    fn build(&self, config: &Parsed, context: SinkContext) -> Result<Arc<dyn Sink>, SinkError>;
}
