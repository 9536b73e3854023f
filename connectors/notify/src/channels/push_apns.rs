//! Push through APNs: HTTP/2 (`POST /3/device/{token}`), authorised by an ES256 provider token (`kid` = key
//! id, `iss` = team id, `iat`) that is reused and refreshed every `refresh` (20–60 minutes, as Apple requires;
//! a token per request gets `TooManyProviderTokenUpdates`, APNSwift #34), with `apns-push-type`,
//! `apns-priority` (10 now, 5 when convenient), `apns-topic`, `apns-collapse-id` and `apns-id` derived from
//! the idempotency key.
//!
//! | APNs answer | result |
//! |---|---|
//! | 200 | sent, with `apns-id` |
//! | 410 (`Unregistered`, `ExpiredToken`), 400 `BadDeviceToken` / `DeviceTokenNotForTopic` | token quarantined |
//! | 403 `ExpiredProviderToken` / `InvalidProviderToken` | a new provider token; retry |
//! | 429 (`TooManyRequests` for one device, `TooManyProviderTokenUpdates`) | retry later |
//! | 500, 503 | retry |
//! | other 4xx | permanent |

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::channels::jwt::Es256Key;
use crate::channels::{
    Address, Message, SendResult, SetupError, is_loopback_host, redact, retry_after,
    transport_failure, url_host,
};
use crate::rules::Priority;

/// APNs settings.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// `https://api.push.apple.com` (or the sandbox, or a test server).
    pub base_url: String,
    /// The `.p8` key (PKCS#8 PEM).
    pub key_pem: String,
    /// Its 10-character key id.
    pub key_id: String,
    /// The team id.
    pub team_id: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
    /// How long a provider token is reused (20–60 minutes).
    pub refresh: Duration,
    /// Per request.
    pub timeout: Duration,
    /// An extra CA file.
    pub ca_file: Option<String>,
}

struct ProviderToken {
    jwt: String,
    made: tokio::time::Instant,
}

