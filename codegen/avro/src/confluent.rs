//! Decoding Confluent-framed messages into a generated type, caching a resolution plan per writer schema id.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use crate::record::AvroRecord;
use crate::resolve::Resolver;
use crate::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use crate::{Error, wire};

/// A writer schema as a Schema Registry keeps it: its text and, for a schema registered with `references`
/// (a schema set, as `ursa schema register` stores shared types), the text of every schema it references,
/// directly or not, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriterSchema {
    /// The schema's own text (its top-level type is the writer's type).
    pub schema: String,
    /// The referenced schemas' texts.
    pub references: Vec<String>,
}

impl WriterSchema {
    /// A schema without references.
    pub fn new(schema: impl Into<String>) -> Self {
        WriterSchema {
            schema: schema.into(),
            references: Vec::new(),
        }
    }

    /// A schema with the texts of the schemas it references.
    pub fn with_references(schema: impl Into<String>, references: Vec<String>) -> Self {
        WriterSchema {
            schema: schema.into(),
            references,
        }
    }

    /// Parses it (leniently about logical types, as a reader must be) into one schema set whose last root is
    /// the schema itself.
    pub fn parse(&self, schema_id: u32) -> Result<SchemaSet, Error> {
        let mut files: Vec<SourceFile> = self
            .references
            .iter()
            .enumerate()
            .map(|(i, text)| {
                SourceFile::new(
                    format!("schema id {schema_id}, reference {}", i + 1),
                    text.as_str(),
                )
            })
            .collect();
        files.push(SourceFile::new(
            format!("schema id {schema_id}"),
            self.schema.as_str(),
        ));
        Ok(SchemaSet::parse(
            files,
            ParseOptions {
                logical_types: LogicalTypes::Lenient,
            },
        )?)
    }
}

impl From<String> for WriterSchema {
    fn from(schema: String) -> Self {
        WriterSchema::new(schema)
    }
}

impl From<&str> for WriterSchema {
    fn from(schema: &str) -> Self {
        WriterSchema::new(schema)
    }
}

/// Decodes Confluent wire-format messages as `T`, whatever compatible writer schema they were written with.
/// Plans are cached per schema id; lookups happen once per id.
pub struct ConfluentDecoder<T> {
    plans: RwLock<HashMap<u32, Arc<Resolver>>>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Default for ConfluentDecoder<T> {
    fn default() -> Self {
        ConfluentDecoder {
            plans: RwLock::new(HashMap::new()),
            _type: PhantomData,
        }
    }
}

impl<T: AvroRecord> ConfluentDecoder<T> {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a plan for `schema_id` is cached (so decoding needs no lookup).
    pub fn knows(&self, schema_id: u32) -> bool {
        self.plans
            .read()
            .map(|p| p.contains_key(&schema_id))
            .unwrap_or(false)
    }

    /// Compiles and caches the plan for `schema_id` from the writer schema's text.
    pub fn register(&self, schema_id: u32, writer_schema: &str) -> Result<(), Error> {
        self.register_schema(schema_id, &WriterSchema::new(writer_schema))
    }

    /// Compiles and caches the plan for `schema_id` from a writer schema with its references.
    pub fn register_schema(
        &self,
        schema_id: u32,
        writer_schema: &WriterSchema,
    ) -> Result<(), Error> {
        let writer = writer_schema.parse(schema_id)?;
        let plan = Arc::new(Resolver::for_record::<T>(&writer)?);
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(schema_id, plan);
        }
        Ok(())
    }

    fn cached(&self, id: u32) -> Option<Arc<Resolver>> {
        self.plans.read().ok().and_then(|p| p.get(&id).cloned())
    }

    fn plan_after_register(&self, id: u32) -> Result<Arc<Resolver>, Error> {
        self.cached(id).ok_or_else(|| Error::UnknownSchema {
            id,
            reason: "plan cache unavailable".into(),
        })
    }

    /// [`decode`](Self::decode) for writer schemas with references: `lookup` returns the schema with the
    /// texts of those it references.
    pub fn decode_with_references(
        &self,
        bytes: &[u8],
        lookup: impl FnOnce(u32) -> Result<WriterSchema, String>,
    ) -> Result<T, Error> {
        let (id, datum) = wire::split(bytes)?;
        let plan = match self.cached(id) {
            Some(plan) => plan,
            None => {
                let schema = lookup(id).map_err(|reason| Error::UnknownSchema { id, reason })?;
                self.register_schema(id, &schema)?;
                self.plan_after_register(id)?
            }
        };
        T::from_resolved(datum, &plan)
    }

    /// [`decode_with_references`](Self::decode_with_references) with an asynchronous lookup (e.g. an HTTP
    /// registry client), awaited only for a schema id not seen before; no lock is held across it.
    pub async fn decode_async<F, Fut>(&self, bytes: &[u8], lookup: F) -> Result<T, Error>
    where
        F: FnOnce(u32) -> Fut,
        Fut: std::future::Future<Output = Result<WriterSchema, String>>,
    {
        let (id, datum) = wire::split(bytes)?;
        let plan = match self.cached(id) {
            Some(plan) => plan,
            None => {
                let schema = lookup(id)
                    .await
                    .map_err(|reason| Error::UnknownSchema { id, reason })?;
                self.register_schema(id, &schema)?;
                self.plan_after_register(id)?
            }
        };
        T::from_resolved(datum, &plan)
    }

    /// Decodes one framed message; `lookup` is called for a schema id not seen before and returns its text.
    pub fn decode(
        &self,
        bytes: &[u8],
        lookup: impl FnOnce(u32) -> Result<String, String>,
    ) -> Result<T, Error> {
        let (id, datum) = wire::split(bytes)?;
        let cached = self.plans.read().ok().and_then(|p| p.get(&id).cloned());
        let plan = match cached {
            Some(plan) => plan,
            None => {
                let text = lookup(id).map_err(|reason| Error::UnknownSchema { id, reason })?;
                self.register(id, &text)?;
                self.plans
                    .read()
                    .ok()
                    .and_then(|p| p.get(&id).cloned())
                    .ok_or_else(|| Error::UnknownSchema {
                        id,
                        reason: "plan cache unavailable".into(),
                    })?
            }
        };
        T::from_resolved(datum, &plan)
    }
}
