//! Tests of JSON decoding: every construct, every logical type, fallbacks, malformed input, resolution.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{
    JsonKeys, decode_json, decode_json_resolved, decode_json_with_limits, write_json,
    write_json_with_keys,
};
use crate::binary::Limits;
use crate::schema::SchemaSet;
use crate::{Decimal, Error};

fn decode(schema: &str, datum: &[u8]) -> Result<Value, Error> {
    let set = SchemaSet::parse_str(schema).unwrap();
    let tree = decode_json(&set, set.last_root(), datum);
    same_as_streamed(&set, datum, &tree);
    tree
}

/// Both streaming writers (the program and the walk) give the tree's text, or the tree's error, and leave
/// the buffer as it was on error.
fn same_as_streamed(set: &SchemaSet, datum: &[u8], tree: &Result<Value, Error>) {
    same_as_written(tree, |out| write_json(set, set.last_root(), datum, out));
    same_as_written(tree, |out| {
        write_json_with_keys(set, &JsonKeys::new(set), set.last_root(), datum, out)
    });
}

fn same_as_written(
    tree: &Result<Value, Error>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), Error>,
) {
    let mut out = b"prefix".to_vec();
    let streamed = write(&mut out);
    match (tree, streamed) {
        (Ok(v), Ok(())) => assert_eq!(
            String::from_utf8(out[6..].to_vec()).unwrap(),
            serde_json::to_string(v).unwrap(),
            "the streamed text differs from the tree's"
        ),
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            assert_eq!(out, b"prefix");
        }
        (a, b) => panic!("tree {a:?}, streamed {b:?}"),
    }
}

fn ok(schema: &str, datum: &[u8]) -> Value {
    decode(schema, datum).unwrap()
}

fn err(schema: &str, datum: &[u8]) -> Error {
    match decode(schema, datum) {
        Err(e) => e,
        Ok(v) => panic!("expected an error, decoded {v}"),
    }
}

use crate::binary::builder::B;

