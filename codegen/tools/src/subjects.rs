//! The registry subjects a catalog implies: each topic's key and value subject, plus one subject per type
//! that other files reference (registered first and used through Confluent schema references).

use std::collections::{BTreeMap, BTreeSet};

use ursa_avro::schema::{FileId, NamedId, Schema, SchemaKind, SchemaSet};
use ursa_catalog::{Catalog, Compatibility, SchemaRef};

/// Why a subject exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SubjectRole {
    /// A type referenced from other files, registered under its full name.
    Reference,
    /// A topic's key schema.
    Key,
    /// A topic's value schema.
    Value,
}

/// The schema of a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubjectSchema {
    /// A primitive such as `"string"`.
    Primitive(String),
    /// A named type of the schema folder.
    Named(String),
}

/// A subject with its schema and compatibility level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// The subject name.
    pub name: String,
    /// Why it exists.
    pub role: SubjectRole,
    /// Its schema.
    pub schema: SubjectSchema,
    /// The compatibility level the catalog wants.
    pub compatibility: Compatibility,
}

fn named_in(schema: &Schema, out: &mut BTreeSet<NamedId>) {
    match &schema.kind {
        SchemaKind::Named(id) => {
            out.insert(*id);
        }
        SchemaKind::Array(i) | SchemaKind::Map(i) => named_in(i, out),
        SchemaKind::Union(b) => b.iter().for_each(|x| named_in(x, out)),
        _ => {}
    }
}

/// The file that defines each named type.
pub fn defining_file(set: &SchemaSet) -> BTreeMap<NamedId, FileId> {
    set.named_types().map(|(id, t)| (id, t.loc.file)).collect()
}

/// Named types that a file other than their own refers to: the reference subjects.
pub fn referenced_across_files(set: &SchemaSet) -> BTreeSet<NamedId> {
    let home = defining_file(set);
    let mut out = BTreeSet::new();
    for (id, t) in set.named_types() {
        let mut used = BTreeSet::new();
        if let ursa_avro::schema::NamedKind::Record { fields } = &t.kind {
            fields.iter().for_each(|f| named_in(&f.schema, &mut used));
        }
        for u in used {
            if home.get(&u) != home.get(&id) {
                out.insert(u);
            }
        }
    }
    out
}

/// Every named type reachable from `id` (itself included).
pub fn reachable(set: &SchemaSet, id: NamedId) -> BTreeSet<NamedId> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![id];
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let ursa_avro::schema::NamedKind::Record { fields } = &set.named(n).kind {
            let mut used = BTreeSet::new();
            fields.iter().for_each(|f| named_in(&f.schema, &mut used));
            stack.extend(used);
        }
    }
    seen
}

/// The strictest of several levels: a type shared by subjects checked backward and forward must be both.
pub fn strictest(levels: impl IntoIterator<Item = Compatibility>) -> Compatibility {
    use Compatibility as C;
    let (mut back, mut fwd, mut transitive) = (false, false, false);
    for l in levels {
        match l {
            C::Backward => back = true,
            C::BackwardTransitive => (back, transitive) = (true, true),
            C::Forward => fwd = true,
            C::ForwardTransitive => (fwd, transitive) = (true, true),
            C::Full => (back, fwd) = (true, true),
            C::FullTransitive => (back, fwd, transitive) = (true, true, true),
            C::None => {}
        }
    }
    match (back, fwd, transitive) {
        (true, true, true) => C::FullTransitive,
        (true, true, false) => C::Full,
        (true, false, true) => C::BackwardTransitive,
        (true, false, false) => C::Backward,
        (false, true, true) => C::ForwardTransitive,
        (false, true, false) => C::Forward,
        (false, false, _) => C::None,
    }
}

/// Every subject the catalog implies, references first (so they can be registered first). A reference
/// subject gets the strictest level of the topics whose values use it.
pub fn subjects(catalog: &Catalog, set: &SchemaSet) -> Vec<Subject> {
    let mut out = Vec::new();
    let users: Vec<(Compatibility, BTreeSet<NamedId>)> = catalog
        .topics
        .iter()
        .filter_map(|t| match &t.value {
            SchemaRef::Named(n) => set
                .lookup(n)
                .map(|id| (t.compatibility, reachable(set, id))),
            SchemaRef::Primitive(_) => None,
        })
        .collect();
    for id in referenced_across_files(set) {
        let full = set.named(id).name.fullname();
        let levels: Vec<Compatibility> = users
            .iter()
            .filter(|(_, r)| r.contains(&id))
            .map(|(l, _)| *l)
            .collect();
        out.push(Subject {
            name: full.clone(),
            role: SubjectRole::Reference,
            schema: SubjectSchema::Named(full),
            compatibility: if levels.is_empty() {
                Compatibility::Backward
            } else {
                strictest(levels)
            },
        });
    }
    for t in &catalog.topics {
        if let (Some(key), Some(subject)) = (&t.key, t.key_subject()) {
            out.push(Subject {
                name: subject,
                role: SubjectRole::Key,
                schema: to_schema(key),
                compatibility: t.compatibility,
            });
        }
        out.push(Subject {
            name: t.value_subject(),
            role: SubjectRole::Value,
            schema: to_schema(&t.value),
            compatibility: t.compatibility,
        });
    }
    out
}

fn to_schema(r: &SchemaRef) -> SubjectSchema {
    match r {
        SchemaRef::Primitive(p) => SubjectSchema::Primitive(p.clone()),
        SchemaRef::Named(n) => SubjectSchema::Named(n.clone()),
    }
}
