//! A worker: runs connectors, answers the REST API, and shuts down draining every connector. In standalone
//! mode connectors come from files (REST changes live until the worker stops).
//!
//! The worker never waits on a connector while holding its lock on the connectors: replacing or removing
//! one leaves its slot `Changing` while the old handle drains on a task of its own, so a sink that hangs in
//! `flush` holds up its own change only, never the REST API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex as StdMutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

use super::api::{
    ApiError, BoxFuture, ConnectApi, ConnectorInfo, ConnectorStatus, FlatConfig, Health, Offsets,
    PartitionOffset, PluginInfo, ServerInfo, State, StateInfo, TaskId, TaskInfo, TaskStatus,
    ValidationResult,
};
use super::config::connector::{Hidden, definitions, validate as validate_config};
use super::config::references::is_reference;
use super::config::{ConnectorConfig, FieldErrors, Secret, Subscription};
use super::connector::{ConnectorHandle, Env, Status};
use super::distributed::{
    ConfigRecord, STATUS_HEARTBEAT, StatusValue, Store, WORKER_HEARTBEAT, now_ms, placed_tasks,
};
use super::pipeline::Target;
use super::sink::SinkPlugin;
use super::sinks;
use super::telemetry::Telemetry;

/// Resolves `${env:…}` and `${file:…}` references in a flat config (the stored config keeps the references).
pub fn resolve_references(raw: &FlatConfig) -> Result<FlatConfig, String> {
    let (resolved, errors) = resolve_each(raw);
    if errors.is_empty() {
        Ok(resolved)
    } else {
        Err(describe_errors(&errors))
    }
}

/// Resolves every reference it can; a key whose reference does not resolve keeps its reference and gets an
/// error (which names the variable or file, never a value).
pub fn resolve_each(raw: &FlatConfig) -> (FlatConfig, FieldErrors) {
    let mut errors = FieldErrors::new();
    let resolved = raw
        .iter()
        .map(|(k, v)| {
            if !is_reference(v) {
                return (k.clone(), v.clone());
            }
            let mut s = Secret::parse(v);
            match s.resolve() {
                Ok(()) => (k.clone(), s.expose().unwrap_or_default().to_owned()),
                Err(e) => {
                    errors.entry(k.clone()).or_default().push(e.to_string());
                    (k.clone(), v.clone())
                }
            }
        })
        .collect();
    (resolved, errors)
}

/// How long the offsets API waits for a stopped connector's consumer to leave its group.
const GROUP_LEAVE: Duration = Duration::from_secs(15);

/// Whether the broker refused a group operation because the group still has a member.
fn group_still_active(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NonEmptyGroup
            | RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::IllegalGeneration
    )
}

/// Makes each restart request distinct (a compacted topic keeps the latest per key).
fn nonce() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The plugin a config's `connector.class` names.
fn find_plugin<'a>(
    plugins: &'a [Arc<dyn SinkPlugin>],
    class: Option<&str>,
) -> Option<&'a Arc<dyn SinkPlugin>> {
    let class = class?;
    plugins
        .iter()
        .find(|p| p.name() == class || p.aliases().contains(&class))
}

/// Parses, resolves and validates a flat connector config: per-key errors in one 400 message, which never
/// shows what a reference resolved to nor a credential.
pub fn parse_config(
    plugins: &[Arc<dyn SinkPlugin>],
    raw: &FlatConfig,
) -> Result<ConnectorConfig, ApiError> {
    let plugin = find_plugin(plugins, raw.get("connector.class").map(String::as_str));
    let (resolved, unresolved) = resolve_each(raw);
    let hidden = Hidden::new(raw, &resolved, plugin.map(|p| p.as_ref()));
    let refuse = |mut errors: FieldErrors| {
        hidden.errors(&mut errors);
        ApiError::BadRequest(format!(
            "Connector configuration is invalid: {}",
            describe_errors(&errors)
        ))
    };
    if !unresolved.is_empty() {
        return Err(refuse(unresolved));
    }
    let mut config = ConnectorConfig::parse(&resolved, plugins).map_err(refuse)?;
    config.raw = raw.clone();
    config.hidden = hidden;
    Ok(config)
}

