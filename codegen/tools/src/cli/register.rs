//! `schema register`: computes the plan (new versions, unchanged subjects, compatibility levels to set),
//! prints it, then applies it in dependency order — references first — unless `--dry-run`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use ursa_registry::{ClientError, Reference, RegistryClient};

use crate::ToolError;
use crate::cli::RegistryArgs;
use crate::cli::check::load_current;
use crate::cli::registry::{block_on, client, is_unusable};
use crate::plan::{PlannedSubject, plan};

/// Arguments of `schema register`.
#[derive(clap::Args, Debug)]
pub struct RegisterArgs {
    /// The registry URL.
    #[arg(long)]
    registry_url: String,
    /// Print the plan only.
    #[arg(long)]
    dry_run: bool,
    /// The schema folder.
    #[arg(long, default_value = "schemas/avro")]
    schemas: PathBuf,
    /// The topic catalog.
    #[arg(long, default_value = "schemas/topics.toml")]
    catalog: PathBuf,
    /// Registry credentials and TLS.
    #[command(flatten)]
    registry: RegistryArgs,
}

/// What a subject needs.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Unchanged { id: u32, version: u32 },
    NewVersion,
}

struct Outcome {
    applied: Vec<String>,
    failed: Option<String>,
    not_attempted: Vec<String>,
}

pub(crate) fn run(args: &RegisterArgs) -> Result<ExitCode, ToolError> {
    let (set, catalog) = load_current(&args.schemas, &args.catalog)?;
    let planned = plan(&catalog, &set);
    let client = client(&args.registry_url, &args.registry)?;
    block_on(run_async(args, &client, &planned))?
}

