//! The transactional outbox: events written to an outbox table inside the application's own PostgreSQL
//! transaction, so they are stored if and only if the state change they describe is; the [`Relay`] publishes
//! them afterwards.
//!
//! # Tables
//!
//! [`Outbox::install`] creates (if missing) `<table>` (default `ursa_outbox`) and `<table>_schemas`:
//!
//! | column | what |
//! | --- | --- |
//! | `id bigserial` | the commit order the relay follows |
//! | `topic`, `record_key`, `key_subject`, `value_subject` | from the catalog binding (no prefix) and the event |
//! | `schema_fingerprint`, `payload` | the writer schema (its text in `<table>_schemas`) and the Avro datum |
//! | `event_id`, `traceparent`, `producer` | the headers the record will carry |
//! | `created_at`, `attempts`, `sent_at`, `failed_at`, `last_error` | the relay's bookkeeping |
//!
//! Rows are never deleted by the relay; [`Outbox::prune`] removes sent rows older than a bound.
//!
//! # The guarantee
//!
//! See [`Relay`]: every committed row is published at least once, in commit order per key; a row is published
//! more than once only when a relay stopped (crash, kill -9, lost database connection) after the broker
//! acknowledged the row and before its `sent_at` was committed.

mod relay;

use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Transaction};

use crate::prepared::PreparedEvent;
use crate::{Error, Event};

pub use relay::{Relay, RelayConfig, RelayStats};

/// Where events are written, and by whom.
#[derive(Debug, Clone)]
pub struct Outbox {
    table: String,
    producer: String,
    timeout: Duration,
}

impl Outbox {
    /// The outbox `ursa_outbox`, written by the service `producer` (its `producer` header).
    pub fn new(producer: impl Into<String>) -> Outbox {
        Outbox {
            table: "ursa_outbox".into(),
            producer: producer.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Uses another table name (lower-case letters, digits and `_`, starting with a letter, at most 40).
    pub fn with_table(mut self, table: &str) -> Result<Outbox, Error> {
        let valid = !table.is_empty()
            && table.len() <= 40
            && table.starts_with(|c: char| c.is_ascii_lowercase())
            && table
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::Config(format!(
                "outbox table name {table:?}: use lower-case letters, digits and `_`, starting with a letter (at most 40)"
            )));
        }
        self.table = table.to_owned();
        Ok(self)
    }

    /// The deadline of each statement (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Outbox {
        self.timeout = timeout;
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The `NOTIFY` channel the writers signal and the relay listens on.
    pub(crate) fn channel(&self) -> &str {
        &self.table
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Creates the tables and the index of unsent rows, if missing.
    pub async fn install(&self, client: &Client) -> Result<(), Error> {
        let t = &self.table;
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {t} (
                id bigserial PRIMARY KEY,
                topic text NOT NULL,
                record_key text,
                key_subject text NOT NULL DEFAULT '',
                value_subject text NOT NULL,
                schema_fingerprint bigint NOT NULL,
                payload bytea NOT NULL,
                event_id text,
                traceparent text,
                producer text NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                attempts integer NOT NULL DEFAULT 0,
                sent_at timestamptz,
                failed_at timestamptz,
                last_error text
            );
            CREATE INDEX IF NOT EXISTS {t}_unsent ON {t} (id) WHERE sent_at IS NULL AND failed_at IS NULL;
            CREATE TABLE IF NOT EXISTS {t}_schemas (
                fingerprint bigint PRIMARY KEY,
                schema text NOT NULL
            );"
        );
        self.deadline("creating the outbox tables", client.batch_execute(&ddl))
            .await
    }

    /// Writes `event` into the outbox as part of `tx`; returns the row id. It is published once `tx` commits.
    pub async fn write<E: Event>(&self, tx: &Transaction<'_>, event: &E) -> Result<i64, Error> {
        let prepared = PreparedEvent::new(event)?;
        let ids = self
            .write_prepared(tx, std::slice::from_ref(&prepared))
            .await?;
        ids.first()
            .copied()
            .ok_or_else(|| Error::Config("the outbox insert returned no id".into()))
    }

