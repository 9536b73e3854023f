//! Test support shared by the integration tests: a real Kafka broker, unique names, waiting without sleeps.
//!
//! The broker comes from the environment (`URSA_TEST_BACKEND=kafka|nisshi|docker`, see [`Backend`]): Apache
//! Kafka run from the jars `cargo xtask test` fetches into `target/peers/`, the embedded `nisshi`, or Apache
//! Kafka in Docker through testcontainers. Other peers (PostgreSQL, Apicurio Registry, Kafka Connect) are
//! [`Service`]s: child processes in their own process group that never outlive the test process. A missing
//! peer is a test failure that names the command that fixes it — tests never skip silently.

mod apache_kafka;
mod apicurio;
mod certs;
mod connect;
mod groups;
mod kafka;
mod names;
mod peers;
mod postgres;
mod postgres_tls;
mod process;
mod service;
mod wait;

pub use apache_kafka::{SCRAM_USER, SaslSsl};
pub use apicurio::{APICURIO_GLOBAL_COMPATIBILITY, Apicurio};
pub use certs::make_ca;
pub use connect::{FILE_STREAM_SINK, KafkaConnect};
pub use groups::{group_assignments, group_members};
pub use kafka::{Backend, Kafka, create_topic, free_port};
pub use names::unique_name;
pub use peers::{FETCH_PEERS, classpath, java, java_peers_available, peer, peers_dir};
pub use postgres::{INSTALL_POSTGRES, Postgres, TestDatabase};
pub use process::{CommandExt, PEER_TIMEOUT, WorkerProcess, output_within};
pub use service::{STOP_SIGNAL_ENV, Service};
pub use wait::wait_until;
