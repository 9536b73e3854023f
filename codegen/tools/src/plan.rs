//! What registering the catalog means: for every subject, the schema text to register (with Confluent schema
//! references for types defined in other files) and the subjects it references, in dependency order.

use std::collections::{BTreeMap, BTreeSet};

use ursa_avro::schema::{Attrs, NamedId, NamedKind, Schema, SchemaKind, SchemaSet};
use ursa_catalog::{Catalog, Compatibility};

use crate::subjects::{Subject, SubjectRole, SubjectSchema, defining_file, subjects};

/// A schema reference: the referenced type's full name and the subject holding it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedReference {
    /// The full name used in the referencing schema.
    pub name: String,
    /// The subject registered for it.
    pub subject: String,
}

/// One subject to register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSubject {
    /// The subject.
    pub subject: String,
    /// Why it exists.
    pub role: SubjectRole,
    /// The schema text.
    pub schema: String,
    /// The subjects it references (each registered earlier in the plan).
    pub references: Vec<PlannedReference>,
    /// The level to set on the subject.
    pub compatibility: Compatibility,
}

fn collect_named(s: &Schema, out: &mut BTreeSet<NamedId>) {
    match &s.kind {
        SchemaKind::Named(id) => {
            out.insert(*id);
        }
        SchemaKind::Array(i) | SchemaKind::Map(i) => collect_named(i, out),
        SchemaKind::Union(b) => b.iter().for_each(|x| collect_named(x, out)),
        _ => {}
    }
}

/// The external named types `root`'s document uses directly: reachable from `root` without leaving its file.
fn external_refs(set: &SchemaSet, root: NamedId) -> BTreeSet<NamedId> {
    let home = defining_file(set);
    let file = home.get(&root).copied();
    let mut seen = BTreeSet::new();
    let mut external = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        if let NamedKind::Record { fields } = &set.named(id).kind {
            let mut used = BTreeSet::new();
            fields
                .iter()
                .for_each(|f| collect_named(&f.schema, &mut used));
            for u in used {
                if home.get(&u).copied() == file {
                    stack.push(u);
                } else {
                    external.insert(u);
                }
            }
        }
    }
    external
}

/// The registration plan: references before the subjects using them, then keys and values in catalog order.
pub fn plan(catalog: &Catalog, set: &SchemaSet) -> Vec<PlannedSubject> {
    let all: Vec<Subject> = subjects(catalog, set);
    let reference_subject: BTreeMap<String, String> = all
        .iter()
        .filter(|s| s.role == SubjectRole::Reference)
        .filter_map(|s| match &s.schema {
            SubjectSchema::Named(n) => Some((n.clone(), s.name.clone())),
            SubjectSchema::Primitive(_) => None,
        })
        .collect();
    let planned: Vec<PlannedSubject> = all
        .iter()
        .map(|s| match &s.schema {
            SubjectSchema::Primitive(p) => PlannedSubject {
                subject: s.name.clone(),
                role: s.role,
                schema: serde_json::Value::String(p.clone()).to_string(),
                references: Vec::new(),
                compatibility: s.compatibility,
            },
            SubjectSchema::Named(full) => {
                let id = set.lookup(full);
                let (schema, references) = match id {
                    Some(id) => {
                        let external: Vec<NamedId> = external_refs(set, id).into_iter().collect();
                        let node = Schema {
                            kind: SchemaKind::Named(id),
                            logical: None,
                            attrs: Attrs::new(),
                            loc: set.named(id).loc,
                        };
                        let refs = external
                            .iter()
                            .map(|e| {
                                let name = set.named(*e).name.fullname();
                                PlannedReference {
                                    subject: reference_subject
                                        .get(&name)
                                        .cloned()
                                        .unwrap_or_else(|| name.clone()),
                                    name,
                                }
                            })
                            .collect();
                        (set.json_with_references(&node, &external).to_string(), refs)
                    }
                    None => (String::new(), Vec::new()),
                };
                PlannedSubject {
                    subject: s.name.clone(),
                    role: s.role,
                    schema,
                    references,
                    compatibility: s.compatibility,
                }
            }
        })
        .collect();
    order(planned)
}

/// Topological order: every subject after the subjects it references (stable otherwise).
fn order(mut pending: Vec<PlannedSubject>) -> Vec<PlannedSubject> {
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for p in pending {
            if p.references.iter().all(|r| done.contains(&r.subject)) {
                done.insert(p.subject.clone());
                out.push(p);
            } else {
                rest.push(p);
            }
        }
        if rest.len() == before {
            // A reference cycle across files cannot be registered with references; keep the order given.
            out.extend(rest);
            break;
        }
        pending = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use ursa_avro::schema::{ParseOptions, SourceFile};

    use super::*;

    #[test]
    fn references_come_first_and_are_not_inlined() {
        let set = SchemaSet::parse(
            vec![
                SourceFile::new("a/Event.avsc", r#"{"type":"record","name":"Event","namespace":"a","fields":[{"name":"m","type":"c.Meta"},{"name":"n","type":{"type":"record","name":"Inner","fields":[{"name":"m2","type":"c.Meta"}]}}]}"#),
                SourceFile::new("c/Meta.avsc", r#"{"type":"record","name":"Meta","namespace":"c","fields":[{"name":"id","type":"string"}]}"#),
            ],
            ParseOptions::default(),
        )
        .unwrap();
        let catalog = Catalog::parse(
            Path::new("t.toml"),
            "[topics.events]\nkey = \"string\"\nvalue = \"a.Event\"\ncompatibility = \"FULL\"\n",
        )
        .unwrap();
        let p = plan(&catalog, &set);
        let names: Vec<&str> = p.iter().map(|s| s.subject.as_str()).collect();
        assert_eq!(names, ["c.Meta", "events-key", "events-value"]);
        assert_eq!(
            p[0].compatibility,
            Compatibility::Full,
            "a shared type takes its users' level"
        );
        let value = &p[2];
        assert_eq!(
            value.references,
            vec![PlannedReference {
                name: "c.Meta".into(),
                subject: "c.Meta".into()
            }]
        );
        assert!(
            value.schema.contains("\"type\":\"c.Meta\""),
            "{}",
            value.schema
        );
        assert!(
            !value.schema.contains("\"name\":\"c.Meta\""),
            "referenced type must not be inlined: {}",
            value.schema
        );
        assert!(
            value.schema.contains("\"name\":\"a.Inner\""),
            "same-file types are inlined"
        );
        assert_eq!(p[1].schema, "\"string\"");
    }
}
