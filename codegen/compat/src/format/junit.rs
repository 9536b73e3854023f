//! A JUnit XML test suite: one test case per subject, failing with the incompatibilities, warnings as output.

use crate::Report;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => {}
            c => out.push(c),
        }
    }
    out
}

fn line(m: &crate::Message) -> String {
    let at = match (&m.file, m.line, m.column) {
        (Some(f), Some(l), Some(c)) => format!(" ({f}:{l}:{c})"),
        _ => String::new(),
    };
    format!("{}: {}{at}", m.kind, m.message)
}

/// A `<testsuite>` document for `(subject, report)` pairs.
pub fn junit(results: &[(&str, &Report)]) -> String {
    let failures = results.iter().filter(|(_, r)| !r.is_compatible).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuite name=\"schema-compatibility\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        results.len()
    ));
    for (subject, report) in results {
        out.push_str(&format!(
            "  <testcase classname=\"schema-compatibility\" name=\"{}\"",
            escape(subject)
        ));
        let errors: Vec<String> = report.errors().map(line).collect();
        let warnings: Vec<String> = report.warnings().map(line).collect();
        if report.is_compatible && warnings.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        if !report.is_compatible {
            let n = errors.len();
            out.push_str(&format!(
                "    <failure message=\"{n} incompatibilit{}\" type=\"INCOMPATIBLE\">{}</failure>\n",
                if n == 1 { "y" } else { "ies" },
                escape(&errors.join("\n"))
            ));
        }
        if !warnings.is_empty() {
            out.push_str(&format!(
                "    <system-out>{}</system-out>\n",
                escape(&warnings.join("\n"))
            ));
        }
        out.push_str("  </testcase>\n");
    }
    out.push_str("</testsuite>\n");
    out
}
