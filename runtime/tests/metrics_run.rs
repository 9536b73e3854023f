//! The `metrics` sink end to end with `ursa run` on the real broker: Avro events (registered in the dev
//! registry) counted by enum symbol, nested field and union branch while the worker is `kill -9`ed five
//! times mid-stream; with the series checkpointed in a compacted topic, the totals that a real Prometheus
//! scraped from the sink's listener equal the records produced, per label, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use serde_json::Value;
use ursa_avro::binary::encode;
use ursa_registry::{ClientConfig, RegistryClient, Server, ServerConfig};
use ursa_testkit::{
    Kafka, Service, WorkerProcess, create_topic, free_port, unique_name, wait_until,
};

const PARTITIONS: i32 = 3;
const ACTIONS: [&str; 3] = ["READ", "WRITE", "DELETE"];

const SCHEMA: &str = r#"{"type":"record","name":"UsageEvent","namespace":"com.teddy.test","fields":[
  {"name":"action","type":{"type":"enum","name":"Action","symbols":["READ","WRITE","DELETE"]}},
  {"name":"device","type":{"type":"record","name":"Device","fields":[{"name":"model","type":"string"}]}},
  {"name":"score","type":["null","double"],"default":null}]}"#;

const DEFS: &str = r#"
[[metric]]
name = "usage_events"
help = "Usage events by action, device model and whether a score was given"
type = "counter"
labels = { action = "action", model = { path = "device.model", normalise = ["lower"] }, score = { path = "score", branch = true } }
label_order = ["action", "model", "score"]
"#;

fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no body")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status")?;
    Ok((status, body.to_owned()))
}

