//! The topic catalog (`schemas/topics.toml`) and the schema directory it refers to.
//!
//! [`Catalog`] is the typed, validated form of the TOML: each topic bound to a key and a value schema, with
//! partitions, retention, cleanup policy, compatibility level and subject naming strategy. [`load_schema_dir`]
//! reads every `.avsc` under a folder into one [`ursa_avro::schema::SchemaSet`] so references across files resolve.

mod config;
mod dir;
mod error;
mod subject;

pub use config::{
    Catalog, CleanupPolicy, Compatibility, Defaults, Retention, SchemaRef, SubjectNameStrategy,
    Topic,
};
pub use dir::{load_schema_dir, schema_files};
pub use error::CatalogError;
