//! The consumer loop of a running connector: fetches with rdkafka (cooperative-sticky, auto-commit off),
//! hands each record to its partition's queue, pauses partitions when queues fill or the connector's
//! in-flight bounds are reached, commits done offsets periodically and synchronously on revocation and
//! shutdown, seeks where sinks that keep their own offsets want to start, and drains on stop.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::connect::config::Subscription;
use crate::connect::record::RawRecord;

use super::context::{ConnectorCtx, Fatal};
use super::partition::run_partition;
use super::progress::Progress;

/// What the connector should be doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Consume and deliver.
    Running,
    /// Keep the assignment, fetch nothing.
    Paused,
    /// Drain, commit, leave the group.
    Stopped,
}

type Key = (Arc<str>, i32);

/// How long the consumer waits for room in a full queue before it pauses fetching.
const STALL: Duration = Duration::from_millis(500);

struct Part {
    tx: Option<mpsc::Sender<RawRecord>>,
    task: JoinHandle<()>,
    progress: Arc<Progress>,
    overflow: VecDeque<RawRecord>,
    paused: bool,
    /// For sinks with their own offsets: records below this offset are dropped (already in the sink).
    min_offset: Option<i64>,
    initialised: bool,
}

/// State shared with the rebalance callbacks.
#[derive(Default)]
struct Shared {
    parts: Mutex<HashMap<Key, Part>>,
    paused_all: AtomicBool,
    /// The reason librdkafka gave with its last fatal client error (e.g. the broker's SASL error text).
    fatal_reason: Mutex<Option<String>>,
}

/// Fatal consumer errors without a reason from the client context before the connector fails with the bare
/// error (the reason, when librdkafka gives one, arrives through [`ClientContext::error`]).
const FATAL_ERRORS_WITHOUT_REASON: u32 = 3;

struct Ctx {
    shared: Arc<Shared>,
    ctx: Arc<ConnectorCtx>,
}

/// Client errors that no retry fixes (a wrong password, a missing ACL): the connector fails with the broker's
/// reason instead of retrying silently.
fn is_fatal_client_error(e: &rdkafka::error::KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::Authentication
                | C::SaslAuthenticationFailed
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::Fatal
        )
    )
}

