//! Shared by the integration tests: a database with the audit objects, a pool, and a writer driven by hand.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use ursa_avro::binary::encode;
use ursa_connect::testing::avro_record;
use ursa_connect::{AvroWriter, SinkRecord};
use ursa_connector_audit::checkpoint::Signer;
use ursa_connector_audit::connect::{Database, SslMode};
use ursa_connector_audit::error::AuditError;
use ursa_connector_audit::pool::Pool;
use ursa_connector_audit::row::Preparer;
use ursa_connector_audit::tables::{Tables, install};
use ursa_connector_audit::writer::{self, Committed, Context, Partition, Policy, WriteError};
use ursa_testkit::{Postgres, TestDatabase, unique_name};

pub const SCHEMA: &str = r#"{"type":"record","name":"Event","namespace":"t","fields":[
    {"name":"child_id","type":"string"},{"name":"n","type":"long"}]}"#;

pub fn records(
    writer: &Arc<AvroWriter>,
    topic: &str,
    offsets: std::ops::Range<i64>,
) -> Vec<SinkRecord> {
    offsets
        .map(|o| {
            let mut framed = vec![0, 0, 0, 0, 1];
            encode::string(&mut framed, "child-1");
            encode::long(&mut framed, o * 10);
            avro_record(topic, 0, o, writer, framed)
        })
        .collect()
}

pub struct Fixture {
    pub pool: Pool,
    pub tables: Tables,
    pub preparer: Preparer,
    pub policy: Policy,
    pub topic: String,
    pub vkey: String,
    pub db: TestDatabase,
}

impl Fixture {
    pub async fn new() -> Result<Fixture> {
        Fixture::with_checkpoints_every(2).await
    }

    /// A fixture whose writer makes a checkpoint every `batches` batches.
    pub async fn with_checkpoints_every(batches: i64) -> Result<Fixture> {
        let db = Postgres::shared().database()?;
        let pool = Pool::new(
            Database::parse(db.url(), Some(SslMode::Disable), None).map_err(anyhow::Error::msg)?,
            2,
        );
        let conn = pool.get().await?;
        install(conn.client(), "public").await?;
        conn.release();
        let (skey, vkey) = Signer::generate("audit.test")?;
        Ok(Fixture {
            pool,
            tables: Tables::new("public", "audit_${topic}", "conn"),
            preparer: Preparer::new(&["child_id".into()], true, false),
            policy: Policy {
                signer: Some(Arc::new(Signer::parse(&skey)?)),
                origin: "audit.test".into(),
                every_batches: batches,
                every_ms: 3_600_000,
            },
            topic: unique_name("audit.events"),
            vkey,
            db,
        })
    }

    pub fn partition(&self, generation: i64) -> Partition<'_> {
        Partition {
            connector: "conn",
            topic: &self.topic,
            partition: 0,
            generation,
        }
    }

    pub async fn claim(&self, generation: i64) -> Result<(), AuditError> {
        let conn = self.pool.get().await?;
        writer::claim(conn.client(), "public", &self.partition(generation)).await?;
        conn.release();
        Ok(())
    }

    pub async fn write(
        &self,
        generation: i64,
        records: &[SinkRecord],
    ) -> Result<Committed, WriteError> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| WriteError::Audit(e.into()))?;
        let table = self.tables.ensure(conn.client(), &self.topic).await?;
        let rows: Vec<_> = records
            .iter()
            .map(|r| self.preparer.prepare(r, None).unwrap())
            .collect();
        let stored = HashSet::new();
        let ctx = Context {
            schema: "public",
            tables: &self.tables,
            keys: None,
            policy: &self.policy,
            stored_schemas: &stored,
        };
        let c = writer::write(
            &mut conn,
            &ctx,
            &self.partition(generation),
            &table,
            &rows,
            &|from, to| format!("not delivered: {from}..{to}"),
        )
        .await?;
        if let Some(cols) = &c.columns {
            table.set_columns(cols.clone());
        }
        conn.release();
        Ok(c)
    }

    pub async fn count(&self) -> Result<i64> {
        let conn = self.pool.get().await?;
        let table = self.tables.ensure(conn.client(), &self.topic).await?;
        let n = conn
            .client()
            .query_one(&format!("SELECT count(*) FROM {}", table.qualified), &[])
            .await?
            .get(0);
        conn.release();
        Ok(n)
    }
}
