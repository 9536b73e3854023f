//! PostgreSQL for `cargo xtask test`: the server `DATABASE_URL` names when it answers, else a private cluster
//! for the run (Debian's `postgresql` package is installed first when no `initdb` is found), whose URL the tests
//! get as `DATABASE_URL`.
//!
//! The cluster lives in `target/pg/<unique>`, trusts loopback, listens on 127.0.0.1 on a free port (its unix
//! socket inside the data directory) and runs with `fsync=off`; as root, `initdb` and `postgres` (which refuse
//! root) run as the `postgres` user. A watchdog shell holding a pipe from xtask stops it (fast shutdown) and
//! removes the directory when the handle drops or xtask dies in any way.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The system user that runs the cluster when xtask runs as root.
const SYSTEM_USER: &str = "postgres";

/// The PostgreSQL server of a test run. Pass [`url`](Self::url) to `cargo test` as `DATABASE_URL`; a private
/// cluster stops when this drops.
pub struct PostgresForTests {
    url: String,
    /// Held, not read: dropping it stops the cluster.
    #[allow(dead_code)]
    cluster: Option<Cluster>,
}

impl PostgresForTests {
    /// The URL for `DATABASE_URL` (a maintenance database the tests create their databases from).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is a private cluster started for the run (rather than `DATABASE_URL`'s server).
    pub fn is_private(&self) -> bool {
        self.cluster.is_some()
    }
}

/// `DATABASE_URL`'s server if set (an error if it does not answer), else a private cluster for the run,
/// installing Debian's `postgresql` package first if needed.
pub fn ensure_postgres() -> Result<PostgresForTests> {
    if let Ok(url) = std::env::var("DATABASE_URL")
        && !url.trim().is_empty()
    {
        let url = url.trim().to_owned();
        check_answers(&url).with_context(|| {
            format!(
                "DATABASE_URL={} does not answer: start that server, or unset DATABASE_URL to let \
                 `cargo xtask test` start a private cluster",
                redact(&url)
            )
        })?;
        eprintln!("PostgreSQL for the tests: DATABASE_URL ({})", redact(&url));
        return Ok(PostgresForTests { url, cluster: None });
    }
    let bin = match bin_dir() {
        Some(bin) => bin,
        None => {
            install()?;
            bin_dir()
                .context("installed `postgresql`, but found no /usr/lib/postgresql/*/bin/initdb")?
        }
    };
    let cluster = Cluster::start(&bin)?;
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    eprintln!("PostgreSQL for the tests: a private cluster at {url}");
    Ok(PostgresForTests {
        url,
        cluster: Some(cluster),
    })
}

/// Debian's newest `/usr/lib/postgresql/<version>/bin`, else the directory of an `initdb` on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    debian.sort();
    debian.pop().map(|(_, bin)| bin).or_else(|| {
        let path = std::env::var_os("PATH")?;
        let initdb = std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|p| p.is_file())?;
        let dir = std::fs::canonicalize(initdb).ok()?.parent()?.to_owned();
        dir.join("postgres").is_file().then_some(dir)
    })
}

/// Installs Debian's `postgresql` package (updating the package lists if the first try fails).
fn install() -> Result<()> {
    eprintln!("installing PostgreSQL (Debian's `postgresql` package)");
    let ok = Command::new("sh")
        .args([
            "-c",
            "(apt-get install -y -qq postgresql || (apt-get update -qq && apt-get install -y -qq postgresql)) >/dev/null",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!(
            "could not install PostgreSQL: run `apt-get update && apt-get install -y postgresql` (as root), \
             or set DATABASE_URL to a server the tests may create databases on"
        );
    }
    Ok(())
}

/// Whether `url`'s server accepts connections: `pg_isready` when there is one, else a TCP connect to its
/// host and port.
fn check_answers(url: &str) -> Result<()> {
    if let Some(isready) = pg_isready() {
        let out = Command::new(&isready)
            .args(["-t", "10", "-d", url])
            .output()
            .with_context(|| format!("running {}", isready.display()))?;
        if !out.status.success() {
            bail!(
                "pg_isready: {}",
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .replace(url, &redact(url))
            );
        }
        return Ok(());
    }
    let Some(address) = tcp_address(url) else {
        // A unix-socket URL without pg_isready here: the tests' own check reports a problem.
        return Ok(());
    };
    std::net::TcpStream::connect(&address).with_context(|| format!("connecting to {address}"))?;
    Ok(())
}

fn pg_isready() -> Option<PathBuf> {
    let in_bin = bin_dir()
        .map(|b| b.join("pg_isready"))
        .filter(|p| p.is_file());
    in_bin.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("pg_isready"))
            .find(|p| p.is_file())
    })
}

