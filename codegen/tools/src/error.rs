//! Errors of the schema commands (bad input: exit code 2).

use std::path::PathBuf;

/// Why a command could not run (as opposed to finding incompatibilities).
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Schemas are invalid.
    #[error("{}", .0.render())]
    Schema(#[from] ursa_avro::schema::SchemaError),
    /// The catalog is invalid.
    #[error("{0}")]
    Catalog(#[from] ursa_catalog::CatalogError),
    /// git failed or the reference is unknown.
    #[error("git: {0}")]
    Git(String),
    /// A lint configuration problem.
    #[error("{0}")]
    Config(String),
    /// Anything else the user must fix.
    #[error("{0}")]
    Usage(String),
}
