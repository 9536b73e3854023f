//! Avro Java 1.12's `ReaderWriterCompatibilityChecker`, transcribed: the same type switch, the same name,
//! size, symbol and field rules, the same memoisation on node identity, collecting every incompatibility.

use std::collections::{BTreeSet, HashMap};

use ursa_avro::schema::{Field, Loc, NamedId, NamedKind, NamedType, Schema, SchemaKind, SchemaSet};

use crate::{Doc, IncompatibilityKind};

/// Where a finding is, in one of the two schemas: a node, optionally one of its attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub loc: Loc,
    pub key: Option<&'static str>,
}

/// One incompatibility, before it is worded for a particular direction.
#[derive(Debug, Clone)]
pub(crate) struct Finding {
    pub kind: IncompatibilityKind,
    /// JSON pointer reference tokens below the root.
    pub path: Vec<String>,
    /// Avro Java's message.
    pub java: String,
    /// Words with `{R}`/`{W}` standing for the reader's and writer's labels.
    pub words: String,
    pub reader_at: At,
    pub writer_at: At,
}

/// Every incompatibility of reading `writer` data with `reader`, in Java's order.
pub(crate) fn incompatibilities(reader: Doc<'_>, writer: Doc<'_>) -> Vec<Finding> {
    let mut c = Checker {
        r: reader.set,
        w: writer.set,
        memo: HashMap::new(),
        thrown: Vec::new(),
    };
    let mut found = c.get(reader.root, writer.root, &mut Vec::new());
    found.append(&mut c.thrown);
    found
}

/// Java's `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

impl Type {
    fn java(self) -> &'static str {
        match self {
            Type::Null => "NULL",
            Type::Boolean => "BOOLEAN",
            Type::Int => "INT",
            Type::Long => "LONG",
            Type::Float => "FLOAT",
            Type::Double => "DOUBLE",
            Type::Bytes => "BYTES",
            Type::String => "STRING",
            Type::Array => "ARRAY",
            Type::Map => "MAP",
            Type::Union => "UNION",
            Type::Record => "RECORD",
            Type::Enum => "ENUM",
            Type::Fixed => "FIXED",
        }
    }
}

fn type_of(set: &SchemaSet, s: &Schema) -> Type {
    match &s.kind {
        SchemaKind::Null => Type::Null,
        SchemaKind::Boolean => Type::Boolean,
        SchemaKind::Int => Type::Int,
        SchemaKind::Long => Type::Long,
        SchemaKind::Float => Type::Float,
        SchemaKind::Double => Type::Double,
        SchemaKind::Bytes => Type::Bytes,
        SchemaKind::String => Type::String,
        SchemaKind::Array(_) => Type::Array,
        SchemaKind::Map(_) => Type::Map,
        SchemaKind::Union(_) => Type::Union,
        SchemaKind::Named(id) => match set.named(*id).kind {
            NamedKind::Record { .. } => Type::Record,
            NamedKind::Enum { .. } => Type::Enum,
            NamedKind::Fixed { .. } => Type::Fixed,
        },
    }
}

/// A short description of a schema node for messages: `int`, `array`, `record 'a.B'`.
pub(crate) fn describe(set: &SchemaSet, s: &Schema) -> String {
    match &s.kind {
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            let what = match t.kind {
                NamedKind::Record { .. } => "record",
                NamedKind::Enum { .. } => "enum",
                NamedKind::Fixed { .. } => "fixed",
            };
            format!("{what} '{}'", t.name.fullname())
        }
        other => other.primitive_name().unwrap_or_default().to_owned(),
    }
}

/// Identity of a schema node as Java sees it: a named type is one object wherever it is referenced; any
/// other node is its own object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Identity {
    Named(NamedId),
    Node(usize),
}

fn identity(s: &Schema) -> Identity {
    match s.kind {
        SchemaKind::Named(id) => Identity::Named(id),
        _ => Identity::Node(std::ptr::from_ref(s) as usize),
    }
}

enum Memo {
    InProgress,
    Done(Vec<Finding>),
}

struct Checker<'a> {
    r: &'a SchemaSet,
    w: &'a SchemaSet,
    memo: HashMap<(Identity, Identity), Memo>,
    /// Where Java throws (ambiguous field aliases): reported whatever the enclosing probe decides, since the
    /// exception ends Java's whole check.
    thrown: Vec<Finding>,
}

