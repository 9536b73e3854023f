//! Error tolerance on the real broker, with the runtime embedded as a library:
//!
//! - `errors.tolerance=none`: a Permanent outcome fails the task (FAILED with a trace naming the record and the
//!   reason, through `ConnectApi::status` and REST), nothing is committed past the record, and the task comes
//!   back by itself with `restart.auto.enable=true` (and retries the record) or stays FAILED until
//!   `POST /connectors/{name}/restart` with `restart.auto.enable=false`;
//! - poison pills at the converter stage under `errors.tolerance=all`: dead-lettered byte for byte with the
//!   stage and exception class (`BadMagicByte`, `UnknownSchemaId`, `MalformedAvro`, `ShortFrame`,
//!   `InvalidJson` for keys and values), the good records around them delivered; without a DLQ skipped and
//!   counted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rdkafka::Message;
use serde_json::{Value, json};
use ursa::connect::api::{ConnectApi, State};
use ursa::connect::sink::Outcome;
use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig};
use ursa_testkit::unique_name;

use support::{
    Committed, DEADLINE, HeaderList, Producer, Recorder, create, eventually, eventually_async,
    header_map, headers_of, metric, permanent, read_topic, rest, sink_config, topic, wait_state,
    worker,
};

const REASON: &str = "rejected: field `amount` is negative";

/// Produces `n` string records `v<i>` to partition 0.
async fn produce(topic: &str, n: u32) {
    Producer::new()
        .send_many(topic, 0, 0..n, |i| format!("v{i}"))
        .await;
}

fn assert_trace(trace: &str, topic: &str) {
    assert!(
        trace.contains(&format!("{topic}-0@3")),
        "the trace names the record: {trace}"
    );
    assert!(trace.contains(REASON), "the trace has the reason: {trace}");
    assert!(trace.contains("TASK_PUT"), "{trace}");
    assert!(trace.contains("errors.tolerance=none"), "{trace}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_permanent_failure_fails_the_task_which_restarts_by_itself_and_retries_the_record() {
    let topic = topic("sem-fail-auto", 1).await;
    produce(&topic, 10).await;
    // Offset 3 is refused twice (so the task fails twice), then accepted.
    let recorder = Recorder::with(|r, seen| {
        if r.offset == 3 && seen < 2 {
            permanent(REASON)
        } else {
            Outcome::Delivered
        }
    });
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-fail-auto");
    create(
        &worker,
        sink_config(
            &name,
            &topic,
            &[
                ("batch.max.records", "2"),
                ("restart.auto.enable", "true"),
                // FAILED lasts at least this long (then twice as long after the second failure).
                ("restart.backoff.initial", "500ms"),
                ("restart.backoff.max", "5s"),
            ],
        ),
    )
    .await;
    let committed = Committed::of_connector(&name, &topic, 1);

    // FAILED, seen through the API and through REST in the same failure.
    let (trace, status, at_failure) =
        eventually_async("FAILED through the API and REST", DEADLINE, async || {
            let s = worker.status(name.clone()).await.unwrap();
            if s.tasks[0].state.state != State::Failed {
                return None;
            }
            let committed = committed.get().await[0];
            let (code, r) = rest.get(&format!("/connectors/{name}/status")).await;
            assert_eq!(code, 200);
            (r["tasks"][0]["state"] == "FAILED").then(|| {
                (
                    s.tasks[0].state.trace.clone().unwrap_or_default(),
                    r,
                    committed,
                )
            })
        })
        .await;
    assert_trace(&trace, &topic);
    assert_trace(status["tasks"][0]["trace"].as_str().unwrap(), &topic);
    assert_eq!(status["name"], name.as_str());
    assert_eq!(
        status["connector"]["state"], "RUNNING",
        "as in Connect, the connector runs while its task failed"
    );
    assert!(
        at_failure.is_none_or(|o| o <= 3),
        "committed {at_failure:?} past the failed record 3"
    );

    // Back by itself: the record is retried and everything is delivered and committed.
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &[10]).then_some(())
    })
    .await;
    committed.wait_for("commits at the end", &[Some(10)]).await;
    wait_state(&worker, &name, "RUNNING").await;
    rest.wait_state(&name, "RUNNING").await;
    let restarts = metric(&worker.metrics(), "ursa_task_restarts_total", &name);
    assert_eq!(restarts, Some(2.0), "two failures, two automatic restarts");
    let status = worker.status(name.clone()).await.unwrap();
    assert_eq!(
        status.tasks[0].state.trace, None,
        "a restarted task has no trace"
    );
    worker.shutdown().await;

    let attempts = recorder.attempts_of(&name);
    let of3: Vec<(u64, u32, bool)> = attempts
        .iter()
        .filter(|a| a.offset == 3)
        .map(|a| (a.generation, a.attempt, a.delivered()))
        .collect();
    assert_eq!(
        of3,
        vec![(1, 0, false), (2, 0, false), (3, 0, true)],
        "the record is retried by each new generation of the task"
    );
    let closed = recorder.closed();
    for g in 1..=3 {
        assert!(
            closed.contains(&(name.clone(), g)),
            "sink {g} closed: {closed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_auto_restart_a_failed_task_stays_failed_until_restarted_through_rest() {
    let topic = topic("sem-fail-manual", 1).await;
    produce(&topic, 10).await;
    let fixed = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fixed);
    let recorder = Recorder::with(move |r, _| {
        if r.offset == 3 && !f.load(Ordering::SeqCst) {
            permanent(REASON)
        } else {
            Outcome::Delivered
        }
    });
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-fail-manual");
    create(
        &worker,
        sink_config(
            &name,
            &topic,
            &[
                ("restart.auto.enable", "false"),
                // Would restart almost at once if auto-restart were (wrongly) applied.
                ("restart.backoff.initial", "1ms"),
            ],
        ),
    )
    .await;
    wait_state(&worker, &name, "FAILED").await;
    let committed = Committed::of_connector(&name, &topic, 1);
    for _ in 0..20 {
        let (code, s) = rest.get(&format!("/connectors/{name}/status")).await;
        assert_eq!(code, 200);
        assert_eq!(s["tasks"][0]["state"], "FAILED", "{s}");
        assert_trace(s["tasks"][0]["trace"].as_str().unwrap(), &topic);
        let c = committed.get().await[0];
        assert!(c.is_none_or(|o| o <= 3), "committed {c:?} past record 3");
    }
    assert_eq!(recorder.builds().len(), 1, "no restart happened by itself");
    let (_, task) = rest
        .get(&format!("/connectors/{name}/tasks/0/status"))
        .await;
    assert_eq!(task["state"], "FAILED");

    fixed.store(true, Ordering::SeqCst);
    let (code, body) = rest
        .post(
            &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true"),
            None,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["name"], name.as_str());
    rest.wait_state(&name, "RUNNING").await;
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &[10]).then_some(())
    })
    .await;
    committed.wait_for("commits at the end", &[Some(10)]).await;
    assert_eq!(recorder.builds().len(), 2);
    assert_eq!(
        metric(&worker.metrics(), "ursa_task_restarts_total", &name).unwrap_or(0.0),
        0.0,
        "a manual restart is not an automatic one"
    );
    worker.shutdown().await;
}

