//! Debian's Prometheus server, run as a child with its own config and data dir on a free
//! loopback port, scraping one target; and a plain HTTP/1.0 GET for its API and the agent's
//! endpoints.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::util::{free_port, read_lossy, tail, terminate, wait_until};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A running Prometheus; stopped on drop.
pub struct Prometheus {
    child: Child,
    dir: TempDir,
    /// The port its web API listens on, on 127.0.0.1.
    pub port: u16,
}

/// One sample of an instant query: the series' labels (`__name__` included) and its value.
pub type Sample = (BTreeMap<String, String>, f64);

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`, path `/metrics`) every second, with
    /// `honor_labels: true` (the target's `job` and `instance` are kept, as the OpenTelemetry
    /// compatibility spec advises), and waits until it is ready.
    pub fn start(target: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("wirelens-prometheus-")
            .tempdir()
            .expect("create prometheus temp dir");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: wirelens-endpoint\n    honor_labels: true\n    \
             static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        fs::write(&config_path, config).expect("write prometheus.yml");
        let port = free_port();
        let log = dir.path().join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("create prometheus log"))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PROMETHEUS} (scripts/setup.sh installs it): {e}"));
        let mut prometheus = Prometheus { child, dir, port };
        wait_until("prometheus to be ready", Duration::from_secs(60), || {
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!(
                    "prometheus exited ({status}):\n{}",
                    tail(&read_lossy(&log), 30)
                );
            }
            http_get(&format!("127.0.0.1:{port}"), "/-/ready")
                .filter(|(status, _)| *status == 200)
                .map(|_| ())
        });
        prometheus
    }

    /// An instant query through `/api/v1/query`; panics on an error answer.
    pub fn query(&self, promql: &str) -> Vec<Sample> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = http_get(&format!("127.0.0.1:{}", self.port), &path)
            .unwrap_or_else(|| panic!("prometheus did not answer {path}"));
        assert_eq!(status, 200, "query {promql}: {body}");
        let answer: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("query {promql}: not JSON ({e}): {body}"));
        let results = answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        results
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// Its log (warnings and errors).
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("prometheus.log"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        terminate(&mut self.child, libc::SIGTERM, Duration::from_secs(10));
    }
}

/// `GET path` over HTTP/1.0 to `addr` (`host:port`): the status and the body, or `None` when
/// nothing answers (refused, reset, timed out).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
