//! The file sink driven through the SDK's harness as the runtime drives it: open, put records of two
//! partitions (JSON, text and Confluent Avro values), flush (durable up to what was done), close, stop; and
//! its config checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use serde_json::json;
use ursa_connect::testing::{Harness, HarnessError, avro_record, json_record, text_record};
use ursa_connect::{AvroWriter, Outcome, TopicPartition};
use ursa_connector_file::FilePlugin;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn writes_one_line_per_record_and_flushes_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/out.jsonl");
    let file = path.to_str().unwrap();
    let mut h = Harness::build(&FilePlugin, &[("file", file), ("name", "f")]).unwrap();
    assert_eq!(h.context().connector(), "f");
    let start = h.open(&[("orders", 0), ("orders", 1)]).await.unwrap();
    assert!(start.is_empty(), "the file sink keeps no offsets");
    let writer = Arc::new(
        AvroWriter::parse(
            7,
            r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"}]}"#,
        )
        .unwrap(),
    );
    // Confluent framing: magic byte, schema id 7, datum (zig-zag 21 = 42).
    let avro = vec![0, 0, 0, 0, 7, 84];
    let out = h
        .put(&[
            json_record("orders", 0, 10, json!({"n": 1})),
            text_record("orders", 0, 11, "hello"),
            avro_record("orders", 0, 12, &writer, avro),
        ])
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Delivered; 3]);
    let out = h
        .put(&[json_record("orders", 1, 3, json!([true]))])
        .await
        .unwrap();
    assert_eq!(out, vec![Outcome::Delivered]);
    let durable = h.flush().await.unwrap();
    assert_eq!(durable[&TopicPartition::new("orders", 0)], 13);
    assert_eq!(durable[&TopicPartition::new("orders", 1)], 4);
    let l = lines(&path);
    assert_eq!(l.len(), 4, "flushed to disk: {l:?}");
    assert_eq!(l[0]["value"], json!({"n": 1}));
    assert_eq!(l[1]["value"], json!("hello"));
    assert_eq!(l[2]["value"], json!({"n": 42}));
    assert_eq!(
        (l[3]["partition"].as_i64(), l[3]["offset"].as_i64()),
        (Some(1), Some(3))
    );
    h.close(&[("orders", 1)]).await.unwrap();
    // A closed partition is not the sink's any more: the harness refuses to put to it.
    assert!(matches!(
        h.put(&[json_record("orders", 1, 4, json!(1))]).await,
        Err(HarnessError::Contract(_))
    ));
    h.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_value_that_does_not_decode_is_that_record_s_permanent_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut h = Harness::build(&FilePlugin, &[("file", path.to_str().unwrap())]).unwrap();
    h.open(&[("t", 0)]).await.unwrap();
    let writer = Arc::new(AvroWriter::parse(1, r#""string""#).unwrap());
    let out = h
        .put(&[
            json_record("t", 0, 0, json!("ok")),
            // A string of length 10 with no bytes after it.
            avro_record("t", 0, 1, &writer, vec![0, 0, 0, 0, 1, 20]),
        ])
        .await
        .unwrap();
    assert_eq!(out[0], Outcome::Delivered);
    assert!(
        matches!(&out[1], Outcome::Permanent { reason, .. } if reason.contains("malformed Avro"))
    );
    h.flush().await.unwrap();
    assert_eq!(lines(&path).len(), 1);
}

#[test]
fn refuses_a_directory_for_a_file() {
    let e = Harness::build(&FilePlugin, &[("file", "/tmp/")]).unwrap_err();
    let HarnessError::Config(errors) = e else {
        panic!("{e}")
    };
    assert!(
        errors["file"][0].contains("names a directory"),
        "{errors:?}"
    );
    assert!(matches!(
        Harness::build(&FilePlugin, &[]).unwrap_err(),
        HarnessError::Config(e) if e["file"] == vec!["missing required configuration".to_owned()]
    ));
}

#[tokio::test(start_paused = true)]
async fn puts_of_every_size_write_exactly_their_own_lines() {
    // The sink reuses the text buffers of earlier puts: a large put, then small ones, then large again must
    // each write their own lines, whole and in order, and nothing of an earlier put.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.jsonl");
    let mut h = Harness::build(&FilePlugin, &[("file", path.to_str().unwrap())]).unwrap();
    h.open(&[("t", 0)]).await.unwrap();
    let mut offset = 0i64;
    for size in [400usize, 1, 3, 0, 250, 2, 600, 1] {
        let records: Vec<_> = (0..size)
            .map(|i| {
                let n = offset + i as i64;
                json_record("t", 0, n, json!({"n": n, "pad": "x".repeat(i % 97)}))
            })
            .collect();
        let out = h.put(&records).await.unwrap();
        assert_eq!(out.len(), size);
        offset += size as i64;
    }
    h.flush().await.unwrap();
    let l = lines(&path);
    assert_eq!(l.len() as i64, offset);
    for (i, line) in l.iter().enumerate() {
        assert_eq!(line["offset"].as_i64(), Some(i as i64), "line {i}");
        assert_eq!(line["value"]["n"].as_i64(), Some(i as i64), "line {i}");
    }
    h.stop().await.unwrap();
}
