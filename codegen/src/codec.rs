//! Rust types and encode/decode code for each Avro schema node.
//!
//! A [`Codec`] is a Rust type plus two snippets: `enc`, statements appending the value bound to `__V__` (a
//! reference) to `buf`; and `dec`, an expression reading from `r` that evaluates to `Result<T, Error>`.
//! Generated code spells out every path, the prelude's `Ok`, `Err`, `Some` and `None` included, so that a
//! generated type of the same name (a `fixed` called `Ok` is a tuple struct) cannot shadow them.

use ursa_avro::schema::{LogicalType, NamedKind, Schema, SchemaKind};

/// Placeholder for the (reference) expression being encoded.
pub(crate) const V: &str = "__V__";

/// Type and code for one schema node.
#[derive(Debug, Clone)]
pub(crate) struct Codec {
    /// The Rust type.
    pub ty: String,
    /// Statements encoding `__V__` into `buf` (empty for `null`).
    pub enc: String,
    /// An expression of type `Result<T, ::ursa_avro::Error>` reading from `r`.
    pub dec: String,
    /// A function path `fn(&mut Reader) -> Result<T, Error>` equivalent to `dec`, when there is one.
    pub dec_fn: Option<String>,
}

impl Codec {
    fn new(ty: impl Into<String>, enc: impl Into<String>, dec: impl Into<String>) -> Self {
        Codec {
            ty: ty.into(),
            enc: enc.into(),
            dec: dec.into(),
            dec_fn: None,
        }
    }

    /// `enc` with the value expression substituted.
    pub fn enc_of(&self, v: &str) -> String {
        self.enc.replace(V, v)
    }

    /// A closure or function for `r.array(…)` / `r.map(…)`.
    pub fn dec_closure(&self) -> String {
        match &self.dec_fn {
            Some(f) => f.clone(),
            None => format!("|r| {}", self.dec),
        }
    }

    /// A closure for `encode::array(…)` / `encode::map(…)`.
    pub fn enc_closure(&self) -> String {
        if self.enc.is_empty() {
            "|_, _| ::std::result::Result::Ok(())".to_owned()
        } else {
            format!(
                "|buf, x| {{ {} ::std::result::Result::Ok(()) }}",
                self.enc_of("x")
            )
        }
    }
}

const E: &str = "::ursa_avro::encode";
const L: &str = "::ursa_avro::logical";

