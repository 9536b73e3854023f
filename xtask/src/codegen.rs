//! `cargo xtask codegen`: regenerate (or `--check`) the committed generated code, or generate a crate from any folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use ursa_codegen::{Layout, Options};

/// Arguments of `cargo xtask codegen`.
#[derive(clap::Args, Default)]
pub struct Args {
    /// Only check that the committed output is up to date; exit 1 if it is stale.
    #[arg(long)]
    check: bool,
    /// A folder of `.avsc` files to generate a standalone crate from (needs --out and --crate).
    #[arg(long, requires_all = ["out", "crate_name"])]
    schemas: Option<PathBuf>,
    /// Output folder of the standalone crate.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Package name of the standalone crate.
    #[arg(long = "crate")]
    crate_name: Option<String>,
    /// A topic catalog (`topics.toml`) binding topics to the schemas' types.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A folder of replacement tera templates (see codegen/templates/).
    #[arg(long)]
    templates: Option<PathBuf>,
}

/// The workspace root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

pub fn run(args: &Args) -> Result<ExitCode> {
    let targets = match (&args.schemas, &args.out, &args.crate_name) {
        (Some(schemas), Some(out), Some(name)) => vec![(
            "crate",
            Options {
                schemas: schemas.clone(),
                catalog: args.catalog.clone(),
                templates: args.templates.clone(),
                layout: Layout::Crate {
                    out: out.clone(),
                    name: name.clone(),
                    avro_path: ursa_codegen::default_avro_path(),
                },
                display_base: std::env::current_dir().ok(),
            },
        )],
        _ => ursa_codegen::repository_targets(&root(), args.templates.clone()),
    };
    // Generate everything first: a failure anywhere writes nothing.
    let mut generated = Vec::new();
    for (label, opts) in &targets {
        match ursa_codegen::generate(opts) {
            Ok(g) => generated.push((label, g)),
            Err(e) => {
                eprintln!("{e}");
                eprintln!("error: code generation for {label} failed; nothing was written");
                return Ok(ExitCode::from(1));
            }
        }
    }
    if args.check {
        let mut stale = Vec::new();
        for (_, g) in &generated {
            stale.extend(g.stale()?);
        }
        if stale.is_empty() {
            println!("generated code is up to date");
            return Ok(ExitCode::SUCCESS);
        }
        for s in &stale {
            eprintln!("stale: {s}");
        }
        eprintln!("error: generated code is stale; run `cargo xtask codegen`");
        return Ok(ExitCode::from(1));
    }
    for (label, g) in &generated {
        g.write()?;
        println!(
            "generated {label}: {} file(s) in {}",
            g.files.len(),
            g.root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