/// The APNs sender.
pub struct Apns {
    client: reqwest::Client,
    key: Es256Key,
    config: ApnsConfig,
    token: Mutex<Option<ProviderToken>>,
    tokens_made: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns")
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

/// Classifies an APNs answer by status and `reason`.
pub fn classify(
    status: u16,
    reason: Option<&str>,
    after: Option<Duration>,
    response: String,
) -> SendResult {
    let r = reason.unwrap_or("");
    match status {
        200 => SendResult::Sent {
            provider_id: None,
            response,
        },
        410 => SendResult::BadAddress {
            reason: format!("APNs: the device token is inactive ({r})"),
            response,
        },
        400 if matches!(r, "BadDeviceToken" | "DeviceTokenNotForTopic") => SendResult::BadAddress {
            reason: format!("APNs: {r}"),
            response,
        },
        403 if matches!(r, "ExpiredProviderToken" | "InvalidProviderToken") => SendResult::Retry {
            reason: format!("APNs: {r}; a new provider token is made"),
            after: None,
            response,
        },
        429 => SendResult::Retry {
            reason: format!("APNs: {}", if r.is_empty() { "TooManyRequests" } else { r }),
            after: Some(after.unwrap_or(Duration::from_secs(60))),
            response,
        },
        500..=599 => SendResult::Retry {
            reason: format!("APNs: {status} {r}"),
            after,
            response,
        },
        _ => SendResult::Permanent {
            reason: format!("APNs refused the notification ({status} {r})"),
            response,
        },
    }
}

impl Apns {
    /// Builds the sender.
    pub fn new(config: ApnsConfig) -> Result<Apns, SetupError> {
        let key = Es256Key::from_pem(&config.key_pem)
            .map_err(|e| SetupError::new("notify.apns.key", e.to_string()))?;
        if config.key_id.len() != 10 {
            return Err(SetupError::new(
                "notify.apns.key.id",
                "an APNs key id has 10 characters",
            ));
        }
        if config.team_id.len() != 10 {
            return Err(SetupError::new(
                "notify.apns.team.id",
                "a team id has 10 characters",
            ));
        }
        let min = Duration::from_secs(20 * 60);
        let max = Duration::from_secs(60 * 60);
        if config.refresh < min || config.refresh > max {
            return Err(SetupError::new(
                "notify.apns.token.refresh",
                "APNs wants provider tokens refreshed no more often than every 20 minutes and at least every 60",
            ));
        }
        let plain = config.base_url.starts_with("http://");
        if plain && !url_host(&config.base_url).is_some_and(is_loopback_host) {
            return Err(SetupError::new(
                "notify.apns.base.url",
                "APNs is HTTPS; plain HTTP/2 only to a loopback test server",
            ));
        }
        let client = super::http_client(
            config.timeout,
            config.ca_file.as_deref(),
            true,
            plain,
            "notify.apns.ca.file",
        )?;
        Ok(Apns {
            client,
            key,
            config,
            token: Mutex::new(None),
            tokens_made: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many provider tokens were made.
    pub fn tokens_made(&self) -> u64 {
        self.tokens_made.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn provider_token(&self, renew: bool) -> Result<String, SendResult> {
        let mut cached = self.token.lock().await;
        if !renew
            && let Some(t) = cached.as_ref()
            && t.made.elapsed() < self.config.refresh
        {
            return Ok(t.jwt.clone());
        }
        let jwt = self
            .key
            .sign_jwt(
                &json!({"alg": "ES256", "kid": self.config.key_id}),
                &json!({"iss": self.config.team_id, "iat": jiff::Timestamp::now().as_second()}),
            )
            .map_err(|e| SendResult::Permanent {
                reason: format!("APNs: {e}"),
                response: String::new(),
            })?;
        self.tokens_made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *cached = Some(ProviderToken {
            jwt: jwt.clone(),
            made: tokio::time::Instant::now(),
        });
        Ok(jwt)
    }

    /// The JSON payload of a notification.
    pub fn payload(message: &Message) -> Value {
        let mut aps = json!({
            "alert": {
                "title": message.content.title.clone().unwrap_or_default(),
                "body": message.content.body.clone().or_else(|| message.content.text.clone()).unwrap_or_default(),
            },
        });
        if message.priority == Priority::Immediate {
            aps["sound"] = json!("default");
            aps["interruption-level"] = json!("time-sensitive");
        }
        json!({
            "aps": aps,
            "event_id": message.event_id,
            "rule": message.rule,
            "ack_url": message.ack_url,
        })
    }

    /// Sends one notification to a device.
    pub async fn send(&self, message: &Message) -> SendResult {
        let Address::Apns(device) = &message.to else {
            return SendResult::Permanent {
                reason: "not an APNs token".into(),
                response: String::new(),
            };
        };
        let mut renewed = false;
        loop {
            let jwt = match self.provider_token(renewed).await {
                Ok(j) => j,
                Err(r) => return r,
            };
            let urgent = matches!(message.priority, Priority::Immediate | Priority::High);
            let hash = super::jwt::sha256_hex(message.key.as_bytes());
            let apns_id = super::jwt::uuid(Some(message.key.as_bytes()));
            let url = format!(
                "{}/3/device/{device}",
                self.config.base_url.trim_end_matches('/')
            );
            let sent = self
                .client
                .post(&url)
                .header("authorization", format!("bearer {jwt}"))
                .header("apns-push-type", "alert")
                .header("apns-priority", if urgent { "10" } else { "5" })
                .header("apns-topic", &self.config.topic)
                .header("apns-collapse-id", &hash[..32])
                .header("apns-id", &apns_id)
                .header("apns-expiration", "0")
                .json(&Apns::payload(message))
                .send()
                .await;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => return transport_failure(&e, "APNs"),
            };
            let status = resp.status().as_u16();
            let after = retry_after(resp.headers());
            let id = resp
                .headers()
                .get("apns-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = resp.text().await.unwrap_or_default();
            let body: Value = serde_json::from_str(&text).unwrap_or_default();
            let reason = body.get("reason").and_then(Value::as_str);
            let result = classify(
                status,
                reason,
                after,
                format!("HTTP {status}: {}", redact(&text)),
            );
            if status == 403
                && matches!(
                    reason,
                    Some("ExpiredProviderToken" | "InvalidProviderToken")
                )
                && !renewed
            {
                renewed = true;
                continue;
            }
            return match result {
                SendResult::Sent { response, .. } => SendResult::Sent {
                    provider_id: id.or(Some(apns_id)),
                    response,
                },
                other => other,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn documented_answers_are_classified() {
        assert!(matches!(
            classify(410, Some("Unregistered"), None, String::new()),
            SendResult::BadAddress { .. }
        ));
        assert!(matches!(
            classify(400, Some("BadDeviceToken"), None, String::new()),
            SendResult::BadAddress { .. }
        ));
        assert!(matches!(
            classify(400, Some("PayloadEmpty"), None, String::new()),
            SendResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(429, Some("TooManyRequests"), None, String::new()),
            SendResult::Retry { after: Some(_), .. }
        ));
        assert!(matches!(
            classify(503, Some("ServiceUnavailable"), None, String::new()),
            SendResult::Retry { .. }
        ));
    }
}
