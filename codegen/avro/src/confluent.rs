//! Decoding Confluent-framed messages into a generated type, caching a resolution plan per writer schema id.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, RwLock};

use crate::record::AvroRecord;
use crate::resolve::Resolver;
use crate::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use crate::{Error, wire};

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
        let writer = SchemaSet::parse(
            vec![SourceFile::new(
                format!("schema id {schema_id}"),
                writer_schema,
            )],
            ParseOptions {
                logical_types: LogicalTypes::Lenient,
            },
        )?;
        let plan = Arc::new(Resolver::for_record::<T>(&writer)?);
        if let Ok(mut plans) = self.plans.write() {
            plans.insert(schema_id, plan);
        }
        Ok(())
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
