//! Shared helpers of the `semantics_*` integration tests: the real broker, a recording test sink plugin
//! (the runtime's plugin interface, scripted per record), an embedded worker with its REST server, a producer,
//! readers of topics and committed offsets, and waiting on conditions with deadlines (never sleeping a fixed
//! time to synchronise).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use reqwest::Method;
use serde_json::Value;
use ursa::connect::api::{BoxFuture, ConnectApi, FlatConfig};
use ursa::connect::config::{Key, Kind, Parsed, Secret};
use ursa::connect::connector::{ConnectorHandle, Env};
use ursa::connect::pipeline::Target;
use ursa::connect::rest::{RestConfig, RestServer, RunningRestServer};
use ursa::connect::sink::{
    Offsets, Outcome, Request, Sink, SinkContext, SinkError, SinkPlugin, SinkRecord, TopicPartition,
};
use ursa::connect::telemetry::Telemetry;
use ursa::connect::worker::Worker;
use ursa_testkit::{Kafka, create_topic, unique_name};

/// The `connector.class` of the test sink.
pub const PLUGIN: &str = "test-sink";

/// How long any condition may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------
// Waiting.

/// Polls `check` (with growing pauses, at most 50 ms) until it returns `Some`; panics naming `what` after
/// `timeout`.
pub async fn eventually<T>(
    what: impl Display,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// As [`eventually`], with an async check.
pub async fn eventually_async<T>(
    what: impl Display,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------------------
// The broker.

/// The broker of this test process.
pub fn kafka() -> &'static Kafka {
    Kafka::shared()
}

/// A new topic named `prefix-<random>` with `partitions` partitions.
pub async fn topic(prefix: &str, partitions: i32) -> String {
    let name = unique_name(prefix);
    create_topic(kafka(), &name, partitions).await.unwrap();
    name
}

/// A header list as the tests write them.
pub type HeaderList = Vec<(String, Option<Vec<u8>>)>;

/// A producer that writes to explicit partitions (so per-partition expectations are exact).
pub struct Producer(FutureProducer);

impl Producer {
    /// An idempotent producer (order within a partition is kept).
    pub fn new() -> Producer {
        Producer(
            kafka()
                .config()
                .set("enable.idempotence", "true")
                .set("linger.ms", "1")
                .create()
                .unwrap(),
        )
    }

    /// Writes one record and returns its offset.
    pub async fn send(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) -> i64 {
        let mut h = OwnedHeaders::new();
        for (k, v) in headers {
            h = h.insert(Header { key: k, value: *v });
        }
        let mut r: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(topic).partition(partition).headers(h);
        if let Some(k) = key {
            r = r.key(k);
        }
        if let Some(v) = value {
            r = r.payload(v);
        }
        let delivery = self
            .0
            .send(r, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        delivery.offset
    }

    /// Writes string values `value(i)` for `i` in `range` to `partition` (keys `k<i>`), all enqueued before
    /// any acknowledgement is awaited; returns the offsets.
    pub async fn send_many(
        &self,
        topic: &str,
        partition: i32,
        range: std::ops::Range<u32>,
        value: impl Fn(u32) -> String,
    ) -> Vec<i64> {
        let mut pending = Vec::new();
        for i in range {
            let key = format!("k{i}");
            let v = value(i);
            let r: FutureRecord<'_, str, str> = FutureRecord::to(topic)
                .partition(partition)
                .key(key.as_str())
                .payload(v.as_str());
            pending.push(self.0.send_result(r).map_err(|(e, _)| e).unwrap());
        }
        let mut offsets = Vec::new();
        for p in pending {
            offsets.push(p.await.unwrap().map_err(|(e, _)| e).unwrap().offset);
        }
        offsets
    }
}

/// Committed offsets of a consumer group, read without joining it.
pub struct Committed {
    consumer: Arc<BaseConsumer>,
    tpl: TopicPartitionList,
}

impl Committed {
    /// For `group` on partitions `0..partitions` of `topic`.
    pub fn new(group: &str, topic: &str, partitions: i32) -> Committed {
        let consumer: BaseConsumer = kafka()
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        Committed {
            consumer: Arc::new(consumer),
            tpl,
        }
    }

    /// For the group of connector `name` (`connect-<name>`).
    pub fn of_connector(name: &str, topic: &str, partitions: i32) -> Committed {
        Self::new(&format!("connect-{name}"), topic, partitions)
    }

    /// The committed offset of every partition (`None`: nothing committed). The group's coordinator can be
    /// moving or loading just after the group appears (Apache Kafka answers `NotCoordinator`,
    /// `CoordinatorNotAvailable` or `CoordinatorLoadInProgress`): asked again until it answers, within
    /// the deadline.
    pub async fn get(&self) -> Vec<Option<i64>> {
        use rdkafka::types::RDKafkaErrorCode as Code;
        let deadline = Instant::now() + DEADLINE;
        loop {
            let consumer = Arc::clone(&self.consumer);
            let tpl = self.tpl.clone();
            let read = tokio::task::spawn_blocking(move || {
                consumer.committed_offsets(tpl, Duration::from_secs(10))
            })
            .await
            .unwrap();
            match read {
                Ok(c) => {
                    return c
                        .elements()
                        .iter()
                        .map(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        })
                        .collect();
                }
                Err(e)
                    if matches!(
                        e.rdkafka_error_code(),
                        Some(
                            Code::NotCoordinator
                                | Code::CoordinatorNotAvailable
                                | Code::CoordinatorLoadInProgress
                        )
                    ) && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("reading committed offsets: {e}"),
            }
        }
    }

    /// Waits until every partition's committed offset is `expected`.
    pub async fn wait_for(&self, what: &str, expected: &[Option<i64>]) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let last = self.get().await;
            if last == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: committed {last:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The high watermark (next offset) of a partition.
pub async fn end_offset(topic: &str, partition: i32) -> i64 {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = kafka().config().create().unwrap();
        c.fetch_watermarks(&topic, partition, Duration::from_secs(10))
            .unwrap()
            .1
    })
    .await
    .unwrap()
}

/// Reads `n` records from the start of partitions `0..partitions` of `topic` (assigned, no group).
pub async fn read_topic(topic: &str, partitions: i32, n: usize) -> Vec<OwnedMessage> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = kafka()
            .config()
            .set("group.id", unique_name("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let deadline = Instant::now() + DEADLINE;
        let mut out = Vec::new();
        while out.len() < n {
            assert!(
                Instant::now() < deadline,
                "timed out reading {n} records from {topic}: got {}",
                out.len()
            );
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                out.push(m.unwrap().detach());
            }
        }
        out
    })
    .await
    .unwrap()
}

