//! The audit store's errors, and which of them may pass if tried again.

use ursa_connect::SinkError;

use crate::connect::ConnectError;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// PostgreSQL answered with an error, or the connection broke.
    #[error("PostgreSQL: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    /// No connection.
    #[error("connecting to PostgreSQL: {0}")]
    Connect(#[from] ConnectError),
    /// A writer schema's columns do not fit its table.
    #[error("{0}")]
    Schema(String),
    /// A newer owner of the partition has written: this writer is a zombie.
    #[error(
        "fenced: {topic}-{partition} belongs to generation {theirs} now, this writer has generation {ours}; \
         nothing was committed"
    )]
    Fenced {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// This writer's generation.
        ours: i64,
        /// The stored generation.
        theirs: i64,
    },
    /// Stored data is not what the sink wrote (verify tells more).
    #[error("{0}")]
    Corrupt(String),
    /// A misconfiguration found at run time.
    #[error("{0}")]
    Config(String),
}

/// A database error with its server-side message, detail and hint.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => crate::connect::chain(e),
    }
}

impl AuditError {
    /// Whether trying again may work: connection trouble, a server shutting down or overloaded, serialization
    /// and deadlock aborts, being fenced (the partition is being taken over; the rebalance will revoke it).
    pub fn is_retriable(&self) -> bool {
        match self {
            AuditError::Db(e) => match e.code() {
                None => true,
                Some(code) => {
                    let class = &code.code()[..2];
                    matches!(class, "08" | "40" | "53" | "55" | "57" | "58" | "XX")
                }
            },
            AuditError::Connect(ConnectError::Postgres(_)) => true,
            AuditError::Connect(ConnectError::Tls(_)) => false,
            AuditError::Fenced { .. } => true,
            AuditError::Schema(_) | AuditError::Corrupt(_) | AuditError::Config(_) => false,
        }
    }
}

impl From<AuditError> for SinkError {
    fn from(e: AuditError) -> SinkError {
        if e.is_retriable() {
            SinkError::retriable(e.to_string())
        } else {
            SinkError::permanent(e.to_string())
        }
    }
}
