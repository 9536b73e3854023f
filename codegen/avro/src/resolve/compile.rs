//! Compiling a (writer, reader) schema pair into a [`Plan`], following the Avro 1.12 schema resolution rules.

use std::collections::{HashMap, HashSet};

use super::default::encode_default;
use super::plan::{Branch, EnumTarget, Node, NodeId, Plan, Record, Skip, SkipId, Step};
use super::skip::SkipCompiler;
use crate::schema::{
    Field, LogicalType, NamedId, NamedKind, NamedType, Schema, SchemaKind, SchemaSet,
};

/// Compiles the plan reading `w` (of `ws`) as `r` (of `rs`); the error says what does not resolve, and where.
pub(crate) fn compile(
    ws: &SchemaSet,
    w: &Schema,
    rs: &SchemaSet,
    r: &Schema,
) -> Result<Plan, String> {
    let mut skips = Vec::new();
    let skip = SkipCompiler::new(&mut skips);
    let mut c = Compiler {
        ws,
        rs,
        nodes: Vec::new(),
        skips,
        defaults: Vec::new(),
        skip,
        pairs: HashMap::new(),
        reorders: false,
    };
    let root = c.compile(w, r)?;
    Ok(Plan {
        nodes: c.nodes,
        skips: c.skips,
        defaults: c.defaults,
        root,
        reorders: c.reorders,
    })
}

struct Compiler<'a> {
    ws: &'a SchemaSet,
    rs: &'a SchemaSet,
    nodes: Vec<Node>,
    skips: Vec<Skip>,
    defaults: Vec<u8>,
    skip: SkipCompiler,
    /// Named pairs compiled or being compiled: recursive types refer back to the pair's node.
    pairs: HashMap<(NamedId, NamedId), Result<NodeId, String>>,
    reorders: bool,
}

/// How well a writer schema matches a reader union branch: exact type or full name, then unqualified name or
/// alias, then anything it may be promoted or resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    Exact,
    Name,
    Other,
}

