//! The independent OTLP receiver (`tests/receiver/otlp_receiver.py`), run as a child process.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::otlp::{self, MetricPoint, Span};
use crate::util::MtlsFiles;
use crate::util::{python, read_lossy, tail, terminate, wait_until};

/// OTLP transport the agent is told to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Otlp {
    /// OTLP/gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`) to the receiver's gRPC port.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`) to the receiver's HTTP port.
    Http,
}

impl Otlp {
    /// The `transport` field the receiver writes for requests that came this way.
    pub fn transport(self) -> &'static str {
        match self {
            Otlp::Grpc => "grpc",
            Otlp::Http => "http",
        }
    }
}

/// A running receiver; killed on drop.
pub struct Receiver {
    child: Child,
    dir: TempDir,
    out: PathBuf,
    grpc_port: u16,
    http_port: u16,
    /// The address it listens on (127.0.0.1 unless started in a network namespace).
    host: String,
}

impl Receiver {
    /// Starts a receiver on free ports and waits for its `READY` line.
    pub fn start() -> Self {
        Self::spawn(0, "all")
    }

    /// Starts a receiver that answers its first `n` requests of `signal` (`traces`, `metrics`,
    /// `logs`, or `all`) with UNAVAILABLE / HTTP 503.
    pub fn start_failing_first(n: u32, signal: &str) -> Self {
        Self::spawn(n, signal)
    }

    /// Starts a receiver that speaks only TLS, with `certs`' server certificate, and refuses
    /// clients without a certificate signed by `certs`' CA. Its endpoints are then
    /// `https://127.0.0.1:<port>`.
    pub fn start_mtls(certs: &MtlsFiles) -> Self {
        Self::spawn_on(0, 0, "all", Some(certs))
    }

    /// Starts a receiver whose OTLP/gRPC side listens on `grpc_port` (say, where an agent has
    /// been exporting to nothing).
    pub fn start_on(grpc_port: u16) -> Self {
        Self::spawn_on(grpc_port, 0, "all", None)
    }

    /// Starts a receiver inside the network namespace `netns`, listening on `host` (an
    /// address of that namespace): a collector that is not on the agent's loopback.
    pub fn start_in_netns(netns: &str, host: &str) -> Self {
        Self::spawn_full(0, 0, "all", None, Some((netns, host)))
    }

    fn spawn(fail_first: u32, fail_signal: &str) -> Self {
        Self::spawn_on(0, fail_first, fail_signal, None)
    }

    fn spawn_on(
        grpc_port: u16,
        fail_first: u32,
        fail_signal: &str,
        tls: Option<&MtlsFiles>,
    ) -> Self {
        Self::spawn_full(grpc_port, fail_first, fail_signal, tls, None)
    }

    fn spawn_full(
        grpc_port: u16,
        fail_first: u32,
        fail_signal: &str,
        tls: Option<&MtlsFiles>,
        netns: Option<(&str, &str)>,
    ) -> Self {
        let host = netns.map_or("127.0.0.1", |(_, host)| host).to_string();
        let dir = tempfile::Builder::new()
            .prefix("wirelens-receiver-")
            .tempdir()
            .expect("create receiver temp dir");
        let out = dir.path().join("requests.jsonl");
        let raw = dir.path().join("raw.bin");
        let log = dir.path().join("receiver.log");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("receiver/otlp_receiver.py");
        let mut command = match netns {
            Some((ns, _)) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(python());
                c
            }
            None => Command::new(python()),
        };
        let mut child = command
            .arg(&script)
            .args(["--bind", &host])
            .args([
                "--grpc-port",
                &grpc_port.to_string(),
                "--http-port",
                "0",
                "--out",
            ])
            .arg(&out)
            .args([
                "--fail-first",
                &fail_first.to_string(),
                "--fail-signal",
                fail_signal,
            ])
            .arg("--raw")
            .arg(&raw)
            .args(tls.map_or_else(Vec::new, |t| {
                vec![
                    "--tls-cert".as_ref(),
                    t.server_cert.as_os_str(),
                    "--tls-key".as_ref(),
                    t.server_key.as_os_str(),
                    "--tls-client-ca".as_ref(),
                    t.ca.as_os_str(),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).expect("create receiver log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", script.display()));

        let stdout = child.stdout.take().expect("receiver stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let ports = parse_ready(&line);
        let Some((grpc_port, http_port)) = ports else {
            terminate(&mut child, libc::SIGKILL, Duration::from_secs(1));
            panic!(
                "OTLP receiver did not print READY (got {line:?}); its log:\n{}",
                tail(&read_lossy(&log), 30)
            );
        };
        Receiver {
            child,
            dir,
            out,
            grpc_port,
            http_port,
            host,
        }
    }

    /// `http://<host>:<grpc port>` (host 127.0.0.1 unless in a network namespace).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.grpc_port)
    }

    /// `http://<host>:<http port>` (the agent appends `/v1/traces`, `/v1/metrics`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}:{}", self.host, self.http_port)
    }

