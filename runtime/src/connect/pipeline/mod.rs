//! The pipeline of a running connector: the consumer loop, per-partition processing, commit positions.

mod consumer;
mod context;
mod partition;
mod progress;

pub use consumer::{Target, run};
pub use context::{ConnectorCtx, Fatal};
pub use progress::{Progress, commit_point};

#[cfg(test)]
mod tests;
