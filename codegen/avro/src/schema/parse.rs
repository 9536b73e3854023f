//! Parsing schema documents into a [`SchemaSet`]: collect definitions, build trees, resolve names, validate defaults.

use std::collections::HashMap;

use crate::json::{self, Json, JsonValue, Span};

use super::default::{Check, check_default};
use super::error::{Diagnostic, SchemaError};
use super::model::{
    Attrs, Field, FileId, LogicalType, Name, NamedId, NamedKind, NamedType, Order, Schema,
    SchemaKind, SchemaSet, SuspiciousDefault,
};
use super::source::{Loc, SourceFile};

/// How strictly to treat logical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogicalTypes {
    /// A known logical type on the wrong base type or with invalid parameters is an error (for authoring).
    #[default]
    Strict,
    /// Such a logical type is ignored and the base type used, as the Avro specification asks of readers.
    Lenient,
}

/// Options for [`SchemaSet::parse`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ParseOptions {
    /// Logical type strictness.
    pub logical_types: LogicalTypes,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

impl SchemaSet {
    /// Parses one self-contained schema document (strict).
    pub fn parse_str(text: &str) -> Result<SchemaSet, SchemaError> {
        Self::parse(
            vec![SourceFile::new("<schema>", text)],
            ParseOptions::default(),
        )
    }

    /// Parses documents that may reference each other's named types, in any order. At least one document is
    /// needed (so that [`SchemaSet::last_root`] always has one).
    pub fn parse(files: Vec<SourceFile>, options: ParseOptions) -> Result<SchemaSet, SchemaError> {
        if files.is_empty() {
            return Err(SchemaError {
                diagnostics: vec![Diagnostic {
                    message: "no schema documents to parse".to_owned(),
                    path: "<none>".to_owned(),
                    line: 1,
                    column: 1,
                    span: Span { start: 0, end: 0 },
                    file: FileId(0),
                    source_line: String::new(),
                    notes: Vec::new(),
                }],
            });
        }
        let mut p = Parser {
            files: &files,
            options,
            diags: Vec::new(),
            by_name: HashMap::new(),
            defs: Vec::new(),
            named: Vec::new(),
            suspicious: Vec::new(),
        };
        let mut docs = Vec::with_capacity(files.len());
        for (i, file) in files.iter().enumerate() {
            let id = FileId(i as u32);
            match json::parse(file.text()) {
                Ok(doc) => docs.push(Some(doc)),
                Err(e) => {
                    p.error(
                        Loc {
                            file: id,
                            span: e.span,
                        },
                        format!("invalid JSON: {}", e.message),
                    );
                    docs.push(None);
                }
            }
        }
        for (i, doc) in docs.iter().enumerate() {
            if let Some(doc) = doc {
                p.collect(FileId(i as u32), doc, None);
            }
        }
        p.named = vec![None; p.defs.len()];
        let mut roots = Vec::with_capacity(files.len());
        for (i, doc) in docs.iter().enumerate() {
            let file = FileId(i as u32);
            roots.push(match doc {
                Some(doc) => p.schema(file, doc, None),
                None => Schema {
                    kind: SchemaKind::Null,
                    logical: None,
                    attrs: Attrs::new(),
                    loc: Loc::default(),
                },
            });
        }
        if !p.diags.is_empty() {
            return Err(SchemaError {
                diagnostics: p.diags,
            });
        }
        let named: Vec<NamedType> = p.named.into_iter().flatten().collect();
        let by_name = p.by_name;
        let mut suspicious = p.suspicious;
        let mut set = SchemaSet {
            files,
            named,
            by_name,
            roots,
            suspicious: Vec::new(),
        };
        // Defaults are checked as Avro Java's parser checks them (errors); those it accepts are checked as
        // values too (suspicious defaults, for the linter).
        let mut diags = Vec::new();
        for (owner, t) in set.named_types() {
            if let NamedKind::Record { fields } = &t.kind {
                for (i, f) in fields.iter().enumerate() {
                    let (Some(default), Some(loc)) = (&f.default, f.default_loc) else {
                        continue;
                    };
                    let problem = match check_default(&set, &f.schema, default, Check::Java) {
                        Err(problem) => problem,
                        Ok(()) => {
                            if let Err(problem) =
                                check_default(&set, &f.schema, default, Check::Value)
                            {
                                suspicious.push(SuspiciousDefault {
                                    owner,
                                    field: Some(i),
                                    loc,
                                    problem: format!(
                                        "the default of field `{}` of `{}` is not a valid value (Avro Java accepts it): {problem}",
                                        f.name,
                                        t.name.fullname()
                                    ),
                                });
                            }
                            continue;
                        }
                    };
                    diags.push(Diagnostic::new(
                        set.file(loc.file),
                        loc,
                        format!(
                            "invalid default for field `{}` of `{}`: {problem}",
                            f.name,
                            t.name.fullname()
                        ),
                    ));
                }
            }
        }
        if !diags.is_empty() {
            return Err(SchemaError { diagnostics: diags });
        }
        suspicious.sort_by_key(|d| (d.loc.file, d.loc.span.start));
        set.suspicious = suspicious;
        set.files.shrink_to_fit();
        Ok(set)
    }
}

