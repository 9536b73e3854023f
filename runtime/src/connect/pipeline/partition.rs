//! One partition's processing: batches in offset order, converted, delivered with per-record outcomes;
//! retriable records retried with backoff (only that partition waits), permanent failures dead-lettered,
//! skipped or fatal per `errors.tolerance`, and the partition's commit point advanced only past done records.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use tokio::sync::mpsc;

use crate::connect::convert::ConvertError;
use crate::connect::dlq::Failure;
use crate::connect::record::RawRecord;
use crate::connect::retry::random;
use crate::connect::sink::{Outcome, SinkRecord};
use crate::connect::telemetry::Stage;
use crate::connect::tracecontext::record_span;

use super::context::{ConnectorCtx, Fatal};
use super::progress::{Progress, commit_point};

/// How long a DLQ write may take before it is retried.
const DLQ_TIMEOUT: Duration = Duration::from_secs(30);
/// DLQ writes tried before the connector fails (the record is never dropped silently).
const DLQ_ATTEMPTS: u32 = 5;

/// Processes the records of one partition until the channel closes or a fatal failure.
pub async fn run_partition(
    ctx: Arc<ConnectorCtx>,
    mut rx: mpsc::Receiver<RawRecord>,
    progress: Arc<Progress>,
) {
    let max = ctx.config.batch_max_records;
    while let Some(first) = rx.recv().await {
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let bytes: usize = batch.iter().map(RawRecord::size).sum();
        let offsets: Vec<i64> = batch.iter().map(|r| r.offset).collect();
        let (done, fatal) = process_batch(&ctx, &batch).await;
        if let Some(o) = commit_point(&offsets, &done) {
            progress.done_before(o);
        }
        ctx.release(batch.len(), bytes);
        if let Some(f) = fatal {
            let _ = ctx.fatal.try_send(f);
            // Nothing after a fatal failure is processed: the connector stops and restarts from the commit point.
            while let Ok(r) = rx.try_recv() {
                ctx.release(1, r.size());
            }
            return;
        }
    }
}

enum ConvertFailure {
    Permanent(Failure),
    Fatal(Fatal),
}

fn failure(
    stage: Stage,
    class_name: &str,
    exception_class: &str,
    message: String,
    attempts: u32,
    first: SystemTime,
) -> Failure {
    Failure {
        stage,
        class_name: class_name.to_owned(),
        exception_class: exception_class.to_owned(),
        stacktrace: format!("{exception_class}: {message}"),
        message,
        attempts,
        first_failure: first,
        last_failure: SystemTime::now(),
        schema_id: None,
        detail: None,
    }
}

/// Converts one record, retrying only while the registry is unavailable.
async fn convert(ctx: &ConnectorCtx, raw: &RawRecord) -> Result<SinkRecord, ConvertFailure> {
    let started = Instant::now();
    let first = SystemTime::now();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let key = ctx
            .key_converter
            .convert(&raw.topic, raw.key.as_deref())
            .await;
        let value = match &key {
            Ok(_) => Some(
                ctx.value_converter
                    .convert(&raw.topic, raw.value.as_deref())
                    .await,
            ),
            Err(_) => None,
        };
        let (stage, err): (Stage, ConvertError) = match (key, value) {
            (Ok(k), Some(Ok(mut v))) => {
                // The JSON moves into the record; the converted value keeps what typed decoding needs.
                let value_json = std::mem::take(&mut v.json);
                return Ok(SinkRecord {
                    topic: Arc::clone(&raw.topic),
                    partition: raw.partition,
                    offset: raw.offset,
                    timestamp: raw.timestamp,
                    headers: raw.headers.clone(),
                    key: raw.key.clone(),
                    value: raw.value.clone(),
                    key_json: k.json,
                    value_schema_id: v.schema_id,
                    value_json,
                    value_converted: Some(v),
                    attempt: 0,
                });
            }
            (Err(e), _) => (Stage::KeyConverter, e),
            (Ok(_), Some(Err(e))) => (Stage::ValueConverter, e),
            (Ok(_), None) => {
                return Err(ConvertFailure::Fatal(Fatal {
                    trace: "converter produced no value".into(),
                }));
            }
        };
        ctx.telemetry.failed(
            &ctx.config.name,
            &raw.topic,
            stage,
            err.is_record_fault(),
            &err.to_string(),
        );
        if err.is_record_fault() {
            return Err(ConvertFailure::Permanent(failure(
                stage,
                &format!(
                    "ursa.convert.{}",
                    if stage == Stage::KeyConverter {
                        ctx.config.key_converter
                    } else {
                        ctx.config.value_converter
                    }
                ),
                err.class_name(),
                err.to_string(),
                attempts,
                first,
            )));
        }
        // The registry is unreachable or refuses us: not the record's fault, so it is never dead-lettered for it.
        if !ctx.config.retry.allows(attempts, started.elapsed()) {
            return Err(ConvertFailure::Fatal(Fatal {
                trace: format!("{}: {err} (after {attempts} attempts)", stage.as_str()),
            }));
        }
        tokio::time::sleep(ctx.config.retry.delay(attempts, None, random())).await;
    }
}