impl Compiler<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        (self.nodes.len() - 1) as NodeId
    }

    fn skip_of(&mut self, w: &Schema) -> SkipId {
        self.skip.compile(self.ws, w, &mut self.skips)
    }

    fn copy(&mut self, w: &Schema) -> NodeId {
        let skip = self.skip_of(w);
        self.push(Node::Copy(skip))
    }

    fn identical(&self, w: &Schema, r: &Schema) -> bool {
        self.ws.canonical_form(w) == self.rs.canonical_form(r)
            && !decimals_conflict(self.ws, w, self.rs, r)
    }

    fn compile(&mut self, w: &Schema, r: &Schema) -> Result<NodeId, String> {
        use SchemaKind as K;
        match (&w.kind, &r.kind) {
            (K::Union(wb), K::Union(rb)) => {
                if self.identical(w, r) {
                    return Ok(self.copy(w));
                }
                let branches = wb
                    .iter()
                    .map(|b| match self.select(b, rb) {
                        Ok((i, node)) => Branch::To(Some(i), node),
                        Err(e) => Branch::Fail(e.into()),
                    })
                    .collect();
                Ok(self.push(Node::Union(branches)))
            }
            (_, K::Union(rb)) => {
                let (i, node) = self.select(w, rb)?;
                Ok(self.push(Node::Tag(i, node)))
            }
            (K::Union(wb), _) => {
                let branches = wb
                    .iter()
                    .map(|b| match self.compile(b, r) {
                        Ok(node) => Branch::To(None, node),
                        Err(e) => Branch::Fail(
                            format!(
                                "writer union branch {} cannot be read as reader {}: {e}",
                                self.describe_w(b),
                                self.describe_r(r)
                            )
                            .into(),
                        ),
                    })
                    .collect();
                Ok(self.push(Node::Union(branches)))
            }
            (K::Bytes, K::Bytes) => {
                decimals_agree(w.logical, r.logical)?;
                Ok(self.copy(w))
            }
            (K::Null, K::Null)
            | (K::Boolean, K::Boolean)
            | (K::Int, K::Int)
            | (K::Long, K::Long)
            | (K::Float, K::Float)
            | (K::Double, K::Double)
            | (K::String, K::String)
            | (K::String, K::Bytes) => Ok(self.copy(w)),
            (K::Int, K::Long) => Ok(self.push(Node::IntToLong)),
            (K::Int, K::Float) => Ok(self.push(Node::IntToFloat)),
            (K::Int, K::Double) => Ok(self.push(Node::IntToDouble)),
            (K::Long, K::Float) => Ok(self.push(Node::LongToFloat)),
            (K::Long, K::Double) => Ok(self.push(Node::LongToDouble)),
            (K::Float, K::Double) => Ok(self.push(Node::FloatToDouble)),
            (K::Bytes, K::String) => Ok(self.push(Node::BytesToString)),
            (K::Array(wi), K::Array(ri)) => {
                if self.identical(w, r) {
                    return Ok(self.copy(w));
                }
                let items = self
                    .compile(wi, ri)
                    .map_err(|e| format!("array items: {e}"))?;
                Ok(self.push(Node::Array(items)))
            }
            (K::Map(wv), K::Map(rv)) => {
                if self.identical(w, r) {
                    return Ok(self.copy(w));
                }
                let values = self
                    .compile(wv, rv)
                    .map_err(|e| format!("map values: {e}"))?;
                Ok(self.push(Node::Map(values)))
            }
            (K::Named(wid), K::Named(rid)) => self.named(w, *wid, r, *rid),
            _ => Err(format!(
                "writer {} cannot be read as reader {}",
                self.describe_w(w),
                self.describe_r(r)
            )),
        }
    }

    /// The reader union branch a (non-union) writer schema resolves to: the best-ranked branch that compiles,
    /// the first of equal rank.
    fn select(&mut self, w: &Schema, rb: &[Schema]) -> Result<(u32, NodeId), String> {
        let mut first_error = None;
        for rank in [Rank::Exact, Rank::Name, Rank::Other] {
            for (i, b) in rb.iter().enumerate() {
                if self.rank(w, b) != rank {
                    continue;
                }
                match self.compile(w, b) {
                    Ok(node) => return Ok((i as u32, node)),
                    Err(e) if rank != Rank::Other => {
                        first_error.get_or_insert(e);
                    }
                    Err(_) => {}
                }
            }
        }
        let reader = rb
            .iter()
            .map(|b| self.describe_r(b))
            .collect::<Vec<_>>()
            .join(", ");
        let mut msg = format!(
            "writer {} matches no branch of reader union [{reader}]",
            self.describe_w(w)
        );
        if let Some(e) = first_error {
            msg.push_str(&format!(" ({e})"));
        }
        Err(msg)
    }

    fn rank(&self, w: &Schema, r: &Schema) -> Rank {
        use SchemaKind as K;
        match (&w.kind, &r.kind) {
            (K::Named(wid), K::Named(rid)) => {
                let (wt, rt) = (self.ws.named(*wid), self.rs.named(*rid));
                if std::mem::discriminant(&wt.kind) != std::mem::discriminant(&rt.kind) {
                    Rank::Other
                } else if wt.name == rt.name {
                    Rank::Exact
                } else if names_match(wt, rt) {
                    Rank::Name
                } else {
                    Rank::Other
                }
            }
            (K::Named(_), _) | (_, K::Named(_)) => Rank::Other,
            (wk, rk) if std::mem::discriminant(wk) == std::mem::discriminant(rk) => Rank::Exact,
            _ => Rank::Other,
        }
    }

    /// A record, enum or fixed pair, memoised so recursive types compile to a finite plan.
    fn named(
        &mut self,
        w: &Schema,
        wid: NamedId,
        r: &Schema,
        rid: NamedId,
    ) -> Result<NodeId, String> {
        if let Some(done) = self.pairs.get(&(wid, rid)) {
            return done.clone();
        }
        let (wt, rt) = (self.ws.named(wid), self.rs.named(rid));
        if std::mem::discriminant(&wt.kind) != std::mem::discriminant(&rt.kind) {
            return Err(format!(
                "writer {} cannot be read as reader {}",
                self.describe_w(w),
                self.describe_r(r)
            ));
        }
        if !names_match(wt, rt) {
            return Err(format!(
                "writer {} cannot be read as reader {}: the names differ and no reader alias matches",
                self.describe_w(w),
                self.describe_r(r)
            ));
        }
        if self.identical(w, r) {
            let node = self.copy(w);
            self.pairs.insert((wid, rid), Ok(node));
            return Ok(node);
        }
        // Registered before compiling the members, so a recursive reference finds this node.
        let at = self.push(Node::Pending);
        self.pairs.insert((wid, rid), Ok(at));
        let compiled = match (&wt.kind, &rt.kind) {
            (NamedKind::Record { fields: wf }, NamedKind::Record { fields: rf }) => {
                self.record(wt, wf, rt, rf)
            }
            (
                NamedKind::Enum { symbols: ws, .. },
                NamedKind::Enum {
                    symbols: rsyms,
                    default,
                },
            ) => Ok(enum_node(wt, ws, rt, rsyms, default.as_deref())),
            (NamedKind::Fixed { size: wn }, NamedKind::Fixed { size: rn }) if wn == rn => {
                decimals_agree(wt.logical, rt.logical).map(|()| Node::Copy(self.skip_of(w)))
            }
            (NamedKind::Fixed { size: wn }, NamedKind::Fixed { size: rn }) => Err(format!(
                "fixed `{}` has size {wn} in the writer but {rn} in the reader (`{}`)",
                wt.name.fullname(),
                rt.name.fullname()
            )),
            _ => Err(format!(
                "writer {} cannot be read as reader {}",
                self.describe_w(w),
                self.describe_r(r)
            )),
        };
        match compiled {
            Ok(node) => {
                self.nodes[at as usize] = node;
                Ok(at)
            }
            Err(e) => {
                self.nodes[at as usize] = Node::Fail(e.clone().into());
                self.pairs.insert((wid, rid), Err(e.clone()));
                Err(e)
            }
        }
    }

    /// A record pair: reader fields matched to writer fields by name, then by the reader field's aliases.
    fn record(
        &mut self,
        wt: &NamedType,
        wf: &[Field],
        rt: &NamedType,
        rf: &[Field],
    ) -> Result<Node, String> {
        let rname = rt.name.fullname();
        // source[j]: the writer field read as reader field j; target[i]: the reader field writer field i becomes.
        let mut source: Vec<Option<usize>> = rf
            .iter()
            .map(|f| wf.iter().position(|w| w.name == f.name))
            .collect();
        let mut target = vec![None; wf.len()];
        for (j, s) in source.iter().enumerate() {
            if let Some(i) = *s {
                target[i] = Some(j);
            }
        }
        for (j, f) in rf.iter().enumerate() {
            if source[j].is_some() {
                continue;
            }
            if let Some(i) =
                (0..wf.len()).find(|&i| target[i].is_none() && f.aliases.contains(&wf[i].name))
            {
                source[j] = Some(i);
                target[i] = Some(j);
            }
        }

        // What each reader field comes from: a compiled writer field or a pre-encoded default.
        enum Src {
            Writer(NodeId),
            Default(u32, u32),
        }
        let mut sources = Vec::with_capacity(rf.len());
        for (j, f) in rf.iter().enumerate() {
            let src = match source[j] {
                Some(i) => {
                    let node = self
                        .compile(&wf[i].schema, &f.schema)
                        .map_err(|e| format!("field `{}` of record `{rname}`: {e}", f.name))?;
                    Src::Writer(node)
                }
                None => {
                    let Some(default) = &f.default else {
                        return Err(format!(
                            "reader field `{}` of record `{rname}` has no default and the writer's record `{}` has no such field",
                            f.name,
                            wt.name.fullname()
                        ));
                    };
                    let start = self.defaults.len();
                    encode_default(self.rs, &f.schema, default, &mut self.defaults).map_err(
                        |e| format!("default of field `{}` of record `{rname}`: {e}", f.name),
                    )?;
                    let (start, len) = (
                        u32::try_from(start),
                        u32::try_from(self.defaults.len() - start),
                    );
                    match (start, len) {
                        (Ok(start), Ok(len)) => Src::Default(start, len),
                        _ => return Err("defaults larger than 4 GiB".into()),
                    }
                }
            };
            sources.push(src);
        }

        // Steps in writer order. A writer field that is the next reader field to emit goes straight out;
        // one that comes later in reader order is buffered, then flushed when its turn comes.
        let mut steps = Vec::with_capacity(wf.len() + rf.len());
        let mut slot_of: Vec<Option<u32>> = vec![None; rf.len()];
        let mut slots = 0u32;
        let mut next = 0usize;
        let advance = |next: &mut usize, steps: &mut Vec<Step>, slot_of: &[Option<u32>]| {
            while let Some(src) = sources.get(*next) {
                let step = match (src, slot_of[*next]) {
                    (Src::Default(start, len), _) => Step::Default {
                        start: *start,
                        len: *len,
                    },
                    (Src::Writer(_), Some(slot)) => Step::Flush(slot),
                    (Src::Writer(_), None) => break,
                };
                // Adjacent defaults are adjacent in the pool: emit them as one copy.
                match (steps.last_mut(), step) {
                    (Some(Step::Default { start, len }), Step::Default { start: s, len: l })
                        if *start + *len == s =>
                    {
                        *len += l;
                    }
                    _ => steps.push(step),
                }
                *next += 1;
            }
        };
        advance(&mut next, &mut steps, &slot_of);
        for (i, f) in wf.iter().enumerate() {
            match target[i] {
                None => {
                    let skip = self.skip_of(&f.schema);
                    steps.push(Step::Skip(skip));
                }
                Some(j) => {
                    let Src::Writer(node) = sources[j] else {
                        return Err("internal error: field matched twice".into());
                    };
                    if j == next {
                        steps.push(Step::Direct(node));
                        next += 1;
                        advance(&mut next, &mut steps, &slot_of);
                    } else {
                        slot_of[j] = Some(slots);
                        slots += 1;
                        steps.push(Step::Buffer(node));
                    }
                }
            }
        }
        advance(&mut next, &mut steps, &slot_of);
        if next != rf.len() {
            return Err("internal error: reader fields left unplanned".into());
        }
        if slots > 0 {
            self.reorders = true;
        }
        Ok(Node::Record(Record {
            steps: steps.into(),
        }))
    }

    fn describe_w(&self, s: &Schema) -> String {
        describe(self.ws, s)
    }

    fn describe_r(&self, s: &Schema) -> String {
        describe(self.rs, s)
    }
}

