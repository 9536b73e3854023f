//! `ursa audit`: the compliance audit store's tools — `init`, `verify`, `forget`, `show`, `keygen`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use ursa_connect::Secret;
use ursa_connector_audit::checkpoint::{Signer, Verifier};
use ursa_connector_audit::connect::{Client, Database, SslMode};
use ursa_connector_audit::crypto::MasterKey;
use ursa_connector_audit::ddl::grant_sql;
use ursa_connector_audit::export::{ShowOptions, show, to_csv, to_jsonl};
use ursa_connector_audit::keys::{KeyStore, forget};
use ursa_connector_audit::tables::install;
use ursa_connector_audit::verify::{Options, read_checkpoint_file, verify};

/// Audit store commands.
#[derive(clap::Subcommand)]
pub enum AuditCommand {
    /// Install the audit store's tables and functions (run as the schema's owner); with --grant-to, grant a sink
    /// role exactly what it needs (INSERT only on audit tables).
    Init(InitArgs),
    /// Recompute every row hash, batch root and checkpoint signature; check offsets, gaps and external
    /// checkpoints. Exit 1 at any break, naming its table, partition and offset.
    Verify(VerifyArgs),
    /// Destroy a data subject's keys, so their PII can never be read again; the erasure is recorded.
    Forget(ForgetArgs),
    /// Export a data subject's records, PII decrypted where keys exist and `<erased>` where they do not.
    Show(ShowArgs),
    /// Make a checkpoint signer key with its verifier key, and a master key for PII.
    Keygen(KeygenArgs),
}

/// Where the audit store is.
#[derive(clap::Args)]
pub struct Db {
    /// The PostgreSQL URL, or a secret reference (`${env:VAR}`, `${file:/path:key}`).
    #[arg(long, env = "URSA_AUDIT_DATABASE_URL")]
    url: String,
    /// The PostgreSQL schema of the audit tables.
    #[arg(long, default_value = "public")]
    schema: String,
    /// TLS: disable, prefer, require, verify-ca, verify-full (overrides the URL's).
    #[arg(long)]
    sslmode: Option<String>,
    /// The CA certificates (PEM) for verify-ca and verify-full.
    #[arg(long)]
    sslrootcert: Option<PathBuf>,
}

/// Arguments of `audit init`.
#[derive(clap::Args)]
pub struct InitArgs {
    #[command(flatten)]
    db: Db,
    /// The sink's role, to grant INSERT (and what else it needs, no more).
    #[arg(long)]
    grant_to: Option<String>,
}

/// Arguments of `audit verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    db: Db,
    /// Only this connector's tables.
    #[arg(long)]
    connector: Option<String>,
    /// The checkpoints' verifier key (`<name>+<id>+<key>`), or a secret reference to it.
    #[arg(long, env = "URSA_AUDIT_VKEY")]
    vkey: Option<String>,
    /// A published checkpoint file (repeatable): checkpoints held outside the database.
    #[arg(long = "checkpoints")]
    checkpoints: Vec<PathBuf>,
    /// `text` or `json`.
    #[arg(long, default_value = "text")]
    format: String,
}

/// Arguments of `audit forget`.
#[derive(clap::Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    db: Db,
    /// The data subject (e.g. the child id).
    #[arg(long)]
    subject: String,
    /// Why (recorded with the erasure).
    #[arg(long, default_value = "erasure request")]
    reason: String,
}

/// Arguments of `audit show`.
#[derive(clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    db: Db,
    /// The data subject.
    #[arg(long)]
    subject: String,
    /// Only records from this RFC 3339 time, or from this long ago (`30d`, `12h`).
    #[arg(long)]
    since: Option<String>,
    /// `jsonl` or `csv`.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Only this connector's tables.
    #[arg(long)]
    connector: Option<String>,
    /// The master key (or a secret reference): needed to decrypt PII.
    #[arg(long, env = "URSA_AUDIT_MASTER_KEY")]
    master_key: Option<String>,
}

/// Arguments of `audit keygen`.
#[derive(clap::Args)]
pub struct KeygenArgs {
    /// The key's name, also the checkpoints' origin (e.g. `audit.example.com/store`).
    #[arg(long)]
    name: String,
}

fn resolve(value: &str) -> Result<String, String> {
    let mut s = Secret::parse(value);
    s.resolve().map_err(|e| e.to_string())?;
    Ok(s.expose().unwrap_or_default().to_owned())
}

async fn connect(db: &Db) -> Result<Client, String> {
    let url = resolve(&db.url)?;
    let ssl = db.sslmode.as_deref().map(SslMode::from_str).transpose()?;
    let database = Database::parse(&url, ssl, db.sslrootcert.as_deref())?.named("ursa-audit");
    database
        .connect()
        .await
        .map_err(|e| format!("connecting to {}: {e}", database.shown()))
}

