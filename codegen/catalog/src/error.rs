//! Errors of loading the catalog and schema folders.

use std::path::PathBuf;

use ursa_avro::schema::SchemaError;

/// Why the catalog or a schema folder could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The catalog TOML is malformed or has unknown fields.
    #[error("{path}: {message}")]
    Toml {
        /// The catalog file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The catalog is well-formed but wrong (e.g. an unknown type).
    #[error("{path}: {}", problems.join("\n"))]
    Invalid {
        /// The catalog file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
    /// The schemas have errors.
    #[error("{0}")]
    Schema(#[from] SchemaError),
}