#[test]
fn primitives() {
    assert_eq!(ok(r#""null""#, &[]), Value::Null);
    assert_eq!(
        ok(r#""boolean""#, &B::new().boolean(true).done()),
        json!(true)
    );
    assert_eq!(ok(r#""boolean""#, &[0]), json!(false));
    assert_eq!(ok(r#""int""#, &B::new().int(-42).done()), json!(-42));
    assert_eq!(
        ok(r#""long""#, &B::new().long(i64::MIN).done()),
        json!(i64::MIN)
    );
    assert_eq!(ok(r#""float""#, &B::new().float(0.93).done()), json!(0.93));
    assert_eq!(ok(r#""float""#, &B::new().float(1e30).done()), json!(1e30));
    assert_eq!(
        ok(r#""double""#, &B::new().double(-2.5).done()),
        json!(-2.5)
    );
    assert_eq!(
        ok(r#""bytes""#, &B::new().bytes(b"\x00\xffhi").done()),
        json!("AP9oaQ==")
    );
    assert_eq!(
        ok(r#""string""#, &B::new().str("héllo").done()),
        json!("héllo")
    );
}

#[test]
fn non_finite_floats_are_strings() {
    for (f, text) in [
        (f32::NAN, "NaN"),
        (f32::INFINITY, "Infinity"),
        (f32::NEG_INFINITY, "-Infinity"),
    ] {
        assert_eq!(ok(r#""float""#, &B::new().float(f).done()), json!(text));
        assert_eq!(
            ok(r#""double""#, &B::new().double(f64::from(f)).done()),
            json!(text)
        );
    }
}

#[test]
fn records_keep_field_order_and_nest() {
    let schema = r#"{"type":"record","name":"R","fields":[
        {"name":"zeta","type":"int"},
        {"name":"alpha","type":{"type":"record","name":"Inner","fields":[{"name":"s","type":"string"}]}},
        {"name":"mid","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
        {"name":"fx","type":{"type":"fixed","name":"F","size":3}},
        {"name":"again","type":"Inner"}
    ]}"#;
    let datum = B::new()
        .int(7)
        .str("in")
        .int(2)
        .raw(&[1, 2, 3])
        .str("second")
        .done();
    let v = ok(schema, &datum);
    assert_eq!(
        v,
        json!({"zeta": 7, "alpha": {"s": "in"}, "mid": "C", "fx": "AQID", "again": {"s": "second"}})
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["zeta", "alpha", "mid", "fx", "again"]);
}

#[test]
fn arrays_and_maps_in_blocks() {
    // Two blocks, the second with a negative count and its byte size.
    let datum = B::new()
        .long(2)
        .int(1)
        .int(2)
        .long(-1)
        .long(1)
        .int(3)
        .long(0)
        .done();
    assert_eq!(
        ok(r#"{"type":"array","items":"int"}"#, &datum),
        json!([1, 2, 3])
    );
    assert_eq!(ok(r#"{"type":"array","items":"int"}"#, &[0]), json!([]));
    let datum = B::new()
        .long(2)
        .str("z")
        .long(1)
        .str("a")
        .long(2)
        .long(1)
        .str("z")
        .long(3)
        .long(0)
        .done();
    let v = ok(r#"{"type":"map","values":"long"}"#, &datum);
    assert_eq!(v, json!({"z": 3, "a": 2}));
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["z", "a"], "wire order, repeated key keeps its place");
}

#[test]
fn unions_are_unwrapped() {
    let schema = r#"["null","string",{"type":"array","items":"int"}]"#;
    assert_eq!(ok(schema, &B::new().long(0).done()), Value::Null);
    assert_eq!(ok(schema, &B::new().long(1).str("x").done()), json!("x"));
    assert_eq!(
        ok(schema, &B::new().long(2).long(1).int(9).long(0).done()),
        json!([9])
    );
}

#[test]
fn recursive_types() {
    let schema = r#"{"type":"record","name":"Node","fields":[
        {"name":"value","type":"int"},
        {"name":"next","type":["null","Node"]}
    ]}"#;
    let datum = B::new().int(1).long(1).int(2).long(1).int(3).long(0).done();
    assert_eq!(
        ok(schema, &datum),
        json!({"value": 1, "next": {"value": 2, "next": {"value": 3, "next": null}}})
    );
    // Nesting beyond the depth limit is an error, not a stack overflow.
    let mut deep = B::new();
    for _ in 0..10_000 {
        deep = deep.int(0).long(1);
    }
    let datum = deep.int(0).long(0).done();
    assert!(matches!(err(schema, &datum), Error::TooDeep { .. }));
    let set = SchemaSet::parse_str(schema).unwrap();
    let small = Limits {
        max_depth: 2,
        ..Limits::default()
    };
    let three = B::new().int(1).long(1).int(2).long(1).int(3).long(0).done();
    assert!(matches!(
        decode_json_with_limits(&set, set.last_root(), &three, small),
        Err(Error::TooDeep { limit: 2, .. })
    ));
}

fn logical(base: &str, logical: &str) -> String {
    format!(r#"{{"type":"{base}","logicalType":"{logical}"}}"#)
}

#[test]
fn uuids() {
    let text = "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94";
    assert_eq!(
        ok(&logical("string", "uuid"), &B::new().str(text).done()),
        json!(text)
    );
    let u = uuid::Uuid::parse_str(text).unwrap();
    let fixed = r#"{"type":"fixed","name":"U","size":16,"logicalType":"uuid"}"#;
    assert_eq!(ok(fixed, u.as_bytes()), json!(text));
}

#[test]
fn dates_and_times() {
    let date = logical("int", "date");
    assert_eq!(ok(&date, &B::new().int(20_000).done()), json!("2024-10-04"));
    assert_eq!(ok(&date, &B::new().int(-1).done()), json!("1969-12-31"));
    assert_eq!(
        ok(&date, &B::new().int(2_932_896).done()),
        json!("9999-12-31")
    );
    // Year 10000 and beyond chrono's range: the plain number.
    assert_eq!(ok(&date, &B::new().int(2_932_897).done()), json!(2_932_897));
    assert_eq!(ok(&date, &B::new().int(i32::MAX).done()), json!(i32::MAX));

    let ms = logical("int", "time-millis");
    assert_eq!(ok(&ms, &B::new().int(0).done()), json!("00:00:00.000"));
    assert_eq!(
        ok(&ms, &B::new().int(86_399_999).done()),
        json!("23:59:59.999")
    );
    assert_eq!(ok(&ms, &B::new().int(86_400_000).done()), json!(86_400_000));
    assert_eq!(ok(&ms, &B::new().int(-1).done()), json!(-1));
    let us = logical("long", "time-micros");
    assert_eq!(
        ok(&us, &B::new().long(45_296_000_007).done()),
        json!("12:34:56.000007")
    );
    assert_eq!(ok(&us, &B::new().long(i64::MAX).done()), json!(i64::MAX));
}

#[test]
fn timestamps() {
    let cases = [
        (
            "timestamp-millis",
            1_760_000_000_123,
            "2025-10-09T08:53:20.123Z",
        ),
        ("timestamp-millis", -1, "1969-12-31T23:59:59.999Z"),
        (
            "timestamp-micros",
            1_760_000_000_123_456,
            "2025-10-09T08:53:20.123456Z",
        ),
        ("timestamp-micros", 0, "1970-01-01T00:00:00.000000Z"),
        (
            "timestamp-nanos",
            1_760_000_000_123_456_789,
            "2025-10-09T08:53:20.123456789Z",
        ),
        (
            "local-timestamp-millis",
            1_760_000_000_123,
            "2025-10-09T08:53:20.123",
        ),
        (
            "local-timestamp-micros",
            1_760_000_000_123_456,
            "2025-10-09T08:53:20.123456",
        ),
        (
            "local-timestamp-nanos",
            1_760_000_000_123_456_789,
            "2025-10-09T08:53:20.123456789",
        ),
    ];
    for (lt, v, text) in cases {
        assert_eq!(
            ok(&logical("long", lt), &B::new().long(v).done()),
            json!(text),
            "{lt}"
        );
    }
    // Out of chrono's range, or a year RFC 3339 cannot write: the plain number.
    for lt in [
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
    ] {
        for v in [i64::MAX, i64::MIN] {
            assert_eq!(
                ok(&logical("long", lt), &B::new().long(v).done()),
                json!(v),
                "{lt}"
            );
        }
    }
    let year_10000_ms = 253_402_300_800_000i64;
    assert_eq!(
        ok(
            &logical("long", "timestamp-millis"),
            &B::new().long(year_10000_ms).done()
        ),
        json!(year_10000_ms)
    );
    assert_eq!(
        ok(
            &logical("long", "timestamp-millis"),
            &B::new().long(year_10000_ms - 1).done()
        ),
        json!("9999-12-31T23:59:59.999Z")
    );
}

#[test]
fn decimals() {
    let bytes = r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#;
    let d = Decimal::from_i128(-12345, 2);
    assert_eq!(
        ok(bytes, &B::new().bytes(d.unscaled_bytes()).done()),
        json!("-123.45")
    );
    assert_eq!(ok(bytes, &B::new().bytes(&[]).done()), json!("0.00"));
    assert_eq!(ok(bytes, &B::new().bytes(&[5]).done()), json!("0.05"));
    // More significant bytes than 10 digits ever need: the raw bytes, base64.
    let big = [0x7f; 9];
    assert_eq!(
        ok(bytes, &B::new().bytes(&big).done()),
        json!(super::encode_base64(&big))
    );
    // Sign extension does not count.
    assert_eq!(
        ok(
            bytes,
            &B::new()
                .bytes(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
                .done()
        ),
        json!("-0.02")
    );
    let fixed =
        r#"{"type":"fixed","name":"D","size":16,"logicalType":"decimal","precision":38,"scale":4}"#;
    let d = Decimal::from_i128(i128::MAX, 4);
    assert_eq!(
        ok(fixed, &d.to_fixed_bytes(16).unwrap()),
        json!("17014118346046923173168730371588410.5727")
    );
    let neg = Decimal::from_i128(-1, 4).to_fixed_bytes(16).unwrap();
    assert_eq!(ok(fixed, &neg), json!("-0.0001"));
}

#[test]
fn durations() {
    let schema = r#"{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}"#;
    let d = crate::Duration {
        months: 1,
        days: 2,
        millis: u32::MAX,
    };
    let v = ok(schema, &d.to_bytes());
    assert_eq!(
        v,
        json!({"months": 1, "days": 2, "millis": 4_294_967_295u32})
    );
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["months", "days", "millis"]);
}

#[test]
fn logical_types_in_a_record() {
    let schema = r#"{"type":"record","name":"Evt","fields":[
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"at","type":["null",{"type":"long","logicalType":"timestamp-micros"}]},
        {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
        {"name":"day","type":{"type":"int","logicalType":"date"}}
    ]}"#;
    let datum = B::new()
        .str("0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94")
        .long(1)
        .long(0)
        .bytes(Decimal::from_i128(199, 2).unscaled_bytes())
        .int(0)
        .done();
    assert_eq!(
        ok(schema, &datum),
        json!({
            "id": "0b9c2f6e-4d1a-4c8e-9f3a-2b7d5e1c0a94",
            "at": "1970-01-01T00:00:00.000000Z",
            "amount": "1.99",
            "day": "1970-01-01"
        })
    );
}

#[test]
fn malformed_input_is_an_error() {
    // Truncated.
    assert!(matches!(err(r#""int""#, &[]), Error::UnexpectedEof { .. }));
    assert!(matches!(
        err(r#""int""#, &[0x80]),
        Error::UnexpectedEof { .. }
    ));
    assert!(matches!(
        err(r#""double""#, &[0; 7]),
        Error::UnexpectedEof { .. }
    ));
    assert!(matches!(
        err(r#""string""#, &B::new().long(4).raw(b"ab").done()),
        Error::LengthTooLarge { .. }
    ));
    assert!(matches!(
        err(r#"{"type":"fixed","name":"F","size":4}"#, &[1, 2]),
        Error::UnexpectedEof { .. }
    ));
    let rec = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
    assert!(matches!(
        err(rec, &B::new().int(1).done()),
        Error::UnexpectedEof { .. }
    ));
    // Arrays and maps without their end marker.
    assert!(matches!(
        err(
            r#"{"type":"array","items":"int"}"#,
            &B::new().long(1).int(1).done()
        ),
        Error::UnexpectedEof { .. }
    ));
    // Bad union index, enum ordinal, boolean.
    let union = r#"["null","int"]"#;
    assert!(matches!(
        err(union, &B::new().long(2).done()),
        Error::UnionIndex {
            index: 2,
            branches: 2,
            ..
        }
    ));
    assert!(matches!(
        err(union, &B::new().long(-1).done()),
        Error::UnionIndex { index: -1, .. }
    ));
    assert!(matches!(
        err(
            r#"{"type":"enum","name":"E","symbols":["A"]}"#,
            &B::new().int(1).done()
        ),
        Error::EnumOrdinal { .. }
    ));
    assert!(matches!(
        err(r#""boolean""#, &[2]),
        Error::InvalidBoolean { .. }
    ));
    // Invalid UTF-8, in a map key too.
    assert!(matches!(
        err(r#""string""#, &B::new().bytes(&[0xc3, 0x28]).done()),
        Error::InvalidUtf8 { .. }
    ));
    assert!(matches!(
        err(
            r#"{"type":"map","values":"null"}"#,
            &B::new().long(1).bytes(&[0xff]).long(0).done()
        ),
        Error::InvalidUtf8 { .. }
    ));
    // Huge and negative lengths, huge counts, bad varints.
    assert!(matches!(
        err(r#""bytes""#, &B::new().long(1 << 62).done()),
        Error::LengthTooLarge { .. }
    ));
    assert!(matches!(
        err(r#""bytes""#, &B::new().long(-3).done()),
        Error::NegativeLength { .. }
    ));
    assert!(matches!(
        err(
            r#"{"type":"array","items":"null"}"#,
            &B::new().long(i64::MAX).done()
        ),
        Error::TooManyItems { .. }
    ));
    assert!(matches!(
        err(
            r#"{"type":"array","items":"null"}"#,
            &B::new().long(i64::MIN).done()
        ),
        Error::InvalidVarint { .. } | Error::TooManyItems { .. }
    ));
    assert!(matches!(
        err(r#""long""#, &[0xff; 11]),
        Error::InvalidVarint { .. }
    ));
    assert!(matches!(
        err(r#""int""#, &B::new().long(1 << 40).done()),
        Error::IntOutOfRange { .. }
    ));
    // Exactly one datum.
    assert!(matches!(
        err(r#""int""#, &[2, 0]),
        Error::TrailingBytes { trailing: 1 }
    ));
}

#[test]
fn item_limit_bounds_zero_byte_items() {
    let set = SchemaSet::parse_str(r#"{"type":"array","items":"null"}"#).unwrap();
    let limits = Limits {
        max_items: 1000,
        ..Limits::default()
    };
    let datum = B::new().long(600).long(600).long(0).done();
    assert!(matches!(
        decode_json_with_limits(&set, set.last_root(), &datum, limits),
        Err(Error::TooManyItems { limit: 1000, .. })
    ));
    let datum = B::new().long(600).long(0).done();
    let v = decode_json_with_limits(&set, set.last_root(), &datum, limits).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 600);
}

#[test]
fn resolved_decoding_applies_the_reader_schema() {
    let writer = SchemaSet::parse_str(
        r#"{"type":"record","name":"R","fields":[
            {"name":"n","type":"int"},
            {"name":"gone","type":"string"},
            {"name":"ts","type":"long"}
        ]}"#,
    )
    .unwrap();
    let reader = SchemaSet::parse_str(
        r#"{"type":"record","name":"R","fields":[
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"n","type":"double"},
            {"name":"added","type":["null","string"],"default":null},
            {"name":"level","type":"int","default":3}
        ]}"#,
    )
    .unwrap();
    let datum = B::new().int(5).str("dropped").long(1_000).done();
    let v = decode_json_resolved(
        &writer,
        writer.last_root(),
        &reader,
        reader.last_root(),
        &datum,
    )
    .unwrap();
    assert_eq!(
        v,
        json!({"ts": "1970-01-01T00:00:01.000Z", "n": 5.0, "added": null, "level": 3})
    );
    // Incompatible schemas, and malformed data, are errors.
    let other = SchemaSet::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"x","type":"int"}]}"#,
    )
    .unwrap();
    assert!(matches!(
        decode_json_resolved(
            &writer,
            writer.last_root(),
            &other,
            other.last_root(),
            &datum
        ),
        Err(Error::Resolution(_))
    ));
    assert!(
        decode_json_resolved(
            &writer,
            writer.last_root(),
            &reader,
            reader.last_root(),
            &datum[..3]
        )
        .is_err()
    );
}

const FUZZ_SCHEMAS: &[&str] = &[
    // Items that take no bytes: nested arrays of them are the cheapest way to claim many values.
    r#"{"type":"array","items":{"type":"array","items":["null",{"type":"array","items":{"type":"record","name":"Nothing","fields":[
        {"name":"n","type":"null"},{"name":"z","type":{"type":"fixed","name":"Z","size":0}}]}}]}}"#,
    r#"{"type":"record","name":"Node","fields":[
        {"name":"i","type":"int"},
        {"name":"s","type":["null","string","bytes"]},
        {"name":"m","type":{"type":"map","values":{"type":"array","items":"Node"}}},
        {"name":"next","type":["null","Node"]}
    ]}"#,
    r#"{"type":"array","items":["null","boolean","float","double",
        {"type":"enum","name":"E","symbols":["A","B"]},
        {"type":"fixed","name":"Dur","size":12,"logicalType":"duration"},
        {"type":"long","logicalType":"timestamp-nanos"},
        {"type":"int","logicalType":"date"}]}"#,
    r#"{"type":"map","values":{"type":"record","name":"L","fields":[
        {"name":"d","type":["null",{"type":"bytes","logicalType":"decimal","precision":38,"scale":9}]},
        {"name":"f","type":{"type":"fixed","name":"Dec","size":20,"logicalType":"decimal","precision":40,"scale":3}},
        {"name":"lt","type":{"type":"long","logicalType":"local-timestamp-micros"}},
        {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
        {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
        {"name":"u","type":{"type":"string","logicalType":"uuid"}}]}}"#,
    r#"{"type":"map","values":{"type":"record","name":"T","fields":[
        {"name":"ms","type":["null",{"type":"long","logicalType":"timestamp-millis"}]},
        {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"m","type":{"type":"map","values":["int","string","bytes"]}}]}}"#,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(which in 0..FUZZ_SCHEMAS.len(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let set = SchemaSet::parse_str(FUZZ_SCHEMAS[which]).unwrap();
        // The default limits, as generated code and the connectors use them.
        let tree = decode_json_with_limits(&set, set.last_root(), &bytes, Limits::default());
        same_as_streamed(&set, &bytes, &tree);
    }

    #[test]
    fn timestamps_stream_as_the_tree_writes_them(v in any::<i64>(), small in -70_000_000_000_000i64..300_000_000_000_000) {
        for logical in ["timestamp-millis", "timestamp-micros", "timestamp-nanos", "local-timestamp-millis", "time-micros"] {
            let set = SchemaSet::parse_str(&format!(r#"{{"type":"long","logicalType":"{logical}"}}"#)).unwrap();
            // The years RFC 3339 writes begin at 0000-01-01T00:00:00 and end at 9999-12-31T23:59:59.999….
            let edges = [-62_167_219_200_000, -62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000, 0, -1];
            for x in [v, small, small / 1000].into_iter().chain(edges).chain(edges.map(|e| e * 1000)).chain(edges.map(|e| e * 1000 + 999)) {
                let datum = B::new().long(x).done();
                let tree = decode_json(&set, set.last_root(), &datum);
                same_as_streamed(&set, &datum, &tree);
            }
        }
    }

    #[test]
    fn small_varints_and_strings_never_panic(which in 0..FUZZ_SCHEMAS.len(), parts in proptest::collection::vec((0i64..6, "[a-c]{0,3}"), 0..40)) {
        // Structured noise: small counts and short strings reach deeper than uniform bytes do.
        let mut b = B::new();
        for (n, s) in &parts {
            b = b.long(*n).str(s);
        }
        let set = SchemaSet::parse_str(FUZZ_SCHEMAS[which]).unwrap();
        let datum = b.done();
        let tree = decode_json(&set, set.last_root(), &datum);
        same_as_streamed(&set, &datum, &tree);
    }
}

/// The value at `path` of a JSON form (object keys, array indexes), as the metrics sink looks it up.
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, s| match v {
        Value::Object(m) => m.get(*s),
        Value::Array(a) => a.get(s.parse::<usize>().ok()?),
        _ => None,
    })
}

const WANTED_SCHEMA: &str = r#"{"type":"record","name":"Evt","fields":[
    {"name":"id","type":"string"},
    {"name":"n","type":"long"},
    {"name":"child","type":["null",{"type":"record","name":"Child","fields":[
        {"name":"child_id","type":"string"},
        {"name":"age","type":"int"},
        {"name":"tags","type":{"type":"array","items":"string"}}]}]},
    {"name":"sev","type":{"type":"enum","name":"Sev","symbols":["LOW","HIGH"]}},
    {"name":"m","type":{"type":"map","values":"long"}},
    {"name":"next","type":["null","Evt"]}]}"#;

/// Path sets as definitions name them: nested fields, a whole record, map keys, array indexes, the whole
/// value, a field no schema has, and nothing.
const WANTED_PATHS: &[&[&[&str]]] = &[
    &[&["child", "child_id"], &["sev"], &["n"]],
    &[&["child"], &["child", "age"]],
    &[&["m", "b"], &["child", "tags", "0"]],
    &[&["next", "child", "age"], &["id"], &["next", "next", "sev"]],
    &[&[]],
    &[&["nope"], &["child", "nope"]],
    &[],
];

fn wanted_agrees_with_the_tree(set: &SchemaSet, datum: &[u8]) {
    let full = decode_json(set, set.last_root(), datum);
    let mut parts = super::Parts::new();
    for paths in WANTED_PATHS {
        let mut wanted = super::Wanted::new();
        for p in *paths {
            wanted.add(p);
        }
        let decoded = super::decode_parts(set, set.last_root(), datum, &wanted, &mut parts);
        match (&full, &decoded) {
            (Ok(f), Ok(())) => {
                for path in *paths {
                    assert_eq!(
                        at(f, path).cloned(),
                        part_at(&parts, &wanted, path),
                        "{path:?} of {f}"
                    );
                }
            }
            // Only the full decode checks the UTF-8 of strings nobody asked for.
            (Err(_), _) => {}
            (Ok(f), Err(e)) => panic!("{f} decodes whole, but not in part: {e}"),
        }
    }
}

/// The value at `path` in `parts`, as JSON: the part its chain reaches, and the rest of the path inside it.
fn part_at(parts: &super::Parts<'_>, wanted: &super::Wanted, path: &[&str]) -> Option<Value> {
    let (part, depth) = parts.at(&wanted.chain(path))?;
    let v = match part {
        super::Part::Str(s) => Value::String((*s).to_owned()),
        super::Part::Json(v) => v.clone(),
        super::Part::Absent | super::Part::Record => return None,
    };
    at(&v, &path[depth..]).cloned()
}

#[test]
fn wanted_parts_are_the_trees_parts() {
    let set = SchemaSet::parse_str(WANTED_SCHEMA).unwrap();
    let child = |b: B, id: &str, age: i64, tags: &[&str]| {
        let mut b = b.long(1).str(id).long(age).long(tags.len() as i64);
        for t in tags {
            b = b.str(t);
        }
        if !tags.is_empty() {
            b = b.long(0);
        }
        b
    };
    let inner = child(B::new().str("e2").long(7), "c-2", 4, &[])
        .long(0)
        .long(0)
        .long(0);
    let datum = child(B::new().str("e1").long(-3), "c-1", 9, &["x", "y"])
        .long(1)
        .long(1)
        .str("b")
        .long(5)
        .long(0)
        .long(1)
        .raw(&inner.done())
        .done();
    let full = decode_json(&set, set.last_root(), &datum).unwrap();
    assert_eq!(full["next"]["child"]["age"], json!(4), "{full}");
    wanted_agrees_with_the_tree(&set, &datum);
    // Nothing wanted: the datum is still read to its end.
    let nothing = super::Wanted::new();
    let mut parts = super::Parts::new();
    super::decode_parts(&set, set.last_root(), &datum, &nothing, &mut parts).unwrap();
    assert_eq!(parts.at(&nothing.chain::<&str>(&[])), None);
    let cut = &datum[..datum.len() - 1];
    assert!(super::decode_parts(&set, set.last_root(), cut, &nothing, &mut parts).is_err());
    // Strings and enum symbols are borrowed, other scalars are JSON values.
    let mut wanted = super::Wanted::new();
    for p in [&["id"][..], &["sev"], &["n"], &["child", "age"]] {
        wanted.add(p);
    }
    super::decode_parts(&set, set.last_root(), &datum, &wanted, &mut parts).unwrap();
    let got = |p: &[&str]| {
        parts
            .at(&wanted.chain(p))
            .map(|(part, depth)| (part.clone(), depth))
    };
    assert_eq!(got(&["id"]), Some((super::Part::Str("e1"), 1)));
    assert_eq!(got(&["sev"]), Some((super::Part::Str("HIGH"), 1)));
    assert_eq!(got(&["n"]), Some((super::Part::Json(json!(-3)), 1)));
    assert_eq!(
        got(&["child", "age"]),
        Some((super::Part::Json(json!(9)), 2))
    );
    assert_eq!(got(&["child"]), None, "a record on the way is no value");
    // An error leaves no part of the datum.
    let bad = super::decode_parts(&set, set.last_root(), cut, &wanted, &mut parts);
    assert!(bad.is_err());
    assert_eq!(parts.at(&wanted.chain(&["id"])), None);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn wanted_parts_of_noise_are_the_trees_parts(which in 0..2usize, parts in proptest::collection::vec((0i64..4, "[a-c]{0,3}"), 0..30)) {
        let mut b = B::new();
        for (n, s) in &parts {
            b = b.long(*n).str(s);
        }
        let schema = [WANTED_SCHEMA, FUZZ_SCHEMAS[1]][which];
        let set = SchemaSet::parse_str(schema).unwrap();
        wanted_agrees_with_the_tree(&set, &b.done());
    }
}
