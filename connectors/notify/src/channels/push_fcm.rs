//! Push through FCM HTTP v1 (`POST /v1/projects/{project}/messages:send`), authorised by an OAuth2 access
//! token from the service account (a JWT-bearer grant signed RS256 with the account's key, exchanged at its
//! `token_uri`), cached and refreshed five minutes before it expires, one exchange at a time.
//!
//! | FCM error | result |
//! |---|---|
//! | `UNREGISTERED` (404), `SENDER_ID_MISMATCH` (403) | the token is quarantined (re-checked later, never deleted at once) |
//! | `INVALID_ARGUMENT` (400) | permanent |
//! | `QUOTA_EXCEEDED` (429) | retry after `Retry-After`, at least a minute |
//! | `UNAVAILABLE` (503), `INTERNAL` (500) | retry |
//! | 401 | the access token is dropped; retry |

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::channels::jwt::Rs256Key;
use crate::channels::{
    Address, Message, SendResult, SetupError, redact, retry_after, transport_failure,
};
use crate::rules::Priority;

/// The OAuth2 scope of FCM sends.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// FCM settings.
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service account's JSON (`type`, `project_id`, `private_key`, `client_email`, `token_uri`).
    pub service_account: String,
    /// `https://fcm.googleapis.com`.
    pub base_url: String,
    /// Overrides the account's `token_uri`.
    pub token_url: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// An extra CA file.
    pub ca_file: Option<String>,
}

struct Token {
    value: String,
    expires: tokio::time::Instant,
}

/// The FCM sender.
pub struct Fcm {
    client: reqwest::Client,
    key: Rs256Key,
    client_email: String,
    project: String,
    token_url: String,
    send_url: String,
    token: Mutex<Option<Token>>,
    exchanges: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm")
            .field("project", &self.project)
            .finish_non_exhaustive()
    }
}

/// What an FCM error response says: the `FcmError` code if present, else the status.
pub fn error_code(body: &Value) -> Option<String> {
    let err = body.get("error")?;
    err.get("details")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|d| {
            d.get("@type").and_then(Value::as_str)
                == Some("type.googleapis.com/google.firebase.fcm.v1.FcmError")
        })
        .and_then(|d| d.get("errorCode"))
        .and_then(Value::as_str)
        .or_else(|| err.get("status").and_then(Value::as_str))
        .map(str::to_owned)
}

/// Classifies an FCM answer.
pub fn classify(
    status: u16,
    code: Option<&str>,
    after: Option<Duration>,
    response: String,
) -> SendResult {
    match (status, code) {
        (200..=299, _) => SendResult::Sent {
            provider_id: None,
            response,
        },
        (_, Some("UNREGISTERED")) | (_, Some("SENDER_ID_MISMATCH")) => SendResult::BadAddress {
            reason: format!(
                "FCM: the registration token is not valid ({})",
                code.unwrap_or_default()
            ),
            response,
        },
        (_, Some("QUOTA_EXCEEDED")) | (429, _) => SendResult::Retry {
            reason: "FCM: quota exceeded".into(),
            after: Some(after.unwrap_or_default().max(Duration::from_secs(60))),
            response,
        },
        (_, Some("UNAVAILABLE")) | (_, Some("INTERNAL")) | (500..=599, _) => SendResult::Retry {
            reason: format!("FCM: {} ({status})", code.unwrap_or("server error")),
            after,
            response,
        },
        (401, _) => SendResult::Retry {
            reason: "FCM: the access token was refused".into(),
            after: None,
            response,
        },
        _ => SendResult::Permanent {
            reason: format!(
                "FCM refused the message ({status}, {})",
                code.unwrap_or("no code")
            ),
            response,
        },
    }
}

