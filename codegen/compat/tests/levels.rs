//! Levels over a history: BACKWARD, FORWARD and FULL against the latest version, their transitive forms against
//! every version (with the version named in each message), NONE, empty histories, and positions in the new file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::parse;
use ursa_avro::schema::SchemaSet;
use ursa_compat::{Direction, Doc, Level, Report, check};

const ALL: [Level; 7] = [
    Level::Backward,
    Level::BackwardTransitive,
    Level::Forward,
    Level::ForwardTransitive,
    Level::Full,
    Level::FullTransitive,
    Level::None,
];

fn run(level: Level, new: &str, history: &[&str]) -> Report {
    let new = parse("new.avsc", new);
    let old: Vec<SchemaSet> = history
        .iter()
        .enumerate()
        .map(|(i, t)| parse(&format!("v{}.avsc", i + 1), t))
        .collect();
    let docs: Vec<Doc<'_>> = old.iter().map(Doc::last).collect();
    check(level, Doc::last(&new), &docs)
}

fn errors(r: &Report) -> Vec<(&str, &str, Option<usize>)> {
    r.errors()
        .map(|m| (m.kind.as_str(), m.location.as_str(), m.version))
        .collect()
}

const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"x"}]}"#;
const V3: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string","default":"y"}]}"#;
/// `b` without a default: reads v2 and v3 (which have `b`), not v1.
const NEW_B_REQUIRED: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;

#[test]
fn empty_history_and_none_are_compatible() {
    for level in ALL {
        assert!(run(level, V1, &[]).is_compatible, "{level}");
        assert!(run(level, V1, &[]).messages.is_empty());
    }
    let r = run(Level::None, r#""string""#, &[V1]);
    assert!(r.is_compatible && r.errors().count() == 0);
}

#[test]
fn only_transitive_levels_see_older_versions() {
    let history = [V1, V2, V3];
    assert!(run(Level::Backward, NEW_B_REQUIRED, &history).is_compatible);
    assert!(run(Level::Full, NEW_B_REQUIRED, &history).is_compatible);
    let r = run(Level::BackwardTransitive, NEW_B_REQUIRED, &history);
    assert!(!r.is_compatible);
    assert_eq!(
        errors(&r),
        [("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1", Some(1))]
    );
    let m = r.errors().next().unwrap();
    assert_eq!(
        m.message,
        "against version 1: new field 'b' (at /fields/1) has no default value and is missing in the old schema"
    );
    assert_eq!(m.direction, Some(Direction::Backward));
    assert_eq!(m.file.as_deref(), Some("new.avsc"));
    let r = run(Level::FullTransitive, NEW_B_REQUIRED, &history);
    assert_eq!(
        errors(&r),
        [("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1", Some(1))]
    );
}

#[test]
fn forward_transitive_checks_every_version_oldest_first() {
    // Old versions require `b` (v1, v2) or not (v3): dropping `b` breaks readers v1 and v2 only.
    let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"}]}"#;
    let v2 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"long"}]}"#;
    let v3 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":"long","default":0}]}"#;
    let new = V1;
    assert!(run(Level::Forward, new, &[v1, v2, v3]).is_compatible);
    let r = run(Level::ForwardTransitive, new, &[v1, v2, v3]);
    assert_eq!(
        errors(&r),
        [
            ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1", Some(1)),
            ("READER_FIELD_MISSING_DEFAULT_VALUE", "/fields/1", Some(2)),
        ]
    );
    let m = r.errors().nth(1).unwrap();
    assert!(
        m.message.starts_with("against version 2: old field 'b'"),
        "{}",
        m.message
    );
    assert_eq!(m.direction, Some(Direction::Forward));
    // Positioned in the new schema: the record that lacks the field.
    assert_eq!(m.file.as_deref(), Some("new.avsc"));
    assert_eq!((m.line, m.column), (Some(1), Some(1)));
}

#[test]
fn adding_a_required_field_is_forward_but_not_backward() {
    let new = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"c","type":"int"}]}"#;
    let expect = |level: Level| run(level, new, &[V1]).is_compatible;
    assert!(!expect(Level::Backward));
    assert!(expect(Level::Forward));
    assert!(!expect(Level::Full));
    assert!(expect(Level::None));
}

#[test]
fn removing_a_required_field_is_backward_but_not_forward() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"c","type":"int"}]}"#;
    let expect = |level: Level| run(level, V1, &[old]).is_compatible;
    assert!(expect(Level::Backward));
    assert!(!expect(Level::Forward));
    assert!(!expect(Level::Full));
}

#[test]
fn promotions_are_one_way() {
    let long = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#;
    assert!(run(Level::Backward, long, &[V1]).is_compatible);
    assert!(!run(Level::Forward, long, &[V1]).is_compatible);
    let r = run(Level::Full, long, &[V1]);
    assert_eq!(errors(&r), [("TYPE_MISMATCH", "/fields/0/type", Some(1))]);
    assert_eq!(
        r.errors().next().unwrap().detail,
        "reader type: INT not compatible with writer type: LONG"
    );
}

#[test]
fn full_lists_forward_problems_before_backward_ones() {
    let string = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    let r = run(Level::Full, string, &[V1]);
    let directions: Vec<_> = r.errors().map(|m| m.direction).collect();
    assert_eq!(
        directions,
        [Some(Direction::Forward), Some(Direction::Backward)]
    );
    assert!(
        r.errors()
            .next()
            .unwrap()
            .message
            .starts_with("old type `int` cannot read new type `string`")
    );
}

#[test]
fn enum_evolution_per_level() {
    let e = |symbols: &str, default: &str| {
        format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"e","type":{{"type":"enum","name":"E","symbols":[{symbols}]{default}}}}}]}}"#
        )
    };
    let v1 = e(r#""A","B""#, "");
    let added = e(r#""A","B","C""#, "");
    assert!(run(Level::Backward, &added, &[&v1]).is_compatible);
    let r = run(Level::Forward, &added, &[&v1]);
    assert_eq!(
        errors(&r),
        [("MISSING_ENUM_SYMBOLS", "/fields/0/type/symbols", Some(1))]
    );
    // With a default in the old reader, adding symbols is forward compatible too.
    let v1d = e(r#""A","B""#, r#","default":"A""#);
    let addedd = e(r#""A","B","C""#, r#","default":"A""#);
    assert!(run(Level::Full, &addedd, &[&v1d]).is_compatible);
}

#[test]
fn warnings_never_change_the_verdict() {
    let old = r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
    let new = r#"{"type":"record","name":"R","fields":[{"name":"t","type":{"type":"long","logicalType":"timestamp-micros"}}]}"#;
    for level in ALL {
        let r = run(level, new, &[old]);
        assert!(r.is_compatible, "{level}");
        let kinds: Vec<&str> = r.warnings().map(|m| m.kind.as_str()).collect();
        assert_eq!(kinds, ["TIMESTAMP_UNIT_CHANGED"], "{level}");
    }
}
