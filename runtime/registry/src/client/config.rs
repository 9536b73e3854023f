//! Client configuration: where, how to authenticate, which CA to trust, how long to wait, how to retry.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Credentials sent with every request. `Debug` never shows secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP Basic (Confluent Cloud: API key and secret).
    Basic {
        /// The user (or API key).
        user: String,
        /// The password (or API secret).
        password: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::Bearer { .. } => f
                .debug_struct("Bearer")
                .field("token", &"<redacted>")
                .finish(),
        }
    }
}

/// Retries of transient failures (connect errors, timeouts, 5xx, 429) with exponential backoff and full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: u32,
    /// The backoff bound before the first retry; it doubles each retry.
    pub initial_backoff: Duration,
    /// The largest backoff (also caps a server's `Retry-After`).
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..RetryPolicy::default()
        }
    }

    /// The wait before retry number `retry` (0-based): uniformly random in [bound/2, bound] where bound is
    /// `initial_backoff * 2^retry` capped at `max_backoff`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let bound = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(20)))
            .min(self.max_backoff);
        let half = bound / 2;
        let span = (bound - half).as_nanos() as u64;
        let jitter = if span == 0 {
            0
        } else {
            random_u64() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }
}

impl Default for RetryPolicy {
    /// 3 retries, 100 ms doubling up to 5 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

/// How to reach a registry.
#[derive(Clone)]
pub struct ClientConfig {
    /// The base URL, e.g. `http://localhost:8081` or `https://key:secret@psrc-x.confluent.cloud` (credentials
    /// in the URL are used as Basic auth when `auth` is `None`).
    pub url: String,
    /// Credentials.
    pub auth: Auth,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_cert: Option<PathBuf>,
    /// The timeout of one attempt of a request.
    pub timeout: Duration,
    /// Retries of transient failures.
    pub retries: RetryPolicy,
}

impl ClientConfig {
    /// `url` without auth, with a 30 s timeout and the default retries.
    pub fn new(url: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            auth: Auth::None,
            ca_cert: None,
            timeout: Duration::from_secs(30),
            retries: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("url", &redact_url(&self.url))
            .field("auth", &self.auth)
            .field("ca_cert", &self.ca_cert)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// `url` with any password replaced.
pub(crate) fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("redacted"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => match url.rfind('@') {
            Some(at) => format!("<redacted>{}", &url[at..]),
            None => url.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let mut c = ClientConfig::new("https://key:hunter2@registry.example");
        c.auth = Auth::Basic {
            user: "key".into(),
            password: "s3cret".into(),
        };
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("s3cret"), "{d}");
        assert!(d.contains("key"));
        let b = format!(
            "{:?}",
            Auth::Bearer {
                token: "tok123".into()
            }
        );
        assert!(!b.contains("tok123"), "{b}");
    }

    #[test]
    fn backoff_grows_with_jitter_and_caps() {
        let p = RetryPolicy {
            max_retries: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
        };
        for _ in 0..50 {
            let b0 = p.backoff(0);
            assert!(b0 >= Duration::from_millis(50) && b0 <= Duration::from_millis(100));
            let b1 = p.backoff(1);
            assert!(b1 >= Duration::from_millis(100) && b1 <= Duration::from_millis(200));
            let b9 = p.backoff(9);
            assert!(b9 >= Duration::from_millis(175) && b9 <= Duration::from_millis(350));
        }
    }
}
