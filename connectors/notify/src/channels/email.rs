//! Email over SMTP with lettre's client on ursa's own pooled sockets (`smtp_pool`): STARTTLS (the default) or implicit TLS, AUTH when credentials are given,
//! plain text only to a loopback server; a `multipart/alternative` message with text and HTML parts, and a
//! `Message-ID` derived from the idempotency key (a resend would carry the same id).
//!
//! Errors: a 4xx reply is transient (retry), a 5xx reply permanent; no connection means nothing was sent
//! (retry); a timeout may have been accepted (ambiguous).

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use crate::channels::smtp_pool::{Pool, Protection, SmtpError};
use crate::channels::{Address, Message, SendResult, SetupError, is_loopback_host, redact};

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailTls {
    /// STARTTLS, required.
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
    /// None: only to a loopback server.
    None,
}

/// SMTP settings.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// The server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// How the connection is protected.
    pub tls: EmailTls,
    /// AUTH user.
    pub username: Option<String>,
    /// AUTH password.
    pub password: Option<String>,
    /// The sender.
    pub from: String,
    /// An extra CA file (PEM).
    pub ca_file: Option<String>,
    /// Per command.
    pub timeout: Duration,
}

/// The SMTP sender.
pub struct Email {
    pool: Pool,
    from: Mailbox,
    domain: String,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl Email {
    /// Builds the sender (no connection yet).
    pub fn new(config: &EmailConfig) -> Result<Email, SetupError> {
        let from: Mailbox = config.from.parse().map_err(|e| {
            SetupError::new(
                "notify.email.from",
                format!("{:?} is not an address: {e}", config.from),
            )
        })?;
        let ca = match config.ca_file.as_deref().filter(|p| !p.is_empty()) {
            Some(path) => Some(std::fs::read(path).map_err(|e| {
                SetupError::new("notify.email.ca.file", format!("cannot read {path}: {e}"))
            })?),
            None => None,
        };
        let protection = match config.tls {
            EmailTls::None => {
                if !is_loopback_host(&config.host) {
                    return Err(SetupError::new(
                        "notify.email.tls",
                        format!(
                            "plain SMTP is allowed only to a loopback server, not {}",
                            config.host
                        ),
                    ));
                }
                Protection::None
            }
            EmailTls::StartTls => {
                let mut params = TlsParameters::builder(config.host.clone());
                if let Some(pem) = &ca {
                    let cert = Certificate::from_pem(pem)
                        .map_err(|e| SetupError::new("notify.email.ca.file", e.to_string()))?;
                    params = params.add_root_certificate(cert);
                }
                Protection::StartTls(
                    params
                        .build()
                        .map_err(|e| SetupError::new("notify.email.tls", e.to_string()))?,
                )
            }
            EmailTls::Implicit => {
                let mut b = native_tls::TlsConnector::builder();
                if let Some(pem) = &ca {
                    let cert = native_tls::Certificate::from_pem(pem)
                        .map_err(|e| SetupError::new("notify.email.ca.file", e.to_string()))?;
                    b.add_root_certificate(cert);
                }
                let connector = b
                    .build()
                    .map_err(|e| SetupError::new("notify.email.tls", e.to_string()))?;
                Protection::Implicit(connector.into())
            }
        };
        let mut credentials = None;
        if let (Some(u), Some(p)) = (&config.username, &config.password) {
            if config.tls == EmailTls::None && !is_loopback_host(&config.host) {
                return Err(SetupError::new(
                    "notify.email.username",
                    "credentials are never sent in plain text",
                ));
            }
            credentials = Some(Credentials::new(u.clone(), p.clone()));
        }
        let domain = from.email.domain().to_owned();
        Ok(Email {
            pool: Pool::new(
                config.host.clone(),
                config.port,
                protection,
                credentials,
                config.timeout,
            ),
            from,
            domain,
        })
    }

    /// Whether the server answers (NOOP).
    pub async fn health(&self) -> Result<(), String> {
        match self.pool.check().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("the SMTP server did not accept NOOP".into()),
            Err(e) => Err(redact(&super::error_chain(&e))),
        }
    }

    /// Sends one email.
    pub async fn send(&self, message: &Message) -> SendResult {
        let Address::Email(to) = &message.to else {
            return SendResult::Permanent {
                reason: "not an email address".into(),
                response: String::new(),
            };
        };
        let to: Mailbox = match to.parse() {
            Ok(m) => m,
            Err(e) => {
                return SendResult::Permanent {
                    reason: format!("invalid email address: {e}"),
                    response: String::new(),
                };
            }
        };
        let subject = message.content.subject.clone().unwrap_or_default();
        let text = message.content.text.clone();
        let html = message.content.html.clone();
        let body = match (text, html) {
            (Some(t), Some(h)) => MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_PLAIN)
                        .body(t),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(header::ContentType::TEXT_HTML)
                        .body(h),
                ),
            (Some(t), None) => MultiPart::mixed().singlepart(
                SinglePart::builder()
                    .header(header::ContentType::TEXT_PLAIN)
                    .body(t),
            ),
            (None, Some(h)) => MultiPart::mixed().singlepart(
                SinglePart::builder()
                    .header(header::ContentType::TEXT_HTML)
                    .body(h),
            ),
            (None, None) => MultiPart::mixed().singlepart(
                SinglePart::builder()
                    .header(header::ContentType::TEXT_PLAIN)
                    .body(String::new()),
            ),
        };
        let id = format!(
            "<{}@{}>",
            &super::jwt::sha256_hex(message.key.as_bytes())[..40],
            self.domain
        );
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(id.clone()))
            .multipart(body);
        let email = match email {
            Ok(e) => e,
            Err(e) => {
                return SendResult::Permanent {
                    reason: format!("cannot build the email: {e}"),
                    response: String::new(),
                };
            }
        };
        let envelope = email.envelope().clone();
        let bytes = email.formatted();
        match self.pool.send(&envelope, &bytes).await {
            Ok(resp) => SendResult::Sent {
                provider_id: Some(id),
                response: redact(&format!(
                    "{} {}",
                    resp.code(),
                    resp.message().collect::<Vec<_>>().join(" ")
                )),
            },
            Err(SmtpError::Smtp(e)) => classify(&e),
            Err(e @ SmtpError::Connect(_)) => SendResult::Retry {
                reason: format!("SMTP unreachable: {}", redact(&super::error_chain(&e))),
                after: None,
                response: String::new(),
            },
            Err(e @ SmtpError::Timeout(_)) => SendResult::Ambiguous {
                reason: format!("SMTP: {e}"),
                response: String::new(),
            },
        }
    }
}

/// A lettre error classified.
fn classify(e: &lettre::transport::smtp::Error) -> SendResult {
    let text = redact(&super::error_chain(e));
    let response = e.status().map(|c| c.to_string()).unwrap_or_default();
    if e.is_permanent() {
        SendResult::Permanent {
            reason: format!("SMTP refused it: {text}"),
            response,
        }
    } else if e.is_transient() {
        SendResult::Retry {
            reason: format!("SMTP: try again later: {text}"),
            after: None,
            response,
        }
    } else if e.is_timeout() {
        SendResult::Ambiguous {
            reason: format!("SMTP timed out: {text}"),
            response,
        }
    } else {
        // No connection, TLS or a dropped connection: the message was not accepted (250 after DATA is the
        // only acceptance).
        SendResult::Retry {
            reason: format!("SMTP unreachable: {text}"),
            after: None,
            response,
        }
    }
}
