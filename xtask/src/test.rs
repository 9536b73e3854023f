//! `cargo xtask test`: installs what the tests need, then runs formatting, lints, freshness checks and every test.

use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// Arguments of `cargo xtask test`.
#[derive(clap::Args)]
pub struct Args {
    /// Extra arguments passed to `cargo test`.
    #[arg(trailing_var_arg = true)]
    rest: Vec<String>,
}

/// Runs cargo with `args` in the workspace root; fails on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<()> {
    cargo_with(args, &[])
}

/// Runs cargo with `args` and the environment variables `env` in the workspace root; fails on a non-zero exit.
pub fn cargo_with(args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command.args(args).current_dir(crate::codegen::root());
    for (k, v) in env {
        command.env(k, v);
    }
    let status = command
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Python packages the tests use as third-party peers.
const PYTHON_PACKAGES: &[&str] = &[
    "fastavro==1.13.1",
    // fastavro's snappy and zstandard codecs.
    "cramjam==2.14.0",
    "backports.zstd==1.8.0",
    "avro==1.12.2",
    "confluent-kafka[avro,schemaregistry]==2.16.1",
    "kafka-connect-py==1.0.0",
    "prometheus_client==0.24.1",
    "aiosmtpd==1.4.6",
    "standardwebhooks==1.1.0",
    "psycopg[binary]==3.3.9",
];

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `(distribution, version)` of each `name[extras]==version` requirement.
fn pins<'a>(packages: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    packages
        .iter()
        .filter_map(|p| p.split_once("=="))
        .map(|(name, version)| (name.split('[').next().unwrap_or(name), version))
        .collect()
}

