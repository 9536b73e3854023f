//! What a sink answers: one [`Outcome`] per record, or a [`SinkError`] for the whole call.

use std::time::Duration;

/// What happened to one record in a [`crate::Sink::put`] call.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written; the offset may move past it once the sink's flush says it is durable.
    Delivered,
    /// Failed in a way that may pass later (timeouts, 5xx, 429); `retry_after` honours a remote's request.
    /// The runtime retries the record with capped backoff, holding back only its partition, until it passes
    /// (or until `errors.retry.timeout` / `errors.retry.max.attempts`, when the operator set them).
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

impl Outcome {
    /// A retriable outcome without a requested delay.
    pub fn retriable(reason: impl Into<String>) -> Outcome {
        Outcome::Retriable {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A permanent outcome without detail.
    pub fn permanent(reason: impl Into<String>) -> Outcome {
        Outcome::Permanent {
            reason: reason.into(),
            detail: None,
        }
    }
}

/// A sink-level failure, not about one record: the destination is down, a flush failed, the config is wrong.
///
/// The runtime honours [`SinkError::is_retriable`] everywhere: a retriable error from `put` retries the whole
/// call (that partition waits, with capped backoff); from `flush` it keeps the last commit and tries again
/// (and fails the connector once flushes have failed `sink.flush.failures.max` times in a row); from
/// `open`, `close` or `starting_offsets` it retries within the call's deadline. A permanent error fails the
/// connector (which restarts by itself, with backoff, when `restart.auto.enable` is on), except from `close`,
/// whose failures are logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What failed.
    pub message: String,
    /// Whether trying again later may work.
    pub retriable: bool,
    /// The delay the destination asked for before the next try.
    pub retry_after: Option<Duration>,
}

impl SinkError {
    /// A failure that may pass.
    pub fn retriable(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retriable: true,
            retry_after: None,
        }
    }

    /// A failure that will not pass.
    pub fn permanent(message: impl Into<String>) -> Self {
        SinkError {
            message: message.into(),
            retriable: false,
            retry_after: None,
        }
    }

    /// The same failure, with the delay the destination asked for.
    pub fn after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Whether trying again later may work.
    pub fn is_retriable(&self) -> bool {
        self.retriable
    }
}
