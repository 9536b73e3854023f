//! Twilio for the SMS tests: Stoplight Prism serving Twilio's official OpenAPI description
//! (`../shared/peers/twilio/twilio_api_v2010.json`) in mock mode with `--errors`, so a request that does not
//! conform (path, auth, form fields) fails; and a small local fake for what Prism cannot show — a 429 with
//! `Retry-After`, a 5xx, a timeout after the message was accepted — which checks the same form fields,
//! records what it received, and calls a message's `StatusCallback` back as Twilio does (`sent`, then
//! `delivered` or the status scripted for the number, signed with `X-Twilio-Signature`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ursa_testkit::{Service, free_port};

use super::{INSTALL, target_dir, wait_port};

/// A test account SID (AC + 32 hex digits) and its auth token.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "test-auth-token-0123456789";

/// Twilio's OpenAPI description.
pub fn spec() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers/twilio/twilio_api_v2010.json")
}

/// Prism, as `cargo xtask test` installs it.
pub fn prism_bin() -> PathBuf {
    target_dir().join("node/node_modules/.bin/prism")
}

/// Prism serving the spec.
pub struct Prism {
    /// The process (killed on drop).
    pub service: Service,
    /// The port it listens on (loopback).
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Prism {
    /// Starts it.
    pub fn start() -> Result<Prism> {
        let bin = prism_bin();
        if !bin.exists() {
            bail!(
                "Stoplight Prism is not installed at {}: run `{INSTALL}`",
                bin.display()
            );
        }
        let spec = spec();
        if !spec.exists() {
            bail!(
                "Twilio's OpenAPI description is missing at {}",
                spec.display()
            );
        }
        let port = free_port()?;
        let dir = tempfile::tempdir()?;
        let service = Service::spawn(
            "prism",
            &bin,
            [
                OsStr::new("mock"),
                OsStr::new("--errors"),
                OsStr::new("-h"),
                OsStr::new("127.0.0.1"),
                OsStr::new("-p"),
                OsStr::new(&port.to_string()),
                spec.as_os_str(),
            ],
            &[],
            &dir.path().join("prism.log"),
            None,
        )?;
        wait_port(port, &service)?;
        Ok(Prism {
            service,
            port,
            _dir: dir,
        })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
    /// Its form fields.
    pub form: BTreeMap<String, String>,
    /// What the fake answered.
    pub status: u16,
    /// Whether it had the account, credentials and form fields the API wants.
    pub valid: bool,
}

/// What the fake answers for a `To` number.
#[derive(Debug, Clone)]
pub enum Script {
    /// 429 (code 20429) with `Retry-After: secs`, `times` times, then 201.
    TooMany {
        /** The Retry-After seconds. */
        secs: u64,
        /** How many times. */
        times: usize,
    },
    /// 500 with code 20500 (the message may have been created).
    Internal,
    /// Accepts (records it) and answers after `delay` (longer than the client's timeout).
    SlowAccept {
        /** How long before the answer. */
        delay: Duration,
    },
    /// 400 with this code (21211, 21610, …).
    Refuse(i64),
}

#[derive(Default)]
struct FakeState {
    scripts: BTreeMap<String, Script>,
    received: Vec<Received>,
    seen: BTreeMap<String, usize>,
    /// The final status (and error code) Twilio reports for a `To` number: `delivered` by default.
    outcomes: BTreeMap<String, (String, Option<String>)>,
    callbacks: Vec<Callback>,
    /// One client for every callback (building one loads the system's trust store).
    client: reqwest::Client,
    /// Whether the status callbacks are made (and answered) before the API's own answer, as they can be when
    /// the carrier is quicker than the network between Twilio and the sender.
    callbacks_first: bool,
}

/// A status callback the fake made, as Twilio does to a message's `StatusCallback` URL.
#[derive(Debug, Clone)]
pub struct Callback {
    /// The message.
    pub sid: String,
    /// `sent`, then `delivered`, `undelivered` or `failed`.
    pub status: String,
    /// What the callback URL answered (0: no answer).
    pub answer: u16,
}

/// Posts Twilio's status callbacks for a message, signed with `X-Twilio-Signature` as Twilio signs them
/// (HMAC-SHA1 of the URL and the sorted parameters, keyed by the auth token): `sent`, then the final status.
async fn callbacks(
    state: Arc<Mutex<FakeState>>,
    url: String,
    sid: String,
    form: BTreeMap<String, String>,
) {
    let to = form.get("To").cloned().unwrap_or_default();
    let (last, code) = state
        .lock()
        .unwrap()
        .outcomes
        .get(&to)
        .cloned()
        .unwrap_or_else(|| ("delivered".into(), None));
    let client = state.lock().unwrap().client.clone();
    for status in ["sent".to_owned(), last] {
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), ACCOUNT_SID.into()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("From".into(), form.get("From").cloned().unwrap_or_default()),
            ("MessageSid".into(), sid.clone()),
            ("MessageStatus".into(), status.clone()),
            ("SmsSid".into(), sid.clone()),
            ("SmsStatus".into(), status.clone()),
            ("To".into(), to.clone()),
        ];
        if status != "sent"
            && let Some(c) = &code
        {
            params.push(("ErrorCode".into(), c.clone()));
        }
        let signature = crate::channels::sms::callback_signature(AUTH_TOKEN, &url, &params);
        let answer = client
            .post(&url)
            .header("x-twilio-signature", signature)
            .form(&params)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_or(0, |r| r.status().as_u16());
        state.lock().unwrap().callbacks.push(Callback {
            sid: sid.clone(),
            status,
            answer,
        });
    }
}