    /// Writes prepared events (in order) as part of `tx`; returns their row ids.
    pub async fn write_prepared(
        &self,
        tx: &Transaction<'_>,
        events: &[PreparedEvent],
    ) -> Result<Vec<i64>, Error> {
        let t = &self.table;
        let insert = format!(
            "WITH s AS (
                INSERT INTO {t}_schemas (fingerprint, schema) VALUES ($5, $6) ON CONFLICT (fingerprint) DO NOTHING
            )
            INSERT INTO {t} (topic, record_key, key_subject, value_subject, schema_fingerprint, payload, event_id,
                             traceparent, producer)
            VALUES ($1, $2, $3, $4, $5, $7, $8, $9, $10)
            RETURNING id"
        );
        let mut ids = Vec::with_capacity(events.len());
        for e in events {
            let fingerprint = e.fingerprint as i64;
            let event_id = e.event_id.map(|id| id.to_string());
            let topic: &str = &e.topic;
            let key_subject: &str = &e.key_subject;
            let value_subject: &str = &e.value_subject;
            let row = self
                .deadline(
                    "writing to the outbox",
                    tx.query_typed_one(
                        &insert,
                        &[
                            (&topic, Type::TEXT),
                            (&e.key, Type::TEXT),
                            (&key_subject, Type::TEXT),
                            (&value_subject, Type::TEXT),
                            (&fingerprint, Type::INT8),
                            (&e.schema.as_str(), Type::TEXT),
                            (&e.datum, Type::BYTEA),
                            (&event_id, Type::TEXT),
                            (&e.traceparent, Type::TEXT),
                            (&self.producer, Type::TEXT),
                        ],
                    ),
                )
                .await?;
            ids.push(
                row.try_get::<_, i64>(0)
                    .map_err(Error::postgres("reading the outbox id"))?,
            );
        }
        if !ids.is_empty() {
            // Delivered when (and only if) the transaction commits: wakes the relay at once.
            let notify = format!("NOTIFY {}", self.channel());
            self.deadline("notifying the relay", tx.batch_execute(&notify))
                .await?;
        }
        Ok(ids)
    }

    /// Rows not yet sent (nor failed).
    pub async fn unsent(&self, client: &Client) -> Result<i64, Error> {
        let sql = format!(
            "SELECT count(*) FROM {} WHERE sent_at IS NULL AND failed_at IS NULL",
            self.table
        );
        let row = self
            .deadline("counting unsent rows", client.query_one(&sql, &[]))
            .await?;
        row.try_get(0)
            .map_err(Error::postgres("counting unsent rows"))
    }

    /// Deletes rows sent more than `older_than` ago; returns how many.
    pub async fn prune(&self, client: &Client, older_than: Duration) -> Result<u64, Error> {
        let sql = format!(
            "DELETE FROM {} WHERE sent_at < now() - make_interval(secs => $1)",
            self.table
        );
        let secs = older_than.as_secs_f64();
        self.deadline("pruning the outbox", client.execute(&sql, &[&secs]))
            .await
    }

    /// Makes failed rows (dead-lettered, e.g. too large) eligible again, e.g. after raising the topic's
    /// `max.message.bytes`; returns how many.
    pub async fn retry_failed(&self, client: &Client) -> Result<u64, Error> {
        let sql = format!(
            "UPDATE {} SET failed_at = NULL WHERE failed_at IS NOT NULL AND sent_at IS NULL",
            self.table
        );
        self.deadline("resetting failed rows", client.execute(&sql, &[]))
            .await
    }

    /// Runs a statement with this outbox's deadline.
    pub(crate) async fn deadline<T>(
        &self,
        what: &'static str,
        statement: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, statement).await {
            Ok(r) => r.map_err(Error::postgres(what)),
            Err(_) => Err(Error::PostgresTimeout {
                what,
                after: self.timeout,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_checked() {
        assert!(Outbox::new("svc").with_table("orders_outbox").is_ok());
        assert!(Outbox::new("svc").with_table("Orders").is_err());
        assert!(Outbox::new("svc").with_table("x; DROP TABLE y").is_err());
        assert!(Outbox::new("svc").with_table("").is_err());
        assert!(Outbox::new("svc").with_table("1abc").is_err());
    }
}
