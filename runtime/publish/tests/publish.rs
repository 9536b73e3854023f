//! The publisher on the real broker: framing, keys, headers and order; what Python's AvroDeserializer reads;
//! schema ids found, cached and refused; final failures (record too large, unknown topic) dead-lettered; the
//! registry down with cached ids; aggregates' units of work; the typed subscriber.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use sha2::{Digest, Sha256};
use ursa_avro::uuid::Uuid;
use ursa_avro::{AvroRecord, Reader, encode, wire};
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_events::com::teddy::dlq::{FailedEvent, FailureStage};
use ursa_publish::demo::{message_received, safety_violation};
use ursa_publish::{
    Aggregate, Compression, DeadLetter, Error, EventBuffer, Publisher, RDKafkaErrorCode,
    SchemaIdPolicy, Subscriber, SubscriberConfig, UnitOfWork,
};
use ursa_registry::RegistryClient;
use ursa_testkit::{CommandExt, Kafka, unique_name};

use support::{create_topic, publisher_config, read_topic, registry, topic_size};

const MESSAGES: &str = "message.received";
const VIOLATIONS: &str = "child.safety-violation";
const DLQ: &str = "dlq.failed-events";

fn prefix() -> String {
    format!("{}.", unique_name("publish"))
}

/// The string an Avro-framed key holds.
fn avro_key(bytes: &[u8]) -> (u32, String) {
    let (id, datum) = wire::split(bytes).unwrap();
    let mut r = Reader::new(datum);
    let s = r.string().unwrap();
    r.finish().unwrap();
    (id, s)
}

