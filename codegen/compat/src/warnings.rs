//! Warnings: changes that Avro resolution accepts (or that the verdict already covers) but that change what the
//! data means or what the generated Rust code looks like, found by walking the new schema beside the latest one
//! with fields matched by name or alias.

use std::collections::HashSet;

use ursa_avro::schema::{
    Field, Loc, LogicalType, NamedId, NamedKind, Schema, SchemaKind, SchemaSet,
};

use crate::checker::{describe, json_pointer};
use crate::locate::position;
use crate::{Doc, Message};

/// What kind of warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// A decimal's precision changed.
    DecimalPrecisionChanged,
    /// A decimal's scale changed: the same bytes now mean a different number.
    DecimalScaleChanged,
    /// A time or timestamp changed unit (millis, micros, nanos), or local-ness together with the unit.
    TimestampUnitChanged,
    /// A date became a time or timestamp, or the reverse.
    DateTimeChanged,
    /// Another logical type was added, removed or replaced.
    LogicalTypeChanged,
    /// A field is matched through an alias: the generated Rust field name changes.
    FieldRenamed,
    /// A field of the latest version is gone: the generated Rust field disappears.
    FieldRemoved,
    /// A named type's full name changed: the generated Rust type name or module changes.
    TypeRenamed,
    /// A promotion, a nullability change or a union change that changes the generated Rust type.
    RustTypeChanged,
    /// Enum symbols of the latest version are gone: the generated Rust variants disappear.
    EnumSymbolRemoved,
}

impl WarningKind {
    /// The kind as reported, e.g. `DECIMAL_SCALE_CHANGED`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarningKind::DecimalPrecisionChanged => "DECIMAL_PRECISION_CHANGED",
            WarningKind::DecimalScaleChanged => "DECIMAL_SCALE_CHANGED",
            WarningKind::TimestampUnitChanged => "TIMESTAMP_UNIT_CHANGED",
            WarningKind::DateTimeChanged => "DATE_TIME_CHANGED",
            WarningKind::LogicalTypeChanged => "LOGICAL_TYPE_CHANGED",
            WarningKind::FieldRenamed => "FIELD_RENAMED",
            WarningKind::FieldRemoved => "FIELD_REMOVED",
            WarningKind::TypeRenamed => "TYPE_RENAMED",
            WarningKind::RustTypeChanged => "RUST_TYPE_CHANGED",
            WarningKind::EnumSymbolRemoved => "ENUM_SYMBOL_REMOVED",
        }
    }
}

/// Warnings for `new` compared with `old` (the latest version).
pub(crate) fn compare(new: Doc<'_>, old: Doc<'_>) -> Vec<Message> {
    let mut w = Walker {
        n: new.set,
        o: old.set,
        seen: HashSet::new(),
        out: Vec::new(),
    };
    w.walk(new.root, old.root, &mut Vec::new());
    w.out
}

struct Walker<'a> {
    n: &'a SchemaSet,
    o: &'a SchemaSet,
    seen: HashSet<(NamedId, NamedId)>,
    out: Vec<Message>,
}

/// The non-null branch of a two-branch union with `null`, with its index.
fn optional(s: &Schema) -> Option<(usize, &Schema)> {
    match &s.kind {
        SchemaKind::Union(bs) if bs.len() == 2 => {
            let null = bs.iter().position(|b| b.kind == SchemaKind::Null)?;
            Some((1 - null, &bs[1 - null]))
        }
        _ => None,
    }
}

fn rust_type(set: &SchemaSet, s: &Schema) -> String {
    match &s.kind {
        SchemaKind::Null => "()".to_owned(),
        SchemaKind::Boolean => "bool".to_owned(),
        SchemaKind::Int => "i32".to_owned(),
        SchemaKind::Long => "i64".to_owned(),
        SchemaKind::Float => "f32".to_owned(),
        SchemaKind::Double => "f64".to_owned(),
        SchemaKind::Bytes => "Vec<u8>".to_owned(),
        SchemaKind::String => "String".to_owned(),
        _ => describe(set, s),
    }
}

