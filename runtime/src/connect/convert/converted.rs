//! A converted key or value: its JSON, and for Avro the schema id and the payload, so a sink can also
//! decode it into a generated type ([`Converted::decode_as`]).

use std::fmt;

use serde_json::Value;
use ursa_avro::AvroRecord;
use ursa_connect::{Format, Payload};

use super::{ConvertError, ConverterKind, Origin};

/// A converted key or value.
#[derive(Clone)]
pub struct Converted {
    /// The generic JSON form (`null` for a tombstone).
    pub json: Value,
    /// The writer schema id, for Avro.
    pub schema_id: Option<u32>,
    payload: Payload,
    at: Origin,
    kind: ConverterKind,
}

impl Converted {
    /// The JSON form of an eagerly converted payload.
    pub(super) fn new(payload: Payload, at: Origin, kind: ConverterKind) -> Converted {
        Converted {
            json: payload.json().cloned().unwrap_or(Value::Null),
            schema_id: payload.schema_id(),
            payload,
            at,
            kind,
        }
    }

    /// The payload (shared bytes, lazily decoded forms) as a sink gets it.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Whether the payload was null (a tombstone).
    pub fn is_tombstone(&self) -> bool {
        self.payload.is_null()
    }

    /// Decodes the Avro payload into the generated type `T` (schema resolution from the writer schema, plans
    /// cached per type and schema id by the converter); `None` for a tombstone. A payload not converted from
    /// Avro is a [`ConvertError::NotAvro`]; a writer schema that does not resolve to `T` a
    /// [`ConvertError::IncompatibleSchema`].
    pub fn decode_as<T: AvroRecord>(&self) -> Result<Option<T>, ConvertError> {
        let Some(bytes) = self.payload.bytes() else {
            return Ok(None);
        };
        let Some(Format::Avro(writer)) = self.payload.format() else {
            return Err(ConvertError::NotAvro {
                at: self.at.clone(),
                kind: self.kind,
                type_name: T::FULL_NAME,
            });
        };
        let id = writer.id();
        writer
            .decode_typed::<T>(bytes)
            .map(Some)
            .map_err(|source| match source {
                ursa_avro::Error::Resolution(_) | ursa_avro::Error::Schema(_) => {
                    ConvertError::IncompatibleSchema {
                        at: self.at.clone(),
                        id,
                        type_name: T::FULL_NAME,
                        source,
                    }
                }
                source => ConvertError::MalformedAvro {
                    at: self.at.clone(),
                    id,
                    source,
                },
            })
    }
}

impl fmt::Debug for Converted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.is_tombstone() {
            "tombstone"
        } else {
            self.kind.as_str()
        };
        f.debug_struct("Converted")
            .field("json", &self.json)
            .field("schema_id", &self.schema_id)
            .field("source", &source)
            .finish()
    }
}

impl PartialEq for Converted {
    /// Compares the JSON, the schema id and whether it is a tombstone.
    fn eq(&self, other: &Self) -> bool {
        self.json == other.json
            && self.schema_id == other.schema_id
            && self.is_tombstone() == other.is_tombstone()
    }
}
