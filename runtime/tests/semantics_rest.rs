//! The connector lifecycle through the REAL worker's REST API (the runtime embedded as a library, a scripted
//! test sink, the real broker): create, pause (nothing delivered while paused), resume, stop, offsets read,
//! reset and altered while stopped (records after the new offset delivered again), restart, delete — by
//! hand and with the third-party Python client `kafka-connect-py`; restarting a running connector retires
//! its old task; bad configs refused with per-key messages, and the validate endpoint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use ursa::connect::active_topics::ActiveTopics;
use ursa::connect::api::ConnectApi;
use ursa::connect::config::ReferencePolicy;
use ursa::connect::rest::RestConfig;
use ursa::connect::sink::Outcome;
use ursa_testkit::unique_name;

use support::{
    Committed, DEADLINE, Producer, Recorder, eventually, rest, rest_with, retriable, sink_config,
    topic, worker,
};

fn offsets_body(topic: &str, offset: Option<i64>) -> Value {
    json!({"offsets": [{
        "partition": {"kafka_topic": topic, "kafka_partition": 0},
        "offset": offset.map(|o| json!({"kafka_offset": o})),
    }]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lifecycle_through_the_real_workers_rest_api() {
    let topic = topic("sem-life", 1).await;
    let producer = Producer::new();
    producer
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-life");
    let config = sink_config(&name, &topic, &[]);

    // Create.
    let (code, created) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], name.as_str());
    assert_eq!(created["type"], "sink");
    assert_eq!(created["config"], serde_json::to_value(&config).unwrap());
    let (code, again) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 409, "{again}");
    assert_eq!(rest.get("/connectors").await.1, json!([name]));
    rest.wait_state(&name, "RUNNING").await;
    let committed = Committed::of_connector(&name, &topic, 1);
    committed
        .wait_for("first records committed", &[Some(10)])
        .await;
    assert!(recorder.all_delivered(&name, &[10]));
    let (code, refused) = rest
        .patch(
            &format!("/connectors/{name}/offsets"),
            &offsets_body(&topic, Some(0)),
        )
        .await;
    assert_eq!(
        code, 400,
        "offsets are altered only when STOPPED: {refused}"
    );
    assert!(refused["message"].as_str().unwrap().contains("STOPPED"));

    // Pause: a second connector on the same topic (same worker, same consumer settings) is the witness that
    // the new records were there to be fetched; the paused one must deliver none of them until resumed.
    let (code, _) = rest.put(&format!("/connectors/{name}/pause"), None).await;
    assert_eq!(code, 202);
    rest.wait_state(&name, "PAUSED").await;
    let witness = unique_name("sem-life-witness");
    let (code, _) = rest
        .post(
            "/connectors",
            Some(&json!({"name": witness, "config": sink_config(&witness, &topic, &[])})),
        )
        .await;
    assert_eq!(code, 201);
    producer
        .send_many(&topic, 0, 10..20, |i| format!("v{i}"))
        .await;
    let marker = producer.send(&topic, 0, None, Some(b"marker"), &[]).await;
    assert_eq!(marker, 20);
    eventually("the witness got the marker", DEADLINE, || {
        recorder.all_delivered(&witness, &[21]).then_some(())
    })
    .await;
    let while_paused: Vec<i64> = recorder
        .delivered(&name)
        .iter()
        .filter(|a| a.offset >= 10)
        .map(|a| a.offset)
        .collect();
    assert!(
        while_paused.is_empty(),
        "delivered while PAUSED: {while_paused:?}"
    );
    assert_eq!(rest.task_state(&name).await, "PAUSED");

    // Resume: the marker arrives, and only after the resume.
    recorder.mark(1);
    let (code, _) = rest.put(&format!("/connectors/{name}/resume"), None).await;
    assert_eq!(code, 202);
    rest.wait_state(&name, "RUNNING").await;
    eventually("the marker after resume", DEADLINE, || {
        recorder.all_delivered(&name, &[21]).then_some(())
    })
    .await;
    assert!(
        recorder
            .delivered(&name)
            .iter()
            .filter(|a| a.offset >= 10)
            .all(|a| a.mark == 1)
    );
    committed
        .wait_for("commits after resume", &[Some(21)])
        .await;

    // Stop, then the offsets API.
    let (code, _) = rest.put(&format!("/connectors/{name}/stop"), None).await;
    assert_eq!(code, 204);
    rest.wait_state(&name, "STOPPED").await;
    let (code, offsets) = rest.get(&format!("/connectors/{name}/offsets")).await;
    assert_eq!(code, 200);
    assert_eq!(offsets, offsets_body(&topic, Some(21)));
    let (code, reset) = rest.delete(&format!("/connectors/{name}/offsets")).await;
    assert_eq!(code, 200, "{reset}");
    assert!(reset["message"].as_str().unwrap().contains("reset"));
    assert_eq!(
        rest.get(&format!("/connectors/{name}/offsets")).await.1,
        json!({"offsets": []})
    );
    assert_eq!(committed.get().await, vec![None]);
    let (code, altered) = rest
        .patch(
            &format!("/connectors/{name}/offsets"),
            &offsets_body(&topic, Some(15)),
        )
        .await;
    assert_eq!(code, 200, "{altered}");
    assert_eq!(
        rest.get(&format!("/connectors/{name}/offsets")).await.1,
        offsets_body(&topic, Some(15))
    );
    assert_eq!(rest.task_state(&name).await, "STOPPED");

    // Resume from STOPPED: delivery restarts at the altered offset, not before it.
    recorder.mark(2);
    let (code, _) = rest.put(&format!("/connectors/{name}/resume"), None).await;
    assert_eq!(code, 202);
    rest.wait_state(&name, "RUNNING").await;
    let redelivered = |r: &Recorder| -> BTreeSet<i64> {
        r.delivered(&name)
            .iter()
            .filter(|a| a.mark == 2)
            .map(|a| a.offset)
            .collect()
    };
    eventually("records from offset 15 delivered again", DEADLINE, || {
        (redelivered(&recorder) == (15..21).collect()).then_some(())
    })
    .await;
    committed
        .wait_for("commits after the replay", &[Some(21)])
        .await;

    // Restart: a new sink, still RUNNING, still delivering.
    let builds = recorder.builds().len();
    let (code, _) = rest
        .post(&format!("/connectors/{name}/restart"), None)
        .await;
    assert_eq!(code, 204);
    eventually("a new sink after the restart", DEADLINE, || {
        (recorder.builds().len() > builds).then_some(())
    })
    .await;
    rest.wait_state(&name, "RUNNING").await;
    producer
        .send(&topic, 0, None, Some(b"after restart"), &[])
        .await;
    eventually("a record after the restart", DEADLINE, || {
        recorder.all_delivered(&name, &[22]).then_some(())
    })
    .await;

    // Delete.
    let (code, _) = rest.delete(&format!("/connectors/{name}")).await;
    assert_eq!(code, 204);
    let (code, gone) = rest.get(&format!("/connectors/{name}")).await;
    assert_eq!(code, 404);
    assert_eq!(gone["error_code"], 404);
    assert_eq!(rest.get(&format!("/connectors/{name}/status")).await.0, 404);
    assert_eq!(rest.get("/connectors").await.1, json!([witness]));
    let (code, _) = rest.delete(&format!("/connectors/{witness}")).await;
    assert_eq!(code, 204);
    worker.shutdown().await;
}