async fn run_async(
    args: &RegisterArgs,
    client: &RegistryClient,
    planned: &[PlannedSubject],
) -> Result<ExitCode, ToolError> {
    // The plan: each subject's state and level, asking the registry read-only questions.
    let mut versions: BTreeMap<String, u32> = BTreeMap::new();
    let mut steps = Vec::with_capacity(planned.len());
    for p in planned {
        let refs = references(p, &versions);
        let step = match refs {
            // A reference that will only get its version when applied: the subject is new as well.
            None => Step::NewVersion,
            Some(refs) => match client.lookup(&p.subject, &p.schema, &refs).await {
                Ok(Some((id, version))) => {
                    versions.insert(p.subject.clone(), version);
                    Step::Unchanged { id, version }
                }
                Ok(None) => Step::NewVersion,
                Err(e) => return Err(registry_error(&args.registry_url, &e)),
            },
        };
        // A subject that does not exist yet gets its level set explicitly, whatever the global level.
        let exists = match client.versions(&p.subject).await {
            Ok(v) => !v.is_empty(),
            Err(ClientError::SubjectNotFound { .. }) => false,
            Err(e) => return Err(registry_error(&args.registry_url, &e)),
        };
        let level = if exists {
            match client.get_config(Some(&p.subject)).await {
                Ok(level) => Some(level),
                Err(ClientError::SubjectNotFound { .. }) => None,
                Err(e) => return Err(registry_error(&args.registry_url, &e)),
            }
        } else {
            None
        };
        steps.push((step, level));
    }
    let new = steps.iter().filter(|(s, _)| *s == Step::NewVersion).count();
    let levels = planned
        .iter()
        .zip(&steps)
        .filter(|(p, (_, l))| *l != Some(p.compatibility))
        .count();
    println!(
        "plan: {new} new version(s), {} unchanged, {levels} compatibility level(s) to set",
        planned.len() - new
    );
    for (p, (step, level)) in planned.iter().zip(&steps) {
        let refs = if p.references.is_empty() {
            String::new()
        } else {
            format!(
                " (references {})",
                p.references
                    .iter()
                    .map(|r| r.subject.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        match step {
            Step::Unchanged { id, version } => println!(
                "  = {}: unchanged (id {id}, version {version}){refs}",
                p.subject
            ),
            Step::NewVersion => println!("  + {}: new version{refs}", p.subject),
        }
        if *level != Some(p.compatibility) {
            let from = level.map_or_else(|| "unset".to_owned(), |l| l.as_str().to_owned());
            println!(
                "  ~ {}: compatibility {from} -> {}",
                p.subject, p.compatibility
            );
        }
    }
    if args.dry_run {
        println!("dry run: nothing applied");
        return Ok(ExitCode::SUCCESS);
    }
    let outcome = apply(client, planned, &steps, &mut versions).await;
    println!("applied {} change(s)", outcome.applied.len());
    match outcome.failed {
        None => Ok(ExitCode::SUCCESS),
        Some(failure) => {
            eprintln!("error: {failure}");
            if !outcome.applied.is_empty() {
                eprintln!("applied before the failure: {}", outcome.applied.join(", "));
            }
            if !outcome.not_attempted.is_empty() {
                eprintln!("not applied: {}", outcome.not_attempted.join(", "));
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// The Confluent references of a subject, or `None` while a referenced subject's version is unknown.
fn references(p: &PlannedSubject, versions: &BTreeMap<String, u32>) -> Option<Vec<Reference>> {
    p.references
        .iter()
        .map(|r| {
            versions.get(&r.subject).map(|v| Reference {
                name: r.name.clone(),
                subject: r.subject.clone(),
                version: i32::try_from(*v).unwrap_or(i32::MAX),
            })
        })
        .collect()
}

fn registry_error(url: &str, e: &ClientError) -> ToolError {
    if is_unusable(e) {
        ToolError::Usage(format!("registry {url}: {e}"))
    } else {
        ToolError::Usage(format!("registry {url} answered: {e}"))
    }
}

async fn apply(
    client: &RegistryClient,
    planned: &[PlannedSubject],
    steps: &[(Step, Option<ursa_registry::CompatibilityLevel>)],
    versions: &mut BTreeMap<String, u32>,
) -> Outcome {
    let bar = (std::io::stderr().is_terminal() && planned.len() > 5).then(|| {
        let bar = indicatif::ProgressBar::new(planned.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut out = Outcome {
        applied: Vec::new(),
        failed: None,
        not_attempted: Vec::new(),
    };
    for (i, (p, (step, level))) in planned.iter().zip(steps).enumerate() {
        if let Some(bar) = &bar {
            bar.set_message(p.subject.clone());
            bar.set_position(i as u64);
        }
        let result: Result<(), String> = async {
            // The level first: the new version is checked at the level the catalog asks for.
            if *level != Some(p.compatibility) {
                client
                    .set_config(Some(&p.subject), p.compatibility)
                    .await
                    .map_err(|e| format!("setting the compatibility of {}: {e}", p.subject))?;
                out.applied
                    .push(format!("{} level {}", p.subject, p.compatibility));
            }
            if *step == Step::NewVersion {
                let refs = references(p, versions)
                    .ok_or_else(|| format!("{}: a referenced subject has no version", p.subject))?;
                let id = client
                    .register(&p.subject, &p.schema, &refs)
                    .await
                    .map_err(|e| match e {
                        ClientError::Incompatible { .. } => format!(
                            "{} rejected by the registry as incompatible: {e}",
                            p.subject
                        ),
                        other => format!("registering {}: {other}", p.subject),
                    })?;
                let found = client
                    .lookup(&p.subject, &p.schema, &refs)
                    .await
                    .map_err(|e| format!("looking up {} after registering: {e}", p.subject))?;
                let (_, version) = found.ok_or_else(|| {
                    format!("{} registered (id {id}) but not found by lookup", p.subject)
                })?;
                versions.insert(p.subject.clone(), version);
                out.applied
                    .push(format!("{} version {version} (id {id})", p.subject));
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            out.failed = Some(e);
            out.not_attempted = planned[i + 1..]
                .iter()
                .zip(&steps[i + 1..])
                .filter(|(p, (s, l))| *s == Step::NewVersion || *l != Some(p.compatibility))
                .map(|(p, _)| p.subject.clone())
                .collect();
            break;
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    out
}
