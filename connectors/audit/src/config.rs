//! The `audit-postgres` plugin: its configuration keys (typed and documented), their checks, and building the
//! sink. The database URL and the keys are secrets (`${env:…}`, `${file:…}`).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ursa_connect::{FieldErrors, Key, Kind, Parsed, Sink, SinkContext, SinkError, SinkPlugin};

use crate::checkpoint::Signer;
use crate::connect::{Database, SslMode};
use crate::crypto::MasterKey;
use crate::sink::AuditSink;

/// The connector class.
pub const CLASS: &str = "audit-postgres";

const URL: &str = "audit.db.url";
const SSLMODE: &str = "audit.db.sslmode";
const SSLROOTCERT: &str = "audit.db.sslrootcert";
const SCHEMA: &str = "audit.db.schema";
const POOL: &str = "audit.db.pool.size";
const TABLE: &str = "audit.table.name.format";
const SIGNING_KEY: &str = "audit.checkpoint.signing.key";
const ORIGIN: &str = "audit.checkpoint.origin";
const CP_BATCHES: &str = "audit.checkpoint.batches";
const CP_INTERVAL: &str = "audit.checkpoint.interval";
const CP_FILE: &str = "audit.checkpoint.file";
const MASTER_KEY: &str = "audit.pii.master.key";
const SUBJECT: &str = "audit.pii.subject.field";
const SUBJECT_FALLBACK: &str = "audit.pii.subject.fallback";

/// The sink's configuration, typed.
#[derive(Debug)]
pub struct AuditConfig {
    /// Where the audit store is.
    pub database: Database,
    /// The PostgreSQL schema of its tables.
    pub schema: String,
    /// Connections at most.
    pub pool_size: usize,
    /// The table name template.
    pub table_format: String,
    /// The checkpoint signer.
    pub signer: Signer,
    /// The origin prefix of the partitions' logs.
    pub origin: String,
    /// A checkpoint after this many batches...
    pub checkpoint_batches: i64,
    /// ...or after this long.
    pub checkpoint_interval: Duration,
    /// The append-only file checkpoints are published to.
    pub checkpoint_file: Option<PathBuf>,
    /// The master key that wraps data keys.
    pub master_key: Option<MasterKey>,
    /// Field paths of the data subject, in order.
    pub subject_fields: Vec<String>,
    /// Whether the record key is the subject when no field gives one.
    pub subject_from_key: bool,
}

/// The `audit-postgres` plugin.
pub struct AuditPlugin;

fn secret<'a>(config: &'a Parsed, key: &str) -> Option<&'a str> {
    config
        .password(key)
        .and_then(|s| s.expose())
        .filter(|s| !s.is_empty())
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && s.len() <= 63
}

impl AuditConfig {
    /// Reads the parsed keys; errors per key.
    pub fn from_parsed(config: &Parsed) -> Result<AuditConfig, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut err = |k: &str, m: String| errors.entry(k.to_owned()).or_default().push(m);
        let ssl = match config.string(SSLMODE) {
            Some(m) if !m.is_empty() => match SslMode::from_str(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    err(SSLMODE, e);
                    None
                }
            },
            _ => None,
        };
        let root = config
            .string(SSLROOTCERT)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        let database = match secret(config, URL) {
            Some(url) => {
                match Database::parse(url, ssl, root.as_deref()).map(|d| d.named("ursa-audit")) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        err(URL, e);
                        None
                    }
                }
            }
            None => {
                err(
                    URL,
                    "must name the PostgreSQL database (a secret reference is best)".into(),
                );
                None
            }
        };
        let schema = config.string(SCHEMA).unwrap_or("public").to_owned();
        if !is_identifier(&schema) {
            err(
                SCHEMA,
                format!("{schema:?} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"),
            );
        }
        let pool_size = config.int(POOL).unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            err(POOL, format!("must be between 1 and 64, not {pool_size}"));
        }
        let table_format = config.string(TABLE).unwrap_or("audit_${topic}").to_owned();
        if !table_format.contains("${topic}") {
            err(TABLE, "must contain ${topic} (one table per topic)".into());
        }
        let signer = match secret(config, SIGNING_KEY) {
            Some(k) => match Signer::parse(k) {
                Ok(s) => Some(s),
                Err(e) => {
                    err(
                        SIGNING_KEY,
                        format!("{e} (make one with `ursa audit keygen`)"),
                    );
                    None
                }
            },
            None => {
                err(
                    SIGNING_KEY,
                    "a signer key is required (make one with `ursa audit keygen`)".into(),
                );
                None
            }
        };
        let origin = config
            .string(ORIGIN)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .or_else(|| signer.as_ref().map(|s| s.name().to_owned()))
            .unwrap_or_default();
        if origin.contains(['\n', ' ']) {
            err(ORIGIN, "must be one word (no spaces or newlines)".into());
        }
        let checkpoint_batches = config.int(CP_BATCHES).unwrap_or(100);
        if checkpoint_batches < 1 {
            err(CP_BATCHES, "must be at least 1".into());
        }
        let checkpoint_interval = config
            .duration(CP_INTERVAL)
            .unwrap_or(Duration::from_secs(60));
        let master_key = match secret(config, MASTER_KEY) {
            Some(k) => match MasterKey::parse(k) {
                Ok(m) => Some(m),
                Err(e) => {
                    err(
                        MASTER_KEY,
                        format!("{e} (make one with `ursa audit keygen`)"),
                    );
                    None
                }
            },
            None => None,
        };
        let subject_fields = config.list(SUBJECT);
        let subject_from_key = config.string(SUBJECT_FALLBACK) != Some("none");
        let checkpoint_file = config
            .string(CP_FILE)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from);
        match (errors.is_empty(), database, signer) {
            (true, Some(database), Some(signer)) => Ok(AuditConfig {
                database,
                schema,
                pool_size: usize::try_from(pool_size).unwrap_or(4),
                table_format,
                signer,
                origin,
                checkpoint_batches,
                checkpoint_interval,
                checkpoint_file,
                master_key,
                subject_fields,
                subject_from_key,
            }),
            _ => Err(errors),
        }
    }
}

