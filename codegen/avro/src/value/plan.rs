//! A writer schema compiled once into a flat program that writes its datums' JSON text: the walk of
//! [`super::write`] without its per-node dispatch. Nested records are inlined, each field's key and the
//! punctuation around it become one piece of literal text (`},"message_id":`), `null`s are text too, and a
//! union is a jump table. A step is the text before a value and the value's read, so the dispatch is paid
//! once per value. What the program does not inline (arrays, maps, fixed, rare logical types,
//! recursive types) it hands to the walk, at the depth the walk would be at, so the text and the errors are
//! the walk's: the same reads in the same order.

use super::logical;
use super::write::{self, JsonKeys, Stop};
use crate::binary::Reader;
use crate::schema::{LogicalType, NamedId, NamedKind, Schema, SchemaKind, SchemaSet};

/// Records and collections nested deeper than this are left to the walk, which enforces the reader's
/// depth limit (128 by default) exactly as it does elsewhere.
const INLINE_DEPTH: u32 = 64;

/// What a step reads and writes after its text.
#[derive(Debug, Clone, Copy)]
#[repr(u8)]
enum Op {
    /// Nothing: the step is its text alone (`null`s, the closing braces at the end).
    Text,
    Boolean,
    Int,
    Long,
    /// A `long` with a logical type (timestamps and the like).
    LongLogical(LogicalType),
    Float,
    Double,
    /// `bytes` without a logical type (base64).
    Bytes,
    String,
    /// An enum: `symbols[first + ordinal]` of `count`.
    Enum {
        first: u32,
        count: u32,
    },
    /// A union: the branch index read picks `targets[at + index]`, the step the branch begins at.
    Union {
        at: u32,
        branches: u32,
    },
    /// Goes on at step `i` (the end of a union's branch).
    Jump(u32),
    /// `subs[i]` written by the walk, the reader at `depth` (enclosing records and collections).
    Walk {
        sub: u32,
        depth: u32,
    },
}

/// One step: literal text (`text_len` bytes of the pool from `text_at`; often a field's key with the
/// punctuation before it), then its op. A step per value read, so dispatch is paid once per value.
#[derive(Debug, Clone, Copy)]
struct Step {
    text_at: u32,
    text_len: u32,
    op: Op,
}

/// The JSON program of one schema of a set (see the module docs). Made once per writer schema; writes with
/// the set it was made from.
#[derive(Debug, Clone)]
pub struct JsonPlan {
    root: Schema,
    keys: JsonKeys,
    steps: Vec<Step>,
    /// Every step's text and every enum symbol (quoted), end to end, with [`PAD`] bytes after the last so
    /// that each can be copied as one fixed-size chunk.
    pool: Vec<u8>,
    /// Enum symbols: where each one's text is in the pool, and its length.
    symbols: Vec<(u32, u32)>,
    targets: Vec<u32>,
    subs: Vec<Schema>,
}

/// Bytes after the pool's last text.
const PAD: usize = 64;

/// What compiling has built so far, and the literal text not yet made a piece.
struct Compiler<'s> {
    set: &'s SchemaSet,
    plan: JsonPlan,
    text: Vec<u8>,
    /// The records being inlined (a recursive reference is walked instead).
    open: Vec<NamedId>,
}

impl JsonPlan {
    /// The program of `root`, a schema of `set`.
    pub fn new(set: &SchemaSet, root: &Schema) -> JsonPlan {
        let mut c = Compiler {
            set,
            plan: JsonPlan {
                root: root.clone(),
                keys: JsonKeys::new(set),
                steps: Vec::new(),
                pool: Vec::new(),
                symbols: Vec::new(),
                targets: Vec::new(),
                subs: Vec::new(),
            },
            text: Vec::new(),
            open: Vec::new(),
        };
        c.node(root, 0);
        c.flush();
        c.plan.pool.extend_from_slice(&[b' '; PAD]);
        c.plan
    }

    /// The schema the program writes.
    pub fn root(&self) -> &Schema {
        &self.root
    }

    /// The keys the walk uses for what the program hands to it.
    pub fn keys(&self) -> &JsonKeys {
        &self.keys
    }

    /// Appends the JSON text of the value `r` is at; `set` is the set the plan was made from.
    pub(super) fn write(
        &self,
        set: &SchemaSet,
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), Stop> {
        let mut pc = 0usize;
        while let Some(step) = self.steps.get(pc) {
            pc += 1;
            if step.text_len > 0 {
                self.text(step.text_at, step.text_len, out);
            }
            match step.op {
                Op::Text => {}
                Op::Boolean => out.extend_from_slice(if r.boolean()? { b"true" } else { b"false" }),
                Op::Int => write::int(out, i64::from(r.int()?)),
                Op::Long => write::int(out, r.long()?),
                Op::LongLogical(l) => logical::write_long(out, Some(l), r.long()?),
                Op::Float => write::float(out, r.float()?),
                Op::Double => write::double(out, r.double()?),
                Op::Bytes => write::base64(out, r.bytes()?),
                Op::String => write::string_at(r, out)?,
                Op::Enum { first, count } => {
                    let i = r.enum_index(count as usize)?;
                    let (at, len) = self.symbols[first as usize + i];
                    self.text(at, len, out);
                }
                Op::Union { at, branches } => {
                    let i = r.union_index(branches as usize)?;
                    pc = self.targets[at as usize + i] as usize;
                }
                Op::Jump(to) => pc = to as usize,
                Op::Walk { sub, depth } => {
                    r.set_depth(depth);
                    write::value(set, &self.keys, &self.subs[sub as usize], r, out)?;
                }
            }
        }
        Ok(())
    }

