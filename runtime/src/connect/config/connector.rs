//! A connector's configuration: the runtime's common keys (Kafka Connect's names) plus the sink's own keys,
//! parsed from a flat map (REST JSON or a TOML file) with an error per key.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connect::api::{ConfigValueInfo, FlatConfig, ValidationResult};
use crate::connect::retry::RetryPolicy;
use crate::connect::sink::SinkPlugin;

use super::def::{FieldErrors, Key, Kind, Parsed, parse};
use super::secret::Secret;

/// The converter keys accept our names and Kafka Connect's class names.
pub const CONVERTERS: &[&str] = &[
    "avro",
    "json",
    "string",
    "bytes",
    "io.confluent.connect.avro.AvroConverter",
    "org.apache.kafka.connect.json.JsonConverter",
    "org.apache.kafka.connect.storage.StringConverter",
    "org.apache.kafka.connect.converters.ByteArrayConverter",
];

/// The runtime's keys, valid for every connector.
pub fn common_keys() -> Vec<Key> {
    vec![
        Key::required(
            "name",
            Kind::String,
            "common",
            "The connector's unique name.",
        ),
        Key::required(
            "connector.class",
            Kind::String,
            "common",
            "The sink plugin: `file`, … (see `ursa connectors describe`).",
        ),
        Key::optional(
            "tasks.max",
            Kind::Int,
            "1",
            "common",
            "Accepted for Kafka Connect compatibility; partitions are processed concurrently within a worker.",
        ),
        Key::optional(
            "topics",
            Kind::List,
            "",
            "common",
            "Topics to consume (comma-separated). Exactly one of topics and topics.regex.",
        ),
        Key::optional(
            "topics.regex",
            Kind::String,
            "",
            "common",
            "A regex of topics to consume.",
        ),
        Key::optional(
            "group.id",
            Kind::String,
            "",
            "common",
            "The consumer group; default `connect-<name>`.",
        ),
        Key::optional(
            "key.converter",
            Kind::Enum(CONVERTERS.to_vec()),
            "bytes",
            "converters",
            "How keys are decoded: avro, json, string or bytes.",
        ),
        Key::optional(
            "value.converter",
            Kind::Enum(CONVERTERS.to_vec()),
            "avro",
            "converters",
            "How values are decoded: avro, json, string or bytes.",
        ),
        Key::optional(
            "errors.tolerance",
            Kind::Enum(vec!["none", "all"]),
            "none",
            "errors",
            "none: a permanent failure fails the task; all: the record goes to the DLQ (or is logged and skipped).",
        ),
        Key::optional(
            "errors.retry.timeout",
            Kind::Duration,
            "5m",
            "errors",
            "Most time spent retrying one record (0: no limit).",
        ),
        Key::optional(
            "errors.retry.max.attempts",
            Kind::Int,
            "10",
            "errors",
            "Most delivery attempts per record (0: no limit).",
        ),
        Key::optional(
            "errors.retry.delay.initial",
            Kind::Duration,
            "100ms",
            "errors",
            "Upper bound of the first retry delay (doubles each attempt, full jitter).",
        ),
        Key::optional(
            "errors.retry.delay.max.ms",
            Kind::Duration,
            "60000",
            "errors",
            "Largest retry delay.",
        ),
        Key::optional(
            "errors.deadletterqueue.topic.name",
            Kind::String,
            "",
            "errors",
            "The DLQ topic for permanent failures under errors.tolerance=all.",
        ),
        Key::optional(
            "errors.deadletterqueue.context.headers.enable",
            Kind::Boolean,
            "true",
            "errors",
            "Add the __connect.errors.* context headers to DLQ records.",
        ),
        Key::optional(
            "errors.log.enable",
            Kind::Boolean,
            "true",
            "errors",
            "Log every record failure.",
        ),
        Key::optional(
            "consumer.max.in.flight.records",
            Kind::Int,
            "20000",
            "flow",
            "Most records fetched but not done, per connector; fetching pauses above it.",
        ),
        Key::optional(
            "consumer.max.in.flight.bytes",
            Kind::Int,
            "67108864",
            "flow",
            "Most bytes fetched but not done, per connector.",
        ),
        Key::optional(
            "batch.max.records",
            Kind::Int,
            "500",
            "flow",
            "Most records per call to the sink.",
        ),
        Key::optional(
            "offset.flush.interval.ms",
            Kind::Duration,
            "5000",
            "flow",
            "How often offsets are committed.",
        ),
        Key::optional(
            "restart.auto.enable",
            Kind::Boolean,
            "true",
            "lifecycle",
            "Restart a FAILED task by itself, with backoff.",
        ),
        Key::optional(
            "restart.backoff.initial",
            Kind::Duration,
            "1s",
            "lifecycle",
            "First delay before an automatic restart.",
        ),
        Key::optional(
            "restart.backoff.max",
            Kind::Duration,
            "5m",
            "lifecycle",
            "Largest delay between automatic restarts.",
        ),
    ]
}

