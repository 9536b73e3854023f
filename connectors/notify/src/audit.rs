//! Records of every attempt, escalation and acknowledgement as `system.audit-log` events (the catalog's
//! `AuditLog`, Confluent Avro), so the audit store records what was sent, to whom and when — without PII: the
//! guardian is named by id, the channel and provider by name, never an address or a message's text.
//!
//! Each record is written to an outbox table in the same transaction as the ledger change it describes, and a
//! publisher drains the outbox to Kafka (at least once). Its event id is derived from what it describes, so a
//! record published twice is the same event for the audit store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;
use ursa_avro::AvroRecord;
use ursa_events::com::teddy::{common, system};

use crate::db::{Conn, Db, DbError, now_ms};

/// One audit record, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Its event id (a UUID derived from what it records).
    pub audit_id: String,
    /// `notification.sent`, `notification.failed`, `notification.retry`, `notification.ambiguous`,
    /// `notification.held`, `notification.escalated`, `notification.acknowledged`, `notification.suppressed`,
    /// `notification.digested`, `device.quarantined`, …
    pub action: String,
    /// `SUCCESS`, `FAILURE` or `DENIED`.
    pub outcome: String,
    /// Why (no PII: provider responses are redacted).
    pub reason: Option<String>,
    /// The resource: the ledger key's hash (`notification`), or a device hash.
    pub resource_kind: String,
    /// Its id.
    pub resource_id: String,
    /// The child, when the event names one (a pseudonymous id).
    pub child_id: Option<String>,
    /// Their household.
    pub household_id: Option<String>,
    /// When (ms).
    pub at: i64,
    /// Everything else: event id, guardian id, channel, provider, rule, priority, step, round, message id.
    pub details: BTreeMap<String, String>,
}

impl Entry {
    /// A record of `action` on `resource`, with a deterministic id from `seed`.
    pub fn new(
        action: &str,
        outcome: &str,
        resource_kind: &str,
        resource_id: &str,
        seed: &str,
    ) -> Entry {
        Entry {
            audit_id: crate::channels::jwt::uuid(Some(format!("{action}|{seed}").as_bytes())),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            reason: None,
            resource_kind: resource_kind.to_owned(),
            resource_id: resource_id.to_owned(),
            child_id: None,
            household_id: None,
            at: now_ms(),
            details: BTreeMap::new(),
        }
    }

    /// Adds a detail.
    pub fn detail(mut self, k: &str, v: impl Into<String>) -> Entry {
        let v = v.into();
        if !v.is_empty() {
            self.details.insert(k.to_owned(), v);
        }
        self
    }

