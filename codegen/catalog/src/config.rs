//! The typed catalog: TOML shape, defaults applied per topic, validation against the schemas.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use ursa_avro::schema::SchemaSet;

use crate::CatalogError;

/// Schema compatibility level of a subject (Confluent's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// New schema reads data written with the latest version.
    #[default]
    Backward,
    /// New schema reads data written with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every version reads data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
    /// No checks.
    None,
}

impl Compatibility {
    /// Confluent's spelling, e.g. `FULL_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
            Compatibility::None => "NONE",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How registry subjects are named (Confluent's strategies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`.
    #[default]
    TopicNameStrategy,
    /// The record's full name.
    RecordNameStrategy,
    /// `<topic>-<record full name>`.
    TopicRecordNameStrategy,
}

/// Kafka `cleanup.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
pub enum CleanupPolicy {
    /// Delete old segments.
    #[default]
    #[serde(rename = "delete")]
    Delete,
    /// Keep the latest value per key.
    #[serde(rename = "compact")]
    Compact,
    /// Both.
    #[serde(rename = "compact,delete", alias = "delete,compact")]
    CompactDelete,
}

impl CleanupPolicy {
    /// The Kafka config value.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// Kafka `retention.ms`: a duration or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Retention {
    /// Kept forever (`retention.ms = -1`).
    Infinite,
    /// Kept this long.
    For(Duration),
}

impl Retention {
    /// The `retention.ms` value.
    pub fn as_millis(self) -> i64 {
        match self {
            Retention::Infinite => -1,
            Retention::For(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

impl<'de> Deserialize<'de> for Retention {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "infinite" {
            return Ok(Retention::Infinite);
        }
        humantime::parse_duration(&s)
            .map(Retention::For)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "retention {s:?}: {e} (use e.g. \"7d\", \"12h\" or \"infinite\")"
                ))
            })
    }
}

/// A key or value schema: an Avro primitive or a named type of the schema folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SchemaRef {
    /// `"string"`, `"bytes"`, `"long"`, …
    Primitive(String),
    /// A record/enum/fixed full name.
    Named(String),
}

impl SchemaRef {
    fn parse(s: &str) -> SchemaRef {
        const PRIMITIVES: [&str; 8] = [
            "null", "boolean", "int", "long", "float", "double", "bytes", "string",
        ];
        if PRIMITIVES.contains(&s) {
            SchemaRef::Primitive(s.to_owned())
        } else {
            SchemaRef::Named(s.to_owned())
        }
    }

    /// The primitive or full name.
    pub fn name(&self) -> &str {
        match self {
            SchemaRef::Primitive(s) | SchemaRef::Named(s) => s,
        }
    }
}

