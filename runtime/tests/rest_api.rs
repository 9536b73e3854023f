//! The Kafka Connect–compatible REST API over an in-memory fake worker: every endpoint, status code and error
//! body, `?expand=`, bearer-token auth, shutdown, and a third-party Python Connect client (`kafka-connect-py`)
//! driving it. The fake stands in for the real worker: this test is about the HTTP layer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use ursa::connect::api::{
    ApiError, BoxFuture, ConfigValueInfo, ConnectApi, ConnectorInfo, ConnectorStatus, FlatConfig,
    Health, Offsets, PartitionOffset, PluginInfo, ServerInfo, State, StateInfo, TaskId, TaskInfo,
    TaskStatus, ValidationResult,
};
use ursa::connect::rest::{RestConfig, RestServer, RunningRestServer};
use ursa_testkit::CommandExt;

// ---------------------------------------------------------------------------------------------------------
// The fake worker.

const WORKER_ID: &str = "127.0.0.1:8083";
const PLUGIN: &str = "http-sink";

struct Connector {
    config: FlatConfig,
    state: State,
    offsets: Vec<PartitionOffset>,
}

impl Connector {
    fn task_count(&self) -> u32 {
        if self.state == State::Stopped {
            return 0;
        }
        self.config
            .get("tasks.max")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    fn topics(&self) -> Vec<String> {
        self.config
            .get("topics")
            .map(|t| t.split(',').map(|s| s.trim().to_owned()).collect())
            .unwrap_or_default()
    }
}

/// An in-memory worker whose connectors change state on pause/resume/stop/restart and whose offsets can be
/// edited only when STOPPED (Connect's rule).
#[derive(Default)]
struct FakeWorker {
    connectors: Mutex<BTreeMap<String, Connector>>,
    not_ready: AtomicBool,
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Connector {name} not found"))
}

fn state_info(state: State) -> StateInfo {
    StateInfo {
        state,
        worker_id: WORKER_ID.into(),
        trace: None,
        version: Some("0.1.0".into()),
    }
}

impl FakeWorker {
    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut Connector) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut connectors = self.connectors.lock().unwrap();
        let connector = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        f(connector)
    }

    fn info(name: &str, c: &Connector) -> ConnectorInfo {
        ConnectorInfo {
            name: name.into(),
            config: c.config.clone(),
            tasks: (0..c.task_count())
                .map(|task| TaskId {
                    connector: name.into(),
                    task,
                })
                .collect(),
            kind: "sink".into(),
        }
    }

    fn status_of(name: &str, c: &Connector, state: State) -> ConnectorStatus {
        ConnectorStatus {
            name: name.into(),
            connector: state_info(state),
            tasks: (0..c.task_count())
                .map(|id| TaskStatus {
                    id,
                    state: state_info(state),
                })
                .collect(),
            kind: "sink".into(),
        }
    }

    fn require_stopped(name: &str, c: &Connector) -> Result<(), ApiError> {
        if c.state == State::Stopped {
            Ok(())
        } else {
            Err(ApiError::BadRequest(format!(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done \
                 for the specified connector by issuing a 'PUT' request to the '/connectors/{name}/stop' endpoint"
            )))
        }
    }

    fn set_state(&self, name: String, state: State) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                c.state = state;
                Ok(())
            })
        })
    }
}

