//! Webhooks as Standard Webhooks sends them: `webhook-id` (the same on every resend, so receivers dedupe),
//! `webhook-timestamp` (Unix seconds), `webhook-signature` with a `v1,` HMAC-SHA256 signature of
//! `id.timestamp.body` per `whsec_` secret (several during a rotation) and, optionally, a `v1a,` Ed25519 one.
//!
//! Because receivers dedupe on `webhook-id`, a webhook whose outcome is unknown (a timeout) is safe to send
//! again: timeouts are retried, not ambiguous.

use std::time::Duration;

use crate::channels::jwt::{self, Ed25519Key};
use crate::channels::{Address, Message, SendResult, SetupError, redact, retry_after};

/// The webhook channel's settings.
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// The endpoint used when a guardian has none of their own.
    pub url: Option<String>,
    /// `whsec_…` secrets; each signs (receivers accept any).
    pub secrets: Vec<String>,
    /// A `whsk_…` Ed25519 key for `v1a` signatures.
    pub signing_key: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// An extra CA file.
    pub ca_file: Option<String>,
}

/// The webhook sender.
#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    secrets: Vec<Vec<u8>>,
    ed25519: Option<Ed25519Key>,
    /// The default endpoint.
    pub url: Option<String>,
}

/// Decodes a `whsec_` secret (base64 after the prefix; a secret without the prefix is used as raw bytes, as
/// the reference libraries do).
pub fn secret_bytes(secret: &str) -> Result<Vec<u8>, String> {
    match secret.trim().strip_prefix("whsec_") {
        Some(b) => jwt::unb64(b).map_err(|e| format!("whsec_ secret: {e}")),
        None => Ok(secret.trim().as_bytes().to_vec()),
    }
}

/// The `webhook-signature` header value for `id`, `timestamp` and `body`.
pub fn signature_header(
    secrets: &[Vec<u8>],
    ed25519: Option<&Ed25519Key>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let mut sigs: Vec<String> = secrets
        .iter()
        .map(|k| format!("v1,{}", jwt::b64(&jwt::hmac_sha256(k, &signed))))
        .collect();
    if let Some(k) = ed25519 {
        sigs.push(format!("v1a,{}", jwt::b64(&k.sign(&signed))));
    }
    sigs.join(" ")
}

/// The `webhook-id` of an idempotency key: `msg_` and a hash (stable, and free of what the key holds).
pub fn webhook_id(key: &str) -> String {
    format!("msg_{}", &jwt::sha256_hex(key.as_bytes())[..32])
}

impl Webhook {
    /// Builds the sender.
    pub fn new(config: &WebhookConfig) -> Result<Webhook, SetupError> {
        let secrets = config
            .secrets
            .iter()
            .map(|s| secret_bytes(s).map_err(|e| SetupError::new("notify.webhook.secrets", e)))
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(SetupError::new(
                "notify.webhook.secrets",
                "webhooks are signed: give at least one whsec_ secret",
            ));
        }
        let ed25519 = match &config.signing_key {
            None => None,
            Some(k) => {
                let raw = k.trim().strip_prefix("whsk_").ok_or_else(|| {
                    SetupError::new("notify.webhook.signing.key", "expected a whsk_ key")
                })?;
                let bytes = jwt::unb64(raw)
                    .map_err(|e| SetupError::new("notify.webhook.signing.key", e.to_string()))?;
                Some(
                    Ed25519Key::from_bytes(&bytes).map_err(|e| {
                        SetupError::new("notify.webhook.signing.key", e.to_string())
                    })?,
                )
            }
        };
        let client = super::http_client(
            config.timeout,
            config.ca_file.as_deref(),
            false,
            false,
            "notify.webhook.ca.file",
        )?;
        Ok(Webhook {
            client,
            secrets,
            ed25519,
            url: config.url.clone(),
        })
    }

    /// The JSON body of a notification: the template's `body` if the rule has one, else a standard envelope.
    pub fn body(message: &Message, guardian_id: &str, data: &serde_json::Value) -> String {
        if let Some(b) = &message.content.body {
            return b.clone();
        }
        serde_json::json!({
            "type": format!("notification.{}", message.rule),
            "timestamp": jiff::Timestamp::now().to_string(),
            "data": {
                "event_id": message.event_id,
                "guardian_id": guardian_id,
                "priority": message.priority.as_str(),
                "rule": message.rule,
                "title": message.content.title.as_ref().or(message.content.subject.as_ref()),
                "text": message.content.text.as_ref().or(message.content.body.as_ref()),
                "ack_url": message.ack_url,
                "event": data,
            }
        })
        .to_string()
    }

    /// Sends `body` to the message's endpoint.
    pub async fn send(&self, message: &Message, body: String) -> SendResult {
        let Address::Webhook(url) = &message.to else {
            return SendResult::Permanent {
                reason: "not a webhook address".into(),
                response: String::new(),
            };
        };
        let id = webhook_id(&message.key);
        let ts = jiff::Timestamp::now().as_second();
        let sig = signature_header(
            &self.secrets,
            self.ed25519.as_ref(),
            &id,
            ts,
            body.as_bytes(),
        );
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", sig)
            .body(body)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                // The receiver dedupes on webhook-id: whatever happened, sending again is safe.
                return SendResult::Retry {
                    reason: format!("webhook: {}", redact(&super::error_chain(&e))),
                    after: None,
                    response: String::new(),
                };
            }
        };
        let status = resp.status();
        let after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let response = format!("HTTP {}: {}", status.as_u16(), redact(&text));
        match status.as_u16() {
            200..=299 => SendResult::Sent {
                provider_id: Some(id),
                response,
            },
            408 | 409 | 425 | 429 | 500..=599 => SendResult::Retry {
                reason: format!("webhook endpoint answered {status}"),
                after,
                response,
            },
            410 => SendResult::BadAddress {
                reason: "the webhook endpoint is gone (410)".into(),
                response,
            },
            _ => SendResult::Permanent {
                reason: format!("webhook endpoint refused it ({status})"),
                response,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_the_reference_libraries() {
        let key = secret_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let h = signature_header(
            &[key],
            None,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            body,
        );
        assert_eq!(h, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }
}
