//! A sink that keeps its own offsets (exactly-once, like a database writing offsets in the same transaction
//! as its rows, fenced by the assignment's generation): the runtime starts each newly assigned partition
//! where the sink says — not where the group's committed offset is, which the test sets elsewhere on purpose —
//! on first start and after a restart; it opens partitions with a new, higher generation each time, before any
//! record, and closes them on stop; it commits in Kafka only what the sink's flush returns (here nothing).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use ursa::connect::api::ConnectApi;
use ursa::connect::config::{Key, Parsed};
use ursa::connect::sink::{
    Offsets, Outcome, Sink, SinkContext, SinkError, SinkPlugin, SinkRecord, TopicPartition,
};
use ursa::connect::telemetry::Telemetry;
use ursa::connect::worker::Worker;
use ursa_connect::{BoxFuture, Conversion};

/// Rows with the offsets (and the writer's generation) stored beside them.
#[derive(Default)]
struct Table {
    rows: Vec<(i32, i64)>,
    next: BTreeMap<TopicPartition, i64>,
    /// The generation that owns each partition: writes from an older one are refused (fencing).
    owner: BTreeMap<TopicPartition, u64>,
    /// Every hook call, in order: ("open", gen) / ("put", gen) / ("close", gen) / ("flush", gen).
    calls: Vec<(&'static str, u64)>,
}

struct Db {
    table: Arc<Mutex<Table>>,
    generation: Mutex<u64>,
}

impl Sink for Db {
    fn open<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let mut t = self.table.lock().unwrap();
            for tp in partitions {
                t.owner.insert(tp.clone(), generation);
            }
            t.calls.push(("open", generation));
            *self.generation.lock().unwrap() = generation;
            Ok(())
        })
    }

    fn starting_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            let t = self.table.lock().unwrap();
            Ok(partitions
                .iter()
                .filter_map(|tp| t.next.get(tp).map(|o| (tp.clone(), *o)))
                .collect())
        })
    }

    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            let generation = *self.generation.lock().unwrap();
            let mut t = self.table.lock().unwrap();
            t.calls.push(("put", generation));
            for r in records {
                let tp = r.topic_partition();
                if t.owner.get(&tp) != Some(&generation) {
                    return Err(SinkError::permanent(format!(
                        "{tp}: fenced generation {generation}"
                    )));
                }
                t.rows.push((r.partition, r.offset));
                t.next.insert(tp, r.offset + 1);
            }
            Ok(vec![Outcome::Delivered; records.len()])
        })
    }

    fn flush<'a>(&'a self, _done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            let generation = *self.generation.lock().unwrap();
            self.table.lock().unwrap().calls.push(("flush", generation));
            // The offsets live in the table: nothing to commit in Kafka.
            Ok(Offsets::new())
        })
    }

    fn close<'a>(
        &'a self,
        _partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let generation = *self.generation.lock().unwrap();
            self.table.lock().unwrap().calls.push(("close", generation));
            Ok(())
        })
    }

    fn conversion(&self) -> Conversion {
        Conversion::OnDemand
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
    fn build(&self, _config: &Parsed, _context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(Db {
            table: Arc::clone(&self.0),
            generation: Mutex::new(0),
        }))
    }
}

/// Commits `offset` for partition 0 of `topic` in `group` (the group has no member).
fn commit_in_kafka(group: &str, topic: &str, offset: i64) {
    let c: BaseConsumer = support::kafka()
        .config()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_where_the_sink_says_not_where_the_group_committed() {
    let topic = support::topic("own-offsets", 1).await;
    let producer = support::Producer::new();
    producer
        .send_many(&topic, 0, 0..10, |i| format!("v{i}"))
        .await;
    let name = format!("db-{topic}");
    let group = format!("connect-{name}");
    // The group says 2; the sink, which holds records 0..5 already, says 5: the sink wins.
    commit_in_kafka(&group, &topic, 2);
    let committed = support::Committed::new(&group, &topic, 1);
    assert_eq!(committed.get().await, vec![Some(2)]);
    let table = Arc::new(Mutex::new(Table::default()));
    table
        .lock()
        .unwrap()
        .next
        .insert(TopicPartition::new(topic.as_str(), 0), 5);
    let worker = Arc::new(Worker::with_plugins(
        support::env(Telemetry::new()),
        vec![Arc::new(DbPlugin(Arc::clone(&table)))],
    ));
    let config = support::flat(&[
        ("name", &name),
        ("connector.class", "db"),
        ("topics", &topic),
        ("value.converter", "string"),
        ("offset.flush.interval.ms", "100"),
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
    // Flushes happened and returned nothing to commit: the group's offset is still the one the test set.
    support::eventually("a flush", support::DEADLINE, || {
        table
            .lock()
            .unwrap()
            .calls
            .iter()
            .any(|(c, _)| *c == "flush")
            .then_some(())
    })
    .await;
    assert_eq!(committed.get().await, vec![Some(2)]);

    // After a restart (the group still says 2), the sink's offsets win again: no duplicates, and the new
    // sink writes under a newer generation, opened before its first put.
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
    worker.shutdown().await;
    let committed = support::Committed::new(&group, &topic, 1).get().await[0];
    let t = table.lock().unwrap();
    assert_eq!(t.rows, (5..15).map(|o| (0, o)).collect::<Vec<_>>());
    assert_eq!(committed, Some(2), "nothing committed in Kafka");
    let opens: Vec<u64> = t
        .calls
        .iter()
        .filter(|(c, _)| *c == "open")
        .map(|(_, g)| *g)
        .collect();
    assert!(
        opens.len() >= 2 && opens.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        t.calls
    );
    // Every put came after the open of its generation, and each generation was closed.
    for (i, (call, g)) in t.calls.iter().enumerate() {
        if *call == "put" {
            assert!(
                t.calls[..i].contains(&("open", *g)),
                "put before open: {:?}",
                t.calls
            );
        }
    }
    for g in &opens {
        assert!(
            t.calls.contains(&("close", *g)),
            "generation {g} never closed: {:?}",
            t.calls
        );
    }
}
