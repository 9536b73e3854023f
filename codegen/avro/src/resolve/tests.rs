//! Tests of schema resolution: every rule, checked on exact reader bytes built by hand.

use super::Resolver;
use crate::Error;
use crate::schema::SchemaSet;

fn resolver(writer: &str, reader: &str) -> Result<Resolver, Error> {
    let w = SchemaSet::parse_str(writer).unwrap();
    let r = SchemaSet::parse_str(reader).unwrap();
    Resolver::new(&w, w.last_root(), &r, r.last_root())
}

fn run(writer: &str, reader: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
    let plan = resolver(writer, reader)?;
    let mut out = Vec::new();
    plan.transcode(input, &mut out)?;
    Ok(out)
}

fn ok(writer: &str, reader: &str, input: &[u8]) -> Vec<u8> {
    run(writer, reader, input).unwrap()
}

fn plan_error(writer: &str, reader: &str) -> String {
    match resolver(writer, reader) {
        Err(Error::Resolution(msg)) => msg,
        other => panic!("expected a resolution error, got {other:?}"),
    }
}

use crate::binary::builder::B;

fn record(name: &str, fields: &str) -> String {
    format!(r#"{{"type":"record","name":"{name}","fields":[{fields}]}}"#)
}

// ---- primitives and promotions -------------------------------------------------------------------------------

#[test]
fn identical_primitive_is_identity() {
    let plan = resolver(r#""long""#, r#""long""#).unwrap();
    assert!(plan.is_identity());
    let input = B::new().long(-77).done();
    let mut out = vec![];
    plan.transcode(&input, &mut out).unwrap();
    assert_eq!(out, input);
    assert!(!resolver(r#""int""#, r#""long""#).unwrap().is_identity());
}

#[test]
fn promotions() {
    let i = B::new().int(-123_456).done();
    assert_eq!(
        ok(r#""int""#, r#""long""#, &i),
        B::new().long(-123_456).done()
    );
    assert_eq!(
        ok(r#""int""#, r#""float""#, &i),
        B::new().float(-123_456.0).done()
    );
    assert_eq!(
        ok(r#""int""#, r#""double""#, &i),
        B::new().double(-123_456.0).done()
    );
    let l = B::new().long(1 << 40).done();
    assert_eq!(
        ok(r#""long""#, r#""float""#, &l),
        B::new().float((1u64 << 40) as f32).done()
    );
    assert_eq!(
        ok(r#""long""#, r#""double""#, &l),
        B::new().double((1u64 << 40) as f64).done()
    );
    let f = B::new().float(0.1).done();
    assert_eq!(
        ok(r#""float""#, r#""double""#, &f),
        B::new().double(f64::from(0.1f32)).done()
    );
    let s = B::new().str("héllo").done();
    assert_eq!(ok(r#""string""#, r#""bytes""#, &s), s);
    assert_eq!(ok(r#""bytes""#, r#""string""#, &s), s);
}

#[test]
fn int_promotion_rejects_out_of_range_int() {
    let big = B::new().long(1 << 40).done();
    assert!(matches!(
        run(r#""int""#, r#""long""#, &big),
        Err(Error::IntOutOfRange { .. })
    ));
}

#[test]
fn bytes_to_string_checks_utf8() {
    let bad = B::new().bytes(&[0x66, 0xff, 0xfe]).done();
    assert!(matches!(
        run(r#""bytes""#, r#""string""#, &bad),
        Err(Error::InvalidUtf8 { .. })
    ));
    // string → bytes needs no check (and bytes → bytes copies anything).
    assert_eq!(ok(r#""bytes""#, r#""bytes""#, &bad), bad);
}

#[test]
fn no_demotion_or_unrelated_types() {
    for (w, r) in [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("int", "string"),
        ("string", "int"),
        ("boolean", "int"),
        ("null", "boolean"),
    ] {
        let msg = plan_error(&format!("\"{w}\""), &format!("\"{r}\""));
        assert_eq!(msg, format!("writer {w} cannot be read as reader {r}"));
    }
    let msg = plan_error(
        &record("R", r#"{"name":"a","type":"int"}"#),
        r#"{"type":"enum","name":"R","symbols":["A"]}"#,
    );
    assert!(
        msg.contains("record `R`") && msg.contains("enum `R`"),
        "{msg}"
    );
}

#[test]
fn logical_types_are_ignored() {
    let ts = r#"{"type":"long","logicalType":"timestamp-millis"}"#;
    assert!(resolver(ts, r#""long""#).unwrap().is_identity());
    let date = r#"{"type":"int","logicalType":"date"}"#;
    let input = B::new().int(19_000).done();
    assert_eq!(ok(date, r#""long""#, &input), B::new().long(19_000).done());
    assert_eq!(ok(date, ts, &input), B::new().long(19_000).done());
    let dec =
        r#"{"type":"fixed","name":"D","size":4,"logicalType":"decimal","precision":6,"scale":2}"#;
    assert!(
        resolver(dec, r#"{"type":"fixed","name":"D","size":4}"#)
            .unwrap()
            .is_identity()
    );
    let uuid = r#"{"type":"string","logicalType":"uuid"}"#;
    let u = B::new().str("6f1c2bd9-1cf4-4b61-a5a2-5a0a3f1e3c11").done();
    assert_eq!(ok(uuid, r#""bytes""#, &u), u);
}

#[test]
fn decimals_resolve_only_with_the_same_precision_and_scale() {
    // Avro 1.12: two decimals match only if their scales and precisions match; otherwise the unscaled bytes
    // would be read with another scale, changing the value (12.34 at scale 2 is 1.234 at scale 3).
    let dec = |p: u32, s: u32| {
        format!(r#"{{"type":"bytes","logicalType":"decimal","precision":{p},"scale":{s}}}"#)
    };
    let fixed = |p: u32, s: u32| {
        format!(
            r#"{{"type":"fixed","name":"D","size":8,"logicalType":"decimal","precision":{p},"scale":{s}}}"#
        )
    };
    assert_eq!(
        plan_error(&dec(10, 2), &dec(10, 3)),
        "writer decimal(10,2) cannot be read as reader decimal(10,3): decimals resolve only with the same \
         precision and scale"
    );
    assert!(plan_error(&dec(10, 2), &dec(12, 2)).contains("decimal(12,2)"));
    assert!(plan_error(&fixed(10, 2), &fixed(10, 3)).contains("reader decimal(10,3)"));
    // Anywhere in the schema, including where the rest is identical (and would be copied verbatim).
    let in_record = |t: &str| {
        record(
            "R",
            &format!(r#"{{"name":"price","type":{t}}},{{"name":"n","type":"int"}}"#),
        )
    };
    let msg = plan_error(&in_record(&dec(10, 2)), &in_record(&dec(10, 3)));
    assert!(msg.contains("field `price` of record `R`"), "{msg}");
    // In a union, like any branch that does not resolve, it fails when such a value occurs.
    let arrays = |t: &str| format!(r#"{{"type":"array","items":["null",{t}]}}"#);
    let plan = resolver(&arrays(&fixed(10, 2)), &arrays(&fixed(10, 3))).unwrap();
    assert!(!plan.is_identity());
    let nulls = B::new().long(1).long(0).long(0).done();
    let mut out = Vec::new();
    plan.transcode(&nulls, &mut out).unwrap();
    assert_eq!(out, nulls);
    let one = B::new().long(1).long(1).raw(&[0; 8]).long(0).done();
    let err = plan.transcode(&one, &mut out).unwrap_err().to_string();
    assert!(err.contains("reader decimal(10,3)"), "{err}");
    // The same decimal, or a decimal and plain bytes (the logical type is then ignored), resolve.
    assert!(resolver(&dec(10, 2), &dec(10, 2)).unwrap().is_identity());
    assert!(
        resolver(&in_record(&fixed(9, 4)), &in_record(&fixed(9, 4)))
            .unwrap()
            .is_identity()
    );
    let input = B::new().bytes(&[0x04, 0xd2]).done();
    assert_eq!(ok(&dec(10, 2), r#""bytes""#, &input), input);
    assert_eq!(ok(r#""bytes""#, &dec(10, 2), &input), input);
    assert_eq!(ok(r#""string""#, &dec(10, 2), &input), input);
}

// ---- records ---------------------------------------------------------------------------------------------------

#[test]
fn added_fields_take_defaults_of_every_kind() {
    let writer = record("R", r#"{"name":"id","type":"int"}"#);
    let reader = record(
        "R",
        r#"{"name":"id","type":"int"},
        {"name":"i","type":"int","default":-3},
        {"name":"l","type":"long","default":1234567890123},
        {"name":"f","type":"float","default":1.5},
        {"name":"d","type":"double","default":-2.25},
        {"name":"b","type":"boolean","default":true},
        {"name":"s","type":"string","default":"héllo"},
        {"name":"by","type":"bytes","default":"\u0000\u00ffA"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y","Z"]},"default":"Z"},
        {"name":"fx","type":{"type":"fixed","name":"F","size":3},"default":"ab\u00ff"},
        {"name":"a","type":{"type":"array","items":"int"},"default":[1,2]},
        {"name":"ea","type":{"type":"array","items":"int"},"default":[]},
        {"name":"m","type":{"type":"map","values":"long"},"default":{"k":7}},
        {"name":"n","type":"null","default":null},
        {"name":"u","type":["null","string"],"default":null},
        {"name":"u2","type":["string","null"],"default":"x"},
        {"name":"u3","type":[{"type":"record","name":"P","fields":[{"name":"k","type":"int"}]},"null"],"default":{"k":1}},
        {"name":"rec","type":{"type":"record","name":"Inner","fields":[
            {"name":"p","type":"int"},
            {"name":"q","type":"string","default":"dq"},
            {"name":"deep","type":{"type":"record","name":"Deep","fields":[{"name":"z","type":"long","default":9}]},"default":{}}
        ]},"default":{"p":5}}"#,
    );
    let out = ok(&writer, &reader, &B::new().int(42).done());
    let expected = B::new()
        .int(42)
        .int(-3)
        .long(1_234_567_890_123)
        .float(1.5)
        .double(-2.25)
        .boolean(true)
        .str("héllo")
        .bytes(&[0, 0xff, b'A'])
        .int(2)
        .raw(b"ab\xff")
        .long(2)
        .int(1)
        .int(2)
        .raw(&[0])
        .raw(&[0])
        .long(1)
        .str("k")
        .long(7)
        .raw(&[0])
        .long(0)
        .long(0)
        .str("x")
        .long(0)
        .int(1)
        .int(5)
        .str("dq")
        .long(9)
        .done();
    assert_eq!(out, expected);
}

#[test]
fn union_defaults_take_the_first_branch_they_are_a_value_of() {
    // Avro 1.12: a union default may match any branch; it is written as the first branch it is valid for.
    let writer = record("R", r#"{"name":"id","type":"int"}"#);
    let reader = record(
        "R",
        r#"{"name":"id","type":"int"},
        {"name":"s","type":["null","string"],"default":"x"},
        {"name":"big","type":["int","long"],"default":5000000000},
        {"name":"frac","type":["long","double"],"default":1.5},
        {"name":"rec","type":["null",{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]}],"default":{"x":3}},
        {"name":"sym","type":["null",{"type":"enum","name":"E","symbols":["A"]},"string"],"default":"zz"},
        {"name":"first","type":["string","bytes"],"default":"ab"}"#,
    );
    let out = ok(&writer, &reader, &B::new().int(7).done());
    let expected = B::new()
        .int(7)
        .long(1)
        .str("x")
        .long(1)
        .long(5_000_000_000)
        .long(1)
        .double(1.5)
        .long(1)
        .int(3)
        .long(2)
        .str("zz")
        .long(0)
        .str("ab")
        .done();
    assert_eq!(out, expected);
}

#[test]
fn suspicious_reader_defaults_fail_the_plan_when_needed() {
    // A default Avro Java's parser accepts but that is no value of its type (see `SuspiciousDefault`) cannot
    // be written for a missing field: the plan says so. (Java pads or truncates a fixed, writes `?` for
    // characters beyond U+00FF and fails on an unknown symbol when reading.)
    let writer = record("R", r#"{"name":"id","type":"int"}"#);
    for (field, problem) in [
        (
            r#"{"name":"f","type":{"type":"fixed","name":"F","size":4},"default":"ab"}"#,
            "a string of 4 bytes",
        ),
        (
            r#"{"name":"b","type":"bytes","default":"\u0100"}"#,
            "a string of bytes",
        ),
        (
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]},"default":"B"}"#,
            "a symbol of enum `E`",
        ),
    ] {
        let reader = record("R", &format!(r#"{{"name":"id","type":"int"}},{field}"#));
        let msg = plan_error(&writer, &reader);
        assert!(msg.contains(problem), "{field}: {msg}");
        // Not needed when the writer has the field.
        assert!(resolver(&reader, &reader).unwrap().is_identity());
    }
}

#[test]
fn added_field_without_default_is_an_error() {
    let writer = record("R", r#"{"name":"a","type":"int"}"#);
    let reader = r#"{"type":"record","name":"R","namespace":"ns","fields":[
        {"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
    let err = resolver(&writer, reader).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot resolve writer schema against reader schema: reader field `b` of record `ns.R` has no default \
         and the writer's record `R` has no such field"
    );
}

#[test]
fn writer_only_fields_of_every_type_are_skipped() {
    let writer = record(
        "R",
        r#"{"name":"n","type":"null"},
        {"name":"b","type":"boolean"},
        {"name":"i","type":"int"},
        {"name":"l","type":"long"},
        {"name":"f","type":"float"},
        {"name":"d","type":"double"},
        {"name":"by","type":"bytes"},
        {"name":"s","type":"string"},
        {"name":"fx","type":{"type":"fixed","name":"F","size":4}},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},
        {"name":"u","type":["null","string","F"]},
        {"name":"ma","type":{"type":"map","values":{"type":"array","items":"long"}}},
        {"name":"list","type":{"type":"record","name":"Node","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}},
        {"name":"keep","type":"string"},
        {"name":"after","type":{"type":"array","items":"Node"}}"#,
    );
    let reader = record("R", r#"{"name":"keep","type":"string"}"#);

    // A map of arrays: a negative-count map block holding an array with a negative-count block and a
    // positive one, then a positive map block with an empty array.
    let items = B::new().long(1).long(2).done();
    let array_a = B::new()
        .long(-2)
        .long(items.len() as i64)
        .raw(&items)
        .long(1)
        .long(3)
        .raw(&[0])
        .done();
    let entry = B::new().str("a").raw(&array_a).done();
    let map = B::new()
        .long(-1)
        .long(entry.len() as i64)
        .raw(&entry)
        .long(1)
        .str("b")
        .raw(&[0])
        .raw(&[0])
        .done();

    let input = B::new()
        .boolean(true)
        .int(-5)
        .long(1 << 50)
        .float(1.0)
        .double(2.0)
        .bytes(&[1, 2, 3])
        .str("skip me")
        .raw(&[9, 9, 9, 9])
        .int(1)
        .long(2)
        .raw(&[7, 7, 7, 7])
        .raw(&map)
        .int(1)
        .long(1)
        .int(2)
        .long(0)
        .str("kept")
        .long(1)
        .int(3)
        .long(0)
        .raw(&[0])
        .done();
    assert_eq!(ok(&writer, &reader, &input), B::new().str("kept").done());
}

#[test]
fn fields_are_written_in_reader_order() {
    let writer = record(
        "R",
        r#"{"name":"a","type":"int"},{"name":"b","type":"string"},{"name":"c","type":"long"}"#,
    );
    let reader = record(
        "R",
        r#"{"name":"c","type":"long"},{"name":"a","type":"long"},{"name":"b","type":"string"}"#,
    );
    let plan = resolver(&writer, &reader).unwrap();
    let input = B::new().int(1).str("two").long(3).done();
    let expected = B::new().long(3).long(1).str("two").done();
    // Twice: the second run reuses the scratch space of the first.
    for _ in 0..2 {
        let mut out = vec![0xaa];
        plan.transcode(&input, &mut out).unwrap();
        assert_eq!(out[1..], expected[..]);
    }
}

#[test]
fn nested_reordering_with_defaults_and_skips() {
    let writer = record(
        "Outer",
        r#"{"name":"x","type":"int"},
        {"name":"gone","type":{"type":"array","items":"string"}},
        {"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"p","type":"int"},{"name":"q","type":"string"}]}},
        {"name":"y","type":"string"}"#,
    );
    let reader = record(
        "Outer",
        r#"{"name":"y","type":"string"},
        {"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"q","type":"string"},{"name":"p","type":"int"}]}},
        {"name":"d1","type":"int","default":7},
        {"name":"x","type":"int"},
        {"name":"d2","type":"string","default":"z"}"#,
    );
    let input = B::new()
        .int(1)
        .long(1)
        .str("g")
        .long(0)
        .int(2)
        .str("q")
        .str("y")
        .done();
    let expected = B::new()
        .str("y")
        .str("q")
        .int(2)
        .int(7)
        .int(1)
        .str("z")
        .done();
    assert_eq!(ok(&writer, &reader, &input), expected);
}

#[test]
fn renamed_field_and_record_via_reader_aliases() {
    let writer = r#"{"type":"record","name":"Person","namespace":"old","fields":[
        {"name":"full_name","type":"string"},{"name":"age","type":"int"}]}"#;
    let reader = r#"{"type":"record","name":"Human","namespace":"new","aliases":["old.Person"],"fields":[
        {"name":"age","type":"long"},{"name":"name","type":"string","aliases":["full_name"]}]}"#;
    let input = B::new().str("Ada").int(36).done();
    assert_eq!(
        ok(writer, reader, &input),
        B::new().long(36).str("Ada").done()
    );
    // Without the record alias the names do not match.
    let unaliased = reader.replace(r#""aliases":["old.Person"],"#, "");
    let msg = plan_error(writer, &unaliased);
    assert!(msg.contains("names differ"), "{msg}");
    // An alias is a full name: `old.Person` is not `other.Person`.
    let moved = writer.replace(r#""namespace":"old""#, r#""namespace":"other""#);
    let msg = plan_error(&moved, reader);
    assert!(msg.contains("names differ"), "{msg}");
    // Primary names are compared unqualified, as Avro Java's `schemaNameEquals` does.
    let same_name = moved.replace(r#""name":"Person""#, r#""name":"Human""#);
    assert_eq!(
        ok(&same_name, reader, &input),
        B::new().long(36).str("Ada").done()
    );
}

#[test]
fn named_type_aliases_are_full_names() {
    // As in Avro Java (`Schema.applyAliases`, `SchemaCompatibility.schemaNameEquals`) and the compatibility
    // checker: a reader alias matches the writer's full name; an unqualified alias is in the reader's namespace.
    let named = |kind: &str, full: &str, aliases: &str| {
        let head = format!(r#""name":"{full}","aliases":[{aliases}]"#);
        match kind {
            "enum" => format!(r#"{{"type":"enum",{head},"symbols":["A"]}}"#),
            "fixed" => format!(r#"{{"type":"fixed",{head},"size":2}}"#),
            _ => format!(r#"{{"type":"record",{head},"fields":[{{"name":"x","type":"int"}}]}}"#),
        }
    };
    let writer = |kind: &str, full: &str| named(kind, full, "");
    let reader = |kind: &str, alias: &str| named(kind, "new.Thing", &format!(r#""{alias}""#));
    for kind in ["record", "enum", "fixed"] {
        let r = reader(kind, "old.Thing2");
        assert!(
            resolver(&writer(kind, "old.Thing2"), &r).is_ok(),
            "{kind}: {r}"
        );
        let msg = plan_error(&writer(kind, "other.Thing2"), &r);
        assert!(msg.contains("names differ"), "{kind}: {msg}");
        // An unqualified alias is in the reader's namespace.
        let r = reader(kind, "Thing2");
        assert!(
            resolver(&writer(kind, "new.Thing2"), &r).is_ok(),
            "{kind}: {r}"
        );
        let msg = plan_error(&writer(kind, "old.Thing2"), &r);
        assert!(msg.contains("names differ"), "{kind}: {msg}");
    }
    // In a union, an alias in another namespace does not select the branch either.
    let w = writer("record", "other.Thing2");
    let u = format!(r#"["null",{}]"#, reader("record", "old.Thing2"));
    let msg = plan_error(&w, &u);
    assert!(msg.contains("matches no branch"), "{msg}");
    let w = writer("record", "old.Thing2");
    assert_eq!(
        ok(&w, &u, &B::new().int(4).done()),
        B::new().long(1).int(4).done()
    );
}

#[test]
fn a_field_matched_by_name_wins_over_an_alias() {
    let writer = record(
        "R",
        r#"{"name":"a","type":"int"},{"name":"b","type":"int"}"#,
    );
    let reader = record(
        "R",
        r#"{"name":"b","type":"int","aliases":["a"]},{"name":"c","type":"int","aliases":["a"]}"#,
    );
    let input = B::new().int(1).int(2).done();
    assert_eq!(ok(&writer, &reader, &input), B::new().int(2).int(1).done());
}

// ---- enums and fixed ------------------------------------------------------------------------------------------

const ENUM_W: &str = r#"{"type":"enum","name":"E","symbols":["A","B","C"]}"#;

#[test]
fn enum_symbols_map_by_name() {
    let reader = r#"{"type":"enum","name":"E","symbols":["C","A","B"]}"#;
    for (w, r) in [(0, 1), (1, 2), (2, 0)] {
        assert_eq!(
            ok(ENUM_W, reader, &B::new().int(w).done()),
            B::new().int(r).done()
        );
    }
    assert!(matches!(
        run(ENUM_W, reader, &B::new().int(3).done()),
        Err(Error::EnumOrdinal { .. })
    ));
}

#[test]
fn unknown_enum_symbol_takes_reader_default() {
    let reader = r#"{"type":"enum","name":"E","symbols":["UNKNOWN","B","A"],"default":"UNKNOWN"}"#;
    assert_eq!(
        ok(ENUM_W, reader, &B::new().int(2).done()),
        B::new().int(0).done()
    );
    assert_eq!(
        ok(ENUM_W, reader, &B::new().int(0).done()),
        B::new().int(2).done()
    );
}

#[test]
fn unknown_enum_symbol_without_default_fails_only_when_it_occurs() {
    let reader = r#"{"type":"enum","name":"E","symbols":["A","B"]}"#;
    let plan = resolver(ENUM_W, reader).unwrap();
    let mut out = vec![];
    plan.transcode(&B::new().int(1).done(), &mut out).unwrap();
    assert_eq!(out, B::new().int(1).done());
    let err = plan
        .transcode(&B::new().int(2).done(), &mut out)
        .unwrap_err();
    assert_eq!(
        err,
        Error::Resolution(
            "symbol `C` of writer enum `E` is not in reader enum `E`, which has no default".into()
        )
    );
    assert_eq!(out, B::new().int(1).done(), "output untouched on error");
}

#[test]
fn fixed_sizes_and_names_must_match() {
    let w = r#"{"type":"fixed","name":"F","size":4}"#;
    let msg = plan_error(w, r#"{"type":"fixed","name":"F","size":8}"#);
    assert_eq!(
        msg,
        "fixed `F` has size 4 in the writer but 8 in the reader (`F`)"
    );
    let msg = plan_error(w, r#"{"type":"fixed","name":"G","size":4}"#);
    assert!(msg.contains("names differ"), "{msg}");
    let aliased = r#"{"type":"fixed","name":"G","aliases":["F"],"size":4}"#;
    assert_eq!(ok(w, aliased, &[1, 2, 3, 4]), vec![1, 2, 3, 4]);
    // Inside a record, the message says where.
    let msg = plan_error(
        &record("R", &format!(r#"{{"name":"f","type":{w}}}"#)),
        &record(
            "R",
            r#"{"name":"f","type":{"type":"fixed","name":"F","size":2}}"#,
        ),
    );
    assert_eq!(
        msg,
        "field `f` of record `R`: fixed `F` has size 4 in the writer but 2 in the reader (`F`)"
    );
}

// ---- arrays and maps ------------------------------------------------------------------------------------------

#[test]
fn resolved_collections_are_written_as_one_block() {
    let writer = r#"{"type":"map","values":{"type":"array","items":"int"}}"#;
    let reader = r#"{"type":"map","values":{"type":"array","items":"long"}}"#;
    let items = B::new().int(1).int(2).done();
    let array = B::new()
        .long(-2)
        .long(items.len() as i64)
        .raw(&items)
        .long(1)
        .int(3)
        .raw(&[0])
        .done();
    let entry = B::new().str("a").raw(&array).done();
    let input = B::new()
        .long(-1)
        .long(entry.len() as i64)
        .raw(&entry)
        .long(1)
        .str("b")
        .raw(&[0])
        .raw(&[0])
        .done();
    let expected = B::new()
        .long(2)
        .str("a")
        .long(3)
        .long(1)
        .long(2)
        .long(3)
        .raw(&[0])
        .str("b")
        .raw(&[0])
        .raw(&[0])
        .done();
    assert_eq!(ok(writer, reader, &input), expected);
    // Many blocks whose total needs a longer count varint than the first block's.
    let mut input = B::new().long(1).int(0);
    for _ in 0..100 {
        input = input.long(1).int(5);
    }
    let input = input.raw(&[0]).done();
    let out = ok(
        r#"{"type":"array","items":"int"}"#,
        r#"{"type":"array","items":"long"}"#,
        &input,
    );
    let mut expected = B::new().long(101).long(0);
    for _ in 0..100 {
        expected = expected.long(5);
    }
    assert_eq!(out, expected.raw(&[0]).done());
}

#[test]
fn identical_subtrees_are_copied_verbatim() {
    let writer = record(
        "R",
        r#"{"name":"a","type":"int"},{"name":"arr","type":{"type":"array","items":"int"}}"#,
    );
    let reader = record(
        "R",
        r#"{"name":"arr","type":{"type":"array","items":"int"}}"#,
    );
    let items = B::new().int(4).int(5).done();
    let arr = B::new()
        .long(-2)
        .long(items.len() as i64)
        .raw(&items)
        .raw(&[0])
        .done();
    let input = B::new().int(1).raw(&arr).done();
    assert_eq!(ok(&writer, &reader, &input), arr);
}

// ---- unions ----------------------------------------------------------------------------------------------------

#[test]
fn union_widening() {
    let input = B::new().str("s").done();
    assert_eq!(
        ok(r#""string""#, r#"["null","string"]"#, &input),
        B::new().long(1).str("s").done()
    );
    // An exact match beats an earlier promotion.
    let i = B::new().int(3).done();
    assert_eq!(
        ok(r#""int""#, r#"["null","long","int"]"#, &i),
        B::new().long(2).int(3).done()
    );
    // Otherwise the first promotion.
    assert_eq!(
        ok(r#""int""#, r#"["null","double","long"]"#, &i),
        B::new().long(1).double(3.0).done()
    );
    let msg = plan_error(r#""boolean""#, r#"["null","string"]"#);
    assert_eq!(
        msg,
        "writer boolean matches no branch of reader union [null, string]"
    );
}

#[test]
fn union_narrowing_fails_only_on_unresolvable_branches() {
    let plan = resolver(r#"["null","string"]"#, r#""string""#).unwrap();
    let mut out = vec![];
    plan.transcode(&B::new().long(1).str("x").done(), &mut out)
        .unwrap();
    assert_eq!(out, B::new().str("x").done());
    let err = plan
        .transcode(&B::new().long(0).done(), &mut out)
        .unwrap_err();
    assert_eq!(
        err,
        Error::Resolution("writer union branch null cannot be read as reader string: writer null cannot be read as reader string".into())
    );
    // Each branch promoted on its own.
    assert_eq!(
        ok(
            r#"["int","long"]"#,
            r#""double""#,
            &B::new().long(1).long(7).done()
        ),
        B::new().double(7.0).done()
    );
}

#[test]
fn union_branches_reordered_and_unmatched() {
    let writer = r#"["null","int","string","boolean"]"#;
    let reader = r#"["string","null","long"]"#;
    assert_eq!(
        ok(writer, reader, &B::new().long(0).done()),
        B::new().long(1).done()
    );
    assert_eq!(
        ok(writer, reader, &B::new().long(1).int(-1).done()),
        B::new().long(2).long(-1).done()
    );
    assert_eq!(
        ok(writer, reader, &B::new().long(2).str("s").done()),
        B::new().long(0).str("s").done()
    );
    let err = run(writer, reader, &B::new().long(3).boolean(true).done()).unwrap_err();
    assert_eq!(
        err,
        Error::Resolution(
            "writer boolean matches no branch of reader union [string, null, long]".into()
        )
    );
    assert!(matches!(
        run(writer, reader, &B::new().long(4).done()),
        Err(Error::UnionIndex { .. })
    ));
}

#[test]
fn union_records_matched_by_name() {
    let writer = r#"["null",
        {"type":"record","name":"A","fields":[{"name":"a","type":"int"}]},
        {"type":"record","name":"B","fields":[{"name":"b","type":"string"}]}]"#;
    let reader = r#"[
        {"type":"record","name":"B","fields":[{"name":"b","type":"string"},{"name":"extra","type":"int","default":1}]},
        "null",
        {"type":"record","name":"A","fields":[{"name":"a","type":"long"}]}]"#;
    assert_eq!(
        ok(writer, reader, &B::new().long(1).int(3).done()),
        B::new().long(2).long(3).done()
    );
    assert_eq!(
        ok(writer, reader, &B::new().long(2).str("b").done()),
        B::new().long(0).str("b").int(1).done()
    );
    assert_eq!(
        ok(writer, reader, &B::new().long(0).done()),
        B::new().long(1).done()
    );
}

#[test]
fn union_prefers_the_same_full_name() {
    let x = |ns: &str, t: &str| {
        format!(
            r#"{{"type":"record","name":"X","namespace":"{ns}","fields":[{{"name":"v","type":"{t}"}}]}}"#
        )
    };
    let reader = format!("[{},{}]", x("a", "long"), x("b", "long"));
    let input = B::new().int(5).done();
    assert_eq!(
        ok(&x("b", "int"), &reader, &input),
        B::new().long(1).long(5).done()
    );
    assert_eq!(
        ok(&x("a", "int"), &reader, &input),
        B::new().long(0).long(5).done()
    );
    assert_eq!(
        ok(&x("c", "int"), &reader, &input),
        B::new().long(0).long(5).done()
    );
}

// ---- recursion -------------------------------------------------------------------------------------------------

const LIST_W: &str = r#"{"type":"record","name":"List","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","List"]}]}"#;
const LIST_R: &str = r#"{"type":"record","name":"List","fields":[
    {"name":"v","type":"long"},{"name":"tag","type":"string","default":"t"},{"name":"next","type":["null","List"]}]}"#;

fn list(n: usize) -> Vec<u8> {
    let mut b = B::new();
    for i in 0..n {
        b = b.int(i as i32).long(if i + 1 < n { 1 } else { 0 });
    }
    b.done()
}

#[test]
fn recursive_linked_list() {
    let expected = B::new()
        .long(0)
        .str("t")
        .long(1)
        .long(1)
        .str("t")
        .long(0)
        .done();
    assert_eq!(ok(LIST_W, LIST_R, &list(2)), expected);
}

#[test]
fn mutually_recursive_records_with_reordering() {
    let writer = r#"{"type":"record","name":"A","fields":[
        {"name":"x","type":"int"},
        {"name":"b","type":["null",{"type":"record","name":"B","fields":[
            {"name":"y","type":"string"},{"name":"a","type":["null","A"]}]}]}]}"#;
    let reader = r#"{"type":"record","name":"A","fields":[
        {"name":"b","type":["null",{"type":"record","name":"B","fields":[
            {"name":"a","type":["null","A"]},{"name":"y","type":"string"}]}]},
        {"name":"x","type":"long"}]}"#;
    // A(x=1, b=B(y="q", a=A(x=2, b=null)))
    let input = B::new()
        .int(1)
        .long(1)
        .str("q")
        .long(1)
        .int(2)
        .long(0)
        .done();
    let expected = B::new()
        .long(1)
        .long(1)
        .long(0)
        .long(2)
        .str("q")
        .long(1)
        .done();
    assert_eq!(ok(writer, reader, &input), expected);
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = list(10_000);
    assert!(matches!(
        run(LIST_W, LIST_R, &deep),
        Err(Error::TooDeep { .. })
    ));
    // Skipped, and copied verbatim.
    let skipped = record("R", &format!(r#"{{"name":"l","type":{LIST_W}}}"#));
    assert!(matches!(
        run(&skipped, &record("R", ""), &deep),
        Err(Error::TooDeep { .. })
    ));
    assert!(matches!(
        run(LIST_W, LIST_W, &deep),
        Err(Error::TooDeep { .. })
    ));
    // Nested arrays too.
    let nested = vec![2u8; 10_000];
    let arrays = r#"{"type":"record","name":"N","fields":[{"name":"c","type":{"type":"array","items":"N"}}]}"#;
    assert!(matches!(
        run(arrays, arrays, &nested),
        Err(Error::TooDeep { .. })
    ));
    let renamed = r#"{"type":"record","name":"N","fields":[{"name":"d","aliases":["c"],"type":{"type":"array","items":"N"}}]}"#;
    assert!(matches!(
        run(arrays, renamed, &nested),
        Err(Error::TooDeep { .. })
    ));
}

#[test]
fn self_referencing_defaults_are_bounded() {
    // A record default whose missing member's default is the record again.
    let writer = record("R", r#"{"name":"a","type":"int"}"#);
    let reader = record(
        "R",
        r#"{"name":"a","type":"int"},
        {"name":"n","type":{"type":"record","name":"Loop","fields":[{"name":"next","type":"Loop","default":{}}]},"default":{}}"#,
    );
    assert_eq!(
        plan_error(&writer, &reader),
        "default of field `n` of record `R`: default nested deeper than 64 levels (does a record default refer to \
         itself?)"
    );
}

// ---- malformed writer data -------------------------------------------------------------------------------------

#[test]
fn malformed_input_is_an_error() {
    let writer = record(
        "R",
        r#"{"name":"a","type":"int"},{"name":"u","type":["null","string"]},{"name":"s","type":"string"}"#,
    );
    let reader = record(
        "R",
        r#"{"name":"s","type":"string"},{"name":"u","type":["string","null"]}"#,
    );
    let plan = resolver(&writer, &reader).unwrap();
    let good = B::new().int(1).long(1).str("u").str("s").done();
    let mut out = vec![1, 2];
    plan.transcode(&good, &mut out).unwrap();
    assert_eq!(out, B::new().raw(&[1, 2]).str("s").long(0).str("u").done());

    let mut out = vec![1, 2];
    for cut in 0..good.len() {
        let err = plan.transcode(&good[..cut], &mut out).unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnexpectedEof { .. } | Error::LengthTooLarge { .. }
            ),
            "{cut}: {err:?}"
        );
        assert_eq!(out, vec![1, 2]);
    }
    let bad_index = B::new().int(1).long(2).done();
    assert!(matches!(
        plan.transcode(&bad_index, &mut out),
        Err(Error::UnionIndex { index: 2, .. })
    ));
    let trailing = B::new().raw(&good).raw(&[0]).done();
    assert_eq!(
        plan.transcode(&trailing, &mut out),
        Err(Error::TrailingBytes { trailing: 1 })
    );
    assert_eq!(out, vec![1, 2]);
    let bad_varint = [0xff; 11];
    assert!(matches!(
        plan.transcode(&bad_varint, &mut out),
        Err(Error::InvalidVarint { .. })
    ));
}

#[test]
fn huge_block_counts_are_bounded() {
    let input = B::new().long(i64::MAX).done();
    let w = r#"{"type":"array","items":"null"}"#;
    assert!(matches!(
        run(w, r#"{"type":"array","items":"null"}"#, &input),
        Err(Error::TooManyItems { .. })
    ));
    let skipped = record("R", &format!(r#"{{"name":"a","type":{w}}}"#));
    assert!(matches!(
        run(&skipped, &record("R", ""), &input),
        Err(Error::TooManyItems { .. })
    ));
    let m = B::new().long(i64::MIN).done();
    assert!(run(&skipped, &record("R", ""), &m).is_err());
}

#[test]
fn resolver_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + std::fmt::Debug>() {}
    check::<Resolver>();
}
