//! A `ursa run` worker as a child process: started, its REST URL read from its first line, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long [`WorkerProcess::terminate`] waits for the worker to exit after SIGTERM (its drain deadline plus
/// a margin).
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`WorkerProcess::start`] waits for the worker's first line (its URL): joining the cluster and
/// reading the config topic included.
pub const START_TIMEOUT: Duration = Duration::from_secs(90);

/// A running worker process.
pub struct WorkerProcess {
    /// The child.
    pub child: Child,
    /// Its REST URL.
    pub url: String,
}

impl WorkerProcess {
    /// Runs `bin run ARGS…` and waits for "ursa worker listening on URL".
    pub fn start(bin: &str, args: &[&str]) -> Result<WorkerProcess> {
        WorkerProcess::start_within(bin, args, START_TIMEOUT)
    }

    /// [`WorkerProcess::start`], waiting `timeout` for the first line.
    pub fn start_within(bin: &str, args: &[&str], timeout: Duration) -> Result<WorkerProcess> {
        let mut child = Command::new(bin)
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let stdout = child.stdout.take().context("worker stdout")?;
        // The first line is read on a thread of its own, so that a worker that neither starts nor exits
        // fails the call at START_TIMEOUT instead of hanging the suite.
        let (sent, first) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = sent.send(read);
        });
        let line = match first.recv_timeout(timeout) {
            Ok(read) => read.context("reading the worker's first line")?,
            Err(_) => {
                wait_or_kill(&mut child, Duration::ZERO)?;
                bail!("the worker printed no URL within {timeout:?} (killed; its log is above)");
            }
        };
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !url.starts_with("http://") {
            // How it ended, if it is ending (a worker that refuses its config exits at once).
            let status = match wait_or_kill(&mut child, Duration::from_secs(5)) {
                Ok(Some(status)) => status.to_string(),
                _ => "still running (killed)".to_owned(),
            };
            bail!("the worker did not start: first line {line:?}, {status} (its log is above)");
        }
        Ok(WorkerProcess { child, url })
    }

    /// `kill -9`: no drain, no commit, no flush; fails if the process had already exited cleanly.
    pub fn kill9(mut self) -> Result<()> {
        self.child.kill()?;
        let status = self.child.wait()?;
        if status.success() {
            bail!("the worker had exited cleanly before the kill");
        }
        Ok(())
    }

    /// `GET path` on the worker's REST API: the status code and body, `None` if it does not answer.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let addr = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(addr).ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_owned()))
    }

    /// The sum of a Prometheus counter family over all its label sets, from `GET /metrics`.
    pub fn counter(&self, family: &str) -> Option<u64> {
        let (_, text) = self.get("/metrics")?;
        let prefix = format!("{family}{{");
        Some(
            text.lines()
                .filter(|l| l.starts_with(&prefix))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .map(|v| v as u64)
                .sum(),
        )
    }

    /// Sends SIGTERM and waits at most [`TERMINATE_TIMEOUT`]; true when it exited successfully. A worker
    /// that does not exit in time (a drain that hangs) is killed and the call fails, so that a hang fails
    /// the test instead of hanging the suite.
    pub fn terminate(&mut self) -> Result<bool> {
        self.terminate_within(TERMINATE_TIMEOUT)
    }

    /// As [`WorkerProcess::terminate`], waiting at most `timeout`.
    pub fn terminate_within(&mut self, timeout: Duration) -> Result<bool> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let Some(status) = wait_or_kill(&mut self.child, timeout)? else {
            bail!(
                "the worker did not exit within {timeout:?} of SIGTERM (its drain hangs); killed it"
            );
        };
        if !status.success() {
            // A signal (a crash) or an exit code: what the failing assertion cannot show.
            eprintln!("the worker {} exited after SIGTERM with {status}", self.url);
        }
        Ok(status.success())
    }
}

/// Waits at most `timeout` for `child` to exit: its status, or `None` when it had not exited by then and
/// was killed (and reaped).
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let status = wait_for(child, timeout)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    Ok(status)
}

