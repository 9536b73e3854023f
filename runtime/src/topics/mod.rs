//! `ursa topics apply`: create or update topics from the catalog, showing the diff first; never deletes a topic
//! or removes partitions.

mod apply;
mod incremental;
mod plan;

pub use apply::{Admin, AdminError};
pub use plan::{Action, ExistingTopic, plan};