impl ConnectApi for FakeWorker {
    fn server_info(&self) -> BoxFuture<'_, ServerInfo> {
        Box::pin(async {
            ServerInfo {
                version: "0.1.0".into(),
                commit: "0123abcd".into(),
                kafka_cluster_id: Some("fake-cluster".into()),
            }
        })
    }

    fn connectors(&self) -> BoxFuture<'_, Vec<String>> {
        Box::pin(async { self.connectors.lock().unwrap().keys().cloned().collect() })
    }

    fn put_connector(
        &self,
        name: String,
        config: FlatConfig,
        create_only: bool,
    ) -> BoxFuture<'_, Result<(bool, ConnectorInfo), ApiError>> {
        Box::pin(async move {
            if config.get("connector.class").map(String::as_str) != Some(PLUGIN) {
                return Err(ApiError::BadRequest(format!(
                    "Connector configuration is invalid: connector.class must be {PLUGIN}"
                )));
            }
            let mut connectors = self.connectors.lock().unwrap();
            if let Some(existing) = connectors.get_mut(&name) {
                if create_only {
                    return Err(ApiError::Conflict(format!(
                        "Connector {name} already exists"
                    )));
                }
                existing.config = config;
                return Ok((false, Self::info(&name, existing)));
            }
            let connector = Connector {
                offsets: Vec::new(),
                config,
                state: State::Running,
            };
            let offsets = connector
                .topics()
                .into_iter()
                .map(|topic| PartitionOffset {
                    partition: BTreeMap::from([
                        ("kafka_topic".to_owned(), json!(topic)),
                        ("kafka_partition".to_owned(), json!(0)),
                    ]),
                    offset: Some(BTreeMap::from([("kafka_offset".to_owned(), json!(42))])),
                })
                .collect();
            let connector = Connector {
                offsets,
                ..connector
            };
            let info = Self::info(&name, &connector);
            connectors.insert(name, connector);
            Ok((true, info))
        })
    }

    fn connector(&self, name: String) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move { self.with(&name, |c| Ok(Self::info(&name, c))) })
    }

    fn status(&self, name: String) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move { self.with(&name, |c| Ok(Self::status_of(&name, c, c.state))) })
    }

    fn tasks(&self, name: String) -> BoxFuture<'_, Result<Vec<TaskInfo>, ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                Ok((0..c.task_count())
                    .map(|task| TaskInfo {
                        id: TaskId {
                            connector: name.clone(),
                            task,
                        },
                        config: BTreeMap::from([(
                            "task.class".to_owned(),
                            "HttpSinkTask".to_owned(),
                        )]),
                    })
                    .collect())
            })
        })
    }

    fn pause(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        self.set_state(name, State::Paused)
    }

    fn resume(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        self.set_state(name, State::Running)
    }

    fn stop(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        self.set_state(name, State::Stopped)
    }

    fn restart(
        &self,
        name: String,
        include_tasks: bool,
        only_failed: bool,
    ) -> BoxFuture<'_, Result<ConnectorStatus, ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                c.state = State::Running;
                let shown = if include_tasks || only_failed {
                    State::Restarting
                } else {
                    State::Running
                };
                Ok(Self::status_of(&name, c, shown))
            })
        })
    }

    fn delete(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.connectors
                .lock()
                .unwrap()
                .remove(&name)
                .map(|_| ())
                .ok_or_else(|| not_found(&name))
        })
    }

    fn topics(&self, name: String) -> BoxFuture<'_, Result<Vec<String>, ApiError>> {
        Box::pin(async move { self.with(&name, |c| Ok(c.topics())) })
    }

    fn offsets(&self, name: String) -> BoxFuture<'_, Result<Offsets, ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                Ok(Offsets {
                    offsets: c.offsets.clone(),
                })
            })
        })
    }

    fn alter_offsets(&self, name: String, offsets: Offsets) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                Self::require_stopped(&name, c)?;
                for change in offsets.offsets {
                    c.offsets.retain(|o| o.partition != change.partition);
                    if change.offset.is_some() {
                        c.offsets.push(change);
                    }
                }
                Ok(())
            })
        })
    }

    fn reset_offsets(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                Self::require_stopped(&name, c)?;
                c.offsets.clear();
                Ok(())
            })
        })
    }

    fn plugins(&self) -> Vec<PluginInfo> {
        vec![PluginInfo {
            class: PLUGIN.into(),
            kind: "sink".into(),
            version: "0.1.0".into(),
        }]
    }

    fn validate(&self, plugin: String, config: FlatConfig) -> Result<ValidationResult, ApiError> {
        if plugin != PLUGIN {
            return Err(ApiError::NotFound(format!(
                "Failed to find any class that implements Connector and which name matches {plugin}"
            )));
        }
        let configs: Vec<ConfigValueInfo> = ["topics", "http.url"]
            .into_iter()
            .map(|key| {
                let value = config.get(key);
                let errors: Vec<String> = match value {
                    Some(_) => vec![],
                    None => vec![format!("Missing required configuration \"{key}\" which has no default value.")],
                };
                ConfigValueInfo {
                    definition: json!({"name": key, "type": "STRING", "required": true}),
                    value: json!({"name": key, "value": value, "recommended_values": [], "errors": errors, "visible": true}),
                }
            })
            .collect();
        let error_count = configs
            .iter()
            .filter(|c| !c.value["errors"].as_array().unwrap().is_empty())
            .count();
        Ok(ValidationResult {
            name: plugin,
            error_count,
            groups: vec!["Common".into()],
            configs,
        })
    }

    fn health(&self) -> BoxFuture<'_, Health> {
        Box::pin(async {
            if self.not_ready.load(Ordering::SeqCst) {
                Health {
                    status: "unhealthy".into(),
                    ready: false,
                    message: "Worker is still starting up".into(),
                    connectors: BTreeMap::new(),
                }
            } else {
                Health {
                    status: "healthy".into(),
                    ready: true,
                    message: "Worker has completed startup and is ready to handle requests.".into(),
                    connectors: BTreeMap::new(),
                }
            }
        })
    }

    fn create_connector(
        &self,
        name: String,
        config: FlatConfig,
        initial: State,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            let (_, info) = self.put_connector(name.clone(), config, true).await?;
            self.with(&name, |c| {
                c.state = initial;
                Ok(Self::info(&name, c))
            })
            .or(Ok(info))
        })
    }

    fn patch_connector(
        &self,
        name: String,
        patch: BTreeMap<String, Option<String>>,
    ) -> BoxFuture<'_, Result<ConnectorInfo, ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                for (k, v) in patch {
                    match v {
                        Some(v) => c.config.insert(k, v),
                        None => c.config.remove(&k),
                    };
                }
                Ok(Self::info(&name, c))
            })
        })
    }

    fn restart_task(&self, name: String, task: u32) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move {
            self.with(&name, |c| {
                if task < c.task_count() {
                    Ok(())
                } else {
                    Err(ApiError::NotFound(format!("Task {name}-{task} not found")))
                }
            })
        })
    }

    fn reset_topics(&self, name: String) -> BoxFuture<'_, Result<(), ApiError>> {
        Box::pin(async move { self.with(&name, |_| Ok(())) })
    }

    fn plugin_config(&self, plugin: String) -> Result<Vec<Value>, ApiError> {
        if plugin != PLUGIN {
            return Err(ApiError::NotFound(format!("Plugin {plugin} not found")));
        }
        Ok(vec![
            json!({"name": "topics", "type": "LIST", "required": true}),
            json!({"name": "http.url", "type": "STRING", "required": true}),
        ])
    }

    fn metrics(&self) -> String {
        let n = self.connectors.lock().unwrap().len();
        format!(
            "# HELP ursa_connectors Connectors on this worker.\n# TYPE ursa_connectors gauge\nursa_connectors {n}\n"
        )
    }
}

// ---------------------------------------------------------------------------------------------------------
// Harness.

