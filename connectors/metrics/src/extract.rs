//! Taking values out of a record: paths into the value's JSON form (nested fields, array indexes, the key,
//! headers, the topic), enum symbols and union branches, numbers, and normalised label values.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::Value;
use ursa_avro::value::{Part, Parts};
use ursa_connect::SinkRecord;

/// A record's value as the definitions read it: its JSON form, or the parts of an Avro datum the definitions
/// want ([`Parts`], found through each path's [`Path::chain`]).
#[derive(Debug, Clone, Copy)]
pub enum View<'a> {
    /// The JSON form.
    Json(&'a Value),
    /// The wanted parts of an Avro datum.
    Parts(&'a Parts<'a>),
}

impl<'a> From<&'a Value> for View<'a> {
    fn from(v: &'a Value) -> View<'a> {
        View::Json(v)
    }
}

/// Where a value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// The record's value (the default).
    Value,
    /// The record's key.
    Key,
    /// A header's UTF-8 value.
    Header(String),
    /// The topic name.
    Topic,
}

/// A path: a root and the fields (or array indexes) below it, e.g. `device.model`, `$key.child_id`,
/// `$header.source`, `$topic`, `tags.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    /// Where it starts.
    pub root: Root,
    /// The segments below the root.
    pub segments: Vec<String>,
    /// For a path into the value: the slots of its nodes among the parts the sink decodes
    /// ([`ursa_avro::value::Wanted::chain`]; empty until the sink binds it).
    pub chain: Vec<u32>,
}

