//! Each rule fires where it should, with a position, and obeys severities and ignores.

use ursa_avro::schema::{ParseOptions, SchemaSet, SourceFile};

use super::*;

fn set(files: &[(&str, &str)]) -> SchemaSet {
    SchemaSet::parse(
        files.iter().map(|(p, t)| SourceFile::new(*p, *t)).collect(),
        ParseOptions::default(),
    )
    .unwrap()
}

fn kinds(
    files: &[(&str, &str)],
    config: &LintConfig,
    previous: Option<&SchemaSet>,
) -> Vec<(String, usize, bool)> {
    let s = set(files);
    let rel: Vec<String> = files.iter().map(|(p, _)| (*p).to_owned()).collect();
    lint(
        &LintInput {
            set: &s,
            rel_paths: &rel,
            previous,
        },
        config,
    )
    .into_iter()
    .map(|m| (m.kind, m.line.unwrap(), m.is_error))
    .collect()
}

const GOOD: &str = r#"{"type": "record", "name": "Good", "namespace": "a.b", "doc": "d",
 "fields": [{"name": "x_y", "type": ["null", "string"], "default": null, "doc": "d"}]}"#;

#[test]
fn a_clean_schema_has_no_findings() {
    assert_eq!(
        kinds(&[("a/b/Good.avsc", GOOD)], &LintConfig::default(), None),
        vec![]
    );
}

#[test]
fn every_rule_fires() {
    let bad = r#"{"type": "record", "name": "bad_name", "namespace": "a.b",
 "fields": [
  {"name": "camelField", "type": "int", "doc": "d"},
  {"name": "opt", "type": ["string", "null"], "doc": "d"},
  {"name": "opt2", "type": ["null", "string"], "doc": "d"},
  {"name": "e", "doc": "d", "type": {"type": "enum", "name": "E", "doc": "d", "symbols": ["A"]}}
 ]}"#;
    let found = kinds(&[("wrong/place.avsc", bad)], &LintConfig::default(), None);
    let ids: Vec<&str> = found.iter().map(|(k, _, _)| k.as_str()).collect();
    for rule in [
        "doc-required",
        "type-name-case",
        "field-name-case",
        "nullable-null-first",
        "enum-default",
        "namespace-matches-folder",
    ] {
        assert!(ids.contains(&rule), "{rule} missing in {found:?}");
    }
    // Positions point into the file: the camelCase field is on line 3.
    assert!(
        found.contains(&("field-name-case".to_owned(), 3, true)),
        "{found:?}"
    );
    assert_eq!(
        found
            .iter()
            .filter(|(k, _, _)| k == "nullable-null-first")
            .count(),
        2,
        "{found:?}"
    );
}

#[test]
fn severities_and_ignores_apply() {
    let no_doc = r#"{"type": "record", "name": "NoDoc", "fields": []}"#;
    let cfg = LintConfig::parse("[rules]\ndoc-required = \"warn\"\n").unwrap();
    assert_eq!(
        kinds(&[("NoDoc.avsc", no_doc)], &cfg, None),
        vec![("doc-required".to_owned(), 1, false)]
    );
    let cfg = LintConfig::parse("[[ignore]]\nrule = \"doc-required\"\nfiles = [\"legacy/**\"]\n")
        .unwrap();
    assert_eq!(
        kinds(&[("legacy/x/NoDoc.avsc", no_doc)], &cfg, None).len(),
        1,
        "only the folder rule remains"
    );
    let cfg =
        LintConfig::parse("[rules]\ndoc-required = \"off\"\nnamespace-matches-folder = \"off\"\n")
            .unwrap();
    assert!(kinds(&[("x/NoDoc.avsc", no_doc)], &cfg, None).is_empty());
}

#[test]
fn camel_case_style_and_consistency() {
    let camel = r#"{"type": "record", "name": "C", "doc": "d", "fields": [
  {"name": "firstName", "type": "string", "doc": "d"},
  {"name": "lastName", "type": "string", "doc": "d"},
  {"name": "snake_one", "type": "string", "doc": "d"}]}"#;
    let cfg = LintConfig::parse("[field-name-case]\nstyle = \"consistent\"\n").unwrap();
    assert_eq!(
        kinds(&[("C.avsc", camel)], &cfg, None),
        vec![("field-name-case".to_owned(), 4, true)]
    );
    let cfg = LintConfig::parse("[field-name-case]\nstyle = \"camelCase\"\n").unwrap();
    assert_eq!(kinds(&[("C.avsc", camel)], &cfg, None).len(), 1);
}

#[test]
fn fields_added_since_the_reference_need_defaults() {
    let old = set(&[("a/b/Good.avsc", GOOD)]);
    let new = r#"{"type": "record", "name": "Good", "namespace": "a.b", "doc": "d",
 "fields": [{"name": "x_y", "type": ["null", "string"], "default": null, "doc": "d"},
  {"name": "added", "type": "int", "doc": "d"},
  {"name": "added_ok", "type": "int", "doc": "d", "default": 0},
  {"name": "renamed", "aliases": ["x_y"], "type": ["null", "string"], "default": null, "doc": "d"}]}"#;
    let found = kinds(
        &[("a/b/Good.avsc", new)],
        &LintConfig::default(),
        Some(&old),
    );
    assert_eq!(found, vec![("new-field-default".to_owned(), 3, true)]);
}

#[test]
fn defaults_avro_java_accepts_but_that_are_no_value_are_reported() {
    // Avro Java takes any string as a fixed, bytes or enum default (and ignores an enum default that is not a
    // string), so these parse; the linter names each, at the default.
    let schema = r#"{"type": "record", "name": "D", "doc": "d", "fields": [
  {"name": "f", "doc": "d", "type": {"type": "fixed", "name": "F", "doc": "d", "size": 4}, "default": "ab"},
  {"name": "e", "doc": "d", "type": {"type": "enum", "name": "E", "doc": "d", "symbols": ["A"], "default": "A"},
   "default": "B"},
  {"name": "g", "doc": "d", "type": {"type": "enum", "name": "G", "doc": "d", "symbols": ["A"], "default": 7}}
 ]}"#;
    let cfg = LintConfig::parse("[rules]\nenum-default = \"off\"\n").unwrap();
    assert_eq!(
        kinds(&[("D.avsc", schema)], &cfg, None),
        vec![
            ("default-value".to_owned(), 2, true),
            ("default-value".to_owned(), 4, true),
            ("default-value".to_owned(), 5, true),
        ]
    );
    let cfg =
        LintConfig::parse("[rules]\nenum-default = \"off\"\ndefault-value = \"warn\"\n").unwrap();
    assert!(
        kinds(&[("D.avsc", schema)], &cfg, None)
            .iter()
            .all(|(k, _, e)| k == "default-value" && !e)
    );
}