struct Harness {
    server: RunningRestServer,
    worker: Arc<FakeWorker>,
    http: reqwest::Client,
}

impl Harness {
    async fn start(token: Option<&str>) -> Harness {
        let worker = Arc::new(FakeWorker::default());
        let config = RestConfig {
            token: token.map(str::to_owned),
            ..RestConfig::ephemeral()
        };
        let server = RestServer::bind(config, worker.clone())
            .await
            .unwrap()
            .spawn();
        Harness {
            server,
            worker,
            http: reqwest::Client::new(),
        }
    }

    fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.server.url()))
    }

    async fn create(&self, name: &str, topics: &str) {
        let (status, body) = send(self.req(Method::POST, "/connectors").json(&json!({
            "name": name,
            "config": {"connector.class": PLUGIN, "tasks.max": "2", "topics": topics}
        })))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn state(&self, name: &str) -> String {
        let (status, body) =
            send(self.req(Method::GET, &format!("/connectors/{name}/status"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["connector"]["state"].as_str().unwrap().to_owned()
    }
}

/// Sends and returns the status and the body as JSON (`Null` when empty).
async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    (status, body)
}

/// Connect's error body: `{"error_code": <status>, "message": "..."}` and nothing else.
#[track_caller]
fn assert_error(actual: (StatusCode, Value), status: u16) -> String {
    let (code, body) = actual;
    assert_eq!(code.as_u16(), status, "{body}");
    let object = body
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {body}"));
    assert_eq!(object.len(), 2, "{body}");
    assert_eq!(body["error_code"], json!(status), "{body}");
    body["message"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn root_answers_server_info() {
    let h = Harness::start(None).await;
    let (status, body) = send(h.req(Method::GET, "/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"version": "0.1.0", "commit": "0123abcd", "kafka_cluster_id": "fake-cluster"})
    );
}

#[tokio::test]
async fn creates_connectors_with_connects_codes_and_bodies() {
    let h = Harness::start(None).await;
    let response = h
        .req(Method::POST, "/connectors")
        .json(&json!({
            "name": "  orders  ",
            "config": {"connector.class": PLUGIN, "tasks.max": 2, "topics": "orders", "batch": true}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[LOCATION], "/connectors/orders");
    assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    let body: Value = response.json().await.unwrap();
    // The name is trimmed and added to the config; scalars become strings, as Jackson reads them.
    assert_eq!(
        body,
        json!({
            "name": "orders",
            "config": {"batch": "true", "connector.class": PLUGIN, "name": "orders", "tasks.max": "2", "topics": "orders"},
            "tasks": [{"connector": "orders", "task": 0}, {"connector": "orders", "task": 1}],
            "type": "sink"
        })
    );

    // 409 when it exists.
    let message = assert_error(
        send(h.req(Method::POST, "/connectors").json(&json!({
            "name": "orders", "config": {"connector.class": PLUGIN}
        })))
        .await,
        409,
    );
    assert_eq!(message, "Connector orders already exists");

    // 400: the worker refuses the config.
    let message = assert_error(
        send(
            h.req(Method::POST, "/connectors")
                .json(&json!({"name": "bad", "config": {"x": "y"}})),
        )
        .await,
        400,
    );
    assert!(message.contains("connector.class"), "{message}");

    // 400: the name in the config must match.
    let message = assert_error(
        send(h.req(Method::POST, "/connectors").json(&json!({
            "name": "a", "config": {"connector.class": PLUGIN, "name": "b"}
        })))
        .await,
        400,
    );
    assert_eq!(
        message,
        "Connector name configuration (b) doesn't match connector name in the URL (a)"
    );

    // 400: no config, no name, a config that is not a flat map, a non-object body.
    for body in [
        json!({"name": "x"}),
        json!({"name": "x", "config": null}),
        json!({"config": {"connector.class": PLUGIN}}),
        json!({"name": "   ", "config": {"connector.class": PLUGIN}}),
        json!({"name": "x\ny", "config": {"connector.class": PLUGIN}}),
        json!({"name": "x", "config": {"connector.class": PLUGIN, "nested": {"a": 1}}}),
        json!({"name": "x", "config": {"connector.class": PLUGIN, "n": null}}),
        json!({"name": "x", "config": ["connector.class"]}),
        json!({"name": "x", "config": {"connector.class": PLUGIN}, "initial_state": "SLEEPING"}),
        json!(["x"]),
        json!("x"),
    ] {
        assert_error(
            send(h.req(Method::POST, "/connectors").json(&body)).await,
            400,
        );
    }

    // 400 on malformed JSON and on an empty body.
    let message = assert_error(
        send(
            h.req(Method::POST, "/connectors")
                .header(CONTENT_TYPE, "application/json")
                .body("{\"name\": \"x\", "),
        )
        .await,
        400,
    );
    assert!(message.starts_with("Malformed JSON"), "{message}");
    assert_error(send(h.req(Method::POST, "/connectors")).await, 400);

    // A body must say it is JSON (with any parameters): a browser's simple request (`text/plain`, a form)
    // or a body without a type is refused with 415 before it is parsed, so a page cannot create a connector
    // on the tokenless loopback default (CSRF).
    for (name, content_type) in [
        ("plain", None),
        ("form", Some("application/x-www-form-urlencoded")),
        ("text", Some("text/plain")),
        ("multipart", Some("multipart/form-data; boundary=x")),
        ("json-ish", Some("application/jsonp")),
    ] {
        let mut request = h.req(Method::POST, "/connectors").body(
            json!({"name": name, "config": {"connector.class": PLUGIN}, "initial_state": "running"})
                .to_string(),
        );
        if let Some(ct) = content_type {
            request = request.header(CONTENT_TYPE, ct);
        }
        let message = assert_error(send(request).await, 415);
        assert!(message.contains("application/json"), "{message}");
    }
    let (status, body) = send(
        h.req(Method::POST, "/connectors")
            .header(CONTENT_TYPE, "Application/JSON; charset=utf-8")
            .body(json!({"name": "typed", "config": {"connector.class": PLUGIN}}).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        send(h.req(Method::GET, "/connectors")).await.1,
        json!(["orders", "typed"])
    );
}

/// Issue 8 (14): Kafka Connect 4's endpoints at the HTTP layer — `PATCH …/config` (a JSON object, `null`
/// removing a key), `POST …/tasks/{t}/restart`, `PUT …/topics/reset`, `GET /connector-plugins/{p}/config`,
/// `/admin/loggers`, and `initial_state` at creation — with Connect's codes.
#[tokio::test]
async fn kafka_connect_4_endpoints() {
    let h = Harness::start(None).await;
    h.create("c", "t").await;
    let (status, body) = send(
        h.req(Method::PATCH, "/connectors/c/config")
            .json(&json!({"tasks.max": 3, "topics": null, "x": "y"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["config"],
        json!({"connector.class": PLUGIN, "name": "c", "tasks.max": "3", "x": "y"})
    );
    assert_eq!(body["tasks"].as_array().unwrap().len(), 3);
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/nope/config")
                .json(&json!({"a": "b"})),
        )
        .await,
        404,
    );
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/c/config")
                .json(&json!([1])),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/c/config")
                .json(&json!({"name": "other"})),
        )
        .await,
        400,
    );
    let (status, body) = send(h.req(Method::POST, "/connectors/c/tasks/2/restart")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(body, Value::Null);
    for path in [
        "/connectors/c/tasks/3/restart",
        "/connectors/c/tasks/x/restart",
        "/connectors/nope/tasks/0/restart",
    ] {
        assert_error(send(h.req(Method::POST, path)).await, 404);
    }
    let (status, body) = send(h.req(Method::PUT, "/connectors/c/topics/reset")).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_error(
        send(h.req(Method::PUT, "/connectors/nope/topics/reset")).await,
        404,
    );
    let (status, body) =
        send(h.req(Method::GET, &format!("/connector-plugins/{PLUGIN}/config"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["name"], "topics");
    assert_error(
        send(h.req(Method::GET, "/connector-plugins/nope/config")).await,
        404,
    );
    // initial_state, in any case; an unknown one is refused.
    for (name, initial, state) in [
        ("p", "PAUSED", "PAUSED"),
        ("s", "stopped", "STOPPED"),
        ("r", "Running", "RUNNING"),
    ] {
        let (status, body) = send(h.req(Method::POST, "/connectors").json(&json!({
            "name": name, "config": {"connector.class": PLUGIN}, "initial_state": initial
        })))
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(h.state(name).await, state);
    }
    assert_error(
        send(h.req(Method::POST, "/connectors").json(&json!({
            "name": "x", "config": {"connector.class": PLUGIN}, "initial_state": "SLEEPING"
        })))
        .await,
        400,
    );
    // Loggers: the process's filter (levels set here are the test process's own).
    let (status, root) = send(h.req(Method::GET, "/admin/loggers/root")).await;
    assert_eq!(status, StatusCode::OK, "{root}");
    assert!(
        root["level"].is_string() && root["last_modified"].is_number(),
        "{root}"
    );
    let (status, body) = send(
        h.req(Method::PUT, "/admin/loggers/rest_api_test_logger")
            .json(&json!({"level": "debug"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!(["rest_api_test_logger"]));
    let (_, loggers) = send(h.req(Method::GET, "/admin/loggers")).await;
    assert_eq!(
        loggers["rest_api_test_logger"]["level"], "DEBUG",
        "{loggers}"
    );
    assert_error(
        send(h.req(Method::GET, "/admin/loggers/never.set")).await,
        404,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/admin/loggers/x")
                .json(&json!({"level": "LOUD"})),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/admin/loggers/x?scope=cluster")
                .json(&json!({"level": "INFO"})),
        )
        .await,
        400,
    );
    assert_error(
        send(h.req(Method::PUT, "/admin/loggers/x").json(&json!({}))).await,
        400,
    );
}

/// CSRF and DNS rebinding on the tokenless loopback default: a state-changing request from another origin
/// (a browser sends `Origin`) is refused, as is any request whose `Host` is not a loopback name (a rebound
/// DNS name points a page's origin at 127.0.0.1); `rest.allowed_hosts` adds names (a local proxy).
#[tokio::test]
async fn cross_site_requests_and_foreign_hosts_are_refused() {
    let h = Harness::start(None).await;
    let port = h.server.local_addr().port();
    let create =
        |name: &str| json!({"name": name, "config": {"connector.class": PLUGIN, "topics": "t"}});
    // Another origin: refused, whatever the method or content type.
    for origin in ["http://evil.example", "null", "http://127.0.0.1:1"] {
        let message = assert_error(
            send(
                h.req(Method::POST, "/connectors")
                    .header("origin", origin)
                    .json(&create("csrf")),
            )
            .await,
            403,
        );
        assert!(message.contains("origin"), "{message}");
    }
    h.create("c", "t").await;
    for (method, path) in [
        (Method::POST, "/connectors/c/restart"),
        (Method::PUT, "/connectors/c/stop"),
        (Method::DELETE, "/connectors/c"),
    ] {
        assert_error(
            send(h.req(method, path).header("origin", "http://evil.example")).await,
            403,
        );
    }
    assert_eq!(h.state("c").await, "RUNNING");
    // The worker's own origin is fine (a UI served from it), and so is a client that sends none.
    let (status, body) = send(
        h.req(Method::POST, "/connectors")
            .header("origin", format!("http://127.0.0.1:{port}"))
            .json(&create("same-origin")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A foreign Host on a loopback listener: every request refused, reads included (the configs).
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1.nip.io:{port}"),
    ] {
        for (method, path) in [(Method::GET, "/connectors"), (Method::POST, "/connectors")] {
            let message = assert_error(
                send(
                    h.req(method, path)
                        .header("host", host.as_str())
                        .json(&create("rebound")),
                )
                .await,
                403,
            );
            assert!(message.contains("Host"), "{message}");
        }
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        "127.0.0.2".to_owned(),
        format!("[::1]:{port}"),
        format!("app.localhost:{port}"),
    ] {
        let (status, body) = send(
            h.req(Method::GET, "/connectors")
                .header("host", host.as_str()),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{host}: {body}");
    }
    assert_eq!(
        send(h.req(Method::GET, "/connectors")).await.1,
        json!(["c", "same-origin"])
    );
    // A name the operator allows (a reverse proxy on the same machine).
    let worker = Arc::new(FakeWorker::default());
    let config = RestConfig {
        allowed_hosts: vec!["connect.internal".into()],
        ..RestConfig::ephemeral()
    };
    let server = RestServer::bind(config, worker).await.unwrap().spawn();
    let (status, body) = send(
        reqwest::Client::new()
            .get(format!("{}/connectors", server.url()))
            .header("host", "connect.internal:443"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn lists_connectors_with_expansions() {
    let h = Harness::start(None).await;
    assert_eq!(
        send(h.req(Method::GET, "/connectors")).await,
        (StatusCode::OK, json!([]))
    );
    assert_eq!(
        send(h.req(Method::GET, "/connectors?expand=status")).await,
        (StatusCode::OK, json!({}))
    );
    h.create("a", "t1").await;
    h.create("b", "t2").await;
    let (status, names) = send(h.req(Method::GET, "/connectors")).await;
    assert_eq!((status, names), (StatusCode::OK, json!(["a", "b"])));

    let (_, status_only) = send(h.req(Method::GET, "/connectors?expand=status")).await;
    let a_status = send(h.req(Method::GET, "/connectors/a/status")).await.1;
    assert_eq!(status_only["a"], json!({"status": a_status}));
    assert_eq!(status_only.as_object().unwrap().len(), 2);

    let (_, info_only) = send(h.req(Method::GET, "/connectors?expand=info")).await;
    let b_info = send(h.req(Method::GET, "/connectors/b")).await.1;
    assert_eq!(info_only["b"], json!({"info": b_info}));

    let (_, both) = send(h.req(Method::GET, "/connectors?expand=status&expand=info")).await;
    for name in ["a", "b"] {
        let keys: Vec<&String> = both[name].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["status", "info"]);
        assert_eq!(both[name]["info"]["name"], json!(name));
        assert_eq!(both[name]["status"]["connector"]["state"], json!("RUNNING"));
    }

    // Unknown expansions are ignored (each connector maps to an empty object), as in Connect.
    let (_, unknown) = send(h.req(Method::GET, "/connectors?expand=bogus")).await;
    assert_eq!(unknown, json!({"a": {}, "b": {}}));
    // A trailing slash is the same path.
    assert_eq!(
        send(h.req(Method::GET, "/connectors/")).await.1,
        json!(["a", "b"])
    );
}

#[tokio::test]
async fn reads_connector_config_status_and_tasks() {
    let h = Harness::start(None).await;
    h.create("sink", "orders,refunds").await;

    let (status, info) = send(h.req(Method::GET, "/connectors/sink")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["name"], "sink");
    assert_eq!(info["type"], "sink");
    assert_eq!(
        info["tasks"],
        json!([{"connector": "sink", "task": 0}, {"connector": "sink", "task": 1}])
    );

    let (status, config) = send(h.req(Method::GET, "/connectors/sink/config")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        config,
        json!({"connector.class": PLUGIN, "name": "sink", "tasks.max": "2", "topics": "orders,refunds"})
    );

    let (status, body) = send(h.req(Method::GET, "/connectors/sink/status")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "name": "sink",
            "connector": {"state": "RUNNING", "worker_id": WORKER_ID, "version": "0.1.0"},
            "tasks": [
                {"id": 0, "state": "RUNNING", "worker_id": WORKER_ID, "version": "0.1.0"},
                {"id": 1, "state": "RUNNING", "worker_id": WORKER_ID, "version": "0.1.0"}
            ],
            "type": "sink"
        })
    );

    let (status, tasks) = send(h.req(Method::GET, "/connectors/sink/tasks")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        tasks[1],
        json!({"id": {"connector": "sink", "task": 1}, "config": {"task.class": "HttpSinkTask"}})
    );

    let (status, task) = send(h.req(Method::GET, "/connectors/sink/tasks/1/status")).await;
    assert_eq!(
        (status, task),
        (
            StatusCode::OK,
            json!({"id": 1, "state": "RUNNING", "worker_id": WORKER_ID, "version": "0.1.0"})
        )
    );
    assert_error(
        send(h.req(Method::GET, "/connectors/sink/tasks/7/status")).await,
        404,
    );
    assert_error(
        send(h.req(Method::GET, "/connectors/sink/tasks/x/status")).await,
        404,
    );

    let (status, topics) = send(h.req(Method::GET, "/connectors/sink/topics")).await;
    assert_eq!(
        (status, topics),
        (
            StatusCode::OK,
            json!({"sink": {"topics": ["orders", "refunds"]}})
        )
    );

    for path in [
        "/connectors/nope",
        "/connectors/nope/config",
        "/connectors/nope/status",
        "/connectors/nope/tasks",
        "/connectors/nope/tasks/0/status",
        "/connectors/nope/topics",
        "/connectors/nope/offsets",
    ] {
        let message = assert_error(send(h.req(Method::GET, path)).await, 404);
        assert_eq!(message, "Connector nope not found", "{path}");
    }
}

#[tokio::test]
async fn puts_config_creating_then_updating() {
    let h = Harness::start(None).await;
    let config = json!({"connector.class": PLUGIN, "tasks.max": "1", "topics": "t"});
    let response = h
        .req(Method::PUT, "/connectors/fresh/config")
        .json(&config)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[LOCATION], "/connectors/fresh");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["config"]["name"], "fresh");
    assert_eq!(body["tasks"].as_array().unwrap().len(), 1);

    let (status, body) =
        send(h.req(Method::PUT, "/connectors/fresh/config").json(
            &json!({"connector.class": PLUGIN, "tasks.max": 3, "topics": "t", "name": "fresh"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["config"]["tasks.max"], "3");
    assert_eq!(body["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(
        send(h.req(Method::GET, "/connectors/fresh/config")).await.1["tasks.max"],
        "3"
    );

    let message = assert_error(
        send(
            h.req(Method::PUT, "/connectors/fresh/config")
                .json(&json!({"connector.class": PLUGIN, "name": "other"})),
        )
        .await,
        400,
    );
    assert_eq!(
        message,
        "Connector name configuration (other) doesn't match connector name in the URL (fresh)"
    );
    assert_error(
        send(
            h.req(Method::PUT, "/connectors/fresh/config")
                .header(CONTENT_TYPE, "application/json")
                .body("[1,2"),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/connectors/fresh/config")
                .json(&json!([1])),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/connectors/fresh/config")
                .json(&json!({"topics": "t"})),
        )
        .await,
        400,
    );
}

#[tokio::test]
async fn names_with_reserved_characters_round_trip() {
    let h = Harness::start(None).await;
    let response = h
        .req(Method::POST, "/connectors")
        .json(&json!({"name": "a/b c%", "config": {"connector.class": PLUGIN}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()[LOCATION], "/connectors/a%2Fb%20c%25");
    let (status, body) = send(h.req(Method::GET, "/connectors/a%2Fb%20c%25")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], "a/b c%");
}

#[tokio::test]
async fn pauses_resumes_stops_restarts_and_deletes() {
    let h = Harness::start(None).await;
    h.create("c", "t").await;

    let (status, body) = send(h.req(Method::PUT, "/connectors/c/pause")).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
    assert_eq!(h.state("c").await, "PAUSED");
    let (status, body) = send(h.req(Method::PUT, "/connectors/c/resume")).await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, Value::Null));
    assert_eq!(h.state("c").await, "RUNNING");
    let (status, body) = send(h.req(Method::PUT, "/connectors/c/stop")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(h.state("c").await, "STOPPED");

    // Legacy restart (both flags false, absent or spelt as Python does): 204 without a body.
    for query in [
        "",
        "?includeTasks=false&onlyFailed=false",
        "?includeTasks=False&onlyFailed=False",
    ] {
        let (status, body) =
            send(h.req(Method::POST, &format!("/connectors/c/restart{query}"))).await;
        assert_eq!(
            (status, body),
            (StatusCode::NO_CONTENT, Value::Null),
            "{query}"
        );
    }
    assert_eq!(h.state("c").await, "RUNNING");
    // Otherwise 202 with the status.
    for query in [
        "?includeTasks=true",
        "?onlyFailed=TRUE",
        "?includeTasks=true&onlyFailed=true",
    ] {
        let (status, body) =
            send(h.req(Method::POST, &format!("/connectors/c/restart{query}"))).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{query}");
        assert_eq!(body["name"], "c");
        assert_eq!(body["connector"]["state"], "RESTARTING");
        assert_eq!(body["tasks"][0]["state"], "RESTARTING");
    }

    for (method, path) in [
        (Method::PUT, "/connectors/nope/pause"),
        (Method::PUT, "/connectors/nope/resume"),
        (Method::PUT, "/connectors/nope/stop"),
        (Method::POST, "/connectors/nope/restart"),
        (Method::POST, "/connectors/nope/restart?includeTasks=true"),
        (Method::DELETE, "/connectors/nope"),
    ] {
        assert_error(send(h.req(method.clone(), path)).await, 404);
    }

    let (status, body) = send(h.req(Method::DELETE, "/connectors/c")).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_error(send(h.req(Method::GET, "/connectors/c")).await, 404);
    assert_error(send(h.req(Method::DELETE, "/connectors/c")).await, 404);
}

#[tokio::test]
async fn offsets_change_only_when_stopped() {
    let h = Harness::start(None).await;
    h.create("c", "orders").await;
    let (status, body) = send(h.req(Method::GET, "/connectors/c/offsets")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"offsets": [{"partition": {"kafka_partition": 0, "kafka_topic": "orders"}, "offset": {"kafka_offset": 42}}]})
    );

    let patch = json!({"offsets": [
        {"partition": {"kafka_topic": "orders", "kafka_partition": 0}, "offset": {"kafka_offset": 7}},
        {"partition": {"kafka_topic": "orders", "kafka_partition": 1}, "offset": {"kafka_offset": 9}}
    ]});
    // Running: refused (Connect's rule), and so is a reset.
    let message = assert_error(
        send(h.req(Method::PATCH, "/connectors/c/offsets").json(&patch)).await,
        400,
    );
    assert!(message.contains("STOPPED"), "{message}");
    assert_error(
        send(h.req(Method::DELETE, "/connectors/c/offsets")).await,
        400,
    );
    send(h.req(Method::PUT, "/connectors/c/pause")).await;
    assert_error(
        send(h.req(Method::PATCH, "/connectors/c/offsets").json(&patch)).await,
        400,
    );

    send(h.req(Method::PUT, "/connectors/c/stop")).await;
    let (status, body) = send(h.req(Method::PATCH, "/connectors/c/offsets").json(&patch)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"message": "The offsets for this connector have been altered successfully"})
    );
    let offsets = send(h.req(Method::GET, "/connectors/c/offsets")).await.1;
    assert_eq!(offsets["offsets"].as_array().unwrap().len(), 2);
    assert!(
        offsets["offsets"]
            .as_array()
            .unwrap()
            .contains(&patch["offsets"][0])
    );

    // A null offset resets one partition.
    let reset_one = json!({"offsets": [{"partition": {"kafka_topic": "orders", "kafka_partition": 1}, "offset": null}]});
    assert_eq!(
        send(
            h.req(Method::PATCH, "/connectors/c/offsets")
                .json(&reset_one)
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(h.req(Method::GET, "/connectors/c/offsets")).await.1,
        json!({"offsets": [patch["offsets"][0]]})
    );

    // Bad bodies: no partitions, malformed.
    let message = assert_error(
        send(
            h.req(Method::PATCH, "/connectors/c/offsets")
                .json(&json!({"offsets": []})),
        )
        .await,
        400,
    );
    assert_eq!(
        message,
        "Partitions / offsets need to be provided for an alter offsets request"
    );
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/c/offsets")
                .json(&json!({})),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/c/offsets")
                .header(CONTENT_TYPE, "application/json")
                .body("{"),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PATCH, "/connectors/nope/offsets")
                .json(&patch),
        )
        .await,
        404,
    );

    let (status, body) = send(h.req(Method::DELETE, "/connectors/c/offsets")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"message": "The offsets for this connector have been reset successfully"})
    );
    assert_eq!(
        send(h.req(Method::GET, "/connectors/c/offsets")).await.1,
        json!({"offsets": []})
    );
    assert_error(
        send(h.req(Method::DELETE, "/connectors/nope/offsets")).await,
        404,
    );
}

#[tokio::test]
async fn lists_plugins_and_validates_configs() {
    let h = Harness::start(None).await;
    let expected = json!([{"class": PLUGIN, "type": "sink", "version": "0.1.0"}]);
    assert_eq!(
        send(h.req(Method::GET, "/connector-plugins")).await,
        (StatusCode::OK, expected.clone())
    );
    assert_eq!(
        send(h.req(Method::GET, "/connector-plugins/?connectorsOnly=false"))
            .await
            .1,
        expected
    );

    let (status, body) = send(
        h.req(Method::PUT, "/connector-plugins/http-sink/config/validate")
            .json(&json!({"connector.class": PLUGIN, "topics": "t", "tasks.max": 1})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["name"], PLUGIN);
    assert_eq!(body["error_count"], 1);
    assert_eq!(body["groups"], json!(["Common"]));
    assert_eq!(body["configs"][1]["value"]["name"], "http.url");
    assert_eq!(
        body["configs"][1]["value"]["errors"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    assert_error(
        send(
            h.req(Method::PUT, "/connector-plugins/nope/config/validate")
                .json(&json!({})),
        )
        .await,
        404,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/connector-plugins/http-sink/config/validate")
                .header(CONTENT_TYPE, "application/json")
                .body("nope"),
        )
        .await,
        400,
    );
    assert_error(
        send(
            h.req(Method::PUT, "/connector-plugins/http-sink/config/validate")
                .json(&json!({"a": [1]})),
        )
        .await,
        400,
    );
}

#[tokio::test]
async fn health_and_metrics() {
    let h = Harness::start(None).await;
    let (status, body) = send(h.req(Method::GET, "/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["ready"], true);
    h.worker.not_ready.store(true, Ordering::SeqCst);
    let (status, body) = send(h.req(Method::GET, "/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
    assert_eq!(body["status"], "unhealthy");

    h.create("c", "t").await;
    let response = h.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains("# TYPE ursa_connectors gauge\nursa_connectors 1\n"),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_bad_paths_answer_connects_error_body() {
    let h = Harness::start(None).await;
    h.create("c", "t").await;
    for path in [
        "/nope",
        "/connectors/c/nope",
        "/connectors/c/tasks/0/restart/x",
        "/connector-plugins/x",
    ] {
        let message = assert_error(send(h.req(Method::GET, path)).await, 404);
        assert_eq!(message, "HTTP 404 Not Found");
    }
    for (method, path) in [
        (Method::GET, "/connectors/c/pause"),
        (Method::POST, "/connectors/c/resume"),
        (Method::GET, "/connectors/c/restart"),
        (Method::PUT, "/connectors"),
        (Method::POST, "/connectors/c"),
        (Method::DELETE, "/"),
        (Method::GET, "/connector-plugins/http-sink/config/validate"),
        (Method::POST, "/connectors/c/offsets"),
    ] {
        let message = assert_error(send(h.req(method.clone(), path)).await, 405);
        assert_eq!(message, "HTTP 405 Method Not Allowed", "{method} {path}");
    }
    // A path segment that is not UTF-8 once decoded: the framework's rejection, in Connect's shape.
    assert_error(send(h.req(Method::GET, "/connectors/%FF")).await, 400);
}

#[tokio::test]
async fn bearer_token_guards_everything_but_health() {
    let token = "s3cret-t0ken";
    let h = Harness::start(Some(token)).await;

    for (method, path) in [
        (Method::GET, "/"),
        (Method::GET, "/connectors"),
        (Method::POST, "/connectors"),
        (Method::GET, "/connectors/x/status"),
        (Method::DELETE, "/connectors/x"),
        (Method::GET, "/connector-plugins"),
        (Method::GET, "/metrics"),
        (Method::GET, "/nope"),
        (Method::POST, "/health"),
    ] {
        for auth in [
            None,
            Some("Bearer wrong"),
            Some("Bearer s3cret-t0ke"),
            Some("Basic czNjcmV0LXQwa2Vu"),
            Some(token),
        ] {
            let mut request = h.req(method.clone(), path);
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
            let body: Value = response.json().await.unwrap();
            assert_error((StatusCode::UNAUTHORIZED, body), 401);
        }
    }

    // /health is open, with or without a token.
    assert_eq!(send(h.req(Method::GET, "/health")).await.0, StatusCode::OK);
    assert_eq!(send(h.req(Method::GET, "/health/")).await.0, StatusCode::OK);
    assert_eq!(
        send(h.req(Method::GET, "/health").bearer_auth("wrong"))
            .await
            .0,
        StatusCode::OK
    );

    // The right token opens everything; the scheme is case-insensitive.
    assert_eq!(
        send(h.req(Method::GET, "/connectors").bearer_auth(token)).await,
        (StatusCode::OK, json!([]))
    );
    let (status, _) = send(
        h.req(Method::POST, "/connectors")
            .header(AUTHORIZATION, format!("bearer {token}"))
            .json(&json!({"name": "c", "config": {"connector.class": PLUGIN}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        h.req(Method::GET, "/metrics")
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_error(
        send(h.req(Method::GET, "/nope").bearer_auth(token)).await,
        404,
    );
}

#[tokio::test]
async fn config_refuses_an_empty_token_and_hides_the_token() {
    let config = RestConfig {
        token: Some(String::new()),
        ..RestConfig::ephemeral()
    };
    let err = RestServer::bind(config, Arc::new(FakeWorker::default()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);

    let config = RestConfig {
        token: Some("hunter2".into()),
        ..RestConfig::default()
    };
    assert_eq!(config.listen.to_string(), "127.0.0.1:8083");
    assert!(!format!("{config:?}").contains("hunter2"));
}

/// Captures every log line of this test binary (a global subscriber: the server logs from its own tasks).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_method_path_and_status_but_never_secrets() {
    let logs = captured_logs();
    let token = "log-secret-7f3a";
    let h = Harness::start(Some(token)).await;
    send(
        h.req(
            Method::GET,
            "/connectors?expand=status&password=query-secret-9c",
        )
        .bearer_auth(token),
    )
    .await;
    send(
        h.req(Method::GET, "/connectors/xyz-logged")
            .bearer_auth("wrong-secret-e1"),
    )
    .await;
    h.server.stop().await.unwrap();

    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("/connectors/xyz-logged"))
        .unwrap_or_else(|| panic!("no request log:\n{text}"));
    assert!(line.contains("GET") && line.contains("401"), "{line}");
    assert!(
        text.lines()
            .any(|l| l.contains("path=/connectors ") && l.contains("status=200")),
        "{text}"
    );
    for secret in [token, "query-secret-9c", "wrong-secret-e1"] {
        assert!(!text.contains(secret), "{secret} logged:\n{text}");
    }
}

#[tokio::test]
async fn stops_and_runs_until_its_shutdown_future() {
    // spawn() + stop(): the port closes.
    let h = Harness::start(None).await;
    let url = h.server.url();
    assert_eq!(send(h.http.get(&url)).await.0, StatusCode::OK);
    h.server.stop().await.unwrap();
    assert!(reqwest::Client::new().get(&url).send().await.is_err());

    // run() with a caller's shutdown future.
    let server = RestServer::bind(RestConfig::ephemeral(), Arc::new(FakeWorker::default()))
        .await
        .unwrap();
    let url = server.url();
    assert_eq!(url, format!("http://{}", server.local_addr()));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    assert_eq!(
        send(reqwest::Client::new().get(format!("{url}/connectors")))
            .await
            .0,
        StatusCode::OK
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    assert!(reqwest::Client::new().get(&url).send().await.is_err());
}

// ---------------------------------------------------------------------------------------------------------
// A third-party client: kafka-connect-py.

const PIP_INSTALL: &str = "python3 -m pip install \"kafka-connect-py==1.0.0\"";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

async fn run_python_client(url: String, token: Option<&'static str>) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/python_rest/connect_client_check.py"
    );
    let out = tokio::task::spawn_blocking(move || {
        let mut command = Command::new(python());
        command.arg(script).arg(&url);
        if let Some(token) = token {
            command.arg(token);
        }
        command.output_within(ursa_testkit::PEER_TIMEOUT)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3 and `{PIP_INSTALL}`"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_ne!(
        out.status.code(),
        Some(3),
        "kafka-connect-py is missing: `{PIP_INSTALL}`\n{stderr}"
    );
    assert!(
        out.status.success(),
        "the kafka-connect-py client check failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread")]
async fn third_party_python_client_manages_a_connector() {
    let h = Harness::start(None).await;
    run_python_client(h.server.url(), None).await;
    assert!(h.worker.connectors.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn third_party_python_client_works_with_a_bearer_token() {
    let h = Harness::start(Some("py-token")).await;
    run_python_client(h.server.url(), Some("py-token")).await;
}
