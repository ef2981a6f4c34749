//! Semantic-convention conformance, checked by a tool independent of the agent: every capture of
//! the shared corpus (`../shared/captures/`) and every recorded parser fixture
//! (`parsers/testdata/`, written as pcaps) goes through `wirelens replay --side both` with OTLP
//! export into the independent receiver; `tests/semconv/check_semconv.mjs` then checks every
//! span and metric name and attribute the receiver decoded against the official registry (the
//! `@opentelemetry/semantic-conventions` package that `scripts/setup.sh` installs, pinned in
//! `tests/semconv/package.json`): unknown names, deprecated names and wrong types fail.
//!
//! `checker_flags_the_old_names` shows the checker can fail: it flags the names wirelens used
//! before following semconv 1.45 (`rpc.response.status_code`, `db.server.operation.duration`,
//! `messaging.system`...).
//!
//! Needs a built agent (`cargo build --release -p wirelens`, or `WIRELENS_BIN`), node, and
//! `scripts/setup.sh` (the receiver's venv and the registry package). Replay needs no root.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use wirelens_tests::{Agent, Otlp, Receiver, workspace_root, write_fixture_pcaps};

/// Runs the checker over `requests` (JSON lines as the receiver writes them).
fn check(requests: &Path) -> (Output, Value) {
    let script = workspace_root().join("tests/semconv/check_semconv.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(requests)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run node {}: {e} (is node installed?)", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .unwrap_or_else(|| {
            panic!(
                "the checker printed no SUMMARY (exit {:?}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let summary = serde_json::from_str(summary).expect("SUMMARY is JSON");
    (out, summary)
}

fn string_attr(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"string_value": value}})
}

#[test]
fn checker_flags_the_old_names() {
    let dir = tempfile::tempdir().expect("temp dir");
    let span = |attributes: Vec<Value>| {
        json!({"signal": "traces", "transport": "grpc", "request": {"resource_spans": [{
            "resource": {"attributes": [string_attr("service.name", "svc")]},
            "scope_spans": [{"spans": [{"name": "x", "kind": "SPAN_KIND_CLIENT",
                "attributes": attributes}]}]}]}})
    };
    let metric = |name: &str, attributes: Vec<Value>| {
        json!({"signal": "metrics", "transport": "grpc", "request": {"resource_metrics": [{
            "resource": {"attributes": []},
            "scope_metrics": [{"metrics": [{"name": name, "unit": "s",
                "histogram": {"data_points": [{"attributes": attributes}]}}]}]}]}})
    };
    let write = |name: &str, lines: &[Value]| {
        let path = dir.path().join(name);
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        fs::write(&path, text).expect("write requests");
        path
    };

    let old = write(
        "old.jsonl",
        &[
            span(vec![
                string_attr("rpc.system.name", "grpc"),
                string_attr("rpc.response.status_code", "OK"),
                string_attr("messaging.system", "kafka"),
                string_attr("messaging.rabbitmq.destination.routing_key", "k"),
                string_attr("made.up.name", "x"),
                // server.port is an int in the registry.
                string_attr("server.port", "80"),
            ]),
            metric(
                "db.server.operation.duration",
                vec![string_attr("db.system.name", "mysql")],
            ),
            metric(
                "rpc.client.call.duration",
                vec![string_attr("rpc.response.status_code", "OK")],
            ),
        ],
    );
    let (out, summary) = check(&old);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let violations: Vec<&str> = summary["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for expected in [
        "deprecated attribute rpc.response.status_code",
        "deprecated attribute messaging.system:",
        "deprecated attribute messaging.rabbitmq.destination.routing_key",
        "attribute made.up.name is not in the registry",
        "attribute server.port is string, the registry says int",
        "metric db.server.operation.duration is not in the registry",
    ] {
        assert!(
            violations.iter().any(|v| v.starts_with(expected)),
            "not flagged: {expected}\n{report}"
        );
    }
    assert_eq!(summary["registry"], "1.45.0", "{report}");

    // The names that replace them pass, and so does the agent's own namespace.
    let new = write(
        "new.jsonl",
        &[
            span(vec![
                string_attr("rpc.system.name", "grpc"),
                string_attr("rpc.status_code", "OK"),
                string_attr("messaging.system.name", "kafka"),
                string_attr("rabbitmq.destination.routing_key", "k"),
                string_attr("wirelens.anything", "x"),
                json!({"key": "server.port", "value": {"int_value": "80"}}),
            ]),
            metric(
                "wirelens.db.server.operation.duration",
                vec![string_attr("db.system.name", "mysql")],
            ),
            metric(
                "rpc.client.call.duration",
                vec![string_attr("rpc.status_code", "OK")],
            ),
        ],
    );
    let (out, summary) = check(&new);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(summary["spans"], 1);
    assert_eq!(summary["metric_points"], 2);
}

#[test]
fn replayed_corpus_and_fixtures_follow_the_conventions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fixtures = write_fixture_pcaps(&workspace_root().join("parsers/testdata"), dir.path());
    assert!(fixtures.len() >= 60, "only {} fixtures", fixtures.len());
    let corpus = wirelens_tests::corpus_captures();

    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Grpc);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut exported = 0;
    for file in corpus.iter().chain(&fixtures) {
        let path = file.to_str().expect("utf-8 path");
        let out = Agent::command(
            &Agent::binary(),
            &["replay", path, "--side", "both", "--output", "none"],
            &envs,
        )
        .stdin(Stdio::null())
        .output()
        .expect("run wirelens replay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{path}: {stderr}");
        assert!(!stderr.contains("panicked"), "{path}: {stderr}");
        assert_eq!(
            wirelens_tests::stderr_counter(&stderr, "spans_dropped").unwrap_or(0),
            0,
            "{path}: {stderr}"
        );
        exported += wirelens_tests::stderr_counter(&stderr, "spans_exported")
            .unwrap_or_else(|| panic!("{path}: no spans_exported counter: {stderr}"));
    }

    // Every replay flushed before it exited, and the receiver records a request before it
    // answers: everything exported is in its file now.
    let requests = dir.path().join("requests.jsonl");
    let text: String = receiver
        .requests()
        .iter()
        .map(|r| format!("{r}\n"))
        .collect();
    fs::write(&requests, text).expect("write requests");
    let (out, summary) = check(&requests);
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert_eq!(
        summary["spans"].as_u64(),
        Some(exported),
        "the checker saw every exported span"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "semantic-convention violations:\n{report}"
    );
    // Every signal of every protocol family was exercised.
    for (kind, least) in [
        ("CLIENT", 1000),
        ("SERVER", 1000),
        ("PRODUCER", 5),
        ("CONSUMER", 5),
    ] {
        let got = summary["span_kinds"][kind].as_u64().unwrap_or(0);
        assert!(got >= least, "{got} {kind} spans, want {least}+\n{report}");
    }
    for metric in [
        "http.server.request.duration",
        "http.client.request.duration",
        "db.client.operation.duration",
        "wirelens.db.server.operation.duration",
        "messaging.client.operation.duration",
        "rpc.client.call.duration",
        "rpc.server.call.duration",
        "dns.lookup.duration",
    ] {
        assert!(
            summary["metrics"][metric].as_u64().unwrap_or(0) > 0,
            "no {metric} points\n{report}"
        );
    }
}
