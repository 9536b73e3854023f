//! Why a key or value could not be converted: what and where, whether retrying can help, and a stable class
//! name for the DLQ's `__connect.errors.exception.class.name` header.

use std::fmt;

use ursa_registry::ClientError;

use super::ConverterKind;

/// Keys or values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// Record keys.
    Key,
    /// Record values.
    Value,
}

impl Part {
    /// `key` or `value`.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Value => "value",
        }
    }
}

/// Which payload failed: the key or value of a topic's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The topic.
    pub topic: String,
    /// Key or value.
    pub part: Part,
}

/// Where a payload comes from, borrowed: made an [`Origin`] only when something fails (most payloads
/// convert, and an owned topic name per record was an allocation each).
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Key or value.
    pub part: Part,
}

impl At<'_> {
    /// The owned origin, for an error.
    pub fn origin(self) -> Origin {
        Origin {
            topic: self.topic.to_owned(),
            part: self.part,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} of topic `{}`", self.part.as_str(), self.topic)
    }
}

/// Why a payload could not be converted. Only registry trouble ([`ConvertError::RegistryUnavailable`]) is
/// retriable; everything else is a property of the bytes (a poison pill for the DLQ) or of the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The converter is misconfigured (e.g. Avro without a registry).
    #[error("converter configuration: {0}")]
    Config(String),
    /// Fewer bytes than the Confluent header.
    #[error(
        "{at}: {len} byte(s) is shorter than the 5-byte Confluent header (magic byte 0x00 and a 4-byte schema id)"
    )]
    ShortFrame {
        /// Where.
        at: Origin,
        /// The payload's length.
        len: usize,
    },
    /// The first byte is not Confluent's magic byte.
    #[error("{at}: byte 0 is {byte:#04x}, expected magic byte 0x00 (not Confluent Avro{hint})")]
    BadMagicByte {
        /// Where.
        at: Origin,
        /// The byte found.
        byte: u8,
        /// A guess at what the payload is, e.g. ` — is this JSON?`.
        hint: &'static str,
    },
    /// The registry does not know the schema id (404).
    #[error("{at}: schema id {id} is not in the schema registry: {source}")]
    UnknownSchemaId {
        /// Where.
        at: Origin,
        /// The id from the header.
        id: u32,
        /// The registry's answer.
        source: ClientError,
    },
    /// The registry could not be reached, timed out or answered 5xx/429 (after the client's retries).
    #[error("{at}: cannot fetch schema id {id} from the schema registry: {source}")]
    RegistryUnavailable {
        /// Where.
        at: Origin,
        /// The schema id.
        id: u32,
        /// The cause.
        source: ClientError,
    },
    /// Any other registry failure (refused credentials, an answer that is not the API's).
    #[error("{at}: the schema registry failed on schema id {id}: {source}")]
    Registry {
        /// Where.
        at: Origin,
        /// The schema id.
        id: u32,
        /// The cause.
        source: ClientError,
    },
    /// The writer schema cannot be used: not Avro, does not parse, or a reference cannot be had.
    #[error("{at}: writer schema id {id} is unusable: {problem}")]
    InvalidWriterSchema {
        /// Where.
        at: Origin,
        /// The schema id.
        id: u32,
        /// What is wrong.
        problem: String,
    },
    /// The datum does not decode with its writer schema (truncated, bad union index, invalid UTF-8, …).
    #[error(
        "{at}: malformed Avro datum for schema id {id} (byte offsets count from the datum, after the 5-byte header): {source}"
    )]
    MalformedAvro {
        /// Where.
        at: Origin,
        /// The schema id.
        id: u32,
        /// The decoding error.
        source: ursa_avro::Error,
    },
    /// Not valid JSON.
    #[error("{at}: invalid JSON: {message}{hint}")]
    InvalidJson {
        /// Where.
        at: Origin,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// The parser's message (with line and column).
        message: String,
        /// A guess at what the payload is.
        hint: &'static str,
    },
    /// Not valid UTF-8.
    #[error("{at}: invalid UTF-8 at byte {offset}{hint}")]
    InvalidUtf8 {
        /// Where.
        at: Origin,
        /// The first byte that is not part of valid UTF-8.
        offset: usize,
        /// A guess at what the payload is.
        hint: &'static str,
    },
    /// Typed decoding: the writer schema does not resolve to the requested type.
    #[error("{at}: writer schema id {id} cannot be read as {type_name}: {source}")]
    IncompatibleSchema {
        /// Where.
        at: Origin,
        /// The schema id.
        id: u32,
        /// The requested type.
        type_name: &'static str,
        /// Why.
        source: ursa_avro::Error,
    },
    /// Typed decoding of a payload that was not converted from Avro.
    #[error(
        "{at}: converted by the `{kind}` converter, not Avro, so it cannot be decoded as {type_name}"
    )]
    NotAvro {
        /// Where.
        at: Origin,
        /// The converter used.
        kind: ConverterKind,
        /// The requested type.
        type_name: &'static str,
    },
}