/// Formats per-key errors as one message (`key: error; …`).
pub fn describe_errors(errors: &BTreeMap<String, Vec<String>>) -> String {
    errors
        .iter()
        .map(|(k, es)| format!("{k}: {}", es.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A connector of this worker.
enum Slot {
    /// Running (or paused, stopped, failed) under its handle.
    Live(ConnectorHandle),
    /// Between two handles: the old one is draining on a task of its own (the worker's lock is never held
    /// meanwhile); then `config` starts in `target`, unless `removing`.
    Changing {
        config: ConnectorConfig,
        target: Target,
        removing: bool,
    },
}

impl Slot {
    fn config(&self) -> &ConnectorConfig {
        match self {
            Slot::Live(h) => &h.config,
            Slot::Changing { config, .. } => config,
        }
    }

    /// Each local task's status (none while changing).
    fn task_statuses(&self) -> Vec<(u32, Status)> {
        match self {
            Slot::Live(h) => h.task_statuses(),
            Slot::Changing { .. } => Vec::new(),
        }
    }

    fn status(&self) -> Status {
        match self {
            Slot::Live(h) => h.status(),
            Slot::Changing { .. } => Status {
                state: State::Restarting,
                trace: None,
                restarts: 0,
            },
        }
    }

    fn target(&self) -> Target {
        match self {
            Slot::Live(h) => h.target(),
            Slot::Changing { target, .. } => *target,
        }
    }

    fn set_target(&mut self, t: Target) {
        match self {
            Slot::Live(h) => h.set_target(t),
            Slot::Changing { target, .. } => *target = t,
        }
    }

    /// A slot being removed is gone for readers.
    fn visible(&self) -> bool {
        !matches!(self, Slot::Changing { removing: true, .. })
    }
}

/// The connectors of a worker. A `std` mutex: its guard cannot be held across an `.await` in the worker's
/// (`Send`) futures, so nothing ever waits on a connector while holding it.
type Slots = Arc<StdMutex<BTreeMap<String, Slot>>>;

/// The tasks of a connector with `tasks_max` tasks this worker runs: all of them standalone; in distributed
/// mode its share among the live workers ([`placed_tasks`]).
fn local_tasks(store: Option<&Store>, me: &str, tasks_max: u32) -> Vec<u32> {
    match store {
        None => (0..tasks_max).collect(),
        Some(store) => placed_tasks(tasks_max, &store.live_workers(), me),
    }
}

/// Starts this worker's tasks of a connector.
fn spawn_local(
    store: Option<&Store>,
    env: &Arc<Env>,
    config: ConnectorConfig,
    target: Target,
) -> ConnectorHandle {
    let ids = local_tasks(store, &env.worker_id, config.tasks_max);
    ConnectorHandle::spawn_tasks(config, Arc::clone(env), target, ids)
}

fn lock<T>(m: &StdMutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A worker.
pub struct Worker {
    env: Arc<Env>,
    plugins: Vec<Arc<dyn SinkPlugin>>,
    slots: Slots,
    /// False once shutting down: nothing new starts.
    ready: Arc<AtomicBool>,
    /// Drains in flight (see [`Worker::drain`]), awaited by [`Worker::shutdown`].
    drains: StdMutex<Vec<JoinHandle<()>>>,
    /// Woken when a drain ends, so that the reconcile loop looks again.
    kick: Arc<Notify>,
    /// Distributed mode: the group's config and status topics.
    store: Option<Arc<Store>>,
    /// Distributed mode: the store's change count the reconcile loop has acted on.
    reconciled: watch::Sender<u64>,
    /// Distributed mode: restart requests already applied here, per connector.
    restarts_seen: StdMutex<BTreeMap<String, u64>>,
    /// The Kafka cluster's id, once the broker told it.
    cluster_id: std::sync::OnceLock<String>,
}

impl Worker {
    /// A worker with the built-in plugins.
    pub fn new(env: Env) -> Worker {
        Self::with_plugins(env, sinks::builtin())
    }

    /// A worker with these plugins (to embed the runtime with sinks of your own).
    pub fn with_plugins(env: Env, plugins: Vec<Arc<dyn SinkPlugin>>) -> Worker {
        Self::build(env, plugins, None)
    }

    fn build(env: Env, plugins: Vec<Arc<dyn SinkPlugin>>, store: Option<Arc<Store>>) -> Worker {
        Worker {
            env: Arc::new(env),
            plugins,
            slots: Arc::default(),
            ready: Arc::new(AtomicBool::new(true)),
            drains: StdMutex::default(),
            kick: Arc::default(),
            store,
            reconciled: watch::channel(0).0,
            restarts_seen: StdMutex::default(),
            cluster_id: std::sync::OnceLock::new(),
        }
    }

    /// A worker of a distributed group: connectors come from the group's config topic, and REST calls on any
    /// worker write there; this worker runs every connector the topic holds, publishing its statuses.
    pub async fn distributed(
        env: Env,
        plugins: Vec<Arc<dyn SinkPlugin>>,
        config_topic: &str,
        status_topic: &str,
        replication: Option<i16>,
    ) -> Result<Arc<Worker>, String> {
        // Read to the end first: the first reconcile, and the restart requests taken as history, see all.
        let store = Store::open(
            &env.kafka,
            config_topic,
            status_topic,
            &env.worker_id,
            replication,
            Arc::clone(&env.active_topics),
        )
        .await?;
        // Topics the tasks see records of for the first time go to the status topic, in order, off the
        // pipeline's path.
        let (discovered, mut to_publish) = tokio::sync::mpsc::unbounded_channel();
        env.active_topics.publish_to(discovered);
        let publisher = Arc::clone(&store);
        tokio::spawn(async move {
            while let Some(d) = to_publish.recv().await {
                if let Err(e) = publisher.publish_topic(&d).await {
                    tracing::warn!(connector = %d.connector, topic = %d.topic, error = %e, "publishing an active topic failed");
                }
            }
        });
        let worker = Worker::build(env, plugins, Some(Arc::clone(&store)));
        // Requests from before this worker started are history, not for it.
        *lock(&worker.restarts_seen) = store
            .restarts()
            .into_iter()
            .map(|(k, r)| (k, r.count))
            .collect();
        let worker = Arc::new(worker);
        let w = Arc::downgrade(&worker);
        let mut changes = store.changes();
        tokio::spawn(async move {
            loop {
                let Some(worker) = w.upgrade() else { return };
                let seen = *changes.borrow_and_update();
                worker.reconcile(seen).await;
                let kick = Arc::clone(&worker.kick);
                drop(worker);
                tokio::select! {
                    c = changes.changed() => if c.is_err() { return },
                    () = kick.notified() => {}
                }
            }
        });
        let w = Arc::downgrade(&worker);
        tokio::spawn(async move {
            // What this worker last published per (connector, task), and when; its last heartbeat; the live
            // workers it last placed tasks by.
            let mut published: BTreeMap<(String, u32), (StatusValue, Instant)> = BTreeMap::new();
            let mut heartbeat: Option<Instant> = None;
            let mut placed_by: Vec<String> = Vec::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(worker) = w.upgrade() else { return };
                // Shutting down: `shutdown` removes this worker's statuses and heartbeat.
                if !worker.ready.load(Ordering::Acquire) {
                    return;
                }
                let Some(store) = worker.store.clone() else {
                    return;
                };
                let worker_id = worker.env.worker_id.clone();
                // The live set changed (a worker came or went): place the tasks again.
                let live = worker.live_workers();
                if live != placed_by {
                    placed_by = live;
                    worker.kick.notify_one();
                }
                let now: BTreeMap<(String, u32), StatusValue> = lock(&worker.slots)
                    .iter()
                    .filter(|(_, slot)| slot.visible())
                    .flat_map(|(n, slot)| {
                        let scrub = |t: String| slot.config().scrub(&t);
                        slot.task_statuses()
                            .into_iter()
                            .map(|(task, s)| {
                                (
                                    (n.clone(), task),
                                    StatusValue {
                                        state: s.state,
                                        trace: s.trace.map(scrub),
                                        worker_id: worker_id.clone(),
                                        updated_ms: 0,
                                        connector: Some(n.clone()),
                                        task,
                                    },
                                )
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                drop(worker);
                if heartbeat.is_none_or(|at| at.elapsed() >= WORKER_HEARTBEAT) {
                    match store.publish_worker(&worker_id, true).await {
                        Ok(()) => heartbeat = Some(Instant::now()),
                        Err(e) => {
                            tracing::warn!(error = %e, "publishing the worker's heartbeat failed")
                        }
                    }
                }
                // Tasks this worker no longer runs: their statuses go.
                let gone: Vec<(String, u32)> = published
                    .keys()
                    .filter(|k| !now.contains_key(*k))
                    .cloned()
                    .collect();
                for (name, task) in gone {
                    if store
                        .publish_status(&name, &worker_id, task, None)
                        .await
                        .is_ok()
                    {
                        published.remove(&(name, task));
                    }
                }
                // Changed ones at once, the others as heartbeats.
                for ((name, task), status) in now {
                    let key = (name, task);
                    let due = published.get(&key).is_none_or(|(last, at)| {
                        *last != status || at.elapsed() >= STATUS_HEARTBEAT
                    });
                    if !due {
                        continue;
                    }
                    let sent = StatusValue {
                        updated_ms: now_ms(),
                        ..status.clone()
                    };
                    match store
                        .publish_status(&key.0, &worker_id, task, Some(&sent))
                        .await
                    {
                        Ok(()) => {
                            published.insert(key, (status, Instant::now()));
                        }
                        Err(e) => {
                            tracing::warn!(connector = %key.0, task, error = %e, "publishing status failed")
                        }
                    }
                }
            }
        });
        Ok(worker)
    }

    /// Drains `old` on a task of its own, without the worker's lock, then starts what its slot says by then
    /// (or removes the slot). The returned receiver completes when it is done; the drain goes on if the
    /// caller stops waiting (a client that hangs up).
    fn drain(&self, name: String, old: ConnectorHandle) -> oneshot::Receiver<()> {
        let (done, finished) = oneshot::channel();
        let slots = Arc::clone(&self.slots);
        let env = Arc::clone(&self.env);
        let ready = Arc::clone(&self.ready);
        let kick = Arc::clone(&self.kick);
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            old.shutdown().await;
            {
                let mut s = lock(&slots);
                match s.remove(&name) {
                    Some(Slot::Changing {
                        config,
                        target,
                        removing: false,
                    }) if ready.load(Ordering::Acquire) => {
                        s.insert(
                            name,
                            Slot::Live(spawn_local(store.as_deref(), &env, config, target)),
                        );
                    }
                    Some(live @ Slot::Live(_)) => {
                        s.insert(name, live);
                    }
                    _ => {
                        env.telemetry.remove_connector(&name);
                    }
                }
            }
            kick.notify_one();
            let _ = done.send(());
        });
        let mut drains = lock(&self.drains);
        drains.retain(|t| !t.is_finished());
        drains.push(task);
        finished
    }

    /// Distributed mode: makes the local connectors match the config topic as applied up to change `seen`.
    /// Never waits on a connector: drains run on their own tasks, and their end wakes the loop again.
    async fn reconcile(&self, seen: u64) {
        let Some(store) = &self.store else { return };
        let desired = store.connectors();
        // New and changed configs, parsed without the lock (resolving references reads files).
        let to_parse: Vec<(String, FlatConfig)> = {
            let s = lock(&self.slots);
            desired
                .iter()
                .filter(|(n, d)| s.get(*n).is_none_or(|slot| slot.config().raw != d.config))
                .map(|(n, d)| (n.clone(), d.config.clone()))
                .collect()
        };
        let mut parsed = BTreeMap::new();
        for (name, raw) in to_parse {
            match self.parse_blocking(&raw).await {
                Ok(c) => {
                    parsed.insert(name, c);
                }
                Err(e) => {
                    tracing::error!(connector = %name, error = %e, "invalid config in the config topic")
                }
            }
        }
        let mut drains = Vec::new();
        let mut moved = Vec::new();
        {
            let mut s = lock(&self.slots);
            let gone: Vec<String> = s
                .keys()
                .filter(|k| !desired.contains_key(*k))
                .cloned()
                .collect();
            for name in gone {
                Self::retire(&mut s, &name, None, &mut drains);
            }
            for (name, d) in &desired {
                let fresh = parsed.remove(name);
                match s.get_mut(name) {
                    Some(Slot::Live(h)) if h.config.raw == d.config => {
                        if h.target() != d.target {
                            h.set_target(d.target);
                        }
                        // The live workers changed, and this worker's share of the tasks with them: only
                        // the tasks that moved start or stop; the others keep running.
                        let here =
                            local_tasks(Some(store), &self.env.worker_id, h.config.tasks_max);
                        if h.task_ids() != here {
                            moved.push((name.clone(), h.place(&here)));
                        }
                    }
                    Some(Slot::Changing {
                        config,
                        target,
                        removing,
                    }) => {
                        // The drain in flight starts what the topic says by then.
                        *target = d.target;
                        // A config that did not parse stops the connector (it is removed).
                        match fresh {
                            Some(c) => {
                                *config = c;
                                *removing = false;
                            }
                            None => *removing = config.raw != d.config,
                        }
                    }
                    Some(Slot::Live(_)) => {
                        // Changed: a valid config replaces the running one; an invalid one stops it.
                        let next = fresh.map(|c| (c, d.target));
                        Self::retire(&mut s, name, next, &mut drains);
                    }
                    None => {
                        if let Some(c) = fresh {
                            s.insert(
                                name.clone(),
                                Slot::Live(spawn_local(
                                    self.store.as_deref(),
                                    &self.env,
                                    c,
                                    d.target,
                                )),
                            );
                        }
                    }
                }
            }
            // Restart requests written by any worker.
            let mut seen_restarts = lock(&self.restarts_seen);
            for (name, r) in store.restarts() {
                let before = seen_restarts.insert(name.clone(), r.count).unwrap_or(0);
                let mine = r.worker.as_ref().is_none_or(|w| *w == self.env.worker_id);
                if r.count > before
                    && mine
                    && let Some(Slot::Live(h)) = s.get(&name)
                {
                    h.restart_where(r.task, r.only_failed);
                }
            }
        }
        for (name, old) in drains {
            // Not awaited: the drain's end wakes the loop again.
            drop(self.drain(name, old));
        }
        for (name, gone) in moved {
            self.let_go(name, gone);
        }
        self.reconciled.send_replace(seen);
    }

    /// Waits, on a task of its own, for the tasks of connector `name` that moved to another worker to drain
    /// (as [`Worker::shutdown`] waits for drains), then drops their state series.
    fn let_go(&self, name: String, gone: Vec<(u32, JoinHandle<()>)>) {
        if gone.is_empty() {
            return;
        }
        let env = Arc::clone(&self.env);
        let slots = Arc::clone(&self.slots);
        let task = tokio::spawn(async move {
            for (id, task) in gone {
                let _ = task.await;
                // Unless it came back meanwhile.
                let back = matches!(lock(&slots).get(&name), Some(Slot::Live(h)) if h.task_ids().contains(&id));
                if !back {
                    env.telemetry.remove_task(&name, id);
                }
            }
        });
        let mut drains = lock(&self.drains);
        drains.retain(|t| !t.is_finished());
        drains.push(task);
    }

    /// Takes connector `name`'s handle out of its slot, leaving the slot `Changing` towards `next` (removed
    /// when `None`); the handle goes to `drains`. A slot already changing is redirected.
    fn retire(
        s: &mut BTreeMap<String, Slot>,
        name: &str,
        next: Option<(ConnectorConfig, Target)>,
        drains: &mut Vec<(String, ConnectorHandle)>,
    ) {
        let Some(slot) = s.remove(name) else { return };
        let (old, config, target) = match slot {
            Slot::Live(h) => {
                let (config, target) = (h.config.clone(), h.target());
                (Some(h), config, target)
            }
            Slot::Changing { config, target, .. } => (None, config, target),
        };
        let removing = next.is_none();
        let (config, target) = next.unwrap_or((config, target));
        s.insert(
            name.to_owned(),
            Slot::Changing {
                config,
                target,
                removing,
            },
        );
        if let Some(old) = old {
            drains.push((name.to_owned(), old));
        }
    }

    /// Creates (`create_only`: only) or replaces a connector; a new one starts in `initial`, a replaced one
    /// keeps its target state. Returns whether it was created.
    async fn put(
        &self,
        name: String,
        mut config: FlatConfig,
        create_only: bool,
        initial: Target,
    ) -> Result<(bool, ConnectorInfo), ApiError> {
        config.entry("name".into()).or_insert_with(|| name.clone());
        if config.get("name") != Some(&name) {
            return Err(ApiError::BadRequest(
                "Connector name configuration must match connector name".into(),
            ));
        }
        let parsed = self.parse_blocking(&config).await?;
        if let Some(store) = &self.store {
            let exists = store.connectors().contains_key(&name);
            if create_only && exists {
                return Err(ApiError::Conflict(format!(
                    "Connector {name} already exists"
                )));
            }
            // A target state other than RUNNING is written first: no worker runs the connector before.
            if !exists && initial != Target::Running {
                self.write(
                    store,
                    ConfigRecord::Target {
                        name: name.clone(),
                        target: initial,
                    },
                )
                .await?;
            }
            self.write(
                store,
                ConfigRecord::Connector {
                    name: name.clone(),
                    config: Some(config),
                },
            )
            .await?;
            let info = self
                .with_slot(&name, |slot| self.slot_info(slot))
                .map_err(|_| {
                    ApiError::Internal(format!(
                        "connector {name} was written but is not running here"
                    ))
                })?;
            return Ok((!exists, info));
        }
        let old = {
            let mut s = lock(&self.slots);
            match s.get(&name) {
                Some(slot) if !slot.visible() => {
                    return Err(ApiError::Conflict(format!(
                        "Connector {name} is being deleted; try again once it is gone"
                    )));
                }
                Some(Slot::Changing { .. }) => {
                    return Err(ApiError::Conflict(format!(
                        "Connector {name} is being reconfigured; try again once its old task has stopped"
                    )));
                }
                Some(Slot::Live(_)) if create_only => {
                    return Err(ApiError::Conflict(format!(
                        "Connector {name} already exists"
                    )));
                }
                Some(Slot::Live(h)) => {
                    let target = h.target();
                    let info = self.info(&parsed, target);
                    let mut drains = Vec::new();
                    Self::retire(&mut s, &name, Some((parsed, target)), &mut drains);
                    (drains.pop().map(|(_, h)| h), info)
                }
                None => {
                    let info = self.info(&parsed, initial);
                    let handle = spawn_local(self.store.as_deref(), &self.env, parsed, initial);
                    s.insert(name, Slot::Live(handle));
                    return Ok((true, info));
                }
            }
        };
        let (old, info) = old;
        // The old task drains without the lock; the new one starts after it.
        if let Some(old) = old {
            let _ = self.drain(name, old).await;
        }
        Ok((false, info))
    }

    /// Pause, resume or stop (a stopped connector stays stopped on pause, as in Kafka Connect).
    async fn set_target(&self, name: &str, target: Target) -> Result<(), ApiError> {
        if let Some(store) = &self.store {
            let current = store
                .connectors()
                .get(name)
                .map(|d| d.target)
                .ok_or_else(|| Self::not_found(name))?;
            if target == Target::Paused && current == Target::Stopped {
                return Ok(());
            }
            return self
                .write(
                    store,
                    ConfigRecord::Target {
                        name: name.to_owned(),
                        target,
                    },
                )
                .await;
        }
        let mut s = lock(&self.slots);
        let slot = s
            .get_mut(name)
            .filter(|slot| slot.visible())
            .ok_or_else(|| Self::not_found(name))?;
        if !(target == Target::Paused && slot.target() == Target::Stopped) {
            slot.set_target(target);
        }
        Ok(())
    }

    /// Distributed mode: writes a record and waits until this worker's reconcile loop has acted on it (it
    /// never waits on a connector's drain), so the answer reflects the write.
    async fn write(&self, store: &Store, record: ConfigRecord) -> Result<(), ApiError> {
        store.write(record).await.map_err(ApiError::Internal)?;
        let wanted = *store.changes().borrow();
        let mut reconciled = self.reconciled.subscribe();
        tokio::time::timeout(
            Duration::from_secs(30),
            reconciled.wait_for(|r| *r >= wanted),
        )
        .await
        .map_err(|_| {
            ApiError::Internal(
                "the config topic was written but this worker did not act on it within 30 s".into(),
            )
        })?
        .map_err(|_| ApiError::Internal("the worker is shutting down".into()))?;
        Ok(())
    }

    /// The environment back, to build a worker of another kind with it.
    pub fn into_env(self: Arc<Self>) -> Env {
        match Arc::try_unwrap(self) {
            Ok(w) => match Arc::try_unwrap(w.env) {
                Ok(env) => env,
                Err(env) => env.duplicate(),
            },
            Err(w) => w.env.duplicate(),
        }
    }

    /// The telemetry.
    pub fn telemetry(&self) -> &Telemetry {
        &self.env.telemetry
    }

    /// Parses, resolves and validates a flat connector config (see [`parse_config`]).
    pub fn parse(&self, raw: &FlatConfig) -> Result<ConnectorConfig, ApiError> {
        parse_config(&self.plugins, raw)
    }

    /// [`Worker::parse`] off the async threads (resolving references reads files).
    async fn parse_blocking(&self, raw: &FlatConfig) -> Result<ConnectorConfig, ApiError> {
        let plugins = self.plugins.clone();
        let raw = raw.clone();
        tokio::task::spawn_blocking(move || parse_config(&plugins, &raw))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// What `f` answers for visible connector `name` (under the lock: `f` must not wait).
    fn with_slot<T>(&self, name: &str, f: impl FnOnce(&Slot) -> T) -> Result<T, ApiError> {
        lock(&self.slots)
            .get(name)
            .filter(|slot| slot.visible())
            .map(f)
            .ok_or_else(|| Self::not_found(name))
    }

    /// The connector's info: a STOPPED connector has no tasks (as in Kafka Connect).
    fn info(&self, config: &ConnectorConfig, target: Target) -> ConnectorInfo {
        ConnectorInfo {
            name: config.name.clone(),
            config: config.redacted(),
            tasks: if target == Target::Stopped {
                Vec::new()
            } else {
                (0..config.tasks_max)
                    .map(|task| TaskId {
                        connector: config.name.clone(),
                        task,
                    })
                    .collect()
            },
            kind: "sink".into(),
        }
    }

    fn slot_info(&self, slot: &Slot) -> ConnectorInfo {
        self.info(slot.config(), slot.target())
    }

    /// The connector's status: its task's (none once STOPPED), and the connector's own, RUNNING while its
    /// task fails or restarts (Kafka Connect reports the connector instance apart from its tasks).
    fn status_of(&self, slot: &Slot) -> ConnectorStatus {
        let s = slot.status();
        let config = slot.config();
        let version = Some(env!("CARGO_PKG_VERSION").to_owned());
        let info = |st: Status| StateInfo {
            state: st.state,
            worker_id: self.env.worker_id.clone(),
            trace: st.trace.map(|t| config.scrub(&t)),
            version: version.clone(),
        };
        let stopped = s.state == State::Stopped && slot.target() == Target::Stopped;
        let tasks = match slot {
            _ if stopped => Vec::new(),
            Slot::Live(h) => h
                .task_statuses()
                .into_iter()
                .map(|(id, st)| TaskStatus {
                    id,
                    state: info(st),
                })
                .collect(),
            // Draining towards a restart: this worker's tasks are restarting.
            Slot::Changing { .. } => {
                local_tasks(self.store.as_deref(), &self.env.worker_id, config.tasks_max)
                    .into_iter()
                    .map(|id| TaskStatus {
                        id,
                        state: info(s.clone()),
                    })
                    .collect()
            }
        };
        ConnectorStatus {
            name: config.name.clone(),
            connector: StateInfo {
                trace: None,
                state: match s.state {
                    State::Failed | State::Restarting => State::Running,
                    other => other,
                },
                ..info(s.clone())
            },
            tasks,
            kind: "sink".into(),
        }
    }

    /// The live workers of the group, this one included, by id (standalone: this one).
    fn live_workers(&self) -> Vec<String> {
        let mut live = self
            .store
            .as_ref()
            .map(|s| s.live_workers())
            .unwrap_or_default();
        live.push(self.env.worker_id.clone());
        live.sort_unstable();
        live.dedup();
        live
    }

    /// Stops every connector, each draining within the worker's deadline, committing and leaving its group;
    /// waits for drains already in flight too.
    pub async fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let all: Vec<ConnectorHandle> = std::mem::take(&mut *lock(&self.slots))
            .into_values()
            .filter_map(|slot| match slot {
                Slot::Live(h) => Some(h),
                Slot::Changing { .. } => None,
            })
            .collect();
        let waits: Vec<_> = all
            .into_iter()
            .map(|h| tokio::spawn(h.shutdown()))
            .collect();
        let drains = std::mem::take(&mut *lock(&self.drains));
        for w in waits.into_iter().chain(drains) {
            let _ = w.await;
        }
        // Distributed: this worker's statuses and heartbeat go, so the others do not report its tasks any more
        // and take them over at once.
        if let Some(store) = &self.store
            && let Err(e) = store.remove_own(&self.env.worker_id).await
        {
            tracing::warn!(error = %e, "removing this worker's statuses failed");
        }
    }

    /// The Kafka cluster's id from the broker's metadata (asked once, off the async threads; `None` while
    /// the broker does not answer).
    async fn cluster_id(&self) -> Option<String> {
        if let Some(id) = self.cluster_id.get() {
            return Some(id.clone());
        }
        let kafka = self.env.kafka.clone();
        let id = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = kafka.create().ok()?;
            consumer.client().fetch_cluster_id(Duration::from_secs(5))
        })
        .await
        .ok()
        .flatten()?;
        Some(self.cluster_id.get_or_init(|| id).clone())
    }

    fn not_found(name: &str) -> ApiError {
        ApiError::NotFound(format!("Connector {name} not found"))
    }

    fn group_consumer(&self, group: &str) -> Result<BaseConsumer, ApiError> {
        self.env
            .kafka
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| ApiError::Internal(e.to_string()))
    }

    /// Forgets connector `name`'s active topics: here (standalone), or on every worker through tombstones in
    /// the status topic, read back before this returns (distributed).
    async fn forget_topics(&self, name: &str) -> Result<(), ApiError> {
        let active = &self.env.active_topics;
        match &self.store {
            None => {
                active.forget(name);
                Ok(())
            }
            Some(store) => store
                .forget_topics(name, &active.of(name))
                .await
                .map_err(ApiError::Internal),
        }
    }

    /// Every partition of the connector's topics.
    fn partitions(
        &self,
        consumer: &BaseConsumer,
        sub: &Subscription,
    ) -> Result<TopicPartitionList, ApiError> {
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let wanted = sub.matcher();
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            if wanted(t.name()) {
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        Ok(tpl)
    }
}

impl ConnectApi for Worker {
    fn server_info(&self) -> BoxFuture<'_, ServerInfo> {
        Box::pin(async {
            ServerInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                commit: option_env!("URSA_COMMIT").unwrap_or("unknown").into(),
                kafka_cluster_id: self.cluster_id().await,
            }
        })
    }

    fn connectors(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async {
            lock(&self.slots)
                .iter()
                .filter(|(_, slot)| slot.visible())
                .map(|(n, _)| n.clone())
                .collect()
        })
    }

    fn put_connector(
        &self,
        name: String,
        config: FlatConfig,
        create_only: bool,
    ) -> BoxFuture<'_, Result<(bool, ConnectorInfo), ApiError>> {
        Box::pin(async move { self.put(name, config, create_only, Target::Running).await })
    }

    fn create_connector(
        &self,
        name: String,
        config: FlatConfig,
        initial: State,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            let target = match initial {
                State::Paused => Target::Paused,
                State::Stopped => Target::Stopped,
                _ => Target::Running,
            };
            Ok(self.put(name, config, true, target).await?.1)
        })
    }

    fn patch_connector(
        &self,
        name: String,
        patch: BTreeMap<String, Option<String>>,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            let mut config = match &self.store {
                Some(store) => store
                    .connectors()
                    .get(&name)
                    .map(|d| d.config.clone())
                    .ok_or_else(|| Self::not_found(&name))?,
                None => self.with_slot(&name, |slot| slot.config().raw.clone())?,
            };
            for (key, value) in patch {
                match value {
                    Some(v) => config.insert(key, v),
                    None => config.remove(&key),
                };
            }
            Ok(self.put(name, config, false, Target::Running).await?.1)
        })
    }

    fn restart_task(&self, name: String, task: u32) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let status = self.status(name.clone()).await?;
            let Some(found) = status.tasks.iter().find(|t| t.id == task) else {
                return Err(ApiError::NotFound(format!("Task {name}-{task} not found")));
            };
            if let Some(store) = &self.store {
                return self
                    .write(
                        store,
                        ConfigRecord::Restart {
                            name: name.clone(),
                            only_failed: false,
                            nonce: nonce(),
                            worker: Some(found.state.worker_id.clone()),
                            task: Some(task),
                        },
                    )
                    .await;
            }
            self.with_slot(&name, |slot| {
                if let Slot::Live(h) = slot {
                    h.restart_task(task);
                }
            })
        })
    }

    fn reset_topics(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let active = &self.env.active_topics;
            if !active.enabled() {
                return Err(ApiError::Forbidden("Topic tracking is disabled.".into()));
            }
            if !active.allow_reset() {
                return Err(ApiError::Forbidden(
                    "Topic tracking reset is disabled.".into(),
                ));
            }
            self.with_slot(&name, |_| ())?;
            self.forget_topics(&name).await
        })
    }

    fn plugin_config(&self, plugin: String) -> Result<Vec<serde_json::Value>, ApiError> {
        let p = self
            .plugins
            .iter()
            .find(|p| p.name() == plugin || p.aliases().contains(&plugin.as_str()))
            .ok_or_else(|| ApiError::NotFound(format!("Connector plugin {plugin} not found")))?;
        Ok(definitions(p.as_ref()))
    }

    fn connector(&self, name: String) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            let mut info = self.with_slot(&name, |slot| self.slot_info(slot))?;
            if self.store.is_some() {
                info.tasks = self
                    .status(name.clone())
                    .await?
                    .tasks
                    .iter()
                    .map(|t| TaskId {
                        connector: name.clone(),
                        task: t.id,
                    })
                    .collect();
            }
            Ok(info)
        })
    }

    fn status(&self, name: String) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move {
            let mut status = self.with_slot(&name, |slot| self.status_of(slot))?;
            if let Some(store) = &self.store {
                // Every task that runs, by id: this worker's from their live state, the others' as their
                // workers last published them (a stopped worker removed its own; a killed one's expire). While
                // two workers briefly both run a task (one joining or leaving), this worker's wins, else the
                // fresher.
                let mut tasks: BTreeMap<u32, (u64, StateInfo)> = status
                    .tasks
                    .drain(..)
                    .map(|t| (t.id, (u64::MAX, t.state)))
                    .collect();
                for s in store.statuses(&name) {
                    if s.worker_id == self.env.worker_id || s.state == State::Stopped {
                        continue;
                    }
                    let fresher = tasks.get(&s.task).is_none_or(|(at, _)| *at < s.updated_ms);
                    if fresher {
                        tasks.insert(
                            s.task,
                            (
                                s.updated_ms,
                                StateInfo {
                                    state: s.state,
                                    worker_id: s.worker_id,
                                    trace: s.trace,
                                    version: Some(env!("CARGO_PKG_VERSION").to_owned()),
                                },
                            ),
                        );
                    }
                }
                status.tasks = tasks
                    .into_iter()
                    .map(|(id, (_, state))| TaskStatus { id, state })
                    .collect();
            }
            Ok(status)
        })
    }

    fn tasks(&self, name: String) -> BoxFuture<'_, Result<Vec<TaskInfo>, ApiError>> {
        Box::pin(async move {
            let config = self.with_slot(&name, |slot| slot.config().redacted())?;
            let status = self.status(name.clone()).await?;
            Ok(status
                .tasks
                .iter()
                .map(|t| TaskInfo {
                    id: TaskId {
                        connector: name.clone(),
                        task: t.id,
                    },
                    config: config.clone(),
                })
                .collect())
        })
    }

    fn pause(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { self.set_target(&name, Target::Paused).await })
    }

    fn resume(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { self.set_target(&name, Target::Running).await })
    }

    fn stop(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { self.set_target(&name, Target::Stopped).await })
    }

    /// Kafka Connect's rules (KIP-745), for a runtime whose connector has no instance apart from its tasks:
    /// with `includeTasks`, the tasks restart (only the FAILED ones with `onlyFailed`); without it, the
    /// connector restarts, which here means its tasks too, unless `onlyFailed` (the connector itself never
    /// fails). The answer shows RESTARTING for what restarts.
    fn restart(
        &self,
        name: String,
        include_tasks: bool,
        only_failed: bool,
    ) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move {
            let mut status = self.status(name.clone()).await?;
            let restarts_tasks = include_tasks || !only_failed;
            let failed_only = include_tasks && only_failed;
            if restarts_tasks {
                if let Some(store) = &self.store {
                    // Every worker restarts its task when it reads the request (this one included).
                    self.write(
                        store,
                        ConfigRecord::Restart {
                            name: name.clone(),
                            only_failed: failed_only,
                            nonce: nonce(),
                            worker: None,
                            task: None,
                        },
                    )
                    .await?;
                } else {
                    self.with_slot(&name, |slot| {
                        if let Slot::Live(h) = slot {
                            h.restart_where(None, failed_only);
                        }
                    })?;
                }
                for t in &mut status.tasks {
                    if !failed_only || t.state.state == State::Failed {
                        t.state.state = State::Restarting;
                        t.state.trace = None;
                    }
                }
            }
            if !only_failed {
                status.connector.state = State::Restarting;
            }
            Ok(status)
        })
    }

    fn delete(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            if let Some(store) = &self.store {
                if !store.connectors().contains_key(&name) {
                    return Err(Self::not_found(&name));
                }
                self.write(
                    store,
                    ConfigRecord::Connector {
                        name: name.clone(),
                        config: None,
                    },
                )
                .await?;
                // Then its target state: a connector created again under this name starts RUNNING, and with
                // no active topics.
                self.write(store, ConfigRecord::ClearTarget { name: name.clone() })
                    .await?;
                return self.forget_topics(&name).await;
            }
            let old = {
                let mut s = lock(&self.slots);
                match s.get(&name) {
                    None => return Err(Self::not_found(&name)),
                    Some(slot) if !slot.visible() => return Err(Self::not_found(&name)),
                    Some(Slot::Changing { .. }) => {
                        return Err(ApiError::Conflict(format!(
                            "Connector {name} is being reconfigured; try again once its old task has stopped"
                        )));
                    }
                    Some(Slot::Live(_)) => {
                        let mut drains = Vec::new();
                        Self::retire(&mut s, &name, None, &mut drains);
                        drains.pop().map(|(_, h)| h)
                    }
                }
            };
            // Gone for readers at once; the task drains without the lock.
            if let Some(old) = old {
                let _ = self.drain(name.clone(), old).await;
            }
            self.forget_topics(&name).await
        })
    }

    fn topics(&self, name: String) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        Box::pin(async move {
            if !self.env.active_topics.enabled() {
                return Err(ApiError::Forbidden("Topic tracking is disabled.".into()));
            }
            self.with_slot(&name, |_| ())?;
            Ok(self.env.active_topics.of(&name))
        })
    }

    fn offsets(&self, name: String) -> BoxFuture<'_, Result<Offsets, ApiError>> {
        Box::pin(async move {
            let (group, sub) = self.with_slot(&name, |slot| {
                let c = slot.config();
                (c.group_id.clone(), c.subscription.clone())
            })?;
            let consumer = self.group_consumer(&group)?;
            let committed = tokio::task::block_in_place(|| {
                let tpl = self.partitions(&consumer, &sub)?;
                consumer
                    .committed_offsets(tpl, Duration::from_secs(10))
                    .map_err(|e| ApiError::Internal(e.to_string()))
            })?;
            let offsets = committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(PartitionOffset {
                        partition: BTreeMap::from([
                            ("kafka_topic".to_owned(), serde_json::Value::from(e.topic())),
                            (
                                "kafka_partition".to_owned(),
                                serde_json::Value::from(e.partition()),
                            ),
                        ]),
                        offset: Some(BTreeMap::from([(
                            "kafka_offset".to_owned(),
                            serde_json::Value::from(o),
                        )])),
                    }),
                    _ => None,
                })
                .collect();
            Ok(Offsets { offsets })
        })
    }

    fn alter_offsets(&self, name: String, offsets: Offsets) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (state, group) = self.with_slot(&name, |slot| {
                (slot.status().state, slot.config().group_id.clone())
            })?;
            if state != State::Stopped {
                return Err(ApiError::BadRequest(format!(
                    "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
                )));
            }
            let consumer = self.group_consumer(&group)?;
            let mut tpl = TopicPartitionList::new();
            for o in &offsets.offsets {
                let topic = o
                    .partition
                    .get("kafka_topic")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        ApiError::BadRequest("each partition needs kafka_topic".into())
                    })?;
                let partition = o
                    .partition
                    .get("kafka_partition")
                    .and_then(serde_json::Value::as_i64)
                    .ok_or_else(|| {
                        ApiError::BadRequest("each partition needs kafka_partition".into())
                    })?;
                let partition = i32::try_from(partition)
                    .map_err(|_| ApiError::BadRequest("kafka_partition out of range".into()))?;
                let offset = match &o.offset {
                    Some(m) => m
                        .get("kafka_offset")
                        .and_then(serde_json::Value::as_i64)
                        .ok_or_else(|| ApiError::BadRequest("offset needs kafka_offset".into()))?,
                    None => {
                        // A null offset resets the partition: start from the earliest record.
                        tokio::task::block_in_place(|| {
                            consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))
                        })
                        .map_err(|e| ApiError::Internal(e.to_string()))?
                        .0
                    }
                };
                tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            }
            // A STOPPED connector's consumer may still be leaving its group: the broker refuses a commit
            // from outside the group until it has left, so try again for a while.
            let deadline = Instant::now() + GROUP_LEAVE;
            let mut pause = Duration::from_millis(50);
            loop {
                match tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync)) {
                    Ok(()) => return Ok(()),
                    Err(rdkafka::error::KafkaError::ConsumerCommit(code))
                        if group_still_active(code) && Instant::now() < deadline =>
                    {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_millis(500));
                    }
                    Err(e) => {
                        return Err(ApiError::Internal(format!(
                            "committing the offsets of group {group}: {e}"
                        )));
                    }
                }
            }
        })
    }

    fn reset_offsets(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let (state, group) = self.with_slot(&name, |slot| {
                (slot.status().state, slot.config().group_id.clone())
            })?;
            if state != State::Stopped {
                return Err(ApiError::BadRequest(format!(
                    "Connectors must be in the STOPPED state before their offsets can be reset. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
                )));
            }
            let admin: AdminClient<DefaultClientContext> = self
                .env
                .kafka
                .create()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            // As for a commit: the group can be deleted once the stopped consumer has left it.
            let deadline = Instant::now() + GROUP_LEAVE;
            let mut pause = Duration::from_millis(50);
            loop {
                let results = admin
                    .delete_groups(
                        &[group.as_str()],
                        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                    )
                    .await
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                let mut retry = false;
                for r in results {
                    match r {
                        Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                        Err((_, code)) if group_still_active(code) && Instant::now() < deadline => {
                            retry = true;
                        }
                        Err((g, code)) => {
                            return Err(ApiError::Internal(format!(
                                "deleting the offsets of group {g}: {code}"
                            )));
                        }
                    }
                }
                if !retry {
                    return Ok(());
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(500));
            }
        })
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        self.plugins
            .iter()
            .map(|p| PluginInfo {
                class: p.name().into(),
                kind: "sink".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            })
            .collect()
    }

    fn validate(&self, plugin: String, config: FlatConfig) -> Result<ValidationResult, ApiError> {
        let p = self
            .plugins
            .iter()
            .find(|p| p.name() == plugin || p.aliases().contains(&plugin.as_str()))
            .ok_or_else(|| ApiError::NotFound(format!("Connector plugin {plugin} not found")))?;
        let (resolved, unresolved) = resolve_each(&config);
        let mut result = validate_config(p.as_ref(), &self.plugins, &resolved);
        // Show what was sent (references, redacted secrets), never resolved values, in values and errors.
        let shown = super::config::connector::redact(&config, Some(p.as_ref()));
        let hidden = Hidden::new(&config, &resolved, Some(p.as_ref()));
        for c in &mut result.configs {
            let name = c
                .value
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned);
            let Some(name) = name else { continue };
            if let Some(v) = c.value.get_mut("value")
                && config.contains_key(&name)
            {
                *v = serde_json::Value::from(shown.get(&name).cloned());
            }
            if let Some(errors) = c.value.get_mut("errors").and_then(|e| e.as_array_mut()) {
                for e in errors.iter_mut() {
                    if let Some(text) = e.as_str() {
                        *e = serde_json::Value::from(hidden.message(&name, text));
                    }
                }
            }
        }
        for (key, errors) in unresolved {
            result.set_errors(&key, shown.get(&key).map(String::as_str), errors);
        }
        Ok(result)
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let ready = self.ready.load(Ordering::Acquire);
            let connectors: BTreeMap<String, State> = lock(&self.slots)
                .iter()
                .filter(|(_, slot)| slot.visible())
                .map(|(n, slot)| (n.clone(), slot.status().state))
                .collect();
            let failed: Vec<&str> = connectors
                .iter()
                .filter(|(_, s)| **s == State::Failed)
                .map(|(n, _)| n.as_str())
                .collect();
            let (status, message) = if !ready {
                ("unhealthy", "worker is shutting down".to_owned())
            } else if failed.is_empty() {
                ("healthy", "worker is running".to_owned())
            } else {
                (
                    "degraded",
                    format!("worker is running; failed: {}", failed.join(", ")),
                )
            };
            Health {
                status: status.into(),
                ready,
                message,
                connectors,
            }
        })
    }

    fn metrics(&self) -> String {
        self.env.telemetry.render()
    }
}
