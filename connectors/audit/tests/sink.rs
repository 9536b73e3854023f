//! The `audit-postgres` sink on the SDK's harness, against a real PostgreSQL: config checks, open/put/flush/close,
//! a rejected record held back and its gap recorded with the reason, checkpoints published to the file, a
//! zombie worker fenced, and `verify` passing with the published checkpoints.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use anyhow::Result;
use ursa_avro::binary::encode;
use ursa_connect::testing::{Harness, HarnessError, avro_record};
use ursa_connect::{AvroWriter, Outcome, SinkPlugin, SinkRecord};
use ursa_connector_audit::AuditPlugin;
use ursa_connector_audit::checkpoint::{Signer, Verifier};
use ursa_connector_audit::connect::{Database, SslMode};
use ursa_connector_audit::crypto::MasterKey;
use ursa_connector_audit::verify::{Options, read_checkpoint_file, verify};
use ursa_testkit::{Postgres, unique_name};

const EVENT: &str = r#"{"type":"record","name":"Audit","namespace":"t","fields":[
    {"name":"child","type":["null",{"type":"record","name":"ChildRef","fields":[{"name":"child_id","type":"string"}]}],"default":null},
    {"name":"action","type":"string"},
    {"name":"ip","type":["null","string"],"default":null,"pii":true}]}"#;

fn event(writer: &Arc<AvroWriter>, topic: &str, partition: i32, offset: i64) -> SinkRecord {
    let mut framed = vec![0, 0, 0, 0, 3];
    encode::union_index(&mut framed, 1);
    encode::string(&mut framed, &format!("child-{}", offset % 3));
    encode::string(&mut framed, "child.profile.read");
    encode::union_index(&mut framed, 1);
    encode::string(&mut framed, "192.0.2.7");
    let mut r = avro_record(topic, partition, offset, writer, framed);
    r.partition = partition;
    r
}

#[test]
fn the_config_is_checked_key_by_key() {
    let err = Harness::build(
        &AuditPlugin,
        &[
            ("audit.db.url", "postgres://u@h/db?sslmode=verify-full"),
            ("audit.checkpoint.signing.key", "nope"),
            ("audit.db.schema", "bad-name"),
            ("audit.pii.master.key", "c2hvcnQ="),
            ("audit.table.name.format", "audit"),
        ],
    )
    .unwrap_err();
    let HarnessError::Config(errors) = err else {
        panic!("{err}")
    };
    assert!(
        errors["audit.db.url"][0].contains("needs a CA file"),
        "{errors:?}"
    );
    assert!(
        errors["audit.checkpoint.signing.key"][0].contains("ursa audit keygen"),
        "{errors:?}"
    );
    assert!(
        errors["audit.db.schema"][0].contains("not a plain identifier"),
        "{errors:?}"
    );
    assert!(
        errors["audit.pii.master.key"][0].contains("32 bytes"),
        "{errors:?}"
    );
    assert!(
        errors["audit.table.name.format"][0].contains("${topic}"),
        "{errors:?}"
    );
    assert!(
        AuditPlugin
            .keys()
            .iter()
            .all(|k| !k.documentation.is_empty())
    );
}

