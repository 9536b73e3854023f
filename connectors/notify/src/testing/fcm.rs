//! A local FCM HTTP v1 server and its OAuth2 token endpoint, written from Google's documentation: the token
//! endpoint takes a JWT-bearer grant and verifies the assertion (RS256) against the service account's public key
//! (extracted with openssl, not by the code under test) and its claims (`iss`, `scope`, `aud`, at most an hour
//! between `iat` and `exp`); `messages:send` wants a valid bearer token and a well-formed message (one
//! `token`, string `data` values, `android.priority` NORMAL or HIGH), and answers the scripted errors with
//! the documented bodies (`google.firebase.fcm.v1.FcmError`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::channels::jwt::split_jwt;
use anyhow::{Context, Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// The project.
pub const PROJECT: &str = "teddy-test";
/// The service account.
pub const CLIENT_EMAIL: &str = "notify@teddy-test.iam.gserviceaccount.com";

/// A scripted answer for a device token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FcmScript {
    /// The Unregistered.
    Unregistered,
    /// The InvalidArgument.
    InvalidArgument,
    /// The QuotaExceeded.
    QuotaExceeded,
    /// The Unavailable.
    Unavailable,
    /// The Internal.
    Internal,
}

#[derive(Default)]
struct FcmState {
    public_key: Vec<u8>,
    token_url: String,
    access_tokens: BTreeSet<String>,
    exchanges: usize,
    scripts: BTreeMap<String, (FcmScript, usize)>,
    delivered: Vec<Value>,
    delivered_at: Vec<std::time::Instant>,
    validated: Vec<String>,
    refused: Vec<(String, String)>,
}

/// The FCM peer.
pub struct FcmServer {
    /// The port it listens on (loopback).
    pub port: u16,
    /// The service account JSON, for the sender under test.
    pub service_account: String,
    state: Arc<Mutex<FcmState>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for FcmServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .context("running openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

fn error(status: StatusCode, code: &str, message: &str, fcm: Option<&str>) -> Response {
    let mut details = Vec::new();
    if let Some(c) = fcm {
        details.push(
            json!({"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": c}),
        );
    }
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"code": status.as_u16(), "message": message, "status": code, "details": details}}).to_string(),
    )
        .into_response()
}

async fn token(State(state): State<Arc<Mutex<FcmState>>>, body: String) -> Response {
    let form: BTreeMap<String, String> = crate::ack::form_pairs(&body).into_iter().collect();
    let bad = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/json")],
            json!({"error": "invalid_grant", "error_description": why}).to_string(),
        )
            .into_response()
    };
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return bad("unsupported grant_type");
    }
    let Some((header, claims, input, sig)) = form.get("assertion").and_then(|a| split_jwt(a))
    else {
        return bad("the assertion is not a JWT");
    };
    let (key, url) = {
        let s = state.lock().unwrap();
        (s.public_key.clone(), s.token_url.clone())
    };
    if header["alg"] != "RS256" {
        return bad("alg must be RS256");
    }
    let verified =
        ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA256, &key)
            .verify(input.as_bytes(), &sig)
            .is_ok();
    if !verified {
        return bad("Invalid JWT Signature.");
    }
    let now = jiff::Timestamp::now().as_second();
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap_or(0),
        claims["exp"].as_i64().unwrap_or(0),
    );
    if claims["iss"] != CLIENT_EMAIL
        || claims["aud"] != url.as_str()
        || !claims["scope"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == crate::channels::push_fcm::SCOPE)
        || exp - iat > 3600
        || exp <= now
        || iat > now + 60
    {
        return bad(&format!("invalid claims {claims}"));
    }
    let access = format!("ya29.{}", crate::channels::jwt::uuid(None));
    let mut s = state.lock().unwrap();
    s.exchanges += 1;
    s.access_tokens.insert(access.clone());
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"access_token": access, "expires_in": 3599, "token_type": "Bearer"}).to_string(),
    )
        .into_response()
}

