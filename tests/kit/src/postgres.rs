//! PostgreSQL for tests: the server `DATABASE_URL` names (`cargo xtask test` sets it), or else a private
//! cluster started from Debian's `postgresql` package for this test process; each test gets a database of its
//! own ([`Postgres::database`]), dropped when its handle drops.
//!
//! The private cluster is `initdb`'d into `target/pg/<unique>` (removed afterwards), trusts loopback, listens on
//! 127.0.0.1 on a free port with its unix socket inside the data directory, runs with `fsync=off`, and is a
//! [`Service`], so it never outlives the test process. PostgreSQL refuses to run as root: as root, `initdb` and
//! `postgres` run as the `postgres` system user the package creates (through `setpriv`).

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tokio_postgres::{Client, Config, NoTls};

use crate::process::{CommandExt as _, SETUP_TIMEOUT};
use crate::service::Service;
use crate::{free_port, unique_name, wait_until};

/// The command that installs PostgreSQL for the tests.
pub const INSTALL_POSTGRES: &str = "cargo xtask test (or: apt-get install -y postgresql)";

/// The superuser of a private cluster (and the user its URLs name).
const SUPERUSER: &str = "postgres";

/// The system user that runs a private cluster when the tests run as root.
const SYSTEM_USER: &str = "postgres";

/// A PostgreSQL server for tests: `DATABASE_URL`'s, or a private cluster this process started.
pub struct Postgres {
    url: String,
    service: Option<Service>,
    /// How to start a private cluster's server again after [`Postgres::stop_server`].
    server: Option<ServerCommand>,
    /// Holds a private cluster's directory: removed when this handle drops (or the test process dies), not when
    /// the server stops, so that the cluster can be restarted.
    _janitor: Option<Service>,
}

/// The command line of a private cluster's server.
struct ServerCommand {
    program: PathBuf,
    args: Vec<String>,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    /// The server shared by every test of this process: `DATABASE_URL`'s when set (the test process exits with
    /// a clear message if it does not answer), else a private cluster started on first use.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        SHARED.get_or_init(|| match Postgres::from_env() {
            Ok(pg) => pg,
            Err(e) => {
                // Straight to stderr: the test harness captures `eprintln!`, and would lose it on exit.
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot provide PostgreSQL for the tests: {e:#}"
                );
                std::process::exit(101)
            }
        })
    }

    /// `DATABASE_URL`'s server when the variable is set (an error if it does not answer: another server is
    /// never started in its place), else a fresh private cluster ([`Postgres::start`]).
    pub fn from_env() -> Result<Postgres> {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.trim().is_empty() => Postgres::existing(url.trim()).with_context(|| {
                "DATABASE_URL is set, but the tests cannot use that server: start it (or fix the URL), or unset \
                 DATABASE_URL to let the tests start a private cluster"
            }),
            _ => Postgres::start(),
        }
    }

    /// A running server at `url` (`postgres://user[:password]@host[:port]/database`), checked by connecting.
    /// The user must be allowed to create databases.
    pub fn existing(url: &str) -> Result<Postgres> {
        with_database(url, "postgres")?;
        let shown = redact(url);
        let owned = url.to_owned();
        block_on(async move {
            let client = connect(&owned).await?;
            client.simple_query("SELECT 1").await?;
            anyhow::Ok(())
        })?
        .with_context(|| format!("connecting to {shown}"))?;
        Ok(Postgres {
            url: url.to_owned(),
            service: None,
            server: None,
            _janitor: None,
        })
    }

    /// Starts a private cluster (see the module docs); it stops when the handle drops.
    pub fn start() -> Result<Postgres> {
        let bin = bin_dir()?;
        let runner = Runner::detect()?;
        let dir = scratch_dir(&runner)?;
        let started = start_in(&bin, &runner, &dir);
        if started.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        started
    }

    /// The URL of the server's maintenance database (`DATABASE_URL`, or `…/postgres` on a private cluster).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The private cluster's process, if this handle started one (and it is not stopped).
    pub fn service(&self) -> Option<&Service> {
        self.service.as_ref()
    }

    /// Stops a private cluster's server with a fast shutdown (clients see their connections end, new ones are
    /// refused), keeping its data; [`Postgres::start_server`] starts it again. An error for `DATABASE_URL`'s
    /// server, which this process does not own.
    pub fn stop_server(&mut self) -> Result<()> {
        if self.server.is_none() {
            bail!(
                "only a private cluster the tests started can be stopped (DATABASE_URL's server cannot)"
            );
        }
        if let Some(service) = self.service.take() {
            fast_shutdown(&service)?;
        }
        Ok(())
    }

    /// Starts a stopped private cluster's server again, on the same port with the same data; returns once it
    /// accepts connections.
    pub fn start_server(&mut self) -> Result<()> {
        let Some(server) = &self.server else {
            bail!("only a private cluster the tests started can be started again");
        };
        if self.service.is_some() {
            return Ok(());
        }
        self.service = Some(spawn_server(server, &self.url)?);
        Ok(())
    }

    /// A client of the maintenance database; its connection runs on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client> {
        connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", redact(&self.url)))
    }

    /// Creates a database with a random name, for one test; it is dropped (best effort) when the handle drops.
    pub fn database(&self) -> Result<TestDatabase> {
        let name = unique_name("ursa_test").replace('-', "_");
        let url = with_database(&self.url, &name)?;
        let admin = self.url.clone();
        let sql = format!("CREATE DATABASE {}", quote_ident(&name));
        block_on(async move {
            connect(&admin).await?.batch_execute(&sql).await?;
            anyhow::Ok(())
        })?
        .with_context(|| format!("creating database {name} on {}", redact(&self.url)))?;
        Ok(TestDatabase {
            name,
            url,
            admin_url: self.url.clone(),
        })
    }
}

