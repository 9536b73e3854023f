//! The JSON line written for a record, straight into the output buffer: the value and key are written from
//! their bytes (Avro without a JSON tree), headers as UTF-8 text or base64.

use ursa_avro::value::write_json_str;
use ursa_connect::{DecodeError, SinkRecord};

/// Appends `record` as one JSON line (with the trailing newline) to `out`, without copying its values; fails
/// only when the key or value does not decode, and then leaves `out` as it was.
pub fn json_line(record: &SinkRecord, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let start = out.len();
    let written = write_line(record, out);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

fn write_line(record: &SinkRecord, out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let mut n = itoa::Buffer::new();
    out.extend_from_slice(b"{\"topic\":");
    write_json_str(out, &record.topic);
    out.extend_from_slice(b",\"partition\":");
    out.extend_from_slice(n.format(record.partition).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(n.format(record.offset).as_bytes());
    out.extend_from_slice(b",\"timestamp\":");
    match record.timestamp {
        Some(t) => out.extend_from_slice(n.format(t).as_bytes()),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"headers\":[");
    for (i, h) in record.headers.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"key\":");
        write_json_str(out, &h.key);
        out.extend_from_slice(b",\"value\":");
        match &h.value {
            None => out.extend_from_slice(b"null"),
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => write_json_str(out, s),
                Err(_) => {
                    write_json_str(out, &ursa_avro::value::encode_base64(bytes));
                    out.extend_from_slice(b",\"encoding\":\"base64\"");
                }
            },
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"key\":");
    record.key.write_json(out)?;
    out.extend_from_slice(b",\"value\":");
    record.value.write_json(out)?;
    out.extend_from_slice(b"}\n");
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
