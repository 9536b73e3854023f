//! Security on the wire: `ursa run` (its consumer and its DLQ producer) and `ursa topics apply` reach Apache
//! Kafka through its SASL_SSL listener (SCRAM-SHA-512 over TLS, a CA made for the run) with the password read
//! from a `${file:}` secret; a wrong password fails the connector with the broker's reason instead of hanging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use ursa_testkit::CommandExt;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use ursa_testkit::{Kafka, SaslSsl, WorkerProcess, unique_name, wait_until};

/// The SASL_SSL client properties, the password as a `${file:}` reference to `secret`.
fn properties(sasl: &SaslSsl, secret: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", "SASL_SSL".into()),
        ("sasl.mechanism", "SCRAM-SHA-512".into()),
        ("sasl.username", sasl.username.clone()),
        (
            "sasl.password",
            format!("${{file:{}:password}}", secret.display()),
        ),
        ("ssl.ca.location", sasl.ca_file.display().to_string()),
    ]
}

fn secret_file(dir: &Path, password: &str) -> PathBuf {
    let path = dir.join("kafka.secret");
    std::fs::write(&path, format!("password={password}\n")).unwrap();
    path
}

fn worker_config(dir: &Path, sasl: &SaslSsl, secret: &Path) -> PathBuf {
    let mut text = format!(
        "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[kafka.properties]\n",
        sasl.bootstrap
    );
    for (k, v) in properties(sasl, secret) {
        text.push_str(&format!("\"{k}\" = \"{v}\"\n"));
    }
    text.push_str("[rest]\nlisten = \"127.0.0.1:0\"\n");
    let path = dir.join("worker.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn connector_config(dir: &Path, name: &str, topic: &str, dlq: &str, out: &Path) -> PathBuf {
    let path = dir.join("connector.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"json\"\n\"errors.tolerance\" = \"all\"\n\"errors.deadletterqueue.topic.name\" = \"{dlq}\"\n\"offset.flush.interval.ms\" = \"200\"\n",
            out.display()
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_apply_ursa_run_and_its_dlq_go_through_sasl_ssl_with_a_file_secret() {
    let kafka = Kafka::apache();
    let sasl = kafka.sasl_ssl().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), &sasl.password);
    let (topic, dlq) = (unique_name("sasl-in"), unique_name("sasl-dlq"));

    // topics apply through SASL_SSL, its password from the secret file.
    let client = dir.path().join("client.properties");
    let props: String = properties(sasl, &secret)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect();
    std::fs::write(&client, props).unwrap();
    let catalog = dir.path().join("topics.toml");
    std::fs::write(
        &catalog,
        format!("[topics.\"{topic}\"]\nvalue = \"x.A\"\npartitions = 2\n[topics.\"{dlq}\"]\nvalue = \"x.B\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args([
            "topics",
            "apply",
            "--bootstrap-servers",
            &sasl.bootstrap,
            "--command-config",
        ])
        .arg(&client)
        .arg("--catalog")
        .arg(&catalog)
        .output_within(ursa_testkit::PEER_TIMEOUT)
        .unwrap();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("+ create topic {topic} (partitions 2")),
        "{shown}"
    );
    assert!(
        !shown.contains(&sasl.password),
        "the password is never printed: {shown}"
    );

    // Records through the plaintext listener; one is a poison pill for the DLQ.
    let producer: FutureProducer = kafka.config().create().unwrap();
    for i in 0..10 {
        let value = if i == 5 {
            "{not json".to_owned()
        } else {
            format!("{{\"n\":{i}}}")
        };
        producer
            .send(
                FutureRecord::to(&topic).key("k").payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let file = dir.path().join("out.jsonl");
    let name = unique_name("sasl-file");
    let worker = worker_config(dir.path(), sasl, &secret);
    let connector = connector_config(dir.path(), &name, &topic, &dlq, &file);
    let mut child = WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[worker.to_str().unwrap(), connector.to_str().unwrap()],
    )
    .unwrap();
    wait_until("9 records in the file", Duration::from_secs(60), || {
        let n = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .count();
        (n >= 9).then_some(())
    })
    .unwrap();
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", unique_name("dlq-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&dlq]).unwrap();
    let m = wait_until("the DLQ record", Duration::from_secs(30), || {
        consumer
            .poll(Duration::from_millis(200))
            .and_then(Result::ok)
            .map(|m| m.detach())
    })
    .unwrap();
    assert_eq!(
        m.payload(),
        Some(&b"{not json"[..]),
        "the DLQ producer wrote through SASL_SSL"
    );
    let (_, status) = child.get(&format!("/connectors/{name}/status")).unwrap();
    assert!(status.contains("RUNNING"), "{status}");
    assert!(!status.contains(&sasl.password), "{status}");
    assert!(child.terminate().unwrap(), "SIGTERM drains and exits 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_fails_the_connector_with_the_brokers_reason() {
    let kafka = Kafka::apache();
    let sasl = kafka.sasl_ssl().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path(), "not-the-password");
    let topic = unique_name("sasl-wrong");
    ursa_testkit::create_topic(kafka, &topic, 1).await.unwrap();
    let name = unique_name("sasl-wrong-file");
    let worker = worker_config(dir.path(), sasl, &secret);
    let connector = connector_config(
        dir.path(),
        &name,
        &topic,
        &unique_name("unused-dlq"),
        &dir.path().join("out"),
    );
    let child = WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[worker.to_str().unwrap(), connector.to_str().unwrap()],
    )
    .unwrap();
    let status = wait_until(
        "the connector to be FAILED",
        Duration::from_secs(60),
        || {
            let (_, body) = child.get(&format!("/connectors/{name}/status"))?;
            body.contains("FAILED").then_some(body)
        },
    )
    .unwrap();
    assert!(
        status.contains("SASL authentication error") && status.contains("invalid credentials"),
        "the FAILED trace carries the broker's reason: {status}"
    );
    assert!(!status.contains("not-the-password"), "{status}");
}
