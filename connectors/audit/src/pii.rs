//! Sealing `"pii": true` fields inside Avro datums, and opening them again.
//!
//! A writer schema with PII fields gets a *storage schema*: the same types, but each PII field is `bytes`. The
//! stored datum is the writer's datum with each PII field's encoding (whatever its type, null-ness included)
//! replaced by its sealed form ([`crate::crypto`]) written as Avro `bytes`; everything else is copied byte for
//! byte (arrays and maps holding PII are re-blocked as one block). So the stored bytes decode with the storage
//! schema (PII as ciphertext: what the `jsonb` and typed columns show), and with the data keys they open back into
//! a datum of the writer schema. Fields are sealed in walk order; the n-th sealed field of a record is bound to
//! `n`.

use std::collections::HashSet;

use serde_json::Value;
use ursa_avro::Error as AvroError;
use ursa_avro::binary::{Reader, encode};
use ursa_avro::schema::{
    Attrs, Loc, NamedId, NamedKind, ParseOptions, Schema, SchemaError, SchemaKind, SchemaSet,
    SourceFile,
};

use crate::datum::{collection, skip, skip_text_unchecked};

/// What shows in place of a field whose data key was destroyed.
pub const ERASED: &str = "<erased>";

/// Why a datum could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum PiiError {
    /// The datum does not match its schema.
    #[error(transparent)]
    Avro(#[from] AvroError),
    /// A field could not be encrypted or decrypted.
    #[error("{0}")]
    Crypto(String),
}

/// The records of a schema set that hold PII, directly or below them.
#[derive(Debug, Clone)]
pub struct PiiMap {
    holding: HashSet<NamedId>,
}

impl PiiMap {
    /// Finds the records of `set` with PII fields, and those that contain them.
    pub fn new(set: &SchemaSet) -> PiiMap {
        let mut holding: HashSet<NamedId> = HashSet::new();
        loop {
            let mut changed = false;
            for (id, t) in set.named_types() {
                if holding.contains(&id) {
                    continue;
                }
                if let NamedKind::Record { fields } = &t.kind {
                    if fields
                        .iter()
                        .any(|f| f.is_pii() || refers(&f.schema, &holding))
                    {
                        holding.insert(id);
                        changed = true;
                    }
                }
            }
            if !changed {
                return PiiMap { holding };
            }
        }
    }

    /// Whether the set has PII anywhere.
    pub fn any(&self) -> bool {
        !self.holding.is_empty()
    }

    /// Whether values of `schema` may hold PII.
    pub fn holds(&self, schema: &Schema) -> bool {
        refers(schema, &self.holding)
    }
}

fn refers(schema: &Schema, holding: &HashSet<NamedId>) -> bool {
    match &schema.kind {
        SchemaKind::Array(s) | SchemaKind::Map(s) => refers(s, holding),
        SchemaKind::Union(branches) => branches.iter().any(|b| refers(b, holding)),
        SchemaKind::Named(id) => holding.contains(id),
        _ => false,
    }
}

fn named_schema(id: NamedId) -> Schema {
    Schema {
        kind: SchemaKind::Named(id),
        logical: None,
        attrs: Attrs::new(),
        loc: Loc::default(),
    }
}

/// The storage schema of `set`'s last root (see the module docs): one document per named type, PII fields as
/// `bytes`, the root last.
pub fn storage_set(set: &SchemaSet) -> Result<SchemaSet, SchemaError> {
    let ids: Vec<NamedId> = set.named_types().map(|(id, _)| id).collect();
    let root = set.last_root();
    let root_id = match root.kind {
        SchemaKind::Named(id) => Some(id),
        _ => None,
    };
    let mut files = Vec::with_capacity(ids.len() + 1);
    for &id in ids.iter().filter(|id| Some(**id) != root_id) {
        files.push(document(set, id, &ids));
    }
    match root_id {
        Some(id) => files.push(document(set, id, &ids)),
        None => files.push(SourceFile::new(
            "<storage root>",
            set.json_with_references(root, &ids).to_string(),
        )),
    }
    SchemaSet::parse(files, ParseOptions::default())
}

