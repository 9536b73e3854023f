//! `cargo xtask bench SUITE`: benchmarks compared with peers in the same run (being written).

use std::process::ExitCode;

use anyhow::{Result, bail};

/// Arguments of `cargo xtask bench`.
#[derive(clap::Args)]
pub struct Args {
    /// The suite: `codegen`.
    suite: String,
}

pub fn run(args: &Args) -> Result<ExitCode> {
    bail!("unknown benchmark suite `{}`", args.suite)
}
