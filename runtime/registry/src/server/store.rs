//! The registry's state: schemas by id within their context, subjects with their versions, compatibility
//! levels and modes; queries over it, and the one place mutations are applied (live, after logging, and on
//! replay).
//!
//! Schema contexts (Confluent's): a subject `:.staging:orders-value` lives in context `.staging`, one without
//! that prefix in the default context `.`. Each context has its own schema ids (the same id may be another
//! schema in another context) and its own compatibility and mode defaults (set on the subject `:.staging:`);
//! an unqualified reference resolves in the referring schema's context.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use axum::body::Bytes;
use ursa_avro::schema::SchemaSet;

use super::Error;
use super::error::ApiError;
use super::persist::{Log, Record};
use super::schema::{self, Contract, Parsed};
use crate::types::{CompatibilityLevel, Mode, Reference, SchemaInfo, VersionId, parse_level};

/// The default context.
pub(crate) const DEFAULT_CONTEXT: &str = ".";

/// The context of `subject`: `.name` for `:.name:rest`, else the default context `.`.
pub(crate) fn context_of(subject: &str) -> &str {
    subject
        .strip_prefix(':')
        .and_then(|rest| rest.split_once(':'))
        .map(|(ctx, _)| ctx)
        .filter(|ctx| ctx.starts_with('.'))
        .unwrap_or(DEFAULT_CONTEXT)
}

/// `subject` as a subject of context `ctx`: unchanged when already qualified or when `ctx` is the default one.
pub(crate) fn in_context(subject: &str, ctx: &str) -> String {
    if ctx == DEFAULT_CONTEXT || subject.starts_with(":.") {
        subject.to_owned()
    } else {
        format!(":{ctx}:{subject}")
    }
}

/// A registered schema (shared by every subject version of its context with the same schema and references).
#[derive(Debug)]
pub(crate) struct SchemaEntry {
    /// Its context.
    pub(crate) context: Arc<str>,
    pub(crate) text: Arc<str>,
    pub(crate) references: Vec<Reference>,
    /// Confluent's data-contract metadata and rules, as registered.
    pub(crate) contract: Contract,
    /// `None` only if a logged schema no longer parses (then it takes part in no compatibility check).
    pub(crate) parsed: Option<Parsed>,
    /// The body of `GET /schemas/ids/{id}`, serialized once.
    pub(crate) by_id: Bytes,
}

impl SchemaEntry {
    fn key(&self) -> Option<&str> {
        self.parsed.as_ref().map(|p| p.key.as_str())
    }

    fn schema_key(&self) -> Option<&str> {
        self.parsed.as_ref().map(|p| p.schema_key.as_str())
    }
}

/// A version of a subject.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionEntry {
    pub(crate) id: u32,
    pub(crate) deleted: bool,
}

/// A subject: its versions (soft-deleted ones kept until permanently deleted) and settings.
#[derive(Debug, Default)]
pub(crate) struct Subject {
    pub(crate) versions: BTreeMap<u32, VersionEntry>,
    pub(crate) compatibility: Option<CompatibilityLevel>,
    pub(crate) mode: Option<Mode>,
}

impl Subject {
    fn is_empty(&self) -> bool {
        self.versions.is_empty() && self.compatibility.is_none() && self.mode.is_none()
    }
}

/// A planned mutation: the record to log, and the parsed schema of a registration (to avoid parsing twice).
#[derive(Debug)]
pub(crate) struct Mutation {
    pub(crate) record: Record,
    pub(crate) parsed: Option<Parsed>,
}

impl From<Record> for Mutation {
    fn from(record: Record) -> Self {
        Mutation {
            record,
            parsed: None,
        }
    }
}

/// The schemas of one context, by id.
#[derive(Debug)]
struct Ids {
    schemas: HashMap<u32, Arc<SchemaEntry>>,
    by_key: HashMap<String, u32>,
    next: u32,
}

impl Default for Ids {
    fn default() -> Self {
        Ids {
            schemas: HashMap::new(),
            by_key: HashMap::new(),
            next: 1,
        }
    }
}

