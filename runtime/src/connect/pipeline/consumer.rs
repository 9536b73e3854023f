//! The consumer of a running connector, on a thread of its own (so that nothing it does blocks an async
//! thread: polling, rebalance callbacks, synchronous commits, closing): fetches with rdkafka
//! (cooperative-sticky, auto-commit off), hands each record to its partition's queue, pauses partitions when
//! queues fill, the in-flight bounds are reached or the sink or the user asks, and commits what the sink's
//! flush says is durable — periodically, on request, on revocation and on stop, checking every result.
//!
//! On assignment (inside the rebalance callback, before any fetch) it opens the partitions in the sink with
//! a new generation and assigns them at the sink's starting offsets. On revocation it stops the partitions'
//! tasks (in-flight puts finish within `sink.revoke.timeout`, queued records are released), flushes,
//! commits and closes them in the sink. On stop it does the same for every partition within the drain
//! deadline, then stops the sink and leaves the group.
//!
//! Crash recovery: the consumer is a static group member when the worker's id is stable (its
//! `group.instance.id` comes with the client config, see `config::worker::static_instance_id`), so a restarted
//! worker gets its partitions back at once; the classic protocol's session timeout defaults to 6 s so that a
//! lost worker's partitions move within about 8 s; each assigned partition's resume point is logged and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::connect::config::Subscription;
use crate::connect::record::RawRecord;
use crate::connect::sink::{Offsets, Request, TopicPartition};

use super::context::{ConnectorCtx, Fatal, Fetched, next_generation};
use super::guard::{CallError, call, call_retrying};
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

/// The consumer thread's maps, looked up once or twice per record: foldhash (seeded per process) rather than
/// SipHash, which cost a few hundred instructions per record (`cargo xtask bench metrics`, callgrind).
type Fast = foldhash::fast::RandomState;

/// How long the consumer waits for room in a full queue, or under the bounds, before it pauses fetching (a
/// pause makes librdkafka drop what it prefetched and refetch later).
const STALL: Duration = Duration::from_millis(500);
/// The longest the consumer waits in one poll.
const POLL: Duration = Duration::from_millis(20);
/// The longest an assignment waits for the group's committed offsets (for the resume log only).
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(5);
/// The classic protocol's session timeout unless overridden: a member that dies without leaving is evicted
/// (and its partitions handed to the others) after this (librdkafka's default is 45 s). 6 s is the broker's
/// default `group.min.session.timeout.ms`.
pub const DEFAULT_SESSION_TIMEOUT_MS: &str = "6000";
/// librdkafka's `fetch.queue.backoff.ms` unless overridden (see [`consumer`]).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "10";
/// The classic protocol's heartbeat interval unless overridden: how soon the survivors hear of a
/// rebalance. A lost member's partitions move within about the session timeout plus two heartbeats.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: &str = "1000";

struct Part {
    tp: TopicPartition,
    tx: mpsc::Sender<Fetched>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    progress: Arc<Progress>,
    overflow: VecDeque<Fetched>,
    /// Paused because its queue is full.
    backpressure: bool,
    /// Paused because the sink asked.
    sink_paused: bool,
    /// Whether it is paused in the consumer now.
    consumer_paused: bool,
}

/// State shared with the rebalance callbacks (all on the consumer thread).
#[derive(Default)]
struct Shared {
    parts: Mutex<HashMap<Key, Part, Fast>>,
    user_paused: AtomicBool,
    bounds_paused: AtomicBool,
    /// Flushes failed in a row.
    flush_failures: AtomicU32,
    /// The reason librdkafka gave with its last fatal client error (e.g. the broker's SASL error text).
    fatal_reason: Mutex<Option<String>>,
    /// Whether the consumer has a `group.instance.id` (static group membership).
    static_member: AtomicBool,
}

/// Fatal consumer errors without a reason from the client context before the connector fails with the bare
/// error (the reason, when librdkafka gives one, arrives through [`ClientContext::error`]).
const FATAL_ERRORS_WITHOUT_REASON: u32 = 3;

