//! The JSON line written for a record.

use crate::connect::sink::SinkRecord;

#[derive(serde::Serialize)]
struct Header<'a> {
    key: &'a str,
    value: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding: Option<&'static str>,
}

#[derive(serde::Serialize)]
struct Line<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: Option<i64>,
    headers: Vec<Header<'a>>,
    key: &'a serde_json::Value,
    value: &'a serde_json::Value,
}

/// Appends `record` as one JSON line (with the trailing newline) to `out`, without copying its values.
pub fn json_line(record: &SinkRecord, out: &mut String) {
    let headers = record
        .headers
        .iter()
        .map(|(k, v)| match v {
            None => Header {
                key: k,
                value: None,
                encoding: None,
            },
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => Header {
                    key: k,
                    value: Some(s.into()),
                    encoding: None,
                },
                Err(_) => Header {
                    key: k,
                    value: Some(ursa_avro::value::encode_base64(bytes).into()),
                    encoding: Some("base64"),
                },
            },
        })
        .collect();
    let line = Line {
        topic: &record.topic,
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp,
        headers,
        key: &record.key_json,
        value: &record.value_json,
    };
    // Serializing into a String cannot fail for these types.
    if let Ok(text) = serde_json::to_string(&line) {
        out.push_str(&text);
    }
    out.push('\n');
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
