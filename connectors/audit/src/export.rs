//! `ursa audit show --subject ID`: a data subject's records, for a parent's review request — PII fields decrypted
//! where the subject's keys exist, `<erased>` where they were destroyed — as JSON lines or CSV.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::Value;
use tokio_postgres::Client;
use ursa_avro::chrono::{DateTime, SecondsFormat};
use ursa_avro::wire::HEADER_LEN;

use crate::cell::{Cell, PG_EPOCH_MICROS};
use crate::crypto::{DataKey, FieldContext, sealed_key_id};
use crate::ddl::quote_ident;
use crate::error::AuditError;
use crate::keys::KeyStore;
use crate::pii::{ERASED, Opened, open_json};
use crate::row::WriterInfo;

/// What shows in place of a field that does not decrypt although its key exists (tampered ciphertext).
pub const UNDECRYPTABLE: &str = "<undecryptable>";

/// Which records.
#[derive(Debug, Clone)]
pub struct ShowOptions {
    /// The schema of the audit tables.
    pub schema: String,
    /// The data subject.
    pub subject: String,
    /// Only records with a timestamp at or after this (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Only this connector's tables.
    pub connector: Option<String>,
}

/// One record as shown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shown {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
    /// The record timestamp, RFC 3339.
    pub timestamp: Option<String>,
    /// The key, as text (base64 if it is not UTF-8).
    pub key: Option<String>,
    /// The value, PII opened or `<erased>`.
    pub value: Value,
}