impl ConvertError {
    /// Whether trying again later may succeed: only when the registry is unreachable, timed out or answered
    /// 5xx/429. Everything else fails the same way every time.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ConvertError::RegistryUnavailable { .. })
    }

    /// Whether the failure is the record's own (bad bytes, unknown schema id): such records are dead-lettered
    /// or skipped per `errors.tolerance`. Other failures (registry unreachable, refused credentials, config)
    /// are the infrastructure's: retried, then fatal to the connector — never a reason to drop records.
    pub fn is_record_fault(&self) -> bool {
        !matches!(
            self,
            ConvertError::RegistryUnavailable { .. }
                | ConvertError::Registry { .. }
                | ConvertError::Config(_)
        )
    }

    /// A stable short name of the failure, for the DLQ's `__connect.errors.exception.class.name` header.
    pub fn class_name(&self) -> &'static str {
        match self {
            ConvertError::Config(_) => "ursa.convert.Config",
            ConvertError::ShortFrame { .. } => "ursa.convert.ShortFrame",
            ConvertError::BadMagicByte { .. } => "ursa.convert.BadMagicByte",
            ConvertError::UnknownSchemaId { .. } => "ursa.convert.UnknownSchemaId",
            ConvertError::RegistryUnavailable { .. } => "ursa.convert.RegistryUnavailable",
            ConvertError::Registry { .. } => "ursa.convert.RegistryError",
            ConvertError::InvalidWriterSchema { .. } => "ursa.convert.InvalidWriterSchema",
            ConvertError::MalformedAvro { .. } => "ursa.convert.MalformedAvro",
            ConvertError::InvalidJson { .. } => "ursa.convert.InvalidJson",
            ConvertError::InvalidUtf8 { .. } => "ursa.convert.InvalidUtf8",
            ConvertError::IncompatibleSchema { .. } => "ursa.convert.IncompatibleSchema",
            ConvertError::NotAvro { .. } => "ursa.convert.NotAvro",
        }
    }

    /// The key or value that failed (`None` for configuration errors).
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            ConvertError::Config(_) => None,
            ConvertError::ShortFrame { at, .. }
            | ConvertError::BadMagicByte { at, .. }
            | ConvertError::UnknownSchemaId { at, .. }
            | ConvertError::RegistryUnavailable { at, .. }
            | ConvertError::Registry { at, .. }
            | ConvertError::InvalidWriterSchema { at, .. }
            | ConvertError::MalformedAvro { at, .. }
            | ConvertError::InvalidJson { at, .. }
            | ConvertError::InvalidUtf8 { at, .. }
            | ConvertError::IncompatibleSchema { at, .. }
            | ConvertError::NotAvro { at, .. } => Some(at),
        }
    }

    /// A registry failure fetching schema `id`, classified.
    pub(super) fn registry(at: Origin, id: u32, source: ClientError) -> ConvertError {
        if source.is_retriable() {
            ConvertError::RegistryUnavailable { at, id, source }
        } else if matches!(source, ClientError::SchemaNotFound { .. }) {
            ConvertError::UnknownSchemaId { at, id, source }
        } else {
            ConvertError::Registry { at, id, source }
        }
    }
}

/// A guess at what a payload that is not Confluent Avro is, from its first bytes.
pub(super) fn not_avro_hint(bytes: &[u8]) -> &'static str {
    match bytes {
        [b'{' | b'[' | b'"', ..] => " — is this JSON?",
        [0xc3, 0x01, ..] => {
            " — 0xc3 0x01 starts Avro single-object encoding, which carries a schema fingerprint, not a registry id"
        }
        [b, ..] if b.is_ascii_graphic() || *b == b' ' => " — is this text?",
        _ => "",
    }
}

/// A guess for a payload that failed as JSON or text: Confluent Avro starts with 0x00 and a schema id.
pub(super) fn avro_hint(bytes: &[u8]) -> &'static str {
    if bytes.len() >= 5 && bytes[0] == 0 {
        " (it starts with 0x00 like Confluent Avro — is the converter `avro`?)"
    } else {
        ""
    }
}
