//! A record as fetched from Kafka: its bytes copied once out of librdkafka's buffer into shared [`Bytes`],
//! which the sink's records and the DLQ then use without copying.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rdkafka::Message;
use rdkafka::message::{BorrowedMessage, Headers};
use ursa_connect::{Header, TimestampType};

/// The key and the value copied into one buffer that both share: one allocation for the bytes and one for
/// the reference count, where copies of their own and their first clones (the converters') took four.
fn shared_copies(key: Option<&[u8]>, value: Option<&[u8]>) -> (Option<Bytes>, Option<Bytes>) {
    let mut buf =
        BytesMut::with_capacity(key.map_or(0, <[u8]>::len) + value.map_or(0, <[u8]>::len));
    let mut copy = |b: &[u8]| {
        buf.extend_from_slice(b);
        buf.split().freeze()
    };
    let key = key.map(&mut copy);
    let value = value.map(&mut copy);
    (key, value)
}

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
        let (key, value) = shared_copies(m.key(), m.payload());
        RawRecord {
            topic,
            partition: m.partition(),
            offset: m.offset(),
            timestamp,
            timestamp_type,
            headers,
            key,
            value,
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

#[cfg(test)]
mod tests {
    use super::shared_copies;

    #[test]
    fn key_and_value_are_copied_apart_into_one_buffer() {
        let (k, v) = shared_copies(Some(b"key"), Some(b"a value"));
        assert_eq!(k.as_deref(), Some(&b"key"[..]));
        assert_eq!(v.as_deref(), Some(&b"a value"[..]));
        // Dropping one leaves the other whole.
        drop(k);
        assert_eq!(v.as_deref(), Some(&b"a value"[..]));
        for (key, value) in [
            (None, Some(&b"v"[..])),
            (Some(&b""[..]), None),
            (None, None),
        ] {
            let (k, v) = shared_copies(key, value);
            assert_eq!((k.as_deref(), v.as_deref()), (key, value));
        }
    }
}