/// Settings every topic gets unless it overrides them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Partition count.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// Replication factor.
    #[serde(default = "default_replication")]
    pub replication_factor: i16,
    /// Compatibility level of the topic's subjects.
    #[serde(default)]
    pub compatibility: Compatibility,
    /// Subject naming strategy.
    #[serde(default)]
    pub subject_name_strategy: SubjectNameStrategy,
    /// `cleanup.policy`.
    #[serde(default)]
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`.
    #[serde(default = "default_retention")]
    pub retention: Retention,
}

fn default_partitions() -> u32 {
    3
}
fn default_replication() -> i16 {
    1
}
fn default_retention() -> Retention {
    Retention::For(Duration::from_secs(7 * 24 * 3600))
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            partitions: default_partitions(),
            replication_factor: default_replication(),
            compatibility: Compatibility::default(),
            subject_name_strategy: SubjectNameStrategy::default(),
            cleanup_policy: CleanupPolicy::default(),
            retention: default_retention(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    topics: BTreeMap<String, RawTopic>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    description: Option<String>,
    key: Option<String>,
    value: String,
    partitions: Option<u32>,
    replication_factor: Option<i16>,
    compatibility: Option<Compatibility>,
    subject_name_strategy: Option<SubjectNameStrategy>,
    cleanup_policy: Option<CleanupPolicy>,
    retention: Option<Retention>,
    #[serde(default)]
    config: BTreeMap<String, String>,
}

/// One topic with every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// The topic name.
    pub name: String,
    /// What it carries.
    pub description: Option<String>,
    /// The key schema (`None`: keys are not Avro-encoded).
    pub key: Option<SchemaRef>,
    /// The value schema.
    pub value: SchemaRef,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Compatibility level of its subjects.
    pub compatibility: Compatibility,
    /// Subject naming strategy.
    pub subject_name_strategy: SubjectNameStrategy,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `retention.ms`.
    pub retention: Retention,
    /// Further topic configs.
    pub config: BTreeMap<String, String>,
}

impl Topic {
    /// The key schema's subject.
    pub fn key_subject(&self) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| self.subject_name_strategy.subject(&self.name, k, true))
    }

    /// The value schema's subject.
    pub fn value_subject(&self) -> String {
        self.subject_name_strategy
            .subject(&self.name, &self.value, false)
    }

    /// Every topic config to set, including `cleanup.policy` and `retention.ms`.
    pub fn topic_configs(&self) -> BTreeMap<String, String> {
        let mut out = self.config.clone();
        out.insert("cleanup.policy".into(), self.cleanup_policy.as_str().into());
        out.insert(
            "retention.ms".into(),
            self.retention.as_millis().to_string(),
        );
        out
    }
}

/// The topic catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    /// Where it was read from.
    pub path: PathBuf,
    /// Topics by name, sorted.
    pub topics: Vec<Topic>,
}

fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl Catalog {
    /// Reads and validates a catalog file (without checking schema names; see [`Catalog::check_schemas`]).
    pub fn load(path: &Path) -> Result<Catalog, CatalogError> {
        let text = std::fs::read_to_string(path).map_err(|source| CatalogError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses and validates catalog text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Catalog, CatalogError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| CatalogError::Toml {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let d = raw.defaults;
        let mut problems = Vec::new();
        let topics: Vec<Topic> = raw
            .topics
            .into_iter()
            .map(|(name, t)| {
                if !valid_topic_name(&name) {
                    problems.push(format!(
                        "topic {name:?}: invalid name (letters, digits, '.', '_', '-'; at most 249)"
                    ));
                }
                let partitions = t.partitions.unwrap_or(d.partitions);
                if partitions == 0 {
                    problems.push(format!("topic {name:?}: partitions must be at least 1"));
                }
                let replication_factor = t.replication_factor.unwrap_or(d.replication_factor);
                if replication_factor < 1 {
                    problems.push(format!(
                        "topic {name:?}: replication_factor must be at least 1"
                    ));
                }
                Topic {
                    description: t.description,
                    key: t.key.as_deref().map(SchemaRef::parse),
                    value: SchemaRef::parse(&t.value),
                    partitions,
                    replication_factor,
                    compatibility: t.compatibility.unwrap_or(d.compatibility),
                    subject_name_strategy: t
                        .subject_name_strategy
                        .unwrap_or(d.subject_name_strategy),
                    cleanup_policy: t.cleanup_policy.unwrap_or(d.cleanup_policy),
                    retention: t.retention.unwrap_or(d.retention),
                    config: t.config,
                    name,
                }
            })
            .collect();
        if !problems.is_empty() {
            return Err(CatalogError::Invalid {
                path: path.to_path_buf(),
                problems,
            });
        }
        Ok(Catalog {
            path: path.to_path_buf(),
            topics,
        })
    }

    /// Checks that every named key and value schema exists in `schemas`.
    pub fn check_schemas(&self, schemas: &SchemaSet) -> Result<(), CatalogError> {
        let mut problems = Vec::new();
        for t in &self.topics {
            for (what, r) in [("key", t.key.as_ref()), ("value", Some(&t.value))] {
                if let Some(SchemaRef::Named(n)) = r
                    && schemas.lookup(n).is_none()
                {
                    problems.push(format!(
                        "topic {:?}: {what} type `{n}` is not defined in the schema folder",
                        t.name
                    ));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CatalogError::Invalid {
                path: self.path.clone(),
                problems,
            })
        }
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// Topics whose value is the named type `fullname`.
    pub fn topics_for_value(&self, fullname: &str) -> impl Iterator<Item = &Topic> {
        self.topics
            .iter()
            .filter(move |t| matches!(&t.value, SchemaRef::Named(n) if n == fullname))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_defaults_and_overrides() {
        let c = Catalog::parse(
            Path::new("topics.toml"),
            r#"
[defaults]
partitions = 3
retention = "7d"
[topics."a.b"]
key = "string"
value = "x.Y"
partitions = 6
retention = "infinite"
subject_name_strategy = "TopicRecordNameStrategy"
[topics."a.b".config]
"min.insync.replicas" = "2"
"#,
        )
        .unwrap();
        let t = c.topic("a.b").unwrap();
        assert_eq!(t.partitions, 6);
        assert_eq!(t.retention, Retention::Infinite);
        assert_eq!(t.value_subject(), "a.b-x.Y");
        assert_eq!(t.key_subject().as_deref(), Some("a.b-string"));
        assert_eq!(t.topic_configs()["retention.ms"], "-1");
        assert_eq!(t.topic_configs()["min.insync.replicas"], "2");
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        let e = Catalog::parse(
            Path::new("t.toml"),
            "[topics.x]\nvalue = \"a.B\"\nretension = \"1d\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("retension"), "{e}");
        let e = Catalog::parse(
            Path::new("t.toml"),
            "[topics.x]\nvalue = \"a.B\"\nretention = \"soon\"\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("retention \"soon\""), "{e}");
        let e = Catalog::parse(
            Path::new("t.toml"),
            "[topics.\"a b\"]\nvalue = \"a.B\"\npartitions = 0\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("invalid name") && e.to_string().contains("at least 1"),
            "{e}"
        );
    }
}