/// Restarting a RUNNING connector retires its task before the new one runs: the old task stops calling the
/// old sink (it is aborted when its consumer goes), and the old sink is closed (`Sink::close`: "called once
/// when the connector stops").
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarting_a_running_connector_retires_the_old_task_and_closes_its_sink() {
    let topic = topic("sem-restart", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..6, |i| format!("v{i}"))
        .await;
    let gate_open = Arc::new(AtomicBool::new(false));
    let open = Arc::clone(&gate_open);
    let recorder = Recorder::with(move |r, _| {
        if r.offset == 2 && !open.load(Ordering::SeqCst) {
            retriable("gate closed", None)
        } else {
            Outcome::Delivered
        }
    });
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-restart");
    let config = sink_config(
        &name,
        &topic,
        &[
            ("errors.retry.max.attempts", "0"),
            ("errors.retry.timeout", "0"),
            ("errors.retry.delay.initial", "5ms"),
            ("errors.retry.delay.max.ms", "10"),
        ],
    );
    let (code, _) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 201);
    let gated = |r: &Recorder, generation: u64| {
        r.attempts_of(&name)
            .iter()
            .filter(|a| a.offset == 2 && a.generation == generation)
            .count()
    };
    eventually("generation 1 retrying the gated record", DEADLINE, || {
        (gated(&recorder, 1) >= 2).then_some(())
    })
    .await;
    let (code, _) = rest
        .post(&format!("/connectors/{name}/restart"), None)
        .await;
    assert_eq!(code, 204);
    eventually("generation 2 retrying the gated record", DEADLINE, || {
        (gated(&recorder, 2) >= 1).then_some(())
    })
    .await;
    let old_at_start = gated(&recorder, 1);
    eventually("generation 2 retried 10 times", DEADLINE, || {
        (gated(&recorder, 2) >= 10).then_some(())
    })
    .await;
    let old_now = gated(&recorder, 1);
    let closed = recorder.closed();
    gate_open.store(true, Ordering::SeqCst);
    worker.shutdown().await;
    assert!(
        old_now <= old_at_start + 1,
        "the old task kept calling the old sink after the restart: {old_at_start} then {old_now} attempts"
    );
    assert!(
        closed.contains(&(name.clone(), 1)),
        "the old sink was not closed by the restart: {closed:?}"
    );
}

