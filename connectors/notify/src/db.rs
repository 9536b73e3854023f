//! PostgreSQL: a small pool of connections (TLS as the SDK's `postgres::Database` says: libpq's `sslmode` over
//! rustls) and the tables of the directory and the ledger (created once, under an advisory lock, so several
//! tasks starting together do not race).
//!
//! A connection goes back to the pool only through [`Conn::release`]; dropped otherwise (an error, a call
//! cancelled in the middle of a transaction) it is closed and the server rolls back what it had open, which
//! keeps every call cancel-safe. Times are milliseconds since the epoch (`BIGINT`).
//!
//! Each pooled connection keeps its prepared statements ([`Conn::prepared`], and `execute`/`query…` on
//! [`Conn`]): a statement given as text is otherwise parsed and described by the server on every call, a
//! round trip of its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};
use ursa_connect::postgres::Database;

/// A connection's prepared statements, by their text.
type Statements = Mutex<HashMap<String, Statement>>;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Connecting failed.
    #[error("cannot connect to PostgreSQL at {shown}: {message}")]
    Connect {
        /// The server, without credentials.
        shown: String,
        /// Why.
        message: String,
    },
    /// A statement failed.
    #[error("PostgreSQL: {}", crate::channels::error_chain(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The URL is not valid.
    #[error("invalid PostgreSQL URL: {0}")]
    Url(String),
}

