//! The partition pipeline under tokio's paused clock: retry delays follow exponential backoff with full
//! jitter (exactly the cap when the jitter is fixed at its top) and honour retry-after exactly; retriable
//! sink failures — per record or of the whole call — are retried until they pass unless the operator bounded
//! retries explicitly; the commit point moves only past records that are done; a panicking put fails the
//! connector; every record's share of the in-flight bounds is released whatever path drops it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connect::config::{ConnectorConfig, Key, Parsed};
use crate::connect::connector::dlq_producer;
use crate::connect::convert::{Converter, ConverterKind};
use crate::connect::dlq::DeadLetterQueue;
use crate::connect::record::RawRecord;
use crate::connect::sink::{Outcome, Sink, SinkContext, SinkError, SinkPlugin, SinkRecord};
use crate::connect::telemetry::Telemetry;
use ursa_connect::BoxFuture;

use super::context::{Bounds, ConnectorCtx, Fatal};
use super::keys::PipelineConfig;
use super::partition::run_partition;
use super::progress::Progress;

/// What a scripted sink answers for one call.
#[derive(Clone)]
enum Answer {
    /// Every record retriable (with this retry-after).
    Retriable(Option<Duration>),
    /// A sink-level error for the call.
    Down,
    /// Delivered.
    Ok,
    /// Panics.
    Panic,
    /// Permanently refused.
    Refused,
}

type Script = Box<dyn Fn(u32, &SinkRecord) -> Answer + Send + Sync>;

/// Answers per call with `script(call number, attempt)`, recording when each record was attempted.
struct Scripted {
    script: Script,
    calls: Mutex<u32>,
    attempts: Mutex<Vec<(i64, u32, Instant)>>,
}

impl Scripted {
    fn new(script: impl Fn(u32, &SinkRecord) -> Answer + Send + Sync + 'static) -> Arc<Scripted> {
        Arc::new(Scripted {
            script: Box::new(script),
            calls: Mutex::new(0),
            attempts: Mutex::new(Vec::new()),
        })
    }

    fn log(&self) -> Vec<(i64, u32, Instant)> {
        self.attempts.lock().unwrap().clone()
    }
}

impl Sink for Scripted {
    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            let call = {
                let mut c = self.calls.lock().unwrap();
                *c += 1;
                *c
            };
            let now = Instant::now();
            let mut log = self.attempts.lock().unwrap();
            let mut out = Vec::new();
            for r in records {
                log.push((r.offset, r.attempt, now));
                match (self.script)(call, r) {
                    Answer::Ok => out.push(Outcome::Delivered),
                    Answer::Retriable(after) => out.push(Outcome::Retriable {
                        reason: "busy".into(),
                        retry_after: after,
                    }),
                    Answer::Down => return Err(SinkError::retriable("destination down")),
                    Answer::Panic => panic!("the sink's bug"),
                    Answer::Refused => out.push(Outcome::permanent("refused")),
                }
            }
            Ok(out)
        })
    }
}

struct Plugin;

impl SinkPlugin for Plugin {
    fn name(&self) -> &'static str {
        "scripted"
    }
    fn description(&self) -> &'static str {
        "test"
    }
    fn keys(&self) -> Vec<Key> {
        Vec::new()
    }
    fn build(&self, _config: &Parsed, _context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Err(SinkError::permanent("built by the test"))
    }
}

