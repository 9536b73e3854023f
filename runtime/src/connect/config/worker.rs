//! The worker's own configuration (TOML): Kafka, the registry, the REST listener, standalone or distributed
//! mode, logging and shutdown. Unknown fields are errors; durations, URLs and enums are typed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Standalone (config files) or distributed (config and status in Kafka topics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Connectors from files given on the command line (REST changes are not persisted).
    #[default]
    Standalone,
    /// Connectors in a compacted config topic shared by every worker of the group.
    Distributed,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    super::def::parse_duration(&s).map_err(serde::de::Error::custom)
}

/// Kafka connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port,…`.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties for every client (e.g. `security.protocol`); values may be secret references.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

/// The Schema Registry used by Avro converters unless a connector names its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// The registry URL.
    pub url: String,
    /// Basic auth user.
    pub user: Option<String>,
    /// Basic auth password (a secret reference like `${env:REGISTRY_PASSWORD}`).
    pub password: Option<String>,
    /// Bearer token (a secret reference).
    pub token: Option<String>,
    /// A PEM CA certificate.
    pub ca_cert: Option<std::path::PathBuf>,
    /// Request timeout.
    #[serde(default = "default_registry_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
}

fn default_registry_timeout() -> Duration {
    Duration::from_secs(10)
}

/// The REST listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestSection {
    /// Where to listen (127.0.0.1 by default).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// A bearer token required on every endpoint but /health (a secret reference).
    pub token: Option<String>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8083))
}

impl Default for RestSection {
    fn default() -> Self {
        RestSection {
            listen: default_listen(),
            token: None,
        }
    }
}

/// Distributed mode: the worker group and its topics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistributedSection {
    /// The worker group id (workers with the same id share connectors).
    pub group_id: String,
    /// The compacted topic holding connector configs and target states.
    #[serde(default = "default_config_topic")]
    pub config_topic: String,
    /// The compacted topic holding connector and task statuses.
    #[serde(default = "default_status_topic")]
    pub status_topic: String,
}

fn default_config_topic() -> String {
    "connect-configs".into()
}
fn default_status_topic() -> String {
    "connect-status".into()
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// text or json.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter, e.g. `info,ursa=debug`.
    pub level: Option<String>,
}

/// The worker config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Standalone or distributed.
    #[serde(default)]
    pub mode: Mode,
    /// Kafka.
    pub kafka: KafkaConfig,
    /// The default Schema Registry.
    pub registry: Option<RegistryConfig>,
    /// REST.
    #[serde(default)]
    pub rest: RestSection,
    /// Distributed mode settings (required with `mode = "distributed"`).
    pub distributed: Option<DistributedSection>,
    /// Logging.
    #[serde(default)]
    pub log: LogSection,
    /// How long in-flight records may take to finish on shutdown.
    #[serde(default = "default_drain", deserialize_with = "duration")]
    pub drain_deadline: Duration,
}

fn default_drain() -> Duration {
    Duration::from_secs(30)
}

impl WorkerConfig {
    /// Reads and validates a worker config file.
    pub fn load(path: &Path) -> Result<WorkerConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let c: WorkerConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        c.validate()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(c)
    }

    /// Checks what serde cannot (pure).
    pub fn validate(&self) -> Result<(), String> {
        if self.kafka.bootstrap_servers.trim().is_empty() {
            return Err("kafka.bootstrap_servers is empty".into());
        }
        if self.mode == Mode::Distributed && self.distributed.is_none() {
            return Err(
                "mode = \"distributed\" needs a [distributed] section with group_id".into(),
            );
        }
        if let Some(r) = &self.registry
            && !(r.url.starts_with("http://") || r.url.starts_with("https://"))
        {
            return Err(format!(
                "registry.url must be an http(s) URL, found {:?}",
                r.url
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_fields() {
        let c: WorkerConfig = toml::from_str(
            "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"127.0.0.1:9092\"\n[registry]\nurl = \"http://127.0.0.1:8081\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.drain_deadline, Duration::from_secs(10));
        assert_eq!(c.mode, Mode::Standalone);
        let e =
            toml::from_str::<WorkerConfig>("[kafka]\nbootstrap_servers = \"x\"\nbootstrap = 1\n")
                .unwrap_err();
        assert!(e.to_string().contains("unknown field `bootstrap`"), "{e}");
        let c: WorkerConfig =
            toml::from_str("mode = \"distributed\"\n[kafka]\nbootstrap_servers = \"x\"\n").unwrap();
        assert!(c.validate().unwrap_err().contains("[distributed]"));
    }
}
