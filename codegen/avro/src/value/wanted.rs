//! Decoding only part of a datum: the fields at some paths, for sinks that read a few fields of each value (the
//! metrics sink's labels and filters). What no path reaches is read past, not decoded.

use serde_json::{Map, Value};

use super::{decode, skip};
use crate::Error;
use crate::binary::{Limits, Reader};
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// The parts of a value to decode: record fields by name, each with what is wanted of it. A node marked whole
/// is decoded entirely, as [`super::decode_json`] decodes it; so is a node that is not a record (through
/// unions) but has paths below it (map keys, array indexes: those are decoded whole).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    whole: bool,
    /// By name, sorted: a few names, which a scan that compares lengths first passes by faster than a tree
    /// (every field of every record is looked up).
    fields: Vec<(String, Wanted)>,
}

impl Wanted {
    /// Nothing wanted (add paths with [`Wanted::add`]).
    pub fn new() -> Wanted {
        Wanted::default()
    }

    /// Wants the value at `path` (field names below the root; empty: the whole value).
    pub fn add<S: AsRef<str>>(&mut self, path: &[S]) {
        let mut node = self;
        for segment in path {
            if node.whole {
                return;
            }
            let name = segment.as_ref();
            let i = match node.fields.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
                Ok(i) => i,
                Err(i) => {
                    node.fields.insert(i, (name.to_owned(), Wanted::default()));
                    i
                }
            };
            node = &mut node.fields[i].1;
        }
        node.whole = true;
        node.fields.clear();
    }

    /// What is wanted of field `name`, if anything.
    fn field(&self, name: &str) -> Option<&Wanted> {
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

/// The JSON of the parts of one datum (written with `root`) that `wanted` names. At every wanted path the value
/// is what [`super::decode_json`] gives there; records on the way hold only their wanted fields (none, when
/// nothing is wanted of them), and a value of another type of which nothing is wanted is `null`. The whole datum is read (lengths, union branches, trailing bytes), so
/// malformed input is still an [`Error`]; the strings passed by are not checked for UTF-8.
pub fn decode_json_wanted(
    set: &SchemaSet,
    root: &Schema,
    datum: &[u8],
    wanted: &Wanted,
) -> Result<Value, Error> {
    let mut r = Reader::with_limits(datum, Limits::default());
    let v = part(set, root, &mut r, wanted)?;
    r.finish()?;
    Ok(v)
}

fn part(
    set: &SchemaSet,
    schema: &Schema,
    r: &mut Reader<'_>,
    wanted: &Wanted,
) -> Result<Value, Error> {
    if wanted.whole {
        return decode::value(set, schema, r);
    }
    match &schema.kind {
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            part(set, &branches[i], r, wanted)
        }
        SchemaKind::Named(id) => match &set.named(*id).kind {
            NamedKind::Record { fields } => {
                r.enter()?;
                let mut m = Map::with_capacity(wanted.fields.len());
                for f in fields {
                    match wanted.field(&f.name) {
                        Some(w) => {
                            m.insert(f.name.clone(), part(set, &f.schema, r, w)?);
                        }
                        None => skip::skip_text_unchecked(set, &f.schema, r)?,
                    }
                }
                r.leave();
                Ok(Value::Object(m))
            }
            _ if wanted.fields.is_empty() => {
                skip::skip_text_unchecked(set, schema, r)?;
                Ok(Value::Null)
            }
            _ => decode::value(set, schema, r),
        },
        _ if wanted.fields.is_empty() => {
            skip::skip_text_unchecked(set, schema, r)?;
            Ok(Value::Null)
        }
        _ => decode::value(set, schema, r),
    }
}
