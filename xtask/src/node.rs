//! The npm test peers: Stoplight Prism, which serves Twilio's OpenAPI description and validates every request
//! of the SMS channel's tests against it. Installed once into `target/node/` (a stamp names the pinned
//! version, so a warm run is offline).

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The pinned Prism.
pub const PRISM: &str = "@stoplight/prism-cli@5.16.0";

/// Installs the npm peers into `target/node/` unless the stamp says they are there.
pub fn ensure_node_peers() -> Result<()> {
    let dir = crate::codegen::root().join("target/node");
    let stamp = dir.join(".stamp");
    let bin = dir.join("node_modules/.bin/prism");
    if bin.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == PRISM) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("installing npm test peers: {PRISM}");
    let status = Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .arg(PRISM)
        .status()
        .context("running npm (apt-get install -y nodejs npm)")?;
    if !status.success() || !bin.is_file() {
        bail!("npm install {PRISM} failed");
    }
    std::fs::write(&stamp, PRISM)?;
    Ok(())
}
