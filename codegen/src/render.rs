//! Rendering module contexts with the tera templates and formatting the result with `prettyplease`.

use std::path::Path;

use tera::{Context, Tera};

use crate::Error;

/// The templates shipped with the generator.
const BUILTIN: &[(&str, &str)] = &[
    (
        "module.rs.tera",
        include_str!("../templates/module.rs.tera"),
    ),
    ("types.tera", include_str!("../templates/types.tera")),
    (
        "Cargo.toml.tera",
        include_str!("../templates/Cargo.toml.tera"),
    ),
];

/// Loads the built-in templates, or a user's copies from `dir` (every `*.tera` file there replaces the
/// built-in template of the same name).
pub(crate) fn templates(dir: Option<&Path>) -> Result<Tera, Error> {
    let mut sources: Vec<(String, String)> = BUILTIN
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| Error::Io {
                    path: dir.to_path_buf(),
                    source,
                })?
                .path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".tera") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
            match sources.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = text,
                None => sources.push((name.to_owned(), text)),
            }
        }
    }
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.add_raw_templates(sources)
        .map_err(|e| Error::Template(describe_tera(&e)))?;
    Ok(tera)
}

/// A tera error with its chain of causes (tera puts the useful part in the source).
fn describe_tera(e: &tera::Error) -> String {
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// Renders a template.
pub(crate) fn render(tera: &Tera, name: &str, context: &Context) -> Result<String, Error> {
    tera.render(name, context)
        .map_err(|e| Error::Template(describe_tera(&e)))
}

/// Parses Rust source (so a template producing invalid Rust is caught here, with the file named).
pub(crate) fn parse(source: &str, label: &str) -> Result<syn::File, Error> {
    syn::parse_file(source).map_err(|e| {
        Error::Rustfmt(format!(
            "generated {label} is not valid Rust (a template produced it): {e}\n--- {label}:\n{source}"
        ))
    })
}

/// The leading plain `//` comment lines of `source` (the `@generated` header), which a syntax tree drops.
pub(crate) fn header(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let t = line.trim_start();
        if t.starts_with("//") && !t.starts_with("///") && !t.starts_with("//!") {
            out.push_str(t);
            out.push('\n');
        } else if !t.is_empty() {
            break;
        }
    }
    out
}

/// Formats a syntax tree with `prettyplease` (a library: the output never depends on the installed
/// toolchain), after `header`.
pub(crate) fn print(header: &str, file: &syn::File) -> String {
    let mut out = header.to_owned();
    out.push_str(&prettyplease::unparse(file));
    out
}

/// Formats generated Rust source: parsed with `syn`, printed with `prettyplease`; the leading `//` header
/// comment is kept.
pub(crate) fn format(source: &str, label: &str) -> Result<String, Error> {
    Ok(print(&header(source), &parse(source, label)?))
}