/// The local Twilio fake.
pub struct Fake {
    /// The port it listens on (loopback).
    pub port: u16,
    state: Arc<Mutex<FakeState>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form(body: &str) -> BTreeMap<String, String> {
    crate::ack::form_pairs(body).into_iter().collect()
}

async fn messages(
    State(state): State<Arc<Mutex<FakeState>>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    use base64::Engine as _;
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let f = form(&body);
    let to = f.get("To").cloned().unwrap_or_default();
    let valid = sid.trim_end_matches(".json") == ACCOUNT_SID
        && auth == expected
        && crate::channels::sms::is_e164(&to)
        && f.get("Body")
            .is_some_and(|b| !b.is_empty() && b.chars().count() <= 1600)
        && (f.contains_key("From") || f.contains_key("MessagingServiceSid"));
    let (script, n) = {
        let mut s = state.lock().unwrap();
        let n = {
            let c = s.seen.entry(to.clone()).or_default();
            *c += 1;
            *c
        };
        (s.scripts.get(&to).cloned(), n)
    };
    let record = |status: u16| {
        state.lock().unwrap().received.push(Received {
            at: Instant::now(),
            form: f.clone(),
            status,
            valid,
        });
    };
    if !valid {
        record(400);
        return (
            StatusCode::BAD_REQUEST,
            r#"{"code":21602,"message":"invalid request","status":400}"#,
        )
            .into_response();
    }
    let callbacks_first = state.lock().unwrap().callbacks_first;
    let created = async || {
        let sid = format!("SM{:032x}", rand_u128());
        if let Some(url) = f.get("StatusCallback") {
            let calls = callbacks(Arc::clone(&state), url.clone(), sid.clone(), f.clone());
            if callbacks_first {
                calls.await;
            } else {
                tokio::spawn(calls);
            }
        }
        (
            StatusCode::CREATED,
            [("content-type", "application/json")],
            serde_json::json!({"sid": sid, "status": "queued", "account_sid": ACCOUNT_SID})
                .to_string(),
        )
            .into_response()
    };
    match script {
        Some(Script::TooMany { secs, times }) if n <= times => {
            record(429);
            (
                StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", secs.to_string()),
                    ("content-type", "application/json".into()),
                ],
                r#"{"code":20429,"message":"Too Many Requests","status":429}"#,
            )
                .into_response()
        }
        Some(Script::Internal) => {
            record(500);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"code":20500,"message":"Internal Server Error","status":500}"#,
            )
                .into_response()
        }
        Some(Script::SlowAccept { delay }) => {
            record(201);
            tokio::time::sleep(delay).await;
            created().await
        }
        Some(Script::Refuse(code)) => {
            record(400);
            (
                StatusCode::BAD_REQUEST,
                format!(r#"{{"code":{code},"message":"refused","status":400}}"#),
            )
                .into_response()
        }
        _ => {
            record(201);
            created().await
        }
    }
}

fn rand_u128() -> u128 {
    u128::from_str_radix(&crate::channels::jwt::uuid(None).replace('-', ""), 16).unwrap_or(1)
}

impl Fake {
    /// Starts it.
    pub async fn start() -> Result<Fake> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let app = axum::Router::new()
            .route(
                "/2010-04-01/Accounts/{sid}/Messages.json",
                axum::routing::post(messages),
            )
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Fake { port, state, task })
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Scripts the answers for one recipient.
    pub fn script(&self, to: &str, s: Script) {
        self.state.lock().unwrap().scripts.insert(to.to_owned(), s);
    }

    /// Makes Twilio report `status` (with `error_code`) as the final status of messages to `to`.
    pub fn deliver_as(&self, to: &str, status: &str, error_code: Option<&str>) {
        self.state.lock().unwrap().outcomes.insert(
            to.to_owned(),
            (status.to_owned(), error_code.map(str::to_owned)),
        );
    }

    /// Makes the status callbacks of later messages arrive (and be answered) before the API answers the send.
    pub fn call_back_before_answering(&self, first: bool) {
        self.state.lock().unwrap().callbacks_first = first;
    }

    /// The status callbacks made so far, in order.
    pub fn callbacks(&self) -> Vec<Callback> {
        self.state.lock().unwrap().callbacks.clone()
    }

    /// Every request, in order.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// The requests for one `To` number.
    pub fn received_for(&self, to: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.form.get("To").map(String::as_str) == Some(to))
            .collect()
    }
}