/// Two decimals resolve only if their precisions and scales are equal (Avro 1.12, "Schema Resolution"): the
/// same unscaled bytes at another scale are another value. A decimal and a non-decimal resolve (the logical
/// type is then ignored, as for every other logical type). Avro Java's readers and `SchemaCompatibility` ignore
/// decimal parameters; `ursa schema compat` warns about a changed scale or precision.
fn decimals_agree(w: Option<LogicalType>, r: Option<LogicalType>) -> Result<(), String> {
    match (w, r) {
        (
            Some(LogicalType::Decimal {
                precision: wp,
                scale: ws,
            }),
            Some(LogicalType::Decimal {
                precision: rp,
                scale: rs,
            }),
        ) if (wp, ws) != (rp, rs) => Err(format!(
            "writer decimal({wp},{ws}) cannot be read as reader decimal({rp},{rs}): decimals resolve only with \
             the same precision and scale"
        )),
        _ => Ok(()),
    }
}

/// Whether two schemas with the same canonical form (so the same shape) have, somewhere, two decimals that do
/// not agree on precision and scale: the canonical form leaves logical types out.
pub(crate) fn decimals_conflict(ws: &SchemaSet, w: &Schema, rs: &SchemaSet, r: &Schema) -> bool {
    fn walk(
        ws: &SchemaSet,
        w: &Schema,
        rs: &SchemaSet,
        r: &Schema,
        seen: &mut HashSet<(NamedId, NamedId)>,
    ) -> bool {
        use SchemaKind as K;
        match (&w.kind, &r.kind) {
            (K::Array(wi), K::Array(ri)) | (K::Map(wi), K::Map(ri)) => walk(ws, wi, rs, ri, seen),
            (K::Union(wb), K::Union(rb)) => {
                wb.iter().zip(rb).any(|(wb, rb)| walk(ws, wb, rs, rb, seen))
            }
            (K::Named(wid), K::Named(rid)) => {
                if !seen.insert((*wid, *rid)) {
                    return false;
                }
                let (wt, rt) = (ws.named(*wid), rs.named(*rid));
                match (&wt.kind, &rt.kind) {
                    (NamedKind::Record { fields: wf }, NamedKind::Record { fields: rf }) => wf
                        .iter()
                        .zip(rf)
                        .any(|(wf, rf)| walk(ws, &wf.schema, rs, &rf.schema, seen)),
                    _ => decimals_agree(wt.logical, rt.logical).is_err(),
                }
            }
            _ => decimals_agree(w.logical, r.logical).is_err(),
        }
    }
    walk(ws, w, rs, r, &mut HashSet::new())
}