fn document(set: &SchemaSet, id: NamedId, ids: &[NamedId]) -> SourceFile {
    let others: Vec<NamedId> = ids.iter().copied().filter(|i| *i != id).collect();
    let mut json = set.json_with_references(&named_schema(id), &others);
    if let NamedKind::Record { fields } = &set.named(id).kind {
        if let Some(Value::Array(items)) = json.get_mut("fields") {
            for (f, item) in fields.iter().zip(items.iter_mut()) {
                if f.is_pii() {
                    if let Value::Object(obj) = item {
                        obj.insert("type".into(), Value::String("bytes".into()));
                        obj.remove("default");
                    }
                }
            }
        }
    }
    SourceFile::new(
        format!("<storage {}>", set.named(id).name.fullname()),
        json.to_string(),
    )
}

/// What seals or opens one field: the field's bytes in, the other form out (or why not).
pub type FieldFn<'f> = dyn FnMut(&[u8]) -> Result<Vec<u8>, String> + 'f;

/// Which way a datum is transformed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Writer datum in, stored datum out: each PII field's encoding is sealed into `bytes`.
    Seal,
    /// Stored datum in, writer datum out: each PII `bytes` is opened into the field's encoding.
    Open,
}

/// Seals the PII fields of a writer datum: `seal(field encoding) -> sealed bytes`, called once per field in walk
/// order.
pub fn seal(
    set: &SchemaSet,
    pii: &PiiMap,
    datum: &[u8],
    seal: &mut FieldFn<'_>,
) -> Result<Vec<u8>, PiiError> {
    transform(set, pii, datum, Mode::Seal, seal)
}

/// Opens the PII fields of a stored datum back into a writer datum: `open(sealed) -> field encoding`.
pub fn open(
    set: &SchemaSet,
    pii: &PiiMap,
    stored: &[u8],
    open: &mut FieldFn<'_>,
) -> Result<Vec<u8>, PiiError> {
    transform(set, pii, stored, Mode::Open, open)
}

fn transform(
    set: &SchemaSet,
    pii: &PiiMap,
    input: &[u8],
    mode: Mode,
    f: &mut FieldFn<'_>,
) -> Result<Vec<u8>, PiiError> {
    let mut r = Reader::new(input);
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut t = Transform { set, pii, mode, f };
    t.value(set.last_root(), input, &mut r, &mut out)?;
    r.finish()?;
    Ok(out)
}

struct Transform<'a, 'f> {
    set: &'a SchemaSet,
    pii: &'a PiiMap,
    mode: Mode,
    f: &'f mut FieldFn<'f>,
}