impl Path {
    /// Parses a path.
    pub fn parse(text: &str) -> Result<Path, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty path".into());
        }
        let (root, rest) = if text == "$topic" {
            (Root::Topic, "")
        } else if let Some(h) = text.strip_prefix("$header.") {
            if h.is_empty() {
                return Err("`$header.` needs a header name".into());
            }
            return Ok(Path {
                root: Root::Header(h.to_owned()),
                segments: Vec::new(),
                chain: Vec::new(),
            });
        } else if text == "$key" {
            (Root::Key, "")
        } else if let Some(k) = text.strip_prefix("$key.") {
            (Root::Key, k)
        } else if let Some(v) = text.strip_prefix("$value.") {
            (Root::Value, v)
        } else if text == "$value" {
            (Root::Value, "")
        } else if text.starts_with('$') {
            return Err(format!(
                "path {text:?}: roots are $value, $key, $header.NAME and $topic"
            ));
        } else {
            (Root::Value, text)
        };
        let segments: Vec<String> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').map(str::to_owned).collect()
        };
        if segments.iter().any(String::is_empty) {
            return Err(format!("path {text:?} has an empty segment"));
        }
        Ok(Path {
            root,
            segments,
            chain: Vec::new(),
        })
    }

    /// The value at this path in `record` (`value` is its value as the definitions read it), if present and
    /// not null.
    pub fn lookup<'a>(&self, record: &'a SinkRecord, value: View<'a>) -> Option<Found<'a>> {
        let (start, depth) = match (&self.root, value) {
            (Root::Value, View::Json(v)) => (v, 0),
            (Root::Value, View::Parts(parts)) => match parts.at(&self.chain)? {
                (Part::Json(v), depth) => (v, depth),
                (Part::Str(s), depth) if depth == self.segments.len() => {
                    return Some(Found::Text(s));
                }
                _ => return None,
            },
            (Root::Key, _) => (record.key_json().ok()?, 0),
            (Root::Topic, _) => return Some(Found::Text(&record.topic)),
            (Root::Header(name), _) => {
                let h = record.headers.iter().rev().find(|h| &h.key == name)?;
                let bytes = h.value.as_ref()?;
                return std::str::from_utf8(bytes).ok().map(Found::Text);
            }
        };
        let mut v = start;
        for s in self.segments.get(depth..).unwrap_or_default() {
            v = match v {
                Value::Object(m) => m.get(s)?,
                Value::Array(a) => a.get(s.parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        (!v.is_null()).then_some(Found::Json(v))
    }
}

/// A value found at a path.
#[derive(Debug, Clone, Copy)]
pub enum Found<'a> {
    /// Part of the JSON form.
    Json(&'a Value),
    /// Text outside it (topic, header).
    Text(&'a str),
}

impl Found<'_> {
    /// As a number: JSON numbers, and strings that parse as one (decimals are strings in the JSON form).
    pub fn number(&self) -> Option<f64> {
        match self {
            Found::Json(Value::Number(n)) => n.as_f64(),
            Found::Json(Value::String(s)) => s.trim().parse().ok(),
            Found::Text(s) => s.trim().parse().ok(),
            Found::Json(Value::Bool(b)) => Some(f64::from(u8::from(*b))),
            Found::Json(_) => None,
        }
    }

    /// As a time in ms since the Unix epoch: an integer of milliseconds, or RFC 3339 text (how the JSON form
    /// writes Avro's `timestamp-*` logical types).
    pub fn epoch_millis(&self) -> Option<i64> {
        let text = match self {
            Found::Json(Value::Number(n)) => return n.as_i64(),
            Found::Json(Value::String(s)) => s.as_str(),
            Found::Text(s) => s,
            Found::Json(_) => return None,
        };
        let text = text.trim();
        text.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.timestamp_millis())
        })
    }

    /// As label text: strings and enum symbols as they are, numbers and booleans written out; records,
    /// arrays and maps have none.
    pub fn text(&self) -> Option<String> {
        self.text_cow().map(Cow::into_owned)
    }

    /// [`Found::text`], borrowed where the value is text already.
    pub fn text_cow(&self) -> Option<Cow<'_, str>> {
        match self {
            Found::Text(s) => Some(Cow::Borrowed(s)),
            Found::Json(Value::String(s)) => Some(Cow::Borrowed(s)),
            Found::Json(Value::Bool(b)) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            Found::Json(Value::Number(n)) => Some(Cow::Owned(n.to_string())),
            Found::Json(_) => None,
        }
    }

    /// Appends [`Found::text`] to `out`; `false` (and nothing written) when there is none.
    pub fn write_text(&self, out: &mut String) -> bool {
        use std::fmt::Write;
        match self {
            // Written straight into `out`, not through a `String` of its own.
            Found::Json(Value::Number(n)) => {
                let _ = write!(out, "{n}");
            }
            _ => match self.text_cow() {
                Some(t) => out.push_str(&t),
                None => return false,
            },
        }
        true
    }

    /// The kind of union branch the value is (the JSON form unwraps unions, so the branch is told by its
    /// value: `string`, `number`, `boolean`, `record`, `array`).
    pub fn branch(&self) -> &'static str {
        match self {
            Found::Text(_) | Found::Json(Value::String(_)) => "string",
            Found::Json(Value::Number(n)) if n.is_f64() => "double",
            Found::Json(Value::Number(_)) => "long",
            Found::Json(Value::Bool(_)) => "boolean",
            Found::Json(Value::Object(_)) => "record",
            Found::Json(Value::Array(_)) => "array",
            Found::Json(Value::Null) => "null",
        }
    }
}

/// A normalisation step of label values, applied in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalise {
    /// Lower case.
    Lower,
    /// Upper case.
    Upper,
    /// Leading and trailing white space removed.
    Trim,
    /// `Snake Case-ish` → `snake_case_ish`: lower case, runs of other characters as one `_`.
    Snake,
}

impl Normalise {
    /// From its config name.
    pub fn parse(s: &str) -> Option<Normalise> {
        Some(match s {
            "lower" => Normalise::Lower,
            "upper" => Normalise::Upper,
            "trim" => Normalise::Trim,
            "snake" => Normalise::Snake,
            _ => return None,
        })
    }

