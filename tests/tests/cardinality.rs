//! Bounded metric cardinality: 20,000 short-lived client processes against one nginx, with
//! the series cap set low. Series of exited processes are dropped after their last export (the
//! count comes back down and new processes get regular series again), what is past the cap
//! goes to one overflow series (`otel.metric.overflow=true`, under the agent's Resource), and
//! every request is counted once, in a regular series or in the overflow one.
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use wirelens_tests::{Agent, MetricPoint, Nginx, Otlp, Receiver, free_port};

const CLIENTS: u64 = 20_000;
const CAP: usize = 500;
const CLIENT_METRIC: &str = "http.client.request.duration";
const SERVER_METRIC: &str = "http.server.request.duration";

/// Runs `fork_clients PORT COUNT 8`; returns how many children got their answer.
fn fork_clients(port: u16, count: u64) -> u64 {
    let bin = Path::new(env!("CARGO_BIN_EXE_fork_clients"));
    let out = Command::new(bin)
        .args([port.to_string(), count.to_string(), "8".into()])
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", bin.display()));
    assert!(out.status.success(), "fork_clients failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let ok = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ok="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("fork_clients printed {text:?}"));
    assert_eq!(ok, count, "every client got its answer: {text}");
    ok
}

fn is_overflow(p: &MetricPoint) -> bool {
    p.attributes.get("otel.metric.overflow") == Some(&serde_json::Value::Bool(true))
}

fn pid(p: &MetricPoint) -> String {
    p.resource
        .get("process.pid")
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The client metric's points of one export request, by request.
fn client_points(request: &serde_json::Value) -> Vec<MetricPoint> {
    wirelens_tests::flatten_metrics_of(request)
        .into_iter()
        .filter(|p| p.name == CLIENT_METRIC)
        .collect()
}

#[test]
fn series_of_exited_processes_are_dropped_and_overflow_is_counted() {
    let receiver = Receiver::start();
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    let cap = CAP.to_string();
    let env = receiver.env(Otlp::Grpc);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("OTEL_METRIC_EXPORT_INTERVAL", "2000"));
    env.push(("OTEL_TRACES_EXPORTER", "none"));
    let agent = Agent::start(
        &[
            "--port",
            &port,
            "--output",
            "none",
            "--max-metric-series",
            &cap,
        ],
        &env,
    );
    let agent_pid = agent.pid().to_string();

    let started = Instant::now();
    let ok = fork_clients(nginx.port, CLIENTS);
    eprintln!("{CLIENTS} clients in {:?}", started.elapsed());

    // Every request counted once: the final value of each client series (a series is its
    // Resource, attributes and start time) plus the overflow series.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut retired_at = None;
    let mut last_report = String::new();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(2));
        let requests: Vec<serde_json::Value> = receiver
            .requests()
            .into_iter()
            .filter(|r| r["signal"] == "metrics")
            .collect();
        let mut finals: BTreeMap<String, u64> = BTreeMap::new();
        let mut overflow = 0;
        let mut max_regular = 0;
        let mut server = 0;
        let mut last_regular = usize::MAX;
        for request in &requests {
            let points = client_points(request);
            let regular: Vec<&MetricPoint> = points.iter().filter(|p| !is_overflow(p)).collect();
            max_regular = max_regular.max(regular.len());
            last_regular = regular.len();
            for p in &regular {
                let key = format!("{} {:?} {}", pid(p), p.attributes, p.start_ns);
                let e = finals.entry(key).or_default();
                *e = (*e).max(p.count);
            }
            for p in points.iter().filter(|p| is_overflow(p)) {
                assert_eq!(
                    pid(p),
                    agent_pid,
                    "the overflow series is the agent's: {p:?}"
                );
                overflow = overflow.max(p.count);
            }
            for p in wirelens_tests::flatten_metrics_of(request) {
                if p.name == SERVER_METRIC {
                    server = server.max(p.count);
                }
            }
        }
        assert!(
            max_regular <= CAP,
            "{max_regular} client series in one export, over the cap of {CAP}"
        );
        let counted: u64 = finals.values().sum::<u64>() + overflow;
        last_report = format!(
            "{} exports; client requests counted {counted} ({} series seen, overflow {overflow}), \
             server {server}; client series in the last export {last_regular}",
            requests.len(),
            finals.len()
        );
        if counted == ok && server == ok && last_regular == 0 {
            retired_at = Some(overflow);
            break;
        }
    }
    eprintln!("after {:?}: {last_report}", started.elapsed());
    let Some(overflow) = retired_at else {
        panic!(
            "not every request counted, or the series of exited clients not dropped: \
             {last_report}; agent stderr:\n{}",
            agent.stderr()
        );
    };
    assert!(
        overflow > 0,
        "{CLIENTS} clients alive within a minute overflow a cap of {CAP}: {last_report}"
    );

    // Their room is free again: new clients get regular series, not the overflow one.
    fork_clients(nginx.port, 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let requests = receiver.requests();
        let last = requests.iter().rev().find(|r| r["signal"] == "metrics");
        if let Some(last) = last {
            let points = client_points(last);
            let regular = points.iter().filter(|p| !is_overflow(p)).count();
            let over: u64 = points
                .iter()
                .filter(|p| is_overflow(p))
                .map(|p| p.count)
                .sum();
            if regular == 10 {
                assert_eq!(over, overflow, "nothing more went to the overflow series");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "10 new clients did not get regular series; {last_report}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    agent.stop().assert_success();
}