impl Transform<'_, '_> {
    fn value(
        &mut self,
        schema: &Schema,
        input: &[u8],
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), PiiError> {
        if !self.pii.holds(schema) {
            let start = r.position();
            // Sealing: what is copied as is gets decoded (so checked) with the stored datum afterwards.
            if matches!(self.mode, Mode::Seal) {
                skip_text_unchecked(self.set, schema, r)?;
            } else {
                skip(self.set, schema, r)?;
            }
            out.extend_from_slice(&input[start..r.position()]);
            return Ok(());
        }
        match &schema.kind {
            SchemaKind::Union(branches) => {
                let i = r.union_index(branches.len())?;
                encode::union_index(out, i);
                self.value(&branches[i], input, r, out)?;
            }
            SchemaKind::Array(items) => {
                let mut body = Vec::new();
                let mut err = None;
                let n = collection(r, |r| {
                    if let Err(e) = self.value(items, input, r, &mut body) {
                        err = Some(e);
                        return Err(AvroError::WireFormat("sealing".into()));
                    }
                    Ok(())
                });
                self.block(n, body, err, out)?;
            }
            SchemaKind::Map(values) => {
                let mut body = Vec::new();
                let mut err = None;
                let n = collection(r, |r| {
                    let k = r.str()?;
                    encode::string(&mut body, k);
                    if let Err(e) = self.value(values, input, r, &mut body) {
                        err = Some(e);
                        return Err(AvroError::WireFormat("sealing".into()));
                    }
                    Ok(())
                });
                self.block(n, body, err, out)?;
            }
            SchemaKind::Named(id) => {
                if let NamedKind::Record { fields } = &self.set.named(*id).kind {
                    r.enter()?;
                    for field in fields {
                        if field.is_pii() {
                            self.field(&field.schema, input, r, out)?;
                        } else {
                            self.value(&field.schema, input, r, out)?;
                        }
                    }
                    r.leave();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn block(
        &self,
        n: Result<usize, AvroError>,
        body: Vec<u8>,
        err: Option<PiiError>,
        out: &mut Vec<u8>,
    ) -> Result<(), PiiError> {
        if let Some(e) = err {
            return Err(e);
        }
        let n = n?;
        if n > 0 {
            encode::long(out, i64::try_from(n).unwrap_or(i64::MAX));
            out.extend_from_slice(&body);
        }
        encode::long(out, 0);
        Ok(())
    }

    fn field(
        &mut self,
        schema: &Schema,
        input: &[u8],
        r: &mut Reader<'_>,
        out: &mut Vec<u8>,
    ) -> Result<(), PiiError> {
        match self.mode {
            Mode::Seal => {
                let start = r.position();
                skip(self.set, schema, r)?;
                let sealed = (self.f)(&input[start..r.position()]).map_err(PiiError::Crypto)?;
                encode::bytes(out, &sealed);
            }
            Mode::Open => {
                let plain = (self.f)(r.bytes()?).map_err(PiiError::Crypto)?;
                // The plaintext must be one value of the field's type.
                let mut check = Reader::new(&plain);
                skip(self.set, schema, &mut check)?;
                check.finish()?;
                out.extend_from_slice(&plain);
            }
        }
        Ok(())
    }
}

/// What opening a sealed field gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// The field's encoding.
    Plain(Vec<u8>),
    /// A text to show instead ([`ERASED`] when the key is gone).
    Marker(&'static str),
}

/// The JSON of a stored datum with its PII fields opened by `open`, or shown as the marker it returns.
pub fn open_json(
    set: &SchemaSet,
    pii: &PiiMap,
    stored: &[u8],
    open: &mut dyn FnMut(&[u8]) -> Opened,
) -> Result<Value, PiiError> {
    let mut r = Reader::new(stored);
    let v = json_value(set, pii, set.last_root(), stored, &mut r, open)?;
    r.finish()?;
    Ok(v)
}

fn json_value(
    set: &SchemaSet,
    pii: &PiiMap,
    schema: &Schema,
    input: &[u8],
    r: &mut Reader<'_>,
    open: &mut dyn FnMut(&[u8]) -> Opened,
) -> Result<Value, PiiError> {
    if !pii.holds(schema) {
        let start = r.position();
        skip(set, schema, r)?;
        return Ok(ursa_avro::value::decode_json(
            set,
            schema,
            &input[start..r.position()],
        )?);
    }
    Ok(match &schema.kind {
        SchemaKind::Union(branches) => {
            let i = r.union_index(branches.len())?;
            json_value(set, pii, &branches[i], input, r, open)?
        }
        SchemaKind::Array(items) => {
            let mut out = Vec::new();
            let mut err = None;
            let n = collection(r, |r| {
                match json_value(set, pii, items, input, r, open) {
                    Ok(v) => out.push(v),
                    Err(e) => {
                        err = Some(e);
                        return Err(AvroError::WireFormat("opening".into()));
                    }
                }
                Ok(())
            });
            if let Some(e) = err {
                return Err(e);
            }
            n?;
            Value::Array(out)
        }
        SchemaKind::Map(values) => {
            let mut out = serde_json::Map::new();
            let mut err = None;
            let n = collection(r, |r| {
                let k = r.string()?;
                match json_value(set, pii, values, input, r, open) {
                    Ok(v) => {
                        out.insert(k, v);
                    }
                    Err(e) => {
                        err = Some(e);
                        return Err(AvroError::WireFormat("opening".into()));
                    }
                }
                Ok(())
            });
            if let Some(e) = err {
                return Err(e);
            }
            n?;
            Value::Object(out)
        }
        SchemaKind::Named(id) => match &set.named(*id).kind {
            NamedKind::Record { fields } => {
                r.enter()?;
                let mut m = serde_json::Map::with_capacity(fields.len());
                for field in fields {
                    let v = if field.is_pii() {
                        match open(r.bytes()?) {
                            Opened::Plain(plain) => {
                                ursa_avro::value::decode_json(set, &field.schema, &plain)?
                            }
                            Opened::Marker(m) => Value::String(m.into()),
                        }
                    } else {
                        json_value(set, pii, &field.schema, input, r, open)?
                    };
                    m.insert(field.name.clone(), v);
                }
                r.leave();
                Value::Object(m)
            }
            _ => Value::Null,
        },
        _ => Value::Null,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    const SCHEMA: &str = r#"{"type":"record","name":"E","namespace":"t","fields":[
        {"name":"id","type":"string"},
        {"name":"name","type":["null","string"],"default":null,"pii":true},
        {"name":"turns","type":{"type":"array","items":{"type":"record","name":"Turn","fields":[
            {"name":"n","type":"int"},
            {"name":"said","type":"string","pii":true}]}}},
        {"name":"tags","type":{"type":"map","values":"Turn"}},
        {"name":"age","type":{"type":"enum","name":"Age","symbols":["A","B"]},"pii":true},
        {"name":"other_age","type":"Age"}
    ]}"#;

    fn datum() -> Vec<u8> {
        let mut d = Vec::new();
        encode::string(&mut d, "id-1");
        encode::union_index(&mut d, 1);
        encode::string(&mut d, "Ada");
        // Two array blocks, the second with a byte size (negative count).
        encode::long(&mut d, 1);
        encode::int(&mut d, 1);
        encode::string(&mut d, "hello");
        let mut item = Vec::new();
        encode::int(&mut item, 2);
        encode::string(&mut item, "bye");
        encode::long(&mut d, -1);
        encode::long(&mut d, item.len() as i64);
        d.extend_from_slice(&item);
        encode::long(&mut d, 0);
        encode::long(&mut d, 1);
        encode::string(&mut d, "k");
        encode::int(&mut d, 3);
        encode::string(&mut d, "secret");
        encode::long(&mut d, 0);
        encode::enum_index(&mut d, 1);
        encode::enum_index(&mut d, 0);
        d
    }

    #[test]
    fn sealed_datums_hide_pii_and_open_back() {
        let set = SchemaSet::parse_str(SCHEMA).unwrap();
        let pii = PiiMap::new(&set);
        assert!(pii.any());
        let storage = storage_set(&set).unwrap();
        let original = datum();
        // A toy "cipher" that reverses the bytes and tags them, to see what the walk passes.
        let mut seen = Vec::new();
        let stored = seal(&set, &pii, &original, &mut |span| {
            seen.push(span.to_vec());
            let mut s = b"X".to_vec();
            s.extend(span.iter().rev().map(|b| b ^ 0x55));
            Ok(s)
        })
        .unwrap();
        assert_eq!(seen.len(), 5, "name, two turns, one map value, age");
        for secret in [&b"Ada"[..], b"hello", b"bye", b"secret"] {
            assert!(!stored.windows(secret.len()).any(|w| w == secret));
        }
        // The stored datum decodes with the storage schema.
        let json = ursa_avro::value::decode_json(&storage, storage.last_root(), &stored).unwrap();
        assert_eq!(json["id"], "id-1");
        assert_eq!(json["other_age"], "A");
        assert!(json["name"].is_string());
        let unseal = |s: &[u8]| -> Vec<u8> { s[1..].iter().rev().map(|b| b ^ 0x55).collect() };
        let back = open(&set, &pii, &stored, &mut |s| Ok(unseal(s))).unwrap();
        let want = ursa_avro::value::decode_json(&set, set.last_root(), &original).unwrap();
        assert_eq!(
            ursa_avro::value::decode_json(&set, set.last_root(), &back).unwrap(),
            want
        );
        let shown = open_json(&set, &pii, &stored, &mut |s| Opened::Plain(unseal(s))).unwrap();
        assert_eq!(shown, want);
        let erased = open_json(&set, &pii, &stored, &mut |_| Opened::Marker(ERASED)).unwrap();
        assert_eq!(erased["name"], ERASED);
        assert_eq!(erased["turns"][1]["said"], ERASED);
        assert_eq!(erased["turns"][1]["n"], 2);
        assert_eq!(erased["tags"]["k"]["said"], ERASED);
        assert_eq!(erased["age"], ERASED);
    }

    #[test]
    fn schemas_without_pii_are_left_alone() {
        let set = SchemaSet::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#,
        )
        .unwrap();
        assert!(!PiiMap::new(&set).any());
    }
}
