//! Records as a sink sees them: where they come from, their headers, and key and value [`Payload`]s whose
//! bytes are shared with the runtime (never copied per sink call or retry) and whose JSON form is built only
//! when a sink asks for it.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;
use ursa_avro::AvroRecord;

use crate::avro::AvroWriter;

/// A topic partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// `topic`-`partition`.
    pub fn new(topic: impl Into<Arc<str>>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// Offsets per partition: the next offset to read or commit (one past the last record done).
pub type Offsets = std::collections::BTreeMap<TopicPartition, i64>;

/// What a record's timestamp means (Kafka's `TimestampType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TimestampType {
    /// The record has no timestamp.
    #[default]
    NotAvailable,
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when it appended the record.
    LogAppendTime,
}

/// One record header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key.
    pub key: String,
    /// The value (a header may have none).
    pub value: Option<Bytes>,
}

/// How a payload's bytes are to be read.
#[derive(Debug, Clone)]
pub enum Format {
    /// Confluent Avro: magic byte, 4-byte schema id, datum; the writer schema is resolved already.
    Avro(Arc<AvroWriter>),
    /// JSON text.
    Json,
    /// UTF-8 text (a JSON string).
    String,
    /// Raw bytes (a base64 JSON string).
    Bytes,
}

impl Format {
    /// `avro`, `json`, `string` or `bytes`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Avro(_) => "avro",
            Format::Json => "json",
            Format::String => "string",
            Format::Bytes => "bytes",
        }
    }
}

/// Why a payload could not be decoded on a sink's request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The Avro datum does not decode with its writer schema.
    #[error("malformed Avro datum for schema id {id}: {message}")]
    MalformedAvro {
        /// The schema id.
        id: u32,
        /// The decoder's message.
        message: String,
    },
    /// The writer schema does not resolve to the requested type.
    #[error("writer schema id {id} cannot be read as {type_name}: {message}")]
    IncompatibleSchema {
        /// The schema id.
        id: u32,
        /// The requested type.
        type_name: &'static str,
        /// Why.
        message: String,
    },
    /// Typed decoding of a payload that is not Avro.
    #[error("the payload is {format}, not Avro, so it cannot be decoded as {type_name}")]
    NotAvro {
        /// The payload's format.
        format: &'static str,
        /// The requested type.
        type_name: &'static str,
    },
    /// Not valid JSON.
    #[error("invalid JSON: {message}")]
    InvalidJson {
        /// The parser's message (with line and column).
        message: String,
    },
    /// Not valid UTF-8.
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// The first byte that is not valid UTF-8.
        offset: usize,
    },
}

impl DecodeError {
    /// A stable short name, as the runtime's converter errors (`ursa.convert.MalformedAvro`, …).
    pub fn class_name(&self) -> &'static str {
        match self {
            DecodeError::MalformedAvro { .. } => "ursa.convert.MalformedAvro",
            DecodeError::IncompatibleSchema { .. } => "ursa.convert.IncompatibleSchema",
            DecodeError::NotAvro { .. } => "ursa.convert.NotAvro",
            DecodeError::InvalidJson { .. } => "ursa.convert.InvalidJson",
            DecodeError::InvalidUtf8 { .. } => "ursa.convert.InvalidUtf8",
        }
    }
}

static NULL: Value = Value::Null;

/// A key or value: its bytes (shared, `None` for a null payload) and how to read them. Cheap to clone.
///
/// The JSON form ([`Payload::json`]) is built on first use and kept; typed sinks use
/// [`Payload::decode_as`], which decodes straight from the bytes and never builds it.
#[derive(Clone, Default)]
pub struct Payload(Option<Arc<Inner>>);

struct Inner {
    bytes: Bytes,
    format: Format,
    json: OnceLock<Result<Value, DecodeError>>,
    /// The compact JSON text, when the runtime built it ([`crate::Conversion::JsonText`]).
    text: Option<Bytes>,
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("Payload(null)"),
            Some(i) => f
                .debug_struct("Payload")
                .field("format", &i.format.as_str())
                .field("len", &i.bytes.len())
                .field("json", &i.json.get())
                .field("text", &i.text.as_ref().map(Bytes::len))
                .finish(),
        }
    }
}

impl Payload {
    /// A null payload (a tombstone value, or no key).
    pub fn null() -> Payload {
        Payload(None)
    }

    /// Bytes to be read as `format`; the JSON form is built when asked for.
    pub fn new(bytes: Bytes, format: Format) -> Payload {
        Payload(Some(Arc::new(Inner {
            bytes,
            format,
            json: OnceLock::new(),
            text: None,
        })))
    }

