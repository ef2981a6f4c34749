//! gRPC end to end, plaintext and TLS: Debian's python3-grpcio (which links the system
//! libssl, and drives it over memory BIOs) serving `wirelens.Echo` on 127.0.0.1
//! (`parsers/testdata/grpc/peer.py`, the peer the parser fixtures were recorded with) and one
//! client process per call: unary, server-streaming, client-streaming, bidirectional, and a
//! call failing with NOT_FOUND. The agent traces the server's port and exports SERVER and
//! CLIENT spans per the RPC conventions, with message counts, and both call-duration
//! histograms, decoded by the independent receiver; exact counts and fields.
//!
//! Needs root, `scripts/setup.sh --tests` (python3-grpcio) and a built agent; run one at a
//! time (`-- --test-threads=1`).

use std::fs;
use std::path::Path;
use std::time::Duration;

use wirelens_tests::{
    ClientProcess, ClientRun, Daemon, PARENT_SPAN_ID, Scenario, Span, TRACE_ID, free_port,
    wait_until, workspace_root, write_certificate,
};

const PYTHON: &str = "/usr/bin/python3";

fn peer() -> String {
    workspace_root()
        .join("parsers/testdata/grpc/peer.py")
        .display()
        .to_string()
}

/// Environment selecting TLS in `peer.py` (a directory with `cert.pem` and `key.pem`).
fn tls_env(tls: Option<&Path>) -> Vec<(String, String)> {
    tls.map(|dir| vec![("GRPC_TLS_DIR".to_string(), dir.display().to_string())])
        .unwrap_or_default()
}

fn grpc_server(port: u16, tls: Option<&Path>) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-grpc-")
        .tempdir()
        .expect("temp dir");
    let argv = vec![
        PYTHON.to_string(),
        peer(),
        "serve".to_string(),
        port.to_string(),
    ];
    let env = tls_env(tls);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut daemon = Daemon::spawn("grpc server", dir, &argv, &env);
    // grpcio listens on an IPv6 socket bound to the v4-mapped 127.0.0.1 (/proc/net/tcp6).
    let local = format!("0000000000000000FFFF00000100007F:{port:04X}");
    wait_until("grpc server listening", Duration::from_secs(60), || {
        daemon.assert_running();
        let table = fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
        table
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.get(1) == Some(&local.as_str()) && f.get(3) == Some(&"0A")
            })
            .then_some(())
    });
    daemon
}

fn call(port: u16, case: &str, tls: Option<&Path>) -> ClientRun {
    let argv = vec![
        PYTHON.to_string(),
        peer(),
        "call".to_string(),
        port.to_string(),
        case.to_string(),
    ];
    let env = tls_env(tls);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let run = ClientProcess::spawn(&argv, &env).wait();
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}",
        run.command_line(),
        run.status,
        run.stderr
    );
    run
}

/// (case, method, status, request messages, response messages) of each call.
const CASES: [(&str, &str, &str, i64, i64); 5] = [
    ("unary", "wirelens.Echo/Unary", "OK", 1, 1),
    ("server_stream", "wirelens.Echo/ServerStream", "OK", 1, 3),
    ("client_stream", "wirelens.Echo/ClientStream", "OK", 2, 1),
    ("bidi", "wirelens.Echo/Bidi", "OK", 4, 4),
    ("not_found", "wirelens.Echo/Missing", "NOT_FOUND", 1, 0),
];

/// What one span must say. grpcio writes each batch with one `sendmsg` of many iovecs (27 for
/// a unary request); the agent copies up to 32 per call, so both directions are whole.
struct Want<'a> {
    method: &'a str,
    status: &'a str,
    req: i64,
    resp: i64,
    port: u16,
    tls: bool,
}

