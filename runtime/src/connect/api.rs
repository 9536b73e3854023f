//! What the REST API (and the CLI) can ask of a worker, with Kafka Connect's JSON shapes. The worker
//! implements [`ConnectApi`]; `rest/` serves it over HTTP.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// A boxed future (the trait is object-safe so the REST layer can hold `Arc<dyn ConnectApi>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A connector's config as Kafka Connect exchanges it: a flat map of strings.
pub type FlatConfig = BTreeMap<String, String>;

/// Connector and task states (Kafka Connect's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Not started yet.
    Unassigned,
    /// Consuming and delivering.
    Running,
    /// Paused: consuming stopped, offsets kept, tasks alive.
    Paused,
    /// Stopped: tasks shut down, config kept; offsets may be edited.
    Stopped,
    /// Failed; `trace` says why. Restarts by itself with backoff when auto-restart is on.
    Failed,
    /// Being restarted.
    Restarting,
}

/// `GET /`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerInfo {
    /// The ursa version.
    pub version: String,
    /// The build's commit.
    pub commit: String,
    /// The Kafka cluster id, when known.
    pub kafka_cluster_id: Option<String>,
}

/// A task id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskId {
    /// The connector.
    pub connector: String,
    /// The task number.
    pub task: u32,
}

/// `GET /connectors/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorInfo {
    /// The name.
    pub name: String,
    /// The config (secrets shown as their references or `[hidden]`).
    pub config: FlatConfig,
    /// Its tasks.
    pub tasks: Vec<TaskId>,
    /// Always `sink` for now.
    #[serde(rename = "type")]
    pub kind: String,
}

/// The state of a connector or task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StateInfo {
    /// The state.
    pub state: State,
    /// The worker running it (its configured `id`, by default `host:port` of its REST listener).
    pub worker_id: String,
    /// For FAILED: the error and its causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// The plugin's version (Kafka Connect 4, KIP-891).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A task's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskStatus {
    /// The task number.
    pub id: u32,
    /// Its state.
    #[serde(flatten)]
    pub state: StateInfo,
}

/// `GET /connectors/{name}/status`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectorStatus {
    /// The name.
    pub name: String,
    /// The connector's state.
    pub connector: StateInfo,
    /// Each task's state.
    pub tasks: Vec<TaskStatus>,
    /// Always `sink` for now.
    #[serde(rename = "type")]
    pub kind: String,
}

/// `GET /connectors/{name}/tasks` element.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskInfo {
    /// The id.
    pub id: TaskId,
    /// The task's config.
    pub config: FlatConfig,
}

/// A partition and its offset, as in Kafka Connect's offsets API (`{"partition": {"kafka_topic": …,
/// "kafka_partition": …}, "offset": {"kafka_offset": …}}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PartitionOffset {
    /// `{"kafka_topic", "kafka_partition"}`.
    pub partition: BTreeMap<String, serde_json::Value>,
    /// `{"kafka_offset"}`; `null` in a PATCH resets the partition.
    pub offset: Option<BTreeMap<String, serde_json::Value>>,
}

/// `GET /connectors/{name}/offsets`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Offsets {
    /// Every partition's committed offset.
    pub offsets: Vec<PartitionOffset>,
}

/// `GET /connector-plugins` element.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginInfo {
    /// The class (our plugin name; Connect class names are accepted as aliases).
    #[serde(rename = "class")]
    pub class: String,
    /// `sink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The version.
    pub version: String,
}

/// One config key's validation result (Kafka Connect's `ConfigInfo`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConfigValueInfo {
    /// The definition: name, type, required, default_value, importance, documentation, group, …
    pub definition: serde_json::Value,
    /// `{name, value, recommended_values, errors, visible}`.
    pub value: serde_json::Value,
}

/// `PUT /connector-plugins/{plugin}/config/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ValidationResult {
    /// The plugin.
    pub name: String,
    /// How many keys have errors.
    pub error_count: usize,
    /// The groups.
    pub groups: Vec<String>,
    /// Every key.
    pub configs: Vec<ConfigValueInfo>,
}

impl ValidationResult {
    /// Makes `errors` the errors of `key` (added as an entry of its own when the plugin does not define it,
    /// showing `value`), and recounts `error_count`.
    pub fn set_errors(&mut self, key: &str, value: Option<&str>, errors: Vec<String>) {
        let found = self
            .configs
            .iter_mut()
            .find(|c| c.value.get("name").and_then(|n| n.as_str()) == Some(key));
        match found {
            Some(c) => {
                c.value["errors"] = serde_json::json!(errors);
                if value.is_some() {
                    c.value["value"] = serde_json::json!(value);
                }
            }
            None => self.configs.push(ConfigValueInfo {
                definition: serde_json::json!({"name": key, "type": "STRING", "required": false, "documentation": "", "group": "unknown"}),
                value: serde_json::json!({"name": key, "value": value, "recommended_values": [], "errors": errors, "visible": true}),
            }),
        }
        self.error_count = self
            .configs
            .iter()
            .filter(|c| {
                c.value
                    .get("errors")
                    .and_then(|e| e.as_array())
                    .is_some_and(|e| !e.is_empty())
            })
            .count();
    }
}

/// Why a request failed, mapped to Kafka Connect's status codes and error body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 404: no such connector (or plugin).
    #[error("{0}")]
    NotFound(String),
    /// 409: a connector of that name exists, or a rebalance is in progress.
    #[error("{0}")]
    Conflict(String),
    /// 400: the config is invalid (per-key errors in the message).
    #[error("{0}")]
    BadRequest(String),
    /// 403: the worker's config does not allow it.
    #[error("{0}")]
    Forbidden(String),
    /// 500: something failed inside the worker.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::NotFound(_) => 404,
            ApiError::Conflict(_) => 409,
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::Internal(_) => 500,
        }
    }
}

