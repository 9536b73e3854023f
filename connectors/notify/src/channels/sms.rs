//! SMS through Twilio's Messages API (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded,
//! HTTP Basic with the account SID and auth token, or an API key SID and secret), with a `StatusCallback`
//! per message, and Twilio's errors classified:
//!
//! | answer | what it means | result |
//! |---|---|---|
//! | 201 | queued | sent, with the message SID |
//! | 429 / 20429 | too many requests | retry after `Retry-After` |
//! | 503 / 20503 | service unavailable: not processed | retry |
//! | other 5xx, 20500 | internal error: may have been created | ambiguous (never resent) |
//! | 21211 | invalid `To` number | permanent (another channel) |
//! | 21610 | the recipient replied STOP | permanent (another channel) |
//! | other 4xx | refused | permanent |
//! | status callback `undelivered`/`failed` with 30003 | handset unreachable | retry later |
//!
//! A request that times out after it was sent is ambiguous: Twilio has no idempotency key, so it is not sent
//! again (twilio-ruby #519); a critical alert moves to the next channel instead.

use std::time::Duration;

use crate::channels::jwt;
use crate::channels::{
    Address, Message, SendResult, SetupError, redact, retry_after, transport_failure,
};

/// Twilio's settings.
#[derive(Debug, Clone, Default)]
pub struct SmsConfig {
    /// `https://api.twilio.com` (tests point it at a local server).
    pub base_url: String,
    /// `AC…`.
    pub account_sid: String,
    /// The user of HTTP Basic: the account SID, or an API key SID (`SK…`).
    pub username: String,
    /// The auth token or the API key secret.
    pub password: String,
    /// The auth token, for checking `X-Twilio-Signature` on status callbacks (the password when it is one).
    pub auth_token: Option<String>,
    /// The sender number (E.164) …
    pub from: Option<String>,
    /// … or a Messaging Service.
    pub messaging_service_sid: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// An extra CA file.
    pub ca_file: Option<String>,
}

/// The Twilio sender.
#[derive(Debug)]
pub struct Sms {
    client: reqwest::Client,
    config: SmsConfig,
}

/// Whether `s` is an E.164 number: `+`, a non-zero country digit, at most 15 digits.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.chars().all(|c| c.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Classifies a Twilio answer: the HTTP status, the body's `code`, and `Retry-After`.
pub fn classify(
    status: u16,
    code: Option<i64>,
    after: Option<Duration>,
    response: String,
) -> SendResult {
    match (status, code) {
        (200..=299, _) => SendResult::Sent {
            provider_id: None,
            response,
        },
        (429, _) | (_, Some(20429)) => SendResult::Retry {
            reason: "Twilio: too many requests (20429)".into(),
            after,
            response,
        },
        (503, _) | (_, Some(20503)) => SendResult::Retry {
            reason: "Twilio: service unavailable".into(),
            after,
            response,
        },
        (_, Some(20500)) | (500..=599, _) => SendResult::Ambiguous {
            reason: format!("Twilio: internal error ({status}): the message may have been created"),
            response,
        },
        (_, Some(21211)) => SendResult::Permanent {
            reason: "Twilio: invalid To number (21211)".into(),
            response,
        },
        (_, Some(21610)) => SendResult::Permanent {
            reason: "Twilio: the recipient unsubscribed (21610)".into(),
            response,
        },
        (_, Some(30003)) => SendResult::Retry {
            reason: "Twilio: unreachable handset (30003)".into(),
            after: Some(Duration::from_secs(300)),
            response,
        },
        _ => SendResult::Permanent {
            reason: format!("Twilio refused the message ({status}, code {code:?})"),
            response,
        },
    }
}