/// The codec of a primitive, with its logical type if any.
pub(crate) fn primitive(kind: &SchemaKind, logical: Option<LogicalType>) -> Codec {
    use LogicalType as Lt;
    match (kind, logical) {
        (SchemaKind::Null, _) => Codec::new("()", "", "r.null()"),
        (SchemaKind::Boolean, _) => {
            Codec::new("bool", format!("{E}::boolean(buf, *{V});"), "r.boolean()")
        }
        // Dates, times and timestamps: ursa-avro's types, which hold every wire value (chrono's do not).
        (SchemaKind::Int, Some(Lt::Date)) => Codec::new(
            "::ursa_avro::Date",
            format!("{E}::int(buf, {V}.days());"),
            "r.int().map(::ursa_avro::Date::from_days)",
        ),
        (SchemaKind::Int, Some(Lt::TimeMillis)) => Codec::new(
            "::ursa_avro::TimeOfDay",
            format!("{E}::int(buf, {V}.millis()?);"),
            "r.int().map(::ursa_avro::TimeOfDay::from_millis)",
        ),
        (SchemaKind::Int, _) => Codec::new("i32", format!("{E}::int(buf, *{V});"), "r.int()"),
        (SchemaKind::Long, Some(lt)) => {
            let (ty, to, from) = match lt {
                Lt::TimeMicros => ("::ursa_avro::TimeOfDay", "micros()", "from_micros"),
                Lt::TimestampMillis => (UTC, "millis()?", "from_millis"),
                Lt::TimestampMicros => (UTC, "micros()?", "from_micros"),
                Lt::TimestampNanos => (UTC, "nanos_i64()?", "from_nanos"),
                Lt::LocalTimestampMillis => (LOCAL, "millis()?", "from_millis"),
                Lt::LocalTimestampMicros => (LOCAL, "micros()?", "from_micros"),
                Lt::LocalTimestampNanos => (LOCAL, "nanos_i64()?", "from_nanos"),
                _ => return Codec::new("i64", format!("{E}::long(buf, *{V});"), "r.long()"),
            };
            Codec::new(
                ty,
                format!("{E}::long(buf, {V}.{to});"),
                format!("r.long().map({ty}::{from})"),
            )
        }
        (SchemaKind::Long, None) => Codec::new("i64", format!("{E}::long(buf, *{V});"), "r.long()"),
        (SchemaKind::Float, _) => Codec::new("f32", format!("{E}::float(buf, *{V});"), "r.float()"),
        (SchemaKind::Double, _) => {
            Codec::new("f64", format!("{E}::double(buf, *{V});"), "r.double()")
        }
        (SchemaKind::Bytes, Some(Lt::Decimal { precision, scale })) => Codec::new(
            "::ursa_avro::Decimal",
            format!("{V}.check({precision}, {scale})?; {E}::bytes(buf, {V}.unscaled_bytes());"),
            format!(
                "r.bytes().and_then(|b| ::ursa_avro::Decimal::from_wire(b, {precision}, {scale}))"
            ),
        ),
        (SchemaKind::Bytes, _) => Codec::new(
            "::std::vec::Vec<u8>",
            format!("{E}::bytes(buf, {V});"),
            "r.bytes_vec()",
        ),
        (SchemaKind::String, Some(Lt::Uuid)) => Codec::new(
            "::ursa_avro::uuid::Uuid",
            format!("{E}::uuid(buf, {V});"),
            format!("r.str().and_then({L}::uuid_from_str)"),
        ),
        (SchemaKind::String, _) => Codec::new(
            "::std::string::String",
            format!("{E}::string(buf, {V});"),
            "r.string()",
        ),
        // Complex kinds are handled by the planner.
        _ => Codec::new("()", "", "r.null()"),
    }
}

const UTC: &str = "::ursa_avro::Timestamp";
const LOCAL: &str = "::ursa_avro::LocalTimestamp";

/// The codec of a fixed type with a logical type (used in place of a generated newtype).
pub(crate) fn logical_fixed(size: usize, logical: LogicalType) -> Option<Codec> {
    Some(match logical {
        LogicalType::Uuid => Codec::new(
            "::ursa_avro::uuid::Uuid",
            format!("{E}::fixed(buf, {V}.as_bytes());"),
            "r.fixed::<16>().map(::ursa_avro::uuid::Uuid::from_bytes)",
        ),
        LogicalType::Duration => Codec::new(
            "::ursa_avro::Duration",
            format!("{E}::fixed(buf, &{V}.to_bytes());"),
            "r.fixed::<12>().map(::ursa_avro::Duration::from_bytes)",
        ),
        LogicalType::Decimal { precision, scale } => Codec::new(
            "::ursa_avro::Decimal",
            format!(
                "{V}.check({precision}, {scale})?; {E}::fixed(buf, &{V}.to_fixed_bytes({size})?);"
            ),
            format!(
                "r.take({size}).and_then(|b| ::ursa_avro::Decimal::from_wire(b, {precision}, {scale}))"
            ),
        ),
        _ => return None,
    })
}

/// The codec of a generated named type at `path`.
pub(crate) fn named(path: &str) -> Codec {
    let dec_fn = format!("<{path} as ::ursa_avro::AvroType>::decode");
    Codec {
        ty: path.to_owned(),
        enc: format!("::ursa_avro::AvroType::encode({V}, buf)?;"),
        dec: format!("{dec_fn}(r)"),
        dec_fn: Some(dec_fn),
    }
}

