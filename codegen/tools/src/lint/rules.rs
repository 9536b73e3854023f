//! The lint rules, run over every named type of a schema folder.

use std::collections::BTreeMap;

use ursa_avro::schema::{Loc, NamedKind, NamedType, Schema, SchemaKind, SchemaSet};
use ursa_compat::Message;

use super::config::{FieldStyle, LintConfig, Rule, Severity};

/// What to lint.
pub struct LintInput<'a> {
    /// The schemas.
    pub set: &'a SchemaSet,
    /// Each document's path relative to the schema folder, `/`-separated (indexed like `set.files()`).
    pub rel_paths: &'a [String],
    /// The schemas at the `--against` reference, for `new-field-default`.
    pub previous: Option<&'a SchemaSet>,
}

struct Linter<'a> {
    input: &'a LintInput<'a>,
    config: &'a LintConfig,
    out: Vec<Message>,
}

fn is_upper_camel(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_camel(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

impl Linter<'_> {
    fn report(&mut self, rule: Rule, loc: Loc, location: String, message: String) {
        let rel = self
            .input
            .rel_paths
            .get(loc.file.index())
            .map_or("", String::as_str);
        let severity = self.config.severity(rule, rel);
        if severity == Severity::Off {
            return;
        }
        let file = self.input.set.file(loc.file);
        let (line, column) = file.line_col(loc.span.start);
        self.out.push(Message {
            kind: rule.id().to_owned(),
            location,
            message,
            file: Some(file.path().to_owned()),
            line: Some(line),
            column: Some(column),
            is_error: severity == Severity::Error,
            detail: String::new(),
            direction: None,
            version: None,
        });
    }

    fn named(&mut self, t: &NamedType, field_style: FieldStyle) {
        let full = t.name.fullname();
        let pointer = format!("#{full}");
        if t.doc.is_none() {
            self.report(
                Rule::DocRequired,
                t.loc,
                pointer.clone(),
                format!("type `{full}` has no doc"),
            );
        }
        if !is_upper_camel(&t.name.name) {
            self.report(
                Rule::TypeNameCase,
                t.loc,
                pointer.clone(),
                format!("type name `{}` is not UpperCamelCase", t.name.name),
            );
        }
        match &t.kind {
            NamedKind::Enum { default: None, .. } => self.report(
                Rule::EnumDefault,
                t.loc,
                pointer.clone(),
                format!("enum `{full}` declares no default: readers fail on symbols added later"),
            ),
            NamedKind::Record { fields } => {
                for (i, f) in fields.iter().enumerate() {
                    let at = format!("{pointer}/fields/{i}");
                    if f.doc.is_none() {
                        self.report(
                            Rule::DocRequired,
                            f.loc,
                            at.clone(),
                            format!("field `{}` of `{full}` has no doc", f.name),
                        );
                    }
                    let ok = match field_style {
                        FieldStyle::Snake => is_snake(&f.name),
                        FieldStyle::Camel => is_camel(&f.name),
                        FieldStyle::Consistent => true,
                    };
                    if !ok {
                        let style = if field_style == FieldStyle::Snake {
                            "snake_case"
                        } else {
                            "camelCase"
                        };
                        self.report(
                            Rule::FieldNameCase,
                            f.loc,
                            at.clone(),
                            format!("field `{}` of `{full}` is not {style}", f.name),
                        );
                    }
                    self.nullable(&f.schema, f.default.as_ref(), f.loc, &at, &f.name);
                }
            }
            _ => {}
        }
    }

    fn nullable(
        &mut self,
        schema: &Schema,
        default: Option<&serde_json::Value>,
        loc: Loc,
        at: &str,
        name: &str,
    ) {
        let SchemaKind::Union(branches) = &schema.kind else {
            return;
        };
        let Some(null_at) = branches.iter().position(|b| b.kind == SchemaKind::Null) else {
            return;
        };
        if null_at != 0 {
            self.report(
                Rule::NullableNullFirst,
                schema.loc,
                format!("{at}/type"),
                format!("nullable field `{name}` should list \"null\" first in its union"),
            );
        } else if default != Some(&serde_json::Value::Null) {
            self.report(
                Rule::NullableNullFirst,
                loc,
                at.to_owned(),
                format!("nullable field `{name}` should have `\"default\": null`"),
            );
        }
    }
}

/// Runs every enabled rule; findings are errors or warnings per the config.
pub fn lint(input: &LintInput<'_>, config: &LintConfig) -> Vec<Message> {
    let mut l = Linter {
        input,
        config,
        out: Vec::new(),
    };
    let set = input.set;
    // With "consistent" field naming, the style is whichever most fields use.
    let style = match config.field_style {
        FieldStyle::Consistent => {
            let (mut snake, mut camel) = (0usize, 0usize);
            for (_, t) in set.named_types() {
                if let NamedKind::Record { fields } = &t.kind {
                    for f in fields {
                        if f.name.contains('_') || is_snake(&f.name) && !is_camel(&f.name) {
                            snake += 1;
                        } else if f.name.chars().any(|c| c.is_ascii_uppercase()) {
                            camel += 1;
                        }
                    }
                }
            }
            if camel > snake {
                FieldStyle::Camel
            } else {
                FieldStyle::Snake
            }
        }
        s => s,
    };
    for (_, t) in set.named_types() {
        l.named(t, style);
    }
    // Each file's top-level type lives at <namespace folders>/<Name>.avsc.
    for (file, root) in set.roots() {
        if let SchemaKind::Named(id) = root.kind {
            let t = set.named(id);
            let mut expected: String = t.name.namespace.as_deref().unwrap_or("").replace('.', "/");
            if !expected.is_empty() {
                expected.push('/');
            }
            expected.push_str(&t.name.name);
            expected.push_str(".avsc");
            let actual = input
                .rel_paths
                .get(file.index())
                .cloned()
                .unwrap_or_default();
            if actual != expected {
                l.report(
                    Rule::NamespaceMatchesFolder,
                    t.loc,
                    format!("#{}", t.name.fullname()),
                    format!(
                        "`{}` is in {actual}; by its namespace it belongs in {expected}",
                        t.name.fullname()
                    ),
                );
            }
        }
    }
    if let Some(prev) = input.previous {
        new_field_defaults(&mut l, prev);
    }
    // Defaults Avro Java accepts but that are no valid value of their type (the parser lists them).
    for d in set.suspicious_defaults() {
        let t = set.named(d.owner);
        let at = match d.field {
            Some(i) => format!("#{}/fields/{i}/default", t.name.fullname()),
            None => format!("#{}/default", t.name.fullname()),
        };
        l.report(Rule::DefaultValue, d.loc, at, d.problem.clone());
    }
    l.out.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.kind).cmp(&(&b.file, b.line, b.column, &b.kind))
    });
    l.out
}

fn new_field_defaults(l: &mut Linter<'_>, prev: &SchemaSet) {
    let set = l.input.set;
    for (_, t) in set.named_types() {
        let NamedKind::Record { fields } = &t.kind else {
            continue;
        };
        let full = t.name.fullname();
        let old = prev
            .lookup(&full)
            .or_else(|| t.aliases.iter().find_map(|a| prev.lookup(&a.fullname())));
        let Some(old) = old else { continue };
        let NamedKind::Record { fields: old_fields } = &prev.named(old).kind else {
            continue;
        };
        let old_names: BTreeMap<&str, ()> =
            old_fields.iter().map(|f| (f.name.as_str(), ())).collect();
        for (i, f) in fields.iter().enumerate() {
            let existed = old_names.contains_key(f.name.as_str())
                || f.aliases.iter().any(|a| old_names.contains_key(a.as_str()));
            if !existed && f.default.is_none() {
                l.report(
                    Rule::NewFieldDefault,
                    f.loc,
                    format!("#{full}/fields/{i}"),
                    format!("field `{}` was added to `{full}` without a default: readers of older data cannot fill it", f.name),
                );
            }
        }
    }
}
