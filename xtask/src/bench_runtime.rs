//! `cargo xtask bench runtime`: the connector runtime's throughput against plain librdkafka consumers, a Python
//! consumer doing its job, and Kafka Connect.
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
//! Instructions per record under callgrind (stable on a shared machine) are measured for (c)'s job and for
//! (e)'s (the JSON converter, on nisshi). `URSA_BENCH_ONLY=instructions` measures only those, and
//! `URSA_BENCH_CALLGRIND_DIR` keeps the callgrind outputs (with costs per instruction).
//!
//! Then, beside the runtime it replaces: Apache Kafka (a KRaft JVM from `target/peers/kafka`, PLAINTEXT) gets the
//! same N `MessageReceived` values as JSON text (schemas off; produced once with confluent-kafka), read by:
//!
//! - (d) Kafka Connect (`ConnectDistributed` from `target/peers/connect`, 512 MiB heap) with FileStreamSink and
//!   JsonConverter (`value.converter.schemas.enable=false`, StringConverter keys, `tasks.max=1`, commits every
//!   500 ms): from `POST /connectors` until the file has N lines; CPU = the JVM's utime + stime over that time
//!   (from /proc/PID/stat); (d') the same with three more connectors on the now warm JVM;
//! - (e) `ursa run` with the `file` sink and the `json` converter, measured as (c), three runs; (e') the same
//!   with `file.fsync = false` (FileStreamSink never fsyncs).
//!
//! Issue 8's goals for (e) compare the median of its three runs with the median of (d')'s three: a single
//! run of either moves by a quarter on these shared machines.

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
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One consumer's (or writer's) measurement.
#[derive(Default, Clone)]
pub(crate) struct Measure {
    pub(crate) name: String,
    pub(crate) records: u64,
    pub(crate) seconds: f64,
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) peak_mib: Option<f64>,
    pub(crate) note: String,
}

/// One table row: name, records, seconds, records/s, CPU s, records/CPU-s, peak RSS MiB, note.
pub(crate) fn write_row(out: &mut String, m: &Measure) -> Result<()> {
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
    Ok(())
}

impl Measure {
    pub(crate) fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            0.0
        }
    }

    pub(crate) fn per_cpu(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|c| *c > 0.0)
            .map(|c| self.records as f64 / c)
    }
}

/// `ursa` as a command; with `profiled` and `URSA_BENCH_PERF=FILE` set, under `perf record` into FILE (CPU
/// figures of the process are then perf's own).
pub(crate) fn ursa_command(ursa: &Path, profiled: bool) -> Command {
    match std::env::var_os("URSA_BENCH_PERF").filter(|_| profiled) {
        Some(out) => {
            let mut c = Command::new("perf");
            c.args([
                "record",
                "-e",
                "cpu-clock",
                "-F",
                "2000",
                "--call-graph",
                "dwarf,16384",
                "-o",
            ])
            .arg(out)
            .arg("--")
            .arg(ursa);
            c
        }
        None => Command::new(ursa),
    }
}

