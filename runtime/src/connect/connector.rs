//! One connector's life: build its sink, converters and DLQ, run the pipeline, report its state, and restart
//! it by itself with exponential backoff after a failure (Kafka Connect's FAILED tasks never do).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::FutureProducer;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use ursa_registry::RegistryClient;

use super::active_topics::ActiveTopics;
use super::api::State;
use super::config::ConnectorConfig;
use super::convert::{Converter, ConverterKind};
use super::dlq::DeadLetterQueue;
use super::pipeline::{self, Bounds, ConnectorCtx, Fatal, PipelineConfig, Target};
use super::sink::{Request, SinkContext, SinkMetrics};
use super::telemetry::Telemetry;

/// What every connector of a worker shares.
pub struct Env {
    /// Client config with `bootstrap.servers` and the worker's extra properties.
    pub kafka: ClientConfig,
    /// The worker's default registry.
    pub registry: Option<Arc<RegistryClient>>,
    /// Telemetry.
    pub telemetry: Telemetry,
    /// The drain deadline on stop.
    pub drain_deadline: Duration,
    /// This worker's id (its REST address).
    pub worker_id: String,
    /// The topics each connector consumed records from (KIP-558).
    pub active_topics: Arc<ActiveTopics>,
}

impl Env {
    /// A copy sharing the registry client and telemetry.
    pub fn duplicate(&self) -> Env {
        Env {
            kafka: self.kafka.clone(),
            registry: self.registry.clone(),
            telemetry: self.telemetry.clone(),
            drain_deadline: self.drain_deadline,
            worker_id: self.worker_id.clone(),
            active_topics: Arc::clone(&self.active_topics),
        }
    }
}

/// A connector's reported state.
#[derive(Debug, Clone)]
pub struct Status {
    /// The state.
    pub state: State,
    /// For FAILED: why.
    pub trace: Option<String>,
    /// Automatic restarts so far.
    pub restarts: u32,
}

/// A running (or stopped, or failed) connector: the tasks of it this worker runs (Kafka Connect's
/// `tasks.max`), each a consumer of the connector's group with a sink of its own, all following one target.
pub struct ConnectorHandle {
    /// Its config.
    pub config: ConnectorConfig,
    target: watch::Sender<Target>,
    tasks: Vec<TaskHandle>,
    env: Arc<Env>,
    metrics: SinkMetrics,
}

/// One task of a connector on this worker.
struct TaskHandle {
    id: u32,
    restart: mpsc::Sender<()>,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

impl TaskHandle {
    fn status(&self) -> Status {
        self.status.lock().map(|s| s.clone()).unwrap_or(Status {
            state: State::Failed,
            trace: Some("status lock poisoned".into()),
            restarts: 0,
        })
    }
}

impl ConnectorHandle {
    /// Starts supervising every task of a connector (`0..tasks.max`: a standalone worker runs them all) in
    /// the given target state.
    pub fn spawn(config: ConnectorConfig, env: Arc<Env>, initial: Target) -> ConnectorHandle {
        let ids = (0..config.tasks_max).collect();
        Self::spawn_tasks(config, env, initial, ids)
    }

    /// Starts supervising the tasks `ids` of a connector (those placed on this worker) in `initial`.
    pub fn spawn_tasks(
        config: ConnectorConfig,
        env: Arc<Env>,
        initial: Target,
        ids: Vec<u32>,
    ) -> ConnectorHandle {
        let (target, _) = watch::channel(initial);
        // One registry of sink metrics per connector, shared by its tasks (their counters add up).
        let metrics = SinkMetrics::new(&config.name, SinkMetrics::DEFAULT_CAP);
        env.telemetry
            .add_sink_metrics(&config.name, metrics.clone());
        let mut handle = ConnectorHandle {
            config,
            target,
            tasks: Vec::new(),
            env,
            metrics,
        };
        handle.tasks = ids.into_iter().map(|id| handle.spawn_task(id)).collect();
        handle
    }