impl SinkPlugin for AuditPlugin {
    fn name(&self) -> &'static str {
        CLASS
    }

    fn description(&self) -> &'static str {
        "The compliance audit store: every record into PostgreSQL exactly once, append-only, hash-chained with \
         signed checkpoints, PII sealed per data subject (crypto-shredding)."
    }

    fn keys(&self) -> Vec<Key> {
        vec![
            Key::required(
                URL,
                Kind::Password,
                "database",
                "The PostgreSQL URL (postgres://user:password@host:port/db?sslmode=…); a secret, e.g. ${env:AUDIT_DB_URL}.",
            ),
            Key::optional(
                SSLMODE,
                Kind::Enum(SslMode::NAMES.to_vec()),
                "",
                "database",
                "TLS to the server: disable, prefer (the default), require, verify-ca or verify-full (libpq's sslmode; overrides the URL's).",
            ),
            Key::optional(
                SSLROOTCERT,
                Kind::String,
                "",
                "database",
                "The CA certificates (PEM) the server's certificate must chain to, for verify-ca and verify-full.",
            ),
            Key::optional(
                SCHEMA,
                Kind::String,
                "public",
                "database",
                "The PostgreSQL schema of the audit tables.",
            ),
            Key::optional(
                POOL,
                Kind::Int,
                "4",
                "database",
                "Connections to PostgreSQL at most.",
            ),
            Key::optional(
                TABLE,
                Kind::String,
                "audit_${topic}",
                "tables",
                "The table of a topic: ${topic} and ${connector} are replaced (characters other than letters, digits and _ become _).",
            ),
            Key::required(
                SIGNING_KEY,
                Kind::Password,
                "checkpoints",
                "The Ed25519 signer key of the checkpoints (PRIVATE+KEY+<name>+<id>+<key>, from `ursa audit keygen`); a secret.",
            ),
            Key::optional(
                ORIGIN,
                Kind::String,
                "",
                "checkpoints",
                "The origin of the checkpoints: a partition's log is <origin>/<topic>/<partition> (default: the key's name).",
            ),
            Key::optional(
                CP_BATCHES,
                Kind::Int,
                "100",
                "checkpoints",
                "A checkpoint at least every this many batches of a partition.",
            ),
            Key::optional(
                CP_INTERVAL,
                Kind::Duration,
                "60s",
                "checkpoints",
                "A checkpoint at least this often while a partition has new rows.",
            ),
            Key::optional(
                CP_FILE,
                Kind::String,
                "",
                "checkpoints",
                "An append-only file every checkpoint is also published to (JSON lines), to anchor it outside the database.",
            ),
            Key::optional(
                MASTER_KEY,
                Kind::Password,
                "",
                "pii",
                "The master key (32 bytes, base64) that wraps the data subjects' keys; required for schemas with \"pii\": true fields. A secret.",
            ),
            Key::optional(
                SUBJECT,
                Kind::List,
                "",
                "pii",
                "The field path(s) of the data subject, e.g. child.child_id (the first that is set wins).",
            ),
            Key::optional(
                SUBJECT_FALLBACK,
                Kind::Enum(vec!["key", "none"]),
                "key",
                "pii",
                "When no subject field is set: key (the record key, as text, is the subject) or none (the record is rejected).",
            ),
        ]
    }

    fn validate(&self, config: &Parsed) -> FieldErrors {
        AuditConfig::from_parsed(config).err().unwrap_or_default()
    }

    fn build(&self, config: &Parsed, context: SinkContext) -> Result<Arc<dyn Sink>, SinkError> {
        let config = AuditConfig::from_parsed(config).map_err(|errors| {
            SinkError::permanent(format!(
                "invalid audit-postgres config: {}",
                errors
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", v.join("; ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        Ok(Arc::new(AuditSink::new(config, context)))
    }
}