/// (unit rank, is local) of a time or timestamp logical type.
fn time_unit(t: LogicalType) -> Option<(u8, bool)> {
    Some(match t {
        LogicalType::TimeMillis | LogicalType::TimestampMillis => (0, false),
        LogicalType::TimeMicros | LogicalType::TimestampMicros => (1, false),
        LogicalType::TimestampNanos => (2, false),
        LogicalType::LocalTimestampMillis => (0, true),
        LogicalType::LocalTimestampMicros => (1, true),
        LogicalType::LocalTimestampNanos => (2, true),
        _ => return None,
    })
}

fn logical_name(t: Option<LogicalType>) -> String {
    match t {
        Some(LogicalType::Decimal { precision, scale }) => format!("decimal({precision}, {scale})"),
        Some(t) => t.name().to_owned(),
        None => "no logical type".to_owned(),
    }
}

/// The warnings for a logical type change from `old` to `new`.
fn logical_changes(
    old: Option<LogicalType>,
    new: Option<LogicalType>,
) -> Vec<(WarningKind, String)> {
    if old == new {
        return Vec::new();
    }
    let change = format!("{} → {}", logical_name(old), logical_name(new));
    match (old, new) {
        (
            Some(LogicalType::Decimal {
                precision: p0,
                scale: s0,
            }),
            Some(LogicalType::Decimal {
                precision: p1,
                scale: s1,
            }),
        ) => {
            let mut out = Vec::new();
            if p0 != p1 {
                out.push((
                    WarningKind::DecimalPrecisionChanged,
                    format!(
                        "decimal precision changes from {p0} to {p1}: Avro Java reads the data, but ursa's readers \
                         refuse the pair, as the specification matches decimals only with equal precision and scale"
                    ),
                ));
            }
            if s0 != s1 {
                out.push((
                    WarningKind::DecimalScaleChanged,
                    format!(
                        "decimal scale changes from {s0} to {s1}: stored values are read as different numbers \
                         (ursa's readers refuse the pair, as the specification asks)"
                    ),
                ));
            }
            out
        }
        (Some(a), Some(b)) => match (time_unit(a), time_unit(b)) {
            (Some((ua, _)), Some((ub, _))) if ua != ub => vec![(
                WarningKind::TimestampUnitChanged,
                format!(
                    "time unit changes ({change}): stored values are read at a different scale"
                ),
            )],
            (Some(_), _) | (_, Some(_)) if a == LogicalType::Date || b == LogicalType::Date => {
                vec![(
                    WarningKind::DateTimeChanged,
                    format!("date/time meaning changes ({change})"),
                )]
            }
            _ => vec![(
                WarningKind::LogicalTypeChanged,
                format!("logical type changes ({change})"),
            )],
        },
        _ => vec![(
            WarningKind::LogicalTypeChanged,
            format!("logical type changes ({change})"),
        )],
    }
}

impl<'a> Walker<'a> {
    fn warn(
        &mut self,
        kind: WarningKind,
        path: &[String],
        text: String,
        loc: Loc,
        key: Option<&str>,
    ) {
        let (file, line, column) = position(self.n, loc, key);
        let location = json_pointer(path);
        self.out.push(Message {
            kind: kind.as_str().to_owned(),
            message: format!("{text} (at {location})"),
            location,
            file: Some(file),
            line: Some(line),
            column: Some(column),
            is_error: false,
            detail: text,
            direction: None,
            version: None,
        });
    }

    fn logical(
        &mut self,
        old: Option<LogicalType>,
        new: Option<LogicalType>,
        path: &[String],
        loc: Loc,
    ) {
        for (kind, text) in logical_changes(old, new) {
            self.warn(kind, path, text, loc, Some("logicalType"));
        }
    }

