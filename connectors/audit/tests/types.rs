//! Tables from schemas, against a real PostgreSQL: every Avro type and logical type lands in its column and
//! reads back equal to the source value (as PostgreSQL itself prints it, and cell for cell through the binary
//! format); a compatible schema change adds columns in the writing transaction, an incompatible one is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use anyhow::Result;
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use ursa_avro::binary::encode;
use ursa_avro::chrono::{NaiveDate, NaiveTime, TimeZone, Utc};
use ursa_avro::schema::SchemaSet;
use ursa_connector_audit::cell::Cell;
use ursa_connector_audit::connect::{Database, SslMode};
use ursa_connector_audit::ddl::quote_ident;
use ursa_connector_audit::schema_map::Mapping;
use ursa_connector_audit::tables::{Tables, install};
use ursa_testkit::Postgres;

const ALL_TYPES: &str = r#"{"type":"record","name":"AllTypes","namespace":"test","fields":[
 {"name":"b","type":"boolean"},
 {"name":"i","type":"int"},
 {"name":"l","type":"long"},
 {"name":"f","type":"float"},
 {"name":"d","type":"double"},
 {"name":"s","type":"string"},
 {"name":"by","type":"bytes"},
 {"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
 {"name":"e","type":{"type":"enum","name":"Color","symbols":["RED","GREEN"]}},
 {"name":"u","type":{"type":"string","logicalType":"uuid"}},
 {"name":"uf","type":{"type":"fixed","name":"U16","size":16,"logicalType":"uuid"}},
 {"name":"dt","type":{"type":"int","logicalType":"date"}},
 {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
 {"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"tsn","type":{"type":"long","logicalType":"timestamp-nanos"}},
 {"name":"ltm","type":{"type":"long","logicalType":"local-timestamp-millis"}},
 {"name":"ltu","type":{"type":"long","logicalType":"local-timestamp-micros"}},
 {"name":"ltn","type":{"type":"long","logicalType":"local-timestamp-nanos"}},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
 {"name":"decf","type":{"type":"fixed","name":"D8","size":8,"logicalType":"decimal","precision":18,"scale":4}},
 {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
 {"name":"opt","type":["null","string"],"default":null},
 {"name":"rec","type":{"type":"record","name":"Inner","fields":[
    {"name":"x","type":"int"},
    {"name":"y","type":["null",{"type":"record","name":"Deep","fields":[{"name":"z","type":"string"}]}]}]}},
 {"name":"arr","type":{"type":"array","items":"int"}},
 {"name":"map","type":{"type":"map","values":"string"}},
 {"name":"multi","type":["null","int","string"]}
]}"#;

const UUID: &str = "123e4567-e89b-12d3-a456-426614174000";

fn uuid_bytes() -> [u8; 16] {
    *ursa_avro::uuid::Uuid::parse_str(UUID).unwrap().as_bytes()
}

/// The datum and, per column, what PostgreSQL prints for it (`None`: NULL).
fn sample(edge: bool) -> (Vec<u8>, Vec<(&'static str, Option<String>)>) {
    let mut d = Vec::new();
    let mut want = Vec::new();
    let days = NaiveDate::from_ymd_opt(2024, 2, 29)
        .unwrap()
        .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32;
    let instant = Utc.with_ymd_and_hms(2025, 10, 9, 8, 53, 20).unwrap();
    let ms = instant.timestamp_millis() + 123;
    let us = instant.timestamp_micros() + 123_456;
    let tm = NaiveTime::from_hms_milli_opt(13, 14, 15, 678).unwrap();
    let tm_ms = (tm - NaiveTime::MIN).num_milliseconds() as i32;

    encode::boolean(&mut d, true);
    want.push(("b", Some("true".into())));
    encode::int(&mut d, -42);
    want.push(("i", Some("-42".into())));
    encode::long(&mut d, 9_007_199_254_740_993);
    want.push(("l", Some("9007199254740993".into())));
    encode::float(&mut d, 1.5);
    want.push(("f", Some("1.5".into())));
    encode::double(&mut d, -0.1);
    want.push(("d", Some("-0.1".into())));
    encode::string(&mut d, "héllo\0x");
    want.push(("s", Some("héllo\u{FFFD}x".into())));
    encode::bytes(&mut d, &[0, 1, 255]);
    want.push(("by", Some("\\x0001ff".into())));
    encode::fixed(&mut d, &[1, 2, 3, 4]);
    want.push(("fx", Some("\\x01020304".into())));
    encode::enum_index(&mut d, 1);
    want.push(("e", Some("GREEN".into())));
    encode::string(&mut d, if edge { "not-a-uuid" } else { UUID });
    want.push(("u", (!edge).then(|| UUID.into())));
    encode::fixed(&mut d, &uuid_bytes());
    want.push(("uf", Some(UUID.into())));
    encode::int(&mut d, if edge { i32::MAX } else { days });
    want.push(("dt", (!edge).then(|| "2024-02-29".into())));
    encode::int(&mut d, if edge { -1 } else { tm_ms });
    want.push(("tm", (!edge).then(|| "13:14:15.678".into())));
    encode::long(&mut d, 86_399_999_999);
    want.push(("tu", Some("23:59:59.999999".into())));
    encode::long(&mut d, if edge { i64::MAX } else { ms });
    want.push(("tsm", (!edge).then(|| "2025-10-09 08:53:20.123+00".into())));
    encode::long(&mut d, us);
    want.push(("tsu", Some("2025-10-09 08:53:20.123456+00".into())));
    encode::long(&mut d, us * 1000 + 789);
    want.push(("tsn", Some((us * 1000 + 789).to_string())));
    encode::long(&mut d, ms);
    want.push(("ltm", Some("2025-10-09 08:53:20.123".into())));
    encode::long(&mut d, us);
    want.push(("ltu", Some("2025-10-09 08:53:20.123456".into())));
    encode::long(&mut d, -5);
    want.push(("ltn", Some("-5".into())));
    // 12345 unscaled at scale 2; in the edge row 11 digits, more than precision 10 allows.
    if edge {
        encode::bytes(&mut d, &99_999_999_999i64.to_be_bytes()[2..]);
        want.push(("dec", None));
    } else {
        encode::bytes(&mut d, &[0x30, 0x39]);
        want.push(("dec", Some("123.45".into())));
    }
    encode::fixed(&mut d, &(-1i64).to_be_bytes());
    want.push(("decf", Some("-0.0001".into())));
    let dur = ursa_avro::Duration {
        months: if edge { u32::MAX } else { 14 },
        days: 3,
        millis: 4005,
    };
    encode::fixed(&mut d, &dur.to_bytes());
    want.push((
        "dur",
        (!edge).then(|| "1 year 2 mons 3 days 00:00:04.005".into()),
    ));
    if edge {
        encode::union_index(&mut d, 0);
        want.push(("opt", None));
    } else {
        encode::union_index(&mut d, 1);
        encode::string(&mut d, "present");
        want.push(("opt", Some("present".into())));
    }
    encode::int(&mut d, 7);
    want.push(("rec__x", Some("7".into())));
    if edge {
        encode::union_index(&mut d, 0);
        want.push(("rec__y__z", None));
    } else {
        encode::union_index(&mut d, 1);
        encode::string(&mut d, "deep");
        want.push(("rec__y__z", Some("deep".into())));
    }
    encode::long(&mut d, 2);
    encode::int(&mut d, 1);
    encode::int(&mut d, 2);
    encode::long(&mut d, 0);
    want.push(("arr", Some("[1, 2]".into())));
    encode::long(&mut d, 1);
    encode::string(&mut d, "k");
    encode::string(&mut d, "v");
    encode::long(&mut d, 0);
    want.push(("map", Some("{\"k\": \"v\"}".into())));
    encode::union_index(&mut d, 2);
    encode::string(&mut d, "s");
    want.push(("multi", Some("\"s\"".into())));
    (d, want)
}

async fn connect(url: &str) -> Result<Client> {
    let db = Database::parse(url, Some(SslMode::Disable), None).map_err(anyhow::Error::msg)?;
    let client = db.connect().await?;
    client.batch_execute("SET TimeZone = 'UTC'").await?;
    Ok(client)
}

async fn copy_rows(
    client: &Client,
    table: &str,
    mapping: &Mapping,
    rows: &[(i64, Vec<Cell>)],
) -> Result<()> {
    let mut names = vec![
        "kafka_topic".to_owned(),
        "kafka_partition".into(),
        "kafka_offset".into(),
        "kafka_headers".into(),
        "audit_hash".into(),
    ];
    let mut types = vec![Type::TEXT, Type::INT4, Type::INT8, Type::JSONB, Type::BYTEA];
    for c in mapping.columns() {
        names.push(quote_ident(&c.name));
        types.push(c.pg.pg());
    }
    let sql = format!(
        "COPY public.{} ({}) FROM STDIN BINARY",
        quote_ident(table),
        names.join(", ")
    );
    let sink = client.copy_in(&sql).await?;
    let writer = BinaryCopyInWriter::new(sink, &types);
    tokio::pin!(writer);
    for (offset, cells) in rows {
        let base = [
            Cell::Text("t".into()),
            Cell::I32(0),
            Cell::I64(*offset),
            Cell::Json(serde_json::json!([])),
            Cell::Bytes(vec![0; 32]),
        ];
        let values: Vec<&(dyn ToSql + Sync)> = base
            .iter()
            .chain(cells.iter())
            .map(|c| c as &(dyn ToSql + Sync))
            .collect();
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
    Ok(())
}

#[tokio::test]
async fn every_type_reads_back_equal_to_the_source_value() -> Result<()> {
    let db = Postgres::shared().database()?;
    let client = connect(db.url()).await?;
    assert!(install(&client, "public").await?);
    assert!(!install(&client, "public").await?, "installed once");
    let tables = Tables::new("public", "audit_${topic}", "c");
    let table = tables.ensure(&client, "test.all-types").await?;
    assert_eq!(table.name, "audit_test_all_types");

    let set = SchemaSet::parse_str(ALL_TYPES)?;
    let mapping = Mapping::new(&set, set.last_root())?;
    let added = tables
        .add_columns(&client, &table, mapping.columns(), Some(1))
        .await?
        .expect("columns added");
    table.set_columns(added);
    assert_eq!(table.column_type("dec").as_deref(), Some("numeric(10,2)"));
    assert_eq!(table.column_type("dur").as_deref(), Some("interval"));

    let samples = [sample(false), sample(true)];
    let rows: Vec<(i64, Vec<Cell>)> = samples
        .iter()
        .enumerate()
        .map(|(i, (datum, _))| (i as i64, mapping.cells(&set, datum).unwrap()))
        .collect();
    copy_rows(&client, &table.name, &mapping, &rows).await?;

    for (offset, (_, want)) in samples.iter().enumerate() {
        // As PostgreSQL prints each value.
        let list: Vec<String> = want
            .iter()
            .map(|(c, _)| format!("{}::text", quote_ident(c)))
            .collect();
        let row = client
            .query_one(
                &format!(
                    "SELECT {} FROM public.{} WHERE kafka_offset = $1",
                    list.join(", "),
                    quote_ident(&table.name)
                ),
                &[&(offset as i64)],
            )
            .await?;
        for (i, (column, expected)) in want.iter().enumerate() {
            let got: Option<String> = row.get(i);
            assert_eq!(&got, expected, "row {offset}, column {column}");
        }
        // Cell for cell, through the binary format.
        let list: Vec<String> = mapping
            .columns()
            .iter()
            .map(|c| quote_ident(&c.name))
            .collect();
        let row = client
            .query_one(
                &format!(
                    "SELECT {} FROM public.{} WHERE kafka_offset = $1",
                    list.join(", "),
                    quote_ident(&table.name)
                ),
                &[&(offset as i64)],
            )
            .await?;
        let back: Vec<Cell> = (0..mapping.columns().len()).map(|i| row.get(i)).collect();
        assert_eq!(back, rows[offset].1, "row {offset}");
    }
    Ok(())
}

#[tokio::test]
async fn columns_evolve_with_the_rows_and_type_changes_are_refused() -> Result<()> {
    let db = Postgres::shared().database()?;
    let client = connect(db.url()).await?;
    install(&client, "public").await?;
    let tables = Tables::new("public", "audit_${topic}", "c");
    let table = tables.ensure(&client, "evolving").await?;
    let v1 = SchemaSet::parse_str(
        r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int"}]}"#,
    )?;
    let v2 = SchemaSet::parse_str(
        r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int"},
            {"name":"note","type":["null","string"],"default":null}]}"#,
    )?;
    let m1 = Mapping::new(&v1, v1.last_root())?;
    let m2 = Mapping::new(&v2, v2.last_root())?;
    table.set_columns(
        tables
            .add_columns(&client, &table, m1.columns(), Some(1))
            .await?
            .unwrap(),
    );

    // The new column comes and goes with the transaction that writes the first rows of v2.
    client.batch_execute("BEGIN").await?;
    let columns = tables
        .add_columns(&client, &table, m2.columns(), Some(2))
        .await?
        .unwrap();
    assert_eq!(columns.get("note").map(String::as_str), Some("text"));
    client.batch_execute("ROLLBACK").await?;
    let cols: HashMap<String, String> =
        ursa_connector_audit::tables::read_columns(&client, "public", &table.name).await?;
    assert!(!cols.contains_key("note"), "rolled back with the rows");
    client.batch_execute("BEGIN").await?;
    let columns = tables
        .add_columns(&client, &table, m2.columns(), Some(2))
        .await?
        .unwrap();
    let mut d = Vec::new();
    encode::int(&mut d, 5);
    encode::union_index(&mut d, 1);
    encode::string(&mut d, "hi");
    copy_rows(&client, &table.name, &m2, &[(0, m2.cells(&v2, &d)?)]).await?;
    client.batch_execute("COMMIT").await?;
    table.set_columns(columns);
    let note: Option<String> = client
        .query_one(
            &format!("SELECT note FROM public.{}", quote_ident(&table.name)),
            &[],
        )
        .await?
        .get(0);
    assert_eq!(note.as_deref(), Some("hi"));
    // Rows are never rewritten: no defaults, old rows stay as they were.
    assert_eq!(m1.columns().len(), 1);

    let v3 = SchemaSet::parse_str(
        r#"{"type":"record","name":"E","fields":[{"name":"a","type":"long"}]}"#,
    )?;
    let m3 = Mapping::new(&v3, v3.last_root())?;
    let err = tables
        .add_columns(&client, &table, m3.columns(), Some(3))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("public\".\"audit_evolving\""), "{err}");
    assert!(err.contains("column \"a\" is integer"), "{err}");
    assert!(
        err.contains("writer schema 3 maps field `a` to bigint"),
        "{err}"
    );
    Ok(())
}
