//! A worker: runs connectors, answers the REST API, and shuts down draining every connector. In standalone
//! mode connectors come from files (REST changes live until the worker stops).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Mutex;

use super::api::{
    ApiError, BoxFuture, ConnectApi, ConnectorInfo, ConnectorStatus, FlatConfig, Health, Offsets,
    PartitionOffset, PluginInfo, ServerInfo, State, StateInfo, TaskId, TaskInfo, TaskStatus,
    ValidationResult,
};
use super::config::connector::validate as validate_config;
use super::config::{ConnectorConfig, Secret, Subscription};
use super::connector::{ConnectorHandle, Env};
use super::distributed::{ConfigRecord, StatusValue, Store};
use super::pipeline::Target;
use super::sink::SinkPlugin;
use super::sinks;
use super::telemetry::Telemetry;

/// Resolves `${env:…}` and `${file:…}` references in a flat config (the stored config keeps the references).
pub fn resolve_references(raw: &FlatConfig) -> Result<FlatConfig, String> {
    raw.iter()
        .map(|(k, v)| {
            if v.starts_with("${env:") || v.starts_with("${file:") {
                let mut s = Secret::parse(v);
                s.resolve().map_err(|e| format!("{k}: {e}"))?;
                Ok((k.clone(), s.expose().unwrap_or_default().to_owned()))
            } else {
                Ok((k.clone(), v.clone()))
            }
        })
        .collect()
}