impl Drop for Postgres {
    /// Stops a private cluster with a fast shutdown (so it leaves no shared memory behind), then lets the
    /// [`Service`] kill what remains and remove the directory.
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            let _ = fast_shutdown(&service);
        }
    }
}

/// Sends the server a fast shutdown (SIGINT) and waits up to 20 s for it to exit.
fn fast_shutdown(service: &Service) -> Result<()> {
    let pid = service.pid().to_string();
    let sent = Command::new("kill")
        .args(["-s", "INT", &pid])
        .status()
        .is_ok_and(|s| s.success());
    if sent {
        wait_until("PostgreSQL to shut down", Duration::from_secs(20), || {
            (!service.is_running()).then_some(())
        })?;
    }
    Ok(())
}

/// A database of one test, on [`Postgres::shared`] (or another [`Postgres`]). Dropped with `WITH (FORCE)` when
/// the handle drops, so connections still open to it do not keep it alive.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// The database's name (random: `ursa_test_<hex>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its connection URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A client of this database; its connection runs on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client> {
        connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", redact(&self.url)))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = quote_ident(&self.name);
        let dropped = block_on(async move {
            let client = connect(&admin).await?;
            let force = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
            if client.batch_execute(&force).await.is_err() {
                // Before PostgreSQL 13 there is no FORCE.
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await?;
            }
            anyhow::Ok(())
        });
        if let Err(e) = dropped.and_then(|r| r) {
            eprintln!("warning: could not drop test database {}: {e:#}", self.name);
        }
    }
}

/// Connects to `url` (10 s connect timeout unless the URL sets one), driving the connection on the current
/// runtime.
async fn connect(url: &str) -> Result<Client> {
    let mut config: Config = url.parse().context("parsing the PostgreSQL URL")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own: callable from synchronous code
/// and from inside another runtime alike (whose thread it blocks meanwhile).
fn block_on<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                anyhow::Ok(runtime.block_on(future))
            })
            .join()
            .map_err(|_| anyhow!("the PostgreSQL client thread panicked"))?
    })
}

