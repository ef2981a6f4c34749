//! Overload is survived and counted: more traffic than a tiny ring buffer holds (every lost
//! event counted as `ring_full`), then the agent recovers by itself and traces the next request;
//! and the memory limiter: an agent given less memory than it uses sheds its connections
//! (counted), keeps running, and a connection it shed is picked up again at its next request.
//!
//! Needs root, wrk, `scripts/setup.sh` and a built agent; run one at a time.

use std::fs;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{ClientProcess, Nginx, Scenario, free_port};

#[test]
fn a_full_ring_is_counted_and_the_agent_recovers() {
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    // 8 KiB: a few events; wrk's thousands per millisecond overflow it at once.
    let scenario = Scenario::start(
        "overload_ring",
        &["--port", &port, "--ring-size", "8192", "--output", "none"],
    );
    let wrk = std::process::Command::new("wrk")
        .args(["-t1", "-c16", "-d3s"])
        .arg(nginx.url("/index.html"))
        .output()
        .expect("run wrk (scripts/setup.sh installs it)");
    assert!(
        wrk.status.success(),
        "wrk: {}",
        String::from_utf8_lossy(&wrk.stderr)
    );
    // Load gone: the next request is traced again.
    std::thread::sleep(Duration::from_secs(1));
    wirelens_tests::curl(&[&nginx.url("/index.html?after-the-storm")]);
    let done = scenario.finish_when(
        |spans| {
            spans.iter().any(|s| {
                s.attributes.get("url.query").and_then(Value::as_str) == Some("after-the-storm")
            })
        },
        "http.server.request.duration",
        1,
    );
    let ring_full = done.output.counter("ring_full");
    assert!(
        ring_full > 0,
        "wrk against an 8 KiB ring must overflow it, counted: {:?}",
        done.output.counters()
    );
    assert!(
        done.output.counter("drops") >= ring_full,
        "ring_full is part of drops: {:?}",
        done.output.counters()
    );
    let recovered = done
        .spans
        .iter()
        .filter(|s| {
            s.attributes.get("url.query").and_then(Value::as_str) == Some("after-the-storm")
        })
        .count();
    assert_eq!(
        recovered,
        2,
        "after the load, curl's request is traced on both sides:\n{}",
        done.diagnostics()
    );
}

#[test]
fn the_memory_limiter_sheds_connections_and_tracing_goes_on() {
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    // Less than the agent's own resident size: always over the limit, so every connection is
    // shed at every check (100 ms).
    let scenario = Scenario::start(
        "overload_memory",
        &[
            "--port",
            &port,
            "--memory-limit",
            "16MiB",
            "--output",
            "none",
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let mut client = ClientProcess::python(
        &[
            "hold",
            "--port",
            &port,
            "--go",
            go.to_str().expect("utf-8 path"),
        ],
        &[],
    );
    let _ = client.wait_lines(1, Duration::from_secs(30));
    // The connection is tracked by now, and shed at the next check.
    std::thread::sleep(Duration::from_millis(500));
    fs::write(&go, "").expect("write go file");
    let run = client.wait();
    assert!(run.status.success(), "hold client failed:\n{}", run.stderr);
    let done = scenario.finish_when(
        |spans| {
            spans
                .iter()
                .any(|s| s.attributes.get("url.query").and_then(Value::as_str) == Some("second"))
        },
        "http.server.request.duration",
        1,
    );
    let shed = done.output.counter("memory_shed_connections");
    assert!(
        shed > 0,
        "connections shed and counted: {:?}",
        done.output.counters()
    );
    assert!(
        done.output.stderr.contains("memory limit pressed"),
        "the limiter says so in the log:\n{}",
        wirelens_tests::tail(&done.output.stderr, 20)
    );
    // The shed connection's next request starts a connection that resynchronises.
    assert!(
        done.spans.iter().any(|s| s.kind == "SPAN_KIND_SERVER"
            && s.attributes.get("url.query").and_then(Value::as_str) == Some("second")),
        "the second request on the shed connection is traced:\n{}",
        done.diagnostics()
    );
}
