//! Reading past Avro values without decoding them: to find a value's byte span, or to pass the fields nobody
//! asked for.

use crate::Error;
use crate::binary::Reader;
use crate::schema::{NamedKind, Schema, SchemaKind, SchemaSet};

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

/// Reads an array's or map's blocks, calling `item` once per item; returns how many there were. `item`'s error
/// is the caller's (the reader's own convert into it).
pub fn collection<E: From<Error>>(
    r: &mut Reader<'_>,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<(), E>,
) -> Result<usize, E> {
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
