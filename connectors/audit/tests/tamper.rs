//! Tamper tests against a real PostgreSQL: a superuser who disables the trigger and edits, deletes, reorders,
//! truncates or re-chains rows is caught by `verify`, which names the table, partition and offset; truncation
//! and a re-chain that also removes the stored checkpoints need the external checkpoints, and are caught with
//! them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use anyhow::Result;
use common::{Fixture, SCHEMA, records};
use ursa_connect::{AvroWriter, Header};
use ursa_connector_audit::chain::{ChainRow, row_hash};
use ursa_connector_audit::checkpoint::{Signer, Verifier};
use ursa_connector_audit::merkle::{self, Frontier, leaf_hash};
use ursa_connector_audit::verify::{Break, Options, Report, verify};
use ursa_connector_audit::writer::StoredCheckpoint;

/// Three batches of ten rows, each checkpointed; the checkpoints as published.
async fn store() -> Result<(Fixture, Vec<StoredCheckpoint>)> {
    let f = Fixture::with_checkpoints_every(1).await?;
    let avro = Arc::new(AvroWriter::parse(1, SCHEMA)?);
    f.claim(1).await?;
    let mut published = Vec::new();
    for b in 0..3 {
        let c = f
            .write(1, &records(&avro, &f.topic, b * 10..b * 10 + 10))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        published.push(c.checkpoint.expect("a checkpoint per batch"));
    }
    Ok((f, published))
}

async fn check(f: &Fixture, external: &[StoredCheckpoint]) -> Result<Report> {
    let conn = f.pool.get().await?;
    let report = verify(
        conn.client(),
        &Options {
            schema: "public".into(),
            connector: Some("conn".into()),
            verifier: Some(Verifier::parse(&f.vkey)?),
            external: external.to_vec(),
        },
    )
    .await?;
    conn.release();
    Ok(report)
}

fn only_break(report: &Report) -> &Break {
    assert_eq!(report.breaks.len(), 1, "{report}");
    let b = &report.breaks[0];
    assert!(b.table.starts_with("audit_audit_events"), "{b}");
    assert_eq!(b.partition, Some(0), "{b}");
    b
}

/// Runs `sql` as the superuser with every trigger of the audit tables disabled, then enables them again.
async fn tamper(f: &Fixture, sql: &str) -> Result<()> {
    let conn = f.pool.get().await?;
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    let tables = [
        table.qualified.as_str(),
        "ursa_audit_batches",
        "ursa_audit_checkpoints",
    ];
    let mut script = String::from("BEGIN;");
    for t in tables {
        script.push_str(&format!("ALTER TABLE {t} DISABLE TRIGGER ALL;"));
    }
    script.push_str(&sql.replace("$T", &table.qualified));
    for t in tables {
        script.push_str(&format!(";ALTER TABLE {t} ENABLE TRIGGER ALL"));
    }
    script.push_str(";COMMIT");
    conn.client().batch_execute(&script).await?;
    conn.release();
    Ok(())
}

#[tokio::test]
async fn an_untouched_store_verifies() -> Result<()> {
    let (f, published) = store().await?;
    let report = check(&f, &published).await?;
    assert!(report.ok(), "{report}");
    assert_eq!(report.partitions.len(), 1);
    let p = &report.partitions[0];
    assert_eq!(
        (
            p.rows,
            p.offsets,
            p.batches,
            p.checkpoints,
            p.external_checkpoints
        ),
        (30, Some((0, 29)), 3, 3, 3)
    );
    // A disabled trigger is a break in itself.
    let conn = f.pool.get().await?;
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    conn.client()
        .batch_execute(&format!(
            "ALTER TABLE {} DISABLE TRIGGER ursa_audit_append_only",
            table.qualified
        ))
        .await?;
    conn.release();
    let report = check(&f, &published).await?;
    assert_eq!(report.breaks.len(), 1, "{report}");
    assert!(
        report.breaks[0]
            .what
            .contains("ursa_audit_append_only is disabled"),
        "{report}"
    );
    Ok(())
}

