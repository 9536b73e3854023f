//! Avro end to end: Python `confluent-kafka` serializes `MessageReceived` events with its `AvroSerializer`
//! against the dev registry and produces them to a 3-partition topic; `ursa run` consumes them with the `avro`
//! value converter and the `file` sink. The file has every record once, in order per partition, with its
//! decoded value: the producer's `sequence_number` and `text`, UUIDs as their text, timestamps as RFC 3339 with
//! the unit's digits, and every field equal to what ursa's generated type decodes from the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use ursa_avro::chrono::{DateTime, SecondsFormat, Utc};
use ursa_avro::uuid::Uuid;
use ursa_avro::{AvroRecord, ConfluentDecoder};
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig};
use ursa_testkit::{CommandExt, Kafka, WorkerProcess, create_topic, unique_name, wait_until};

const COUNT: usize = 300;
const PARTITIONS: i32 = 3;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A UUID as its canonical text (lowercase, hyphenated), equal to `expected`.
fn assert_uuid(v: &Value, expected: &Uuid, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    assert_eq!(Uuid::parse_str(s).unwrap(), *expected, "{what}");
    assert_eq!(
        s,
        expected.hyphenated().to_string(),
        "{what}: not canonical"
    );
}

/// A timestamp as RFC 3339 in UTC (`Z`) with `digits` fractional digits, equal to `expected`.
fn assert_timestamp(v: &Value, expected: &ursa_avro::Timestamp, digits: usize, what: &str) {
    let expected = &expected
        .to_utc()
        .unwrap_or_else(|| panic!("{what}: beyond chrono's range"));
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what}: not a string: {v}"));
    let parsed = DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what}: {s:?}: {e}"));
    assert_eq!(parsed.with_timezone(&Utc), *expected, "{what}");
    let fraction = s
        .strip_suffix('Z')
        .and_then(|t| t.rsplit_once('.'))
        .map(|(_, f)| f.len());
    assert_eq!(
        fraction,
        Some(digits),
        "{what}: {s:?} is not UTC with {digits} digits"
    );
    let format = if digits == 3 {
        SecondsFormat::Millis
    } else {
        SecondsFormat::Micros
    };
    assert_eq!(s, expected.to_rfc3339_opts(format, true), "{what}");
}

fn assert_optional_uuid(v: &Value, expected: Option<&Uuid>, what: &str) {
    match expected {
        Some(u) => assert_uuid(v, u, what),
        None => assert!(v.is_null(), "{what}: {v}"),
    }
}

