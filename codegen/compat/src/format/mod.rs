//! Report renderings, each a pure function of a [`Report`](crate::Report) (plus the sources for carets):
//! rustc-like text, JSON, JUnit XML, GitHub workflow commands and Confluent's verbose message strings.

mod confluent;
mod github;
mod human;
mod json;
mod junit;

pub use confluent::confluent_messages;
pub use github::github;
pub use human::human;
pub use json::json;
pub use junit::junit;
