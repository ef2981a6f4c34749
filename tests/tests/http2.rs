//! HTTP/2 end to end (h2c): nghttpd (`--no-tls`) on 127.0.0.1 driven by curl
//! (`--http2-prior-knowledge`), nghttp and h2load (many concurrent streams), and nghttpx in
//! front of it for an `Upgrade: h2c`; the agent traces the server's port and exports HTTP
//! spans with `network.protocol.version` `2` for both sides, decoded by the independent
//! receiver, with exact counts.
//!
//! Needs root, `scripts/setup.sh --tests` (nghttp2-server, nghttp2-client, nghttp2-proxy) and
//! a built agent; run one at a time (`-- --test-threads=1`).

use std::net::Ipv4Addr;

use wirelens_tests::{
    ClientProcess, ClientRun, Daemon, PARENT_SPAN_ID, Scenario, Span, TRACE_ID, free_port, nghttpd,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// nghttpx accepting HTTP/1.1 (and its h2c upgrade) and h2c on `port`, forwarding to `backend`.
fn nghttpx(port: u16, backend: u16) -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("wirelens-nghttpx-")
        .tempdir()
        .expect("temp dir");
    let argv: Vec<String> = [
        "/usr/sbin/nghttpx".to_string(),
        format!("--frontend=127.0.0.1,{port};no-tls"),
        format!("--backend=127.0.0.1,{backend};;proto=h2"),
        "--workers=1".into(),
        "--no-ocsp".into(),
        "--log-level=WARN".into(),
        format!("--pid-file={}", dir.path().join("nghttpx.pid").display()),
    ]
    .to_vec();
    let mut daemon = Daemon::spawn("nghttpx", dir, &argv, &[]);
    daemon.wait_listening(Ipv4Addr::LOCALHOST, port);
    daemon
}

/// Runs `argv` to completion; panics if it fails.
fn run(argv: &[&str]) -> ClientRun {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let run = ClientProcess::spawn(&argv, &[]).wait();
    assert!(
        run.status.success(),
        "{} failed ({}):\n{}\n{}",
        run.command_line(),
        run.status,
        run.stdout,
        run.stderr
    );
    run
}

fn path_of(s: &Span) -> String {
    s.attributes
        .get("url.path")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or_else(|| {
            let full = s.attributes.get("url.full")?.as_str()?;
            let rest = full.split_once("://")?.1;
            Some(rest[rest.find('/')?..].to_owned())
        })
        .unwrap_or_default()
}

/// Every span is an HTTP/2 GET with the fields both sides share.
fn check_http2(spans: &[&Span], port: u16) {
    for s in spans {
        assert_eq!(s.name, "GET", "{}", s.summary());
        assert_eq!(s.str_attr("http.request.method"), "GET");
        assert_eq!(s.str_attr("network.protocol.name"), "http");
        assert_eq!(
            s.str_attr("network.protocol.version"),
            "2",
            "{}",
            s.summary()
        );
        assert_eq!(s.str_attr("server.address"), "127.0.0.1");
        assert_eq!(s.int_attr("server.port"), i64::from(port));
        assert!(s.end_ns >= s.start_ns);
        let status = s.int_attr("http.response.status_code");
        assert!(status == 200 || status == 404, "{}", s.summary());
    }
}