/// A logger's level, as `GET /admin/loggers[/{logger}]` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LoggerLevel {
    /// `ERROR`, `WARN`, `INFO`, `DEBUG`, `TRACE` or `OFF`.
    pub level: String,
    /// When it was last set through the API (ms since the epoch); 0 when it never was.
    pub last_modified: i64,
}

/// Liveness and readiness for `GET /health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// `"healthy"`; `"degraded"` when a connector has a FAILED task (the worker still serves);
    /// `"starting"` before the worker is ready (distributed: the config topic not read to its end yet);
    /// `"unhealthy"` when shutting down.
    pub status: String,
    /// Whether the worker has started (and, distributed, read the group's config) and is not shutting down.
    pub ready: bool,
    /// Details.
    pub message: String,
    /// Each connector's task state on this worker (the worst of its tasks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub connectors: BTreeMap<String, State>,
}

/// Everything the REST API serves. Every call may be made from any worker of a group.
pub trait ConnectApi: Send + Sync + 'static {
    /// `GET /`.
    fn server_info(&self) -> BoxFuture<'_, ServerInfo>;
    /// `GET /connectors`.
    fn connectors(&self) -> BoxFuture<'_, Vec<String>>;
    /// `POST /connectors` and `PUT /connectors/{name}/config` (with `create_only == false`); returns whether
    /// it was created.
    fn put_connector(
        &self,
        name: String,
        config: FlatConfig,
        create_only: bool,
    ) -> BoxFuture<'_, Result<(bool, ConnectorInfo), ApiError>>;
    /// `GET /connectors/{name}`.
    fn connector(&self, name: String) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>>;
    /// `GET /connectors/{name}/status`.
    fn status(&self, name: String) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>>;
    /// `GET /connectors/{name}/tasks`.
    fn tasks(&self, name: String) -> BoxFuture<'_, Result<Vec<TaskInfo>, ApiError>>;
    /// `PUT /connectors/{name}/pause`.
    fn pause(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `PUT /connectors/{name}/resume`.
    fn resume(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `PUT /connectors/{name}/stop`.
    fn stop(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `POST /connectors/{name}/restart?includeTasks=&onlyFailed=`; returns the status after the restart
    /// was requested.
    fn restart(
        &self,
        name: String,
        include_tasks: bool,
        only_failed: bool,
    ) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>>;
    /// `DELETE /connectors/{name}`.
    fn delete(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `GET /connectors/{name}/topics`: the topics it consumed records of since it was created or reset.
    fn topics(&self, name: String) -> BoxFuture<'_, Result<Vec<String>, ApiError>>;
    /// `GET /connectors/{name}/offsets`.
    fn offsets(&self, name: String) -> BoxFuture<'_, Result<Offsets, ApiError>>;
    /// `PATCH /connectors/{name}/offsets` (connector must be STOPPED).
    fn alter_offsets(&self, name: String, offsets: Offsets) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `DELETE /connectors/{name}/offsets` (connector must be STOPPED).
    fn reset_offsets(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `GET /connector-plugins`.
    fn plugins(&self) -> Vec<PluginInfo>;
    /// `PUT /connector-plugins/{plugin}/config/validate`.
    fn validate(&self, plugin: String, config: FlatConfig) -> Result<ValidationResult, ApiError>;
    /// `GET /health`.
    fn health(&self) -> BoxFuture<'_, Health>;
    /// `GET /metrics`: Prometheus text format.
    fn metrics(&self) -> String;

    /// `POST /connectors` with an `initial_state` (KIP-980): the connector starts RUNNING, PAUSED or STOPPED
    /// (never consuming before a resume). This default takes RUNNING only.
    fn create_connector(
        &self,
        name: String,
        config: FlatConfig,
        initial: State,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            if initial != State::Running {
                return Err(ApiError::BadRequest(format!(
                    "initial_state {initial:?} is not supported by this worker"
                )));
            }
            Ok(self.put_connector(name, config, true).await?.1)
        })
    }
    /// `PATCH /connectors/{name}/config` (KIP-477): sets the given keys, removes those given `null`.
    fn patch_connector(
        &self,
        name: String,
        patch: BTreeMap<String, Option<String>>,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>>;
    /// `POST /connectors/{name}/tasks/{task}/restart`.
    fn restart_task(&self, name: String, task: u32) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `PUT /connectors/{name}/topics/reset`: forgets its active topics.
    fn reset_topics(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>>;
    /// `GET /connector-plugins/{plugin}/config` (KIP-769): every key's definition.
    fn plugin_config(&self, plugin: String) -> Result<Vec<serde_json::Value>, ApiError>;
    /// `GET /admin/loggers`: the loggers with a level of their own (the process's log filter).
    fn loggers(&self) -> BTreeMap<String, LoggerLevel> {
        super::telemetry::logging::loggers()
    }
    /// `GET /admin/loggers/{logger}` (`root`: the default level).
    fn logger(&self, name: String) -> Result<LoggerLevel, ApiError> {
        super::telemetry::logging::logger(&name)
            .ok_or_else(|| ApiError::NotFound(format!("Logger {name} not found.")))
    }
    /// `PUT /admin/loggers/{logger}`: sets its level from now on; returns the loggers changed.
    fn set_logger_level(&self, name: String, level: String) -> Result<Vec<String>, ApiError> {
        super::telemetry::logging::set_level(&name, &level).map_err(ApiError::BadRequest)
    }
}
