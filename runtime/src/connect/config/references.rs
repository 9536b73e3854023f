//! Secret references (`${env:VAR}`, `${file:/path[:key]}`) in connector configs submitted over REST: refused
//! unless the worker's `[rest]` section allows them (`allow_env` by variable name, `allow_file` by directory),
//! so that a REST client cannot read the worker's environment or files. Configs from trusted places (files
//! on the command line, the distributed config topic) are not checked here.
//!
//! References are recognised exactly as [`Secret::parse`](super::Secret::parse) recognises them: the whole
//! value is `${env:…}` or `${file:…}`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::connect::api::FlatConfig;

/// A reference, as a config value holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `${env:VAR}`.
    Env(String),
    /// `${file:PATH}` or `${file:PATH:KEY}` (the path only).
    File(String),
}

impl Reference {
    /// The reference `value` is, if it is one (as `Secret::parse` reads it).
    pub fn parse(value: &str) -> Option<Reference> {
        let inner = value.strip_prefix("${")?.strip_suffix('}')?;
        match inner.split_once(':')? {
            ("env", var) => Some(Reference::Env(var.to_owned())),
            ("file", rest) => Some(Reference::File(match rest.rsplit_once(':') {
                Some((path, _key)) => path.to_owned(),
                None => rest.to_owned(),
            })),
            _ => None,
        }
    }
}

/// Whether `value` is a secret reference.
pub fn is_reference(value: &str) -> bool {
    Reference::parse(value).is_some()
}

/// Which references a config submitted over REST may hold (`[rest] allow_env`, `allow_file`). The default
/// allows none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferencePolicy {
    /// Environment variables `${env:…}` may name: exact names, or prefixes ending in `*` (`*` alone: any).
    pub env: Vec<String>,
    /// Directories `${file:…}` may read under (absolute; symlinks and `..` are resolved before comparing).
    pub file: Vec<PathBuf>,
}

impl ReferencePolicy {
    /// A policy that allows every reference (what a trusted source gets).
    pub fn allow_all() -> ReferencePolicy {
        ReferencePolicy {
            env: vec!["*".into()],
            file: vec![PathBuf::from("/")],
        }
    }

    fn env_allowed(&self, var: &str) -> bool {
        self.env.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => var.starts_with(prefix),
            None => p == var,
        })
    }

    /// Whether `path` lies inside an allowed directory once symlinks and `..` are resolved. A file that does
    /// not exist is refused (nothing to resolve, and no probing of what exists outside).
    async fn file_allowed(&self, path: &str) -> bool {
        if self.file.is_empty() {
            return false;
        }
        let path = Path::new(path);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return false;
        }
        let Ok(real) = tokio::fs::canonicalize(path).await else {
            return false;
        };
        for dir in &self.file {
            if let Ok(dir) = tokio::fs::canonicalize(dir).await
                && real.starts_with(&dir)
                && real != dir
            {
                return true;
            }
        }
        false
    }

    /// Every key of `config` whose value is a reference this policy refuses, with why (nothing is resolved
    /// or read; a refused file is not opened).
    pub async fn refused(&self, config: &FlatConfig) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in config {
            let why = match Reference::parse(value) {
                None => continue,
                Some(Reference::Env(var)) if self.env_allowed(&var) => continue,
                Some(Reference::Env(_)) => format!(
                    "{value} is not allowed in a config submitted over REST (the worker's rest.allow_env does not name this variable)"
                ),
                Some(Reference::File(path)) => {
                    if self.file_allowed(&path).await {
                        continue;
                    }
                    format!(
                        "{value} is not allowed in a config submitted over REST (the worker's rest.allow_file names no directory holding this file)"
                    )
                }
            };
            out.insert(key.clone(), why);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::config::Secret;

    #[test]
    fn recognises_references_as_secret_does() {
        for (value, expected) in [
            ("${env:HOME}", Some(Reference::Env("HOME".into()))),
            (
                "${file:/etc/shadow}",
                Some(Reference::File("/etc/shadow".into())),
            ),
            (
                "${file:/run/s.properties:password}",
                Some(Reference::File("/run/s.properties".into())),
            ),
            ("${vault:x}", None),
            ("prefix ${env:HOME}", None),
            ("${env:HOME", None),
            ("plain", None),
        ] {
            assert_eq!(Reference::parse(value), expected, "{value}");
            // Secret shows a reference as itself and hides anything else.
            let shown = Secret::parse(value).display_form();
            assert_eq!(shown == value, expected.is_some(), "{value}: {shown}");
        }
    }

    #[tokio::test]
    async fn refuses_what_the_policy_does_not_allow() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("allowed");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&allowed).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(allowed.join("ok"), "x").unwrap();
        std::fs::write(outside.join("secret"), "x").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(outside.join("secret"), allowed.join("link")).unwrap();
        let policy = ReferencePolicy {
            env: vec!["SINK_*".into(), "EXACT".into()],
            file: vec![allowed.clone()],
        };
        let at = |p: &Path| p.display().to_string();
        let config: FlatConfig = [
            ("a", "${env:SINK_TOKEN}".to_owned()),
            ("b", "${env:EXACT}".to_owned()),
            ("c", "${env:EXACTLY}".to_owned()),
            ("d", "${env:HOME}".to_owned()),
            ("e", format!("${{file:{}:key}}", at(&allowed.join("ok")))),
            ("f", format!("${{file:{}}}", at(&outside.join("secret")))),
            ("g", format!("${{file:{}/../outside/secret}}", at(&allowed))),
            ("h", format!("${{file:{}}}", at(&allowed.join("link")))),
            ("i", format!("${{file:{}}}", at(&allowed.join("missing")))),
            ("j", "${file:relative/ok}".to_owned()),
            ("k", "plain".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let refused = policy.refused(&config).await;
        let keys: Vec<&str> = refused.keys().map(String::as_str).collect();
        #[cfg(unix)]
        assert_eq!(keys, ["c", "d", "f", "g", "h", "i", "j"]);
        assert!(refused["d"].contains("allow_env"), "{refused:?}");
        assert!(refused["f"].contains("allow_file"), "{refused:?}");
        let none = ReferencePolicy::default().refused(&config).await;
        assert_eq!(none.len(), 10);
    }
}