/// Applies `errors.tolerance` to a permanently failed record: dead-letter, or log and skip, or fail.
async fn tolerate(ctx: &ConnectorCtx, raw: &RawRecord, failure: Failure) -> Result<(), Fatal> {
    let span = record_span(
        &ctx.config.name,
        &raw.topic,
        raw.partition,
        raw.offset,
        &raw.headers,
    );
    tracing::Instrument::instrument(tolerate_in_span(ctx, raw, failure), span).await
}

async fn tolerate_in_span(
    ctx: &ConnectorCtx,
    raw: &RawRecord,
    failure: Failure,
) -> Result<(), Fatal> {
    let where_ = format!("{}-{}@{}", raw.topic, raw.partition, raw.offset);
    if !ctx.config.tolerate_all {
        return Err(Fatal {
            trace: format!(
                "{} failed for record {where_} (errors.tolerance=none): {}\n{}",
                failure.stage.as_str(),
                failure.message,
                failure.stacktrace
            ),
        });
    }
    if let Some(dlq) = &ctx.dlq {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match dlq.send(raw, &failure, DLQ_TIMEOUT).await {
                Ok(()) => {
                    ctx.telemetry.dead_lettered(&ctx.config.name, &raw.topic);
                    if ctx.config.log_errors {
                        tracing::warn!(connector = %ctx.config.name, record = %where_, stage = failure.stage.as_str(), error = %failure.message, dlq = dlq.topic(), "record dead-lettered");
                    }
                    return Ok(());
                }
                Err(e) if attempt >= DLQ_ATTEMPTS => {
                    return Err(Fatal {
                        trace: format!("record {where_} could not be dead-lettered: {e}"),
                    });
                }
                Err(e) => {
                    tracing::warn!(connector = %ctx.config.name, record = %where_, error = %e, attempt, "DLQ write failed; retrying");
                    tokio::time::sleep(ctx.config.retry.delay(attempt, None, random())).await;
                }
            }
        }
    }
    ctx.telemetry.skipped(&ctx.config.name, &raw.topic);
    if ctx.config.log_errors {
        tracing::warn!(connector = %ctx.config.name, record = %where_, stage = failure.stage.as_str(), error = %failure.message, "record skipped (errors.tolerance=all, no DLQ)");
    }
    Ok(())
}

