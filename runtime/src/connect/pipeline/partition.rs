//! One partition's processing: batches in offset order, converted, delivered with per-record outcomes;
//! retriable failures (of records or of the whole call) retried with capped backoff (only that partition
//! waits), permanent failures dead-lettered, skipped or fatal per `errors.tolerance`, and the partition's
//! commit point advanced only past done records. On revocation ([`run_partition`]'s `stop`), the batch in
//! flight finishes (its retries stop) and the queued records are released.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::connect::convert::ConvertError;
use crate::connect::distributed::now_ms;
use crate::connect::dlq::Failure;
use crate::connect::record::RawRecord;
use crate::connect::sink::{Outcome, Payload, SinkRecord};
use crate::connect::telemetry::Stage;
use crate::connect::tracecontext::record_span;

use super::context::{ConnectorCtx, Fatal, Fetched};
use super::guard::{CallError, call};
use super::progress::{Progress, commit_point};

/// Why a batch stopped before every record was done.
enum Halt {
    /// The connector must stop.
    Fatal(Fatal),
    /// The partition was revoked (or the connector stops): leave the rest to the next owner.
    Stopped,
}

fn fatal(trace: impl Into<String>) -> Halt {
    Halt::Fatal(Fatal {
        trace: trace.into(),
    })
}

/// Waits until `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Sleeps `delay`, or returns `false` early when the partition stops.
async fn pause(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = stopped(stop) => false,
    }
}

/// Processes the records of one partition until the channel closes, `stop` turns true, or a fatal failure.
pub async fn run_partition(
    ctx: Arc<ConnectorCtx>,
    mut rx: mpsc::Receiver<Fetched>,
    progress: Arc<Progress>,
    mut stop: watch::Receiver<bool>,
) {
    let max = ctx.config.batch_max_records;
    // The active-topics epoch at which this partition last recorded its topic.
    let mut recorded: Option<u64> = None;
    loop {
        let first = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            r = rx.recv() => match r {
                Some(f) => f,
                None => break,
            },
        };
        let mut batch = Vec::with_capacity(max.min(64));
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let epoch = ctx.active_topics.epoch();
        if recorded != Some(epoch) {
            ctx.active_topics
                .record(&ctx.config.name, &batch[0].raw.topic, ctx.task, now_ms());
            recorded = Some(epoch);
        }
        let offsets: Vec<i64> = batch.iter().map(|f| f.raw.offset).collect();
        let (done, halt) = process_batch(&ctx, &mut batch, &mut stop).await;
        if let Some(o) = commit_point(&offsets, &done) {
            progress.done_before(o);
        }
        // Dropping the batch releases its share of the bounds (as dropping `rx` releases the queue).
        drop(batch);
        match halt {
            Some(Halt::Fatal(f)) => {
                // Nothing after a fatal failure is processed: the connector stops and restarts from the
                // commit point.
                let _ = ctx.fatal.try_send(f);
                return;
            }
            Some(Halt::Stopped) => return,
            None => {}
        }
    }
}

enum ConvertFailure {
    Permanent(Failure),
    Halt(Halt),
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

/// Converts one record (sharing its bytes), retrying only while the registry is unavailable.
/// The record converted without waiting, when both its key and its value convert at once; `None` when
/// either needs [`convert`] (a writer schema to fetch, or a failure, which `convert` meets again and
/// handles).
fn convert_now(ctx: &ConnectorCtx, raw: &RawRecord) -> Option<SinkRecord> {
    let conversion = ctx.sink.conversion();
    let key = ctx
        .key_converter
        .payload_now(&raw.topic, raw.key.clone(), conversion)
        .ok()?
        .ok()?;
    let value = ctx
        .value_converter
        .payload_now(&raw.topic, raw.value.clone(), conversion)
        .ok()?
        .ok()?;
    Some(sink_record(raw, key, value))
}

/// The sink's record of `raw` with its converted key and value (first attempt).
fn sink_record(raw: &RawRecord, key: Payload, value: Payload) -> SinkRecord {
    SinkRecord {
        topic: Arc::clone(&raw.topic),
        partition: raw.partition,
        offset: raw.offset,
        timestamp: raw.timestamp,
        timestamp_type: raw.timestamp_type,
        headers: Arc::clone(&raw.headers),
        key,
        value,
        attempt: 0,
    }
}

async fn convert(
    ctx: &ConnectorCtx,
    raw: &RawRecord,
    stop: &mut watch::Receiver<bool>,
) -> Result<SinkRecord, ConvertFailure> {
    // Read from the clock only once something fails (the common path converts without it).
    let mut failed_since: Option<(Instant, SystemTime)> = None;
    let conversion = ctx.sink.conversion();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let key = ctx
            .key_converter
            .payload(&raw.topic, raw.key.clone(), conversion)
            .await;
        let value = match &key {
            Ok(_) => Some(
                ctx.value_converter
                    .payload(&raw.topic, raw.value.clone(), conversion)
                    .await,
            ),
            Err(_) => None,
        };
        let (stage, err): (Stage, ConvertError) = match (key, value) {
            (Ok(key), Some(Ok(value))) => {
                return Ok(sink_record(raw, key, value));
            }
            (Err(e), _) => (Stage::KeyConverter, e),
            (Ok(_), Some(Err(e))) => (Stage::ValueConverter, e),
            (Ok(_), None) => {
                return Err(ConvertFailure::Halt(fatal("converter produced no value")));
            }
        };
        let (started, first) =
            *failed_since.get_or_insert_with(|| (Instant::now(), SystemTime::now()));
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
            return Err(ConvertFailure::Halt(fatal(format!(
                "{}: {err} (after {attempts} attempts)",
                stage.as_str()
            ))));
        }
        if !pause(
            ctx.config
                .retry
                .delay(attempts, None, (ctx.pipeline.jitter)()),
            stop,
        )
        .await
        {
            return Err(ConvertFailure::Halt(Halt::Stopped));
        }
    }
}

