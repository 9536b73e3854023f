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
            "The most tasks (consumers of the connector's group, each with its own sink) the worker group runs, as in Kafka Connect: a standalone worker runs them all; in distributed mode task t runs on the live worker ranked t mod (live workers) by id. Partitions are also processed concurrently within a task; the in-flight bounds are per task.",
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
            "A regex of topics to consume: a topic is consumed when its whole name matches (as in Kafka Connect).",
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
            "1000",
            "flow",
            "How often the sink is flushed and offsets are committed: after a crash, about this much of the stream is delivered again.",
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
    /// Topics whose whole name matches a regex, in the form librdkafka's subscription takes: `^(…)$` (see
    /// [`subscription_regex`]).
    Regex(String),
}

impl Subscription {
    /// Whether the subscription takes `topic` (the `regex` crate on the same anchored regex the consumer
    /// subscribes with, so `/topics` and `/offsets` see what the consumer sees).
    pub fn matcher(&self) -> impl Fn(&str) -> bool + use<'_> {
        let regex = match self {
            Subscription::Regex(r) => regex::Regex::new(r).ok(),
            Subscription::Topics(_) => None,
        };
        move |topic: &str| match self {
            Subscription::Topics(ts) => ts.iter().any(|t| t == topic),
            Subscription::Regex(_) => regex.as_ref().is_some_and(|r| r.is_match(topic)),
        }
    }
}

/// `topics.regex` as the consumer subscribes with it: Kafka Connect matches whole topic names (Java's
/// `matches`), librdkafka searches a `^`-prefixed regex; `^(…)$` around the regex (without its own leading
/// `^` or trailing `$`) makes both mean the same. Checked with the `regex` crate.
pub fn subscription_regex(regex: &str) -> Result<String, String> {
    let body = regex.strip_prefix('^').unwrap_or(regex);
    let body = match body.strip_suffix('$') {
        Some(b) if !b.ends_with('\\') => b,
        _ => body,
    };
    let anchored = format!("^({body})$");
    regex::Regex::new(&anchored).map_err(|e| {
        let e = e.to_string();
        let detail = e.lines().last().unwrap_or_default().trim();
        format!("invalid regex {regex:?}: {detail}")
    })?;
    Ok(anchored)
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
    /// The most tasks of the connector in the worker group (`tasks.max`).
    pub tasks_max: u32,
    /// Commit interval.
    pub flush_interval: Duration,
    /// `consumer.override.*` properties for the connector's consumer (references resolved).
    pub consumer_overrides: BTreeMap<String, String>,
    /// Automatic restarts.
    pub auto_restart: bool,
    /// Restart backoff bounds.
    pub restart_backoff: (Duration, Duration),
    /// The values that must never be shown (resolved references, literal credentials).
    pub hidden: Hidden,
}

/// The largest `tasks.max`: each task is a consumer and a sink of its own.
pub const MAX_TASKS: usize = 256;

impl std::fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("name", &self.name)
            .field("plugin", &self.plugin.name())
            .finish_non_exhaustive()
    }
}

/// `consumer.override.*` keys that would break what the runtime guarantees, with why.
const FORBIDDEN_OVERRIDES: &[(&str, &str)] = &[
    (
        "consumer.override.enable.auto.commit",
        "the runtime commits offsets itself, only up to what the sink has done",
    ),
    (
        "consumer.override.enable.auto.offset.store",
        "the runtime commits offsets itself, only up to what the sink has done",
    ),
    (
        "consumer.override.group.id",
        "set the connector's group.id instead (the runtime's offsets API and status follow that one)",
    ),
];

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
        keys.extend(crate::connect::pipeline::keys());
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
        for (key, why) in FORBIDDEN_OVERRIDES {
            if raw.contains_key(*key) {
                errors
                    .entry((*key).to_owned())
                    .or_default()
                    .push(format!("cannot be overridden: {why}"));
            }
        }
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
            (true, Some(r)) => match subscription_regex(&r) {
                Ok(r) => Some(Subscription::Regex(r)),
                Err(e) => {
                    errors.entry("topics.regex".into()).or_default().push(e);
                    None
                }
            },
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
        let tasks_max = positive("tasks.max", &mut errors);
        if tasks_max > MAX_TASKS {
            errors
                .entry("tasks.max".into())
                .or_default()
                .push(format!("must be at most {MAX_TASKS}"));
        }
        let tasks_max = u32::try_from(tasks_max.min(MAX_TASKS)).unwrap_or(1);
        let name = parsed.string("name").unwrap_or_default().to_owned();
        let registry_url = raw
            .get("value.converter.schema.registry.url")
            .or_else(|| raw.get("key.converter.schema.registry.url"))
            .cloned();
        let Some(subscription) = subscription else {
            return Err(errors);
        };
        // The connector's own checks (templates, rules, definitions), so that `ursa validate`, REST validate and
        // create report them per key, not only the connector's start.
        for (key, why) in plugin.validate(&parsed) {
            errors.entry(key).or_default().extend(why);
        }
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
            tasks_max,
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
            hidden: Hidden::new(raw, raw, Some(plugin.as_ref())),
            raw: raw.clone(),
            plugin,
            parsed,
        })
    }

    /// The config to show (REST, status): password keys as their references or `[hidden]`.
    pub fn redacted(&self) -> FlatConfig {
        redact(&self.raw, Some(self.plugin.as_ref()))
    }

    /// `text` (a trace, a log line) with every value that must not be shown replaced by its reference or
    /// `[hidden]`, and URL credentials hidden.
    pub fn scrub(&self, text: &str) -> String {
        self.hidden.text(text)
    }
}

