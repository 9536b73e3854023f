//! Decoding only part of a datum: the fields at some paths, for sinks that read a few fields of each value (the
//! metrics sink's labels and filters). What no path reaches is read past, not decoded.
//!
//! [`decode_parts`] fills one slot per wanted node ([`Parts`]), with strings and enum symbols borrowed from the
//! datum and the schema: a datum whose wanted fields are scalars is decoded without allocating.

use serde_json::Value;

use super::{decode, skip};
use crate::Error;
use crate::binary::{Limits, Reader};
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// The parts of a value to decode: record fields by name, each with what is wanted of it. A node marked whole
/// is decoded entirely, as [`super::decode_json`] decodes it; so is a node that is not a record (through
/// unions) but has paths below it (map keys, array indexes: those are decoded whole).
///
/// Every node has a slot number ([`Wanted::chain`]), the index of its part in [`Parts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    whole: bool,
    /// This node's slot in [`Parts`].
    slot: u32,
    /// Slots handed out so far (kept by the root).
    slots: u32,
    /// By name, sorted: a few names, which a scan that compares lengths first passes by faster than a tree
    /// (every field of every record is looked up).
    fields: Vec<(String, Wanted)>,
    /// A bit per field name ([`name_bit`]): most names nobody wants are turned away without a scan.
    names: u128,
}

/// One of 128 bits for a field name, from its length and its first and last bytes.
fn name_bit(name: &str) -> u128 {
    let b = name.as_bytes();
    let (first, last) = (b.first().copied(), b.last().copied());
    let h = b.len().wrapping_mul(31)
        ^ usize::from(first.unwrap_or(0)).wrapping_mul(7)
        ^ usize::from(last.unwrap_or(0)).wrapping_mul(131);
    1u128 << (h % 128)
}

impl Default for Wanted {
    fn default() -> Wanted {
        Wanted {
            whole: false,
            slot: 0,
            slots: 1,
            fields: Vec::new(),
            names: 0,
        }
    }
}

impl Wanted {
    /// Nothing wanted (add paths with [`Wanted::add`]).
    pub fn new() -> Wanted {
        Wanted::default()
    }

    /// Wants the value at `path` (field names below the root; empty: the whole value).
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        let mut next = self.slots;
        let mut node = &mut *self;
        for segment in path {
            if node.whole {
                break;
            }
            let name = segment.as_ref();
            let i = match node.fields.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => i,
                Err(i) => {
                    let child = Wanted {
                        slot: next,
                        ..Wanted::default()
                    };
                    next += 1;
                    node.fields.insert(i, (name.to_owned(), child));
                    node.names |= name_bit(name);
                    i
                }
            };
            node = &mut node.fields[i].1;
        }
        if !node.whole {
            node.whole = true;
            node.fields.clear();
            node.names = 0;
        }
        self.slots = next;
    }

    /// The slots of the nodes on `path`, from the root's down to the deepest node the path reaches (a node
    /// wanted whole ends it). Ask once all paths are added: adding can make a node whole.
    pub fn chain<S: AsRef<str>>(&self, path: &[S]) -> Vec<u32> {
        let mut out = vec![self.slot];
        let mut node = self;
        for segment in path {
            match node.field(segment.as_ref()) {
                Some(w) => {
                    out.push(w.slot);
                    node = w;
                }
                None => break,
            }
        }
        out
    }

    /// What is wanted of field `name`, if anything.
    fn field(&self, name: &str) -> Option<&Wanted> {
        if self.names & name_bit(name) == 0 {
            return None;
        }
        self.fields
            .iter()
            .find(|(n, _)| n.len() == name.len() && n == name)
            .map(|(_, w)| w)
    }

    /// Whether the whole value is wanted.
    pub fn is_whole(&self) -> bool {
        self.whole
    }
}

/// A wanted node that is not a record: read past when nothing is wanted of it (`null`), else decoded whole.
fn other(
    set: &SchemaSet,
    schema: &Schema,
    r: &mut Reader<'_>,
    wanted: &Wanted,
) -> Result<Value, Error> {
    if wanted.fields.is_empty() {
        skip::skip_text_unchecked(set, schema, r)?;
        Ok(Value::Null)
    } else {
        decode::value(set, schema, r)
    }
}

/// What one wanted node of a datum holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Part<'a> {
    /// Nothing: the writer schema has no field on the way here, or a union took a branch without it.
    #[default]
    Absent,
    /// A record, whose wanted fields are in slots of their own.
    Record,
    /// A string or an enum symbol (its JSON form), borrowed from the datum or the schema.
    Str(&'a str),
    /// Any other value, as [`super::decode_json`] gives it (numbers, booleans and `null` allocate nothing).
    Json(Value),
}