    /// Applies this step to the text of `out` after `start`, in place (ASCII text without a copy).
    fn apply_at(self, out: &mut String, start: usize) {
        match self {
            Normalise::Lower if out[start..].is_ascii() => out[start..].make_ascii_lowercase(),
            Normalise::Upper if out[start..].is_ascii() => out[start..].make_ascii_uppercase(),
            Normalise::Lower | Normalise::Upper => {
                let cased = if self == Normalise::Lower {
                    out[start..].to_lowercase()
                } else {
                    out[start..].to_uppercase()
                };
                out.truncate(start);
                out.push_str(&cased);
            }
            Normalise::Trim => trim_tail(out, start, str::trim),
            Normalise::Snake => {
                let text = out.split_off(start);
                for c in text.chars() {
                    if c.is_alphanumeric() {
                        out.extend(c.to_lowercase());
                    } else if !out[start..].ends_with('_') {
                        out.push('_');
                    }
                }
                trim_tail(out, start, |t| t.trim_matches('_'));
            }
        }
    }
}

/// Cuts `out` after `start` down to what `trim` leaves of it.
fn trim_tail(out: &mut String, start: usize, trim: impl Fn(&str) -> &str) {
    let tail = &out[start..];
    let t = trim(tail);
    let (from, len) = (t.as_ptr() as usize - tail.as_ptr() as usize, t.len());
    out.replace_range(start..start + from, "");
    out.truncate(start + len);
}

/// A label taken from a field.
#[derive(Debug, Clone)]
pub struct Label {
    /// The label name.
    pub name: String,
    /// Where its value comes from.
    pub path: Path,
    /// Take the union branch of the value rather than the value.
    pub branch: bool,
    /// Normalisation steps.
    pub normalise: Vec<Normalise>,
    /// Values are cut to this many characters.
    pub max_length: usize,
    /// Values renamed after normalisation (e.g. age in years → an age band).
    pub map: BTreeMap<String, String>,
    /// The value when the field is missing, null or not a scalar.
    pub default: String,
}

impl Label {
    /// Appends this label's value for `record` to `out` (the series key is built this way, with no
    /// allocation per label for ASCII text and numbers).
    pub fn write_value(&self, record: &SinkRecord, value: View<'_>, out: &mut String) {
        let start = out.len();
        let written = match (self.path.lookup(record, value), self.branch) {
            (None, true) => {
                out.push_str("null");
                true
            }
            (Some(f), true) => {
                out.push_str(f.branch());
                true
            }
            (Some(f), false) => f.write_text(out),
            (None, false) => false,
        };
        if !written {
            out.push_str(&self.default);
            return;
        }
        for n in &self.normalise {
            n.apply_at(out, start);
        }
        if let Some(m) = self.map.get(&out[start..]) {
            out.truncate(start);
            out.push_str(m);
        }
        if let Some((i, _)) = out[start..].char_indices().nth(self.max_length) {
            out.truncate(start + i);
        }
        if out.len() == start {
            out.push_str(&self.default);
        }
    }

