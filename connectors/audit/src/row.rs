//! A record made into a row: its value as stored (PII sealed), its `jsonb` forms, its typed cells and its data
//! subject; and the `jsonb` form of headers, which maps back to the exact header bytes (verification rebuilds
//! the chained headers from it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use serde_json::{Map, Value};
use ursa_avro::schema::SchemaSet;
use ursa_avro::wire::HEADER_LEN;
use ursa_connect::{AvroWriter, Format, Header, SinkRecord};

use crate::cell::Cell;
use crate::chain::ChainRow;
use crate::crypto::{DataKey, FieldContext};
use crate::datum::string_at;
use crate::pii::{PiiMap, storage_set};
use crate::schema_map::{Mapping, pg_json, pg_json_text};
use ursa_avro::value::JsonKeys;

/// What the sink knows about one writer schema.
#[derive(Debug)]
pub struct WriterInfo {
    /// The registry id.
    pub id: u32,
    /// The writer schema.
    pub writer: SchemaSet,
    /// Its records holding PII.
    pub pii: PiiMap,
    /// The storage schema, when there is PII.
    pub storage: Option<SchemaSet>,
    /// The typed columns (of the stored form).
    pub mapping: Mapping,
    /// The stored form's JSON keys, made once (the value's `jsonb` is written straight from the datum).
    pub json_keys: JsonKeys,
    /// The self-contained writer schema, as stored in `ursa_audit_schemas`.
    pub text: String,
}

impl WriterInfo {
    /// Analyses writer schema `id`.
    pub fn new(id: u32, writer: SchemaSet) -> Result<WriterInfo, String> {
        let pii = PiiMap::new(&writer);
        let storage = if pii.any() {
            Some(storage_set(&writer).map_err(|e| format!("writer schema {id}: {e}"))?)
        } else {
            None
        };
        let stored = storage.as_ref().unwrap_or(&writer);
        let mapping = Mapping::new(stored, stored.last_root())
            .map_err(|e| format!("writer schema {id}: {e}"))?;
        let text = writer.full_json(writer.last_root()).to_string();
        let json_keys = JsonKeys::new(stored);
        Ok(WriterInfo {
            id,
            writer,
            pii,
            storage,
            mapping,
            json_keys,
            text,
        })
    }

    /// Parses a stored self-contained schema.
    pub fn parse(id: u32, text: &str) -> Result<WriterInfo, String> {
        let set = SchemaSet::parse_str(text).map_err(|e| format!("stored schema {id}: {e}"))?;
        WriterInfo::new(id, set)
    }

    /// The schema the stored datums are written with.
    pub fn stored_set(&self) -> &SchemaSet {
        self.storage.as_ref().unwrap_or(&self.writer)
    }
}

/// A record ready to be written.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The offset.
    pub offset: i64,
    /// The timestamp as stored (ms; `None` when absent or beyond PostgreSQL's range).
    pub timestamp: Option<i64>,
    /// The key.
    pub key: Option<Bytes>,
    /// The headers.
    pub headers: Arc<[Header]>,
    /// The writer schema id.
    pub schema_id: Option<u32>,
    /// The value as stored.
    pub value: Option<Bytes>,
    /// The value's `jsonb`, as compact JSON text (PII as ciphertext); empty for a null value.
    pub value_json: Vec<u8>,
    /// The data subject.
    pub subject: Option<String>,
    /// The writer schema, for the typed cells.
    pub info: Option<Arc<WriterInfo>>,
    /// One cell per column of `info`'s mapping.
    pub cells: Vec<Cell>,
    /// The data key that sealed its PII.
    pub key_id: Option<i64>,
}

impl Prepared {
    /// What the chain covers.
    pub fn chain_row<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        prev_offset: Option<i64>,
    ) -> ChainRow<'a> {
        ChainRow {
            topic,
            partition,
            offset: self.offset,
            prev_offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            headers: &self.headers,
            schema_id: self.schema_id,
            value: self.value.as_deref(),
            subject: self.subject.as_deref(),
        }
    }
}

/// Why a record was not prepared.
#[derive(Debug)]
pub enum PrepareError {
    /// The record's own fault: it is rejected (dead-lettered), with why.
    Reject(String),
    /// The subject's data key is needed first.
    NeedKey(String),
    /// Not the record's fault (configuration).
    Fatal(String),
}

/// How records become rows.
#[derive(Debug)]
pub struct Preparer {
    writers: RwLock<HashMap<u32, Arc<WriterInfo>>>,
    subject_paths: Vec<Vec<String>>,
    key_fallback: bool,
    sealing: bool,
}