#[tokio::test]
async fn edits_are_caught_where_they_are() -> Result<()> {
    let (f, published) = store().await?;
    tamper(&f, "UPDATE $T SET kafka_value = overlay(kafka_value placing '\\x02'::bytea from 14) WHERE kafka_offset = 5").await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(5), "{b}");
    assert!(b.what.contains("hash does not match"), "{b}");

    // A typed column the hash does not cover.
    let (f, published) = store().await?;
    tamper(&f, "UPDATE $T SET n = 999 WHERE kafka_offset = 6").await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(6), "{b}");
    assert!(b.what.contains("column \"n\" does not match"), "{b}");
    Ok(())
}

#[tokio::test]
async fn deleted_and_reordered_rows_are_caught() -> Result<()> {
    let (f, published) = store().await?;
    tamper(&f, "DELETE FROM $T WHERE kafka_offset = 12").await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(13), "{b}");
    assert!(b.what.contains("offsets 12..13 are missing"), "{b}");

    // Hiding the deletion behind a made-up gap does not help: the next row's hash covers its predecessor.
    let (f, published) = store().await?;
    tamper(
        &f,
        "DELETE FROM $T WHERE kafka_offset = 12; INSERT INTO ursa_audit_gaps (connector, topic, partition, from_offset, \
         to_offset, reason) SELECT 'conn', kafka_topic, 0, 12, 13, 'dead-lettered' FROM $T LIMIT 1",
    )
    .await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(13), "{b}");
    assert!(b.what.contains("hash does not match"), "{b}");

    // Two rows swap places.
    let (f, published) = store().await?;
    tamper(
        &f,
        "UPDATE $T SET kafka_offset = -1 WHERE kafka_offset = 3; UPDATE $T SET kafka_offset = 3 WHERE kafka_offset = 4; \
         UPDATE $T SET kafka_offset = 4 WHERE kafka_offset = -1",
    )
    .await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(3), "{b}");
    Ok(())
}

/// The stored form of the partition's bookkeeping after rows 0..keep, as a careful attacker would forge it.
async fn forge_offsets_row(f: &Fixture, hashes: &[Vec<u8>], last_offset: i64) -> Result<String> {
    let mut frontier = Frontier::new();
    for h in hashes {
        frontier.push(leaf_hash(h));
    }
    let hex = |b: &[u8]| merkle::hex(b);
    Ok(format!(
        "UPDATE ursa_audit_offsets SET next_offset = {}, last_offset = {last_offset}, chain_head = '\\x{}', \
         tree_size = {}, frontier = '\\x{}' WHERE topic = '{}'",
        last_offset + 1,
        hex(hashes.last().unwrap()),
        frontier.size(),
        hex(&frontier.to_bytes()),
        f.topic
    ))
}

