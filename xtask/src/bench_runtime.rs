//! `cargo xtask bench runtime`: the connector runtime's throughput against plain librdkafka consumers.
//!
//! One run starts a local nisshi broker (memory storage) and the dev registry (`ursa registry serve`, release
//! build), produces N Avro `MessageReceived` records (Python confluent-kafka with its `AvroSerializer`: a few
//! hundred distinct pre-serialized values, produced N times; `runtime/bench/runtime_peer.py produce`) to a
//! 3-partition topic, then consumes the same records with, in turn:
//!
//! - (a) the floor of a librdkafka consumer: Python confluent-kafka `consume(500)` doing nothing (best of 2),
//!   and kcat `-C -e -o beginning -q -f ''` (best of 2, on the librdkafka of ursa's release build: Debian's
//!   librdkafka 2.0.2 cannot talk to nisshi); the faster one is (a);
//! - (b) a Python consumer doing ursa's job: `consume(500)`, fastavro `schemaless_reader` with the writer
//!   schema parsed once, one JSON line per record to a file, flush + fsync + commit every 500 ms;
//! - (c) `ursa run` with the `file` sink and the `avro` converter (defaults, `offset.flush.interval.ms` = 500
//!   like (b)): from process start until the file has N lines; CPU seconds (utime + stime from /proc/PID/stat)
//!   and peak memory (VmHWM) of the worker at that moment;
//! - (c') the same with larger flow bounds (`batch.max.records` = 5000, `consumer.max.in.flight.records` =
//!   200000), to show how much the defaults cost.
//!
//! Goals for (c), informational (a miss never fails the command): at least 70 % of (a)'s records/s, at least
//! 3× (b)'s records/s and at least 5× (b)'s records per CPU-second. `URSA_BENCH_RECORDS` sets N (500,000).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

const DEFAULT_RECORDS: u64 = 500_000;
const PARTITIONS: u32 = 3;
/// How long a consumer may go without progress before the run is declared broken.
const STALL: Duration = Duration::from_secs(120);

/// A child process stopped (SIGKILL) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One consumer's measurement.
#[derive(Default, Clone)]
struct Measure {
    name: String,
    records: u64,
    seconds: f64,
    cpu_seconds: Option<f64>,
    peak_mib: Option<f64>,
    note: String,
}

impl Measure {
    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn per_cpu(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|c| *c > 0.0)
            .map(|c| self.records as f64 / c)
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn nisshi() -> Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NISSHI") {
        candidates.push(p.into());
    }
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
        .context("the nisshi broker is not installed (`cargo xtask test` installs it)")
}

fn release_ursa(root: &Path) -> Result<PathBuf> {
    crate::test::cargo(&["build", "--release", "--quiet", "-p", "ursa"])?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    Ok(target.join("release/ursa"))
}

/// `MessageReceived::SCHEMA` (the self-contained writer schema of the generated type), read from the generated
/// source so that xtask needs no dependency on `ursa-events`.
fn message_received_schema(root: &Path) -> Result<String> {
    let path = root.join("schemas/src/generated/com/teddy/conversation.rs");
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let at = src
        .find("AvroRecord for MessageReceived")
        .context("no `impl AvroRecord for MessageReceived` in the generated code")?;
    let marker = "const SCHEMA: &'static str = ";
    let start = src[at..]
        .find(marker)
        .map(|i| at + i + marker.len())
        .context("no SCHEMA const for MessageReceived")?;
    let end = src[start..]
        .find("\";\n")
        .map(|i| start + i + 1)
        .context("unterminated SCHEMA const")?;
    // The generated literal only escapes `"` and `\`, so it reads as a JSON string.
    let schema: String = serde_json::from_str(&src[start..end])
        .context("the SCHEMA const is not a plain string literal")?;
    let doc: Value = serde_json::from_str(&schema).context("the SCHEMA const is not JSON")?;
    if doc["name"] != "com.teddy.conversation.MessageReceived" {
        bail!("unexpected schema name {}", doc["name"]);
    }
    Ok(schema)
}