fn config(extra: &[(&str, &str)]) -> ConnectorConfig {
    let mut raw: BTreeMap<String, String> = [
        ("name", "t"),
        ("connector.class", "scripted"),
        ("topics", "x"),
        ("value.converter", "string"),
        ("errors.retry.delay.initial", "100ms"),
        ("errors.retry.delay.max.ms", "1000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    raw.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    ConnectorConfig::parse(&raw, &[Arc::new(Plugin)]).unwrap()
}

fn record(offset: i64) -> RawRecord {
    RawRecord {
        topic: Arc::from("x"),
        partition: 0,
        offset,
        timestamp: None,
        timestamp_type: Default::default(),
        headers: Arc::from(Vec::new()),
        key: None,
        value: Some(format!("v{offset}").into_bytes().into()),
    }
}

struct Run {
    progress: Arc<Progress>,
    fatal: Option<Fatal>,
    bounds: Arc<Bounds>,
}

/// Runs one partition task over `records` records with the jitter fixed at the top of its range (every delay
/// is its cap).
async fn run(config: ConnectorConfig, sink: Arc<Scripted>, records: usize) -> Run {
    let (ctx, mut fatal_rx, bounds) = context(config, sink, None);
    let progress = run_one(&ctx, 0, records).await;
    Run {
        progress,
        fatal: fatal_rx.try_recv().ok(),
        bounds,
    }
}

/// Runs partition `partition`'s task over `records` records.
async fn run_one(ctx: &Arc<ConnectorCtx>, partition: i32, records: usize) -> Arc<Progress> {
    let (tx, rx) = mpsc::channel(16);
    let progress = Arc::new(Progress::default());
    for i in 0..records {
        let mut r = record(i as i64);
        r.partition = partition;
        tx.send(ctx.admit(r)).await.unwrap();
    }
    drop(tx);
    let (_stop, stop_rx) = watch::channel(false);
    run_partition(Arc::clone(ctx), rx, Arc::clone(&progress), stop_rx).await;
    progress
}

fn context(
    config: ConnectorConfig,
    sink: Arc<Scripted>,
    dlq: Option<DeadLetterQueue>,
) -> (Arc<ConnectorCtx>, mpsc::Receiver<Fatal>, Arc<Bounds>) {
    let (fatal, fatal_rx) = mpsc::channel(1);
    let mut pipeline = PipelineConfig::of(&config);
    pipeline.jitter = || u64::MAX;
    let bounds = Bounds::new(1000, 1 << 30);
    let ctx = Arc::new(ConnectorCtx {
        key_converter: Converter::new(ConverterKind::Bytes, None)
            .unwrap()
            .for_keys(),
        value_converter: Converter::new(ConverterKind::String, None).unwrap(),
        pipeline,
        config,
        sink,
        dlq,
        telemetry: Telemetry::default(),
        bounds: Arc::clone(&bounds),
        fatal,
        flush_lock: tokio::sync::Mutex::new(()),
        task: 0,
        active_topics: Arc::new(crate::connect::active_topics::ActiveTopics::new(true)),
    });
    (ctx, fatal_rx, bounds)
}

#[tokio::test(start_paused = true)]
async fn backoff_is_exponential_with_full_jitter_and_capped() {
    let sink = Scripted::new(|_, r| {
        if r.attempt < 6 {
            Answer::Retriable(None)
        } else {
            Answer::Ok
        }
    });
    let r = run(config(&[]), Arc::clone(&sink), 1).await;
    let log = sink.log();
    assert_eq!(
        log.iter().map(|(_, a, _)| *a).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5, 6]
    );
    // With the jitter at the top of its range each wait is exactly its cap: doubling from 100 ms, capped at 1 s.
    let waits: Vec<u128> = log
        .windows(2)
        .map(|w| (w[1].2 - w[0].2).as_millis())
        .collect();
    assert_eq!(waits, vec![100, 200, 400, 800, 1000, 1000]);
    assert_eq!(r.progress.next(), 1, "delivered on the 7th attempt");
    assert_eq!(r.bounds.in_flight(), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let sink = Scripted::new(|_, r| {
        if r.attempt < 2 {
            Answer::Retriable(Some(Duration::from_secs(7)))
        } else {
            Answer::Ok
        }
    });
    run(config(&[]), Arc::clone(&sink), 2).await;
    let log = sink.log();
    let waits: Vec<Duration> = log
        .windows(2)
        .filter(|w| w[1].1 > w[0].1)
        .map(|w| w[1].2 - w[0].2)
        .collect();
    assert_eq!(waits, vec![Duration::from_secs(7); 2], "{log:?}");
    assert_eq!(log.iter().filter(|(_, a, _)| *a == 2).count(), 2);
}

/// Defect 1: a notification provider down for longer than `errors.retry.timeout` (5 min) and
/// `errors.retry.max.attempts` (10) by default must not dead-letter or skip its records: sink-stage
/// retriable failures retry with capped backoff until they pass.
#[tokio::test(start_paused = true)]
async fn retriable_sink_failures_retry_until_they_pass_unless_bounded_explicitly() {
    let start = Instant::now();
    let outage = Duration::from_secs(7 * 60);
    // Per record, then for the whole call (the destination down), each past the defaults.
    let sink = Scripted::new(move |_, _| {
        if Instant::now() - start < outage {
            Answer::Retriable(None)
        } else {
            Answer::Ok
        }
    });
    let r = run(config(&[("errors.tolerance", "all")]), Arc::clone(&sink), 3).await;
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    assert_eq!(r.progress.next(), 3);
    let log = sink.log();
    for offset in 0..3 {
        assert!(
            log.iter()
                .any(|(o, _, t)| *o == offset && *t - start >= outage),
            "record {offset} delivered after the outage, not skipped during it"
        );
    }
    assert!(
        log.len() > 3 * 10,
        "retried past 10 attempts: {}",
        log.len()
    );
    assert!(
        log.windows(2)
            .all(|w| w[1].2 - w[0].2 <= Duration::from_secs(1)),
        "every wait within the cap"
    );
    assert!(
        log.iter()
            .filter(|(_, a, _)| *a > 0)
            .all(|(_, _, t)| *t - start <= outage + Duration::from_secs(1))
    );

    let sink = Scripted::new(move |_, _| {
        if Instant::now() - start < outage * 2 {
            Answer::Down
        } else {
            Answer::Ok
        }
    });
    let r = run(config(&[]), Arc::clone(&sink), 2).await;
    assert!(r.fatal.is_none(), "{:?}", r.fatal);
    assert_eq!(r.progress.next(), 2);

    // An explicit bound is honoured: the call keeps failing, the connector fails (never dropping records).
    let sink = Scripted::new(|_, _| Answer::Down);
    let before = Instant::now();
    let r = run(
        config(&[("errors.retry.timeout", "30s"), ("errors.tolerance", "all")]),
        sink,
        2,
    )
    .await;
    assert!(Instant::now() - before >= Duration::from_secs(30));
    assert!(r.fatal.unwrap().trace.contains("destination down"));
    assert_eq!(r.progress.next(), -1, "nothing done");
}

#[tokio::test(start_paused = true)]
async fn exhausted_records_are_skipped_under_tolerance_all_and_commits_move_on() {
    let sink = Scripted::new(|_, _| Answer::Retriable(None));
    let cfg = config(&[
        ("errors.retry.max.attempts", "3"),
        ("errors.tolerance", "all"),
    ]);
    let r = run(cfg, Arc::clone(&sink), 3).await;
    assert_eq!(sink.log().len(), 9, "3 records x 3 attempts");
    assert_eq!(r.progress.next(), 3);
}

#[tokio::test(start_paused = true)]
async fn exhausted_records_are_fatal_under_tolerance_none_and_commits_stop_before_them() {
    let sink = Scripted::new(|_, _| Answer::Retriable(None));
    let cfg = config(&[
        ("errors.retry.timeout", "2s"),
        ("errors.retry.max.attempts", "0"),
    ]);
    let start = Instant::now();
    let r = run(cfg, Arc::clone(&sink), 2).await;
    assert!(
        Instant::now() - start >= Duration::from_secs(2),
        "retried for the whole budget"
    );
    assert!(r.fatal.is_some());
    assert_eq!(
        r.progress.next(),
        -1,
        "nothing committed past the failed records"
    );
}

/// Defect 3: a sink that panics in `put` fails the connector (which restarts by itself) instead of leaving
/// its partition stuck; its records are released.
#[tokio::test(start_paused = true)]
async fn a_panicking_put_fails_the_connector_and_releases_its_records() {
    let sink = Scripted::new(|call, _| if call == 1 { Answer::Panic } else { Answer::Ok });
    let r = run(config(&[]), sink, 4).await;
    let trace = r.fatal.expect("a fatal failure").trace;
    assert!(trace.contains("panicked: the sink's bug"), "{trace}");
    assert_eq!(r.progress.next(), -1);
    assert_eq!(r.bounds.in_flight(), (0, 0));
}

/// Defect 12: a DLQ that does not answer (here a broker address that accepts connections and never replies)
/// holds back only the record's partition, for `errors.deadletterqueue.produce.timeout` per attempt, and after
/// `errors.deadletterqueue.produce.attempts` fails the connector — instead of waiting for
/// `delivery.timeout.ms` (5 min) five times. Real time: librdkafka does not follow tokio's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_that_does_not_answer_holds_back_only_its_partition_for_a_bounded_time() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    std::thread::spawn(move || {
        // Accept and hold every connection, never answering.
        let mut held = Vec::new();
        for c in silent.incoming() {
            held.push(c);
        }
    });
    let cfg = config(&[
        ("errors.tolerance", "all"),
        ("errors.deadletterqueue.topic.name", "dlq"),
        ("errors.deadletterqueue.produce.timeout", "1s"),
        ("errors.deadletterqueue.produce.attempts", "3"),
        ("errors.retry.delay.initial", "10ms"),
    ]);
    let mut kafka = rdkafka::ClientConfig::new();
    kafka.set("bootstrap.servers", address.to_string());
    let producer = dlq_producer(&kafka, PipelineConfig::of(&cfg).dlq_timeout).unwrap();
    let dlq = DeadLetterQueue::new(producer, "dlq".into(), "t".into(), true);
    // Record 1 of partition 0 is refused (to be dead-lettered); partition 1 has no such record.
    let sink = Scripted::new(|_, r| {
        if r.partition == 0 && r.offset == 1 {
            Answer::Refused
        } else {
            Answer::Ok
        }
    });
    let (ctx, mut fatal_rx, _) = context(cfg, sink, Some(dlq));
    let started = std::time::Instant::now();
    let (stuck, other) = tokio::join!(run_one(&ctx, 0, 3), async {
        let p = run_one(&ctx, 1, 3).await;
        (p, started.elapsed())
    });
    let took = started.elapsed();
    assert!(
        other.1 < Duration::from_millis(500),
        "partition 1 waited: {:?}",
        other.1
    );
    assert_eq!(other.0.next(), 3);
    let trace = fatal_rx.try_recv().expect("a fatal failure").trace;
    assert!(
        trace.contains("could not be dead-lettered after 3 attempts"),
        "{trace}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "3 attempts of 1 s: {took:?}"
    );
    assert_eq!(
        stuck.next(),
        1,
        "never past the record that could not be dead-lettered"
    );
}

