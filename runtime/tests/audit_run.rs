//! The `audit-postgres` sink end to end with `ursa run` on the real broker and a real PostgreSQL: Avro events
//! with PII (registered in the dev registry) stream into the audit table while workers are `kill -9`ed, join
//! and leave (rebalances), and the sink's connections are cut; the table holds every record exactly once, and
//! `ursa audit verify` (with the published checkpoints) and `ursa audit show` agree. PostgreSQL itself is also
//! stopped and restarted under a running sink.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use ursa_testkit::CommandExt;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use ursa_avro::binary::encode;
use ursa_connector_audit::checkpoint::Signer;
use ursa_connector_audit::connect::{Client, Database, SslMode};
use ursa_connector_audit::crypto::MasterKey;
use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig};
use ursa_testkit::{Kafka, Postgres, TestDatabase, WorkerProcess, create_topic, unique_name};

const PARTITIONS: i32 = 3;

const SCHEMA: &str = r#"{"type":"record","name":"AccessEvent","namespace":"com.teddy.test","fields":[
  {"name":"child","type":{"type":"record","name":"ChildRef","fields":[{"name":"child_id","type":"string"}]}},
  {"name":"n","type":"long"},
  {"name":"action","type":"string"},
  {"name":"ip","type":["null","string"],"default":null,"pii":true}]}"#;

/// Polls `f` until it gives a value (every 100 ms) or `timeout` passes: waiting on a condition, not a fixed sleep.
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    name: String,
    db: TestDatabase,
    topic: String,
    worker: PathBuf,
    connector: PathBuf,
    checkpoints: PathBuf,
    secrets: PathBuf,
    vkey: String,
    schema_id: u32,
    _registry: ursa_registry::RunningServer,
}

async fn setup(prefix: &str) -> Setup {
    setup_on(prefix, Postgres::shared()).await
}

/// As [`setup`], with the audit database on `pg`.
async fn setup_on(prefix: &str, pg: &Postgres) -> Setup {
    let kafka = Kafka::shared();
    let registry = Server::bind(ServerConfig::ephemeral())
        .await
        .unwrap()
        .spawn();
    let topic = unique_name(prefix);
    create_topic(kafka, &topic, PARTITIONS).await.unwrap();
    let schema_id = RegistryClient::new(ClientConfig::new(registry.url()))
        .unwrap()
        .register(&format!("{topic}-value"), SCHEMA, &[])
        .await
        .unwrap();
    let db = pg.database().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (skey, vkey) = Signer::generate("audit.test/run").unwrap();
    let master = MasterKey::generate().unwrap();
    // The secrets reach the worker as ${file:…} references, never in its config.
    let secrets = dir.path().join("secrets.properties");
    std::fs::write(
        &secrets,
        format!(
            "url={}?sslmode=disable\nsigning={skey}\nmaster={master}\n",
            db.url()
        ),
    )
    .unwrap();
    let worker = dir.path().join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"20s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
            kafka.bootstrap()
        ),
    )
    .unwrap();
    let checkpoints = dir.path().join("checkpoints.jsonl");
    let connector = dir.path().join("audit.toml");
    let name = unique_name("audit");
    let s = secrets.display();
    std::fs::write(
        &connector,
        format!(
            "name = \"{}\"\n\"connector.class\" = \"audit-postgres\"\ntopics = \"{topic}\"\n\
             \"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\
             \"value.converter.schema.registry.url\" = \"{}\"\n\"offset.flush.interval.ms\" = \"1000\"\n\
             \"consumer.override.session.timeout.ms\" = \"6000\"\n\"consumer.override.heartbeat.interval.ms\" = \"500\"\n\
             \"audit.db.url\" = \"${{file:{s}:url}}\"\n\"audit.checkpoint.signing.key\" = \"${{file:{s}:signing}}\"\n\
             \"audit.pii.master.key\" = \"${{file:{s}:master}}\"\n\"audit.pii.subject.field\" = \"child.child_id\"\n\
             \"audit.checkpoint.batches\" = \"20\"\n\"audit.checkpoint.interval\" = \"2s\"\n\
             \"audit.checkpoint.file\" = \"{}\"\n",
            name,
            registry.url(),
            checkpoints.display()
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        name,
        db,
        topic,
        worker,
        connector,
        checkpoints,
        secrets,
        vkey,
        schema_id,
        _registry: registry,
    }
}

impl Setup {
    /// The connector's name.
    fn name(&self) -> &str {
        &self.name
    }

    fn start(&self) -> WorkerProcess {
        WorkerProcess::start(
            env!("CARGO_BIN_EXE_ursa"),
            &[
                self.worker.to_str().unwrap(),
                self.connector.to_str().unwrap(),
            ],
        )
        .unwrap()
    }

