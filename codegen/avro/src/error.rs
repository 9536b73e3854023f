//! The error type of encoding, decoding and resolution.

use crate::schema::SchemaError;

/// Why a datum could not be encoded, decoded or resolved. Malformed input always ends here, never in a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a value.
    #[error("unexpected end of data at byte {offset}: {needed} more byte(s) needed")]
    UnexpectedEof {
        /// Where the value started.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A varint longer than 10 bytes or beyond 64 bits.
    #[error("invalid varint at byte {offset}: longer than 10 bytes or beyond 64 bits")]
    InvalidVarint {
        /// Where the varint started.
        offset: usize,
    },
    /// An `int` outside the 32-bit range.
    #[error("int at byte {offset} is out of the 32-bit range: {value}")]
    IntOutOfRange {
        /// Where it started.
        offset: usize,
        /// The decoded value.
        value: i64,
    },
    /// A boolean byte other than 0 or 1.
    #[error("invalid boolean byte {value:#04x} at byte {offset}")]
    InvalidBoolean {
        /// Where it is.
        offset: usize,
        /// The byte.
        value: u8,
    },
    /// A negative length of bytes or string.
    #[error("negative length {len} at byte {offset}")]
    NegativeLength {
        /// Where it started.
        offset: usize,
        /// The length.
        len: i64,
    },
    /// A length larger than what is left of the input.
    #[error("length {len} at byte {offset} exceeds the {remaining} byte(s) left")]
    LengthTooLarge {
        /// Where it started.
        offset: usize,
        /// The length.
        len: i64,
        /// Bytes left after the length.
        remaining: usize,
    },
    /// A string that is not UTF-8.
    #[error("invalid UTF-8 in string at byte {offset}")]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: usize,
    },
    /// A union branch index out of range.
    #[error(
        "union branch index {index} at byte {offset} is out of range: the union has {branches} branch(es)"
    )]
    UnionIndex {
        /// Where it started.
        offset: usize,
        /// The index read.
        index: i64,
        /// Number of branches.
        branches: usize,
    },
    /// An enum ordinal out of range.
    #[error(
        "enum ordinal {index} at byte {offset} is out of range: the enum has {symbols} symbol(s)"
    )]
    EnumOrdinal {
        /// Where it started.
        offset: usize,
        /// The ordinal read.
        index: i64,
        /// Number of symbols.
        symbols: usize,
    },
    /// An array or map with more items than the reader's limit.
    #[error("collection at byte {offset} has more than {limit} items")]
    TooManyItems {
        /// Where the block count is.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// More collection items that take no bytes on the wire (`null`, empty records, `fixed` of size 0) in one
    /// datum than the reader's limit.
    #[error(
        "the array at byte {offset} takes the datum over {limit} items that take no bytes (null, empty records, fixed of size 0)"
    )]
    TooManyEmptyItems {
        /// Where the block count is.
        offset: usize,
        /// The limit ([`crate::Limits::max_empty_items`]).
        limit: usize,
    },
    /// Values nested deeper than the reader's limit (recursive types).
    #[error("data nested deeper than {limit} levels at byte {offset}")]
    TooDeep {
        /// Where.
        offset: usize,
        /// The limit.
        limit: u32,
    },
    /// Bytes left after a complete datum.
    #[error("{trailing} trailing byte(s) after the datum")]
    TrailingBytes {
        /// How many.
        trailing: usize,
    },
    /// A value that its logical type or schema cannot represent.
    #[error("{what} out of range: {detail}")]
    OutOfRange {
        /// The type.
        what: &'static str,
        /// Details.
        detail: String,
    },
    /// A malformed object container file, or one this build cannot read (a codec not compiled in).
    #[error("object container file: {0}")]
    Container(String),
    /// Avro JSON that does not match its schema (where, and why).
    #[error("Avro JSON: {0}")]
    Json(String),
    /// Not a Confluent-framed message.
    #[error("not in Confluent wire format: {0}")]
    WireFormat(String),
    /// The writer schema of a Confluent-framed message could not be had.
    #[error("writer schema {id} unavailable: {reason}")]
    UnknownSchema {
        /// The schema id.
        id: u32,
        /// Why.
        reason: String,
    },
    /// An invalid schema.
    #[error("invalid schema: {0}")]
    Schema(#[from] SchemaError),
    /// Writer and reader schemas are not compatible.
    #[error("cannot resolve writer schema against reader schema: {0}")]
    Resolution(String),
    /// A generated builder's `build` was called without a field that has no schema default.
    #[error("{record}: field `{field}` has no default and was not set")]
    MissingField {
        /// The record's full name.
        record: &'static str,
        /// The field's wire name.
        field: &'static str,
    },
}

impl Error {
    /// Whether trying again later may succeed (only a schema lookup can be transient).
    pub fn is_retriable(&self) -> bool {
        matches!(self, Error::UnknownSchema { .. })
    }
}