    /// Bytes whose compact JSON text is known already (the runtime wrote it eagerly, see
    /// [`crate::Conversion::JsonText`]); the tree is built from the bytes if asked for.
    pub fn with_json_text(bytes: Bytes, format: Format, text: Bytes) -> Payload {
        Payload(Some(Arc::new(Inner {
            bytes,
            format,
            json: OnceLock::new(),
            text: Some(text),
        })))
    }

    /// Bytes whose JSON form is known already (the runtime converted them eagerly).
    pub fn with_json(bytes: Bytes, format: Format, json: Value) -> Payload {
        let cell = OnceLock::new();
        let _ = cell.set(Ok(json));
        Payload(Some(Arc::new(Inner {
            bytes,
            format,
            json: cell,
            text: None,
        })))
    }

    /// A JSON payload from a value (tests, sinks that build records).
    pub fn json_value(value: Value) -> Payload {
        let text = serde_json::to_vec(&value).unwrap_or_default();
        Payload::with_json(Bytes::from(text), Format::Json, value)
    }

    /// Whether the payload is null.
    pub fn is_null(&self) -> bool {
        self.0.is_none()
    }

    /// The bytes as they were in Kafka (`None` for a null payload).
    pub fn bytes(&self) -> Option<&Bytes> {
        self.0.as_ref().map(|i| &i.bytes)
    }

    /// How the bytes are read (`None` for a null payload).
    pub fn format(&self) -> Option<&Format> {
        self.0.as_ref().map(|i| &i.format)
    }

    /// The registry schema id, for Avro.
    pub fn schema_id(&self) -> Option<u32> {
        match self.format() {
            Some(Format::Avro(w)) => Some(w.id()),
            _ => None,
        }
    }

    /// Whether the JSON text was built before the sink got the payload.
    pub fn has_json_text(&self) -> bool {
        self.0.as_ref().is_some_and(|i| i.text.is_some())
    }

    /// Whether the JSON form has been built.
    pub fn has_json(&self) -> bool {
        self.0.as_ref().is_some_and(|i| i.json.get().is_some())
    }

    /// The JSON form (`null` for a null payload), built on first use: Avro decoded with its writer schema,
    /// JSON parsed, text as a string, bytes as base64.
    pub fn json(&self) -> Result<&Value, DecodeError> {
        let Some(inner) = &self.0 else {
            return Ok(&NULL);
        };
        inner
            .json
            .get_or_init(|| to_json(&inner.bytes, &inner.format))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// For an Avro payload, decodes the parts of its JSON form that `wanted` names into `parts`, straight
    /// from the datum (see [`ursa_avro::value::decode_parts`]: strings borrowed, nothing kept in the payload);
    /// `None` for other formats and null payloads, whose [`Payload::json`] serves instead.
    pub fn parts_wanted<'a>(
        &'a self,
        wanted: &ursa_avro::value::Wanted,
        parts: &mut ursa_avro::value::Parts<'a>,
    ) -> Option<Result<(), DecodeError>> {
        let inner = self.0.as_ref()?;
        let Format::Avro(writer) = &inner.format else {
            return None;
        };
        let datum = inner
            .bytes
            .get(ursa_avro::wire::HEADER_LEN..)
            .unwrap_or_default();
        let set = writer.schema_set();
        Some(
            ursa_avro::value::decode_parts(set, set.last_root(), datum, wanted, parts).map_err(
                |e| DecodeError::MalformedAvro {
                    id: writer.id(),
                    message: e.to_string(),
                },
            ),
        )
    }

