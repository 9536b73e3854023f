//! Skipping writer values the reader does not want: compiling skip plans from the writer schema, and running them.

use std::collections::HashMap;

use super::plan::{Plan, Skip, SkipId};
use crate::schema::{NamedId, NamedKind, Schema, SchemaKind, SchemaSet};
use crate::{Error, Reader};

/// Builds [`Skip`] nodes for writer schemas, sharing one node per primitive and per named type.
#[derive(Debug)]
pub(crate) struct SkipCompiler {
    named: HashMap<NamedId, SkipId>,
}

const NULL: SkipId = 0;
const BOOLEAN: SkipId = 1;
const INT: SkipId = 2;
const LONG: SkipId = 3;
const FLOAT: SkipId = 4;
const DOUBLE: SkipId = 5;
const SIZED: SkipId = 6;

impl SkipCompiler {
    /// A compiler whose primitive nodes are pushed onto `skips` (which must be empty).
    pub(crate) fn new(skips: &mut Vec<Skip>) -> SkipCompiler {
        skips.extend([
            Skip::Null,
            Skip::Boolean,
            Skip::Int,
            Skip::Long,
            Skip::Bytes(4),
            Skip::Bytes(8),
            Skip::Sized,
        ]);
        SkipCompiler {
            named: HashMap::new(),
        }
    }

    /// The skip node of writer schema `schema` of `set`.
    pub(crate) fn compile(
        &mut self,
        set: &SchemaSet,
        schema: &Schema,
        skips: &mut Vec<Skip>,
    ) -> SkipId {
        let push = |skips: &mut Vec<Skip>, s: Skip| {
            skips.push(s);
            (skips.len() - 1) as SkipId
        };
        match &schema.kind {
            SchemaKind::Null => NULL,
            SchemaKind::Boolean => BOOLEAN,
            SchemaKind::Int => INT,
            SchemaKind::Long => LONG,
            SchemaKind::Float => FLOAT,
            SchemaKind::Double => DOUBLE,
            SchemaKind::Bytes | SchemaKind::String => SIZED,
            SchemaKind::Array(items) => {
                let items = self.compile(set, items, skips);
                push(skips, Skip::Array(items))
            }
            SchemaKind::Map(values) => {
                let values = self.compile(set, values, skips);
                push(skips, Skip::Map(values))
            }
            SchemaKind::Union(branches) => {
                let branches = branches
                    .iter()
                    .map(|b| self.compile(set, b, skips))
                    .collect();
                push(skips, Skip::Union(branches))
            }
            SchemaKind::Named(id) => {
                if let Some(&done) = self.named.get(id) {
                    return done;
                }
                let skip = match &set.named(*id).kind {
                    NamedKind::Fixed { size } => Skip::Bytes(*size),
                    NamedKind::Enum { symbols, .. } => Skip::Enum(symbols.len()),
                    NamedKind::Record { fields } => {
                        // Registered before the fields so recursive references find it.
                        let at = push(skips, Skip::Pending);
                        self.named.insert(*id, at);
                        let fields = fields
                            .iter()
                            .map(|f| self.compile(set, &f.schema, skips))
                            .collect();
                        skips[at as usize] = Skip::Record(fields);
                        return at;
                    }
                };
                let at = push(skips, skip);
                self.named.insert(*id, at);
                at
            }
        }
    }
}

impl Plan {
    /// Skips one writer value of skip node `id`.
    pub(crate) fn skip(&self, id: SkipId, r: &mut Reader<'_>) -> Result<(), Error> {
        match self.skips.get(id as usize) {
            Some(Skip::Null) => {}
            Some(Skip::Boolean) => {
                r.boolean()?;
            }
            Some(Skip::Int) => {
                r.int()?;
            }
            Some(Skip::Long) => {
                r.long()?;
            }
            Some(Skip::Bytes(n)) => {
                r.take(*n)?;
            }
            Some(Skip::Sized) => {
                r.bytes()?;
            }
            Some(Skip::Enum(n)) => {
                r.enum_index(*n)?;
            }
            Some(Skip::Array(items)) => {
                r.enter()?;
                skip_blocks(r, |r| self.skip(*items, r))?;
                r.leave();
            }
            Some(Skip::Map(values)) => {
                r.enter()?;
                skip_blocks(r, |r| {
                    r.bytes()?;
                    self.skip(*values, r)
                })?;
                r.leave();
            }
            Some(Skip::Union(branches)) => {
                let i = r.union_index(branches.len())?;
                self.skip(branches[i], r)?;
            }
            Some(Skip::Record(fields)) => {
                r.enter()?;
                for &f in fields.iter() {
                    self.skip(f, r)?;
                }
                r.leave();
            }
            Some(Skip::Pending) | None => return Err(internal()),
        }
        Ok(())
    }
}

/// Skips the blocks of an array or map. A block with a negative count carries its byte size and is jumped
/// over whole; other blocks are skipped item by item (their count checked against the reader's item limit).
fn skip_blocks(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut seen = 0usize;
    loop {
        let mut probe = r.clone();
        if probe.long()? < 0 {
            let size = probe.len()?;
            probe.take(size)?;
            *r = probe;
            continue;
        }
        let block = r.position();
        let n = r.block_count(seen)?;
        if n == 0 {
            return Ok(());
        }
        seen += n;
        // Skipping items that take no bytes takes time only, but unbounded time: they are limited too.
        let start = r.position();
        item(r)?;
        r.block_items(block, start, n)?;
        for _ in 1..n {
            item(r)?;
        }
    }
}

/// A plan node that should have been filled in: a bug, reported rather than panicking.
pub(crate) fn internal() -> Error {
    Error::Resolution("internal error: incomplete resolution plan".into())
}