/// The requirements of `packages` that `py` does not have at the pinned version, one line each.
fn python_mismatches(py: &str, packages: &[&str]) -> Result<Vec<String>> {
    let pins: Vec<String> = pins(packages)
        .iter()
        .map(|(name, version)| format!("({name:?}, {version:?})"))
        .collect();
    let script = format!(
        "import importlib.metadata as m\n\
         for name, want in [{}]:\n\
         \x20   try:\n\
         \x20       have = m.version(name)\n\
         \x20   except m.PackageNotFoundError:\n\
         \x20       print(f'{{name}} is not installed, {{want}} is pinned')\n\
         \x20       continue\n\
         \x20   if have != want:\n\
         \x20       print(f'{{name}} {{have}} is installed, {{want}} is pinned')\n",
        pins.join(", ")
    );
    let out = Command::new(py)
        .args(["-c", &script])
        .output()
        .with_context(|| format!("running {py}"))?;
    if !out.status.success() {
        bail!(
            "{py} could not list its packages: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect())
}

/// Installs the Python packages unless every one is installed at its pinned version and importable.
pub fn ensure_python_packages() -> Result<()> {
    let py = python();
    let importable = Command::new(&py)
        .args([
            "-c",
            "import fastavro, avro, confluent_kafka.schema_registry.avro, kafka_connect",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let mismatches = python_mismatches(&py, PYTHON_PACKAGES)?;
    if importable && mismatches.is_empty() {
        return Ok(());
    }
    for m in &mismatches {
        eprintln!("{m}");
    }
    eprintln!(
        "installing Python test peers: {}",
        PYTHON_PACKAGES.join(" ")
    );
    let status = Command::new(&py)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PYTHON_PACKAGES)
        .status()
        .with_context(|| format!("running {py} -m pip"))?;
    if !status.success() {
        bail!("pip install {} failed", PYTHON_PACKAGES.join(" "));
    }
    Ok(())
}

/// The local Kafka-compatible broker the tests start (see tests/kit).
const NISSHI_INSTALL: &[&str] = &[
    "install",
    "nisshi",
    "--version",
    "0.8.1",
    "--locked",
    "--ignore-rust-version",
    "--no-default-features",
    "--features",
    "dynostore,libsql",
];

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// Installs nisshi into ~/.cargo/bin unless it is there (about 12 minutes once; cached across runs and clones).
pub fn ensure_nisshi() -> Result<()> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")));
    let cached = home
        .as_ref()
        .is_some_and(|h| h.join("bin/nisshi").is_file());
    if cached || on_path("nisshi") || std::env::var_os("NISSHI").is_some() {
        return Ok(());
    }
    eprintln!("installing the nisshi broker (once; about 12 minutes)");
    cargo(NISSHI_INSTALL)
}

/// Installs kcat (a third-party Kafka client with Schema Registry support) from Debian's packages if missing.
pub fn ensure_kcat() -> Result<()> {
    if on_path("kcat") {
        return Ok(());
    }
    eprintln!("installing kcat");
    let ok = Command::new("sh")
        .args([
            "-c",
            "(apt-get install -y -qq kcat || (apt-get update -qq && apt-get install -y -qq kcat)) >/dev/null",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        bail!("could not install kcat: run `apt-get update && apt-get install -y kcat`");
    }
    Ok(())
}

/// Whether a Docker engine answers (then Kafka tests use Apache Kafka through testcontainers).
fn docker_available() -> bool {
    Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// What a build of every test from scratch leaves in `target/` (11 GiB after a full run on a fresh clone,
/// 2026-12-02), with room for the peers, the private PostgreSQL cluster and the tests' own files.
const DISK_NEEDED: u64 = 16 << 30;

/// The bytes available to unprivileged users on the filesystem of the directory `df -Pk` reported on.
fn df_available(df_output: &str) -> Option<u64> {
    let line = df_output.lines().nth(1)?;
    let kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib * 1024)
}

/// Warns when the disk of `target/` is short of what a cold run needs: the build would otherwise fail later
/// with "No space left on device", in the middle of a compile. Not an error: a warm `target/` needs little.
fn check_disk() {
    let root = crate::codegen::root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let dir = if target.exists() { target } else { root };
    let Some(available) = Command::new("df")
        .arg("-Pk")
        .arg(&dir)
        .output()
        .ok()
        .and_then(|o| df_available(&String::from_utf8_lossy(&o.stdout)))
    else {
        return;
    };
    if available < DISK_NEEDED {
        eprintln!(
            "warning: {:.1} GiB free on the disk of {}; a run from a fresh clone needs about {} GiB (`cargo clean` \
             frees a stale target/)",
            available as f64 / f64::from(1u32 << 30),
            dir.display(),
            DISK_NEEDED >> 30
        );
    }
}

pub fn run(args: &Args) -> Result<ExitCode> {
    check_disk();
    ensure_python_packages()?;
    ensure_nisshi()?;
    ensure_kcat()?;
    crate::prometheus::ensure_prometheus()?;
    crate::node::ensure_node_peers()?;
    let java_peers = crate::peers::ensure_java_peers()?;
    // Kept alive until the tests are done: a private cluster stops when it drops.
    let postgres = crate::postgres::ensure_postgres()?;
    if postgres.is_private() {
        eprintln!(
            "PostgreSQL for the tests: a private cluster at {}",
            postgres.url()
        );
    }
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    let docker = docker_available();
    // The broker of the whole suite: as asked, else Docker's Apache Kafka, else the local one, else nisshi.
    let backend = match std::env::var("URSA_TEST_BACKEND") {
        Ok(b) if !b.is_empty() => b,
        _ if docker => "docker".to_owned(),
        _ if java_peers => "kafka".to_owned(),
        _ => "nisshi".to_owned(),
    };
    let mut test_args = vec!["test", "--workspace"];
    if backend == "docker" {
        eprintln!("a Docker engine answers: Kafka tests use Apache Kafka through testcontainers");
        test_args.extend(["--features", "ursa-testkit/docker"]);
    }
    test_args.extend(args.rest.iter().map(String::as_str));
    eprintln!("running every test on the `{backend}` broker");
    let env = [
        ("URSA_TEST_BACKEND", backend.as_str()),
        ("DATABASE_URL", postgres.url()),
    ];
    cargo_with(&test_args, &env)?;
    if backend != "nisshi" && args.rest.is_empty() {
        // nisshi stays the embedded default for machines without Java: the runtime's end-to-end tests run on it
        // too (tests of what only Apache Kafka shows ask for it by name and still get it).
        eprintln!("running the runtime's end-to-end tests again on the `nisshi` broker");
        cargo_with(
            &["test", "-p", "ursa", "--tests"],
            &[("URSA_TEST_BACKEND", "nisshi"), env[1]],
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn df_output_gives_the_available_bytes() {
        let out = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/vda         263112772 29696000 220000000      12% /\n";
        assert_eq!(df_available(out), Some(220_000_000 * 1024));
        assert_eq!(
            df_available("df: /nowhere: No such file or directory\n"),
            None
        );
    }

    #[test]
    fn python_pins_are_name_and_version() {
        assert_eq!(
            pins(PYTHON_PACKAGES),
            [
                ("fastavro", "1.13.1"),
                ("cramjam", "2.14.0"),
                ("backports.zstd", "1.8.0"),
                ("avro", "1.12.2"),
                ("confluent-kafka", "2.16.1"),
                ("kafka-connect-py", "1.0.0"),
                ("prometheus_client", "0.24.1"),
                ("aiosmtpd", "1.4.6"),
                ("standardwebhooks", "1.1.0"),
                ("psycopg", "3.3.9"),
            ]
        );
    }

    /// The check compares installed versions with the pins, not only that the modules import: a wrong
    /// version or a missing package is reported (run with the Python the tests use, which has fastavro).
    #[test]
    fn python_versions_are_checked_against_the_pins() {
        let py = python();
        assert_eq!(
            python_mismatches(&py, &["fastavro==0.0.1", "no-such-package-ursa==1.0"]).unwrap(),
            [
                format!(
                    "fastavro {} is installed, 0.0.1 is pinned",
                    python_version(&py, "fastavro")
                ),
                "no-such-package-ursa is not installed, 1.0 is pinned".to_owned(),
            ]
        );
        let installed = format!("fastavro=={}", python_version(&py, "fastavro"));
        assert!(python_mismatches(&py, &[&installed]).unwrap().is_empty());
    }

    fn python_version(py: &str, dist: &str) -> String {
        let out = Command::new(py)
            .args([
                "-c",
                &format!("import importlib.metadata as m; print(m.version({dist:?}))"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{dist} is not installed: run `cargo xtask test`"
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}