/// A record's headers in order.
pub fn headers_of(m: &OwnedMessage) -> HeaderList {
    m.headers()
        .map(|hs| {
            hs.iter()
                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default()
}

/// A record's headers by key, values as text (the last value of a repeated key).
pub fn header_map(m: &OwnedMessage) -> BTreeMap<String, String> {
    headers_of(m)
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                String::from_utf8_lossy(&v.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// The test sink.

/// One record as the sink saw it in one `put` call, with the outcome the sink answered.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The connector (its `name`).
    pub connector: String,
    /// Which build of the sink (1 = the first; a restart builds a new sink).
    pub generation: u64,
    /// The `put` call, numbered across the recorder.
    pub call: u64,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// `SinkRecord::attempt` as the runtime set it.
    pub attempt: u32,
    /// How many times this sink (any generation) saw this record before.
    pub seen: u32,
    /// When the call began.
    pub at: Instant,
    /// What the sink answered.
    pub outcome: Outcome,
    /// The raw key.
    pub key: Option<Vec<u8>>,
    /// The raw value.
    pub value: Option<Vec<u8>>,
    /// The converted value.
    pub value_json: Value,
    /// Set by the test ([`Recorder::mark`]) before this call: lets tests order deliveries against their own
    /// actions without clocks.
    pub mark: u64,
}

impl Attempt {
    /// Whether the sink answered Delivered.
    pub fn delivered(&self) -> bool {
        self.outcome == Outcome::Delivered
    }
}

/// Decides a record's outcome; gets the record and how often the sink saw it before.
pub type Behaviour = Arc<dyn Fn(&SinkRecord, u32) -> Outcome + Send + Sync>;

/// A sink build: which connector, which generation, and the password values the sink could read.
#[derive(Debug, Clone)]
pub struct Build {
    /// The connector.
    pub connector: String,
    /// The generation.
    pub generation: u64,
    /// `Secret::expose` of every password-typed plugin key, as the sink sees it.
    pub exposed: BTreeMap<String, Option<String>>,
}

#[derive(Default)]
struct Log {
    attempts: Vec<Attempt>,
    seen: HashMap<(String, String, i32, i64), u32>,
    calls: u64,
    builds: Vec<Build>,
    closed: Vec<(String, u64)>,
    flushes: Vec<(String, u64)>,
    mark: u64,
    puts: Vec<PutSpan>,
    opened: Vec<(String, Vec<TopicPartition>, u64)>,
    revoked: Vec<(String, Vec<TopicPartition>)>,
}

/// One `put` call: when it began and, unless it was cancelled, when it returned.
#[derive(Debug, Clone)]
pub struct PutSpan {
    /// The connector.
    pub connector: String,
    /// The worker's sink build.
    pub generation: u64,
    /// The partition.
    pub partition: i32,
    /// When it began.
    pub started: Instant,
    /// When it returned (`None`: still running, or cancelled).
    pub finished: Option<Instant>,
}

/// What the test sink's `flush` answers.
#[derive(Debug, Clone)]
pub enum FlushMode {
    /// Everything done is durable.
    Done,
    /// Durable only below this offset, per partition.
    Below(i64),
    /// An error.
    Fail(SinkError),
    /// Never answers.
    Hang,
}

/// What every test sink of a worker records, and how they behave.
pub struct Recorder {
    behaviour: Mutex<Behaviour>,
    flush_mode: Mutex<FlushMode>,
    put_delay: Mutex<Duration>,
    pending_requests: Mutex<Vec<Request>>,
    log: Mutex<Log>,
    /// Open: `flush` returns; closed ([`Recorder::hang_flushes`]): every `flush` waits until it opens.
    flush_gate: tokio::sync::watch::Sender<bool>,
}

impl Recorder {
    /// A recorder whose sinks deliver everything.
    pub fn new() -> Arc<Recorder> {
        Self::with(|_, _| Outcome::Delivered)
    }

    /// A recorder whose sinks answer per `behaviour`.
    pub fn with(
        behaviour: impl Fn(&SinkRecord, u32) -> Outcome + Send + Sync + 'static,
    ) -> Arc<Recorder> {
        Arc::new(Recorder {
            behaviour: Mutex::new(Arc::new(behaviour)),
            log: Mutex::new(Log::default()),
            flush_mode: Mutex::new(FlushMode::Done),
            put_delay: Mutex::new(Duration::ZERO),
            pending_requests: Mutex::new(Vec::new()),
            flush_gate: tokio::sync::watch::channel(true).0,
        })
    }

    /// Every attempt so far, in call order.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.log.lock().unwrap().attempts.clone()
    }

    /// The attempts of one connector.
    pub fn attempts_of(&self, connector: &str) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.connector == connector)
            .collect()
    }

    /// The successful deliveries of one connector, in call order.
    pub fn delivered(&self, connector: &str) -> Vec<Attempt> {
        self.attempts_of(connector)
            .into_iter()
            .filter(Attempt::delivered)
            .collect()
    }

    /// The delivered offsets of one connector per partition, in delivery order.
    pub fn delivered_offsets(&self, connector: &str) -> BTreeMap<i32, Vec<i64>> {
        let mut out: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for a in self.delivered(connector) {
            out.entry(a.partition).or_default().push(a.offset);
        }
        out
    }

    /// Whether every offset in `0..end[p]` of every partition `p` was delivered at least once.
    pub fn all_delivered(&self, connector: &str, ends: &[i64]) -> bool {
        let got = self.delivered_offsets(connector);
        ends.iter().enumerate().all(|(p, &end)| {
            let offsets = got.get(&(p as i32)).cloned().unwrap_or_default();
            (0..end).all(|o| offsets.contains(&o))
        })
    }

    /// The sink builds so far.
    pub fn builds(&self) -> Vec<Build> {
        self.log.lock().unwrap().builds.clone()
    }

    /// The (connector, generation) of every closed sink.
    pub fn closed(&self) -> Vec<(String, u64)> {
        self.log.lock().unwrap().closed.clone()
    }

    /// The (connector, generation) of every `flush` call, in order.
    pub fn flushes(&self) -> Vec<(String, u64)> {
        self.log.lock().unwrap().flushes.clone()
    }

    /// From now on every `flush` of every sink hangs until [`Recorder::release_flushes`].
    pub fn hang_flushes(&self) {
        self.flush_gate.send_replace(false);
    }

    /// Lets hanging and later `flush` calls return.
    pub fn release_flushes(&self) {
        self.flush_gate.send_replace(true);
    }

    async fn flush_gate(&self) {
        let mut open = self.flush_gate.subscribe();
        let _ = open.wait_for(|open| *open).await;
    }

    /// How later flushes answer.
    pub fn set_flush(&self, mode: FlushMode) {
        *self.flush_mode.lock().unwrap() = mode;
    }

    /// How long later puts take (an async wait; a huge delay stalls the sink).
    pub fn set_put_delay(&self, delay: Duration) {
        *self.put_delay.lock().unwrap() = delay;
    }

    /// A request (pause, resume, commit) the next put makes through its sink's context.
    pub fn request_on_next_put(&self, r: Request) {
        self.pending_requests.lock().unwrap().push(r);
    }

    /// Every put call so far.
    pub fn puts(&self) -> Vec<PutSpan> {
        self.log.lock().unwrap().puts.clone()
    }

    /// Every `open`: connector, partitions, generation.
    pub fn opened(&self) -> Vec<(String, Vec<TopicPartition>, u64)> {
        self.log.lock().unwrap().opened.clone()
    }

    /// Every partition `close`: connector, partitions.
    pub fn revoked(&self) -> Vec<(String, Vec<TopicPartition>)> {
        self.log.lock().unwrap().revoked.clone()
    }

    /// Sets the mark later attempts carry (see [`Attempt::mark`]).
    pub fn mark(&self, mark: u64) {
        self.log.lock().unwrap().mark = mark;
    }

    fn put(&self, connector: &str, generation: u64, records: &[SinkRecord]) -> Vec<Outcome> {
        let behaviour = Arc::clone(&self.behaviour.lock().unwrap());
        let mut log = self.log.lock().unwrap();
        log.calls += 1;
        let call = log.calls;
        let at = Instant::now();
        let mut outcomes = Vec::with_capacity(records.len());
        for r in records {
            let key = (
                connector.to_owned(),
                r.topic.to_string(),
                r.partition,
                r.offset,
            );
            let seen = *log.seen.get(&key).unwrap_or(&0);
            log.seen.insert(key, seen + 1);
            let outcome = behaviour(r, seen);
            let mark = log.mark;
            log.attempts.push(Attempt {
                connector: connector.to_owned(),
                generation,
                call,
                topic: r.topic.to_string(),
                partition: r.partition,
                offset: r.offset,
                attempt: r.attempt,
                seen,
                at,
                outcome: outcome.clone(),
                key: r.key.bytes().map(|b| b.to_vec()),
                value: r.value.bytes().map(|b| b.to_vec()),
                value_json: r.value.json().cloned().unwrap_or(Value::Null),
                mark,
            });
            outcomes.push(outcome);
        }
        outcomes
    }
}