    fn walk(&mut self, ns: &'a Schema, os: &'a Schema, path: &mut Vec<String>) {
        match (optional(ns), optional(os)) {
            (Some((i, ni)), Some((_, oi))) => {
                path.push(i.to_string());
                self.walk(ni, oi, path);
                path.pop();
                return;
            }
            (Some((i, ni)), None) if os.kind != SchemaKind::Null => {
                let t = rust_type(self.o, os);
                self.warn(
                    WarningKind::RustTypeChanged,
                    path,
                    format!("`{}` becomes optional: the generated Rust type changes from {t} to Option<{t}>", describe(self.o, os)),
                    ns.loc,
                    None,
                );
                path.push(i.to_string());
                self.walk(ni, os, path);
                path.pop();
                return;
            }
            (None, Some((_, oi))) if ns.kind != SchemaKind::Null => {
                let t = rust_type(self.n, ns);
                self.warn(
                    WarningKind::RustTypeChanged,
                    path,
                    format!("`{}` is no longer optional: the generated Rust type changes from Option<{t}> to {t}", describe(self.n, ns)),
                    ns.loc,
                    None,
                );
                self.walk(ns, oi, path);
                return;
            }
            _ => {}
        }
        match (&ns.kind, &os.kind) {
            (SchemaKind::Named(a), SchemaKind::Named(b)) => self.named(*a, *b, path),
            (SchemaKind::Array(ni), SchemaKind::Array(oi)) => {
                path.push("items".to_owned());
                self.walk(ni, oi, path);
                path.pop();
            }
            (SchemaKind::Map(nv), SchemaKind::Map(ov)) => {
                path.push("values".to_owned());
                self.walk(nv, ov, path);
                path.pop();
            }
            (SchemaKind::Union(nb), SchemaKind::Union(ob)) => self.union(nb, ob, ns.loc, path),
            (nk, ok) => {
                let unnamed = |k: &SchemaKind| {
                    !matches!(
                        k,
                        SchemaKind::Named(_)
                            | SchemaKind::Union(_)
                            | SchemaKind::Array(_)
                            | SchemaKind::Map(_)
                    )
                };
                if nk != ok {
                    let (from, to) = (rust_type(self.o, os), rust_type(self.n, ns));
                    self.warn(
                        WarningKind::RustTypeChanged,
                        path,
                        format!(
                            "type changes from `{}` to `{}`: the generated Rust type changes from {from} to {to}",
                            describe(self.o, os),
                            describe(self.n, ns)
                        ),
                        ns.loc,
                        None,
                    );
                }
                if unnamed(nk) && unnamed(ok) {
                    self.logical(os.logical, ns.logical, path, ns.loc);
                }
            }
        }
    }