fn fail(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Runs an audit command.
pub async fn run(cmd: AuditCommand) -> ExitCode {
    match cmd {
        AuditCommand::Keygen(a) => keygen(&a),
        AuditCommand::Init(a) => init(a).await,
        AuditCommand::Verify(a) => run_verify(a).await,
        AuditCommand::Forget(a) => run_forget(a).await,
        AuditCommand::Show(a) => run_show(a).await,
    }
}

fn keygen(a: &KeygenArgs) -> ExitCode {
    let (skey, vkey) = match Signer::generate(&a.name) {
        Ok(k) => k,
        Err(e) => return fail(e),
    };
    let master = match MasterKey::generate() {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    println!("# checkpoint signer key (audit.checkpoint.signing.key; keep it secret)");
    println!("{skey}");
    println!("# verifier key (ursa audit verify --vkey; publish it)");
    println!("{vkey}");
    println!("# master key for PII (audit.pii.master.key; keep it secret)");
    println!("{master}");
    ExitCode::SUCCESS
}

async fn init(a: InitArgs) -> ExitCode {
    let client = match connect(&a.db).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match install(&client, &a.db.schema).await {
        Ok(true) => println!("installed the audit store in schema {}", a.db.schema),
        Ok(false) => println!(
            "the audit store is installed in schema {} already",
            a.db.schema
        ),
        Err(e) => return fail(e),
    }
    if let Some(role) = &a.grant_to {
        if let Err(e) = client.batch_execute(&grant_sql(&a.db.schema, role)).await {
            return fail(ursa_connector_audit::error::describe(&e));
        }
        println!("granted {role} INSERT on the audit tables (and what a sink needs besides)");
    }
    ExitCode::SUCCESS
}

async fn run_verify(a: VerifyArgs) -> ExitCode {
    let verifier = match a.vkey.as_deref().map(resolve).transpose() {
        Ok(v) => match v.as_deref().map(Verifier::parse).transpose() {
            Ok(v) => v,
            Err(e) => return fail(e),
        },
        Err(e) => return fail(e),
    };
    let mut external = Vec::new();
    for path in &a.checkpoints {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return fail(format!("reading {}: {e}", path.display())),
        };
        match read_checkpoint_file(&text) {
            Ok(mut c) => external.append(&mut c),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        }
    }
    let client = match connect(&a.db).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let options = Options {
        schema: a.db.schema.clone(),
        connector: a.connector.clone(),
        verifier,
        external,
    };
    let report = match verify(&client, &options).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    if a.format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{report}");
    }
    if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

async fn run_forget(a: ForgetArgs) -> ExitCode {
    let client = match connect(&a.db).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match forget(&client, &a.db.schema, &a.subject, &a.reason).await {
        Ok(e) => {
            println!(
                "forgot {}: {} key(s) destroyed, erasure #{} recorded{}",
                a.subject,
                e.keys_destroyed,
                e.seq,
                if e.vacuumed {
                    ""
                } else {
                    " (VACUUM of the keys table needs its owner: run it, or the dead key rows linger until autovacuum)"
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}

fn since_ms(s: &str) -> Result<i64, String> {
    let at = match humantime::parse_rfc3339_weak(s) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(s).map_err(|_| {
                format!("{s:?} is neither an RFC 3339 time nor a duration such as 30d")
            })?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(|| format!("{s:?} is too long ago"))?
        }
    };
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .map_err(|_| format!("{s:?} is before 1970"))
}

async fn run_show(a: ShowArgs) -> ExitCode {
    if a.format != "jsonl" && a.format != "csv" {
        return fail(format!("--format is jsonl or csv, not {}", a.format));
    }
    let since = match a.since.as_deref().map(since_ms).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let keys = match a.master_key.as_deref().map(resolve).transpose() {
        Ok(Some(k)) => match MasterKey::parse(&k) {
            Ok(m) => Some(KeyStore::new(m, &a.db.schema)),
            Err(e) => return fail(e),
        },
        Ok(None) => None,
        Err(e) => return fail(e),
    };
    let client = match connect(&a.db).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let options = ShowOptions {
        schema: a.db.schema.clone(),
        subject: a.subject.clone(),
        since_ms: since,
        connector: a.connector.clone(),
    };
    match show(&client, keys.as_ref(), &options).await {
        Ok(records) => {
            if a.format == "csv" {
                print!("{}", to_csv(&records));
            } else {
                print!("{}", to_jsonl(&records));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(e),
    }
}
