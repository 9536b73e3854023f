//! Report renderings: the JSON shape, GitHub annotations, a JUnit document, the human text with its caret, and
//! Confluent's verbose message strings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::parse;
use serde_json::json;
use ursa_avro::schema::SchemaSet;
use ursa_compat::format::{github, human, json, junit};
use ursa_compat::{Doc, Level, Report, check, confluent_messages, reader_writer};

const OLD: &str = r#"{"type":"record","name":"User","fields":[{"name":"id","type":"long"}]}"#;
const NEW: &str = "{\n  \"type\": \"record\",\n  \"name\": \"User\",\n  \"fields\": [\n    {\"name\": \"id\", \"type\": \"long\"},\n    {\"name\": \"age\", \"type\": \"int\"}\n  ]\n}\n";

fn sets() -> (SchemaSet, SchemaSet) {
    (parse("schemas/user.avsc", NEW), parse("v1.avsc", OLD))
}

fn report(level: Level) -> Report {
    let (new, old) = sets();
    check(level, Doc::last(&new), &[Doc::last(&old)])
}

#[test]
fn json_shape_is_exact() {
    let text = json(&report(Level::Backward));
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        value,
        json!({
            "is_compatible": false,
            "messages": [{
                "kind": "READER_FIELD_MISSING_DEFAULT_VALUE",
                "location": "/fields/1",
                "message": "new field 'age' (at /fields/1) has no default value and is missing in the old schema",
                "file": "schemas/user.avsc",
                "line": 6,
                "column": 6
            }]
        })
    );
    assert!(
        text.starts_with(r#"{"is_compatible":false,"messages":[{"kind":"#),
        "{text}"
    );
    assert_eq!(
        json(&Report {
            is_compatible: true,
            messages: vec![]
        }),
        r#"{"is_compatible":true,"messages":[]}"#
    );
}

#[test]
fn json_without_position_has_nulls() {
    let mut r = report(Level::Backward);
    r.messages[0].file = None;
    r.messages[0].line = None;
    r.messages[0].column = None;
    let value: serde_json::Value = serde_json::from_str(&json(&r)).unwrap();
    assert_eq!(value["messages"][0]["file"], serde_json::Value::Null);
    assert_eq!(value["messages"][0]["line"], serde_json::Value::Null);
}

#[test]
fn github_annotations() {
    assert_eq!(
        github(&report(Level::Backward)),
        "::error file=schemas/user.avsc,line=6,col=6,title=READER_FIELD_MISSING_DEFAULT_VALUE::new field 'age' (at /fields/1) has no default value and is missing in the old schema\n"
    );
    // Warnings become ::warning; message newlines and property commas are escaped.
    let mut r = report(Level::Forward);
    assert!(r.is_compatible);
    r.messages.push(ursa_compat::Message {
        kind: "FIELD_RENAMED".to_owned(),
        location: "/fields/0".to_owned(),
        message: "50% done\nnext".to_owned(),
        file: Some("a,b.avsc".to_owned()),
        line: Some(1),
        column: Some(2),
        is_error: false,
        detail: String::new(),
        direction: None,
        version: None,
    });
    assert_eq!(
        github(&r),
        "::warning file=a%2Cb.avsc,line=1,col=2,title=FIELD_RENAMED::50%25 done%0Anext\n"
    );
}

#[test]
fn junit_document() {
    let bad = report(Level::Backward);
    let good = report(Level::Forward);
    let xml = junit(&[("users-value", &bad), ("orders-value <v2>", &good)]);
    assert_eq!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <testsuite name=\"schema-compatibility\" tests=\"2\" failures=\"1\" errors=\"0\" skipped=\"0\">\n\
         \x20 <testcase classname=\"schema-compatibility\" name=\"users-value\">\n\
         \x20   <failure message=\"1 incompatibility\" type=\"INCOMPATIBLE\">READER_FIELD_MISSING_DEFAULT_VALUE: new field &apos;age&apos; (at /fields/1) has no default value and is missing in the old schema (schemas/user.avsc:6:6)</failure>\n\
         \x20 </testcase>\n\
         \x20 <testcase classname=\"schema-compatibility\" name=\"orders-value &lt;v2&gt;\"/>\n\
         </testsuite>\n"
    );
}

#[test]
fn human_text_with_caret() {
    let (new, old) = sets();
    let text = human(&report(Level::Backward), &[&new, &old]);
    assert_eq!(
        text,
        "error[READER_FIELD_MISSING_DEFAULT_VALUE]: new field 'age' (at /fields/1) has no default value and is missing in the old schema\n\
         \x20--> schemas/user.avsc:6:6\n\
         \x20 |\n\
         6 |     {\"name\": \"age\", \"type\": \"int\"}\n\
         \x20 |      ^\n\
         \x20 = at /fields/1\n\
         \n\
         incompatible: 1 error, 0 warnings\n"
    );
    assert_eq!(
        human(&report(Level::Forward), &[&new]),
        "compatible (0 warnings)\n"
    );
}

#[test]
fn confluent_verbose_messages() {
    assert_eq!(
        confluent_messages(&report(Level::Backward)),
        [
            "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'age' at path '/fields/1' in the new schema has no default value and is missing in the old schema', additionalInfo:'age'}"
        ]
    );
    let old = parse(
        "v1.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"total","type":"int"}]}"#,
    );
    let renamed = parse(
        "new.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"amount","type":"string"}]}"#,
    );
    let r = check(Level::Forward, Doc::last(&renamed), &[Doc::last(&old)]);
    assert_eq!(
        confluent_messages(&r),
        [
            "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'total' at path '/fields/0' in the old schema has no default value and is missing in the new schema', additionalInfo:'total'}"
        ]
    );
    let int = parse(
        "v1.avsc",
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#,
    );
    let string = parse(
        "new.avsc",
        r#"{"type":"record","name":"S","fields":[{"name":"a","type":"string"}]}"#,
    );
    let r = check(Level::Backward, Doc::last(&string), &[Doc::last(&int)]);
    assert_eq!(
        confluent_messages(&r),
        [
            "{errorType:'NAME_MISMATCH', description:'The name of the schema has changed (path '/name')', additionalInfo:'expected: R'}",
            "{errorType:'TYPE_MISMATCH', description:'The type (path '/fields/0/type') of a field in the new schema does not match with the old schema', additionalInfo:'reader type: STRING not compatible with writer type: LONG'}",
        ]
    );
    let e = |s: &str| {
        parse(
            "e.avsc",
            &format!(r#"{{"type":"enum","name":"E","symbols":[{s}]}}"#),
        )
    };
    let (abc, a) = (e(r#""A","B","C""#), e(r#""A""#));
    let m = reader_writer(Doc::last(&a), Doc::last(&abc));
    let r = Report {
        is_compatible: false,
        messages: m,
    };
    assert_eq!(
        confluent_messages(&r),
        [
            "{errorType:'MISSING_ENUM_SYMBOLS', description:'The reader schema is missing enum symbols '[B, C]' at path '/symbols' in the writer schema', additionalInfo:'[B, C]'}"
        ]
    );
}