    /// Appends `len` bytes of the pool from `at`.
    #[inline(always)]
    fn text(&self, at: u32, len: u32, out: &mut Vec<u8>) {
        if let Some(from) = self.pool.get(at as usize..) {
            write::append_from(out, len as usize, from);
        }
    }
}

impl Compiler<'_> {
    /// Appends a step: the pending text, then `op`.
    fn op(&mut self, op: Op) {
        let text_at = self.plan.pool.len() as u32;
        let text_len = self.text.len() as u32;
        self.plan.pool.extend_from_slice(&self.text);
        self.text.clear();
        self.plan.steps.push(Step {
            text_at,
            text_len,
            op,
        });
    }

    /// The pending text as a step of its own, if there is any.
    fn flush(&mut self) {
        if !self.text.is_empty() {
            self.op(Op::Text);
        }
    }

    fn walk(&mut self, schema: &Schema, depth: u32) {
        let sub = self.plan.subs.len() as u32;
        self.plan.subs.push(schema.clone());
        self.op(Op::Walk { sub, depth });
    }

    /// The ops of one value of `schema`, read with the reader at `depth`.
    fn node(&mut self, schema: &Schema, depth: u32) {
        match (&schema.kind, schema.logical) {
            (SchemaKind::Null, _) => self.text.extend_from_slice(b"null"),
            (SchemaKind::Boolean, _) => self.op(Op::Boolean),
            (SchemaKind::Int, None) => self.op(Op::Int),
            (SchemaKind::Long, None) => self.op(Op::Long),
            (SchemaKind::Long, Some(l)) => self.op(Op::LongLogical(l)),
            (SchemaKind::Float, _) => self.op(Op::Float),
            (SchemaKind::Double, _) => self.op(Op::Double),
            (SchemaKind::Bytes, None) => self.op(Op::Bytes),
            (SchemaKind::String, _) => self.op(Op::String),
            (SchemaKind::Union(branches), _) => self.union(branches, depth),
            (SchemaKind::Named(id), _) => self.named(schema, *id, depth),
            // Collections, and ints and bytes with a logical type: the walk's.
            _ => self.walk(schema, depth),
        }
    }

    fn union(&mut self, branches: &[Schema], depth: u32) {
        let at = self.plan.targets.len() as u32;
        self.plan
            .targets
            .extend(std::iter::repeat_n(0, branches.len()));
        self.op(Op::Union {
            at,
            branches: branches.len() as u32,
        });
        let mut jumps = Vec::with_capacity(branches.len());
        for (i, branch) in branches.iter().enumerate() {
            self.plan.targets[at as usize + i] = self.plan.steps.len() as u32;
            self.node(branch, depth);
            if i + 1 < branches.len() {
                // The branch's last text goes with the jump.
                jumps.push(self.plan.steps.len());
                self.op(Op::Jump(0));
            } else {
                self.flush();
            }
        }
        let end = self.plan.steps.len() as u32;
        for j in jumps {
            self.plan.steps[j].op = Op::Jump(end);
        }
    }

    fn named(&mut self, schema: &Schema, id: NamedId, depth: u32) {
        let t = self.set.named(id);
        match &t.kind {
            NamedKind::Record { fields } if depth < INLINE_DEPTH && !self.open.contains(&id) => {
                self.open.push(id);
                if fields.is_empty() {
                    self.text.extend_from_slice(b"{}");
                }
                for (i, f) in fields.iter().enumerate() {
                    self.text.push(if i == 0 { b'{' } else { b',' });
                    write::string(&mut self.text, &f.name);
                    self.text.push(b':');
                    self.node(&f.schema, depth + 1);
                }
                if !fields.is_empty() {
                    self.text.push(b'}');
                }
                self.open.pop();
            }
            NamedKind::Enum { symbols, .. } => {
                let first = self.plan.symbols.len() as u32;
                let mut text = Vec::new();
                for s in symbols {
                    text.clear();
                    write::string(&mut text, s);
                    let at = self.plan.pool.len() as u32;
                    self.plan.pool.extend_from_slice(&text);
                    self.plan.symbols.push((at, text.len() as u32));
                }
                self.op(Op::Enum {
                    first,
                    count: symbols.len() as u32,
                });
            }
            // Recursive or very deep records, and fixed: the walk's.
            _ => self.walk(schema, depth),
        }
    }
}