fn check_message(body: &Value) -> Result<String, String> {
    let m = body.get("message").ok_or("no message")?;
    let targets = ["token", "topic", "condition"]
        .iter()
        .filter(|t| m.get(**t).is_some())
        .count();
    if targets != 1 {
        return Err("a message has exactly one of token, topic, condition".into());
    }
    let token = m["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or("message.token must be a string")?;
    if let Some(data) = m.get("data") {
        let o = data.as_object().ok_or("message.data must be a map")?;
        if let Some((k, _)) = o.iter().find(|(_, v)| !v.is_string()) {
            return Err(format!(
                "Invalid value at 'message.data[{k}].value' (TYPE_STRING)"
            ));
        }
        if o.keys()
            .any(|k| k == "from" || k.starts_with("google") || k.starts_with("gcm"))
        {
            return Err("a reserved data key".into());
        }
    }
    if let Some(n) = m.get("notification") {
        for f in ["title", "body"] {
            if n.get(f).is_some_and(|v| !v.is_string()) {
                return Err(format!("notification.{f} must be a string"));
            }
        }
    }
    if let Some(p) = m.pointer("/android/priority")
        && !matches!(p.as_str(), Some("NORMAL" | "HIGH"))
    {
        return Err("android.priority must be NORMAL or HIGH".into());
    }
    if let Some(h) = m.pointer("/apns/headers").and_then(Value::as_object)
        && h.values().any(|v| !v.is_string())
    {
        return Err("apns.headers values are strings".into());
    }
    if body.to_string().len() > 4096 + 1024 {
        return Err("message too big".into());
    }
    Ok(token.to_owned())
}

async fn send(
    State(state): State<Arc<Mutex<FcmState>>>,
    Path((project, method)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if method != "messages:send" {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "unknown method", None);
    }
    if project != PROJECT {
        return error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "wrong project",
            Some("SENDER_ID_MISMATCH"),
        );
    }
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    if !state.lock().unwrap().access_tokens.contains(&bearer) {
        return error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            None,
        );
    }
    let Ok(json) = serde_json::from_str::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "invalid JSON",
            Some("INVALID_ARGUMENT"),
        );
    };
    let token = match check_message(&json) {
        Ok(t) => t,
        Err(why) => {
            state
                .lock()
                .unwrap()
                .refused
                .push((String::new(), why.clone()));
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &why,
                Some("INVALID_ARGUMENT"),
            );
        }
    };
    let scripted = {
        let mut s = state.lock().unwrap();
        match s.scripts.get_mut(&token) {
            Some((script, n)) if *n > 0 => {
                *n -= 1;
                Some(*script)
            }
            _ => None,
        }
    };
    if let Some(script) = scripted {
        state
            .lock()
            .unwrap()
            .refused
            .push((token.clone(), format!("{script:?}")));
        return match script {
            FcmScript::Unregistered => error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "Requested entity was not found.",
                Some("UNREGISTERED"),
            ),
            FcmScript::InvalidArgument => error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                Some("INVALID_ARGUMENT"),
            ),
            FcmScript::QuotaExceeded => {
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "RESOURCE_EXHAUSTED",
                    "Quota exceeded.",
                    Some("QUOTA_EXCEEDED"),
                );
                r.headers_mut().insert("retry-after", "5".parse().unwrap());
                r
            }
            FcmScript::Unavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The service is unavailable.",
                Some("UNAVAILABLE"),
            ),
            FcmScript::Internal => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "Internal error.",
                Some("INTERNAL"),
            ),
        };
    }
    let id = format!(
        "projects/{PROJECT}/messages/{}",
        crate::channels::jwt::uuid(None)
    );
    {
        let mut s = state.lock().unwrap();
        if json["validate_only"] == true {
            s.validated.push(token);
        } else {
            s.delivered.push(json["message"].clone());
            s.delivered_at.push(std::time::Instant::now());
        }
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"name": id}).to_string(),
    )
        .into_response()
}

impl FcmServer {
    /// Starts the server with a new service account (an RSA key made by openssl).
    pub async fn start() -> Result<FcmServer> {
        let dir = tempfile::tempdir()?;
        openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa.pem",
            ],
        )?;
        let public = openssl(
            dir.path(),
            &[
                "rsa",
                "-in",
                "sa.pem",
                "-RSAPublicKey_out",
                "-outform",
                "DER",
            ],
        )?;
        let private = std::fs::read_to_string(dir.path().join("sa.pem"))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let token_url = format!("http://127.0.0.1:{port}/token");
        let state = Arc::new(Mutex::new(FcmState {
            public_key: public,
            token_url: token_url.clone(),
            ..FcmState::default()
        }));
        let app = axum::Router::new()
            .route("/token", axum::routing::post(token))
            .route("/v1/projects/{project}/{method}", axum::routing::post(send))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let service_account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "0123456789abcdef",
            "private_key": private,
            "client_email": CLIENT_EMAIL,
            "client_id": "1234567890",
            "token_uri": token_url,
        })
        .to_string();
        Ok(FcmServer {
            port,
            service_account,
            state,
            task,
            _dir: dir,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers `script` for the next `times` sends to `token`.
    pub fn script(&self, token: &str, script: FcmScript, times: usize) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(token.to_owned(), (script, times));
    }

    /// What was delivered, in order.
    pub fn delivered(&self) -> Vec<Value> {
        self.state.lock().unwrap().delivered.clone()
    }

    /// What was delivered, with when it arrived, in order.
    pub fn delivered_with_times(&self) -> Vec<(std::time::Instant, Value)> {
        let s = self.state.lock().unwrap();
        s.delivered_at
            .iter()
            .copied()
            .zip(s.delivered.iter().cloned())
            .collect()
    }

    /// How many messages went to this token.
    pub fn delivered_to(&self, token: &str) -> usize {
        self.delivered()
            .iter()
            .filter(|m| m["token"] == token)
            .count()
    }

    /// Tokens checked with validate_only.
    pub fn validated(&self) -> Vec<String> {
        self.state.lock().unwrap().validated.clone()
    }

    /// Token exchanges so far.
    pub fn exchanges(&self) -> usize {
        self.state.lock().unwrap().exchanges
    }

    /// What was refused, and why.
    pub fn refused(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().refused.clone()
    }
}
