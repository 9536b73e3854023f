//! Bad schemas: each gives a clear error with file:line:col and what is wrong, and nothing is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::path::{Path, PathBuf};

use ursa_codegen::{Layout, Options};

fn generate_dir(
    schemas: &Path,
    out: &Path,
) -> Result<ursa_codegen::Generated, ursa_codegen::Error> {
    ursa_codegen::generate(&Options {
        schemas: schemas.to_path_buf(),
        catalog: None,
        templates: None,
        layout: Layout::Crate {
            out: out.to_path_buf(),
            name: "bad".into(),
            avro_path: ursa_codegen::default_avro_path(),
        },
        display_base: Some(schemas.to_path_buf()),
    })
}

/// (file, words the message must contain)
const CASES: &[(&str, &str)] = &[
    ("invalid_json.avsc", "invalid JSON"),
    ("unknown_type.avsc", "unknown type"),
    ("default_type_mismatch.avsc", "invalid default for field"),
    (
        "decimal_scale_gt_precision.avsc",
        "greater than its precision",
    ),
    (
        "decimal_precision_zero.avsc",
        "precision must be at least 1",
    ),
    (
        "fixed_negative_size.avsc",
        "fixed size must be a non-negative integer",
    ),
    ("invalid_name.avsc", "invalid name `9lives`"),
    ("invalid_enum_symbol.avsc", "invalid enum symbol"),
    ("duplicate_enum_symbols.avsc", "duplicate enum symbol"),
    ("duplicate_field_names.avsc", "duplicate field"),
    ("union_duplicate_primitive.avsc", "more than once"),
    ("nested_union.avsc", "cannot directly contain another union"),
    ("enum_default_not_symbol.avsc", "is not one of the symbols"),
];

fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bad")
}

#[test]
fn every_bad_schema_is_reported_with_its_position() {
    for (file, words) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let schemas = dir.path().join("schemas");
        std::fs::create_dir(&schemas).unwrap();
        std::fs::copy(bad_dir().join(file), schemas.join(file)).unwrap();
        let out = dir.path().join("out");
        let err = generate_dir(&schemas, &out).expect_err(file);
        let text = err.to_string();
        assert!(
            text.contains(words),
            "{file}: message lacks {words:?}:\n{text}"
        );
        // rustc-style: "--> file:line:col" with the offending source line and a caret.
        let arrow = format!("--> {file}:");
        let at = text
            .find(&arrow)
            .unwrap_or_else(|| panic!("{file}: no position in\n{text}"));
        let pos: Vec<usize> = text[at + arrow.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .split(':')
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(
            pos.len() == 2 && pos[0] >= 1 && pos[1] >= 1,
            "{file}: {text}"
        );
        assert!(text.contains('^'), "{file}: no caret in\n{text}");
        assert!(
            !out.exists(),
            "{file}: output was written despite the error"
        );
    }
}

#[test]
fn positions_point_at_the_offending_token() {
    let expectations = [
        ("unknown_type.avsc", "\"fixtures.bad.DoesNotExist\""),
        ("invalid_name.avsc", "\"9lives\""),
        ("invalid_enum_symbol.avsc", "\"bad-symbol\""),
    ];
    for (file, token) in expectations {
        let text = std::fs::read_to_string(bad_dir().join(file)).unwrap();
        let offset = text.find(token).unwrap();
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map_or(0, |i| i + 1) + 1;
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(bad_dir().join(file), dir.path().join(file)).unwrap();
        let err = generate_dir(dir.path(), &dir.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{file}:{line}:{col}")),
            "{file}: expected {line}:{col} in\n{err}"
        );
    }
}

#[test]
fn duplicate_definitions_across_files_name_both() {
    let err = generate_dir(
        &bad_dir().join("duplicate"),
        &tempfile::tempdir().unwrap().path().join("o"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("duplicate definition of"), "{err}");
    assert!(err.contains("first defined at dup_a.avsc:"), "{err}");
    assert!(err.contains("--> dup_b.avsc:"), "{err}");
}

#[test]
fn a_failed_run_leaves_previous_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    std::fs::create_dir(&schemas).unwrap();
    std::fs::write(
        schemas.join("A.avsc"),
        r#"{"type":"record","name":"A","fields":[{"name":"x","type":"int"}]}"#,
    )
    .unwrap();
    let out = dir.path().join("out");
    generate_dir(&schemas, &out).unwrap().write().unwrap();
    let before = std::fs::read_to_string(out.join("src/lib.rs")).unwrap();
    std::fs::write(
        schemas.join("B.avsc"),
        r#"{"type":"record","name":"B","fields":[{"name":"y","type":"Nope"}]}"#,
    )
    .unwrap();
    assert!(generate_dir(&schemas, &out).is_err());
    assert_eq!(
        std::fs::read_to_string(out.join("src/lib.rs")).unwrap(),
        before
    );
    assert!(!out.join("src/b.rs").exists());
}