/// The test sink plugin: every sink it builds reports to one [`Recorder`].
pub struct TestPlugin(pub Arc<Recorder>);

/// Password-typed keys of the test plugin.
pub const PASSWORD_KEYS: [&str; 2] = ["x.secret.token", "x.api.password"];

impl SinkPlugin for TestPlugin {
    fn name(&self) -> &'static str {
        PLUGIN
    }

    fn description(&self) -> &'static str {
        "Records every record and answers scripted outcomes (tests)."
    }

    fn keys(&self) -> Vec<Key> {
        PASSWORD_KEYS
            .iter()
            .map(|&k| Key::optional(k, Kind::Password, "", "test", "A secret the sink uses."))
            .collect()
    }

    fn build(&self, config: &Parsed, context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        let connector = config.string("name").unwrap_or_default().to_owned();
        let exposed = PASSWORD_KEYS
            .iter()
            .filter_map(|&k| {
                config
                    .password(k)
                    .map(|s: &Secret| (k.to_owned(), s.expose().map(str::to_owned)))
            })
            .collect();
        let mut log = self.0.log.lock().unwrap();
        let generation = log
            .builds
            .iter()
            .filter(|b| b.connector == connector)
            .count() as u64
            + 1;
        log.builds.push(Build {
            connector: connector.clone(),
            generation,
            exposed,
        });
        Ok(Arc::new(TestSink {
            puts: context
                .metrics()
                .counter("test_puts", "Put calls the test sink got"),
            context,
            recorder: Arc::clone(&self.0),
            connector,
            generation,
        }))
    }
}