/// Defect 6: a commit is marked done only when the broker said so; a failed one is planned again by the next
/// commit, which also never goes backwards nor past what is done.
#[test]
fn only_a_successful_commit_counts_and_a_failed_one_is_retried() {
    use super::consumer::{record_commit, to_commit};
    use crate::connect::sink::{Offsets, TopicPartition};
    let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
    let (pa, pb) = (Arc::new(Progress::default()), Arc::new(Progress::default()));
    pa.done_before(10);
    pb.done_before(4);
    let entries = vec![(a.clone(), Arc::clone(&pa)), (b.clone(), Arc::clone(&pb))];
    let done: Offsets = [(a.clone(), 10), (b.clone(), 4)].into_iter().collect();
    // The sink says a is durable to 8 and b further than what is done: b is capped at 4.
    let durable: Offsets = [(a.clone(), 8), (b.clone(), 9)].into_iter().collect();
    let plan = to_commit(&entries, &done, &durable);
    let offsets: Vec<(i32, i64)> = plan.iter().map(|(tp, o, _)| (tp.partition, *o)).collect();
    assert_eq!(offsets, vec![(0, 8), (1, 4)]);
    assert!(!record_commit(&plan, Err("coordinator moved".into())));
    assert_eq!(
        (pa.committed_offset(), pb.committed_offset()),
        (-1, -1),
        "a failed commit marks nothing"
    );
    let again = to_commit(&entries, &done, &durable);
    assert_eq!(again.len(), 2, "so the next commit retries it");
    assert!(record_commit(&again, Ok(())));
    assert_eq!((pa.committed_offset(), pb.committed_offset()), (8, 4));
    assert!(
        to_commit(&entries, &done, &durable).is_empty(),
        "nothing new to commit"
    );
    // Never backwards: a later flush saying less is not committed.
    let less: Offsets = [(a.clone(), 5)].into_iter().collect();
    assert!(to_commit(&entries, &done, &less).is_empty());
}

