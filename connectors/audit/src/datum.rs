//! Walking Avro binary datums without decoding them: skipping a value to find its byte span (for jsonb columns and
//! for the PII fields that are sealed), and reading the string at a field path (the data subject).

use ursa_avro::Error;
use ursa_avro::binary::Reader;
use ursa_avro::schema::{NamedKind, Schema, SchemaKind, SchemaSet};
pub use ursa_avro::value::{collection, skip, skip_text_unchecked};

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
