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
                    serde_json::json!({"key": k, "value": base64(bytes), "encoding": "base64"})
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

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
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
        assert_eq!(base64(b"hello"), "aGVsbG8=");
        assert_eq!(base64(b""), "");
    }
}
