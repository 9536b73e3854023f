//! An Apache Kafka node that a test can stop (SIGKILL) and start again on the same ports with the same data:
//! "the broker is down, then back". A single KRaft node (broker + controller), PLAINTEXT only, from the jars
//! in `target/peers/kafka` (`cargo xtask test` fetches them).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use ursa_testkit::{Service, classpath, free_port, java, unique_name, wait_until};

/// A Kafka node with a fixed address across restarts.
pub struct RestartableKafka {
    dir: PathBuf,
    config: PathBuf,
    port: u16,
    java: PathBuf,
    classpath: String,
    service: Option<Service>,
}

impl RestartableKafka {
    /// Formats a fresh storage directory and starts the node; returns once it answers metadata requests.
    pub fn start() -> Result<RestartableKafka> {
        let java = java()?;
        let classpath = classpath("kafka")?;
        let dir = std::env::temp_dir().join(unique_name("ursa-restartable-kafka"));
        std::fs::create_dir_all(dir.join("data"))?;
        let (port, controller) = (free_port()?, free_port()?);
        let mut props = String::new();
        for (k, v) in [
            ("process.roles", "broker,controller".to_owned()),
            ("node.id", "1".into()),
            (
                "controller.quorum.voters",
                format!("1@127.0.0.1:{controller}"),
            ),
            (
                "listeners",
                format!("PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"),
            ),
            (
                "advertised.listeners",
                format!("PLAINTEXT://127.0.0.1:{port}"),
            ),
            ("controller.listener.names", "CONTROLLER".into()),
            ("inter.broker.listener.name", "PLAINTEXT".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            ("log.dirs", dir.join("data").display().to_string()),
            ("num.partitions", "1".into()),
            ("auto.create.topics.enable", "false".into()),
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
            ("group.initial.rebalance.delay.ms", "0".into()),
        ] {
            let _ = writeln!(props, "{k}={v}");
        }
        let config = dir.join("server.properties");
        std::fs::write(&config, props)?;
        let out = Command::new(&java)
            .args([
                "-Xmx256m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-cp",
                &classpath,
            ])
            .arg("kafka.tools.StorageTool")
            .arg("format")
            // Any 16 bytes in URL-safe base64; the node is alone in its cluster.
            .arg("--cluster-id=MkU3OEVBNTcwNTJENDM2Qk")
            .arg("--config")
            .arg(&config)
            .arg("--ignore-formatted")
            .output()
            .context("running kafka-storage format")?;
        if !out.status.success() {
            bail!(
                "kafka-storage format failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut k = RestartableKafka {
            dir,
            config,
            port,
            java,
            classpath,
            service: None,
        };
        k.resume()?;
        Ok(k)
    }

    /// `127.0.0.1:port`, the same across restarts.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the node (SIGKILL to its process group) and waits until its port is closed.
    pub fn stop(&mut self) -> Result<()> {
        self.service = None;
        let addr = self.bootstrap();
        wait_until(
            &format!("the broker on {addr} to go away"),
            Duration::from_secs(30),
            || TcpStream::connect(&addr).is_err().then_some(()),
        )?;
        Ok(())
    }

    /// Starts the node again on the same data; returns once it answers metadata requests.
    pub fn resume(&mut self) -> Result<()> {
        let log = self.dir.join("broker.log");
        let args: Vec<String> = [
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-Djava.awt.headless=true",
            "-cp",
            &self.classpath,
            "kafka.Kafka",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([self.config.display().to_string()])
        .collect();
        let service = Service::spawn(
            "Apache Kafka (restartable)",
            &self.java,
            &args,
            &[("KAFKA_HEAP_OPTS", OsStr::new(""))],
            &log,
            None,
        )?;
        let addr = self.bootstrap();
        let ready = wait_until(
            &format!("a broker listening on {addr}"),
            Duration::from_secs(90),
            || TcpStream::connect(&addr).ok(),
        )
        .and_then(|_| {
            let mut c = ClientConfig::new();
            c.set("bootstrap.servers", &addr);
            let consumer: BaseConsumer = c.create()?;
            wait_until("broker metadata", Duration::from_secs(60), || {
                let md = consumer.fetch_metadata(None, Duration::from_secs(2)).ok()?;
                (!md.brokers().is_empty()).then_some(())
            })
        });
        if let Err(e) = ready {
            let tail = service.log_tail(40);
            return Err(e.context(format!("the restartable broker did not come up:\n{tail}")));
        }
        self.service = Some(service);
        Ok(())
    }
}

impl Drop for RestartableKafka {
    fn drop(&mut self) {
        self.service = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
