//! The traits generated types implement, and decoding data written with another schema.

use std::sync::OnceLock;

use crate::binary::Reader;
use crate::resolve::Resolver;
use crate::schema::{SchemaError, SchemaSet};
use crate::{Error, wire};

/// A type with an Avro binary encoding: every generated record, enum, fixed and union type.
pub trait AvroType: Sized {
    /// Appends the Avro binary encoding of `self` to `buf`.
    fn encode(&self, buf: &mut Vec<u8>) -> Result<(), Error>;
    /// Reads one value.
    fn decode(r: &mut Reader<'_>) -> Result<Self, Error>;
}

impl<T: AvroType> AvroType for Box<T> {
    fn encode(&self, buf: &mut Vec<u8>) -> Result<(), Error> {
        (**self).encode(buf)
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, Error> {
        T::decode(r).map(Box::new)
    }
}

/// Shown in place of a `"pii": true` field in generated `Debug` output.
pub struct Redacted;

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A topic the catalog binds a type to, with its registry subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The Kafka topic.
    pub topic: &'static str,
    /// The subject of the key schema (per the subject naming strategy).
    pub key_subject: &'static str,
    /// The subject of the value schema.
    pub value_subject: &'static str,
}

/// A generated top-level Avro type (normally a record) with its schema.
pub trait AvroRecord: AvroType + 'static {
    /// The full name, e.g. `com.teddy.child.SafetyViolation`.
    const FULL_NAME: &'static str;
    /// The writer schema: self-contained JSON with docs, defaults, aliases, logical types and custom attributes.
    const SCHEMA: &'static str;
    /// The Parsing Canonical Form of the schema.
    const CANONICAL_FORM: &'static str;
    /// CRC-64-AVRO fingerprint of the canonical form.
    const FINGERPRINT: u64;
    /// Wire names of the fields marked `"pii": true` (redacted in `Debug`).
    const PII_FIELDS: &'static [&'static str];
    /// The topics the catalog binds this type to (as value).
    const BINDINGS: &'static [Binding] = &[];

    /// The parsed [`AvroRecord::SCHEMA`] (parsed once).
    fn schema() -> Result<&'static SchemaSet, Error>;

    /// The Avro binary encoding.
    fn to_avro_datum(&self) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::with_capacity(64);
        self.encode(&mut buf)?;
        Ok(buf)
    }

    /// Decodes data written with this type's own schema; the input must be exactly one datum.
    fn from_avro_datum(bytes: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new(bytes);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Avro's JSON encoding of this value ([`crate::avro_json`]: unions tagged with their branch, bytes as
    /// code points 0–255, logical types as their underlying type).
    fn to_avro_json(&self) -> Result<String, Error> {
        let set = Self::schema()?;
        let json = crate::avro_json::encode_datum(set, set.last_root(), &self.to_avro_datum()?)?;
        serde_json::to_string(&json).map_err(|e| Error::Json(e.to_string()))
    }

    /// Reads Avro's JSON encoding of a value of this type (a missing field takes its default).
    fn from_avro_json(text: &str) -> Result<Self, Error> {
        let json = crate::avro_json::parse(text)?;
        let set = Self::schema()?;
        let mut datum = Vec::new();
        crate::avro_json::decode_datum(set, set.last_root(), &json, &mut datum)?;
        Self::from_avro_datum(&datum)
    }

    /// Decodes data written with a compatible `writer` schema (Avro schema resolution). To decode many
    /// datums, build a [`Resolver`] once with [`Resolver::for_record`] and call [`AvroRecord::from_resolved`].
    fn from_avro_datum_with_writer(bytes: &[u8], writer: &SchemaSet) -> Result<Self, Error> {
        let resolver = Resolver::for_record::<Self>(writer)?;
        Self::from_resolved(bytes, &resolver)
    }

    /// Decodes data through a resolver built for this type.
    fn from_resolved(bytes: &[u8], resolver: &Resolver) -> Result<Self, Error> {
        if resolver.is_identity() {
            return Self::from_avro_datum(bytes);
        }
        let mut buf = Vec::with_capacity(bytes.len() + 16);
        resolver.transcode(bytes, &mut buf)?;
        Self::from_avro_datum(&buf)
    }

    /// Encodes in the Confluent wire format: magic byte 0, the 4-byte big-endian schema id, the datum.
    fn to_confluent(&self, schema_id: u32) -> Result<Vec<u8>, Error> {
        let mut buf = Vec::with_capacity(64);
        wire::write_header(&mut buf, schema_id);
        self.encode(&mut buf)?;
        Ok(buf)
    }

    /// Decodes the Confluent wire format; `writer_schema` returns the schema text for an id (e.g. from a
    /// Schema Registry). Use [`crate::ConfluentDecoder`] to cache lookups and resolution plans.
    fn from_confluent(
        bytes: &[u8],
        writer_schema: impl FnOnce(u32) -> Result<String, String>,
    ) -> Result<Self, Error> {
        let (id, datum) = wire::split(bytes)?;
        let text = writer_schema(id).map_err(|reason| Error::UnknownSchema { id, reason })?;
        let writer = SchemaSet::parse(
            vec![crate::schema::SourceFile::new(
                format!("schema id {id}"),
                text,
            )],
            crate::schema::ParseOptions {
                logical_types: crate::schema::LogicalTypes::Lenient,
            },
        )?;
        Self::from_avro_datum_with_writer(datum, &writer)
    }

    /// [`from_confluent`](Self::from_confluent) for writer schemas with references (schema sets, as
    /// `ursa schema register` stores them): `writer_schema` returns the schema with the texts of those it
    /// references.
    fn from_confluent_with_references(
        bytes: &[u8],
        writer_schema: impl FnOnce(u32) -> Result<crate::WriterSchema, String>,
    ) -> Result<Self, Error> {
        let (id, datum) = wire::split(bytes)?;
        let schema = writer_schema(id).map_err(|reason| Error::UnknownSchema { id, reason })?;
        Self::from_avro_datum_with_writer(datum, &schema.parse(id)?)
    }
}

/// Support for generated code: parses an embedded schema once.
#[doc(hidden)]
pub fn embedded_schema(
    cell: &'static OnceLock<Result<SchemaSet, SchemaError>>,
    text: &'static str,
) -> Result<&'static SchemaSet, Error> {
    cell.get_or_init(|| SchemaSet::parse_str(text))
        .as_ref()
        .map_err(|e| Error::Schema(e.clone()))
}
