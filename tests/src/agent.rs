//! The built `wirelens` binary, run as a child with its output captured to files.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::util::{read_lossy, send_signal, strip_ansi, tail, terminate, wait_timeout};

/// How long the agent may take to load and attach every probe.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the agent may take to flush and exit after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A running agent; interrupted (then killed) on drop.
pub struct Agent {
    child: Option<Child>,
    dir: TempDir,
}

/// What an agent left behind when it exited.
#[derive(Debug)]
pub struct AgentOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Everything it wrote on stdout.
    pub stdout: String,
    /// Everything it wrote on stderr, ANSI colours removed.
    pub stderr: String,
}

impl Agent {
    /// The binary under test: `WIRELENS_BIN`, else `<workspace>/target/release/wirelens`.
    pub fn binary() -> PathBuf {
        let path = std::env::var_os("WIRELENS_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::util::workspace_root().join("target/release/wirelens"));
        assert!(
            path.exists(),
            "{} not found: build it with `cargo build --release -p wirelens` or set WIRELENS_BIN",
            path.display()
        );
        path
    }

    /// The agent's command: `program` (usually [`Agent::binary`], or a wrapper such as `setpriv`
    /// followed by the binary in `args`), with an environment cleaned of inherited `OTEL_*`,
    /// `WIRELENS_*` and `RUST_LOG`, plus the test defaults (1 s metric interval, 200 ms span
    /// batches, no continuous profiling, no resource metrics, no colours) and then `envs`.
    pub fn command(program: &Path, args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("OTEL_") || k.starts_with("WIRELENS_") || k == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("OTEL_METRIC_EXPORT_INTERVAL", "1000")
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            // Continuous profiling off unless a test turns it on (tests/tests/profile.rs).
            .env("WIRELENS_PROFILE_FREQUENCY", "0")
            // Resource metrics off unless a test turns them on (tests/tests/resource_metrics.rs):
            // unfiltered, they put every process of the host in each 1 s export.
            .env("WIRELENS_RESOURCE_METRICS", "false")
            .env("NO_COLOR", "1");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Starts the agent and waits (up to 60 s) until stderr has a line with the word `ready`.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut agent = Self::spawn(args, envs);
        agent.wait_ready();
        agent
    }

    /// Starts the agent without waiting for it to be ready (for agents expected to fail).
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Self {
        Self::spawn_command(Self::command(&Self::binary(), args, envs))
    }

    /// Starts `cmd` (built with [`Agent::command`]) with stdout and stderr captured.
    pub fn spawn_command(mut cmd: Command) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wirelens-agent-")
            .tempdir()
            .expect("create agent temp dir");
        let stdout = fs::File::create(dir.path().join("stdout")).expect("create agent stdout");
        let stderr = fs::File::create(dir.path().join("stderr")).expect("create agent stderr");
        let child = cmd
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        Agent {
            child: Some(child),
            dir,
        }
    }

    /// Waits until stderr has a line with the word `ready`; panics with stderr if the agent
    /// exits first or takes longer than 60 s.
    pub fn wait_ready(&mut self) {
        let stderr_path = self.dir.path().join("stderr");
        let child = self.child.as_mut().expect("agent running");
        let ready = wait_until_or_exit(child, &stderr_path, READY_TIMEOUT);
        if !ready {
            let status = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            let stderr = self.stderr();
            self.kill();
            panic!(
                "agent not ready ({}), stderr:\n{}",
                match status {
                    Some(s) => format!("exited: {s}"),
                    None => format!("no `ready` line after {READY_TIMEOUT:?}"),
                },
                tail(&stderr, 40)
            );
        }
    }