struct Def {
    loc: Loc,
}

struct Parser<'a> {
    files: &'a [SourceFile],
    options: ParseOptions,
    diags: Vec<Diagnostic>,
    by_name: HashMap<String, NamedId>,
    defs: Vec<Def>,
    named: Vec<Option<NamedType>>,
    /// Enum `default`s that are not strings: ignored, as Avro Java ignores them.
    suspicious: Vec<SuspiciousDefault>,
}

fn is_valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_valid_namespace(s: &str) -> bool {
    s.is_empty() || s.split('.').all(is_valid_name)
}

impl Parser<'_> {
    fn error(&mut self, loc: Loc, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::new(&self.files[loc.file.index()], loc, message));
    }

    fn loc(file: FileId, span: Span) -> Loc {
        Loc { file, span }
    }

    /// The full name a definition object declares, given the enclosing namespace.
    fn def_name(&mut self, file: FileId, obj: &Json, enclosing: Option<&str>) -> Option<Name> {
        let Some(name_json) = obj.get("name") else {
            self.error(
                Self::loc(file, obj.span),
                "named type has no `name` attribute",
            );
            return None;
        };
        let Some(raw) = name_json.as_str() else {
            self.error(
                Self::loc(file, name_json.span),
                format!("`name` must be a string, found {}", name_json.kind()),
            );
            return None;
        };
        let namespace = match obj.get("namespace") {
            Some(ns) => match ns.as_str() {
                Some(s) => Some(s.to_owned()),
                None if matches!(ns.value, JsonValue::Null) => Some(String::new()),
                None => {
                    self.error(
                        Self::loc(file, ns.span),
                        format!("`namespace` must be a string, found {}", ns.kind()),
                    );
                    None
                }
            },
            None => None,
        };
        let (ns, simple) = match raw.rsplit_once('.') {
            Some((ns, simple)) => (Some(ns.to_owned()), simple.to_owned()),
            None => (
                namespace.or_else(|| enclosing.map(str::to_owned)),
                raw.to_owned(),
            ),
        };
        let ns = ns.filter(|n| !n.is_empty());
        if !is_valid_name(&simple) || !ns.as_deref().is_none_or(is_valid_namespace) {
            self.error(
                Self::loc(file, name_json.span),
                format!(
                    "invalid name `{raw}`: names start with a letter or `_` and contain only letters, digits and `_`"
                ),
            );
            return None;
        }
        if ns.is_none() && PRIMITIVES.contains(&simple.as_str()) {
            self.error(
                Self::loc(file, name_json.span),
                format!("`{simple}` is a primitive type and cannot be redefined"),
            );
            return None;
        }
        Some(Name {
            namespace: ns,
            name: simple,
        })
    }

    /// Pass 1: registers every named type definition so that references resolve regardless of order.
    fn collect(&mut self, file: FileId, json: &Json, enclosing: Option<&str>) {
        match &json.value {
            JsonValue::Array(items) => {
                for item in items {
                    self.collect(file, item, enclosing);
                }
            }
            JsonValue::Object(_) => {
                let Some(ty) = json.get("type") else { return };
                match ty.as_str() {
                    Some("record" | "error" | "enum" | "fixed") => {
                        let Some(name) = self.def_name(file, json, enclosing) else {
                            return;
                        };
                        let full = name.fullname();
                        let loc = Self::loc(file, json.span);
                        if let Some(prev) = self.by_name.get(&full) {
                            let prev_loc = self.defs[prev.index()].loc;
                            let prev_file = &self.files[prev_loc.file.index()];
                            let (l, c) = prev_file.line_col(prev_loc.span.start);
                            let note = format!("first defined at {}:{l}:{c}", prev_file.path());
                            let span = json.member("name").map_or(json.span, |m| m.value.span);
                            let mut d = Diagnostic::new(
                                &self.files[file.index()],
                                Self::loc(file, span),
                                format!("duplicate definition of `{full}`"),
                            );
                            d.notes.push(note);
                            self.diags.push(d);
                            return;
                        }
                        let id = NamedId(self.defs.len() as u32);
                        self.defs.push(Def { loc });
                        self.by_name.insert(full, id);
                        if let Some(JsonValue::Array(fields)) = json.get("fields").map(|f| &f.value)
                        {
                            for field in fields {
                                if let Some(t) = field.get("type") {
                                    self.collect(file, t, name.namespace.as_deref());
                                }
                            }
                        }
                    }
                    Some("array") => {
                        if let Some(items) = json.get("items") {
                            self.collect(file, items, enclosing);
                        }
                    }
                    Some("map") => {
                        if let Some(values) = json.get("values") {
                            self.collect(file, values, enclosing);
                        }
                    }
                    Some(_) => {}
                    None => self.collect(file, ty, enclosing),
                }
            }
            _ => {}
        }
    }

    fn resolve_ref(&self, name: &str, enclosing: Option<&str>) -> Option<NamedId> {
        if !name.contains('.')
            && let Some(ns) = enclosing
            && let Some(id) = self.by_name.get(&format!("{ns}.{name}"))
        {
            return Some(*id);
        }
        self.by_name.get(name).copied()
    }

    fn simple(kind: SchemaKind, loc: Loc) -> Schema {
        Schema {
            kind,
            logical: None,
            attrs: Attrs::new(),
            loc,
        }
    }

    fn primitive(name: &str) -> Option<SchemaKind> {
        Some(match name {
            "null" => SchemaKind::Null,
            "boolean" => SchemaKind::Boolean,
            "int" => SchemaKind::Int,
            "long" => SchemaKind::Long,
            "float" => SchemaKind::Float,
            "double" => SchemaKind::Double,
            "bytes" => SchemaKind::Bytes,
            "string" => SchemaKind::String,
            _ => return None,
        })
    }

    fn null_schema(loc: Loc) -> Schema {
        Self::simple(SchemaKind::Null, loc)
    }

    /// Pass 2: builds the schema tree of a JSON node.
    fn schema(&mut self, file: FileId, json: &Json, enclosing: Option<&str>) -> Schema {
        let loc = Self::loc(file, json.span);
        match &json.value {
            JsonValue::String(name) => self.named_or_primitive(file, name, json.span, enclosing),
            JsonValue::Array(branches) => self.union(file, branches, loc, enclosing),
            JsonValue::Object(_) => self.object(file, json, enclosing),
            _ => {
                self.error(
                    loc,
                    format!(
                        "expected a schema (a type name, an object or a union array), found {}",
                        json.kind()
                    ),
                );
                Self::null_schema(loc)
            }
        }
    }

    fn named_or_primitive(
        &mut self,
        file: FileId,
        name: &str,
        span: Span,
        enclosing: Option<&str>,
    ) -> Schema {
        let loc = Self::loc(file, span);
        if let Some(kind) = Self::primitive(name) {
            return Self::simple(kind, loc);
        }
        match self.resolve_ref(name, enclosing) {
            Some(id) => Self::simple(SchemaKind::Named(id), loc),
            None => {
                let tried = match enclosing {
                    Some(ns) if !name.contains('.') => {
                        format!(" (looked for `{ns}.{name}` and `{name}`)")
                    }
                    _ => String::new(),
                };
                self.error(loc, format!("unknown type `{name}`{tried}"));
                Self::null_schema(loc)
            }
        }
    }

    fn union(
        &mut self,
        file: FileId,
        branches: &[Json],
        loc: Loc,
        enclosing: Option<&str>,
    ) -> Schema {
        if branches.is_empty() {
            self.error(loc, "a union needs at least one branch");
        }
        let mut out = Vec::with_capacity(branches.len());
        let mut seen: Vec<(String, Span)> = Vec::new();
        for b in branches {
            let s = self.schema(file, b, enclosing);
            let key = match &s.kind {
                SchemaKind::Union(_) => {
                    self.error(
                        Self::loc(file, b.span),
                        "a union cannot directly contain another union",
                    );
                    continue;
                }
                SchemaKind::Named(id) => self
                    .by_name
                    .iter()
                    .find(|(_, v)| *v == id)
                    .map_or_else(String::new, |(k, _)| k.clone()),
                other => other.primitive_name().unwrap_or_default().to_owned(),
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                let first_file = &self.files[file.index()];
                let (l, c) = first_file.line_col(first.start);
                let mut d = Diagnostic::new(
                    first_file,
                    Self::loc(file, b.span),
                    format!("union contains `{key}` more than once"),
                );
                d.notes
                    .push(format!("first at {}:{l}:{c}", first_file.path()));
                self.diags.push(d);
                continue;
            }
            seen.push((key, b.span));
            out.push(s);
        }
        Self::simple(SchemaKind::Union(out), loc)
    }

    fn string_attr(&mut self, file: FileId, obj: &Json, key: &str) -> Option<String> {
        let v = obj.get(key)?;
        match v.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(
                    Self::loc(file, v.span),
                    format!("`{key}` must be a string, found {}", v.kind()),
                );
                None
            }
        }
    }

    fn attrs(obj: &Json, reserved: &[&str]) -> Attrs {
        let mut attrs = Attrs::new();
        if let JsonValue::Object(members) = &obj.value {
            for m in members {
                if !reserved.contains(&m.key.as_str()) {
                    attrs.insert(m.key.clone(), m.value.to_serde());
                }
            }
        }
        attrs
    }

    fn object(&mut self, file: FileId, obj: &Json, enclosing: Option<&str>) -> Schema {
        let loc = Self::loc(file, obj.span);
        let Some(ty) = obj.get("type") else {
            self.error(loc, "schema object has no `type` attribute");
            return Self::null_schema(loc);
        };
        let type_name = match &ty.value {
            JsonValue::String(s) => s.clone(),
            JsonValue::Object(_) | JsonValue::Array(_) => {
                // {"type": {...}} or {"type": [...]}: the inner schema is the type.
                return self.schema(file, ty, enclosing);
            }
            _ => {
                self.error(
                    Self::loc(file, ty.span),
                    format!(
                        "`type` must be a string, object or array, found {}",
                        ty.kind()
                    ),
                );
                return Self::null_schema(loc);
            }
        };
        match type_name.as_str() {
            "record" | "error" | "enum" | "fixed" => {
                self.named_def(file, obj, &type_name, enclosing)
            }
            "array" | "map" => {
                let key = if type_name == "array" {
                    "items"
                } else {
                    "values"
                };
                let inner = match obj.get(key) {
                    Some(j) => self.schema(file, j, enclosing),
                    None => {
                        self.error(loc, format!("{type_name} schema has no `{key}` attribute"));
                        Self::null_schema(loc)
                    }
                };
                let kind = if type_name == "array" {
                    SchemaKind::Array(Box::new(inner))
                } else {
                    SchemaKind::Map(Box::new(inner))
                };
                Schema {
                    kind,
                    logical: None,
                    attrs: Self::attrs(obj, &["type", key]),
                    loc,
                }
            }
            name => {
                let mut s = self.named_or_primitive(file, name, ty.span, enclosing);
                s.loc = loc;
                if matches!(s.kind, SchemaKind::Named(_)) {
                    return s;
                }
                s.logical = self.logical(file, obj, &s.kind, None);
                s.attrs = Self::attrs(obj, &["type", "logicalType", "precision", "scale"]);
                if s.logical.is_none() {
                    // Unknown or ignored logical types stay visible as attributes.
                    if let Some(l) = obj.get("logicalType") {
                        s.attrs.insert("logicalType".to_owned(), l.to_serde());
                    }
                    for k in ["precision", "scale"] {
                        if let Some(v) = obj.get(k) {
                            s.attrs.insert(k.to_owned(), v.to_serde());
                        }
                    }
                }
                s
            }
        }
    }

    fn logical_error(&mut self, loc: Loc, message: String) -> Option<LogicalType> {
        if self.options.logical_types == LogicalTypes::Strict {
            self.error(loc, message);
        }
        None
    }

    fn uint_attr(&mut self, file: FileId, obj: &Json, key: &str) -> Result<Option<u64>, ()> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => match &v.value {
                JsonValue::Number(n) if n.as_u64().is_some() => Ok(n.as_u64()),
                _ => {
                    let _ = self.logical_error(
                        Self::loc(file, v.span),
                        format!(
                            "`{key}` must be a non-negative integer, found {}",
                            v.to_serde()
                        ),
                    );
                    Err(())
                }
            },
        }
    }

    /// The logical type of an object-form primitive or fixed (`fixed_size` set for fixed).
    fn logical(
        &mut self,
        file: FileId,
        obj: &Json,
        base: &SchemaKind,
        fixed_size: Option<usize>,
    ) -> Option<LogicalType> {
        let lt_json = obj.get("logicalType")?;
        let lt_loc = Self::loc(file, lt_json.span);
        let Some(lt) = lt_json.as_str() else {
            return self.logical_error(
                lt_loc,
                format!("`logicalType` must be a string, found {}", lt_json.kind()),
            );
        };
        let is_fixed = fixed_size.is_some();
        let base_name = if is_fixed {
            "fixed"
        } else {
            base.primitive_name().unwrap_or("named type")
        };
        let wrong_base = |expected: &str| {
            format!("logical type `{lt}` requires {expected}, found `{base_name}`")
        };
        let simple = |t: LogicalType, ok: bool| if ok { Ok(t) } else { Err(()) };
        let result = match lt {
            "date" => simple(LogicalType::Date, *base == SchemaKind::Int && !is_fixed)
                .map_err(|_| wrong_base("`int`")),
            "time-millis" => simple(
                LogicalType::TimeMillis,
                *base == SchemaKind::Int && !is_fixed,
            )
            .map_err(|_| wrong_base("`int`")),
            "time-micros" => simple(
                LogicalType::TimeMicros,
                *base == SchemaKind::Long && !is_fixed,
            )
            .map_err(|_| wrong_base("`long`")),
            "timestamp-millis"
            | "timestamp-micros"
            | "timestamp-nanos"
            | "local-timestamp-millis"
            | "local-timestamp-micros"
            | "local-timestamp-nanos" => {
                let t = match lt {
                    "timestamp-millis" => LogicalType::TimestampMillis,
                    "timestamp-micros" => LogicalType::TimestampMicros,
                    "timestamp-nanos" => LogicalType::TimestampNanos,
                    "local-timestamp-millis" => LogicalType::LocalTimestampMillis,
                    "local-timestamp-micros" => LogicalType::LocalTimestampMicros,
                    _ => LogicalType::LocalTimestampNanos,
                };
                simple(t, *base == SchemaKind::Long && !is_fixed).map_err(|_| wrong_base("`long`"))
            }
            "uuid" => match fixed_size {
                Some(16) => Ok(LogicalType::Uuid),
                Some(n) => Err(format!(
                    "logical type `uuid` on fixed requires size 16, found {n}"
                )),
                None if *base == SchemaKind::String => Ok(LogicalType::Uuid),
                None => Err(wrong_base("`string` or `fixed` of size 16")),
            },
            "duration" => match fixed_size {
                Some(12) => Ok(LogicalType::Duration),
                Some(n) => Err(format!(
                    "logical type `duration` requires a fixed of size 12, found {n}"
                )),
                None => Err(wrong_base("a `fixed` of size 12")),
            },
            "decimal" => {
                if !(is_fixed || *base == SchemaKind::Bytes) {
                    Err(wrong_base("`bytes` or `fixed`"))
                } else {
                    let Ok(precision) = self.uint_attr(file, obj, "precision") else {
                        return None;
                    };
                    let Ok(scale) = self.uint_attr(file, obj, "scale") else {
                        return None;
                    };
                    let scale = scale.unwrap_or(0);
                    match precision {
                        None => Err("decimal requires a `precision`".to_owned()),
                        Some(0) => Err("decimal precision must be at least 1, found 0".to_owned()),
                        Some(p) if scale > p => Err(format!(
                            "decimal scale {scale} is greater than its precision {p}"
                        )),
                        Some(p) => {
                            let max = fixed_size.map(max_decimal_digits);
                            match max {
                                Some(max) if p > max => Err(format!(
                                    "decimal precision {p} does not fit in a fixed of size {}: at most {max} digits",
                                    fixed_size.unwrap_or_default()
                                )),
                                _ if p > u64::from(u32::MAX) => {
                                    Err(format!("decimal precision {p} is too large"))
                                }
                                _ => Ok(LogicalType::Decimal {
                                    precision: p as u32,
                                    scale: scale as u32,
                                }),
                            }
                        }
                    }
                }
            }
            _ => return None, // unknown logical types fall back to the base type
        };
        match result {
            Ok(t) => Some(t),
            Err(message) => self.logical_error(lt_loc, message),
        }
    }

    fn aliases(&mut self, file: FileId, obj: &Json, namespace: Option<&str>) -> Vec<Name> {
        let Some(a) = obj.get("aliases") else {
            return Vec::new();
        };
        let JsonValue::Array(items) = &a.value else {
            self.error(
                Self::loc(file, a.span),
                format!("`aliases` must be an array of names, found {}", a.kind()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items {
            match item.as_str() {
                Some(s) if s.split('.').all(is_valid_name) => {
                    out.push(if s.contains('.') {
                        Name::from_fullname(s)
                    } else {
                        Name {
                            namespace: namespace.map(str::to_owned),
                            name: s.to_owned(),
                        }
                    });
                }
                _ => self.error(
                    Self::loc(file, item.span),
                    format!("invalid alias {}", item.to_serde()),
                ),
            }
        }
        out
    }

    fn named_def(
        &mut self,
        file: FileId,
        obj: &Json,
        type_name: &str,
        enclosing: Option<&str>,
    ) -> Schema {
        let loc = Self::loc(file, obj.span);
        let Some(name) = self.def_name(file, obj, enclosing) else {
            return Self::null_schema(loc);
        };
        let full = name.fullname();
        let Some(&id) = self.by_name.get(&full) else {
            return Self::null_schema(loc);
        };
        if self.defs[id.index()].loc != loc {
            // A duplicate definition, already reported in pass 1.
            return Self::null_schema(loc);
        }
        let ns = name.namespace.clone();
        let doc = self.string_attr(file, obj, "doc");
        let aliases = self.aliases(file, obj, ns.as_deref());
        let mut logical = None;
        let (kind, reserved): (NamedKind, &[&str]) = match type_name {
            "enum" => (
                self.enum_kind(file, obj, id),
                &[
                    "type",
                    "name",
                    "namespace",
                    "doc",
                    "aliases",
                    "symbols",
                    "default",
                ],
            ),
            "fixed" => {
                let size = match obj.get("size") {
                    Some(j) => match &j.value {
                        JsonValue::Number(n) if n.as_u64().is_some() => {
                            n.as_u64().unwrap_or(0) as usize
                        }
                        _ => {
                            self.error(
                                Self::loc(file, j.span),
                                format!(
                                    "fixed size must be a non-negative integer, found {}",
                                    j.to_serde()
                                ),
                            );
                            0
                        }
                    },
                    None => {
                        self.error(loc, format!("fixed `{full}` has no `size`"));
                        0
                    }
                };
                logical = self.logical(file, obj, &SchemaKind::Bytes, Some(size));
                (
                    NamedKind::Fixed { size },
                    &[
                        "type",
                        "name",
                        "namespace",
                        "doc",
                        "aliases",
                        "size",
                        "logicalType",
                        "precision",
                        "scale",
                    ],
                )
            }
            _ => (
                self.record_kind(file, obj, ns.as_deref(), &full),
                &["type", "name", "namespace", "doc", "aliases", "fields"],
            ),
        };
        let mut attrs = Self::attrs(obj, reserved);
        if logical.is_none() && type_name == "fixed" {
            for k in ["logicalType", "precision", "scale"] {
                if let Some(v) = obj.get(k) {
                    attrs.insert(k.to_owned(), v.to_serde());
                }
            }
        }
        self.named[id.index()] = Some(NamedType {
            name,
            aliases,
            doc,
            kind,
            logical,
            attrs,
            loc,
        });
        Self::simple(SchemaKind::Named(id), loc)
    }

    fn enum_kind(&mut self, file: FileId, obj: &Json, id: NamedId) -> NamedKind {
        let mut symbols: Vec<String> = Vec::new();
        match obj.get("symbols") {
            Some(Json {
                value: JsonValue::Array(items),
                ..
            }) => {
                for item in items {
                    match item.as_str() {
                        Some(s) if !is_valid_name(s) => self.error(
                            Self::loc(file, item.span),
                            format!("invalid enum symbol `{s}`: symbols start with a letter or `_` and contain only letters, digits and `_`"),
                        ),
                        Some(s) if symbols.iter().any(|x| x == s) => {
                            self.error(Self::loc(file, item.span), format!("duplicate enum symbol `{s}`"))
                        }
                        Some(s) => symbols.push(s.to_owned()),
                        None => self.error(Self::loc(file, item.span), format!("enum symbol must be a string, found {}", item.kind())),
                    }
                }
            }
            Some(other) => self.error(
                Self::loc(file, other.span),
                format!(
                    "`symbols` must be an array of strings, found {}",
                    other.kind()
                ),
            ),
            None => self.error(Self::loc(file, obj.span), "enum has no `symbols`"),
        }
        let default = match obj.get("default") {
            None => None,
            Some(d) => match d.as_str() {
                Some(s) if symbols.iter().any(|x| x == s) => Some(s.to_owned()),
                Some(s) => {
                    self.error(
                        Self::loc(file, d.span),
                        format!(
                            "enum default `{s}` is not one of the symbols [{}]",
                            symbols.join(", ")
                        ),
                    );
                    None
                }
                None => {
                    // Avro Java's parser ignores a default that is not a string.
                    self.suspicious.push(SuspiciousDefault {
                        owner: id,
                        field: None,
                        loc: Self::loc(file, d.span),
                        problem: format!(
                            "the enum's default is {}, not a symbol string: it is ignored (as Avro Java ignores it)",
                            d.kind()
                        ),
                    });
                    None
                }
            },
        };
        NamedKind::Enum { symbols, default }
    }

    fn record_kind(&mut self, file: FileId, obj: &Json, ns: Option<&str>, full: &str) -> NamedKind {
        let mut fields: Vec<Field> = Vec::new();
        let items = match obj.get("fields") {
            Some(Json {
                value: JsonValue::Array(items),
                ..
            }) => items,
            Some(other) => {
                self.error(
                    Self::loc(file, other.span),
                    format!("`fields` must be an array, found {}", other.kind()),
                );
                return NamedKind::Record { fields };
            }
            None => {
                self.error(
                    Self::loc(file, obj.span),
                    format!("record `{full}` has no `fields`"),
                );
                return NamedKind::Record { fields };
            }
        };
        for f in items {
            let floc = Self::loc(file, f.span);
            if !matches!(f.value, JsonValue::Object(_)) {
                self.error(
                    floc,
                    format!("a field must be an object, found {}", f.kind()),
                );
                continue;
            }
            let name = match f.get("name") {
                Some(n) => match n.as_str() {
                    Some(s) if is_valid_name(s) => s.to_owned(),
                    _ => {
                        self.error(
                            Self::loc(file, n.span),
                            format!("invalid field name {}", n.to_serde()),
                        );
                        continue;
                    }
                },
                None => {
                    self.error(floc, "field has no `name`");
                    continue;
                }
            };
            if fields.iter().any(|x| x.name == name) {
                let span = f.member("name").map_or(f.span, |m| m.value.span);
                self.error(
                    Self::loc(file, span),
                    format!("duplicate field `{name}` in record `{full}`"),
                );
                continue;
            }
            let schema = match f.get("type") {
                Some(t) => self.schema(file, t, ns),
                None => {
                    self.error(floc, format!("field `{name}` has no `type`"));
                    continue;
                }
            };
            let doc = self.string_attr(file, f, "doc");
            let order = match f.get("order").map(|o| (o.as_str(), o.span)) {
                None | Some((Some("ascending"), _)) => Order::Ascending,
                Some((Some("descending"), _)) => Order::Descending,
                Some((Some("ignore"), _)) => Order::Ignore,
                Some((_, span)) => {
                    self.error(
                        Self::loc(file, span),
                        "`order` must be \"ascending\", \"descending\" or \"ignore\"",
                    );
                    Order::Ascending
                }
            };
            let aliases = match f.get("aliases") {
                None => Vec::new(),
                Some(Json {
                    value: JsonValue::Array(items),
                    ..
                }) => items
                    .iter()
                    .filter_map(|a| match a.as_str() {
                        Some(s) if is_valid_name(s) => Some(s.to_owned()),
                        _ => {
                            self.error(
                                Self::loc(file, a.span),
                                format!("invalid field alias {}", a.to_serde()),
                            );
                            None
                        }
                    })
                    .collect(),
                Some(other) => {
                    self.error(
                        Self::loc(file, other.span),
                        "`aliases` must be an array of names",
                    );
                    Vec::new()
                }
            };
            let default = f.get("default");
            fields.push(Field {
                name,
                aliases,
                doc,
                schema,
                default: default.map(Json::to_serde),
                default_loc: default.map(|d| Self::loc(file, d.span)),
                order,
                attrs: Self::attrs(f, &["name", "type", "doc", "default", "order", "aliases"]),
                loc: floc,
            });
        }
        NamedKind::Record { fields }
    }
}

/// Most decimal digits a two's-complement fixed of `size` bytes can hold.
fn max_decimal_digits(size: usize) -> u64 {
    if size == 0 {
        return 0;
    }
    // floor(log10(2^(8*size - 1) - 1))
    let bits = 8.0 * size as f64 - 1.0;
    (bits * std::f64::consts::LOG10_2).floor() as u64
}