/// Formats per-key errors as one message (`key: error; …`).
pub fn describe_errors(errors: &BTreeMap<String, Vec<String>>) -> String {
    errors
        .iter()
        .map(|(k, es)| format!("{k}: {}", es.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A worker.
pub struct Worker {
    env: Arc<Env>,
    plugins: Vec<Arc<dyn SinkPlugin>>,
    connectors: Mutex<BTreeMap<String, ConnectorHandle>>,
    ready: AtomicBool,
    /// Distributed mode: the group's config and status topics.
    store: Option<Arc<Store>>,
    /// Distributed mode: restart requests already applied here, per connector.
    restarts_seen: std::sync::Mutex<BTreeMap<String, u64>>,
}

impl Worker {
    /// A worker with the built-in plugins.
    pub fn new(env: Env) -> Worker {
        Self::with_plugins(env, sinks::builtin())
    }

    /// A worker with these plugins (to embed the runtime with sinks of your own).
    pub fn with_plugins(env: Env, plugins: Vec<Arc<dyn SinkPlugin>>) -> Worker {
        Worker {
            env: Arc::new(env),
            plugins,
            connectors: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(true),
            store: None,
            restarts_seen: Default::default(),
        }
    }

    /// A worker of a distributed group: connectors come from the group's config topic, and REST calls on any
    /// worker write there; this worker runs every connector the topic holds, publishing its statuses.
    pub async fn distributed(
        env: Env,
        plugins: Vec<Arc<dyn SinkPlugin>>,
        config_topic: &str,
        status_topic: &str,
    ) -> Result<Arc<Worker>, String> {
        let store = Store::open(&env.kafka, config_topic, status_topic, &env.worker_id).await?;
        let worker = Arc::new(Worker {
            env: Arc::new(env),
            plugins,
            connectors: Mutex::new(BTreeMap::new()),
            ready: AtomicBool::new(true),
            store: Some(Arc::clone(&store)),
            // Requests from before this worker started are history, not for it.
            restarts_seen: std::sync::Mutex::new(
                store
                    .restarts()
                    .into_iter()
                    .map(|(k, (n, _))| (k, n))
                    .collect(),
            ),
        });
        let w = Arc::downgrade(&worker);
        let mut changes = store.changes();
        tokio::spawn(async move {
            loop {
                let Some(worker) = w.upgrade() else { return };
                worker.reconcile().await;
                drop(worker);
                if changes.changed().await.is_err() {
                    return;
                }
            }
        });
        let w = Arc::downgrade(&worker);
        tokio::spawn(async move {
            let mut published: BTreeMap<String, StatusValue> = BTreeMap::new();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                let Some(worker) = w.upgrade() else { return };
                let Some(store) = worker.store.clone() else {
                    return;
                };
                let now: Vec<(String, StatusValue)> = worker
                    .connectors
                    .lock()
                    .await
                    .iter()
                    .map(|(n, h)| {
                        let s = h.status();
                        (
                            n.clone(),
                            StatusValue {
                                state: s.state,
                                trace: s.trace,
                                worker_id: worker.env.worker_id.clone(),
                            },
                        )
                    })
                    .collect();
                drop(worker);
                for (name, status) in now {
                    if published.get(&name) != Some(&status) {
                        match store.publish_status(&name, &status).await {
                            Ok(()) => {
                                published.insert(name, status);
                            }
                            Err(e) => {
                                tracing::warn!(connector = %name, error = %e, "publishing status failed")
                            }
                        }
                    }
                }
            }
        });
        Ok(worker)
    }

    /// Distributed mode: makes the local connectors match the config topic.
    async fn reconcile(&self) {
        let Some(store) = &self.store else { return };
        let desired = store.connectors();
        let mut local = self.connectors.lock().await;
        let gone: Vec<String> = local
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for name in gone {
            if let Some(h) = local.remove(&name) {
                h.shutdown().await;
                self.env.telemetry.remove_connector(&name);
            }
        }
        for (name, d) in desired {
            if let Some(h) = local.get(&name)
                && h.config.raw == d.config
            {
                if h.target() != d.target {
                    h.set_target(d.target);
                }
                continue;
            }
            if let Some(old) = local.remove(&name) {
                old.shutdown().await;
            }
            match self.parse(&d.config) {
                Ok(cfg) => {
                    local.insert(
                        name,
                        ConnectorHandle::spawn(cfg, Arc::clone(&self.env), d.target),
                    );
                }
                Err(e) => {
                    tracing::error!(connector = %name, error = %e, "invalid config in the config topic")
                }
            }
        }
        // Restart requests written by any worker.
        if let Ok(mut seen) = self.restarts_seen.lock() {
            for (name, (count, only_failed)) in store.restarts() {
                let before = seen.insert(name.clone(), count).unwrap_or(0);
                if count > before
                    && let Some(h) = local.get(&name)
                    && (!only_failed || h.status().state == State::Failed)
                {
                    h.restart();
                }
            }
        }
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
        let c = self.connectors.lock().await;
        let h = c.get(name).ok_or_else(|| Self::not_found(name))?;
        if !(target == Target::Paused && h.target() == Target::Stopped) {
            h.set_target(target);
        }
        Ok(())
    }

    /// Distributed mode: writes a record and applies it here before answering.
    async fn write(&self, store: &Store, record: ConfigRecord) -> Result<(), ApiError> {
        store.write(record).await.map_err(ApiError::Internal)?;
        self.reconcile().await;
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

    /// Parses, resolves and validates a flat connector config.
    pub fn parse(&self, raw: &FlatConfig) -> Result<ConnectorConfig, ApiError> {
        let resolved = resolve_references(raw).map_err(ApiError::BadRequest)?;
        let mut config = ConnectorConfig::parse(&resolved, &self.plugins).map_err(|e| {
            ApiError::BadRequest(format!(
                "Connector configuration is invalid: {}",
                describe_errors(&e)
            ))
        })?;
        config.raw = raw.clone();
        Ok(config)
    }

    fn info(&self, h: &ConnectorHandle) -> ConnectorInfo {
        ConnectorInfo {
            name: h.config.name.clone(),
            config: h.config.redacted(),
            tasks: vec![TaskId {
                connector: h.config.name.clone(),
                task: 0,
            }],
            kind: "sink".into(),
        }
    }

    fn status_of(&self, h: &ConnectorHandle) -> ConnectorStatus {
        let s = h.status();
        let info = StateInfo {
            state: s.state,
            worker_id: self.env.worker_id.clone(),
            trace: s.trace,
        };
        ConnectorStatus {
            name: h.config.name.clone(),
            connector: StateInfo {
                trace: None,
                state: if s.state == State::Failed {
                    State::Running
                } else {
                    info.state
                },
                ..info.clone()
            },
            tasks: vec![TaskStatus { id: 0, state: info }],
            kind: "sink".into(),
        }
    }

    /// Stops every connector, each draining within the worker's deadline, committing and leaving its group.
    pub async fn shutdown(&self) {
        self.ready.store(false, Ordering::Release);
        let all: Vec<ConnectorHandle> = std::mem::take(&mut *self.connectors.lock().await)
            .into_values()
            .collect();
        let waits: Vec<_> = all
            .into_iter()
            .map(|h| tokio::spawn(h.shutdown()))
            .collect();
        for w in waits {
            let _ = w.await;
        }
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

    /// Every partition of the connector's topics.
    fn partitions(
        &self,
        consumer: &BaseConsumer,
        sub: &Subscription,
    ) -> Result<TopicPartitionList, ApiError> {
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let regex = match sub {
            Subscription::Regex(r) => Some(regex_lite(r)),
            Subscription::Topics(_) => None,
        };
        let mut tpl = TopicPartitionList::new();
        for t in md.topics() {
            let wanted = match (sub, &regex) {
                (Subscription::Topics(ts), _) => ts.iter().any(|x| x == t.name()),
                (Subscription::Regex(_), Some(f)) => f(t.name()),
                _ => false,
            };
            if wanted {
                for p in t.partitions() {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        Ok(tpl)
    }
}

/// A matcher for the simple regexes topic subscriptions use (`^prefix.*`, literal names, `a|b`).
fn regex_lite(r: &str) -> Box<dyn Fn(&str) -> bool + Send + Sync> {
    let body = r.trim_start_matches('^').trim_end_matches('$').to_owned();
    let alternatives: Vec<String> = body.split('|').map(str::to_owned).collect();
    Box::new(move |name: &str| {
        alternatives.iter().any(|a| match a.strip_suffix(".*") {
            Some(prefix) => name.starts_with(&prefix.replace("\\.", ".")),
            None => name == a.replace("\\.", "."),
        })
    })
}

impl ConnectApi for Worker {
    fn server_info(&self) -> BoxFuture<'_, ServerInfo> {
        Box::pin(async {
            ServerInfo {
                version: env!("CARGO_PKG_VERSION").into(),
                commit: option_env!("URSA_COMMIT").unwrap_or("unknown").into(),
                kafka_cluster_id: None,
            }
        })
    }

    fn connectors(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { self.connectors.lock().await.keys().cloned().collect() })
    }

    fn put_connector(
        &self,
        name: String,
        mut config: FlatConfig,
        create_only: bool,
    ) -> BoxFuture<'_, Result<(bool, ConnectorInfo), ApiError>> {
        Box::pin(async move {
            config.entry("name".into()).or_insert_with(|| name.clone());
            if config.get("name") != Some(&name) {
                return Err(ApiError::BadRequest(
                    "Connector name configuration must match connector name".into(),
                ));
            }
            let parsed = self.parse(&config)?;
            if let Some(store) = &self.store {
                let exists = store.connectors().contains_key(&name);
                if create_only && exists {
                    return Err(ApiError::Conflict(format!(
                        "Connector {name} already exists"
                    )));
                }
                self.write(
                    store,
                    ConfigRecord::Connector {
                        name: name.clone(),
                        config: Some(config),
                    },
                )
                .await?;
                let c = self.connectors.lock().await;
                let info = c.get(&name).map(|h| self.info(h)).ok_or_else(|| {
                    ApiError::Internal(format!(
                        "connector {name} was written but is not running here"
                    ))
                })?;
                return Ok((!exists, info));
            }
            let mut connectors = self.connectors.lock().await;
            if create_only && connectors.contains_key(&name) {
                return Err(ApiError::Conflict(format!(
                    "Connector {name} already exists"
                )));
            }
            let (created, target) = match connectors.remove(&name) {
                Some(old) => {
                    let target = old.target();
                    old.shutdown().await;
                    (false, target)
                }
                None => (true, Target::Running),
            };
            let handle = ConnectorHandle::spawn(parsed, Arc::clone(&self.env), target);
            let info = self.info(&handle);
            connectors.insert(name, handle);
            Ok((created, info))
        })
    }

    fn connector(&self, name: String) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            self.connectors
                .lock()
                .await
                .get(&name)
                .map(|h| self.info(h))
                .ok_or_else(|| Self::not_found(&name))
        })
    }

    fn status(&self, name: String) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move {
            let mut status = self
                .connectors
                .lock()
                .await
                .get(&name)
                .map(|h| self.status_of(h))
                .ok_or_else(|| Self::not_found(&name))?;
            if let Some(store) = &self.store {
                // Every other worker's task, as it last published it; this worker's from its live state.
                let mut others: Vec<StatusValue> = store
                    .statuses(&name)
                    .into_iter()
                    .filter(|s| s.worker_id != self.env.worker_id)
                    .collect();
                others.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
                for (i, s) in others.into_iter().enumerate() {
                    status.tasks.push(TaskStatus {
                        id: (i + 1) as u32,
                        state: StateInfo {
                            state: s.state,
                            worker_id: s.worker_id,
                            trace: s.trace,
                        },
                    });
                }
            }
            Ok(status)
        })
    }

    fn tasks(&self, name: String) -> BoxFuture<'_, Result<Vec<TaskInfo>, ApiError>> {
        Box::pin(async move {
            let c = self.connectors.lock().await;
            let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
            Ok(vec![TaskInfo {
                id: TaskId {
                    connector: name.clone(),
                    task: 0,
                },
                config: h.config.redacted(),
            }])
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

    fn restart(
        &self,
        name: String,
        _include_tasks: bool,
        only_failed: bool,
    ) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move {
            if let Some(store) = &self.store {
                if !store.connectors().contains_key(&name) {
                    return Err(Self::not_found(&name));
                }
                // Every worker restarts its task when it reads the request (this one included).
                let nonce = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                self.write(
                    store,
                    ConfigRecord::Restart {
                        name: name.clone(),
                        only_failed,
                        nonce,
                    },
                )
                .await?;
                let c = self.connectors.lock().await;
                let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
                return Ok(self.status_of(h));
            }
            let c = self.connectors.lock().await;
            let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
            if !only_failed || h.status().state == State::Failed {
                h.restart();
            }
            Ok(self.status_of(h))
        })
    }

    fn delete(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            if let Some(store) = &self.store {
                if !store.connectors().contains_key(&name) {
                    return Err(Self::not_found(&name));
                }
                return self
                    .write(
                        store,
                        ConfigRecord::Connector {
                            name: name.clone(),
                            config: None,
                        },
                    )
                    .await;
            }
            let h = self
                .connectors
                .lock()
                .await
                .remove(&name)
                .ok_or_else(|| Self::not_found(&name))?;
            h.shutdown().await;
            self.env.telemetry.remove_connector(&name);
            Ok(())
        })
    }

    fn topics(&self, name: String) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        Box::pin(async move {
            let sub = {
                let c = self.connectors.lock().await;
                c.get(&name)
                    .ok_or_else(|| Self::not_found(&name))?
                    .config
                    .subscription
                    .clone()
            };
            match sub {
                Subscription::Topics(t) => Ok(t),
                Subscription::Regex(_) => {
                    let consumer = self.group_consumer("ursa-topics-probe")?;
                    let tpl = tokio::task::block_in_place(|| self.partitions(&consumer, &sub))?;
                    let mut names: Vec<String> = tpl
                        .elements()
                        .iter()
                        .map(|e| e.topic().to_owned())
                        .collect();
                    names.dedup();
                    Ok(names)
                }
            }
        })
    }

    fn offsets(&self, name: String) -> BoxFuture<'_, Result<Offsets, ApiError>> {
        Box::pin(async move {
            let (group, sub) = {
                let c = self.connectors.lock().await;
                let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
                (h.config.group_id.clone(), h.config.subscription.clone())
            };
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
            let group = {
                let c = self.connectors.lock().await;
                let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
                if h.status().state != State::Stopped {
                    return Err(ApiError::BadRequest("Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/".to_owned() + &name + "/stop' endpoint"));
                }
                h.config.group_id.clone()
            };
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
            tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync))
                .map_err(|e| ApiError::Internal(e.to_string()))
        })
    }

    fn reset_offsets(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            let group = {
                let c = self.connectors.lock().await;
                let h = c.get(&name).ok_or_else(|| Self::not_found(&name))?;
                if h.status().state != State::Stopped {
                    return Err(ApiError::BadRequest(format!(
                        "Connectors must be in the STOPPED state before their offsets can be reset. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
                    )));
                }
                h.config.group_id.clone()
            };
            let admin: AdminClient<DefaultClientContext> = self
                .env
                .kafka
                .create()
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            let results = admin
                .delete_groups(
                    &[group.as_str()],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
                )
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            for r in results {
                if let Err((g, code)) = r
                    && code != rdkafka::types::RDKafkaErrorCode::GroupIdNotFound
                {
                    return Err(ApiError::Internal(format!(
                        "deleting the offsets of group {g}: {code}"
                    )));
                }
            }
            Ok(())
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
        let resolved = resolve_references(&config).unwrap_or_else(|_| config.clone());
        let mut result = validate_config(p.as_ref(), &self.plugins, &resolved);
        // Show what was sent (references, redacted secrets), never resolved values.
        let shown = super::config::connector::redact(&config, Some(p.as_ref()));
        for c in &mut result.configs {
            let name = c
                .value
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_owned);
            if let Some(name) = name
                && let Some(v) = c.value.get_mut("value")
                && config.contains_key(&name)
            {
                *v = serde_json::Value::from(shown.get(&name).cloned());
            }
        }
        Ok(result)
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async move {
            let ready = self.ready.load(Ordering::Acquire);
            Health {
                status: if ready { "healthy" } else { "unhealthy" }.into(),
                ready,
                message: if ready {
                    "worker is running".into()
                } else {
                    "worker is shutting down".into()
                },
            }
        })
    }

    fn metrics(&self) -> String {
        self.env.telemetry.render()
    }
}
