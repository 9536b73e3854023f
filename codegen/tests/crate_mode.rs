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
        "#[derive(Clone, PartialEq{% if r.eq %}, Eq{% endif %}{% if r.hash %}, Hash{% endif %}{% if not r.pii_fields %}, Debug{% endif %})]",
        "#[derive(Clone, PartialEq{% if r.eq %}, Eq{% endif %}{% if r.hash %}, Hash{% endif %}{% if not r.pii_fields %}, Debug{% endif %})]\n#[doc(alias = \"custom-template\")]",
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

/// Names that used to clash in the generated code: topics whose constants coincide (`a.b`, `a-b`, `a_b`) or
/// take the names of `topics::ALL` and `topics::BINDINGS`, an Avro namespace `topics` (the root's `topics`
/// module), fixed types named like the prelude's `Ok`, `Err`, `Some` and `None`, and fields named like the
/// builder's methods. The crate must build,
/// and every topic keep its own constant.
#[test]
fn names_that_could_clash_still_build() {
    let dir = tempfile::tempdir().unwrap();
    let schemas = dir.path().join("schemas");
    let write = |rel: &str, text: &str| {
        let path = schemas.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "topics/Thing.avsc",
        r#"{"type":"record","name":"Thing","namespace":"topics","fields":[
            {"name":"ok","type":{"type":"fixed","name":"Ok","size":1}},
            {"name":"err","type":{"type":"fixed","name":"Err","size":2}},
            {"name":"some","type":{"type":"fixed","name":"Some","size":3}},
            {"name":"none","type":{"type":"fixed","name":"None","size":4}},
            {"name":"maybe","type":["null","Ok"]},
            {"name":"either","type":["null","Err","Some"]},
            {"name":"list","type":{"type":"array","items":"None"}},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
            {"name":"build","type":"boolean","default":false},
            {"name":"default","type":"boolean","default":true}]}"#,
    );
    let catalog = dir.path().join("topics.toml");
    let mut toml = String::from("[defaults]\npartitions = 1\n");
    for topic in ["a.b", "a-b", "a_b", "all", "bindings", "ALL"] {
        toml.push_str(&format!(
            "\n[topics.\"{topic}\"]\nkey = \"string\"\nvalue = \"topics.Thing\"\n"
        ));
    }
    std::fs::write(&catalog, toml).unwrap();
    let out = dir.path().join("clash-events");
    let options = Options {
        schemas: schemas.clone(),
        catalog: Some(catalog),
        templates: None,
        layout: Layout::Crate {
            out: out.clone(),
            name: "clash_events".into(),
            avro_path: ursa_codegen::default_avro_path(),
        },
        display_base: None,
    };
    let generated = ursa_codegen::generate(&options).unwrap();
    generated.write().unwrap();
    std::fs::create_dir_all(out.join("examples")).unwrap();
    std::fs::write(
        out.join("examples/use_it.rs"),
        r#"use ursa_avro::AvroRecord;
use clash_events::topics_::{Thing, Ok, Err, Some, None, Kind, ThingEither};
fn main() {
    let t = Thing {
        ok: Ok([1]), err: Err([2, 3]), some: Some([4, 5, 6]), none: None([7, 8, 9, 10]),
        maybe: ::std::option::Option::Some(Ok([11])), either: ::std::option::Option::Some(ThingEither::Some(Some([1, 2, 3]))),
        list: vec![None([0; 4])], kind: Kind::B, build: true, default: true,
    };
    // Fields named like the builder's methods (`build`, `default`) do not break it.
    let built = Thing::builder().ok(Ok([1])).err(Err([2, 3])).some(Some([4, 5, 6])).none(None([7, 8, 9, 10]))
        .maybe(::std::option::Option::Some(Ok([11]))).either(ThingEither::from(Some([1, 2, 3])))
        .list(vec![None([0; 4])]).kind(Kind::B).build(true).build_2().unwrap();
    assert_eq!(built, t);
    let bytes = t.to_avro_datum().unwrap();
    assert_eq!(Thing::from_avro_datum(&bytes).unwrap(), t);
    let mut all: Vec<&str> = clash_events::topics::ALL.to_vec();
    all.sort();
    assert_eq!(all, ["ALL", "a-b", "a.b", "a_b", "all", "bindings"]);
    assert_eq!(clash_events::topics::BINDINGS.len(), 6);
    for b in clash_events::topics::BINDINGS {
        assert!(Thing::BINDINGS.contains(b));
    }
    println!("ok {}", bytes.len());
}
"#,
    )
    .unwrap();
    std::fs::copy(workspace_root().join("Cargo.lock"), out.join("Cargo.lock")).unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let lib = generated.files[Path::new("src/lib.rs")].clone();
    // Without and with the generated crate's `serde` feature (serde's derives must not trip on the names).
    for features in [&[][..], &["--features", "serde"][..]] {
        let output = Command::new(&cargo)
            .args(["run", "--quiet", "--example", "use_it"])
            .args(features)
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
            "the crate with clashing names failed to build ({features:?}):\n{}\n--- src/lib.rs:\n{lib}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok 25");
    }
    // Each topic has its own constant, documented with its name.
    for constant in ["A_B", "A_B_2", "A_B_3", "ALL_2", "BINDINGS_2", "ALL_3"] {
        assert!(
            lib.contains(&format!("pub const {constant}: &str")),
            "{constant} missing:\n{lib}"
        );
    }
}
