//! Apache Kafka itself for tests: a single KRaft node (combined broker + controller) started from the jars in
//! `target/peers/kafka/lib`, on free loopback ports, with a PLAINTEXT listener and a SASL_SSL one
//! (SCRAM-SHA-512 over TLS, with a CA generated for the run).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::peers::{classpath, java};
use crate::process::{CommandExt as _, SETUP_TIMEOUT};
use crate::service::Service;
use crate::{free_port, unique_name};

/// The SCRAM user the SASL_SSL listener knows.
pub const SCRAM_USER: &str = "ursa-test";

/// How to reach the broker's SASL_SSL listener.
#[derive(Debug, Clone)]
pub struct SaslSsl {
    /// `127.0.0.1:port` of the SASL_SSL listener.
    pub bootstrap: String,
    /// The PEM file of the CA that signed the broker's certificate (`ssl.ca.location`).
    pub ca_file: PathBuf,
    /// The SCRAM-SHA-512 user name.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl SaslSsl {
    /// librdkafka settings that connect through this listener, with `password`.
    pub fn client_settings(&self, password: &str) -> Vec<(&'static str, String)> {
        vec![
            ("bootstrap.servers", self.bootstrap.clone()),
            ("security.protocol", "SASL_SSL".into()),
            ("sasl.mechanism", "SCRAM-SHA-512".into()),
            ("sasl.username", self.username.clone()),
            ("sasl.password", password.to_owned()),
            ("ssl.ca.location", self.ca_file.display().to_string()),
        ]
    }
}

/// A running Apache Kafka process and what it listens on.
pub(crate) struct ApacheKafka {
    pub(crate) bootstrap: String,
    pub(crate) sasl: SaslSsl,
    pub(crate) service: Service,
}

/// A random id of 16 bytes in Kafka's URL-safe base64 (a cluster id), or a password.
fn random_token() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = Vec::with_capacity(16);
    for i in 0..2u64 {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(i);
        h.write_u32(std::process::id());
        bytes.extend_from_slice(&h.finish().to_le_bytes());
    }
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

fn run(what: &str, command: &mut Command) -> Result<()> {
    let out = command
        .output_within(SETUP_TIMEOUT)
        .with_context(|| format!("{what}: cannot run {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A CA and a server certificate for `localhost`/`127.0.0.1`, signed by it, as PEM files in `dir`:
/// `ca.pem`, and `server.pem` (PKCS#8 key followed by the certificate, Kafka's PEM keystore).
fn make_tls(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let ca = crate::certs::make_ca(dir, "ca", "DNS:localhost,IP:127.0.0.1")?;
    let key = std::fs::read_to_string(dir.join("ca-server.key"))?;
    let crt = std::fs::read_to_string(dir.join("ca-server.crt"))?;
    let bundle = dir.join("server.pem");
    std::fs::write(&bundle, format!("{key}{crt}"))?;
    Ok((ca, bundle))
}

/// Formats a KRaft storage directory and starts the node; returns once it listens (the caller waits for
/// metadata).
pub(crate) fn start() -> Result<ApacheKafka> {
    let java = java()?;
    let cp = classpath("kafka")?;
    let dir = std::env::temp_dir().join(unique_name("ursa-kafka"));
    std::fs::create_dir_all(dir.join("data"))?;
    let (ca_file, keystore) = make_tls(&dir)?;
    let (plain, controller, sasl) = (free_port()?, free_port()?, free_port()?);
    let password = random_token();
    let mut props = String::new();
    let lines: &[(&str, String)] = &[
        ("process.roles", "broker,controller".into()),
        ("node.id", "1".into()),
        (
            "controller.quorum.voters",
            format!("1@127.0.0.1:{controller}"),
        ),
        (
            "listeners",
            format!(
                "PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller},SASL_SSL://127.0.0.1:{sasl}"
            ),
        ),
        (
            "advertised.listeners",
            format!("PLAINTEXT://127.0.0.1:{plain},SASL_SSL://127.0.0.1:{sasl}"),
        ),
        ("controller.listener.names", "CONTROLLER".into()),
        ("inter.broker.listener.name", "PLAINTEXT".into()),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL".into(),
        ),
        ("log.dirs", dir.join("data").display().to_string()),
        ("num.partitions", "1".into()),
        ("offsets.topic.replication.factor", "1".into()),
        ("offsets.topic.num.partitions", "1".into()),
        ("transaction.state.log.replication.factor", "1".into()),
        ("transaction.state.log.min.isr", "1".into()),
        ("transaction.state.log.num.partitions", "1".into()),
        (
            "share.coordinator.state.topic.replication.factor",
            "1".into(),
        ),
        ("share.coordinator.state.topic.min.isr", "1".into()),
        ("share.coordinator.state.topic.num.partitions", "1".into()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        // Both rebalance protocols: classic and KIP-848's `group.protocol=consumer`.
        (
            "group.coordinator.rebalance.protocols",
            "classic,consumer".into(),
        ),
        // Short bounds so that tests of crashed members finish quickly.
        ("group.consumer.session.timeout.ms", "6000".into()),
        ("group.consumer.min.session.timeout.ms", "1000".into()),
        ("group.consumer.heartbeat.interval.ms", "1000".into()),
        ("group.consumer.min.heartbeat.interval.ms", "500".into()),
        ("group.min.session.timeout.ms", "1000".into()),
        ("sasl.enabled.mechanisms", "SCRAM-SHA-512".into()),
        (
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required;".into(),
        ),
        ("listener.name.sasl_ssl.ssl.keystore.type", "PEM".into()),
        (
            "listener.name.sasl_ssl.ssl.keystore.location",
            keystore.display().to_string(),
        ),
        ("log.flush.interval.messages", "9223372036854775807".into()),
    ];
    for (k, v) in lines {
        let _ = writeln!(props, "{k}={v}");
    }
    let config = dir.join("server.properties");
    std::fs::write(&config, props)?;
    let mut format = Command::new(&java);
    format
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-cp",
            &cp,
            "kafka.tools.StorageTool",
        ])
        // `--cluster-id=ID`: an id may start with `-`, which argparse would take for an option.
        .arg("format")
        .arg(format!("--cluster-id={}", random_token()))
        .arg("--config")
        .arg(&config)
        .arg("--add-scram")
        .arg(format!(
            "SCRAM-SHA-512=[name={SCRAM_USER},password={password}]"
        ))
        .arg("--ignore-formatted");
    run(
        "formatting the KRaft storage (kafka-storage format)",
        &mut format,
    )?;
    let log = dir.join("broker.log");
    let java_opts = std::env::var("URSA_TEST_KAFKA_JAVA_OPTS").unwrap_or_else(|_| {
        "-Xms128m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.showDateTime=true"
            .into()
    });
    let mut args: Vec<String> = java_opts.split_whitespace().map(str::to_owned).collect();
    args.extend([
        "-cp".into(),
        cp,
        "kafka.Kafka".into(),
        config.display().to_string(),
    ]);
    let service = Service::spawn(
        "Apache Kafka",
        &java,
        &args,
        &[("KAFKA_HEAP_OPTS", OsStr::new(""))],
        &log,
        Some(&dir),
    )?;
    Ok(ApacheKafka {
        bootstrap: format!("127.0.0.1:{plain}"),
        sasl: SaslSsl {
            bootstrap: format!("127.0.0.1:{sasl}"),
            ca_file,
            username: SCRAM_USER.into(),
            password,
        },
        service,
    })
}
