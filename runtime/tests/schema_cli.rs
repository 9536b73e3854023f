//! `ursa schema compat | check --against git:REF | lint` end to end through the binary, on throwaway files
//! and a throwaway git repository with a history of schema changes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

use ursa_testkit::{CommandExt, PEER_TIMEOUT};

fn ursa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args(args)
        .current_dir(dir)
        .output_within(PEER_TIMEOUT)
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output_within(PEER_TIMEOUT)
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", text(&out));
}

const V1: &str = r#"{"type": "record", "name": "Alert", "namespace": "t.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"}]}"#;
const V2: &str = r#"{"type": "record", "name": "Alert", "namespace": "t.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"},
             {"name": "level", "type": "int", "default": 0, "doc": "d"}]}"#;
/// Drops the default of `level`: BACKWARD-compatible with V2 (the field exists there), not with V1.
const V3: &str = r#"{"type": "record", "name": "Alert", "namespace": "t.alerts", "doc": "d",
  "fields": [{"name": "id", "type": "string", "doc": "d"},
             {"name": "level", "type": "int", "doc": "d"}]}"#;

fn write_repo(dir: &Path, schema: &str, level: &str) {
    std::fs::create_dir_all(dir.join("schemas/avro/t/alerts")).unwrap();
    std::fs::write(dir.join("schemas/avro/t/alerts/Alert.avsc"), schema).unwrap();
    std::fs::write(
        dir.join("schemas/topics.toml"),
        format!("[topics.alerts]\nkey = \"string\"\nvalue = \"t.alerts.Alert\"\ncompatibility = \"{level}\"\n"),
    )
    .unwrap();
}

#[test]
fn compat_checks_files_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, body) in [("v1.avsc", V1), ("v2.avsc", V2), ("v3.avsc", V3)] {
        std::fs::write(d.join(name), body).unwrap();
    }
    let ok = ursa(
        d,
        &[
            "schema", "compat", "--old", "v1.avsc", "--new", "v2.avsc", "--level", "FULL",
        ],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let bad = ursa(
        d,
        &[
            "schema",
            "compat",
            "--old",
            "v1.avsc",
            "--old",
            "v2.avsc",
            "--new",
            "v3.avsc",
            "--level",
            "BACKWARD_TRANSITIVE",
            "--format",
            "json",
        ],
    );
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let json: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(json["is_compatible"], false);
    let m = &json["messages"][0];
    assert_eq!(m["kind"], "READER_FIELD_MISSING_DEFAULT_VALUE");
    assert_eq!(m["file"], "v3.avsc");
    assert_eq!(
        (m["line"].as_u64(), m["column"].as_u64().is_some()),
        (Some(3), true),
        "{m}"
    );
    assert!(
        m["location"].as_str().unwrap().starts_with("/fields/1"),
        "{m}"
    );
    // Non-transitive BACKWARD only looks at the latest version: compatible.
    let latest = ursa(
        d,
        &[
            "schema", "compat", "--old", "v1.avsc", "--old", "v2.avsc", "--new", "v3.avsc",
            "--level", "BACKWARD",
        ],
    );
    assert_eq!(latest.status.code(), Some(0), "{}", text(&latest));
    // Bad input: exit 2 with the position.
    std::fs::write(
        d.join("broken.avsc"),
        "{\"type\": \"record\", \"name\": \"X\", \"fields\": [}",
    )
    .unwrap();
    let broken = ursa(
        d,
        &[
            "schema",
            "compat",
            "--old",
            "v1.avsc",
            "--new",
            "broken.avsc",
            "--level",
            "BACKWARD",
        ],
    );
    assert_eq!(broken.status.code(), Some(2));
    assert!(
        text(&broken).contains("broken.avsc:1:"),
        "{}",
        text(&broken)
    );
    let missing = ursa(
        d,
        &[
            "schema",
            "compat",
            "--old",
            "nope.avsc",
            "--new",
            "v2.avsc",
            "--level",
            "BACKWARD",
        ],
    );
    assert_eq!(missing.status.code(), Some(2));
    assert!(text(&missing).contains("nope.avsc"), "{}", text(&missing));
    let level = ursa(
        d,
        &[
            "schema", "compat", "--old", "v1.avsc", "--new", "v2.avsc", "--level", "SIDEWAYS",
        ],
    );
    assert_eq!(level.status.code(), Some(2), "{}", text(&level));
}

