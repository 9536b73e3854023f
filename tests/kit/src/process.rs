//! A `ursa run` worker as a child process: started, its REST URL read from its first line, killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

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

    /// Sends SIGTERM and waits; true when it exited successfully.
    pub fn terminate(&mut self) -> Result<bool> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(self.child.wait()?.success())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