/// The wanted parts of one datum, a [`Part`] per slot of its [`Wanted`] ([`decode_parts`]); kept from datum to
/// datum for its capacity.
#[derive(Debug, Clone, Default)]
pub struct Parts<'a> {
    slots: Vec<Part<'a>>,
    /// The slots the last datum filled (only those are emptied for the next).
    filled: Vec<u32>,
}

impl<'a> Parts<'a> {
    /// No parts yet.
    pub fn new() -> Parts<'a> {
        Parts::default()
    }

    /// `n` slots, all [`Part::Absent`] (emptying only those the last datum filled).
    fn empty(&mut self, n: usize) {
        for slot in self.filled.drain(..) {
            if let Some(p) = self.slots.get_mut(slot as usize) {
                *p = Part::Absent;
            }
        }
        if self.slots.len() != n {
            self.slots.clear();
            self.slots.resize(n, Part::Absent);
        }
    }

    /// Puts `part` into `slot`.
    fn put(&mut self, slot: u32, part: Part<'a>) {
        if let Some(p) = self.slots.get_mut(slot as usize) {
            *p = part;
            self.filled.push(slot);
        }
    }

    /// The part a path reaches, given the path's [`Wanted::chain`], and how many of the path's segments lead to
    /// it: the first part on the chain that is not a record. The rest of the path, if any, is inside that part
    /// (a map key, an array index). `None` when the chain meets [`Part::Absent`] or ends at a record.
    pub fn at(&self, chain: &[u32]) -> Option<(&Part<'a>, usize)> {
        for (depth, slot) in chain.iter().enumerate() {
            match self.slots.get(*slot as usize)? {
                Part::Absent => return None,
                Part::Record => {}
                p => return Some((p, depth)),
            }
        }
        None
    }
}

/// Decodes the parts of one datum (written with `root`) that `wanted` names into `parts`, one per slot: at every
/// wanted path the part is what [`super::decode_json`] gives there (a string or enum symbol borrowed). The
/// whole datum is read (lengths, union branches, trailing bytes), so malformed input is an [`Error`]; the
/// strings passed by are not checked for UTF-8. On an error `parts` holds no part of the datum.
pub fn decode_parts<'a>(
    set: &'a SchemaSet,
    root: &'a Schema,
    datum: &'a [u8],
    wanted: &Wanted,
    parts: &mut Parts<'a>,
) -> Result<(), Error> {
    parts.empty(wanted.slots as usize);
    let mut r = Reader::with_limits(datum, Limits::default());
    let filled = fill(set, root, &mut r, wanted, parts).and_then(|()| r.finish());
    if filled.is_err() {
        parts.empty(wanted.slots as usize);
    }
    filled
}

fn fill<'a>(
    set: &'a SchemaSet,
    schema: &'a Schema,
    r: &mut Reader<'a>,
    wanted: &Wanted,
    parts: &mut Parts<'a>,
) -> Result<(), Error> {
    let part = if wanted.whole {
        leaf(set, schema, r)?
    } else {
        match &schema.kind {
            SchemaKind::Union(branches) => {
                let i = r.union_index(branches.len())?;
                return fill(set, &branches[i], r, wanted, parts);
            }
            SchemaKind::Named(id) => match &set.named(*id).kind {
                NamedKind::Record { fields } => {
                    r.enter()?;
                    for f in fields {
                        match wanted.field(&f.name) {
                            Some(w) => fill(set, &f.schema, r, w, parts)?,
                            None => skip::skip_text_unchecked(set, &f.schema, r)?,
                        }
                    }
                    r.leave();
                    Part::Record
                }
                _ => Part::Json(other(set, schema, r, wanted)?),
            },
            _ => Part::Json(other(set, schema, r, wanted)?),
        }
    };
    parts.put(wanted.slot, part);
    Ok(())
}

/// A node wanted whole: strings and enum symbols borrowed, anything else as [`super::decode_json`] gives it.
fn leaf<'a>(set: &'a SchemaSet, schema: &'a Schema, r: &mut Reader<'a>) -> Result<Part<'a>, Error> {
    match &schema.kind {
        SchemaKind::String => Ok(Part::Str(r.str()?)),
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            leaf(set, &branches[i], r)
        }
        SchemaKind::Named(id) => match &set.named(*id).kind {
            NamedKind::Enum { symbols, .. } => {
                Ok(Part::Str(symbols[r.enum_index(symbols.len())?].as_str()))
            }
            _ => decode::value(set, schema, r).map(Part::Json),
        },
        _ => decode::value(set, schema, r).map(Part::Json),
    }
}
