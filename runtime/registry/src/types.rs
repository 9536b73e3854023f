//! Types shared by the server and the client: references, versions, modes, compatibility levels.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A schema compatibility level (Confluent's names); the same type the compatibility checker takes.
pub type CompatibilityLevel = ursa_compat::Level;

/// Parses a compatibility level as Confluent does (case-insensitively, e.g. `full_transitive`).
pub fn parse_level(s: &str) -> Option<CompatibilityLevel> {
    use CompatibilityLevel as L;
    Some(match s.trim().to_ascii_uppercase().as_str() {
        "BACKWARD" => L::Backward,
        "BACKWARD_TRANSITIVE" => L::BackwardTransitive,
        "FORWARD" => L::Forward,
        "FORWARD_TRANSITIVE" => L::ForwardTransitive,
        "FULL" => L::Full,
        "FULL_TRANSITIVE" => L::FullTransitive,
        "NONE" => L::None,
        _ => return None,
    })
}

/// A reference from a schema to a named type registered under another subject's version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reference {
    /// The referenced type's full name (for Avro).
    pub name: String,
    /// The subject the referenced schema is registered under.
    pub subject: String,
    /// Its version in that subject.
    pub version: i32,
}

/// A subject's version: a number, or the latest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionId {
    /// The latest (non-deleted) version (`latest`, or `-1`).
    Latest,
    /// Version `n` (1-based).
    Number(u32),
}

impl From<u32> for VersionId {
    fn from(n: u32) -> Self {
        VersionId::Number(n)
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionId::Latest => f.write_str("latest"),
            VersionId::Number(n) => write!(f, "{n}"),
        }
    }
}

/// A registry's mode (Confluent's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Reads and writes.
    #[default]
    ReadWrite,
    /// Reads only: registrations and deletions fail with 42205.
    ReadOnly,
    /// Like `ReadOnly`, and not overridable by subjects.
    ReadOnlyOverride,
    /// Registrations may give ids and versions (for migrations); no compatibility checks.
    Import,
}

impl Mode {
    /// Confluent's spelling, e.g. `READWRITE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::ReadWrite => "READWRITE",
            Mode::ReadOnly => "READONLY",
            Mode::ReadOnlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }

    /// Parses Confluent's spelling (case-insensitively).
    pub fn parse(s: &str) -> Option<Mode> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "READWRITE" => Mode::ReadWrite,
            "READONLY" => Mode::ReadOnly,
            "READONLY_OVERRIDE" => Mode::ReadOnlyOverride,
            "IMPORT" => Mode::Import,
            _ => return None,
        })
    }

    /// Whether schema writes are refused.
    pub fn is_read_only(self) -> bool {
        matches!(self, Mode::ReadOnly | Mode::ReadOnlyOverride)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema as `GET /schemas/ids/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaInfo {
    /// The schema text.
    pub schema: String,
    /// `AVRO`, `JSON` or `PROTOBUF` (absent means `AVRO`).
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    /// References to other subjects' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Confluent's data-contract metadata (`properties`, `tags`, `sensitive`), as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Confluent's data-contract rules (`domainRules`, `migrationRules`), as registered.
    #[serde(rename = "ruleSet", default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<serde_json::Value>,
}

/// A subject's version as `GET /subjects/{s}/versions/{v}` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version in the subject.
    pub version: u32,
    /// The global schema id.
    pub id: u32,
    /// `AVRO`, `JSON` or `PROTOBUF` (absent means `AVRO`).
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    /// References to other subjects' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Confluent's data-contract metadata, as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Confluent's data-contract rules, as registered.
    #[serde(rename = "ruleSet", default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<serde_json::Value>,
    /// The schema text.
    pub schema: String,
}

/// A (subject, version) pair, as `GET /schemas/ids/{id}/versions` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: u32,
}
