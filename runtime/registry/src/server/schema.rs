//! Schemas as the registry sees them: parsed with their references, identified by a normalized form, checked
//! for compatibility against a subject's history.

use std::sync::Arc;

use serde_json::Value;
use ursa_avro::schema::{LogicalTypes, ParseOptions, SchemaSet, SourceFile};
use ursa_compat::{Doc, Report};

use crate::types::{CompatibilityLevel, Reference};

/// Confluent's data-contract fields of a registration, kept as given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Contract {
    /// `metadata`: `properties`, `tags`, `sensitive`.
    pub(crate) metadata: Option<Value>,
    /// `ruleSet`: `domainRules`, `migrationRules`.
    pub(crate) rule_set: Option<Value>,
}

impl Contract {
    /// The part of a schema's identity they make (empty without them): JSON with sorted keys.
    fn key(&self) -> String {
        if self.metadata.is_none() && self.rule_set.is_none() {
            return String::new();
        }
        let text = |v: &Option<Value>| v.as_ref().map(sorted).unwrap_or_default();
        format!(
            "\nmetadata {}\nruleSet {}",
            text(&self.metadata),
            text(&self.rule_set)
        )
    }
}

/// JSON text with every object's keys sorted (so key order does not make two contracts differ).
fn sorted(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let members: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), sorted(&m[k])))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(sorted).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

/// A schema parsed together with everything it references.
#[derive(Debug)]
pub(crate) struct Parsed {
    /// (context, id) of the referenced schemas, transitively, dependencies first.
    pub(crate) deps: Vec<(String, u32)>,
    /// The documents: the referenced schemas (in `deps` order), then the schema.
    pub(crate) set: Arc<SchemaSet>,
    /// What makes two registrations the same schema: the normalized schema (every attribute kept, whitespace
    /// and key order not), its references, and its metadata and rule set.
    pub(crate) key: String,
    /// The same without the metadata and rule set (what a lookup without them matches).
    pub(crate) schema_key: String,
}

/// Parses `text` after the documents of `deps` (texts in dependency order, each with its id).
pub(crate) fn parse(
    text: &str,
    references: &[Reference],
    contract: &Contract,
    deps: Vec<((String, u32), Arc<str>)>,
) -> Result<Parsed, String> {
    let mut files: Vec<SourceFile> = deps
        .iter()
        .map(|((_, id), t)| SourceFile::new(format!("<schema id {id}>"), t.to_string()))
        .collect();
    files.push(SourceFile::new("<schema>", text.to_owned()));
    let options = ParseOptions {
        logical_types: LogicalTypes::Lenient,
    };
    let set = SchemaSet::parse(files, options).map_err(|e| e.to_string())?;
    let schema_key = key(&set, references);
    Ok(Parsed {
        deps: deps.into_iter().map(|(id, _)| id).collect(),
        set: Arc::new(set),
        key: format!("{schema_key}{}", contract.key()),
        schema_key,
    })
}

fn key(set: &SchemaSet, references: &[Reference]) -> String {
    let normalized = set.full_json(set.last_root()).to_string();
    let refs = serde_json::to_string(references).unwrap_or_default();
    format!("AVRO\n{normalized}\n{refs}")
}

/// The normalized text of a parsed schema (`?normalize=true`, as Confluent's): every attribute kept, names
/// written in full, the named types of its references referred to by name, every schema and field object's
/// keys sorted and its aliases sorted, no whitespace. Two schemas that differ only in those respects
/// normalize to the same text, so they get the same id and version. (Confluent's normalized text orders keys
/// its own way; what the identity depends on is the same.)
pub(crate) fn normalized_text(set: &SchemaSet) -> String {
    let Some(last) = set.roots().last().map(|(file, _)| file) else {
        return String::new();
    };
    let external: Vec<_> = set
        .named_types()
        .filter(|(_, t)| t.loc.file != last)
        .map(|(id, _)| id)
        .collect();
    let mut json = set.json_with_references(set.last_root(), &external);
    normalize_node(&mut json);
    json.to_string()
}

/// Sorts the keys and aliases of a schema node and of the schema nodes inside it, leaving defaults and
/// custom attribute values as they are.
fn normalize_node(v: &mut Value) {
    match v {
        Value::Array(branches) => branches.iter_mut().for_each(normalize_node),
        Value::Object(m) => {
            sort_object(m);
            for key in ["type", "items", "values"] {
                if let Some(inner) = m.get_mut(key) {
                    normalize_node(inner);
                }
            }
            if let Some(Value::Array(fields)) = m.get_mut("fields") {
                for f in fields.iter_mut() {
                    if let Value::Object(fm) = f {
                        sort_object(fm);
                        if let Some(t) = fm.get_mut("type") {
                            normalize_node(t);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn sort_object(m: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Array(aliases)) = m.get_mut("aliases") {
        aliases.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    m.extend(entries);
}

/// Checks `new` against `history` (oldest first) at `level`.
pub(crate) fn check(
    level: CompatibilityLevel,
    new: &SchemaSet,
    history: &[Arc<SchemaSet>],
) -> Report {
    if level == CompatibilityLevel::None || history.is_empty() {
        return Report {
            is_compatible: true,
            messages: Vec::new(),
        };
    }
    let docs: Vec<Doc<'_>> = history.iter().map(|s| Doc::last(s)).collect();
    ursa_compat::check(level, Doc::last(new), &docs)
}

/// Confluent-style messages of a failed check (used by `?verbose=true` and in 409 details).
pub(crate) fn messages(report: &Report, level: CompatibilityLevel) -> Vec<String> {
    if report.is_compatible {
        return Vec::new();
    }
    let mut out = ursa_compat::confluent_messages(report);
    out.push(format!("{{compatibility: '{level}'}}"));
    out
}
