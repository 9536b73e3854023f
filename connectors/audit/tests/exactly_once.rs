//! Exactly once against a real PostgreSQL: batches are transactions fenced by generation, retries write nothing
//! twice, starting offsets come from the offsets table, a zombie writer (older generation) cannot commit, and
//! offsets the sink never got are recorded as gaps.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use anyhow::Result;
use common::{Fixture, SCHEMA, records};
use ursa_connect::AvroWriter;
use ursa_connector_audit::error::AuditError;
use ursa_connector_audit::merkle::{self, leaf_hash};
use ursa_connector_audit::writer::{self, WriteError};

#[tokio::test]
async fn batches_are_fenced_transactions_and_retries_write_nothing_twice() -> Result<()> {
    let f = Fixture::new().await?;
    let avro = Arc::new(AvroWriter::parse(1, SCHEMA)?);
    f.claim(1).await?;
    let c = f
        .write(1, &records(&avro, &f.topic, 0..10))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!((c.next_offset, c.written), (Some(10), 10));
    assert!(
        c.columns.is_some(),
        "the schema's columns were added with the first rows"
    );
    assert_eq!(
        c.checkpoint.as_ref().map(|c| c.tree_size),
        Some(10),
        "the first batch is checkpointed"
    );
    // The same batch again (its commit was not seen): nothing written; an overlapping one writes the rest.
    let c = f
        .write(1, &records(&avro, &f.topic, 0..10))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!((c.next_offset, c.written), (Some(10), 0));
    let c = f
        .write(1, &records(&avro, &f.topic, 5..15))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!((c.next_offset, c.written), (Some(15), 5));
    assert!(
        c.checkpoint.is_none(),
        "one batch since the last checkpoint"
    );
    assert_eq!(f.count().await?, 15);

    // Another worker takes the partition over (generation 2): the old writer is a zombie.
    f.claim(2).await?;
    let zombie = f.write(1, &records(&avro, &f.topic, 15..20)).await;
    match zombie {
        Err(WriteError::Audit(
            e @ AuditError::Fenced {
                ours: 1, theirs: 2, ..
            },
        )) => {
            assert!(e.is_retriable());
            assert!(e.to_string().contains("nothing was committed"), "{e}");
        }
        other => panic!("the zombie committed or failed otherwise: {other:?}"),
    }
    assert_eq!(f.count().await?, 15, "the zombie wrote nothing");
    assert!(
        matches!(f.claim(1).await, Err(AuditError::Fenced { .. })),
        "nor can it claim again"
    );
    let c = f
        .write(2, &records(&avro, &f.topic, 15..20))
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(c.next_offset, Some(20));
    assert_eq!(
        c.checkpoint.as_ref().map(|c| c.tree_size),
        Some(20),
        "two batches since the last checkpoint"
    );

    // Starting offsets come from the table.
    let conn = f.pool.get().await?;
    let next = writer::next_offsets(conn.client(), "public", "conn", &f.topic, &[0, 1]).await?;
    assert_eq!(next.get(&0), Some(&20));
    assert_eq!(
        next.get(&1),
        None,
        "never written: left to the group's offsets"
    );
    conn.release();

    // Offsets the sink never got are a recorded gap.
    let mut later = records(&avro, &f.topic, 25..27);
    later.extend(records(&avro, &f.topic, 28..29));
    let c = f
        .write(2, &later)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    assert_eq!(c.next_offset, Some(29));
    let conn = f.pool.get().await?;
    let gaps: Vec<(i64, i64, String)> = conn
        .client()
        .query(
            "SELECT from_offset, to_offset, reason FROM ursa_audit_gaps WHERE topic = $1 ORDER BY from_offset",
            &[&f.topic],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        gaps,
        vec![
            (20, 25, "not delivered: 20..25".into()),
            (27, 28, "not delivered: 27..28".into())
        ]
    );

    // Every batch's root is the RFC 6962 root of its rows' chain hashes, and the chain links up.
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    let rows = conn
        .client()
        .query(
            &format!(
                "SELECT kafka_offset, audit_hash FROM {} ORDER BY kafka_offset",
                table.qualified
            ),
            &[],
        )
        .await?;
    let hashes: Vec<(i64, Vec<u8>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(hashes.len(), 23);
    let batches = conn
        .client()
        .query(
            "SELECT first_offset, last_offset, merkle_root, chain_head FROM ursa_audit_batches WHERE topic = $1 \
             ORDER BY first_offset",
            &[&f.topic],
        )
        .await?;
    assert_eq!(batches.len(), 4);
    for b in &batches {
        let (first, last): (i64, i64) = (b.get(0), b.get(1));
        let leaves: Vec<merkle::Hash> = hashes
            .iter()
            .filter(|(o, _)| (first..=last).contains(o))
            .map(|(_, h)| leaf_hash(h))
            .collect();
        assert_eq!(b.get::<_, Vec<u8>>(2), merkle::root(&leaves).to_vec());
        let head = hashes.iter().find(|(o, _)| *o == last).unwrap();
        assert_eq!(b.get::<_, Vec<u8>>(3), head.1);
    }
    // The typed columns and the value jsonb.
    let row = conn
        .client()
        .query_one(
            &format!("SELECT child_id, n, audit_subject, audit_value_json->>'n' FROM {} WHERE kafka_offset = 3", table.qualified),
            &[],
        )
        .await?;
    assert_eq!(row.get::<_, String>(0), "child-1");
    assert_eq!(row.get::<_, i64>(1), 30);
    assert_eq!(row.get::<_, String>(2), "child-1");
    assert_eq!(row.get::<_, String>(3), "30");

    // The append-only trigger.
    for sql in [
        format!("UPDATE {} SET n = 0", table.qualified),
        format!("DELETE FROM {}", table.qualified),
        format!("TRUNCATE {}", table.qualified),
        "DELETE FROM ursa_audit_batches".to_owned(),
    ] {
        let e = conn.client().batch_execute(&sql).await.unwrap_err();
        assert!(
            ursa_connector_audit::error::describe(&e)
                .contains("is refused: the audit store is append-only"),
            "{sql}: {e}"
        );
    }
    conn.release();
    Ok(())
}
