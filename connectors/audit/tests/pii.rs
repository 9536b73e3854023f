//! Crypto-shredding against a real PostgreSQL: `"pii": true` fields are sealed per data subject, no plaintext
//! survives anywhere in the row, `show` opens them, `forget` destroys the subject's keys (and is itself recorded),
//! after which `show` prints `<erased>`, verification still passes, and no record is ever written under a
//! destroyed key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use serde_json::json;
use ursa_avro::binary::encode;
use ursa_connect::testing::avro_record;
use ursa_connect::{AvroWriter, SinkRecord};
use ursa_connector_audit::checkpoint::Verifier;
use ursa_connector_audit::crypto::MasterKey;
use ursa_connector_audit::export::{ShowOptions, show, to_csv, to_jsonl};
use ursa_connector_audit::keys::{KeyStore, forget};
use ursa_connector_audit::row::Preparer;
use ursa_connector_audit::verify::{Options, verify};
use ursa_connector_audit::writer::{self, Committed, Context, WriteError};

const SAID: &str = r#"{"type":"record","name":"Said","namespace":"t","fields":[
 {"name":"child","type":{"type":"record","name":"ChildRef","fields":[
    {"name":"child_id","type":"string"},
    {"name":"name","type":"string","pii":true}]}},
 {"name":"text","type":"string","pii":true},
 {"name":"ip","type":["null","string"],"default":null,"pii":true},
 {"name":"n","type":"long"}]}"#;

fn said(writer: &Arc<AvroWriter>, topic: &str, offset: i64, child: &str) -> SinkRecord {
    let mut framed = vec![0, 0, 0, 0, 7];
    encode::string(&mut framed, child);
    encode::string(&mut framed, &format!("secret-name-of-{child}"));
    encode::string(&mut framed, &format!("secret-words-{offset}"));
    encode::union_index(&mut framed, 1);
    encode::string(&mut framed, "10.99.88.77");
    encode::long(&mut framed, offset);
    avro_record(topic, 0, offset, writer, framed)
}

async fn write_sealed(
    f: &common::Fixture,
    preparer: &Preparer,
    keys: &KeyStore,
    records: &[SinkRecord],
) -> Result<Committed, WriteError> {
    let mut conn = f
        .pool
        .get()
        .await
        .map_err(|e| WriteError::Audit(e.into()))?;
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    let mut rows = Vec::new();
    for r in records {
        let subject = preparer.sealing_subject(r).unwrap().expect("PII to seal");
        let key = keys.for_subject(conn.client(), &subject).await?;
        rows.push(preparer.prepare(r, Some(&key)).unwrap());
    }
    let stored = HashSet::new();
    let ctx = Context {
        schema: "public",
        tables: &f.tables,
        keys: Some(keys),
        policy: &f.policy,
        stored_schemas: &stored,
    };
    let c = writer::write(&mut conn, &ctx, &f.partition(1), &table, &rows, &|_, _| {
        String::new()
    })
    .await?;
    if let Some(cols) = &c.columns {
        table.set_columns(cols.clone());
    }
    conn.release();
    Ok(c)
}