/// `url` with its database replaced by `database` (user, host, port and parameters kept).
fn with_database(url: &str, database: &str) -> Result<String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!(
            "expected a URL such as postgres://user@host:port/database, got {}",
            redact(url)
        );
    };
    if scheme != "postgres" && scheme != "postgresql" {
        bail!(
            "expected a postgres:// or postgresql:// URL, got {}",
            redact(url)
        );
    }
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, format!("?{query}")),
        None => (rest, String::new()),
    };
    let authority = location.split_once('/').map_or(location, |(a, _)| a);
    Ok(format!("{scheme}://{authority}/{database}{query}"))
}

/// `url` with its password, if any, hidden, for messages.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let host = &rest[userinfo.len()..];
            format!("{scheme}://{user}:***{host}")
        }
        _ => url.to_owned(),
    }
}

/// A double-quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The directory with `initdb` and `postgres`: Debian's newest `/usr/lib/postgresql/<version>/bin`, else the
/// directory of an `initdb` on `PATH`.
fn bin_dir() -> Result<PathBuf> {
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
    if let Some((_, bin)) = debian.pop() {
        return Ok(bin);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("initdb"))
            .find(|p| p.is_file())
    });
    if let Some(bin) = on_path
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_owned))
        .filter(|dir| dir.join("postgres").is_file())
    {
        return Ok(bin);
    }
    bail!(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): run \
         `{INSTALL_POSTGRES}`, or set DATABASE_URL to a server the tests may create databases on"
    )
}

/// How `initdb` and `postgres` are run: directly, or (as root, which they refuse) as the `postgres` user.
enum Runner {
    Direct,
    AsSystemUser,
}

impl Runner {
    fn detect() -> Result<Runner> {
        if !running_as_root() {
            return Ok(Runner::Direct);
        }
        let known = Command::new("id")
            .args(["-u", SYSTEM_USER])
            .output_within(SETUP_TIMEOUT)
            .is_ok_and(|o| o.status.success());
        if !known {
            bail!(
                "the tests run as root, which PostgreSQL refuses, and there is no `{SYSTEM_USER}` user to run \
                 it as (Debian's package creates it: `{INSTALL_POSTGRES}`)"
            );
        }
        Ok(Runner::AsSystemUser)
    }

    /// The program and leading arguments that run `program` as the right user.
    fn wrap(&self, program: &Path) -> (PathBuf, Vec<String>) {
        match self {
            Runner::Direct => (program.to_owned(), Vec::new()),
            Runner::AsSystemUser => (
                PathBuf::from("setpriv"),
                vec![
                    format!("--reuid={SYSTEM_USER}"),
                    format!("--regid={SYSTEM_USER}"),
                    "--init-groups".into(),
                    "--".into(),
                    program.display().to_string(),
                ],
            ),
        }
    }

    fn command(&self, program: &Path) -> Command {
        let (program, args) = self.wrap(program);
        let mut command = Command::new(program);
        command.args(args);
        command
    }