/// The `jsonb` form of headers: `{"key": k, "value": text}` for UTF-8 values (without U+0000),
/// `{"key": k, "value_base64": b64}` for others, `{"key": k, "value": null}` for none; a key with U+0000 is
/// written `key_base64`.
pub fn headers_json(headers: &[Header]) -> Value {
    Value::Array(
        headers
            .iter()
            .map(|h| {
                let mut m = Map::new();
                if h.key.contains('\0') {
                    m.insert(
                        "key_base64".into(),
                        Value::String(B64.encode(h.key.as_bytes())),
                    );
                } else {
                    m.insert("key".into(), Value::String(h.key.clone()));
                }
                match &h.value {
                    None => {
                        m.insert("value".into(), Value::Null);
                    }
                    Some(v) => match std::str::from_utf8(v) {
                        Ok(s) if !s.contains('\0') => {
                            m.insert("value".into(), Value::String(s.to_owned()));
                        }
                        _ => {
                            m.insert("value_base64".into(), Value::String(B64.encode(v)));
                        }
                    },
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// The headers a `jsonb` form stands for (`None` if it is not one).
pub fn headers_from_json(v: &Value) -> Option<Vec<Header>> {
    let items = v.as_array()?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let key = match (item.get("key"), item.get("key_base64")) {
            (Some(Value::String(k)), None) => k.clone(),
            (None, Some(Value::String(b))) => String::from_utf8(B64.decode(b).ok()?).ok()?,
            _ => return None,
        };
        let value = match (item.get("value"), item.get("value_base64")) {
            (Some(Value::Null), None) => None,
            (Some(Value::String(s)), None) => Some(Bytes::from(s.clone().into_bytes())),
            (None, Some(Value::String(b))) => Some(Bytes::from(B64.decode(b).ok()?)),
            _ => return None,
        };
        out.push(Header { key, value });
    }
    Some(out)
}

/// A record timestamp as stored: `None` when PostgreSQL's `timestamptz` cannot hold it.
pub fn stored_timestamp(ms: Option<i64>) -> Option<i64> {
    ms.filter(|ms| Cell::timestamp_from_unix_millis(*ms).is_some())
}

impl Preparer {
    /// `subject_paths`: dotted field paths of the data subject, tried in order; `key_fallback`: use the key (as
    /// text) when none is set; `sealing`: whether PII can be sealed (a master key is configured).
    pub fn new(subject_paths: &[String], key_fallback: bool, sealing: bool) -> Preparer {
        Preparer {
            writers: RwLock::new(HashMap::new()),
            subject_paths: subject_paths
                .iter()
                .filter(|p| !p.trim().is_empty())
                .map(|p| p.trim().split('.').map(str::to_owned).collect())
                .collect(),
            key_fallback,
            sealing,
        }
    }

    /// What is known about `writer`'s schema.
    pub fn info(&self, writer: &AvroWriter) -> Result<Arc<WriterInfo>, PrepareError> {
        if let Some(i) = self
            .writers
            .read()
            .ok()
            .and_then(|m| m.get(&writer.id()).cloned())
        {
            return Ok(i);
        }
        let info = Arc::new(
            WriterInfo::new(writer.id(), writer.schema_set().clone())
                .map_err(PrepareError::Fatal)?,
        );
        if let Ok(mut m) = self.writers.write() {
            m.insert(writer.id(), Arc::clone(&info));
        }
        Ok(info)
    }

    fn subject_of(
        &self,
        set: &SchemaSet,
        datum: &[u8],
        key: Option<&Bytes>,
    ) -> Result<Option<String>, PrepareError> {
        for path in &self.subject_paths {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            if let Some(s) = string_at(set, set.last_root(), datum, &parts)
                .map_err(|e| PrepareError::Reject(format!("the value does not decode: {e}")))?
            {
                return Ok(Some(s));
            }
        }
        Ok(self.key_subject(key))
    }

    fn key_subject(&self, key: Option<&Bytes>) -> Option<String> {
        if !self.key_fallback {
            return None;
        }
        key.and_then(|k| std::str::from_utf8(k).ok())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    fn json_subject(&self, v: &Value, key: Option<&Bytes>) -> Option<String> {
        for path in &self.subject_paths {
            match path.iter().try_fold(v, |at, p| at.get(p)) {
                Some(Value::String(s)) => return Some(s.clone()),
                Some(Value::Number(n)) => return Some(n.to_string()),
                _ => {}
            }
        }
        self.key_subject(key)
    }

    /// The data subject of a record whose PII needs sealing (`Ok(None)`: no PII to seal).
    pub fn sealing_subject(&self, r: &SinkRecord) -> Result<Option<String>, PrepareError> {
        let (Some(bytes), Some(Format::Avro(writer))) = (r.value.bytes(), r.value.format()) else {
            return Ok(None);
        };
        let info = self.info(writer)?;
        if !info.pii.any() {
            return Ok(None);
        }
        let datum = bytes.get(HEADER_LEN..).unwrap_or_default();
        match self.subject_of(&info.writer, datum, r.key.bytes())? {
            Some(s) => Ok(Some(s)),
            None => Err(PrepareError::Reject(format!(
                "the value has PII fields (writer schema {}) but no data subject: {} is null or missing{}",
                info.id,
                self.describe_paths(),
                if self.key_fallback {
                    " and the key is not text"
                } else {
                    ""
                }
            ))),
        }
    }

    fn describe_paths(&self) -> String {
        if self.subject_paths.is_empty() {
            return "audit.pii.subject.field is not set, so the subject".into();
        }
        self.subject_paths
            .iter()
            .map(|p| format!("`{}`", p.join(".")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Makes a row of `r`; `key` is the data key of its subject when its PII needs sealing.
    pub fn prepare(&self, r: &SinkRecord, key: Option<&DataKey>) -> Result<Prepared, PrepareError> {
        let key_bytes = r.key.bytes().cloned();
        let mut out = Prepared {
            offset: r.offset,
            timestamp: stored_timestamp(r.timestamp),
            key: key_bytes.clone(),
            headers: Arc::clone(&r.headers),
            schema_id: None,
            value: None,
            value_json: Vec::new(),
            subject: None,
            info: None,
            cells: Vec::new(),
            key_id: None,
        };
        let Some(bytes) = r.value.bytes() else {
            out.subject = self.key_subject(key_bytes.as_ref());
            return Ok(out);
        };
        match r.value.format() {
            Some(Format::Avro(writer)) => {
                let info = self.info(writer)?;
                let datum = bytes.get(HEADER_LEN..).unwrap_or_default();
                let reject = |e: &dyn std::fmt::Display| {
                    PrepareError::Reject(format!(
                        "the value does not decode with writer schema {}: {e}",
                        info.id
                    ))
                };
                out.subject = self.subject_of(&info.writer, datum, key_bytes.as_ref())?;
                let stored: Bytes = if info.pii.any() {
                    if !self.sealing {
                        return Err(PrepareError::Fatal(format!(
                            "topic {} has PII fields (writer schema {}), but audit.pii.master.key is not set",
                            r.topic, info.id
                        )));
                    }
                    let subject = out.subject.clone().ok_or_else(|| {
                        PrepareError::Reject(format!(
                            "PII without a data subject (writer schema {})",
                            info.id
                        ))
                    })?;
                    let Some(dk) = key else {
                        return Err(PrepareError::NeedKey(subject));
                    };
                    let ctx = FieldContext {
                        topic: &r.topic,
                        partition: r.partition,
                        offset: r.offset,
                    };
                    let mut index = 0u32;
                    let sealed = crate::pii::seal(&info.writer, &info.pii, datum, &mut |span| {
                        let s = dk.seal(&ctx, index, span).map_err(|e| e.to_string());
                        index += 1;
                        s
                    })
                    .map_err(|e| reject(&e))?;
                    out.key_id = Some(dk.id());
                    let mut framed = Vec::with_capacity(HEADER_LEN + sealed.len());
                    framed.extend_from_slice(&bytes[..HEADER_LEN.min(bytes.len())]);
                    framed.extend_from_slice(&sealed);
                    Bytes::from(framed)
                } else {
                    bytes.clone()
                };
                let stored_datum = stored.get(HEADER_LEN..).unwrap_or_default();
                let set = info.stored_set();
                // The text of the datum's JSON tree, written without the tree.
                let mut text = Vec::with_capacity(stored_datum.len() * 2 + 64);
                ursa_avro::value::write_json_with_keys(
                    set,
                    &info.json_keys,
                    set.last_root(),
                    stored_datum,
                    &mut text,
                )
                .map_err(|e| reject(&e))?;
                out.value_json = pg_json_text(text);
                out.cells = info
                    .mapping
                    .cells(set, stored_datum)
                    .map_err(|e| reject(&e))?;
                out.schema_id = Some(info.id);
                out.value = Some(stored);
                out.info = Some(info);
            }
            _ => {
                let v = r
                    .value
                    .json()
                    .map_err(|e| PrepareError::Reject(format!("the value does not decode: {e}")))?;
                out.subject = self.json_subject(v, key_bytes.as_ref());
                out.value_json = serde_json::to_vec(&pg_json(v.clone())).map_err(|e| {
                    PrepareError::Reject(format!("the value's JSON does not serialise: {e}"))
                })?;
                out.value = Some(bytes.clone());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    #[test]
    fn headers_map_back_to_their_bytes() {
        let headers = vec![
            Header {
                key: "a".into(),
                value: Some(Bytes::from_static(b"text")),
            },
            Header {
                key: "b".into(),
                value: Some(Bytes::from_static(&[0xff, 0])),
            },
            Header {
                key: "c\0".into(),
                value: None,
            },
            Header {
                key: "d".into(),
                value: Some(Bytes::from_static(b"nul\0inside")),
            },
        ];
        let j = headers_json(&headers);
        assert_eq!(j[0], json!({"key": "a", "value": "text"}));
        assert_eq!(j[1], json!({"key": "b", "value_base64": "/wA="}));
        assert_eq!(headers_from_json(&j).unwrap(), headers);
        assert!(headers_from_json(&json!([{"key": 1}])).is_none());
    }
}
