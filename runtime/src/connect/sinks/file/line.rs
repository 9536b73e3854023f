//! The JSON line written for a record.

use std::fmt::Write as _;

use crate::connect::sink::SinkRecord;

/// Appends `record` as one JSON line (with the trailing newline) to `out`.
pub fn json_line(record: &SinkRecord, out: &mut String) {
    let headers: Vec<serde_json::Value> = record
        .headers
        .iter()
        .map(|(k, v)| match v {
            None => serde_json::json!({"key": k, "value": null}),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => serde_json::json!({"key": k, "value": s}),
                Err(_) => {
                    serde_json::json!({"key": k, "value": ursa_avro::value::encode_base64(bytes), "encoding": "base64"})
                }
            },
        })
        .collect();
    let line = serde_json::json!({
        "topic": &*record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp,
        "headers": headers,
        "key": record.key_json,
        "value": record.value_json,
    });
    let _ = writeln!(out, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_record() {
        let r = SinkRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: Some(1000),
            headers: vec![
                ("a".into(), Some(b"x".to_vec())),
                ("b".into(), Some(vec![0xff, 0])),
                ("c".into(), None),
            ],
            key: Some(b"k".to_vec()),
            value: None,
            key_json: "k".into(),
            value_json: serde_json::json!({"n": 1}),
            value_schema_id: None,
            value_converted: None,
            attempt: 0,
        };
        let mut s = String::new();
        json_line(&r, &mut s);
        assert_eq!(
            s,
            "{\"topic\":\"t\",\"partition\":2,\"offset\":7,\"timestamp\":1000,\"headers\":[{\"key\":\"a\",\"value\":\"x\"},{\"key\":\"b\",\"value\":\"/wA=\",\"encoding\":\"base64\"},{\"key\":\"c\",\"value\":null}],\"key\":\"k\",\"value\":{\"n\":1}}\n"
        );
    }
}
