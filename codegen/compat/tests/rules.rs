//! Data-driven tests of the reader/writer rules: the Avro specification's resolution rules and the well-known
//! cases of Avro Java's `TestSchemaCompatibility*` suites and Confluent's `AvroCompatibilityTest`, each as
//! (writer, reader, compatible?, expected (kind, JSON pointer) list).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::incompatibilities;

struct Case {
    name: &'static str,
    writer: &'static str,
    reader: &'static str,
    expect: &'static [(&'static str, &'static str)],
}

const fn ok(name: &'static str, writer: &'static str, reader: &'static str) -> Case {
    Case {
        name,
        writer,
        reader,
        expect: &[],
    }
}

const fn bad(
    name: &'static str,
    writer: &'static str,
    reader: &'static str,
    expect: &'static [(&'static str, &'static str)],
) -> Case {
    Case {
        name,
        writer,
        reader,
        expect,
    }
}

const TM: &str = "TYPE_MISMATCH";
const MUB: &str = "MISSING_UNION_BRANCH";
const MISSING: &str = "READER_FIELD_MISSING_DEFAULT_VALUE";
const NAME: &str = "NAME_MISMATCH";
const SIZE: &str = "FIXED_SIZE_MISMATCH";
const SYMBOLS: &str = "MISSING_ENUM_SYMBOLS";

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The promotions a reader accepts: (writer, reader).
const PROMOTIONS: [(&str, &str); 8] = [
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
];

#[test]
fn primitives_read_themselves_and_their_promotions_only() {
    for w in PRIMITIVES {
        for r in PRIMITIVES {
            let found = incompatibilities(&format!("\"{r}\""), &format!("\"{w}\""));
            let expected = w == r || PROMOTIONS.contains(&(w, r));
            assert_eq!(
                found.is_empty(),
                expected,
                "writer {w}, reader {r}: {found:?}"
            );
            if !expected {
                assert_eq!(found.len(), 1);
                assert_eq!(found[0].kind, TM);
                assert_eq!(found[0].location, "/");
                assert_eq!(
                    found[0].detail,
                    format!(
                        "reader type: {} not compatible with writer type: {}",
                        r.to_uppercase(),
                        w.to_uppercase()
                    )
                );
            }
        }
    }
}

fn rec(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#)
}

