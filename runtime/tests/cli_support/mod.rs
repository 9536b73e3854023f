//! Shared by the tests that run the `ursa` binary: running it, its output as text, and a scratch copy of the
//! repository's schemas and catalog.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ursa_testkit::CommandExt;

/// Runs `ursa ARGS…` in `dir` and waits for it (failing, with the process killed, if it takes longer than
/// [`ursa_testkit::PEER_TIMEOUT`]).
pub fn ursa(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ursa"))
        .args(args)
        .current_dir(dir)
        .output_within(ursa_testkit::PEER_TIMEOUT)
        .unwrap()
}

/// Standard output then standard error, as text.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// A copy of the repository's schemas and catalog in a temp dir.
pub fn catalog_copy() -> (tempfile::TempDir, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo.join("schemas/avro"), &dir.path().join("schemas/avro"));
    std::fs::copy(
        repo.join("schemas/topics.toml"),
        dir.path().join("schemas/topics.toml"),
    )
    .unwrap();
    let p = dir.path().to_path_buf();
    (dir, p)
}