fn converter_kind(raw: &str) -> &'static str {
    match raw {
        "avro" | "io.confluent.connect.avro.AvroConverter" => "avro",
        "json" | "org.apache.kafka.connect.json.JsonConverter" => "json",
        "string" | "org.apache.kafka.connect.storage.StringConverter" => "string",
        _ => "bytes",
    }
}

/// What to subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// These topics.
    Topics(Vec<String>),
    /// Topics matching a regex (librdkafka's `^` form).
    Regex(String),
}

/// A validated connector config.
#[derive(Clone)]
pub struct ConnectorConfig {
    /// The name.
    pub name: String,
    /// The raw flat config (as given; secrets unresolved).
    pub raw: FlatConfig,
    /// The plugin.
    pub plugin: Arc<dyn SinkPlugin>,
    /// Parsed values of every key, common and plugin.
    pub parsed: Parsed,
    /// What to consume.
    pub subscription: Subscription,
    /// The consumer group.
    pub group_id: String,
    /// `avro`, `json`, `string` or `bytes`.
    pub key_converter: &'static str,
    /// `avro`, `json`, `string` or `bytes`.
    pub value_converter: &'static str,
    /// The registry URL for Avro converters (`value.converter.schema.registry.url` or the worker's).
    pub registry_url: Option<String>,
    /// `errors.tolerance=all`.
    pub tolerate_all: bool,
    /// Retry timing.
    pub retry: RetryPolicy,
    /// The DLQ topic.
    pub dlq_topic: Option<String>,
    /// Whether DLQ records get context headers.
    pub dlq_context_headers: bool,
    /// Whether record failures are logged.
    pub log_errors: bool,
    /// In-flight bounds.
    pub max_in_flight_records: usize,
    /// In-flight byte bound.
    pub max_in_flight_bytes: usize,
    /// Records per sink call.
    pub batch_max_records: usize,
    /// Commit interval.
    pub flush_interval: Duration,
    /// `consumer.override.*` properties for the connector's consumer (references resolved).
    pub consumer_overrides: BTreeMap<String, String>,
    /// Automatic restarts.
    pub auto_restart: bool,
    /// Restart backoff bounds.
    pub restart_backoff: (Duration, Duration),
}

impl std::fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("name", &self.name)
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}

/// Keys that belong to the converters (`key.converter.*`, `value.converter.*`) are open-ended.
const OPEN_PREFIXES: &[&str] = &["key.converter.", "value.converter.", "consumer.override."];