/// `Vec<T>`.
pub(crate) fn array(item: &Codec) -> Codec {
    Codec::new(
        format!("::std::vec::Vec<{}>", item.ty),
        format!("{E}::array(buf, {V}, {})?;", item.enc_closure()),
        format!("r.array({})", item.dec_closure()),
    )
}

/// `IndexMap<String, T>` (insertion order is kept and is the encoding order).
pub(crate) fn map(value: &Codec) -> Codec {
    Codec::new(
        format!("::ursa_avro::IndexMap<::std::string::String, {}>", value.ty),
        format!("{E}::map(buf, {V}, {})?;", value.enc_closure()),
        format!("r.map({})", value.dec_closure()),
    )
}

/// `Option<T>` for a union of null (at `null_index`) and one other branch.
pub(crate) fn option(inner: &Codec, null_index: usize, branches: usize) -> Codec {
    let some_index = 1 - null_index;
    Codec::new(
        format!("::std::option::Option<{}>", inner.ty),
        format!(
            "match {V} {{ ::std::option::Option::None => {E}::union_index(buf, {null_index}), ::std::option::Option::Some(x) => {{ {E}::union_index(buf, {some_index}); {} }} }}",
            inner.enc_of("x")
        ),
        format!(
            "match r.union_index({branches})? {{ {null_index} => ::std::result::Result::Ok(::std::option::Option::None), _ => {}.map(::std::option::Option::Some) }}",
            inner.dec
        ),
    )
}

/// `Option<U>` for a union of null and several branches, `U` being the generated union enum at `path`.
pub(crate) fn option_of_union(path: &str, null_index: usize, branches: usize) -> Codec {
    Codec::new(
        format!("::std::option::Option<{path}>"),
        format!(
            "match {V} {{ ::std::option::Option::None => {E}::union_index(buf, {null_index}), ::std::option::Option::Some(x) => ::ursa_avro::AvroType::encode(x, buf)? }}"
        ),
        format!(
            "match r.union_index({branches})? {{ {null_index} => ::std::result::Result::Ok(::std::option::Option::None), i => {path}::decode_branch(r, i).map(::std::option::Option::Some) }}"
        ),
    )
}

/// A union with a single branch: the branch's type, with the index written and checked.
pub(crate) fn single_branch(inner: &Codec) -> Codec {
    Codec::new(
        inner.ty.clone(),
        format!("{E}::union_index(buf, 0); {}", inner.enc),
        format!("{{ r.union_index(1)?; {} }}", inner.dec),
    )
}

/// Whether a named kind is a fixed with a logical type (mapped to a library type, not a newtype).
pub(crate) fn is_logical_fixed(kind: &NamedKind, logical: Option<LogicalType>) -> bool {
    matches!(kind, NamedKind::Fixed { .. })
        && matches!(
            logical,
            Some(LogicalType::Uuid | LogicalType::Duration | LogicalType::Decimal { .. })
        )
}

/// The variant name of a union branch (named types use their Rust name).
pub(crate) fn variant_name(s: &Schema, logical_name: Option<&str>) -> String {
    if let Some(l) = logical_name.or(s.logical.map(|l| l.name())) {
        return crate::names::upper_camel(l);
    }
    match &s.kind {
        SchemaKind::Null => "Null",
        SchemaKind::Boolean => "Boolean",
        SchemaKind::Int => "Int",
        SchemaKind::Long => "Long",
        SchemaKind::Float => "Float",
        SchemaKind::Double => "Double",
        SchemaKind::Bytes => "Bytes",
        SchemaKind::String => "String",
        SchemaKind::Array(_) => "Array",
        SchemaKind::Map(_) => "Map",
        SchemaKind::Union(_) => "Union",
        SchemaKind::Named(_) => "Named",
    }
    .to_owned()
}
