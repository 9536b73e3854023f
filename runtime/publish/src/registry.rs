//! The schema registry side: writer schema ids looked up once per (subject, schema) and cached (or registered,
//! when allowed), and writer schemas fetched by id with their references, for decoding.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::OnceCell;
use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile, fingerprint64};
use ursa_registry::{ClientError, Reference, RegistryClient, VersionId};

use crate::{Error, SchemaIdPolicy};

/// The most schema documents one writer schema may pull in through references (transitively).
const MAX_REFERENCES: usize = 256;
/// How many of a subject's versions (newest first) are compared by canonical form when the exact lookup fails.
const MAX_SCANNED_VERSIONS: usize = 100;

/// The Avro schema of string keys, and its fingerprint.
pub(crate) const STRING_SCHEMA: &str = "\"string\"";

/// The fingerprint of the `"string"` schema's canonical form (which is itself).
pub(crate) fn string_fingerprint() -> u64 {
    fingerprint64(STRING_SCHEMA.as_bytes())
}

/// One id per (fingerprint of the canonical form, subject), resolved once; by fingerprint first, so that the
/// per-send lookup allocates nothing (a fingerprint is almost always under one subject).
type Cells = HashMap<u64, Vec<(Box<str>, Arc<OnceCell<u32>>)>>;

/// Schema ids by (subject, fingerprint of the canonical form), each resolved once.
pub(crate) struct SchemaIds {
    client: RegistryClient,
    policy: SchemaIdPolicy,
    timeout: Duration,
    cells: Mutex<Cells>,
}

impl SchemaIds {
    pub(crate) fn new(client: RegistryClient, policy: SchemaIdPolicy, timeout: Duration) -> Self {
        SchemaIds {
            client,
            policy,
            timeout,
            cells: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// The id of `schema` (with canonical-form `fingerprint`) under `subject`: cached after the first success.
    pub(crate) async fn id(
        &self,
        subject: &str,
        schema: &str,
        fingerprint: u64,
        type_name: &str,
    ) -> Result<u32, Error> {
        let cell = {
            let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
            let under = cells.entry(fingerprint).or_default();
            match under.iter().find(|(s, _)| &**s == subject) {
                Some((_, cell)) => Arc::clone(cell),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    under.push((subject.into(), Arc::clone(&cell)));
                    cell
                }
            }
        };
        if let Some(id) = cell.get() {
            return Ok(*id);
        }
        let id = cell
            .get_or_try_init(|| {
                deadline(
                    subject,
                    self.timeout,
                    self.resolve(subject, schema, fingerprint, type_name),
                )
            })
            .await?;
        Ok(*id)
    }

    /// Whether the id of (`subject`, `fingerprint`) is cached.
    pub(crate) fn is_cached(&self, subject: &str, fingerprint: u64) -> bool {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.get(&fingerprint).is_some_and(|under| {
            under
                .iter()
                .any(|(s, c)| &**s == subject && c.get().is_some())
        })
    }

    async fn resolve(
        &self,
        subject: &str,
        schema: &str,
        fingerprint: u64,
        type_name: &str,
    ) -> Result<u32, Error> {
        let registry = |source| Error::Registry {
            subject: subject.to_owned(),
            source,
        };
        if let Some((id, _)) = self
            .client
            .lookup(subject, schema, &[])
            .await
            .map_err(registry)?
        {
            tracing::debug!(subject, id, "writer schema found by lookup");
            return Ok(id);
        }
        if let Some(id) = self.scan(subject, fingerprint).await? {
            tracing::debug!(subject, id, "writer schema found by canonical form");
            return Ok(id);
        }
        match self.policy {
            SchemaIdPolicy::AutoRegister => {
                let id = self
                    .client
                    .register(subject, schema, &[])
                    .await
                    .map_err(registry)?;
                tracing::info!(subject, id, "registered the writer schema");
                Ok(id)
            }
            SchemaIdPolicy::LookupOnly => Err(Error::SchemaNotRegistered {
                subject: subject.to_owned(),
                type_name: type_name.to_owned(),
                fingerprint,
            }),
        }
    }

    /// The newest version of `subject` whose schema (with its references) has the canonical form `fingerprint`:
    /// the same schema registered with references (`ursa schema register` stores the shared types as their own
    /// subjects), or with other docs, defaults or aliases, which do not change the encoding.
    async fn scan(&self, subject: &str, fingerprint: u64) -> Result<Option<u32>, Error> {
        let registry = |source| Error::Registry {
            subject: subject.to_owned(),
            source,
        };
        let versions = match self.client.versions(subject).await {
            Ok(v) => v,
            Err(ClientError::SubjectNotFound { .. }) => return Ok(None),
            Err(e) => return Err(registry(e)),
        };
        for v in versions.iter().rev().take(MAX_SCANNED_VERSIONS) {
            let found = self.client.version(subject, *v).await.map_err(registry)?;
            if found
                .schema_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("AVRO"))
            {
                continue;
            }
            let label = format!("{subject} version {v}");
            let Ok(set) = schema_set(&self.client, &label, &found.schema, &found.references).await
            else {
                continue;
            };
            let canonical = set.canonical_form(set.last_root());
            if fingerprint64(canonical.as_bytes()) == fingerprint {
                return Ok(Some(found.id));
            }
        }
        Ok(None)
    }
}

