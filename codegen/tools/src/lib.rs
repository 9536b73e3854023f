//! Schema governance: `schema compat` (explicit files), `schema check` (against git history or a live
//! registry), `schema lint`, and the subjects a topic catalog implies. The same commands back
//! `cargo xtask schema …` and the operator binary's `ursa schema …`.

pub mod cli;
mod error;
pub mod history;
pub mod lint;
mod output;
pub mod plan;
pub mod subjects;

pub use error::ToolError;

pub use output::Format;