/// Offsets are committed only after `Sink::flush` made the delivered records durable ("flush: called before
/// offsets are committed") — also when partitions are revoked (a rebalance, or the consumer going away on a
/// restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offsets_are_committed_on_revocation_only_after_a_flush() {
    let topic = topic("sem-flush", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-flush");
    // No periodic commit during the test: its first tick is at start, with nothing to commit.
    let config = sink_config(&name, &topic, &[("offset.flush.interval.ms", "600000")]);
    let (code, _) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 201);
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &[10]).then_some(())
    })
    .await;
    let (code, _) = rest
        .post(&format!("/connectors/{name}/restart"), None)
        .await;
    assert_eq!(code, 204);
    eventually("a new sink after the restart", DEADLINE, || {
        (recorder.builds().len() >= 2).then_some(())
    })
    .await;
    let committed = Committed::of_connector(&name, &topic, 1).get().await[0];
    let flushed_by_old = recorder
        .flushes()
        .iter()
        .filter(|(c, g)| *c == name && *g == 1)
        .count();
    worker.shutdown().await;
    assert!(
        committed.is_none() || flushed_by_old > 0,
        "offset {committed:?} committed for records the sink was never asked to flush"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_configs_are_refused_with_per_key_messages() {
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-bad");
    let good = sink_config(&name, "sem-bad-topic", &[]);
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        (
            "errors.tolerence",
            Some("all"),
            "errors.tolerence: unknown configuration (did you mean `errors.tolerance`?)",
        ),
        (
            "errors.tolerance",
            Some("most"),
            "errors.tolerance: expected one of none, all, found \"most\"",
        ),
        ("topics", None, "topics: set topics or topics.regex"),
        (
            "errors.deadletterqueue.topic.name",
            Some("dlq"),
            "errors.deadletterqueue.topic.name: a DLQ is used only with errors.tolerance=all",
        ),
        (
            "batch.max.records",
            Some("many"),
            "batch.max.records: expected an integer, found \"many\"",
        ),
        (
            "errors.retry.timeout",
            Some("soon"),
            "errors.retry.timeout: invalid duration \"soon\"",
        ),
        (
            "value.converter",
            Some("protobuf"),
            "value.converter: expected one of avro, json",
        ),
        // Issue 8 (7): what would break the runtime's commits or move the connector to another group.
        (
            "consumer.override.enable.auto.commit",
            Some("true"),
            "consumer.override.enable.auto.commit: cannot be overridden: the runtime commits offsets itself",
        ),
        (
            "consumer.override.enable.auto.offset.store",
            Some("true"),
            "consumer.override.enable.auto.offset.store: cannot be overridden: the runtime commits offsets itself",
        ),
        (
            "consumer.override.group.id",
            Some("someone-elses-group"),
            "consumer.override.group.id: cannot be overridden: set the connector's group.id",
        ),
    ];
    let apply = |c: &mut ursa::connect::api::FlatConfig, key: &str, value: Option<&str>| match value
    {
        Some(v) => {
            c.insert(key.to_owned(), v.to_owned());
        }
        None => {
            c.remove(key);
        }
    };
    // Problems of single keys (type, enum, unknown key), reported together.
    let single_key = |key: &str| {
        ![
            "errors.tolerance",
            "topics",
            "errors.deadletterqueue.topic.name",
        ]
        .contains(&key)
    };
    let mut all = good.clone();
    for (key, value, message) in &cases {
        let mut c = good.clone();
        apply(&mut c, key, *value);
        if single_key(key) {
            apply(&mut all, key, *value);
        }
        let (code, body) = rest
            .post("/connectors", Some(&json!({"name": name, "config": c})))
            .await;
        assert_eq!(code, 400, "{key}: {body}");
        assert_eq!(body["error_code"], 400);
        let text = body["message"].as_str().unwrap();
        assert!(text.contains(message), "{key}: {text}");
        // PUT /connectors/{name}/config refuses it the same way.
        let (code, body) = rest
            .put(
                &format!("/connectors/{name}/config"),
                Some(&serde_json::to_value(&c).unwrap()),
            )
            .await;
        assert_eq!(code, 400, "{key}: {body}");
        assert!(body["message"].as_str().unwrap().contains(message));
    }
    // Every problem at once, each under its key.
    let (code, body) = rest
        .post("/connectors", Some(&json!({"name": name, "config": all})))
        .await;
    assert_eq!(code, 400);
    let text = body["message"].as_str().unwrap();
    for (key, _, message) in cases.iter().filter(|c| single_key(c.0)) {
        assert!(text.contains(message), "{key} missing from {text}");
    }
    assert_eq!(rest.get("/connectors").await.1, json!([]));
    assert_eq!(rest.get(&format!("/connectors/{name}")).await.0, 404);

    // The validate endpoint: the error count and the errors per key.
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&serde_json::to_value(&all).unwrap()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["name"], "test-sink");
    let errors = |v: &Value| -> std::collections::BTreeMap<String, Vec<String>> {
        v["configs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| !c["value"]["errors"].as_array().unwrap().is_empty())
            .map(|c| {
                (
                    c["value"]["name"].as_str().unwrap().to_owned(),
                    serde_json::from_value(c["value"]["errors"].clone()).unwrap(),
                )
            })
            .collect()
    };
    let per_key = errors(&v);
    assert_eq!(v["error_count"], per_key.len(), "{v}");
    let keys: Vec<&str> = per_key.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        vec![
            "batch.max.records",
            "consumer.override.enable.auto.commit",
            "consumer.override.enable.auto.offset.store",
            "consumer.override.group.id",
            "errors.retry.timeout",
            "errors.tolerence",
            "value.converter",
        ]
    );
    for (key, _, message) in cases.iter().filter(|c| single_key(c.0)) {
        let text = format!("{key}: {}", per_key[*key].join(", "));
        assert!(text.contains(message), "{text}");
    }
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&serde_json::to_value(&good).unwrap()),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["error_count"], 0, "{v}");

    // The built-in file plugin, by its Connect class name too.
    for plugin in ["file", "FileStreamSink"] {
        let (code, v) = rest
            .put(
                &format!("/connector-plugins/{plugin}/config/validate"),
                Some(&json!({
                    "name": name,
                    "connector.class": "file",
                    "topics": "t",
                    "fiel": "/tmp/x",
                    "errors.tolerance": "most",
                })),
            )
            .await;
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["name"], "file");
        let per_key = errors(&v);
        assert_eq!(v["error_count"], 3, "{v}");
        assert_eq!(per_key["file"], vec!["missing required configuration"]);
        assert!(per_key["fiel"][0].contains("did you mean `file`"), "{v}");
        assert!(per_key["errors.tolerance"][0].contains("expected one of none, all"));
    }
    let (code, _) = rest
        .put(
            "/connector-plugins/nope/config/validate",
            Some(&json!({"connector.class": "nope"})),
        )
        .await;
    assert_eq!(code, 404);
    worker.shutdown().await;
}