    /// The agent's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("agent running").id()
    }

    /// Stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.dir.path().join("stdout"))
    }

    /// Stderr so far, ANSI colours removed.
    pub fn stderr(&self) -> String {
        strip_ansi(&read_lossy(&self.dir.path().join("stderr")))
    }

    /// Sends SIGINT and waits (up to 30 s) for the agent to flush and exit.
    pub fn stop(mut self) -> AgentOutput {
        let mut child = self.child.take().expect("agent running");
        send_signal(child.id(), libc::SIGINT);
        let Some(status) = wait_timeout(&mut child, STOP_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "agent did not exit within {STOP_TIMEOUT:?} of SIGINT; stderr:\n{}",
                tail(&self.stderr(), 40)
            );
        };
        self.output(status)
    }

    /// Waits (up to `timeout`) for an agent that should exit by itself, such as one refused
    /// at start.
    pub fn wait_exit(mut self, timeout: Duration) -> AgentOutput {
        let mut child = self.child.take().expect("agent running");
        let Some(status) = wait_timeout(&mut child, timeout) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "agent still running after {timeout:?}, expected it to exit; stderr:\n{}",
                tail(&self.stderr(), 40)
            );
        };
        self.output(status)
    }

    fn output(&self, status: ExitStatus) -> AgentOutput {
        AgentOutput {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGKILL, Duration::from_secs(5));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGINT, Duration::from_secs(10));
        }
    }
}

impl AgentOutput {
    /// Panics (showing stderr) unless the agent exited with status 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "agent exited with {}; stderr:\n{}",
            self.status,
            tail(&self.stderr, 40)
        );
    }

    /// The counters from the stderr line that starts (after any log prefix) with
    /// `wirelens counters:`, as `name=value` pairs; panics if there is no such line.
    pub fn counters(&self) -> BTreeMap<String, u64> {
        let line = self
            .stderr
            .lines()
            .rev()
            .find_map(|l| {
                l.find("wirelens counters:")
                    .map(|i| &l[i + "wirelens counters:".len()..])
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `wirelens counters:` line on stderr:\n{}",
                    tail(&self.stderr, 40)
                )
            });
        parse_counters(line)
    }

    /// One counter; panics if the counters line lacks it.
    pub fn counter(&self, name: &str) -> u64 {
        let counters = self.counters();
        *counters
            .get(name)
            .unwrap_or_else(|| panic!("counters line has no {name}=: {counters:?}"))
    }

    /// The stdout lines of `--output json`, each parsed; panics on a line that is not JSON.
    pub fn json_records(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"))
            })
            .collect()
    }
}

/// Polls stderr for the `ready` line; `false` if the agent exits or `timeout` passes first.
fn wait_until_or_exit(child: &mut Child, stderr: &Path, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if has_ready_line(&read_lossy(stderr)) {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) || std::time::Instant::now() >= deadline {
            // One last look: the line may have been written just before the exit.
            return has_ready_line(&read_lossy(stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `true` if some line holds the word `ready` (not as part of `already`).
fn has_ready_line(stderr: &str) -> bool {
    strip_ansi(stderr).lines().any(|line| {
        line.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case("ready"))
    })
}

/// The counter `name` from the `wirelens counters:` line of `stderr` (of a `replay`, say), if
/// the line and the counter are there.
pub fn stderr_counter(stderr: &str, name: &str) -> Option<u64> {
    let line = stderr.lines().rev().find_map(|l| {
        l.find("wirelens counters:")
            .map(|i| &l[i + "wirelens counters:".len()..])
    })?;
    parse_counters(line).get(name).copied()
}

fn parse_counters(line: &str) -> BTreeMap<String, u64> {
    line.split(|c: char| c.is_whitespace() || c == ',')
        .filter_map(|kv| kv.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_word() {
        assert!(has_ready_line("x\n2026 INFO wirelens: ready, probes=12\n"));
        assert!(has_ready_line("\u{1b}[32mINFO\u{1b}[0m Ready"));
        assert!(!has_ready_line(
            "ERROR wirelens is already running (pid 1)\n"
        ));
    }

    #[test]
    fn counters_line() {
        let c = parse_counters(" events=10 bytes=2048, drops=0 records=4 export_failures=3");
        assert_eq!(c["events"], 10);
        assert_eq!(c["bytes"], 2048);
        assert_eq!(c["export_failures"], 3);
        assert_eq!(c.len(), 5);
    }
}