/// Key endings that mark a value as a credential whatever the plugin says (`*.password`, `*.token`,
/// `*.secret`, `*.key`, `sasl.jaas.config`, `basic.auth.user.info`, …).
const SENSITIVE_ENDINGS: &[&str] = &[
    "password",
    "passwd",
    "token",
    "secret",
    ".key",
    "apikey",
    "api_key",
    "credentials",
    "jaas.config",
    "user.info",
];

/// Whether `key`'s value is a credential: a password-typed key of the plugin, or a key named like one.
pub fn is_sensitive(key: &str, plugin: Option<&dyn SinkPlugin>) -> bool {
    let lower = key.to_ascii_lowercase();
    SENSITIVE_ENDINGS.iter().any(|s| lower.ends_with(s))
        || plugin.is_some_and(|p| {
            p.keys()
                .iter()
                .any(|k| k.kind == Kind::Password && k.name == key)
        })
}

/// How a value is shown: a credential key's as its reference or `[hidden]`, any other with the credentials
/// of the URLs it holds hidden (`https://user:[hidden]@host`, `?token=[hidden]`).
pub fn shown_value(key: &str, value: &str, plugin: Option<&dyn SinkPlugin>) -> String {
    if is_sensitive(key, plugin) {
        Secret::parse(value).display_form()
    } else {
        hide_url_credentials(value)
    }
}

/// Replaces the values of credential keys (see [`is_sensitive`]) by their references or `[hidden]`, and the
/// credentials embedded in URLs of every other value.
pub fn redact(raw: &FlatConfig, plugin: Option<&dyn SinkPlugin>) -> FlatConfig {
    raw.iter()
        .map(|(k, v)| (k.clone(), shown_value(k, v, plugin)))
        .collect()
}

/// Whether a URL query parameter of this name carries a credential.
fn credential_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "token",
        "secret",
        "pass",
        "pwd",
        "key",
        "sig",
        "auth",
        "credential",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// Hides the user info (`https://user:pw@host` → `https://user:[hidden]@host`, `https://tok@host` →
