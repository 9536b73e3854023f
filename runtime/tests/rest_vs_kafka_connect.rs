//! `ursa run`'s REST API against Apache Kafka Connect's, as peers: the same `kafka-connect-py` script
//! (`python_rest/compare_peer.py`) drives a real Kafka Connect worker (distributed mode, FileStreamSink,
//! JsonConverter) and `ursa run` through every endpoint, on the same topic of a real Apache Kafka broker; the
//! answers are compared step by step and field by field — status codes, keys, JSON types, and the values that
//! must match (names, states, error codes, offsets, configs). What legitimately differs is normalised first
//! (connector names, topics, files, worker ids, versions, the plugin's class name, error texts); every other
//! difference fails the test unless it is in [`ALLOWED`], the commented list of deliberate differences — the
//! same list as README.md's "REST API: differences from Kafka Connect". An entry that no longer matches
//! anything fails the test too, so the list stays true.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Map, Value, json};
use ursa_testkit::{
    FILE_STREAM_SINK, Kafka, KafkaConnect, WorkerProcess, create_topic, unique_name,
};

/// Records in the topic before the script runs.
const RECORDS: usize = 5;

const PIP_INSTALL: &str = "python3 -m pip install \"kafka-connect-py==1.0.0\"";

// ---------------------------------------------------------------------------------------------------------
// The differences we accept.

/// Why a difference is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// ursa answers differently on purpose.
    Deliberate,
}

/// What differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The status codes (the bodies are then not compared).
    Status,
    /// A key Kafka Connect has and ursa has not.
    Missing,
    /// A key ursa has and Kafka Connect has not.
    Extra,
    /// The JSON types.
    Type,
    /// The values (same type).
    Value,
    /// The array lengths.
    Length,
    /// A step only one side recorded (a wait that timed out).
    Step,
}

/// One accepted difference: `step` (a step label; a trailing `*` matches a prefix, `*` alone any step),
/// `pointer` (a JSON pointer into the normalised body: `*` matches one segment, `**` any number of them,
/// `a|b` either segment), `kind`, and why.
struct Allowed {
    step: &'static str,
    pointer: &'static str,
    kind: Kind,
    class: Class,
    /// False when the difference depends on timing and may not show in every run.
    always: bool,
    why: &'static str,
}

const fn allow(
    step: &'static str,
    pointer: &'static str,
    kind: Kind,
    class: Class,
    why: &'static str,
) -> Allowed {
    Allowed {
        step,
        pointer,
        kind,
        class,
        always: true,
        why,
    }
}

const fn sometimes(
    step: &'static str,
    pointer: &'static str,
    kind: Kind,
    class: Class,
    why: &'static str,
) -> Allowed {
    Allowed {
        step,
        pointer,
        kind,
        class,
        always: false,
        why,
    }
}

use Class::Deliberate;

