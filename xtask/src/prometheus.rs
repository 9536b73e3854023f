//! Installs the Prometheus server and `promtool` (Debian's `prometheus` package, 2.42) that the metrics
//! sink's tests scrape with and query, if they are missing.

use std::process::Command;

use anyhow::{Result, bail};

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Installs `prometheus` and `promtool` from Debian's packages if either is missing.
pub fn ensure_prometheus() -> Result<()> {
    if on_path("prometheus") && on_path("promtool") {
        return Ok(());
    }
    eprintln!("installing prometheus");
    let ok = Command::new("sh")
        .args([
            "-c",
            "(apt-get install -y -qq --no-install-recommends prometheus || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus)) >/dev/null",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!(
            "could not install prometheus: run `apt-get update && apt-get install -y prometheus`"
        );
    }
    Ok(())
}