fn check(s: &Span, w: &Want<'_>, client: bool) {
    let what = s.summary();
    let opt_int = |key: &str| s.attributes.get(key).and_then(|v| v.as_i64());
    let opt_str = |key: &str| s.attributes.get(key).and_then(|v| v.as_str());
    assert_eq!(s.name, w.method, "{what}");
    assert_eq!(s.str_attr("rpc.system.name"), "grpc", "{what}");
    assert_eq!(s.str_attr("rpc.method"), w.method, "{what}");
    // `:authority`: with TLS the channel names the certificate's host.
    let address = if w.tls { "localhost" } else { "127.0.0.1" };
    assert_eq!(s.str_attr("server.address"), address, "{what}");
    assert_eq!(s.int_attr("server.port"), i64::from(w.port), "{what}");
    assert_eq!(s.str_attr("network.protocol.version"), "2", "{what}");
    assert!(s.end_ns >= s.start_ns);
    assert_eq!(
        opt_str("tls.protocol.name"),
        w.tls.then_some("tls"),
        "TLS marker: {what}"
    );
    let (received, sent) = if client {
        (
            "wirelens.rpc.response.messages",
            "wirelens.rpc.request.messages",
        )
    } else {
        (
            "wirelens.rpc.request.messages",
            "wirelens.rpc.response.messages",
        )
    };
    let (want_received, want_sent) = if client {
        (w.resp, w.req)
    } else {
        (w.req, w.resp)
    };
    assert_eq!(opt_int(received), Some(want_received), "{received}: {what}");
    assert_eq!(opt_int(sent), Some(want_sent), "{sent}: {what}");
    if client {
        // The status comes to the client, whole.
        assert_eq!(opt_str("rpc.status_code"), Some(w.status), "{what}");
        // Its traceparent went out in the request headers: the client span is its child.
        assert_eq!(s.trace_id, TRACE_ID, "{what}");
        assert_eq!(s.parent_span_id, PARENT_SPAN_ID, "{what}");
    } else {
        // The server received the request whole: the caller's context is its parent.
        assert_eq!(s.trace_id, TRACE_ID, "{what}");
        assert_eq!(s.parent_span_id, PARENT_SPAN_ID, "{what}");
        assert_eq!(opt_str("rpc.status_code"), Some(w.status), "{what}");
        // NOT_FOUND is no server error (the gRPC conventions name the server errors).
        assert_eq!(s.status_code, "STATUS_CODE_UNSET", "{what}");
    }
}

#[test]
fn grpc_unary_streaming_and_errors() {
    run_cases("grpc", None);
}

#[test]
fn grpc_over_tls_same_spans_marked_tls() {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-grpc-tls-")
        .tempdir()
        .expect("temp dir");
    write_certificate(dir.path());
    run_cases("grpc_tls", Some(dir.path()));
}

/// Every case against one server, plaintext or TLS, with every field checked.
fn run_cases(name: &str, tls: Option<&Path>) {
    let port = free_port();
    let server = grpc_server(port, tls);
    let port_arg = port.to_string();
    let scenario = Scenario::start(name, &["--port", &port_arg]);
    let runs: Vec<ClientRun> = CASES.iter().map(|c| call(port, c.0, tls)).collect();
    assert!(
        runs[4].stdout.contains("StatusCode.NOT_FOUND"),
        "{}",
        runs[4].stdout
    );

    let n = CASES.len();
    let done = scenario.finish_when(
        |spans| spans.len() >= 2 * n,
        "rpc.client.call.duration",
        n as u64,
    );
    let d = done.diagnostics();
    let servers = done.spans_of(server.pid());
    assert_eq!(servers.len(), n, "server spans\n{d}");
    assert_eq!(done.spans.len(), 2 * n, "spans from other processes\n{d}");
    for (run, (_, method, status, req, resp)) in runs.iter().zip(CASES) {
        let want = Want {
            method,
            status,
            req,
            resp,
            port,
            tls: tls.is_some(),
        };
        let mine = done.spans_of(run.pid);
        assert_eq!(mine.len(), 1, "{method}\n{d}");
        let client = mine[0];
        assert!(client.is_client(), "{}", client.summary());
        check(client, &want, true);
        let server_span = servers
            .iter()
            .find(|s| s.name == method)
            .unwrap_or_else(|| panic!("no server span for {method}\n{d}"));
        assert!(server_span.is_server());
        check(server_span, &want, false);
        if status == "OK" {
            assert_eq!(
                client.status_code,
                "STATUS_CODE_UNSET",
                "{}",
                client.summary()
            );
            assert!(!client.attributes.contains_key("error.type"));
        } else {
            // A failed call is an error for its client; NOT_FOUND is no server error (the
            // gRPC conventions name the server errors).
            assert_eq!(
                client.status_code,
                "STATUS_CODE_ERROR",
                "{}",
                client.summary()
            );
            assert_eq!(client.str_attr("error.type"), status);
            assert_eq!(client.status_message, "no such thing: widget 42");
        }
    }

    for metric in ["rpc.server.call.duration", "rpc.client.call.duration"] {
        let points = done.points(metric);
        let total: u64 = points.iter().map(|p| p.count).sum();
        assert_eq!(total, n as u64, "{metric}\n{d}");
        for p in &points {
            assert_eq!(p.attr_str("rpc.system.name"), Some("grpc"));
            assert_eq!(p.unit, "s");
        }
        let failed: u64 = points
            .iter()
            .filter(|p| p.attr_str("rpc.status_code") == Some("NOT_FOUND"))
            .map(|p| p.count)
            .sum();
        assert_eq!(failed, 1, "{metric}\n{d}");
        let errors: u64 = points
            .iter()
            .filter(|p| p.attr_str("error.type").is_some())
            .map(|p| p.count)
            .sum();
        assert_eq!(
            errors,
            if metric.starts_with("rpc.client") {
                1
            } else {
                0
            },
            "{metric}\n{d}"
        );
    }
}
