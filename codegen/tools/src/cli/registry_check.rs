//! `schema check --against registry`: every catalog subject against the versions a live registry holds.

use std::collections::HashMap;
use std::process::ExitCode;

use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use ursa_catalog::Compatibility;
use ursa_compat::Doc;
use ursa_registry::{ClientError, RegisteredSchema, RegistryClient, VersionId};

use crate::ToolError;
use crate::cli::CheckArgs;
use crate::cli::check::{load_current, node_for, primitive_set};
use crate::cli::registry::{block_on, client, is_unusable};
use crate::output::{SubjectResult, many};
use crate::subjects::{SubjectSchema, subjects};

fn transitive(level: Compatibility) -> bool {
    matches!(
        level,
        Compatibility::BackwardTransitive
            | Compatibility::ForwardTransitive
            | Compatibility::FullTransitive
    )
}

/// Fetches a registered schema with its references (recursively) as one parsed set; the schema is the last
/// document.
async fn fetch_set(
    client: &RegistryClient,
    registered: &RegisteredSchema,
    cache: &mut HashMap<(String, i32), RegisteredSchema>,
) -> Result<SchemaSet, ClientError> {
    let mut docs: Vec<SourceFile> = Vec::new();
    let mut stack: Vec<(String, i32, bool)> = registered
        .references
        .iter()
        .map(|r| (r.subject.clone(), r.version, false))
        .collect();
    let mut seen = std::collections::HashSet::new();
    // Depth-first, references before the schemas that use them.
    let mut ordered: Vec<RegisteredSchema> = Vec::new();
    while let Some((subject, version, expanded)) = stack.pop() {
        let key = (subject.clone(), version);
        if expanded {
            if let Some(s) = cache.get(&key) {
                ordered.push(s.clone());
            }
            continue;
        }
        if !seen.insert(key.clone()) {
            continue;
        }
        let s = match cache.get(&key) {
            Some(s) => s.clone(),
            None => {
                let v = client
                    .version(
                        &subject,
                        VersionId::Number(u32::try_from(version).unwrap_or(0)),
                    )
                    .await?;
                cache.insert(key.clone(), v.clone());
                v
            }
        };
        stack.push((subject, version, true));
        stack.extend(
            s.references
                .iter()
                .map(|r| (r.subject.clone(), r.version, false)),
        );
    }
    for s in &ordered {
        docs.push(SourceFile::new(
            format!("registry:{} v{}", s.subject, s.version),
            s.schema.clone(),
        ));
    }
    docs.push(SourceFile::new(
        format!("registry:{} v{}", registered.subject, registered.version),
        registered.schema.clone(),
    ));
    SchemaSet::parse(
        docs,
        ParseOptions {
            logical_types: LogicalTypes::Lenient,
        },
    )
    .map_err(|e| ClientError::Protocol {
        status: 200,
        problem: format!(
            "the registry's schema for {} v{} does not parse: {e}",
            registered.subject, registered.version
        ),
        snippet: registered.schema.chars().take(200).collect(),
    })
}

pub(crate) fn run(args: &CheckArgs) -> Result<ExitCode, ToolError> {
    let url = args
        .registry_url()
        .ok_or_else(|| ToolError::Usage("--against registry needs --registry-url URL".into()))?
        .to_owned();
    let (schemas, catalog_path) = args.paths();
    let (set, catalog) = load_current(schemas, catalog_path)?;
    let client = client(&url, &args.registry)?;
    let subjects = subjects(&catalog, &set);
    let fetched: Vec<(usize, Vec<SchemaSet>)> = block_on(async {
        let mut cache = HashMap::new();
        let mut out = Vec::new();
        for (i, s) in subjects.iter().enumerate() {
            let versions = match client.versions(&s.name).await {
                Ok(v) => v,
                Err(ClientError::SubjectNotFound { .. }) => Vec::new(),
                Err(e) => return Err(e),
            };
            let wanted: Vec<u32> = if transitive(s.compatibility) {
                versions
            } else {
                versions.last().copied().into_iter().collect()
            };
            let mut sets = Vec::new();
            for v in wanted {
                let registered = client.version(&s.name, VersionId::Number(v)).await?;
                sets.push(fetch_set(&client, &registered, &mut cache).await?);
            }
            out.push((i, sets));
        }
        Ok(out)
    })?
    .map_err(|e| {
        if is_unusable(&e) {
            ToolError::Usage(format!("registry {url}: {e}"))
        } else {
            ToolError::Usage(format!("registry {url} answered: {e}"))
        }
    })?;
    let mut results = Vec::new();
    let mut primitives: Vec<SchemaSet> = Vec::new();
    for s in &subjects {
        if let SubjectSchema::Primitive(p) = &s.schema {
            primitives.push(primitive_set(p)?);
        }
    }
    let mut prim_iter = primitives.iter();
    let nodes: Vec<Option<ursa_avro::schema::Schema>> = subjects
        .iter()
        .map(|s| match &s.schema {
            SubjectSchema::Named(n) => node_for(&set, n),
            SubjectSchema::Primitive(_) => None,
        })
        .collect();
    for ((i, sets), node) in fetched.iter().zip(&nodes) {
        let s = &subjects[*i];
        let new = match (&s.schema, node) {
            (SubjectSchema::Named(_), Some(n)) => Doc { set: &set, root: n },
            (SubjectSchema::Primitive(_), _) => match prim_iter.next() {
                Some(p) => Doc::last(p),
                None => continue,
            },
            _ => continue,
        };
        let history: Vec<Doc<'_>> = sets.iter().map(Doc::last).collect();
        let report = ursa_compat::check(s.compatibility, new, &history);
        let against = match history.len() {
            0 => format!("{}: new subject", s.compatibility),
            1 => format!("{} against the registry's latest version", s.compatibility),
            n => format!("{} against {n} registry versions", s.compatibility),
        };
        let mut sources = vec![&set];
        sources.extend(sets.iter());
        results.push(SubjectResult {
            subject: s.name.clone(),
            against,
            report,
            sources,
        });
    }
    let ok = results.iter().all(|r| r.report.is_compatible);
    print!("{}", many(args.format(), &results));
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
