//! Client errors, with Confluent's error codes mapped to what went wrong.

/// An error with its causes (`a: b: c`), innermost last: "certificate verify failed" is what an operator needs.
fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// What a registry request failed with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration is unusable (bad URL, unreadable CA file, …).
    #[error("invalid registry client configuration: {0}")]
    Config(String),
    /// The registry could not be reached.
    #[error("cannot connect to the schema registry at {url}: {}", causes(source))]
    Connect {
        /// The URL (without credentials).
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The request timed out.
    #[error("schema registry request {url} timed out")]
    Timeout {
        /// The URL (without credentials).
        url: String,
    },
    /// Another transport failure.
    #[error("schema registry request {url} failed: {}", causes(source))]
    Transport {
        /// The URL (without credentials).
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// 401 or 403: credentials missing, wrong, or without permission.
    #[error(
        "the schema registry refused the credentials (HTTP {status}): {message} — check the registry auth settings"
    )]
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// The registry's message, if any.
        message: String,
    },
    /// 40401.
    #[error("subject not found: {message}")]
    SubjectNotFound {
        /// The registry's message.
        message: String,
    },
    /// 40402.
    #[error("version not found: {message}")]
    VersionNotFound {
        /// The registry's message.
        message: String,
    },
    /// 40403.
    #[error("schema not found: {message}")]
    SchemaNotFound {
        /// The registry's message.
        message: String,
    },
    /// 409 / 40901: the schema is incompatible with the subject's history.
    #[error("incompatible schema: {message}")]
    Incompatible {
        /// The registry's message (with its details).
        message: String,
    },
    /// 42201: the registry refused the schema as invalid.
    #[error("invalid schema: {message}")]
    InvalidSchema {
        /// The registry's message.
        message: String,
    },
    /// 5xx or 429 (retried per the policy before being returned).
    #[error("schema registry unavailable (HTTP {status}, error code {code:?}): {message}")]
    Unavailable {
        /// The HTTP status.
        status: u16,
        /// Confluent's error code, if the body had one.
        code: Option<i64>,
        /// The message, or a snippet of the body.
        message: String,
    },
    /// Any other error answer from the registry.
    #[error("schema registry error (HTTP {status}, error code {code}): {message}")]
    Registry {
        /// The HTTP status.
        status: u16,
        /// Confluent's error code.
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// The answer is not what the API defines (not JSON, wrong shape).
    #[error(
        "unexpected answer from the schema registry (HTTP {status}): {problem}; body starts: {snippet:?}"
    )]
    Protocol {
        /// The HTTP status.
        status: u16,
        /// What is wrong.
        problem: String,
        /// The start of the body.
        snippet: String,
    },
}

impl ClientError {
    /// Whether trying again may succeed: connection failures, timeouts, 5xx and 429.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. }
                | ClientError::Timeout { .. }
                | ClientError::Unavailable { .. }
        )
    }

    /// Confluent's error code, when the registry sent one.
    pub fn error_code(&self) -> Option<i64> {
        match self {
            ClientError::SubjectNotFound { .. } => Some(40401),
            ClientError::VersionNotFound { .. } => Some(40402),
            ClientError::SchemaNotFound { .. } => Some(40403),
            ClientError::InvalidSchema { .. } => Some(42201),
            ClientError::Registry { code, .. } => Some(*code),
            ClientError::Unavailable { code, .. } => *code,
            _ => None,
        }
    }

    /// Maps an error answer (status and body) to an error.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> ClientError {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error_code: Option<i64>,
            message: Option<String>,
        }
        let parsed = serde_json::from_slice::<ErrorBody>(body)
            .ok()
            .filter(|b| b.error_code.is_some() || b.message.is_some());
        if status == 401 || status == 403 {
            let message = parsed
                .and_then(|b| b.message)
                .unwrap_or_else(|| snippet(body));
            return ClientError::Unauthorized { status, message };
        }
        let Some(b) = parsed else {
            if status >= 500 || status == 429 {
                return ClientError::Unavailable {
                    status,
                    code: None,
                    message: snippet(body),
                };
            }
            return ClientError::Protocol {
                status,
                problem: "the error body is not Confluent's {\"error_code\", \"message\"} JSON"
                    .into(),
                snippet: snippet(body),
            };
        };
        let code = b.error_code.unwrap_or(i64::from(status));
        let message = b.message.unwrap_or_default();
        match code {
            40401 => ClientError::SubjectNotFound { message },
            40402 => ClientError::VersionNotFound { message },
            40403 => ClientError::SchemaNotFound { message },
            409 | 40901 => ClientError::Incompatible { message },
            42201 => ClientError::InvalidSchema { message },
            _ if status >= 500 || status == 429 => ClientError::Unavailable {
                status,
                code: Some(code),
                message,
            },
            _ => ClientError::Registry {
                status,
                code,
                message,
            },
        }
    }
}

/// The first 200 characters of a body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(200).collect();
    if text.chars().count() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_confluent_codes() {
        let e = |status, body: &str| ClientError::from_response(status, body.as_bytes());
        assert!(matches!(
            e(409, r#"{"error_code":409,"message":"x"}"#),
            ClientError::Incompatible { .. }
        ));
        assert!(matches!(
            e(409, r#"{"error_code":40901,"message":"x"}"#),
            ClientError::Incompatible { .. }
        ));
        assert!(matches!(
            e(404, r#"{"error_code":40401,"message":"x"}"#),
            ClientError::SubjectNotFound { .. }
        ));
        assert!(matches!(
            e(401, "<html>nope</html>"),
            ClientError::Unauthorized { status: 401, .. }
        ));
        let g = e(400, "<html>garbage</html>");
        assert!(matches!(g, ClientError::Protocol { status: 400, .. }));
        assert!(g.to_string().contains("garbage"), "{g}");
        let u = e(503, "busy");
        assert!(u.is_retriable());
        assert!(e(429, r#"{"error_code":429,"message":"slow down"}"#).is_retriable());
        assert!(!e(422, r#"{"error_code":42201,"message":"bad"}"#).is_retriable());
    }
}
