//! The Avro converter: Confluent framing, writer schemas fetched from the registry by id with their references
//! and parsed once per id, datums decoded into generic JSON.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use ursa_avro::wire;
use ursa_connect::{AvroWriter, Conversion, Format, Payload};
use ursa_registry::{Reference, RegistryClient, VersionId};

use super::error::At;
use super::error::not_avro_hint;
use super::{ConvertError, Origin};

/// The most schema documents one writer schema may pull in through references (transitively).
const MAX_REFERENCES: usize = 1000;

/// Decodes Confluent Avro with writer schemas from a registry; shared by clones of a converter.
pub(super) struct AvroConverter {
    client: Arc<RegistryClient>,
    /// By schema id, looked up per record: foldhash, not SipHash.
    writers: RwLock<HashMap<u32, Arc<AvroWriter>, foldhash::fast::RandomState>>,
}

impl AvroConverter {
    pub(super) fn new(client: Arc<RegistryClient>) -> Self {
        AvroConverter {
            client,
            writers: RwLock::new(HashMap::default()),
        }
    }

    /// [`AvroConverter::payload`] when the writer schema is parsed already (every record but the first of
    /// each schema id): no await, so no future to build per record. `Err` hands the bytes back when the
    /// schema must be fetched first.
    pub(super) fn payload_cached(
        &self,
        at: At<'_>,
        bytes: Bytes,
        conversion: Conversion,
    ) -> Result<Result<Payload, ConvertError>, Bytes> {
        let id = match split(at, &bytes) {
            Ok((id, _)) => id,
            Err(e) => return Ok(Err(e)),
        };
        let cached = self.writers.read().ok().and_then(|m| m.get(&id).cloned());
        match cached {
            Some(writer) => Ok(decode(at, id, writer, bytes, conversion)),
            None => Err(bytes),
        }
    }

    /// Checks the framing and resolves the writer schema (from the registry, once per id); decodes the
    /// datum into its JSON tree or text as `conversion` asks (so a malformed datum is a converter failure).
    pub(super) async fn payload(
        &self,
        at: At<'_>,
        bytes: Bytes,
        conversion: Conversion,
    ) -> Result<Payload, ConvertError> {
        let (id, _) = split(at, &bytes)?;
        let writer = self.writer(&at.origin(), id).await?;
        decode(at, id, writer, bytes, conversion)
    }

    /// The parsed writer schema `id` (fetched and parsed on first use).
    async fn writer(&self, at: &Origin, id: u32) -> Result<Arc<AvroWriter>, ConvertError> {
        if let Some(w) = self.writers.read().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(w);
        }
        let set = self.fetch(at, id).await?;
        let fresh = Arc::new(AvroWriter::new(id, set));
        Ok(match self.writers.write() {
            Ok(mut m) => Arc::clone(m.entry(id).or_insert(fresh)),
            Err(_) => fresh,
        })
    }

    /// Fetches schema `id` and everything it references, and parses them as one set (the schema last).
    async fn fetch(&self, at: &Origin, id: u32) -> Result<SchemaSet, ConvertError> {
        let invalid = |problem: String| ConvertError::InvalidWriterSchema {
            at: at.clone(),
            id,
            problem,
        };
        let info = self
            .client
            .schema_info_by_id(id)
            .await
            .map_err(|e| ConvertError::registry(at.clone(), id, e))?;
        if let Some(t) = info
            .schema_type
            .as_deref()
            .filter(|t| !t.eq_ignore_ascii_case("AVRO"))
        {
            return Err(invalid(format!("it is a {t} schema, not Avro")));
        }
        let mut files = self.references(at, id, &info.references).await?;
        files.push(SourceFile::new(
            format!("schema id {id}"),
            info.schema.as_str(),
        ));
        let options = ParseOptions {
            logical_types: LogicalTypes::Lenient,
        };
        SchemaSet::parse(files, options).map_err(|e| invalid(e.to_string()))
    }

    /// The documents `references` name, transitively, each once.
    async fn references(
        &self,
        at: &Origin,
        id: u32,
        references: &[Reference],
    ) -> Result<Vec<SourceFile>, ConvertError> {
        let invalid = |problem: String| ConvertError::InvalidWriterSchema {
            at: at.clone(),
            id,
            problem,
        };
        let mut files = Vec::new();
        let mut seen: HashSet<(String, i32)> = HashSet::new();
        let mut pending: Vec<Reference> = references.iter().rev().cloned().collect();
        while let Some(r) = pending.pop() {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            if seen.len() > MAX_REFERENCES {
                return Err(invalid(format!(
                    "it references more than {MAX_REFERENCES} schemas"
                )));
            }
            let version = match r.version {
                -1 => VersionId::Latest,
                v => VersionId::Number(u32::try_from(v).ok().filter(|v| *v > 0).ok_or_else(
                    || {
                        invalid(format!(
                            "reference `{}` names invalid version {v} of subject `{}`",
                            r.name, r.subject
                        ))
                    },
                )?),
            };
            let found = self
                .client
                .version(&r.subject, version)
                .await
                .map_err(|e| {
                    if e.is_retriable() {
                        ConvertError::RegistryUnavailable {
                            at: at.clone(),
                            id,
                            source: e,
                        }
                    } else {
                        invalid(format!(
                            "reference `{}` (subject `{}` version {version}): {e}",
                            r.name, r.subject
                        ))
                    }
                })?;
            pending.extend(found.references.iter().rev().cloned());
            files.push(SourceFile::new(
                format!("{} version {}", found.subject, found.version),
                found.schema,
            ));
        }
        Ok(files)
    }
}

/// Splits the Confluent header off, with errors that say what the payload looks like instead.
fn split<'a>(at: At<'_>, bytes: &'a [u8]) -> Result<(u32, &'a [u8]), ConvertError> {
    match bytes.first() {
        Some(&byte) if byte != wire::MAGIC => Err(ConvertError::BadMagicByte {
            at: at.origin(),
            byte,
            hint: not_avro_hint(bytes),
        }),
        _ => wire::split(bytes).map_err(|_| ConvertError::ShortFrame {
            at: at.origin(),
            len: bytes.len(),
        }),
    }
}

/// The payload of a framed datum whose writer schema is `writer`: its JSON tree or text as `conversion`
/// asks.
fn decode(
    at: At<'_>,
    id: u32,
    writer: Arc<AvroWriter>,
    bytes: Bytes,
    conversion: Conversion,
) -> Result<Payload, ConvertError> {
    let datum = bytes.get(wire::HEADER_LEN..).unwrap_or_default();
    let malformed = |source| ConvertError::MalformedAvro {
        at: at.origin(),
        id,
        source,
    };
    match conversion {
        Conversion::OnDemand => Ok(Payload::new(bytes, Format::Avro(writer))),
        Conversion::JsonTree => {
            let json = writer.decode_json(datum).map_err(malformed)?;
            Ok(Payload::with_json(bytes, Format::Avro(writer), json))
        }
        Conversion::JsonText => {
            let text = writer.json_text(datum).map_err(malformed)?;
            Ok(Payload::with_json_text(
                bytes,
                Format::Avro(writer),
                super::shared_text(text),
            ))
        }
    }
}