impl ClientContext for Ctx {
    /// librdkafka's client-level errors: fatal ones fail the connector with their reason.
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if is_fatal_client_error(&error) {
            tracing::error!(connector = %self.ctx.config.name, error = %error, reason, "consumer error: failing the connector");
            if let Ok(mut r) = self.shared.fatal_reason.lock() {
                *r = Some(reason.to_owned());
            }
            let _ = self.ctx.fatal.try_send(Fatal {
                trace: format!("Kafka client error: {reason} ({error})"),
            });
        } else {
            tracing::warn!(connector = %self.ctx.config.name, error = %error, reason, "consumer error");
        }
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): consumer lag per partition.
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    self.ctx.telemetry.consumer_lag(
                        &self.ctx.config.name,
                        topic,
                        *partition,
                        p.consumer_lag,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        // Commit what is done for the revoked partitions, synchronously; records in flight are left to the
        // next owner (at least once, never past an unfinished record).
        let mut commit = TopicPartitionList::new();
        if let Ok(mut parts) = self.shared.parts.lock() {
            for e in tpl.elements() {
                let key: Key = (Arc::from(e.topic()), e.partition());
                if let Some(p) = parts.remove(&key) {
                    p.task.abort();
                    let queued: usize = p.overflow.iter().map(RawRecord::size).sum();
                    self.ctx.release(p.overflow.len(), queued);
                    if let Some(next) = p.progress.pending() {
                        let _ = commit.add_partition_offset(
                            e.topic(),
                            e.partition(),
                            Offset::Offset(next),
                        );
                    }
                }
            }
        }
        // Never commit what the sink has not made durable: flush first (blocking this callback briefly is
        // fine; it runs on a worker thread of the multi-threaded runtime).
        let flushed = match tokio::runtime::Handle::try_current() {
            Ok(h)
                if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
                    && commit.count() > 0 =>
            {
                let sink = std::sync::Arc::clone(&self.ctx.sink);
                tokio::task::block_in_place(|| h.block_on(sink.flush())).is_ok()
            }
            _ => false,
        };
        if commit.count() > 0 && !flushed {
            tracing::warn!(connector = %self.ctx.config.name, "sink not flushed on revocation: offsets left to the last commit");
        }
        if commit.count() > 0 && flushed {
            match consumer.commit(&commit, CommitMode::Sync) {
                Ok(()) => self
                    .ctx
                    .telemetry
                    .committed(&self.ctx.config.name, commit.count()),
                Err(e) => {
                    tracing::warn!(connector = %self.ctx.config.name, error = %e, "commit on revocation failed")
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance
            && self.shared.paused_all.load(Ordering::Acquire)
            && tpl.count() > 0
        {
            let _ = consumer.pause(tpl);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            tracing::debug!(connector = %self.ctx.config.name, error = %e, "offset commit failed");
        }
    }
}

/// Builds the consumer of a connector.
fn consumer(
    ctx: &Arc<ConnectorCtx>,
    shared: &Arc<Shared>,
    kafka: &ClientConfig,
) -> Result<StreamConsumer<Ctx>, Fatal> {
    let mut config = kafka.clone();
    config
        .set("group.id", &ctx.config.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000");
    for (prop, v) in &ctx.config.consumer_overrides {
        config.set(prop, v);
    }
    if config.get("group.protocol") == Some("consumer") {
        // KIP-848: the broker assigns partitions (incrementally); a client-side strategy is refused.
        config.remove("partition.assignment.strategy");
    }
    let consumer: StreamConsumer<Ctx> = config
        .create_with_context(Ctx {
            shared: Arc::clone(shared),
            ctx: Arc::clone(ctx),
        })
        .map_err(|e| Fatal {
            trace: format!("cannot create the consumer: {e}"),
        })?;
    let subscribe = match &ctx.config.subscription {
        Subscription::Topics(t) => {
            consumer.subscribe(&t.iter().map(String::as_str).collect::<Vec<_>>())
        }
        Subscription::Regex(r) => consumer.subscribe(&[r.as_str()]),
    };
    subscribe.map_err(|e| Fatal {
        trace: format!("cannot subscribe: {e}"),
    })?;
    Ok(consumer)
}

fn tpl_of(keys: &[Key]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (t, p) in keys {
        tpl.add_partition(t, *p);
    }
    tpl
}

/// Commits every partition's done offsets (after making the sink durable).
async fn commit(
    consumer: &StreamConsumer<Ctx>,
    ctx: &ConnectorCtx,
    shared: &Shared,
    mode: CommitMode,
) {
    let pending: Vec<(Key, i64, Arc<Progress>)> = match shared.parts.lock() {
        Ok(parts) => parts
            .iter()
            .filter_map(|(k, p)| {
                p.progress
                    .pending()
                    .map(|o| (k.clone(), o, Arc::clone(&p.progress)))
            })
            .collect(),
        Err(_) => return,
    };
    if pending.is_empty() {
        return;
    }
    if let Err(e) = ctx.sink.flush().await {
        tracing::warn!(connector = %ctx.config.name, error = %e, "sink flush failed; offsets not committed");
        return;
    }
    let mut tpl = TopicPartitionList::new();
    for ((t, p), o, _) in &pending {
        let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*o));
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => {
            for (_, o, progress) in &pending {
                progress.committed(*o);
            }
            ctx.telemetry.committed(&ctx.config.name, pending.len());
        }
        Err(e) => tracing::warn!(connector = %ctx.config.name, error = %e, "offset commit failed"),
    }
}

/// Runs the connector's consumer until `target` becomes [`Target::Stopped`] (Ok) or a fatal failure (Err).
pub async fn run(
    ctx: Arc<ConnectorCtx>,
    kafka: &ClientConfig,
    mut target: watch::Receiver<Target>,
    mut fatal_rx: mpsc::Receiver<Fatal>,
    drain_deadline: Duration,
) -> Result<(), Fatal> {
    let shared = Arc::new(Shared::default());
    let consumer = consumer(&ctx, &shared, kafka)?;
    let mut topics: HashMap<String, Arc<str>> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut commit_tick =
        tokio::time::interval(ctx.config.flush_interval.max(Duration::from_millis(100)));
    let queue = ctx.config.batch_max_records.saturating_mul(4).max(16);
    let mut user_paused = *target.borrow() == Target::Paused;
    if user_paused {
        shared.paused_all.store(true, Ordering::Release);
    }
    let mut result = Ok(());
    let mut fatal_errors = 0u32;
    loop {
        tokio::select! {
            m = consumer.recv() => {
                let m = match m {
                    Ok(m) => m,
                    Err(e) if is_fatal_client_error(&e) => {
                        let reason = shared.fatal_reason.lock().ok().and_then(|r| r.clone());
                        fatal_errors += 1;
                        if reason.is_some() || fatal_errors >= FATAL_ERRORS_WITHOUT_REASON {
                            let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
                            result = Err(Fatal { trace: format!("Kafka consumer error: {e}{reason}") });
                            break;
                        }
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(connector = %ctx.config.name, error = %e, "consumer error");
                        continue;
                    }
                };
                let topic = match topics.get(m.topic()) {
                    Some(t) => Arc::clone(t),
                    None => {
                        let t: Arc<str> = Arc::from(m.topic());
                        topics.insert(m.topic().to_owned(), Arc::clone(&t));
                        t
                    }
                };
                let key: Key = (Arc::clone(&topic), m.partition());
                let raw = RawRecord::from_message(&m, Arc::clone(&topic));
                drop(m);
                // A new partition: its task, and for sinks with their own offsets, where to start.
                let needs_init = shared.parts.lock().map(|p| !p.contains_key(&key)).unwrap_or(false);
                if needs_init {
                    let (tx, rx) = mpsc::channel(queue);
                    let progress = Arc::new(Progress::default());
                    let task = tokio::spawn(run_partition(Arc::clone(&ctx), rx, Arc::clone(&progress)));
                    if let Ok(mut parts) = shared.parts.lock() {
                        parts.insert(key.clone(), Part { tx: Some(tx), task, progress, overflow: VecDeque::new(), paused: false, min_offset: None, initialised: false });
                    }
                }
                let initialised = shared.parts.lock().map(|p| p.get(&key).is_some_and(|x| x.initialised)).unwrap_or(true);
                if !initialised {
                    let wanted = ctx.sink.starting_offsets(&[(topic.to_string(), key.1)]).await;
                    let start = match wanted {
                        Ok(v) => v.into_iter().find(|((t, p), _)| **t == *topic && *p == key.1).map(|(_, o)| o),
                        Err(e) => {
                            result = Err(Fatal { trace: format!("the sink could not tell its starting offsets: {e}") });
                            break;
                        }
                    };
                    if let Ok(mut parts) = shared.parts.lock()
                        && let Some(p) = parts.get_mut(&key)
                    {
                        p.initialised = true;
                        p.min_offset = start;
                    }
                    if let Some(o) = start
                        && o != raw.offset
                    {
                        if let Err(e) = consumer.seek(&topic, key.1, Offset::Offset(o), Duration::from_secs(10)) {
                            result = Err(Fatal { trace: format!("seeking {topic}-{} to {o}: {e}", key.1) });
                            break;
                        }
                        continue;
                    }
                }
                let size = raw.size();
                let tx = match shared.parts.lock() {
                    Ok(parts) => match parts.get(&key) {
                        Some(p) if p.min_offset.is_some_and(|min| raw.offset < min) => continue,
                        Some(p) if p.overflow.is_empty() => p.tx.clone(),
                        _ => None,
                    },
                    Err(_) => None,
                };
                ctx.admit(1, size);
                ctx.telemetry.record_read(&ctx.config.name, &topic, size);
                // Back-pressure: wait a little for room before pausing (a pause makes librdkafka drop what it
                // prefetched and refetch later), and pause only when the sink really stalls.
                let mut overflow = Some(raw);
                if let Some(tx) = tx {
                    if let Some(r) = overflow.take() {
                        match tx.try_send(r) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => {
                                match tokio::time::timeout(STALL, tx.reserve()).await {
                                    Ok(Ok(permit)) => permit.send(r),
                                    _ => overflow = Some(r),
                                }
                            }
                        }
                    }
                }
                let mut pause_this = false;
                if let Some(r) = overflow
                    && let Ok(mut parts) = shared.parts.lock()
                    && let Some(p) = parts.get_mut(&key)
                {
                    p.overflow.push_back(r);
                    pause_this = !p.paused;
                    p.paused = true;
                }
                if pause_this {
                    let _ = consumer.pause(&tpl_of(std::slice::from_ref(&key)));
                }
                if !shared.paused_all.load(Ordering::Acquire) && ctx.over_bounds() {
                    let deadline = tokio::time::Instant::now() + STALL;
                    while ctx.over_bounds() {
                        let notified = ctx.released.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        if !ctx.over_bounds() || tokio::time::timeout_at(deadline, notified).await.is_err() {
                            break;
                        }
                    }
                }
                if !shared.paused_all.load(Ordering::Acquire) && ctx.over_bounds()
                    && let Ok(a) = consumer.assignment()
                {
                    let _ = consumer.pause(&a);
                    shared.paused_all.store(true, Ordering::Release);
                }
            }
            _ = tick.tick() => {
                // Move overflow into queues; resume partitions and the connector when there is room again.
                let mut resume: Vec<Key> = Vec::new();
                if let Ok(mut parts) = shared.parts.lock() {
                    for (k, p) in parts.iter_mut() {
                        while let Some(r) = p.overflow.pop_front() {
                            let Some(tx) = &p.tx else { break };
                            if let Err(e) = tx.try_send(r) {
                                let (mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) = e;
                                p.overflow.push_front(r);
                                break;
                            }
                        }
                        if p.paused && p.overflow.is_empty() {
                            p.paused = false;
                            resume.push(k.clone());
                        }
                    }
                }
                let all_paused = shared.paused_all.load(Ordering::Acquire);
                if all_paused && !user_paused && ctx.under_resume_mark() {
                    shared.paused_all.store(false, Ordering::Release);
                    if let (Ok(a), Ok(parts)) = (consumer.assignment(), shared.parts.lock()) {
                        let mut tpl = TopicPartitionList::new();
                        for e in a.elements() {
                            let k: Key = (Arc::from(e.topic()), e.partition());
                            if !parts.get(&k).is_some_and(|p| p.paused) {
                                tpl.add_partition(e.topic(), e.partition());
                            }
                        }
                        let _ = consumer.resume(&tpl);
                    }
                } else if !all_paused && !resume.is_empty() {
                    let _ = consumer.resume(&tpl_of(&resume));
                }
            }
            _ = commit_tick.tick() => {
                commit(&consumer, &ctx, &shared, CommitMode::Async).await;
            }
            changed = target.changed() => {
                let t = if changed.is_ok() { *target.borrow() } else { Target::Stopped };
                match t {
                    Target::Stopped => break,
                    Target::Paused => {
                        user_paused = true;
                        shared.paused_all.store(true, Ordering::Release);
                        if let Ok(a) = consumer.assignment() {
                            let _ = consumer.pause(&a);
                        }
                    }
                    Target::Running => {
                        user_paused = false;
                    }
                }
            }
            f = fatal_rx.recv() => {
                result = Err(f.unwrap_or(Fatal { trace: "partition task ended unexpectedly".into() }));
                break;
            }
        }
    }
    // Drain: stop fetching, let queued records finish within the deadline, then commit and leave the group.
    if let Ok(a) = consumer.assignment() {
        let _ = consumer.pause(&a);
    }
    let tasks: Vec<JoinHandle<()>> = match shared.parts.lock() {
        Ok(mut parts) => parts
            .values_mut()
            .map(|p| {
                for r in p.overflow.drain(..) {
                    ctx.release(1, r.size());
                }
                p.tx = None;
                std::mem::replace(&mut p.task, tokio::spawn(async {}))
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    let deadline = tokio::time::Instant::now() + drain_deadline;
    for t in tasks {
        let abort = t.abort_handle();
        if tokio::time::timeout_at(deadline, t).await.is_err() {
            abort.abort();
        }
    }
    commit(&consumer, &ctx, &shared, CommitMode::Sync).await;
    consumer.unsubscribe();
    result
}