    /// The AuditLog event.
    pub fn to_event(&self, producer: &str) -> system::AuditLog {
        let parse = |s: &str| s.parse::<ursa_avro::uuid::Uuid>().ok();
        let child = match (
            self.child_id.as_deref().and_then(parse),
            self.household_id.as_deref().and_then(parse),
        ) {
            (Some(child_id), Some(household_id)) => Some(common::ChildRef {
                child_id,
                household_id,
            }),
            _ => None,
        };
        system::AuditLog {
            metadata: common::EventMetadata {
                event_id: parse(&self.audit_id).unwrap_or_default(),
                occurred_at: ursa_avro::Timestamp::from_millis(self.at),
                correlation_id: self.details.get("event_id").and_then(|e| parse(e)),
                causation_id: self.details.get("event_id").and_then(|e| parse(e)),
                producer: producer.to_owned(),
                schema_version: 1,
                trace_parent: None,
            },
            actor: system::Actor {
                id: producer.to_owned(),
                kind: system::ActorKind::Service,
                display_name: None,
            },
            action: self.action.clone(),
            resource: system::Resource {
                kind: self.resource_kind.clone(),
                id: self.resource_id.clone(),
            },
            outcome: match self.outcome.as_str() {
                "SUCCESS" => system::Outcome::Success,
                "DENIED" => system::Outcome::Denied,
                _ => system::Outcome::Failure,
            },
            reason: self.reason.clone(),
            ip: None,
            child,
            details: self
                .details
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Adds a record to the outbox (in the caller's transaction).
pub async fn enqueue(c: &Conn<'_>, entry: &Entry) -> Result<(), DbError> {
    let record = serde_json::to_value(entry).unwrap_or_default();
    c.execute(ENQUEUE, &[&entry.audit_id, &record, &entry.at])
        .await?;
    Ok(())
}

/// [`enqueue`] inside a transaction.
pub async fn enqueue_in<C: GenericClient>(c: &C, entry: &Entry) -> Result<(), DbError> {
    let record = serde_json::to_value(entry).unwrap_or_default();
    c.execute(ENQUEUE, &[&entry.audit_id, &record, &entry.at])
        .await?;
    Ok(())
}

const ENQUEUE: &str = "INSERT INTO notify_outbox (audit_id, record, created_at) VALUES ($1, $2, $3) ON CONFLICT (audit_id) DO NOTHING";

/// Where audit records go.
#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Kafka bootstrap servers (empty: records stay in the outbox).
    pub bootstrap: String,
    /// Extra producer properties (`security.protocol`, `sasl.*`, …).
    pub properties: Vec<(String, String)>,
    /// The topic (`system.audit-log`).
    pub topic: String,
    /// The schema registry the subject `<topic>-value` is registered with.
    pub registry_url: String,
    /// The producer name in the records (the connector's name).
    pub producer: String,
}

/// The process's producer for these servers and properties: one for every task and connector that agrees on
/// them (each producer has its own threads and connections).
fn producer(bootstrap: &str, properties: &[(String, String)]) -> Result<FutureProducer, String> {
    type Producers = Mutex<HashMap<(String, Vec<(String, String)>), FutureProducer>>;
    static PRODUCERS: OnceLock<Producers> = OnceLock::new();
    let key = (bootstrap.to_owned(), properties.to_vec());
    let producers = PRODUCERS.get_or_init(Producers::default);
    let mut map = producers
        .lock()
        .map_err(|_| "audit producer: the cache is poisoned".to_owned())?;
    if let Some(p) = map.get(&key) {
        return Ok(p.clone());
    }
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in properties {
        c.set(k, v);
    }
    let p: FutureProducer = c.create().map_err(|e| format!("audit producer: {e}"))?;
    map.insert(key, p.clone());
    Ok(p)
}

/// Drains the outbox to Kafka.
pub struct Publisher {
    config: AuditConfig,
    producer: FutureProducer,
    http: reqwest::Client,
    schema_id: tokio::sync::Mutex<Option<u32>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// A publisher (no I/O until the first drain).
    pub fn new(config: AuditConfig) -> Result<Publisher, String> {
        let producer = producer(&config.bootstrap, &config.properties)?;
        Ok(Publisher {
            config,
            producer,
            // Shared with the channels (each client loads the system's trust store).
            http: crate::channels::http_client(
                Duration::from_secs(10),
                None,
                false,
                false,
                "notify.audit.schema.registry.url",
            )
            .map_err(|e| e.to_string())?,
            schema_id: tokio::sync::Mutex::new(None),
        })
    }

    async fn schema_id(&self) -> Result<u32, String> {
        let mut cached = self.schema_id.lock().await;
        if let Some(id) = *cached {
            return Ok(id);
        }
        let url = format!(
            "{}/subjects/{}-value/versions",
            self.config.registry_url.trim_end_matches('/'),
            self.config.topic
        );
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/vnd.schemaregistry.v1+json")
            .json(&serde_json::json!({"schema": system::AuditLog::SCHEMA}))
            .send()
            .await
            .map_err(|e| format!("registering the audit schema: {e}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let id = body
            .get("id")
            .and_then(serde_json::Value::as_u64)
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| format!("registering the audit schema: {status} {body}"))?;
        *cached = Some(id);
        Ok(id)
    }

    /// Publishes up to `limit` outbox records in order and removes them; returns how many. The records are
    /// locked while they are published (`FOR UPDATE SKIP LOCKED`), so relays draining at once (a connector's
    /// tasks, other workers) each take other records: none is published twice.
    pub async fn drain(&self, db: &Arc<Db>, limit: i64) -> Result<usize, String> {
        let conn = db.get().await.map_err(|e| e.to_string())?;
        let err = |e: tokio_postgres::Error| e.to_string();
        // BEGIN and the SELECT in one round trip (statements on a connection run in the order sent). On an error
        // the connection is dropped, not released: it closes, and its transaction with it.
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&limit];
        let (begun, rows) = tokio::join!(
            conn.client().batch_execute("BEGIN"),
            conn.query(
                "SELECT id, record FROM notify_outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                &params,
            )
        );
        begun.map_err(err)?;
        let rows = rows.map_err(err)?;
        if rows.is_empty() {
            conn.client()
                .batch_execute("COMMIT")
                .await
                .map_err(|e| e.to_string())?;
            conn.release();
            return Ok(0);
        }
        let id = self.schema_id().await?;
        let mut done: Vec<i64> = Vec::with_capacity(rows.len());
        let mut pending = Vec::with_capacity(rows.len());
        let mut first_error = None;
        for r in &rows {
            let n: i64 = r.get(0);
            let record: serde_json::Value = r.get(1);
            let Ok(entry) = serde_json::from_value::<Entry>(record) else {
                done.push(n);
                continue;
            };
            let event = entry.to_event(&self.config.producer);
            let bytes = event
                .to_confluent(id)
                .map_err(|e| format!("encoding an audit record: {e}"))?;
            // Enqueued at once (the producer batches them); the deliveries are awaited below.
            match self.producer.send_result(
                FutureRecord::to(&self.config.topic)
                    .key(&entry.resource_id)
                    .payload(&bytes),
            ) {
                Ok(delivery) => pending.push((n, delivery)),
                Err((e, _)) => {
                    first_error.get_or_insert(e.to_string());
                    break;
                }
            }
        }
        for (n, delivery) in pending {
            match delivery.await {
                Ok(Ok(_)) => done.push(n),
                Ok(Err((e, _))) => {
                    first_error.get_or_insert(e.to_string());
                }
                Err(_) => {
                    first_error.get_or_insert("the producer was dropped".into());
                }
            }
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&done];
        let (deleted, committed) = tokio::join!(
            conn.execute("DELETE FROM notify_outbox WHERE id = ANY($1)", &params),
            conn.client().batch_execute("COMMIT")
        );
        deleted.map_err(err)?;
        committed.map_err(err)?;
        conn.release();
        match first_error {
            Some(e) => Err(format!("publishing audit records: {e}")),
            None => Ok(done.len()),
        }
    }
}
