//! A local APNs: HTTP/2 only, over TLS (ALPN `h2`, a test CA), checking each request as Apple's documentation
//! says — `POST /3/device/<hex token>`, `authorization: bearer <provider token>` signed ES256 with the team's key
//! (verified with the public key openssl extracted) with `kid` and `iss` right and `iat` under an hour old,
//! `apns-topic`, `apns-push-type`, `apns-priority` (10, 5 or 1), `apns-collapse-id` at most 64 bytes, an
//! `apns-id` UUID, a JSON payload with `aps` of at most 4 KB — answering the scripted reasons, and counting
//! the distinct provider tokens it was sent (each is a token refresh).
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::channels::jwt::split_jwt;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio_rustls::TlsAcceptor;

use super::Tls;

/// The team.
pub const TEAM_ID: &str = "TEAM123456";
/// The key id.
pub const KEY_ID: &str = "KEY1234567";
/// The app.
pub const TOPIC: &str = "com.teddy.parents";

/// A scripted reason for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApnsScript {
    /// The Unregistered.
    Unregistered,
    /// The BadDeviceToken.
    BadDeviceToken,
    /// The TooManyRequests.
    TooManyRequests,
    /// The ServiceUnavailable.
    ServiceUnavailable,
}

#[derive(Default)]
struct ApnsState {
    public_key: Vec<u8>,
    provider_tokens: BTreeSet<String>,
    scripts: BTreeMap<String, (ApnsScript, usize)>,
    delivered: Vec<(String, BTreeMap<String, String>, Value)>,
    refused: Vec<String>,
    http2: bool,
}