/// `https://[hidden]@host`) and credential-like query parameters of every URL in `value` (a list of URLs
/// separated by commas or spaces included).
pub fn hide_url_credentials(value: &str) -> String {
    if !value.contains("://") {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after.find([',', ' ', '\t', '\n']).unwrap_or(after.len());
        let (url, tail) = after.split_at(end);
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _)) => out.push_str(&format!("{user}:[hidden]")),
                    None => out.push_str("[hidden]"),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        match path.split_once('?') {
            Some((p, query)) => {
                out.push_str(p);
                out.push('?');
                let (query, fragment) = match query.split_once('#') {
                    Some((q, f)) => (q, Some(f)),
                    None => (query, None),
                };
                let params: Vec<String> = query
                    .split('&')
                    .map(|kv| match kv.split_once('=') {
                        Some((k, _)) if credential_param(k) => format!("{k}=[hidden]"),
                        _ => kv.to_owned(),
                    })
                    .collect();
                out.push_str(&params.join("&"));
                if let Some(f) = fragment {
                    out.push('#');
                    out.push_str(f);
                }
            }
            None => out.push_str(path),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// What a key's value must be, for messages that may not show the value itself.
fn expectation(kind: &Kind) -> String {
    match kind {
        Kind::Int => "expected an integer".into(),
        Kind::Boolean => "expected true or false".into(),
        Kind::Duration => "expected a duration such as 500ms, 30s or 5m".into(),
        Kind::Url => "expected an http(s) URL".into(),
        Kind::Enum(values) => format!("expected one of {}", values.join(", ")),
        Kind::String | Kind::List | Kind::Password => "the value is not valid".into(),
    }
}

/// Values that must never be shown (what references resolved to, credentials given literally), with how
/// each may be shown instead; rewrites messages and texts (errors, traces) that would show them.
#[derive(Clone, Default)]
pub struct Hidden {
    /// (key, what may be shown, the value, what the key expects).
    values: Vec<(String, String, String, Option<String>)>,
}

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hidden")
            .field(
                "keys",
                &self.values.iter().map(|v| &v.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Hidden {
    /// For a config as given (`raw`, references unresolved) and as parsed (`resolved`): every reference's
    /// resolved value and every credential key's value.
    pub fn new(raw: &FlatConfig, resolved: &FlatConfig, plugin: Option<&dyn SinkPlugin>) -> Hidden {
        let keys = all_keys(plugin);
        let values = raw
            .iter()
            .filter_map(|(k, v)| {
                let value = if super::references::is_reference(v) {
                    resolved.get(k).cloned()
                } else if is_sensitive(k, plugin) {
                    Some(v.clone())
                } else {
                    None
                }?;
                let expects = keys
                    .iter()
                    .find(|d| d.name == k.as_str())
                    .map(|d| expectation(&d.kind));
                Some((k.clone(), shown_value(k, v, plugin), value, expects))
            })
            .filter(|(_, shown, value, _)| !value.trim().is_empty() && shown != value)
            .collect();
        Hidden { values }
    }

    /// The forms of `value` a message may quote it in (as is, trimmed, escaped as `{:?}` does).
    fn forms(value: &str) -> Vec<String> {
        let mut forms = vec![value.to_owned(), value.trim().to_owned()];
        for v in [value, value.trim()] {
            let debug = format!("{v:?}");
            forms.push(debug[1..debug.len() - 1].to_owned());
        }
        forms.retain(|f| !f.is_empty());
        forms.sort();
        forms.dedup();
        forms
    }

    /// A message about `key`: replaced by one that names the reference (or `[hidden]`) and what the key
    /// expects when it would show the key's hidden value; any other hidden value it quotes is replaced by
    /// how that one may be shown.
    pub fn message(&self, key: &str, message: &str) -> String {
        if let Some((_, shown, value, expects)) = self.values.iter().find(|v| v.0 == key)
            && Self::forms(value)
                .iter()
                .any(|f| message.contains(f.as_str()))
        {
            let expects = expects.as_deref().unwrap_or("the value is not valid");
            return format!(
                "{shown} is not valid here: {expects} (the resolved value is not shown)"
            );
        }
        self.text(message)
    }

    /// Any text (a status trace, a log line): every hidden value of four characters or more is replaced by
    /// how it may be shown, and URL credentials are hidden.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for (_, shown, value, _) in &self.values {
            for form in Self::forms(value) {
                if form.chars().count() >= 4 {
                    out = out.replace(&form, shown);
                }
            }
        }
        hide_url_credentials(&out)
    }

    /// [`Hidden::message`] for every message of every key.
    pub fn errors(&self, errors: &mut FieldErrors) {
        for (key, messages) in errors.iter_mut() {
            for m in messages.iter_mut() {
                *m = self.message(key, m);
            }
        }
    }
}

/// A key's type as Kafka Connect names it in `ConfigKeyInfo.type` (`ConfigDef.Type`): ours without a Connect
/// counterpart are strings there (durations also take `30s`/`5m`, enums and URLs are strings).
fn connect_type(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int => "INT",
        Kind::Boolean => "BOOLEAN",
        Kind::List => "LIST",
        Kind::Password => "PASSWORD",
        Kind::String | Kind::Duration | Kind::Url | Kind::Enum(_) => "STRING",
    }
}

/// Every key a connector of `plugin` takes: the runtime's common and pipeline keys, then the plugin's.
pub fn all_keys(plugin: Option<&dyn SinkPlugin>) -> Vec<Key> {
    let mut keys = common_keys();
    keys.extend(crate::connect::pipeline::keys());
    if let Some(p) = plugin {
        keys.extend(p.keys());
    }
    keys
}

