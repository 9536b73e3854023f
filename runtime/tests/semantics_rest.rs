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

use serde_json::{Value, json};
use ursa::connect::api::ConnectApi;
use ursa::connect::sink::Outcome;
use ursa_testkit::unique_name;

use support::{
    Committed, DEADLINE, Producer, Recorder, eventually, rest, retriable, sink_config, topic,
    worker,
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
    let (_dir, reference) = secret_file(&secret);
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest(&worker).await;
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
        Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()))
            .args(&args)
            .output()
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
