//! Converters: how a record's key or value bytes become the JSON a sink writes, per connector and per part.
//!
//! - `avro`: the Confluent wire format (magic byte 0x00, a 4-byte big-endian schema id, the Avro datum). The
//!   writer schema is fetched from the Schema Registry by id — with the schemas its references name, fetched by
//!   subject and version, transitively — and parsed once per id; the datum is decoded into generic JSON by
//!   [`ursa_avro::value::decode_json`] (its module documents the representation). The converted record keeps
//!   the schema id and the bytes, so a sink can also decode it into a generated type with
//!   [`Converted::decode_as`] (one [`ursa_avro::ConfluentDecoder`] per type, shared by the converter).
//! - `json`: the bytes must be JSON; the value is the parsed JSON.
//! - `string`: the bytes must be UTF-8; the value is a JSON string.
//! - `bytes`: passed through; the JSON form is a standard base64 string.
//!
//! A null payload (a tombstone) is JSON `null` for every converter. Failures are [`ConvertError`]s that say
//! what and where, whether retrying can help ([`ConvertError::is_retriable`]: only registry trouble), and a
//! stable class name for the DLQ ([`ConvertError::class_name`]).

mod avro;
mod converted;
mod error;
mod json_text;
mod kind;
mod plain;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use ursa_connect::{Conversion, Format, Payload};
use ursa_registry::RegistryClient;

pub use converted::Converted;
pub use error::{ConvertError, Origin, Part};
pub use kind::ConverterKind;

/// Converts the keys or the values of a connector's records. Cheap to clone: clones share the schema caches.
#[derive(Clone)]
pub struct Converter {
    kind: ConverterKind,
    part: Part,
    avro: Option<Arc<avro::AvroConverter>>,
}

impl std::fmt::Debug for Converter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Converter")
            .field("kind", &self.kind)
            .field("part", &self.part)
            .finish()
    }
}

impl Converter {
    /// A converter of values; `registry` is required for [`ConverterKind::Avro`] and ignored otherwise.
    pub fn new(
        kind: ConverterKind,
        registry: Option<Arc<RegistryClient>>,
    ) -> Result<Converter, ConvertError> {
        let avro = match (kind, registry) {
            (ConverterKind::Avro, Some(client)) => Some(Arc::new(avro::AvroConverter::new(client))),
            (ConverterKind::Avro, None) => {
                return Err(ConvertError::Config(
                    "the avro converter needs a schema registry (set schema.registry.url)".into(),
                ));
            }
            _ => None,
        };
        Ok(Converter {
            kind,
            part: Part::Value,
            avro,
        })
    }

    /// The same converter for keys (errors then say "key of topic …").
    pub fn for_keys(mut self) -> Converter {
        self.part = Part::Key;
        self
    }

    /// The kind.
    pub fn kind(&self) -> ConverterKind {
        self.kind
    }

    /// Keys or values.
    pub fn part(&self) -> Part {
        self.part
    }

    /// Converts the key or value bytes of a record of `topic`; `None` is a tombstone (JSON `null`).
    pub async fn convert(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<Converted, ConvertError> {
        let at = self.origin(topic);
        let payload = self
            .payload(
                topic,
                bytes.map(bytes::Bytes::copy_from_slice),
                Conversion::JsonTree,
            )
            .await?;
        Ok(Converted::new(payload, at, self.kind))
    }

    fn origin(&self, topic: &str) -> Origin {
        self.at(topic).origin()
    }

    fn at<'a>(&self, topic: &'a str) -> error::At<'a> {
        error::At {
            topic,
            part: self.part,
        }
    }

    /// The payload a sink gets for these bytes (shared, not copied). The framing is checked and Avro writer
    /// schemas are resolved in any case (registry trouble is retried, a bad frame is the record's fault);
    /// the JSON tree or text is built too as `conversion` asks, so a payload that does not decode fails
    /// here, at the converter stage. With [`Conversion::OnDemand`] either form is built only if the sink
    /// asks for it.
    pub async fn payload(
        &self,
        topic: &str,
        bytes: Option<bytes::Bytes>,
        conversion: Conversion,
    ) -> Result<Payload, ConvertError> {
        match self.payload_now(topic, bytes, conversion) {
            Ok(done) => done,
            Err(bytes) => match &self.avro {
                Some(avro) => avro.payload(self.at(topic), bytes, conversion).await,
                None => Err(no_registry()),
            },
        }
    }

    /// [`Converter::payload`] without waiting: what every kind gives at once, except an Avro payload whose
    /// writer schema is not parsed yet, whose bytes come back (`Err`) for [`Converter::payload`] to fetch
    /// the schema. The pipeline converts most records this way, without building a future for each.
    pub fn payload_now(
        &self,
        topic: &str,
        bytes: Option<bytes::Bytes>,
        conversion: Conversion,
    ) -> Result<Result<Payload, ConvertError>, bytes::Bytes> {
        let Some(bytes) = bytes else {
            return Ok(Ok(Payload::null()));
        };
        let at = self.at(topic);
        match (self.kind, &self.avro) {
            (ConverterKind::Avro, Some(avro)) => avro.payload_cached(at, bytes, conversion),
            (ConverterKind::Avro, None) => Ok(Err(no_registry())),
            _ => Ok(self.schemaless(at, bytes, conversion)),
        }
    }

    /// The payload of the JSON, string and bytes converters.
    fn schemaless(
        &self,
        at: error::At<'_>,
        bytes: bytes::Bytes,
        conversion: Conversion,
    ) -> Result<Payload, ConvertError> {
        match self.kind {
            ConverterKind::Avro => Err(no_registry()),
            ConverterKind::Json => match conversion {
                Conversion::JsonTree => {
                    let json = plain::json(at, &bytes)?;
                    Ok(Payload::with_json(bytes, Format::Json, json))
                }
                Conversion::JsonText => {
                    let text = plain::json_text(at, &bytes)?;
                    Ok(Payload::with_json_text(bytes, Format::Json, text))
                }
                Conversion::OnDemand => Ok(Payload::new(bytes, Format::Json)),
            },
            ConverterKind::String => match conversion {
                Conversion::JsonTree => {
                    let json = plain::string(at, &bytes)?;
                    Ok(Payload::with_json(bytes, Format::String, json))
                }
                Conversion::JsonText | Conversion::OnDemand => {
                    plain::check_utf8(at, &bytes)?;
                    // A string's JSON text is one escape pass away: written when the sink asks.
                    Ok(Payload::new(bytes, Format::String))
                }
            },
            ConverterKind::Bytes => match conversion {
                Conversion::JsonTree => {
                    let json = plain::bytes(&bytes);
                    Ok(Payload::with_json(bytes, Format::Bytes, json))
                }
                Conversion::JsonText | Conversion::OnDemand => {
                    Ok(Payload::new(bytes, Format::Bytes))
                }
            },
        }
    }
}

/// A record's JSON text as shared bytes that hold exactly its length: the buffer shrunk in place (the
/// allocators shrink without moving) rather than kept whole behind a second allocation, which `Bytes` makes
/// for a `Vec` with spare capacity (and which the in-flight bound would not see).
fn shared_text(text: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from(text.into_boxed_slice())
}

fn no_registry() -> ConvertError {
    ConvertError::Config("the avro converter has no schema registry".into())
}