#[test]
fn h2c_prior_knowledge_many_streams() {
    let port = free_port();
    let server = nghttpd(port, "hello over h2c\n");
    let port_arg = port.to_string();
    let scenario = Scenario::start("http2", &["--port", &port_arg]);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    let curl = run(&[
        "/usr/bin/curl",
        "-sS",
        "--http2-prior-knowledge",
        "-H",
        &format!("traceparent: {TRACEPARENT}"),
        "-o",
        "/dev/null",
        &url("/index.html"),
    ]);
    let nghttp = run(&[
        "/usr/bin/nghttp",
        "-n",
        &url("/index.html"),
        &url("/item.txt"),
        &url("/missing"),
    ]);
    // 60 requests on 2 connections, 10 streams at a time on each.
    let h2load = run(&[
        "/usr/bin/h2load",
        "-n",
        "60",
        "-c",
        "2",
        "-m",
        "10",
        &url("/item.txt"),
    ]);
    assert!(h2load.stdout.contains("60 succeeded"), "{}", h2load.stdout);

    let clients = 1 + 3 + 60;
    let done = scenario.finish_when(
        |spans| spans.len() >= 2 * clients,
        "http.server.request.duration",
        clients as u64,
    );
    let d = done.diagnostics();
    let servers = done.spans_of(server.pid());
    assert_eq!(servers.len(), clients, "server spans\n{d}");
    assert!(servers.iter().all(|s| s.is_server()), "{d}");
    check_http2(&servers, port);
    let of = |pid: u32| done.spans_of(pid);
    let (c, n, h) = (of(curl.pid), of(nghttp.pid), of(h2load.pid));
    assert_eq!((c.len(), n.len(), h.len()), (1, 3, 60), "client spans\n{d}");
    assert_eq!(
        done.spans.len(),
        2 * clients,
        "spans from other processes\n{d}"
    );
    for s in c.iter().chain(&n).chain(&h) {
        assert!(s.is_client(), "{}", s.summary());
    }
    check_http2(&c, port);
    check_http2(&n, port);
    check_http2(&h, port);

    // Paths and statuses, on both sides.
    let mut nghttp_paths: Vec<(String, i64)> = n
        .iter()
        .map(|s| (path_of(s), s.int_attr("http.response.status_code")))
        .collect();
    nghttp_paths.sort();
    assert_eq!(
        nghttp_paths,
        [
            ("/index.html".to_string(), 200),
            ("/item.txt".to_string(), 200),
            ("/missing".to_string(), 404)
        ]
    );
    assert!(h.iter().all(|s| path_of(s) == "/item.txt"), "{d}");
    assert!(
        h.iter().all(|s| s
            .str_attr("user_agent.original")
            .starts_with("h2load nghttp2/")),
        "{d}"
    );
    let missing: Vec<&&Span> = servers
        .iter()
        .filter(|s| path_of(s) == "/missing")
        .collect();
    assert_eq!(missing.len(), 1, "{d}");
    assert_eq!(missing[0].int_attr("http.response.status_code"), 404);
    assert_eq!(
        missing[0].status_code, "STATUS_CODE_UNSET",
        "a 404 is no server error"
    );

    // curl's traceparent: both its spans join the caller's trace.
    let curl_server: Vec<&&Span> = servers
        .iter()
        .filter(|s| s.str_attr("user_agent.original").starts_with("curl/"))
        .collect();
    assert_eq!(curl_server.len(), 1, "{d}");
    assert_eq!(curl_server[0].trace_id, TRACE_ID);
    assert_eq!(curl_server[0].parent_span_id, PARENT_SPAN_ID);
    assert_eq!(c[0].trace_id, TRACE_ID);

    // The duration histograms: every request once, by side.
    let server_total: u64 = done
        .points("http.server.request.duration")
        .iter()
        .filter(|p| p.attr_str("network.protocol.version") == Some("2"))
        .map(|p| p.count)
        .sum();
    assert_eq!(server_total, clients as u64, "{d}");
    let client_total: u64 = done
        .points("http.client.request.duration")
        .iter()
        .filter(|p| p.attr_str("network.protocol.version") == Some("2"))
        .map(|p| p.count)
        .sum();
    assert_eq!(client_total, clients as u64, "{d}");
}

#[test]
fn h2c_upgrade_from_http1() {
    let backend = free_port();
    let _nghttpd = nghttpd(backend, "hello over h2c\n");
    let port = free_port();
    let _proxy = nghttpx(port, backend);
    let port_arg = port.to_string();
    let scenario = Scenario::start("http2_upgrade", &["--port", &port_arg]);
    let url = format!("http://127.0.0.1:{port}/index.html");
    // nghttp -u: HTTP/1.1 with `Upgrade: h2c`, then HTTP/2 (the upgraded request is stream 1).
    let nghttp = run(&["/usr/bin/nghttp", "-nu", &url]);
    // curl --http2 on http:// asks for the upgrade the same way.
    let curl = run(&["/usr/bin/curl", "-sS", "--http2", "-o", "/dev/null", &url]);

    let done = scenario.finish_when(|spans| spans.len() >= 4, "http.server.request.duration", 2);
    let d = done.diagnostics();
    // nghttpx serves from a worker process it forks.
    let servers = done.spans_of_exe("nghttpx");
    assert_eq!(servers.len(), 2, "{d}");
    check_http2(&servers, port);
    for pid in [nghttp.pid, curl.pid] {
        let spans = done.spans_of(pid);
        assert_eq!(spans.len(), 1, "{d}");
        check_http2(&spans, port);
        assert_eq!(path_of(spans[0]), "/index.html");
        assert_eq!(spans[0].int_attr("http.response.status_code"), 200);
    }
    assert_eq!(done.spans.len(), 4, "{d}");
}
