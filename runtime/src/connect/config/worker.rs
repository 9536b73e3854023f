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
    /// Environment variables a config submitted over REST may reference as `${env:VAR}`: names, or
    /// prefixes ending in `*` (`["*"]`: any). Empty (the default): `${env:…}` over REST is refused.
    #[serde(default)]
    pub allow_env: Vec<String>,
    /// Directories (absolute) a config submitted over REST may reference files in as `${file:…}`, symlinks
    /// and `..` resolved first. Empty (the default): `${file:…}` over REST is refused.
    #[serde(default)]
    pub allow_file: Vec<std::path::PathBuf>,
    /// Host names the REST API answers to besides loopback ones (e.g. a local reverse proxy's); checked on a
    /// loopback listener, and on any listener once set.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

impl RestSection {
    /// The references a REST client may submit.
    pub fn references(&self) -> super::ReferencePolicy {
        super::ReferencePolicy {
            env: self.allow_env.clone(),
            file: self.allow_file.clone(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8083))
}

impl Default for RestSection {
    fn default() -> Self {
        RestSection {
            listen: default_listen(),
            token: None,
            allow_env: Vec::new(),
            allow_file: Vec::new(),
            allowed_hosts: Vec::new(),
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
    /// The replication factor of the config and status topics when the worker creates them; unset, the
    /// broker's default (`default.replication.factor`).
    pub replication_factor: Option<i16>,
}

fn default_config_topic() -> String {
    "connect-configs".into()
}
fn default_status_topic() -> String {
    "connect-status".into()
}

/// Which topics each connector consumed records from (Kafka Connect's `topic.tracking.enable` and
/// `topic.tracking.allow.reset`, KIP-558).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicTrackingSection {
    /// Track them (`GET /connectors/{c}/topics`); off, that endpoint and the reset answer 403.
    #[serde(default = "yes")]
    pub enable: bool,
    /// Allow `PUT /connectors/{c}/topics/reset`; off, it answers 403.
    #[serde(default = "yes")]
    pub allow_reset: bool,
}

fn yes() -> bool {
    true
}

impl Default for TopicTrackingSection {
    fn default() -> Self {
        TopicTrackingSection {
            enable: true,
            allow_reset: true,
        }
    }
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
    /// This worker's id in statuses and in its group (unique per group); default `<hostname>:<REST port>`
    /// (see [`WorkerConfig::worker_id`]). Its connectors' consumers derive their static group membership
    /// from it ([`static_instance_id`]): keep it the same across restarts of this worker, and never run two
    /// workers with the same id.
    pub id: Option<String>,
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
    /// Active-topic tracking.
    #[serde(default)]
    pub topic_tracking: TopicTrackingSection,
    /// How long in-flight records may take to finish on shutdown.
    #[serde(default = "default_drain", deserialize_with = "duration")]
    pub drain_deadline: Duration,
}

fn default_drain() -> Duration {
    Duration::from_secs(30)
}

/// This host's name: `$HOSTNAME`, else the kernel's (in a container, the container's), else `localhost`.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The `group.instance.id` (static group membership, KIP-345) of a connector's consumer on the worker
/// `worker_id`: derived from the worker's id and the connector's name, so the same worker restarted with
/// the same id gets the same instance id (and its partitions back at once, without a rebalance), and unique
/// per task: task 0 is `ursa.<worker>.<connector>`, task t > 0 `ursa.<worker>.<connector>.<t>`. `None` for a
/// worker whose id is not stable across restarts (no `id` and an OS-chosen REST port: `<host>:0#<pid>`): its
/// consumers join dynamically.
///
/// Kafka allows only `[a-zA-Z0-9._-]` and 249 characters: other characters (`.` included) are escaped as `_XX`
/// (hex), `.` separates the parts, and a longer id keeps a prefix and a hash of the whole.
pub fn static_instance_id(worker_id: &str, connector: &str, task: u32) -> Option<String> {
    if let Some((_, pid)) = worker_id.rsplit_once(":0#")
        && !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let escape = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b == b'-' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("_{b:02x}"));
            }
        }
        out
    };
    let mut id = format!("ursa.{}.{}", escape(worker_id), escape(connector));
    if task > 0 {
        id.push_str(&format!(".{task}"));
    }
    if id.len() <= 249 {
        return Some(id);
    }
    // FNV-1a of the full id: distinct long ids stay distinct.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    Some(format!("{}.{hash:016x}", &id[..200]))
}