async fn registry_client(url: &str) -> RegistryClient {
    RegistryClient::new(ursa_registry::ClientConfig::new(url)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_framed_keyed_records_with_headers_in_key_order() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 3, &[])
        .await
        .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();

    let conversations: Vec<Uuid> = (0..3).map(|_| ursa_publish::demo::uuid()).collect();
    let mut sent = HashMap::new();
    let mut deliveries = Vec::new();
    for seq in 0..10 {
        for c in &conversations {
            let mut e = message_received(*c, seq, &format!("turn {seq}"));
            if seq == 0 {
                e.metadata.trace_parent =
                    Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
            }
            deliveries.push(publisher.send(&e).await.unwrap());
            sent.insert(e.metadata.event_id.to_string(), e);
        }
    }
    assert!(
        publisher.knows::<MessageReceived>(),
        "the schema id is cached"
    );
    // flush waits for every acknowledgement.
    publisher.flush(Duration::from_secs(30)).await.unwrap();
    assert_eq!(publisher.in_flight(), 0);
    let mut partition_of = HashMap::new();
    for d in deliveries {
        let d = d.await.unwrap();
        assert_eq!(d.topic, topic);
        assert!(d.offset >= 0);
    }

    let client = registry_client(&registry.url()).await;
    let (value_id, _) = client
        .lookup("message.received-value", MessageReceived::SCHEMA, &[])
        .await
        .unwrap()
        .expect("the value schema was registered under the binding's subject");
    let (key_id, _) = client
        .lookup("message.received-key", "\"string\"", &[])
        .await
        .unwrap()
        .expect("the key schema was registered under the binding's key subject");

    let records = read_topic(kafka.bootstrap(), &topic, 30, Duration::from_secs(30))
        .await
        .unwrap();
    let mut last_seq: HashMap<String, i32> = HashMap::new();
    let mut by_partition: Vec<_> = records.iter().collect();
    by_partition.sort_by_key(|r| (r.partition, r.offset));
    for r in by_partition {
        let (id, datum) = wire::split(&r.value).unwrap();
        assert_eq!(id, value_id, "Confluent framing with the registry's id");
        let event = MessageReceived::from_avro_datum(datum).unwrap();
        let original = &sent[r.header("event_id")];
        assert_eq!(&event, original, "the record is the event sent");
        let (kid, key) = avro_key(r.key.as_deref().unwrap());
        assert_eq!(kid, key_id);
        assert_eq!(
            key,
            original.conversation_id.to_string(),
            "keyed by conversation id"
        );
        assert_eq!(r.header("producer"), "publish-test");
        let tp = r.header("traceparent");
        if original.sequence_number == 0 {
            assert_eq!(
                tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "the event's trace context is kept"
            );
        } else {
            assert!(tp.starts_with("00-") && tp.len() == 55, "a new trace: {tp}");
        }
        assert_eq!(
            *partition_of.entry(key.clone()).or_insert(r.partition),
            r.partition,
            "one key, one partition"
        );
        let prev = last_seq.insert(key, event.sequence_number);
        assert!(
            prev.is_none_or(|p| p < event.sequence_number),
            "per-key order"
        );
    }
    assert_eq!(last_seq.len(), 3);
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
    assert!(matches!(
        publisher
            .send(&message_received(conversations[0], 99, "late"))
            .await,
        Err(Error::Shutdown)
    ));
    registry.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn python_avro_deserializer_reads_what_the_publisher_wrote() {
    python_reads(Compression::default()).await;
}

/// The same, compressed with zstd (librdkafka built with it: without, the producer is refused at creation).
#[tokio::test(flavor = "multi_thread")]
async fn python_avro_deserializer_reads_zstd_compressed_records() {
    python_reads(Compression::Zstd).await;
}

async fn python_reads(compression: Compression) {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{VIOLATIONS}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(kafka.bootstrap(), &registry.url(), &prefix);
    config.compression = compression;
    let publisher = Publisher::new(config).unwrap();
    let mut sent = Vec::new();
    for i in 0..5 {
        let e = safety_violation(ursa_publish::demo::uuid(), &format!("excerpt é✓ {i}"));
        publisher.publish(&e).await.unwrap();
        sent.push(e);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/avro_peer.py");
    let out = tokio::task::spawn_blocking({
        let (bootstrap, url, topic) = (kafka.bootstrap().to_owned(), registry.url(), topic.clone());
        move || {
            Command::new(support::python())
                .args([script, "consume", &bootstrap, &url, &topic, "5"])
                .output_within(ursa_testkit::PEER_TIMEOUT)
        }
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!("cannot run python3 ({e}): run `cargo xtask test`, which installs the Python peers")
    });
    assert!(
        out.status.success(),
        "the Python consumer failed (missing package? `cargo xtask test` or `python3 -m pip install \"confluent-kafka[avro,schemaregistry]==2.16.1\"`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(read.len(), 5);
    for (r, e) in read.iter().zip(&sent) {
        let v = &r["value"];
        assert_eq!(r["key"], e.child.child_id.to_string(), "the Avro key");
        assert_eq!(v["metadata"]["event_id"], e.metadata.event_id.to_string());
        assert_eq!(v["excerpt"], e.excerpt);
        assert_eq!(v["severity"], "HIGH");
        assert_eq!(v["category"], "SELF_HARM");
        assert_eq!(v["risk_score"], "87.5125", "decimal(9,4)");
        assert_eq!(v["content_hash"], "07".repeat(32), "fixed(32)");
        assert_eq!(
            v["detected_at"].as_i64().unwrap(),
            e.detected_at.millis().unwrap()
        );
        assert_eq!(v["guardian_notified"], true);
        assert_eq!(r["headers"]["event_id"], e.metadata.event_id.to_string());
        assert_eq!(r["headers"]["producer"], "publish-test");
    }
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// `T::SCHEMA` without its docs: the same canonical form, a different registration.
fn without_docs(schema: &str) -> String {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.remove("doc");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v: serde_json::Value = serde_json::from_str(schema).unwrap();
    strip(&mut v);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn lookup_only_refuses_unregistered_schemas_and_finds_equivalent_ones() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(kafka.bootstrap(), &registry.url(), &prefix);
    config.schema_ids = SchemaIdPolicy::LookupOnly;
    let publisher = Publisher::new(config).unwrap();
    let event = message_received(ursa_publish::demo::uuid(), 1, "hi");

    let err = publisher
        .send(&event)
        .await
        .err()
        .expect("nothing is registered");
    assert!(
        matches!(&err, Error::SchemaNotRegistered { subject, .. } if subject == "message.received-value"),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert!(err.to_string().contains("ursa schema register"), "{err}");
    assert_eq!(publisher.in_flight(), 0);

    // Registered as a pipeline would, with other docs: the exact lookup misses, the canonical form matches.
    let client = registry_client(&registry.url()).await;
    let id = client
        .register(
            "message.received-value",
            &without_docs(MessageReceived::SCHEMA),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        client
            .lookup("message.received-value", MessageReceived::SCHEMA, &[])
            .await
            .unwrap(),
        None
    );
    let key_id = client
        .register("message.received-key", "\"string\"", &[])
        .await
        .unwrap();
    publisher.publish(&event).await.unwrap();
    let records = read_topic(kafka.bootstrap(), &topic, 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(wire::split(&records[0].value).unwrap().0, id);
    assert_eq!(avro_key(records[0].key.as_deref().unwrap()).0, key_id);
    assert_eq!(
        topic_size(kafka.bootstrap(), &topic).await.unwrap(),
        1,
        "the refused send wrote nothing"
    );
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// Reads the one dead-letter record of `prefix`'s DLQ topic.
async fn dead_letter(kafka: &Kafka, prefix: &str) -> (support::Record, FailedEvent) {
    let records = read_topic(
        kafka.bootstrap(),
        &format!("{prefix}{DLQ}"),
        1,
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let r = records.into_iter().next().unwrap();
    let (_, datum) = wire::split(&r.value).unwrap();
    let failed = FailedEvent::from_avro_datum(datum).unwrap();
    (r, failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_too_large_for_the_producer_is_dead_lettered_without_its_value() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    create_topic(kafka.bootstrap(), &format!("{prefix}{DLQ}"), 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(kafka.bootstrap(), &registry.url(), &prefix);
    config.max_message_bytes = 20_000;
    let publisher = Publisher::new(config).unwrap();
    let event = message_received(ursa_publish::demo::uuid(), 1, &"x".repeat(25_000));
    let err = publisher.publish(&event).await.expect_err("too large");
    assert_eq!(
        err.delivery_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert!(
        matches!(err.dead_letter(), Some(DeadLetter::Written { topic, .. }) if *topic == format!("{prefix}{DLQ}")),
        "{err}"
    );

    let (record, failed) = dead_letter(kafka, &prefix).await;
    let client = registry_client(&registry.url()).await;
    let (value_id, _) = client
        .lookup("message.received-value", MessageReceived::SCHEMA, &[])
        .await
        .unwrap()
        .unwrap();
    let mut framed = Vec::new();
    wire::write_header(&mut framed, value_id);
    framed.extend(event.to_avro_datum().unwrap());
    assert_eq!(failed.original_topic, topic);
    assert_eq!(failed.error.stage, FailureStage::Produce);
    assert!(failed.error.error_class.contains("MessageSizeTooLarge"));
    assert_eq!(
        failed.value, None,
        "the value does not fit a dead-letter record"
    );
    assert_eq!(
        failed.value_hash.unwrap().0,
        <[u8; 32]>::from(Sha256::digest(&framed)),
        "the hash of the framed value"
    );
    let mut key = Vec::new();
    let (key_id, _) = client
        .lookup("message.received-key", "\"string\"", &[])
        .await
        .unwrap()
        .unwrap();
    wire::write_header(&mut key, key_id);
    encode::string(&mut key, &event.conversation_id.to_string());
    assert_eq!(failed.key, Some(key));
    assert_eq!(failed.metadata.causation_id, Some(event.metadata.event_id));
    assert_eq!(failed.error.connector.as_deref(), Some("publish-test"));
    assert!(failed.headers.iter().any(|h| h.key == "event_id"
        && h.value.as_deref() == Some(event.metadata.event_id.to_string().as_bytes())));
    assert_eq!(
        avro_key(record.key.as_deref().unwrap()).1,
        topic,
        "DLQ records are keyed by the original topic"
    );
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_the_broker_refuses_as_too_large_is_dead_lettered_with_its_value() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(
        kafka.bootstrap(),
        &topic,
        1,
        &[("max.message.bytes", "4096")],
    )
    .await
    .unwrap();
    create_topic(kafka.bootstrap(), &format!("{prefix}{DLQ}"), 1, &[])
        .await
        .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();
    // Incompressible text: lz4 must not shrink it under the topic's limit.
    let text: String = (0..300)
        .map(|_| ursa_publish::demo::uuid().to_string())
        .collect();
    let big = message_received(ursa_publish::demo::uuid(), 1, &text);
    let err = publisher
        .publish(&big)
        .await
        .expect_err("the broker refuses it");
    assert_eq!(
        err.delivery_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "{err}"
    );
    assert!(
        matches!(err.dead_letter(), Some(DeadLetter::Written { .. })),
        "{err}"
    );
    let (_, failed) = dead_letter(kafka, &prefix).await;
    let (_, datum) = wire::split(failed.value.as_deref().unwrap()).unwrap();
    assert_eq!(
        MessageReceived::from_avro_datum(datum).unwrap(),
        big,
        "the original value travels in the dead-letter record"
    );
    // The producer keeps working after a refused batch.
    let small = message_received(ursa_publish::demo::uuid(), 2, "small");
    publisher.publish(&small).await.unwrap();
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_topic_is_dead_lettered_and_not_created() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    create_topic(kafka.bootstrap(), &format!("{prefix}{DLQ}"), 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(kafka.bootstrap(), &registry.url(), &prefix);
    config
        .kafka
        .push(("topic.metadata.propagation.max.ms".into(), "2000".into()));
    let publisher = Publisher::new(config).unwrap();
    let event = message_received(ursa_publish::demo::uuid(), 1, "to nowhere");
    let err = tokio::time::timeout(Duration::from_secs(60), publisher.publish(&event))
        .await
        .expect("the failure is reported within the delivery timeout")
        .expect_err("the topic does not exist");
    assert!(
        matches!(
            err.delivery_code(),
            Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)
        ),
        "{err}"
    );
    assert!(!err.is_retriable());
    assert!(
        matches!(err.dead_letter(), Some(DeadLetter::Written { .. })),
        "{err}"
    );
    assert!(
        !support::topic_exists(kafka.bootstrap(), &format!("{prefix}{MESSAGES}"))
            .await
            .unwrap(),
        "the publisher does not create topics"
    );
    let (_, failed) = dead_letter(kafka, &prefix).await;
    assert_eq!(failed.original_topic, format!("{prefix}{MESSAGES}"));
    assert_eq!(failed.error.stage, FailureStage::Produce);
    assert!(failed.value.is_some());
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_registry_down_cached_ids_keep_working() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    create_topic(kafka.bootstrap(), &format!("{prefix}{VIOLATIONS}"), 1, &[])
        .await
        .unwrap();
    create_topic(kafka.bootstrap(), &format!("{prefix}{DLQ}"), 1, &[])
        .await
        .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();
    publisher.prepare::<MessageReceived>().await.unwrap();
    registry.stop().await.unwrap();

    let conversation = ursa_publish::demo::uuid();
    for seq in 0..5 {
        publisher
            .publish(&message_received(conversation, seq, "registry down"))
            .await
            .unwrap();
    }
    assert_eq!(topic_size(kafka.bootstrap(), &topic).await.unwrap(), 5);

    // A type whose ids are not cached cannot be sent: a retriable error, nothing written or dead-lettered.
    let err = publisher
        .send(&safety_violation(conversation, "no id"))
        .await
        .err()
        .expect("the registry is down");
    assert!(
        matches!(&err, Error::Registry { .. } | Error::RegistryTimeout { .. }),
        "{err}"
    );
    assert!(err.is_retriable(), "{err}");
    assert_eq!(
        topic_size(kafka.bootstrap(), &format!("{prefix}{DLQ}"))
            .await
            .unwrap(),
        0
    );
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// An aggregate for the unit-of-work test.
struct Conversation {
    id: Uuid,
    turns: i32,
    events: EventBuffer,
}

impl Aggregate for Conversation {
    fn events(&mut self) -> &mut EventBuffer {
        &mut self.events
    }
}

impl Conversation {
    fn say(&mut self, text: &str) -> Result<(), Error> {
        self.turns += 1;
        self.events
            .record(&message_received(self.id, self.turns, text))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unit_of_work_publishes_its_aggregates_events_in_order() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();
    let (mut a, mut b) = (
        Conversation {
            id: ursa_publish::demo::uuid(),
            turns: 0,
            events: EventBuffer::new(),
        },
        Conversation {
            id: ursa_publish::demo::uuid(),
            turns: 0,
            events: EventBuffer::new(),
        },
    );

    // A failed command: its events are discarded with the unit of work.
    let mut abandoned = UnitOfWork::new();
    a.say("never published").unwrap();
    abandoned.collect(&mut a);
    drop(abandoned);
    assert!(a.events.is_empty());

    let mut work = UnitOfWork::new();
    a.say("one").unwrap();
    b.say("two").unwrap();
    a.say("three").unwrap();
    work.collect(&mut a);
    work.collect(&mut b);
    assert_eq!(work.len(), 3);
    assert_eq!(
        topic_size(kafka.bootstrap(), &topic).await.unwrap(),
        0,
        "nothing before completion"
    );
    let delivered = work.complete(&publisher).await.unwrap();
    assert_eq!(delivered.len(), 3);
    let records = read_topic(kafka.bootstrap(), &topic, 3, Duration::from_secs(30))
        .await
        .unwrap();
    let texts: Vec<String> = records
        .iter()
        .map(|r| {
            MessageReceived::from_avro_datum(wire::split(&r.value).unwrap().1)
                .unwrap()
                .text
        })
        .collect();
    assert_eq!(
        texts,
        ["one", "three", "two"],
        "collected a's events, then b's"
    );
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

/// The MessageReceived schema with one more (writer-only, defaulted) field at the end.
fn with_extra_field() -> String {
    let mut v: serde_json::Value = serde_json::from_str(MessageReceived::SCHEMA).unwrap();
    v["fields"].as_array_mut().unwrap().push(serde_json::json!({
        "name": "legacy_note", "type": "string", "default": ""
    }));
    v.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscriber_commits_after_the_handler_and_reads_other_writers() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();
    let conversation = ursa_publish::demo::uuid();
    let mut sent = Vec::new();
    for seq in 0..4 {
        let e = message_received(conversation, seq, "current writer");
        publisher.publish(&e).await.unwrap();
        sent.push(e);
    }
    // Four records by another writer, whose schema has a field this reader lacks.
    let client = registry_client(&registry.url()).await;
    let other_id = client
        .register("message.received-value", &with_extra_field(), &[])
        .await
        .unwrap();
    let raw: FutureProducer = kafka.config().create().unwrap();
    for seq in 4..8 {
        let e = message_received(conversation, seq, "older writer");
        let mut value = Vec::new();
        wire::write_header(&mut value, other_id);
        value.extend(e.to_avro_datum().unwrap());
        encode::string(&mut value, "legacy");
        raw.send(
            FutureRecord::<str, [u8]>::to(&topic).payload(&value[..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        sent.push(e);
    }
    for seq in 8..10 {
        let e = message_received(conversation, seq, "current writer");
        publisher.publish(&e).await.unwrap();
        sent.push(e);
    }

    let group = unique_name("subscriber");
    let mut config = SubscriberConfig::new(kafka.bootstrap(), registry.url(), &group);
    config.topic_prefix = prefix.clone();
    let subscriber = Subscriber::<MessageReceived>::new(config.clone()).unwrap();
    let mut handled = Vec::new();
    let outcome = subscriber
        .run(
            |r| {
                let fail = r.offset == 6;
                if !fail {
                    handled.push(r.value);
                }
                async move {
                    if fail {
                        Err("the handler's dependency is down")
                    } else {
                        Ok(())
                    }
                }
            },
            std::future::pending(),
        )
        .await;
    assert!(
        matches!(&outcome, Err(Error::Handler { offset: 6, .. })),
        "{outcome:?}"
    );
    assert_eq!(handled, sent[..6]);
    let again = subscriber
        .recv(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the failed record comes again");
    assert_eq!((again.offset, &again.value), (6, &sent[6]));
    subscriber.close(Duration::from_secs(30)).await.unwrap();

    // The group resumes at the record whose handler failed.
    let subscriber = Subscriber::<MessageReceived>::new(config).unwrap();
    let mut rest = Vec::new();
    while rest.len() < 4 {
        let received = subscriber
            .recv(Duration::from_secs(30))
            .await
            .unwrap()
            .expect("the remaining records");
        subscriber
            .done(&received.topic, received.partition, received.offset)
            .unwrap();
        rest.push(received);
    }
    assert_eq!(rest[0].offset, 6, "not committed past the failed record");
    assert_eq!(rest[0].schema_id, other_id);
    assert_eq!(rest[0].key_string(), None, "the raw records had no key");
    assert_eq!(
        rest[2].key_string(),
        Some(conversation.to_string()),
        "the publisher's Avro key"
    );
    assert_eq!(rest[2].header("producer"), Some(&b"publish-test"[..]));
    let values: Vec<MessageReceived> = rest.into_iter().map(|r| r.value).collect();
    assert_eq!(
        values,
        sent[6..],
        "records of both writers decode as the reader's type"
    );
    subscriber.close(Duration::from_secs(30)).await.unwrap();
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_that_cannot_be_decoded_comes_again_until_skipped() {
    let kafka = Kafka::shared();
    let registry = registry().await;
    let prefix = prefix();
    let topic = format!("{prefix}{MESSAGES}");
    create_topic(kafka.bootstrap(), &topic, 1, &[])
        .await
        .unwrap();
    let raw: FutureProducer = kafka.config().create().unwrap();
    raw.send(
        FutureRecord::<str, [u8]>::to(&topic).payload(&b"not avro"[..]),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let publisher = Publisher::new(publisher_config(
        kafka.bootstrap(),
        &registry.url(),
        &prefix,
    ))
    .unwrap();
    let good = message_received(ursa_publish::demo::uuid(), 1, "after the poison");
    publisher.publish(&good).await.unwrap();

    let mut config =
        SubscriberConfig::new(kafka.bootstrap(), registry.url(), unique_name("poison"));
    config.topic_prefix = prefix.clone();
    let subscriber = Subscriber::<MessageReceived>::new(config).unwrap();
    for _ in 0..2 {
        let err = subscriber
            .recv(Duration::from_secs(30))
            .await
            .expect_err("not Avro");
        assert!(
            matches!(&err, Error::Decode { offset: 0, problem, .. } if problem.contains("magic byte")),
            "{err}"
        );
    }
    subscriber.skip(&topic, 0, 0).unwrap();
    let next = subscriber
        .recv(Duration::from_secs(30))
        .await
        .unwrap()
        .expect("the record after the poison one");
    assert_eq!((next.offset, next.value), (1, good));
    subscriber.close(Duration::from_secs(30)).await.unwrap();
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
}