// ---------------------------------------------------------------------------------------------------------
// Poison pills at the converter stage.

const SCHEMA: &str = r#"{"type":"record","name":"Reading","namespace":"sem","fields":[{"name":"n","type":"long"},{"name":"s","type":"string"}]}"#;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn long(n: i64, out: &mut Vec<u8>) {
    varint(((n << 1) ^ (n >> 63)) as u64, out);
}

fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
    let mut b = vec![0];
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(datum);
    b
}

fn reading(id: u32, n: i64) -> Vec<u8> {
    let mut d = Vec::new();
    long(n, &mut d);
    let s = format!("r{n}");
    long(s.len() as i64, &mut d);
    d.extend_from_slice(s.as_bytes());
    framed(id, &d)
}

/// One record to produce: key, value, headers, and for a poison pill its expected stage and class.
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: HeaderList,
    pill: Option<(&'static str, &'static str)>,
}

fn good(key: &[u8], value: Vec<u8>) -> Rec {
    Rec {
        key: Some(key.to_vec()),
        value: Some(value),
        headers: vec![("h".into(), Some(b"good".to_vec()))],
        pill: None,
    }
}

fn pill(
    key: &[u8],
    value: Option<Vec<u8>>,
    stage: &'static str,
    class: &'static str,
    n: u8,
) -> Rec {
    Rec {
        key: Some(key.to_vec()),
        value,
        headers: vec![
            ("trace-id".into(), Some(vec![b't', n])),
            ("bin".into(), Some(vec![0, 0xff, n, 0x80])),
            ("empty".into(), None),
            ("trace-id".into(), Some(b"repeated".to_vec())),
        ],
        pill: Some((stage, class)),
    }
}

