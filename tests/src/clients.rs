//! Real clients: Debian's curl, and the python clients in `tests/fixtures/clients/clients.py`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::util::{fixture, python, read_lossy, tail, terminate, wait_timeout, wait_until};

const CURL: &str = "/usr/bin/curl";
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

/// A finished client process.
#[derive(Debug)]
pub struct ClientRun {
    /// Its pid (what `process.pid` of its spans must be).
    pub pid: u32,
    /// Base name of its executable, symlinks resolved (what `process.executable.name` must be).
    pub exe_name: String,
    /// Its argv, argv[0] as given to exec.
    pub argv: Vec<String>,
    /// Exit status.
    pub status: ExitStatus,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl ClientRun {
    /// argv joined by spaces (what `process.command_line` must be).
    pub fn command_line(&self) -> String {
        self.argv.join(" ")
    }

    /// The last stdout line, parsed as JSON (the python clients print their report there).
    pub fn json(&self) -> Value {
        let line = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("client printed no JSON ({e}); stdout:\n{}", self.stdout))
    }
}

/// Runs `curl -sS --max-time 30 <args>` to completion; panics if curl fails.
pub fn curl(args: &[&str]) -> ClientRun {
    let mut argv = vec![
        CURL.to_string(),
        "-sS".into(),
        "--max-time".into(),
        "30".into(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    let run = ClientProcess::spawn(&argv, &[]).wait();
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}",
        run.command_line(),
        run.status,
        run.stderr
    );
    run
}

/// Runs `clients.py <args>` with the venv's python to completion; panics if it fails.
pub fn python_client(args: &[&str], envs: &[(&str, &str)]) -> ClientRun {
    let run = ClientProcess::python(args, envs).wait();
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}",
        run.command_line(),
        run.status,
        tail(&run.stderr, 30)
    );
    run
}

/// A client still running, with stdout and stderr going to files; killed on drop.
pub struct ClientProcess {
    child: Option<Child>,
    dir: TempDir,
    argv: Vec<String>,
    exe_name: String,
}

impl ClientProcess {
    /// Starts `argv` (argv[0] is the program) with `envs` added to the environment.
    pub fn spawn(argv: &[String], envs: &[(&str, &str)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wirelens-client-")
            .tempdir()
            .expect("create client temp dir");
        let program = Path::new(&argv[0]);
        let exe_name = fs::canonicalize(program)
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
            .file_name()
            .expect("program has a file name")
            .to_string_lossy()
            .into_owned();
        let child = Command::new(program)
            .args(&argv[1..])
            .env_remove("OTEL_SERVICE_NAME")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(fs::File::create(dir.path().join("stdout")).expect("create client stdout"))
            .stderr(fs::File::create(dir.path().join("stderr")).expect("create client stderr"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", argv.join(" ")));
        ClientProcess {
            child: Some(child),
            dir,
            argv: argv.to_vec(),
            exe_name,
        }
    }

    /// Starts `clients.py <args>` with the venv's python.
    pub fn python(args: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut argv = vec![
            python().display().to_string(),
            fixture("clients/clients.py").display().to_string(),
        ];
        argv.extend(args.iter().map(|s| s.to_string()));
        Self::spawn(&argv, envs)
    }

    /// `clients.py hold`: one keep-alive connection to `port` that makes a first GET now and a
    /// second (`/index.html?second`) once the file `go` exists; waits for the first and
    /// returns the client with the connection's local port. `extra` goes to clients.py.
    pub fn hold(port: u16, go: &Path, extra: &[&str]) -> (Self, i64) {
        let port = port.to_string();
        let mut args = vec![
            "hold",
            "--port",
            &port,
            "--go",
            go.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let mut client = Self::python(&args, &[]);
        let first: serde_json::Value =
            serde_json::from_str(&client.wait_lines(1, Duration::from_secs(30))[0])
                .expect("the hold client's first report");
        assert_eq!(first["status"], 200, "the hold client's first GET");
        let local_port = first["local_port"].as_i64().expect("local_port");
        (client, local_port)
    }

    /// The client's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("client running").id()
    }

    /// Waits (up to `timeout`) until the client has printed `n` complete lines; returns them.
    pub fn wait_lines(&mut self, n: usize, timeout: Duration) -> Vec<String> {
        let path = self.stdout_path();
        let child = self.child.as_mut().expect("client running");
        let argv = self.argv.join(" ");
        let stderr = self.dir.path().join("stderr");
        wait_until(&format!("{n} lines from {argv}"), timeout, || {
            let text = read_lossy(&path);
            let lines: Vec<String> = text
                .split_inclusive('\n')
                .filter(|l| l.ends_with('\n'))
                .map(|l| l.trim_end().to_string())
                .collect();
            if lines.len() >= n {
                return Some(lines);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{argv} exited ({status}) early:\n{}",
                    tail(&read_lossy(&stderr), 30)
                );
            }
            None
        })
    }

    /// Waits (up to 90 s) for the client to exit.
    pub fn wait(mut self) -> ClientRun {
        let mut child = self.child.take().expect("client running");
        let pid = child.id();
        let Some(status) = wait_timeout(&mut child, CLIENT_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{} still running after {CLIENT_TIMEOUT:?}; stderr:\n{}",
                self.argv.join(" "),
                tail(&read_lossy(&self.dir.path().join("stderr")), 30)
            );
        };
        ClientRun {
            pid,
            exe_name: self.exe_name.clone(),
            argv: self.argv.clone(),
            status,
            stdout: read_lossy(&self.stdout_path()),
            stderr: read_lossy(&self.dir.path().join("stderr")),
        }
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join("stdout")
    }
}

impl Drop for ClientProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, libc::SIGKILL, Duration::from_secs(1));
        }
    }
}
