//! A `ursa run` worker as a child process: started, its REST URL read from its first line, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long [`WorkerProcess::terminate`] waits for the worker to exit after SIGTERM (its drain deadline plus
/// a margin).
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(60);

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
        let mut child = Command::new(bin)
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .trim()
            .rsplit(' ')
            .next()
            .unwrap_or_default()
            .to_owned();
        if !url.starts_with("http://") {
            let _ = child.kill();
            bail!("the worker did not start: first line {line:?}");
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
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    // A signal (a crash) or an exit code: what the failing assertion cannot show.
                    eprintln!("the worker {} exited after SIGTERM with {status}", self.url);
                }
                return Ok(status.success());
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!(
                    "the worker did not exit within {timeout:?} of SIGTERM (its drain hangs); killed it"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
