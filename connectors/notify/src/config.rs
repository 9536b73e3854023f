//! Configuration of the `notify` sink: its keys, its checks (the rules file with `file:line:column` errors, each
//! channel's settings, the channels the rules need), and building it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ursa_connect::limit::LimitConfig;
use ursa_connect::postgres::{Database, SslMode};
use ursa_connect::{FieldErrors, Key, Kind, Parsed, Sink, SinkContext, SinkError, SinkPlugin};

use crate::channels::email::{EmailConfig, EmailTls};
use crate::channels::push_apns::ApnsConfig;
use crate::channels::push_fcm::FcmConfig;
use crate::channels::sms::SmsConfig;
use crate::channels::webhook::WebhookConfig;
use crate::channels::{SetupError, email, push_apns, push_fcm, sms, webhook};
use crate::rules::{ChannelKind, Rules};
use crate::sink::{Channels, NotifySink, Settings};

/// The `notify` plugin.
pub struct NotifyPlugin;

const G: &str = "notify";

fn keys() -> Vec<Key> {
    use Kind::*;
    let mut k = vec![
        Key::required(
            "notify.rules.file",
            String,
            G,
            "The rules file (TOML): matches, priorities, channels, templates, escalation, digest.",
        ),
        Key::required(
            "notify.database.url",
            Password,
            G,
            "PostgreSQL for the guardian directory and the delivery ledger (postgres://user:password@host:port/db).",
        ),
        Key::optional(
            "notify.database.sslmode",
            Enum(SslMode::NAMES.to_vec()),
            "",
            G,
            "TLS to PostgreSQL: disable, prefer (the default), require, verify-ca or verify-full (libpq's sslmode; overrides the URL's).",
        ),
        Key::optional(
            "notify.database.sslrootcert",
            String,
            "",
            G,
            "The CA certificates (PEM) the server's certificate must chain to, for verify-ca and verify-full.",
        ),
        Key::optional(
            "notify.database.pool.size",
            Int,
            "4",
            G,
            "Connections to PostgreSQL.",
        ),
        Key::optional(
            "notify.concurrency",
            Int,
            "16",
            G,
            "Recipients whose events of a batch are handled at once (one recipient's events are handled in order; directory changes and acknowledgements wait for what came before them).",
        ),
        Key::optional(
            "notify.directory.topics",
            List,
            "child.registered,child.profile-updated,guardian.contact-updated",
            G,
            "Topics whose events build the guardian directory.",
        ),
        Key::optional(
            "notify.directory.guardian.topic",
            String,
            "guardian.contact-updated",
            G,
            "The topic of guardian contact and preference changes.",
        ),
        Key::optional(
            "notify.ack.topic",
            String,
            "",
            G,
            "A topic of acknowledgement events ({event_id, guardian_id}); each stops the event's escalation.",
        ),
        Key::optional(
            "notify.ack.secret",
            Password,
            "",
            G,
            "Signs acknowledgement links (HMAC-SHA256).",
        ),
        Key::optional(
            "notify.http.listen",
            String,
            "",
            G,
            "host:port of the worker's HTTP server for acknowledgement links and Twilio status callbacks (empty: none). A task that cannot listen there fails (retriable) and tries again.",
        ),
        Key::optional(
            "notify.http.public.url",
            String,
            "",
            G,
            "How guardians and Twilio reach that server (https://notify.example.com).",
        ),
        Key::optional(
            "notify.lease",
            Duration,
            "60s",
            G,
            "How long a scheduled send is held by one task before another may take it (longer than a send's timeout).",
        ),
        Key::optional(
            "notify.retry.max.attempts",
            Int,
            "8",
            G,
            "Sends of one notification on one channel before it counts as failed (then the next channel).",
        ),
        Key::optional(
            "notify.retry.max.delay",
            Duration,
            "10m",
            G,
            "The longest back-off between two sends.",
        ),
        Key::optional(
            "notify.scheduler.interval",
            Duration,
            "1s",
            G,
            "How often due retries, held notifications, escalations and digests are looked for.",
        ),
        Key::optional(
            "notify.sms.per.recipient.hourly",
            Int,
            "10",
            G,
            "Most SMS per guardian per hour, except immediate ones (0: no limit).",
        ),
        Key::optional(
            "notify.push.recheck.after",
            Duration,
            "1h",
            G,
            "When a quarantined push token is first re-checked (doubling after each failure).",
        ),
        Key::optional(
            "notify.push.recheck.max.failures",
            Int,
            "4",
            G,
            "Failed re-checks before a token is retired (it is kept, never deleted).",
        ),
        // Email.
        Key::optional(
            "notify.email.host",
            String,
            "",
            "email",
            "SMTP server (empty: no email).",
        ),
        Key::optional("notify.email.port", Int, "587", "email", "SMTP port."),
        Key::optional(
            "notify.email.tls",
            Enum(vec!["starttls", "implicit", "none"]),
            "starttls",
            "email",
            "STARTTLS, implicit TLS (465), or none (loopback only).",
        ),
        Key::optional(
            "notify.email.username",
            String,
            "",
            "email",
            "SMTP AUTH user.",
        ),
        Key::optional(
            "notify.email.password",
            Password,
            "",
            "email",
            "SMTP AUTH password.",
        ),
        Key::optional(
            "notify.email.from",
            String,
            "",
            "email",
            "The sender address.",
        ),
        Key::optional(
            "notify.email.ca.file",
            String,
            "",
            "email",
            "An extra CA (PEM) for the SMTP server's certificate.",
        ),
        Key::optional(
            "notify.email.timeout",
            Duration,
            "30s",
            "email",
            "Per SMTP command.",
        ),
        // SMS.
        Key::optional(
            "notify.sms.base.url",
            Url,
            "https://api.twilio.com",
            "sms",
            "Twilio's API.",
        ),
        Key::optional(
            "notify.sms.account.sid",
            String,
            "",
            "sms",
            "Twilio account SID (AC…; empty: no SMS).",
        ),
        Key::optional(
            "notify.sms.auth.token",
            Password,
            "",
            "sms",
            "The account's auth token (also checks status callbacks).",
        ),
        Key::optional(
            "notify.sms.api.key.sid",
            String,
            "",
            "sms",
            "An API key SID (SK…) to use instead of the auth token.",
        ),
        Key::optional(
            "notify.sms.api.key.secret",
            Password,
            "",
            "sms",
            "The API key's secret.",
        ),
        Key::optional(
            "notify.sms.from",
            String,
            "",
            "sms",
            "The sender (E.164 or alphanumeric id).",
        ),
        Key::optional(
            "notify.sms.messaging.service.sid",
            String,
            "",
            "sms",
            "A Messaging Service (MG…) instead of a sender.",
        ),
        Key::optional(
            "notify.sms.ca.file",
            String,
            "",
            "sms",
            "An extra CA (PEM).",
        ),
        Key::optional("notify.sms.timeout", Duration, "10s", "sms", "Per request."),
        // FCM.
        Key::optional(
            "notify.fcm.service.account",
            Password,
            "",
            "push",
            "The service account JSON (e.g. ${file:/etc/ursa/fcm.json}; empty: no FCM).",
        ),
        Key::optional(
            "notify.fcm.base.url",
            Url,
            "https://fcm.googleapis.com",
            "push",
            "FCM's API.",
        ),
        Key::optional(
            "notify.fcm.token.url",
            String,
            "",
            "push",
            "Overrides the service account's token_uri.",
        ),
        Key::optional(
            "notify.fcm.ca.file",
            String,
            "",
            "push",
            "An extra CA (PEM).",
        ),
        Key::optional(
            "notify.fcm.timeout",
            Duration,
            "10s",
            "push",
            "Per request.",
        ),
        // APNs.
        Key::optional(
            "notify.apns.base.url",
            Url,
            "https://api.push.apple.com",
            "push",
            "APNs (api.sandbox.push.apple.com for development).",
        ),
        Key::optional(
            "notify.apns.key",
            Password,
            "",
            "push",
            "The .p8 signing key, PEM (e.g. ${file:/etc/ursa/AuthKey.p8}; empty: no APNs).",
        ),
        Key::optional(
            "notify.apns.key.id",
            String,
            "",
            "push",
            "The key's 10-character id.",
        ),
        Key::optional("notify.apns.team.id", String, "", "push", "The team id."),
        Key::optional(
            "notify.apns.topic",
            String,
            "",
            "push",
            "The app's bundle id.",
        ),
        Key::optional(
            "notify.apns.token.refresh",
            Duration,
            "40m",
            "push",
            "How long a provider token is reused (20–60 minutes).",
        ),
        Key::optional(
            "notify.apns.ca.file",
            String,
            "",
            "push",
            "An extra CA (PEM).",
        ),
        Key::optional(
            "notify.apns.timeout",
            Duration,
            "10s",
            "push",
            "Per request.",
        ),
        // Webhooks.
        Key::optional(
            "notify.webhook.url",
            String,
            "",
            "webhook",
            "The endpoint, when a guardian has none of their own.",
        ),
        Key::optional(
            "notify.webhook.secrets",
            Password,
            "",
            "webhook",
            "whsec_ secrets, comma-separated (several during a rotation; empty: no webhooks).",
        ),
        Key::optional(
            "notify.webhook.signing.key",
            Password,
            "",
            "webhook",
            "A whsk_ Ed25519 key for v1a signatures.",
        ),
        Key::optional(
            "notify.webhook.ca.file",
            String,
            "",
            "webhook",
            "An extra CA (PEM).",
        ),
        Key::optional(
            "notify.webhook.timeout",
            Duration,
            "10s",
            "webhook",
            "Per request.",
        ),
        // Audit records.
        Key::optional(
            "notify.audit.bootstrap.servers",
            String,
            "",
            "audit",
            "Kafka for the audit records (empty: they wait in the outbox).",
        ),
        Key::optional(
            "notify.audit.topic",
            String,
            "system.audit-log",
            "audit",
            "The audit topic.",
        ),
        Key::optional(
            "notify.audit.schema.registry.url",
            String,
            "",
            "audit",
            "The schema registry of the audit topic.",
        ),
        Key::optional(
            "notify.audit.security.protocol",
            String,
            "",
            "audit",
            "The producer's security.protocol.",
        ),
    ];
    for prefix in [
        "notify.sms.limit",
        "notify.push.limit",
        "notify.email.limit",
        "notify.webhook.limit",
    ] {
        k.extend(LimitConfig::keys(prefix));
    }
    k
}

