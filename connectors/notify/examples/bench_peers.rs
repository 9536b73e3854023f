//! The loopback providers of `cargo xtask bench notify`: the tests' Twilio fake and FCM HTTP v1 server (which
//! check every request and the OAuth2 grant), a Standard Webhooks receiver that verifies every signature, and
//! a plain SMTP server; each notes when the first notification for an event (`EV:<event id>` in the text, or
//! the webhook's `data.event_id`) arrived, in Unix nanoseconds, and counts repeats.
//!
//! Prints one JSON line with the peers' addresses, then answers on stdout each line read from stdin:
//! `counts` (notifications per channel, repeats, refused requests), `reset` (forget what email and webhook
//! received) or `times` (per channel, event id → first
//! arrival). Ends at the end of stdin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use ursa_connector_notify::channels::webhook;
use ursa_connector_notify::testing::fcm::FcmServer;
use ursa_connector_notify::testing::twilio::Fake;

/// First arrivals per event, and repeats, of one channel.
#[derive(Default)]
struct Seen {
    first: HashMap<String, u128>,
    repeats: u64,
}

impl Seen {
    fn note(&mut self, id: String, at: u128) {
        match self.first.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => self.repeats += 1,
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
            }
        }
    }
}

#[derive(Default)]
struct Peers {
    email: Seen,
    webhook: Seen,
    refused: u64,
}

type Shared = Arc<Mutex<Peers>>;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// The event id after the first `EV:` in `text`.
fn event_id(text: &str) -> Option<String> {
    let rest = &text[text.find("EV:")? + 3..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

async fn hook(
    State((peers, secret)): State<(Shared, Vec<u8>)>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let timestamp: i64 = h("webhook-timestamp").parse().unwrap_or(0);
    let expected =
        webhook::signature_header(&[secret], None, h("webhook-id"), timestamp, body.as_bytes());
    let id = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["data"]["event_id"].as_str().map(str::to_owned));
    let mut p = peers.lock().unwrap();
    match id {
        Some(id) if h("webhook-signature").split(' ').any(|s| s == expected) => {
            p.webhook.note(id, now_ns());
            StatusCode::NO_CONTENT
        }
        _ => {
            p.refused += 1;
            StatusCode::UNAUTHORIZED
        }
    }
}

/// One SMTP session: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (no extensions, no TLS: loopback).
async fn smtp_session(stream: tokio::net::TcpStream, peers: Shared) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 bench ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 bench\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write.write_all(b"354 go on\r\n").await?;
                let mut id = None;
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    if id.is_none() {
                        id = event_id(&line);
                    }
                }
                let mut p = peers.lock().unwrap();
                match id {
                    Some(id) => p.email.note(id, now_ns()),
                    None => p.refused += 1,
                }
                b"250 queued\r\n"
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let base = (Instant::now(), now_ns());
    let unix = |at: Instant| base.1 + at.saturating_duration_since(base.0).as_nanos();
    let peers: Shared = Arc::default();
    let twilio = Fake::start().await?;
    let fcm = FcmServer::start().await?;
    let secret = ursa_connector_notify::testing::webhook_secret();
    let key = webhook::secret_bytes(&secret).map_err(anyhow::Error::msg)?;
    let hooks = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hooks_port = hooks.local_addr()?.port();
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(hook))
        .with_state((Arc::clone(&peers), key));
    tokio::spawn(async move { axum::serve(hooks, app).await });
    let smtp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let smtp_port = smtp.local_addr()?.port();
    let p = Arc::clone(&peers);
    tokio::spawn(async move {
        while let Ok((stream, _)) = smtp.accept().await {
            tokio::spawn(smtp_session(stream, Arc::clone(&p)));
        }
    });
    println!(
        "{}",
        json!({
            "sms_url": twilio.url(), "fcm_url": fcm.url(), "service_account": fcm.service_account,
            "webhook_url": format!("http://127.0.0.1:{hooks_port}/hooks"), "webhook_secret": secret,
            "smtp_port": smtp_port,
        })
    );
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(cmd) = commands.recv().await {
        if cmd.trim() == "reset" {
            let mut p = peers.lock().unwrap();
            p.email = Seen::default();
            p.webhook = Seen::default();
            println!("{{}}");
            continue;
        }
        let mut sms = Seen::default();
        for r in twilio.received() {
            if r.valid && r.status < 300 {
                if let Some(id) = r.form.get("Body").and_then(|b| event_id(b)) {
                    sms.note(id, unix(r.at));
                }
            }
        }
        let mut push = Seen::default();
        for (at, m) in fcm.delivered_with_times() {
            if let Some(id) = event_id(&m.to_string()) {
                push.note(id, unix(at));
            }
        }
        let p = peers.lock().unwrap();
        let refused = p.refused
            + twilio.received().iter().filter(|r| !r.valid).count() as u64
            + fcm.refused().len() as u64;
        let channels = [
            ("sms", &sms),
            ("push", &push),
            ("email", &p.email),
            ("webhook", &p.webhook),
        ];
        let answer = match cmd.trim() {
            "times" => Value::Object(
                channels
                    .iter()
                    .map(|(c, s)| {
                        (
                            c.to_string(),
                            json!(
                                s.first
                                    .iter()
                                    .map(|(k, v)| (k.clone(), json!(*v as u64)))
                                    .collect::<serde_json::Map<_, _>>()
                            ),
                        )
                    })
                    .collect(),
            ),
            _ => {
                let mut o: serde_json::Map<String, Value> = channels
                    .iter()
                    .map(|(c, s)| (c.to_string(), json!(s.first.len())))
                    .collect();
                o.insert(
                    "repeats".into(),
                    json!(channels.iter().map(|(_, s)| s.repeats).sum::<u64>()),
                );
                o.insert("refused".into(), json!(refused));
                o.insert("fcm_token_exchanges".into(), json!(fcm.exchanges()));
                Value::Object(o)
            }
        };
        println!("{answer}");
    }
    Ok(())
}
