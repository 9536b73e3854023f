//! `ursa run` end to end on the real broker: records produced to a 3-partition topic arrive in the `file` sink
//! in order per partition, offsets are committed exactly to the end, a poison pill goes to the DLQ with the
//! original bytes and Kafka Connect's context headers, and SIGTERM drains and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use ursa_testkit::{Kafka, WorkerProcess, create_topic, unique_name, wait_until};

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn file_sink_in_order_with_dlq_and_clean_shutdown() {
    let kafka = Kafka::shared();
    let topic = unique_name("orders");
    let dlq = unique_name("orders-dlq");
    create_topic(kafka, &topic, 3).await.unwrap();
    create_topic(kafka, &dlq, 1).await.unwrap();
    let producer: FutureProducer = kafka.config().create().unwrap();
    let mut expected: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for i in 0..300 {
        let key = format!("k{}", i % 17);
        // Record 150 is a poison pill: not JSON.
        let value = if i == 150 {
            "{not json".to_owned()
        } else {
            format!("{{\"n\":{i}}}")
        };
        let headers = rdkafka::message::OwnedHeaders::new().insert(rdkafka::message::Header {
            key: "trace",
            value: Some("t1"),
        });
        let delivery = producer
            .send(
                FutureRecord::to(&topic)
                    .key(&key)
                    .payload(&value)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        if i != 150 {
            expected.entry(delivery.partition).or_default().push(i);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let worker = dir.path().join("worker.toml");
    std::fs::write(&worker, format!("drain_deadline = \"10s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n", kafka.bootstrap())).unwrap();
    let connector = dir.path().join("orders.toml");
    let name = unique_name("orders-file");
    std::fs::write(
        &connector,
        format!(
            "name = \"{name}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"json\"\n\"errors.tolerance\" = \"all\"\n\"errors.deadletterqueue.topic.name\" = \"{dlq}\"\n\"offset.flush.interval.ms\" = \"200\"\n",
            out.display()
        ),
    )
    .unwrap();
    let mut child = WorkerProcess::start(
        env!("CARGO_BIN_EXE_ursa"),
        &[worker.to_str().unwrap(), connector.to_str().unwrap()],
    )
    .unwrap();
    let url = child.url.clone();

    let got = wait_until("299 records in the file", Duration::from_secs(60), || {
        let l = lines(&out);
        (l.len() >= 299).then_some(l)
    })
    .unwrap();
    assert_eq!(got.len(), 299);
    // In order per partition, each record once, with key, headers and decoded value.
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for l in &got {
        assert_eq!(l["topic"], topic.as_str());
        let p = l["partition"].as_i64().unwrap() as i32;
        seen.entry(p)
            .or_default()
            .push(l["value"]["n"].as_i64().unwrap());
        assert_eq!(
            l["headers"][0],
            serde_json::json!({"key": "trace", "value": "t1"})
        );
        assert!(l["key"].as_str().unwrap().starts_with('k'));
    }
    assert_eq!(seen, expected);

    // The poison pill is in the DLQ, byte for byte, with context headers.
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
    assert_eq!(m.payload(), Some(&b"{not json"[..]));
    assert_eq!(m.key(), Some(&b"k14"[..]));
    let headers: BTreeMap<String, String> = m
        .headers()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect();
    assert_eq!(headers["trace"], "t1");
    assert_eq!(headers["__connect.errors.topic"], topic);
    assert_eq!(headers["__connect.errors.connector.name"], name);
    assert_eq!(headers["__connect.errors.stage"], "VALUE_CONVERTER");
    assert_eq!(
        headers["__connect.errors.exception.class.name"],
        "ursa.convert.InvalidJson"
    );
    for h in [
        "__connect.errors.partition",
        "__connect.errors.offset",
        "__connect.errors.task.id",
        "__connect.errors.class.name",
        "__connect.errors.exception.message",
        "__connect.errors.exception.stacktrace",
        "__ursa.errors.attempts",
        "__ursa.errors.first.failure.ms",
        "__ursa.errors.last.failure.ms",
    ] {
        assert!(headers.contains_key(h), "{h} missing: {headers:?}");
    }

    // Status through REST, then offsets committed to the end of every partition.
    let status: serde_json::Value = reqwest::get(format!("{url}/connectors/{name}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["tasks"][0]["state"], "RUNNING", "{status}");
    let group: BaseConsumer = kafka
        .config()
        .set("group.id", format!("connect-{name}"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(&topic, p);
    }
    let ends: BTreeMap<i32, i64> = (0..3)
        .map(|p| {
            (
                p,
                group
                    .fetch_watermarks(&topic, p, Duration::from_secs(5))
                    .unwrap()
                    .1,
            )
        })
        .collect();
    wait_until(
        "offsets committed to the end",
        Duration::from_secs(30),
        || {
            let c = group
                .committed_offsets(tpl.clone(), Duration::from_secs(5))
                .ok()?;
            c.elements()
                .iter()
                .all(|e| e.offset() == Offset::Offset(ends[&e.partition()]))
                .then_some(())
        },
    )
    .unwrap();

    // SIGTERM: drain, commit, exit 0.
    assert!(
        child.terminate().unwrap(),
        "the worker did not exit 0 on SIGTERM"
    );
}