/// Where the directory and the ledger are: the URL with `sslmode` and `sslrootcert` (the keys win over the
/// URL's); an error names its key.
fn database(c: &Parsed) -> Result<Database, (&'static str, String)> {
    let url = c
        .password("notify.database.url")
        .and_then(|s| s.expose())
        .filter(|s| !s.is_empty())
        .ok_or(("notify.database.url", "is required".to_owned()))?;
    let ssl = match string(c, "notify.database.sslmode") {
        Some(m) => Some(
            m.parse::<SslMode>()
                .map_err(|e| ("notify.database.sslmode", e))?,
        ),
        None => None,
    };
    let root = string(c, "notify.database.sslrootcert").map(std::path::PathBuf::from);
    Database::parse(url, ssl, root.as_deref()).map_err(|e| {
        let key = if e.contains("sslrootcert") {
            "notify.database.sslrootcert"
        } else {
            "notify.database.url"
        };
        (key, e)
    })
}

fn string(c: &Parsed, k: &str) -> Option<String> {
    c.string(k)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn secret(c: &Parsed, k: &str) -> Option<String> {
    c.password(k)
        .and_then(|s| s.expose())
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn duration(c: &Parsed, k: &str, d: u64) -> Duration {
    c.duration(k).unwrap_or(Duration::from_secs(d))
}

/// The channels the config sets up (each `None` when not configured).
pub fn channels(c: &Parsed) -> Result<Channels, Vec<SetupError>> {
    let mut errors = Vec::new();
    let email = string(c, "notify.email.host").and_then(|host| {
        let tls = match c.string("notify.email.tls") {
            Some("implicit") => EmailTls::Implicit,
            Some("none") => EmailTls::None,
            _ => EmailTls::StartTls,
        };
        let Some(from) = string(c, "notify.email.from") else {
            errors.push(SetupError::new(
                "notify.email.from",
                "email needs a sender address",
            ));
            return None;
        };
        let port = c.int("notify.email.port").unwrap_or(587);
        let Ok(port) = u16::try_from(port) else {
            errors.push(SetupError::new("notify.email.port", "not a port"));
            return None;
        };
        email::Email::new(&EmailConfig {
            host,
            port,
            tls,
            username: string(c, "notify.email.username"),
            password: secret(c, "notify.email.password"),
            from,
            ca_file: string(c, "notify.email.ca.file"),
            timeout: duration(c, "notify.email.timeout", 30),
        })
        .map_err(|e| errors.push(e))
        .ok()
    });
    let sms = string(c, "notify.sms.account.sid").and_then(|sid| {
        let token = secret(c, "notify.sms.auth.token");
        let (username, password) = match (
            string(c, "notify.sms.api.key.sid"),
            secret(c, "notify.sms.api.key.secret"),
            &token,
        ) {
            (Some(k), Some(s), _) => (k, s),
            (None, None, Some(t)) => (sid.clone(), t.clone()),
            _ => {
                errors.push(SetupError::new(
                    "notify.sms.auth.token",
                    "Twilio needs the auth token, or an API key SID and secret",
                ));
                return None;
            }
        };
        sms::Sms::new(SmsConfig {
            base_url: c
                .string("notify.sms.base.url")
                .unwrap_or("https://api.twilio.com")
                .to_owned(),
            account_sid: sid,
            username,
            password,
            auth_token: token,
            from: string(c, "notify.sms.from"),
            messaging_service_sid: string(c, "notify.sms.messaging.service.sid"),
            timeout: duration(c, "notify.sms.timeout", 10),
            ca_file: string(c, "notify.sms.ca.file"),
        })
        .map_err(|e| errors.push(e))
        .ok()
    });
    let fcm = secret(c, "notify.fcm.service.account").and_then(|sa| {
        push_fcm::Fcm::new(&FcmConfig {
            service_account: sa,
            base_url: c
                .string("notify.fcm.base.url")
                .unwrap_or("https://fcm.googleapis.com")
                .to_owned(),
            token_url: string(c, "notify.fcm.token.url"),
            timeout: duration(c, "notify.fcm.timeout", 10),
            ca_file: string(c, "notify.fcm.ca.file"),
        })
        .map_err(|e| errors.push(e))
        .ok()
    });
    let apns = secret(c, "notify.apns.key").and_then(|key_pem| {
        let need = |k: &str, errors: &mut Vec<SetupError>| {
            let v = string(c, k);
            if v.is_none() {
                errors.push(SetupError::new(k, "APNs needs it"));
            }
            v
        };
        let (Some(key_id), Some(team_id), Some(topic)) = (
            need("notify.apns.key.id", &mut errors),
            need("notify.apns.team.id", &mut errors),
            need("notify.apns.topic", &mut errors),
        ) else {
            return None;
        };
        push_apns::Apns::new(ApnsConfig {
            base_url: c
                .string("notify.apns.base.url")
                .unwrap_or("https://api.push.apple.com")
                .to_owned(),
            key_pem,
            key_id,
            team_id,
            topic,
            refresh: duration(c, "notify.apns.token.refresh", 2400),
            timeout: duration(c, "notify.apns.timeout", 10),
            ca_file: string(c, "notify.apns.ca.file"),
        })
        .map_err(|e| errors.push(e))
        .ok()
    });
    let webhook = secret(c, "notify.webhook.secrets").and_then(|secrets| {
        webhook::Webhook::new(&WebhookConfig {
            url: string(c, "notify.webhook.url"),
            secrets: secrets
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            signing_key: secret(c, "notify.webhook.signing.key"),
            timeout: duration(c, "notify.webhook.timeout", 10),
            ca_file: string(c, "notify.webhook.ca.file"),
        })
        .map_err(|e| errors.push(e))
        .ok()
    });
    if errors.is_empty() {
        Ok(Channels {
            email,
            sms,
            fcm,
            apns,
            webhook,
        })
    } else {
        Err(errors)
    }
}

/// The settings of the sink.
pub fn settings(c: &Parsed, connector: &str) -> Settings {
    let int = |k: &str, d: i64| c.int(k).unwrap_or(d);
    Settings {
        connector: connector.to_owned(),
        instance: crate::channels::jwt::uuid(None),
        lease_ms: crate::db::ms(duration(c, "notify.lease", 60)),
        max_attempts: u32::try_from(int("notify.retry.max.attempts", 8))
            .unwrap_or(8)
            .max(1),
        retry_max: duration(c, "notify.retry.max.delay", 600),
        scheduler_interval: duration(c, "notify.scheduler.interval", 1)
            .max(Duration::from_millis(50)),
        directory_topics: c.list("notify.directory.topics"),
        guardian_topic: c
            .string("notify.directory.guardian.topic")
            .unwrap_or("guardian.contact-updated")
            .to_owned(),
        ack_topic: string(c, "notify.ack.topic"),
        ack_secret: secret(c, "notify.ack.secret").map(String::into_bytes),
        listen: string(c, "notify.http.listen"),
        public_url: string(c, "notify.http.public.url").map(|u| u.trim_end_matches('/').to_owned()),
        sms_per_hour: int("notify.sms.per.recipient.hourly", 10),
        recheck_after: duration(c, "notify.push.recheck.after", 3600),
        recheck_max_failures: i32::try_from(int("notify.push.recheck.max.failures", 4))
            .unwrap_or(4),
        limits: ["sms", "push", "email", "webhook"]
            .into_iter()
            .map(|ch| {
                let prefix = format!("notify.{ch}.limit");
                (ch, LimitConfig::from_parsed(c, &prefix))
            })
            .collect(),
        concurrency: usize::try_from(int("notify.concurrency", 16))
            .unwrap_or(1)
            .clamp(1, 256),
    }
}

impl SinkPlugin for NotifyPlugin {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn description(&self) -> &'static str {
        "Delivers safety alerts and guardian notifications over SMS (Twilio), push (FCM, APNs), email (SMTP) and Standard Webhooks, exactly once through a PostgreSQL ledger, with escalation, digests and quiet hours."
    }

    fn keys(&self) -> Vec<Key> {
        keys()
    }

    fn validate(&self, config: &Parsed) -> FieldErrors {
        let mut errors = FieldErrors::new();
        let mut push = |k: &str, m: String| errors.entry(k.to_owned()).or_default().push(m);
        let rules = match config.string("notify.rules.file") {
            Some(p) => match Rules::load(Path::new(p)) {
                Ok(r) => Some(r),
                Err(es) => {
                    for e in es {
                        push("notify.rules.file", e.to_string());
                    }
                    None
                }
            },
            None => None,
        };
        // A URL still behind an unresolved secret reference is checked when the worker resolves it.
        if config
            .password("notify.database.url")
            .and_then(|s| s.expose())
            .is_some()
            && let Err((key, e)) = database(config)
        {
            push(key, e);
        }
        match channels(config) {
            Err(es) => {
                for e in es {
                    push(&e.key, e.message);
                }
            }
            Ok(ch) => {
                if let Some(r) = &rules {
                    let used: std::collections::BTreeSet<ChannelKind> = r
                        .rules
                        .iter()
                        .flat_map(|r| r.channels.iter().copied())
                        .chain(r.digest.iter().flat_map(|d| d.channels.iter().copied()))
                        .collect();
                    for c in used {
                        let (ok, key) = match c {
                            ChannelKind::Email => (ch.email.is_some(), "notify.email.host"),
                            ChannelKind::Sms => (ch.sms.is_some(), "notify.sms.account.sid"),
                            ChannelKind::Push => (
                                ch.fcm.is_some() || ch.apns.is_some(),
                                "notify.fcm.service.account",
                            ),
                            ChannelKind::Webhook => {
                                (ch.webhook.is_some(), "notify.webhook.secrets")
                            }
                        };
                        if !ok {
                            push(
                                key,
                                format!(
                                    "the rules send {c} notifications, but {c} is not configured"
                                ),
                            );
                        }
                    }
                }
            }
        }
        let public = string(config, "notify.http.public.url");
        if string(config, "notify.http.listen").is_some() && public.is_none() {
            push(
                "notify.http.public.url",
                "links need the URL guardians reach the worker at".into(),
            );
        }
        if let Some(l) = string(config, "notify.http.listen")
            && l.parse::<std::net::SocketAddr>().is_err()
        {
            push(
                "notify.http.listen",
                format!("{l:?} is not host:port (e.g. 127.0.0.1:8089)"),
            );
        }
        if public.is_some() && secret(config, "notify.ack.secret").is_none() {
            push(
                "notify.ack.secret",
                "acknowledgement links are signed: set a secret".into(),
            );
        }
        if string(config, "notify.audit.bootstrap.servers").is_some()
            && string(config, "notify.audit.schema.registry.url").is_none()
        {
            push(
                "notify.audit.schema.registry.url",
                "audit records are Avro: the registry is needed".into(),
            );
        }
        errors
    }

    fn build(&self, config: &Parsed, context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        Ok(Arc::new(build_sink(config, context)?))
    }
}

/// Builds the sink from a parsed config (what [`NotifyPlugin`] builds; tests use the concrete type).
pub fn build_sink(config: &Parsed, context: SinkContext) -> Result<NotifySink, SinkError> {
    let path = config
        .string("notify.rules.file")
        .ok_or_else(|| SinkError::permanent("notify.rules.file is required"))?;
    let rules = Rules::load(Path::new(path)).map_err(|es| {
        SinkError::permanent(
            es.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let database = database(config).map_err(|(k, e)| SinkError::permanent(format!("{k}: {e}")))?;
    let pool = usize::try_from(config.int("notify.database.pool.size").unwrap_or(4)).unwrap_or(4);
    let db = crate::db::Db::with(database, pool);
    let channels = channels(config).map_err(|es| {
        SinkError::permanent(
            es.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let settings = settings(config, context.connector());
    let audit = string(config, "notify.audit.bootstrap.servers").map(|bootstrap| {
        crate::audit::AuditConfig {
            bootstrap,
            properties: string(config, "notify.audit.security.protocol")
                .map(|p| vec![("security.protocol".to_owned(), p)])
                .unwrap_or_default(),
            topic: config
                .string("notify.audit.topic")
                .unwrap_or("system.audit-log")
                .to_owned(),
            registry_url: string(config, "notify.audit.schema.registry.url").unwrap_or_default(),
            producer: context.connector().to_owned(),
        }
    });
    NotifySink::new(rules, db, channels, settings, audit, context)
}
