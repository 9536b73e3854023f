//! Secrets in configs: references (`${env:VAR}`, `${file:/path:key}`) or literals, resolved at start and never
//! shown — `Debug`, `Display` and serialization print `[hidden]` for literals and resolved values.

use std::fmt;

/// A secret value or a reference to one.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// What the config said (a reference is safe to show; a literal is not).
    source: SecretSource,
    resolved: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
enum SecretSource {
    Env(String),
    File { path: String, key: String },
    Literal(String),
}

/// Why a secret could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The key is not in the file.
    #[error("secret file {path} has no key {key}")]
    MissingKey {
        /// The file.
        path: String,
        /// The key.
        key: String,
    },
}

impl Secret {
    /// Parses a config value: `${env:VAR}`, `${file:/path/to/file:key}` (a `key=value` properties file), or a
    /// literal.
    pub fn parse(raw: &str) -> Secret {
        let source = match raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            Some(inner) => match inner.split_once(':') {
                Some(("env", var)) => SecretSource::Env(var.to_owned()),
                Some(("file", rest)) => match rest.rsplit_once(':') {
                    Some((path, key)) => SecretSource::File {
                        path: path.to_owned(),
                        key: key.to_owned(),
                    },
                    None => SecretSource::File {
                        path: rest.to_owned(),
                        key: String::new(),
                    },
                },
                _ => SecretSource::Literal(raw.to_owned()),
            },
            None => SecretSource::Literal(raw.to_owned()),
        };
        Secret {
            source,
            resolved: None,
        }
    }

    /// Resolves a reference (reading the environment or the file); literals resolve to themselves.
    pub fn resolve(&mut self) -> Result<(), SecretError> {
        let value = match &self.source {
            SecretSource::Literal(v) => v.clone(),
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::MissingEnv(var.clone()))?
            }
            SecretSource::File { path, key } => {
                let text = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                if key.is_empty() {
                    text.trim_end_matches(['\n', '\r']).to_owned()
                } else {
                    text.lines()
                        .filter_map(|l| l.split_once(['=', ':']))
                        .find(|(k, _)| k.trim() == key)
                        .map(|(_, v)| v.trim().to_owned())
                        .ok_or_else(|| SecretError::MissingKey {
                            path: path.clone(),
                            key: key.clone(),
                        })?
                }
            }
        };
        self.resolved = Some(value);
        Ok(())
    }

    /// The resolved value (`None` until [`Secret::resolve`]).
    pub fn expose(&self) -> Option<&str> {
        self.resolved.as_deref()
    }

    /// What may be shown: the reference itself, or `[hidden]` for a literal.
    pub fn display_form(&self) -> String {
        match &self.source {
            SecretSource::Env(v) => format!("${{env:{v}}}"),
            SecretSource::File { path, key } if key.is_empty() => format!("${{file:{path}}}"),
            SecretSource::File { path, key } => format!("${{file:{path}:{key}}}"),
            SecretSource::Literal(_) => "[hidden]".to_owned(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.display_form())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_form())
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display_form())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_and_never_print_the_value() {
        let dir = std::env::temp_dir().join(format!("ursa-secret-{}", std::process::id()));
        std::fs::write(&dir, "user=bear\npassword = s3cret\n").unwrap();
        let mut s = Secret::parse(&format!("${{file:{}:password}}", dir.display()));
        s.resolve().unwrap();
        assert_eq!(s.expose(), Some("s3cret"));
        assert!(!format!("{s:?} {s}").contains("s3cret"));
        let mut lit = Secret::parse("hunter2");
        lit.resolve().unwrap();
        assert_eq!(format!("{lit:?}"), "Secret([hidden])");
        assert_eq!(serde_json::to_string(&lit).unwrap(), "\"[hidden]\"");
        let mut missing = Secret::parse("${env:URSA_TEST_SURELY_UNSET_VAR}");
        assert_eq!(
            missing.resolve().unwrap_err(),
            SecretError::MissingEnv("URSA_TEST_SURELY_UNSET_VAR".into())
        );
        let _ = std::fs::remove_file(dir);
    }
}
