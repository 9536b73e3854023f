//! The channels and their providers: what a send needs ([`Message`], [`Address`]), what it can end in
//! ([`SendResult`], classified from each provider's documented errors), and what they share (HTTP clients,
//! base64url, PEM, redaction of provider responses).

pub mod email;
pub mod jwt;
pub mod push_apns;
pub mod push_fcm;
pub mod sms;
pub mod smtp_pool;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::rules::{Priority, Rendered};

/// Where a notification goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An email address.
    Email(String),
    /// An E.164 phone number.
    Phone(String),
    /// A device's FCM registration token.
    Fcm(String),
    /// A device's APNs token (hex).
    Apns(String),
    /// A webhook endpoint.
    Webhook(String),
}

impl Address {
    /// The provider's name (metrics, audit records, the ledger).
    pub fn provider(&self) -> &'static str {
        match self {
            Address::Email(_) => "smtp",
            Address::Phone(_) => "twilio",
            Address::Fcm(_) => "fcm",
            Address::Apns(_) => "apns",
            Address::Webhook(_) => "webhook",
        }
    }
}

/// One send.
#[derive(Debug, Clone)]
pub struct Message {
    /// The idempotency key: stable for this (event, guardian, channel, target, round), so a provider that
    /// dedupes (Standard Webhooks' `webhook-id`, APNs' `apns-collapse-id`, the email's `Message-ID`) sees the
    /// same key on a resend.
    pub key: String,
    /// The recipient.
    pub to: Address,
    /// What the templates rendered.
    pub content: Rendered,
    /// How urgent (APNs and FCM priorities).
    pub priority: Priority,
    /// The source event's id.
    pub event_id: String,
    /// The rule (or `digest`).
    pub rule: String,
    /// The link that acknowledges (escalations stop), if the worker serves them.
    pub ack_url: Option<String>,
    /// Where Twilio posts delivery statuses for this message, if the worker serves them.
    pub status_callback: Option<String>,
}

/// How a send ended, as the provider's documented errors say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Accepted by the provider.
    Sent {
        /// The provider's message id (Twilio's SID, FCM's name, APNs' `apns-id`, …).
        provider_id: Option<String>,
        /// A summary of the response.
        response: String,
    },
    /// Known not to have been delivered; may pass later (at or after `after`).
    Retry {
        /// Why.
        reason: String,
        /// The delay the provider asked for (Retry-After), or its documented minimum back-off.
        after: Option<Duration>,
        /// A summary of the response.
        response: String,
    },
    /// Known not to have been delivered, and never will be to this address.
    Permanent {
        /// Why.
        reason: String,
        /// A summary of the response.
        response: String,
    },
    /// The address (a device token) is not valid any more: quarantine it, use another channel.
    BadAddress {
        /// Why.
        reason: String,
        /// A summary of the response.
        response: String,
    },
    /// The provider may or may not have accepted it (a timeout after the request was sent, Twilio 20500):
    /// never resent where the provider does not dedupe.
    Ambiguous {
        /// Why.
        reason: String,
        /// A summary of the response, if any.
        response: String,
    },
}

impl SendResult {
    /// The ledger state name.
    pub fn state(&self) -> &'static str {
        match self {
            SendResult::Sent { .. } => "sent",
            SendResult::Retry { .. } => "retry",
            SendResult::Permanent { .. } => "failed",
            SendResult::BadAddress { .. } => "failed",
            SendResult::Ambiguous { .. } => "ambiguous",
        }
    }

    /// The metrics outcome label.
    pub fn outcome(&self) -> &'static str {
        match self {
            SendResult::Sent { .. } => "sent",
            SendResult::Retry { .. } => "retry",
            SendResult::Permanent { .. } => "permanent",
            SendResult::BadAddress { .. } => "bad_address",
            SendResult::Ambiguous { .. } => "ambiguous",
        }
    }

    /// The response summary.
    pub fn response(&self) -> &str {
        match self {
            SendResult::Sent { response, .. }
            | SendResult::Retry { response, .. }
            | SendResult::Permanent { response, .. }
            | SendResult::BadAddress { response, .. }
            | SendResult::Ambiguous { response, .. } => response,
        }
    }

    /// Why it did not succeed (empty when sent).
    pub fn reason(&self) -> &str {
        match self {
            SendResult::Sent { .. } => "",
            SendResult::Retry { reason, .. }
            | SendResult::Permanent { reason, .. }
            | SendResult::BadAddress { reason, .. }
            | SendResult::Ambiguous { reason, .. } => reason,
        }
    }
}