    /// Hands `dir` to the user, and checks that they can write there (every parent must let them through).
    fn adopt(&self, dir: &Path) -> Result<bool> {
        if let Runner::AsSystemUser = self {
            let chown = Command::new("chown")
                .arg(format!("{SYSTEM_USER}:"))
                .arg(dir)
                .output_within(SETUP_TIMEOUT)
                .context("running chown")?;
            if !chown.status.success() {
                bail!(
                    "chown {SYSTEM_USER}: {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&chown.stderr)
                );
            }
        }
        Ok(self
            .command(Path::new("test"))
            .arg("-w")
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success()))
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

/// A fresh directory for a cluster, owned by the user that runs it: `target/pg/<unique>`, else (when that user
/// cannot reach `target/`, or the socket path would be too long) one under the system's temporary directory.
fn scratch_dir(runner: &Runner) -> Result<PathBuf> {
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target");
    let target = std::fs::canonicalize(&target).unwrap_or(target);
    let name = unique_name("cluster");
    for base in [target.join("pg"), std::env::temp_dir().join("ursa-pg")] {
        let dir = base.join(&name);
        // A unix socket path holds at most 107 bytes.
        if dir.join("data/.s.PGSQL.65535").as_os_str().len() > 107 {
            continue;
        }
        if std::fs::create_dir_all(&dir).is_err() {
            continue;
        }
        if runner.adopt(&dir)? {
            return Ok(dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    bail!(
        "no directory for a private PostgreSQL cluster: cannot create one that the server's user can write in \
         {} or {} (with a unix socket path under 108 bytes)",
        target.join("pg").display(),
        std::env::temp_dir().display()
    )
}

/// `initdb` in `dir/data`, then the server as a [`Service`]; returns once it accepts connections.
fn start_in(bin: &Path, runner: &Runner, dir: &Path) -> Result<Postgres> {
    let data = dir.join("data");
    let initdb = runner
        .command(&bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .current_dir(dir)
        .output_within(SETUP_TIMEOUT)
        .with_context(|| format!("running {}", bin.join("initdb").display()))?;
    if !initdb.status.success() {
        bail!(
            "initdb failed ({}):\n{}{}",
            initdb.status,
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
    }
    let port = free_port()?;
    let (program, mut args) = runner.wrap(&bin.join("postgres"));
    args.extend(["-D".into(), data.display().to_string()]);
    args.extend(["-p".into(), port.to_string()]);
    args.extend(["-k".into(), data.display().to_string()]);
    for setting in [
        "listen_addresses=127.0.0.1",
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        // Dynamic shared memory in the data directory, not /dev/shm: nothing outlives a killed server.
        "dynamic_shared_memory_type=mmap",
        "max_connections=200",
    ] {
        args.extend(["-c".into(), setting.into()]);
    }
    // The directory outlives a stopped server (it can be started again) but not this handle or this process.
    let janitor = Service::spawn(
        "PostgreSQL's directory",
        "sleep",
        ["2147483647"],
        &[],
        &dir.join("janitor.log"),
        Some(dir),
    )?;
    let server = ServerCommand {
        program,
        args,
        dir: dir.to_owned(),
        port,
    };
    let url = format!("postgres://{SUPERUSER}@127.0.0.1:{port}/postgres");
    let service = spawn_server(&server, &url)?;
    Ok(Postgres {
        url,
        service: Some(service),
        server: Some(server),
        _janitor: Some(janitor),
    })
}

/// Starts the server as a [`Service`] and waits until it accepts connections at `url`.
fn spawn_server(server: &ServerCommand, url: &str) -> Result<Service> {
    let service = Service::spawn(
        "PostgreSQL",
        &server.program,
        &server.args,
        // A fast shutdown (SIGINT) first: a killed postmaster leaves its SysV shared memory segment behind.
        &[(crate::STOP_SIGNAL_ENV, std::ffi::OsStr::new("INT"))],
        &server.dir.join("server.log"),
        None,
    )?;
    let port = server.port;
    let ready = wait_until(
        &format!("PostgreSQL accepting connections on 127.0.0.1:{port}"),
        Duration::from_secs(60),
        || {
            if !service.is_running() {
                return Some(Err(anyhow!("PostgreSQL exited")));
            }
            let url = url.to_owned();
            let answered = block_on(async move {
                connect(&url).await?.simple_query("SELECT 1").await?;
                anyhow::Ok(())
            });
            matches!(answered, Ok(Ok(()))).then_some(Ok(()))
        },
    )
    .and_then(|r| r);
    if let Err(e) = ready {
        let tail = service.log_tail(30);
        return Err(e.context(format!(
            "PostgreSQL did not come up; the end of its log:\n{tail}"
        )));
    }
    Ok(service)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::{redact, with_database};

    #[test]
    fn urls() {
        assert_eq!(
            with_database("postgres://u:p@h:5/db?sslmode=disable", "x").unwrap(),
            "postgres://u:p@h:5/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgresql://h", "x").unwrap(),
            "postgresql://h/x"
        );
        assert!(with_database("host=h dbname=d", "x").is_err());
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