/// Waits at most `timeout` for `child` to exit: its status, or `None` when it is still running.
fn wait_for(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long [`output_within`] lets a peer client (a Python script, kcat) run before it is killed.
pub const PEER_TIMEOUT: Duration = Duration::from_secs(180);

/// The longest a setup command of the kit may take (`initdb`, formatting a broker's storage, `openssl`,
/// `chown`): minutes on a slow machine at most, and a hung one fails the test instead of the suite.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a peer that overran its deadline has, after SIGABRT, to print where it was before SIGKILL.
const ABORT_GRACE: Duration = Duration::from_secs(10);

/// Runs `command` to completion with `stdin` as its input and its output captured, as
/// [`Command::output`] does, but stops it and fails once `timeout` has passed: a peer client that hangs
/// (a registry that never answers, a consumer that never gets its records) fails the test with what it
/// printed instead of hanging the suite.
///
/// Python runs unbuffered and with its fault handler on, and a peer that overruns gets SIGABRT first (then
/// SIGKILL [`ABORT_GRACE`] later): a Python script then prints the stack of each of its threads, so the
/// failure says which call hung.
pub fn output_within(
    command: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<std::process::Output> {
    use std::io::{Read, Write};
    let mut child = command
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONFAULTHANDLER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    let input = stdin.unwrap_or_default().to_vec();
    let mut pipe = child.stdin.take().context("child stdin")?;
    // Writer and readers on their own threads, so that a child that fills one pipe while we write the
    // other cannot deadlock against us.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let stdout = read(Box::new(child.stdout.take().context("child stdout")?));
    let stderr = read(Box::new(child.stderr.take().context("child stderr")?));
    let Some(status) = wait_for(&mut child, timeout)? else {
        let _ = Command::new("kill")
            .args(["-ABRT", &child.id().to_string()])
            .status();
        wait_or_kill(&mut child, ABORT_GRACE)?;
        let err = stderr.join().unwrap_or_default();
        let out = stdout.join().unwrap_or_default();
        bail!(
            "{:?} did not finish within {timeout:?}; killed it. stdout:\n{}\nstderr:\n{}",
            command,
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
    };
    let _ = writer.join();
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// [`output_within`] as a method, in place of [`Command::output`]: `cmd.args(…).output_within(PEER_TIMEOUT)`.
pub trait CommandExt {
    /// Runs the command with no input, its output captured, failing once `timeout` has passed.
    fn output_within(&mut self, timeout: Duration) -> Result<std::process::Output>;
}

impl CommandExt for Command {
    fn output_within(&mut self, timeout: Duration) -> Result<std::process::Output> {
        output_within(self, None, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executable shell script `body` in a fresh temporary directory.
    fn script(name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!("ursa-testkit-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A worker that neither prints its URL nor exits fails `start` at its timeout, and one that exits
    /// first says what it printed and how it ended, instead of hanging the suite.
    #[test]
    fn a_worker_that_does_not_start_fails_in_time() {
        let silent = script("silent", "exec sleep 120");
        let started = Instant::now();
        let err =
            WorkerProcess::start_within(silent.to_str().unwrap(), &[], Duration::from_secs(1))
                .err()
                .expect("a silent worker is refused");
        assert!(
            err.to_string().contains("printed no URL within 1s"),
            "{err:#}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );

        let failing = script("failing", "echo 'no config'; exit 2");
        let err =
            WorkerProcess::start_within(failing.to_str().unwrap(), &[], Duration::from_secs(30))
                .err()
                .expect("a failing worker is refused");
        let text = err.to_string();
        assert!(
            text.contains("\"no config\\n\"") && text.contains("exit status: 2"),
            "{text}"
        );
    }

    /// A worker whose drain hangs (here: a process that ignores SIGTERM) fails `terminate_within` at its
    /// timeout, and is killed, instead of hanging the suite (issue 8, defect 15).
    #[test]
    fn a_worker_that_ignores_sigterm_fails_the_call_in_time_and_is_killed() {
        // It says so once SIGTERM is ignored, so the signal cannot come first.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; echo ignoring; exec sleep 120"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ignoring");
        let pid = child.id();
        let mut worker = WorkerProcess {
            child,
            url: "http://127.0.0.1:1".into(),
        };
        // Bounded here too: a call that never returns fails this test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = worker.terminate_within(Duration::from_millis(300));
            let _ = tx.send((result.map_err(|e| e.to_string()), worker.child.try_wait()));
        });
        let (result, exited) = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("terminate_within did not return (pid {pid})"));
        let error = result.unwrap_err();
        assert!(error.contains("did not exit within 300ms"), "{error}");
        assert!(
            matches!(exited, Ok(Some(status)) if !status.success()),
            "killed: {exited:?}"
        );
    }

    #[test]
    fn output_within_gives_the_output_of_a_command_that_finishes() {
        let out = output_within(
            &mut Command::new("cat"),
            Some(b"through stdin"),
            PEER_TIMEOUT,
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout, b"through stdin");
    }

    #[test]
    fn output_within_kills_a_command_that_hangs_and_fails_with_what_it_printed() {
        let started = Instant::now();
        let err = output_within(
            Command::new("sh").args(["-c", "echo partial; exec sleep 600"]),
            None,
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(started.elapsed() < Duration::from_secs(60), "{err}");
        assert!(err.contains("did not finish within 300ms"), "{err}");
        assert!(err.contains("partial"), "{err}");
    }

    /// A Python peer that hangs says where: the failure carries the stack of the call it was stuck in.
    #[test]
    fn a_python_peer_that_hangs_fails_with_its_stack() {
        let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
        let script = "import sys, time\n\
                      def registry_call():\n    print('started'); time.sleep(600)\n\
                      registry_call()\n";
        let err = output_within(
            Command::new(&python).args(["-c", script]),
            None,
            Duration::from_secs(3),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("started"), "unbuffered stdout: {err}");
        assert!(err.contains("in registry_call"), "the stack: {err}");
    }
}
