//! Property tests of schema resolution through the public API: random data with random blocking resolves to
//! the expected reader bytes, and random bytes never panic.
// Helpers outside `#[test]` functions may unwrap too: a panic is how a test fails.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use ursa_avro::schema::SchemaSet;
use ursa_avro::{Error, Resolver, encode};

const WRITER: &str = r#"{"type":"record","name":"Event","namespace":"v1","fields":[
    {"name":"id","type":"int"},
    {"name":"name","type":"string"},
    {"name":"tags","type":{"type":"array","items":"int"}},
    {"name":"gone","type":{"type":"map","values":{"type":"array","items":"string"}}},
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B","C"]}},
    {"name":"opt","type":["null","long"]}
]}"#;

const READER: &str = r#"{"type":"record","name":"Event2","namespace":"v2","aliases":["v1.Event"],"fields":[
    {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["C","B","A"]}},
    {"name":"tags","type":{"type":"array","items":"long"}},
    {"name":"added","type":"string","default":"new"},
    {"name":"label","aliases":["name"],"type":"bytes"},
    {"name":"id","type":"double"},
    {"name":"opt","type":["null","double"]}
]}"#;

fn resolver(writer: &str, reader: &str) -> Resolver {
    let w = SchemaSet::parse_str(writer).unwrap();
    let r = SchemaSet::parse_str(reader).unwrap();
    Resolver::new(&w, w.last_root(), &r, r.last_root()).unwrap()
}

/// Writes `items` in blocks of the given sizes (cycled), negative counts (with byte sizes) on odd blocks.
fn blocks<T>(out: &mut Vec<u8>, items: &[T], sizes: &[usize], item: impl Fn(&mut Vec<u8>, &T)) {
    let mut rest = items;
    let mut k = 0;
    while !rest.is_empty() {
        let n = sizes[k % sizes.len()].clamp(1, rest.len());
        let mut body = Vec::new();
        for x in &rest[..n] {
            item(&mut body, x);
        }
        if k % 2 == 1 {
            encode::long(out, -(n as i64));
            encode::long(out, body.len() as i64);
        } else {
            encode::long(out, n as i64);
        }
        out.extend_from_slice(&body);
        rest = &rest[n..];
        k += 1;
    }
    out.push(0);
}

proptest! {
    #[test]
    fn resolves_random_data(
        id in any::<i32>(),
        name in ".{0,12}",
        tags in proptest::collection::vec(any::<i32>(), 0..20),
        gone in proptest::collection::vec(("[a-z]{0,4}", proptest::collection::vec(".{0,3}", 0..4)), 0..4),
        kind in 0..3i32,
        opt in proptest::option::of(any::<i64>()),
        sizes in proptest::collection::vec(1usize..5, 1..4),
    ) {
        let mut input = Vec::new();
        encode::int(&mut input, id);
        encode::string(&mut input, &name);
        blocks(&mut input, &tags, &sizes, |b, t| encode::int(b, *t));
        blocks(&mut input, &gone, &sizes, |b, (k, v)| {
            encode::string(b, k);
            blocks(b, v, &sizes, |b, s| encode::string(b, s));
        });
        encode::int(&mut input, kind);
        match opt {
            None => encode::union_index(&mut input, 0),
            Some(v) => {
                encode::union_index(&mut input, 1);
                encode::long(&mut input, v);
            }
        }

        let mut expected = Vec::new();
        encode::int(&mut expected, 2 - kind);
        encode::array(&mut expected, &tags, |b, t| {
            encode::long(b, i64::from(*t));
            Ok(())
        }).unwrap();
        encode::string(&mut expected, "new");
        encode::bytes(&mut expected, name.as_bytes());
        encode::double(&mut expected, f64::from(id));
        match opt {
            None => encode::union_index(&mut expected, 0),
            Some(v) => {
                encode::union_index(&mut expected, 1);
                encode::double(&mut expected, v as f64);
            }
        }

        let plan = resolver(WRITER, READER);
        prop_assert!(!plan.is_identity());
        let mut out = Vec::new();
        plan.transcode(&input, &mut out).unwrap();
        prop_assert_eq!(out, expected);

        let same = resolver(WRITER, WRITER);
        prop_assert!(same.is_identity());
        let mut copy = Vec::new();
        same.transcode(&input, &mut copy).unwrap();
        prop_assert_eq!(copy, input);
    }

    #[test]
    fn random_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..64)) {
        let plan = resolver(WRITER, READER);
        let mut out = vec![7];
        if plan.transcode(&input, &mut out).is_err() {
            prop_assert_eq!(out, vec![7]);
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let plan = resolver(r#""int""#, r#""long""#);
    let mut out = Vec::new();
    assert_eq!(
        plan.transcode(&[2, 0], &mut out),
        Err(Error::TrailingBytes { trailing: 1 })
    );
    assert!(out.is_empty());
}