#[test]
fn check_against_git_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    git(d, &["init", "-q", "-b", "main"]);
    write_repo(d, V1, "BACKWARD_TRANSITIVE");
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "v1"]);
    write_repo(d, V2, "BACKWARD_TRANSITIVE");
    git(d, &["commit", "-q", "-am", "v2"]);
    // An unrelated commit does not create a version.
    std::fs::write(d.join("README"), "x").unwrap();
    git(d, &["add", "."]);
    git(d, &["commit", "-q", "-m", "docs"]);

    // Working tree = V3: incompatible with V1, so BACKWARD_TRANSITIVE fails, naming the version.
    write_repo(d, V3, "BACKWARD_TRANSITIVE");
    let out = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "git:main",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let subjects = json["subjects"].as_array().unwrap();
    let value = subjects
        .iter()
        .find(|s| s["subject"] == "alerts-value")
        .unwrap();
    assert_eq!(value["is_compatible"], false, "{value}");
    assert!(
        value["against"].as_str().unwrap().contains("2 versions"),
        "{value}"
    );
    let key = subjects
        .iter()
        .find(|s| s["subject"] == "alerts-key")
        .unwrap();
    assert_eq!(key["is_compatible"], true);

    // The same change at BACKWARD (latest only) passes; human output names every subject.
    write_repo(d, V3, "BACKWARD");
    let out = ursa(d, &["schema", "check", "--against", "git:main"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("ok: alerts-value (BACKWARD against main)"),
        "{}",
        text(&out)
    );

    // GitHub annotations and JUnit for CI.
    write_repo(d, V3, "FULL_TRANSITIVE");
    let gh = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "git:main",
            "--format",
            "github",
        ],
    );
    assert_eq!(gh.status.code(), Some(1));
    assert!(
        text(&gh).contains("::error file=schemas/avro/t/alerts/Alert.avsc,line=3"),
        "{}",
        text(&gh)
    );
    let junit = ursa(
        d,
        &[
            "schema",
            "check",
            "--against",
            "git:main",
            "--format",
            "junit",
        ],
    );
    assert!(
        String::from_utf8_lossy(&junit.stdout).contains("<testsuite"),
        "{}",
        text(&junit)
    );

    // An unknown reference is bad input.
    let out = ursa(d, &["schema", "check", "--against", "git:no-such-branch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown git reference `no-such-branch`"),
        "{}",
        text(&out)
    );
}

#[test]
fn lint_reports_rules_and_honours_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("schemas/avro/t")).unwrap();
    std::fs::write(
        d.join("schemas/avro/t/Thing.avsc"),
        r#"{"type": "record", "name": "Thing", "namespace": "t", "fields": [{"name": "maybe", "type": ["string", "null"]}]}"#,
    )
    .unwrap();
    let out = ursa(d, &["schema", "lint", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        all.contains("doc-required") && all.contains("nullable-null-first"),
        "{all}"
    );
    std::fs::write(
        d.join("schemas/lint.toml"),
        "[rules]\ndoc-required = \"off\"\nnullable-null-first = \"warn\"\n",
    )
    .unwrap();
    let out = ursa(d, &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("warning[nullable-null-first]"),
        "{}",
        text(&out)
    );
    std::fs::write(
        d.join("schemas/lint.toml"),
        "[rules]\nno-such-rule = \"off\"\n",
    )
    .unwrap();
    let out = ursa(d, &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn the_repository_catalog_is_lint_clean_and_checks_against_head() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = ursa(root, &["schema", "lint"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