/// Whether a writer named type is read as a reader named type, as Avro Java decides (`schemaNameEquals`, and
/// `Schema.applyAliases` in its readers) and the compatibility checker does: the same unqualified name, or a
/// reader alias equal to the writer's full name (aliases are full names; an unqualified one was given the
/// reader's namespace when parsed).
fn names_match(w: &NamedType, r: &NamedType) -> bool {
    w.name.name == r.name.name || r.aliases.contains(&w.name)
}

/// An enum: each writer symbol to the reader ordinal of the same symbol, else the reader's default, else an
/// error when that symbol occurs.
fn enum_node(
    wt: &NamedType,
    ws: &[String],
    rt: &NamedType,
    rs: &[String],
    default: Option<&str>,
) -> Node {
    let default = default.and_then(|d| rs.iter().position(|s| s == d));
    let targets = ws
        .iter()
        .map(|s| match rs.iter().position(|r| r == s).or(default) {
            Some(i) => EnumTarget::Ordinal(i as u32),
            None => EnumTarget::Unknown(
                format!(
                    "symbol `{s}` of writer enum `{}` is not in reader enum `{}`, which has no default",
                    wt.name.fullname(),
                    rt.name.fullname()
                )
                .into(),
            ),
        })
        .collect();
    Node::Enum(targets)
}

/// A short description of a schema for error messages: `int`, `record \`a.B\``, `array of string`, ….
fn describe(set: &SchemaSet, s: &Schema) -> String {
    match &s.kind {
        SchemaKind::Named(id) => {
            let t = set.named(*id);
            let kind = match t.kind {
                NamedKind::Record { .. } => "record",
                NamedKind::Enum { .. } => "enum",
                NamedKind::Fixed { .. } => "fixed",
            };
            format!("{kind} `{}`", t.name.fullname())
        }
        SchemaKind::Array(items) => format!("array of {}", describe(set, items)),
        SchemaKind::Map(values) => format!("map of {}", describe(set, values)),
        SchemaKind::Union(branches) => {
            let b = branches
                .iter()
                .map(|b| describe(set, b))
                .collect::<Vec<_>>()
                .join(", ");
            format!("union [{b}]")
        }
        other => other.primitive_name().unwrap_or("?").to_owned(),
    }
}
