//! `tasks.max` on one worker (standalone), as in Kafka Connect: a connector with three tasks runs three sinks,
//! each a consumer of the connector's group, and the broker gives each of them a share of the partitions; status and
//! `/tasks` list the three (ids 0–2); restarting one task rebuilds that task's sink only; every record is
//! delivered and committed once the tasks share the work.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ursa::connect::api::{ConnectApi, State};
use ursa_testkit::{group_assignments, unique_name};

use support::{
    Committed, DEADLINE, Producer, Recorder, create, end_offset, eventually, kafka, sink_config,
    topic, worker,
};

/// The generations (sink builds) of `name`'s tasks so far.
fn builds(recorder: &Recorder, name: &str) -> BTreeSet<u64> {
    recorder
        .builds()
        .iter()
        .filter(|b| b.connector == name)
        .map(|b| b.generation)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_tasks_are_three_members_of_the_group_and_are_reported_so() {
    const PARTITIONS: i32 = 3;
    let topic = topic("sem-tasks", PARTITIONS).await;
    let recorder = Recorder::new();
    let name = unique_name("sem-tasks");
    let worker = worker(&recorder);
    create(&worker, sink_config(&name, &topic, &[("tasks.max", "3")])).await;

    // Three sinks, and three members of the connector's group that share the partitions, none twice.
    eventually("three sink builds", DEADLINE, || {
        (builds(&recorder, &name).len() == 3).then_some(())
    })
    .await;
    // The tasks share the partitions: a record sent to each partition is delivered by three different sinks
    // (once the group has settled: until then, rounds repeat).
    let producer = Producer::new();
    let deadline = Instant::now() + DEADLINE;
    let mut sent: u32 = 0;
    loop {
        let mut offsets = Vec::new();
        for p in 0..PARTITIONS {
            offsets.push(
                producer
                    .send_many(&topic, p, sent..sent + 1, |i| format!("v{i}"))
                    .await[0],
            );
        }
        sent += 1;
        let by: Vec<u64> = eventually("the round delivered", DEADLINE, || {
            let d = recorder.delivered(&name);
            offsets
                .iter()
                .enumerate()
                .map(|(p, o)| {
                    d.iter()
                        .rev()
                        .find(|a| a.partition == p as i32 && a.offset == *o)
                        .map(|a| a.generation)
                })
                .collect::<Option<Vec<u64>>>()
        })
        .await;
        if by.iter().collect::<BTreeSet<_>>().len() == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the three tasks never each delivered a partition: {by:?}"
        );
    }
    // Seen from the broker too (Apache Kafka's DescribeGroups; nisshi's lists no members): three members, a
    // partition each.
    if kafka().backend() != ursa_testkit::Backend::Nisshi {
        let group = format!("connect-{name}");
        eventually("three members, a partition each", DEADLINE, || {
            let m = group_assignments(kafka(), &group);
            let mut all: Vec<i32> = m.iter().flatten().map(|(_, p)| *p).collect();
            all.sort_unstable();
            (m.len() == 3 && m.iter().all(|a| a.len() == 1) && all == vec![0, 1, 2]).then_some(())
        })
        .await;
    }

    // Status and /tasks: three RUNNING tasks, ids 0, 1, 2, on this worker.
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        let s = worker.status(name.clone()).await.unwrap();
        if s.tasks.len() == 3 && s.tasks.iter().all(|t| t.state.state == State::Running) {
            break s;
        }
        assert!(Instant::now() < deadline, "three RUNNING tasks: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let tasks = worker.tasks(name.clone()).await.unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.id.task).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    let info = worker.connector(name.clone()).await.unwrap();
    assert_eq!(info.tasks.len(), 3);

    // Every record, delivered by whichever task owns its partition, and committed.
    for p in 0..PARTITIONS {
        producer
            .send_many(&topic, p, 0..20, |i| format!("v{i}"))
            .await;
    }
    let mut ends = Vec::new();
    for p in 0..PARTITIONS {
        ends.push(end_offset(&topic, p).await);
    }
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &ends).then_some(())
    })
    .await;
    Committed::of_connector(&name, &topic, PARTITIONS)
        .wait_for(
            "every partition committed",
            &ends.iter().map(|e| Some(*e)).collect::<Vec<_>>(),
        )
        .await;

    // Restarting task 1 rebuilds one sink: a fourth build, the other two tasks untouched.
    let before = builds(&recorder, &name);
    worker.restart_task(name.clone(), 1).await.unwrap();
    eventually("task 1's new sink", DEADLINE, || {
        (builds(&recorder, &name).len() == 4).then_some(())
    })
    .await;
    let closed: BTreeSet<u64> = recorder
        .closed()
        .iter()
        .filter(|(c, _)| *c == name)
        .map(|(_, g)| *g)
        .collect();
    assert_eq!(
        closed.len(),
        1,
        "only the restarted task's sink closed: {closed:?}"
    );
    assert!(before.is_superset(&closed));
    assert!(
        worker.restart_task(name.clone(), 7).await.is_err(),
        "no task 7"
    );
    worker.shutdown().await;
}