/// The APNs peer.
pub struct ApnsServer {
    /// The port it listens on (loopback).
    pub port: u16,
    /// The team's signing key (PKCS#8 PEM), for the sender under test.
    pub key_pem: String,
    state: Arc<Mutex<ApnsState>>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Drop for ApnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn reply(status: u16, reason: Option<&str>, apns_id: &str) -> Response<Full<Bytes>> {
    let body = match reason {
        Some(r) if status == 410 => {
            json!({"reason": r, "timestamp": jiff::Timestamp::now().as_millisecond()}).to_string()
        }
        Some(r) => json!({"reason": r}).to_string(),
        None => String::new(),
    };
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("apns-id", apns_id)
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

async fn handle(
    state: Arc<Mutex<ApnsState>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.version() == hyper::Version::HTTP_2 {
        state.lock().unwrap().http2 = true;
    }
    let apns_id = req
        .headers()
        .get("apns-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::nil().to_string(), str::to_owned);
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let req = Request::from_parts(parts, ());
    let checked = check_req(&state, &req, &bytes);
    let (device, headers, payload) = match checked {
        Ok(v) => v,
        Err((status, reason)) => {
            state.lock().unwrap().refused.push(reason.to_owned());
            return Ok(reply(status, Some(reason), &apns_id));
        }
    };
    let scripted = {
        let mut s = state.lock().unwrap();
        match s.scripts.get_mut(&device) {
            Some((script, n)) if *n > 0 => {
                *n -= 1;
                Some(*script)
            }
            _ => None,
        }
    };
    if let Some(s) = scripted {
        let (status, reason) = match s {
            ApnsScript::Unregistered => (410, "Unregistered"),
            ApnsScript::BadDeviceToken => (400, "BadDeviceToken"),
            ApnsScript::TooManyRequests => (429, "TooManyRequests"),
            ApnsScript::ServiceUnavailable => (503, "ServiceUnavailable"),
        };
        state.lock().unwrap().refused.push(reason.to_owned());
        return Ok(reply(status, Some(reason), &apns_id));
    }
    state
        .lock()
        .unwrap()
        .delivered
        .push((device, headers, payload));
    Ok(reply(200, None, &apns_id))
}

fn check_req(
    state: &Mutex<ApnsState>,
    req: &Request<()>,
    body: &[u8],
) -> Result<(String, BTreeMap<String, String>, Value), (u16, &'static str)> {
    if req.method() != hyper::Method::POST {
        return Err((405, "MethodNotAllowed"));
    }
    let device = req
        .uri()
        .path()
        .strip_prefix("/3/device/")
        .filter(|t| t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or((400, "BadDeviceToken"))?
        .to_owned();
    let h = |k: &str| {
        req.headers()
            .get(k)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let jwt = h("authorization")
        .and_then(|a| a.strip_prefix("bearer ").map(str::to_owned))
        .ok_or((403, "MissingProviderToken"))?;
    let (header, claims, input, sig) = split_jwt(&jwt).ok_or((403, "InvalidProviderToken"))?;
    let key = state.lock().unwrap().public_key.clone();
    if header["alg"] != "ES256" || header["kid"] != KEY_ID || claims["iss"] != TEAM_ID {
        return Err((403, "InvalidProviderToken"));
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| (403, "InvalidProviderToken"))?;
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if jiff::Timestamp::now().as_second() - iat > 3600 {
        return Err((403, "ExpiredProviderToken"));
    }
    state.lock().unwrap().provider_tokens.insert(jwt);
    if h("apns-topic").as_deref() != Some(TOPIC) {
        return Err((400, "DeviceTokenNotForTopic"));
    }
    let push_type = h("apns-push-type").ok_or((400, "InvalidPushType"))?;
    if ![
        "alert",
        "background",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "location",
        "liveactivity",
        "pushtotalk",
    ]
    .contains(&push_type.as_str())
    {
        return Err((400, "InvalidPushType"));
    }
    if let Some(p) = h("apns-priority")
        && !["10", "5", "1"].contains(&p.as_str())
    {
        return Err((400, "BadPriority"));
    }
    if h("apns-collapse-id").is_some_and(|c| c.len() > 64) {
        return Err((400, "BadCollapseId"));
    }
    if let Some(id) = h("apns-id")
        && id.parse::<uuid::Uuid>().is_err()
    {
        return Err((400, "BadMessageId"));
    }
    if body.len() > 4096 {
        return Err((413, "PayloadTooLarge"));
    }
    let payload: Value = serde_json::from_slice(body).map_err(|_| (400, "PayloadEmpty"))?;
    if !payload.get("aps").is_some_and(Value::is_object) {
        return Err((400, "PayloadEmpty"));
    }
    let headers = [
        "apns-push-type",
        "apns-priority",
        "apns-collapse-id",
        "apns-id",
        "apns-topic",
    ]
    .iter()
    .filter_map(|k| h(k).map(|v| ((*k).to_owned(), v)))
    .collect();
    Ok((device, headers, payload))
}

impl ApnsServer {
    /// Starts the server with a new team key (P-256, made by openssl) and `tls`'s certificate.
    pub async fn start(tls: &Tls) -> Result<ApnsServer> {
        let dir = tempfile::tempdir()?;
        let run = |args: &[&str]| -> Result<Vec<u8>> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
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
        };
        run(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "AuthKey.p8",
        ])?;
        let spki = run(&["pkey", "-in", "AuthKey.p8", "-pubout", "-outform", "DER"])?;
        // The uncompressed point is the last 65 bytes of a P-256 SubjectPublicKeyInfo.
        let public_key = spki[spki.len() - 65..].to_vec();
        let key_pem = std::fs::read_to_string(dir.path().join("AuthKey.p8"))?;
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<rustls::pki_types::CertificateDer<'static>> =
            rustls::pki_types::CertificateDer::pem_file_iter(&tls.cert)?
                .collect::<Result<_, _>>()?;
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&tls.key)?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        cfg.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(cfg));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(ApnsState {
            public_key,
            ..ApnsState::default()
        }));
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let st = Arc::clone(&st);
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |req| handle(Arc::clone(&st), req));
                    let _ = hyper::server::conn::http2::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
        Ok(ApnsServer {
            port,
            key_pem,
            state,
            task,
            _dir: dir,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// Scripts the answers for one recipient.
    pub fn script(&self, device: &str, s: ApnsScript, times: usize) {
        self.state
            .lock()
            .unwrap()
            .scripts
            .insert(device.to_owned(), (s, times));
    }

    /// What was delivered, in order.
    pub fn delivered(&self) -> Vec<(String, BTreeMap<String, String>, Value)> {
        self.state.lock().unwrap().delivered.clone()
    }

    /// What was refused, and why.
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }

    /// Distinct provider tokens seen: each new one is a refresh.
    pub fn provider_tokens(&self) -> usize {
        self.state.lock().unwrap().provider_tokens.len()
    }

    /// Whether a request came over HTTP/2.
    pub fn saw_http2(&self) -> bool {
        self.state.lock().unwrap().http2
    }
}