struct Ctx {
    shared: Arc<Shared>,
    ctx: Arc<ConnectorCtx>,
    handle: tokio::runtime::Handle,
    queue: usize,
    /// The connector's target as the handle set it: read directly, so that a record fetched after the
    /// status said PAUSED is held even before this thread has applied the pause.
    target: watch::Receiver<Target>,
}

impl Ctx {
    /// Whether the connector is paused (by the user), as applied here or as just requested.
    fn user_paused(&self) -> bool {
        self.shared.user_paused.load(Ordering::Acquire) || *self.target.borrow() == Target::Paused
    }
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
            self.ctx
                .fail(format!("Kafka client error: {reason} ({error})"));
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

fn tps_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

fn key_of(tp: &TopicPartition) -> Key {
    (Arc::clone(&tp.topic), tp.partition)
}

fn tpl_of<'a>(tps: impl IntoIterator<Item = &'a TopicPartition>) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for tp in tps {
        tpl.add_partition(&tp.topic, tp.partition);
    }
    tpl
}

fn list(tps: &[TopicPartition]) -> String {
    tps.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl ConsumerContext for Ctx {
    /// Rebalances, on the consumer thread: open and position before assigning, finish, commit and close
    /// before unassigning.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.assign(consumer, tpl);
                let assigned = if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                };
                if let Err(e) = assigned {
                    self.ctx.fail(format!("assigning partitions: {e}"));
                }
                // Partitions assigned while fetching is paused start paused (the next reconcile resumes them).
                if self.user_paused() || self.shared.bounds_paused.load(Ordering::Acquire) {
                    let _ = consumer.pause(tpl);
                    if let Ok(mut parts) = self.shared.parts.lock() {
                        for tp in tps_of(tpl) {
                            if let Some(p) = parts.get_mut(&key_of(&tp)) {
                                p.consumer_paused = true;
                            }
                        }
                    }
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let tps = tps_of(tpl);
                let until = Instant::now() + self.ctx.pipeline.revoke_timeout;
                self.revoke(consumer, &tps, consumer.assignment_lost(), until);
                let unassigned = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = unassigned {
                    tracing::warn!(connector = %self.ctx.config.name, error = %e, "unassigning partitions failed");
                }
            }
            other => {
                tracing::warn!(connector = %self.ctx.config.name, error = ?other, "rebalance error");
            }
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::debug!(connector = %self.ctx.config.name, error = %e, "offset commit failed");
        }
    }
}

