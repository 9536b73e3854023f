//! Writing schemas back out: Parsing Canonical Form, its CRC-64-AVRO fingerprint, and a self-contained full form.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::model::{LogicalType, NamedId, NamedKind, Order, Schema, SchemaKind, SchemaSet};

impl SchemaSet {
    /// The Parsing Canonical Form of `schema` (Avro specification): the text that compatibility-neutral
    /// attributes are stripped from, named types spelled out at first use.
    pub fn canonical_form(&self, schema: &Schema) -> String {
        let mut out = String::new();
        let mut seen = HashSet::new();
        self.write_canonical(schema, &mut seen, &mut out);
        out
    }

    fn write_canonical(&self, schema: &Schema, seen: &mut HashSet<NamedId>, out: &mut String) {
        let quote = |s: &str| Value::String(s.to_owned()).to_string();
        match &schema.kind {
            SchemaKind::Array(items) => {
                out.push_str("{\"type\":\"array\",\"items\":");
                self.write_canonical(items, seen, out);
                out.push('}');
            }
            SchemaKind::Map(values) => {
                out.push_str("{\"type\":\"map\",\"values\":");
                self.write_canonical(values, seen, out);
                out.push('}');
            }
            SchemaKind::Union(branches) => {
                out.push('[');
                for (i, b) in branches.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    self.write_canonical(b, seen, out);
                }
                out.push(']');
            }
            SchemaKind::Named(id) => {
                let t = self.named(*id);
                let full = quote(&t.name.fullname());
                if !seen.insert(*id) {
                    out.push_str(&full);
                    return;
                }
                out.push_str("{\"name\":");
                out.push_str(&full);
                match &t.kind {
                    NamedKind::Record { fields } => {
                        out.push_str(",\"type\":\"record\",\"fields\":[");
                        for (i, f) in fields.iter().enumerate() {
                            if i > 0 {
                                out.push(',');
                            }
                            out.push_str("{\"name\":");
                            out.push_str(&quote(&f.name));
                            out.push_str(",\"type\":");
                            self.write_canonical(&f.schema, seen, out);
                            out.push('}');
                        }
                        out.push(']');
                    }
                    NamedKind::Enum { symbols, .. } => {
                        out.push_str(",\"type\":\"enum\",\"symbols\":[");
                        out.push_str(
                            &symbols
                                .iter()
                                .map(|s| quote(s))
                                .collect::<Vec<_>>()
                                .join(","),
                        );
                        out.push(']');
                    }
                    NamedKind::Fixed { size } => {
                        out.push_str(&format!(",\"type\":\"fixed\",\"size\":{size}"));
                    }
                }
                out.push('}');
            }
            other => {
                out.push('"');
                out.push_str(other.primitive_name().unwrap_or("null"));
                out.push('"');
            }
        }
    }

    /// The self-contained JSON of `schema` with everything kept (docs, defaults, aliases, logical types,
    /// custom attributes); names are written in full and each named type is defined at its first use.
    pub fn full_json(&self, schema: &Schema) -> Value {
        let mut seen = HashSet::new();
        self.full_value(schema, &mut seen, None)
    }

    /// Like [`SchemaSet::full_json`], but the named types in `external` are written as full-name references
    /// instead of being defined: the form of a Confluent schema that uses schema references for them.
    pub fn json_with_references(&self, schema: &Schema, external: &[NamedId]) -> Value {
        let mut seen: HashSet<NamedId> = external.iter().copied().collect();
        if let SchemaKind::Named(root) = schema.kind {
            seen.remove(&root);
        }
        self.full_value(schema, &mut seen, None)
    }

    fn full_value(
        &self,
        schema: &Schema,
        seen: &mut HashSet<NamedId>,
        enclosing_ns: Option<&str>,
    ) -> Value {
        let mut obj = Map::new();
        match &schema.kind {
            SchemaKind::Array(items) => {
                obj.insert("type".into(), "array".into());
                obj.insert("items".into(), self.full_value(items, seen, enclosing_ns));
            }
            SchemaKind::Map(values) => {
                obj.insert("type".into(), "map".into());
                obj.insert("values".into(), self.full_value(values, seen, enclosing_ns));
            }
            SchemaKind::Union(branches) => {
                return Value::Array(
                    branches
                        .iter()
                        .map(|b| self.full_value(b, seen, enclosing_ns))
                        .collect(),
                );
            }
            SchemaKind::Named(id) => {
                let t = self.named(*id);
                if !seen.insert(*id) {
                    return Value::String(t.name.fullname());
                }
                let kind = match &t.kind {
                    NamedKind::Record { .. } => "record",
                    NamedKind::Enum { .. } => "enum",
                    NamedKind::Fixed { .. } => "fixed",
                };
                obj.insert("type".into(), kind.into());
                obj.insert("name".into(), t.name.fullname().into());
                if t.name.namespace.is_none() && enclosing_ns.is_some() {
                    obj.insert("namespace".into(), "".into());
                }
                if let Some(doc) = &t.doc {
                    obj.insert("doc".into(), doc.clone().into());
                }
                if !t.aliases.is_empty() {
                    obj.insert(
                        "aliases".into(),
                        t.aliases
                            .iter()
                            .map(|a| Value::from(a.fullname()))
                            .collect(),
                    );
                }
                let ns = t.name.namespace.as_deref();
                match &t.kind {
                    NamedKind::Record { fields } => {
                        let fields: Vec<Value> = fields
                            .iter()
                            .map(|f| {
                                let mut fo = Map::new();
                                fo.insert("name".into(), f.name.clone().into());
                                if let Some(doc) = &f.doc {
                                    fo.insert("doc".into(), doc.clone().into());
                                }
                                fo.insert("type".into(), self.full_value(&f.schema, seen, ns));
                                if let Some(d) = &f.default {
                                    fo.insert("default".into(), d.clone());
                                }
                                match f.order {
                                    Order::Ascending => {}
                                    Order::Descending => {
                                        fo.insert("order".into(), "descending".into());
                                    }
                                    Order::Ignore => {
                                        fo.insert("order".into(), "ignore".into());
                                    }
                                }
                                if !f.aliases.is_empty() {
                                    fo.insert("aliases".into(), f.aliases.clone().into());
                                }
                                for (k, v) in &f.attrs {
                                    fo.insert(k.clone(), v.clone());
                                }
                                Value::Object(fo)
                            })
                            .collect();
                        obj.insert("fields".into(), fields.into());
                    }
                    NamedKind::Enum { symbols, default } => {
                        obj.insert("symbols".into(), symbols.clone().into());
                        if let Some(d) = default {
                            obj.insert("default".into(), d.clone().into());
                        }
                    }
                    NamedKind::Fixed { size } => {
                        obj.insert("size".into(), (*size as u64).into());
                    }
                }
                insert_logical(&mut obj, t.logical);
                for (k, v) in &t.attrs {
                    obj.insert(k.clone(), v.clone());
                }
                return Value::Object(obj);
            }
            other => {
                let name = other.primitive_name().unwrap_or("null");
                if schema.logical.is_none() && schema.attrs.is_empty() {
                    return Value::String(name.to_owned());
                }
                obj.insert("type".into(), name.into());
                insert_logical(&mut obj, schema.logical);
            }
        }
        for (k, v) in &schema.attrs {
            obj.insert(k.clone(), v.clone());
        }
        Value::Object(obj)
    }
}

fn insert_logical(obj: &mut Map<String, Value>, logical: Option<LogicalType>) {
    if let Some(l) = logical {
        obj.insert("logicalType".into(), l.name().into());
        if let LogicalType::Decimal { precision, scale } = l {
            obj.insert("precision".into(), precision.into());
            obj.insert("scale".into(), scale.into());
        }
    }
}

const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

const fn fingerprint_table() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
}

static FP_TABLE: [u64; 256] = fingerprint_table();

/// The CRC-64-AVRO (Rabin) fingerprint of some bytes, normally a Parsing Canonical Form.
pub fn fingerprint64(bytes: &[u8]) -> u64 {
    let mut fp = EMPTY;
    for b in bytes {
        fp = (fp >> 8) ^ FP_TABLE[((fp ^ u64::from(*b)) & 0xff) as usize];
    }
    fp
}
