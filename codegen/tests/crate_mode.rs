//! `--crate` mode: a standalone crate generated from a schema folder builds on its own with `cargo build`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking
//! (namespaces start at the crate root), and `--templates` replaces the built-in templates.

use std::path::{Path, PathBuf};
use std::process::Command;

use ursa_codegen::{Layout, Options};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn crate_options(out: &Path, templates: Option<PathBuf>) -> Options {
    Options {
        schemas: workspace_root().join("codegen/fixtures/schemas"),
        catalog: None,
        templates,
        layout: Layout::Crate {
            out: out.to_path_buf(),
            name: "fixture_events".into(),
            avro_path: ursa_codegen::default_avro_path(),
        },
        display_base: None,
    }
}

#[test]
fn standalone_crate_builds_with_cargo() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fixture-events");
    let generated = ursa_codegen::generate(&crate_options(&out, None)).unwrap();
    generated.write().unwrap();
    assert!(out.join("Cargo.toml").is_file() && out.join("src/lib.rs").is_file());
    assert!(out.join("src/fixtures/recursive.rs").is_file());
    let manifest = std::fs::read_to_string(out.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("ursa-avro = { path = "), "{manifest}");
    // A small user of the crate: namespace modules start at the crate root.
    std::fs::create_dir_all(out.join("examples")).unwrap();
    std::fs::write(
        out.join("examples/use_it.rs"),
        "use ursa_avro::AvroRecord;\nfn main() {\n    let c = fixture_events::fixtures::Cat { name: \"Tom\".into(), lives: 9 };\n    let bytes = c.to_avro_datum().unwrap();\n    assert_eq!(fixture_events::fixtures::Cat::from_avro_datum(&bytes).unwrap(), c);\n    println!(\"ok {}\", bytes.len());\n}\n",
    )
    .unwrap();
    // Reuse the workspace's lock file and target dir so nothing is downloaded or rebuilt needlessly.
    std::fs::copy(workspace_root().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["run", "--quiet", "--example", "use_it"])
        .current_dir(&out)
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/standalone"),
        )
        .env("RUSTFLAGS", "-D warnings")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "standalone crate failed to build:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok 5");
}

#[test]
fn user_templates_replace_the_builtin_ones() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let builtin =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/types.tera"))
            .unwrap();
    let custom = builtin.replace(
        "#[derive(Clone, PartialEq{% if not r.pii_fields %}, Debug{% endif %})]",
        "#[derive(Clone, PartialEq{% if not r.pii_fields %}, Debug{% endif %})]\n#[doc(alias = \"custom-template\")]",
    );
    assert_ne!(
        custom, builtin,
        "the record derive line moved; update this test"
    );
    std::fs::write(templates.join("types.tera"), custom).unwrap();
    let out = dir.path().join("out");
    let generated = ursa_codegen::generate(&crate_options(&out, Some(templates.clone()))).unwrap();
    let cat = &generated.files[Path::new("src/fixtures.rs")];
    assert!(
        cat.contains("#[doc(alias = \"custom-template\")]"),
        "custom template not used"
    );
    // A broken template is a clear error and nothing is written.
    std::fs::write(
        templates.join("types.tera"),
        "{% macro record(r) %}{{ r.nope }}{% endmacro record %}",
    )
    .unwrap();
    let err = ursa_codegen::generate(&crate_options(&out, Some(templates))).unwrap_err();
    assert!(err.to_string().contains("template"), "{err}");
    assert!(!out.exists());
}
