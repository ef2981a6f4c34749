//! HTTP/2 joined mid-stream: an h2c connection opened, and its HPACK dynamic tables filled,
//! before the agent started. What the agent sees next refers to table entries it never saw;
//! its spans must carry only what is certain (static-table fields, literals), never a wrong
//! value, and it must count what it could not decode.
//!
//! Needs root, `scripts/setup.sh --tests` (nghttp2-server) and a built agent; run one at a
//! time (`-- --test-threads=1`).

use std::fs;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{ClientProcess, Scenario, Span, fixture, free_port, nghttpd};

const USER_AGENT: &str = "wirelens-join";

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a str> {
    s.attributes.get(key).and_then(Value::as_str)
}

/// Every field the span has is one the request really carried.
fn assert_nothing_wrong(s: &Span) {
    let what = s.summary();
    assert_eq!(s.name, "GET", "{what}");
    assert_eq!(attr(s, "http.request.method"), Some("GET"), "{what}");
    if let Some(path) = attr(s, "url.path") {
        assert!(
            path == "/index.html" || path == "/item.txt",
            "wrong path: {what}"
        );
    }
    if let Some(full) = attr(s, "url.full") {
        assert!(
            full.ends_with("/index.html") || full.ends_with("/item.txt"),
            "wrong url.full: {what}"
        );
    }
    if let Some(ua) = attr(s, "user_agent.original") {
        assert_eq!(ua, USER_AGENT, "wrong user agent: {what}");
    }
    assert_eq!(attr(s, "network.protocol.version"), Some("2"), "{what}");
}

#[test]
fn h2_joined_mid_stream_yields_no_wrong_headers() {
    let port = free_port();
    let _server = nghttpd(port, "joined\n");
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let script = fixture("clients/h2_join.py").display().to_string();
    let argv: Vec<String> = [
        "/usr/bin/python3",
        &script,
        &port.to_string(),
        go.to_str().expect("utf-8 path"),
    ]
    .map(String::from)
    .to_vec();
    let mut client = ClientProcess::spawn(&argv, &[]);
    let first: Value = serde_json::from_str(&client.wait_lines(1, Duration::from_secs(30))[0])
        .expect("first report");
    assert_eq!(first["status"], 200);

    // The agent starts with the connection open and both dynamic tables filled.
    let port_arg = port.to_string();
    let scenario = Scenario::start("http2_join", &["--port", &port_arg]);
    fs::write(&go, "").expect("write go file");
    let run = client.wait();
    assert!(
        run.status.success(),
        "h2_join client failed:\n{}",
        run.stderr
    );
    assert_eq!(run.json()["statuses"], serde_json::json!([200, 200]));

    let done = scenario.finish_when(|spans| spans.len() >= 4, "http.client.request.duration", 2);
    let d = done.diagnostics();
    let clients = done.spans_of(run.pid);
    assert_eq!(clients.len(), 2, "client spans\n{d}");
    assert_eq!(done.spans.len(), 4, "two exchanges, both sides\n{d}");
    for s in &done.spans {
        assert_nothing_wrong(s);
    }
    // Request 3's :path was a literal: certain, and there. Request 2's was a reference into
    // the unknown table: absent. The user agent was a reference in both: absent.
    let servers: Vec<&Span> = done.spans.iter().filter(|s| s.is_server()).collect();
    let paths: Vec<Option<&str>> = servers.iter().map(|s| attr(s, "url.path")).collect();
    assert!(
        paths.contains(&Some("/item.txt")) && paths.contains(&None),
        "server paths {paths:?}\n{d}"
    );
    for s in &done.spans {
        assert_eq!(attr(s, "user_agent.original"), None, "{}", s.summary());
        assert_eq!(
            s.attributes
                .get("http.response.status_code")
                .and_then(Value::as_i64),
            Some(200),
            "{}",
            s.summary()
        );
    }
    let undecoded = done
        .output
        .stderr
        .lines()
        .find(|l| l.contains("wirelens counters"))
        .and_then(|l| l.split("undecoded_headers=").nth(1))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(
        undecoded.is_some_and(|n| n > 0),
        "undecoded header fields must be counted: {undecoded:?}\n{d}"
    );
}
