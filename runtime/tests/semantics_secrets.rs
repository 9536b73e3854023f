//! Secrets never leak: a connector whose config holds an `${env:…}` reference (allowed over REST by the
//! worker's `allow_env`) and a literal secret runs on the real broker (embedded worker, REST API, a poison
//! pill logged and skipped, pause/resume/restart, a config update, validation), a config whose reference
//! resolves to a bad value is refused, a connector whose consumer gets the resolved value as a bad property
//! fails; and neither the resolved value nor the literal appears in any REST answer, status trace or in the
//! logs (every `tracing` event and `log` record of the process, captured at TRACE).
//!
//! One test only in this binary: it sets a process-wide environment variable and installs the global log
//! subscriber before any other thread of the test starts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use ursa::connect::api::ConnectApi;
use ursa::connect::config::ReferencePolicy;
use ursa::connect::rest::RestConfig;
use ursa_testkit::unique_name;

use support::{
    Committed, DEADLINE, Producer, Recorder, eventually, flat, rest_with, topic, worker,
};

/// Where the log subscriber writes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const LITERAL: &str = "literal-value-xyz";

#[test]
fn secrets_never_appear_in_rest_answers_or_logs() {
    let var = unique_name("URSA_SEM_SECRET")
        .replace('-', "_")
        .to_uppercase();
    let secret = unique_name("s3cr3t");
    // SAFETY: the only test of this binary sets the variable before it starts any thread (the runtime, the
    // broker clients); nothing else reads or writes the environment concurrently.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(&var, &secret);
    }
    let logs = Buffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .try_init()
        .unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario(&var, &secret, &logs));
}

