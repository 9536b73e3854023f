//! `cargo xtask test`: installs what the tests need, then runs formatting, lints, freshness checks and every test.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Arguments of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments passed to `cargo test`.
    #[arg(trailing_var_arg = true)]
    rest: Vec<String>,
}

/// Runs cargo with `args` in the workspace root; fails on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(crate::codegen::root())
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Python packages the tests use as third-party peers.
const PYTHON_PACKAGES: &[&str] = &["fastavro==1.13.1", "avro==1.12.2"];

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Installs the Python packages unless they are already importable.
pub fn ensure_python_packages() -> Result<()> {
    let py = python();
    let present = Command::new(&py)
        .args(["-c", "import fastavro, avro"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if present {
        return Ok(());
    }
    eprintln!(
        "installing Python test peers: {}",
        PYTHON_PACKAGES.join(" ")
    );
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES)
        .status()
        .with_context(|| format!("running {py} -m pip"))?;
    if !status.success() {
        bail!("pip install {} failed", PYTHON_PACKAGES.join(" "));
    }
    Ok(())
}

pub fn run(args: &Args) -> Result<ExitCode> {
    ensure_python_packages()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let mut test_args = vec!["test", "--workspace"];
    test_args.extend(args.rest.iter().map(String::as_str));
    cargo(&test_args)?;
    Ok(ExitCode::SUCCESS)
}