/// `program` started by `wrapper` (e.g. `valgrind --tool=callgrind …`), if not empty.
pub(crate) fn wrapped(wrapper: &[String], program: impl AsRef<std::ffi::OsStr>) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A number from the environment (`URSA_BENCH_…`), or `default` when unset.
pub(crate) fn env_u64(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name} must be a number")),
        Err(_) => Ok(default),
    }
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn wait_port(port: u16, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on port {port}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(crate) fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The interpreter [`python`] runs (`sys.executable`), for tools that do not follow an `exec`.
pub(crate) fn python_executable() -> Result<String> {
    let out = Command::new(python())
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .with_context(|| format!("running {}", python()))?;
    let path = String::from_utf8(out.stdout)?.trim().to_owned();
    if !out.status.success() || path.is_empty() {
        bail!("{} does not name its interpreter", python());
    }
    Ok(path)
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

/// The dev registry (`ursa registry serve`) on a free port: the process and its URL.
pub(crate) fn start_registry(ursa: &Path) -> Result<(Proc, String)> {
    let port = free_port()?;
    let registry = Command::new(ursa)
        .args(["registry", "serve", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting the dev registry")?;
    let registry = Proc(registry);
    wait_port(port, "the dev registry")?;
    Ok((registry, format!("http://127.0.0.1:{port}")))
}

/// The release `ursa` the benches run: built from this tree, or the binary `URSA_BENCH_BIN` names (to compare
/// two builds on the same machine, one run after the other).
pub(crate) fn release_ursa(root: &Path) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("URSA_BENCH_BIN") {
        let bin = PathBuf::from(bin);
        if !bin.is_file() {
            bail!("URSA_BENCH_BIN={} is not a file", bin.display());
        }
        return Ok(bin);
    }
    crate::test::cargo(&["build", "--release", "--quiet", "-p", "ursa"])?;
    Ok(target_dir(root).join("release/ursa"))
}

/// Where cargo builds: `CARGO_TARGET_DIR`, else the workspace's `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// What the benches beside Kafka and a Python peer need: the Python packages, and Java with Maven (Apache
/// Kafka from Maven Central).
pub(crate) fn ensure_kafka_peers() -> Result<()> {
    crate::test::ensure_python_packages()?;
    if !crate::peers::ensure_java_peers()? {
        bail!("java or mvn does not answer here: install Java 17+ and Maven, then run this again");
    }
    Ok(())
}

/// `MessageReceived::SCHEMA` (the self-contained writer schema of the generated type), read from the generated
/// source so that xtask needs no dependency on `ursa-events`.
fn message_received_schema(root: &Path) -> Result<String> {
    generated_schema(root, "conversation", "MessageReceived")
}

/// The self-contained writer schema (`SCHEMA`) of the generated type `ty` in `com.teddy.<module>`.
pub(crate) fn generated_schema(root: &Path, module: &str, ty: &str) -> Result<String> {
    let path = root.join(format!("schemas/src/generated/com/teddy/{module}.rs"));
    let src =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let at = src
        .find(&format!("AvroRecord for {ty} "))
        .with_context(|| format!("no `impl AvroRecord for {ty}` in the generated code"))?;
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
    if doc["name"] != format!("com.teddy.{module}.{ty}").as_str() {
        bail!("unexpected schema name {}", doc["name"]);
    }
    Ok(schema)
}

/// Runs the Python peer; its stdout is one JSON object.
pub(crate) fn peer(script: &Path, args: &[&str]) -> Result<Value> {
    peer_under(&[], script, args)
}

/// [`peer`] started by `wrapper` (e.g. `valgrind --tool=callgrind …`), if not empty.
pub(crate) fn peer_under(wrapper: &[String], script: &Path, args: &[&str]) -> Result<Value> {
    // A wrapper follows no `exec` (pyenv's `python3` is a shell script): it gets the interpreter itself.
    let interpreter = if wrapper.is_empty() {
        python()
    } else {
        python_executable()?
    };
    let out = wrapped(wrapper, interpreter)
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
    std::fs::read_dir(target_dir(root).join("release/build"))
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

pub(crate) fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds (every thread).
pub(crate) fn cpu_of(pid: u32, ticks: f64) -> Option<f64> {
    user_system_of(pid, ticks).map(|(u, s)| u + s)
}

/// utime and stime of a process, in seconds (every thread): the CPU spent in the process and in the kernel.
pub(crate) fn user_system_of(pid: u32, ticks: f64) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime / ticks, stime / ticks))
}

/// VmHWM (peak resident set) of a process, in MiB.
pub(crate) fn peak_of(pid: u32) -> Option<f64> {
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
/// `extra` are connector keys after the common ones (the value converter and its settings, flow bounds).
fn ursa_run(
    ursa: &Path,
    work: &Path,
    label: &str,
    bootstrap: &str,
    topic: &str,
    n: u64,
    extra: &[(&str, &str)],
) -> Result<Measure> {
    ursa_run_under(&[], ursa, work, label, bootstrap, topic, n, extra)
}

/// [`ursa_run`] with the worker started by `wrapper` (e.g. `valgrind --tool=callgrind …`), if not empty.
#[allow(clippy::too_many_arguments)]
fn ursa_run_under(
    wrapper: &[String],
    ursa: &Path,
    work: &Path,
    label: &str,
    bootstrap: &str,
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
        "name = \"bench-{tag}-{}\"\n\"connector.class\" = \"file\"\ntopics = \"{topic}\"\nfile = \"{}\"\n\"key.converter\" = \"string\"\n",
        std::process::id(),
        out.display()
    );
    // Commits every 500 ms like the Python peer, unless the row sets its own interval.
    if !extra.iter().any(|(k, _)| *k == "offset.flush.interval.ms") {
        connector.push_str("\"offset.flush.interval.ms\" = \"500\"\n");
    }
    for (k, v) in extra {
        writeln!(connector, "\"{k}\" = \"{v}\"")?;
    }
    let connector_path = work.join(format!("connector-{tag}.toml"));
    std::fs::write(&connector_path, connector)?;
    let log_path = work.join(format!("ursa-{tag}.log"));
    let log = std::fs::File::create(&log_path)?;
    let ticks = clock_ticks();
    let start = Instant::now();
    let mut child = wrapped(wrapper, ursa)
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
            "ursa run did not start: {first:?}; its log ends:\n{}",
            crate::log_tail(&log_path)
        );
    }
    let mut counter = LineCounter::new(out.clone());
    let mut last_progress = (Instant::now(), 0);
    let mut first_line = None;
    let (seconds, split, peak) = loop {
        let lines = counter.poll();
        if lines > 0 && first_line.is_none() {
            first_line = Some(start.elapsed().as_secs_f64());
        }
        if lines >= n {
            let seconds = start.elapsed().as_secs_f64();
            break (seconds, user_system_of(pid, ticks), peak_of(pid));
        }
        if lines > last_progress.1 {
            last_progress = (Instant::now(), lines);
        } else if last_progress.0.elapsed() > STALL {
            bail!(
                "ursa run stalled at {lines} of {n} lines; its log ends:\n{}",
                crate::log_tail(&log_path)
            );
        }
        if let Ok(Some(status)) = guard.0.try_wait() {
            bail!(
                "ursa run exited ({status}) at {lines} of {n} lines; its log ends:\n{}",
                crate::log_tail(&log_path)
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
    let split_note = split.map_or_else(String::new, |(u, s)| {
        format!("; CPU {u:.2} s in the process, {s:.2} s in the kernel")
    });
    Ok(Measure {
        name: label.into(),
        records: n,
        seconds,
        cpu_seconds: split.map(|(u, s)| u + s),
        peak_mib: peak,
        note: if total == n {
            format!(
                "process start to N lines{}{split_note}",
                first_line_note(first_line)
            )
        } else {
            format!(
                "process start to N lines{}{split_note}; {total} lines at exit",
                first_line_note(first_line)
            )
        },
    })
}

/// `; first line at 0.42 s`, for the notes: how much of the time was start-up (group join, assignment).
fn first_line_note(at: Option<f64>) -> String {
    at.map_or_else(String::new, |s| format!("; first line at {s:.2} s"))
}

pub(crate) fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

pub(crate) fn machine() -> String {
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
    let (_registry, registry_url) = start_registry(ursa)?;
    if std::env::var("URSA_BENCH_ONLY").as_deref() == Ok("instructions") {
        // The stable figure alone (a minute or two), to compare builds while working on them.
        let text = instructions_per_record(
            root,
            ursa,
            work,
            &script,
            &bootstrap,
            &registry_url,
            &schema,
        )?;
        println!("\n{text}");
        return Ok(ExitCode::SUCCESS);
    }

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
    let avro: [(&str, &str); 2] = [
        ("value.converter", "avro"),
        ("value.converter.schema.registry.url", &registry_url),
    ];
    let c = ursa_run(
        ursa,
        work,
        "(c) ursa run (defaults)",
        &bootstrap,
        &topic,
        n,
        &avro,
    )?;
    eprintln!("(c') ursa run with larger flow bounds");
    let c2 = ursa_run(
        ursa,
        work,
        "(c') ursa run (batch 5000, in-flight 200000)",
        &bootstrap,
        &topic,
        n,
        &[
            avro[0],
            avro[1],
            ("batch.max.records", "5000"),
            ("consumer.max.in.flight.records", "200000"),
        ],
    )?;
    // Instructions per record, which a shared machine does not blur.
    let instructions = instructions_per_record(
        root,
        ursa,
        work,
        &script,
        &bootstrap,
        &registry_url,
        &schema,
    )?;
    // (d), (e): JSON records on Apache Kafka, Kafka Connect beside ursa.
    let json = json_rows(root, ursa, work, &schema, n)?;
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
        write_row(&mut out, m)?;
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
    writeln!(out, "\n{instructions}")?;
    writeln!(out, "\n{json}")?;
    println!("\n{out}");
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------------------------------------------------
// Instructions per record: `ursa run` (c) under callgrind, on two topics of N₁ and N₂ records.

/// The two topic sizes: the difference of the runs' instruction counts over N₂ − N₁ is the cost of a
/// record, without start-up, group join and shutdown.
const CALLGRIND_RECORDS: [u64; 2] = [20_000, 60_000];

/// The command prefix that runs a program under callgrind, its counts written to `out`.
/// With `URSA_BENCH_CALLGRIND_DIR` set (outputs kept), costs are kept per instruction too
/// (`--dump-instr=yes`), for a look at the hot loops against `objdump -d`.
pub(crate) fn callgrind_wrapper(out: &Path) -> Vec<String> {
    let mut wrapper = vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ];
    if std::env::var_os("URSA_BENCH_CALLGRIND_DIR").is_some() {
        wrapper.push("--dump-instr=yes".to_owned());
    }
    wrapper
}

/// Whether `valgrind` runs.
pub(crate) fn has_valgrind() -> bool {
    Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The instruction count a callgrind output file reports (`summary:` or `totals:`).
pub(crate) fn callgrind_total(path: &Path) -> Result<u64> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| {
            l.strip_prefix("summary:")
                .or_else(|| l.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .with_context(|| format!("no instruction total in {}", path.display()))
}

/// [`callgrind_per_record`] for (c)'s job, then for (e)'s.
fn instructions_per_record(
    root: &Path,
    ursa: &Path,
    work: &Path,
    script: &Path,
    bootstrap: &str,
    registry_url: &str,
    schema: &Path,
) -> Result<String> {
    let mut text = String::new();
    for json in [false, true] {
        text.push_str(&callgrind_per_record(
            root,
            ursa,
            work,
            script,
            bootstrap,
            registry_url,
            schema,
            json,
        )?);
        text.push('\n');
    }
    Ok(text)
}

/// `ursa run` (file sink, defaults) under `valgrind --tool=callgrind` on N₁ and N₂ records: instructions per
/// record, and the top functions per record. The Avro converter on the Avro records of (c), or with `json`
/// the JSON converter on the same values as JSON text ((e)'s job, here on nisshi). A note when valgrind is
/// missing.
#[allow(clippy::too_many_arguments)]
fn callgrind_per_record(
    root: &Path,
    ursa: &Path,
    work: &Path,
    script: &Path,
    bootstrap: &str,
    registry_url: &str,
    schema: &Path,
    json: bool,
) -> Result<String> {
    let job = if json {
        "(e)'s job (JSON converter)"
    } else {
        "(c)"
    };
    if !has_valgrind() {
        return Ok(format!(
            "instructions per record, {job}: not measured (valgrind is not installed: `apt-get install valgrind`)"
        ));
    }
    eprintln!("{job} under callgrind: instructions per record");
    let mut totals = Vec::new();
    for n in CALLGRIND_RECORDS {
        let kind = if json { "json" } else { "avro" };
        let topic = format!("bench-callgrind-{kind}-{n}-{}", std::process::id());
        if json {
            produce_json(root, bootstrap, &topic, schema, n)?;
        } else {
            peer(
                script,
                &[
                    "produce",
                    bootstrap,
                    registry_url,
                    &topic,
                    &PARTITIONS.to_string(),
                    schema.to_str().context("schema path")?,
                    &n.to_string(),
                ],
            )?;
        }
        // `URSA_BENCH_CALLGRIND_DIR` keeps the outputs (for `callgrind_annotate --inclusive=yes`).
        let out = std::env::var_os("URSA_BENCH_CALLGRIND_DIR")
            .map_or_else(|| work.to_path_buf(), PathBuf::from)
            .join(format!("callgrind-{kind}-{n}.out"));
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let wrapper = callgrind_wrapper(&out);
        let converter: [(&str, &str); 2] = if json {
            [
                ("value.converter", "json"),
                ("value.converter.schemas.enable", "false"),
            ]
        } else {
            [
                ("value.converter", "avro"),
                ("value.converter.schema.registry.url", registry_url),
            ]
        };
        ursa_run_under(
            &wrapper,
            ursa,
            work,
            &format!("callgrind {kind} {n}"),
            bootstrap,
            &topic,
            n,
            &converter,
        )?;
        totals.push((n, callgrind_total(&out)?, out));
    }
    let (n1, i1, small) = &totals[0];
    let (n2, i2, big) = &totals[1];
    let per = (*i2 as f64 - *i1 as f64) / (*n2 - *n1) as f64;
    let mut text = format!(
        "instructions per record, {job} under callgrind: {per:.0} (({i2} − {i1}) / ({n2} − {n1}) records; whole runs: {:.0} and {:.0} per record)\n",
        *i1 as f64 / *n1 as f64,
        *i2 as f64 / *n2 as f64
    );
    text.push_str(&callgrind_top(
        small,
        big,
        *n1,
        *n2,
        "top functions, instructions per record (self cost; the difference of the two runs):",
    ));
    Ok(text)
}

/// The self cost of each function in a callgrind output, as `callgrind_annotate` lists them (`None` when it does
/// not run).
fn callgrind_functions(out: &Path) -> Option<std::collections::HashMap<String, u64>> {
    let o = Command::new("callgrind_annotate")
        .args(["--threshold=100"])
        .arg(out)
        .output()
        .ok()?;
    let annotated = String::from_utf8_lossy(&o.stdout);
    let functions = annotated
        .lines()
        .skip_while(|l| !l.contains("file:function"))
        .skip(2)
        .filter_map(|l| {
            let (count, rest) = l.trim().split_once(' ')?;
            let count: u64 = count.replace(',', "").parse().ok()?;
            let name = rest
                .trim_start()
                .strip_prefix('(')?
                .split_once(')')?
                .1
                .trim();
            Some((name.to_owned(), count))
        });
    let mut by_name = std::collections::HashMap::new();
    for (name, count) in functions {
        *by_name.entry(name).or_insert(0) += count;
    }
    Some(by_name)
}

/// The 15 functions that cost the most per item: the difference of their self cost between a run of `n2`
/// items (`big`) and one of `n1` (`small`), over `n2 − n1`, under `title` (nothing when `callgrind_annotate`
/// does not run).
pub(crate) fn callgrind_top(small: &Path, big: &Path, n1: u64, n2: u64, title: &str) -> String {
    let (Some(a), Some(b)) = (callgrind_functions(small), callgrind_functions(big)) else {
        return String::new();
    };
    let mut per: Vec<(f64, &str)> = b
        .iter()
        .map(|(name, i2)| {
            let i1 = a.get(name).copied().unwrap_or(0);
            ((*i2 as f64 - i1 as f64) / (n2 - n1) as f64, name.as_str())
        })
        .collect();
    per.sort_by(|x, y| y.0.total_cmp(&x.0));
    let mut text = format!("{title}\n");
    for (cost, name) in per.iter().take(15) {
        text.push_str(&format!("    {cost:>8.0}  {name}\n"));
    }
    text
}

// ---------------------------------------------------------------------------------------------------------
// JSON records on Apache Kafka: Kafka Connect's FileStreamSink and `ursa run`'s file sink.

/// Produces the JSON records: the same generated `MessageReceived` values as the Avro rows, as JSON text.
const PRODUCE_JSON: &str = r#"
import json, sys
root, bootstrap, topic, partitions, schema_file, count = sys.argv[1:7]
sys.path[:0] = [root + "/runtime/bench", root + "/runtime/tests/python"]
import produce_avro, runtime_peer
count = int(count)
runtime_peer.create_topic(bootstrap, topic, partitions)
schema = json.load(open(schema_file, encoding="utf-8"))
values = [
    json.dumps(runtime_peer.jsonable(produce_avro.value(schema)), separators=(",", ":")).encode()
    for _ in range(runtime_peer.DISTINCT)
]
seconds, total = runtime_peer.produce_cycling(bootstrap, topic, values, count)
print(json.dumps({"records": count, "seconds": seconds, "avg_value_bytes": total / count}))
"#;

/// The `java` to run: `$JAVA`, else `$JAVA_HOME/bin/java`, else `java` on the PATH (as the testkit's).
fn java() -> PathBuf {
    std::env::var_os("JAVA")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("JAVA_HOME").map(|h| PathBuf::from(h).join("bin/java")))
        .unwrap_or_else(|| PathBuf::from("java"))
}

/// Writes `key=value` lines to `path`.
fn properties(path: &Path, lines: &[(&str, String)]) -> Result<()> {
    let mut text = String::new();
    for (k, v) in lines {
        writeln!(text, "{k}={v}")?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Starts a JVM with `args`, output to `log`.
fn jvm(args: &[String], log: &Path, what: &str) -> Result<Proc> {
    let out = std::fs::File::create(log)?;
    let child = Command::new(java())
        .args(args)
        .env("KAFKA_HEAP_OPTS", "")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {what} ({})", java().display()))?;
    Ok(Proc(child))
}

const JVM_OPTS: [&str; 4] = [
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-Djava.awt.headless=true",
];

/// Apache Kafka from `target/peers/kafka` (the testkit's broker, without its SASL_SSL listener): a KRaft node,
/// PLAINTEXT on a free port. Returns it and its bootstrap address once it listens.
pub(crate) fn start_apache_kafka(peers: &Path, work: &Path) -> Result<(Proc, String)> {
    let dir = work.join("kafka");
    std::fs::create_dir_all(dir.join("data"))?;
    let (plain, controller) = (free_port()?, free_port()?);
    let config = dir.join("server.properties");
    properties(
        &config,
        &[
            ("process.roles", "broker,controller".into()),
            ("node.id", "1".into()),
            (
                "controller.quorum.voters",
                format!("1@127.0.0.1:{controller}"),
            ),
            (
                "listeners",
                format!("PLAINTEXT://127.0.0.1:{plain},CONTROLLER://127.0.0.1:{controller}"),
            ),
            (
                "advertised.listeners",
                format!("PLAINTEXT://127.0.0.1:{plain}"),
            ),
            ("controller.listener.names", "CONTROLLER".into()),
            ("inter.broker.listener.name", "PLAINTEXT".into()),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
            ),
            ("log.dirs", dir.join("data").display().to_string()),
            ("num.partitions", "1".into()),
            ("offsets.topic.replication.factor", "1".into()),
            ("offsets.topic.num.partitions", "1".into()),
            ("transaction.state.log.replication.factor", "1".into()),
            ("transaction.state.log.min.isr", "1".into()),
            (
                "share.coordinator.state.topic.replication.factor",
                "1".into(),
            ),
            ("share.coordinator.state.topic.min.isr", "1".into()),
            ("group.initial.rebalance.delay.ms", "0".into()),
        ],
    )?;
    let cp = format!("{}/kafka/lib/*", peers.display());
    let format = Command::new(java())
        .args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-cp",
            &cp,
            "kafka.tools.StorageTool",
        ])
        // Any id of 16 bytes in URL-safe base64: the storage is fresh every run.
        .args([
            "format",
            "--cluster-id",
            "dXJzYS1iZW5jaC1ydW50aW1l",
            "--config",
        ])
        .arg(&config)
        .output()
        .context("running kafka-storage format")?;
    if !format.status.success() {
        bail!(
            "kafka-storage format failed: {}",
            String::from_utf8_lossy(&format.stderr)
        );
    }
    let mut args: Vec<String> = JVM_OPTS.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "-cp".into(),
        cp,
        "kafka.Kafka".into(),
        config.display().to_string(),
    ]);
    let broker = jvm(&args, &dir.join("broker.log"), "Apache Kafka")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", plain)).is_err() {
        if Instant::now() > deadline {
            bail!(
                "Apache Kafka did not listen on {plain}; its log ends:\n{}",
                crate::log_tail(&dir.join("broker.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((broker, format!("127.0.0.1:{plain}")))
}

/// One HTTP/1.0 request: the status and the body.
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String)> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP answer from {addr}: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

/// A Kafka Connect worker (distributed mode, a group of one) from `target/peers/connect`, with connect-file
/// on its plugin.path and JsonConverter without schemas; returns it, its pid and its REST address once it
/// lists FileStreamSinkConnector.
fn start_connect(peers: &Path, work: &Path, bootstrap: &str) -> Result<(Proc, u32, String)> {
    start_connect_with(peers, work, bootstrap, &[], "FileStreamSinkConnector")
}

/// Kafka Connect (distributed, a group of one) with `connect/plugins` and `plugin_dirs` on its plugin path,
/// once `/connector-plugins` lists `expect`: the process, its pid and its REST address.
pub(crate) fn start_connect_with(
    peers: &Path,
    work: &Path,
    bootstrap: &str,
    plugin_dirs: &[PathBuf],
    expect: &str,
) -> Result<(Proc, u32, String)> {
    let dir = work.join("connect");
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let id = format!("bench-connect-{}", std::process::id());
    let json = "org.apache.kafka.connect.json.JsonConverter";
    let config = dir.join("worker.properties");
    properties(
        &config,
        &[
            ("bootstrap.servers", bootstrap.to_owned()),
            ("group.id", id.clone()),
            ("config.storage.topic", format!("{id}-configs")),
            ("offset.storage.topic", format!("{id}-offsets")),
            ("status.storage.topic", format!("{id}-status")),
            ("config.storage.replication.factor", "1".into()),
            ("offset.storage.replication.factor", "1".into()),
            ("status.storage.replication.factor", "1".into()),
            ("offset.storage.partitions", "1".into()),
            ("status.storage.partitions", "1".into()),
            ("key.converter", json.into()),
            ("value.converter", json.into()),
            ("key.converter.schemas.enable", "false".into()),
            ("value.converter.schemas.enable", "false".into()),
            (
                "plugin.path",
                std::iter::once(peers.join("connect/plugins"))
                    .chain(plugin_dirs.iter().cloned())
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("listeners", format!("http://127.0.0.1:{port}")),
            ("rest.advertised.host.name", "127.0.0.1".into()),
            ("rest.advertised.port", port.to_string()),
            // Commits as often as ursa's in this bench.
            ("offset.flush.interval.ms", "500".into()),
            ("scheduled.rebalance.max.delay.ms", "0".into()),
        ],
    )?;
    let mut args: Vec<String> = JVM_OPTS.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "-cp".into(),
        format!("{}/connect/lib/*", peers.display()),
        "org.apache.kafka.connect.cli.ConnectDistributed".into(),
        config.display().to_string(),
    ]);
    let mut connect = jvm(&args, &dir.join("connect.log"), "Kafka Connect")?;
    let pid = connect.0.id();
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok((200, plugins)) = http(&addr, "GET", "/connector-plugins", None)
            && plugins.contains(expect)
        {
            break;
        }
        if let Ok(Some(status)) = connect.0.try_wait() {
            bail!(
                "Kafka Connect exited ({status}); its log ends:\n{}",
                crate::log_tail(&dir.join("connect.log"))
            );
        }
        if Instant::now() > deadline {
            bail!(
                "Kafka Connect did not list {expect}; its log ends:\n{}",
                crate::log_tail(&dir.join("connect.log"))
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok((connect, pid, addr))
}

/// Creates a FileStreamSink connector (JsonConverter, schemas off) on the running worker and waits until its
/// file has `n` lines; the time and the JVM's CPU are from the `POST /connectors` to the N-th line.
fn connect_run(
    connect: &mut Proc,
    pid: u32,
    addr: &str,
    work: &Path,
    label: &str,
    topic: &str,
    n: u64,
) -> Result<Measure> {
    let tag = label.replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let out = work.join(format!("connect-{tag}.txt"));
    let name = format!("bench-{tag}-{}", std::process::id());
    let body = serde_json::json!({
        "name": name,
        "config": {
            "connector.class": "FileStreamSink",
            "tasks.max": "1",
            "topics": topic,
            "file": out.display().to_string(),
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
        }
    });
    let ticks = clock_ticks();
    let cpu_before = cpu_of(pid, ticks);
    let start = Instant::now();
    let (status, answer) = http(addr, "POST", "/connectors", Some(&body.to_string()))?;
    if status != 201 {
        bail!("creating the FileStreamSink connector: {status} {answer}");
    }
    let mut counter = LineCounter::new(out.clone());
    let mut last_progress = (Instant::now(), 0);
    let mut first_line = None;
    let (seconds, cpu_after) = loop {
        let lines = counter.poll();
        if lines > 0 && first_line.is_none() {
            first_line = Some(start.elapsed().as_secs_f64());
        }
        if lines >= n {
            break (start.elapsed().as_secs_f64(), cpu_of(pid, ticks));
        }
        if lines > last_progress.1 {
            last_progress = (Instant::now(), lines);
        } else if last_progress.0.elapsed() > STALL {
            bail!("Kafka Connect stalled at {lines} of {n} lines");
        }
        if let Ok(Some(status)) = connect.0.try_wait() {
            bail!("Kafka Connect exited ({status}) at {lines} of {n} lines");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = http(addr, "DELETE", &format!("/connectors/{name}"), None);
    let _ = std::fs::remove_file(&out);
    Ok(Measure {
        name: label.into(),
        records: n,
        seconds,
        cpu_seconds: cpu_before.zip(cpu_after).map(|(b, a)| a - b),
        peak_mib: peak_of(pid),
        note: format!(
            "POST /connectors to N lines{}; JVM CPU in that time; peak RSS of the JVM",
            first_line_note(first_line)
        ),
    })
}

/// The JSON rows: one broker, the records produced once, then Kafka Connect (a fresh JVM's first connector,
/// then a second one on the warm JVM) and `ursa run` (defaults, then without fsync, as FileStreamSink).
/// Produces `n` JSON `MessageReceived` values to a new `topic` of [`PARTITIONS`] partitions; returns the
/// average value size in bytes.
fn produce_json(root: &Path, bootstrap: &str, topic: &str, schema: &Path, n: u64) -> Result<f64> {
    eprintln!("producing {n} JSON MessageReceived records to {topic} ({PARTITIONS} partitions)");
    let out = Command::new(python())
        .args(["-c", PRODUCE_JSON])
        .arg(root)
        .args([bootstrap, topic, &PARTITIONS.to_string()])
        .arg(schema)
        .arg(n.to_string())
        .stderr(Stdio::inherit())
        .output()
        .context("running the JSON producer")?;
    if !out.status.success() {
        bail!("producing the JSON records failed ({})", out.status);
    }
    let produced: Value = serde_json::from_slice(&out.stdout)?;
    Ok(produced["avg_value_bytes"].as_f64().unwrap_or(0.0))
}

/// Runs of each side compared on the warm JVM: Kafka Connect's warm connectors, and (e).
const WARM_RUNS: usize = 3;

/// The median of some figures (the mean of the middle two of an even count); `None` for none.
pub(crate) fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some((v[mid - 1] + v[mid]) / 2.0),
    }
}

fn json_rows(root: &Path, ursa: &Path, work: &Path, schema: &Path, n: u64) -> Result<String> {
    let peers = root.join("target/peers");
    // Peers already fetched are used as they are (`cargo xtask test` keeps them fresh); a refetch would
    // replace the jars under tests that may be running.
    let fetched = ["kafka/lib", "connect/lib", "connect/plugins"]
        .iter()
        .all(|d| peers.join(d).is_dir());
    if !fetched && !crate::peers::ensure_java_peers()? {
        let skipped = "Kafka Connect rows not run: java or mvn does not answer here (install Java 17+ and Maven)";
        eprintln!("{skipped}");
        return Ok(format!("{skipped}\n"));
    }
    eprintln!("JSON rows: starting Apache Kafka");
    let (_broker, bootstrap) = start_apache_kafka(&peers, work)?;
    let topic = format!("bench-message-received-json-{}", std::process::id());
    let avg_bytes = produce_json(root, &bootstrap, &topic, schema, n)?;
    eprintln!("starting Kafka Connect");
    let (mut connect, pid, addr) = start_connect(&peers, work, &bootstrap)?;
    // One cold connector, then WARM_RUNS on the warm JVM; as many runs of (e): the goals compare the medians
    // (one run of either side moves by a quarter on these shared machines).
    let mut rows = Vec::new();
    let mut labels = vec![
        "(d) Kafka Connect FileStreamSink, JsonConverter (first connector of the JVM)".to_owned(),
    ];
    labels
        .extend((1..=WARM_RUNS).map(|i| format!("(d') the same, warm JVM (connector {})", i + 1)));
    for label in &labels {
        eprintln!("{label}");
        rows.push(connect_run(
            &mut connect,
            pid,
            &addr,
            work,
            label,
            &topic,
            n,
        )?);
    }
    let connect_peak = peak_of(pid);
    drop(connect);
    let json: [(&str, &str); 2] = [
        ("value.converter", "json"),
        ("value.converter.schemas.enable", "false"),
    ];
    for i in 1..=WARM_RUNS {
        eprintln!("(e) ursa run, file sink, json converter, run {i}");
        rows.push(ursa_run(
            ursa,
            work,
            &format!("(e) ursa run, file sink, json converter (defaults), run {i}"),
            &bootstrap,
            &topic,
            n,
            &json,
        )?);
    }
    eprintln!("(e') the same without fsync");
    rows.push(ursa_run(
        ursa,
        work,
        "(e') the same, file.fsync = false",
        &bootstrap,
        &topic,
        n,
        &[json[0], json[1], ("file.fsync", "false")],
    )?);
    let mut table = String::new();
    writeln!(
        table,
        "{n} JSON MessageReceived records ({avg_bytes:.0} bytes per value on average, the Avro rows' values as JSON text), {PARTITIONS} partitions, Apache Kafka 4.4 (local KRaft JVM); Kafka Connect 4.3.1 (distributed, 512 MiB heap, peak RSS {} MiB)\n",
        fmt_opt(connect_peak, 0)
    )?;
    writeln!(
        table,
        "| consumer | records | seconds | records/s | CPU s | records/CPU-s | peak RSS MiB | measured |"
    )?;
    writeln!(table, "|---|---:|---:|---:|---:|---:|---:|---|")?;
    for m in &rows {
        write_row(&mut table, m)?;
    }
    let warm = &rows[1..=WARM_RUNS];
    let e = &rows[1 + WARM_RUNS..1 + 2 * WARM_RUNS];
    let e_nofsync = &rows[1 + 2 * WARM_RUNS..];
    let connect_rate = median(warm.iter().map(Measure::rate));
    let connect_cpu = median(warm.iter().filter_map(Measure::per_cpu));
    for (name, runs) in [
        ("(e), the median of its runs,", e),
        ("(e'), one run,", e_nofsync),
    ] {
        let rate = median(runs.iter().map(Measure::rate));
        let cpu = median(runs.iter().filter_map(Measure::per_cpu));
        let per_cpu = match (cpu, connect_cpu) {
            (Some(x), Some(y)) => format!("{:.2}×", x / y),
            _ => "-".into(),
        };
        let rate = match (rate, connect_rate) {
            (Some(x), Some(y)) => format!("{:.2}×", x / y),
            _ => "-".into(),
        };
        writeln!(
            table,
            "\n{name} vs the median of Kafka Connect's warm runs: {rate} the records/s, {per_cpu} the records per CPU-second"
        )?;
    }
    Ok(table)
}

// ---------------------------------------------------------------------------------------------------------
// `cargo xtask bench commit-interval`: what committing more often costs.

/// The commit intervals compared, in milliseconds: the old default, the new one, and the Python peer's.
const INTERVALS_MS: &[u64] = &[5000, 1000, 500];
/// Rounds: the intervals alternate within each round, so that load from elsewhere hits them alike.
const ROUNDS: usize = 3;

/// `cargo xtask bench commit-interval`: `ursa run` (file sink, json converter, fsync on) reading the same N
/// JSON records from Apache Kafka with `offset.flush.interval.ms` = 5 s, 1 s and 500 ms, alternating, three
/// rounds; prints the median records/s and records per CPU-second of each, and their ratios to 5 s.
pub fn commit_interval() -> Result<ExitCode> {
    ensure_kafka_peers()?;
    let n = env_u64("URSA_BENCH_RECORDS", DEFAULT_RECORDS)?;
    let root = crate::codegen::root();
    let ursa = release_ursa(&root)?;
    let peers = root.join("target/peers");
    let work = std::env::temp_dir().join(format!("ursa-bench-interval-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let result = commit_interval_in(&root, &ursa, &peers, &work, n);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn commit_interval_in(
    root: &Path,
    ursa: &Path,
    peers: &Path,
    work: &Path,
    n: u64,
) -> Result<ExitCode> {
    let machine_before = machine();
    let schema = work.join("MessageReceived.avsc");
    std::fs::write(&schema, message_received_schema(root)?)?;
    eprintln!("starting Apache Kafka");
    let (_broker, bootstrap) = start_apache_kafka(peers, work)?;
    let topic = format!("bench-commit-interval-{}", std::process::id());
    let avg_bytes = produce_json(root, &bootstrap, &topic, &schema, n)?;
    let mut runs: Vec<Vec<Measure>> = vec![Vec::new(); INTERVALS_MS.len()];
    for round in 0..ROUNDS {
        for (i, ms) in INTERVALS_MS.iter().enumerate() {
            eprintln!("round {}: offset.flush.interval.ms = {ms}", round + 1);
            let ms = ms.to_string();
            // A label per run: each run is a connector (a consumer group) of its own, from the beginning.
            runs[i].push(ursa_run(
                ursa,
                work,
                &format!("interval {ms} ms round {round}"),
                &bootstrap,
                &topic,
                n,
                &[
                    ("value.converter", "json"),
                    ("value.converter.schemas.enable", "false"),
                    ("offset.flush.interval.ms", &ms),
                ],
            )?);
        }
    }
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let summary: Vec<(f64, f64)> = runs
        .iter()
        .map(|ms| {
            (
                median(ms.iter().map(Measure::rate).collect()),
                median(ms.iter().filter_map(Measure::per_cpu).collect()),
            )
        })
        .collect();
    let mut table = String::new();
    writeln!(
        table,
        "{n} JSON MessageReceived records ({avg_bytes:.0} bytes per value on average), {PARTITIONS} partitions, Apache Kafka 4.4 (local KRaft JVM); `ursa run`, file sink, json converter, fsync on; {ROUNDS} rounds, intervals alternating; machine before: {machine_before}; after: {}\n",
        machine()
    )?;
    writeln!(
        table,
        "| `offset.flush.interval.ms` | records/s (median) | records/CPU-s (median) | records/s per run | records/s vs 5 s | records/CPU-s vs 5 s |"
    )?;
    writeln!(table, "|---:|---:|---:|---|---:|---:|")?;
    let (base_rate, base_cpu) = summary[0];
    for ((ms, (rate, cpu)), measures) in INTERVALS_MS.iter().zip(&summary).zip(&runs) {
        let each: Vec<String> = measures
            .iter()
            .map(|m| format!("{:.0}", m.rate()))
            .collect();
        writeln!(
            table,
            "| {ms} | {rate:.0} | {cpu:.0} | {} | {:.2}× | {:.2}× |",
            each.join(", "),
            rate / base_rate,
            cpu / base_cpu
        )?;
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