/// Converts and delivers a batch; returns which records are done and a fatal failure if one stopped it.
async fn process_batch(ctx: &ConnectorCtx, batch: &[RawRecord]) -> (Vec<bool>, Option<Fatal>) {
    let n = batch.len();
    let mut done = vec![false; n];
    let mut records: Vec<SinkRecord> = Vec::with_capacity(n);
    let mut index: Vec<usize> = Vec::with_capacity(n);
    for (i, raw) in batch.iter().enumerate() {
        match convert(ctx, raw).await {
            Ok(r) => {
                records.push(r);
                index.push(i);
            }
            Err(ConvertFailure::Permanent(f)) => match tolerate(ctx, raw, f).await {
                Ok(()) => done[i] = true,
                Err(fatal) => return (done, Some(fatal)),
            },
            Err(ConvertFailure::Fatal(fatal)) => return (done, Some(fatal)),
        }
    }
    let name = &ctx.config.name;
    let started = Instant::now();
    let first_failure = SystemTime::now();
    let mut attempts: u32 = 0;
    // Positions into `records` still to deliver.
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut reasons: HashMap<usize, String> = HashMap::new();
    while !pending.is_empty() {
        let retry_subset: Vec<SinkRecord>;
        let subset: &[SinkRecord] = if attempts == 0 {
            &records
        } else {
            retry_subset = pending
                .iter()
                .map(|&p| {
                    let mut r = records[p].clone();
                    r.attempt = attempts;
                    r
                })
                .collect();
            &retry_subset
        };
        let t0 = Instant::now();
        let outcomes = ctx.sink.put(subset).await;
        let latency = t0.elapsed();
        ctx.telemetry.batch(name, subset.len());
        if outcomes.len() != subset.len() {
            return (
                done,
                Some(Fatal {
                    trace: format!(
                        "the sink returned {} outcomes for {} records",
                        outcomes.len(),
                        subset.len()
                    ),
                }),
            );
        }
        let mut retry = Vec::new();
        let mut retry_after: Option<Duration> = None;
        let mut delivered = 0usize;
        let topic = &batch[index[pending[0]]].topic;
        for (k, outcome) in outcomes.into_iter().enumerate() {
            let p = pending[k];
            let i = index[p];
            match outcome {
                Outcome::Delivered => {
                    done[i] = true;
                    delivered += 1;
                    let raw = &batch[i];
                    record_span(name, &raw.topic, raw.partition, raw.offset, &raw.headers)
                        .in_scope(|| tracing::debug!(attempts = attempts + 1, "record delivered"));
                    if let Some(ts) = batch[i].timestamp {
                        let now = SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        ctx.telemetry.end_to_end(
                            name,
                            Duration::from_millis(now.saturating_sub(ts).max(0) as u64),
                        );
                    }
                }
                Outcome::Permanent { reason, detail } => {
                    ctx.telemetry
                        .failed(name, topic, Stage::TaskPut, true, &reason);
                    let mut f = failure(
                        Stage::TaskPut,
                        &format!("ursa.sink.{}", ctx.config.plugin.name()),
                        "ursa.sink.PermanentFailure",
                        reason,
                        attempts + 1,
                        first_failure,
                    );
                    f.detail = detail;
                    f.schema_id = records[p].value_schema_id;
                    match tolerate(ctx, &batch[i], f).await {
                        Ok(()) => done[i] = true,
                        Err(fatal) => return (done, Some(fatal)),
                    }
                }
                Outcome::Retriable {
                    reason,
                    retry_after: ra,
                } => {
                    ctx.telemetry
                        .failed(name, topic, Stage::TaskPut, false, &reason);
                    reasons.insert(p, reason);
                    retry_after = retry_after.max(ra);
                    retry.push(p);
                }
            }
        }
        if delivered > 0 {
            ctx.telemetry.delivered(name, topic, delivered, latency);
        }
        attempts += 1;
        if retry.is_empty() {
            break;
        }
        if !ctx.config.retry.allows(attempts, started.elapsed()) {
            for p in retry {
                let i = index[p];
                let reason = reasons.remove(&p).unwrap_or_default();
                let mut f = failure(
                    Stage::TaskPut,
                    &format!("ursa.sink.{}", ctx.config.plugin.name()),
                    "ursa.sink.RetriesExhausted",
                    format!(
                        "gave up after {attempts} attempts over {:?}: {reason}",
                        started.elapsed()
                    ),
                    attempts,
                    first_failure,
                );
                f.schema_id = records[p].value_schema_id;
                match tolerate(ctx, &batch[i], f).await {
                    Ok(()) => done[i] = true,
                    Err(fatal) => return (done, Some(fatal)),
                }
            }
            break;
        }
        ctx.telemetry.retried(name, topic, retry.len());
        tokio::time::sleep(ctx.config.retry.delay(attempts, retry_after, random())).await;
        pending = retry;
    }
    (done, None)
}
