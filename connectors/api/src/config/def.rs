//! A typed configuration definition, as Kafka Connect's `ConfigDef`: every key with its type, default,
//! documentation and group; parsing a flat string map with an error per key; describing keys for
//! `ursa connectors describe` and the REST validate endpoint.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::secret::Secret;

/// The type of a config value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Any string.
    String,
    /// A signed integer.
    Int,
    /// `true` or `false`.
    Boolean,
    /// A comma-separated list.
    List,
    /// A duration: `500ms`, `30s`, `5m` (or plain milliseconds for Connect's `*.ms` keys).
    Duration,
    /// A secret: `${env:VAR}`, `${file:/path:key}` or a literal; never printed.
    Password,
    /// An http(s) URL.
    Url,
    /// One of the listed values.
    Enum(Vec<&'static str>),
}

/// One config key.
#[derive(Debug, Clone, Serialize)]
pub struct Key {
    /// The flat key, e.g. `errors.tolerance`.
    pub name: &'static str,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The default (as written in config); `None` means required.
    pub default: Option<&'static str>,
    /// What it does.
    pub documentation: &'static str,
    /// The group it is shown in.
    pub group: &'static str,
}

impl Key {
    /// A required key.
    pub const fn required(
        name: &'static str,
        kind: Kind,
        group: &'static str,
        documentation: &'static str,
    ) -> Key {
        Key {
            name,
            kind,
            default: None,
            documentation,
            group,
        }
    }

    /// An optional key with a default (`""` means "unset").
    pub const fn optional(
        name: &'static str,
        kind: Kind,
        default: &'static str,
        group: &'static str,
        documentation: &'static str,
    ) -> Key {
        Key {
            name,
            kind,
            default: Some(default),
            documentation,
            group,
        }
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string, URL or enum value.
    String(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Boolean(bool),
    /// A list.
    List(Vec<String>),
    /// A duration.
    Duration(Duration),
    /// A secret.
    Password(Secret),
    /// Unset (an optional key with an empty default).
    Unset,
}

/// Parses a duration: `250ms`, `30s`, `5m`, `1h`, humantime forms, or bare milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration {s:?} ({e}); use e.g. 500ms, 30s, 5m"))
}

fn parse_value(key: &Key, raw: &str) -> Result<Value, String> {
    Ok(match &key.kind {
        Kind::String => Value::String(raw.to_owned()),
        Kind::Int => Value::Int(
            raw.trim()
                .parse()
                .map_err(|_| format!("expected an integer, found {raw:?}"))?,
        ),
        Kind::Boolean => Value::Boolean(match raw.trim() {
            "true" => true,
            "false" => false,
            other => return Err(format!("expected true or false, found {other:?}")),
        }),
        Kind::List => Value::List(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        ),
        Kind::Duration => Value::Duration(parse_duration(raw)?),
        Kind::Password => {
            let mut secret = Secret::parse(raw);
            secret.resolve().map_err(|e| e.to_string())?;
            Value::Password(secret)
        }
        Kind::Url => {
            let ok = (raw.starts_with("http://") || raw.starts_with("https://"))
                && raw.len() > "https://".len();
            if !ok {
                return Err(format!("expected an http(s) URL, found {raw:?}"));
            }
            Value::String(raw.trim_end_matches('/').to_owned())
        }
        Kind::Enum(values) => {
            if !values.contains(&raw) {
                return Err(format!(
                    "expected one of {}, found {raw:?}",
                    values.join(", ")
                ));
            }
            Value::String(raw.to_owned())
        }
    })
}

/// Errors per key.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// Parsed values by key.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    values: BTreeMap<&'static str, Value>,
}

impl Parsed {
    /// The value of `key` (every defined key has one after a successful parse).
    pub fn get(&self, key: &str) -> &Value {
        self.values.get(key).unwrap_or(&Value::Unset)
    }