/// Why a channel could not be set up from its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SetupError {
    /// The config key at fault.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl SetupError {
    /// An error about `key`.
    pub fn new(key: &str, message: impl Into<String>) -> SetupError {
        SetupError {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

/// An HTTP client for a provider: a timeout per request, an extra CA (tests, private endpoints), HTTP/2 when
/// asked (APNs requires it: ALPN over TLS, prior knowledge over plain HTTP on loopback).
///
/// Clients are shared across the process by their settings (a client is a handle on one connection pool):
/// building one loads the system's trust store, about 80 ms of CPU, and every task of every connector would
/// otherwise build its own for each provider.
pub fn http_client(
    timeout: Duration,
    ca_file: Option<&str>,
    http2: bool,
    plain_http2: bool,
    ca_key: &str,
) -> Result<reqwest::Client, SetupError> {
    type Clients = Mutex<HashMap<(Duration, Option<Vec<u8>>, bool, bool), reqwest::Client>>;
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    let pem = match ca_file.filter(|p| !p.is_empty()) {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| SetupError::new(ca_key, format!("cannot read {path}: {e}")))?,
        ),
        None => None,
    };
    let key = (timeout, pem, http2, http2 && plain_http2);
    // Held while a client is built: tasks starting at once wait for the one client instead of each building one.
    let mut clients = CLIENTS
        .get_or_init(Clients::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(c) = clients.get(&key) {
        return Ok(c.clone());
    }
    let mut b = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("ursa-notify/", env!("CARGO_PKG_VERSION")));
    if let (Some(pem), Some(path)) = (&key.1, ca_file) {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| {
            SetupError::new(ca_key, format!("{path} is not a PEM certificate: {e}"))
        })?;
        b = b.add_root_certificate(cert);
    }
    if key.3 {
        b = b.http2_prior_knowledge();
    }
    let client = b
        .build()
        .map_err(|e| SetupError::new(ca_key, format!("cannot build the HTTP client: {e}")))?;
    clients.insert(key, client.clone());
    Ok(client)
}

/// Whether a URL's host is the loopback interface (plain text is allowed only there).
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host of an http(s) URL.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = host_port.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(host_port.rsplit_once(':').map_or(host_port, |(h, _)| h))
}

/// A provider response made safe to keep and show: phone numbers, email addresses and device tokens are
/// replaced by `<redacted>`, and it is cut to 512 characters.
pub fn redact(text: &str) -> String {
    use std::sync::OnceLock;
    static PATTERNS: OnceLock<Option<regex::Regex>> = OnceLock::new();
    let re = PATTERNS.get_or_init(|| {
        regex::Regex::new(r"\+?[0-9][0-9 ()-]{6,}[0-9]|[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}|[A-Za-z0-9_:-]{64,}")
            .ok()
    });
    let out = match re {
        Some(re) => re.replace_all(text, "<redacted>").into_owned(),
        None => text.to_owned(),
    };
    let mut out: String = out.chars().take(512).collect();
    if text.chars().count() > 512 {
        out.push('…');
    }
    out
}

/// A `Retry-After` header: seconds, or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let d = when.duration_since(now);
    Some(Duration::try_from(d).unwrap_or(Duration::ZERO))
}

/// A reqwest failure classified: no connection means nothing was sent (retry); a timeout or a failure after
/// the request was written may have been accepted (ambiguous), unless the provider dedupes.
pub fn transport_failure(e: &reqwest::Error, provider: &str) -> SendResult {
    let reason = format!("{provider}: {}", redact(&error_chain(e)));
    if e.is_connect() {
        SendResult::Retry {
            reason,
            after: None,
            response: String::new(),
        }
    } else {
        SendResult::Ambiguous {
            reason,
            response: String::new(),
        }
    }
}

/// An error with its causes.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn responses_lose_their_personal_data() {
        let r = redact(
            r#"{"code":21211,"message":"The 'To' number +15005550001 is not valid","to":"a.b@example.com"}"#,
        );
        assert!(
            !r.contains("15005550001") && !r.contains("example.com"),
            "{r}"
        );
        assert!(r.contains("21211"), "{r}");
    }

    #[test]
    fn hosts_and_loopback() {
        assert_eq!(url_host("https://user:pw@[::1]:8443/x"), Some("::1"));
        assert_eq!(url_host("http://127.0.0.1:25"), Some("127.0.0.1"));
        assert!(
            is_loopback_host("::1")
                && is_loopback_host("localhost")
                && !is_loopback_host("10.0.0.1")
        );
    }
}
