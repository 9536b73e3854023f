//! Lint configuration (`schemas/lint.toml`): each rule's severity, the field naming style, per-file ignores.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::ToolError;

/// Every rule, with its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    /// A nullable union puts `null` first and defaults to `null`.
    NullableNullFirst,
    /// Every named type and field has a `doc`.
    DocRequired,
    /// Every enum declares a `default` symbol (so readers survive new symbols).
    EnumDefault,
    /// Type names are UpperCamelCase.
    TypeNameCase,
    /// Field names follow one style (snake_case, camelCase, or consistently one of them).
    FieldNameCase,
    /// A file's path is its namespace's folders plus the type name (`com/teddy/child/SafetyViolation.avsc`).
    NamespaceMatchesFolder,
    /// Fields added since the `--against` reference carry defaults.
    NewFieldDefault,
    /// Every default is a valid value of its type. Avro Java (and so Confluent's registry) accepts any string
    /// as a `bytes`, `fixed` or enum default, and ignores an enum `default` that is not a string, so such
    /// schemas parse; this rule reports them.
    DefaultValue,
}

impl Rule {
    /// All rules.
    pub const ALL: [Rule; 8] = [
        Rule::NullableNullFirst,
        Rule::DocRequired,
        Rule::EnumDefault,
        Rule::TypeNameCase,
        Rule::FieldNameCase,
        Rule::NamespaceMatchesFolder,
        Rule::NewFieldDefault,
        Rule::DefaultValue,
    ];

    /// The rule id, as in the config file and in reports.
    pub fn id(self) -> &'static str {
        match self {
            Rule::NullableNullFirst => "nullable-null-first",
            Rule::DocRequired => "doc-required",
            Rule::EnumDefault => "enum-default",
            Rule::TypeNameCase => "type-name-case",
            Rule::FieldNameCase => "field-name-case",
            Rule::NamespaceMatchesFolder => "namespace-matches-folder",
            Rule::NewFieldDefault => "new-field-default",
            Rule::DefaultValue => "default-value",
        }
    }
}

/// How a finding of a rule is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the lint (exit 1).
    #[default]
    Error,
    /// Reported, does not fail.
    Warn,
    /// Not checked.
    Off,
}

/// The field naming style.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum FieldStyle {
    /// `snake_case`.
    #[default]
    #[serde(rename = "snake_case")]
    Snake,
    /// `camelCase`.
    #[serde(rename = "camelCase")]
    Camel,
    /// Either, but one style across all files.
    #[serde(rename = "consistent")]
    Consistent,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FieldNameCase {
    #[serde(default)]
    style: FieldStyle,
}

/// Rules ignored for files matching globs (relative to the schema folder).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ignore {
    /// The rule.
    pub rule: Rule,
    /// Glob patterns, e.g. `legacy/**`.
    pub files: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    rules: BTreeMap<Rule, Severity>,
    #[serde(default, rename = "field-name-case")]
    field_name_case: FieldNameCase,
    #[serde(default)]
    ignore: Vec<Ignore>,
}

/// The lint configuration; every rule is an error unless configured otherwise.
#[derive(Debug, Clone, Default)]
pub struct LintConfig {
    rules: BTreeMap<Rule, Severity>,
    /// The field naming style.
    pub field_style: FieldStyle,
    ignores: Vec<(Rule, Vec<String>)>,
}

impl LintConfig {
    /// Reads a config file.
    pub fn load(path: &Path) -> Result<LintConfig, ToolError> {
        let text = std::fs::read_to_string(path).map_err(|source| ToolError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| ToolError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<LintConfig, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        for ig in &raw.ignore {
            for g in &ig.files {
                glob_match(g, "").map_err(|e| format!("ignore pattern {g:?}: {e}"))?;
            }
        }
        Ok(LintConfig {
            rules: raw.rules,
            field_style: raw.field_name_case.style,
            ignores: raw.ignore.into_iter().map(|i| (i.rule, i.files)).collect(),
        })
    }

    /// The severity of `rule` for the file at `rel_path` (relative to the schema folder, `/`-separated).
    pub fn severity(&self, rule: Rule, rel_path: &str) -> Severity {
        let ignored = self.ignores.iter().any(|(r, globs)| {
            *r == rule
                && globs
                    .iter()
                    .any(|g| glob_match(g, rel_path).unwrap_or(false))
        });
        if ignored {
            Severity::Off
        } else {
            self.rules.get(&rule).copied().unwrap_or_default()
        }
    }
}

/// Matches a `/`-separated path against a glob (`*` within a segment, `**` across segments).
pub fn glob_match(glob: &str, path: &str) -> Result<bool, String> {
    let matcher = globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| e.to_string())?
        .compile_matcher();
    Ok(matcher.is_match(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("legacy/**", "legacy/a/B.avsc").unwrap());
        assert!(glob_match("**/*.avsc", "a/b/C.avsc").unwrap());
        assert!(glob_match("com/*/X.avsc", "com/teddy/X.avsc").unwrap());
        assert!(!glob_match("com/*/X.avsc", "com/teddy/child/X.avsc").unwrap());
    }

    #[test]
    fn config_severities_and_ignores() {
        let c = LintConfig::parse(
            "[rules]\ndoc-required = \"warn\"\nenum-default = \"off\"\n[field-name-case]\nstyle = \"camelCase\"\n[[ignore]]\nrule = \"type-name-case\"\nfiles = [\"legacy/**\"]\n",
        )
        .unwrap();
        assert_eq!(c.severity(Rule::DocRequired, "a.avsc"), Severity::Warn);
        assert_eq!(c.severity(Rule::EnumDefault, "a.avsc"), Severity::Off);
        assert_eq!(
            c.severity(Rule::TypeNameCase, "legacy/x/Y.avsc"),
            Severity::Off
        );
        assert_eq!(c.severity(Rule::TypeNameCase, "x/Y.avsc"), Severity::Error);
        assert_eq!(c.field_style, FieldStyle::Camel);
        assert!(
            LintConfig::parse("[rules]\nno-such-rule = \"warn\"\n")
                .unwrap_err()
                .contains("no-such-rule")
        );
    }
}
