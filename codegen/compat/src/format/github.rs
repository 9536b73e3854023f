//! GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=KIND::message` per finding.

use crate::Report;

/// Escapes a workflow command's message.
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command property value.
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// One `::error` (incompatibility) or `::warning` line per message, each ending in a newline.
pub fn github(report: &Report) -> String {
    let mut out = String::new();
    for m in &report.messages {
        let command = if m.is_error { "error" } else { "warning" };
        let mut props = Vec::new();
        if let Some(file) = &m.file {
            props.push(format!("file={}", property(file)));
        }
        if let Some(line) = m.line {
            props.push(format!("line={line}"));
        }
        if let Some(col) = m.column {
            props.push(format!("col={col}"));
        }
        props.push(format!("title={}", property(&m.kind)));
        out.push_str(&format!(
            "::{command} {}::{}\n",
            props.join(","),
            data(&m.message)
        ));
    }
    out
}
