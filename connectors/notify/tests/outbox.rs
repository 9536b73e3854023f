//! The audit outbox relay against Apache Kafka (or nisshi), the dev registry and PostgreSQL: every record
//! reaches the audit topic once, even while several relays (a connector's tasks, other workers) drain the one
//! outbox at the same time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use ursa_connector_notify::audit::{self, AuditConfig, Entry, Publisher};
use ursa_connector_notify::db::Db;
use ursa_testkit::{Kafka, Postgres, create_topic, unique_name};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relays_draining_at_once_publish_each_record_once() {
    let kafka = Kafka::shared();
    let topic = unique_name("notify-audit");
    create_topic(kafka, &topic, 1).await.unwrap();
    let registry = ursa_registry::Server::bind(ursa_registry::ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let database = Postgres::shared().database().unwrap();
    let db = Arc::new(Db::new(database.url(), 6).unwrap());
    db.migrate().await.unwrap();
    const N: usize = 300;
    let c = db.get().await.unwrap();
    for i in 0..N {
        let e = Entry::new(
            "notification.sent",
            "SUCCESS",
            "guardian",
            "g-1",
            &i.to_string(),
        );
        audit::enqueue(&c, &e).await.unwrap();
    }
    c.release();
    let config = AuditConfig {
        bootstrap: kafka.bootstrap().to_owned(),
        properties: Vec::new(),
        topic: topic.clone(),
        registry_url: registry.url().to_owned(),
        producer: "outbox-test".into(),
    };
    let relays: Vec<Publisher> = (0..3)
        .map(|_| Publisher::new(config.clone()).unwrap())
        .collect();
    // Three relays drain in small pieces at once until the outbox is empty.
    loop {
        let drained = futures_util::future::join_all(relays.iter().map(|r| r.drain(&db, 25))).await;
        let n: usize = drained.into_iter().map(Result::unwrap).sum();
        if n == 0 {
            break;
        }
    }
    // Every record on the topic, counted by its audit id.
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", unique_name("outbox-reader"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let (_, high) = consumer
        .fetch_watermarks(&topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < high {
        assert!(Instant::now() < deadline, "read {read} of {high}");
        let Some(m) = tokio::task::block_in_place(|| consumer.poll(Duration::from_millis(500)))
        else {
            continue;
        };
        let m = m.unwrap();
        read += 1;
        let event =
            <ursa_events::com::teddy::system::AuditLog as ursa_avro::AvroRecord>::from_avro_datum(
                &m.payload().unwrap()[5..],
            )
            .unwrap();
        *seen.entry(event.metadata.event_id.to_string()).or_default() += 1;
    }
    assert_eq!(seen.len(), N, "every record reached the topic");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{} of {N} published more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(3)]
    );
}
