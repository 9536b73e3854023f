//! Schema governance: `schema compat` (explicit files), `schema check` (against git history or a live
//! registry), `schema lint`, and the subjects a topic catalog implies. The same commands back
//! `cargo xtask schema …` and the operator binary's `ursa schema …`.

mod error;
pub mod history;
pub mod lint;
pub mod subjects;

pub use error::ToolError;
