//! The committed generated code (`ursa-events`, the fixtures) is what the generator produces now.
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