/// Every problem of a config is reported at once, as Connect does: the checks across keys (topics, the DLQ's
/// tolerance) too, not only once every key parses.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_problem_is_reported_at_once() {
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-bad-all");
    let mut config = sink_config(&name, "t", &[]);
    config.remove("topics");
    config.insert("errors.deadletterqueue.topic.name".into(), "dlq".into());
    config.insert("errors.tolerence".into(), "all".into());
    let expected = [
        "errors.deadletterqueue.topic.name: a DLQ is used only with errors.tolerance=all",
        "errors.tolerence: unknown configuration (did you mean `errors.tolerance`?)",
        "topics: set topics or topics.regex",
    ];
    let (code, body) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 400);
    let text = body["message"].as_str().unwrap();
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&serde_json::to_value(&config).unwrap()),
        )
        .await;
    assert_eq!(code, 200);
    worker.shutdown().await;
    for e in expected {
        assert!(text.contains(e), "`{e}` missing from {text}");
    }
    assert_eq!(v["error_count"], 3, "{v}");
}

/// A `${file:path:key}` reference to `secret` in a fresh properties file.
fn secret_file(secret: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.properties");
    std::fs::write(&path, format!("user=bear\napi={secret}\n")).unwrap();
    let reference = format!("${{file:{}:api}}", path.display());
    (dir, reference)
}

/// A REST config that allows `${file:…}` references to files under `dir`.
fn allow_files_in(dir: &std::path::Path) -> RestConfig {
    RestConfig {
        references: ReferencePolicy {
            env: Vec::new(),
            file: vec![dir.to_owned()],
        },
        ..RestConfig::ephemeral()
    }
}

/// A sink reads its password-typed keys resolved: `Secret::expose` of `${file:…}` gives the file's value and
/// of a literal the literal ("resolved at start", config/secret.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sink_reads_its_secrets_resolved() {
    let topic = topic("sem-sink-secret", 1).await;
    let secret = unique_name("file-secret");
    let (_dir, reference) = secret_file(&secret);
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let name = unique_name("sem-sink-secret");
    let config = sink_config(
        &name,
        &topic,
        &[
            ("x.api.password", reference.as_str()),
            ("x.secret.token", "literal-value-xyz"),
        ],
    );
    support::create(&worker, config).await;
    let build = eventually("the sink built", DEADLINE, || {
        recorder.builds().first().cloned()
    })
    .await;
    worker.shutdown().await;
    assert_eq!(
        build.exposed["x.api.password"].as_deref(),
        Some(secret.as_str())
    );
    assert_eq!(
        build.exposed["x.secret.token"].as_deref(),
        Some("literal-value-xyz")
    );
}

/// The validate endpoint never echoes a resolved secret, not even under a misspelled key (where the value
/// is shown back as the "value" of the unknown key).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validate_never_echoes_a_resolved_secret() {
    let secret = unique_name("file-secret");
    let (dir, reference) = secret_file(&secret);
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest_with(&worker, allow_files_in(dir.path())).await;
    let name = unique_name("sem-validate-secret");
    let config = sink_config(
        &name,
        "t",
        &[
            ("x.api.pasword", reference.as_str()),
            ("consumer.override.sasl.password", reference.as_str()),
        ],
    );
    let (code, refused) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 400);
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&serde_json::to_value(&config).unwrap()),
        )
        .await;
    assert_eq!(code, 200);
    worker.shutdown().await;
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("did you mean `x.api.password`"),
        "{refused}"
    );
    assert_eq!(v["error_count"], 1, "{v}");
    assert!(!refused.to_string().contains(&secret), "{refused}");
    let echoed: Vec<&Value> = v["configs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c.to_string().contains(&secret))
        .collect();
    assert!(echoed.is_empty(), "validate echoed the secret: {echoed:?}");
}

