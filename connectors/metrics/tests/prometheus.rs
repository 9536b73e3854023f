//! The sink's exposition against real consumers: a Prometheus server (Debian's 2.42) scraping the sink's
//! listener and queried through its HTTP API, `promtool check metrics`, and Python `prometheus_client`'s
//! Prometheus-text and OpenMetrics parsers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use ursa_connect::testing::json_record;
use ursa_connect::{Sink, SinkContext, SinkPlugin, SinkRecord};
use ursa_connector_metrics::{MetricsPlugin, MetricsSink};
use ursa_testkit::{Service, free_port, unique_name, wait_until};

const INSTALL: &str = "cargo xtask test (or `apt-get install -y prometheus`)";

const DEFS: &str = r#"
[[metric]]
name = "safety_violations"
help = "Safety violations by severity and category"
type = "counter"
labels = { severity = "severity", category = { path = "category", normalise = ["snake"] } }
label_order = ["severity", "category"]
max_series = 4

[[metric]]
name = "response_latency_seconds"
help = "Latency of generated responses"
unit = "seconds"
type = "histogram"
value = "latency_ms"
scale = 0.001
buckets = [0.05, 0.1, 0.25, 0.5, 1.0]
labels = { model = "model" }

[[metric]]
name = "active_sessions"
help = "Sessions open, as last reported"
type = "gauge"
value = "sessions"
"#;