/// The tables (idempotent).
pub const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS notify_guardian (
    guardian_id   TEXT PRIMARY KEY,
    household_id  TEXT NOT NULL,
    email         TEXT,
    phone         TEXT,
    webhook_url   TEXT,
    locale        TEXT NOT NULL DEFAULT 'en',
    time_zone     TEXT NOT NULL DEFAULT 'UTC',
    quiet_start   INT,
    quiet_end     INT,
    preferences   JSONB NOT NULL DEFAULT '{}',
    updated_at    BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_guardian_household ON notify_guardian (household_id);
CREATE TABLE IF NOT EXISTS notify_child (
    child_id      TEXT PRIMARY KEY,
    household_id  TEXT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS notify_device (
    token_hash     TEXT PRIMARY KEY,
    token          TEXT NOT NULL,
    guardian_id    TEXT NOT NULL,
    platform       TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'active',
    failures       INT NOT NULL DEFAULT 0,
    quarantined_at BIGINT,
    recheck_at     BIGINT,
    last_error     TEXT,
    registered_at  BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_device_guardian ON notify_device (guardian_id);
CREATE TABLE IF NOT EXISTS notify_event (
    event_id     TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    rule         TEXT NOT NULL,
    payload      JSONB NOT NULL,
    pii          JSONB NOT NULL DEFAULT '[]',
    child_id     TEXT,
    household_id TEXT,
    received_at  BIGINT NOT NULL,
    acked_at     BIGINT,
    acked_by     TEXT
);
CREATE TABLE IF NOT EXISTS notify_ledger (
    event_id            TEXT NOT NULL,
    guardian_id         TEXT NOT NULL,
    channel             TEXT NOT NULL,
    target              TEXT NOT NULL DEFAULT '',
    round               INT NOT NULL DEFAULT 0,
    state               TEXT NOT NULL,
    claimed_by          TEXT,
    rule                TEXT NOT NULL,
    priority            TEXT NOT NULL,
    step                INT NOT NULL DEFAULT 0,
    attempts            INT NOT NULL DEFAULT 0,
    not_before          BIGINT,
    lease_until         BIGINT,
    provider            TEXT,
    provider_message_id TEXT,
    response            TEXT,
    reason              TEXT,
    digest_window       BIGINT,
    digest_id           TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (event_id, guardian_id, channel, target, round)
);
CREATE INDEX IF NOT EXISTS notify_ledger_due ON notify_ledger (state, not_before);
CREATE INDEX IF NOT EXISTS notify_ledger_message ON notify_ledger (provider_message_id);
ALTER TABLE notify_ledger ADD COLUMN IF NOT EXISTS provider_status_rank INT;
CREATE TABLE IF NOT EXISTS notify_provider_status (
    id          BIGSERIAL PRIMARY KEY,
    message_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    error_code  TEXT,
    received_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_provider_status_message ON notify_provider_status (message_id);
CREATE INDEX IF NOT EXISTS notify_provider_status_received ON notify_provider_status (received_at);
CREATE TABLE IF NOT EXISTS notify_escalation (
    event_id    TEXT NOT NULL,
    guardian_id TEXT NOT NULL,
    rule        TEXT NOT NULL,
    next_step   INT NOT NULL,
    max_steps   INT NOT NULL,
    due_at      BIGINT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (event_id, guardian_id)
);
CREATE TABLE IF NOT EXISTS notify_dedupe (
    rule        TEXT NOT NULL,
    dedupe_key  TEXT NOT NULL,
    guardian_id TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    until_at    BIGINT NOT NULL,
    PRIMARY KEY (rule, dedupe_key, guardian_id)
);
CREATE TABLE IF NOT EXISTS notify_outbox (
    id         BIGSERIAL PRIMARY KEY,
    audit_id   TEXT NOT NULL UNIQUE,
    record     JSONB NOT NULL,
    created_at BIGINT NOT NULL
);
"#;

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A duration in milliseconds (saturating).
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The pool.
pub struct Db {
    database: Database,
    shown: String,
    idle: Mutex<Vec<(Client, Statements)>>,
    permits: Semaphore,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Db {
    /// At most `size` connections to `url` (`postgres://user:password@host:port/db`, its `sslmode` and
    /// `sslrootcert` as libpq reads them; `prefer` when it names none).
    pub fn new(url: &str, size: usize) -> Result<Db, DbError> {
        let database = Database::parse(url, None, None).map_err(DbError::Url)?;
        Ok(Db::with(database, size))
    }

    /// At most `size` connections to `database` (TLS as it says).
    pub fn with(database: Database, size: usize) -> Db {
        let database = database.named("ursa-notify");
        Db {
            shown: database.shown().to_owned(),
            database,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(size.max(1)),
        }
    }

    /// A connection: an idle one still open, or a new one.
    pub async fn get(&self) -> Result<Conn<'_>, DbError> {
        let permit = self.permits.acquire().await.map_err(|_| DbError::Connect {
            shown: self.shown.clone(),
            message: "the pool is closed".into(),
        })?;
        let idle = self.idle.lock().ok().and_then(|mut idle| {
            while let Some(c) = idle.pop() {
                if !c.0.is_closed() {
                    return Some(c);
                }
            }
            None
        });
        let (client, statements) = match idle {
            Some(c) => c,
            None => {
                let client = self
                    .database
                    .connect()
                    .await
                    .map_err(|e| DbError::Connect {
                        shown: self.shown.clone(),
                        message: e.to_string(),
                    })?;
                (client, Statements::default())
            }
        };
        Ok(Conn {
            client: Some(client),
            statements,
            db: self,
            _permit: permit,
        })
    }

    /// Creates the tables if they are missing.
    pub async fn migrate(&self) -> Result<(), DbError> {
        let mut c = self.get().await?;
        let tx = c.client_mut().transaction().await?;
        // `… already exists, skipping` notices are no news on every start.
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning; SELECT pg_advisory_xact_lock(7242053001)",
        )
        .await?;
        tx.batch_execute(DDL).await?;
        tx.commit().await?;
        c.release();
        Ok(())
    }
}

/// A connection from the pool; dropped without [`Conn::release`], it closes.
pub struct Conn<'p> {
    client: Option<Client>,
    statements: Statements,
    db: &'p Db,
    _permit: SemaphorePermit<'p>,
}

impl Conn<'_> {
    /// The client.
    pub fn client(&self) -> &Client {
        // Present until release or drop.
        self.client.as_ref().unwrap_or_else(|| unreachable_client())
    }

    /// The client, for transactions.
    pub fn client_mut(&mut self) -> &mut Client {
        match self.client.as_mut() {
            Some(c) => c,
            None => unreachable_client(),
        }
    }

    /// `sql` prepared on this connection (once: later calls reuse it).
    pub async fn prepared(&self, sql: &str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self
            .statements
            .lock()
            .ok()
            .and_then(|m| m.get(sql).cloned())
        {
            return Ok(s);
        }
        let s = self.client().prepare(sql).await?;
        if let Ok(mut m) = self.statements.lock() {
            m.insert(sql.to_owned(), s.clone());
        }
        Ok(s)
    }

    /// Executes a prepared `sql`: the rows it changed.
    pub async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client().execute(&s, params).await
    }

    /// Runs a prepared `sql`: its rows.
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client().query(&s, params).await
    }

    /// Runs a prepared `sql`: its one row.
    pub async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client().query_one(&s, params).await
    }

    /// Runs a prepared `sql`: its row, if any.
    pub async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let s = self.prepared(sql).await?;
        self.client().query_opt(&s, params).await
    }

    /// Gives the connection back: it is outside any transaction.
    pub fn release(mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
            && let Ok(mut idle) = self.db.idle.lock()
        {
            idle.push((c, std::mem::take(&mut self.statements)));
        }
    }
}

#[allow(clippy::panic)]
fn unreachable_client() -> ! {
    panic!("a pooled connection is used after its release")
}
