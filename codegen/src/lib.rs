//! `ursa-codegen`: typed Rust for Avro schemas.
//!
//! The pipeline: [`ursa_catalog::load_schema_dir`] parses every `.avsc` of a folder into one schema set
//! (references across files resolve; errors carry file:line:col); the planner gives every named type a
//! module (its namespace) and a Rust name, decides which recursive references are boxed and which unions
//! become generated enums, and builds one template context per module; tera templates render each module
//! and `prettyplease` formats it (no external `rustfmt`: the output does not depend on the toolchain).
//! Nothing is written until everything succeeded ([`Generated::write`]).
//!
//! From a build script, [`Builder`] writes one file to `OUT_DIR` for `include!`:
//!
//! ```no_run
//! // build.rs
//! fn main() -> Result<(), ursa_codegen::Error> {
//!     ursa_codegen::Builder::new().schemas("schemas/avro").generate()?;
//!     Ok(())
//! }
//! // src/lib.rs: pub mod events { include!(concat!(env!("OUT_DIR"), "/ursa_avro_types.rs")); }
//! ```

mod builder;
mod codec;
mod names;
mod output;
mod plan;
mod render;

use std::path::{Path, PathBuf};

use serde::Serialize;
use ursa_avro::schema::{LogicalTypes, ParseOptions};
use ursa_catalog::{Catalog, CatalogError};

pub use builder::{Builder, DEFAULT_FILE_NAME};
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
    /// A template produced invalid Rust (the generated code did not parse).
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
    /// One self-contained file (namespace modules inline, no inner attributes at its top), for
    /// `include!` from any module, e.g. a build script's `OUT_DIR` ([`Builder`]).
    File {
        /// The file.
        out: PathBuf,
    },
}

/// Whether generated types derive serde's `Serialize` and `Deserialize` (through `ursa_avro::serde`, so
/// the generated crate needs `ursa-avro`'s `serde` feature, not a dependency on serde).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serde {
    /// Behind the generated crate's own `serde` feature (`#[cfg_attr(feature = "serde", …)]`): the default
    /// for module folders and standalone crates (whose `Cargo.toml` declares `serde = ["ursa-avro/serde"]`).
    #[default]
    Feature,
    /// Always derived.
    Always,
    /// Never derived: the default for [`Builder`], whose including crate may declare no `serde` feature.
    Never,
}

impl Serde {
    fn as_str(self) -> &'static str {
        match self {
            Serde::Feature => "feature",
            Serde::Always => "always",
            Serde::Never => "never",
        }
    }
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

/// Generates the code in memory; nothing is written. Types derive serde behind a `serde` feature
/// ([`Serde::Feature`]; see [`generate_with`]).
pub fn generate(opts: &Options) -> Result<Generated, Error> {
    generate_with(opts, Serde::Feature)
}

/// [`generate`], with the given serde mode.
pub fn generate_with(opts: &Options, serde: Serde) -> Result<Generated, Error> {
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
        Layout::File { out } => {
            let name = out.file_name().map(PathBuf::from).unwrap_or_default();
            let dir = out.parent().map(Path::to_path_buf).unwrap_or_default();
            (dir, PathBuf::new(), "", vec![name])
        }
    };
    let single = matches!(opts.layout, Layout::File { .. });
    let mut files = std::collections::BTreeMap::new();
    let mut trees = std::collections::BTreeMap::new();
    let topics = std::mem::take(&mut planner.topics);
    for (path, module) in &planner.modules {
        let is_root = path.is_empty();
        let mut ctx =
            tera::Context::from_serialize(module).map_err(|e| Error::Template(e.to_string()))?;
        ctx.insert("is_root", &is_root);
        ctx.insert("serde", serde.as_str());
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
        let label = rel.display().to_string();
        if single {
            let header = if is_root {
                render::header(&text)
            } else {
                String::new()
            };
            trees.insert(path.clone(), (header, render::parse(&text, &label)?));
        } else {
            files.insert(rel, render::format(&text, &label)?);
        }
    }
    if let Layout::File { out } = &opts.layout {
        let (header, mut root_tree) = trees
            .remove(&Vec::<String>::new())
            .ok_or_else(|| Error::Template("no root module was generated".into()))?;
        // `include!` refuses inner attributes at the top of the included file.
        root_tree.attrs.clear();
        inline_children(&mut root_tree.items, &mut Vec::new(), &mut trees);
        let name = out.file_name().map(PathBuf::from).unwrap_or_default();
        files.insert(name, render::print(&header, &root_tree));
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

/// Replaces each `mod child;` declaration under module `path` by the child's items, recursively.
fn inline_children(
    items: &mut [syn::Item],
    path: &mut Vec<String>,
    trees: &mut std::collections::BTreeMap<Vec<String>, (String, syn::File)>,
) {
    for item in items {
        let syn::Item::Mod(m) = item else { continue };
        if m.content.is_some() {
            continue;
        }
        let ident = m.ident.to_string();
        let name = ident.trim_start_matches("r#");
        let Some(key) = trees
            .keys()
            .find(|k| {
                k.len() == path.len() + 1
                    && k[..path.len()] == path[..]
                    && k[path.len()].trim_start_matches("r#") == name
            })
            .cloned()
        else {
            continue;
        };
        let Some((_, mut child)) = trees.remove(&key) else {
            continue;
        };
        path.push(key[path.len()].clone());
        inline_children(&mut child.items, path, trees);
        path.pop();
        m.attrs.append(&mut child.attrs);
        m.content = Some((syn::token::Brace::default(), child.items));
        m.semi = None;
    }
}
