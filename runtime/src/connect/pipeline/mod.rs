//! The pipeline of a running connector: the consumer thread (assignment, fetching, back-pressure, commits),
//! per-partition processing, sink calls under deadlines, and commit positions.

mod consumer;
mod context;
mod guard;
mod keys;
mod partition;
mod progress;

pub use consumer::{Target, run};
pub use context::{Bounds, ConnectorCtx, Fatal, Fetched, Held, next_generation};
pub use guard::{CallError, CatchUnwind, call, call_retrying};
pub use keys::{PipelineConfig, keys};
pub use progress::{Progress, commit_point};

#[cfg(test)]
mod tests;
