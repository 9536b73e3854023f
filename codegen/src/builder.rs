//! [`Builder`]: code generation from a build script, into one `include!`-able file in `OUT_DIR`.

use std::path::{Path, PathBuf};

use crate::{Error, Layout, Options, Serde};

/// The file [`Builder::generate`] writes unless [`Builder::file_name`] says otherwise.
pub const DEFAULT_FILE_NAME: &str = "ursa_avro_types.rs";

/// Generates the Rust for a schema folder from a build script (`build.rs`), as `prost-build` does:
///
/// ```no_run
/// // build.rs
/// fn main() -> Result<(), ursa_codegen::Error> {
///     ursa_codegen::Builder::new()
///         .schemas("schemas/avro")
///         .catalog("schemas/topics.toml") // optional: topic bindings and `topics` constants
///         .generate()?;
///     Ok(())
/// }
/// ```
///
/// and in the crate, with `ursa-avro` as a dependency:
///
/// ```text
/// pub mod events {
///     include!(concat!(env!("OUT_DIR"), "/ursa_avro_types.rs"));
/// }
/// ```
///
/// The file holds every namespace as an inline module (`events::com::teddy::child::SafetyViolation`) and
/// refers to its own types by relative paths, so it can be included in any module. `generate` prints
/// `cargo:rerun-if-changed` for the schema folder, every schema file, the catalog and the templates, and
/// rewrites the file only when its content changes.
#[derive(Debug, Clone, Default)]
pub struct Builder {
    schemas: Option<PathBuf>,
    catalog: Option<PathBuf>,
    templates: Option<PathBuf>,
    out_dir: Option<PathBuf>,
    file_name: Option<String>,
    rerun_if_changed: bool,
    serde: Serde,
}

impl Builder {
    /// A builder with nothing set; `schemas` is required, `out_dir` defaults to `$OUT_DIR`.
    pub fn new() -> Self {
        Self {
            rerun_if_changed: true,
            serde: Serde::Never,
            ..Self::default()
        }
    }

    /// The folder of `.avsc` files (searched recursively; relative paths are relative to the package, as
    /// cargo runs build scripts there).
    pub fn schemas(mut self, dir: impl Into<PathBuf>) -> Self {
        self.schemas = Some(dir.into());
        self
    }

    /// A topic catalog (`topics.toml`) binding topics to the types.
    pub fn catalog(mut self, path: impl Into<PathBuf>) -> Self {
        self.catalog = Some(path.into());
        self
    }

    /// A folder of replacement tera templates (see `codegen/templates/`).
    pub fn templates(mut self, dir: impl Into<PathBuf>) -> Self {
        self.templates = Some(dir.into());
        self
    }

    /// Where to write the file (default: the `OUT_DIR` cargo gives build scripts).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// The file's name (default [`DEFAULT_FILE_NAME`]).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// Whether the types derive serde's traits (default [`Serde::Never`]; [`Serde::Feature`] needs a `serde`
    /// feature in the including crate, [`Serde::Always`] needs `ursa-avro`'s `serde` feature).
    pub fn serde(mut self, serde: Serde) -> Self {
        self.serde = serde;
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default yes; turn it off outside build scripts).
    pub fn emit_rerun_if_changed(mut self, yes: bool) -> Self {
        self.rerun_if_changed = yes;
        self
    }

    /// Generates and writes the file; returns its path. Errors list every schema problem, rustc-style.
    pub fn generate(self) -> Result<PathBuf, Error> {
        let schemas = self.schemas.ok_or_else(|| Error::Io {
            path: PathBuf::new(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "ursa_codegen::Builder: no schema folder given (call .schemas(dir))",
            ),
        })?;
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| Error::Io {
                    path: PathBuf::new(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "ursa_codegen::Builder: OUT_DIR is not set (call .out_dir(dir) outside build scripts)",
                    ),
                })?,
        };
        if self.rerun_if_changed {
            // Printed before generating, so a failed build still reruns once the schemas are fixed.
            let mut watched = vec![schemas.clone()];
            collect_files(&schemas, &mut watched);
            watched.extend(self.catalog.iter().cloned());
            if let Some(t) = &self.templates {
                watched.push(t.clone());
                collect_files(t, &mut watched);
            }
            for path in watched {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        let out = out_dir.join(
            self.file_name
                .unwrap_or_else(|| DEFAULT_FILE_NAME.to_owned()),
        );
        let generated = crate::generate_with(
            &Options {
                schemas,
                catalog: self.catalog,
                templates: self.templates,
                layout: Layout::File { out: out.clone() },
                display_base: std::env::current_dir().ok(),
            },
            self.serde,
        )?;
        for (rel, content) in &generated.files {
            let path = generated.root.join(rel);
            if std::fs::read_to_string(&path).is_ok_and(|old| old == *content) {
                continue;
            }
            std::fs::create_dir_all(&generated.root).map_err(|source| Error::Io {
                path: generated.root.clone(),
                source,
            })?;
            std::fs::write(&path, content).map_err(|source| Error::Io { path, source })?;
        }
        Ok(out)
    }
}

/// Every file under `dir`, sorted (so the printed lines are deterministic).
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            collect_files(&path, out);
        } else {
            out.push(path);
        }
    }
}