/// The whole state.
#[derive(Debug, Default)]
pub(crate) struct Store {
    /// Schemas by context.
    contexts: BTreeMap<String, Ids>,
    subjects: BTreeMap<String, Subject>,
    compatibility: Option<CompatibilityLevel>,
    mode: Mode,
    log: Option<Log>,
}

impl Store {
    /// An empty, unpersisted store.
    pub(crate) fn in_memory() -> Store {
        Store::default()
    }

    /// Opens the log at `path` and replays it.
    pub(crate) fn open(path: &Path) -> Result<Store, Error> {
        let (log, records) = Log::open(path)?;
        let mut store = Store::in_memory();
        let count = records.len();
        for (line, record) in records {
            store
                .apply(record, None)
                .map_err(|message| Error::Corrupt {
                    path: path.to_owned(),
                    line,
                    message,
                })?;
        }
        tracing::info!(
            path = %log.path().display(),
            records = count,
            schemas = store.contexts.values().map(|c| c.schemas.len()).sum::<usize>(),
            subjects = store.subjects.len(),
            "replayed the data file"
        );
        store.log = Some(log);
        Ok(store)
    }

    // ---- queries ----

    /// Schema `id` of context `ctx`.
    pub(crate) fn schema(&self, ctx: &str, id: u32) -> Option<&Arc<SchemaEntry>> {
        self.contexts.get(ctx)?.schemas.get(&id)
    }

    /// The contexts that hold a subject or a schema, the default one always, sorted.
    pub(crate) fn context_names(&self) -> Vec<String> {
        let mut names: std::collections::BTreeSet<String> = self.contexts.keys().cloned().collect();
        names.extend(self.subjects.keys().map(|s| context_of(s).to_owned()));
        names.insert(DEFAULT_CONTEXT.to_owned());
        names.into_iter().collect()
    }

    pub(crate) fn subject(&self, name: &str) -> Option<&Subject> {
        self.subjects.get(name)
    }

    pub(crate) fn subjects(&self) -> impl Iterator<Item = (&String, &Subject)> {
        self.subjects.iter()
    }

    /// Whether the subject has a version (a non-deleted one unless `include_deleted`).
    pub(crate) fn has_subject(&self, name: &str, include_deleted: bool) -> bool {
        self.subjects
            .get(name)
            .is_some_and(|s| s.versions.values().any(|v| include_deleted || !v.deleted))
    }

    /// A version of a subject (`Latest`: the highest one that qualifies).
    pub(crate) fn find_version(
        &self,
        subject: &str,
        version: VersionId,
        include_deleted: bool,
    ) -> Option<(u32, VersionEntry)> {
        let s = self.subjects.get(subject)?;
        match version {
            VersionId::Latest => s
                .versions
                .iter()
                .rev()
                .find(|(_, v)| include_deleted || !v.deleted)
                .map(|(n, v)| (*n, *v)),
            VersionId::Number(n) => s
                .versions
                .get(&n)
                .filter(|v| include_deleted || !v.deleted)
                .map(|v| (n, *v)),
        }
    }

    /// The latest version of `subject` holding the schema identified by `key` ([`Parsed::key`]).
    pub(crate) fn find_in_subject(
        &self,
        subject: &str,
        key: &str,
        include_deleted: bool,
    ) -> Option<(u32, u32)> {
        self.find_by(subject, include_deleted, |e| e.key() == Some(key))
    }

    /// The latest version of `subject` holding the schema of `schema_key` ([`Parsed::schema_key`]), whatever
    /// its metadata and rule set.
    pub(crate) fn find_schema_in_subject(
        &self,
        subject: &str,
        schema_key: &str,
        include_deleted: bool,
    ) -> Option<(u32, u32)> {
        self.find_by(subject, include_deleted, |e| {
            e.schema_key() == Some(schema_key)
        })
    }