/// Issue 8 (14): the Kafka Connect 4 endpoints and fields on the real worker — `initial_state` PAUSED and
/// STOPPED honoured at creation (nothing delivered before a resume; a STOPPED connector lists no tasks),
/// `PATCH …/config` (a null removes a key), `POST …/tasks/{t}/restart` (a new sink), `PUT …/topics/reset`,
/// `GET /connector-plugins/{p}/config`, restart's `includeTasks`/`onlyFailed` (RESTARTING for what restarts,
/// nothing restarted when nothing failed), the plugin `version` in statuses, and the broker's cluster id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_connect_4_endpoints_on_the_real_worker() {
    let topic = topic("sem-kc4", 1).await;
    let producer = Producer::new();
    producer
        .send_many(&topic, 0, 0..3, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let (paused, stopped) = (
        unique_name("sem-kc4-paused"),
        unique_name("sem-kc4-stopped"),
    );

    // initial_state: created PAUSED (or STOPPED), it never consumes before a resume.
    for (name, state) in [(&paused, "PAUSED"), (&stopped, "STOPPED")] {
        let (code, created) = rest
            .post(
                "/connectors",
                Some(&json!({"name": name, "config": sink_config(name, &topic, &[]), "initial_state": state})),
            )
            .await;
        assert_eq!(code, 201, "{state}: {created}");
        rest.wait_state(name, state).await;
    }
    let (_, status) = rest.get(&format!("/connectors/{stopped}/status")).await;
    assert_eq!(
        status["tasks"],
        json!([]),
        "a STOPPED connector runs no task: {status}"
    );
    assert_eq!(
        rest.get(&format!("/connectors/{stopped}/tasks")).await.1,
        json!([])
    );
    assert_eq!(
        rest.get(&format!("/connectors/{stopped}")).await.1["tasks"],
        json!([])
    );
    let (_, status) = rest.get(&format!("/connectors/{paused}/status")).await;
    assert_eq!(
        status["connector"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    assert_eq!(
        status["tasks"][0]["version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    assert!(recorder.delivered(&paused).is_empty() && recorder.delivered(&stopped).is_empty());
    let (code, _) = rest
        .put(&format!("/connectors/{paused}/resume"), None)
        .await;
    assert_eq!(code, 202);
    Committed::of_connector(&paused, &topic, 1)
        .wait_for("the resumed connector consumed", &[Some(3)])
        .await;
    let name = paused;

    // PATCH …/config: keys set, a null removes one; the connector restarts with the merged config.
    let (code, patched) = rest
        .patch(
            &format!("/connectors/{name}/config"),
            &json!({"batch.max.records": "7", "offset.flush.interval.ms": null}),
        )
        .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["name"], name.as_str());
    assert_eq!(patched["config"]["batch.max.records"], "7");
    assert!(
        patched["config"].get("offset.flush.interval.ms").is_none(),
        "{patched}"
    );
    assert_eq!(patched["config"]["topics"], topic.as_str());
    assert_eq!(
        rest.get(&format!("/connectors/{name}/config")).await.1,
        patched["config"]
    );
    let (code, v) = rest
        .patch("/connectors/no-such-connector/config", &json!({"a": "b"}))
        .await;
    assert_eq!(code, 404, "{v}");
    let (code, v) = rest
        .patch(
            &format!("/connectors/{name}/config"),
            &json!({"errors.tolerance": "most"}),
        )
        .await;
    assert_eq!(code, 400, "{v}");
    rest.wait_state(&name, "RUNNING").await;

    // Restarting task 0 builds a new sink; an unknown task is 404.
    let builds = |r: &Recorder| r.builds().iter().filter(|b| b.connector == name).count();
    let before = builds(&recorder);
    let (code, v) = rest
        .post(&format!("/connectors/{name}/tasks/0/restart"), None)
        .await;
    assert_eq!(code, 204, "{v}");
    eventually("a new sink for task 0", DEADLINE, || {
        (builds(&recorder) > before).then_some(())
    })
    .await;
    for task in ["1", "abc"] {
        let (code, v) = rest
            .post(&format!("/connectors/{name}/tasks/{task}/restart"), None)
            .await;
        assert_eq!(code, 404, "task {task}: {v}");
    }
    rest.wait_state(&name, "RUNNING").await;

    // restart?includeTasks=true&onlyFailed=true restarts nothing when nothing failed; includeTasks alone
    // restarts the task, and the answer says RESTARTING.
    let before = builds(&recorder);
    let (code, v) = rest
        .post(
            &format!("/connectors/{name}/restart?includeTasks=true&onlyFailed=true"),
            None,
        )
        .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["tasks"][0]["state"], "RUNNING", "{v}");
    let (code, v) = rest
        .post(
            &format!("/connectors/{name}/restart?includeTasks=true"),
            None,
        )
        .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(v["connector"]["state"], "RESTARTING", "{v}");
    assert_eq!(v["tasks"][0]["state"], "RESTARTING", "{v}");
    eventually("one new sink after the restart", DEADLINE, || {
        (builds(&recorder) == before + 1).then_some(())
    })
    .await;

    // Topics reset; plugin config definitions; the cluster id.
    let (code, v) = rest
        .put(&format!("/connectors/{name}/topics/reset"), None)
        .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(
        rest.put("/connectors/no-such-connector/topics/reset", None)
            .await
            .0,
        404
    );
    let (code, definitions) = rest.get("/connector-plugins/test-sink/config").await;
    assert_eq!(code, 200, "{definitions}");
    let names: Vec<&str> = definitions
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for key in [
        "name",
        "connector.class",
        "topics",
        "errors.tolerance",
        "x.api.password",
    ] {
        assert!(names.contains(&key), "{key} missing from {names:?}");
    }
    assert_eq!(rest.get("/connector-plugins/nope/config").await.0, 404);
    let (_, info) = rest.get("/").await;
    let id = info["kafka_cluster_id"].as_str().unwrap_or_default();
    assert!(!id.is_empty(), "{info}");
    worker.shutdown().await;
}

/// Issue 8 (14): `/health` reflects the connectors: a FAILED task makes the worker `degraded` (still 200: it
/// serves, and a restart of the worker would not fix a connector), naming the connector and its state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_reflects_failed_connectors() {
    let topic = topic("sem-health", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..1, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::with(|_, _| support::permanent("the sink refuses it"));
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let (code, health) = rest.get("/health").await;
    assert_eq!(
        (code, health["status"].as_str()),
        (200, Some("healthy")),
        "{health}"
    );
    let name = unique_name("sem-health");
    let (code, v) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": sink_config(&name, &topic, &[("restart.auto.enable", "false")])})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    support::eventually_async("the task FAILED", DEADLINE, async || {
        (rest.task_state(&name).await == "FAILED").then_some(())
    })
    .await;
    let (code, health) = rest.get("/health").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["ready"], true, "{health}");
    assert_eq!(health["connectors"][&name], "FAILED", "{health}");
    assert_eq!(rest.delete(&format!("/connectors/{name}")).await.0, 204);
    let (_, health) = rest.get("/health").await;
    assert_eq!(health["status"], "healthy", "{health}");
    worker.shutdown().await;
    let (code, health) = rest.get("/health").await;
    assert_eq!(
        (code, health["ready"].as_bool()),
        (503, Some(false)),
        "{health}"
    );
}