    /// This label's value for `record`.
    pub fn value(&self, record: &SinkRecord, value: View<'_>) -> String {
        let mut s = String::new();
        self.write_value(record, value, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    /// Label values as first specified: each step on a fresh `String`, with Unicode case mapping.
    fn reference(label: &Label, record: &SinkRecord, value: View<'_>) -> String {
        let raw = match (label.path.lookup(record, value), label.branch) {
            (None, true) => Some("null".to_owned()),
            (Some(f), true) => Some(f.branch().to_owned()),
            (Some(f), false) => f.text(),
            (None, false) => None,
        };
        let Some(mut s) = raw else {
            return label.default.clone();
        };
        for n in &label.normalise {
            s = match n {
                Normalise::Lower => s.to_lowercase(),
                Normalise::Upper => s.to_uppercase(),
                Normalise::Trim => s.trim().to_owned(),
                Normalise::Snake => {
                    let mut out = String::new();
                    for c in s.chars() {
                        if c.is_alphanumeric() {
                            out.extend(c.to_lowercase());
                        } else if !out.ends_with('_') {
                            out.push('_');
                        }
                    }
                    out.trim_matches('_').to_owned()
                }
            };
        }
        if let Some(m) = label.map.get(&s) {
            s.clone_from(m);
        }
        if s.chars().count() > label.max_length {
            s = s.chars().take(label.max_length).collect();
        }
        if s.is_empty() {
            label.default.clone()
        } else {
            s
        }
    }

    #[test]
    fn written_values_are_the_values() {
        use serde_json::json;
        let r = SinkRecord::new("events", 0, 1);
        let inputs = [
            json!("TB-2 Pro"),
            json!("  Mixed Case  "),
            json!("\u{b}tab\t"),
            json!("__a--b__"),
            json!(""),
            json!("   "),
            json!("Grüße Welt"),
            json!(-42),
            json!(7),
            json!(2.5),
            json!(true),
            json!(null),
            json!({"a": 1}),
            json!("five"),
        ];
        let steps = [
            vec![],
            vec![Normalise::Lower],
            vec![Normalise::Upper, Normalise::Lower],
            vec![Normalise::Trim],
            vec![Normalise::Trim, Normalise::Snake],
            vec![Normalise::Snake],
            vec![Normalise::Lower, Normalise::Upper],
        ];
        let maps = [
            BTreeMap::new(),
            BTreeMap::from([
                ("five".to_owned(), "5".to_owned()),
                ("tb_2_pro".to_owned(), "Größe".to_owned()),
            ]),
        ];
        for v in &inputs {
            let value = json!({ "f": v });
            for normalise in &steps {
                for map in &maps {
                    for max_length in [3, 64] {
                        for branch in [false, true] {
                            let label = Label {
                                name: "l".into(),
                                path: Path::parse("f").unwrap(),
                                branch,
                                normalise: normalise.clone(),
                                max_length,
                                map: map.clone(),
                                default: "none".into(),
                            };
                            let mut out = "x\u{1f}".to_owned();
                            label.write_value(&r, (&value).into(), &mut out);
                            assert_eq!(
                                out,
                                format!("x\u{1f}{}", reference(&label, &r, (&value).into())),
                                "{v} {normalise:?} {map:?} {max_length} {branch}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn paths_reach_nested_fields_headers_and_the_topic() {
        let mut r = SinkRecord::new("events", 0, 1);
        r.headers = std::sync::Arc::from(vec![ursa_connect::Header {
            key: "source".into(),
            value: Some(bytes::Bytes::from_static(b"bear-7")),
        }]);
        let v = serde_json::json!({"device": {"model": "TB-2 Pro"}, "tags": ["a", "b"], "n": 3, "opt": null});
        let get = |p: &str| {
            Path::parse(p)
                .unwrap()
                .lookup(&r, (&v).into())
                .and_then(|f| f.text())
        };
        assert_eq!(get("device.model").as_deref(), Some("TB-2 Pro"));
        assert_eq!(get("tags.1").as_deref(), Some("b"));
        assert_eq!(get("n").as_deref(), Some("3"));
        assert_eq!(get("opt"), None);
        assert_eq!(get("$header.source").as_deref(), Some("bear-7"));
        assert_eq!(get("$topic").as_deref(), Some("events"));
        assert!(Path::parse("a..b").is_err());
        assert!(Path::parse("$nope").is_err());
        let label = Label {
            name: "model".into(),
            path: Path::parse("device.model").unwrap(),
            branch: false,
            normalise: vec![Normalise::Snake],
            max_length: 5,
            map: BTreeMap::new(),
            default: "none".into(),
        };
        assert_eq!(label.value(&r, (&v).into()), "tb_2_");
        let branch = Label {
            branch: true,
            path: Path::parse("n").unwrap(),
            ..label.clone()
        };
        assert_eq!(branch.value(&r, (&v).into()), "long");
        let missing = Label {
            path: Path::parse("nope").unwrap(),
            ..label
        };
        assert_eq!(missing.value(&r, (&v).into()), "none");
    }
}