async fn produce_recs(topic: &str, recs: &[Rec]) {
    let producer = Producer::new();
    for r in recs {
        let h: Vec<(&str, Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        producer
            .send(topic, 0, r.key.as_deref(), r.value.as_deref(), &h)
            .await;
    }
}

/// Checks the DLQ holds exactly the pills of `recs`, byte for byte with their stage and class.
fn check_dlq(
    dlq: &[rdkafka::message::OwnedMessage],
    recs: &[Rec],
    topic: &str,
    connector: &str,
    class_name: &str,
) {
    let pills: Vec<(usize, &Rec)> = recs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.pill.is_some())
        .collect();
    assert_eq!(dlq.len(), pills.len());
    let by_offset: BTreeMap<String, &rdkafka::message::OwnedMessage> = dlq
        .iter()
        .map(|m| (header_map(m)["__connect.errors.offset"].clone(), m))
        .collect();
    for (offset, rec) in pills {
        let m = by_offset
            .get(&offset.to_string())
            .unwrap_or_else(|| panic!("offset {offset} not in the DLQ"));
        let (stage, class) = rec.pill.unwrap();
        assert_eq!(m.key(), rec.key.as_deref(), "@{offset} key");
        assert_eq!(m.payload(), rec.value.as_deref(), "@{offset} value");
        let headers = headers_of(m);
        assert_eq!(
            headers[..rec.headers.len()],
            rec.headers[..],
            "@{offset}: the original headers first, in order, byte for byte"
        );
        let h = header_map(m);
        assert_eq!(h["__connect.errors.stage"], stage, "@{offset}");
        assert_eq!(
            h["__connect.errors.exception.class.name"], class,
            "@{offset}"
        );
        assert_eq!(h["__connect.errors.class.name"], class_name, "@{offset}");
        assert_eq!(h["__connect.errors.topic"], topic);
        assert_eq!(h["__connect.errors.partition"], "0");
        assert_eq!(h["__connect.errors.connector.name"], connector);
        assert_eq!(h["__ursa.errors.attempts"], "1");
        assert!(
            h["__connect.errors.exception.stacktrace"].starts_with(class),
            "{h:?}"
        );
    }
}