impl Fcm {
    /// Builds the sender from the service account.
    pub fn new(config: &FcmConfig) -> Result<Fcm, SetupError> {
        let k = "notify.fcm.service.account";
        let sa: Value = serde_json::from_str(&config.service_account)
            .map_err(|e| SetupError::new(k, format!("not a service account JSON: {e}")))?;
        let field = |name: &str| -> Result<String, SetupError> {
            sa.get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| SetupError::new(k, format!("the service account has no `{name}`")))
        };
        let key = Rs256Key::from_pem(&field("private_key")?)
            .map_err(|e| SetupError::new(k, e.to_string()))?;
        let project = field("project_id")?;
        let token_url = match &config.token_url {
            Some(u) => u.clone(),
            None => field("token_uri")?,
        };
        let client = super::http_client(
            config.timeout,
            config.ca_file.as_deref(),
            false,
            false,
            "notify.fcm.ca.file",
        )?;
        Ok(Fcm {
            client,
            key,
            client_email: field("client_email")?,
            send_url: format!(
                "{}/v1/projects/{project}/messages:send",
                config.base_url.trim_end_matches('/')
            ),
            project,
            token_url,
            token: Mutex::new(None),
            exchanges: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How many token exchanges were made (tests, metrics).
    pub fn exchanges(&self) -> u64 {
        self.exchanges.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, SendResult> {
        let mut cached = self.token.lock().await;
        if let Some(t) = cached.as_ref()
            && t.expires > tokio::time::Instant::now() + Duration::from_secs(300)
        {
            return Ok(t.value.clone());
        }
        let now = jiff::Timestamp::now().as_second();
        let assertion = self
            .key
            .sign_jwt(
                &json!({"alg": "RS256", "typ": "JWT"}),
                &json!({
                    "iss": self.client_email,
                    "scope": SCOPE,
                    "aud": self.token_url,
                    "iat": now,
                    "exp": now + 3600,
                }),
            )
            .map_err(|e| SendResult::Permanent {
                reason: format!("FCM: {e}"),
                response: String::new(),
            })?;
        self.exchanges
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let resp = self
            .client
            .post(&self.token_url)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| SendResult::Retry {
                reason: format!("FCM token endpoint: {}", redact(&super::error_chain(&e))),
                after: None,
                response: String::new(),
            })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or_default();
        let token = body.get("access_token").and_then(Value::as_str);
        match (status, token) {
            (200..=299, Some(t)) => {
                let ttl = body
                    .get("expires_in")
                    .and_then(Value::as_u64)
                    .unwrap_or(3600);
                *cached = Some(Token {
                    value: t.to_owned(),
                    expires: tokio::time::Instant::now() + Duration::from_secs(ttl),
                });
                Ok(t.to_owned())
            }
            (400..=499, _) => Err(SendResult::Permanent {
                reason: format!("FCM: the token endpoint refused the service account ({status})"),
                response: redact(&body.to_string()),
            }),
            _ => Err(SendResult::Retry {
                reason: format!("FCM: the token endpoint answered {status}"),
                after: None,
                response: redact(&body.to_string()),
            }),
        }
    }

    /// The v1 message for a notification.
    pub fn payload(message: &Message, token: &str, validate_only: bool) -> Value {
        let urgent = matches!(message.priority, Priority::Immediate | Priority::High);
        let collapse = &super::jwt::sha256_hex(message.key.as_bytes())[..32];
        let mut data = serde_json::Map::new();
        data.insert("event_id".into(), Value::String(message.event_id.clone()));
        data.insert("rule".into(), Value::String(message.rule.clone()));
        data.insert(
            "priority".into(),
            Value::String(message.priority.as_str().into()),
        );
        if let Some(a) = &message.ack_url {
            data.insert("ack_url".into(), Value::String(a.clone()));
        }
        json!({
            "validate_only": validate_only,
            "message": {
                "token": token,
                "notification": {
                    "title": message.content.title.clone().unwrap_or_default(),
                    "body": message.content.body.clone().or_else(|| message.content.text.clone()).unwrap_or_default(),
                },
                "data": data,
                "android": {
                    "priority": if urgent { "HIGH" } else { "NORMAL" },
                    "collapse_key": collapse,
                    "notification": { "tag": collapse },
                },
                "apns": {
                    "headers": {
                        "apns-priority": if urgent { "10" } else { "5" },
                        "apns-collapse-id": collapse,
                    }
                }
            }
        })
    }

    /// Sends one push to a device (or, with `validate_only`, checks its token without delivering).
    pub async fn send(&self, message: &Message, validate_only: bool) -> SendResult {
        let Address::Fcm(token) = &message.to else {
            return SendResult::Permanent {
                reason: "not an FCM token".into(),
                response: String::new(),
            };
        };
        let access = match self.access_token().await {
            Ok(a) => a,
            Err(r) => return r,
        };
        let sent = self
            .client
            .post(&self.send_url)
            .bearer_auth(&access)
            .json(&Fcm::payload(message, token, validate_only))
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e, "FCM"),
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let text = resp.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or_default();
        if status == 401 {
            *self.token.lock().await = None;
        }
        let code = error_code(&body);
        match classify(
            status,
            code.as_deref(),
            after,
            format!("HTTP {status}: {}", redact(&text)),
        ) {
            SendResult::Sent { response, .. } => SendResult::Sent {
                provider_id: body.get("name").and_then(Value::as_str).map(str::to_owned),
                response,
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn documented_errors_are_classified() {
        let body = json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}});
        assert_eq!(error_code(&body).as_deref(), Some("UNREGISTERED"));
        assert!(matches!(
            classify(404, Some("UNREGISTERED"), None, String::new()),
            SendResult::BadAddress { .. }
        ));
        assert!(matches!(
            classify(400, Some("INVALID_ARGUMENT"), None, String::new()),
            SendResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(429, Some("QUOTA_EXCEEDED"), Some(Duration::from_secs(5)), String::new()),
            SendResult::Retry { after: Some(d), .. } if d == Duration::from_secs(60)
        ));
        assert!(matches!(
            classify(503, Some("UNAVAILABLE"), None, String::new()),
            SendResult::Retry { .. }
        ));
        assert!(matches!(
            classify(500, Some("INTERNAL"), None, String::new()),
            SendResult::Retry { .. }
        ));
    }
}
