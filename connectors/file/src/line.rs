//! The JSON line written for a record.

use ursa_connect::{DecodeError, SinkRecord};

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

/// Appends `record` as one JSON line (with the trailing newline) to `out`, without copying its values; fails
/// only when the key or value does not decode.
pub fn json_line(record: &SinkRecord, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let key = record.key.json()?;
    let value = record.value.json()?;
    let headers = record
        .headers
        .iter()
        .map(|h| match &h.value {
            None => Header {
                key: &h.key,
                value: None,
                encoding: None,
            },
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => Header {
                    key: &h.key,
                    value: Some(s.into()),
                    encoding: None,
                },
                Err(_) => Header {
                    key: &h.key,
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
        key,
        value,
    };
    // Serializing these types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, &line);
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use ursa_connect::{Header as H, Payload};

    #[test]
    fn one_line_per_record() {
        let mut r = SinkRecord::new("t", 2, 7);
        r.timestamp = Some(1000);
        r.headers = vec![
            H {
                key: "a".into(),
                value: Some(b"x".to_vec().into()),
            },
            H {
                key: "b".into(),
                value: Some(vec![0xff, 0].into()),
            },
            H {
                key: "c".into(),
                value: None,
            },
        ]
        .into();
        r.key = Payload::new(b"k".to_vec().into(), ursa_connect::Format::String);
        r.value = Payload::json_value(serde_json::json!({"n": 1}));
        let mut s = Vec::new();
        json_line(&r, &mut s).unwrap();
        assert_eq!(
            String::from_utf8(s).unwrap(),
            "{\"topic\":\"t\",\"partition\":2,\"offset\":7,\"timestamp\":1000,\"headers\":[{\"key\":\"a\",\"value\":\"x\"},{\"key\":\"b\",\"value\":\"/wA=\",\"encoding\":\"base64\"},{\"key\":\"c\",\"value\":null}],\"key\":\"k\",\"value\":{\"n\":1}}\n"
        );
        // A value that does not decode is the record's failure.
        r.value = Payload::new(b"{nope".to_vec().into(), ursa_connect::Format::Json);
        assert!(json_line(&r, &mut Vec::new()).is_err());
    }
}
