//! Turning checker findings into [`Message`]s: words for the direction ("reader"/"writer" or "new"/"old"),
//! the JSON pointer, and file:line:col in the new schema (the reader when there is no new one).

use crate::checker::{Finding, json_pointer};
use crate::locate::position;
use crate::{Direction, Doc, Message};

/// Messages for `findings` of reading `writer` with `reader`; `direction` says which one is the new schema.
/// Exact duplicates (Java reports a memoised pair's incompatibilities again at each use) are dropped.
pub(crate) fn to_messages(
    findings: &[Finding],
    reader: Doc<'_>,
    writer: Doc<'_>,
    direction: Option<Direction>,
) -> Vec<Message> {
    let (r_label, w_label) = match direction {
        None => ("reader", "writer"),
        Some(Direction::Backward) => ("new", "old"),
        Some(Direction::Forward) => ("old", "new"),
    };
    let mut out: Vec<Message> = Vec::with_capacity(findings.len());
    for f in findings {
        let (set, at) = match direction {
            Some(Direction::Forward) => (writer.set, f.writer_at),
            _ => (reader.set, f.reader_at),
        };
        let (file, line, column) = position(set, at.loc, at.key);
        let message = Message {
            kind: f.kind.as_str().to_owned(),
            location: json_pointer(&f.path),
            message: f.words.replace("{R}", r_label).replace("{W}", w_label),
            file: Some(file),
            line: Some(line),
            column: Some(column),
            is_error: true,
            detail: f.java.clone(),
            direction,
            version: None,
        };
        if !out.contains(&message) {
            out.push(message);
        }
    }
    out
}
