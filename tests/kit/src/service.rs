//! A peer server as a child process (a JVM, PostgreSQL, …): its own process group, its output in a log file,
//! and never an orphan — it is killed when the handle drops and, through a watchdog shell holding a pipe from
//! the test process, when the test process dies in any way (panic, abort, kill -9).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};

/// A running peer process.
pub struct Service {
    name: String,
    pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

/// Set in a service's `env` to stop it with this signal first (e.g. `INT` for PostgreSQL's fast shutdown), with
/// up to five seconds of grace before the group is killed; the default is `KILL` at once.
pub const STOP_SIGNAL_ENV: &str = "URSA_SERVICE_STOP";

/// The watchdog: starts the program in a session (and process group) of its own, prints its pid, then waits for
/// its stdin to close (the handle dropped, or the test process died in any way), stops the program's whole
/// group and removes `$URSA_SERVICE_CLEAN` if set. It ignores the terminal's signals (a Ctrl-C reaches the whole
/// foreground group): only its stdin closing ends it.
const WATCHDOG: &str = r#"trap '' INT QUIT HUP TERM
log="$1"; shift
setsid "$@" >>"$log" 2>&1 </dev/null &
pid=$!
echo "$pid"
read _ignored
sig="${URSA_SERVICE_STOP:-KILL}"
if [ "$sig" != KILL ]; then
  kill -s "$sig" -- "-$pid" 2>/dev/null || kill -s "$sig" "$pid" 2>/dev/null
  i=0
  while [ "$i" -lt 50 ] && kill -s 0 "$pid" 2>/dev/null && ! grep -q '^[^)]*) Z' "/proc/$pid/stat" 2>/dev/null; do
    sleep 0.1; i=$((i + 1))
  done
fi
kill -s KILL -- "-$pid" 2>/dev/null || kill -s KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
if [ -n "$URSA_SERVICE_CLEAN" ]; then rm -rf -- "$URSA_SERVICE_CLEAN"; fi"#;

impl Service {
    /// Starts `program args…` in `dir`, with `env` added, output appended to `log`.
    ///
    /// `clean`, if given, is removed once the process is gone (a scratch directory the service owned).
    pub fn spawn<I, S>(
        name: &str,
        program: impl AsRef<OsStr>,
        args: I,
        env: &[(&str, &OsStr)],
        log: &Path,
        clean: Option<&Path>,
    ) -> Result<Service>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg("ursa-service")
            .arg(log)
            .arg(program.as_ref())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(dir) = clean {
            command.env("URSA_SERVICE_CLEAN", dir);
        }
        for (k, v) in env {
            command.env(k, v);
        }
        let mut watchdog = command
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.as_ref().to_string_lossy()))?;
        let stdin = watchdog.stdin.take().context("watchdog stdin")?;
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().context("watchdog stdout")?).read_line(&mut line)?;
        let pid = line
            .trim()
            .parse()
            .with_context(|| format!("starting {name}: the watchdog printed {line:?}"))?;
        Ok(Service {
            pid,
            name: name.to_owned(),
            watchdog,
            stdin: Some(stdin),
            log: log.to_owned(),
        })
    }

    /// The service's name, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The program's pid (also its process group and session id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether the program is still running (not exited, not a zombie).
    pub fn is_running(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .ok()
            .and_then(|s| {
                let state = s.rsplit_once(')')?.1.trim_start().chars().next()?;
                Some(state != 'Z' && state != 'X')
            })
            .unwrap_or(false)
    }

    /// Kills the program's process group now, waits for it and removes its scratch directory.
    pub fn stop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.watchdog.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}
