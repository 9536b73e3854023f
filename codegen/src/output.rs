//! The generated files in memory: written atomically (all or nothing) or compared with what is on disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::Error;

/// Generated files, relative to `root`. `owned` lists the entries under `root` that generation owns
/// completely: writing replaces them, and checking reports files there that generation would not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The output folder.
    pub root: PathBuf,
    /// Relative path → content.
    pub files: BTreeMap<PathBuf, String>,
    /// Owned entries: `""` means all of `root`; otherwise a file or folder directly under it.
    pub owned: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn list_files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if !dir.exists() {
        return Ok(());
    }
    if dir.is_file() {
        out.push(dir.strip_prefix(base).unwrap_or(dir).to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_dir() {
            list_files(&path, base, out)?;
        } else {
            out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        }
    }
    Ok(())
}

impl Generated {
    /// Files whose content on disk differs from what would be generated: changed, missing or extra.
    pub fn stale(&self) -> Result<Vec<String>, Error> {
        let mut problems = Vec::new();
        for (rel, content) in &self.files {
            let path = self.root.join(rel);
            match std::fs::read_to_string(&path) {
                Ok(on_disk) if on_disk == *content => {}
                Ok(_) => problems.push(format!("{} is out of date", path.display())),
                Err(_) => problems.push(format!("{} is missing", path.display())),
            }
        }
        let mut existing = Vec::new();
        for owned in &self.owned {
            list_files(&self.root.join(owned), &self.root, &mut existing)?;
        }
        for rel in existing {
            if !self.files.contains_key(&rel) {
                problems.push(format!(
                    "{} is not generated any more",
                    self.root.join(rel).display()
                ));
            }
        }
        Ok(problems)
    }

    /// Writes everything: each owned entry is built next to its final place and swapped in by rename, so an
    /// error leaves the previous output as it was.
    pub fn write(&self) -> Result<(), Error> {
        let pid = std::process::id();
        std::fs::create_dir_all(&self.root).map_err(io(&self.root))?;
        let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
        let result = (|| {
            for owned in &self.owned {
                let target = self.root.join(owned);
                let target = if owned.as_os_str().is_empty() {
                    self.root.clone()
                } else {
                    target
                };
                let name = target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let stage = target.with_file_name(format!(".{name}.tmp-{pid}"));
                if stage.exists() {
                    remove(&stage).map_err(io(&stage))?;
                }
                for (rel, content) in &self.files {
                    let under = if owned.as_os_str().is_empty() {
                        Some(rel.as_path())
                    } else {
                        rel.strip_prefix(owned)
                            .ok()
                            .filter(|r| !r.as_os_str().is_empty())
                    };
                    let dest = match under {
                        Some(r) => stage.join(r),
                        None if rel == owned => stage.clone(),
                        None => continue,
                    };
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent).map_err(io(parent))?;
                    }
                    std::fs::write(&dest, content).map_err(io(&dest))?;
                }
                staged.push((stage, target));
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (stage, _) in &staged {
                let _ = remove(stage);
            }
            return Err(e);
        }
        for (stage, target) in staged {
            let old = target.with_file_name(format!(
                ".{}.old-{pid}",
                target
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            if target.exists() {
                std::fs::rename(&target, &old).map_err(io(&target))?;
            }
            std::fs::rename(&stage, &target).map_err(io(&stage))?;
            if old.exists() {
                remove(&old).map_err(io(&old))?;
            }
        }
        Ok(())
    }
}

fn remove(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}