fn sink(port: u16) -> MetricsSink {
    let raw = [
        ("metrics.definitions", DEFS.to_owned()),
        ("metrics.listen", format!("127.0.0.1:{port}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let parsed = ursa_connect::config::parse(&MetricsPlugin.keys(), &[], &raw).unwrap();
    assert!(MetricsPlugin.validate(&parsed).is_empty());
    MetricsSink::start(
        MetricsPlugin::config(&parsed).unwrap(),
        SinkContext::detached("m"),
    )
    .unwrap()
}

fn events() -> Vec<SinkRecord> {
    let severities = ["LOW", "HIGH", "CRITICAL"];
    let categories = ["Self Harm", "bullying", "Personal-Info"];
    (0..300)
        .map(|i| {
            json_record(
                "violations",
                0,
                i,
                json!({
                    "severity": severities[(i % 3) as usize],
                    "category": categories[((i / 3) % 3) as usize],
                    "latency_ms": (i % 10) * 40,
                    "model": if i % 2 == 0 { "tb-1" } else { "tb-2" },
                    "sessions": i,
                }),
            )
        })
        .collect()
}

/// A GET over HTTP/1.0 on loopback: the status and the body.
fn http_get(port: u16, path: &str, accept: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: {accept}\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").context("no HTTP body")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")?;
    Ok((status, body.to_owned()))
}

fn encode(q: &str) -> String {
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

struct Prometheus {
    port: u16,
    service: Service,
}

impl Prometheus {
    fn start(target: u16) -> Result<Prometheus> {
        let dir = std::env::temp_dir().join(unique_name("ursa-prometheus"));
        Prometheus::start_in(Some(target), free_port()?, &dir, true)
    }

    /// Prometheus on `port` with its data in `dir` (removed when it stops if `clean`, else kept for a
    /// restart), scraping `target` if given.
    fn start_in(
        target: Option<u16>,
        port: u16,
        dir: &std::path::Path,
        clean: bool,
    ) -> Result<Prometheus> {
        let Ok(program) = which("prometheus") else {
            bail!("prometheus is not installed: run {INSTALL}");
        };
        std::fs::create_dir_all(dir)?;
        let config = dir.join("prometheus.yml");
        let scrape = match target {
            Some(t) => format!(
                "scrape_configs:\n  - job_name: ursa\n    static_configs:\n      - targets: ['127.0.0.1:{t}']\n"
            ),
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n{scrape}"),
        )?;
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
            "--log.level=warn".into(),
        ];
        let service = Service::spawn(
            "prometheus",
            program,
            &args,
            &[],
            &dir.join("prometheus.log"),
            clean.then_some(dir),
        )?;
        let p = Prometheus { port, service };
        wait_until("prometheus ready", Duration::from_secs(60), || {
            http_get(port, "/-/ready", "*/*")
                .ok()
                .filter(|(s, _)| *s == 200)
        })
        .with_context(|| p.service.log_tail(30))?;
        Ok(p)
    }

    /// An instant query's vector: (labels, value) per series.
    fn query(&self, q: &str) -> Result<Vec<(Value, f64)>> {
        let (status, body) = http_get(
            self.port,
            &format!("/api/v1/query?query={}", encode(q)),
            "application/json",
        )?;
        if status != 200 {
            bail!("query {q}: HTTP {status}: {body}");
        }
        let v: Value = serde_json::from_str(&body)?;
        Ok(v["data"]["result"]
            .as_array()
            .context("no result")?
            .iter()
            .map(|r| {
                (
                    r["metric"].clone(),
                    r["value"][1]
                        .as_str()
                        .unwrap_or("NaN")
                        .parse()
                        .unwrap_or(f64::NAN),
                )
            })
            .collect())
    }
}

fn which(program: &str) -> Result<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()?;
    if !out.status.success() {
        bail!("{program} not found");
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> Result<(bool, String)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}: install it with {INSTALL}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_exact_counts_and_tools_accept_the_exposition() {
    let port = free_port().unwrap();
    let sink = sink(port);
    sink.open(&[ursa_connect::TopicPartition::new("violations", 0)], 1)
        .await
        .unwrap();
    assert_eq!(sink.local_addr().map(|a| a.port()), Some(port));
    let records = events();
    sink.put(&records).await.unwrap();

    let (status, text) =
        tokio::task::spawn_blocking(move || http_get(port, "/metrics", "text/plain"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(status, 200);
    let (ok, lint) = run_with_stdin("promtool", &["check", "metrics"], &text).unwrap();
    assert!(ok, "promtool check metrics failed:\n{lint}\n{text}");
    assert!(lint.trim().is_empty(), "promtool lint: {lint}\n{text}");

    let (_, om) = tokio::task::spawn_blocking(move || {
        http_get(
            port,
            "/metrics",
            "application/openmetrics-text; version=1.0.0",
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
text, om = sys.stdin.read().split("\n=====\n")
out = {}
for f in text_string_to_metric_families(text):
    for s in f.samples:
        out.setdefault("text", {})[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
for f in om_families(om):
    for s in f.samples:
        out.setdefault("om", {})[s.name + json.dumps(s.labels, sort_keys=True)] = s.value
    out.setdefault("om_types", {})[f.name] = f.type
print(json.dumps(out))
"#;
    let (ok, parsed) =
        run_with_stdin("python3", &["-c", script], &format!("{text}\n=====\n{om}")).unwrap();
    assert!(
        ok,
        "prometheus_client could not parse the exposition (pip install prometheus_client, or {INSTALL}):\n{parsed}"
    );
    let parsed: Value = serde_json::from_str(parsed.trim()).unwrap();
    let key = r#"safety_violations_total{"category": "self_harm", "severity": "HIGH"}"#;
    assert_eq!(parsed["text"][key].as_f64(), Some(34.0), "{parsed}");
    assert_eq!(parsed["om"][key].as_f64(), Some(34.0), "{parsed}");
    assert_eq!(parsed["om_types"]["response_latency_seconds"], "histogram");
    assert_eq!(parsed["om_types"]["safety_violations"], "counter");

    let prom = tokio::task::spawn_blocking(move || Prometheus::start(port))
        .await
        .unwrap()
        .unwrap();
    let prom = std::sync::Arc::new(prom);
    let p = std::sync::Arc::clone(&prom);
    let by_severity = tokio::task::spawn_blocking(move || {
        wait_until(
            "prometheus scraped the sink",
            Duration::from_secs(30),
            || {
                let v = p
                    .query("sum by (severity) (safety_violations_total)")
                    .ok()?;
                (v.len() == 4).then_some(v)
            },
        )
    })
    .await
    .unwrap()
    .unwrap();
    // max_series = 4: 9 label sets, 4 kept, 5 folded into __overflow__ (whose severity is __overflow__).
    let total: f64 = by_severity.iter().map(|(_, v)| v).sum();
    assert_eq!(total, 300.0, "{by_severity:?}");
    let p = std::sync::Arc::clone(&prom);
    let checks = tokio::task::spawn_blocking(move || -> Result<()> {
        let overflow =
            p.query(r#"safety_violations_total{severity="__overflow__",category="__overflow__"}"#)?;
        let folded =
            p.query(r#"ursa_metrics_overflow_folded_total{metric="safety_violations"}"#)?;
        assert_eq!(overflow.len(), 1, "{overflow:?}");
        assert_eq!(overflow[0].1, folded[0].1, "{overflow:?} {folded:?}");
        assert!(overflow[0].1 > 0.0);
        let count = p.query("sum(response_latency_seconds_count)")?;
        assert_eq!(count[0].1, 300.0);
        let fast = p.query(r#"sum(response_latency_seconds_bucket{le="0.1"})"#)?;
        // latency_ms = (i % 10) * 40: 0, 40 and 80 ms are ≤ 0.1 s, 3 in every 10.
        assert_eq!(fast[0].1, 90.0, "{fast:?}");
        let gauge = p.query("active_sessions")?;
        assert_eq!(gauge[0].1, 299.0);
        Ok(())
    })
    .await
    .unwrap();
    checks.unwrap();
    sink.stop().await;
}

/// Prometheus receiving remote write on `port`, its data in `dir` (kept for a restart unless `clean`).
async fn receiver(port: u16, dir: &std::path::Path, clean: bool) -> Prometheus {
    let d = dir.to_owned();
    tokio::task::spawn_blocking(move || Prometheus::start_in(None, port, &d, clean))
        .await
        .unwrap()
        .unwrap()
}

/// The sink under the harness, pushing to the receiver on `port`, with one more key.
fn remote_writer(port: u16, extra: (&str, &str)) -> ursa_connect::testing::Harness {
    let url = format!("http://127.0.0.1:{port}/api/v1/write");
    ursa_connect::testing::Harness::build(
        &MetricsPlugin,
        &[
            ("metrics.definitions", DEFS),
            ("metrics.listen", ""),
            ("metrics.remote.write.url", &url),
            extra,
        ],
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_receiver_down_then_back_loses_and_doubles_nothing() {
    let port = free_port().unwrap();
    let dir = std::env::temp_dir().join(unique_name("ursa-prometheus-rw"));
    let prom = receiver(port, &dir, false).await;
    let mut h = remote_writer(port, ("metrics.remote.write.batch", "5"));
    h.open(&[("violations", 0)]).await.unwrap();
    let records = events();
    h.put(&records[..150]).await.unwrap();
    h.flush().await.unwrap();
    let total = |p: &Prometheus| -> Option<f64> {
        p.query("sum(safety_violations_total)")
            .ok()?
            .first()
            .map(|(_, v)| *v)
    };
    let prom = tokio::task::spawn_blocking(move || {
        wait_until("150 in prometheus", Duration::from_secs(30), || {
            (total(&prom)? == 150.0).then_some(())
        })
        .map(|()| prom)
    })
    .await
    .unwrap()
    .unwrap();
    // The receiver goes away: the flush fails (retriable), so nothing is committed.
    drop(prom);
    h.put(&records[150..]).await.unwrap();
    let e = h.flush().await.unwrap_err();
    assert!(
        matches!(&e, ursa_connect::testing::HarnessError::Sink(s) if s.is_retriable()),
        "{e}"
    );
    let d = dir.clone();
    let prom = tokio::task::spawn_blocking(move || Prometheus::start_in(None, port, &d, true))
        .await
        .unwrap()
        .unwrap();
    let flushed = h.flush().await.unwrap();
    assert_eq!(flushed.values().copied().collect::<Vec<_>>(), vec![300]);
    let series = tokio::task::spawn_blocking(move || {
        wait_until("300 in prometheus", Duration::from_secs(30), || {
            (total(&prom)? == 300.0).then_some(())
        })?;
        let count = prom.query("sum(response_latency_seconds_count)")?;
        assert_eq!(count[0].1, 300.0);
        prom.query("count(safety_violations_total)")
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(series[0].1, 5.0, "4 series and the overflow series");
    h.stop().await.unwrap();
}

/// Event time for remote write (`metrics.remote.write.time`): `record` stamps each series with the newest
/// record timestamp of the records that updated it, and `field:<path>` with the newest value of a field
/// (RFC 3339 text, as the JSON form writes Avro timestamps). Records arrive out of order; Prometheus holds each
/// series at its newest event time (plus 1 ms for each record older than that: a late record moves the
/// series' time 1 ms on, so the next push is a newer sample that Prometheus takes) with the exact count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_with_event_time_stamps_each_series_with_its_newest_event() {
    use std::collections::BTreeMap;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Five minutes ago, a second apart, in an order that goes back and forth.
    let base = now_ms - 300_000 - (now_ms % 1000);
    let order: Vec<i64> = (0..120).map(|i| (i * 37) % 120).collect();
    for (source, time) in [("record", "record"), ("field", "field:detected_at")] {
        let port = free_port().unwrap();
        let dir = std::env::temp_dir().join(unique_name("ursa-prometheus-event-time"));
        let prom = receiver(port, &dir, true).await;
        let mut h = remote_writer(port, ("metrics.remote.write.time", time));
        h.open(&[("violations", 0)]).await.unwrap();
        let severities = ["LOW", "HIGH", "CRITICAL"];
        let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
        let records: Vec<SinkRecord> = order
            .iter()
            .enumerate()
            .map(|(offset, &i)| {
                let at = base + i * 1000;
                let severity = severities[(i % 3) as usize];
                // The series' time: its newest event, 1 ms further for each record older than that.
                let e = newest.entry(severity).or_insert(i64::MIN);
                *e = if at > *e { at } else { *e + 1 };
                let detected = chrono::DateTime::from_timestamp_millis(at)
                    .unwrap()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let mut r = json_record(
                    "violations",
                    0,
                    offset as i64,
                    json!({"severity": severity, "category": "bullying", "latency_ms": 10,
                           "model": "tb-1", "sessions": 1, "detected_at": detected}),
                );
                r.timestamp = Some(at);
                r
            })
            .collect();
        h.put(&records).await.unwrap();
        h.flush().await.unwrap();
        let q = "timestamp(safety_violations_total) * 1000";
        let stamped = tokio::task::spawn_blocking(move || {
            wait_until("the counts in prometheus", Duration::from_secs(30), || {
                let total = prom.query("sum(safety_violations_total)").ok()?;
                (total.first()?.1 == 120.0).then_some(())
            })?;
            prom.query(q).map(|v| (v, prom))
        })
        .await
        .unwrap()
        .unwrap();
        let (stamps, prom) = stamped;
        let got: BTreeMap<String, i64> = stamps
            .iter()
            .map(|(m, v)| (m["severity"].as_str().unwrap().to_owned(), v.round() as i64))
            .collect();
        let want: BTreeMap<String, i64> =
            newest.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        assert_eq!(got, want, "{source}: each series at its newest event time");

        // A late record for LOW (an hour older than its newest): counted, 1 ms past LOW's newest.
        let mut late = json_record(
            "violations",
            0,
            120,
            json!({"severity": "LOW", "category": "bullying", "latency_ms": 10, "model": "tb-1",
                   "sessions": 1, "detected_at": "2020-01-01T00:00:00.000Z"}),
        );
        late.timestamp = Some(base - 3_600_000);
        h.put(&[late]).await.unwrap();
        h.flush().await.unwrap();
        let low = want["LOW"];
        tokio::task::spawn_blocking(move || {
            wait_until("the late record counted", Duration::from_secs(30), || {
                let total = prom.query("sum(safety_violations_total)").ok()?;
                let at = prom
                    .query("timestamp(safety_violations_total{severity=\"LOW\"}) * 1000")
                    .ok()?;
                (total.first()?.1 == 121.0 && at.first()?.1.round() as i64 == low + 1).then_some(())
            })
        })
        .await
        .unwrap()
        .unwrap();
        h.stop().await.unwrap();
    }
}