    fn find_by(
        &self,
        subject: &str,
        include_deleted: bool,
        matches: impl Fn(&SchemaEntry) -> bool,
    ) -> Option<(u32, u32)> {
        let s = self.subjects.get(subject)?;
        s.versions
            .iter()
            .rev()
            .filter(|(_, v)| include_deleted || !v.deleted)
            .find(|(_, v)| {
                self.schema(context_of(subject), v.id)
                    .is_some_and(|e| matches(e))
            })
            .map(|(n, v)| (*n, v.id))
    }

    /// The metadata and rule set of `subject`'s latest version (what a registration without them inherits).
    pub(crate) fn latest_contract(&self, subject: &str) -> Contract {
        self.find_version(subject, VersionId::Latest, false)
            .and_then(|(_, v)| self.schema(context_of(subject), v.id))
            .map(|e| e.contract.clone())
            .unwrap_or_default()
    }

    /// The id of an identical schema registered anywhere in context `ctx`.
    pub(crate) fn id_for_key(&self, ctx: &str, key: &str) -> Option<u32> {
        self.contexts.get(ctx)?.by_key.get(key).copied()
    }

    /// The id a new schema of context `ctx` gets.
    pub(crate) fn next_id(&self, ctx: &str) -> u32 {
        self.contexts.get(ctx).map_or(1, |c| c.next)
    }

    /// The version a new registration under `subject` gets (after every version, deleted ones included).
    pub(crate) fn next_version(&self, subject: &str) -> u32 {
        self.subjects
            .get(subject)
            .and_then(|s| s.versions.keys().next_back())
            .map_or(1, |v| v + 1)
    }

    pub(crate) fn global_level(&self) -> Option<CompatibilityLevel> {
        self.compatibility
    }

    /// The settings subject of `subject`'s context (`:.name:`), if it is not in the default one.
    fn context_subject(subject: &str) -> Option<String> {
        let ctx = context_of(subject);
        (ctx != DEFAULT_CONTEXT).then(|| format!(":{ctx}:"))
    }

    /// The level checks use: the subject's, else its context's, else the global one, else BACKWARD.
    pub(crate) fn effective_level(&self, subject: &str) -> CompatibilityLevel {
        let of = |s: &str| self.subjects.get(s).and_then(|s| s.compatibility);
        of(subject)
            .or_else(|| Self::context_subject(subject).and_then(|c| of(&c)))
            .or(self.compatibility)
            .unwrap_or_default()
    }

    pub(crate) fn global_mode(&self) -> Mode {
        self.mode
    }

    /// The subject's mode, else its context's, else the global one (a global READONLY_OVERRIDE wins).
    pub(crate) fn effective_mode(&self, subject: &str) -> Mode {
        if self.mode == Mode::ReadOnlyOverride {
            return self.mode;
        }
        let of = |s: &str| self.subjects.get(s).and_then(|s| s.mode);
        of(subject)
            .or_else(|| Self::context_subject(subject).and_then(|c| of(&c)))
            .unwrap_or(self.mode)
    }

    /// Parsed non-deleted versions of `subject`, oldest first.
    pub(crate) fn history(&self, subject: &str) -> Vec<Arc<SchemaSet>> {
        let Some(s) = self.subjects.get(subject) else {
            return Vec::new();
        };
        s.versions
            .values()
            .filter(|v| !v.deleted)
            .filter_map(|v| self.parsed_set(context_of(subject), v.id))
            .collect()
    }

    /// The parsed documents of schema `id` of context `ctx`.
    pub(crate) fn parsed_set(&self, ctx: &str, id: u32) -> Option<Arc<SchemaSet>> {
        self.schema(ctx, id)
            .and_then(|e| e.parsed.as_ref())
            .map(|p| Arc::clone(&p.set))
    }