/// Issue 8 (3): the REST API answers while a connector's drain hangs (its sink's `flush` does not return):
/// reconfiguring it waits for that drain without holding the worker's lock, so reads, and changes to other
/// connectors, go on; the connector shows RESTARTING meanwhile, and a second change to it is refused with
/// 409 until the first is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_answers_while_a_connectors_drain_hangs() {
    let topic = topic("sem-hang", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..3, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let (name, other) = (unique_name("sem-hang"), unique_name("sem-hang-other"));
    for n in [&name, &other] {
        let (code, v) = rest
            .post(
                "/connectors",
                Some(&json!({"name": n, "config": sink_config(n, &topic, &[])})),
            )
            .await;
        assert_eq!(code, 201, "{v}");
    }
    for n in [&name, &other] {
        Committed::of_connector(n, &topic, 1)
            .wait_for("the records committed", &[Some(3)])
            .await;
    }
    recorder.hang_flushes();
    let url = format!("{}/connectors/{name}/config", rest.base);
    let changed = sink_config(&name, &topic, &[("batch.max.records", "7")]);
    let body = json!(changed);
    let reconfigure =
        tokio::spawn(async move { reqwest::Client::new().put(url).json(&body).send().await });
    let answers = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        // The old task is draining (its flush hangs): the connector is RESTARTING.
        eventually_async_restarting(&rest, &name).await;
        let (code, list) = rest.get("/connectors").await;
        assert_eq!(code, 200);
        assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
        let (code, again) = rest
            .put(&format!("/connectors/{name}/config"), Some(&json!(changed)))
            .await;
        assert_eq!(code, 409, "a second change while the first drains: {again}");
        assert_eq!(rest.get(&format!("/connectors/{name}")).await.0, 200);
        assert_eq!(
            rest.get(&format!("/connectors/{other}/status")).await.0,
            200
        );
        let (code, _) = rest.put(&format!("/connectors/{other}/stop"), None).await;
        assert_eq!(code, 204);
        assert_eq!(rest.get("/health").await.0, 200);
    })
    .await;
    let still_draining = !reconfigure.is_finished();
    recorder.release_flushes();
    assert!(
        answers.is_ok(),
        "the REST API did not answer within 10 s while a connector drained"
    );
    assert!(
        still_draining,
        "the reconfiguration did not wait for the drain"
    );
    let response = reconfigure.await.unwrap().unwrap();
    assert_eq!(response.status(), 200);
    rest.wait_state(&name, "RUNNING").await;
    let (_, config) = rest.get(&format!("/connectors/{name}/config")).await;
    assert_eq!(config["batch.max.records"], "7");
    worker.shutdown().await;
}

/// Waits until `name`'s task is RESTARTING (through REST).
async fn eventually_async_restarting(rest: &support::Rest, name: &str) {
    support::eventually_async("the connector RESTARTING", DEADLINE, async || {
        let (_, s) = rest.get(&format!("/connectors/{name}/status")).await;
        (s["tasks"][0]["state"] == "RESTARTING").then_some(())
    })
    .await;
}

/// Issue 8 (9a): `${env:…}` and `${file:…}` references in configs submitted over REST are refused unless
/// the worker allows them (`[rest] allow_env`, `allow_file`), and nothing a reference resolves to is ever
/// echoed: not in a 400's message (`"errors.tolerance": "${file:/etc/shadow}"` used to return the file), not
/// in validate's errors, for POST, PUT and validate alike; a refused connector does not exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn references_over_rest_are_refused_by_default_and_never_echoed() {
    let secret = unique_name("shadow-line");
    let dir = tempfile::tempdir().unwrap();
    let shadow = dir.path().join("shadow");
    std::fs::write(&shadow, format!("root:{secret}:19000:0:99999:7:::\n")).unwrap();
    let valid = dir.path().join("tolerance");
    std::fs::write(&valid, "all\n").unwrap();
    let path_value = std::env::var("PATH").unwrap();
    let cases = [
        (
            format!("${{file:{}}}", shadow.display()),
            Some(secret.clone()),
        ),
        ("${env:PATH}".to_owned(), Some(path_value)),
        (format!("${{file:{}}}", valid.display()), None),
    ];
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-ref");
    for (reference, hidden) in &cases {
        let config = sink_config(
            &name,
            "sem-ref-topic",
            &[("errors.tolerance", reference.as_str())],
        );
        let (code, created) = rest
            .post(
                "/connectors",
                Some(&json!({"name": name, "config": config})),
            )
            .await;
        let (put_code, put) = rest
            .put(&format!("/connectors/{name}/config"), Some(&json!(config)))
            .await;
        let (validate_code, validated) = rest
            .put(
                "/connector-plugins/test-sink/config/validate",
                Some(&json!(config)),
            )
            .await;
        if let Some(hidden) = hidden {
            for (what, body) in [("POST", &created), ("PUT", &put), ("validate", &validated)] {
                assert!(
                    !body.to_string().contains(hidden.as_str()),
                    "{what} with {reference} echoed what it resolves to: {body}"
                );
            }
        }
        assert_eq!(
            (code, put_code, validate_code),
            (400, 400, 200),
            "{reference}: {created} {put}"
        );
        for body in [&created, &put] {
            let message = body["message"].as_str().unwrap();
            assert!(
                message.contains("errors.tolerance")
                    && message.contains(reference.as_str())
                    && message.contains("rest.allow_"),
                "{reference}: {message}"
            );
        }
        let errors = validated["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == "errors.tolerance")
            .map(|c| c["value"]["errors"].clone())
            .unwrap();
        assert!(errors.to_string().contains("rest.allow_"), "{errors}");
        assert_eq!(validated["error_count"], 1, "{validated}");
    }
    assert!(worker.connectors().await.is_empty());
    worker.shutdown().await;
}

