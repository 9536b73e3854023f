//! Confluent's compatibility levels over a subject's history: which (reader, writer) pairs to check, how the
//! findings are labelled (new/old, version), and the warnings against the latest version.

use crate::finding::to_messages;
use crate::{Direction, Doc, Level, Message, Report, checker, warnings};

/// Checks `new` against the `history` of a subject (oldest first) at `level`.
///
/// BACKWARD reads the latest version with `new` (reader = new), FORWARD reads `new` with the latest, FULL does
/// both (forward first, as Confluent lists them); the `_TRANSITIVE` levels check every version, oldest first,
/// and prefix each message with `against version N:` (N 1-based in `history`). NONE and an empty history are
/// always compatible. Warnings compare `new` with the latest version and never change the verdict.
pub fn check(level: Level, new: Doc<'_>, history: &[Doc<'_>]) -> Report {
    let Some(latest) = history.last() else {
        return Report {
            is_compatible: true,
            messages: Vec::new(),
        };
    };
    let (forward, backward, transitive) = match level {
        Level::Backward => (false, true, false),
        Level::BackwardTransitive => (false, true, true),
        Level::Forward => (true, false, false),
        Level::ForwardTransitive => (true, false, true),
        Level::Full => (true, true, false),
        Level::FullTransitive => (true, true, true),
        Level::None => (false, false, false),
    };
    let first = if transitive { 0 } else { history.len() - 1 };
    let mut messages: Vec<Message> = Vec::new();
    for (index, old) in history.iter().enumerate().skip(first) {
        let version = index + 1;
        let mut found = Vec::new();
        if forward {
            let f = checker::incompatibilities(*old, new);
            found.extend(to_messages(&f, *old, new, Some(Direction::Forward)));
        }
        if backward {
            let f = checker::incompatibilities(new, *old);
            found.extend(to_messages(&f, new, *old, Some(Direction::Backward)));
        }
        for mut m in found {
            m.version = Some(version);
            if transitive {
                m.message = format!("against version {version}: {}", m.message);
            }
            messages.push(m);
        }
    }
    let is_compatible = messages.is_empty();
    let mut notes = warnings::compare(new, *latest);
    for w in &mut notes {
        w.version = Some(history.len());
    }
    messages.extend(notes);
    Report {
        is_compatible,
        messages,
    }
}