/// Every accepted difference, with its reason (README.md, "REST API: differences from Kafka Connect", lists
/// the same).
const ALLOWED: &[Allowed] = &[
    // --- Deliberate: ursa answers 4xx where Connect fails with 500. ---
    allow(
        "create, bad JSON",
        "",
        Kind::Status,
        Deliberate,
        "a body that is not JSON: ursa 400, Connect 500 (Jackson's parse error)",
    ),
    allow(
        "create, no config",
        "",
        Kind::Status,
        Deliberate,
        "POST /connectors without `config`: ursa 400, Connect 500 (a NullPointerException)",
    ),
    allow(
        "alter offsets, no body",
        "",
        Kind::Status,
        Deliberate,
        "PATCH /connectors/{c}/offsets without a body: ursa 400, Connect 500 (a NullPointerException)",
    ),
    allow(
        "validate, unknown plugin",
        "",
        Kind::Status,
        Deliberate,
        "validating for a plugin that does not exist: ursa 404, Connect 500 (a wrapped BadRequestException)",
    ),
    allow(
        "unknown connector: topics",
        "",
        Kind::Status,
        Deliberate,
        "GET /connectors/{c}/topics of a connector that does not exist: ursa 404, Connect 200 with no topics",
    ),
    // --- Deliberate: what ursa is (a sink runtime with its own keys and defaults). ---
    allow(
        "plugins*",
        "/org.apache.kafka.connect.file.FileStreamSourceConnector",
        Kind::Missing,
        Deliberate,
        "ursa runs sink connectors only: no FileStreamSource",
    ),
    allow(
        "plugins, connectorsOnly=false",
        "/*",
        Kind::Missing,
        Deliberate,
        "ursa has no single message transforms, predicates or converter plugins (its converters are built in)",
    ),
    sometimes(
        "plugins*",
        "/*",
        Kind::Extra,
        Deliberate,
        "ursa's own sink plugins (audit-postgres, …), which Kafka Connect does not ship",
    ),
    allow(
        "logger root",
        "/level",
        Kind::Value,
        Deliberate,
        "each worker's own log configuration (the testkit's Kafka Connect logs OFF at the root, this ursa worker WARN)",
    ),
    allow(
        "plugin config definitions",
        "/*",
        Kind::Missing,
        Deliberate,
        "as validate: Connect's keys ursa has not (transforms, predicates, header converter, plugin versions, …)",
    ),
    allow(
        "plugin config definitions",
        "/*",
        Kind::Extra,
        Deliberate,
        "as validate: ursa's own keys (flow bounds, retries, restarts, sink deadlines, group.id, file.fsync)",
    ),
    allow(
        "plugin config definitions",
        "/*/documentation|display_name|width|importance|order_in_group|group",
        Kind::Value,
        Deliberate,
        "as validate: key documentation and display metadata are ursa's own",
    ),
    allow(
        "plugin config definitions",
        "/file/group",
        Kind::Type,
        Deliberate,
        "as validate: the sink's keys are in a group named after it (Connect: null)",
    ),
    allow(
        "plugin config definitions",
        "/key.converter|value.converter|errors.retry.timeout|errors.retry.delay.max.ms/type",
        Kind::Value,
        Deliberate,
        "as validate: converters and durations are STRING (named converters; 30s, 5m or milliseconds)",
    ),
    allow(
        "plugin config definitions",
        "/key.converter|value.converter/default_value",
        Kind::Type,
        Deliberate,
        "as validate: ursa's converters default to bytes keys and Avro values (Connect: the worker's)",
    ),
    allow(
        "plugin config definitions",
        "/errors.retry.timeout|errors.log.enable|errors.deadletterqueue.context.headers.enable/default_value",
        Kind::Value,
        Deliberate,
        "as validate: ursa's defaults for retries, error logging and DLQ context headers",
    ),
    allow(
        "plugin config definitions",
        "/file/required",
        Kind::Value,
        Deliberate,
        "as validate: ursa's file sink needs `file`",
    ),
    allow(
        "tasks",
        "/0/config/task.class",
        Kind::Missing,
        Deliberate,
        "task configs have no task.class: an ursa connector's task is its sink",
    ),
    allow(
        "create",
        "/tasks",
        Kind::Length,
        Deliberate,
        "POST /connectors: ursa has started the task when it answers; Connect answers before it has configured it",
    ),
    allow(
        "put config, creates",
        "/tasks",
        Kind::Length,
        Deliberate,
        "as above, for PUT /connectors/{c}/config",
    ),
    allow(
        "validate*",
        "/configs/*",
        Kind::Missing,
        Deliberate,
        "validate lists each runtime's own keys: ursa has no transforms, predicates, header converter, \
         config.action.reload, errors.log.include.messages, DLQ topic creation or converter-specific keys",
    ),
    allow(
        "validate*",
        "/configs/*",
        Kind::Extra,
        Deliberate,
        "ursa's own keys (flow bounds, retry attempts and delays, restarts, group.id, file.fsync)",
    ),
    sometimes(
        "validate*",
        "/groups/*",
        Kind::Value,
        Deliberate,
        "the key groups are ursa's own (their values differ when their numbers do not)",
    ),
    sometimes(
        "validate*",
        "/groups",
        Kind::Length,
        Deliberate,
        "the key groups are ursa's own",
    ),
    allow(
        "validate*",
        "/configs/*/definition/documentation|display_name|width|importance|order_in_group|group",
        Kind::Value,
        Deliberate,
        "key documentation and display metadata are ursa's own",
    ),
    allow(
        "validate*",
        "/configs/file/definition/group",
        Kind::Type,
        Deliberate,
        "ursa puts the sink's keys in a group named after it; Connect's FileStreamSink leaves them ungrouped (null)",
    ),
    allow(
        "validate*",
        "/configs/key.converter|value.converter/definition/type|default_value",
        Kind::Value,
        Deliberate,
        "converters are named (avro, json, string, bytes, or Connect's class names): STRING, not CLASS; \
         ursa's defaults are bytes keys and Avro values, Connect's the worker's JsonConverter",
    ),
    allow(
        "validate*",
        "/configs/key.converter|value.converter/value/recommended_values",
        Kind::Length,
        Deliberate,
        "ursa recommends no converter classes",
    ),
    allow(
        "validate*",
        "/configs/errors.retry.timeout|errors.retry.delay.max.ms/definition/type",
        Kind::Value,
        Deliberate,
        "durations are STRING in ursa: they take 30s or 5m as well as milliseconds (Connect: LONG)",
    ),
    allow(
        "validate*",
        "/configs/errors.retry.timeout/definition/default_value",
        Kind::Value,
        Deliberate,
        "ursa retries retriable failures for 5 minutes by default; Connect's default 0 means no retries",
    ),
    allow(
        "validate*",
        "/configs/errors.retry.timeout|errors.log.enable|errors.deadletterqueue.context.headers.enable/value/value",
        Kind::Value,
        Deliberate,
        "a key not given shows its default, and those defaults differ (above)",
    ),
    allow(
        "validate*",
        "/configs/errors.log.enable|errors.deadletterqueue.context.headers.enable/definition/default_value",
        Kind::Value,
        Deliberate,
        "ursa logs record failures and adds the __connect.errors.* headers to DLQ records unless told not to",
    ),
    allow(
        "validate*",
        "/configs/file/definition/required",
        Kind::Value,
        Deliberate,
        "ursa's file sink needs `file`; FileStreamSink writes to standard output without one",
    ),
    allow(
        "validate, bad tasks.max",
        "/configs/tasks.max/value/value",
        Kind::Type,
        Deliberate,
        "a value that does not parse is shown as given (\"abc\"); Connect shows null",
    ),
    allow(
        "validate, bad tasks.max",
        "/error_count",
        Kind::Value,
        Deliberate,
        "error_count: Connect counts messages (tasks.max=abc gets two: not a number, and must be non-null), \
         ursa one per problem",
    ),
];

