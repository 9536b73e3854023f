//! Plans the generated code: which module and Rust name each Avro type gets, which references are boxed,
//! which union enums are needed, and the template context of every module.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;
use ursa_avro::schema::{
    Attrs, NamedId, NamedKind, NamedType, Schema, SchemaKind, SchemaSet, fingerprint64,
};
use ursa_catalog::Catalog;

use crate::codec::{self, Codec};
use crate::names;

/// Template context of one generated module (one namespace).
#[derive(Debug, Serialize, Default)]
pub(crate) struct ModuleCtx {
    /// Rust module path segments (empty for the root).
    pub path: Vec<String>,
    /// The dotted Avro namespace.
    pub namespace: String,
    /// Child modules.
    pub children: BTreeSet<String>,
    pub records: Vec<RecordCtx>,
    pub enums: Vec<EnumCtx>,
    pub fixeds: Vec<FixedCtx>,
    pub aliases: Vec<AliasCtx>,
    pub unions: Vec<UnionCtx>,
    #[serde(skip)]
    taken: BTreeSet<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FieldCtx {
    pub name: String,
    pub wire_name: String,
    pub doc: Vec<String>,
    pub ty: String,
    pub enc: String,
    pub dec: String,
    pub binding: String,
    pub pii: bool,
    /// The Rust name (raw prefix aside) differs from the wire name.
    pub rename: bool,
    /// The schema default, Avro-encoded, as a Rust byte-slice literal (`None` without a usable default).
    pub default_bytes: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct BindingCtx {
    pub topic: String,
    pub key_subject: String,
    pub value_subject: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct RecordCtx {
    pub name: String,
    pub full_name: String,
    pub doc: Vec<String>,
    pub fields: Vec<FieldCtx>,
    pub pii_fields: Vec<String>,
    /// Rust string literals.
    pub schema_literal: String,
    pub canonical_literal: String,
    pub fingerprint: String,
    pub bindings: Vec<BindingCtx>,
    /// Every field's type is `Eq`.
    pub eq: bool,
    /// Every field's type is `Hash`.
    pub hash: bool,
    /// The name of its builder type.
    pub builder: String,
    /// The builder's finishing method (`build`, unless a field is called that).
    pub build_fn: String,
    /// Every field has a default that decodes: the record gets `Default`.
    pub default: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct VariantCtx {
    pub name: String,
    pub symbol: String,
    pub index: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct EnumCtx {
    pub name: String,
    pub full_name: String,
    pub doc: Vec<String>,
    pub variants: Vec<VariantCtx>,
    pub default: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FixedCtx {
    pub name: String,
    pub full_name: String,
    pub doc: Vec<String>,
    pub size: usize,
}

#[derive(Debug, Serialize)]
pub(crate) struct AliasCtx {
    pub name: String,
    pub full_name: String,
    pub doc: Vec<String>,
    pub ty: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct UnionVariantCtx {
    pub name: String,
    pub ty: String,
    pub index: usize,
    pub enc: String,
    pub dec: String,
    pub binding: String,
    /// The branch's Avro type name, as Avro's JSON encoding names union branches (a full name for named
    /// types, `array`, `map`, or the primitive's name).
    pub wire: String,
    /// Whether the union gets `From<ty>` (no other branch has the same Rust type).
    pub from: bool,
    /// For a boxed branch (`Box<T>`), `T`, when the union also gets `From<T>`.
    pub from_unboxed: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct UnionCtx {
    pub name: String,
    pub doc: Vec<String>,
    pub branches: usize,
    pub variants: Vec<UnionVariantCtx>,
    /// Every branch's type is `Eq`.
    pub eq: bool,
    /// Every branch's type is `Hash`.
    pub hash: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicCtx {
    pub name: String,
    pub constant: String,
    pub doc: Vec<String>,
    pub key: String,
    pub value: String,
    pub key_subject: String,
    pub value_subject: String,
    pub partitions: u32,
    pub compatibility: String,
}

struct TypeInfo {
    module: Vec<String>,
    name: String,
}

/// Splits a doc string into comment lines.
pub(crate) fn doc_lines(doc: Option<&str>) -> Vec<String> {
    doc.map(|d| {
        d.replace("\r\n", "\n")
            .replace('\r', "\n")
            .lines()
            .map(|l| l.replace('\t', "    ").trim_end().to_owned())
            .collect()
    })
    .unwrap_or_default()
}

fn literal(s: &str) -> String {
    format!("{s:?}")
}

fn module_of(namespace: Option<&str>) -> Vec<String> {
    namespace
        .map(|ns| ns.split('.').map(names::snake).collect())
        .unwrap_or_default()
}

/// A path to `name` in module `to`, written from module `from`.
fn rel_path(from: &[String], to: &[String], name: &str) -> String {
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["super".to_owned(); from.len() - common];
    parts.extend(to[common..].iter().cloned());
    parts.push(name.to_owned());
    parts.join("::")
}

pub(crate) struct Planner<'a> {
    set: &'a SchemaSet,
    types: Vec<TypeInfo>,
    pub modules: BTreeMap<Vec<String>, ModuleCtx>,
    boxed: HashSet<(NamedId, NamedId)>,
    bindings: HashMap<String, Vec<BindingCtx>>,
    pub topics: Vec<TopicCtx>,
}

impl<'a> Planner<'a> {
    pub fn new(set: &'a SchemaSet, catalog: Option<&Catalog>) -> Self {
        let mut modules: BTreeMap<Vec<String>, ModuleCtx> = BTreeMap::new();
        modules.insert(Vec::new(), ModuleCtx::default());
        // The root module holds the catalog's `topics` module: a namespace starting with `topics` gets the
        // module `topics_` instead.
        let has_topics = catalog.is_some_and(|c| !c.topics.is_empty());
        // Names are assigned in sorted full-name order so output does not depend on file layout.
        let mut order: Vec<(NamedId, &NamedType)> = set.named_types().collect();
        order.sort_by_key(|(_, t)| t.name.fullname());
        let mut infos: HashMap<NamedId, TypeInfo> = HashMap::new();
        for (id, t) in order {
            let mut module = module_of(t.name.namespace.as_deref());
            if has_topics && module.first().is_some_and(|m| m == "topics") {
                module[0] = "topics_".to_owned();
            }
            for depth in 0..module.len() {
                let parent = module[..depth].to_vec();
                modules
                    .entry(parent)
                    .or_default()
                    .children
                    .insert(module[depth].clone());
            }
            let m = modules.entry(module.clone()).or_default();
            m.path = module.clone();
            m.namespace = t.name.namespace.clone().unwrap_or_default();
            let name = names::unique(names::upper_camel(&t.name.name), &mut m.taken);
            infos.insert(id, TypeInfo { module, name });
        }
        let types = (0..set.named_types().count())
            .map(|i| {
                infos.remove(&NamedId::from_index(i)).unwrap_or(TypeInfo {
                    module: Vec::new(),
                    name: String::new(),
                })
            })
            .collect();
        let mut bindings: HashMap<String, Vec<BindingCtx>> = HashMap::new();
        let mut topics = Vec::new();
        if let Some(catalog) = catalog {
            // `topics::ALL` and `topics::BINDINGS` are taken; topics whose constants coincide (`a.b`, `a-b`,
            // `a_b`; `all` and `ALL`) get `_2`, `_3`, … in catalog order.
            let mut constants: BTreeSet<String> = ["ALL", "BINDINGS"].map(str::to_owned).into();
            for t in &catalog.topics {
                let b = BindingCtx {
                    topic: t.name.clone(),
                    key_subject: t.key_subject().unwrap_or_default(),
                    value_subject: t.value_subject(),
                };
                topics.push(TopicCtx {
                    name: t.name.clone(),
                    constant: names::unique_constant(names::screaming(&t.name), &mut constants),
                    doc: doc_lines(t.description.as_deref()),
                    key: t
                        .key
                        .as_ref()
                        .map(|k| k.name().to_owned())
                        .unwrap_or_default(),
                    value: t.value.name().to_owned(),
                    key_subject: b.key_subject.clone(),
                    value_subject: b.value_subject.clone(),
                    partitions: t.partitions,
                    compatibility: t.compatibility.as_str().to_owned(),
                });
                bindings
                    .entry(t.value.name().to_owned())
                    .or_default()
                    .push(b);
            }
        }
        let mut p = Planner {
            set,
            types,
            modules,
            boxed: HashSet::new(),
            bindings,
            topics,
        };
        p.boxed = p.find_boxed();
        p
    }

    /// Records a record holds by value (directly, in an option or a union — not in an array or map).
    fn by_value(&self, s: &Schema, out: &mut Vec<NamedId>) {
        match &s.kind {
            SchemaKind::Named(id) => {
                if matches!(self.set.named(*id).kind, NamedKind::Record { .. }) {
                    out.push(*id);
                }
            }
            SchemaKind::Union(branches) => branches.iter().for_each(|b| self.by_value(b, out)),
            _ => {}
        }
    }

    /// Edges (record → record held by value) that close a cycle and so must be boxed.
    fn find_boxed(&self) -> HashSet<(NamedId, NamedId)> {
        let mut edges: HashMap<NamedId, Vec<NamedId>> = HashMap::new();
        for (id, t) in self.set.named_types() {
            if let NamedKind::Record { fields } = &t.kind {
                let mut out = Vec::new();
                fields
                    .iter()
                    .for_each(|f| self.by_value(&f.schema, &mut out));
                edges.insert(id, out);
            }
        }
        let reaches = |from: NamedId, target: NamedId| {
            let mut stack = vec![from];
            let mut seen = HashSet::new();
            while let Some(n) = stack.pop() {
                if n == target {
                    return true;
                }
                if seen.insert(n) {
                    stack.extend(edges.get(&n).into_iter().flatten().copied());
                }
            }
            false
        };
        let mut boxed = HashSet::new();
        for (&from, tos) in &edges {
            for &to in tos {
                if reaches(to, from) {
                    boxed.insert((from, to));
                }
            }
        }
        boxed
    }

    fn path_to(&self, from: &[String], id: NamedId) -> String {
        let info = &self.types[id.index()];
        rel_path(from, &info.module, &info.name)
    }

    /// The codec of a schema node inside record `owner`; `hint` names union enums created for it.
    fn codec(&mut self, s: &Schema, owner: NamedId, hint: &str) -> Codec {
        let module = self.types[owner.index()].module.clone();
        match &s.kind {
            SchemaKind::Named(id) => {
                let t = self.set.named(*id);
                if let (NamedKind::Fixed { size }, Some(l)) = (&t.kind, t.logical)
                    && let Some(c) = codec::logical_fixed(*size, l)
                {
                    return c;
                }
                let path = self.path_to(&module, *id);
                if self.boxed.contains(&(owner, *id)) {
                    codec::named(&format!("::std::boxed::Box<{path}>"))
                } else {
                    codec::named(&path)
                }
            }
            SchemaKind::Array(items) => {
                let item = self.codec(items, owner, &format!("{hint}Item"));
                codec::array(&item)
            }
            SchemaKind::Map(values) => {
                let value = self.codec(values, owner, &format!("{hint}Value"));
                codec::map(&value)
            }
            SchemaKind::Union(branches) => self.union(branches, owner, hint),
            kind => codec::primitive(kind, s.logical),
        }
    }

    fn union(&mut self, branches: &[Schema], owner: NamedId, hint: &str) -> Codec {
        let null_index = branches.iter().position(|b| b.kind == SchemaKind::Null);
        let others: Vec<(usize, &Schema)> = branches
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind != SchemaKind::Null)
            .collect();
        match (null_index, others.as_slice()) {
            (Some(_), []) => codec::single_branch(&codec::primitive(&SchemaKind::Null, None)),
            (None, [(_, only)]) => {
                let inner = self.codec(only, owner, hint);
                codec::single_branch(&inner)
            }
            (Some(n), [(_, only)]) => {
                let inner = self.codec(only, owner, hint);
                codec::option(&inner, n, 2)
            }
            _ => {
                let module = self.types[owner.index()].module.clone();
                let name = {
                    let m = self.modules.entry(module.clone()).or_default();
                    names::unique(hint.to_owned(), &mut m.taken)
                };
                let mut used = BTreeSet::new();
                let mut variants = Vec::new();
                let mut variant_types = Vec::new();
                for (index, b) in &others {
                    let inner = self.codec(b, owner, &format!("{name}{}", self.branch_hint(b)));
                    let base = match &b.kind {
                        SchemaKind::Named(id) => {
                            let t = self.set.named(*id);
                            if codec::is_logical_fixed(&t.kind, t.logical) {
                                names::upper_camel(&t.name.name)
                            } else {
                                self.types[id.index()].name.clone()
                            }
                        }
                        _ => codec::variant_name(b, None),
                    };
                    let vname = if used.contains(&base) {
                        // Same simple name from another namespace: use the full name.
                        match &b.kind {
                            SchemaKind::Named(id) => names::unique(
                                names::upper_camel(
                                    &self.set.named(*id).name.fullname().replace('.', "_"),
                                ),
                                &mut used,
                            ),
                            _ => names::unique(base, &mut used),
                        }
                    } else {
                        used.insert(base.clone());
                        base
                    };
                    let binding = if inner.enc.is_empty() { "_" } else { "x" };
                    variant_types.push(inner.ty.clone());
                    variants.push(UnionVariantCtx {
                        from: false,
                        from_unboxed: None,
                        wire: match &b.kind {
                            SchemaKind::Named(id) => self.set.named(*id).name.fullname(),
                            SchemaKind::Array(_) => "array".to_owned(),
                            SchemaKind::Map(_) => "map".to_owned(),
                            k => k.primitive_name().unwrap_or_default().to_owned(),
                        },
                        name: vname.clone(),
                        ty: inner.ty.clone(),
                        index: *index,
                        enc: inner.enc_of("x"),
                        dec: format!("{}.map(Self::{vname})", inner.dec),
                        binding: binding.to_owned(),
                    });
                }
                let branch_list: Vec<String> = branches.iter().map(|b| self.describe(b)).collect();
                let doc = vec![format!(
                    "A value of the Avro union `[{}]`.",
                    branch_list.join(", ")
                )];
                let count = branches.len();
                let (eq, hash) = branches
                    .iter()
                    .map(|b| self.eq_hash(b, &mut HashSet::new()))
                    .fold((true, true), |(e, h), (be, bh)| (e && be, h && bh));
                // `From` for each branch type no other branch shares.
                for v in &mut variants {
                    v.from = others_same_type(&v.ty, &variant_types) == 1;
                    v.from_unboxed =
                        v.ty.strip_prefix("::std::boxed::Box<")
                            .and_then(|t| t.strip_suffix('>'))
                            .filter(|t| v.from && others_same_type(t, &variant_types) == 0)
                            .map(str::to_owned);
                }
                self.modules
                    .entry(module)
                    .or_default()
                    .unions
                    .push(UnionCtx {
                        name: name.clone(),
                        doc,
                        branches: count,
                        variants,
                        eq,
                        hash,
                    });
                match null_index {
                    Some(n) => codec::option_of_union(&name, n, count),
                    None => codec::named(&name),
                }
            }
        }
    }

    /// Whether the Rust type of `s` can derive `Eq` and `Hash`: floats are neither, maps and decimals
    /// `Eq` only; a type on a cycle (`visiting`) counts as both, so recursion does not prevent them.
    fn eq_hash(&self, s: &Schema, visiting: &mut HashSet<NamedId>) -> (bool, bool) {
        use ursa_avro::schema::LogicalType;
        let all = |items: &mut dyn Iterator<Item = (bool, bool)>| {
            items.fold((true, true), |(e, h), (ie, ih)| (e && ie, h && ih))
        };
        match &s.kind {
            SchemaKind::Float | SchemaKind::Double => (false, false),
            SchemaKind::Bytes if matches!(s.logical, Some(LogicalType::Decimal { .. })) => {
                (true, false)
            }
            SchemaKind::Array(items) => self.eq_hash(items, visiting),
            SchemaKind::Map(values) => (self.eq_hash(values, visiting).0, false),
            SchemaKind::Union(branches) => {
                all(&mut branches.iter().map(|b| self.eq_hash(b, visiting)))
            }
            SchemaKind::Named(id) => {
                if !visiting.insert(*id) {
                    return (true, true);
                }
                let t = self.set.named(*id);
                let result = match &t.kind {
                    NamedKind::Record { fields } => {
                        all(&mut fields.iter().map(|f| self.eq_hash(&f.schema, visiting)))
                    }
                    NamedKind::Fixed { .. }
                        if codec::is_logical_fixed(&t.kind, t.logical)
                            && matches!(t.logical, Some(LogicalType::Decimal { .. })) =>
                    {
                        (true, false)
                    }
                    NamedKind::Enum { .. } | NamedKind::Fixed { .. } => (true, true),
                };
                visiting.remove(id);
                result
            }
            _ => (true, true),
        }
    }

    fn branch_hint(&self, b: &Schema) -> String {
        match &b.kind {
            SchemaKind::Named(id) => names::upper_camel(&self.set.named(*id).name.name),
            _ => codec::variant_name(b, None),
        }
    }

    fn describe(&self, s: &Schema) -> String {
        match &s.kind {
            SchemaKind::Named(id) => self.set.named(*id).name.fullname(),
            SchemaKind::Array(i) => format!("array<{}>", self.describe(i)),
            SchemaKind::Map(v) => format!("map<{}>", self.describe(v)),
            SchemaKind::Union(b) => format!(
                "[{}]",
                b.iter()
                    .map(|x| self.describe(x))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            k => match s.logical {
                Some(l) => format!("{}:{}", k.primitive_name().unwrap_or_default(), l.name()),
                None => k.primitive_name().unwrap_or_default().to_owned(),
            },
        }
    }

    /// Plans every named type.
    pub fn run(&mut self) {
        let mut ids: Vec<NamedId> = self.set.named_types().map(|(id, _)| id).collect();
        ids.sort_by(|a, b| self.types[a.index()].name.cmp(&self.types[b.index()].name));
        for id in ids {
            self.plan_type(id);
        }
    }

    fn plan_type(&mut self, id: NamedId) {
        let t = self.set.named(id);
        let module = self.types[id.index()].module.clone();
        let name = self.types[id.index()].name.clone();
        let full_name = t.name.fullname();
        let doc = doc_lines(t.doc.as_deref());
        match &t.kind {
            NamedKind::Record { fields } => {
                let mut taken = BTreeSet::new();
                let mut out = Vec::new();
                let mut record_default = Vec::new();
                for (i, f) in fields.iter().enumerate() {
                    let rust = names::unique(names::snake(&f.name), &mut taken);
                    let hint = format!("{name}{}", names::upper_camel(&f.name));
                    let c = self.codec(&f.schema, id, &hint);
                    let mut fdoc = doc_lines(f.doc.as_deref());
                    if fdoc.is_empty() {
                        fdoc.push(format!("The field `{}`.", f.name));
                    }
                    if rust.trim_start_matches("r#") != f.name {
                        fdoc.push(String::new());
                        fdoc.push(format!("Wire name: `{}`.", f.name));
                    }
                    let binding = if c.enc.is_empty() {
                        "_".to_owned()
                    } else {
                        format!("f{i}")
                    };
                    let default_bytes = f.default.as_ref().and_then(|d| {
                        ursa_avro::resolve::encode_default(self.set, &f.schema, d).ok()
                    });
                    if let Some(b) = &default_bytes {
                        record_default.extend_from_slice(b);
                    }
                    out.push(FieldCtx {
                        default_bytes: default_bytes.map(|b| format!("&{b:?}")),
                        rename: rust.trim_start_matches("r#") != f.name,
                        enc: c.enc_of(&binding),
                        dec: c.dec.clone(),
                        ty: c.ty,
                        name: rust,
                        wire_name: f.name.clone(),
                        doc: fdoc,
                        binding,
                        pii: f.is_pii(),
                    });
                }
                let node = Schema {
                    kind: SchemaKind::Named(id),
                    logical: None,
                    attrs: Attrs::new(),
                    loc: t.loc,
                };
                let json = self.set.full_json(&node).to_string();
                let canonical = self.set.canonical_form(&node);
                let fingerprint = format!("{:#018x}", fingerprint64(canonical.as_bytes()));
                let bindings = self.bindings.remove(&full_name).unwrap_or_default();
                let (eq, hash) = self.eq_hash(&node, &mut HashSet::new());
                // `Default` only if the defaults decode as a whole (checked here, with the generic decoder,
                // so that the generated `default()` cannot fail).
                let default = out.iter().all(|f| f.default_bytes.is_some())
                    && ursa_avro::value::decode_json(self.set, &node, &record_default).is_ok();
                let build_fn = names::unique("build".to_owned(), &mut taken);
                let builder = {
                    let m = self.modules.entry(module.clone()).or_default();
                    names::unique(format!("{name}Builder"), &mut m.taken)
                };
                let pii_fields = fields
                    .iter()
                    .filter(|f| f.is_pii())
                    .map(|f| f.name.clone())
                    .collect();
                self.modules
                    .entry(module)
                    .or_default()
                    .records
                    .push(RecordCtx {
                        name,
                        full_name,
                        doc,
                        fields: out,
                        pii_fields,
                        schema_literal: literal(&json),
                        canonical_literal: literal(&canonical),
                        fingerprint,
                        bindings,
                        eq,
                        hash,
                        builder,
                        build_fn,
                        default,
                    });
            }
            NamedKind::Enum { symbols, default } => {
                let mut taken = BTreeSet::new();
                let variants: Vec<VariantCtx> = symbols
                    .iter()
                    .enumerate()
                    .map(|(index, s)| VariantCtx {
                        name: names::unique(names::upper_camel(s), &mut taken),
                        symbol: s.clone(),
                        index,
                    })
                    .collect();
                let default = default.as_ref().and_then(|d| {
                    variants
                        .iter()
                        .find(|v| &v.symbol == d)
                        .map(|v| v.name.clone())
                });
                self.modules.entry(module).or_default().enums.push(EnumCtx {
                    name,
                    full_name,
                    doc,
                    variants,
                    default,
                });
            }
            NamedKind::Fixed { size } => {
                let m = self.modules.entry(module).or_default();
                if codec::is_logical_fixed(&t.kind, t.logical) {
                    let ty = codec::logical_fixed(
                        *size,
                        t.logical.unwrap_or(ursa_avro::schema::LogicalType::Uuid),
                    )
                    .map(|c| c.ty)
                    .unwrap_or_default();
                    m.aliases.push(AliasCtx {
                        name,
                        full_name,
                        doc,
                        ty,
                    });
                } else {
                    m.fixeds.push(FixedCtx {
                        name,
                        full_name,
                        doc,
                        size: *size,
                    });
                }
            }
        }
    }
}

/// How many of the union's variant types are `ty`.
fn others_same_type(ty: &str, types: &[String]) -> usize {
    types.iter().filter(|t| *t == ty).count()
}
