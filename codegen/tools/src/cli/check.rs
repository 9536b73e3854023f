//! `schema check --against git:REF`: every catalog subject's schema in the working tree against its history
//! on REF (every version for transitive levels, the latest otherwise), at the catalog's level.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ursa_avro::schema::{Attrs, LogicalTypes, ParseOptions, Schema, SchemaKind, SchemaSet};
use ursa_catalog::{Catalog, Compatibility};
use ursa_compat::Doc;

use crate::ToolError;
use crate::history::{Revision, locate, revisions};
use crate::output::{Format, SubjectResult, many};
use crate::subjects::{Subject, SubjectSchema, subjects};

/// Arguments of `schema check`.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// What to check against: `git:REF` (a branch, tag or commit) or `registry`.
    #[arg(long)]
    against: String,
    /// The registry URL, with `--against registry`.
    #[arg(long)]
    registry_url: Option<String>,
    /// The schema folder.
    #[arg(long, default_value = "schemas/avro")]
    schemas: PathBuf,
    /// The topic catalog.
    #[arg(long, default_value = "schemas/topics.toml")]
    catalog: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Registry credentials and TLS (with `--against registry`).
    #[command(flatten)]
    pub registry: crate::cli::RegistryArgs,
}

fn transitive(level: Compatibility) -> bool {
    matches!(
        level,
        Compatibility::BackwardTransitive
            | Compatibility::ForwardTransitive
            | Compatibility::FullTransitive
    )
}

/// A node pointing at a named type, to check it as a whole schema.
pub(crate) fn node_for(set: &SchemaSet, fullname: &str) -> Option<Schema> {
    let id = set.lookup(fullname)?;
    Some(Schema {
        kind: SchemaKind::Named(id),
        logical: None,
        attrs: Attrs::new(),
        loc: set.named(id).loc,
    })
}

/// A primitive subject's schema as a one-document set.
pub(crate) fn primitive_set(name: &str) -> Result<SchemaSet, ToolError> {
    Ok(SchemaSet::parse_str(&format!("\"{name}\""))?)
}

pub(crate) fn load_current(
    schemas: &Path,
    catalog: &Path,
) -> Result<(SchemaSet, Catalog), ToolError> {
    let base = std::env::current_dir().ok();
    let set = ursa_catalog::load_schema_dir(
        schemas,
        base.as_deref(),
        ParseOptions {
            logical_types: LogicalTypes::Strict,
        },
    )?;
    let catalog = Catalog::load(catalog)?;
    catalog.check_schemas(&set)?;
    Ok((set, catalog))
}

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode, ToolError> {
    if let Some(reference) = args.against.strip_prefix("git:") {
        return run_git(args, reference);
    }
    if args.against == "registry" {
        return crate::cli::registry_check::run(args);
    }
    Err(ToolError::Usage(format!(
        "--against {}: expected git:REF or registry",
        args.against
    )))
}

impl CheckArgs {
    pub(crate) fn registry_url(&self) -> Option<&str> {
        self.registry_url.as_deref()
    }
    pub(crate) fn format(&self) -> Format {
        self.format
    }
    pub(crate) fn paths(&self) -> (&Path, &Path) {
        (&self.schemas, &self.catalog)
    }
}

fn run_git(args: &CheckArgs, reference: &str) -> Result<ExitCode, ToolError> {
    let (set, catalog) = load_current(&args.schemas, &args.catalog)?;
    let subjects = subjects(&catalog, &set);
    let (root, rel) = locate(&args.schemas)?;
    let any_transitive = subjects.iter().any(|s| transitive(s.compatibility));
    let (revs, skipped) = revisions(&root, &rel, reference, any_transitive)?;
    for s in &skipped {
        eprintln!("warning: {s}");
    }
    let old_catalog = old_catalog(&root, &args.catalog, reference);
    let mut results = Vec::new();
    for subject in &subjects {
        results.push(check_subject(
            subject,
            &set,
            &revs,
            old_catalog.as_ref(),
            reference,
        )?);
    }
    let ok = results.iter().all(|r| r.report.is_compatible);
    print!("{}", many(args.format, &results));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The catalog as it was at `reference`, for primitive key subjects.
fn old_catalog(root: &Path, catalog: &Path, reference: &str) -> Option<Catalog> {
    let abs = std::path::absolute(catalog).ok()?.canonicalize().ok()?;
    let rel = abs.strip_prefix(root).ok()?;
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .arg("show")
        .arg(format!("{reference}:{}", rel.display()))
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Catalog::parse(rel, &String::from_utf8_lossy(&out.stdout)).ok()
}

fn check_subject<'a>(
    subject: &Subject,
    set: &'a SchemaSet,
    revs: &'a [Revision],
    old_catalog: Option<&Catalog>,
    reference: &str,
) -> Result<SubjectResult<'a>, ToolError> {
    let level = subject.compatibility;
    match &subject.schema {
        SubjectSchema::Named(full) => {
            let new_node = node_for(set, full)
                .ok_or_else(|| ToolError::Usage(format!("type {full} not found")))?;
            // Each revision's version of the type; consecutive identical versions are one version.
            let mut nodes: Vec<(&SchemaSet, Schema)> = Vec::new();
            for r in revs {
                if let Some(n) = node_for(&r.set, full) {
                    let same = nodes.last().is_some_and(|(s, prev)| {
                        s.canonical_form(prev) == r.set.canonical_form(&n)
                    });
                    if !same {
                        nodes.push((&r.set, n));
                    }
                }
            }
            if !transitive(level) && nodes.len() > 1 {
                nodes.drain(..nodes.len() - 1);
            }
            let history: Vec<Doc<'_>> =
                nodes.iter().map(|(s, n)| Doc { set: s, root: n }).collect();
            let report = ursa_compat::check(
                level,
                Doc {
                    set,
                    root: &new_node,
                },
                &history,
            );
            let mut sources = vec![set];
            sources.extend(nodes.iter().map(|(s, _)| *s));
            Ok(SubjectResult {
                subject: subject.name.clone(),
                against: describe(level, history.len(), reference),
                report,
                sources,
            })
        }
        SubjectSchema::Primitive(p) => {
            let old = old_catalog
                .and_then(|c| {
                    c.topics
                        .iter()
                        .find(|t| t.key_subject().as_deref() == Some(subject.name.as_str()))
                })
                .and_then(|t| t.key.as_ref().map(|k| k.name().to_owned()));
            let new = primitive_set(p)?;
            let report = match old {
                Some(o) => {
                    let old = primitive_set(&o)?;
                    ursa_compat::check(level, Doc::last(&new), &[Doc::last(&old)])
                }
                None => ursa_compat::check(level, Doc::last(&new), &[]),
            };
            Ok(SubjectResult {
                subject: subject.name.clone(),
                against: describe(level, 1, reference),
                report,
                sources: vec![],
            })
        }
    }
}

fn describe(level: Compatibility, versions: usize, reference: &str) -> String {
    match versions {
        0 => format!("{level}: new on {reference}"),
        1 => format!("{level} against {reference}"),
        n => format!("{level} against {n} versions on {reference}"),
    }
}
