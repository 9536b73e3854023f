//! Test support shared by the integration tests: a real Kafka broker, unique names, waiting without sleeps.
//!
//! The broker comes from the environment: `URSA_TEST_BACKEND=docker` (or a build with the `docker` feature and a
//! Docker engine answering) runs Apache Kafka through testcontainers; otherwise a local `nisshi` broker process
//! is started (install it with `cargo xtask test`, which caches it). A missing broker is a test failure that
//! names the command that fixes it — tests never skip silently.

mod kafka;
mod names;
mod process;
mod wait;

pub use kafka::{Kafka, create_topic};
pub use names::unique_name;
pub use process::WorkerProcess;
pub use wait::wait_until;