    /// Starts supervising task `id`, following the connector's target.
    fn spawn_task(&self, id: u32) -> TaskHandle {
        let (restart, restart_rx) = mpsc::channel(4);
        let status = Arc::new(Mutex::new(Status {
            state: State::Unassigned,
            trace: None,
            restarts: 0,
        }));
        let task = tokio::spawn(supervise(
            self.config.clone(),
            Arc::clone(&self.env),
            id,
            self.metrics.clone(),
            self.target.subscribe(),
            restart_rx,
            Arc::clone(&status),
        ));
        TaskHandle {
            id,
            restart,
            status,
            task,
        }
    }

    /// Runs exactly the tasks `ids` here (a placement change in distributed mode): starts the ones not running
    /// yet and lets go of those no longer placed here, while every other task runs on untouched (its consumer
    /// keeps its group membership and partitions). Returns the let-go tasks' ends: each drains, commits and
    /// closes like a stop, within the drain deadline.
    pub fn place(&mut self, ids: &[u32]) -> Vec<(u32, JoinHandle<()>)> {
        let (kept, gone): (Vec<TaskHandle>, Vec<TaskHandle>) = std::mem::take(&mut self.tasks)
            .into_iter()
            .partition(|t| ids.contains(&t.id));
        self.tasks = kept;
        for &id in ids {
            if !self.tasks.iter().any(|t| t.id == id) {
                let task = self.spawn_task(id);
                self.tasks.push(task);
            }
        }
        self.tasks.sort_by_key(|t| t.id);
        // Dropping a task's restart sender detaches it: its supervisor stops the pipeline and returns.
        gone.into_iter().map(|t| (t.id, t.task)).collect()
    }

    /// The ids of the tasks this worker runs, in order.
    pub fn task_ids(&self) -> Vec<u32> {
        self.tasks.iter().map(|t| t.id).collect()
    }

    /// Each task's status, by id.
    pub fn task_statuses(&self) -> Vec<(u32, Status)> {
        self.tasks.iter().map(|t| (t.id, t.status())).collect()
    }

    /// The connector's status here, summed up: a FAILED task's (the first), else a restarting one's, else the
    /// first task's; with no task on this worker, what its target says.
    pub fn status(&self) -> Status {
        let all: Vec<Status> = self.tasks.iter().map(TaskHandle::status).collect();
        let restarts = all.iter().map(|s| s.restarts).sum();
        let pick = all
            .iter()
            .find(|s| s.state == State::Failed)
            .or_else(|| all.iter().find(|s| s.state == State::Restarting))
            .or_else(|| all.first())
            .cloned();
        match pick {
            Some(s) => Status { restarts, ..s },
            None => Status {
                state: match self.target() {
                    Target::Running => State::Running,
                    Target::Paused => State::Paused,
                    Target::Stopped => State::Stopped,
                },
                trace: None,
                restarts: 0,
            },
        }
    }

    /// Sets the target state (of every task).
    pub fn set_target(&self, t: Target) {
        let _ = self.target.send(t);
    }

    /// The target state.
    pub fn target(&self) -> Target {
        *self.target.borrow()
    }

    /// Restarts every task now (also clears a FAILED state's backoff).
    pub fn restart(&self) {
        for t in &self.tasks {
            let _ = t.restart.try_send(());
        }
    }

    /// Restarts task `task` (every task when `None`), only if FAILED when `only_failed`.
    pub fn restart_where(&self, task: Option<u32>, only_failed: bool) {
        for t in &self.tasks {
            if task.is_none_or(|id| id == t.id)
                && (!only_failed || t.status().state == State::Failed)
            {
                let _ = t.restart.try_send(());
            }
        }
    }

    /// Restarts task `id`; false if this worker does not run it.
    pub fn restart_task(&self, id: u32) -> bool {
        match self.tasks.iter().find(|t| t.id == id) {
            Some(t) => {
                let _ = t.restart.try_send(());
                true
            }
            None => false,
        }
    }

