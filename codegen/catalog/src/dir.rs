//! Finding and parsing every `.avsc` file under a folder.

use std::path::{Path, PathBuf};

use ursa_avro::schema::{ParseOptions, SchemaSet, SourceFile};

use crate::CatalogError;

/// Every `.avsc` file under `dir`, sorted by path (so output is deterministic).
pub fn schema_files(dir: &Path) -> Result<Vec<PathBuf>, CatalogError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| CatalogError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| CatalogError::Io {
                path: d.clone(),
                source,
            })?;
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "avsc") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses every `.avsc` under `dir` into one set; paths in diagnostics are shown relative to `display_base`
/// when they are under it.
pub fn load_schema_dir(
    dir: &Path,
    display_base: Option<&Path>,
    options: ParseOptions,
) -> Result<SchemaSet, CatalogError> {
    let mut files = Vec::new();
    for path in schema_files(dir)? {
        let text = std::fs::read_to_string(&path).map_err(|source| CatalogError::Io {
            path: path.clone(),
            source,
        })?;
        let shown = display_base
            .and_then(|b| path.strip_prefix(b).ok())
            .unwrap_or(&path);
        files.push(SourceFile::new(shown.display().to_string(), text));
    }
    if files.is_empty() {
        return Err(CatalogError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no .avsc files found"),
        });
    }
    Ok(SchemaSet::parse(files, options)?)
}
