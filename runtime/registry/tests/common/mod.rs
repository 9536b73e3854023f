//! Helpers shared by the integration tests: a server on a random port, raw HTTP calls, test schemas.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use ursa_registry::{RunningServer, Server, ServerConfig};

/// Starts an in-memory registry on 127.0.0.1 and a free port, and waits until it answers.
pub async fn start() -> RunningServer {
    start_with(ServerConfig::ephemeral()).await
}

/// Starts a registry with `config` and waits until it answers.
pub async fn start_with(config: ServerConfig) -> RunningServer {
    let server = Server::bind(config).await.expect("bind").spawn();
    wait_ready(&server.url()).await;
    server
}

/// Polls `GET {url}/` until it answers 200, for at most 10 s.
pub async fn wait_ready(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{url}/")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "server at {url} not ready in 10 s"
        );
        tokio::task::yield_now().await;
    }
}

/// An answer: status, content type, body (JSON if it parses, else a string).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

/// Raw HTTP against a registry.
pub struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    pub fn new(base: &str) -> Raw {
        Raw {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> Answer {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Accept", "application/vnd.schemaregistry.v1+json");
        if let Some(b) = body {
            req = req.header("Content-Type", content_type).body(b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            content_type,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, "").await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None, "").await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::POST,
            path,
            Some(body.to_string()),
            "application/vnd.schemaregistry.v1+json",
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(
            Method::PUT,
            path,
            Some(body.to_string()),
            "application/vnd.schemaregistry.v1+json",
        )
        .await
    }

    /// Registers `schema` (a JSON value, sent as text) under `subject`; asserts 200; returns the id.
    pub async fn register(&self, subject: &str, schema: &Value) -> u64 {
        let a = self
            .post(
                &format!("/subjects/{subject}/versions"),
                json!({ "schema": schema.to_string() }),
            )
            .await;
        assert_eq!(a.status, 200, "register {subject}: {a:?}");
        a.body["id"].as_u64().expect("id")
    }
}

/// Asserts a Confluent error answer.
#[track_caller]
pub fn assert_error(a: &Answer, status: u16, code: u64) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.body["error_code"].as_u64(), Some(code), "{a:?}");
    assert!(a.body["message"].is_string(), "{a:?}");
    assert_eq!(
        a.content_type, "application/vnd.schemaregistry.v1+json",
        "{a:?}"
    );
}

pub fn user_v1() -> Value {
    json!({
        "type": "record", "name": "User", "namespace": "com.acme",
        "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}]
    })
}

/// `user_v1` plus an optional field: backward (and forward) compatible.
pub fn user_v2() -> Value {
    json!({
        "type": "record", "name": "User", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "email", "type": ["null", "string"], "default": null}
        ]
    })
}

/// `user_v1` with a new required field: not backward compatible.
pub fn user_incompatible() -> Value {
    json!({
        "type": "record", "name": "User", "namespace": "com.acme",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": "string"},
            {"name": "age", "type": "int"}
        ]
    })
}
