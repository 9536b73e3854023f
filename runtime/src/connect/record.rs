//! A record as fetched from Kafka: its bytes copied once out of librdkafka's buffer into shared [`Bytes`],
//! which the sink's records and the DLQ then use without copying.

use std::sync::Arc;

use bytes::Bytes;
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use ursa_connect::{Header, TimestampType};

/// The empty header list, shared.
fn no_headers() -> Arc<[Header]> {
    static EMPTY: std::sync::OnceLock<Arc<[Header]>> = std::sync::OnceLock::new();
    Arc::clone(EMPTY.get_or_init(|| Arc::from(Vec::new())))
}

/// A fetched record.
#[derive(Debug, Clone)]
pub struct RawRecord {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The timestamp (ms since the epoch), if any.
    pub timestamp: Option<i64>,
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Headers in order.
    pub headers: Arc<[Header]>,
    /// The key.
    pub key: Option<Bytes>,
    /// The value.
    pub value: Option<Bytes>,
}

impl RawRecord {
    /// Copies a fetched message.
    pub fn from_message(m: &BorrowedMessage<'_>, topic: Arc<str>) -> RawRecord {
        let headers: Arc<[Header]> = match m.headers() {
            Some(hs) if hs.count() > 0 => hs
                .iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(Bytes::copy_from_slice),
                })
                .collect(),
            // Most records have none: one shared empty list, no allocation per record.
            _ => no_headers(),
        };
        let (timestamp, timestamp_type) = match m.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, TimestampType::NotAvailable),
            rdkafka::Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
            rdkafka::Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
        };
        RawRecord {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            headers,
            key: m.key().map(Bytes::copy_from_slice),
            value: m.payload().map(Bytes::copy_from_slice),
        }
    }

    /// Headers from `(key, value)` pairs.
    pub fn headers_of(pairs: Vec<(String, Option<Vec<u8>>)>) -> Arc<[Header]> {
        pairs
            .into_iter()
            .map(|(key, value)| Header {
                key,
                value: value.map(Bytes::from),
            })
            .collect()
    }

    /// Bytes held (for the in-flight bound): key, value, headers and the record's own allocations.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 48)
                .sum::<usize>()
            + 160
    }
}
