//! Schema diagnostics: what is wrong and where (path:line:col), collected so every problem is reported at once.

use std::fmt;

use crate::json::Span;

use super::model::FileId;
use super::source::{Loc, SourceFile};

/// One problem in a schema document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong.
    pub message: String,
    /// The document's path or label.
    pub path: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (characters).
    pub column: usize,
    /// Byte span in the document.
    pub span: Span,
    /// The document.
    pub file: FileId,
    /// The offending source line, for display.
    pub source_line: String,
    /// Further locations and hints (e.g. where a duplicate was first defined).
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub(crate) fn new(file: &SourceFile, loc: Loc, message: impl Into<String>) -> Self {
        let (line, column) = file.line_col(loc.span.start);
        Diagnostic {
            message: message.into(),
            path: file.path().to_owned(),
            line,
            column,
            span: loc.span,
            file: loc.file,
            source_line: file.line_text(line).to_owned(),
            notes: Vec::new(),
        }
    }

    /// Renders the diagnostic rustc-style, with the source line and a caret.
    pub fn render(&self) -> String {
        let gutter = self.line.to_string().len();
        let pad = " ".repeat(gutter);
        let caret_pad: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let mut out = format!(
            "error: {}\n{pad}--> {}:{}:{}\n{pad} |\n{} | {}\n{pad} | {caret_pad}^\n",
            self.message, self.path, self.line, self.column, self.line, self.source_line
        );
        for note in &self.notes {
            out.push_str(&format!("{pad} = note: {note}\n"));
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )?;
        for note in &self.notes {
            write!(f, " ({note})")?;
        }
        Ok(())
    }
}

/// Every problem found in a set of schema documents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SchemaError {
    /// The problems, in document order.
    pub diagnostics: Vec<Diagnostic>,
}

impl SchemaError {
    /// Renders all diagnostics rustc-style.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(Diagnostic::render)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