impl Ctx {
    /// New partitions: the sink opens them (new generation) and says where they start; their tasks start.
    /// Where each resumes (the sink's offset, else the group's commit) is logged and counted.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) {
        let tps = tps_of(tpl);
        if tps.is_empty() {
            return;
        }
        let ctx = &self.ctx;
        let generation = next_generation();
        let retry = ctx.config.retry;
        let opened: Result<Offsets, (&str, CallError)> = self.handle.block_on(async {
            call_retrying(ctx.pipeline.open_timeout, &retry, || {
                ctx.sink.open(&tps, generation)
            })
            .await
            .map_err(|e| ("open", e))?;
            call_retrying(ctx.pipeline.offsets_timeout, &retry, || {
                ctx.sink.starting_offsets(&tps)
            })
            .await
            .map_err(|e| ("starting_offsets", e))
        });
        // The group's commits, for the resume log (a failure only makes them unknown there).
        let committed: HashMap<(String, i32), i64> = consumer
            .committed_offsets(tpl.clone(), COMMITTED_TIMEOUT)
            .map(|c| {
                c.elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let acknowledged: HashMap<TopicPartition, i64> = match &opened {
            Ok(start) => start.iter().map(|(tp, o)| (tp.clone(), *o)).collect(),
            Err(_) => HashMap::new(),
        };
        for tp in &tps {
            let committed = committed
                .get(&(tp.topic.to_string(), tp.partition))
                .copied();
            let acknowledged = acknowledged.get(tp).copied();
            ctx.telemetry.resumed(
                &ctx.config.name,
                &tp.to_string(),
                acknowledged.or(committed),
                committed,
                acknowledged,
            );
        }
        match opened {
            Ok(start) => {
                for (tp, o) in start {
                    if tps.contains(&tp)
                        && let Err(e) =
                            tpl.set_partition_offset(&tp.topic, tp.partition, Offset::Offset(o))
                    {
                        ctx.fail(format!("starting {tp} at {o}: {e}"));
                    }
                }
            }
            Err((what, e)) => {
                ctx.fail(format!("the sink's {what} of {} failed: {e}", list(&tps)));
            }
        }
        tracing::info!(connector = %ctx.config.name, partitions = %list(&tps), generation, "partitions assigned");
        let Ok(mut parts) = self.shared.parts.lock() else {
            return;
        };
        for tp in tps {
            let (tx, rx) = mpsc::channel(self.queue);
            let (stop, stop_rx) = watch::channel(false);
            let progress = Arc::new(Progress::default());
            let task = self.handle.spawn(run_partition(
                Arc::clone(ctx),
                rx,
                Arc::clone(&progress),
                stop_rx,
            ));
            parts.insert(
                key_of(&tp),
                Part {
                    tp,
                    tx,
                    stop,
                    task,
                    progress,
                    overflow: VecDeque::new(),
                    backpressure: false,
                    sink_paused: false,
                    consumer_paused: false,
                },
            );
        }
    }

    /// Revoked partitions (or every partition, on stop): their tasks stop taking records and finish the put in
    /// flight by `until` (then they are cancelled); every record they held is released; what is done is
    /// flushed and committed (unless the assignment was lost); the sink closes them.
    fn revoke(
        &self,
        consumer: &BaseConsumer<Self>,
        tps: &[TopicPartition],
        lost: bool,
        until: Instant,
    ) {
        let mut taken: Vec<Part> = match self.shared.parts.lock() {
            Ok(mut parts) => tps
                .iter()
                .filter_map(|tp| parts.remove(&key_of(tp)))
                .collect(),
            Err(_) => Vec::new(),
        };
        if taken.is_empty() {
            return;
        }
        for p in &mut taken {
            let _ = p.stop.send(true);
            // Records waiting to be queued are released now, those queued when their task ends.
            p.overflow.clear();
        }
        let ctx = &self.ctx;
        let mut panicked = Vec::new();
        self.handle.block_on(async {
            for p in &mut taken {
                let abort = p.task.abort_handle();
                match tokio::time::timeout_at(until, &mut p.task).await {
                    Ok(Err(e)) if e.is_panic() => panicked.push(p.tp.to_string()),
                    Ok(_) => {}
                    Err(_) => {
                        tracing::warn!(connector = %ctx.config.name, partition = %p.tp, "put still in flight at the revocation deadline: cancelled");
                        abort.abort();
                        let _ = (&mut p.task).await;
                    }
                }
            }
        });
        if !panicked.is_empty() {
            ctx.fail(format!("the task of {} panicked", panicked.join(", ")));
        }
        let entries: Vec<(TopicPartition, Arc<Progress>)> = taken
            .iter()
            .map(|p| (p.tp.clone(), Arc::clone(&p.progress)))
            .collect();
        drop(taken);
        if lost {
            tracing::warn!(connector = %ctx.config.name, partitions = %list(tps), "assignment lost: offsets not committed");
        } else {
            self.commit(consumer, &entries, until);
        }
        let left = until
            .saturating_duration_since(Instant::now())
            .max(ctx.pipeline.close_timeout.min(Duration::from_secs(1)));
        let closed = self.handle.block_on(call_retrying(
            ctx.pipeline.close_timeout.min(left),
            &ctx.config.retry,
            || ctx.sink.close(tps),
        ));
        if let Err(e) = closed {
            tracing::warn!(connector = %ctx.config.name, partitions = %list(tps), error = %e, "the sink's close failed");
        }
        tracing::info!(connector = %ctx.config.name, partitions = %list(tps), "partitions revoked");
    }

    /// Flushes the sink with what is done in `entries` and commits what it says is durable (never more than
    /// what is done, never backwards). A failed flush is counted (the connector fails once flushes have
    /// failed `sink.flush.failures.max` times in a row, or at once when the failure is permanent); a failed
    /// commit is logged and retried at the next commit (nothing is marked committed).
    fn commit(
        &self,
        consumer: &BaseConsumer<Self>,
        entries: &[(TopicPartition, Arc<Progress>)],
        until: Instant,
    ) {
        let ctx = &self.ctx;
        let done: Offsets = entries
            .iter()
            .filter_map(|(tp, p)| p.pending().map(|o| (tp.clone(), o)))
            .collect();
        if done.is_empty() {
            return;
        }
        // At least a short flush even past the deadline: a stop must not skip its last commit for nothing.
        let budget = until
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(200))
            .min(ctx.pipeline.flush_timeout);
        let flushed = self.handle.block_on(async {
            let _one_at_a_time = ctx.flush_lock.lock().await;
            call(budget, ctx.sink.flush(&done)).await
        });
        let durable = match flushed {
            Ok(d) => {
                self.shared.flush_failures.store(0, Ordering::Release);
                d
            }
            Err(e) => {
                let n = self.shared.flush_failures.fetch_add(1, Ordering::AcqRel) + 1;
                tracing::warn!(connector = %ctx.config.name, error = %e, failures = n, "sink flush failed; offsets not committed");
                if !e.is_retriable() {
                    ctx.fail(format!("the sink's flush failed: {e}"));
                } else if n >= ctx.pipeline.flush_failures_max {
                    ctx.fail(format!(
                        "the sink's flush failed {n} times in a row (sink.flush.failures.max); offsets cannot be committed: {e}"
                    ));
                }
                return;
            }
        };
        let plan = to_commit(entries, &done, &durable);
        if plan.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, o, _) in &plan {
            let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*o));
        }
        let result = consumer.commit(&tpl, CommitMode::Sync);
        if let Err(e) = &result {
            tracing::warn!(connector = %ctx.config.name, error = %e, "offset commit failed; retried at the next commit");
        }
        if record_commit(&plan, result.map_err(|e| e.to_string())) {
            ctx.telemetry.committed(&ctx.config.name, plan.len());
        }
    }

    /// Every owned partition, for a periodic commit.
    fn owned(&self) -> Vec<(TopicPartition, Arc<Progress>)> {
        match self.shared.parts.lock() {
            Ok(parts) => parts
                .values()
                .map(|p| (p.tp.clone(), Arc::clone(&p.progress)))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Hands a fetched record to its partition: into the queue (waiting a little for room), else into the
    /// partition's overflow, pausing the partition. `false` if it was held back (or dropped), which the next
    /// [`Ctx::reconcile`] sees to.
    fn route(&self, key: &Key, fetched: Fetched) -> bool {
        let tx = match self.shared.parts.lock() {
            Ok(mut parts) => match parts.get_mut(key) {
                // A record of a partition no longer ours: dropped (and released).
                None => return false,
                // Held while the connector is paused (or the sink asked for a pause): a fetch in flight when the
                // partition was paused can still land, and a paused connector delivers nothing.
                Some(p) if !p.overflow.is_empty() || p.sink_paused || self.user_paused() => {
                    p.overflow.push_back(fetched);
                    return false;
                }
                Some(p) => match p.tx.try_send(fetched) {
                    Ok(()) => return true,
                    Err(
                        mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f),
                    ) => (p.tx.clone(), f),
                },
            },
            Err(_) => return false,
        };
        let (tx, fetched) = tx;
        let sent = self.handle.block_on(async {
            match tokio::time::timeout(STALL, tx.reserve()).await {
                Ok(Ok(permit)) => {
                    permit.send(fetched);
                    None
                }
                _ => Some(fetched),
            }
        });
        let Some(f) = sent else { return true };
        if let Ok(mut parts) = self.shared.parts.lock()
            && let Some(p) = parts.get_mut(key)
        {
            p.overflow.push_back(f);
            p.backpressure = true;
        }
        false
    }

    /// Moves overflow into queues, updates the bounds' pause, and pauses or resumes partitions to match.
    fn reconcile(&self, consumer: &BaseConsumer<Self>) {
        let bounds = &self.ctx.bounds;
        let was = self.shared.bounds_paused.load(Ordering::Acquire);
        if !was && bounds.over() {
            // Wait a little for records to leave before pausing everything.
            let deadline = Instant::now() + STALL;
            self.handle.block_on(async {
                while bounds.over() {
                    let notified = bounds.released.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    if !bounds.over() || tokio::time::timeout_at(deadline, notified).await.is_err()
                    {
                        break;
                    }
                }
            });
            if bounds.over() {
                self.shared.bounds_paused.store(true, Ordering::Release);
            }
        } else if was && bounds.under_resume_mark() {
            self.shared.bounds_paused.store(false, Ordering::Release);
        }
        let user_paused = self.user_paused();
        let all = user_paused || self.shared.bounds_paused.load(Ordering::Acquire);
        let mut pause = Vec::new();
        let mut resume = Vec::new();
        let mut ended = Vec::new();
        if let Ok(mut parts) = self.shared.parts.lock() {
            for p in parts.values_mut() {
                let held = user_paused || p.sink_paused;
                while !held && let Some(f) = p.overflow.pop_front() {
                    if let Err(e) = p.tx.try_send(f) {
                        let (mpsc::error::TrySendError::Full(f)
                        | mpsc::error::TrySendError::Closed(f)) = e;
                        p.overflow.push_front(f);
                        break;
                    }
                }
                if p.overflow.is_empty() {
                    p.backpressure = false;
                }
                let want = all || p.backpressure || p.sink_paused;
                if want != p.consumer_paused {
                    p.consumer_paused = want;
                    if want {
                        pause.push(p.tp.clone());
                    } else {
                        resume.push(p.tp.clone());
                    }
                }
                if p.task.is_finished() {
                    ended.push(p.tp.to_string());
                }
            }
        }
        if !pause.is_empty() {
            let _ = consumer.pause(&tpl_of(&pause));
        }
        if !resume.is_empty() {
            let _ = consumer.resume(&tpl_of(&resume));
        }
        if !ended.is_empty() {
            // A task ends by itself only after a fatal failure (reported first) or a panic.
            self.ctx.fail(format!(
                "the task of {} ended unexpectedly",
                ended.join(", ")
            ));
        }
    }

    fn request(&self, r: Request) -> bool {
        let (tps, paused) = match r {
            Request::Commit => return true,
            Request::Pause(t) => (t, true),
            Request::Resume(t) => (t, false),
        };
        if let Ok(mut parts) = self.shared.parts.lock() {
            for tp in tps {
                if let Some(p) = parts.get_mut(&key_of(&tp)) {
                    p.sink_paused = paused;
                }
            }
        }
        false
    }
}

