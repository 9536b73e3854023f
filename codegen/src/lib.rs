//! `ursa-codegen`: typed Rust for Avro schemas.
//!
//! The pipeline: [`ursa_catalog::load_schema_dir`] parses every `.avsc` of a folder into one schema set
//! (references across files resolve; errors carry file:line:col); the planner gives every named type a
//! module (its namespace) and a Rust name, decides which recursive references are boxed and which unions
//! become generated enums, and builds one template context per module; tera templates render each module
//! and rustfmt formats it. Nothing is written until everything succeeded ([`Generated::write`]).

mod codec;
mod names;
mod output;
mod plan;
mod render;

use std::path::{Path, PathBuf};

use serde::Serialize;
use ursa_avro::schema::{LogicalTypes, ParseOptions};
use ursa_catalog::{Catalog, CatalogError};

pub use output::Generated;

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The schemas or the catalog are invalid.
    #[error("{}", render_catalog(.0))]
    Catalog(#[from] CatalogError),
    /// A template failed to load or render.
    #[error("template error: {0}")]
    Template(String),
    /// rustfmt failed (a template produced invalid Rust) or is missing.
    #[error("{0}")]
    Rustfmt(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

fn render_catalog(e: &CatalogError) -> String {
    match e {
        CatalogError::Schema(s) => s.render(),
        other => other.to_string(),
    }
}

/// Where and how to write the generated code.
#[derive(Debug, Clone)]
pub enum Layout {
    /// A module folder inside an existing crate (e.g. `schemas/src/generated`), included with `mod generated;`.
    Module {
        /// The folder; generation owns all of it.
        out: PathBuf,
    },
    /// A standalone crate: `Cargo.toml` and `src/`.
    Crate {
        /// The crate folder.
        out: PathBuf,
        /// The package name.
        name: String,
        /// Path of the `ursa-avro` crate, written into the generated `Cargo.toml` (relative to `out` when possible).
        avro_path: PathBuf,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Folder of `.avsc` files (searched recursively).
    pub schemas: PathBuf,
    /// A topic catalog binding topics to types (`topics.toml`), if any.
    pub catalog: Option<PathBuf>,
    /// A folder of replacement templates.
    pub templates: Option<PathBuf>,
    /// The output.
    pub layout: Layout,
    /// Paths in messages are shown relative to this folder.
    pub display_base: Option<PathBuf>,
}

/// The generation targets committed in this repository, given its root: the `ursa-events` crate (with the
/// topic catalog) and the generator's own fixtures. `cargo xtask codegen` writes them; a test checks them.
pub fn repository_targets(root: &Path, templates: Option<PathBuf>) -> Vec<(&'static str, Options)> {
    vec![
        (
            "ursa-events",
            Options {
                schemas: root.join("schemas/avro"),
                catalog: Some(root.join("schemas/topics.toml")),
                templates: templates.clone(),
                layout: Layout::Module {
                    out: root.join("schemas/src/generated"),
                },
                display_base: Some(root.to_path_buf()),
            },
        ),
        (
            "ursa-codegen-fixtures",
            Options {
                schemas: root.join("codegen/fixtures/schemas"),
                catalog: None,
                templates,
                layout: Layout::Module {
                    out: root.join("codegen/fixtures/src/generated"),
                },
                display_base: Some(root.to_path_buf()),
            },
        ),
    ]
}

/// The `ursa-avro` crate next to this generator (`codegen/avro`).
pub fn default_avro_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("avro")
}

#[derive(Serialize)]
struct CrateCtx<'a> {
    crate_name: &'a str,
    avro_path: String,
}

/// Relative path from folder `from` to `to` when both are absolute, else `to` itself.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let (Ok(from), Ok(to)) = (std::path::absolute(from), std::path::absolute(to)) else {
        return to.to_path_buf();
    };
    let from: Vec<_> = from.components().collect();
    let to_c: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return to;
    }
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c);
    }
    out
}

/// Generates the code in memory; nothing is written.
pub fn generate(opts: &Options) -> Result<Generated, Error> {
    let set = ursa_catalog::load_schema_dir(
        &opts.schemas,
        opts.display_base.as_deref(),
        ParseOptions {
            logical_types: LogicalTypes::Strict,
        },
    )?;
    let catalog = match &opts.catalog {
        Some(path) => {
            let c = Catalog::load(path)?;
            c.check_schemas(&set)?;
            Some(c)
        }
        None => None,
    };
    let mut planner = plan::Planner::new(&set, catalog.as_ref());
    planner.run();
    let tera = render::templates(opts.templates.as_deref())?;

    let (root, src_prefix, root_file, owned) = match &opts.layout {
        Layout::Module { out } => (out.clone(), PathBuf::new(), "mod.rs", vec![PathBuf::new()]),
        Layout::Crate { out, .. } => (
            out.clone(),
            PathBuf::from("src"),
            "lib.rs",
            vec![PathBuf::from("Cargo.toml"), PathBuf::from("src")],
        ),
    };
    let mut files = std::collections::BTreeMap::new();
    let topics = std::mem::take(&mut planner.topics);
    for (path, module) in &planner.modules {
        let is_root = path.is_empty();
        let mut ctx =
            tera::Context::from_serialize(module).map_err(|e| Error::Template(e.to_string()))?;
        ctx.insert("is_root", &is_root);
        ctx.insert("topics", if is_root { topics.as_slice() } else { &[] });
        ctx.insert(
            "crate_doc",
            &match (&opts.layout, is_root) {
                (Layout::Crate { name, .. }, true) => {
                    format!("`{name}`: Rust types generated from Avro schemas.")
                }
                _ => String::new(),
            },
        );
        let text = render::render(&tera, "module.rs.tera", &ctx)?;
        let rel = if is_root {
            src_prefix.join(root_file)
        } else {
            let mut p = src_prefix.clone();
            for seg in path {
                p.push(seg.trim_start_matches("r#"));
            }
            p.set_extension("rs");
            p
        };
        let formatted = render::rustfmt(&text, &rel.display().to_string())?;
        files.insert(rel, formatted);
    }
    if let Layout::Crate {
        out,
        name,
        avro_path,
    } = &opts.layout
    {
        let ctx = tera::Context::from_serialize(CrateCtx {
            crate_name: name,
            avro_path: relative(out, avro_path).display().to_string(),
        })
        .map_err(|e| Error::Template(e.to_string()))?;
        files.insert(
            PathBuf::from("Cargo.toml"),
            render::render(&tera, "Cargo.toml.tera", &ctx)?,
        );
    }
    Ok(Generated { root, files, owned })
}