struct TestSink {
    context: SinkContext,
    puts: prometheus_client::metrics::counter::Counter,
    recorder: Arc<Recorder>,
    connector: String,
    generation: u64,
}

impl Sink for TestSink {
    fn put<'a>(
        &'a self,
        records: &'a [SinkRecord],
    ) -> BoxFuture<'a, Result<Vec<Outcome>, SinkError>> {
        Box::pin(async move {
            self.puts.inc();
            let delay = *self.recorder.put_delay.lock().unwrap();
            let span = {
                let mut log = self.recorder.log.lock().unwrap();
                log.puts.push(PutSpan {
                    connector: self.connector.clone(),
                    generation: self.generation,
                    partition: records.first().map_or(-1, |r| r.partition),
                    started: Instant::now(),
                    finished: None,
                });
                log.puts.len() - 1
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for r in std::mem::take(&mut *self.recorder.pending_requests.lock().unwrap()) {
                match r {
                    Request::Commit => self.context.request_commit(),
                    Request::Pause(tps) => self.context.pause(&tps),
                    Request::Resume(tps) => self.context.resume(&tps),
                }
            }
            let outcomes = self.recorder.put(&self.connector, self.generation, records);
            self.recorder.log.lock().unwrap().puts[span].finished = Some(Instant::now());
            Ok(outcomes)
        })
    }

    fn open<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        generation: u64,
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.recorder.log.lock().unwrap().opened.push((
                self.connector.clone(),
                partitions.to_vec(),
                generation,
            ));
            Ok(())
        })
    }

    fn flush<'a>(&'a self, done: &'a Offsets) -> BoxFuture<'a, Result<Offsets, SinkError>> {
        Box::pin(async move {
            self.recorder.flush_gate().await;
            self.recorder
                .log
                .lock()
                .unwrap()
                .flushes
                .push((self.connector.clone(), self.generation));
            let mode = self.recorder.flush_mode.lock().unwrap().clone();
            match mode {
                FlushMode::Done => Ok(done.clone()),
                FlushMode::Below(n) => Ok(done
                    .iter()
                    .map(|(tp, o)| (tp.clone(), (*o).min(n)))
                    .collect()),
                FlushMode::Fail(e) => Err(e),
                FlushMode::Hang => std::future::pending().await,
            }
        })
    }

    fn close<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
    ) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            self.recorder
                .log
                .lock()
                .unwrap()
                .revoked
                .push((self.connector.clone(), partitions.to_vec()));
            Ok(())
        })
    }

    fn stop(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.recorder
                .log
                .lock()
                .unwrap()
                .closed
                .push((self.connector.clone(), self.generation));
        })
    }
}