impl ConnectorConfig {
    /// Parses and validates (no I/O). `plugins` resolves `connector.class`.
    pub fn parse(
        raw: &FlatConfig,
        plugins: &[Arc<dyn SinkPlugin>],
    ) -> Result<ConnectorConfig, FieldErrors> {
        let class = raw.get("connector.class").cloned().unwrap_or_default();
        let plugin = plugins
            .iter()
            .find(|p| p.name() == class || p.aliases().contains(&class.as_str()))
            .cloned();
        let mut keys = common_keys();
        if let Some(p) = &plugin {
            keys.extend(p.keys());
        }
        let mut errors = FieldErrors::new();
        let parsed = match parse(&keys, OPEN_PREFIXES, raw) {
            Ok(p) => Some(p),
            Err(e) => {
                errors = e;
                None
            }
        };
        if plugin.is_none() && !class.is_empty() {
            let names: Vec<&str> = plugins.iter().map(|p| p.name()).collect();
            errors
                .entry("connector.class".into())
                .or_default()
                .push(format!(
                    "unknown connector class {class:?}; available: {}",
                    names.join(", ")
                ));
        }
        let (Some(parsed), Some(plugin)) = (parsed, plugin) else {
            // Still report the checks across keys, from the raw values.
            let set = |k: &str| raw.get(k).is_some_and(|v| !v.trim().is_empty());
            match (set("topics"), set("topics.regex")) {
                (true, true) => errors
                    .entry("topics".into())
                    .or_default()
                    .push("set either topics or topics.regex, not both".into()),
                (false, false) => errors
                    .entry("topics".into())
                    .or_default()
                    .push("set topics or topics.regex".into()),
                _ => {}
            }
            if set("errors.deadletterqueue.topic.name")
                && raw.get("errors.tolerance").map(String::as_str) != Some("all")
            {
                errors
                    .entry("errors.deadletterqueue.topic.name".into())
                    .or_default()
                    .push("a DLQ is used only with errors.tolerance=all".into());
            }
            for k in [
                "consumer.max.in.flight.records",
                "consumer.max.in.flight.bytes",
                "batch.max.records",
            ] {
                if raw
                    .get(k)
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .is_some_and(|n| n < 1)
                {
                    errors
                        .entry(k.into())
                        .or_default()
                        .push("must be at least 1".into());
                }
            }
            return Err(errors);
        };
        let topics = parsed.list("topics");
        let regex = parsed.string("topics.regex").map(str::to_owned);
        let subscription = match (topics.is_empty(), regex) {
            (false, None) => Some(Subscription::Topics(topics)),
            (true, Some(r)) => Some(Subscription::Regex(if r.starts_with('^') {
                r
            } else {
                format!("^{r}")
            })),
            (false, Some(_)) => {
                errors
                    .entry("topics".into())
                    .or_default()
                    .push("set either topics or topics.regex, not both".into());
                None
            }
            (true, None) => {
                errors
                    .entry("topics".into())
                    .or_default()
                    .push("set topics or topics.regex".into());
                None
            }
        };
        let tolerate_all = parsed.string("errors.tolerance") == Some("all");
        let dlq_topic = parsed
            .string("errors.deadletterqueue.topic.name")
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        if dlq_topic.is_some() && !tolerate_all {
            errors
                .entry("errors.deadletterqueue.topic.name".into())
                .or_default()
                .push("a DLQ is used only with errors.tolerance=all".into());
        }
        let positive = |key: &str, errors: &mut FieldErrors| -> usize {
            match parsed.int(key) {
                Some(n) if n > 0 => n as usize,
                _ => {
                    errors
                        .entry(key.into())
                        .or_default()
                        .push("must be at least 1".into());
                    1
                }
            }
        };
        let max_in_flight_records = positive("consumer.max.in.flight.records", &mut errors);
        let max_in_flight_bytes = positive("consumer.max.in.flight.bytes", &mut errors);
        let batch_max_records = positive("batch.max.records", &mut errors);
        let name = parsed.string("name").unwrap_or_default().to_owned();
        let registry_url = raw
            .get("value.converter.schema.registry.url")
            .or_else(|| raw.get("key.converter.schema.registry.url"))
            .cloned();
        let Some(subscription) = subscription else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        let d = |k: &str| parsed.duration(k).unwrap_or_default();
        Ok(ConnectorConfig {
            group_id: parsed
                .string("group.id")
                .filter(|g| !g.is_empty())
                .map_or_else(|| format!("connect-{name}"), str::to_owned),
            key_converter: converter_kind(parsed.string("key.converter").unwrap_or("bytes")),
            value_converter: converter_kind(parsed.string("value.converter").unwrap_or("avro")),
            registry_url,
            tolerate_all,
            retry: RetryPolicy {
                initial: d("errors.retry.delay.initial"),
                max_delay: d("errors.retry.delay.max.ms"),
                max_attempts: u32::try_from(parsed.int("errors.retry.max.attempts").unwrap_or(10))
                    .unwrap_or(0),
                max_elapsed: d("errors.retry.timeout"),
            },
            dlq_topic,
            dlq_context_headers: parsed
                .boolean("errors.deadletterqueue.context.headers.enable")
                .unwrap_or(true),
            log_errors: parsed.boolean("errors.log.enable").unwrap_or(true),
            max_in_flight_records,
            max_in_flight_bytes,
            batch_max_records,
            flush_interval: d("offset.flush.interval.ms"),
            consumer_overrides: raw
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("consumer.override.")
                        .map(|p| (p.to_owned(), v.clone()))
                })
                .collect(),
            auto_restart: parsed.boolean("restart.auto.enable").unwrap_or(true),
            restart_backoff: (d("restart.backoff.initial"), d("restart.backoff.max")),
            subscription,
            name,
            raw: raw.clone(),
            plugin,
            parsed,
        })
    }

    /// The config to show (REST, status): password keys as their references or `[hidden]`.
    pub fn redacted(&self) -> FlatConfig {
        redact(&self.raw, Some(self.plugin.as_ref()))
    }
}

