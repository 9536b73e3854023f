//! The pipeline's own config keys (deadlines of sink calls, flush failures, DLQ attempts) and their parsed
//! form, with the retry policy of the sink stage.

use std::time::Duration;

use crate::connect::config::{ConnectorConfig, Key, Kind};
use crate::connect::retry::{RetryPolicy, random};

/// The keys, valid for every connector (group `sink`).
pub fn keys() -> Vec<Key> {
    vec![
        Key::optional(
            "sink.put.timeout",
            Kind::Duration,
            "120s",
            "sink",
            "Deadline of one put call; past it the call is dropped and its records retried.",
        ),
        Key::optional(
            "sink.flush.timeout",
            Kind::Duration,
            "60s",
            "sink",
            "Deadline of one flush (pre-commit); past it the flush counts as failed and nothing is committed.",
        ),
        Key::optional(
            "sink.flush.failures.max",
            Kind::Int,
            "10",
            "sink",
            "Flushes failing in a row (retriable errors, deadlines) before the connector fails.",
        ),
        Key::optional(
            "sink.open.timeout",
            Kind::Duration,
            "60s",
            "sink",
            "Deadline of opening newly assigned partitions.",
        ),
        Key::optional(
            "sink.offsets.timeout",
            Kind::Duration,
            "60s",
            "sink",
            "Deadline of asking the sink where newly assigned partitions start.",
        ),
        Key::optional(
            "sink.close.timeout",
            Kind::Duration,
            "30s",
            "sink",
            "Deadline of closing revoked partitions.",
        ),
        Key::optional(
            "sink.revoke.timeout",
            Kind::Duration,
            "10s",
            "sink",
            "How long puts in flight on revoked partitions may take to finish before they are cancelled.",
        ),
        Key::optional(
            "errors.deadletterqueue.produce.timeout",
            Kind::Duration,
            "30s",
            "errors",
            "Deadline of one DLQ write attempt (queueing and acknowledgement); only the record's partition waits.",
        ),
        Key::optional(
            "errors.deadletterqueue.produce.attempts",
            Kind::Int,
            "5",
            "errors",
            "DLQ write attempts before the connector fails (a record is never dropped silently).",
        ),
    ]
}

/// The parsed pipeline keys.
#[derive(Debug, Clone, Copy)]
pub struct PipelineConfig {
    /// `sink.put.timeout`.
    pub put_timeout: Duration,
    /// `sink.flush.timeout`.
    pub flush_timeout: Duration,
    /// `sink.flush.failures.max`.
    pub flush_failures_max: u32,
    /// `sink.open.timeout`.
    pub open_timeout: Duration,
    /// `sink.offsets.timeout`.
    pub offsets_timeout: Duration,
    /// `sink.close.timeout`.
    pub close_timeout: Duration,
    /// `sink.revoke.timeout`.
    pub revoke_timeout: Duration,
    /// `errors.deadletterqueue.produce.timeout`.
    pub dlq_timeout: Duration,
    /// `errors.deadletterqueue.produce.attempts`.
    pub dlq_attempts: u32,
    /// Retries of the sink stage: the delays of `errors.retry.delay.*`, but bounded by attempts or time only
    /// when the operator set `errors.retry.max.attempts` or `errors.retry.timeout` explicitly (a retriable
    /// failure is the destination's, not the record's: by default it is retried until it passes).
    pub sink_retry: RetryPolicy,
    /// Where retry jitter comes from (a uniform draw over `u64`; tests fix it).
    pub jitter: fn() -> u64,
}

impl PipelineConfig {
    /// From a connector's config.
    pub fn of(config: &ConnectorConfig) -> PipelineConfig {
        let p = &config.parsed;
        let d = |k: &str, default: u64| p.duration(k).unwrap_or(Duration::from_secs(default));
        let n = |k: &str, default: u32| {
            p.int(k)
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        let explicit = |k: &str| config.raw.contains_key(k);
        PipelineConfig {
            put_timeout: d("sink.put.timeout", 120),
            flush_timeout: d("sink.flush.timeout", 60),
            flush_failures_max: n("sink.flush.failures.max", 10),
            open_timeout: d("sink.open.timeout", 60),
            offsets_timeout: d("sink.offsets.timeout", 60),
            close_timeout: d("sink.close.timeout", 30),
            revoke_timeout: d("sink.revoke.timeout", 10),
            dlq_timeout: d("errors.deadletterqueue.produce.timeout", 30),
            dlq_attempts: n("errors.deadletterqueue.produce.attempts", 5),
            sink_retry: RetryPolicy {
                max_attempts: if explicit("errors.retry.max.attempts") {
                    config.retry.max_attempts
                } else {
                    0
                },
                max_elapsed: if explicit("errors.retry.timeout") {
                    config.retry.max_elapsed
                } else {
                    Duration::ZERO
                },
                ..config.retry
            },
            jitter: random,
        }
    }
}
