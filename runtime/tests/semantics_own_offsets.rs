//! A sink that keeps its own offsets (exactly-once, like a database writing offsets in the same transaction
//! as its rows): the runtime starts each newly assigned partition where the sink says, not where the group's
//! committed offset is — on first start and after a restart.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ursa::connect::api::{BoxFuture, ConnectApi};
use ursa::connect::config::{Key, Parsed};
use ursa::connect::sink::{Outcome, Sink, SinkError, SinkPlugin, SinkRecord, StartingOffsets};
use ursa::connect::telemetry::Telemetry;
use ursa::connect::worker::Worker;

/// Rows with the offsets stored beside them.
#[derive(Default)]
struct Table {
    rows: Vec<(i32, i64)>,
    next: BTreeMap<(String, i32), i64>,
}

struct Db(Arc<Mutex<Table>>);

impl Sink for Db {
    fn put<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let mut t = self.0.lock().unwrap();
            for r in records {
                t.rows.push((r.partition, r.offset));
                t.next
                    .insert((r.topic.to_string(), r.partition), r.offset + 1);
            }
            vec![Outcome::Delivered; records.len()]
        })
    }

    fn starting_offsets<'a>(
        &'a self,
        partitions: &'a [(String, i32)],
    ) -> BoxFuture<'a, Result<StartingOffsets, SinkError>> {
        Box::pin(async move {
            let t = self.0.lock().unwrap();
            Ok(partitions
                .iter()
                .filter_map(|k| t.next.get(k).map(|o| (k.clone(), *o)))
                .collect())
        })
    }
}

struct DbPlugin(Arc<Mutex<Table>>);

impl SinkPlugin for DbPlugin {
    fn name(&self) -> &'static str {
        "db"
    }
    fn description(&self) -> &'static str {
        "keeps its own offsets"
    }
    fn keys(&self) -> Vec<Key> {
        Vec::new()
    }
    fn build(&self, _config: &Parsed) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(Db(Arc::clone(&self.0))))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_where_the_sink_says() {
    let topic = support::topic("own-offsets", 1).await;
    let producer = support::Producer::new();
    producer
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let table = Arc::new(Mutex::new(Table::default()));
    // The sink already holds records 0..5 (say, from before a migration): it must get 5.. only.
    table.lock().unwrap().next.insert((topic.clone(), 0), 5);
    let worker = Arc::new(Worker::with_plugins(
        support::env(Telemetry::new()),
        vec![Arc::new(DbPlugin(Arc::clone(&table)))],
    ));
    let name = format!("db-{topic}");
    let config = support::flat(&[
        ("name", &name),
        ("connector.class", "db"),
        ("topics", &topic),
        ("value.converter", "string"),
        // Kafka commits rarely: the sink's own offsets must be what counts.
        ("offset.flush.interval.ms", "600000"),
    ]);
    worker
        .put_connector(name.clone(), config, true)
        .await
        .unwrap();
    support::eventually("records 5..10", support::DEADLINE, || {
        (table.lock().unwrap().rows.len() >= 5).then_some(())
    })
    .await;
    assert_eq!(
        table.lock().unwrap().rows,
        (5..10).map(|o| (0, o)).collect::<Vec<_>>()
    );

    // After a restart (offsets in Kafka may lag), the sink's offsets win again: no duplicates.
    producer
        .send_many(&topic, 0, 10..13, |i| format!("v{i}"))
        .await;
    support::eventually("records up to 13", support::DEADLINE, || {
        (table.lock().unwrap().rows.len() >= 8).then_some(())
    })
    .await;
    worker.restart(name.clone(), false, false).await.unwrap();
    producer
        .send_many(&topic, 0, 13..15, |i| format!("v{i}"))
        .await;
    support::eventually("records up to 15", support::DEADLINE, || {
        (table.lock().unwrap().rows.len() >= 10).then_some(())
    })
    .await;
    assert_eq!(
        table.lock().unwrap().rows,
        (5..15).map(|o| (0, o)).collect::<Vec<_>>()
    );
    worker.shutdown().await;
}