/// Replaces the values of password-typed keys (and any `*.password`, `*.token`, `*.secret` key).
pub fn redact(raw: &FlatConfig, plugin: Option<&dyn SinkPlugin>) -> FlatConfig {
    let secret_keys: Vec<&'static str> = plugin
        .map(|p| {
            p.keys()
                .into_iter()
                .filter(|k| k.kind == Kind::Password)
                .map(|k| k.name)
                .collect()
        })
        .unwrap_or_default();
    raw.iter()
        .map(|(k, v)| {
            let sensitive = secret_keys.contains(&k.as_str())
                || ["password", "token", "secret", "api.key", "credentials"]
                    .iter()
                    .any(|s| k.ends_with(s));
            let shown = if sensitive {
                Secret::parse(v).display_form()
            } else {
                v.clone()
            };
            (k.clone(), shown)
        })
        .collect()
}

/// Kafka Connect's validate response for `plugin` and a flat config.
pub fn validate(
    plugin: &dyn SinkPlugin,
    plugins: &[Arc<dyn SinkPlugin>],
    raw: &FlatConfig,
) -> ValidationResult {
    let errors = match ConnectorConfig::parse(raw, plugins) {
        Ok(_) => FieldErrors::new(),
        Err(e) => e,
    };
    let mut keys = common_keys();
    keys.extend(plugin.keys());
    let mut groups: Vec<String> = Vec::new();
    let configs: Vec<ConfigValueInfo> = keys
        .iter()
        .map(|k| {
            if !groups.iter().any(|g| g == k.group) {
                groups.push(k.group.to_owned());
            }
            let value = raw.get(k.name).map(|v| {
                if k.kind == Kind::Password {
                    Secret::parse(v).display_form()
                } else {
                    v.clone()
                }
            });
            ConfigValueInfo {
                definition: serde_json::json!({
                    "name": k.name,
                    "type": k.kind,
                    "required": k.default.is_none(),
                    "default_value": k.default,
                    "importance": if k.default.is_none() { "HIGH" } else { "MEDIUM" },
                    "documentation": k.documentation,
                    "group": k.group,
                    "width": "NONE",
                    "display_name": k.name,
                    "dependents": [],
                    "order": 0,
                }),
                value: serde_json::json!({
                    "name": k.name,
                    "value": value.or_else(|| k.default.map(str::to_owned)),
                    "recommended_values": [],
                    "errors": errors.get(k.name).cloned().unwrap_or_default(),
                    "visible": true,
                }),
            }
        })
        .collect();
    let mut unknown: Vec<ConfigValueInfo> = errors
        .iter()
        .filter(|(k, _)| !keys.iter().any(|d| d.name == k.as_str()))
        .map(|(k, e)| ConfigValueInfo {
            definition: serde_json::json!({"name": k, "type": "STRING", "required": false, "documentation": "unknown key", "group": "unknown"}),
            value: serde_json::json!({"name": k, "value": raw.get(k), "recommended_values": [], "errors": e, "visible": true}),
        })
        .collect();
    let mut configs = configs;
    configs.append(&mut unknown);
    ValidationResult {
        name: plugin.name().to_owned(),
        error_count: errors.len(),
        groups,
        configs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::sinks;

    fn flat(kv: &[(&str, &str)]) -> FlatConfig {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_a_file_connector() {
        let c = ConnectorConfig::parse(
            &flat(&[
                ("name", "f"),
                ("connector.class", "FileStreamSink"),
                ("topics", "a,b"),
                ("file", "/tmp/x"),
                ("errors.tolerance", "all"),
                ("errors.deadletterqueue.topic.name", "dlq"),
                (
                    "value.converter",
                    "org.apache.kafka.connect.json.JsonConverter",
                ),
            ]),
            &sinks::builtin(),
        )
        .unwrap();
        assert_eq!(c.group_id, "connect-f");
        assert_eq!(
            c.subscription,
            Subscription::Topics(vec!["a".into(), "b".into()])
        );
        assert_eq!(c.value_converter, "json");
        assert_eq!(c.dlq_topic.as_deref(), Some("dlq"));
        assert_eq!(c.retry.max_delay, Duration::from_secs(60));
    }

    #[test]
    fn reports_every_problem_per_key() {
        let e = ConnectorConfig::parse(
            &flat(&[
                ("name", "f"),
                ("connector.class", "file"),
                ("errors.tolerance", "most"),
                ("fiel", "/x"),
                ("errors.deadletterqueue.topic.name", "dlq"),
            ]),
            &sinks::builtin(),
        )
        .unwrap_err();
        assert!(
            e["errors.tolerance"][0].contains("expected one of none, all"),
            "{e:?}"
        );
        assert!(e["fiel"][0].contains("did you mean `file`"), "{e:?}");
        assert_eq!(e["file"], vec!["missing required configuration"]);
        let e = ConnectorConfig::parse(
            &flat(&[("name", "f"), ("connector.class", "nope")]),
            &sinks::builtin(),
        )
        .unwrap_err();
        assert!(
            e["connector.class"][0].contains("unknown connector class \"nope\"; available: file"),
            "{e:?}"
        );
        let e = ConnectorConfig::parse(
            &flat(&[("name", "f"), ("connector.class", "file"), ("file", "/x")]),
            &sinks::builtin(),
        )
        .unwrap_err();
        assert_eq!(e["topics"], vec!["set topics or topics.regex"]);
    }

    #[test]
    fn secrets_are_redacted_and_validation_is_connect_shaped() {
        let raw = flat(&[
            ("name", "f"),
            ("connector.class", "file"),
            ("topics", "a"),
            ("file", "/x"),
            ("value.converter.basic.auth.password", "hunter2"),
            ("x.token", "${env:T}"),
        ]);
        let shown = redact(&raw, None);
        assert_eq!(shown["value.converter.basic.auth.password"], "[hidden]");
        assert_eq!(shown["x.token"], "${env:T}");
        let plugins = sinks::builtin();
        let v = validate(plugins[0].as_ref(), &plugins, &raw);
        assert_eq!(v.name, "file");
        assert_eq!(v.error_count, 1, "{v:?}");
    }
}
