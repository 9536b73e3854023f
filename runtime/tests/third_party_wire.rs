//! Three third-party pieces on the wire with ursa: Python `confluent-kafka` serializes events with its
//! `AvroSerializer` against the dev registry (an older writer schema) and produces them to the broker, `kcat`
//! consumes the raw bytes, and ursa's generated type decodes them through the registry (schema resolution).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use ursa_avro::{AvroRecord, ConfluentDecoder};
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig};
use ursa_testkit::{Kafka, create_topic, unique_name};

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafka_producer_to_kcat_to_ursa() {
    let kafka = Kafka::shared();
    let registry = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let topic = unique_name("wire");
    create_topic(kafka, &topic, 1).await.unwrap();

    // The producer writes with an older version of the schema: without the optional `asr_confidence` field.
    let mut writer: serde_json::Value = serde_json::from_str(MessageReceived::SCHEMA).unwrap();
    let fields = writer["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["name"] != "asr_confidence");
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("writer.avsc");
    std::fs::write(&schema_file, writer.to_string()).unwrap();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/produce_avro.py");
    let out = ursa_testkit::output_within(
        Command::new(python()).args([
            script,
            kafka.bootstrap(),
            &registry.url(),
            &topic,
            schema_file.to_str().unwrap(),
            "25",
        ]),
        None,
        ursa_testkit::PEER_TIMEOUT,
    )
    .unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): run `cargo xtask test`, which installs the Python peers")
    });
    assert!(
        out.status.success(),
        "producer failed (missing package? `cargo xtask test` or `python3 -m pip install \"confluent-kafka[avro,schemaregistry]==2.16.1\"`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), 25);

    // kcat reads the raw values, each prefixed with its 32-bit big-endian length.
    let out = ursa_testkit::output_within(
        Command::new("kcat").args([
            "-C",
            "-b",
            kafka.bootstrap(),
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%R%s",
        ]),
        None,
        ursa_testkit::PEER_TIMEOUT,
    )
    .unwrap_or_else(|e| {
        panic!("cannot run kcat ({e}): `cargo xtask test` installs it (`apt-get install kcat`)")
    });
    assert!(
        out.status.success(),
        "kcat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut raw = &out.stdout[..];
    let mut payloads = Vec::new();
    while raw.len() >= 4 {
        let len = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        payloads.push(raw[4..4 + len].to_vec());
        raw = &raw[4 + len..];
    }
    assert_eq!(payloads.len(), 25);

    let client = RegistryClient::new(ClientConfig::new(registry.url())).unwrap();
    let decoder = ConfluentDecoder::<MessageReceived>::new();
    for (payload, expected) in payloads.iter().zip(&sent) {
        let (id, _) = ursa_avro::wire::split(payload).unwrap();
        if !decoder.knows(id) {
            decoder
                .register(id, &client.schema_by_id(id).await.unwrap())
                .unwrap();
        }
        let event = decoder
            .decode(payload, |_| Err("cached above".into()))
            .unwrap();
        assert_eq!(
            i64::from(event.sequence_number),
            expected["sequence_number"].as_i64().unwrap()
        );
        assert_eq!(event.text, expected["text"].as_str().unwrap());
        assert_eq!(
            event.asr_confidence, None,
            "a field the writer lacked takes its default"
        );
    }
    registry.stop().await.unwrap();
}