fn json_recs() -> Vec<Rec> {
    vec![
        good(b"\"a\"", br#"{"n":0}"#.to_vec()),
        pill(
            b"\"b\"",
            Some(b"{not json".to_vec()),
            "VALUE_CONVERTER",
            "ursa.convert.InvalidJson",
            1,
        ),
        good(b"\"c\"", br#"{"n":2}"#.to_vec()),
        pill(
            b"not json{",
            Some(br#"{"n":3}"#.to_vec()),
            "KEY_CONVERTER",
            "ursa.convert.InvalidJson",
            3,
        ),
        good(b"\"e\"", br#"{"n":4}"#.to_vec()),
        // A tombstone is not a poison pill.
        Rec {
            key: Some(b"\"f\"".to_vec()),
            value: None,
            headers: Vec::new(),
            pill: None,
        },
    ]
}

fn json_config(name: &str, topic: &str, extra: &[(&str, &str)]) -> ursa::connect::api::FlatConfig {
    let mut c = sink_config(
        name,
        topic,
        &[
            ("key.converter", "json"),
            (
                "value.converter",
                "org.apache.kafka.connect.json.JsonConverter",
            ),
            ("errors.tolerance", "all"),
        ],
    );
    c.extend(support::flat(extra));
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn converter_poison_pills_go_to_the_dlq_byte_for_byte_and_good_records_flow() {
    let registry = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let client = RegistryClient::new(ClientConfig::new(registry.url())).unwrap();
    let avro_topic = topic("sem-pills-avro", 1).await;
    let id = client
        .register(&format!("{avro_topic}-value"), SCHEMA, &[])
        .await
        .unwrap();
    let truncated = {
        let mut d = Vec::new();
        long(5, &mut d);
        long(20, &mut d); // a 20-byte string…
        d.extend_from_slice(b"abc"); // …of which 3 bytes are there
        framed(id, &d)
    };
    let avro = vec![
        good(b"\x01k0", reading(id, 0)),
        pill(
            b"\x01k1\xff",
            Some(br#"{"n":1}"#.to_vec()),
            "VALUE_CONVERTER",
            "ursa.convert.BadMagicByte",
            1,
        ),
        good(b"\x01k2", reading(id, 2)),
        pill(
            b"\x01k3",
            Some(reading(0x7fff_fff0, 3)),
            "VALUE_CONVERTER",
            "ursa.convert.UnknownSchemaId",
            3,
        ),
        good(b"\x01k4", reading(id, 4)),
        pill(
            b"\x01k5",
            Some(truncated),
            "VALUE_CONVERTER",
            "ursa.convert.MalformedAvro",
            5,
        ),
        good(b"\x01k6", reading(id, 6)),
        pill(
            b"",
            Some(vec![0, 1]),
            "VALUE_CONVERTER",
            "ursa.convert.ShortFrame",
            7,
        ),
        good(b"\x01k8", reading(id, 8)),
    ];
    produce_recs(&avro_topic, &avro).await;
    let json_topic = topic("sem-pills-json", 1).await;
    let json = json_recs();
    produce_recs(&json_topic, &json).await;
    let (avro_dlq, json_dlq) = (
        topic("sem-pills-dlq", 1).await,
        topic("sem-pills-dlq", 1).await,
    );

    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let avro_name = unique_name("sem-pills-avro");
    let registry_url = registry.url();
    create(
        &worker,
        sink_config(
            &avro_name,
            &avro_topic,
            &[
                ("key.converter", "bytes"),
                ("value.converter", "io.confluent.connect.avro.AvroConverter"),
                ("value.converter.schema.registry.url", registry_url.as_str()),
                ("errors.tolerance", "all"),
                ("errors.deadletterqueue.topic.name", avro_dlq.as_str()),
            ],
        ),
    )
    .await;
    let json_name = unique_name("sem-pills-json");
    create(
        &worker,
        json_config(
            &json_name,
            &json_topic,
            &[("errors.deadletterqueue.topic.name", json_dlq.as_str())],
        ),
    )
    .await;
    Committed::of_connector(&avro_name, &avro_topic, 1)
        .wait_for("avro commits at the end", &[Some(avro.len() as i64)])
        .await;
    Committed::of_connector(&json_name, &json_topic, 1)
        .wait_for("json commits at the end", &[Some(json.len() as i64)])
        .await;
    let avro_dead = read_topic(&avro_dlq, 1, 4).await;
    let json_dead = read_topic(&json_dlq, 1, 2).await;

    check_dlq(
        &avro_dead,
        &avro,
        &avro_topic,
        &avro_name,
        "ursa.convert.avro",
    );
    check_dlq(
        &json_dead,
        &json,
        &json_topic,
        &json_name,
        "ursa.convert.json",
    );
    // The good records, each once, in order, decoded.
    let delivered = recorder.delivered(&avro_name);
    assert_eq!(
        delivered.iter().map(|a| a.offset).collect::<Vec<_>>(),
        vec![0, 2, 4, 6, 8]
    );
    for a in &delivered {
        assert_eq!(
            a.value_json,
            json!({"n": a.offset, "s": format!("r{}", a.offset)})
        );
    }
    let delivered = recorder.delivered(&json_name);
    assert_eq!(
        delivered.iter().map(|a| a.offset).collect::<Vec<_>>(),
        vec![0, 2, 4, 5]
    );
    assert_eq!(delivered[3].value_json, Value::Null);
    let metrics = worker.metrics();
    assert_eq!(
        metric(&metrics, "ursa_records_dead_lettered_total", &avro_name),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ursa_records_dead_lettered_total", &json_name),
        Some(2.0)
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_a_dlq_poison_pills_are_skipped_and_counted() {
    let topic = topic("sem-skip", 1).await;
    let recs = json_recs();
    produce_recs(&topic, &recs).await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let name = unique_name("sem-skip");
    create(&worker, json_config(&name, &topic, &[])).await;
    Committed::of_connector(&name, &topic, 1)
        .wait_for("commits at the end", &[Some(recs.len() as i64)])
        .await;
    let delivered: Vec<i64> = recorder.delivered(&name).iter().map(|a| a.offset).collect();
    assert_eq!(delivered, vec![0, 2, 4, 5]);
    let metrics = worker.metrics();
    assert_eq!(
        metric(&metrics, "ursa_records_skipped_total", &name),
        Some(2.0),
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "ursa_records_dead_lettered_total", &name).unwrap_or(0.0),
        0.0
    );
    worker.shutdown().await;
}
