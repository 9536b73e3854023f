//! The partition pipeline under tokio's paused clock: retry delays follow exponential backoff with full
//! jitter and honour retry-after exactly, attempts are bounded, and the commit point moves only past records
//! that are done.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::connect::api::BoxFuture;
use crate::connect::config::{ConnectorConfig, Key, Parsed};
use crate::connect::convert::{Converter, ConverterKind};
use crate::connect::record::RawRecord;
use crate::connect::sink::{Outcome, Sink, SinkError, SinkPlugin, SinkRecord};
use crate::connect::telemetry::Telemetry;

use super::context::ConnectorCtx;
use super::partition::run_partition;
use super::progress::Progress;

/// Fails every record retriably `fail` times (with `retry_after`), recording when each attempt came.
struct Flaky {
    fail: u32,
    retry_after: Option<Duration>,
    attempts: Mutex<Vec<(i64, u32, Instant)>>,
}

impl Sink for Flaky {
    fn put<'a>(&'a self, records: &'a [SinkRecord]) -> BoxFuture<'a, Vec<Outcome>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut log = self.attempts.lock().unwrap();
            records
                .iter()
                .map(|r| {
                    log.push((r.offset, r.attempt, now));
                    if r.attempt < self.fail {
                        Outcome::Retriable {
                            reason: "busy".into(),
                            retry_after: self.retry_after,
                        }
                    } else {
                        Outcome::Delivered
                    }
                })
                .collect()
        })
    }
}

struct Plugin;

impl SinkPlugin for Plugin {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn description(&self) -> &'static str {
        "test"
    }
    fn keys(&self) -> Vec<Key> {
        Vec::new()
    }
    fn build(&self, _config: &Parsed) -> Result<Arc<dyn Sink>, SinkError> {
        Err(SinkError::permanent("built by the test"))
    }
}

fn config(extra: &[(&str, &str)]) -> ConnectorConfig {
    let mut raw: BTreeMap<String, String> = [
        ("name", "t"),
        ("connector.class", "flaky"),
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
        headers: Vec::new(),
        key: None,
        value: Some(format!("v{offset}").into_bytes()),
    }
}

async fn run(config: ConnectorConfig, sink: Arc<Flaky>, records: usize) -> Arc<Progress> {
    let (fatal, _fatal_rx) = mpsc::channel(1);
    let ctx = Arc::new(ConnectorCtx {
        key_converter: Converter::new(ConverterKind::Bytes, None)
            .unwrap()
            .for_keys(),
        value_converter: Converter::new(ConverterKind::String, None).unwrap(),
        config,
        sink,
        dlq: None,
        telemetry: Telemetry::default(),
        in_flight_records: Default::default(),
        in_flight_bytes: Default::default(),
        fatal,
        released: Default::default(),
    });
    let (tx, rx) = mpsc::channel(16);
    let progress = Arc::new(Progress::default());
    for i in 0..records {
        ctx.admit(1, record(i as i64).size());
        tx.send(record(i as i64)).await.unwrap();
    }
    drop(tx);
    run_partition(ctx, rx, Arc::clone(&progress)).await;
    progress
}

#[tokio::test(start_paused = true)]
async fn backoff_is_exponential_with_full_jitter_and_bounded() {
    let sink = Arc::new(Flaky {
        fail: 5,
        retry_after: None,
        attempts: Mutex::new(Vec::new()),
    });
    let progress = run(config(&[]), Arc::clone(&sink), 1).await;
    let log = sink.attempts.lock().unwrap().clone();
    assert_eq!(
        log.iter().map(|(_, a, _)| *a).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4, 5]
    );
    for w in log.windows(2) {
        let retry = w[1].1;
        let cap = Duration::from_millis(100 * (1 << (retry - 1))).min(Duration::from_millis(1000));
        let waited = w[1].2 - w[0].2;
        assert!(
            waited <= cap,
            "retry {retry} waited {waited:?}, cap {cap:?}"
        );
    }
    assert_eq!(
        progress.next(),
        1,
        "delivered on the 6th attempt: the commit point moves past it"
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_honoured() {
    let sink = Arc::new(Flaky {
        fail: 2,
        retry_after: Some(Duration::from_secs(7)),
        attempts: Mutex::new(Vec::new()),
    });
    run(config(&[]), Arc::clone(&sink), 2).await;
    let log = sink.attempts.lock().unwrap().clone();
    let first = log[0].2;
    let retries: Vec<Duration> = log
        .iter()
        .filter(|(_, a, _)| *a > 0)
        .map(|(_, _, t)| *t - first)
        .collect();
    assert!(
        retries.iter().all(|d| *d >= Duration::from_secs(7)),
        "{retries:?}"
    );
    assert!(
        log.iter().filter(|(_, a, _)| *a == 2).count() == 2,
        "both records delivered on the third attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn exhausted_records_are_skipped_under_tolerance_all_and_commits_move_on() {
    let sink = Arc::new(Flaky {
        fail: 100,
        retry_after: None,
        attempts: Mutex::new(Vec::new()),
    });
    let cfg = config(&[
        ("errors.retry.max.attempts", "3"),
        ("errors.tolerance", "all"),
    ]);
    let progress = run(cfg, Arc::clone(&sink), 3).await;
    assert_eq!(
        sink.attempts.lock().unwrap().len(),
        9,
        "3 records x 3 attempts"
    );
    assert_eq!(progress.next(), 3);
}

#[tokio::test(start_paused = true)]
async fn exhausted_records_are_fatal_under_tolerance_none_and_commits_stop_before_them() {
    let sink = Arc::new(Flaky {
        fail: 100,
        retry_after: None,
        attempts: Mutex::new(Vec::new()),
    });
    let cfg = config(&[
        ("errors.retry.timeout", "2s"),
        ("errors.retry.max.attempts", "0"),
    ]);
    let start = Instant::now();
    let progress = run(cfg, Arc::clone(&sink), 2).await;
    assert!(
        Instant::now() - start >= Duration::from_secs(2),
        "retried for the whole budget"
    );
    assert_eq!(
        progress.next(),
        -1,
        "nothing committed past the failed records"
    );
}
