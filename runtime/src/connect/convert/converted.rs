//! A converted key or value: its JSON, and for Avro the schema id and the framed bytes, so a sink can also
//! decode it into a generated type ([`Converted::decode_as`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::Value;
use ursa_avro::schema::SchemaSet;
use ursa_avro::{AvroRecord, ConfluentDecoder};

use super::{ConvertError, ConverterKind, Origin};

/// A converted key or value.
#[derive(Clone)]
pub struct Converted {
    /// The generic JSON form (`null` for a tombstone).
    pub json: Value,
    /// The writer schema id, for Avro.
    pub schema_id: Option<u32>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// A null payload.
    Tombstone,
    /// Converted by a converter other than Avro.
    Plain { at: Origin, kind: ConverterKind },
    /// Confluent Avro.
    Avro(Arc<AvroPayload>),
}

/// What typed decoding needs: the framed bytes, the parsed writer schema, the converter's decoders.
pub(super) struct AvroPayload {
    pub(super) at: Origin,
    pub(super) framed: Box<[u8]>,
    pub(super) writer: Arc<WriterSchema>,
    pub(super) typed: Arc<TypedDecoders>,
}

/// A writer schema fetched by id, with its references, parsed once.
pub(super) struct WriterSchema {
    pub(super) set: SchemaSet,
    /// The self-contained form (references inlined), made on the first typed decode.
    self_contained: OnceLock<String>,
}

impl WriterSchema {
    pub(super) fn new(set: SchemaSet) -> Self {
        WriterSchema {
            set,
            self_contained: OnceLock::new(),
        }
    }

    fn self_contained(&self) -> &str {
        self.self_contained
            .get_or_init(|| self.set.full_json(self.set.last_root()).to_string())
    }
}

/// One [`ConfluentDecoder`] per generated type, shared by every record a converter produces.
#[derive(Default)]
pub(super) struct TypedDecoders {
    by_type: RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl TypedDecoders {
    fn get<T: AvroRecord>(&self) -> Arc<ConfluentDecoder<T>> {
        let id = TypeId::of::<T>();
        let found = self.by_type.read().ok().and_then(|m| m.get(&id).cloned());
        let any = match found {
            Some(any) => any,
            None => match self.by_type.write() {
                Ok(mut m) => Arc::clone(
                    m.entry(id)
                        .or_insert_with(|| Arc::new(ConfluentDecoder::<T>::new())),
                ),
                Err(_) => return Arc::new(ConfluentDecoder::new()),
            },
        };
        any.downcast::<ConfluentDecoder<T>>()
            .unwrap_or_else(|_| Arc::new(ConfluentDecoder::new()))
    }
}

impl Converted {
    /// A null payload.
    pub(super) fn tombstone() -> Converted {
        Converted {
            json: Value::Null,
            schema_id: None,
            source: Source::Tombstone,
        }
    }

    /// A payload converted by a converter other than Avro.
    pub(super) fn plain(json: Value, at: Origin, kind: ConverterKind) -> Converted {
        Converted {
            json,
            schema_id: None,
            source: Source::Plain { at, kind },
        }
    }

    /// A Confluent Avro payload.
    pub(super) fn avro(json: Value, id: u32, payload: AvroPayload) -> Converted {
        Converted {
            json,
            schema_id: Some(id),
            source: Source::Avro(Arc::new(payload)),
        }
    }

    /// Whether the payload was null (a tombstone).
    pub fn is_tombstone(&self) -> bool {
        matches!(self.source, Source::Tombstone)
    }

    /// Decodes the Avro payload into the generated type `T` (schema resolution from the writer schema, plans
    /// cached per type and schema id by the converter); `None` for a tombstone. A payload not converted from
    /// Avro is a [`ConvertError::NotAvro`]; a writer schema that does not resolve to `T` a
    /// [`ConvertError::IncompatibleSchema`].
    pub fn decode_as<T: AvroRecord>(&self) -> Result<Option<T>, ConvertError> {
        let p = match &self.source {
            Source::Tombstone => return Ok(None),
            Source::Plain { at, kind } => {
                return Err(ConvertError::NotAvro {
                    at: at.clone(),
                    kind: *kind,
                    type_name: T::FULL_NAME,
                });
            }
            Source::Avro(p) => p,
        };
        let decoder = p.typed.get::<T>();
        let id = self.schema_id.unwrap_or_default();
        decoder
            .decode(&p.framed, |_| Ok(p.writer.self_contained().to_owned()))
            .map(Some)
            .map_err(|source| match source {
                ursa_avro::Error::Resolution(_) | ursa_avro::Error::Schema(_) => {
                    ConvertError::IncompatibleSchema {
                        at: p.at.clone(),
                        id,
                        type_name: T::FULL_NAME,
                        source,
                    }
                }
                source => ConvertError::MalformedAvro {
                    at: p.at.clone(),
                    id,
                    source,
                },
            })
    }
}

impl fmt::Debug for Converted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::Tombstone => "tombstone",
            Source::Plain { kind, .. } => kind.as_str(),
            Source::Avro(_) => "avro",
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
