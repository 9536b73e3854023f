//! `schema lint`: the lint rules over the schema folder, configured by `schemas/lint.toml`.

use std::path::PathBuf;
use std::process::ExitCode;

use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet};
use ursa_compat::Report;

use crate::ToolError;
use crate::history::{locate, revisions};
use crate::lint::{LintConfig, LintInput, lint};
use crate::output::{Format, SubjectResult, many};

/// Arguments of `schema lint`.
#[derive(clap::Args, Debug)]
pub struct LintArgs {
    /// The schema folder.
    #[arg(long, default_value = "schemas/avro")]
    schemas: PathBuf,
    /// The lint configuration (rules, styles, ignores); defaults to every rule as an error.
    #[arg(long)]
    config: Option<PathBuf>,
    /// `git:REF`: also check that fields added since REF carry defaults.
    #[arg(long)]
    against: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn run(args: &LintArgs) -> Result<ExitCode, ToolError> {
    let config = match &args.config {
        Some(p) => LintConfig::load(p)?,
        None => {
            let default = args.schemas.parent().map(|p| p.join("lint.toml"));
            match default.filter(|p| p.is_file()) {
                Some(p) => LintConfig::load(&p)?,
                None => LintConfig::default(),
            }
        }
    };
    let base = std::env::current_dir().ok();
    let set = ursa_catalog::load_schema_dir(
        &args.schemas,
        base.as_deref(),
        ParseOptions {
            logical_types: LogicalTypes::Strict,
        },
    )?;
    let rel_paths: Vec<String> = ursa_catalog::schema_files(&args.schemas)?
        .iter()
        .map(|p| {
            p.strip_prefix(&args.schemas)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let previous: Option<SchemaSet> = match args.against.as_deref() {
        None => None,
        Some(a) => {
            let reference = a
                .strip_prefix("git:")
                .ok_or_else(|| ToolError::Usage(format!("--against {a}: expected git:REF")))?;
            let (root, rel) = locate(&args.schemas)?;
            revisions(&root, &rel, reference, false)?
                .0
                .pop()
                .map(|r| r.set)
        }
    };
    let messages = lint(
        &LintInput {
            set: &set,
            rel_paths: &rel_paths,
            previous: previous.as_ref(),
        },
        &config,
    );
    let is_compatible = messages.iter().all(|m| !m.is_error);
    let result = SubjectResult {
        subject: args.schemas.display().to_string(),
        against: "lint".into(),
        report: Report {
            is_compatible,
            messages,
        },
        sources: vec![&set],
    };
    if args.format == Format::Human {
        let errors = result.report.messages.iter().filter(|m| m.is_error).count();
        let warnings = result.report.messages.len() - errors;
        if !result.report.messages.is_empty() {
            print!(
                "{}",
                ursa_compat::format::human(&result.report, &result.sources)
            );
        } else {
            println!(
                "lint: no findings in {} ({} files)",
                result.subject,
                rel_paths.len()
            );
        }
        if errors + warnings > 0 {
            println!(
                "lint: {errors} error(s), {warnings} warning(s) in {} ({} files)",
                result.subject,
                rel_paths.len()
            );
        }
    } else {
        print!("{}", many(args.format, std::slice::from_ref(&result)));
    }
    Ok(if is_compatible {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