    /// Stops every task and waits for their drains to finish.
    pub async fn shutdown(self) {
        let _ = self.target.send(Target::Stopped);
        drop(self.target);
        for t in self.tasks {
            let _ = t.task.await;
        }
    }
}

fn set(
    status: &Mutex<Status>,
    env: &Env,
    (name, task): (&str, u32),
    state: State,
    trace: Option<String>,
) {
    if let Ok(mut s) = status.lock() {
        s.state = state;
        s.trace = trace;
    }
    env.telemetry.task_state(
        name,
        task,
        match state {
            State::Unassigned => "UNASSIGNED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Stopped => "STOPPED",
            State::Failed => "FAILED",
            State::Restarting => "RESTARTING",
        },
    );
}

/// The registry client for `url`, shared by every task of every connector naming it: building one loads the
/// system's trust store (tens of milliseconds of CPU), and a shared one shares its schema cache. Schemas by id
/// never change, so sharing is safe across connectors and restarts.
fn registry_client(url: &str) -> Result<Arc<RegistryClient>, Fatal> {
    static CLIENTS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<String, Arc<RegistryClient>>>,
    > = std::sync::OnceLock::new();
    // Held while a client is built: tasks starting at once wait for the one client instead of each building one.
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = clients.get(url) {
        return Ok(Arc::clone(c));
    }
    let mut c = ursa_registry::ClientConfig::new(url);
    c.timeout = Duration::from_secs(10);
    let client = Arc::new(RegistryClient::new(c).map_err(|e| Fatal {
        trace: format!("the schema registry client: {e}"),
    })?);
    clients.insert(url.to_owned(), Arc::clone(&client));
    Ok(client)
}

/// The DLQ's producer: `acks=all`, idempotent, and giving up after `timeout` (one attempt's deadline), as the
/// pipeline does, so that a timed-out attempt is never delivered later beside its retry.
pub fn dlq_producer(
    kafka: &ClientConfig,
    timeout: Duration,
) -> Result<FutureProducer, rdkafka::error::KafkaError> {
    kafka
        .clone()
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", timeout.as_millis().max(1).to_string())
        .create()
}

/// Builds what the pipeline needs; a failure here is a FAILED connector (bad sink config, no registry, …).
fn build(
    config: &ConnectorConfig,
    env: &Env,
    task: u32,
    metrics: &SinkMetrics,
    fatal: mpsc::Sender<Fatal>,
) -> Result<(Arc<ConnectorCtx>, mpsc::UnboundedReceiver<Request>), Fatal> {
    let errors = config.plugin.validate(&config.parsed);
    if !errors.is_empty() {
        let shown: Vec<String> = errors
            .iter()
            .map(|(k, e)| format!("{k}: {}", e.join("; ")))
            .collect();
        return Err(Fatal {
            trace: format!(
                "invalid {} config: {}",
                config.plugin.name(),
                shown.join(", ")
            ),
        });
    }
    let (context, requests) = SinkContext::new(
        &config.name,
        format!("{}-{task}", config.name),
        metrics.clone(),
    );
    let sink = config
        .plugin
        .build(&config.parsed, context)
        .map_err(|e| Fatal {
            trace: format!("building the {} sink: {e}", config.plugin.name()),
        })?;
    let registry = match &config.registry_url {
        Some(url) => Some(registry_client(url)?),
        None => env.registry.clone(),
    };
    let converter = |kind: &str| -> Result<Converter, Fatal> {
        let k = ConverterKind::parse(kind).map_err(|e| Fatal { trace: e })?;
        Converter::new(k, registry.clone()).map_err(|e| Fatal {
            trace: e.to_string(),
        })
    };
    let dlq = match &config.dlq_topic {
        Some(topic) => {
            let producer = dlq_producer(&env.kafka, PipelineConfig::of(config).dlq_timeout)
                .map_err(|e| Fatal {
                    trace: format!("creating the DLQ producer: {e}"),
                })?;
            Some(DeadLetterQueue::new(
                producer,
                topic.clone(),
                config.name.clone(),
                config.dlq_context_headers,
            ))
        }
        None => None,
    };
    let ctx = Arc::new(ConnectorCtx {
        key_converter: converter(config.key_converter)?.for_keys(),
        value_converter: converter(config.value_converter)?,
        pipeline: PipelineConfig::of(config),
        bounds: Bounds::new(config.max_in_flight_records, config.max_in_flight_bytes),
        config: config.clone(),
        sink,
        dlq,
        telemetry: env.telemetry.clone(),
        fatal,
        flush_lock: tokio::sync::Mutex::new(()),
        task,
        active_topics: Arc::clone(&env.active_topics),
    });
    Ok((ctx, requests))
}

async fn run_once(
    config: &ConnectorConfig,
    env: &Env,
    task: u32,
    metrics: &SinkMetrics,
    target: watch::Receiver<Target>,
) -> Result<(), Fatal> {
    let (fatal_tx, fatal_rx) = mpsc::channel(1);
    let (ctx, requests) = build(config, env, task, metrics, fatal_tx)?;
    // Static group membership: the consumer's instance id comes from the worker's and the task's (issue 13).
    let mut kafka = env.kafka.clone();
    if let Some(id) = super::config::worker::static_instance_id(&env.worker_id, &config.name, task)
    {
        kafka.set("group.instance.id", id);
    }
    // The pipeline closes every partition and stops the sink within the drain deadline.
    pipeline::run(
        Arc::clone(&ctx),
        &kafka,
        target,
        fatal_rx,
        requests,
        env.drain_deadline,
    )
    .await
}

async fn supervise(
    config: ConnectorConfig,
    env: Arc<Env>,
    task: u32,
    metrics: SinkMetrics,
    mut target: watch::Receiver<Target>,
    mut restart: mpsc::Receiver<()>,
    status: Arc<Mutex<Status>>,
) {
    let name = config.name.clone();
    let (initial, max) = config.restart_backoff;
    let mut backoff = initial;
    loop {
        let t = *target.borrow_and_update();
        if t == Target::Stopped {
            set(&status, &env, (&name, task), State::Stopped, None);
            tokio::select! {
                c = target.changed() => if c.is_err() { return },
                r = restart.recv() => if r.is_none() { return },
            }
            continue;
        }
        set(
            &status,
            &env,
            (&name, task),
            if t == Target::Paused {
                State::Paused
            } else {
                State::Running
            },
            None,
        );
        // The pipeline follows its own target: the user's, or Stopped for a restart, so a restart drains,
        // commits and closes the sink like a stop does.
        let (run_tx, run_rx) = watch::channel(t);
        let started = Instant::now();
        let run = run_once(&config, &env, task, &metrics, run_rx);
        tokio::pin!(run);
        let mut restarting = false;
        let mut detached = false;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                c = target.changed(), if !detached => {
                    if c.is_err() {
                        // The handle is gone: stop.
                        detached = true;
                        let _ = run_tx.send(Target::Stopped);
                        continue;
                    }
                    let t = *target.borrow_and_update();
                    let _ = run_tx.send(t);
                    match t {
                        Target::Paused => set(&status, &env, (&name, task), State::Paused, None),
                        Target::Running => set(&status, &env, (&name, task), State::Running, None),
                        Target::Stopped => {}
                    }
                }
                r = restart.recv(), if !restarting && !detached => {
                    if r.is_none() {
                        detached = true;
                    } else {
                        restarting = true;
                        set(&status, &env, (&name, task), State::Restarting, None);
                    }
                    let _ = run_tx.send(Target::Stopped);
                }
            }
        };
        if detached {
            set(&status, &env, (&name, task), State::Stopped, None);
            return;
        }
        if restarting {
            if let Ok(mut s) = status.lock() {
                s.restarts += 1;
            }
            env.telemetry.task_restarted(&name);
        }
        match result {
            Ok(()) if restarting => continue,
            Ok(()) => {
                // Stopped by the user: the loop top waits in STOPPED.
            }
            Err(fatal) => {
                // Never a resolved reference or a credential in a log line or a status.
                let trace = config.scrub(&fatal.trace);
                tracing::error!(connector = %name, error = %trace, "connector failed");
                set(&status, &env, (&name, task), State::Failed, Some(trace));
                if restarting {
                    continue;
                }
                if started.elapsed() > max.max(Duration::from_secs(60)) {
                    backoff = initial;
                }
                if config.auto_restart {
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        r = restart.recv() => if r.is_none() { return },
                        c = target.changed() => if c.is_err() { return },
                    }
                    backoff = (backoff * 2).min(max);
                    if let Ok(mut s) = status.lock() {
                        s.restarts += 1;
                    }
                    env.telemetry.task_restarted(&name);
                    set(&status, &env, (&name, task), State::Restarting, None);
                } else {
                    tokio::select! {
                        r = restart.recv() => if r.is_none() { return },
                        c = target.changed() => if c.is_err() { return },
                    }
                }
            }
        }
    }
}