// ---------------------------------------------------------------------------------------------------------
// Recording.

/// One answer: the step's label, method, path, status and body.
#[derive(Debug, Clone)]
struct Step {
    label: String,
    method: String,
    path: String,
    status: i64,
    body: Value,
}

/// What varies per side and is normalised away.
struct Side {
    what: &'static str,
    name: String,
    topic: String,
    file: PathBuf,
}

fn run_script(url: &str, side: &Side) -> Vec<Step> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python_rest/compare_peer.py"
    );
    let out = ursa_testkit::output_within(
        Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(script)
            .args([url, &side.name, &side.topic])
            .arg(&side.file)
            .arg(RECORDS.to_string()),
        None,
        ursa_testkit::PEER_TIMEOUT,
    )
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `{PIP_INSTALL}`"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "kafka-connect-py is missing: `{PIP_INSTALL}`\n{stderr}"
    );
    assert!(
        out.status.success(),
        "compare_peer.py against {} failed ({}):\n{stderr}",
        side.what,
        out.status
    );
    eprintln!("--- {} ---\n{stderr}", side.what);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Step {
            label: s["step"].as_str().unwrap().to_owned(),
            method: s["method"].as_str().unwrap().to_owned(),
            path: s["path"].as_str().unwrap().to_owned(),
            status: s["status"].as_i64().unwrap(),
            body: normalise(s["step"].as_str().unwrap(), &s["body"], side),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// Normalisation: what legitimately differs between two workers.

fn replace_names(s: &str, side: &Side) -> String {
    s.replace(&side.file.display().to_string(), "{file}")
        .replace(&side.name, "{connector}")
        .replace(&side.topic, "{topic}")
}

/// Names, topics and files become placeholders everywhere (keys too); worker ids, versions, commits and
/// cluster ids become placeholders when they are strings; ursa's plugin name becomes Connect's class name.
fn normalise_value(v: &Value, side: &Side) -> Value {
    match v {
        Value::String(s) => Value::String(replace_names(s, side)),
        Value::Array(a) => Value::Array(a.iter().map(|x| normalise_value(x, side)).collect()),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                let x = match (k.as_str(), x) {
                    ("worker_id", Value::String(_)) => json!("{worker}"),
                    ("version", Value::String(_)) => json!("{version}"),
                    ("commit", Value::String(_)) => json!("{commit}"),
                    ("kafka_cluster_id", Value::String(_)) => json!("{cluster}"),
                    ("class", Value::String(c)) if c == "file" => json!(FILE_STREAM_SINK),
                    _ => normalise_value(x, side),
                };
                out.insert(replace_names(k, side), x);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// [`normalise_value`], then per kind of body: error texts are each runtime's own (the code must match);
/// lists keyed by something (plugins by class, validation results by key) become objects, so that one
/// entry more or less is one difference, not a shifted list; validation error texts count as present or
/// absent.
fn normalise(step: &str, body: &Value, side: &Side) -> Value {
    let mut v = normalise_value(body, side);
    if let Some(o) = v.as_object_mut()
        && o.contains_key("error_code")
        && o.get("message").is_some_and(Value::is_string)
    {
        o.insert("message".into(), json!("{message}"));
    }
    if step.starts_with("plugins")
        && let Some(list) = v.as_array()
    {
        let keyed: Map<String, Value> = list
            .iter()
            .map(|p| {
                let mut p = p.clone();
                let class = p
                    .as_object_mut()
                    .and_then(|o| o.remove("class"))
                    .and_then(|c| c.as_str().map(str::to_owned))
                    .unwrap_or_default();
                (class, p)
            })
            .collect();
        v = Value::Object(keyed);
    }
    if step == "plugin config definitions"
        && let Some(list) = v.as_array()
    {
        v = Value::Object(
            list.iter()
                .map(|d| (d["name"].as_str().unwrap_or_default().to_owned(), d.clone()))
                .collect(),
        );
    }
    if step.starts_with("validate")
        && let Some(configs) = v.get("configs").and_then(Value::as_array)
    {
        let keyed: Map<String, Value> = configs
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(errors) = c.pointer_mut("/value/errors")
                    && errors.as_array().is_some_and(|e| !e.is_empty())
                {
                    *errors = json!(["{error}"]);
                }
                (
                    c["definition"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    c,
                )
            })
            .collect();
        v["configs"] = Value::Object(keyed);
    }
    v
}

// ---------------------------------------------------------------------------------------------------------
// Comparison.

/// One difference: the step, where in the body, what, and the two sides (as text, for the report).
#[derive(Debug, Clone)]
struct Difference {
    step: String,
    pointer: String,
    kind: Kind,
    connect: String,
    ursa: String,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        format!("{}…", s.chars().take(160).collect::<String>())
    } else {
        s
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn diff(step: &str, pointer: &str, connect: &Value, ursa: &Value, out: &mut Vec<Difference>) {
    let mut push = |pointer: String, kind: Kind, c: String, u: String| {
        out.push(Difference {
            step: step.to_owned(),
            pointer,
            kind,
            connect: c,
            ursa: u,
        })
    };
    match (connect, ursa) {
        (Value::Object(c), Value::Object(u)) => {
            for (k, cv) in c {
                let p = format!("{pointer}/{}", escape(k));
                match u.get(k) {
                    Some(uv) => diff(step, &p, cv, uv, out),
                    None => out.push(Difference {
                        step: step.to_owned(),
                        pointer: p,
                        kind: Kind::Missing,
                        connect: short(cv),
                        ursa: "(absent)".into(),
                    }),
                }
            }
            for (k, uv) in u {
                if !c.contains_key(k) {
                    out.push(Difference {
                        step: step.to_owned(),
                        pointer: format!("{pointer}/{}", escape(k)),
                        kind: Kind::Extra,
                        connect: "(absent)".into(),
                        ursa: short(uv),
                    });
                }
            }
        }
        (Value::Array(c), Value::Array(u)) => {
            if c.len() != u.len() {
                push(
                    pointer.to_owned(),
                    Kind::Length,
                    short(connect),
                    short(ursa),
                );
            } else {
                for (i, (cv, uv)) in c.iter().zip(u).enumerate() {
                    diff(step, &format!("{pointer}/{i}"), cv, uv, out);
                }
            }
        }
        (c, u) if type_name(c) != type_name(u) => {
            push(pointer.to_owned(), Kind::Type, short(c), short(u));
        }
        (c, u) if c != u => push(pointer.to_owned(), Kind::Value, short(c), short(u)),
        _ => {}
    }
}

/// Every difference between the two runs, step by step (matched by label).
fn compare(connect: &[Step], ursa: &[Step]) -> Vec<Difference> {
    let mut out = Vec::new();
    let by_label = |steps: &[Step]| -> BTreeMap<String, Step> {
        steps.iter().map(|s| (s.label.clone(), s.clone())).collect()
    };
    let (c_steps, u_steps) = (by_label(connect), by_label(ursa));
    for c in connect {
        let Some(u) = u_steps.get(&c.label) else {
            out.push(Difference {
                step: c.label.clone(),
                pointer: String::new(),
                kind: Kind::Step,
                connect: format!("{} {} {}", c.status, c.method, c.path),
                ursa: "(no such step)".into(),
            });
            continue;
        };
        if (c.method.as_str(), c.path.as_str()) != (u.method.as_str(), u.path.as_str()) {
            panic!(
                "step {:?} sent different requests: {} {} vs {} {}",
                c.label, c.method, c.path, u.method, u.path
            );
        }
        if c.status != u.status {
            out.push(Difference {
                step: c.label.clone(),
                pointer: String::new(),
                kind: Kind::Status,
                connect: format!("{} {}", c.status, short(&c.body)),
                ursa: format!("{} {}", u.status, short(&u.body)),
            });
            continue;
        }
        diff(&c.label, "", &c.body, &u.body, &mut out);
    }
    for u in ursa {
        if !c_steps.contains_key(&u.label) {
            out.push(Difference {
                step: u.label.clone(),
                pointer: String::new(),
                kind: Kind::Step,
                connect: "(no such step)".into(),
                ursa: format!("{} {} {} {}", u.status, u.method, u.path, short(&u.body)),
            });
        }
    }
    out
}

fn glob_segments(pattern: &[&str], path: &[&str]) -> bool {
    match (pattern.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            glob_segments(&pattern[1..], path)
                || (!path.is_empty() && glob_segments(pattern, &path[1..]))
        }
        (Some(p), Some(s)) => {
            (*p == "*" || p.split('|').any(|alt| alt == *s))
                && glob_segments(&pattern[1..], &path[1..])
        }
        _ => false,
    }
}

fn pointer_matches(pattern: &str, pointer: &str) -> bool {
    let split = |s: &str| -> Vec<String> {
        s.split('/')
            .skip(1)
            .map(|seg| seg.replace("~1", "/").replace("~0", "~"))
            .collect()
    };
    let (p, s) = (split(pattern), split(pointer));
    let p: Vec<&str> = p.iter().map(String::as_str).collect();
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    glob_segments(&p, &s)
}

fn step_matches(pattern: &str, step: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => step.starts_with(prefix),
        None => pattern == step,
    }
}

impl Allowed {
    fn matches(&self, d: &Difference) -> bool {
        self.kind == d.kind
            && step_matches(self.step, &d.step)
            && pointer_matches(self.pointer, &d.pointer)
    }
}

// ---------------------------------------------------------------------------------------------------------
// The test.

async fn produce(kafka: &Kafka, topic: &str) {
    let producer: FutureProducer = kafka.config().create().unwrap();
    for i in 0..RECORDS {
        producer
            .send(
                FutureRecord::to(topic)
                    .key(&format!("k{i}"))
                    .payload(&format!("{{\"n\":{i}}}")),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ursa_run_answers_like_kafka_connect() {
    let kafka = Kafka::apache();
    let topic = unique_name("rest-vs-connect");
    create_topic(kafka, &topic, 1).await.unwrap();
    produce(kafka, &topic).await;

    let connect = tokio::task::spawn_blocking(move || KafkaConnect::start(kafka))
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start Kafka Connect: {e:#}\n(fetch the peers with `{}`)",
                ursa_testkit::FETCH_PEERS
            )
        });
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"5s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let ursa =
        WorkerProcess::start(env!("CARGO_BIN_EXE_ursa"), &[worker.to_str().unwrap()]).unwrap();

    let (connect_name, ursa_name) = (unique_name("vs-connect"), unique_name("vs-ursa"));
    let (connect_file, ursa_file) = (dir.path().join("connect.txt"), dir.path().join("ursa.txt"));
    let connect_side = Side {
        what: "Kafka Connect",
        name: connect_name,
        topic: topic.clone(),
        file: connect_file.clone(),
    };
    let ursa_side = Side {
        what: "ursa run",
        name: ursa_name,
        topic: topic.clone(),
        file: ursa_file.clone(),
    };
    let connect_url = connect.url().to_owned();
    let ursa_url = ursa.url.clone();
    let (connect_steps, ursa_steps) = tokio::task::spawn_blocking(move || {
        (
            run_script(&connect_url, &connect_side),
            run_script(&ursa_url, &ursa_side),
        )
    })
    .await
    .unwrap();
    drop(ursa);
    drop(connect);
    // `URSA_COMPARE_DUMP=FILE` keeps both runs' normalised answers, to read what a difference is about.
    if let Ok(path) = std::env::var("URSA_COMPARE_DUMP") {
        let dump = |steps: &[Step]| -> Vec<Value> {
            steps
                .iter()
                .map(|s| json!({"step": s.label, "status": s.status, "body": s.body}))
                .collect()
        };
        let doc = json!({"connect": dump(&connect_steps), "ursa": dump(&ursa_steps)});
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }

    // Both really delivered: every record, then every record again after the offsets were reset.
    for (what, file) in [("Kafka Connect", &connect_file), ("ursa", &ursa_file)] {
        let lines = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .count();
        assert!(
            lines >= 2 * RECORDS,
            "{what} wrote {lines} lines to {}, expected {}",
            file.display(),
            2 * RECORDS
        );
    }
    assert!(connect_steps.len() > 60, "{} steps", connect_steps.len());

    let differences = compare(&connect_steps, &ursa_steps);
    let mut used = vec![false; ALLOWED.len()];
    let mut unexpected = Vec::new();
    let mut report = String::new();
    for d in &differences {
        let line = format!(
            "{:?} `{}` {}: Connect {} | ursa {}",
            d.kind, d.step, d.pointer, d.connect, d.ursa
        );
        match ALLOWED.iter().position(|a| a.matches(d)) {
            Some(i) => {
                used[i] = true;
                let a = &ALLOWED[i];
                report.push_str(&format!(
                    "  allowed ({:?}): {line}\n      {}\n",
                    a.class, a.why
                ));
            }
            None => unexpected.push(line),
        }
    }
    eprintln!(
        "{} steps compared; {} differences, {} allowed:\n{report}",
        connect_steps.len(),
        differences.len(),
        differences.len() - unexpected.len()
    );
    let stale: Vec<String> = ALLOWED
        .iter()
        .zip(&used)
        .filter(|(a, used)| a.always && !**used)
        .map(|(a, _)| format!("{:?} `{}` {} ({})", a.kind, a.step, a.pointer, a.why))
        .collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "differences from Kafka Connect not in ALLOWED:\n{}\n\nALLOWED entries that matched nothing (fixed? remove them here and in README.md):\n{}",
        unexpected.join("\n"),
        stale.join("\n")
    );
}