    fn union(&mut self, nb: &'a [Schema], ob: &'a [Schema], loc: Loc, path: &mut Vec<String>) {
        let same = |n: &Schema, o: &Schema| match (&n.kind, &o.kind) {
            (SchemaKind::Named(a), SchemaKind::Named(b)) => {
                let (nt, ot) = (self.n.named(*a), self.o.named(*b));
                nt.name.name == ot.name.name || nt.aliases.contains(&ot.name)
            }
            (SchemaKind::Array(_), SchemaKind::Array(_))
            | (SchemaKind::Map(_), SchemaKind::Map(_)) => true,
            (a, b) => a == b,
        };
        let mut matched_old = vec![false; ob.len()];
        let mut added = Vec::new();
        for (i, n) in nb.iter().enumerate() {
            match ob.iter().position(|o| same(n, o)) {
                Some(j) => {
                    matched_old[j] = true;
                    path.push(i.to_string());
                    self.walk(n, &ob[j], path);
                    path.pop();
                }
                None => added.push(format!("`{}`", describe(self.n, n))),
            }
        }
        let removed: Vec<String> = ob
            .iter()
            .zip(&matched_old)
            .filter(|(_, m)| !**m)
            .map(|(o, _)| format!("`{}`", describe(self.o, o)))
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            let mut parts = Vec::new();
            if !added.is_empty() {
                parts.push(format!("added {}", added.join(", ")));
            }
            if !removed.is_empty() {
                parts.push(format!("removed {}", removed.join(", ")));
            }
            self.warn(
                WarningKind::RustTypeChanged,
                path,
                format!(
                    "union branches change ({}): the generated Rust union type changes",
                    parts.join("; ")
                ),
                loc,
                None,
            );
        }
    }

    fn named(&mut self, a: NamedId, b: NamedId, path: &mut Vec<String>) {
        if !self.seen.insert((a, b)) {
            return;
        }
        let (nt, ot) = (self.n.named(a), self.o.named(b));
        let same_kind = std::mem::discriminant(&nt.kind) == std::mem::discriminant(&ot.kind);
        if same_kind && nt.name != ot.name {
            let mut p = path.clone();
            p.push("name".to_owned());
            self.warn(
                WarningKind::TypeRenamed,
                &p,
                format!(
                    "type '{}' is now '{}': the generated Rust type name or module changes",
                    ot.name.fullname(),
                    nt.name.fullname()
                ),
                nt.loc,
                Some("name"),
            );
        }
        match (&nt.kind, &ot.kind) {
            (NamedKind::Record { fields: nf }, NamedKind::Record { fields: of }) => {
                self.fields(nf, of, nt.loc, path);
            }
            (NamedKind::Enum { symbols: ns, .. }, NamedKind::Enum { symbols: os, .. }) => {
                let removed: Vec<&str> = os
                    .iter()
                    .filter(|s| !ns.contains(s))
                    .map(String::as_str)
                    .collect();
                if !removed.is_empty() {
                    let mut p = path.clone();
                    p.push("symbols".to_owned());
                    self.warn(
                        WarningKind::EnumSymbolRemoved,
                        &p,
                        format!(
                            "enum '{}' loses symbol{} {}: the generated Rust variant{} disappear{}",
                            nt.name.fullname(),
                            if removed.len() == 1 { "" } else { "s" },
                            removed.join(", "),
                            if removed.len() == 1 { "" } else { "s" },
                            if removed.len() == 1 { "s" } else { "" },
                        ),
                        nt.loc,
                        Some("symbols"),
                    );
                }
            }
            (NamedKind::Fixed { .. }, NamedKind::Fixed { .. }) => {
                self.logical(ot.logical, nt.logical, path, nt.loc);
            }
            _ => {}
        }
    }

    fn fields(&mut self, nf: &'a [Field], of: &'a [Field], record: Loc, path: &mut Vec<String>) {
        let mut matched_old = vec![false; of.len()];
        path.push("fields".to_owned());
        for (i, f) in nf.iter().enumerate() {
            path.push(i.to_string());
            let direct = of.iter().position(|o| o.name == f.name);
            let found = direct.or_else(|| of.iter().position(|o| f.aliases.contains(&o.name)));
            if let Some(j) = found {
                matched_old[j] = true;
                if direct.is_none() {
                    self.warn(
                        WarningKind::FieldRenamed,
                        path,
                        format!(
                            "field '{}' is renamed '{}' (matched through its alias): the generated Rust field name changes",
                            of[j].name, f.name
                        ),
                        f.loc,
                        Some("name"),
                    );
                }
                path.push("type".to_owned());
                self.walk(&f.schema, &of[j].schema, path);
                path.pop();
            }
            path.pop();
        }
        path.pop();
        for (o, _) in of.iter().zip(&matched_old).filter(|(_, m)| !**m) {
            self.warn(
                WarningKind::FieldRemoved,
                path,
                format!(
                    "field '{}' is removed: the generated Rust field disappears",
                    o.name
                ),
                record,
                Some("fields"),
            );
        }
    }
}
