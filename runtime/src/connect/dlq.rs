//! The dead letter queue: a failed record re-published byte for byte with Kafka Connect's context headers
//! and ours; the offset moves past the record only after the DLQ write is acknowledged.
//!
//! With context headers on, the DLQ record's timestamp is the time of its last failure, so that the DLQ topic's
//! retention counts from the dead-lettering and `ursa dlq replay --from TIME` finds its start with ListOffsets
//! by timestamp; the original timestamp travels in `__ursa.errors.original.timestamp.ms` and replay restores it.
//! (Kafka Connect keeps the original timestamp: a record older than the DLQ's retention is then deleted at
//! once.) Without context headers the original timestamp is kept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::record::RawRecord;
use super::telemetry::Stage;

/// Why a record was dead-lettered.
#[derive(Debug, Clone)]
pub struct Failure {
    /// Where it failed.
    pub stage: Stage,
    /// The component that failed (e.g. `ursa.sink.file`, `ursa.convert.avro`).
    pub class_name: String,
    /// The error's class (e.g. `ursa.convert.BadMagicByte`, `ursa.sink.Permanent`).
    pub exception_class: String,
    /// The error message.
    pub message: String,
    /// The error with its causes, one per line.
    pub stacktrace: String,
    /// Delivery attempts made.
    pub attempts: u32,
    /// When it first failed.
    pub first_failure: SystemTime,
    /// When it last failed.
    pub last_failure: SystemTime,
    /// The writer schema id, for Avro.
    pub schema_id: Option<u32>,
    /// The sink's own detail (e.g. an HTTP status and body).
    pub detail: Option<String>,
}

/// The header carrying the original record's timestamp (ms since the epoch) when the DLQ record is stamped with
/// its failure time.
pub const ORIGINAL_TIMESTAMP: &str = "__ursa.errors.original.timestamp.ms";

fn millis(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
        .to_string()
}

/// Writes failed records to a DLQ topic.
pub struct DeadLetterQueue {
    producer: FutureProducer,
    topic: String,
    connector: String,
    context_headers: bool,
}

impl DeadLetterQueue {
    /// A DLQ writer; the producer should use `acks=all` and idempotence.
    pub fn new(
        producer: FutureProducer,
        topic: String,
        connector: String,
        context_headers: bool,
    ) -> Self {
        DeadLetterQueue {
            producer,
            topic,
            connector,
            context_headers,
        }
    }

    /// The DLQ topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The headers of the DLQ record: the original ones, then the context headers.
    pub fn headers(&self, record: &RawRecord, failure: &Failure) -> OwnedHeaders {
        let mut h = OwnedHeaders::new_with_capacity(record.headers.len() + 16);
        for hd in record.headers.iter() {
            h = h.insert(Header {
                key: &hd.key,
                value: hd.value.as_deref(),
            });
        }
        if !self.context_headers {
            return h;
        }
        let partition = record.partition.to_string();
        let offset = record.offset.to_string();
        let attempts = failure.attempts.to_string();
        let first = millis(failure.first_failure);
        let last = millis(failure.last_failure);
        let schema_id = failure.schema_id.map(|i| i.to_string());
        let original_ts = record.timestamp.map(|t| t.to_string());
        let pairs: [(&str, Option<&str>); 16] = [
            ("__connect.errors.topic", Some(&record.topic)),
            ("__connect.errors.partition", Some(&partition)),
            ("__connect.errors.offset", Some(&offset)),
            ("__connect.errors.connector.name", Some(&self.connector)),
            ("__connect.errors.task.id", Some("0")),
            ("__connect.errors.stage", Some(failure.stage.as_str())),
            ("__connect.errors.class.name", Some(&failure.class_name)),
            (
                "__connect.errors.exception.class.name",
                Some(&failure.exception_class),
            ),
            ("__connect.errors.exception.message", Some(&failure.message)),
            (
                "__connect.errors.exception.stacktrace",
                Some(&failure.stacktrace),
            ),
            ("__ursa.errors.attempts", Some(&attempts)),
            ("__ursa.errors.first.failure.ms", Some(&first)),
            ("__ursa.errors.last.failure.ms", Some(&last)),
            ("__ursa.errors.schema.id", schema_id.as_deref()),
            ("__ursa.errors.sink.detail", failure.detail.as_deref()),
            (ORIGINAL_TIMESTAMP, original_ts.as_deref()),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                h = h.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        h
    }

    /// Publishes the record (its original bytes) and waits for the broker's acknowledgement, at most
    /// `timeout` in all (queueing and delivery; the producer's `message.timeout.ms` should not exceed it, so
    /// that a timed-out attempt is not delivered later beside its retry).
    pub async fn send(
        &self,
        record: &RawRecord,
        failure: &Failure,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut r: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.topic).headers(self.headers(record, failure));
        if let Some(k) = &record.key {
            r = r.key(k.as_ref());
        }
        if let Some(v) = &record.value {
            r = r.payload(v.as_ref());
        }
        let timestamp = if self.context_headers {
            failure
                .last_failure
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64)
        } else {
            record.timestamp
        };
        if let Some(ts) = timestamp {
            r = r.timestamp(ts);
        }
        match tokio::time::timeout(timeout, self.producer.send(r, timeout)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(format!("writing to DLQ topic {}: {e}", self.topic)),
            Err(_) => Err(format!(
                "writing to DLQ topic {}: no acknowledgement within {timeout:?}",
                self.topic
            )),
        }
    }
}