/// The consumer's client config: the runtime's settings over the worker's, the connector's overrides over
/// those (within what `consumer.override.*` may change), and librdkafka's 1 s fetch backoff on a full
/// prefetch queue cut to 10 ms (it idled a fast sink 0.8 s of every second).
#[test]
fn consumer_config_layers_worker_runtime_and_overrides() {
    let mut worker = rdkafka::ClientConfig::new();
    worker
        .set("bootstrap.servers", "127.0.0.1:9")
        .set("enable.auto.commit", "true")
        .set("client.id", "from-the-worker");
    let c = super::consumer::consumer_config(&config(&[]), &worker);
    assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
    assert_eq!(c.get("enable.auto.commit"), Some("false"));
    assert_eq!(c.get("enable.auto.offset.store"), Some("false"));
    assert_eq!(c.get("group.id"), Some("connect-t"));
    assert_eq!(c.get("client.id"), Some("from-the-worker"));
    assert_eq!(c.get("session.timeout.ms"), Some("6000"));
    assert_eq!(
        c.get("partition.assignment.strategy"),
        Some("cooperative-sticky")
    );
    let c = super::consumer::consumer_config(
        &config(&[
            ("consumer.override.fetch.queue.backoff.ms", "250"),
            ("consumer.override.group.protocol", "consumer"),
            ("consumer.override.group.instance.id", ""),
        ]),
        &worker,
    );
    assert_eq!(c.get("fetch.queue.backoff.ms"), Some("250"));
    // KIP-848: the broker assigns, so no client-side strategy and no classic session timeout.
    assert_eq!(c.get("partition.assignment.strategy"), None);
    assert_eq!(c.get("session.timeout.ms"), None);
    assert_eq!(c.get("group.instance.id"), None);
}