/// Applies `errors.tolerance` to a permanently failed record: dead-letter, or log and skip, or fail.
async fn tolerate(
    ctx: &ConnectorCtx,
    raw: &RawRecord,
    failure: Failure,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Halt> {
    let span = record_span(
        &ctx.config.name,
        &raw.topic,
        raw.partition,
        raw.offset,
        &raw.headers,
    );
    tracing::Instrument::instrument(tolerate_in_span(ctx, raw, failure, stop), span).await
}

async fn tolerate_in_span(
    ctx: &ConnectorCtx,
    raw: &RawRecord,
    failure: Failure,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), Halt> {
    let where_ = format!("{}-{}@{}", raw.topic, raw.partition, raw.offset);
    if !ctx.config.tolerate_all {
        return Err(fatal(format!(
            "{} failed for record {where_} (errors.tolerance=none): {}\n{}",
            failure.stage.as_str(),
            failure.message,
            failure.stacktrace
        )));
    }
    if let Some(dlq) = &ctx.dlq {
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Bounded per attempt: only this partition waits for the DLQ.
            match dlq.send(raw, &failure, ctx.pipeline.dlq_timeout).await {
                Ok(()) => {
                    ctx.telemetry.dead_lettered(&ctx.config.name, &raw.topic);
                    if ctx.config.log_errors {
                        tracing::warn!(connector = %ctx.config.name, record = %where_, stage = failure.stage.as_str(), error = %failure.message, dlq = dlq.topic(), "record dead-lettered");
                    }
                    return Ok(());
                }
                Err(e) if attempt >= ctx.pipeline.dlq_attempts => {
                    return Err(fatal(format!(
                        "record {where_} could not be dead-lettered after {attempt} attempts: {e}"
                    )));
                }
                Err(e) => {
                    tracing::warn!(connector = %ctx.config.name, record = %where_, error = %e, attempt, "DLQ write failed; retrying");
                    if !pause(
                        ctx.config
                            .retry
                            .delay(attempt, None, (ctx.pipeline.jitter)()),
                        stop,
                    )
                    .await
                    {
                        return Err(Halt::Stopped);
                    }
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

/// Converts and delivers a batch; returns which records are done and why it stopped early, if it did.
async fn process_batch(
    ctx: &ConnectorCtx,
    batch: &mut [Fetched],
    stop: &mut watch::Receiver<bool>,
) -> (Vec<bool>, Option<Halt>) {
    let n = batch.len();
    let mut done = vec![false; n];
    let mut records: Vec<SinkRecord> = Vec::with_capacity(n);
    let mut index: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        // Most records convert at once; the rest (a writer schema to fetch, a failure to retry or tolerate)
        // take the awaiting path, boxed so that its future is not built and moved for every record.
        let converted = match convert_now(ctx, &batch[i].raw) {
            Some(r) => Ok(r),
            None => Box::pin(convert(ctx, &batch[i].raw, stop)).await,
        };
        match converted {
            Ok(r) => {
                // What the JSON forms hold counts against the bounds too.
                let json = r.held_bytes().saturating_sub(batch[i].raw.size());
                batch[i].held.grow(json);
                records.push(r);
                index.push(i);
            }
            Err(ConvertFailure::Permanent(f)) => {
                match tolerate(ctx, &batch[i].raw, f, stop).await {
                    Ok(()) => done[i] = true,
                    Err(halt) => return (done, Some(halt)),
                }
            }
            Err(ConvertFailure::Halt(halt)) => return (done, Some(halt)),
        }
    }
    let name = &ctx.config.name;
    let policy = ctx.pipeline.sink_retry;
    let started = Instant::now();
    // When the first failure happened (read from the clock only then).
    let mut first_failure: Option<SystemTime> = None;
    let mut attempts: u32 = 0;
    // Positions into `records` still to deliver.
    let mut pending: Vec<usize> = (0..records.len()).collect();
    let mut reasons: HashMap<usize, String> = HashMap::new();
    while !pending.is_empty() {
        // The first call gets every converted record; retries share the records still pending (bytes and
        // JSON are reference-counted), with their attempt count.
        let retried: Vec<SinkRecord>;
        let subset: &[SinkRecord] = if attempts == 0 {
            &records
        } else {
            retried = pending
                .iter()
                .map(|&p| {
                    let mut r = records[p].clone();
                    r.attempt = attempts;
                    r
                })
                .collect();
            &retried
        };
        let topic = Arc::clone(&subset[0].topic);
        let t0 = Instant::now();
        let result = call(ctx.pipeline.put_timeout, ctx.sink.put(subset)).await;
        let latency = t0.elapsed();
        ctx.telemetry.batch(name, subset.len());
        attempts += 1;
        let outcomes = match result {
            Ok(outcomes) => outcomes,
            Err(e @ CallError::Panic(_)) => {
                return (
                    done,
                    Some(fatal(format!(
                        "put on {topic}-{}: {e}",
                        subset[0].partition
                    ))),
                );
            }
            Err(e) if !e.is_retriable() => {
                return (done, Some(fatal(format!("the sink failed: {e}"))));
            }
            Err(e) => {
                // The destination is down (or the call hung): the whole call is retried, holding back only
                // this partition, until it passes or an explicitly set retry bound is reached.
                ctx.telemetry
                    .failed(name, &topic, Stage::TaskPut, false, &e.to_string());
                if !policy.allows(attempts, started.elapsed()) {
                    return (
                        done,
                        Some(fatal(format!(
                            "the sink kept failing for {attempts} attempts over {:?}: {e}",
                            started.elapsed()
                        ))),
                    );
                }
                ctx.telemetry.retried(name, &topic, pending.len());
                if !pause(
                    policy.delay(attempts, e.retry_after(), (ctx.pipeline.jitter)()),
                    stop,
                )
                .await
                {
                    return (done, Some(Halt::Stopped));
                }
                continue;
            }
        };
        if outcomes.len() != subset.len() {
            return (
                done,
                Some(fatal(format!(
                    "the sink returned {} outcomes for {} records",
                    outcomes.len(),
                    subset.len()
                ))),
            );
        }
        let subset_len = subset.len();
        let mut retry = Vec::new();
        // One reading of the clock for the batch's end-to-end lags, and one metrics lookup.
        let now_ms = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut lags: Vec<Duration> = Vec::with_capacity(subset_len);
        let debug = tracing::enabled!(tracing::Level::DEBUG);
        let mut retry_after: Option<Duration> = None;
        let mut delivered = 0usize;
        for (k, outcome) in outcomes.into_iter().enumerate() {
            let p = pending[k];
            let i = index[p];
            match outcome {
                Outcome::Delivered => {
                    done[i] = true;
                    delivered += 1;
                    let raw = &batch[i].raw;
                    if debug {
                        record_span(name, &raw.topic, raw.partition, raw.offset, &raw.headers)
                            .in_scope(|| tracing::debug!(attempts, "record delivered"));
                    }
                    if let Some(ts) = raw.timestamp {
                        lags.push(Duration::from_millis(
                            now_ms.saturating_sub(ts).max(0) as u64
                        ));
                    }
                }
                Outcome::Permanent { reason, detail } => {
                    ctx.telemetry
                        .failed(name, &topic, Stage::TaskPut, true, &reason);
                    let mut f = failure(
                        Stage::TaskPut,
                        &format!("ursa.sink.{}", ctx.config.plugin.name()),
                        "ursa.sink.PermanentFailure",
                        reason,
                        attempts,
                        *first_failure.get_or_insert_with(SystemTime::now),
                    );
                    f.detail = detail;
                    f.schema_id = records[p].value.schema_id();
                    match tolerate(ctx, &batch[i].raw, f, stop).await {
                        Ok(()) => done[i] = true,
                        Err(halt) => return (done, Some(halt)),
                    }
                }
                Outcome::Retriable {
                    reason,
                    retry_after: ra,
                } => {
                    ctx.telemetry
                        .failed(name, &topic, Stage::TaskPut, false, &reason);
                    reasons.insert(p, reason);
                    retry_after = retry_after.max(ra);
                    retry.push(p);
                }
            }
        }
        if delivered > 0 {
            ctx.telemetry.delivered(name, &topic, delivered, latency);
            ctx.telemetry.end_to_end(name, &lags);
        }
        if retry.is_empty() {
            break;
        }
        if !policy.allows(attempts, started.elapsed()) {
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
                    *first_failure.get_or_insert_with(SystemTime::now),
                );
                f.schema_id = records[p].value.schema_id();
                match tolerate(ctx, &batch[i].raw, f, stop).await {
                    Ok(()) => done[i] = true,
                    Err(halt) => return (done, Some(halt)),
                }
            }
            break;
        }
        ctx.telemetry.retried(name, &topic, retry.len());
        if !pause(
            policy.delay(attempts, retry_after, (ctx.pipeline.jitter)()),
            stop,
        )
        .await
        {
            return (done, Some(Halt::Stopped));
        }
        pending = retry;
    }
    (done, None)
}