    /// Ids of the schemas that reference `subject`'s `version` (an unqualified reference names a subject of
    /// the referring schema's context).
    pub(crate) fn referenced_by(&self, subject: &str, version: u32) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .contexts
            .values()
            .flat_map(|c| c.schemas.iter())
            .filter(|(_, e)| {
                e.references.iter().any(|r| {
                    in_context(&r.subject, &e.context) == subject && r.version == version as i32
                })
            })
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Checks references exist (an unqualified subject in context `ctx`), resolving version `-1` to the
    /// subject's latest version.
    pub(crate) fn normalize_references(
        &self,
        ctx: &str,
        references: Vec<Reference>,
    ) -> Result<Vec<Reference>, String> {
        references
            .into_iter()
            .map(|mut r| {
                let version = match r.version {
                    -1 => VersionId::Latest,
                    n if n >= 1 => VersionId::Number(n as u32),
                    n => {
                        return Err(format!("reference {:?} has invalid version {n}", r.name));
                    }
                };
                let (n, _) = self
                    .find_version(&in_context(&r.subject, ctx), version, true)
                    .ok_or_else(|| {
                        format!(
                            "reference {:?}: subject {:?} version {} not found",
                            r.name, r.subject, r.version
                        )
                    })?;
                r.version = n as i32;
                Ok(r)
            })
            .collect()
    }

    /// Parses `text` (of context `ctx`) with the schemas its (normalized) `references` lead to.
    pub(crate) fn prepare(
        &self,
        ctx: &str,
        text: &str,
        references: &[Reference],
        contract: &Contract,
    ) -> Result<Parsed, String> {
        let mut deps = Vec::new();
        let mut seen = HashSet::new();
        for r in references {
            let subject = in_context(&r.subject, ctx);
            let dep_ctx = context_of(&subject).to_owned();
            let id = self
                .find_version(&subject, VersionId::Number(r.version.max(0) as u32), true)
                .map(|(_, v)| v.id)
                .ok_or_else(|| {
                    format!(
                        "reference {:?}: subject {:?} version {} not found",
                        r.name, r.subject, r.version
                    )
                })?;
            let entry = self
                .schema(&dep_ctx, id)
                .ok_or_else(|| format!("reference {:?}: schema {id} not found", r.name))?;
            let transitive = entry
                .parsed
                .as_ref()
                .map(|p| p.deps.as_slice())
                .unwrap_or(&[]);
            for dep in transitive.iter().cloned().chain([(dep_ctx.clone(), id)]) {
                if seen.insert(dep.clone()) {
                    let t = self
                        .schema(&dep.0, dep.1)
                        .map(|e| Arc::clone(&e.text))
                        .ok_or_else(|| format!("referenced schema {} not found", dep.1))?;
                    deps.push((dep, t));
                }
            }
        }
        schema::parse(text, references, contract, deps)
    }

    // ---- mutations ----

    /// Logs (and syncs) `mutation`, then applies it.
    pub(crate) async fn commit(&mut self, mutation: Mutation) -> Result<(), ApiError> {
        if let Some(log) = self.log.as_mut() {
            log.append(&mutation.record).await.map_err(|e| {
                tracing::error!(error = %e, "cannot persist a mutation");
                ApiError::store(format!("Error in the backend data store: {e}"))
            })?;
        }
        self.apply(mutation.record, mutation.parsed).map_err(|e| {
            tracing::error!(error = %e, "cannot apply a logged mutation");
            ApiError::store(format!("Error in the backend data store: {e}"))
        })
    }

