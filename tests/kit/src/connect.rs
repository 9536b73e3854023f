//! Apache Kafka Connect itself for tests: one distributed-mode worker (`ConnectDistributed`) run from the jars
//! in `target/peers/connect/lib`, with `connect-file` on its `plugin.path`, JsonConverter (schemas off) as the
//! worker's converters, its own group and internal topics, and its REST API on a free loopback port.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Result, bail};

use crate::peers::{classpath, java, peer};
use crate::service::Service;
use crate::{Kafka, free_port, unique_name, wait_until};

/// The plugin class every test of this worker uses.
pub const FILE_STREAM_SINK: &str = "org.apache.kafka.connect.file.FileStreamSinkConnector";

/// How long a JVM on a busy 2-core machine may take to scan its plugins and join its group.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running Kafka Connect worker (distributed mode, a group of one). Its JVM stops when the handle drops or
/// the test process exits.
pub struct KafkaConnect {
    url: String,
    group_id: String,
    topics: [String; 3],
    service: Service,
}

impl KafkaConnect {
    /// Starts a worker on `kafka` (Apache Kafka: Connect needs the real broker, e.g. [`Kafka::apache`]) and
    /// waits until `GET /` answers and `GET /connector-plugins` lists FileStreamSinkConnector.
    pub fn start(kafka: &Kafka) -> Result<KafkaConnect> {
        Self::start_with(kafka, &[])
    }

    /// [`KafkaConnect::start`] with extra worker properties (`key=value` lines appended after ours, so they
    /// win).
    pub fn start_with(kafka: &Kafka, extra: &[(&str, &str)]) -> Result<KafkaConnect> {
        let java = java()?;
        let cp = classpath("connect")?;
        let plugins = peer("connect")?.join("plugins");
        if !plugins.join("connect-file").is_dir() {
            bail!(
                "Kafka Connect's connect-file plugin is not fetched ({} is missing): run `{}`",
                plugins.join("connect-file").display(),
                crate::FETCH_PEERS
            );
        }
        let group_id = unique_name("ursa-connect");
        let topics = [
            format!("{group_id}-configs"),
            format!("{group_id}-offsets"),
            format!("{group_id}-status"),
        ];
        let port = free_port()?;
        let dir = std::env::temp_dir().join(&group_id);
        std::fs::create_dir_all(&dir)?;
        let converter = "org.apache.kafka.connect.json.JsonConverter";
        let mut lines: Vec<(&str, String)> = vec![
            ("bootstrap.servers", kafka.bootstrap().to_owned()),
            ("group.id", group_id.clone()),
            // The internal topics: unique per worker, one replica; Connect always creates the config topic
            // with a single partition (there is no `config.storage.partitions`).
            ("config.storage.topic", topics[0].clone()),
            ("offset.storage.topic", topics[1].clone()),
            ("status.storage.topic", topics[2].clone()),
            ("config.storage.replication.factor", "1".into()),
            ("offset.storage.replication.factor", "1".into()),
            ("status.storage.replication.factor", "1".into()),
            ("offset.storage.partitions", "1".into()),
            ("status.storage.partitions", "1".into()),
            ("key.converter", converter.into()),
            ("value.converter", converter.into()),
            ("key.converter.schemas.enable", "false".into()),
            ("value.converter.schemas.enable", "false".into()),
            ("plugin.path", plugins.display().to_string()),
            ("listeners", format!("http://127.0.0.1:{port}")),
            ("rest.advertised.host.name", "127.0.0.1".into()),
            ("rest.advertised.port", port.to_string()),
            // Sink offsets committed within a second (Connect's default is a minute), so tests see them.
            ("offset.flush.interval.ms", "1000".into()),
            // A group of one: no waiting for a departed worker to come back.
            ("scheduled.rebalance.max.delay.ms", "0".into()),
        ];
        lines.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let mut props = String::new();
        for (k, v) in &lines {
            let _ = writeln!(props, "{k}={v}");
        }
        let config = dir.join("worker.properties");
        std::fs::write(&config, props)?;
        let java_opts = std::env::var("URSA_TEST_CONNECT_JAVA_OPTS").unwrap_or_else(|_| {
            "-Xms128m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true -Dorg.slf4j.simpleLogger.showDateTime=true"
                .into()
        });
        let mut args: Vec<String> = java_opts.split_whitespace().map(str::to_owned).collect();
        args.extend([
            "-cp".into(),
            cp,
            "org.apache.kafka.connect.cli.ConnectDistributed".into(),
            config.display().to_string(),
        ]);
        let service = Service::spawn(
            "Kafka Connect",
            &java,
            &args,
            &[("KAFKA_HEAP_OPTS", OsStr::new(""))],
            &dir.join("connect.log"),
            Some(&dir),
        )?;
        let connect = KafkaConnect {
            url: format!("http://127.0.0.1:{port}"),
            group_id,
            topics,
            service,
        };
        if let Err(e) = connect.wait_ready() {
            let tail = connect.service.log_tail(40);
            return Err(e.context(format!(
                "Kafka Connect did not come up; the end of its log ({}):\n{tail}",
                connect.service.log_path().display()
            )));
        }
        Ok(connect)
    }

    fn wait_ready(&self) -> Result<()> {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let mut exited = false;
        let ready = wait_until("Kafka Connect's REST API", START_TIMEOUT, || {
            if !self.service.is_running() {
                exited = true;
                return Some(false);
            }
            let (status, body) = http_get(&addr, "/")?;
            if status != 200 || !body.contains("\"version\"") {
                return None;
            }
            let (status, plugins) = http_get(&addr, "/connector-plugins")?;
            (status == 200 && plugins.contains(FILE_STREAM_SINK)).then_some(true)
        })?;
        if !ready || exited {
            bail!("the Kafka Connect JVM exited");
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT` of the REST API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The worker group's `group.id` (unique per worker).
    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    /// The config, offset and status topics.
    pub fn internal_topics(&self) -> &[String; 3] {
        &self.topics
    }

    /// The JVM (its pid for CPU accounting, its log for failure messages).
    pub fn service(&self) -> &Service {
        &self.service
    }
}

/// `GET path` over HTTP/1.0: the status and the body, or None if the server does not answer.
fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((status, body))
}

impl std::fmt::Debug for KafkaConnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaConnect")
            .field("url", &self.url)
            .field("group_id", &self.group_id)
            .field("pid", &self.service.pid())
            .finish()
    }
}
