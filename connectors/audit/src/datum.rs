//! Walking Avro binary datums without decoding them: skipping a value to find its byte span (for jsonb columns and
//! for the PII fields that are sealed), and reading the string at a field path (the data subject).

use ursa_avro::Error;
use ursa_avro::binary::Reader;
use ursa_avro::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

/// Reads past one value of `schema`, checking it as it goes (lengths, union branches, enum symbols, UTF-8).
pub fn skip(set: &SchemaSet, schema: &Schema, r: &mut Reader<'_>) -> Result<(), Error> {
    walk::<true>(set, schema, r)
}

/// [`skip`] without the UTF-8 check of strings and map keys: for spans that are decoded (and so checked)
/// afterwards anyway.
pub fn skip_text_unchecked(
    set: &SchemaSet,
    schema: &Schema,
    r: &mut Reader<'_>,
) -> Result<(), Error> {
    walk::<false>(set, schema, r)
}

fn walk<const UTF8: bool>(
    set: &SchemaSet,
    schema: &Schema,
    r: &mut Reader<'_>,
) -> Result<(), Error> {
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
        SchemaKind::String => text::<UTF8>(r)?,
        SchemaKind::Array(items) => {
            collection(r, |r| walk::<UTF8>(set, items, r))?;
        }
        SchemaKind::Map(values) => {
            collection(r, |r| {
                text::<UTF8>(r)?;
                walk::<UTF8>(set, values, r)
            })?;
        }
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            walk::<UTF8>(set, &branches[i], r)?;
        }
        SchemaKind::Named(id) => match &set.named(*id).kind {
            NamedKind::Record { fields } => {
                r.enter()?;
                for f in fields {
                    walk::<UTF8>(set, &f.schema, r)?;
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

/// Reads past a string, checking it is UTF-8 when `UTF8`.
fn text<const UTF8: bool>(r: &mut Reader<'_>) -> Result<(), Error> {
    if UTF8 {
        r.str()?;
    } else {
        r.bytes()?;
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
                    // The fields passed by are checked when the whole datum is decoded.
                    skip_text_unchecked(set, &f.schema, r)?;
                }
                Ok(None)
            }
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}