/// Issue 8 (9a): with `allow_file` naming a directory, a reference to a file in it resolves over REST, and
/// when the value is wrong for its key the 400 and validate name the reference, never the value; a file
/// outside the directory is refused without being read, through `..` or a symlink too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn references_the_worker_allows_resolve_over_rest_but_never_leak() {
    let secret = unique_name("shadow-line");
    let root = tempfile::tempdir().unwrap();
    let (allowed, outside) = (root.path().join("allowed"), root.path().join("outside"));
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(allowed.join("tolerance"), "all\n").unwrap();
    std::fs::write(allowed.join("bad"), format!("{secret}\n")).unwrap();
    std::fs::write(outside.join("secret"), format!("{secret}\n")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), allowed.join("link")).unwrap();
    let reference = |p: std::path::PathBuf| format!("${{file:{}}}", p.display());
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest_with(&worker, allow_files_in(&allowed)).await;
    let name = unique_name("sem-ref-ok");
    let with = |value: &str| sink_config(&name, "sem-ref-ok-topic", &[("errors.tolerance", value)]);

    let bad = reference(allowed.join("bad"));
    let (code, refused) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": with(&bad)})),
        )
        .await;
    assert!(!refused.to_string().contains(&secret), "{refused}");
    assert_eq!(code, 400, "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "errors.tolerance: {bad} is not valid here: expected one of none, all"
        )),
        "{message}"
    );
    let (code, validated) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&json!(with(&bad))),
        )
        .await;
    assert_eq!(code, 200);
    assert!(!validated.to_string().contains(&secret), "{validated}");
    assert_eq!(validated["error_count"], 1, "{validated}");

    for escape in [
        reference(outside.join("secret")),
        reference(allowed.join("link")),
        format!("${{file:{}/../outside/secret}}", allowed.display()),
    ] {
        let (code, refused) = rest
            .post(
                "/connectors",
                Some(&json!({"name": name, "config": with(&escape)})),
            )
            .await;
        assert_eq!(code, 400, "{escape}: {refused}");
        assert!(!refused.to_string().contains(&secret), "{refused}");
        assert!(
            refused["message"].as_str().unwrap().contains("allow_file"),
            "{escape}: {refused}"
        );
    }

    let good = reference(allowed.join("tolerance"));
    let (code, created) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": with(&good)})),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["config"]["errors.tolerance"], good.as_str());
    let (code, _) = rest.delete(&format!("/connectors/{name}")).await;
    assert_eq!(code, 204);
    worker.shutdown().await;
}

/// `consumer.override.*` values may be secret references too (e.g. `consumer.override.sasl.password`): the
/// consumer gets the resolved value. Observed with a numeric property librdkafka validates: resolved it is
/// `1` and the connector delivers; unresolved, the consumer cannot be created.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consumer_overrides_get_resolved_references() {
    let topic = topic("sem-override", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..3, |i| format!("v{i}"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consumer.properties");
    std::fs::write(&path, "min.bytes=1\n").unwrap();
    let reference = format!("${{file:{}:min.bytes}}", path.display());
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let name = unique_name("sem-override");
    support::create(
        &worker,
        sink_config(
            &name,
            &topic,
            &[
                ("consumer.override.fetch.min.bytes", reference.as_str()),
                ("restart.auto.enable", "false"),
            ],
        ),
    )
    .await;
    let outcome = support::eventually_async("delivery or failure", DEADLINE, async || {
        let s = worker.status(name.clone()).await.unwrap();
        if s.tasks[0].state.state == ursa::connect::api::State::Failed {
            return Some(Err(s.tasks[0].state.trace.clone().unwrap_or_default()));
        }
        recorder.all_delivered(&name, &[3]).then_some(Ok(()))
    })
    .await;
    worker.shutdown().await;
    assert_eq!(outcome, Ok(()));
}

const PIP_INSTALL: &str = "python3 -m pip install \"kafka-connect-py==1.0.0\"";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn third_party_python_client_drives_the_real_worker() {
    let topic = topic("sem-py", 1).await;
    Producer::new()
        .send_many(&topic, 0, 0..8, |i| format!("v{i}"))
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-py");
    let mut config = sink_config(&name, &topic, &[]);
    config.remove("name");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python_semantics/lifecycle_check.py"
    );
    let args = [
        script.to_owned(),
        rest.base.clone(),
        name.clone(),
        serde_json::to_string(&config).unwrap(),
        "8".to_owned(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        ursa_testkit::output_within(
            Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())).args(&args),
            None,
            ursa_testkit::PEER_TIMEOUT,
        )
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `{PIP_INSTALL}`"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "kafka-connect-py is missing: `{PIP_INSTALL}`\n{stderr}"
    );
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "the kafka-connect-py lifecycle check failed:\n{stdout}\n{stderr}"
    );
    // Every record was delivered twice: once, then again after the offsets were moved back to 0.
    let delivered = recorder.delivered(&name);
    for o in 0..8 {
        let n = delivered.iter().filter(|a| a.offset == o).count();
        assert!(n >= 2, "offset {o} delivered {n} times");
    }
    assert!(worker.connectors().await.is_empty());
    worker.shutdown().await;
}