fn pointer(path: &[String]) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    path.iter()
        .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn at(loc: Loc) -> At {
    At { loc, key: None }
}

fn at_key(loc: Loc, key: &'static str) -> At {
    At {
        loc,
        key: Some(key),
    }
}

impl<'a> Checker<'a> {
    /// Java's `getCompatibility`: memoised on node identity; a pair being computed counts as compatible.
    fn get(&mut self, rs: &'a Schema, ws: &'a Schema, path: &mut Vec<String>) -> Vec<Finding> {
        let key = (identity(rs), identity(ws));
        match self.memo.get(&key) {
            Some(Memo::InProgress) => return Vec::new(),
            Some(Memo::Done(found)) => return found.clone(),
            None => {}
        }
        self.memo.insert(key, Memo::InProgress);
        let found = self.calculate(rs, ws, path);
        self.memo.insert(key, Memo::Done(found.clone()));
        found
    }

    /// `get` with a reference token pushed on the location.
    fn get_at(
        &mut self,
        token: &str,
        rs: &'a Schema,
        ws: &'a Schema,
        path: &mut Vec<String>,
    ) -> Vec<Finding> {
        path.push(token.to_owned());
        let found = self.get(rs, ws, path);
        path.pop();
        found
    }

    fn named(&self, set: &'a SchemaSet, s: &Schema) -> Option<&'a NamedType> {
        match s.kind {
            SchemaKind::Named(id) => Some(set.named(id)),
            _ => None,
        }
    }

    /// Java's `calculateCompatibility`.
    fn calculate(
        &mut self,
        rs: &'a Schema,
        ws: &'a Schema,
        path: &mut Vec<String>,
    ) -> Vec<Finding> {
        let rt = type_of(self.r, rs);
        let wt = type_of(self.w, ws);
        if rt == wt {
            return match (&rs.kind, &ws.kind) {
                (SchemaKind::Array(ri), SchemaKind::Array(wi)) => {
                    self.get_at("items", ri, wi, path)
                }
                (SchemaKind::Map(rv), SchemaKind::Map(wv)) => self.get_at("values", rv, wv, path),
                (SchemaKind::Union(_), SchemaKind::Union(wbs)) => {
                    let mut found = Vec::new();
                    for (i, wb) in wbs.iter().enumerate() {
                        path.push(i.to_string());
                        if !self.get(rs, wb, path).is_empty() {
                            found.push(self.missing_union_branch(rs, wb, Some(i), path));
                        }
                        path.pop();
                    }
                    found
                }
                (SchemaKind::Named(_), SchemaKind::Named(_)) => self.named_pair(rs, ws, path),
                _ => Vec::new(), // identical primitives
            };
        }
        if let SchemaKind::Union(wbs) = &ws.kind {
            let mut found = Vec::new();
            for (i, wb) in wbs.iter().enumerate() {
                found.extend(self.get_at(&i.to_string(), rs, wb, path));
            }
            return found;
        }
        let promoted = match rt {
            Type::Long => wt == Type::Int,
            Type::Float => matches!(wt, Type::Int | Type::Long),
            Type::Double => matches!(wt, Type::Int | Type::Long | Type::Float),
            Type::Bytes => wt == Type::String,
            Type::String => wt == Type::Bytes,
            _ => false,
        };
        if promoted {
            return Vec::new();
        }
        if let SchemaKind::Union(rbs) = &rs.kind {
            for rb in rbs {
                if self.get(rb, ws, path).is_empty() {
                    return Vec::new();
                }
            }
            return vec![self.missing_union_branch(rs, ws, None, path)];
        }
        vec![self.type_mismatch(rs, ws, path)]
    }

    fn type_mismatch(&self, rs: &Schema, ws: &Schema, path: &[String]) -> Finding {
        let (rt, wt) = (type_of(self.r, rs), type_of(self.w, ws));
        Finding {
            kind: IncompatibilityKind::TypeMismatch,
            path: path.to_vec(),
            java: format!(
                "reader type: {} not compatible with writer type: {}",
                rt.java(),
                wt.java()
            ),
            words: format!(
                "{{R}} type `{}` cannot read {{W}} type `{}` (at {})",
                describe(self.r, rs),
                describe(self.w, ws),
                pointer(path)
            ),
            reader_at: at(rs.loc),
            writer_at: at(ws.loc),
        }
    }

    /// `branch` is the writer union's branch index when a writer union branch is unreadable.
    fn missing_union_branch(
        &self,
        rs: &Schema,
        ws: &Schema,
        branch: Option<usize>,
        path: &[String],
    ) -> Finding {
        let words = match branch {
            Some(i) => format!(
                "{{W}} union branch {i} (`{}`) cannot be read by any branch of the {{R}} union (at {})",
                describe(self.w, ws),
                pointer(path)
            ),
            None => format!(
                "no branch of the {{R}} union can read {{W}} type `{}` (at {})",
                describe(self.w, ws),
                pointer(path)
            ),
        };
        Finding {
            kind: IncompatibilityKind::MissingUnionBranch,
            path: path.to_vec(),
            java: format!(
                "reader union lacking writer type: {}",
                type_of(self.w, ws).java()
            ),
            words,
            reader_at: at(rs.loc),
            writer_at: at(ws.loc),
        }
    }

    fn named_pair(
        &mut self,
        rs: &'a Schema,
        ws: &'a Schema,
        path: &mut Vec<String>,
    ) -> Vec<Finding> {
        let (Some(rn), Some(wn)) = (self.named(self.r, rs), self.named(self.w, ws)) else {
            return Vec::new();
        };
        let mut found: Vec<Finding> = self.check_names(rn, wn, path).into_iter().collect();
        match (&rn.kind, &wn.kind) {
            (NamedKind::Fixed { size: r_size }, NamedKind::Fixed { size: w_size }) => {
                found.extend(check_fixed_size(rn, *r_size, wn, *w_size, path));
            }
            (
                NamedKind::Enum {
                    symbols: r_symbols,
                    default,
                },
                NamedKind::Enum {
                    symbols: w_symbols, ..
                },
            ) => {
                found.extend(check_enum_symbols(
                    rn,
                    r_symbols,
                    default.as_deref(),
                    wn,
                    w_symbols,
                    path,
                ));
            }
            (NamedKind::Record { fields: r_fields }, NamedKind::Record { fields: w_fields }) => {
                found.extend(self.record_fields(r_fields, w_fields, ws, wn, path));
            }
            _ => {}
        }
        found
    }

    /// Java's `schemaNameEquals`: unqualified names equal, or a reader alias equal to the writer's full name.
    fn check_names(&self, rn: &NamedType, wn: &NamedType, path: &[String]) -> Option<Finding> {
        let writer_full = wn.name.fullname();
        if rn.name.name == wn.name.name || rn.aliases.iter().any(|a| a.fullname() == writer_full) {
            return None;
        }
        let mut path = path.to_vec();
        path.push("name".to_owned());
        let what = match rn.kind {
            NamedKind::Record { .. } => "record",
            NamedKind::Enum { .. } => "enum",
            NamedKind::Fixed { .. } => "fixed",
        };
        Some(Finding {
            kind: IncompatibilityKind::NameMismatch,
            words: format!(
                "{{R}} {what} '{}' cannot read {{W}} type '{writer_full}': the names differ and no {{R}} alias is '{writer_full}' (at {})",
                rn.name.fullname(),
                pointer(&path)
            ),
            path,
            java: format!("expected: {writer_full}"),
            reader_at: at_key(rn.loc, "name"),
            writer_at: at_key(wn.loc, "name"),
        })
    }

    /// Java's `checkReaderWriterRecordFields`.
    fn record_fields(
        &mut self,
        r_fields: &'a [Field],
        w_fields: &'a [Field],
        ws: &'a Schema,
        wn: &'a NamedType,
        path: &mut Vec<String>,
    ) -> Vec<Finding> {
        let mut found = Vec::new();
        path.push("fields".to_owned());
        for (i, rf) in r_fields.iter().enumerate() {
            path.push(i.to_string());
            // Java's `lookupWriterField`: by name, then by each reader alias; more than one is an error.
            let mut matches: Vec<&'a Field> = Vec::new();
            if let Some(f) = w_fields.iter().find(|f| f.name == rf.name) {
                matches.push(f);
            }
            for alias in &rf.aliases {
                if let Some(f) = w_fields.iter().find(|f| &f.name == alias) {
                    matches.push(f);
                }
            }
            match matches.as_slice() {
                [] if rf.default.is_some() => {}
                [] => {
                    let enum_default = matches!(
                        self.named(self.r, &rf.schema).map(|t| &t.kind),
                        Some(NamedKind::Enum {
                            default: Some(_),
                            ..
                        })
                    );
                    if enum_default {
                        // Java checks the reader field's enum against the writer *record*: a TYPE_MISMATCH.
                        let inner = self.get_at("type", &rf.schema, ws, path);
                        found.extend(inner.into_iter().map(|mut f| {
                            f.words = format!(
                                "{{R}} field '{}' (at {}) has no default value and is missing in the {{W}} schema; its enum default does not help: {}",
                                rf.name,
                                pointer(path),
                                f.words
                            );
                            f.reader_at = at_key(rf.loc, "name");
                            f
                        }));
                    } else {
                        found.push(Finding {
                            kind: IncompatibilityKind::ReaderFieldMissingDefaultValue,
                            path: path.clone(),
                            java: rf.name.clone(),
                            words: format!(
                                "{{R}} field '{}' (at {}) has no default value and is missing in the {{W}} schema",
                                rf.name,
                                pointer(path)
                            ),
                            reader_at: at_key(rf.loc, "name"),
                            writer_at: at(wn.loc),
                        });
                    }
                }
                [wf] => found.extend(self.get_at("type", &rf.schema, &wf.schema, path)),
                several => {
                    let names: Vec<String> =
                        several.iter().map(|f| format!("'{}'", f.name)).collect();
                    self.thrown.push(Finding {
                        kind: IncompatibilityKind::ReaderFieldMatchesMultipleWriterFields,
                        path: path.clone(),
                        java: format!(
                            "Reader record field {} matches multiple fields in writer record schema {}",
                            rf.name,
                            wn.name.fullname()
                        ),
                        words: format!(
                            "{{R}} field '{}' (at {}) matches several {{W}} fields by name and aliases ({}); Avro Java rejects such a pair",
                            rf.name,
                            pointer(path),
                            names.join(", ")
                        ),
                        reader_at: at_key(rf.loc, "aliases"),
                        writer_at: at(wn.loc),
                    });
                }
            }
            path.pop();
        }
        path.pop();
        found
    }
}

/// Java's `checkFixedSize`.
fn check_fixed_size(
    rn: &NamedType,
    r_size: usize,
    wn: &NamedType,
    w_size: usize,
    path: &[String],
) -> Option<Finding> {
    if r_size == w_size {
        return None;
    }
    let mut path = path.to_vec();
    path.push("size".to_owned());
    Some(Finding {
        kind: IncompatibilityKind::FixedSizeMismatch,
        java: format!("expected: {w_size}, found: {r_size}"),
        words: format!(
            "{{R}} fixed '{}' has size {r_size} but the {{W}} fixed '{}' has size {w_size} (at {})",
            rn.name.fullname(),
            wn.name.fullname(),
            pointer(&path)
        ),
        path,
        reader_at: at_key(rn.loc, "size"),
        writer_at: at_key(wn.loc, "size"),
    })
}

/// Java's `checkReaderEnumContainsAllWriterEnumSymbols`: missing symbols listed sorted, as a `TreeSet` prints.
fn check_enum_symbols(
    rn: &NamedType,
    r_symbols: &[String],
    default: Option<&str>,
    wn: &NamedType,
    w_symbols: &[String],
    path: &[String],
) -> Option<Finding> {
    let missing: BTreeSet<&str> = w_symbols
        .iter()
        .filter(|s| !r_symbols.contains(s))
        .map(String::as_str)
        .collect();
    let has_default = default.is_some_and(|d| r_symbols.iter().any(|s| s == d));
    if missing.is_empty() || has_default {
        return None;
    }
    let mut path = path.to_vec();
    path.push("symbols".to_owned());
    let list: Vec<&str> = missing.into_iter().collect();
    Some(Finding {
        kind: IncompatibilityKind::MissingEnumSymbols,
        java: format!("[{}]", list.join(", ")),
        words: format!(
            "{{R}} enum '{}' has no default and lacks the {{W}} symbol{} {} (at {})",
            rn.name.fullname(),
            if list.len() == 1 { "" } else { "s" },
            list.join(", "),
            pointer(&path)
        ),
        path,
        reader_at: at_key(rn.loc, "symbols"),
        writer_at: at_key(wn.loc, "symbols"),
    })
}

pub(crate) fn json_pointer(path: &[String]) -> String {
    pointer(path)
}