    /// A string value (`None` when unset).
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An integer value.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.get(key) {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn boolean(&self, key: &str) -> Option<bool> {
        match self.get(key) {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// A list value (empty when unset).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.get(key) {
            Value::List(l) => l.clone(),
            _ => Vec::new(),
        }
    }

    /// A duration value.
    pub fn duration(&self, key: &str) -> Option<Duration> {
        match self.get(key) {
            Value::Duration(d) => Some(*d),
            _ => None,
        }
    }

    /// A secret value.
    pub fn password(&self, key: &str) -> Option<&Secret> {
        match self.get(key) {
            Value::Password(p) => Some(p),
            _ => None,
        }
    }
}

/// Parses a flat map against `keys`. Unknown keys are errors unless they start with one of `open_prefixes`.
pub fn parse(
    keys: &[Key],
    open_prefixes: &[&str],
    raw: &BTreeMap<String, String>,
) -> Result<Parsed, FieldErrors> {
    let mut errors: FieldErrors = BTreeMap::new();
    let mut parsed = Parsed::default();
    for key in keys {
        match raw.get(key.name) {
            Some(v) => match parse_value(key, v) {
                Ok(value) => {
                    parsed.values.insert(key.name, value);
                }
                Err(e) => errors.entry(key.name.to_owned()).or_default().push(e),
            },
            None => match key.default {
                None => errors
                    .entry(key.name.to_owned())
                    .or_default()
                    .push("missing required configuration".into()),
                Some("") => {
                    parsed.values.insert(key.name, Value::Unset);
                }
                Some(d) => match parse_value(key, d) {
                    Ok(value) => {
                        parsed.values.insert(key.name, value);
                    }
                    Err(e) => errors
                        .entry(key.name.to_owned())
                        .or_default()
                        .push(format!("bad default: {e}")),
                },
            },
        }
    }
    for k in raw.keys() {
        let known =
            keys.iter().any(|d| d.name == k) || open_prefixes.iter().any(|p| k.starts_with(p));
        if !known {
            let hint = keys
                .iter()
                .map(|d| d.name)
                .min_by_key(|d| strsim_distance(d, k))
                .filter(|d| strsim_distance(d, k) <= 3)
                .map(|d| format!(" (did you mean `{d}`?)"))
                .unwrap_or_default();
            errors
                .entry(k.clone())
                .or_default()
                .push(format!("unknown configuration{hint}"));
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn strsim_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Flattens a TOML or JSON document into Connect's flat `a.b.c = "value"` map (lists joined with commas).
pub fn flatten(value: &serde_json::Value) -> Result<BTreeMap<String, String>, String> {
    fn walk(
        prefix: &str,
        v: &serde_json::Value,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let text = |v: &serde_json::Value| -> Result<String, String> {
            match v {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                serde_json::Value::Bool(b) => Ok(b.to_string()),
                other => Err(format!("`{prefix}`: unsupported value {other}")),
            }
        };
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out)?;
                }
                Ok(())
            }
            serde_json::Value::Array(items) => {
                let parts: Result<Vec<String>, String> = items.iter().map(text).collect();
                out.insert(prefix.to_owned(), parts?.join(","));
                Ok(())
            }
            serde_json::Value::Null => Ok(()),
            other => {
                out.insert(prefix.to_owned(), text(other)?);
                Ok(())
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[Key] = &[
        Key::required("topics", Kind::List, "common", "Topics."),
        Key::optional(
            "errors.tolerance",
            Kind::Enum(vec![]),
            "none",
            "errors",
            "Tolerance.",
        ),
        Key::optional(
            "errors.retry.timeout",
            Kind::Duration,
            "0",
            "errors",
            "Retry budget.",
        ),
        Key::optional("max.in.flight", Kind::Int, "500", "common", "Bound."),
    ];

    #[test]
    fn parses_and_reports_every_bad_key() {
        let keys: Vec<Key> = KEYS
            .iter()
            .cloned()
            .map(|mut k| {
                if k.name == "errors.tolerance" {
                    k.kind = Kind::Enum(vec!["none", "all"]);
                }
                k
            })
            .collect();
        let raw: BTreeMap<String, String> = [
            ("topics", "a, b"),
            ("errors.retry.timeout", "30s"),
            ("sink.path", "/x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let p = parse(&keys, &["sink."], &raw).unwrap();
        assert_eq!(p.list("topics"), vec!["a", "b"]);
        assert_eq!(
            p.duration("errors.retry.timeout"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(p.string("errors.tolerance"), Some("none"));
        assert_eq!(p.int("max.in.flight"), Some(500));
        let raw: BTreeMap<String, String> = [
            ("errors.tolerance", "some"),
            ("max.in.flite", "3"),
            ("max.in.flight", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let e = parse(&keys, &[], &raw).unwrap_err();
        assert_eq!(e["topics"], vec!["missing required configuration"]);
        assert!(e["errors.tolerance"][0].contains("expected one of none, all"));
        assert!(
            e["max.in.flite"][0].contains("did you mean `max.in.flight`"),
            "{e:?}"
        );
        assert!(e["max.in.flight"][0].contains("expected an integer"));
    }

    #[test]
    fn flattens_nested_documents() {
        let doc = serde_json::json!({"name": "x", "errors": {"tolerance": "all", "retry": {"timeout": 5}}, "topics": ["a", "b"]});
        let flat = flatten(&doc).unwrap();
        assert_eq!(flat["errors.retry.timeout"], "5");
        assert_eq!(flat["topics"], "a,b");
        assert_eq!(flat["name"], "x");
    }
}
