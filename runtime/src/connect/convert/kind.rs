//! Which converter a connector uses for keys or values, parsed from config values and Kafka Connect class names.

use std::fmt;
use std::str::FromStr;

/// A converter: how a record's key or value bytes become JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConverterKind {
    /// Confluent wire format (magic byte, schema id, Avro datum), writer schema from the Schema Registry.
    Avro,
    /// JSON text.
    Json,
    /// UTF-8 text.
    String,
    /// Raw bytes, passed through (base64 in JSON).
    Bytes,
}

impl ConverterKind {
    /// Every kind.
    pub const ALL: [ConverterKind; 4] = [
        ConverterKind::Avro,
        ConverterKind::Json,
        ConverterKind::String,
        ConverterKind::Bytes,
    ];

    /// The short config value: `avro`, `json`, `string`, `bytes`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConverterKind::Avro => "avro",
            ConverterKind::Json => "json",
            ConverterKind::String => "string",
            ConverterKind::Bytes => "bytes",
        }
    }

    /// The Kafka Connect converter class accepted as an alias.
    pub fn connect_class(self) -> &'static str {
        match self {
            ConverterKind::Avro => "io.confluent.connect.avro.AvroConverter",
            ConverterKind::Json => "org.apache.kafka.connect.json.JsonConverter",
            ConverterKind::String => "org.apache.kafka.connect.storage.StringConverter",
            ConverterKind::Bytes => "org.apache.kafka.connect.converters.ByteArrayConverter",
        }
    }

    /// Whether it needs a Schema Registry.
    pub fn needs_registry(self) -> bool {
        self == ConverterKind::Avro
    }

    /// Parses a short name (any case) or a Kafka Connect class name.
    pub fn parse(value: &str) -> Result<ConverterKind, String> {
        let v = value.trim();
        ConverterKind::ALL
            .into_iter()
            .find(|k| v.eq_ignore_ascii_case(k.as_str()) || v == k.connect_class())
            .ok_or_else(|| {
                let classes: Vec<&str> = ConverterKind::ALL.iter().map(|k| k.connect_class()).collect();
                format!(
                    "unknown converter {value:?}: expected avro, json, string or bytes (or a Kafka Connect class: {})",
                    classes.join(", ")
                )
            })
    }
}

impl FromStr for ConverterKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ConverterKind::parse(s)
    }
}

impl fmt::Display for ConverterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