/// The sum of `usage_events_total` in the sink's exposition, if it answers.
fn exposed_total(port: u16) -> Option<f64> {
    let (status, body) = http_get(port, "/metrics").ok()?;
    (status == 200).then(|| {
        body.lines()
            .filter(|l| l.starts_with("usage_events_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    })
}

fn encode_q(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn query(port: u16, q: &str) -> Result<Vec<(Value, f64)>> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={}", encode_q(q)))?;
    if status != 200 {
        bail!("{q}: HTTP {status}: {body}");
    }
    let v: Value = serde_json::from_str(&body)?;
    Ok(v["data"]["result"]
        .as_array()
        .context("no result")?
        .iter()
        .map(|r| {
            let n = r["value"][1].as_str().and_then(|s| s.parse().ok());
            (r["metric"].clone(), n.unwrap_or(f64::NAN))
        })
        .collect())
}

fn prometheus(dir: &std::path::Path, targets: &[u16]) -> (Service, u16) {
    let targets: Vec<String> = targets.iter().map(|t| format!("'127.0.0.1:{t}'")).collect();
    let targets = targets.join(", ");
    let program = Command::new("sh")
        .args(["-c", "command -v prometheus"])
        .output()
        .unwrap();
    assert!(
        program.status.success(),
        "prometheus is not installed: run `cargo xtask test` (or `apt-get install -y prometheus`)"
    );
    let program = String::from_utf8(program.stdout).unwrap().trim().to_owned();
    let port = free_port().unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 250ms\n  scrape_timeout: 250ms\nscrape_configs:\n  - job_name: ursa\n    static_configs:\n      - targets: [{targets}]\n"
        ),
    )
    .unwrap();
    let data = dir.join("prometheus-data");
    let service = Service::spawn(
        "prometheus",
        program,
        [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", data.display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
            "--log.level=warn".into(),
        ],
        &[],
        &dir.join("prometheus.log"),
        Some(&data),
    )
    .unwrap();
    wait_until("prometheus ready", Duration::from_secs(60), || {
        http_get(port, "/-/ready").ok().filter(|(s, _)| *s == 200)
    })
    .unwrap();
    (service, port)
}

fn produce(
    topic: &str,
    id: u32,
    total: usize,
    sent: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = Kafka::shared()
        .config()
        .set("linger.ms", "5")
        .set("acks", "all")
        .create()
        .unwrap();
    let topic = topic.to_owned();
    std::thread::spawn(move || {
        for i in 0..total {
            let mut value = vec![0];
            value.extend_from_slice(&id.to_be_bytes());
            encode::enum_index(&mut value, i % 3);
            encode::string(&mut value, ["TB-1", "tb-2"][i % 2]);
            if i % 5 == 0 {
                encode::union_index(&mut value, 0);
            } else {
                encode::union_index(&mut value, 1);
                encode::double(&mut value, 0.5);
            }
            let key = format!("k{}", i % 17);
            let mut record = BaseRecord::to(&topic).key(&key).payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            sent.fetch_add(1, Ordering::Relaxed);
            if (i + 1) % 8 == 0 {
                // Pacing, not synchronisation: the stream keeps flowing while the worker is killed.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();
    })
}

/// Expected `usage_events_total` per (action, model, score branch) for records 0..total.
fn expected(total: usize) -> std::collections::BTreeMap<(String, String, String), f64> {
    let mut out = std::collections::BTreeMap::new();
    for i in 0..total {
        let key = (
            ACTIONS[i % 3].to_owned(),
            ["tb-1", "tb-2"][i % 2].to_owned(),
            if i % 5 == 0 { "null" } else { "double" }.to_owned(),
        );
        *out.entry(key).or_insert(0.0) += 1.0;
    }
    out
}

struct Setup {
    dir: tempfile::TempDir,
    topic: String,
    schema_id: u32,
    worker: std::path::PathBuf,
    /// One connector config per listener: the same connector (so one consumer group), its own port.
    connectors: Vec<std::path::PathBuf>,
    _registry: ursa_registry::RunningServer,
}

impl Setup {
    async fn new(listens: &[u16]) -> Setup {
        let kafka = Kafka::shared();
        let registry = Server::bind(ServerConfig::ephemeral())
            .await
            .unwrap()
            .spawn();
        let topic = unique_name("metrics-run");
        create_topic(kafka, &topic, PARTITIONS).await.unwrap();
        let schema_id = RegistryClient::new(ClientConfig::new(registry.url()))
            .unwrap()
            .register(&format!("{topic}-value"), SCHEMA, &[])
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let worker = dir.path().join("worker.toml");
        std::fs::write(
            &worker,
            format!(
                "drain_deadline = \"20s\"\n[kafka]\nbootstrap_servers = \"{}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n",
                kafka.bootstrap()
            ),
        )
        .unwrap();
        let defs = dir.path().join("metrics.toml");
        std::fs::write(&defs, DEFS).unwrap();
        let name = unique_name("metrics");
        let checkpoints = unique_name("metrics-checkpoints");
        let connectors = listens
            .iter()
            .map(|listen| {
                let connector = dir.path().join(format!("metrics-{listen}.toml"));
                std::fs::write(
                    &connector,
                    format!(
                        "name = \"{name}\"\n\"connector.class\" = \"metrics\"\ntopics = \"{topic}\"\n\
                         \"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\
                         \"value.converter.schema.registry.url\" = \"{}\"\n\"offset.flush.interval.ms\" = \"500\"\n\
                         \"errors.tolerance\" = \"all\"\n\"consumer.override.session.timeout.ms\" = \"6000\"\n\"consumer.override.heartbeat.interval.ms\" = \"500\"\n\
                         \"metrics.definitions.file\" = \"{}\"\n\"metrics.listen\" = \"127.0.0.1:{listen}\"\n\
                         \"metrics.checkpoint.topic\" = \"{checkpoints}\"\n\"metrics.checkpoint.bootstrap.servers\" = \"{}\"\n",
                        registry.url(),
                        defs.display(),
                        kafka.bootstrap(),
                    ),
                )
                .unwrap();
                connector
            })
            .collect();
        Setup {
            dir,
            topic,
            schema_id,
            worker,
            connectors,
            _registry: registry,
        }
    }

    fn start(&self, i: usize) -> WorkerProcess {
        WorkerProcess::start(
            env!("CARGO_BIN_EXE_ursa"),
            &[
                self.worker.to_str().unwrap(),
                self.connectors[i].to_str().unwrap(),
            ],
        )
        .unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_five_times_mid_stream_keeps_prometheus_totals_exact() {
    const TOTAL: usize = 40_000;
    const KILLS: usize = 5;
    let listen = free_port().unwrap();
    let s = Setup::new(&[listen]).await;
    let (topic, schema_id) = (&s.topic, s.schema_id);
    let (_prom, prom_port) = prometheus(s.dir.path(), &[listen]);
    let start = || s.start(0);
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = produce(topic, schema_id, TOTAL, Arc::clone(&sent));
    for kill in 0..KILLS {
        let w = start();
        let target = (kill + 1) as f64 * 5000.0;
        let last = tokio::task::spawn_blocking(move || {
            wait_until(
                &format!("the sink counted past {target} (kill {kill})"),
                Duration::from_secs(120),
                || exposed_total(listen).filter(|n| *n >= target),
            )
        })
        .await
        .unwrap()
        .unwrap();
        w.kill9().unwrap();
        let produced = sent.load(Ordering::Relaxed);
        eprintln!("kill {kill}: {last} counted, {produced} produced");
        assert!(produced < TOTAL, "kill {kill} came after the stream ended");
    }
    let mut w = start();
    producer.join().unwrap();
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || {
        wait_until("every record counted", Duration::from_secs(300), || {
            exposed_total(listen).filter(|n| *n >= TOTAL as f64)
        })
    })
    .await
    .unwrap()
    .unwrap();
    eprintln!("caught up in {:?}", t0.elapsed());
    let want = expected(TOTAL);
    let got = tokio::task::spawn_blocking(move || {
        wait_until(
            "prometheus scraped the final totals",
            Duration::from_secs(30),
            || {
                let v = query(prom_port, "sum(usage_events_total)").ok()?;
                (v.first()?.1 >= TOTAL as f64).then_some(())
            },
        )?;
        query(
            prom_port,
            "sum by (action, model, score) (usage_events_total)",
        )
    })
    .await
    .unwrap()
    .unwrap();
    let got: std::collections::BTreeMap<(String, String, String), f64> = got
        .into_iter()
        .map(|(m, v)| {
            let l = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
            ((l("action"), l("model"), l("score")), v)
        })
        .collect();
    assert_eq!(
        got, want,
        "Prometheus's totals per label against the records produced"
    );
    let total: f64 = query(prom_port, "sum(usage_events_total)").unwrap()[0].1;
    assert_eq!(total, TOTAL as f64, "no record lost or counted twice");
    // The dashboard's runtime panels name families the worker really exposes.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../connectors/metrics/dashboards/ursa-metrics.json"
        ))
        .unwrap(),
    )
    .unwrap();
    // One value that does not decode: skipped (errors.tolerance = all), not counted by the sink, and shown
    // in ursa_records_failed_total, which the worker renders once something failed.
    let producer: ThreadedProducer<DefaultProducerContext> =
        Kafka::shared().config().create().unwrap();
    producer
        .send(BaseRecord::to(topic).key("bad").payload(&b"not avro"[..]))
        .map_err(|(e, _)| e)
        .unwrap();
    producer.flush(Duration::from_secs(30)).unwrap();
    let worker_metrics = wait_until("the failure counted", Duration::from_secs(60), || {
        let (_, body) = w.get("/metrics")?;
        body.contains("ursa_records_failed_total{").then_some(body)
    })
    .unwrap();
    assert_eq!(
        exposed_total(listen),
        Some(TOTAL as f64),
        "the bad record is not counted"
    );
    let by = regex::Regex::new(r"\b(by|without)\s*\([^)]*\)").unwrap();
    let name = regex::Regex::new(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[\[{)]").unwrap();
    let mut runtime_names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = by.replace_all(t["expr"].as_str().unwrap(), "");
            for c in name.captures_iter(&expr) {
                if c[1].starts_with("ursa_") && !c[1].starts_with("ursa_metrics_") {
                    runtime_names.insert(c[1].to_owned());
                }
            }
        }
    }
    assert!(runtime_names.len() >= 6, "{runtime_names:?}");
    for n in &runtime_names {
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| n.strip_suffix(s))
            .unwrap_or(n);
        let sample = worker_metrics
            .lines()
            .any(|l| l.starts_with(&format!("{n}{{")) || l.starts_with(&format!("{n} ")));
        let typed = worker_metrics.lines().any(|l| {
            l.starts_with(&format!("# TYPE {family} ")) || l.starts_with(&format!("# TYPE {n} "))
        });
        assert!(
            sample || typed,
            "the dashboard queries {n}, which the worker does not expose:\n{worker_metrics}"
        );
    }
    assert!(w.terminate().unwrap(), "a clean stop");
}

/// Sum by label set of `usage_events_total` over the given listeners (`None` if one does not answer).
fn exposed_by_label(
    ports: &[u16],
) -> Option<std::collections::BTreeMap<(String, String, String), f64>> {
    let re = regex::Regex::new(
        r#"^usage_events_total\{action="([^"]*)",model="([^"]*)",score="([^"]*)"\} (\S+)$"#,
    )
    .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for port in ports {
        let (status, body) = http_get(*port, "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        for line in body.lines() {
            if let Some(c) = re.captures(line) {
                *out.entry((c[1].to_owned(), c[2].to_owned(), c[3].to_owned()))
                    .or_insert(0.0) += c[4].parse::<f64>().ok()?;
            }
        }
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn partitions_moving_between_workers_keep_the_sum_exact() {
    const TOTAL: usize = 30_000;
    let (pa, pb) = (free_port().unwrap(), free_port().unwrap());
    let s = Setup::new(&[pa, pb]).await;
    let (_prom, prom_port) = prometheus(s.dir.path(), &[pa, pb]);
    let sent = Arc::new(AtomicUsize::new(0));
    let producer = produce(&s.topic, s.schema_id, TOTAL, Arc::clone(&sent));
    let a = s.start(0);
    let total = |ports: Vec<u16>, at_least: f64, what: String| {
        tokio::task::spawn_blocking(move || {
            wait_until(&what, Duration::from_secs(120), || {
                let n: f64 = exposed_by_label(&ports)?.values().sum();
                (n >= at_least).then_some(n)
            })
            .unwrap()
        })
    };
    total(vec![pa], 3000.0, "worker A counted 3000".into())
        .await
        .unwrap();
    // B joins: some partitions move from A (closed there, its contributions taken out) to B (restored).
    let b = s.start(1);
    tokio::task::spawn_blocking(move || {
        wait_until("B got partitions", Duration::from_secs(120), || {
            let n: f64 = exposed_by_label(&[pb])?.values().sum();
            (n > 0.0).then_some(())
        })
        .unwrap()
    })
    .await
    .unwrap();
    let both = total(vec![pa, pb], 12_000.0, "A and B counted 12000".into())
        .await
        .unwrap();
    eprintln!(
        "A and B: {both} counted, {} produced",
        sent.load(Ordering::Relaxed)
    );
    // A dies: B takes its partitions from their checkpoints.
    a.kill9().unwrap();
    assert!(
        sent.load(Ordering::Relaxed) < TOTAL,
        "the kill came after the stream ended"
    );
    producer.join().unwrap();
    total(vec![pb], TOTAL as f64, "B counted everything".into())
        .await
        .unwrap();
    assert_eq!(
        exposed_by_label(&[pb]).unwrap(),
        expected(TOTAL),
        "B alone holds every count, once"
    );
    let got = tokio::task::spawn_blocking(move || {
        wait_until(
            "prometheus scraped the final totals",
            Duration::from_secs(60),
            || {
                let v = query(prom_port, "sum(usage_events_total)").ok()?;
                (v.first()?.1 == TOTAL as f64).then_some(())
            },
        )
    })
    .await
    .unwrap();
    got.unwrap();
    drop(b);
}