#[tokio::test]
async fn the_sink_writes_exactly_once_and_publishes_its_checkpoints() -> Result<()> {
    let db = Postgres::shared().database()?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("checkpoints.jsonl");
    let (skey, vkey) = Signer::generate("audit.example/store")?;
    let master = MasterKey::generate()?;
    let url = format!("{}?sslmode=disable", db.url());
    let file_s = file.display().to_string();
    let config = [
        ("name", "audit"),
        ("audit.db.url", url.as_str()),
        ("audit.checkpoint.signing.key", skey.as_str()),
        ("audit.checkpoint.batches", "2"),
        ("audit.checkpoint.file", file_s.as_str()),
        ("audit.pii.master.key", master.as_str()),
        ("audit.pii.subject.field", "child.child_id"),
    ];
    let topic = unique_name("system.audit-log");
    let avro = Arc::new(AvroWriter::parse(3, EVENT)?);
    let mut a = Harness::build(&AuditPlugin, &config)?;
    let start = a.open(&[(topic.as_str(), 0), (topic.as_str(), 1)]).await?;
    assert!(start.is_empty(), "nothing stored yet: {start:?}");

    let batch: Vec<SinkRecord> = (0..5).map(|o| event(&avro, &topic, 0, o)).collect();
    let out = a.put(&batch).await?;
    assert!(out.iter().all(|o| *o == Outcome::Delivered), "{out:?}");
    // The same records again (a retry): delivered, written once.
    assert!(
        a.put(&batch)
            .await?
            .iter()
            .all(|o| *o == Outcome::Delivered)
    );

    // A value that does not decode: rejected, and the records behind it held back.
    let mut bad = event(&avro, &topic, 0, 6);
    bad.value = ursa_connect::Payload::new(
        vec![0, 0, 0, 0, 3, 9].into(),
        bad.value.format().unwrap().clone(),
    );
    let mut next = vec![event(&avro, &topic, 0, 5), bad, event(&avro, &topic, 0, 7)];
    let out = a.put(&next).await?;
    assert_eq!(out[0], Outcome::Delivered);
    assert!(
        matches!(&out[1], Outcome::Permanent { reason, .. } if reason.contains("does not decode")),
        "{out:?}"
    );
    assert!(matches!(out[2], Outcome::Retriable { .. }), "{out:?}");
    // The runtime dead-letters offset 6, then retries 7.
    next.drain(..2);
    assert!(a.put(&next).await?.iter().all(|o| *o == Outcome::Delivered));
    let p1: Vec<SinkRecord> = (0..3).map(|o| event(&avro, &topic, 1, o)).collect();
    a.put(&p1).await?;
    let durable = a.flush().await?;
    assert_eq!(durable.values().copied().collect::<Vec<_>>(), vec![8, 3]);

    // A second worker takes partition 0 over with a newer generation: the first is a zombie.
    let mut b = Harness::build(&AuditPlugin, &config)?;
    b.open(&[(topic.as_str(), 0)]).await?;
    let start = b.open(&[(topic.as_str(), 0)]).await?;
    assert_eq!(
        start.values().copied().collect::<Vec<_>>(),
        vec![8],
        "from the offsets table"
    );
    let zombie = a.put(&[event(&avro, &topic, 0, 8)]).await.unwrap_err();
    assert!(zombie.to_string().contains("fenced"), "{zombie}");
    assert!(matches!(&zombie, HarnessError::Sink(e) if e.is_retriable()));
    b.put(&[event(&avro, &topic, 0, 8), event(&avro, &topic, 0, 9)])
        .await?;
    b.stop().await?;
    a.close(&[(topic.as_str(), 1)]).await?;

    // What the store holds, and that it verifies against the published checkpoints.
    let client = Database::parse(db.url(), Some(SslMode::Disable), None)
        .map_err(anyhow::Error::msg)?
        .connect()
        .await?;
    let table = format!("audit_{}", topic.replace(['.', '-'], "_"));
    let count: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{table}\" WHERE kafka_partition = 0"),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(count, 9, "offsets 0..=9 but 6");
    let reason: String = client
        .query_one(
            "SELECT reason FROM ursa_audit_gaps WHERE from_offset = 6 AND to_offset = 7",
            &[],
        )
        .await?
        .get(0);
    assert!(
        reason.contains("rejected by the audit sink") && reason.contains("does not decode"),
        "{reason}"
    );
    let ip: Option<String> = client
        .query_one(
            &format!("SELECT audit_value_json->>'ip' FROM \"{table}\" LIMIT 1"),
            &[],
        )
        .await?
        .get(0);
    assert!(!ip.unwrap_or_default().contains("192.0.2.7"), "sealed");
    let published =
        read_checkpoint_file(&std::fs::read_to_string(&file)?).map_err(anyhow::Error::msg)?;
    assert!(
        published
            .iter()
            .any(|c| c.partition == 0 && c.tree_size == 9),
        "{published:?}"
    );
    assert!(
        published
            .iter()
            .any(|c| c.partition == 1 && c.tree_size == 3),
        "{published:?}"
    );
    let report = verify(
        &client,
        &Options {
            schema: "public".into(),
            connector: Some("audit".into()),
            verifier: Some(Verifier::parse(&vkey)?),
            external: published,
        },
    )
    .await?;
    assert!(report.ok(), "{report}");
    assert_eq!(report.partitions.iter().map(|p| p.rows).sum::<u64>(), 12);
    Ok(())
}
