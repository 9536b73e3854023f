//! Parser tests: names and references, logical types, defaults, canonical form, diagnostics with positions.

use super::*;

fn parse_many(docs: &[(&str, &str)]) -> Result<SchemaSet, SchemaError> {
    SchemaSet::parse(
        docs.iter().map(|(p, t)| SourceFile::new(*p, *t)).collect(),
        ParseOptions::default(),
    )
}

fn first_error(text: &str) -> Diagnostic {
    SchemaSet::parse_str(text)
        .unwrap_err()
        .diagnostics
        .remove(0)
}

#[test]
fn references_resolve_across_documents_in_any_order() {
    let set = parse_many(&[
        ("b.avsc", r#"{"type":"record","name":"B","namespace":"x.y","fields":[{"name":"a","type":"x.z.A"},{"name":"self_ref","type":["null","B"]}]}"#),
        ("a.avsc", r#"{"type":"enum","name":"A","namespace":"x.z","symbols":["P","Q"],"default":"P"}"#),
    ])
    .unwrap();
    let b = set.lookup("x.y.B").unwrap();
    let NamedKind::Record { fields } = &set.named(b).kind else {
        panic!()
    };
    assert_eq!(
        fields[0].schema.kind,
        SchemaKind::Named(set.lookup("x.z.A").unwrap())
    );
    assert_eq!(
        set.canonical_form(set.root(FileId(0))),
        r#"{"name":"x.y.B","type":"record","fields":[{"name":"a","type":{"name":"x.z.A","type":"enum","symbols":["P","Q"]}},{"name":"self_ref","type":["null","x.y.B"]}]}"#
    );
}

#[test]
fn canonical_form_strips_and_orders() {
    let set = SchemaSet::parse_str(
        r#"{"doc":"d","fields":[{"type":{"type":"long","logicalType":"timestamp-millis"},"name":"t","default":0,"doc":"x"},
            {"name":"f","type":{"type":"fixed","size":16,"name":"F","aliases":["G"]}},{"name":"m","type":{"type":"map","values":"F"}}],
            "name":"R","namespace":"n","type":"record","pii":true}"#,
    )
    .unwrap();
    assert_eq!(
        set.canonical_form(set.last_root()),
        r#"{"name":"n.R","type":"record","fields":[{"name":"t","type":"long"},{"name":"f","type":{"name":"n.F","type":"fixed","size":16}},{"name":"m","type":{"type":"map","values":"n.F"}}]}"#
    );
    // The full form keeps everything and parses back to the same canonical form.
    let full = set.full_json(set.last_root()).to_string();
    assert!(
        full.contains("\"logicalType\":\"timestamp-millis\"") && full.contains("\"pii\":true"),
        "{full}"
    );
    let again = SchemaSet::parse_str(&full).unwrap();
    assert_eq!(
        again.canonical_form(again.last_root()),
        set.canonical_form(set.last_root())
    );
}

#[test]
fn fingerprint_matches_the_specification() {
    // CRC-64-AVRO of `"null"`: the bytes 8a 8f 25 cc e7 24 dd 63 (little-endian), as fastavro and Java print it.
    assert_eq!(fingerprint64(b"\"null\""), 0x63dd_24e7_cc25_8f8a);
}

#[test]
fn logical_types_are_parsed_and_unknown_ones_fall_back() {
    let set = SchemaSet::parse_str(
        r#"{"type":"record","name":"L","fields":[
            {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"x","type":{"type":"string","logicalType":"made-up"}}]}"#,
    )
    .unwrap();
    let NamedKind::Record { fields } = &set.named(set.lookup("L").unwrap()).kind else {
        panic!()
    };
    assert_eq!(
        fields[0].schema.logical,
        Some(LogicalType::Decimal {
            precision: 10,
            scale: 2
        })
    );
    assert_eq!(fields[1].schema.logical, Some(LogicalType::Uuid));
    assert_eq!(fields[2].schema.logical, None);
    assert_eq!(fields[2].schema.attrs["logicalType"], "made-up");
}

#[test]
fn lenient_mode_ignores_invalid_logical_types() {
    let text = r#"{"type":"bytes","logicalType":"decimal","precision":2,"scale":5}"#;
    assert!(SchemaSet::parse_str(text).is_err());
    let set = SchemaSet::parse(
        vec![SourceFile::new("x", text)],
        ParseOptions {
            logical_types: LogicalTypes::Lenient,
        },
    )
    .unwrap();
    assert_eq!(set.last_root().kind, SchemaKind::Bytes);
    assert_eq!(set.last_root().logical, None);
}