const CASES: &[Case] = &[
    // Records: fields added, removed, changed.
    ok(
        "same record",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
    ),
    ok(
        "reader adds a field with a default",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#,
    ),
    ok(
        "reader adds an optional field with default null",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}"#,
    ),
    bad(
        "reader adds a field without a default",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        &[(MISSING, "/fields/1")],
    ),
    bad(
        "reader adds an optional field without a default",
        r#"{"type":"record","name":"R","fields":[]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":["null","string"]}]}"#,
        &[(MISSING, "/fields/0")],
    ),
    ok(
        "writer-only fields are skipped",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string"}]}"#,
    ),
    ok(
        "empty reader record reads anything of its name",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[]}"#,
    ),
    bad(
        "field type changed",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        &[(TM, "/fields/1/type")],
    ),
    ok(
        "field promoted int to long",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#,
    ),
    bad(
        "field demoted long to int",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        &[(TM, "/fields/0/type")],
    ),
    ok(
        "field order is irrelevant",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string"},{"name":"a","type":"int"}]}"#,
    ),
    bad(
        "every incompatibility is reported",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"long"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int"},{"name":"c","type":"int"}]}"#,
        &[
            (TM, "/fields/0/type"),
            (TM, "/fields/1/type"),
            (MISSING, "/fields/2"),
        ],
    ),
    // Field renames and aliases.
    bad(
        "field renamed without alias",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"}]}"#,
        &[(MISSING, "/fields/0")],
    ),
    ok(
        "field renamed with alias",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int","aliases":["a"]}]}"#,
    ),
    bad(
        "field renamed with alias and type changed",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"boolean","aliases":["a"]}]}"#,
        &[(TM, "/fields/0/type")],
    ),
    bad(
        "writer field aliases are not used",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int","aliases":["b"]}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int"}]}"#,
        &[(MISSING, "/fields/0")],
    ),
    bad(
        "reader field matching two writer fields (Java throws)",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":"int","aliases":["a"]}]}"#,
        &[("READER_FIELD_MATCHES_MULTIPLE_WRITER_FIELDS", "/fields/0")],
    ),
    // Record names and aliases (Java's schemaNameEquals).
    bad(
        "record renamed",
        r#"{"type":"record","name":"A","fields":[]}"#,
        r#"{"type":"record","name":"B","fields":[]}"#,
        &[(NAME, "/name")],
    ),
    ok(
        "record renamed with a reader alias",
        r#"{"type":"record","name":"A","fields":[]}"#,
        r#"{"type":"record","name":"B","aliases":["A"],"fields":[]}"#,
    ),
    bad(
        "writer aliases are not used",
        r#"{"type":"record","name":"A","aliases":["B"],"fields":[]}"#,
        r#"{"type":"record","name":"B","fields":[]}"#,
        &[(NAME, "/name")],
    ),
    ok(
        "namespace change keeps the unqualified name",
        r#"{"type":"record","name":"R","namespace":"a.b","fields":[]}"#,
        r#"{"type":"record","name":"R","namespace":"c.d","fields":[]}"#,
    ),
    ok(
        "qualified reader alias matches the writer's full name",
        r#"{"type":"record","name":"A","namespace":"x","fields":[]}"#,
        r#"{"type":"record","name":"B","namespace":"y","aliases":["x.A"],"fields":[]}"#,
    ),
    ok(
        "unqualified reader alias is qualified with the reader's namespace",
        r#"{"type":"record","name":"A","namespace":"x","fields":[]}"#,
        r#"{"type":"record","name":"B","namespace":"x","aliases":["A"],"fields":[]}"#,
    ),
    bad(
        "unqualified reader alias in another namespace",
        r#"{"type":"record","name":"A","namespace":"x","fields":[]}"#,
        r#"{"type":"record","name":"B","namespace":"y","aliases":["A"],"fields":[]}"#,
        &[(NAME, "/name")],
    ),
    bad(
        "reader alias in a namespace against a writer without one",
        r#"{"type":"record","name":"A","fields":[]}"#,
        r#"{"type":"record","name":"B","namespace":"y","aliases":["A"],"fields":[]}"#,
        &[(NAME, "/name")],
    ),
    bad(
        "record renamed and fields missing",
        r#"{"type":"record","name":"A","fields":[]}"#,
        r#"{"type":"record","name":"B","fields":[{"name":"x","type":"int"}]}"#,
        &[(NAME, "/name"), (MISSING, "/fields/0")],
    ),
    // Enums.
    ok(
        "enum gains a symbol in the reader",
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#,
    ),
    bad(
        "writer enum has symbols the reader lacks",
        r#"{"type":"enum","name":"E","symbols":["A","B","C","D"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        &[(SYMBOLS, "/symbols")],
    ),
    ok(
        "reader enum default covers unknown symbols",
        r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#,
        r#"{"type":"enum","name":"E","symbols":["A","B"],"default":"A"}"#,
    ),
    bad(
        "writer enum default does not help the reader",
        r#"{"type":"enum","name":"E","symbols":["A","B","C"],"default":"A"}"#,
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        &[(SYMBOLS, "/symbols")],
    ),
    ok(
        "enum symbol order is irrelevant",
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"enum","name":"E","symbols":["B","A"]}"#,
    ),
    bad(
        "enum renamed",
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        r#"{"type":"enum","name":"F","symbols":["A"]}"#,
        &[(NAME, "/name")],
    ),
    bad(
        "enum renamed and symbols missing",
        r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
        r#"{"type":"enum","name":"F","symbols":["A"]}"#,
        &[(NAME, "/name"), (SYMBOLS, "/symbols")],
    ),
    bad(
        "enum field without default missing in the writer (Java checks the enum against the record)",
        r#"{"type":"record","name":"R","fields":[]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A"],"default":"A"}}]}"#,
        &[(TM, "/fields/0/type")],
    ),
    bad(
        "enum to string",
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        r#""string""#,
        &[(TM, "/")],
    ),
    bad(
        "string to enum",
        r#""string""#,
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        &[(TM, "/")],
    ),
    // Fixed.
    ok(
        "same fixed",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"F","size":4}"#,
    ),
    bad(
        "fixed size changed",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"F","size":8}"#,
        &[(SIZE, "/size")],
    ),
    bad(
        "fixed renamed",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"G","size":4}"#,
        &[(NAME, "/name")],
    ),
    bad(
        "fixed renamed and resized",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"G","size":5}"#,
        &[(NAME, "/name"), (SIZE, "/size")],
    ),
    ok(
        "fixed renamed with alias",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"fixed","name":"G","aliases":["F"],"size":4}"#,
    ),
    bad(
        "fixed to bytes",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#""bytes""#,
        &[(TM, "/")],
    ),
    bad(
        "bytes to fixed",
        r#""bytes""#,
        r#"{"type":"fixed","name":"F","size":4}"#,
        &[(TM, "/")],
    ),
    bad(
        "fixed to enum",
        r#"{"type":"fixed","name":"F","size":4}"#,
        r#"{"type":"enum","name":"F","symbols":["A"]}"#,
        &[(TM, "/")],
    ),
    // Unions.
    ok("same union", r#"["null","int"]"#, r#"["null","int"]"#),
    ok(
        "reader union reorders branches",
        r#"["null","int"]"#,
        r#"["int","null"]"#,
    ),
    ok(
        "reader union adds a branch",
        r#"["null","int"]"#,
        r#"["null","int","string"]"#,
    ),
    bad(
        "reader union drops a branch",
        r#"["null","int","string"]"#,
        r#"["null","int"]"#,
        &[(MUB, "/2")],
    ),
    bad(
        "reader union drops two branches",
        r#"["null","int","string","boolean"]"#,
        r#"["int"]"#,
        &[(MUB, "/0"), (MUB, "/2"), (MUB, "/3")],
    ),
    ok(
        "reader union promotes a branch",
        r#"["null","int"]"#,
        r#"["null","long"]"#,
    ),
    ok(
        "non-union writer read by a union",
        r#""int""#,
        r#"["null","int"]"#,
    ),
    ok(
        "non-union writer read by a union through promotion",
        r#""int""#,
        r#"["null","double"]"#,
    ),
    bad(
        "non-union writer no union branch reads",
        r#""int""#,
        r#"["null","string"]"#,
        &[(MUB, "/")],
    ),
    bad(
        "union writer read by a non-union: the null branch fails",
        r#"["null","int"]"#,
        r#""int""#,
        &[(TM, "/0")],
    ),
    ok(
        "single-branch union writer read by its branch",
        r#"["int"]"#,
        r#""long""#,
    ),
    bad(
        "union writer, each failing branch reported",
        r#"["int","string","boolean"]"#,
        r#""long""#,
        &[(TM, "/1"), (TM, "/2")],
    ),
    ok(
        "record to optional record",
        r#"{"type":"record","name":"R","fields":[]}"#,
        r#"["null",{"type":"record","name":"R","fields":[]}]"#,
    ),
    bad(
        "optional record to record",
        r#"["null",{"type":"record","name":"R","fields":[]}]"#,
        r#"{"type":"record","name":"R","fields":[]}"#,
        &[(TM, "/0")],
    ),
    bad(
        "union branch records differ",
        r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}]"#,
        r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}]"#,
        &[(MUB, "/1")],
    ),
    ok(
        "union branch record evolves compatibly",
        r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}]"#,
        r#"["null",{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"b","type":"int","default":0}]}]"#,
    ),
    ok(
        "enum in union gains a symbol",
        r#"["null",{"type":"enum","name":"E","symbols":["A"]}]"#,
        r#"["null",{"type":"enum","name":"E","symbols":["A","B"]}]"#,
    ),
    // Arrays and maps.
    ok(
        "array items promoted",
        r#"{"type":"array","items":"int"}"#,
        r#"{"type":"array","items":"long"}"#,
    ),
    bad(
        "array items demoted",
        r#"{"type":"array","items":"long"}"#,
        r#"{"type":"array","items":"int"}"#,
        &[(TM, "/items")],
    ),
    ok(
        "map values promoted",
        r#"{"type":"map","values":"float"}"#,
        r#"{"type":"map","values":"double"}"#,
    ),
    bad(
        "map values changed",
        r#"{"type":"map","values":"string"}"#,
        r#"{"type":"map","values":"int"}"#,
        &[(TM, "/values")],
    ),
    bad(
        "array to map",
        r#"{"type":"array","items":"int"}"#,
        r#"{"type":"map","values":"int"}"#,
        &[(TM, "/")],
    ),
    bad(
        "map to array",
        r#"{"type":"map","values":"int"}"#,
        r#"{"type":"array","items":"int"}"#,
        &[(TM, "/")],
    ),
    bad(
        "array of records missing a field",
        r#"{"type":"array","items":{"type":"record","name":"R","fields":[]}}"#,
        r#"{"type":"array","items":{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}}"#,
        &[(MISSING, "/items/fields/0")],
    ),
    ok(
        "nested arrays promoted",
        r#"{"type":"array","items":{"type":"array","items":"int"}}"#,
        r#"{"type":"array","items":{"type":"array","items":"double"}}"#,
    ),
    // Nested records.
    bad(
        "nested record field missing",
        r#"{"type":"record","name":"O","fields":[{"name":"i","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"}]}}]}"#,
        r#"{"type":"record","name":"O","fields":[{"name":"i","type":{"type":"record","name":"I","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}}]}"#,
        &[(MISSING, "/fields/0/type/fields/1")],
    ),
    bad(
        "nested record renamed",
        r#"{"type":"record","name":"O","fields":[{"name":"i","type":{"type":"record","name":"I","fields":[]}}]}"#,
        r#"{"type":"record","name":"O","fields":[{"name":"i","type":{"type":"record","name":"J","fields":[]}}]}"#,
        &[(NAME, "/fields/0/type/name")],
    ),
    bad(
        "map of enums losing a symbol",
        r#"{"type":"record","name":"O","fields":[{"name":"m","type":{"type":"map","values":{"type":"enum","name":"E","symbols":["A","B"]}}}]}"#,
        r#"{"type":"record","name":"O","fields":[{"name":"m","type":{"type":"map","values":{"type":"enum","name":"E","symbols":["A"]}}}]}"#,
        &[(SYMBOLS, "/fields/0/type/values/symbols")],
    ),
    // Recursive schemas terminate.
    ok(
        "recursive list identical",
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#,
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#,
    ),
    ok(
        "recursive list promoted",
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#,
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"]}]}"#,
    ),
    bad(
        "recursive list gains a required field",
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]}]}"#,
        r#"{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"]},{"name":"w","type":"int"}]}"#,
        &[(MISSING, "/fields/2")],
    ),
    ok(
        "mutually recursive records",
        r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]}]}]}]}"#,
        r#"{"type":"record","name":"A","fields":[{"name":"b","type":["null",{"type":"record","name":"B","fields":[{"name":"a","type":["null","A"]},{"name":"x","type":"int","default":1}]}]}]}"#,
    ),
    ok(
        "recursive tree through arrays",
        r#"{"type":"record","name":"T","fields":[{"name":"kids","type":{"type":"array","items":"T"}}]}"#,
        r#"{"type":"record","name":"T","fields":[{"name":"kids","type":{"type":"array","items":"T"}}]}"#,
    ),
    // What never matters.
    ok(
        "logical types are ignored",
        r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}}]}"#,
        r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":4}}]}"#,
    ),
    ok(
        "docs, order and custom attributes are ignored",
        r#"{"type":"record","name":"R","doc":"x","fields":[{"name":"a","type":"int","order":"descending","pii":true}]}"#,
        r#"{"type":"record","name":"R","doc":"y","fields":[{"name":"a","type":"int","doc":"z","order":"ignore"}]}"#,
    ),
];

