//! Output formats of the schema commands, over one report or one report per subject.

use ursa_avro::schema::SchemaSet;
use ursa_compat::{Report, format};

/// How to print results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// rustc-like text with the source line.
    #[default]
    Human,
    /// `{"is_compatible": …, "messages": […]}`.
    Json,
    /// A JUnit XML report (one test case per subject).
    Junit,
    /// GitHub workflow annotations (`::error file=…`).
    Github,
}

/// One checked subject.
pub struct SubjectResult<'a> {
    /// The subject (or file) name.
    pub subject: String,
    /// A short description of what it was checked against.
    pub against: String,
    /// The verdict.
    pub report: Report,
    /// Sources for carets, new schema first.
    pub sources: Vec<&'a SchemaSet>,
}

/// Renders a single report (the `compat` command).
pub fn single(format: Format, name: &str, report: &Report, sources: &[&SchemaSet]) -> String {
    match format {
        Format::Human => format::human(report, sources),
        Format::Json => format::json(report),
        Format::Junit => format::junit(&[(name, report)]),
        Format::Github => format::github(report),
    }
}

/// Renders one report per subject (the `check` and `lint` commands).
pub fn many(format: Format, results: &[SubjectResult<'_>]) -> String {
    match format {
        Format::Human => {
            let mut out = String::new();
            for r in results {
                if r.report.messages.is_empty() {
                    out.push_str(&format!("ok: {} ({})\n", r.subject, r.against));
                } else {
                    out.push_str(&format!("== {} ({})\n", r.subject, r.against));
                    out.push_str(&format::human(&r.report, &r.sources));
                    out.push('\n');
                }
            }
            let failed = results.iter().filter(|r| !r.report.is_compatible).count();
            out.push_str(&format!(
                "{} subject(s) checked, {failed} failed\n",
                results.len()
            ));
            out
        }
        Format::Json => {
            let subjects: Vec<serde_json::Value> = results
                .iter()
                .map(|r| {
                    let mut v: serde_json::Value =
                        serde_json::from_str(&format::json(&r.report)).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("subject".into(), r.subject.clone().into());
                        o.insert("against".into(), r.against.clone().into());
                    }
                    v
                })
                .collect();
            let all = results.iter().all(|r| r.report.is_compatible);
            let mut text =
                serde_json::json!({"is_compatible": all, "subjects": subjects}).to_string();
            text.push('\n');
            text
        }
        Format::Junit => {
            let pairs: Vec<(&str, &Report)> = results
                .iter()
                .map(|r| (r.subject.as_str(), &r.report))
                .collect();
            format::junit(&pairs)
        }
        Format::Github => results.iter().map(|r| format::github(&r.report)).collect(),
    }
}
