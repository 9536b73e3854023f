//! The worker's small HTTP server: signed acknowledgement links (`GET /ack?e=…&g=…&s=…`, HMAC-SHA256 of the
//! event and guardian ids) that stop an escalation, and Twilio's status callbacks (`POST /twilio/status`,
//! checked against `X-Twilio-Signature`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};

use crate::channels::jwt;
use crate::channels::sms::callback_signature;
use crate::sink::Core;

/// The signature of an acknowledgement link for (event, guardian).
pub fn sign(secret: &[u8], event_id: &str, guardian_id: &str) -> String {
    let tag = jwt::hmac_sha256(secret, format!("ack\n{event_id}\n{guardian_id}").as_bytes());
    jwt::b64url(&tag[..18])
}

/// Whether `sig` is the signature of (event, guardian).
pub fn verify(secret: &[u8], event_id: &str, guardian_id: &str, sig: &str) -> bool {
    let tag = jwt::hmac_sha256(secret, format!("ack\n{event_id}\n{guardian_id}").as_bytes());
    let Ok(given) = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig)
    else {
        return false;
    };
    given.len() == 18 && constant_time_eq(&tag[..18], &given)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The routes, over the sink's core.
pub fn router(core: Arc<Core>) -> Router {
    Router::new()
        .route("/ack", get(ack))
        .route("/twilio/status", post(twilio_status))
        .route("/health", get(|| async { "ok" }))
        .with_state(core)
}

#[derive(serde::Deserialize)]
struct AckQuery {
    e: String,
    g: String,
    s: String,
}

async fn ack(State(core): State<Arc<Core>>, Query(q): Query<AckQuery>) -> Response {
    let Some(secret) = core.settings().ack_secret.as_ref() else {
        return (StatusCode::NOT_FOUND, "acknowledgements are not enabled").into_response();
    };
    if !verify(secret, &q.e, &q.g, &q.s) {
        return (StatusCode::FORBIDDEN, "this link is not valid").into_response();
    }
    match core.acknowledge(&q.e, &q.g, "link").await {
        Ok(_) => Html(
            "<!doctype html><title>Thank you</title><p>Thank you: the alert is acknowledged.</p>",
        )
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "please try again in a moment",
        )
            .into_response(),
    }
}

async fn twilio_status(
    State(core): State<Arc<Core>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let params: Vec<(String, String)> = form_pairs(&body);
    let (Some(base), Some(sms)) = (
        core.settings().public_url.as_ref(),
        core.channels().sms.as_ref(),
    ) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(token) = sms.auth_token() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let url = format!("{base}/twilio/status");
    let expected = callback_signature(token, &url, &params);
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return (StatusCode::FORBIDDEN, "bad signature").into_response();
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let (Some(sid), Some(status)) = (get("MessageSid"), get("MessageStatus")) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match core.twilio_status(sid, status, get("ErrorCode")).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// Decodes `application/x-www-form-urlencoded`.
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                },
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn links_verify_and_forms_decode() {
        let s = sign(b"k", "e1", "g1");
        assert!(verify(b"k", "e1", "g1", &s));
        assert!(!verify(b"k", "e1", "g2", &s));
        assert_eq!(
            form_pairs("MessageSid=SM1&To=%2B1555&Body=a+b"),
            vec![
                ("MessageSid".into(), "SM1".into()),
                ("To".into(), "+1555".into()),
                ("Body".into(), "a b".into())
            ]
        );
    }
}
