//! Which records a metric takes: conditions on fields (equals, in, not in, exists, comparisons, a regex),
//! all of which must hold.

use serde::Deserialize;
use toml::Spanned;
use ursa_connect::SinkRecord;

use crate::extract::{Found, Path, View};

/// One condition as written in the definitions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    path: String,
    equals: Option<toml::Value>,
    #[serde(rename = "in")]
    any_of: Option<Vec<toml::Value>>,
    not_in: Option<Vec<toml::Value>>,
    exists: Option<bool>,
    gt: Option<f64>,
    ge: Option<f64>,
    lt: Option<f64>,
    le: Option<f64>,
    matches: Option<String>,
}

type Cmp = fn(f64, f64) -> bool;

#[derive(Debug, Clone)]
enum Test {
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists(bool),
    Cmp(Cmp, f64),
    Matches(regex::Regex),
}

/// A checked filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    conditions: Vec<(Path, Test)>,
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Filter {
    /// The paths its conditions read (to bind: [`Path::chain`]).
    pub fn paths_mut(&mut self) -> impl Iterator<Item = &mut Path> {
        self.conditions.iter_mut().map(|(p, _)| p)
    }

    /// Checks the conditions; an error carries the byte offset of the faulty condition.
    pub fn build(raw: &[Spanned<RawCondition>]) -> Result<Filter, (usize, String)> {
        let mut conditions = Vec::new();
        for c in raw {
            let at = c.span().start;
            let c = c.get_ref();
            let path = Path::parse(&c.path).map_err(|e| (at, e))?;
            let list = |vs: &[toml::Value]| -> Result<Vec<String>, (usize, String)> {
                vs.iter()
                    .map(|v| scalar(v).ok_or((at, "filter values must be scalars".to_owned())))
                    .collect()
            };
            let mut tests = Vec::new();
            if let Some(v) = &c.equals {
                tests.push(Test::In(list(std::slice::from_ref(v))?));
            }
            if let Some(v) = &c.any_of {
                tests.push(Test::In(list(v)?));
            }
            if let Some(v) = &c.not_in {
                tests.push(Test::NotIn(list(v)?));
            }
            if let Some(e) = c.exists {
                tests.push(Test::Exists(e));
            }
            let cmps: [(Option<f64>, Cmp); 4] = [
                (c.gt, |a, b| a > b),
                (c.ge, |a, b| a >= b),
                (c.lt, |a, b| a < b),
                (c.le, |a, b| a <= b),
            ];
            for (v, f) in cmps {
                if let Some(v) = v {
                    tests.push(Test::Cmp(f, v));
                }
            }
            if let Some(re) = &c.matches {
                let re = regex::Regex::new(&format!("^(?:{re})$"))
                    .map_err(|e| (at, format!("filter regex: {e}")))?;
                tests.push(Test::Matches(re));
            }
            if tests.is_empty() {
                return Err((
                    at,
                    "a filter needs one of equals, in, not_in, exists, gt, ge, lt, le, matches"
                        .into(),
                ));
            }
            conditions.extend(tests.into_iter().map(|t| (path.clone(), t)));
        }
        Ok(Filter { conditions })
    }

    /// Whether `record` (with `value`, its value as the definitions read it) passes.
    pub fn matches(&self, record: &SinkRecord, value: View<'_>) -> bool {
        self.conditions.iter().all(|(path, test)| {
            let found: Option<Found<'_>> = path.lookup(record, value);
            let text = || found.as_ref().and_then(Found::text_cow);
            match test {
                Test::Exists(e) => found.is_some() == *e,
                Test::In(vs) => text().is_some_and(|t| vs.iter().any(|v| *v == *t)),
                Test::NotIn(vs) => !text().is_some_and(|t| vs.iter().any(|v| *v == *t)),
                Test::Cmp(f, b) => found.and_then(|x| x.number()).is_some_and(|a| f(a, *b)),
                Test::Matches(re) => text().is_some_and(|t| re.is_match(&t)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[derive(Deserialize)]
    struct Doc {
        filter: Vec<Spanned<RawCondition>>,
    }

    #[test]
    fn conditions_all_hold() {
        let doc: Doc = toml::from_str(
            r#"
            filter = [
              { path = "severity", in = ["HIGH", "CRITICAL"] },
              { path = "score", ge = 0.5 },
              { path = "category", matches = "self_.*" },
              { path = "muted", exists = false },
            ]"#,
        )
        .unwrap();
        let f = Filter::build(&doc.filter).unwrap();
        let r = SinkRecord::new("t", 0, 0);
        let ok = serde_json::json!({"severity": "HIGH", "score": 0.7, "category": "self_harm"});
        assert!(f.matches(&r, (&ok).into()));
        for bad in [
            serde_json::json!({"severity": "LOW", "score": 0.7, "category": "self_harm"}),
            serde_json::json!({"severity": "HIGH", "score": 0.2, "category": "self_harm"}),
            serde_json::json!({"severity": "HIGH", "score": 0.7, "category": "bullying"}),
            serde_json::json!({"severity": "HIGH", "score": 0.7, "category": "self_harm", "muted": true}),
        ] {
            assert!(!f.matches(&r, (&bad).into()), "{bad}");
        }
        let doc: Doc = toml::from_str(r#"filter = [{ path = "x" }]"#).unwrap();
        assert!(Filter::build(&doc.filter).is_err());
    }
}