impl WorkerConfig {
    /// The worker's id: `id` when set, else `<hostname>:<REST port>` (as Kafka Connect's `host:port`;
    /// unique per container and per port on a host, and the same after a restart), with `#<pid>` added when
    /// the port is chosen by the OS (port 0).
    pub fn worker_id(&self) -> String {
        if let Some(id) = &self.id {
            return id.clone();
        }
        let port = self.rest.listen.port();
        if port == 0 {
            format!("{}:0#{}", hostname(), std::process::id())
        } else {
            format!("{}:{port}", hostname())
        }
    }

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
        if self.id.as_deref().is_some_and(|id| id.trim().is_empty()) {
            return Err("id must not be empty".into());
        }
        if let Some(d) = &self.distributed
            && d.replication_factor.is_some_and(|r| r < 1)
        {
            return Err("distributed.replication_factor must be at least 1".into());
        }
        if self.mode == Mode::Distributed && self.distributed.is_none() {
            return Err(
                "mode = \"distributed\" needs a [distributed] section with group_id".into(),
            );
        }
        if let Some(dir) = self.rest.allow_file.iter().find(|d| !d.is_absolute()) {
            return Err(format!(
                "rest.allow_file must list absolute directories, found {:?}",
                dir.display().to_string()
            ));
        }
        if self.rest.allow_env.iter().any(|v| v.trim().is_empty()) {
            return Err("rest.allow_env must not hold an empty name".into());
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

    #[test]
    fn worker_ids_are_configured_or_host_and_port() {
        let c: WorkerConfig = toml::from_str(
            "id = \"w-1\"\n[kafka]\nbootstrap_servers = \"x\"\n[rest]\nlisten = \"0.0.0.0:8083\"\n",
        )
        .unwrap();
        assert_eq!(c.worker_id(), "w-1");
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"x\"\n[rest]\nlisten = \"0.0.0.0:8083\"\n",
        )
        .unwrap();
        assert_eq!(c.worker_id(), format!("{}:8083", hostname()));
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"x\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
        )
        .unwrap();
        assert_eq!(
            c.worker_id(),
            format!("{}:0#{}", hostname(), std::process::id())
        );
        let c: WorkerConfig = toml::from_str(
            "mode = \"distributed\"\n[kafka]\nbootstrap_servers = \"x\"\n[distributed]\ngroup_id = \"g\"\nreplication_factor = 0\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("replication_factor"));
    }

    #[test]
    fn static_instance_ids_are_stable_legal_and_distinct() {
        let a = static_instance_id("w-1", "orders", 0).unwrap();
        assert_eq!(a, "ursa.w-1.orders");
        assert_eq!(static_instance_id("w-1", "orders", 0).unwrap(), a);
        let b = static_instance_id("host:8083", "orders.sink", 0).unwrap();
        assert_eq!(b, "ursa.host_3a8083.orders_2esink");
        assert_ne!(
            static_instance_id("a.b", "c", 0),
            static_instance_id("a", "b.c", 0)
        );
        // One id per task; a task's suffix cannot be mistaken for a connector name (dots are escaped).
        assert_eq!(
            static_instance_id("w-1", "orders", 2).unwrap(),
            "ursa.w-1.orders.2"
        );
        assert_ne!(
            static_instance_id("w-1", "orders", 2),
            static_instance_id("w-1", "orders.2", 0)
        );
        assert!(static_instance_id("host:0#1234", "orders", 0).is_none());
        let long = static_instance_id(&"x".repeat(300), "orders", 0).unwrap();
        assert!(long.len() <= 249);
        assert_ne!(
            long,
            static_instance_id(&"x".repeat(301), "orders", 0).unwrap()
        );
        for id in [a, b, long] {
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)),
                "{id}"
            );
        }
    }

    #[test]
    fn topic_tracking_is_on_unless_turned_off() {
        let c: WorkerConfig = toml::from_str("[kafka]\nbootstrap_servers = \"x\"\n").unwrap();
        assert!(c.topic_tracking.enable && c.topic_tracking.allow_reset);
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"x\"\n[topic_tracking]\nallow_reset = false\n",
        )
        .unwrap();
        assert!(c.topic_tracking.enable && !c.topic_tracking.allow_reset);
        let e = toml::from_str::<WorkerConfig>(
            "[kafka]\nbootstrap_servers = \"x\"\n[topic_tracking]\nenabled = false\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `enabled`"), "{e}");
    }

    #[test]
    fn rest_references_are_refused_unless_allowed() {
        let c: WorkerConfig = toml::from_str("[kafka]\nbootstrap_servers = \"x\"\n").unwrap();
        assert_eq!(
            c.rest.references(),
            super::super::ReferencePolicy::default()
        );
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"x\"\n[rest]\nallow_env = [\"SINK_*\"]\nallow_file = [\"/run/secrets\"]\nallowed_hosts = [\"connect.internal\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.rest.references().env, vec!["SINK_*"]);
        assert_eq!(c.rest.allowed_hosts, vec!["connect.internal"]);
        let c: WorkerConfig = toml::from_str(
            "[kafka]\nbootstrap_servers = \"x\"\n[rest]\nallow_file = [\"secrets\"]\n",
        )
        .unwrap();
        assert!(c.validate().unwrap_err().contains("absolute"));
    }
}