fn rfc3339(pg_micros: i64) -> Option<String> {
    DateTime::from_timestamp_micros(pg_micros.checked_add(PG_EPOCH_MICROS)?)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// The subject's records, oldest first (by timestamp, then partition and offset), across the audit tables.
/// Records with PII need `keys` (the master key).
pub async fn show(
    client: &Client,
    keys: Option<&KeyStore>,
    options: &ShowOptions,
) -> Result<Vec<Shown>, AuditError> {
    let s = quote_ident(&options.schema);
    let tables = client
        .query(
            &format!(
                "SELECT topic, table_name FROM {s}.ursa_audit_tables WHERE $1::text IS NULL OR connector = $1 ORDER BY topic"
            ),
            &[&options.connector],
        )
        .await?;
    let since = options
        .since_ms
        .and_then(Cell::timestamp_from_unix_millis)
        .unwrap_or(Cell::Null);
    let mut infos: HashMap<u32, Arc<WriterInfo>> = HashMap::new();
    let mut found: HashMap<i64, Option<Arc<DataKey>>> = HashMap::new();
    let mut out = Vec::new();
    for t in &tables {
        let table: String = t.get(1);
        let rows = client
            .query(
                &format!(
                    "SELECT kafka_topic, kafka_partition, kafka_offset, kafka_timestamp, kafka_key, kafka_schema_id, \
                     kafka_value, audit_value_json FROM {s}.{} WHERE audit_subject = $1 \
                     AND ($2::timestamptz IS NULL OR kafka_timestamp >= $2) ORDER BY kafka_timestamp, kafka_partition, kafka_offset",
                    quote_ident(&table)
                ),
                &[&options.subject, &since],
            )
            .await?;
        for r in &rows {
            let topic: String = r.get(0);
            let partition: i32 = r.get(1);
            let offset: i64 = r.get(2);
            let timestamp = match r.get::<_, Cell>(3) {
                Cell::Timestamp(t) => rfc3339(t),
                _ => None,
            };
            let key = r
                .get::<_, Option<Vec<u8>>>(4)
                .map(|k| match String::from_utf8(k) {
                    Ok(s) => s,
                    Err(e) => B64.encode(e.as_bytes()),
                });
            let schema_id: Option<i32> = r.get(5);
            let value_bytes: Option<Vec<u8>> = r.get(6);
            let stored_json: Option<Value> = match r.get::<_, Cell>(7) {
                Cell::Json(v) => Some(v),
                _ => None,
            };
            let value = match (schema_id, &value_bytes) {
                (Some(id), Some(bytes)) => {
                    let id = u32::try_from(id)
                        .map_err(|_| AuditError::Corrupt("negative schema id".into()))?;
                    let info = match infos.get(&id) {
                        Some(i) => Arc::clone(i),
                        None => {
                            let text: String = client
                                .query_one(
                                    &format!("SELECT schema FROM {s}.ursa_audit_schemas WHERE schema_id = $1"),
                                    &[&i32::try_from(id).unwrap_or(-1)],
                                )
                                .await?
                                .get(0);
                            let info = Arc::new(
                                WriterInfo::parse(id, &text).map_err(AuditError::Corrupt)?,
                            );
                            infos.insert(id, Arc::clone(&info));
                            info
                        }
                    };
                    let ctx = FieldContext {
                        topic: &topic,
                        partition,
                        offset,
                    };
                    opened(
                        client,
                        keys,
                        &mut found,
                        &info,
                        bytes.get(HEADER_LEN..).unwrap_or_default(),
                        &ctx,
                    )
                    .await?
                }
                _ => stored_json.unwrap_or(Value::Null),
            };
            out.push(Shown {
                topic,
                partition,
                offset,
                timestamp,
                key,
                value,
            });
        }
    }
    out.sort_by(|a, b| {
        (a.timestamp.as_deref(), &a.topic, a.partition, a.offset).cmp(&(
            b.timestamp.as_deref(),
            &b.topic,
            b.partition,
            b.offset,
        ))
    });
    Ok(out)
}

/// A stored datum's JSON with its PII opened.
async fn opened(
    client: &Client,
    keys: Option<&KeyStore>,
    found: &mut HashMap<i64, Option<Arc<DataKey>>>,
    info: &WriterInfo,
    datum: &[u8],
    ctx: &FieldContext<'_>,
) -> Result<Value, AuditError> {
    let decode = |e: crate::pii::PiiError| {
        AuditError::Corrupt(format!("a stored value does not decode: {e}"))
    };
    if !info.pii.any() {
        return ursa_avro::value::decode_json(&info.writer, info.writer.last_root(), datum)
            .map_err(|e| decode(e.into()));
    }
    // First the key ids, then the keys, then the values.
    let mut ids = Vec::new();
    open_json(&info.writer, &info.pii, datum, &mut |sealed| {
        ids.extend(sealed_key_id(sealed));
        Opened::Marker(ERASED)
    })
    .map_err(decode)?;
    ids.sort_unstable();
    ids.dedup();
    for id in ids {
        if found.contains_key(&id) {
            continue;
        }
        let key = match keys {
            Some(k) => k.by_id(client, id).await?,
            None => {
                return Err(AuditError::Config(
                    "the records have PII fields: the master key (--master-key) is needed to show them".into(),
                ));
            }
        };
        found.insert(id, key);
    }
    let mut index = 0u32;
    open_json(&info.writer, &info.pii, datum, &mut |sealed| {
        let i = index;
        index += 1;
        let Some(key) = sealed_key_id(sealed).and_then(|id| found.get(&id).cloned().flatten())
        else {
            return Opened::Marker(ERASED);
        };
        match key.open(ctx, i, sealed) {
            Ok(plain) => Opened::Plain(plain),
            Err(_) => Opened::Marker(UNDECRYPTABLE),
        }
    })
    .map_err(decode)
}

/// JSON lines.
pub fn to_jsonl(records: &[Shown]) -> String {
    let mut out = String::new();
    for r in records {
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    out
}

/// CSV (RFC 4180): `topic,partition,offset,timestamp,key,value`, the value as JSON text.
pub fn to_csv(records: &[Shown]) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_owned()
        }
    }
    let mut out = String::from("topic,partition,offset,timestamp,key,value\r\n");
    for r in records {
        out.push_str(&format!(
            "{},{},{},{},{},{}\r\n",
            field(&r.topic),
            r.partition,
            r.offset,
            field(r.timestamp.as_deref().unwrap_or("")),
            field(r.key.as_deref().unwrap_or("")),
            field(&r.value.to_string())
        ));
    }
    out
}
