//! A Kafka broker for tests, chosen by `URSA_TEST_BACKEND`:
//!
//! - `kafka`: Apache Kafka itself, a KRaft node run from `target/peers/kafka` (the default when `java` runs and
//!   the peers are fetched, which `cargo xtask test` does);
//! - `nisshi`: the embedded, Java-free broker (the default otherwise);
//! - `docker`: Apache Kafka in Docker through testcontainers (needs the `docker` feature and an engine).
//!
//! Tests of what only a real broker can show ask for [`Kafka::apache`], which is Apache Kafka whatever the
//! backend.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::apache_kafka::SaslSsl;
use crate::service::Service;
use crate::wait_until;

/// The command that installs the local broker.
pub const INSTALL_NISSHI: &str = "cargo install nisshi --version 0.8.1 --locked --ignore-rust-version --no-default-features --features dynostore,libsql";

/// Which broker the tests run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Apache Kafka from Maven Central, as a local JVM.
    Kafka,
    /// nisshi, the embedded broker.
    Nisshi,
    /// Apache Kafka in Docker (testcontainers).
    Docker,
}

impl Backend {
    /// The backend named by `URSA_TEST_BACKEND`, else Apache Kafka when it can run here, else nisshi.
    pub fn from_env() -> Result<Backend> {
        match std::env::var("URSA_TEST_BACKEND").as_deref() {
            Ok("kafka") => Ok(Backend::Kafka),
            Ok("nisshi") => Ok(Backend::Nisshi),
            Ok("docker") => Ok(Backend::Docker),
            Ok("") | Err(_) if crate::peers::java_peers_available() => Ok(Backend::Kafka),
            Ok("") | Err(_) => Ok(Backend::Nisshi),
            Ok(other) => bail!("URSA_TEST_BACKEND={other}: expected `kafka`, `nisshi` or `docker`"),
        }
    }
}

/// A running broker. Its process stops when the handle drops or the test process exits.
pub struct Kafka {
    bootstrap: String,
    backend: Backend,
    sasl: Option<SaslSsl>,
    _process: Option<(Child, ChildStdin)>,
    _service: Option<Service>,
    #[cfg(feature = "docker")]
    _container: Option<testcontainers::ContainerAsync<testcontainers::GenericImage>>,
}