/// `host:port` of a `postgres://…@host[:port]/…` URL (its first host; port 5432 by default), or `None` for a
/// unix socket.
fn tcp_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let first = hosts.split(',').next()?;
    if first.is_empty() || first.starts_with('%') {
        return None;
    }
    let has_port = if first.starts_with('[') {
        first.contains("]:")
    } else {
        first.contains(':')
    };
    Some(if has_port {
        first.to_owned()
    } else {
        format!("{first}:5432")
    })
}

/// `url` with its password, if any, hidden.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***{}", &rest[userinfo.len()..])
        }
        _ => url.to_owned(),
    }
}

/// The watchdog: ignores the terminal's signals (Ctrl-C reaches xtask's whole process group), starts the server
/// in a session of its own, prints its pid, waits for its stdin to close (the handle dropped, or xtask died),
/// then stops the server with a fast shutdown and removes the cluster's directory.
const WATCHDOG: &str = r#"log="$1"; dir="$2"; shift 2
trap '' INT QUIT HUP TERM
setsid "$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read _ignored
kill -s INT "$pid" 2>/dev/null
wait "$pid"
rm -rf -- "$dir""#;

/// A private cluster for the run.
struct Cluster {
    port: u16,
    pid: u32,
    dir: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Cluster {
    fn start(bin: &Path) -> Result<Cluster> {
        let as_user = running_as_root();
        if as_user
            && !Command::new("id")
                .args(["-u", SYSTEM_USER])
                .output()
                .is_ok_and(|o| o.status.success())
        {
            bail!(
                "running as root, which PostgreSQL refuses, and there is no `{SYSTEM_USER}` user to run it as \
                 (Debian's `postgresql` package creates it)"
            );
        }
        let command = |program: &Path| -> Vec<String> {
            let mut words = Vec::new();
            if as_user {
                words.extend(
                    [
                        "setpriv",
                        "--reuid=postgres",
                        "--regid=postgres",
                        "--init-groups",
                        "--",
                    ]
                    .map(String::from),
                );
            }
            words.push(program.display().to_string());
            words
        };
        let dir = scratch_dir(as_user, &command)?;
        let data = dir.join("data");
        let mut initdb = command(&bin.join("initdb"));
        initdb.extend(["-D".into(), data.display().to_string()]);
        initdb.extend(
            [
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]
            .map(String::from),
        );
        let out = Command::new(&initdb[0])
            .args(&initdb[1..])
            .current_dir(&dir)
            .output()
            .with_context(|| format!("running {}", initdb.join(" ")));
        match out {
            Ok(out) if out.status.success() => {}
            other => {
                let _ = std::fs::remove_dir_all(&dir);
                let out = other?;
                bail!(
                    "initdb failed ({}):\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut server = command(&bin.join("postgres"));
        server.extend([
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
        ]);
        server.extend(["-k".into(), data.display().to_string()]);
        for setting in [
            "listen_addresses=127.0.0.1",
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "dynamic_shared_memory_type=mmap",
            "max_connections=300",
        ] {
            server.extend(["-c".into(), setting.into()]);
        }
        let log = dir.join("server.log");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("postgres-watchdog")
            .arg(&log)
            .arg(&dir)
            .args(&server)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting PostgreSQL")?;
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = watchdog.stdout.take() {
            BufReader::new(stdout).read_line(&mut line)?;
        }
        let pid = line.trim().parse().unwrap_or(0);
        let cluster = Cluster {
            port,
            pid,
            dir,
            watchdog,
            stdin,
        };
        cluster.wait_ready(bin).with_context(|| {
            format!(
                "PostgreSQL did not come up; the end of its log:\n{}",
                crate::log_tail(&log)
            )
        })?;
        Ok(cluster)
    }

    /// Polls until the server accepts connections (`pg_isready`, else a TCP connect).
    fn wait_ready(&self, bin: &Path) -> Result<()> {
        let isready = bin.join("pg_isready");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if !self.server_running() {
                bail!("PostgreSQL exited");
            }
            let ready = if isready.is_file() {
                Command::new(&isready)
                    .args([
                        "-q",
                        "-t",
                        "2",
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        "postgres",
                    ])
                    .arg("-p")
                    .arg(self.port.to_string())
                    .status()
                    .is_ok_and(|s| s.success())
            } else {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "timed out after 60 s waiting for PostgreSQL on 127.0.0.1:{}",
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server process is alive (not exited, not a zombie).
    fn server_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                let state = s.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state != 'Z' && state != 'X')
            })
            .unwrap_or(false)
    }
}

impl Drop for Cluster {
    /// Asks the watchdog for a fast shutdown; kills the server if it has not stopped within 30 s.
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.watchdog.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(self.watchdog.try_wait(), Ok(None)) {
            eprintln!(
                "PostgreSQL did not stop within 30 s; killing it ({})",
                self.dir.display()
            );
            let _ = Command::new("kill")
                .args(["-s", "KILL", &self.pid.to_string()])
                .status();
        }
        let _ = self.watchdog.wait();
    }
}

/// Whether the effective user is root.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
            Some(uids.split_whitespace().nth(1)? == "0")
        })
        .unwrap_or(false)
}

