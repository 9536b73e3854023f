//! Delivery semantics under retries, on the real broker with the runtime embedded as a library and a scripted
//! test sink:
//!
//! - order within a partition while some records fail retriably (the exact contract of `partition.rs`: a batch
//!   is handed to the sink in offset order, then only its retriable records again, in order, until every
//!   record of the batch is done; the next batch starts only then, at the next offset);
//! - a record that keeps failing holds back only its partition's commit, never past itself;
//! - retry timing: `retry_after` honoured even above `errors.retry.delay.max.ms`, attempts bounded by
//!   `errors.retry.max.attempts`, exhausted records dead-lettered as `ursa.sink.RetriesExhausted` with the
//!   attempts made.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rdkafka::Message;
use ursa::connect::config::ConnectorConfig;
use ursa::connect::sink::{Outcome, SinkPlugin};
use ursa_testkit::unique_name;

use support::{
    Attempt, Committed, DEADLINE, Producer, Recorder, TestPlugin, create, eventually, header_map,
    headers_of, read_topic, retriable, sink_config, topic, worker,
};

/// Checks the ordering contract for the attempts of one partition (in call order), whose records are the
/// offsets `0..end`.
fn check_partition_contract(p: i32, attempts: &[&Attempt], end: i64) {
    // The sink calls, in order.
    let mut calls: Vec<Vec<&Attempt>> = Vec::new();
    for a in attempts {
        match calls.last_mut() {
            Some(c) if c[0].call == a.call => c.push(a),
            _ => calls.push(vec![a]),
        }
    }
    let mut next_batch = 0i64;
    let mut batch_first = 0i64;
    let mut undelivered: BTreeSet<i64> = BTreeSet::new();
    let mut last_retriable: Vec<i64> = Vec::new();
    let mut max_delivered = -1i64;
    for call in &calls {
        let offsets: Vec<i64> = call.iter().map(|a| a.offset).collect();
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "p{p}: a call's records are in offset order: {offsets:?}"
        );
        let attempt = call[0].attempt;
        for a in call {
            assert_eq!(a.attempt, attempt, "p{p}: one attempt number per call");
            assert_eq!(
                a.attempt, a.seen,
                "p{p}@{}: SinkRecord::attempt counts the earlier attempts",
                a.offset
            );
        }
        if attempt == 0 {
            assert!(
                undelivered.is_empty(),
                "p{p}: a new batch {offsets:?} began before {undelivered:?} of the previous one were delivered"
            );
            let expected: Vec<i64> = (next_batch..next_batch + offsets.len() as i64).collect();
            assert_eq!(
                offsets, expected,
                "p{p}: a batch is the next run of offsets, with no gap and nothing repeated"
            );
            batch_first = next_batch;
            next_batch += offsets.len() as i64;
            undelivered = offsets.iter().copied().collect();
        } else {
            assert_eq!(
                offsets, last_retriable,
                "p{p}: a retry re-sends exactly the records that failed retriably, in order"
            );
        }
        last_retriable = call
            .iter()
            .filter(|a| matches!(a.outcome, Outcome::Retriable { .. }))
            .map(|a| a.offset)
            .collect();
        for a in call.iter().filter(|a| a.delivered()) {
            if a.offset < max_delivered {
                assert!(
                    a.attempt > 0 && max_delivered >= batch_first,
                    "p{p}: delivery of {} after {max_delivered} is not a retry within the same batch",
                    a.offset
                );
            }
            max_delivered = max_delivered.max(a.offset);
            undelivered.remove(&a.offset);
        }
    }
    assert_eq!(next_batch, end, "p{p}: every record was handed to the sink");
    assert!(
        undelivered.is_empty(),
        "p{p}: {undelivered:?} never delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_stay_in_offset_order_per_partition_under_retries() {
    const PARTITIONS: i32 = 3;
    const PER: u32 = 60;
    let topic = topic("sem-order", PARTITIONS).await;
    let producer = Producer::new();
    for p in 0..PARTITIONS {
        producer
            .send_many(&topic, p, 0..PER / 2, |i| format!("{p}:{i}"))
            .await;
    }
    // Every 7th record fails twice, then succeeds.
    let recorder = Recorder::with(|r, seen| {
        if r.offset % 7 == 0 && seen < 2 {
            retriable("every 7th record fails twice", None)
        } else {
            Outcome::Delivered
        }
    });
    let worker = worker(&recorder);
    let name = unique_name("sem-order");
    create(
        &worker,
        sink_config(&name, &topic, &[("batch.max.records", "8")]),
    )
    .await;
    // The second half arrives while the connector runs.
    for p in 0..PARTITIONS {
        producer
            .send_many(&topic, p, PER / 2..PER, |i| format!("{p}:{i}"))
            .await;
    }
    let ends = vec![i64::from(PER); PARTITIONS as usize];
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &ends).then_some(())
    })
    .await;
    Committed::of_connector(&name, &topic, PARTITIONS)
        .wait_for(
            "commits at the end of every partition",
            &[Some(i64::from(PER)); PARTITIONS as usize],
        )
        .await;
    worker.shutdown().await;

    let attempts = recorder.attempts_of(&name);
    // One partition per call.
    let mut partitions_of_call: BTreeMap<u64, BTreeSet<(String, i32)>> = BTreeMap::new();
    for a in &attempts {
        partitions_of_call
            .entry(a.call)
            .or_default()
            .insert((a.topic.clone(), a.partition));
    }
    assert!(
        partitions_of_call.values().all(|s| s.len() == 1),
        "a put call carries the records of one partition"
    );
    for p in 0..PARTITIONS {
        let of_p: Vec<&Attempt> = attempts.iter().filter(|a| a.partition == p).collect();
        check_partition_contract(p, &of_p, i64::from(PER));
        // Failing records were tried three times, the others once; values are the partition's own.
        let mut tries: BTreeMap<i64, usize> = BTreeMap::new();
        for a in &of_p {
            *tries.entry(a.offset).or_default() += 1;
            assert_eq!(
                a.value.as_deref(),
                Some(format!("{p}:{}", a.offset).as_bytes())
            );
        }
        for (o, n) in tries {
            assert_eq!(n, if o % 7 == 0 { 3 } else { 1 }, "p{p}@{o} attempts");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_that_keeps_failing_holds_back_only_its_partition_and_never_past_itself() {
    const PARTITIONS: i32 = 3;
    const PER: u32 = 20;
    const GATED: i64 = 5;
    let topic = topic("sem-gate", PARTITIONS).await;
    let producer = Producer::new();
    for p in 0..PARTITIONS {
        producer
            .send_many(&topic, p, 0..PER, |i| format!("{p}:{i}"))
            .await;
    }
    let gate_open = Arc::new(AtomicBool::new(false));
    let open = Arc::clone(&gate_open);
    let recorder = Recorder::with(move |r, _| {
        if r.partition == 0 && r.offset == GATED && !open.load(Ordering::SeqCst) {
            retriable("gate closed", None)
        } else {
            Outcome::Delivered
        }
    });
    let worker = worker(&recorder);
    let name = unique_name("sem-gate");
    create(
        &worker,
        sink_config(
            &name,
            &topic,
            &[
                ("batch.max.records", "4"),
                // Retry forever: only the gate decides.
                ("errors.retry.max.attempts", "0"),
                ("errors.retry.timeout", "0"),
                ("errors.retry.delay.initial", "5ms"),
                ("errors.retry.delay.max.ms", "20"),
            ],
        ),
    )
    .await;
    let committed = Committed::of_connector(&name, &topic, PARTITIONS);
    let gated_attempts = |r: &Recorder| {
        r.attempts_of(&name)
            .iter()
            .filter(|a| a.partition == 0 && a.offset == GATED)
            .count()
    };
    eventually("the gated record retried", DEADLINE, || {
        (gated_attempts(&recorder) >= 3).then_some(())
    })
    .await;
    // The other partitions are delivered and committed to their end while partition 0 is stuck.
    support::eventually_async(
        "partitions 1 and 2 committed to the end",
        DEADLINE,
        async || {
            let c = committed.get().await;
            (c[1] == Some(i64::from(PER)) && c[2] == Some(i64::from(PER))).then_some(())
        },
    )
    .await;
    // Partition 0 commits exactly up to the batch holding the gated record: everything before it is done,
    // nothing from the gated record on.
    let attempts = recorder.attempts_of(&name);
    let first_call = attempts
        .iter()
        .find(|a| a.partition == 0 && a.offset == GATED)
        .unwrap()
        .call;
    let batch: Vec<i64> = attempts
        .iter()
        .filter(|a| a.call == first_call)
        .map(|a| a.offset)
        .collect();
    let (batch_first, batch_last) = (batch[0], *batch.last().unwrap());
    let expected_p0 = (batch_first > 0).then_some(batch_first);
    support::eventually_async(
        "partition 0 committed up to the gated batch",
        DEADLINE,
        async || (committed.get().await[0] == expected_p0).then_some(()),
    )
    .await;
    let seen = gated_attempts(&recorder);
    eventually("more retries of the gated record", DEADLINE, || {
        (gated_attempts(&recorder) >= seen + 5).then_some(())
    })
    .await;
    let c = committed.get().await;
    assert_eq!(
        c[0], expected_p0,
        "partition 0's commit moved while offset {GATED} was not delivered"
    );
    assert!(c[0].is_none_or(|o| o <= GATED));

    // Open the gate; everything that reaches the sink from now on carries mark 1.
    recorder.mark(1);
    gate_open.store(true, Ordering::SeqCst);
    let ends = vec![i64::from(PER); PARTITIONS as usize];
    eventually("every record delivered", DEADLINE, || {
        recorder.all_delivered(&name, &ends).then_some(())
    })
    .await;
    committed
        .wait_for(
            "commits at the end of every partition",
            &[Some(i64::from(PER)); PARTITIONS as usize],
        )
        .await;
    worker.shutdown().await;

    let attempts = recorder.attempts_of(&name);
    let early: Vec<i64> = attempts
        .iter()
        .filter(|a| a.partition == 0 && a.offset > batch_last && a.mark == 0)
        .map(|a| a.offset)
        .collect();
    assert!(
        early.is_empty(),
        "records after the gated batch ({batch:?}) reached the sink while offset {GATED} kept failing: {early:?}"
    );
    let gated: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| a.partition == 0 && a.offset == GATED)
        .collect();
    assert!(gated.iter().rev().skip(1).all(|a| !a.delivered()));
    let last = gated.last().unwrap();
    assert!(last.delivered() && last.mark == 1);
    let of_p0: Vec<&Attempt> = attempts.iter().filter(|a| a.partition == 0).collect();
    check_partition_contract(0, &of_p0, i64::from(PER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_after_is_honoured_and_exhausted_records_go_to_the_dlq_with_their_attempts() {
    let topic = topic("sem-timing", 1).await;
    let dlq = topic_dlq().await;
    const RETRY_AFTER: Duration = Duration::from_millis(300);
    let recorder = Recorder::with(|r, seen| match (r.offset, seen) {
        (1, 0) => retriable("slow down", Some(RETRY_AFTER)),
        (3, _) => retriable("upstream 503", None),
        _ => Outcome::Delivered,
    });
    let worker = worker(&recorder);
    let name = unique_name("sem-timing");
    let producer = Producer::new();
    let headers: [(&str, Option<&[u8]>); 3] = [
        ("trace", Some(b"t-3")),
        ("bin", Some(&[0, 0xff, 1])),
        ("nil", None),
    ];
    for i in 0..5u8 {
        let key = [b'k', i, 0xfe];
        let value = [0xc3, i, 0, 0x80];
        let h: &[(&str, Option<&[u8]>)] = if i == 3 { &headers } else { &[] };
        producer.send(&topic, 0, Some(&key), Some(&value), h).await;
    }
    create(
        &worker,
        sink_config(
            &name,
            &topic,
            &[
                ("key.converter", "bytes"),
                ("value.converter", "bytes"),
                ("batch.max.records", "1"),
                ("errors.tolerance", "all"),
                ("errors.deadletterqueue.topic.name", dlq.as_str()),
                ("errors.retry.max.attempts", "4"),
                ("errors.retry.delay.initial", "5ms"),
                // Smaller than the retry_after the sink asks for: the remote's request still wins.
                ("errors.retry.delay.max.ms", "20"),
            ],
        ),
    )
    .await;
    Committed::of_connector(&name, &topic, 1)
        .wait_for("commits past the dead-lettered record", &[Some(5)])
        .await;
    let dead = read_topic(&dlq, 1, 1).await;
    worker.shutdown().await;

    let attempts = recorder.attempts_of(&name);
    let of = |o: i64| -> Vec<&Attempt> { attempts.iter().filter(|a| a.offset == o).collect() };
    // retry_after: the second attempt comes no sooner than asked.
    let slow = of(1);
    assert_eq!(slow.len(), 2, "{slow:?}");
    let gap = slow[1].at - slow[0].at;
    assert!(
        gap >= RETRY_AFTER,
        "retried after {gap:?}, the sink asked for {RETRY_AFTER:?}"
    );
    assert!(slow[1].delivered());
    // Attempts bounded: exactly errors.retry.max.attempts, then the DLQ.
    let exhausted = of(3);
    assert_eq!(
        exhausted.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        vec![0, 1, 2, 3],
        "{exhausted:?}"
    );
    assert!(exhausted.iter().all(|a| !a.delivered()));
    // The records around it are delivered, in order, the next one after the exhausted one gave up.
    let delivered: Vec<i64> = recorder.delivered(&name).iter().map(|a| a.offset).collect();
    assert_eq!(delivered, vec![0, 1, 2, 4]);
    assert!(of(4)[0].call > exhausted[3].call);

    let m = &dead[0];
    assert_eq!(m.key(), Some(&[b'k', 3, 0xfe][..]));
    assert_eq!(m.payload(), Some(&[0xc3, 3, 0, 0x80][..]));
    let all = headers_of(m);
    let original: Vec<(String, Option<Vec<u8>>)> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.map(<[u8]>::to_vec)))
        .collect();
    assert_eq!(
        all[..3],
        original[..],
        "the original headers first, byte for byte"
    );
    let h = header_map(m);
    assert_eq!(h["__ursa.errors.attempts"], "4");
    assert_eq!(
        h["__connect.errors.exception.class.name"],
        "ursa.sink.RetriesExhausted"
    );
    assert_eq!(h["__connect.errors.stage"], "TASK_PUT");
    assert_eq!(h["__connect.errors.class.name"], "ursa.sink.test-sink");
    assert_eq!(h["__connect.errors.topic"], topic);
    assert_eq!(h["__connect.errors.partition"], "0");
    assert_eq!(h["__connect.errors.offset"], "3");
    assert_eq!(h["__connect.errors.connector.name"], name);
    let message = &h["__connect.errors.exception.message"];
    assert!(
        message.contains("gave up after 4 attempts") && message.contains("upstream 503"),
        "{message}"
    );
    let first: u64 = h["__ursa.errors.first.failure.ms"].parse().unwrap();
    let last: u64 = h["__ursa.errors.last.failure.ms"].parse().unwrap();
    assert!(first <= last);
}

async fn topic_dlq() -> String {
    topic("sem-dlq", 1).await
}

/// The delays the pipeline sleeps come from the connector's parsed policy: Connect's `*.ms` key in plain
/// milliseconds caps every delay (exponential from `errors.retry.delay.initial`, full jitter down to zero), and
/// a remote's `retry_after` is a floor. (Upper bounds are checked here, on the policy, never on wall time.)
#[test]
fn the_configured_policy_bounds_every_delay() {
    let plugins: Vec<Arc<dyn SinkPlugin>> = vec![Arc::new(TestPlugin(Recorder::new()))];
    let c = ConnectorConfig::parse(
        &sink_config(
            "policy",
            "t",
            &[
                ("errors.retry.delay.initial", "5ms"),
                ("errors.retry.delay.max.ms", "20"),
                ("errors.retry.max.attempts", "4"),
            ],
        ),
        &plugins,
    )
    .unwrap();
    assert_eq!(c.retry.initial, Duration::from_millis(5));
    assert_eq!(c.retry.max_delay, Duration::from_millis(20));
    assert_eq!(c.retry.max_attempts, 4);
    for attempt in 1..=12u32 {
        let cap = Duration::from_millis(5 << (attempt - 1).min(10)).min(Duration::from_millis(20));
        for r in [0, 1, 7, 12_345_678, u64::MAX / 3, u64::MAX] {
            let d = c.retry.delay(attempt, None, r);
            assert!(d <= cap, "attempt {attempt}: {d:?} > {cap:?}");
            let floor = Duration::from_millis(300);
            assert!(c.retry.delay(attempt, Some(floor), r) >= floor);
        }
        assert_eq!(c.retry.delay(attempt, None, 0), Duration::ZERO);
    }
    assert!(c.retry.allows(3, Duration::ZERO) && !c.retry.allows(4, Duration::ZERO));
}
