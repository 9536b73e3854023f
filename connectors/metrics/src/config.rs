//! Configuration of the `metrics` sink: its keys, the metric definitions (TOML, inline or in a file) with
//! errors that carry a line and column for `ursa validate`, and building the sink.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use ursa_connect::{FieldErrors, Key, Kind, Parsed, Sink, SinkContext, SinkError, SinkPlugin};

use crate::extract::{Label, Normalise, Path};
use crate::filter::Filter;
use crate::sink::MetricsSink;

const DEFS: &str = "metrics.definitions";
const DEFS_FILE: &str = "metrics.definitions.file";
const LISTEN: &str = "metrics.listen";
const IDLE: &str = "metrics.expiry.idle";
const INTERVAL: &str = "metrics.expiry.interval";
const MAX_SERIES: &str = "metrics.max.series";
const MAX_VALUES: &str = "metrics.max.label.values";
const RW_URL: &str = "metrics.remote.write.url";
const RW_BATCH: &str = "metrics.remote.write.batch";
const RW_TIMEOUT: &str = "metrics.remote.write.timeout";
const RW_TIME: &str = "metrics.remote.write.time";
const CP_TOPIC: &str = "metrics.checkpoint.topic";
const CP_BOOTSTRAP: &str = "metrics.checkpoint.bootstrap.servers";

/// The label value of every series folded by the cardinality guard.
pub const OVERFLOW: &str = "__overflow__";

/// The time remote-write samples carry.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum SampleTime {
    /// When the sink pushes (the default).
    #[default]
    Processing,
    /// Each series' newest record timestamp among the records that updated it.
    Record,
    /// Each series' newest value of this field (ms since the epoch, or RFC 3339 text).
    Field(Path),
}

impl SampleTime {
    /// `processing`, `record`, or `field:<path>`.
    pub fn parse(text: &str) -> Result<SampleTime, String> {
        match text.trim() {
            "" | "processing" => Ok(SampleTime::Processing),
            "record" => Ok(SampleTime::Record),
            t => match t.strip_prefix("field:") {
                Some(p) => Path::parse(p).map(SampleTime::Field),
                None => Err(format!(
                    "{t:?}: use processing, record, or field:<path> (e.g. field:metadata.occurred_at)"
                )),
            },
        }
    }
}

/// What a metric is.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricKind {
    /// A counter: of matching records (`value` unset) or incremented by a field.
    Counter,
    /// A gauge: the last value of a field, or the sum of it.
    Gauge {
        /// `true`: the sum of the field over records; `false`: its last value.
        sum: bool,
    },
    /// A histogram of a field with these upper bounds (ascending; `+Inf` is implicit).
    Histogram {
        /// The bucket upper bounds.
        buckets: Vec<f64>,
    },
}

/// One metric definition, checked.
#[derive(Debug, Clone)]
pub struct MetricDef {
    /// The metric family name (a counter's without `_total`).
    pub name: String,
    /// Help text.
    pub help: String,
    /// The unit (the name ends with `_<unit>`), if any.
    pub unit: Option<String>,
    /// Its type.
    pub kind: MetricKind,
    /// The field whose value counts, is set or observed (`None`: a counter of records).
    pub value: Option<Path>,
    /// A factor applied to the field's value (e.g. `0.001` for milliseconds to seconds).
    pub scale: f64,
    /// Records this metric takes (all must hold).
    pub filter: Filter,
    /// Topics this metric reads (empty: every topic of the connector).
    pub topics: Vec<String>,
    /// Its labels, in exposition order.
    pub labels: Vec<Label>,
    /// The maximum number of live series (the overflow series not included).
    pub max_series: usize,
    /// The maximum number of distinct values of each label.
    pub max_label_values: usize,
}

