//! The broker down, then back: records sent while it is down wait in the producer (retried with backoff) and
//! are delivered once it is back, in key order and without duplicates; with the broker down longer than the
//! delivery timeout, the deliveries fail as retriable errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ursa_avro::{AvroRecord, wire};
use ursa_events::com::teddy::conversation::MessageReceived;
use ursa_publish::demo::message_received;
use ursa_publish::{Publisher, RDKafkaErrorCode};
use ursa_testkit::{unique_name, wait_until};

use support::restartable_kafka::RestartableKafka;
use support::{create_topic, publisher_config, read_topic, registry};

#[tokio::test(flavor = "multi_thread")]
async fn records_sent_while_the_broker_is_down_are_delivered_once_it_is_back() {
    let mut kafka = tokio::task::spawn_blocking(RestartableKafka::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e:#}\n(the Apache Kafka jars come from `cargo xtask test`)"));
    let bootstrap = kafka.bootstrap();
    let registry = registry().await;
    let prefix = format!("{}.", unique_name("down"));
    let topic = format!("{prefix}message.received");
    create_topic(&bootstrap, &topic, 3, &[]).await.unwrap();
    create_topic(&bootstrap, &format!("{prefix}dlq.failed-events"), 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(&bootstrap, &registry.url(), &prefix);
    config.delivery_timeout = Some(Duration::from_secs(180));
    let publisher = Publisher::new(config).unwrap();

    let conversations: Vec<_> = (0..4).map(|_| ursa_publish::demo::uuid()).collect();
    let mut seq = 0;
    let mut sent = Vec::new();
    for _ in 0..5 {
        for c in &conversations {
            let e = message_received(*c, seq, "before");
            publisher.publish(&e).await.unwrap();
            sent.push(e);
        }
        seq += 1;
    }

    kafka = tokio::task::spawn_blocking(move || {
        kafka.stop().unwrap();
        kafka
    })
    .await
    .unwrap();
    let mut pending = Vec::new();
    for _ in 0..10 {
        for c in &conversations {
            let e = message_received(*c, seq, "while down");
            pending.push(publisher.send(&e).await.unwrap());
            sent.push(e);
        }
        seq += 1;
    }
    assert_eq!(
        publisher.in_flight(),
        40,
        "the records wait in the producer"
    );

    let kafka = tokio::task::spawn_blocking(move || {
        kafka.resume().unwrap();
        kafka
    })
    .await
    .unwrap();
    for d in pending {
        tokio::time::timeout(Duration::from_secs(120), d)
            .await
            .expect("delivered once the broker is back")
            .unwrap();
    }
    publisher.flush(Duration::from_secs(30)).await.unwrap();

    let records = read_topic(&bootstrap, &topic, 60, Duration::from_secs(60))
        .await
        .unwrap();
    let mut ids = HashSet::new();
    let mut last: HashMap<String, i32> = HashMap::new();
    let mut ordered: Vec<_> = records.iter().collect();
    ordered.sort_by_key(|r| (r.partition, r.offset));
    for r in ordered {
        let e = MessageReceived::from_avro_datum(wire::split(&r.value).unwrap().1).unwrap();
        assert!(ids.insert(e.metadata.event_id), "no duplicates");
        let key = e.conversation_id.to_string();
        let prev = last.insert(key, e.sequence_number);
        assert!(prev.is_none_or(|p| p < e.sequence_number), "key order kept");
    }
    assert_eq!(ids.len(), sent.len());
    assert_eq!(
        support::topic_size(&bootstrap, &topic).await.unwrap(),
        60,
        "exactly the records sent"
    );
    publisher.shutdown(Duration::from_secs(10)).await.unwrap();
    drop(kafka);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_broker_down_past_the_delivery_timeout_deliveries_fail_as_retriable() {
    let kafka = tokio::task::spawn_blocking(RestartableKafka::start)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("{e:#}\n(the Apache Kafka jars come from `cargo xtask test`)"));
    let bootstrap = kafka.bootstrap();
    let registry = registry().await;
    let prefix = format!("{}.", unique_name("down"));
    create_topic(&bootstrap, &format!("{prefix}message.received"), 1, &[])
        .await
        .unwrap();
    let mut config = publisher_config(&bootstrap, &registry.url(), &prefix);
    config.delivery_timeout = Some(Duration::from_secs(3));
    let publisher = Publisher::new(config).unwrap();
    let c = ursa_publish::demo::uuid();
    publisher
        .publish(&message_received(c, 0, "before"))
        .await
        .unwrap();
    let mut kafka = kafka;
    tokio::task::spawn_blocking(move || kafka.stop().map(|()| kafka))
        .await
        .unwrap()
        .unwrap();
    let err = publisher
        .publish(&message_received(c, 1, "never"))
        .await
        .expect_err("the broker stays down");
    assert_eq!(
        err.delivery_code(),
        Some(RDKafkaErrorCode::MessageTimedOut),
        "{err}"
    );
    assert!(err.is_retriable(), "{err}");
    assert!(
        matches!(err.dead_letter(), Some(ursa_publish::DeadLetter::Failed(_))),
        "the dead-letter record cannot be written either: {err}"
    );
    wait_until("nothing in flight", Duration::from_secs(30), || {
        (publisher.in_flight() == 0).then_some(())
    })
    .unwrap();
}
