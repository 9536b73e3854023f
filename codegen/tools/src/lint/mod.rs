//! `schema lint`: rules with ids, each an error, a warning or off per a config file, with per-file ignores.

mod config;
mod rules;

pub use config::{FieldStyle, Ignore, LintConfig, Rule, Severity, glob_match};
pub use rules::{LintInput, lint};

#[cfg(test)]
mod tests;
