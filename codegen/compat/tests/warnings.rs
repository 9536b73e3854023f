//! Warnings against the latest version: logical type changes of meaning and codegen-breaking changes, found
//! through fields matched by name or alias, nested and recursive.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::parse;
use ursa_compat::{Doc, Level, Report, check};

fn warnings(old: &str, new: &str) -> (Report, Vec<(String, String)>) {
    let o = parse("old.avsc", old);
    let n = parse("new.avsc", new);
    let r = check(Level::None, Doc::last(&n), &[Doc::last(&o)]);
    let w = r
        .warnings()
        .map(|m| (m.kind.clone(), m.location.clone()))
        .collect();
    (r, w)
}

fn field(ty: &str) -> String {
    format!(r#"{{"type":"record","name":"R","fields":[{{"name":"x","type":{ty}}}]}}"#)
}

fn kinds(old: &str, new: &str) -> Vec<(String, String)> {
    warnings(&field(old), &field(new)).1
}

fn one(kind: &str, location: &str) -> Vec<(String, String)> {
    vec![(kind.to_owned(), location.to_owned())]
}

#[test]
fn logical_type_changes() {
    let dec = |p: u32, s: u32| {
        format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#)
    };
    assert_eq!(
        kinds(&dec(9, 2), &dec(12, 2)),
        one("DECIMAL_PRECISION_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(&dec(9, 2), &dec(9, 3)),
        one("DECIMAL_SCALE_CHANGED", "/fields/0/type")
    );
    assert_eq!(kinds(&dec(9, 2), &dec(9, 2)), vec![]);
    let lt = |t: &str, l: &str| format!(r#"{{"type":"{t}","logicalType":"{l}"}}"#);
    for (a, b) in [
        ("timestamp-millis", "timestamp-micros"),
        ("timestamp-micros", "timestamp-nanos"),
        ("local-timestamp-millis", "local-timestamp-nanos"),
        ("timestamp-millis", "local-timestamp-micros"),
    ] {
        assert_eq!(
            kinds(&lt("long", a), &lt("long", b)),
            one("TIMESTAMP_UNIT_CHANGED", "/fields/0/type"),
            "{a} -> {b}"
        );
    }
    assert_eq!(
        kinds(&lt("int", "date"), &lt("int", "time-millis")),
        one("DATE_TIME_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(
            &lt("long", "timestamp-millis"),
            &lt("long", "local-timestamp-millis")
        ),
        one("LOGICAL_TYPE_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(r#""long""#, &lt("long", "timestamp-millis")),
        one("LOGICAL_TYPE_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(&lt("string", "uuid"), r#""string""#),
        one("LOGICAL_TYPE_CHANGED", "/fields/0/type")
    );
    let fixed = |l: &str| format!(r#"{{"type":"fixed","name":"D","size":8{l}}}"#);
    assert_eq!(
        kinds(
            &fixed(r#","logicalType":"decimal","precision":10,"scale":2"#),
            &fixed(r#","logicalType":"decimal","precision":10,"scale":4"#)
        ),
        one("DECIMAL_SCALE_CHANGED", "/fields/0/type")
    );
}

#[test]
fn rust_type_changes() {
    let (_, w) = warnings(&field(r#""int""#), &field(r#""long""#));
    assert_eq!(w, one("RUST_TYPE_CHANGED", "/fields/0/type"));
    let (r, _) = warnings(&field(r#""int""#), &field(r#""long""#));
    assert!(r.warnings().next().unwrap().message.contains("i32 to i64"));
    assert_eq!(
        kinds(r#""string""#, r#"["null","string"]"#),
        one("RUST_TYPE_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(r#"["null","string"]"#, r#""string""#),
        one("RUST_TYPE_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(r#"["null","int"]"#, r#"["null","long"]"#),
        one("RUST_TYPE_CHANGED", "/fields/0/type/1")
    );
    assert_eq!(
        kinds(r#"["int","string"]"#, r#"["int","string","boolean"]"#),
        one("RUST_TYPE_CHANGED", "/fields/0/type")
    );
    assert_eq!(
        kinds(
            r#"{"type":"array","items":"float"}"#,
            r#"{"type":"array","items":"double"}"#
        ),
        one("RUST_TYPE_CHANGED", "/fields/0/type/items")
    );
    assert_eq!(
        kinds(r#"["null","string"]"#, r#"["string","null"]"#),
        vec![]
    );
}

#[test]
fn renames_and_removals() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"gone","type":"int"}]}"#;
    let new =
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int","aliases":["a"]}]}"#;
    let (_, w) = warnings(old, new);
    assert_eq!(
        w,
        vec![
            ("FIELD_RENAMED".to_owned(), "/fields/0".to_owned()),
            ("FIELD_REMOVED".to_owned(), "/".to_owned())
        ]
    );
    let old = r#"{"type":"record","name":"R","namespace":"a","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]}}]}"#;
    let new = r#"{"type":"record","name":"S","namespace":"a","aliases":["R"],"fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}}]}"#;
    let (r, w) = warnings(old, new);
    assert_eq!(
        w,
        vec![
            ("TYPE_RENAMED".to_owned(), "/name".to_owned()),
            (
                "ENUM_SYMBOL_REMOVED".to_owned(),
                "/fields/0/type/symbols".to_owned()
            )
        ]
    );
    let removed = r.warnings().nth(1).unwrap();
    assert!(
        removed.message.contains("loses symbols Y, Z"),
        "{}",
        removed.message
    );
    assert_eq!(removed.file.as_deref(), Some("new.avsc"));
}

#[test]
fn nested_and_recursive_schemas_are_walked_once() {
    let list = |t: &str| {
        format!(
            r#"{{"type":"record","name":"L","fields":[{{"name":"v","type":{t}}},{{"name":"next","type":["null","L"]}},{{"name":"m","type":{{"type":"map","values":"L"}}}}]}}"#
        )
    };
    let (_, w) = warnings(&list(r#""int""#), &list(r#""long""#));
    assert_eq!(w, one("RUST_TYPE_CHANGED", "/fields/0/type"));
    let nested = |scale: u32| {
        format!(
            r#"{{"type":"record","name":"O","fields":[{{"name":"i","type":{{"type":"array","items":{{"type":"record","name":"I","fields":[{{"name":"d","type":{{"type":"bytes","logicalType":"decimal","precision":8,"scale":{scale}}}}}]}}}}}}]}}"#
        )
    };
    let (_, w) = warnings(&nested(1), &nested(2));
    assert_eq!(
        w,
        one(
            "DECIMAL_SCALE_CHANGED",
            "/fields/0/type/items/fields/0/type"
        )
    );
}