impl Sms {
    /// Builds the sender.
    pub fn new(config: SmsConfig) -> Result<Sms, SetupError> {
        if !config.account_sid.starts_with("AC") || config.account_sid.len() != 34 {
            return Err(SetupError::new(
                "notify.sms.account.sid",
                "a Twilio account SID is AC followed by 32 hex digits",
            ));
        }
        match (&config.from, &config.messaging_service_sid) {
            (None, None) => {
                return Err(SetupError::new(
                    "notify.sms.from",
                    "set notify.sms.from or notify.sms.messaging.service.sid",
                ));
            }
            (Some(f), _) if !is_e164(f) && !f.chars().all(|c| c.is_ascii_alphanumeric()) => {
                return Err(SetupError::new(
                    "notify.sms.from",
                    format!("{f:?} is neither an E.164 number nor an alphanumeric sender id"),
                ));
            }
            _ => {}
        }
        let client = super::http_client(
            config.timeout,
            config.ca_file.as_deref(),
            false,
            false,
            "notify.sms.ca.file",
        )?;
        Ok(Sms { client, config })
    }

    /// The auth token that signs status callbacks.
    pub fn auth_token(&self) -> Option<&str> {
        self.config.auth_token.as_deref()
    }

    /// Sends one SMS.
    pub async fn send(&self, message: &Message) -> SendResult {
        let Address::Phone(to) = &message.to else {
            return SendResult::Permanent {
                reason: "not a phone number".into(),
                response: String::new(),
            };
        };
        let url = format!(
            "{}/2010-04-01/Accounts/{}/Messages.json",
            self.config.base_url.trim_end_matches('/'),
            self.config.account_sid
        );
        let body = message
            .content
            .text
            .clone()
            .or_else(|| message.content.body.clone())
            .unwrap_or_default();
        let mut form: Vec<(&str, String)> = vec![("To", to.clone()), ("Body", body)];
        if let Some(f) = &self.config.from {
            form.push(("From", f.clone()));
        }
        if let Some(m) = &self.config.messaging_service_sid {
            form.push(("MessagingServiceSid", m.clone()));
        }
        if let Some(cb) = &message.status_callback {
            form.push(("StatusCallback", cb.clone()));
        }
        let sent = self
            .client
            .post(&url)
            .basic_auth(&self.config.username, Some(&self.config.password))
            .form(&form)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return transport_failure(&e, "Twilio"),
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) if (200..300).contains(&status) => {
                return SendResult::Ambiguous {
                    reason: format!("Twilio accepted ({status}) but the answer was cut: {e}"),
                    response: String::new(),
                };
            }
            Err(_) => String::new(),
        };
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let code = json.get("code").and_then(serde_json::Value::as_i64);
        let response = format!("HTTP {status}: {}", redact(&text));
        match classify(status, code, after, response) {
            SendResult::Sent { response, .. } => SendResult::Sent {
                provider_id: json.get("sid").and_then(|s| s.as_str()).map(str::to_owned),
                response,
            },
            other => other,
        }
    }
}

/// Twilio's `X-Twilio-Signature` of a form POST: HMAC-SHA1 (base64) of the full URL followed by every
/// parameter name and value, sorted by name.
pub fn callback_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    jwt::hmac_sha1_b64(auth_token.as_bytes(), data.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn e164_and_error_table() {
        assert!(
            is_e164("+15005550006")
                && !is_e164("15005550006")
                && !is_e164("+0123")
                && !is_e164("+1 500")
        );
        assert!(
            matches!(classify(429, Some(20429), Some(Duration::from_secs(3)), String::new()), SendResult::Retry { after: Some(d), .. } if d == Duration::from_secs(3))
        );
        assert!(matches!(
            classify(500, Some(20500), None, String::new()),
            SendResult::Ambiguous { .. }
        ));
        assert!(matches!(
            classify(400, Some(21211), None, String::new()),
            SendResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(400, Some(21610), None, String::new()),
            SendResult::Permanent { .. }
        ));
        assert!(matches!(
            classify(200, Some(30003), None, String::new()),
            SendResult::Sent { .. }
        ));
        assert!(matches!(
            classify(400, Some(30003), None, String::new()),
            SendResult::Retry { .. }
        ));
    }

    /// Twilio's documented example of a request signature.
    #[test]
    fn callback_signatures_follow_twilio() {
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(
            callback_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }
}
