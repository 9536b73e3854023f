//! rustc-like text: `error[KIND]: message`, the `-->` position, the source line with a caret, the JSON pointer.

use ursa_avro::schema::{SchemaSet, SourceFile};

use crate::{Message, Report};

fn source<'a>(sources: &[&'a SchemaSet], path: &str) -> Option<&'a SourceFile> {
    sources
        .iter()
        .flat_map(|s| s.files())
        .find(|f| f.path() == path)
}

fn render(m: &Message, sources: &[&SchemaSet], out: &mut String) {
    let severity = if m.is_error { "error" } else { "warning" };
    out.push_str(&format!("{severity}[{}]: {}\n", m.kind, m.message));
    let (Some(file), Some(line), Some(column)) = (&m.file, m.line, m.column) else {
        out.push_str(&format!(" = at {}\n", m.location));
        return;
    };
    let pad = " ".repeat(line.to_string().len());
    out.push_str(&format!("{pad}--> {file}:{line}:{column}\n"));
    if let Some(text) = source(sources, file).map(|f| f.line_text(line)) {
        let caret_pad: String = text
            .chars()
            .take(column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        out.push_str(&format!("{pad} |\n{line} | {text}\n{pad} | {caret_pad}^\n"));
    }
    out.push_str(&format!("{pad} = at {}\n", m.location));
}

/// The report as text: each message with its source line and a caret (looked up by file path in `sources`,
/// the first set holding that path winning: pass the new schema's set first), then a summary line.
pub fn human(report: &Report, sources: &[&SchemaSet]) -> String {
    let mut out = String::new();
    for m in &report.messages {
        render(m, sources, &mut out);
        out.push('\n');
    }
    let errors = report.errors().count();
    let warnings = report.warnings().count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    if report.is_compatible {
        out.push_str(&format!("compatible ({})\n", plural(warnings, "warning")));
    } else {
        out.push_str(&format!(
            "incompatible: {}, {}\n",
            plural(errors, "error"),
            plural(warnings, "warning")
        ));
    }
    out
}