impl Kafka {
    /// The broker shared by every test of this process (started on first use), per `URSA_TEST_BACKEND`.
    pub fn shared() -> &'static Kafka {
        static SHARED: OnceLock<Kafka> = OnceLock::new();
        SHARED.get_or_init(|| or_exit(Kafka::start()))
    }

    /// Apache Kafka shared by every test of this process, whatever the backend: for tests of what only a real
    /// broker shows (IncrementalAlterConfigs, CreatePartitions, ListOffsets by time, KIP-848, SASL_SSL).
    /// It is the [`Kafka::shared`] broker when that is Apache Kafka already.
    pub fn apache() -> &'static Kafka {
        static APACHE: OnceLock<Kafka> = OnceLock::new();
        match Backend::from_env() {
            Ok(Backend::Kafka) => Kafka::shared(),
            Ok(Backend::Docker) if !crate::peers::java_peers_available() => Kafka::shared(),
            _ => APACHE.get_or_init(|| or_exit(Kafka::start_apache())),
        }
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Which broker this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SASL_SSL listener (SCRAM-SHA-512 over TLS), on Apache Kafka run locally.
    pub fn sasl_ssl(&self) -> Option<&SaslSsl> {
        self.sasl.as_ref()
    }

    /// Starts a fresh broker per the environment (see the module docs).
    pub fn start() -> Result<Kafka> {
        match Backend::from_env()? {
            Backend::Kafka => Self::start_apache(),
            Backend::Nisshi => Self::start_local(),
            Backend::Docker => Self::start_docker(),
        }
    }

    /// Starts a fresh Apache Kafka node from `target/peers/kafka`.
    pub fn start_apache() -> Result<Kafka> {
        let started = crate::apache_kafka::start()?;
        let k = Kafka {
            bootstrap: started.bootstrap,
            backend: Backend::Kafka,
            sasl: Some(started.sasl),
            _process: None,
            _service: Some(started.service),
            #[cfg(feature = "docker")]
            _container: None,
        };
        if let Err(e) = k.wait_ready() {
            let tail = k
                ._service
                .as_ref()
                .map(|s| s.log_tail(40))
                .unwrap_or_default();
            return Err(e.context(format!(
                "Apache Kafka did not come up; the end of its log:\n{tail}"
            )));
        }
        Ok(k)
    }

    #[cfg(feature = "docker")]
    fn start_docker() -> Result<Kafka> {
        use testcontainers::core::{IntoContainerPort, WaitFor};
        use testcontainers::runners::AsyncRunner;
        use testcontainers::{GenericImage, ImageExt};
        let rt = tokio::runtime::Runtime::new()?;
        let port = free_port()?;
        let container = rt.block_on(
            GenericImage::new("apache/kafka", "3.9.0")
                .with_wait_for(WaitFor::message_on_stdout("Kafka Server started"))
                .with_mapped_port(port, 9092.tcp())
                // Setting any KAFKA_* variable replaces the image's default config, so give all of KRaft's.
                .with_env_var("KAFKA_NODE_ID", "1")
                .with_env_var("KAFKA_PROCESS_ROLES", "broker,controller")
                .with_env_var("KAFKA_LISTENERS", "PLAINTEXT://:9092,CONTROLLER://:9093")
                .with_env_var(
                    "KAFKA_ADVERTISED_LISTENERS",
                    format!("PLAINTEXT://127.0.0.1:{port}"),
                )
                .with_env_var("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER")
                .with_env_var(
                    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
                    "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                )
                .with_env_var("KAFKA_CONTROLLER_QUORUM_VOTERS", "1@localhost:9093")
                .with_env_var("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1")
                .with_env_var("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
                .with_env_var("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
                .with_env_var("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
                .start(),
        )?;
        std::mem::forget(rt);
        let k = Kafka {
            bootstrap: format!("127.0.0.1:{port}"),
            backend: Backend::Docker,
            sasl: None,
            _process: None,
            _service: None,
            _container: Some(container),
        };
        k.wait_ready()?;
        Ok(k)
    }

    #[cfg(not(feature = "docker"))]
    fn start_docker() -> Result<Kafka> {
        bail!(
            "URSA_TEST_BACKEND=docker needs the `docker` feature: run `cargo xtask test` on a machine with a Docker engine"
        )
    }

    fn nisshi() -> Result<PathBuf> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Ok(p) = std::env::var("NISSHI") {
            candidates.push(p.into());
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/tools/bin/nisshi");
        candidates.push(root);
        if let Some(home) = std::env::var_os("CARGO_HOME").or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo").into_os_string())
        }) {
            candidates.push(PathBuf::from(home).join("bin/nisshi"));
        }
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(std::env::split_paths(&path).map(|d| d.join("nisshi")));
        }
        candidates
            .into_iter()
            .find(|p| p.is_file())
            .with_context(|| format!("the `nisshi` broker is not installed: run `cargo xtask test` (installs it) or `{INSTALL_NISSHI}`"))
    }

    fn start_local() -> Result<Kafka> {
        let bin = Self::nisshi()?;
        let port = free_port()?;
        let url = format!("tcp://127.0.0.1:{port}");
        // The shell ends the broker when our stdin closes, i.e. when this test process exits.
        let script = format!(
            "\"$0\" broker --listener-url {url} --advertised-listener-url {url} --storage-engine memory://nisshi/ --group-initial-rebalance-delay 0s >/dev/null 2>&1 & pid=$!; read _; kill $pid"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        // Held for the life of the broker: closing it stops the broker.
        let stdin = child.stdin.take().context("broker stdin")?;
        let k = Kafka {
            bootstrap: format!("127.0.0.1:{port}"),
            backend: Backend::Nisshi,
            sasl: None,
            _process: Some((child, stdin)),
            _service: None,
            #[cfg(feature = "docker")]
            _container: None,
        };
        k.wait_ready()?;
        Ok(k)
    }

    fn wait_ready(&self) -> Result<()> {
        let addr = self.bootstrap.clone();
        wait_until(
            &format!("a broker listening on {addr}"),
            Duration::from_secs(60),
            || TcpStream::connect(&addr).ok(),
        )?;
        let consumer: BaseConsumer = self.config().create()?;
        wait_until("broker metadata", Duration::from_secs(60), || {
            consumer.fetch_metadata(None, Duration::from_secs(2)).ok()
        })?;
        Ok(())
    }

    /// What a test shows when the broker stops answering: whether its process still runs, the end of its log
    /// (Apache Kafka) and the free space where brokers keep their data.
    pub fn diagnose(&self) -> String {
        let mut out = format!("{:?} broker at {}", self.backend, self.bootstrap);
        if let Some(service) = &self._service {
            let state = if service.is_running() {
                "running"
            } else {
                "exited"
            };
            out.push_str(&format!(
                " ({state}); the end of its log:\n{}",
                service.log_tail(30)
            ));
        }
        let tmp = std::env::temp_dir();
        let df = Command::new("df")
            .arg("-h")
            .arg(&tmp)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_else(|e| format!("df failed: {e}"));
        out.push_str(&format!("\nfree space of {}:\n{df}", tmp.display()));
        out
    }

    /// A client config with `bootstrap.servers` set.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        if let Some((mut child, mut stdin)) = self._process.take() {
            let _ = stdin.write_all(b"\n");
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A missing broker fails the test loudly with the fix.
fn or_exit(k: Result<Kafka>) -> Kafka {
    match k {
        Ok(k) => k,
        Err(e) => {
            // Straight to stderr: the test harness captures `eprintln!`, and exiting discards what it captured.
            let _ = writeln!(
                std::io::stderr(),
                "cannot start a Kafka broker for the tests: {e:#}"
            );
            std::process::exit(101)
        }
    }
}

/// A free TCP port on 127.0.0.1 for a listener a test configures, taken below the kernel's ephemeral range
/// (`net.ipv4.ip_local_port_range`): a port the OS hands out (`bind :0`) is from that range, so the local end
/// of any outgoing connection made before the listener binds (to the broker, PostgreSQL, another test's
/// server) could take it, and the bind would fail with "address in use". Chosen at random and checked free;
/// the ephemeral range is the fallback.
pub fn free_port() -> Result<u16> {
    use std::hash::{BuildHasher, Hasher};
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| {
            r.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_001));
    for attempt in 0..64u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        let port = from + u16::try_from(h.finish() % u64::from(to - from)).unwrap_or(0);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Creates a topic and waits until its metadata shows every partition.
pub async fn create_topic(kafka: &Kafka, name: &str, partitions: i32) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = kafka.config().create()?;
    let results = admin
        .create_topics(
            &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        if let Err((topic, code)) = r {
            bail!("creating topic {topic}: {code}");
        }
    }
    let consumer: BaseConsumer = kafka.config().create()?;
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        wait_until(
            &format!("metadata of topic {name}"),
            Duration::from_secs(30),
            || {
                let md = consumer
                    .fetch_metadata(Some(&name), Duration::from_secs(2))
                    .ok()?;
                let t = md.topics().first()?;
                (t.error().is_none() && t.partitions().len() == partitions as usize).then_some(())
            },
        )
    })
    .await??;
    Ok(())
}