/// One partition to commit: where, at which offset, and its progress (marked once the commit succeeds).
pub(super) type Planned = (TopicPartition, i64, Arc<Progress>);

/// What to commit after a flush: per partition, what the sink says is durable, capped at what is done, if it
/// moves past the last commit (never backwards, never past an unfinished record).
pub(super) fn to_commit(
    entries: &[(TopicPartition, Arc<Progress>)],
    done: &Offsets,
    durable: &Offsets,
) -> Vec<Planned> {
    entries
        .iter()
        .filter_map(|(tp, progress)| {
            let o = (*durable.get(tp)?).min(*done.get(tp)?);
            (o > progress.committed_offset()).then(|| (tp.clone(), o, Arc::clone(progress)))
        })
        .collect()
}

/// Applies a commit's result: only a successful commit marks its partitions committed, so that a failed one
/// is retried by the next commit (periodic, revocation or stop). Returns whether it succeeded.
pub(super) fn record_commit(plan: &[Planned], result: Result<(), String>) -> bool {
    if result.is_err() {
        return false;
    }
    for (_, o, progress) in plan {
        progress.committed(*o);
    }
    true
}

/// What the async side tells the consumer thread.
enum Command {
    Target(Target),
    Sink(Request),
}

/// Records read and not yet added to the metrics (see [`consume`]).
#[derive(Default)]
struct ReadCount {
    topic: Option<Arc<str>>,
    records: u64,
    bytes: u64,
}