    /// Applies a mutation (already validated, or read back from the log).
    pub(crate) fn apply(&mut self, record: Record, parsed: Option<Parsed>) -> Result<(), String> {
        match record {
            Record::Register {
                subject,
                version,
                id,
                schema,
                references,
                metadata,
                rule_set,
            } => {
                let contract = Contract { metadata, rule_set };
                if self
                    .subjects
                    .get(&subject)
                    .is_some_and(|s| s.versions.contains_key(&version))
                {
                    return Err(format!("subject {subject:?} already has version {version}"));
                }
                let ctx = context_of(&subject).to_owned();
                if self.schema(&ctx, id).is_none() {
                    let parsed = match parsed {
                        Some(p) => Some(p),
                        None => match self.prepare(&ctx, &schema, &references, &contract) {
                            Ok(p) => Some(p),
                            Err(e) => {
                                tracing::warn!(id, error = %e, "a stored schema no longer parses");
                                None
                            }
                        },
                    };
                    let info = SchemaInfo {
                        schema: schema.clone(),
                        schema_type: None,
                        references: references.clone(),
                        metadata: contract.metadata.clone(),
                        rule_set: contract.rule_set.clone(),
                    };
                    let by_id = Bytes::from(serde_json::to_vec(&info).map_err(|e| e.to_string())?);
                    let ids = self.contexts.entry(ctx.clone()).or_default();
                    if let Some(p) = &parsed {
                        ids.by_key.insert(p.key.clone(), id);
                    }
                    ids.schemas.insert(
                        id,
                        Arc::new(SchemaEntry {
                            context: Arc::from(ctx.as_str()),
                            text: Arc::from(schema),
                            references,
                            contract,
                            parsed,
                            by_id,
                        }),
                    );
                }
                self.subjects
                    .entry(subject)
                    .or_default()
                    .versions
                    .insert(version, VersionEntry { id, deleted: false });
                let ids = self.contexts.entry(ctx).or_default();
                ids.next = ids.next.max(id.saturating_add(1));
            }
            Record::DeleteVersion {
                subject,
                version,
                permanent,
            } => {
                let s = self
                    .subjects
                    .get_mut(&subject)
                    .ok_or_else(|| format!("no subject {subject:?}"))?;
                let v = s
                    .versions
                    .get_mut(&version)
                    .ok_or_else(|| format!("no version {version} of {subject:?}"))?;
                if permanent {
                    let id = v.id;
                    s.versions.remove(&version);
                    self.remove_subject_if_empty(&subject);
                    self.collect(context_of(&subject), id);
                } else {
                    v.deleted = true;
                }
            }
            Record::DeleteSubject { subject, permanent } => {
                let s = self
                    .subjects
                    .get_mut(&subject)
                    .ok_or_else(|| format!("no subject {subject:?}"))?;
                if permanent {
                    let ids: Vec<u32> = s.versions.values().map(|v| v.id).collect();
                    self.subjects.remove(&subject);
                    for id in ids {
                        self.collect(context_of(&subject), id);
                    }
                } else {
                    for v in s.versions.values_mut() {
                        v.deleted = true;
                    }
                }
            }
            Record::Config {
                subject,
                compatibility,
            } => {
                let level = match compatibility {
                    Some(c) => Some(
                        parse_level(&c).ok_or_else(|| format!("invalid compatibility {c:?}"))?,
                    ),
                    None => None,
                };
                match subject {
                    None => self.compatibility = level,
                    Some(s) => {
                        self.subjects.entry(s.clone()).or_default().compatibility = level;
                        self.remove_subject_if_empty(&s);
                    }
                }
            }
            Record::Mode { subject, mode } => {
                let mode = match mode {
                    Some(m) => Some(Mode::parse(&m).ok_or_else(|| format!("invalid mode {m:?}"))?),
                    None => None,
                };
                match subject {
                    None => self.mode = mode.unwrap_or_default(),
                    Some(s) => {
                        self.subjects.entry(s.clone()).or_default().mode = mode;
                        self.remove_subject_if_empty(&s);
                    }
                }
            }
        }
        Ok(())
    }

    fn remove_subject_if_empty(&mut self, subject: &str) {
        if self.subjects.get(subject).is_some_and(Subject::is_empty) {
            self.subjects.remove(subject);
        }
    }

    /// Forgets schema `id` of context `ctx` once no subject version of the context holds it.
    fn collect(&mut self, ctx: &str, id: u32) {
        let used = self
            .subjects
            .iter()
            .filter(|(name, _)| context_of(name) == ctx)
            .any(|(_, s)| s.versions.values().any(|v| v.id == id));
        if used {
            return;
        }
        let Some(ids) = self.contexts.get_mut(ctx) else {
            return;
        };
        if let Some(entry) = ids.schemas.remove(&id)
            && let Some(key) = entry.key()
            && ids.by_key.get(key) == Some(&id)
        {
            ids.by_key.remove(key);
        }
    }
}