/// A retriable outcome.
pub fn retriable(reason: &str, retry_after: Option<Duration>) -> Outcome {
    Outcome::Retriable {
        reason: reason.to_owned(),
        retry_after,
    }
}

/// A permanent outcome.
pub fn permanent(reason: &str) -> Outcome {
    Outcome::Permanent {
        reason: reason.to_owned(),
        detail: None,
    }
}

// ---------------------------------------------------------------------------------------------------------
// The worker.

/// The worker environment on the test broker.
pub fn env(telemetry: Telemetry) -> Env {
    Env {
        kafka: kafka().config(),
        registry: None,
        telemetry,
        drain_deadline: Duration::from_secs(2),
        // An OS-chosen port's form (`#<pid>`): consumers join dynamically, so that two connectors of one
        // test in one process (same group) are two members, not one static member fencing the other.
        worker_id: format!("semantics-test:0#{}", std::process::id()),
        active_topics: Arc::new(ursa::connect::active_topics::ActiveTopics::new(true)),
    }
}

/// A worker with the test plugin (and the built-in ones).
pub fn worker(recorder: &Arc<Recorder>) -> Arc<Worker> {
    worker_in(recorder, env(Telemetry::new()))
}

/// As [`worker`], in `env`.
pub fn worker_in(recorder: &Arc<Recorder>, env: Env) -> Arc<Worker> {
    let mut plugins = ursa::connect::sinks::builtin();
    plugins.push(Arc::new(TestPlugin(Arc::clone(recorder))));
    Arc::new(Worker::with_plugins(env, plugins))
}

/// A connector run directly (no worker around it): parsed against the test plugin and the built-in ones.
pub fn spawn_connector(recorder: &Arc<Recorder>, config: &FlatConfig) -> ConnectorHandle {
    spawn_connector_in(recorder, config, &Telemetry::new())
}

/// As [`spawn_connector`], reporting to `telemetry`.
pub fn spawn_connector_in(
    recorder: &Arc<Recorder>,
    config: &FlatConfig,
    telemetry: &Telemetry,
) -> ConnectorHandle {
    let mut plugins = ursa::connect::sinks::builtin();
    plugins.push(Arc::new(TestPlugin(Arc::clone(recorder))));
    let parsed = ursa::connect::config::ConnectorConfig::parse(config, &plugins).unwrap();
    ConnectorHandle::spawn(parsed, Arc::new(env(telemetry.clone())), Target::Running)
}

