//! The schema model: an arena of named types plus the schema tree of each source document.

use std::collections::{BTreeMap, HashMap};

use super::source::{Loc, SourceFile};

/// Custom attributes (`"pii": true`, …): every key a schema object has that Avro does not define.
pub type Attrs = BTreeMap<String, serde_json::Value>;

/// Index of a named type (record, enum, fixed) in a [`SchemaSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamedId(pub(crate) u32);

impl NamedId {
    /// The id of the `index`-th named type of a set.
    pub fn from_index(index: usize) -> Self {
        NamedId(index as u32)
    }

    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Index of a source document in a [`SchemaSet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FileId(pub(crate) u32);

impl FileId {
    /// The index as `usize`.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// An Avro full name: optional namespace plus simple name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name {
    /// Dotted namespace; `None` for the null namespace.
    pub namespace: Option<String>,
    /// The simple name.
    pub name: String,
}

impl Name {
    /// Splits a full name at its last dot.
    pub fn from_fullname(full: &str) -> Name {
        match full.rsplit_once('.') {
            Some((ns, name)) => Name {
                namespace: Some(ns.to_owned()),
                name: name.to_owned(),
            },
            None => Name {
                namespace: None,
                name: full.to_owned(),
            },
        }
    }

    /// `namespace.name`, or `name` in the null namespace.
    pub fn fullname(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// Avro logical types. Unknown logical types are not represented: the schema falls back to its base type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogicalType {
    /// `date` on int: days since the Unix epoch.
    Date,
    /// `time-millis` on int.
    TimeMillis,
    /// `time-micros` on long.
    TimeMicros,
    /// `timestamp-millis` on long (UTC).
    TimestampMillis,
    /// `timestamp-micros` on long (UTC).
    TimestampMicros,
    /// `timestamp-nanos` on long (UTC).
    TimestampNanos,
    /// `local-timestamp-millis` on long (no time zone).
    LocalTimestampMillis,
    /// `local-timestamp-micros` on long (no time zone).
    LocalTimestampMicros,
    /// `local-timestamp-nanos` on long (no time zone).
    LocalTimestampNanos,
    /// `uuid` on string or fixed(16).
    Uuid,
    /// `decimal` on bytes or fixed.
    Decimal {
        /// Total number of digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
    /// `duration` on fixed(12): months, days, milliseconds.
    Duration,
}

impl LogicalType {
    /// The `logicalType` string.
    pub fn name(&self) -> &'static str {
        match self {
            LogicalType::Date => "date",
            LogicalType::TimeMillis => "time-millis",
            LogicalType::TimeMicros => "time-micros",
            LogicalType::TimestampMillis => "timestamp-millis",
            LogicalType::TimestampMicros => "timestamp-micros",
            LogicalType::TimestampNanos => "timestamp-nanos",
            LogicalType::LocalTimestampMillis => "local-timestamp-millis",
            LogicalType::LocalTimestampMicros => "local-timestamp-micros",
            LogicalType::LocalTimestampNanos => "local-timestamp-nanos",
            LogicalType::Uuid => "uuid",
            LogicalType::Decimal { .. } => "decimal",
            LogicalType::Duration => "duration",
        }
    }
}

/// A schema node: a type plus its logical type, custom attributes and source location.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// The type.
    pub kind: SchemaKind,
    /// The logical type on a primitive (named types keep theirs in [`NamedType::logical`]).
    pub logical: Option<LogicalType>,
    /// Custom attributes of an object-form primitive, array or map.
    pub attrs: Attrs,
    /// Where the node is.
    pub loc: Loc,
}

/// The type of a schema node.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaKind {
    /// `null`
    Null,
    /// `boolean`
    Boolean,
    /// `int` (32-bit)
    Int,
    /// `long` (64-bit)
    Long,
    /// `float`
    Float,
    /// `double`
    Double,
    /// `bytes`
    Bytes,
    /// `string`
    String,
    /// `array` of items.
    Array(Box<Schema>),
    /// `map` of string to values.
    Map(Box<Schema>),
    /// A union of branches.
    Union(Vec<Schema>),
    /// A record, enum or fixed, defined here or referenced by name.
    Named(NamedId),
}

impl SchemaKind {
    /// The Avro type name of an unnamed kind (`"int"`, `"array"`, …); `None` for named types.
    pub fn primitive_name(&self) -> Option<&'static str> {
        Some(match self {
            SchemaKind::Null => "null",
            SchemaKind::Boolean => "boolean",
            SchemaKind::Int => "int",
            SchemaKind::Long => "long",
            SchemaKind::Float => "float",
            SchemaKind::Double => "double",
            SchemaKind::Bytes => "bytes",
            SchemaKind::String => "string",
            SchemaKind::Array(_) => "array",
            SchemaKind::Map(_) => "map",
            SchemaKind::Union(_) => "union",
            SchemaKind::Named(_) => return None,
        })
    }
}

/// A record, enum or fixed type.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedType {
    /// Its full name.
    pub name: Name,
    /// Aliases as full names.
    pub aliases: Vec<Name>,
    /// Its `doc`.
    pub doc: Option<String>,
    /// Record, enum or fixed specifics.
    pub kind: NamedKind,
    /// Logical type of a fixed (decimal, duration, uuid).
    pub logical: Option<LogicalType>,
    /// Custom attributes.
    pub attrs: Attrs,
    /// The defining object.
    pub loc: Loc,
}

/// What kind of named type.
#[derive(Debug, Clone, PartialEq)]
pub enum NamedKind {
    /// A record with fields in declaration order.
    Record {
        /// The fields.
        fields: Vec<Field>,
    },
    /// An enum.
    Enum {
        /// The symbols in declaration order.
        symbols: Vec<String>,
        /// The symbol that unknown writer symbols resolve to.
        default: Option<String>,
    },
    /// A fixed-size byte string.
    Fixed {
        /// Size in bytes.
        size: usize,
    },
}

/// Sort order of a record field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// `ascending` (the default).
    #[default]
    Ascending,
    /// `descending`.
    Descending,
    /// `ignore`.
    Ignore,
}

/// A record field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The name on the wire.
    pub name: String,
    /// Aliases: names this field had in writer schemas.
    pub aliases: Vec<String>,
    /// Its `doc`.
    pub doc: Option<String>,
    /// Its type.
    pub schema: Schema,
    /// Its default value (JSON encoding of the field type; for a union, a value of any branch, as Avro 1.12 allows).
    pub default: Option<serde_json::Value>,
    /// Where the default is.
    pub default_loc: Option<Loc>,
    /// Sort order.
    pub order: Order,
    /// Custom attributes (e.g. `"pii": true`).
    pub attrs: Attrs,
    /// The field object.
    pub loc: Loc,
}

impl Field {
    /// Whether the field is marked `"pii": true`.
    pub fn is_pii(&self) -> bool {
        self.attrs.get("pii") == Some(&serde_json::Value::Bool(true))
    }
}

/// A default that Avro Java's parser accepts but that is not a valid value of its type: a `bytes` or `fixed`
/// default with characters beyond U+00FF, a `fixed` default of another size, an enum field default that is
/// not a symbol (Java checks only that these are strings), or an enum's own `default` that is not a string
/// (Java ignores it, and so does this parser). Such schemas parse, as Confluent's registry registers them;
/// `ursa schema lint` reports these (rule `default-value`), and a reader needing such a field default fails
/// to build its resolution plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SuspiciousDefault {
    /// The record holding the field, or the enum.
    pub owner: NamedId,
    /// The field's index in the record, or `None` for an enum's own `default`.
    pub field: Option<usize>,
    /// Where the default is.
    pub loc: Loc,
    /// What is wrong with it.
    pub problem: String,
}

/// A set of parsed schema documents sharing one namespace of named types: references across documents resolve.
#[derive(Debug, Clone)]
pub struct SchemaSet {
    pub(crate) files: Vec<SourceFile>,
    pub(crate) named: Vec<NamedType>,
    pub(crate) by_name: HashMap<String, NamedId>,
    pub(crate) roots: Vec<Schema>,
    pub(crate) suspicious: Vec<SuspiciousDefault>,
}

impl SchemaSet {
    /// All source documents, in the order given to the parser.
    pub fn files(&self) -> &[SourceFile] {
        &self.files
    }

    /// The source document `id`.
    pub fn file(&self, id: FileId) -> &SourceFile {
        &self.files[id.index()]
    }

    /// The top-level schema of document `id`.
    pub fn root(&self, id: FileId) -> &Schema {
        &self.roots[id.index()]
    }

    /// The top-level schema of the last document (for a single schema with its references before it).
    pub fn last_root(&self) -> &Schema {
        // `SchemaSet::parse` refuses to build a set without a document.
        &self.roots[self.roots.len() - 1]
    }

    /// Every document with its top-level schema.
    pub fn roots(&self) -> impl Iterator<Item = (FileId, &Schema)> {
        self.roots
            .iter()
            .enumerate()
            .map(|(i, s)| (FileId(i as u32), s))
    }

    /// The named type `id`.
    pub fn named(&self, id: NamedId) -> &NamedType {
        &self.named[id.index()]
    }

    /// All named types with their ids, in definition order.
    pub fn named_types(&self) -> impl Iterator<Item = (NamedId, &NamedType)> {
        self.named
            .iter()
            .enumerate()
            .map(|(i, t)| (NamedId(i as u32), t))
    }

    /// Looks a named type up by full name.
    pub fn lookup(&self, fullname: &str) -> Option<NamedId> {
        self.by_name.get(fullname).copied()
    }

    /// The defaults Avro Java accepts that are not valid values of their types, in document order.
    pub fn suspicious_defaults(&self) -> &[SuspiciousDefault] {
        &self.suspicious
    }

    /// Formats a location as `path:line:col`.
    pub fn describe(&self, loc: Loc) -> String {
        let file = self.file(loc.file);
        let (line, col) = file.line_col(loc.span.start);
        format!("{}:{line}:{col}", file.path())
    }
}