#[test]
fn errors_say_what_and_where() {
    let cases: &[(&str, (usize, usize), &str)] = &[
        (
            "{\"type\": \"record\",\n \"name\": \"R\",\n \"fields\": [{\"name\": \"a\", \"type\": \"Nope\"}]}",
            (3, 35),
            "unknown type `Nope`",
        ),
        (
            "{\"type\":\"record\",\"name\":\"9lives\",\"fields\":[]}",
            (1, 25),
            "invalid name `9lives`",
        ),
        (
            "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"bad-symbol\"]}",
            (1, 42),
            "invalid enum symbol `bad-symbol`",
        ),
        (
            "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}",
            (1, 42),
            "duplicate enum symbol `A`",
        ),
        (
            "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\"],\"default\":\"B\"}",
            (1, 53),
            "enum default `B` is not one of the symbols",
        ),
        (
            "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\"},{\"name\":\"a\",\"type\":\"int\"}]}",
            (1, 73),
            "duplicate field `a`",
        ),
        (
            "[\"int\", \"string\", \"int\"]",
            (1, 19),
            "union contains `int` more than once",
        ),
        (
            "[\"int\", [\"null\", \"string\"]]",
            (1, 9),
            "cannot directly contain another union",
        ),
        (
            "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}",
            (1, 35),
            "fixed size must be a non-negative integer",
        ),
        (
            "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":0}",
            (1, 31),
            "precision must be at least 1",
        ),
        (
            "{\"type\":\"bytes\",\"logicalType\":\"decimal\",\"precision\":3,\"scale\":4}",
            (1, 31),
            "scale 4 is greater than its precision 3",
        ),
        (
            "{\"type\":\"fixed\",\"name\":\"F\",\"size\":2,\"logicalType\":\"decimal\",\"precision\":9}",
            (1, 51),
            "does not fit in a fixed of size 2",
        ),
        (
            "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"int\",\"default\":\"x\"}]}",
            (1, 74),
            "invalid default for field `a` of `R`: expected an int",
        ),
        (
            "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":[\"null\",\"int\"],\"default\":true}]}",
            (1, 83),
            "invalid default for field `a` of `R`: no branch of the union [null, int] takes a boolean (true)",
        ),
        (
            "{\"type\":\"record\" \"name\":\"R\"}",
            (1, 18),
            "invalid JSON: expected `,` or `}`",
        ),
    ];
    for (text, (line, col), message) in cases {
        let d = first_error(text);
        assert!(d.message.contains(message), "{text}: got {d}");
        assert_eq!((d.line, d.column), (*line, *col), "{text}: got {d}");
    }
}

#[test]
fn duplicate_definitions_across_files_name_both_places() {
    let e = parse_many(&[
        ("a.avsc", "{\"type\":\"fixed\",\"name\":\"x.F\",\"size\":1}"),
        (
            "b.avsc",
            "\n{\"type\":\"fixed\",\"name\":\"x.F\",\"size\":1}",
        ),
    ])
    .unwrap_err();
    let d = &e.diagnostics[0];
    assert_eq!((d.path.as_str(), d.line, d.column), ("b.avsc", 2, 24));
    assert!(d.message.contains("duplicate definition of `x.F`"), "{d}");
    assert_eq!(d.notes, vec!["first defined at a.avsc:1:1".to_owned()]);
    assert!(e.render().contains("--> b.avsc:2:24"), "{}", e.render());
}

#[test]
fn every_problem_is_reported() {
    let e = SchemaSet::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"X"},{"name":"b","type":"Y"}]}"#)
        .unwrap_err();
    assert_eq!(e.diagnostics.len(), 2, "{e}");
}