#[tokio::test]
async fn pii_is_sealed_shown_and_forgotten() -> Result<()> {
    let f = common::Fixture::new().await?;
    let avro = Arc::new(AvroWriter::parse(7, SAID)?);
    let master = MasterKey::generate()?;
    let keys = KeyStore::new(MasterKey::parse(&master)?, "public");
    let preparer = Preparer::new(&["child.child_id".into()], false, true);
    f.claim(1).await?;
    let records: Vec<SinkRecord> = (0..6)
        .map(|o| {
            said(
                &avro,
                &f.topic,
                o,
                if o % 2 == 0 { "child-1" } else { "child-2" },
            )
        })
        .collect();
    write_sealed(&f, &preparer, &keys, &records)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;

    // No plaintext anywhere in the rows: not in the value bytes, the jsonb, the typed columns.
    let conn = f.pool.get().await?;
    let table = f.tables.ensure(conn.client(), &f.topic).await?;
    let rows = conn
        .client()
        .query(
            &format!(
                "SELECT t::text, kafka_value, \"text\", ip, child__name FROM {} t",
                table.qualified
            ),
            &[],
        )
        .await?;
    assert_eq!(rows.len(), 6);
    let hex = |s: &str| ursa_connector_audit::merkle::hex(s.as_bytes());
    for r in &rows {
        let text: String = r.get(0);
        let value: Vec<u8> = r.get(1);
        for secret in ["secret-name-of-child", "secret-words-", "10.99.88.77"] {
            assert!(
                !text.contains(secret) && !text.contains(&hex(secret)),
                "{secret} in {text}"
            );
            assert!(
                !value.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in the value"
            );
        }
        // The PII columns hold ciphertext.
        for i in 2..5 {
            assert!(r.get::<_, Vec<u8>>(i).len() > 29);
        }
    }
    assert!(
        text_of(&conn, &table.qualified, "child__child_id")
            .await?
            .contains(&"child-1".to_owned())
    );
    conn.release();

    // Shown to a parent, decrypted.
    let conn = f.pool.get().await?;
    let options = ShowOptions {
        schema: "public".into(),
        subject: "child-1".into(),
        since_ms: None,
        connector: None,
    };
    let shown = show(conn.client(), Some(&keys), &options).await?;
    assert_eq!(
        shown.iter().map(|s| s.offset).collect::<Vec<_>>(),
        vec![0, 2, 4]
    );
    assert_eq!(
        shown[1].value,
        json!({"child": {"child_id": "child-1", "name": "secret-name-of-child-1"}, "text": "secret-words-2", "ip": "10.99.88.77", "n": 2})
    );
    assert!(to_jsonl(&shown).lines().count() == 3);
    assert!(to_csv(&shown).starts_with("topic,partition,offset,timestamp,key,value\r\n"));
    let since = show(
        conn.client(),
        Some(&keys),
        &ShowOptions {
            since_ms: Some(1_700_000_000_003),
            ..options.clone()
        },
    )
    .await?;
    assert_eq!(since.iter().map(|s| s.offset).collect::<Vec<_>>(), vec![4]);
    assert!(
        show(conn.client(), None, &options).await.is_err(),
        "the master key is needed"
    );

    // Forgotten: the keys are gone, the erasure is recorded, the chain still verifies.
    let erasure = forget(conn.client(), "public", "child-1", "parent request #42").await?;
    assert_eq!(erasure.keys_destroyed, 1);
    assert_eq!(erasure.seq, 1);
    let shown = show(conn.client(), Some(&keys), &options).await?;
    assert_eq!(
        shown[1].value,
        json!({"child": {"child_id": "child-1", "name": "<erased>"}, "text": "<erased>", "ip": "<erased>", "n": 2})
    );
    let other = show(
        conn.client(),
        Some(&keys),
        &ShowOptions {
            subject: "child-2".into(),
            ..options.clone()
        },
    )
    .await?;
    assert_eq!(
        other[0].value["text"], "secret-words-1",
        "other subjects keep their data"
    );
    let (who, reason): (String, String) = {
        let r = conn
            .client()
            .query_one("SELECT subject, reason FROM ursa_audit_erasures", &[])
            .await?;
        (r.get(0), r.get(1))
    };
    assert_eq!(
        (who.as_str(), reason.as_str()),
        ("child-1", "parent request #42")
    );
    let report = verify(
        conn.client(),
        &Options {
            schema: "public".into(),
            connector: None,
            verifier: Some(Verifier::parse(&f.vkey)?),
            external: Vec::new(),
        },
    )
    .await?;
    assert!(report.ok(), "{report}");
    conn.release();

    // A sink that still caches the destroyed key cannot write with it: the batch is refused and sealed anew.
    let more = vec![said(&avro, &f.topic, 6, "child-1")];
    match write_sealed(&f, &preparer, &keys, &more).await {
        Err(WriteError::KeysErased(ids)) => keys.evict(&ids),
        other => panic!("written under a destroyed key: {other:?}"),
    }
    write_sealed(&f, &preparer, &keys, &more)
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let conn = f.pool.get().await?;
    let shown = show(conn.client(), Some(&keys), &options).await?;
    assert_eq!(shown.len(), 4);
    assert_eq!(
        shown[3].value["text"], "secret-words-6",
        "the new record has a new key"
    );
    assert_eq!(shown[0].value["text"], "<erased>");

    // A batch's keys at once (the sink's path): a sink that starts cold finds each subject's newest live key,
    // and makes one key for a new subject however often it appears, and none again the next time.
    let cold = KeyStore::new(MasterKey::parse(&master)?, "public");
    cold.prefetch(conn.client(), &["child-1", "child-2", "child-3", "child-3"])
        .await?;
    for subject in ["child-1", "child-2"] {
        assert_eq!(
            cold.for_subject(conn.client(), subject).await?.id(),
            keys.for_subject(conn.client(), subject).await?.id(),
            "{subject}: the live key, not a new one"
        );
    }
    cold.prefetch(conn.client(), &["child-3"]).await?;
    let fresh = KeyStore::new(MasterKey::parse(&master)?, "public");
    fresh.prefetch(conn.client(), &["child-3"]).await?;
    let child3: i64 = conn
        .client()
        .query_one(
            "SELECT count(*) FROM ursa_audit_subject_keys WHERE subject = 'child-3'",
            &[],
        )
        .await?
        .get(0);
    assert_eq!(child3, 1, "one key for the new subject");
    assert_eq!(
        fresh.for_subject(conn.client(), "child-3").await?.id(),
        cold.for_subject(conn.client(), "child-3").await?.id()
    );
    conn.release();
    Ok(())
}

async fn text_of(
    conn: &ursa_connector_audit::pool::Conn<'_>,
    table: &str,
    column: &str,
) -> Result<Vec<String>> {
    Ok(conn
        .client()
        .query(&format!("SELECT {column} FROM {table}"), &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