/// A flat config from pairs.
pub fn flat(pairs: &[(&str, &str)]) -> FlatConfig {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A test-sink connector config on `topic`: string keys and values, fast commits and retries; `extra` adds
/// or overrides keys.
pub fn sink_config(name: &str, topic: &str, extra: &[(&str, &str)]) -> FlatConfig {
    let mut c = flat(&[
        ("name", name),
        ("connector.class", PLUGIN),
        ("topics", topic),
        ("key.converter", "string"),
        ("value.converter", "string"),
        ("offset.flush.interval.ms", "100"),
        ("errors.retry.delay.initial", "2ms"),
        ("errors.retry.delay.max.ms", "10"),
    ]);
    c.extend(flat(extra));
    c
}

/// Creates a connector through the API (panics on an error).
pub async fn create(worker: &Worker, config: FlatConfig) {
    let name = config["name"].clone();
    let (created, _) = worker.put_connector(name, config, true).await.unwrap();
    assert!(created);
}

/// The task state through the API (a STOPPED connector has no task: then the connector's state).
pub async fn task_state(worker: &Worker, name: &str) -> String {
    let s = worker.status(name.to_owned()).await.unwrap();
    let state = s.tasks.first().map_or(s.connector.state, |t| t.state.state);
    serde_json::to_value(state)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits until the task state (through the API) is `state`.
pub async fn wait_state(worker: &Worker, name: &str, state: &str) {
    eventually_async(format!("connector {name} {state}"), DEADLINE, async || {
        (task_state(worker, name).await == state).then_some(())
    })
    .await;
}

/// Starts the REST API over the worker.
pub async fn rest(worker: &Arc<Worker>) -> (RunningRestServer, Rest) {
    rest_with(worker, RestConfig::ephemeral()).await
}

/// Starts the REST API over the worker with `config` (e.g. the references it allows).
pub async fn rest_with(worker: &Arc<Worker>, config: RestConfig) -> (RunningRestServer, Rest) {
    let api: Arc<dyn ConnectApi> = Arc::clone(worker) as Arc<dyn ConnectApi>;
    let server = RestServer::bind(config, api).await.unwrap().spawn();
    let client = Rest {
        base: server.url(),
        client: reqwest::Client::new(),
    };
    (server, client)
}

/// A small JSON REST client.
pub struct Rest {
    /// `http://host:port`.
    pub base: String,
    client: reqwest::Client,
}

impl Rest {
    /// Calls `method path` with an optional JSON body; returns the status and the body (`null` when empty,
    /// a string when not JSON).
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut r = self.client.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            r = r.json(b);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The raw body text of `GET path`.
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    /// `POST`.
    pub async fn post(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(Method::POST, path, body).await
    }

    /// `PUT`.
    pub async fn put(&self, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call(Method::PUT, path, body).await
    }

    /// `PATCH`.
    pub async fn patch(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// The task state through `GET /connectors/{name}/status` (a STOPPED connector has no task, as in Kafka
    /// Connect: then the connector's state).
    pub async fn task_state(&self, name: &str) -> String {
        let (code, s) = self.get(&format!("/connectors/{name}/status")).await;
        assert_eq!(code, 200, "{s}");
        let task = if s["tasks"].as_array().is_some_and(Vec::is_empty) {
            &s["connector"]["state"]
        } else {
            &s["tasks"][0]["state"]
        };
        task.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the connector's state and its task's (through REST) is `state` (STOPPED: no task).
    pub async fn wait_state(&self, name: &str, state: &str) {
        eventually_async(
            format!("connector {name} {state} (REST)"),
            DEADLINE,
            async || {
                let (_, s) = self.get(&format!("/connectors/{name}/status")).await;
                let tasks_ok = if state == "STOPPED" {
                    s["tasks"] == serde_json::json!([])
                } else {
                    s["tasks"][0]["state"] == state
                };
                (s["connector"]["state"] == state && tasks_ok).then_some(())
            },
        )
        .await;
    }
}

/// The sum of the samples of metric `name` whose labels include `connector="<connector>"`.
pub fn metric(text: &str, name: &str, connector: &str) -> Option<f64> {
    let label = format!("connector=\"{connector}\"");
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