    /// Appends the JSON text of [`Payload::json`]'s value to `out` (compact), without building the value when
    /// it is not built yet: Avro is written straight from the datum, text and bytes as strings. On an error
    /// `out` is left as it was.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), DecodeError> {
        let Some(inner) = &self.0 else {
            out.extend_from_slice(b"null");
            return Ok(());
        };
        if let Some(text) = &inner.text {
            out.extend_from_slice(text);
            return Ok(());
        }
        if let Some(json) = inner.json.get() {
            let v = json.as_ref().map_err(Clone::clone)?;
            // Writing into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, v);
            return Ok(());
        }
        match &inner.format {
            Format::Avro(writer) => {
                let datum = inner
                    .bytes
                    .get(ursa_avro::wire::HEADER_LEN..)
                    .unwrap_or_default();
                writer
                    .write_json(datum, out)
                    .map_err(|e| DecodeError::MalformedAvro {
                        id: writer.id(),
                        message: e.to_string(),
                    })
            }
            Format::String => match std::str::from_utf8(&inner.bytes) {
                Ok(s) => {
                    ursa_avro::value::write_json_str(out, s);
                    Ok(())
                }
                Err(e) => Err(DecodeError::InvalidUtf8 {
                    offset: e.valid_up_to(),
                }),
            },
            Format::Json | Format::Bytes => {
                let v = self.json()?;
                let _ = serde_json::to_writer(&mut *out, v);
                Ok(())
            }
        }
    }

    /// Decodes an Avro payload into the generated type `T` straight from the bytes (schema resolution from
    /// the writer schema); `None` for a null payload.
    pub fn decode_as<T: AvroRecord>(&self) -> Result<Option<T>, DecodeError> {
        let Some(inner) = &self.0 else {
            return Ok(None);
        };
        match &inner.format {
            Format::Avro(writer) => writer
                .decode_typed::<T>(&inner.bytes)
                .map(Some)
                .map_err(|e| match e {
                    ursa_avro::Error::Resolution(_) | ursa_avro::Error::Schema(_) => {
                        DecodeError::IncompatibleSchema {
                            id: writer.id(),
                            type_name: T::FULL_NAME,
                            message: e.to_string(),
                        }
                    }
                    e => DecodeError::MalformedAvro {
                        id: writer.id(),
                        message: e.to_string(),
                    },
                }),
            other => Err(DecodeError::NotAvro {
                format: other.as_str(),
                type_name: T::FULL_NAME,
            }),
        }
    }

    /// Memory held by this payload beyond its handle: the bytes, and the JSON form once built (estimated).
    pub fn held_bytes(&self) -> usize {
        match &self.0 {
            None => 0,
            Some(i) => {
                i.bytes.len()
                    + i.text.as_ref().map_or(0, Bytes::len)
                    + match i.json.get() {
                        Some(Ok(v)) => json_size(v),
                        _ => 0,
                    }
            }
        }
    }
}

fn to_json(bytes: &[u8], format: &Format) -> Result<Value, DecodeError> {
    match format {
        Format::Avro(writer) => {
            let datum = bytes.get(ursa_avro::wire::HEADER_LEN..).unwrap_or_default();
            writer
                .decode_json(datum)
                .map_err(|e| DecodeError::MalformedAvro {
                    id: writer.id(),
                    message: e.to_string(),
                })
        }
        Format::Json => serde_json::from_slice(bytes).map_err(|e| DecodeError::InvalidJson {
            message: e.to_string(),
        }),
        Format::String => match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::String(s.to_owned())),
            Err(e) => Err(DecodeError::InvalidUtf8 {
                offset: e.valid_up_to(),
            }),
        },
        Format::Bytes => Ok(Value::String(ursa_avro::value::encode_base64(bytes))),
    }
}

/// An estimate of the heap a JSON tree holds (its nodes, strings and map entries).
pub fn json_size(v: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    match v {
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
        Value::String(s) => NODE + s.capacity(),
        Value::Array(a) => NODE + a.iter().map(json_size).sum::<usize>(),
        // An ordered map entry: the key, the value, the index slot and hash.
        Value::Object(m) => {
            NODE + m
                .iter()
                .map(|(k, v)| k.capacity() + json_size(v) + 3 * std::mem::size_of::<usize>())
                .sum::<usize>()
        }
    }
}

/// A record as a sink sees it. Cloning is cheap: the bytes, headers and converted forms are shared.
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
    /// What the timestamp means.
    pub timestamp_type: TimestampType,
    /// Headers in order.
    pub headers: Arc<[Header]>,
    /// The key.
    pub key: Payload,
    /// The value.
    pub value: Payload,
    /// How many times delivery was attempted before this call (0 on the first).
    pub attempt: u32,
}

impl SinkRecord {
    /// A record with no headers, key or value (set the fields you need).
    pub fn new(topic: impl Into<Arc<str>>, partition: i32, offset: i64) -> SinkRecord {
        SinkRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp: None,
            timestamp_type: TimestampType::NotAvailable,
            headers: Arc::from(Vec::new()),
            key: Payload::null(),
            value: Payload::null(),
            attempt: 0,
        }
    }

    /// Its partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: Arc::clone(&self.topic),
            partition: self.partition,
        }
    }

    /// The value's JSON form (see [`Payload::json`]).
    pub fn value_json(&self) -> Result<&Value, DecodeError> {
        self.value.json()
    }

    /// The key's JSON form.
    pub fn key_json(&self) -> Result<&Value, DecodeError> {
        self.key.json()
    }

    /// Decodes the value into a generated type (see [`Payload::decode_as`]).
    pub fn value_as<T: AvroRecord>(&self) -> Result<Option<T>, DecodeError> {
        self.value.decode_as::<T>()
    }

    /// Memory this record holds: payloads (bytes and JSON once built), headers and a fixed overhead.
    pub fn held_bytes(&self) -> usize {
        self.key.held_bytes()
            + self.value.held_bytes()
            + self
                .headers
                .iter()
                .map(|h| h.key.len() + h.value.as_ref().map_or(0, Bytes::len) + 48)
                .sum::<usize>()
            + std::mem::size_of::<SinkRecord>()
    }
}
