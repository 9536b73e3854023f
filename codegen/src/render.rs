//! Rendering module contexts with the tera templates and formatting the result with rustfmt.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

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

/// Formats Rust source with rustfmt (edition 2024), as `cargo fmt` would.
pub(crate) fn rustfmt(source: &str, label: &str) -> Result<String, Error> {
    let program = std::env::var("RUSTFMT").unwrap_or_else(|_| "rustfmt".to_owned());
    let mut child = Command::new(&program)
        .args(["--edition", "2024", "--emit", "stdout", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            Error::Rustfmt(format!(
                "cannot run `{program}`: {e} (install it with `rustup component add rustfmt`)"
            ))
        })?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::Rustfmt("rustfmt stdin unavailable".into()))?;
    let input = source.to_owned();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child
        .wait_with_output()
        .map_err(|e| Error::Rustfmt(e.to_string()))?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(Error::Rustfmt(format!(
            "rustfmt failed on generated {label} (a template produced invalid Rust):\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    String::from_utf8(output.stdout).map_err(|e| Error::Rustfmt(e.to_string()))
}