/// Most records read before the count goes to the metrics.
const READS_BATCH: u64 = 256;

impl ReadCount {
    fn add(&mut self, ctx: &ConnectorCtx, topic: &Arc<str>, bytes: usize) {
        if self.topic.as_ref().is_some_and(|t| t != topic) {
            self.flush(ctx);
        }
        if self.topic.is_none() {
            self.topic = Some(Arc::clone(topic));
        }
        self.records += 1;
        self.bytes += bytes as u64;
        if self.records >= READS_BATCH {
            self.flush(ctx);
        }
    }

    fn flush(&mut self, ctx: &ConnectorCtx) {
        if let Some(topic) = self.topic.take()
            && self.records > 0
        {
            ctx.telemetry
                .records_read(&ctx.config.name, &topic, self.records, self.bytes);
        }
        self.records = 0;
        self.bytes = 0;
    }
}

/// The client config of a connector's consumer: the worker's Kafka settings, the runtime's own (manual
/// commits, cooperative rebalancing, a bounded prefetch), then the connector's `consumer.override.*`.
pub(super) fn consumer_config(
    c: &crate::connect::config::ConnectorConfig,
    kafka: &ClientConfig,
) -> ClientConfig {
    let mut config = kafka.clone();
    // librdkafka's prefetch queue holds records outside the in-flight bounds: keep it to a quarter of them.
    let queued_kb = (c.max_in_flight_bytes / 4 / 1024).clamp(1024, 65536);
    config
        .set("group.id", &c.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.partition.eof", "false")
        .set("statistics.interval.ms", "5000")
        .set("queued.max.messages.kbytes", queued_kb.to_string())
        // When the prefetch queue is full, librdkafka waits this long before it fetches that partition again
        // (1 s by default): a sink that drains the queue in 0.2 s then idled 0.8 s of every second, a quarter
        // of the throughput it has (`cargo xtask bench runtime`, BENCHMARKS.md).
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
    for (prop, v) in &c.consumer_overrides {
        config.set(prop, v);
    }
    let kip_848 = config.get("group.protocol") == Some("consumer");
    if kip_848 {
        // KIP-848: the broker assigns partitions (incrementally); a client-side strategy is refused. The
        // session timeout and heartbeat are the group's (broker-side `group.consumer.session.timeout.ms`,
        // `group.consumer.heartbeat.interval.ms`).
        config.remove("partition.assignment.strategy");
    } else {
        // Classic: a lost member's partitions move within seconds, not librdkafka's 45 s.
        for (prop, default) in [
            ("session.timeout.ms", DEFAULT_SESSION_TIMEOUT_MS),
            ("heartbeat.interval.ms", DEFAULT_HEARTBEAT_INTERVAL_MS),
        ] {
            if config.get(prop).is_none() {
                config.set(prop, default);
            }
        }
    }
    // Static membership (from the worker's id): `consumer.override.group.instance.id = ""` opts out.
    if config.get("group.instance.id").is_some_and(str::is_empty) {
        config.remove("group.instance.id");
    }
    config
}

/// Builds the consumer of a connector.
fn consumer(ctx: Ctx, kafka: &ClientConfig) -> Result<BaseConsumer<Ctx>, Fatal> {
    let c = &ctx.ctx.config;
    let config = consumer_config(c, kafka);
    if let Some(id) = config.get("group.instance.id") {
        tracing::info!(connector = %c.name, group = %c.group_id, instance = id, "static group membership");
        ctx.shared.static_member.store(true, Ordering::Release);
    }
    let subscription = c.subscription.clone();
    let consumer: BaseConsumer<Ctx> = config.create_with_context(ctx).map_err(|e| Fatal {
        trace: format!("cannot create the consumer: {e}"),
    })?;
    let subscribe = match &subscription {
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

/// Records routed in a row before the consumer thread reconciles pauses and checks the commit timer again
/// (a lock over every partition and clock readings: once per record they were a tenth of the thread's time).
/// Commands are read before every poll.
const ROUND_RECORDS: usize = 64;

/// Bytes routed in a row before that round comes anyway, so that large records do not pass the in-flight
/// bounds by more than this.
const ROUND_BYTES: usize = 256 * 1024;

/// What the consumer thread routed since its last round of bookkeeping.
#[derive(Debug, Default)]
struct Since {
    records: usize,
    bytes: usize,
    /// A poll came back empty or with an error, a record could not be queued, or a command came: the round
    /// comes at once.
    now: bool,
}

impl Since {
    /// Whether the round of bookkeeping is due before the next poll.
    fn due(&self, bounds: &super::context::Bounds) -> bool {
        self.now || self.records >= ROUND_RECORDS || self.bytes >= ROUND_BYTES || bounds.over()
    }
}

/// Polls once (waiting up to [`POLL`]) and routes what came; a fatal client error ends the thread.
/// `fatal_errors` counts the fatal client errors so far that came without the broker's reason.
fn poll_one(
    c: &Ctx,
    consumer: &BaseConsumer<Ctx>,
    ctx: &ConnectorCtx,
    topics: &mut HashMap<String, Arc<str>, Fast>,
    reads: &mut ReadCount,
    since: &mut Since,
    fatal_errors: &mut u32,
) -> Result<(), Fatal> {
    match consumer.poll(POLL) {
        None => {
            reads.flush(ctx);
            since.now = true;
        }
        Some(Err(e)) if is_fatal_client_error(&e) => {
            since.now = true;
            let reason = c.shared.fatal_reason.lock().ok().and_then(|r| r.clone());
            *fatal_errors += 1;
            if reason.is_some() || *fatal_errors >= FATAL_ERRORS_WITHOUT_REASON {
                let reason = reason.map(|r| format!(": {r}")).unwrap_or_default();
                return Err(Fatal {
                    trace: format!("Kafka consumer error: {e}{reason}"),
                });
            }
        }
        Some(Err(e)) => {
            since.now = true;
            tracing::warn!(connector = %ctx.config.name, error = %e, "consumer error");
        }
        Some(Ok(m)) => {
            let topic = match topics.get(m.topic()) {
                Some(t) => Arc::clone(t),
                None => {
                    let t: Arc<str> = Arc::from(m.topic());
                    topics.insert(m.topic().to_owned(), Arc::clone(&t));
                    t
                }
            };
            let key: Key = (Arc::clone(&topic), m.partition());
            let raw = RawRecord::from_message(&m, topic);
            drop(m);
            let size = raw.size();
            reads.add(ctx, &raw.topic, size);
            let fetched = ctx.admit(raw);
            since.records += 1;
            since.bytes += size;
            if !c.route(&key, fetched) {
                since.now = true;
            }
        }
    }
    Ok(())
}

/// The consumer thread: polls, routes, commits, reconciles pauses, until told to stop (Ok) or a fatal
/// consumer error (Err); then drains within `drain_deadline` and leaves the group.
fn consume(
    consumer: BaseConsumer<Ctx>,
    commands: std_mpsc::Receiver<Command>,
    drain_deadline: Duration,
) -> Result<(), Fatal> {
    let c = consumer.context();
    // Timers and spawned tasks need the runtime's context (this thread only blocks on it, never runs in it).
    let _runtime = c.handle.enter();
    let ctx = Arc::clone(&c.ctx);
    let interval = ctx.config.flush_interval.max(Duration::from_millis(100));
    let mut next_commit = Instant::now() + interval;
    let mut topics: HashMap<String, Arc<str>, Fast> = HashMap::default();
    let mut fatal_errors = 0u32;
    let mut result = Ok(());
    // Reads counted here and added to the metrics every READS_BATCH records, at a topic change and whenever
    // the poll comes back empty (so a stalled stream's count is exact): one metrics lookup per batch.
    let mut reads = ReadCount::default();
    // Records routed since the last round of pauses and the commit timer (the first round comes
    // before the first poll).
    let mut since = Since {
        now: true,
        ..Since::default()
    };
    'run: loop {
        // Commands every time: a pause the sink or the user asked for holds the very next record.
        let mut commit_now = false;
        loop {
            match commands.try_recv() {
                Ok(Command::Target(Target::Stopped))
                | Err(std_mpsc::TryRecvError::Disconnected) => {
                    break 'run;
                }
                Ok(Command::Target(t)) => {
                    since.now = true;
                    c.shared
                        .user_paused
                        .store(t == Target::Paused, Ordering::Release);
                }
                Ok(Command::Sink(r)) => {
                    since.now = true;
                    commit_now |= c.request(r);
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
            }
        }
        if since.due(&ctx.bounds) {
            since = Since::default();
            c.reconcile(&consumer);
            if commit_now || Instant::now() >= next_commit {
                next_commit = Instant::now() + interval;
                let until = Instant::now() + ctx.pipeline.flush_timeout;
                c.commit(&consumer, &c.owned(), until);
            }
        }
        let polled = poll_one(
            c,
            &consumer,
            &ctx,
            &mut topics,
            &mut reads,
            &mut since,
            &mut fatal_errors,
        );
        if let Err(fatal) = polled {
            result = Err(fatal);
            break 'run;
        }
    }
    reads.flush(&ctx);
    // Drain: stop fetching; every partition finishes, flushes, commits and closes within the deadline; the sink
    // stops; the group is left (all on this thread).
    tracing::debug!(connector = %ctx.config.name, "draining");
    let until = Instant::now() + drain_deadline;
    if let Ok(a) = consumer.assignment() {
        let _ = consumer.pause(&a);
    }
    let all: Vec<TopicPartition> = c.owned().into_iter().map(|(tp, _)| tp).collect();
    c.revoke(&consumer, &all, false, until);
    let left = until.saturating_duration_since(Instant::now());
    let stopped = c
        .handle
        .block_on(tokio::time::timeout(left, ctx.sink.stop()));
    if stopped.is_err() {
        tracing::warn!(connector = %ctx.config.name, "the sink did not stop within the drain deadline");
    }
    // A static member of a classic group leaves by closing (dropping the consumer), which sends no
    // LeaveGroup: its partitions wait for it (a restart within the session timeout takes them back without a
    // rebalance). Unsubscribing would leave the group and move them. Under KIP-848 both leave as a static
    // member (epoch -2), which keeps the assignment for the same instance id.
    if !c.shared.static_member.load(Ordering::Acquire) {
        consumer.unsubscribe();
    }
    drop(consumer);
    tracing::debug!(connector = %ctx.config.name, "left the group");
    result
}

/// Runs the connector's consumer until `target` becomes [`Target::Stopped`] (Ok) or a fatal failure (Err).
pub async fn run(
    ctx: Arc<ConnectorCtx>,
    kafka: &ClientConfig,
    mut target: watch::Receiver<Target>,
    mut fatal_rx: mpsc::Receiver<Fatal>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    drain_deadline: Duration,
) -> Result<(), Fatal> {
    let shared = Arc::new(Shared::default());
    let initial = *target.borrow();
    shared
        .user_paused
        .store(initial == Target::Paused, Ordering::Release);
    let queue = ctx.config.batch_max_records.saturating_mul(4).max(16);
    let consumer = consumer(
        Ctx {
            shared,
            ctx: Arc::clone(&ctx),
            handle: tokio::runtime::Handle::current(),
            queue,
            target: target.clone(),
        },
        kafka,
    )?;
    let (commands, commands_rx) = std_mpsc::channel();
    let (done_tx, mut done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("consumer-{}", ctx.config.name))
        .spawn(move || {
            let _ = done_tx.send(consume(consumer, commands_rx, drain_deadline));
        })
        .map_err(|e| Fatal {
            trace: format!("cannot start the consumer thread: {e}"),
        })?;
    let mut result = Ok(());
    let mut stopping = false;
    loop {
        tokio::select! {
            r = &mut done => {
                let ended = r.unwrap_or_else(|_| Err(Fatal { trace: "the consumer thread ended unexpectedly".into() }));
                // A fatal failure reported while draining wins over a clean stop.
                if result.is_ok() && let Ok(f) = fatal_rx.try_recv() && ended.is_ok() && !stopping {
                    return Err(f);
                }
                return result.and(ended);
            }
            changed = target.changed(), if !stopping => {
                let t = if changed.is_ok() { *target.borrow() } else { Target::Stopped };
                tracing::debug!(connector = %ctx.config.name, target = ?t, closed = changed.is_err(), "target changed");
                stopping = t == Target::Stopped;
                let _ = commands.send(Command::Target(t));
            }
            f = fatal_rx.recv(), if !stopping => {
                result = Err(f.unwrap_or(Fatal { trace: "partition task ended unexpectedly".into() }));
                stopping = true;
                let _ = commands.send(Command::Target(Target::Stopped));
            }
            Some(r) = requests.recv(), if !stopping => {
                let _ = commands.send(Command::Sink(r));
            }
        }
    }
}
