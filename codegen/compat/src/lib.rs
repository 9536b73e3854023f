//! Schema compatibility as Apache Avro Java's `SchemaCompatibility` decides it (which Confluent Schema Registry
//! and Karapace use), applied at Confluent's levels over a subject's history, with every incompatibility
//! located (JSON pointer and file:line:col), plus warnings for wire-compatible changes of meaning.
//!
//! The rules ([`reader_writer`]) follow Avro Java 1.12's `ReaderWriterCompatibilityChecker` exactly:
//!
//! - primitives must be identical, except the promotions int→long/float/double, long→float/double,
//!   float→double, string→bytes and bytes→string (writer→reader);
//! - named types match when the reader's *unqualified* name equals the writer's unqualified name, or one of the
//!   reader's aliases (qualified with the reader's namespace when written unqualified) equals the writer's
//!   *full* name (Java's `schemaNameEquals`); then fixed sizes must be equal, every writer enum symbol must be a
//!   reader symbol unless the reader enum has a default, and every reader field must find its writer field by
//!   name or by one of its aliases, or have a default;
//! - a writer union needs every branch readable; a reader union needs one branch that reads the writer;
//! - recursion is memoised on (reader node, writer node) identity, a pair in progress counting as compatible;
//! - logical types, docs, field order and custom attributes never matter.
//!
//! Where Java throws instead of answering (a reader field matching several writer fields through its aliases),
//! the pair is reported incompatible with [`IncompatibilityKind::ReaderFieldMatchesMultipleWriterFields`].

mod checker;
mod finding;
pub mod format;
mod levels;
mod locate;
mod warnings;

use serde::Serialize;
use ursa_avro::schema::{Schema, SchemaSet};
pub use ursa_catalog::Compatibility as Level;

pub use format::confluent_messages;
pub use levels::check;
pub use warnings::WarningKind;

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
    /// A reader field whose name and aliases match more than one writer field: Avro Java's
    /// `lookupWriterField` throws `AvroRuntimeException` here, which a registry reports as a failed check.
    ReaderFieldMatchesMultipleWriterFields,
}

impl IncompatibilityKind {
    /// The Java enum constant, e.g. `READER_FIELD_MISSING_DEFAULT_VALUE`.
    pub fn as_str(self) -> &'static str {
        match self {
            IncompatibilityKind::NameMismatch => "NAME_MISMATCH",
            IncompatibilityKind::FixedSizeMismatch => "FIXED_SIZE_MISMATCH",
            IncompatibilityKind::MissingEnumSymbols => "MISSING_ENUM_SYMBOLS",
            IncompatibilityKind::ReaderFieldMissingDefaultValue => {
                "READER_FIELD_MISSING_DEFAULT_VALUE"
            }
            IncompatibilityKind::TypeMismatch => "TYPE_MISMATCH",
            IncompatibilityKind::MissingUnionBranch => "MISSING_UNION_BRANCH",
            IncompatibilityKind::ReaderFieldMatchesMultipleWriterFields => {
                "READER_FIELD_MATCHES_MULTIPLE_WRITER_FIELDS"
            }
        }
    }
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

/// Which way data flows in a check of a new schema against an older one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The new schema reads data written with the old one (reader = new).
    Backward,
    /// The old schema reads data written with the new one (reader = old).
    Forward,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// The incompatibility kind, or a warning kind (`"DECIMAL_SCALE_CHANGED"`, …).
    pub kind: String,
    /// JSON pointer into the schema being checked (e.g. `/fields/2/type`): Avro Java's location, in the
    /// reader's structure for incompatibilities, in the new schema for warnings.
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
    /// Avro Java's own message for the incompatibility (Confluent's `additionalInfo`: a field name,
    /// `reader type: INT not compatible with writer type: STRING`, `[C, D]`, …); a short detail for warnings.
    #[serde(skip)]
    pub detail: String,
    /// For [`check`]: whether the new schema was the reader ([`Direction::Backward`]) or the writer.
    #[serde(skip)]
    pub direction: Option<Direction>,
    /// For [`check`]: the 1-based position in the history of the version this finding is against.
    #[serde(skip)]
    pub version: Option<usize>,
}

/// The verdict of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Report {
    /// Whether the new schema is compatible at the level.
    pub is_compatible: bool,
    /// Incompatibilities, then warnings.
    pub messages: Vec<Message>,
}

impl Report {
    /// The incompatibilities.
    pub fn errors(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| m.is_error)
    }

    /// The warnings.
    pub fn warnings(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| !m.is_error)
    }
}

/// Every incompatibility of reading data written with `writer` using `reader` (Avro Java semantics), worded
/// with "reader"/"writer" and positioned in the reader. Empty means compatible.
pub fn reader_writer(reader: Doc<'_>, writer: Doc<'_>) -> Vec<Message> {
    let findings = checker::incompatibilities(reader, writer);
    finding::to_messages(&findings, reader, writer, None)
}

/// Whether `reader` can read everything `writer` writes (Avro Java semantics).
pub fn can_read(reader: Doc<'_>, writer: Doc<'_>) -> bool {
    checker::incompatibilities(reader, writer).is_empty()
}
