//! Helpers shared by the publisher's integration tests: the dev registry in-process, topics with configs, a
//! publisher configured for a test, and reading a topic back from the beginning.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod restartable_kafka;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use ursa_publish::{PublisherConfig, SchemaIdPolicy};
use ursa_registry::{RunningServer, Server, ServerConfig};

/// The dev registry, in memory, on a free port (it answers as soon as this returns).
pub async fn registry() -> RunningServer {
    Server::bind(ServerConfig::ephemeral())
        .await
        .expect("binding the dev registry")
        .spawn()
}

/// A publisher config for a test: its own topic prefix, schemas registered on first use, short deadlines.
pub fn publisher_config(bootstrap: &str, registry: &str, prefix: &str) -> PublisherConfig {
    let mut c = PublisherConfig::new(bootstrap, registry, "publish-test");
    c.topic_prefix = prefix.to_owned();
    c.schema_ids = SchemaIdPolicy::AutoRegister;
    c.delivery_timeout = Some(Duration::from_secs(30));
    c.registry_timeout = Duration::from_secs(10);
    c.registry.timeout = Duration::from_secs(5);
    c
}

/// Creates `name` with `partitions` and topic `configs`, and waits until its metadata shows every partition.
pub async fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<()> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    let admin: AdminClient<DefaultClientContext> = c.create()?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let results = admin
        .create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await?;
    for r in results {
        if let Err((topic, code)) = r {
            bail!("creating topic {topic}: {code}");
        }
    }
    let consumer: BaseConsumer = c.create()?;
    let name = name.to_owned();
    tokio::task::spawn_blocking(move || {
        ursa_testkit::wait_until(
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

/// A record read back.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Record {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
}

/// Reads `topic` from the beginning until `count` records came (then a little longer, to see extra ones when
/// `exact`), at most `timeout`. Records are in offset order per partition.
pub async fn read_topic(
    bootstrap: &str,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Record>> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &bootstrap)
            .set("group.id", ursa_testkit::unique_name("reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer = c.create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let partitions = md
            .topics()
            .first()
            .map(|t| t.partitions().len())
            .context("no metadata for the topic")?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(&topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < count && Instant::now() < deadline {
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => out.push(Record {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    value: m.payload().map(<[u8]>::to_vec).unwrap_or_default(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| {
                                    (
                                        h.key.to_owned(),
                                        String::from_utf8_lossy(h.value.unwrap_or_default())
                                            .into_owned(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }),
                Some(Err(e)) => bail!("reading {topic}: {e}"),
                None => {}
            }
        }
        if out.len() < count {
            bail!(
                "read {} of {count} records from {topic} in {timeout:?}",
                out.len()
            );
        }
        Ok(out)
    })
    .await?
}

/// The end offsets (high watermarks) of every partition of `topic`, summed: how many records it holds.
pub async fn topic_size(bootstrap: &str, topic: &str) -> Result<i64> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &bootstrap);
        let consumer: BaseConsumer = c.create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        let partitions = md.topics().first().map_or(0, |t| t.partitions().len());
        let mut total = 0;
        for p in 0..partitions as i32 {
            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
            total += high - low;
        }
        anyhow::Ok(total)
    })
    .await?
}

/// Whether the broker knows `topic` (asked without allowing auto-creation).
pub async fn topic_exists(bootstrap: &str, topic: &str) -> Result<bool> {
    let bootstrap = bootstrap.to_owned();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &bootstrap)
            .set("allow.auto.create.topics", "false");
        let consumer: BaseConsumer = c.create()?;
        let md = consumer.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
        anyhow::Ok(md.topics().first().is_some_and(|t| t.error().is_none()))
    })
    .await?
}

/// Polls `check` until it returns `Some` or `timeout` passes (pauses growing from 5 ms to 200 ms): the async
/// counterpart of `ursa_testkit::wait_until`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Python, as `cargo xtask test` installs its packages.
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}