/// Runs a registry request with a deadline.
pub(crate) async fn deadline<T>(
    subject: &str,
    after: Duration,
    request: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(after, request)
        .await
        .unwrap_or_else(|_| {
            Err(Error::RegistryTimeout {
                subject: subject.to_owned(),
                after,
            })
        })
}

/// A writer schema fetched by id, parsed with everything it references (the schema last).
pub(crate) async fn writer_by_id(client: &RegistryClient, id: u32) -> Result<SchemaSet, Error> {
    let subject = format!("schema id {id}");
    let info = client
        .schema_info_by_id(id)
        .await
        .map_err(|source| Error::Registry {
            subject: subject.clone(),
            source,
        })?;
    if let Some(t) = info
        .schema_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("AVRO"))
    {
        return Err(Error::Decode {
            topic: String::new(),
            partition: -1,
            offset: -1,
            problem: format!("schema id {id} is a {t} schema, not Avro"),
        });
    }
    schema_set(client, &subject, &info.schema, &info.references).await
}

/// Parses `text` with the documents its `references` lead to (transitively, each once).
pub(crate) async fn schema_set(
    client: &RegistryClient,
    label: &str,
    text: &str,
    references: &[Reference],
) -> Result<SchemaSet, Error> {
    let invalid = |problem: String| Error::Decode {
        topic: String::new(),
        partition: -1,
        offset: -1,
        problem: format!("writer schema ({label}): {problem}"),
    };
    let mut files = Vec::new();
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    let mut pending: Vec<Reference> = references.iter().rev().cloned().collect();
    while let Some(r) = pending.pop() {
        if !seen.insert((r.subject.clone(), r.version)) {
            continue;
        }
        if seen.len() > MAX_REFERENCES {
            return Err(invalid(format!(
                "it references more than {MAX_REFERENCES} schemas"
            )));
        }
        let version = match r.version {
            -1 => VersionId::Latest,
            v => VersionId::Number(u32::try_from(v).ok().filter(|v| *v > 0).ok_or_else(|| {
                invalid(format!(
                    "reference `{}` names invalid version {v} of subject `{}`",
                    r.name, r.subject
                ))
            })?),
        };
        let found = client
            .version(&r.subject, version)
            .await
            .map_err(|source| Error::Registry {
                subject: r.subject.clone(),
                source,
            })?;
        pending.extend(found.references.iter().rev().cloned());
        files.push(SourceFile::new(
            format!("{} version {}", found.subject, found.version),
            found.schema,
        ));
    }
    files.push(SourceFile::new(label.to_owned(), text.to_owned()));
    let options = ParseOptions {
        logical_types: LogicalTypes::Lenient,
    };
    SchemaSet::parse(files, options).map_err(|e| invalid(e.to_string()))
}