/// Runs the Python peer; its stdout is one JSON object.
fn peer(script: &Path, args: &[&str]) -> Result<Value> {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {} {}", python(), script.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({})",
            script.display(),
            args.first().unwrap_or(&""),
            out.status
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "parsing the output of {}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn peer_measure(name: &str, v: &Value) -> Measure {
    Measure {
        name: name.into(),
        records: v["records"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        cpu_seconds: v["cpu_seconds"].as_f64(),
        peak_mib: v["peak_rss_mib"].as_f64(),
        note: String::new(),
    }
}

/// The librdkafka that rdkafka-sys built for the release `ursa` (2.12.x): Debian's kcat links librdkafka 2.0.2,
/// which cannot parse nisshi's ApiVersion v3 response, so kcat runs on this one (as under `cargo test`, whose
/// library path includes build-script output directories).
fn rdkafka_lib_dir(root: &Path) -> Option<PathBuf> {
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    std::fs::read_dir(target.join("release/build"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rdkafka-sys-"))
        .map(|e| e.path().join("out/src"))
        .filter(|d| d.join("librdkafka.so.1").is_file())
        .max_by_key(|d| {
            std::fs::metadata(d.join("librdkafka.so.1"))
                .and_then(|m| m.modified())
                .ok()
        })
}

/// kcat reading every record and printing nothing (best of 2); None when kcat is missing or cannot consume.
fn kcat(root: &Path, bootstrap: &str, topic: &str, n: u64) -> Option<Measure> {
    let lib = rdkafka_lib_dir(root);
    // (seconds, CPU seconds) of the fastest run; the shell's `times` prints kcat's user and system time.
    let mut best: Option<(f64, Option<f64>)> = None;
    for _ in 0..2 {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "kcat \"$@\" || exit $?; times", "sh"])
            .args([
                "-C",
                "-b",
                bootstrap,
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-q",
            ])
            .args(["-f", "", "-c", &n.to_string()]);
        if let Some(dir) = &lib {
            cmd.env("LD_LIBRARY_PATH", dir);
        }
        let start = Instant::now();
        let out = cmd.output();
        let seconds = start.elapsed().as_secs_f64();
        match out {
            Ok(o) if o.status.success() && o.stderr.is_empty() => {
                let cpu = String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .map(|children| children.split_whitespace().filter_map(shell_time).sum());
                if best.is_none_or(|(b, _)| seconds < b) {
                    best = Some((seconds, cpu));
                }
            }
            Ok(o) => {
                eprintln!(
                    "kcat could not consume ({}): {}",
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return None;
            }
            Err(e) => {
                eprintln!("kcat not available: {e}");
                return None;
            }
        }
    }
    let (seconds, cpu_seconds) = best?;
    Some(Measure {
        name: "(a) kcat -C -e -q -f ''".into(),
        records: n,
        seconds,
        cpu_seconds,
        note: format!(
            "process start to exit; best of 2; librdkafka {}",
            if lib.is_some() {
                "of ursa's release build"
            } else {
                "of the system"
            }
        ),
        ..Measure::default()
    })
}

/// A duration as the shell's `times` prints it: `1m2.345s`.
fn shell_time(t: &str) -> Option<f64> {
    let (m, s) = t.strip_suffix('s')?.split_once('m')?;
    Some(m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds (every thread).
fn cpu_of(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// VmHWM (peak resident set) of a process, in MiB.
fn peak_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Counts the lines of a growing file incrementally.
struct LineCounter {
    path: PathBuf,
    file: Option<std::fs::File>,
    lines: u64,
    buf: Vec<u8>,
}

impl LineCounter {
    fn new(path: PathBuf) -> Self {
        LineCounter {
            path,
            file: None,
            lines: 0,
            buf: vec![0; 1 << 20],
        }
    }

    fn poll(&mut self) -> u64 {
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        if let Some(f) = &mut self.file {
            while let Ok(n) = f.read(&mut self.buf) {
                if n == 0 {
                    break;
                }
                self.lines += self.buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            }
        }
        self.lines
    }
}

/// Runs `ursa run` with a file sink until the file has `n` lines; measures time, CPU and peak memory.
#[allow(clippy::too_many_arguments)]
fn ursa_run(
    ursa: &Path,
    work: &Path,
    label: &str,
    bootstrap: &str,
    registry: &str,
    topic: &str,
    n: u64,
    extra: &[(&str, &str)],
) -> Result<Measure> {
    let tag = label.replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let out = work.join(format!("ursa-{tag}.jsonl"));
    let worker = work.join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "drain_deadline = \"30s\"\n[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[rest]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;
    let mut connector = format!(
        "name = \"bench-{tag}-{}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n\"value.converter\" = \"avro\"\n\"value.converter.schema.registry.url\" = \"{registry}\"\n\"offset.flush.interval.ms\" = \"500\"\n",
        std::process::id(),
        out.display()
    );
    for (k, v) in extra {
        writeln!(connector, "\"{k}\" = \"{v}\"")?;
    }
    let connector_path = work.join(format!("connector-{tag}.toml"));
    std::fs::write(&connector_path, connector)?;
    let log = std::fs::File::create(work.join(format!("ursa-{tag}.log")))?;
    let ticks = clock_ticks();
    let start = Instant::now();
    let mut child = Command::new(ursa)
        .arg("run")
        .arg(&worker)
        .arg(&connector_path)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", ursa.display()))?;
    let stdout = child.stdout.take().context("ursa stdout")?;
    let pid = child.id();
    let mut guard = Proc(child);
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first)?;
    if !first.starts_with("ursa worker listening on") {
        bail!(
            "ursa run did not start: {first:?} (log in {})",
            work.display()
        );
    }
    let mut counter = LineCounter::new(out.clone());
    let mut last_progress = (Instant::now(), 0);
    let (seconds, cpu, peak) = loop {
        let lines = counter.poll();
        if lines >= n {
            let seconds = start.elapsed().as_secs_f64();
            break (seconds, cpu_of(pid, ticks), peak_of(pid));
        }
        if lines > last_progress.1 {
            last_progress = (Instant::now(), lines);
        } else if last_progress.0.elapsed() > STALL {
            bail!(
                "ursa run stalled at {lines} of {n} lines (log in {})",
                work.display()
            );
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            bail!(
                "ursa run exited ({status}) at {lines} of {n} lines (log in {})",
                work.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // A clean stop: SIGTERM drains and commits.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = guard.0.wait();
    let total = counter.poll();
    let _ = std::fs::remove_file(&out);
    Ok(Measure {
        name: label.into(),
        records: n,
        seconds,
        cpu_seconds: cpu,
        peak_mib: peak,
        note: if total == n {
            "process start to N lines".into()
        } else {
            format!("process start to N lines; {total} lines at exit")
        },
    })
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

fn machine() -> String {
    let cpu = Command::new("lscpu")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .find(|l| l.starts_with("Model name:"))
                .map(|l| l.trim_start_matches("Model name:").trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpu}, {cores} CPUs, load average {load}")
}

pub fn run() -> Result<ExitCode> {
    crate::test::ensure_python_packages()?;
    crate::test::ensure_nisshi()?;
    let n: u64 = match std::env::var("URSA_BENCH_RECORDS") {
        Ok(v) => v.parse().context("URSA_BENCH_RECORDS must be a number")?,
        Err(_) => DEFAULT_RECORDS,
    };
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    let work = std::env::temp_dir().join(format!("ursa-bench-runtime-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = run_in(&root, &ursa, &work, n);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_in(root: &Path, ursa: &Path, work: &Path, n: u64) -> Result<ExitCode> {
    let machine_before = machine();
    let schema = work.join("MessageReceived.avsc");
    std::fs::write(&schema, message_received_schema(root)?)?;
    let script = root.join("runtime/bench/runtime_peer.py");

    // The broker and the registry.
    let broker_port = free_port()?;
    let url = format!("tcp://127.0.0.1:{broker_port}");
    let broker = Command::new(nisshi()?)
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
        ])
        .args(["--storage-engine", "memory://nisshi/"])
        .args(["--group-initial-rebalance-delay", "0s", "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nisshi")?;
    let _broker = Proc(broker);
    wait_port(broker_port, "nisshi")?;
    let bootstrap = format!("127.0.0.1:{broker_port}");
    let registry_port = free_port()?;
    let registry = Command::new(ursa)
        .args(["registry", "serve", "--listen"])
        .arg(format!("127.0.0.1:{registry_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the dev registry")?;
    let _registry = Proc(registry);
    wait_port(registry_port, "the dev registry")?;
    let registry_url = format!("http://127.0.0.1:{registry_port}");

    // Production.
    let topic = format!("bench-message-received-{}", std::process::id());
    eprintln!("producing {n} Avro MessageReceived records to {topic} ({PARTITIONS} partitions)");
    let produced = peer(
        &script,
        &[
            "produce",
            &bootstrap,
            &registry_url,
            &topic,
            &PARTITIONS.to_string(),
            schema.to_str().context("schema path")?,
            &n.to_string(),
        ],
    )?;
    let avg_bytes = produced["avg_value_bytes"].as_f64().unwrap_or(0.0);
    eprintln!(
        "produced in {:.1}s ({:.0} bytes per value on average)",
        produced["seconds"].as_f64().unwrap_or(0.0),
        avg_bytes
    );
    let count = n.to_string();

    // (a) the floor: librdkafka consumers doing nothing.
    eprintln!("(a) raw consumers");
    let mut raw: Vec<Measure> = Vec::new();
    for _ in 0..2 {
        let v = peer(&script, &["raw", &bootstrap, &topic, &count])?;
        let mut m = peer_measure("(a) confluent-kafka consume(500), no work", &v);
        m.note = "consumer creation to N records; best of 2".into();
        raw.push(m);
    }
    raw.sort_by(|x, y| y.rate().total_cmp(&x.rate()));
    let mut floors = vec![raw.remove(0)];
    if let Some(k) = kcat(root, &bootstrap, &topic, n) {
        floors.push(k);
    }
    floors.sort_by(|x, y| y.rate().total_cmp(&x.rate()));
    let a = floors[0].clone();

    // (b) Python doing the same job.
    eprintln!("(b) Python consumer: fastavro + JSON lines");
    let py_out = work.join("python.jsonl");
    let v = peer(
        &script,
        &[
            "job",
            &bootstrap,
            &registry_url,
            &topic,
            &count,
            py_out.to_str().context("path")?,
        ],
    )?;
    let mut b = peer_measure("(b) Python: confluent-kafka + fastavro → JSON lines", &v);
    b.note = "consumer creation to N records written".into();
    let _ = std::fs::remove_file(&py_out);

    // (c) ursa run.
    eprintln!("(c) ursa run, file sink, avro converter (defaults)");
    let c = ursa_run(
        ursa,
        work,
        "(c) ursa run (defaults)",
        &bootstrap,
        &registry_url,
        &topic,
        n,
        &[],
    )?;
    eprintln!("(c') ursa run with larger flow bounds");
    let c2 = ursa_run(
        ursa,
        work,
        "(c') ursa run (batch 5000, in-flight 200000)",
        &bootstrap,
        &registry_url,
        &topic,
        n,
        &[
            ("batch.max.records", "5000"),
            ("consumer.max.in.flight.records", "200000"),
        ],
    )?;
    let machine_after = machine();

    // The table.
    let mut out = String::new();
    writeln!(
        out,
        "{n} Avro MessageReceived records ({avg_bytes:.0} bytes per value on average), {PARTITIONS} partitions, local nisshi broker (memory storage), dev registry"
    )?;
    writeln!(
        out,
        "machine: {machine_before} (at the end: {machine_after})\n"
    )?;
    writeln!(
        out,
        "| consumer | records | seconds | records/s | CPU s | records/CPU-s | peak RSS MiB | measured |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    let mut rows: Vec<&Measure> = floors.iter().collect();
    rows.extend([&b, &c, &c2]);
    for m in rows {
        writeln!(
            out,
            "| {} | {} | {:.2} | {:.0} | {} | {} | {} | {} |",
            m.name,
            m.records,
            m.seconds,
            m.rate(),
            fmt_opt(m.cpu_seconds, 2),
            fmt_opt(m.per_cpu(), 0),
            fmt_opt(m.peak_mib, 0),
            m.note
        )?;
    }
    writeln!(out, "\n(a) = {} ({:.0} records/s)", a.name, a.rate())?;
    writeln!(out, "\nGoals (informational):")?;
    for m in [&c, &c2] {
        let vs_a = m.rate() / a.rate();
        let vs_b = m.rate() / b.rate();
        let cpu_vs_b = match (m.per_cpu(), b.per_cpu()) {
            (Some(x), Some(y)) => Some(x / y),
            _ => None,
        };
        writeln!(out, "  {}:", m.name)?;
        writeln!(
            out,
            "    {}  records/s ≥ 70% of (a): {:.1}%",
            verdict(vs_a >= 0.7),
            vs_a * 100.0
        )?;
        writeln!(
            out,
            "    {}  records/s ≥ 3× (b): {vs_b:.2}×",
            verdict(vs_b >= 3.0)
        )?;
        writeln!(
            out,
            "    {}  records per CPU-second ≥ 5× (b): {}",
            verdict(cpu_vs_b.is_some_and(|r| r >= 5.0)),
            cpu_vs_b.map_or_else(|| "-".into(), |r| format!("{r:.2}×"))
        )?;
    }
    println!("\n{out}");
    Ok(ExitCode::SUCCESS)
}