/// A key's definition as Kafka Connect's `ConfigKeyInfo` shows it (validate, `GET
/// /connector-plugins/{p}/config`).
pub fn key_definition(k: &Key) -> serde_json::Value {
    serde_json::json!({
        "name": k.name,
        "type": connect_type(&k.kind),
        "required": k.default.is_none(),
        "default_value": k.default,
        "importance": if k.default.is_none() { "HIGH" } else { "MEDIUM" },
        "documentation": k.documentation,
        "group": k.group,
        "width": "NONE",
        "display_name": k.name,
        "dependents": [],
        "order_in_group": 0,
    })
}

/// `GET /connector-plugins/{p}/config`: the definition of every key of `plugin`'s connectors.
pub fn definitions(plugin: &dyn SinkPlugin) -> Vec<serde_json::Value> {
    all_keys(Some(plugin)).iter().map(key_definition).collect()
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
    keys.extend(crate::connect::pipeline::keys());
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
                    "type": connect_type(&k.kind),
                    "required": k.default.is_none(),
                    "default_value": k.default,
                    "importance": if k.default.is_none() { "HIGH" } else { "MEDIUM" },
                    "documentation": k.documentation,
                    "group": k.group,
                    "width": "NONE",
                    "display_name": k.name,
                    "dependents": [],
                    "order_in_group": 0,
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
        // As Connect: the `connector.class` of the request (the plugin's name when absent).
        name: raw
            .get("connector.class")
            .cloned()
            .unwrap_or_else(|| plugin.name().to_owned()),
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

    /// Issue 8 (10): `topics.regex` matches whole names with the `regex` crate, in the form the consumer
    /// subscribes with; an invalid regex is an error of its key.
    #[test]
    fn topic_regexes_match_whole_names() {
        for (regex, subscribed) in [
            ("orders\\..*", "^(orders\\..*)$"),
            ("^(a|x.*y)$", "^((a|x.*y))$"),
            ("a|b", "^(a|b)$"),
            ("price\\$", "^(price\\$)$"),
        ] {
            assert_eq!(subscription_regex(regex).unwrap(), subscribed);
        }
        let sub = Subscription::Regex(subscription_regex("p\\.(a|x.*y)").unwrap());
        let matches = sub.matcher();
        for (topic, expected) in [
            ("p.a", true),
            ("p.xzy", true),
            ("p.xy", true),
            ("p.ab", false),
            ("p.xzyw", false),
            ("zp.a", false),
            ("p.b", false),
        ] {
            assert_eq!(matches(topic), expected, "{topic}");
        }
        let e = ConnectorConfig::parse(
            &flat(&[
                ("name", "f"),
                ("connector.class", "file"),
                ("file", "/x"),
                ("topics.regex", "orders.(a|b"),
            ]),
            &sinks::builtin(),
        )
        .unwrap_err();
        assert!(e["topics.regex"][0].contains("invalid regex"), "{e:?}");
    }

    /// Issue 8 (9c): every kind of credential is hidden, references still shown as written.
    #[test]
    fn redacts_every_kind_of_credential() {
        let raw = flat(&[
            (
                "consumer.override.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"p4ss\";",
            ),
            ("value.converter.basic.auth.user.info", "bear:p4ss"),
            ("x.private.key", "-----BEGIN PRIVATE KEY----- p4ss"),
            ("x.client.secret", "p4ss"),
            ("x.access.token", "p4ss"),
            ("x.api.key", "${env:API_KEY}"),
            (
                "value.converter.schema.registry.url",
                "https://bear:p4ss@sr.example:8081/,https://p4ss@sr2.example",
            ),
            (
                "x.webhook.url",
                "https://hooks.example/x?channel=a&token=p4ss",
            ),
            ("topics", "a"),
            ("key.converter", "string"),
            ("x.endpoint", "https://plain.example/path"),
        ]);
        let shown = redact(&raw, None);
        for (k, v) in &shown {
            assert!(!v.contains("p4ss"), "{k} shows a credential: {v}");
        }
        assert_eq!(shown["consumer.override.sasl.jaas.config"], "[hidden]");
        assert_eq!(shown["value.converter.basic.auth.user.info"], "[hidden]");
        assert_eq!(shown["x.api.key"], "${env:API_KEY}");
        assert_eq!(
            shown["value.converter.schema.registry.url"],
            "https://bear:[hidden]@sr.example:8081/,https://[hidden]@sr2.example"
        );
        assert_eq!(
            shown["x.webhook.url"],
            "https://hooks.example/x?channel=a&token=[hidden]"
        );
        assert_eq!(shown["topics"], "a");
        assert_eq!(shown["key.converter"], "string");
        assert_eq!(shown["x.endpoint"], "https://plain.example/path");
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
