//! The Avro schema model: parsing with source positions, names and references across documents, logical types,
//! default validation, canonical form and fingerprints.

mod canonical;
mod default;
mod error;
mod model;
mod parse;
mod source;

pub use canonical::fingerprint64;
pub use error::{Diagnostic, SchemaError};
pub use model::{
    Attrs, Field, FileId, LogicalType, Name, NamedId, NamedKind, NamedType, Order, Schema,
    SchemaKind, SchemaSet, SuspiciousDefault,
};
pub use parse::{LogicalTypes, ParseOptions};
pub use source::{Loc, SourceFile};

pub(crate) use default::latin1_bytes;

#[cfg(test)]
mod tests;