/// The whole config of one `metrics` connector.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// The metric definitions.
    pub metrics: Vec<Arc<MetricDef>>,
    /// The listener of the sink's own `/metrics` (`None`: no listener).
    pub listen: Option<String>,
    /// A series not updated for this long is removed.
    pub idle: Duration,
    /// How often idle series are looked for.
    pub interval: Duration,
    /// Where series state is checkpointed with the offsets (`None`: counts start from zero on a restart).
    pub checkpoint: Option<crate::checkpoint::CheckpointConfig>,
    /// Prometheus remote write: the receiver's URL, series per request, request timeout.
    pub remote_write: Option<(String, usize, Duration)>,
    /// The time remote-write samples carry.
    pub sample_time: SampleTime,
}

/// A definition error with its position in the definitions text (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{column}: {message}")]
pub struct DefError {
    /// Where the text came from (`metrics.definitions` or the file's path).
    pub origin: String,
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoc {
    #[serde(default)]
    metric: Vec<Spanned<RawMetric>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetric {
    name: Spanned<String>,
    #[serde(default)]
    help: String,
    unit: Option<Spanned<String>>,
    #[serde(rename = "type")]
    kind: Spanned<String>,
    value: Option<Spanned<String>>,
    #[serde(default)]
    mode: Option<Spanned<String>>,
    scale: Option<f64>,
    buckets: Option<Spanned<Vec<f64>>>,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    filter: Vec<Spanned<crate::filter::RawCondition>>,
    #[serde(default)]
    labels: BTreeMap<String, Spanned<RawLabel>>,
    #[serde(default)]
    label_order: Vec<String>,
    max_series: Option<usize>,
    max_label_values: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawLabel {
    Path(String),
    Full(RawLabelFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLabelFull {
    path: String,
    #[serde(default)]
    branch: bool,
    #[serde(default)]
    normalise: Vec<String>,
    max_length: Option<usize>,
    #[serde(default)]
    map: BTreeMap<String, String>,
    default: Option<String>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

/// 1-based line and column of byte `at` in `text`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses and checks metric definitions: every error, each with its position.
pub fn parse_definitions(
    origin: &str,
    text: &str,
    max_series: usize,
    max_label_values: usize,
) -> Result<Vec<Arc<MetricDef>>, Vec<DefError>> {
    let err = |at: usize, message: String| {
        let (line, column) = position(text, at);
        DefError {
            origin: origin.to_owned(),
            line,
            column,
            message,
        }
    };
    let doc: RawDoc = toml::from_str(text).map_err(|e| {
        let at = e.span().map_or(0, |s| s.start);
        vec![err(at, e.message().to_owned())]
    })?;
    let mut errors = Vec::new();
    let mut out = Vec::new();
    let mut names = BTreeMap::new();
    for m in doc.metric {
        let at = m.span().start;
        let m = m.into_inner();
        let name_at = m.name.span().start;
        let mut name = m.name.into_inner();
        if !valid_name(&name) {
            errors.push(err(
                name_at,
                format!("{name:?} is not a Prometheus metric name"),
            ));
        }
        let kind_at = m.kind.span().start;
        let kind = match (m.kind.get_ref().as_str(), &m.mode) {
            ("counter", None) => MetricKind::Counter,
            ("gauge", mode) => {
                let sum = match mode.as_ref().map(|s| s.get_ref().as_str()) {
                    None | Some("last") => false,
                    Some("sum") => true,
                    Some(other) => {
                        let at = mode.as_ref().map_or(kind_at, |s| s.span().start);
                        errors.push(err(
                            at,
                            format!("gauge mode {other:?}: expected last or sum"),
                        ));
                        false
                    }
                };
                MetricKind::Gauge { sum }
            }
            ("histogram", None) => match &m.buckets {
                Some(b) => {
                    let v = b.get_ref().clone();
                    let ascending = v.windows(2).all(|w| w[0] < w[1]);
                    if v.is_empty() || !ascending || v.iter().any(|x| !x.is_finite()) {
                        errors.push(err(
                            b.span().start,
                            "buckets must be finite and strictly ascending".into(),
                        ));
                    }
                    MetricKind::Histogram { buckets: v }
                }
                None => {
                    errors.push(err(kind_at, "a histogram needs `buckets`".into()));
                    MetricKind::Histogram {
                        buckets: Vec::new(),
                    }
                }
            },
            ("counter" | "histogram", Some(mode)) => {
                errors.push(err(mode.span().start, "`mode` is for gauges".into()));
                MetricKind::Counter
            }
            (other, _) => {
                errors.push(err(
                    kind_at,
                    format!("type {other:?}: expected counter, gauge or histogram"),
                ));
                MetricKind::Counter
            }
        };
        if matches!(kind, MetricKind::Counter) {
            if let Some(stripped) = name.strip_suffix("_total") {
                name = stripped.to_owned();
            }
        } else if m.buckets.is_some() && !matches!(kind, MetricKind::Histogram { .. }) {
            errors.push(err(at, "`buckets` is for histograms".into()));
        }
        if let Some(unit) = &m.unit {
            let u = unit.get_ref();
            if !valid_label(u) || !name.ends_with(&format!("_{u}")) {
                errors.push(err(
                    unit.span().start,
                    format!("unit {u:?}: the metric name must end with `_{u}` (OpenMetrics)"),
                ));
            }
        }
        if names.insert(name.clone(), at).is_some() {
            errors.push(err(name_at, format!("metric {name:?} is defined twice")));
        }
        let value = match &m.value {
            Some(v) => match Path::parse(v.get_ref()) {
                Ok(p) => Some(p),
                Err(e) => {
                    errors.push(err(v.span().start, e));
                    None
                }
            },
            None => None,
        };
        if value.is_none() && m.value.is_none() && !matches!(kind, MetricKind::Counter) {
            errors.push(err(
                kind_at,
                "gauges and histograms need a `value` field".into(),
            ));
        }
        let filter = match Filter::build(&m.filter) {
            Ok(f) => f,
            Err((at, e)) => {
                errors.push(err(at, e));
                Filter::default()
            }
        };
        let mut order: Vec<String> = m.label_order.clone();
        for k in m.labels.keys() {
            if !order.contains(k) {
                order.push(k.clone());
            }
        }
        let mut labels = Vec::new();
        for key in &order {
            let Some(raw) = m.labels.get(key) else {
                errors.push(err(
                    at,
                    format!("label_order names {key:?}, which is not a label"),
                ));
                continue;
            };
            let l_at = raw.span().start;
            if !valid_label(key) {
                errors.push(err(l_at, format!("{key:?} is not a Prometheus label name")));
            }
            let full = match raw.get_ref() {
                RawLabel::Path(p) => RawLabelFull {
                    path: p.clone(),
                    branch: false,
                    normalise: Vec::new(),
                    max_length: None,
                    map: BTreeMap::new(),
                    default: None,
                },
                RawLabel::Full(f) => RawLabelFull {
                    path: f.path.clone(),
                    branch: f.branch,
                    normalise: f.normalise.clone(),
                    max_length: f.max_length,
                    map: f.map.clone(),
                    default: f.default.clone(),
                },
            };
            let path = match Path::parse(&full.path) {
                Ok(p) => p,
                Err(e) => {
                    errors.push(err(l_at, e));
                    continue;
                }
            };
            let mut normalise = Vec::new();
            for n in &full.normalise {
                match Normalise::parse(n) {
                    Some(n) => normalise.push(n),
                    None => errors.push(err(
                        l_at,
                        format!("normalise {n:?}: expected lower, upper, trim or snake"),
                    )),
                }
            }
            labels.push(Label {
                name: key.clone(),
                path,
                branch: full.branch,
                normalise,
                max_length: full.max_length.unwrap_or(64).max(1),
                map: full.map,
                default: full.default.unwrap_or_else(|| "none".into()),
            });
        }
        out.push(Arc::new(MetricDef {
            name,
            help: m.help,
            unit: m.unit.map(Spanned::into_inner),
            kind,
            value,
            scale: m.scale.unwrap_or(1.0),
            filter,
            topics: m.topics,
            labels,
            max_series: m.max_series.unwrap_or(max_series).max(1),
            max_label_values: m.max_label_values.unwrap_or(max_label_values).max(1),
        }));
    }
    if out.is_empty() && errors.is_empty() {
        errors.push(err(0, "no `[[metric]]` defined".into()));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The `metrics` plugin.
pub struct MetricsPlugin;

impl MetricsPlugin {
    fn definitions(config: &Parsed) -> Result<Vec<Arc<MetricDef>>, (String, Vec<String>)> {
        let max_series = usize::try_from(config.int(MAX_SERIES).unwrap_or(10_000)).unwrap_or(1);
        let max_values = usize::try_from(config.int(MAX_VALUES).unwrap_or(1_000)).unwrap_or(1);
        let inline = config.string(DEFS).filter(|s| !s.trim().is_empty());
        let file = config.string(DEFS_FILE).filter(|s| !s.trim().is_empty());
        let (key, origin, text) = match (inline, file) {
            (Some(_), Some(_)) => {
                return Err((
                    DEFS.into(),
                    vec![format!("set {DEFS} or {DEFS_FILE}, not both")],
                ));
            }
            (Some(t), None) => (DEFS, DEFS.to_owned(), t.to_owned()),
            (None, Some(f)) => match std::fs::read_to_string(f) {
                Ok(t) => (DEFS_FILE, f.to_owned(), t),
                Err(e) => return Err((DEFS_FILE.into(), vec![format!("cannot read {f}: {e}")])),
            },
            (None, None) => {
                return Err((
                    DEFS.into(),
                    vec![format!("set {DEFS} (inline TOML) or {DEFS_FILE}")],
                ));
            }
        };
        parse_definitions(&origin, &text, max_series, max_values)
            .map_err(|e| (key.to_owned(), e.iter().map(ToString::to_string).collect()))
    }

    /// The checked config.
    pub fn config(config: &Parsed) -> Result<MetricsConfig, (String, Vec<String>)> {
        let metrics = Self::definitions(config)?;
        let listen = config
            .string(LISTEN)
            .filter(|s| !s.trim().is_empty())
            .map(str::to_owned);
        Ok(MetricsConfig {
            metrics,
            listen,
            idle: config.duration(IDLE).unwrap_or(Duration::from_secs(3600)),
            interval: config
                .duration(INTERVAL)
                .unwrap_or(Duration::from_secs(30))
                .max(Duration::from_millis(10)),
            checkpoint: match (config.string(CP_TOPIC), config.string(CP_BOOTSTRAP)) {
                (Some(t), Some(b)) if !t.trim().is_empty() && !b.trim().is_empty() => {
                    Some(crate::checkpoint::CheckpointConfig {
                        topic: t.trim().to_owned(),
                        bootstrap: b.trim().to_owned(),
                    })
                }
                _ => None,
            },
            remote_write: config.string(RW_URL).map(|u| {
                (
                    u.to_owned(),
                    usize::try_from(config.int(RW_BATCH).unwrap_or(2000)).unwrap_or(2000),
                    config
                        .duration(RW_TIMEOUT)
                        .unwrap_or(Duration::from_secs(10)),
                )
            }),
            sample_time: config
                .string(RW_TIME)
                .map(SampleTime::parse)
                .transpose()
                .map_err(|e| (RW_TIME.to_owned(), vec![e]))?
                .unwrap_or_default(),
        })
    }
}

impl SinkPlugin for MetricsPlugin {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn description(&self) -> &'static str {
        "Turns events into Prometheus metrics (counters, gauges, histograms) with a cardinality guard per metric, exposed on a /metrics listener."
    }

    fn keys(&self) -> Vec<Key> {
        vec![
            Key::optional(
                DEFS,
                Kind::String,
                "",
                "metrics",
                "The metric definitions, inline TOML (`[[metric]]` tables; see connectors/metrics/README.md).",
            ),
            Key::optional(
                DEFS_FILE,
                Kind::String,
                "",
                "metrics",
                "A TOML file of metric definitions (instead of metrics.definitions).",
            ),
            Key::optional(
                LISTEN,
                Kind::String,
                "127.0.0.1:9464",
                "metrics",
                "host:port of the sink's own listener serving GET /metrics (Prometheus text or OpenMetrics); empty for none.",
            ),
            Key::optional(
                IDLE,
                Kind::Duration,
                "1h",
                "metrics",
                "A series not updated for this long is removed (on a timer, whether or not anything scrapes).",
            ),
            Key::optional(
                INTERVAL,
                Kind::Duration,
                "30s",
                "metrics",
                "How often idle series are looked for.",
            ),
            Key::optional(
                MAX_SERIES,
                Kind::Int,
                "10000",
                "metrics",
                "Default maximum of live series per metric; label sets past it go to the __overflow__ series.",
            ),
            Key::optional(
                MAX_VALUES,
                Kind::Int,
                "1000",
                "metrics",
                "Default maximum of distinct values per label of a metric; past it a label set goes to __overflow__.",
            ),
            Key::optional(
                RW_URL,
                Kind::Url,
                "",
                "metrics",
                "Prometheus remote write 1.0 receiver (e.g. http://prometheus:9090/api/v1/write): every flush pushes every series (cumulative, stamped with the processing time) and offsets are committed only once it acknowledged.",
            ),
            Key::optional(
                RW_BATCH,
                Kind::Int,
                "2000",
                "metrics",
                "Series per remote-write request.",
            ),
            Key::optional(
                RW_TIMEOUT,
                Kind::Duration,
                "10s",
                "metrics",
                "Timeout of one remote-write request.",
            ),
            Key::optional(
                RW_TIME,
                Kind::String,
                "processing",
                "metrics",
                "The time of remote-write samples: processing (when pushed), record (each series' newest record timestamp) or field:<path> (each series' newest value of that field, ms or RFC 3339). Event times never go back within a series; a late record is counted at the series' newest time (see connectors/metrics/README.md).",
            ),
            Key::optional(
                CP_TOPIC,
                Kind::String,
                "",
                "metrics",
                "A compacted topic (created if missing) where each partition's series are checkpointed with its offset before every commit, so counts continue exactly after a restart or a rebalance; empty: counts restart from zero.",
            ),
            Key::optional(
                CP_BOOTSTRAP,
                Kind::String,
                "",
                "metrics",
                "The brokers of metrics.checkpoint.topic (required with it).",
            ),
        ]
    }

    fn validate(&self, config: &Parsed) -> FieldErrors {
        let mut errors = FieldErrors::new();
        for key in [MAX_SERIES, MAX_VALUES] {
            if config.int(key).is_some_and(|v| v < 1) {
                errors
                    .entry(key.into())
                    .or_default()
                    .push("must be at least 1".into());
            }
        }
        if let Some(l) = config.string(LISTEN).filter(|s| !s.trim().is_empty()) {
            if l.parse::<std::net::SocketAddr>().is_err() {
                errors
                    .entry(LISTEN.into())
                    .or_default()
                    .push(format!("{l:?} is not an ip:port"));
            }
        }
        let topic = config
            .string(CP_TOPIC)
            .is_some_and(|s| !s.trim().is_empty());
        let brokers = config
            .string(CP_BOOTSTRAP)
            .is_some_and(|s| !s.trim().is_empty());
        if topic != brokers {
            errors.entry(CP_BOOTSTRAP.into()).or_default().push(format!(
                "set both {CP_TOPIC} and {CP_BOOTSTRAP}, or neither"
            ));
        }
        match config.string(RW_TIME).map(SampleTime::parse) {
            Some(Err(e)) => errors.entry(RW_TIME.into()).or_default().push(e),
            Some(Ok(t))
                if t != SampleTime::Processing
                    && config.string(RW_URL).is_none_or(|u| u.trim().is_empty()) =>
            {
                errors
                    .entry(RW_TIME.into())
                    .or_default()
                    .push(format!("event time is for remote write: set {RW_URL}"));
            }
            _ => {}
        }
        if let Err((key, e)) = Self::definitions(config) {
            errors.entry(key).or_default().extend(e);
        }
        errors
    }

    fn build(&self, config: &Parsed, context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        let cfg = Self::config(config)
            .map_err(|(k, e)| SinkError::permanent(format!("{k}: {}", e.join("; "))))?;
        Ok(Arc::new(MetricsSink::start(cfg, context)?))
    }
}