/// Issue 8 (14): active topics as in Kafka Connect (KIP-558). A connector subscribed to two topics lists only
/// the one it consumed records of (not its subscription); a reset while it runs forgets it until records of it
/// come again; records of the other topic make that one active; a delete forgets them all, so a connector
/// created again under the name starts with none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn active_topics_are_the_consumed_ones_and_a_reset_forgets_them() {
    let (a, b) = (topic("sem-act-a", 1).await, topic("sem-act-b", 1).await);
    let producer = Producer::new();
    producer.send_many(&a, 0, 0..3, |i| format!("a{i}")).await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
    let name = unique_name("sem-act");
    let config = sink_config(&name, &format!("{a},{b}"), &[]);
    let path = format!("/connectors/{name}/config");
    let (code, v) = rest.put(&path, Some(&json!(config))).await;
    assert_eq!(code, 201, "{v}");
    let topics = async || {
        let (code, v) = rest.get(&format!("/connectors/{name}/topics")).await;
        assert_eq!(code, 200, "{v}");
        v[&name]["topics"].clone()
    };
    let (on_a, on_b) = (
        Committed::of_connector(&name, &a, 1),
        Committed::of_connector(&name, &b, 1),
    );
    on_a.wait_for("a's records committed", &[Some(3)]).await;
    // A partition records its topic before its first batch is delivered, so before any commit.
    assert_eq!(
        topics().await,
        json!([a]),
        "only the topic it consumed records of"
    );

    let (code, v) = rest
        .put(&format!("/connectors/{name}/topics/reset"), None)
        .await;
    assert_eq!(code, 202, "{v}");
    assert_eq!(topics().await, json!([]), "forgotten by the reset");
    producer.send_many(&b, 0, 0..2, |i| format!("b{i}")).await;
    on_b.wait_for("b's records committed", &[Some(2)]).await;
    assert_eq!(
        topics().await,
        json!([b]),
        "b consumed since the reset, a not"
    );
    producer.send_many(&a, 0, 3..4, |i| format!("a{i}")).await;
    on_a.wait_for("a's new record committed", &[Some(4)]).await;
    let mut both = vec![a.clone(), b.clone()];
    both.sort();
    assert_eq!(topics().await, json!(both), "a is active again");

    assert_eq!(rest.delete(&format!("/connectors/{name}")).await.0, 204);
    let (code, v) = rest.put(&path, Some(&json!(config))).await;
    assert_eq!(code, 201, "{v}");
    rest.wait_state(&name, "RUNNING").await;
    assert_eq!(
        topics().await,
        json!([]),
        "a connector created again starts with none"
    );
    assert_eq!(rest.delete(&format!("/connectors/{name}")).await.0, 204);
    worker.shutdown().await;
}

/// `[topic_tracking]` as Kafka Connect's `topic.tracking.enable` and `topic.tracking.allow.reset`: resets
/// refused, or tracking off altogether, answer 403 with Connect's messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topic_tracking_can_refuse_resets_or_be_off() {
    let topic = topic("sem-track", 1).await;
    for (enable, allow_reset) in [(true, false), (false, true)] {
        let recorder = Recorder::new();
        let mut env = support::env(ursa::connect::telemetry::Telemetry::new());
        env.active_topics = Arc::new(ActiveTopics::with_reset(enable, allow_reset));
        let worker = support::worker_in(&recorder, env);
        let (_server, rest) = rest(&worker).await;
        let name = unique_name("sem-track");
        let config = sink_config(&name, &topic, &[]);
        let (code, v) = rest
            .put(&format!("/connectors/{name}/config"), Some(&json!(config)))
            .await;
        assert_eq!(code, 201, "{v}");
        let (code, v) = rest
            .put(&format!("/connectors/{name}/topics/reset"), None)
            .await;
        let message = if enable {
            "Topic tracking reset is disabled."
        } else {
            "Topic tracking is disabled."
        };
        assert_eq!((code, v["message"].as_str()), (403, Some(message)), "{v}");
        let (code, v) = rest.get(&format!("/connectors/{name}/topics")).await;
        if enable {
            assert_eq!(code, 200, "{v}");
        } else {
            assert_eq!((code, v["message"].as_str()), (403, Some(message)), "{v}");
        }
        worker.shutdown().await;
    }
}

/// Defect 13: secret references are resolved off the async threads. A `${file:…}` reference to a FIFO blocks
/// its reader until someone writes; on a single-threaded runtime, where one blocked call would stop
/// everything, the REST API still answers while a create waits on it, and the create completes once the
/// FIFO is written.
#[tokio::test(flavor = "current_thread")]
async fn resolving_a_reference_never_blocks_the_rest_api() {
    let topic = topic("sem-fifo", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("secrets.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest_with(&worker, allow_files_in(dir.path())).await;
    let name = unique_name("sem-fifo");
    let reference = format!("${{file:{}:api}}", fifo.display());
    let config = sink_config(&name, &topic, &[("x.api.password", reference.as_str())]);

    // The writer, on a thread of its own: its open waits for the reader (the create resolving the
    // reference), after which the reader waits in read; it then says so and writes once the REST API has
    // answered meanwhile, or after 20 s (then the answer came too late).
    let (reading_tx, reading) = tokio::sync::oneshot::channel::<()>();
    let (answered_tx, answered) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let _ = reading_tx.send(());
        let in_time = answered.recv_timeout(Duration::from_secs(20)).is_ok();
        std::io::Write::write_all(&mut w, b"api=from-the-fifo\n").unwrap();
        in_time
    });
    let create = tokio::spawn({
        let url = format!("{}/connectors", rest.base);
        let body = json!({"name": name, "config": config});
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        }
    });
    reading.await.unwrap();
    let (code, listed) = rest.get("/connectors").await;
    assert_eq!(code, 200, "{listed}");
    assert_eq!(
        listed,
        json!([]),
        "not created yet: its reference is still being read"
    );
    answered_tx.send(()).unwrap();
    assert!(
        writer.join().unwrap(),
        "the REST API answered while a reference was being resolved"
    );
    assert_eq!(create.await.unwrap(), 201);
    assert_eq!(rest.get("/connectors").await.1, json!([name]));
    worker.shutdown().await;
}