#[test]
fn union_defaults_may_match_any_branch() {
    // Avro 1.12 (AVRO-3649): a union field's default may be a value of any branch, as Java accepts.
    for (ty, default) in [
        (r#"["null","string"]"#, r#""x""#),
        (r#"["int","string"]"#, r#""x""#),
        (r#"["long","double"]"#, "1.5"),
        (
            r#"["null",{"type":"record","name":"S","fields":[{"name":"x","type":"int"}]}]"#,
            r#"{"x":3}"#,
        ),
        (r#"["null",{"type":"array","items":"int"}]"#, "[1,2]"),
    ] {
        let text = format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"f","type":{ty},"default":{default}}}]}}"#
        );
        if let Err(e) = SchemaSet::parse_str(&text) {
            panic!("{text}: {e}");
        }
    }
    // A default no branch takes is still an error, naming the branches.
    let d = first_error(
        r#"{"type":"record","name":"R","fields":[{"name":"f","type":["int","string"],"default":true}]}"#,
    );
    assert!(
        d.message
            .contains("no branch of the union [int, string] takes a boolean (true)"),
        "{d}"
    );
}

#[test]
fn parsing_no_documents_is_an_error() {
    // A set always has a last document, so `last_root` cannot fail.
    let e = SchemaSet::parse(Vec::new(), ParseOptions::default()).unwrap_err();
    assert_eq!(e.diagnostics.len(), 1, "{e}");
    assert!(e.to_string().contains("no schema documents"), "{e}");
    assert!(e.render().contains("no schema documents"), "{}", e.render());
}

#[test]
fn defaults_avro_java_accepts_parse_and_are_reported() {
    // Avro Java checks only that a `bytes`, `fixed` or enum field default is a string, and ignores an enum's
    // `default` that is not a string: such schemas parse (as Confluent's registry registers them), and what
    // is wrong with the default is listed for the linter.
    let field = |ty: &str, default: &str| {
        format!(
            r#"{{"type":"record","name":"R","fields":[{{"name":"f","type":{ty},"default":{default}}}]}}"#
        )
    };
    let cases = [
        (
            field(r#"{"type":"fixed","name":"F","size":4}"#, r#""ab""#),
            "fixed `F` has size 4, default has 2 bytes",
        ),
        (
            field(r#"{"type":"fixed","name":"F","size":1}"#, r#""\u0100""#),
            "a string of bytes (characters \\u0000 to \\u00ff)",
        ),
        (
            field(r#""bytes""#, r#""\u0100""#),
            "a string of bytes (characters \\u0000 to \\u00ff)",
        ),
        (
            field(r#"{"type":"enum","name":"E","symbols":["A"]}"#, r#""B""#),
            "`B` is not a symbol of enum `E`",
        ),
        (
            field(
                r#"["null",{"type":"fixed","name":"F","size":2}]"#,
                r#""abc""#,
            ),
            "no branch of the union [null, F] takes",
        ),
        (
            field(
                r#"{"type":"array","items":{"type":"fixed","name":"F","size":2}}"#,
                r#"["a"]"#,
            ),
            "item 0: fixed `F` has size 2, default has 1 bytes",
        ),
    ];
    for (text, problem) in &cases {
        let set = SchemaSet::parse_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let found = set.suspicious_defaults();
        assert_eq!(found.len(), 1, "{text}: {found:?}");
        assert!(found[0].problem.contains(problem), "{text}: {found:?}");
        assert_eq!(found[0].field, Some(0));
        assert_eq!(set.named(found[0].owner).name.fullname(), "R");
        // The location is the default's.
        let at = text.find(r#""default""#).unwrap() + r#""default":"#.len();
        assert_eq!(found[0].loc.span.start as usize, at, "{text}");
    }
    let set =
        SchemaSet::parse_str(r#"{"type":"enum","name":"E","symbols":["A"],"default":1}"#).unwrap();
    let NamedKind::Enum { default, .. } = &set.named(set.lookup("E").unwrap()).kind else {
        panic!()
    };
    assert_eq!(*default, None);
    let found = set.suspicious_defaults();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, None);
    assert!(found[0].problem.contains("is ignored"), "{found:?}");
    // What Java refuses stays an error: a number for a fixed, an enum default that is not a symbol.
    for (text, message) in [
        (
            field(r#"{"type":"fixed","name":"F","size":4}"#, "1"),
            "invalid default for field `f` of `R`: expected a string",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A"],"default":"B"}"#.to_owned(),
            "enum default `B` is not one of the symbols",
        ),
    ] {
        let d = first_error(&text);
        assert!(d.message.contains(message), "{text}: {d}");
    }
    // A clean schema has nothing to report.
    assert!(
        SchemaSet::parse_str(&field(r#""bytes""#, r#""\u00ff""#))
            .unwrap()
            .suspicious_defaults()
            .is_empty()
    );
}
