//! Avro schema resolution: data written with one schema, read with another, compatible one.
//!
//! A [`Resolver`] compiles a plan once per (writer, reader) pair (Avro 1.12, "Schema Resolution") and then
//! rewrites each writer-encoded datum into the reader's encoding, which generated code decodes with its direct
//! decoder. Design:
//! - `compile`: the rules — promotions (int→long/float/double, long→float/double, float→double,
//!   string↔bytes), logical types ignored except that two decimals must agree on precision and scale (the
//!   specification's rule: otherwise the same unscaled bytes would mean another value), named types matched
//!   by unqualified name or by a reader alias equal to the writer's full name, fields by name then reader
//!   field alias, unions by exact type/full name, then name/alias, then first branch that resolves. Named pairs are memoised by (writer id, reader id), so recursive types give a finite plan.
//!   Subtrees whose canonical forms agree (and whose decimals agree) are copied verbatim.
//! - `plan`: the plan, flat arenas indexed by id; `skip`: writer-only values; `default`: reader defaults,
//!   encoded once at plan time; `transcode`: running the plan, bounded by [`crate::Reader`]'s limits.
//! - Records are planned in writer field order: a field that is the next reader field goes straight to the
//!   output, one that comes later is buffered in thread-local scratch (reused across datums) until its turn.
//! - Resolved arrays and maps are written as one block plus the end marker.
//! - Errors that only some data can hit are reported when that data occurs, not at plan time: a writer enum
//!   symbol the reader lacks (and has no default for), and a writer union branch no reader schema fits. (Avro
//!   Java's compatibility check reports these up front; its readers, like this one, fail only on such data.)

mod compile;
mod default;

/// The binary encoding of `value`, a JSON default of `schema` (a node of `set`), as resolution fills a
/// reader-only field: a union takes the first branch the value is valid for, `bytes` and `fixed` are latin-1
/// strings, a record's missing members take their field defaults. Code generators embed it for builders.
pub fn encode_default(
    set: &crate::schema::SchemaSet,
    schema: &crate::schema::Schema,
    value: &serde_json::Value,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    default::encode_default(set, schema, value, &mut out)?;
    Ok(out)
}
mod plan;
mod skip;
mod transcode;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::Error;
use crate::record::AvroRecord;
use crate::schema::{Schema, SchemaSet};

/// A compiled plan that rewrites a datum written with a writer schema into the reader schema's encoding.
#[derive(Debug, Clone)]
pub struct Resolver {
    identity: bool,
    plan: Arc<plan::Plan>,
}

impl Resolver {
    /// Compiles the plan for `writer_root` (in `writer`) read as `reader_root` (in `reader`); an
    /// [`Error::Resolution`] says which type or field does not resolve.
    pub fn new(
        writer: &SchemaSet,
        writer_root: &Schema,
        reader: &SchemaSet,
        reader_root: &Schema,
    ) -> Result<Resolver, Error> {
        let identity = writer.canonical_form(writer_root) == reader.canonical_form(reader_root)
            && !compile::decimals_conflict(writer, writer_root, reader, reader_root);
        let plan = compile::compile(writer, writer_root, reader, reader_root)
            .map_err(Error::Resolution)?;
        Ok(Resolver {
            identity,
            plan: Arc::new(plan),
        })
    }

    /// The plan for reading data written with `writer` (its last document) as `T`.
    pub fn for_record<T: AvroRecord>(writer: &SchemaSet) -> Result<Resolver, Error> {
        let reader = T::schema()?;
        Resolver::new(writer, writer.last_root(), reader, reader.last_root())
    }

    /// Whether writer and reader schemas are the same (no rewriting needed).
    pub fn is_identity(&self) -> bool {
        self.identity
    }

    /// Reads exactly one writer datum from `input` (trailing bytes are an [`Error::TrailingBytes`]) and appends
    /// its reader encoding to `out`. On error `out` is left as it was.
    pub fn transcode(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.plan.transcode(input, out)
    }

    /// Reads the next writer datum from `r`, where more may follow (a block of an object container file),
    /// and appends its reader encoding to `out`. On error `out` is left as it was.
    pub fn transcode_next(
        &self,
        r: &mut crate::Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        self.plan.transcode_next(r, out)
    }
}