#[test]
fn rules_table() {
    let mut failures = Vec::new();
    for c in CASES {
        let found = incompatibilities(c.reader, c.writer);
        let got: Vec<(&str, &str)> = found
            .iter()
            .map(|m| (m.kind.as_str(), m.location.as_str()))
            .collect();
        if got != c.expect {
            failures.push(format!(
                "{}: expected {:?}, got {got:?}\n  {found:#?}",
                c.name, c.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn promotions_inside_records_both_ways() {
    for (w, r) in PROMOTIONS {
        let writer = rec(&format!(r#"{{"name":"a","type":"{w}"}}"#));
        let reader = rec(&format!(r#"{{"name":"a","type":"{r}"}}"#));
        assert!(incompatibilities(&reader, &writer).is_empty(), "{w} -> {r}");
        let back = incompatibilities(&writer, &reader);
        let reversible = PROMOTIONS.contains(&(r, w));
        assert_eq!(back.is_empty(), reversible, "{r} -> {w}: {back:?}");
    }
}

#[test]
fn java_messages_are_kept_as_details() {
    let m = incompatibilities(
        r#"{"type":"enum","name":"E","symbols":["A"]}"#,
        r#"{"type":"enum","name":"E","symbols":["D","A","C"]}"#,
    );
    assert_eq!(m[0].detail, "[C, D]");
    let m = incompatibilities(
        r#"{"type":"fixed","name":"F","size":8}"#,
        r#"{"type":"fixed","name":"F","size":4}"#,
    );
    assert_eq!(m[0].detail, "expected: 4, found: 8");
    let m = incompatibilities(
        r#"{"type":"record","name":"B","namespace":"n","fields":[]}"#,
        r#"{"type":"record","name":"A","namespace":"n","fields":[]}"#,
    );
    assert_eq!(m[0].detail, "expected: n.A");
    let m = incompatibilities(r#"["null","int"]"#, r#"["null","int","string"]"#);
    assert_eq!(m[0].detail, "reader union lacking writer type: STRING");
    let m = incompatibilities(
        &rec(r#"{"name":"age","type":"int"}"#),
        &rec(r#"{"name":"x","type":"int"}"#),
    );
    assert_eq!(m[0].detail, "age");
    assert_eq!(
        m[0].message,
        "reader field 'age' (at /fields/0) has no default value and is missing in the writer schema"
    );
}

#[test]
fn positions_point_into_the_reader() {
    let reader = "{\n  \"type\": \"record\", \"name\": \"R\",\n  \"fields\": [\n    {\"name\": \"a\", \"type\": \"int\"},\n    {\"name\": \"b\", \"type\": \"string\"}\n  ]\n}";
    let found = incompatibilities(reader, &rec(r#"{"name":"a","type":"int"}"#));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].file.as_deref(), Some("reader.avsc"));
    assert_eq!((found[0].line, found[0].column), (Some(5), Some(6)));
    let found = incompatibilities(
        "{\"type\": \"fixed\",\n \"name\": \"F\", \"size\": 8}",
        r#"{"type":"fixed","name":"F","size":4}"#,
    );
    assert_eq!((found[0].line, found[0].column), (Some(2), Some(15)));
}