async fn hashes(f: &Fixture) -> Result<Vec<Vec<u8>>> {
    let conn = f.pool.get().await?;
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    let h = conn
        .client()
        .query(
            &format!(
                "SELECT audit_hash FROM {} ORDER BY kafka_offset",
                table.qualified
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    conn.release();
    Ok(h)
}

#[tokio::test]
async fn truncation_is_caught_by_the_external_checkpoints() -> Result<()> {
    let (f, published) = store().await?;
    let all = hashes(&f).await?;
    let forged = forge_offsets_row(&f, &all[..20], 19).await?;
    tamper(
        &f,
        &format!(
            "DELETE FROM $T WHERE kafka_offset >= 20; DELETE FROM ursa_audit_batches WHERE first_offset >= 20; \
             DELETE FROM ursa_audit_checkpoints WHERE tree_size > 20; {forged}"
        ),
    )
    .await?;
    // The database alone agrees with itself...
    let report = check(&f, &[]).await?;
    assert!(report.ok(), "{report}");
    // ...but not with what was published.
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(20), "{b}");
    assert!(
        b.what
            .contains("external checkpoint says 30 rows up to offset 29, only 20 remain"),
        "{b}"
    );
    Ok(())
}

#[tokio::test]
async fn a_re_chain_is_caught_by_the_checkpoints() -> Result<()> {
    for drop_stored_checkpoints in [false, true] {
        let (f, published) = store().await?;
        let avro = Arc::new(AvroWriter::parse(1, SCHEMA)?);
        // Row 5 gets n = 12345, with its value bytes, jsonb and typed column consistent; every later hash, the
        // batch roots and heads and the offsets row are recomputed.
        let mut recs = records(&avro, &f.topic, 0..30);
        let mut framed = vec![0, 0, 0, 0, 1];
        ursa_avro::binary::encode::string(&mut framed, "child-1");
        ursa_avro::binary::encode::long(&mut framed, 12345);
        recs[5].value = ursa_connect::Payload::new(
            framed.clone().into(),
            recs[5].value.format().unwrap().clone(),
        );
        let mut all = hashes(&f).await?;
        let no_headers: Vec<Header> = Vec::new();
        let mut scratch = Vec::new();
        for o in 5..30usize {
            let prev: [u8; 32] = all[o - 1].clone().try_into().unwrap();
            let row = ChainRow {
                topic: &f.topic,
                partition: 0,
                offset: o as i64,
                prev_offset: Some(o as i64 - 1),
                timestamp: recs[o].timestamp,
                key: None,
                headers: &no_headers,
                schema_id: Some(1),
                value: recs[o].value.bytes().map(|b| &b[..]),
                subject: Some("child-1"),
            };
            all[o] = row_hash(&prev, &row, &mut scratch).to_vec();
        }
        let mut sql = format!(
            "UPDATE $T SET kafka_value = '\\x{}', n = 12345, audit_value_json = jsonb_set(audit_value_json, '{{n}}', '12345') \
             WHERE kafka_offset = 5;",
            merkle::hex(&framed)
        );
        for (o, h) in all.iter().enumerate().skip(5) {
            sql.push_str(&format!(
                "UPDATE $T SET audit_hash = '\\x{}' WHERE kafka_offset = {o};",
                merkle::hex(h)
            ));
        }
        for b in 0..3usize {
            let leaves: Vec<merkle::Hash> = all[b * 10..b * 10 + 10]
                .iter()
                .map(|h| leaf_hash(h))
                .collect();
            sql.push_str(&format!(
                "UPDATE ursa_audit_batches SET merkle_root = '\\x{}', chain_head = '\\x{}' WHERE first_offset = {};",
                merkle::hex(&merkle::root(&leaves)),
                merkle::hex(&all[b * 10 + 9]),
                b * 10
            ));
        }
        sql.push_str(&forge_offsets_row(&f, &all, 29).await?);
        if drop_stored_checkpoints {
            sql.push_str("; DELETE FROM ursa_audit_checkpoints");
        }
        tamper(&f, &sql).await?;
        if drop_stored_checkpoints {
            assert!(
                check(&f, &[]).await?.ok(),
                "the database alone agrees with itself"
            );
            let b = only_break(&check(&f, &published).await?).clone();
            assert_eq!(b.offset, Some(9), "{b}");
            assert!(
                b.what.contains("external checkpoint at tree size 10"),
                "{b}"
            );
            assert!(b.what.contains("offsets 0..=9"), "{b}");
        } else {
            let b = only_break(&check(&f, &[]).await?).clone();
            assert_eq!(b.offset, Some(9), "{b}");
            assert!(b.what.contains("stored checkpoint at tree size 10"), "{b}");
        }
    }

    // Forged stored checkpoints, signed with another key, are not the signer's.
    let (f, published) = store().await?;
    let (other, _) = Signer::generate("audit.test")?;
    let other = Signer::parse(&other)?;
    let conn = f.pool.get().await?;
    let text: String = conn
        .client()
        .query_one(
            "SELECT note FROM ursa_audit_checkpoints WHERE tree_size = 20",
            &[],
        )
        .await?
        .get(0);
    conn.release();
    let body = &text[..text.rfind("\n\n").unwrap() + 1];
    let forged = other.sign(body).replace('\'', "''");
    tamper(
        &f,
        &format!("UPDATE ursa_audit_checkpoints SET note = '{forged}' WHERE tree_size = 20"),
    )
    .await?;
    let b = only_break(&check(&f, &published).await?).clone();
    assert_eq!(b.offset, Some(19), "{b}");
    assert!(b.what.contains("no valid signature by audit.test"), "{b}");
    Ok(())
}
