//! The JSON report: `{"is_compatible": bool, "messages": [{"kind","location","message","file","line","column"}]}`.

use serde_json::{Value, json as j};

use crate::Report;

/// The report as one line of JSON, keys in the documented order; `file`, `line` and `column` may be `null`.
pub fn json(report: &Report) -> String {
    let messages: Vec<Value> = report
        .messages
        .iter()
        .map(|m| {
            j!({
                "kind": m.kind,
                "location": m.location,
                "message": m.message,
                "file": m.file,
                "line": m.line,
                "column": m.column,
            })
        })
        .collect();
    j!({ "is_compatible": report.is_compatible, "messages": messages }).to_string()
}