    /// The environment that points the agent's exporter here over `otlp`.
    pub fn env(&self, otlp: Otlp) -> Vec<(String, String)> {
        let (endpoint, protocol) = match otlp {
            Otlp::Grpc => (self.grpc_endpoint(), "grpc"),
            Otlp::Http => (self.http_endpoint(), "http/protobuf"),
        };
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL".into(), protocol.into()),
        ]
    }

    /// The protobuf bytes of every request received so far (every signal, refused ones too),
    /// one after another: what the agent put on the wire, to search for what must not be there.
    pub fn raw_bytes(&self) -> Vec<u8> {
        fs::read(self.dir.path().join("raw.bin")).unwrap_or_default()
    }

    /// Every accepted export request so far, as the receiver wrote it:
    /// `{"signal", "transport", "request"}` with `request` in protobuf's JSON mapping.
    pub fn requests(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|r| r.get("rejected").is_none())
            .collect()
    }

    /// How many requests were refused because of `start_failing_first`.
    pub fn rejected(&self) -> usize {
        self.lines()
            .iter()
            .filter(|r| r.get("rejected").is_some())
            .count()
    }

    /// Every span received so far, flattened.
    pub fn spans(&self) -> Vec<Span> {
        otlp::flatten_spans(&self.requests())
    }

    /// Every metric data point received so far, flattened.
    pub fn metrics(&self) -> Vec<MetricPoint> {
        otlp::flatten_metrics(&self.requests())
    }

    /// Every log record received so far, flattened.
    pub fn logs(&self) -> Vec<otlp::LogRecord> {
        otlp::flatten_logs(&self.requests())
    }

    /// Waits until at least `n` spans have arrived, up to `timeout`; returns them.
    pub fn wait_for_spans(&self, n: usize, timeout: Duration) -> Vec<Span> {
        wait_until(&format!("{n} spans at the receiver"), timeout, || {
            let spans = self.spans();
            (spans.len() >= n).then_some(spans)
        })
    }

    /// The receiver's own log (stderr).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("receiver.log"))
    }

    fn lines(&self) -> Vec<Value> {
        let text = read_lossy(&self.out);
        let complete = match text.rfind('\n') {
            Some(end) => &text[..end],
            None => "",
        };
        complete
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("receiver wrote a bad line ({e}): {l}"))
            })
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        terminate(&mut self.child, libc::SIGTERM, Duration::from_secs(3));
    }
}

fn parse_ready(line: &str) -> Option<(u16, u16)> {
    let mut words = line.split_whitespace();
    if words.next()? != "READY" {
        return None;
    }
    let mut grpc = None;
    let mut http = None;
    for word in words {
        match word.split_once('=') {
            Some(("grpc", p)) => grpc = p.parse().ok(),
            Some(("http", p)) => http = p.parse().ok(),
            _ => {}
        }
    }
    Some((grpc?, http?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        assert_eq!(parse_ready("READY grpc=1 http=2\n"), Some((1, 2)));
        assert_eq!(parse_ready("READY grpc=1\n"), None);
        assert_eq!(parse_ready(""), None);
    }
}