    async fn client(&self) -> Client {
        Database::parse(self.db.url(), Some(SslMode::Disable), None)
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn table(&self) -> String {
        format!("\"audit_{}\"", self.topic.replace(['.', '-'], "_"))
    }

    async fn rows(&self, client: &Client) -> i64 {
        client
            .query_one(&format!("SELECT count(*) FROM {}", self.table()), &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0)
    }

    /// Produces `total` events (child `child-{i % 50}`, `n = i`) at about `per_second` from a thread.
    fn produce(&self, total: usize, per_second: usize, sent: Arc<AtomicUsize>) -> JoinHandle<()> {
        let producer: ThreadedProducer<DefaultProducerContext> = Kafka::shared()
            .config()
            .set("linger.ms", "5")
            .set("acks", "all")
            .create()
            .unwrap();
        let topic = self.topic.clone();
        let id = self.schema_id;
        std::thread::spawn(move || {
            for i in 0..total {
                let child = format!("child-{}", i % 50);
                let mut value = vec![0];
                value.extend_from_slice(&id.to_be_bytes());
                encode::string(&mut value, &child);
                encode::long(&mut value, i as i64);
                encode::string(&mut value, "transcript.read");
                encode::union_index(&mut value, 1);
                encode::string(&mut value, &format!("198.51.100.{}", i % 250));
                let mut record = BaseRecord::to(&topic).key(&child).payload(&value);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((e, r)) => {
                            assert_eq!(
                                e.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                                "{e}"
                            );
                            record = r;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
                if (i + 1) % (per_second / 100).max(1) == 0 {
                    // Pacing, not synchronisation: the stream keeps flowing while workers come and go.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            producer.flush(Duration::from_secs(60)).unwrap();
        })
    }

    /// Exactly once: every offset of every partition once, every `n` once, no gap recorded.
    async fn assert_exactly_once(&self, client: &Client, total: usize) {
        let c: BaseConsumer = Kafka::shared().config().create().unwrap();
        let mut sum = 0;
        for p in 0..PARTITIONS {
            let end = c
                .fetch_watermarks(&self.topic, p, Duration::from_secs(10))
                .unwrap()
                .1;
            sum += end;
            let row = client
                .query_one(
                    &format!(
                        "SELECT count(*), coalesce(min(kafka_offset), 0), coalesce(max(kafka_offset), -1) FROM {} \
                         WHERE kafka_partition = $1",
                        self.table()
                    ),
                    &[&p],
                )
                .await
                .unwrap();
            let (n, lo, hi): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
            assert_eq!(
                (n, lo, hi),
                (end, 0, end - 1),
                "partition {p}: every offset once"
            );
        }
        assert_eq!(sum, total as i64);
        let distinct: i64 = client
            .query_one(
                &format!("SELECT count(DISTINCT n) FROM {}", self.table()),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(distinct, total as i64, "every event once");
        let gaps: i64 = client
            .query_one("SELECT count(*) FROM ursa_audit_gaps", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(gaps, 0);
    }

    fn ursa(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_ursa"))
            .arg("audit")
            .args(args)
            .output_within(ursa_testkit::PEER_TIMEOUT)
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// Waits (up to `timeout`) until the table holds `total` rows, checks each is there exactly once, stops the
    /// worker cleanly and verifies the store.
    async fn finish(
        &self,
        client: &Client,
        w: &mut WorkerProcess,
        total: usize,
        timeout: Duration,
    ) {
        until("every record in the table", timeout, || async {
            (self.rows(client).await >= total as i64).then_some(())
        })
        .await;
        self.assert_exactly_once(client, total).await;
        assert!(w.terminate().unwrap(), "a clean stop");
        self.assert_verifies(total / 50);
    }

    /// `ursa audit verify` with the published checkpoints, and `ursa audit show` of one subject.
    fn assert_verifies(&self, per_child: usize) {
        let url = format!("${{file:{}:url}}", self.secrets.display());
        let (ok, out) = self.ursa(&[
            "verify",
            "--url",
            &url,
            "--vkey",
            &self.vkey,
            "--checkpoints",
            self.checkpoints.to_str().unwrap(),
        ]);
        assert!(ok, "{out}");
        assert!(out.contains("verified: no break"), "{out}");
        assert!(
            !out.contains(" 0 external"),
            "the published checkpoints were checked: {out}"
        );
        let master = format!("${{file:{}:master}}", self.secrets.display());
        let (ok, out) = self.ursa(&[
            "show",
            "--url",
            &url,
            "--subject",
            "child-7",
            "--master-key",
            &master,
        ]);
        assert!(ok, "{out}");
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), per_child);
        assert!(lines.iter().all(|l| {
            l["value"]["ip"]
                .as_str()
                .unwrap()
                .starts_with("198.51.100.")
        }));
    }
}

impl Setup {
    /// A superuser edits a row behind the trigger's back: `ursa audit verify` exits 1 and names the place.
    async fn assert_tamper_caught(&self, client: &Client) {
        client
            .batch_execute(&format!(
                "ALTER TABLE {t} DISABLE TRIGGER ALL; UPDATE {t} SET action = 'nothing to see' \
                 WHERE kafka_partition = 1 AND kafka_offset = 42; ALTER TABLE {t} ENABLE TRIGGER ALL",
                t = self.table()
            ))
            .await
            .unwrap();
        let url = format!("${{file:{}:url}}", self.secrets.display());
        let out = Command::new(env!("CARGO_BIN_EXE_ursa"))
            .args(["audit", "verify", "--url", &url, "--vkey", &self.vkey])
            .arg("--checkpoints")
            .arg(&self.checkpoints)
            .output_within(ursa_testkit::PEER_TIMEOUT)
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!(
                "BREAK: table audit_{} partition 1 offset 42: column \"action\"",
                self.topic.replace(['.', '-'], "_")
            )),
            "{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_ten_times_during_a_100k_stream_writes_each_record_exactly_once() {
    const TOTAL: usize = 100_000;
    const KILLS: usize = 10;
    let s = setup("audit-kill").await;
    let client = s.client().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = s.produce(TOTAL, 1500, Arc::clone(&sent));
    let mut last = 0;
    for kill in 0..KILLS {
        let w = s.start();
        // Each worker gets some rows in (and is killed mid-batch, mid-transaction, wherever it is).
        let target = last + 1000;
        last = until(
            &format!("rows past {target} (kill {kill})"),
            Duration::from_secs(120),
            || async {
                let n = s.rows(&client).await;
                (n >= target).then_some(n)
            },
        )
        .await;
        w.kill9().unwrap();
        eprintln!(
            "kill {kill}: {last} rows, {} produced",
            sent.load(Ordering::Relaxed)
        );
    }
    let mut w = s.start();
    producer.join().unwrap();
    s.finish(&client, &mut w, TOTAL, Duration::from_secs(600))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_rebalancing_and_cut_connections_lose_and_duplicate_nothing() {
    const TOTAL: usize = 30_000;
    let s = setup("audit-rebalance").await;
    let client = s.client().await;
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = s.produce(TOTAL, 1000, Arc::clone(&sent));
    let mut a = s.start();
    let mut b = Some(s.start());
    let mut last = 0;
    for round in 0..6 {
        let target = last + 500;
        last = until(
            &format!("rows past {target} (round {round})"),
            Duration::from_secs(120),
            || async {
                let n = s.rows(&client).await;
                (n >= target).then_some(n)
            },
        )
        .await;
        match round % 3 {
            // The second worker leaves cleanly (a rebalance), or comes back (another).
            0 => match b.take() {
                Some(mut w) => assert!(w.terminate().unwrap()),
                None => b = Some(s.start()),
            },
            // The first is killed and replaced: its partitions move after its session times out.
            1 => {
                a.kill9().unwrap();
                a = s.start();
            }
            // PostgreSQL cuts every connection of the sinks: they retry and go on.
            _ => {
                let cut: i64 = client
                    .query_one(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = 'ursa-audit' AND datname = current_database() AND pid <> pg_backend_pid()",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                eprintln!("round {round}: cut {cut} connections");
            }
        }
        eprintln!(
            "round {round}: {last} rows, {} produced",
            sent.load(Ordering::Relaxed)
        );
        if b.is_none() && round % 3 == 2 {
            b = Some(s.start());
        }
    }
    producer.join().unwrap();
    until(
        "every record in the table",
        Duration::from_secs(300),
        || async { (s.rows(&client).await >= TOTAL as i64).then_some(()) },
    )
    .await;
    s.assert_exactly_once(&client, TOTAL).await;
    assert!(a.terminate().unwrap());
    if let Some(mut w) = b {
        assert!(w.terminate().unwrap());
    }
    s.assert_verifies(TOTAL / 50);
    s.assert_tamper_caught(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgresql_restarted_mid_stream_the_sink_retries_and_loses_nothing() {
    const TOTAL: usize = 20_000;
    // A cluster of this test's own: it is stopped and started under the sink.
    let mut pg = Postgres::start().unwrap();
    let s = setup_on("audit-pg-restart", &pg).await;
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = s.produce(TOTAL, 1000, Arc::clone(&sent));
    let mut w = s.start();
    for restart in 0..2 {
        let client = s.client().await;
        let before = s.rows(&client).await;
        let target = before + 1000;
        until(
            &format!("rows past {target} (restart {restart})"),
            Duration::from_secs(120),
            || async { (s.rows(&client).await >= target).then_some(()) },
        )
        .await;
        drop(client);
        let retried = w.counter("ursa_records_retried_total").unwrap_or(0);
        pg.stop_server().unwrap();
        // The server stays down until the sink has met the outage (its puts fail and are retried) ...
        until(
            &format!("the sink retrying while PostgreSQL is down (restart {restart})"),
            Duration::from_secs(60),
            || async {
                (w.counter("ursa_records_retried_total").unwrap_or(0) > retried).then_some(())
            },
        )
        .await;
        // ... which does not fail the connector: it waits for the database.
        let (_, status) = w.get(&format!("/connectors/{}/status", s.name())).unwrap();
        assert!(!status.contains("FAILED"), "{status}");
        pg.start_server().unwrap();
        eprintln!(
            "restart {restart}: PostgreSQL back, {} produced",
            sent.load(Ordering::Relaxed)
        );
    }
    producer.join().unwrap();
    let client = s.client().await;
    s.finish(&client, &mut w, TOTAL, Duration::from_secs(300))
        .await;
}
