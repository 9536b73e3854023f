//! Schema compatibility as Apache Avro Java's `SchemaCompatibility` decides it (which Confluent Schema Registry
//! and Karapace use), applied at Confluent's levels over a subject's history, with every incompatibility
//! located (JSON pointer and file:line:col), plus warnings for wire-compatible changes of meaning.
//!
//! (API skeleton; being implemented.)

use serde::Serialize;
use ursa_avro::schema::{Schema, SchemaSet};
pub use ursa_catalog::Compatibility as Level;

/// What kind of incompatibility (Avro Java's `SchemaIncompatibilityType` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IncompatibilityKind {
    /// Named types with different names (and no matching alias).
    NameMismatch,
    /// Fixed types of different sizes.
    FixedSizeMismatch,
    /// Writer enum symbols the reader lacks (and the reader enum has no default).
    MissingEnumSymbols,
    /// A reader field absent from the writer, without a default.
    ReaderFieldMissingDefaultValue,
    /// Types that cannot be read as each other.
    TypeMismatch,
    /// A writer union branch no reader branch can read.
    MissingUnionBranch,
}

/// A schema document: a parsed set and its root (normally `set.last_root()`).
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    /// The parsed documents (with source text for positions).
    pub set: &'a SchemaSet,
    /// The schema to check.
    pub root: &'a Schema,
}

impl<'a> Doc<'a> {
    /// The last document of a set (a schema with its references before it).
    pub fn last(set: &'a SchemaSet) -> Self {
        Doc {
            set,
            root: set.last_root(),
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The incompatibility kind, or a warning kind (`"DECIMAL_SCALE_CHANGED"`, …).
    pub kind: String,
    /// JSON pointer into the schema being checked (e.g. `/fields/2/type`).
    pub location: String,
    /// What is wrong, in words.
    pub message: String,
    /// The file of the new schema (or the older one when the problem is only there).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// `true` for an incompatibility, `false` for a warning.
    #[serde(skip)]
    pub is_error: bool,
}

/// The verdict of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Report {
    /// Whether the new schema is compatible at the level.
    pub is_compatible: bool,
    /// Incompatibilities, then warnings.
    pub messages: Vec<Message>,
}

/// Every incompatibility of reading data written with `writer` using `reader` (Avro Java semantics).
pub fn reader_writer(_reader: Doc<'_>, _writer: Doc<'_>) -> Vec<Message> {
    Vec::new()
}

/// Checks `new` against the `history` of a subject (oldest first) at `level`.
pub fn check(_level: Level, _new: Doc<'_>, _history: &[Doc<'_>]) -> Report {
    Report {
        is_compatible: true,
        messages: Vec::new(),
    }
}