async fn scenario(var: &str, secret: &str, logs: &Buffer) {
    let topic = topic("sem-secret", 1).await;
    let producer = Producer::new();
    producer
        .send(&topic, 0, Some(b"k0"), Some(br#"{"n":0}"#), &[])
        .await;
    producer
        .send(&topic, 0, Some(b"k1"), Some(b"{poison"), &[])
        .await;
    producer
        .send(&topic, 0, Some(b"k2"), Some(br#"{"n":2}"#), &[])
        .await;
    let recorder = Recorder::new();
    let worker = worker(&recorder);
    let (_server, rest) = rest_with(
        &worker,
        RestConfig {
            references: ReferencePolicy {
                env: vec![var.to_owned()],
                file: Vec::new(),
            },
            ..RestConfig::ephemeral()
        },
    )
    .await;
    let name = unique_name("sem-secret");
    let reference = format!("${{env:{var}}}");
    let config = flat(&[
        ("name", name.as_str()),
        ("connector.class", support::PLUGIN),
        ("topics", topic.as_str()),
        ("key.converter", "string"),
        ("value.converter", "json"),
        ("value.converter.basic.auth.credentials.source", "USER_INFO"),
        ("value.converter.basic.auth.password", reference.as_str()),
        ("x.secret.token", LITERAL),
        ("x.api.password", reference.as_str()),
        ("errors.tolerance", "all"),
        ("offset.flush.interval.ms", "100"),
    ]);
    let mut answers: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, v: &Value| answers.push((what.to_owned(), v.to_string()));

    let (code, created) = rest
        .post(
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    record("POST /connectors", &created);
    // References are shown as written, literals hidden.
    assert_eq!(
        created["config"]["value.converter.basic.auth.password"],
        reference.as_str()
    );
    assert_eq!(created["config"]["x.api.password"], reference.as_str());
    assert_eq!(created["config"]["x.secret.token"], "[hidden]");

    Committed::of_connector(&name, &topic, 1)
        .wait_for("commits at the end", &[Some(3)])
        .await;
    assert_eq!(recorder.delivered(&name).len(), 2);

    let paths = [
        format!("/connectors/{name}"),
        format!("/connectors/{name}/config"),
        format!("/connectors/{name}/status"),
        format!("/connectors/{name}/tasks"),
        format!("/connectors/{name}/tasks/0/status"),
        format!("/connectors/{name}/topics"),
        format!("/connectors/{name}/offsets"),
        "/connectors?expand=info&expand=status".to_owned(),
        "/connectors".to_owned(),
        "/connector-plugins".to_owned(),
        "/".to_owned(),
    ];
    for p in &paths {
        let (code, v) = rest.get(p).await;
        assert_eq!(code, 200, "{p}: {v}");
        record(p, &v);
    }
    record("/metrics", &Value::String(rest.text("/metrics").await));
    let (code, v) = rest
        .put(
            &format!("/connectors/{name}/config"),
            Some(&serde_json::to_value(&config).unwrap()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    record("PUT config", &v);
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&serde_json::to_value(&config).unwrap()),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["error_count"], 0, "{v}");
    record("validate", &v);
    // A refused config that carries the secret.
    let mut bad = config.clone();
    bad.insert("errors.tolerance".into(), "most".into());
    let (code, v) = rest
        .put(&format!("/connectors/{name}/config"), Some(&json!(bad)))
        .await;
    assert_eq!(code, 400);
    record("PUT bad config", &v);
    // A reference that resolves to a value the key refuses (issue 8: the 400 quoted the value).
    let mut bad = config.clone();
    bad.insert("errors.tolerance".into(), reference.clone());
    let (code, v) = rest
        .put(&format!("/connectors/{name}/config"), Some(&json!(bad)))
        .await;
    assert_eq!(code, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains(&reference), "{v}");
    record("PUT config, reference to a bad value", &v);
    let (code, v) = rest
        .put(
            "/connector-plugins/test-sink/config/validate",
            Some(&json!(bad)),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(v["error_count"], 1, "{v}");
    record("validate, reference to a bad value", &v);
    // The consumer gets the resolved value as a property it refuses: the connector fails, and its trace
    // (status, logs) says why without the value.
    let failing = unique_name("sem-secret-fails");
    let (code, v) = rest
        .post(
            "/connectors",
            Some(&json!({"name": failing, "config": flat(&[
                ("name", failing.as_str()),
                ("connector.class", support::PLUGIN),
                ("topics", topic.as_str()),
                ("value.converter", "string"),
                ("consumer.override.fetch.min.bytes", reference.as_str()),
                ("restart.auto.enable", "false"),
            ])})),
        )
        .await;
    assert_eq!(code, 201, "{v}");
    let failed = support::eventually_async("the consumer refused", DEADLINE, async || {
        let (_, s) = rest.get(&format!("/connectors/{failing}/status")).await;
        (s["tasks"][0]["state"] == "FAILED").then_some(s)
    })
    .await;
    assert!(
        failed["tasks"][0]["trace"]
            .as_str()
            .unwrap()
            .contains("fetch.min.bytes"),
        "{failed}"
    );
    record("status, failed", &failed);
    let (code, _) = rest.delete(&format!("/connectors/{failing}")).await;
    assert_eq!(code, 204);
    for (path, method) in [("pause", "PUT"), ("resume", "PUT")] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let (code, v) = rest
            .call(m, &format!("/connectors/{name}/{path}"), None)
            .await;
        assert_eq!(code, 202);
        record(path, &v);
    }
    let (code, v) = rest
        .post(
            &format!("/connectors/{name}/restart?includeTasks=true"),
            None,
        )
        .await;
    assert_eq!(code, 202);
    record("restart", &v);
    rest.wait_state(&name, "RUNNING").await;
    // The ConnectApi answers (as the CLI would print them) too.
    record(
        "api connector",
        &serde_json::to_value(worker.connector(name.clone()).await.unwrap()).unwrap(),
    );
    record(
        "api tasks",
        &serde_json::to_value(worker.tasks(name.clone()).await.unwrap()).unwrap(),
    );
    let (code, _) = rest.delete(&format!("/connectors/{name}")).await;
    assert_eq!(code, 204);
    worker.shutdown().await;

    for (what, text) in &answers {
        assert!(
            !text.contains(secret),
            "{what} shows the resolved secret: {text}"
        );
        assert!(!text.contains(LITERAL), "{what} shows the literal: {text}");
    }
    let text = eventually("logs of the run", DEADLINE, || {
        let t = logs.text();
        (t.contains(&name) && t.contains("record skipped")).then_some(t)
    })
    .await;
    let leaks: Vec<String> = text
        .lines()
        .filter(|l| l.contains(secret))
        .map(|l| l.replace(secret, "<SECRET>"))
        .collect();
    assert!(
        leaks.is_empty(),
        "the logs show the resolved secret of ${{env:{var}}}:\n{}",
        leaks.join("\n")
    );
    assert!(!text.contains(LITERAL), "the logs show the literal secret");
}
