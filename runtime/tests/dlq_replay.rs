//! `ursa dlq replay`: dead-lettered records go back to their original topic, byte for byte with their own
//! headers and without the error context, selected by connector and header filters; `--dry-run` publishes
//! nothing; `--target-topic` redirects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use ursa_testkit::CommandExt;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use ursa::connect::dlq::{DeadLetterQueue, Failure};
use ursa::connect::record::RawRecord;
use ursa::connect::telemetry::Stage;
use ursa_testkit::{Kafka, create_topic, unique_name, wait_until};

fn failure(stage: Stage) -> Failure {
    Failure {
        stage,
        class_name: "ursa.sink.test".into(),
        exception_class: "ursa.test.Failure".into(),
        message: "boom".into(),
        stacktrace: "boom".into(),
        attempts: 1,
        first_failure: SystemTime::now(),
        last_failure: SystemTime::now(),
        schema_id: None,
        detail: None,
    }
}

/// (key, value, headers) of a record.
type Read = (Vec<u8>, Vec<u8>, Vec<(String, Vec<u8>)>);

fn read_all(kafka: &Kafka, topic: &str, n: usize) -> Vec<Read> {
    let c: BaseConsumer = kafka
        .config()
        .set("group.id", unique_name("read"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    wait_until(
        &format!("{n} records in {topic}"),
        Duration::from_secs(30),
        || {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().unwrap_or_default().to_vec(),
                    headers,
                ));
            }
            (out.len() >= n).then_some(())
        },
    )
    .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_selected_records_to_their_topic() {
    let kafka = Kafka::shared();
    let (dlq, a, b, elsewhere) = (
        unique_name("dlq"),
        unique_name("orig-a"),
        unique_name("orig-b"),
        unique_name("elsewhere"),
    );
    for t in [&dlq, &a, &b, &elsewhere] {
        create_topic(kafka, t, 1).await.unwrap();
    }
    let producer: FutureProducer = kafka.config().create().unwrap();
    let writer = |connector: &str| {
        DeadLetterQueue::new(producer.clone(), dlq.clone(), connector.into(), true)
    };
    let raw = |topic: &str, i: u8| RawRecord {
        topic: Arc::from(topic),
        partition: 0,
        offset: i64::from(i),
        timestamp: Some(1_700_000_000_000),
        timestamp_type: Default::default(),
        headers: RawRecord::headers_of(vec![("trace".into(), Some(vec![i]))]),
        key: Some(vec![b'k', i].into()),
        value: Some(vec![0xff, i, 0].into()),
    };
    let (c1, c2) = (writer("c1"), writer("c2"));
    c1.send(
        &raw(&a, 1),
        &failure(Stage::ValueConverter),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    c1.send(
        &raw(&b, 2),
        &failure(Stage::TaskPut),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    c1.send(
        &raw(&a, 3),
        &failure(Stage::ValueConverter),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    c2.send(
        &raw(&a, 4),
        &failure(Stage::ValueConverter),
        Duration::from_secs(10),
    )
    .await
    .unwrap();

    let ursa = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ursa"))
            .args(args)
            .output_within(ursa_testkit::PEER_TIMEOUT)
            .unwrap()
    };
    let base = [
        "dlq",
        "replay",
        "--bootstrap-servers",
        kafka.bootstrap(),
        "--dlq-topic",
        &dlq,
        "--connector",
        "c1",
    ];
    let dry = ursa(
        &[
            &base[..],
            &[
                "--filter",
                "__connect.errors.stage=VALUE_CONVERTER",
                "--dry-run",
            ],
        ]
        .concat(),
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("read 4 DLQ record(s); would replay 2"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );

    let out = ursa(
        &[
            &base[..],
            &["--filter", "__connect.errors.stage=VALUE_CONVERTER"],
        ]
        .concat(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("2 -> {a}")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let back = read_all(kafka, &a, 2);
    assert_eq!(
        back[0],
        (
            vec![b'k', 1],
            vec![0xff, 1, 0],
            vec![("trace".to_owned(), vec![1])]
        )
    );
    assert_eq!(
        back[1],
        (
            vec![b'k', 3],
            vec![0xff, 3, 0],
            vec![("trace".to_owned(), vec![3])]
        )
    );

    // Everything of c1 to another topic.
    let out = ursa(&[&base[..], &["--target-topic", &elsewhere]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read_all(kafka, &elsewhere, 3).len(), 3);

    let bad = ursa(&[
        "dlq",
        "replay",
        "--bootstrap-servers",
        kafka.bootstrap(),
        "--dlq-topic",
        "no-such-dlq-topic-x",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A failure-time range is found with ListOffsets by timestamp (only Apache Kafka answers it reliably): the
/// replay reads only the records from the first one failed at or after `--from`, stops before `--to`, and the
/// replayed records get their original timestamp back.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_time_range_is_found_by_timestamp_and_original_timestamps_come_back() {
    let kafka = Kafka::apache();
    let (dlq, orig) = (unique_name("dlq-time"), unique_name("orig-time"));
    for t in [&dlq, &orig] {
        create_topic(kafka, t, 1).await.unwrap();
    }
    let producer: FutureProducer = kafka.config().create().unwrap();
    let writer = DeadLetterQueue::new(producer.clone(), dlq.clone(), "c".into(), true);
    // Failures an hour apart, from 2026-01-01T00:00:00Z; each record was written a minute before it failed.
    let t0 = 1_767_225_600_000_i64;
    let hour = 3_600_000_i64;
    for i in 0..6u8 {
        let failed = t0 + i64::from(i) * hour;
        let record = RawRecord {
            topic: Arc::from(orig.as_str()),
            partition: 0,
            offset: i64::from(i),
            timestamp: Some(failed - 60_000),
            timestamp_type: Default::default(),
            headers: RawRecord::headers_of(vec![]),
            key: Some(vec![b'k', i].into()),
            value: Some(vec![i].into()),
        };
        let mut f = failure(Stage::TaskPut);
        f.last_failure = SystemTime::UNIX_EPOCH + Duration::from_millis(failed as u64);
        f.first_failure = f.last_failure;
        writer
            .send(&record, &f, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args([
            "dlq",
            "replay",
            "--bootstrap-servers",
            kafka.bootstrap(),
            "--dlq-topic",
            &dlq,
            "--from",
            "2026-01-01T02:00:00Z",
            "--to",
            "2026-01-01T04:00:00Z",
        ])
        .output_within(ursa_testkit::PEER_TIMEOUT)
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Read 2, not 6: the start and the end were found by timestamp, not by scanning from the beginning.
    assert!(stdout.contains("read 2 DLQ record(s)"), "{stdout}");
    assert!(stdout.contains(&format!("2 -> {orig}")), "{stdout}");

    let c: BaseConsumer = kafka
        .config()
        .set("group.id", unique_name("read"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[orig.as_str()]).unwrap();
    let mut got = Vec::new();
    wait_until("2 replayed records", Duration::from_secs(30), || {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            got.push((
                m.key().unwrap().to_vec(),
                m.timestamp().to_millis().unwrap(),
            ));
        }
        (got.len() >= 2).then_some(())
    })
    .unwrap();
    assert_eq!(
        got,
        vec![
            (vec![b'k', 2], t0 + 2 * hour - 60_000),
            (vec![b'k', 3], t0 + 3 * hour - 60_000)
        ],
        "records failed at 02:00 and 03:00, with their original timestamps"
    );
}
