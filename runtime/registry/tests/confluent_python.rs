//! The real third-party client: Confluent's Python `confluent-kafka` (SchemaRegistryClient, AvroSerializer,
//! AvroDeserializer) against the dev registry. Needs `pip install "confluent-kafka[avro,schemaregistry]==2.16.1"`;
//! fails (never skips) with that command when it is missing. `URSA_PYTHON` picks the interpreter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;
use ursa_avro::Reader;
use ursa_avro::wire;
use ursa_testkit::CommandExt;

const PIN: &str = "confluent-kafka[avro,schemaregistry]==2.16.1";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn confluent_python_client_and_serdes() {
    let server = common::start().await;
    let url = server.url();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/confluent_client_check.py");
    let python = std::env::var("URSA_PYTHON").unwrap_or_else(|_| "python3".into());

    let run = {
        let url = url.clone();
        let python = python.clone();
        // Killed at the deadline, after printing its threads' stacks (a hung registry call says where).
        tokio::task::spawn_blocking(move || {
            Command::new(&python)
                .arg(&script)
                .arg(&url)
                .output_within(ursa_testkit::PEER_TIMEOUT)
        })
    };
    let output = run.await.unwrap().unwrap_or_else(|e| {
        panic!(
            "{python} confluent_client_check.py: {e:#}; install Python 3 and `pip install '{PIN}'`"
        )
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(3) {
        panic!("confluent-kafka is missing: pip install '{PIN}'\n{stderr}");
    }
    assert!(
        output.status.success(),
        "the Confluent Python client check failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("no JSON result line ({e}):\n{stdout}\n{stderr}"));
    eprintln!("confluent-kafka {}", result["confluent_kafka"]);

    // The bytes the AvroSerializer produced are Confluent-framed with the id the registry returned.
    let raw = common::Raw::new(&url);
    let latest = raw.get("/subjects/py-users-value/versions/1").await;
    let id = latest.body["id"].as_u64().unwrap();
    assert_eq!(result["id"].as_u64(), Some(id));
    let framed = hex(result["framed"].as_str().unwrap());
    let (framed_id, datum) = wire::split(&framed).unwrap();
    assert_eq!(u64::from(framed_id), id);
    let mut r = Reader::new(datum);
    assert_eq!(r.long().unwrap(), 42);
    assert_eq!(r.string().unwrap(), "Ada");
    r.finish().unwrap();

    // And the one written with a schema that references another subject.
    let customer = raw
        .get("/subjects/py-customers-value/versions/latest")
        .await;
    let ref_id = customer.body["id"].as_u64().unwrap();
    assert_eq!(result["ref_id"].as_u64(), Some(ref_id));
    assert_eq!(
        customer.body["references"][0]["subject"], "py-address",
        "{customer:?}"
    );
    let ref_framed = hex(result["ref_framed"].as_str().unwrap());
    let (framed_id, datum) = wire::split(&ref_framed).unwrap();
    assert_eq!(u64::from(framed_id), ref_id);
    let mut r = Reader::new(datum);
    assert_eq!(r.long().unwrap(), 7);
    assert_eq!(r.string().unwrap(), "1 Main St");
    assert_eq!(r.string().unwrap(), "12345");
    r.finish().unwrap();
    server.stop().await.unwrap();
}
