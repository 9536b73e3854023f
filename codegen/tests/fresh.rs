//! The committed generated code (`ursa-events`, the fixtures) is what the generator produces now, with or
//! without a `rustfmt` on the machine (formatting is a library, so the output does not depend on the toolchain).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail by panicking

use std::path::Path;

#[test]
fn committed_generated_code_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut stale = Vec::new();
    for (label, opts) in ursa_codegen::repository_targets(root, None) {
        let generated = ursa_codegen::generate(&opts).unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(!generated.files.is_empty(), "{label}: nothing generated");
        stale.extend(generated.stale().unwrap());
    }
    assert!(
        stale.is_empty(),
        "generated code is stale; run `cargo xtask codegen`:\n{}",
        stale.join("\n")
    );
}

/// The same check in a child process of this test binary that can run no `rustfmt`: an empty `PATH` and a
/// `RUSTFMT` naming nothing.
#[test]
fn generation_needs_no_rustfmt() {
    if std::env::var_os("URSA_CODEGEN_NO_RUSTFMT_CHILD").is_some() {
        assert!(
            std::process::Command::new("rustfmt")
                .arg("--version")
                .output()
                .is_err(),
            "rustfmt still runs with an empty PATH"
        );
        committed_generated_code_is_fresh();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "generation_needs_no_rustfmt", "--nocapture"])
        .env("URSA_CODEGEN_NO_RUSTFMT_CHILD", "1")
        .env("PATH", "")
        .env("RUSTFMT", "/nonexistent/rustfmt")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "generation without rustfmt failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
