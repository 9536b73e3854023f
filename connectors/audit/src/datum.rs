//! Walking Avro binary datums without decoding them: skipping a value to find its byte span (for jsonb columns and
//! for the PII fields that are sealed), and reading the string at a field path (the data subject).

use ursa_avro::Error;
use ursa_avro::binary::Reader;
use ursa_avro::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// Reads past one value of `schema`, checking it as it goes (lengths, union branches, enum symbols).
pub fn skip(set: &SchemaSet, schema: &Schema, r: &mut Reader<'_>) -> Result<(), Error> {
    match &schema.kind {
        SchemaKind::Null => {}
        SchemaKind::Boolean => {
            r.boolean()?;
        }
        SchemaKind::Int => {
            r.int()?;
        }
        SchemaKind::Long => {
            r.long()?;
        }
        SchemaKind::Float => {
            r.float()?;
        }
        SchemaKind::Double => {
            r.double()?;
        }
        SchemaKind::Bytes => {
            r.bytes()?;
        }
        SchemaKind::String => {
            r.str()?;
        }
        SchemaKind::Array(items) => {
            collection(r, |r| skip(set, items, r))?;
        }
        SchemaKind::Map(values) => {
            collection(r, |r| {
                r.str()?;
                skip(set, values, r)
            })?;
        }
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            skip(set, &branches[i], r)?;
        }
        SchemaKind::Named(id) => match &set.named(*id).kind {
            NamedKind::Record { fields } => {
                r.enter()?;
                for f in fields {
                    skip(set, &f.schema, r)?;
                }
                r.leave();
            }
            NamedKind::Enum { symbols, .. } => {
                r.enum_index(symbols.len())?;
            }
            NamedKind::Fixed { size } => {
                r.take(*size)?;
            }
        },
    }
    Ok(())
}

/// Reads an array's or map's blocks, calling `item` once per item; returns how many there were.
pub fn collection(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<(), Error>,
) -> Result<usize, Error> {
    r.enter()?;
    let mut seen = 0usize;
    loop {
        let block = r.position();
        let n = r.block_count(seen)?;
        if n == 0 {
            break;
        }
        for i in 0..n {
            let start = r.position();
            item(r)?;
            if i == 0 {
                r.block_items(block, start, n)?;
            }
        }
        seen += n;
    }
    r.leave();
    Ok(seen)
}

/// The text at a dotted path of record fields (through `["null", …]` unions), e.g. `child.child_id`: a string (a
/// `uuid` on string too), an enum symbol, or an int or long in decimal. `None` when a union on the way holds
/// null, or the path does not name such a value in this schema.
pub fn string_at(
    set: &SchemaSet,
    root: &Schema,
    datum: &[u8],
    path: &[&str],
) -> Result<Option<String>, Error> {
    let mut r = Reader::new(datum);
    find(set, root, &mut r, path)
}

fn find(
    set: &SchemaSet,
    schema: &Schema,
    r: &mut Reader<'_>,
    path: &[&str],
) -> Result<Option<String>, Error> {
    match (&schema.kind, path.split_first()) {
        (SchemaKind::Union(branches), _) => {
            let i = r.union_index(branches.len())?;
            find(set, &branches[i], r, path)
        }
        (SchemaKind::String, None) => Ok(Some(r.str()?.to_owned())),
        (SchemaKind::Int, None) => Ok(Some(r.int()?.to_string())),
        (SchemaKind::Long, None) => Ok(Some(r.long()?.to_string())),
        (SchemaKind::Named(id), next) => match (&set.named(*id).kind, next) {
            (NamedKind::Enum { symbols, .. }, None) => {
                Ok(Some(symbols[r.enum_index(symbols.len())?].clone()))
            }
            (NamedKind::Record { fields }, Some((name, rest))) => {
                for f in fields {
                    if f.name == *name {
                        return find(set, &f.schema, r, rest);
                    }
                    skip(set, &f.schema, r)?;
                }
                Ok(None)
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}