/// Every field of the JSON value equals the event ursa's generated type decodes from the same bytes.
fn assert_same_event(json: &Value, e: &MessageReceived) {
    let m = &json["metadata"];
    assert_uuid(&m["event_id"], &e.metadata.event_id, "metadata.event_id");
    assert_timestamp(
        &m["occurred_at"],
        &e.metadata.occurred_at,
        3,
        "metadata.occurred_at",
    );
    assert_optional_uuid(
        &m["correlation_id"],
        e.metadata.correlation_id.as_ref(),
        "correlation_id",
    );
    assert_optional_uuid(
        &m["causation_id"],
        e.metadata.causation_id.as_ref(),
        "causation_id",
    );
    assert_eq!(m["producer"], e.metadata.producer.as_str());
    assert_eq!(m["schema_version"], e.metadata.schema_version);
    assert_eq!(
        m["trace_parent"].as_str(),
        e.metadata.trace_parent.as_deref()
    );
    assert_uuid(&json["message_id"], &e.message_id, "message_id");
    assert_uuid(
        &json["conversation_id"],
        &e.conversation_id,
        "conversation_id",
    );
    assert_uuid(&json["child"]["child_id"], &e.child.child_id, "child_id");
    assert_uuid(
        &json["child"]["household_id"],
        &e.child.household_id,
        "household_id",
    );
    assert_eq!(json["device"]["device_id"], e.device.device_id.as_str());
    assert_eq!(
        json["device"]["firmware_version"],
        e.device.firmware_version.as_str()
    );
    assert_eq!(json["sequence_number"], e.sequence_number);
    assert_eq!(json["text"], e.text.as_str());
    assert_eq!(json["modality"], e.modality.as_str());
    assert_eq!(
        json["detected_emotion"].as_str(),
        e.detected_emotion.as_ref().map(|x| x.as_str())
    );
    assert_eq!(
        json["audio_duration_ms"].as_i64(),
        e.audio_duration_ms.map(i64::from)
    );
    assert_eq!(
        json["asr_confidence"].as_f64(),
        e.asr_confidence.map(f64::from)
    );
    assert_timestamp(&json["captured_at"], &e.captured_at, 6, "captured_at");
    assert_eq!(
        json.as_object().unwrap().len(),
        12,
        "every field of the schema, no more: {json}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_kafka_avro_events_to_the_file_sink() {
    let kafka = Kafka::shared();
    let registry = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let topic = unique_name("message-received");
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let schema_file = dir.path().join("MessageReceived.avsc");
    std::fs::write(&schema_file, MessageReceived::SCHEMA).unwrap();

    // 1. Python confluent-kafka + AvroSerializer (auto-registers the schema), key = the record's index.
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/produce_avro.py");
    let out = Command::new(python())
        .args([
            script,
            kafka.bootstrap(),
            &registry.url(),
            &topic,
            schema_file.to_str().unwrap(),
            &COUNT.to_string(),
        ])
        .output_within(ursa_testkit::PEER_TIMEOUT)
        .unwrap_or_else(|e| {
            panic!(
                "cannot run python3 ({e}): run `cargo xtask test`, which installs the Python peers"
            )
        });
    assert!(
        out.status.success(),
        "producer failed (missing package? `cargo xtask test` or `python3 -m pip install \"confluent-kafka[avro,schemaregistry]==2.16.1\"`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(sent.len(), COUNT);

    // 2. `ursa run` with the avro converter and the file sink.
    let file = dir.path().join("events.jsonl");
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let connector = dir.path().join("events.toml");
    let name = unique_name("events-file");
    std::fs::write(
        &connector,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\"value.converter.schema.registry.url\" = \"{}\"\n\"offset.flush.interval.ms\" = \"200\"\n",
            file.display(),
            registry.url()
        ),
    )
    .unwrap();
    let mut child = WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[worker.to_str().unwrap(), connector.to_str().unwrap()],
    )
    .unwrap();
    let got = wait_until(
        &format!("{COUNT} records in the file"),
        Duration::from_secs(60),
        || {
            let l = lines(&file);
            (l.len() >= COUNT).then_some(l)
        },
    )
    .unwrap();
    assert_eq!(got.len(), COUNT, "each record once");

    // 3. The raw bytes, read back with a plain consumer and decoded by the generated type.
    let client = RegistryClient::new(ClientConfig::new(registry.url())).unwrap();
    let decoder = ConfluentDecoder::<MessageReceived>::new();
    let reader: BaseConsumer = kafka
        .config()
        .set("group.id", unique_name("raw-reader"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let mut raw: BTreeMap<(i32, i64), Vec<u8>> = BTreeMap::new();
    wait_until("every raw record", Duration::from_secs(30), || {
        while let Some(m) = reader.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            raw.insert((m.partition(), m.offset()), m.payload().unwrap().to_vec());
        }
        (raw.len() == COUNT).then_some(())
    })
    .unwrap();

    // 4. Every line: the right record, in order per partition, decoded like the generated type does.
    let mut last: BTreeMap<i64, i64> = BTreeMap::new();
    let mut keys = Vec::with_capacity(COUNT);
    for line in &got {
        assert_eq!(line["topic"], topic.as_str());
        let partition = line["partition"].as_i64().unwrap();
        let offset = line["offset"].as_i64().unwrap();
        if let Some(prev) = last.insert(partition, offset) {
            assert!(
                offset > prev,
                "partition {partition}: {offset} after {prev}"
            );
        }
        let index: usize = line["key"].as_str().unwrap().parse().unwrap();
        keys.push(index);
        let value = &line["value"];
        assert_eq!(
            value["sequence_number"], sent[index]["sequence_number"],
            "record {index}"
        );
        assert_eq!(value["text"], sent[index]["text"], "record {index}");
        let payload = &raw[&(partition as i32, offset)];
        let (id, _) = ursa_avro::wire::split(payload).unwrap();
        if !decoder.knows(id) {
            decoder
                .register(id, &client.schema_by_id(id).await.unwrap())
                .unwrap();
        }
        let event = decoder
            .decode(payload, |_| Err("registered above".into()))
            .unwrap();
        assert_same_event(value, &event);
    }
    keys.sort_unstable();
    assert_eq!(keys, (0..COUNT).collect::<Vec<_>>(), "every record once");

    // 5. A clean stop.
    assert!(
        child.terminate().unwrap(),
        "the worker did not exit 0 on SIGTERM"
    );
    registry.stop().await.unwrap();
}