/// A fresh directory the server's user can write in: `target/pg/<unique>`, else one under the temporary
/// directory (when that user cannot reach `target/`, or the socket path would pass 107 bytes).
fn scratch_dir(as_user: bool, command: &dyn Fn(&Path) -> Vec<String>) -> Result<PathBuf> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("run-{}-{nanos:09}", std::process::id());
    let target = crate::codegen::root().join("target");
    for base in [target.join("pg"), std::env::temp_dir().join("ursa-pg")] {
        let dir = base.join(&name);
        if dir.join("data/.s.PGSQL.65535").as_os_str().len() > 107
            || std::fs::create_dir_all(&dir).is_err()
        {
            continue;
        }
        let owned = !as_user
            || Command::new("chown")
                .arg(format!("{SYSTEM_USER}:"))
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        let test = command(Path::new("test"));
        let writable = owned
            && Command::new(&test[0])
                .args(&test[1..])
                .arg("-w")
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
        if writable {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    bail!(
        "found no directory for the PostgreSQL cluster that its user can write in ({} or {})",
        target.join("pg").display(),
        std::env::temp_dir().display()
    )
}

#[cfg(test)]
mod tests {
    use super::{redact, tcp_address};

    #[test]
    fn urls() {
        let at = |url| tcp_address(url);
        assert_eq!(
            at("postgres://u:p@db.example:6000/x").as_deref(),
            Some("db.example:6000")
        );
        assert_eq!(
            at("postgresql://u@10.0.0.1/x?sslmode=disable").as_deref(),
            Some("10.0.0.1:5432")
        );
        assert_eq!(at("postgres://[::1]/x").as_deref(), Some("[::1]:5432"));
        assert_eq!(at("postgres://[::1]:7/x").as_deref(), Some("[::1]:7"));
        assert_eq!(at("postgres://%2Fvar%2Frun%2Fpostgresql/x"), None);
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
