//! Connected traces and the service graph: curl → nginx (`proxy_pass`) → a Python
//! `ThreadingHTTPServer` app → PostgreSQL and Redis, all traced by the agent, must come out as
//! one trace per curl request with every span's parent right, checked from the independent
//! receiver's decoded spans; the same app under concurrent load must parent no database call
//! to a request it did not belong to (the app logs which connections each request used); and
//! the service graph metrics must count each edge exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{
    ClientProcess, DbServer, Done, MetricPoint, Nginx, Scenario, Span, curl, fixture, free_port,
    histogram_count, python, server_exe, sum_total,
};

/// The app's service name (the agent reads it from the app's environment).
const APP: &str = "shop-app";

/// The app, started and listening.
struct App {
    process: ClientProcess,
}

impl App {
    fn start(port: u16, pg: u16, redis: u16) -> Self {
        let argv = [
            python().display().to_string(),
            fixture("traces/app.py").display().to_string(),
            port.to_string(),
            pg.to_string(),
            redis.to_string(),
        ];
        let mut process = ClientProcess::spawn(&argv, &[("OTEL_SERVICE_NAME", APP)]);
        process.wait_lines(1, Duration::from_secs(20));
        App { process }
    }

    /// The app's log lines after the first, by request number: (thread, pg port, redis port).
    fn requests(&mut self, n: usize) -> BTreeMap<String, (i64, i64, i64)> {
        let lines = self.process.wait_lines(n + 1, Duration::from_secs(60));
        eprintln!("app log:\n{}", lines.join("\n"));
        lines[1..]
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("app log line");
                let int = |k: &str| v[k].as_i64().unwrap_or_else(|| panic!("{k} in {l}"));
                (
                    v["n"].as_str().expect("n").to_string(),
                    (int("thread"), int("pg_port"), int("redis_port")),
                )
            })
            .collect()
    }
}

fn by_id<'a>(spans: &'a [Span], id: &str) -> Option<&'a Span> {
    spans.iter().find(|s| s.span_id == id)
}

fn service(span: &Span) -> &str {
    span.res_str("service.name")
}

/// The one span of `service` and kind matching `pick`.
fn one<'a>(done: &'a Done, what: &str, pick: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = done.spans.iter().filter(|s| pick(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {} found\n{}",
        found.len(),
        done.diagnostics()
    );
    found[0]
}

/// The database server span whose client port is `port`, and the client span that is its
/// parent (the app's call).
fn db_pair<'a>(done: &'a Done, server: &str, port: i64) -> (&'a Span, &'a Span) {
    let db = one(done, &format!("{server} span from port {port}"), |s| {
        s.is_server() && service(s) == server && s.int_attr("network.peer.port") == port
    });
    let call = by_id(&done.spans, &db.parent_span_id).unwrap_or_else(|| {
        panic!(
            "{server} span from port {port} has no traced parent ({:?})\n{}",
            db.parent_span_id,
            done.diagnostics()
        )
    });
    assert!(
        call.is_client() && service(call) == APP,
        "{}",
        call.summary()
    );
    assert_eq!(call.trace_id, db.trace_id);
    (db, call)
}

/// The latest value of the sum `name` on the edge `client` → `server`.
fn edge_total(metrics: &[MetricPoint], name: &str, client: &str, server: &str) -> f64 {
    metrics
        .iter()
        .filter(|p| {
            p.name == name
                && p.attr_str("client") == Some(client)
                && p.attr_str("server") == Some(server)
        })
        .max_by_key(|p| p.time_ns)
        .and_then(|p| p.value)
        .unwrap_or(0.0)
}

fn edge_type(metrics: &[MetricPoint], client: &str, server: &str) -> Option<String> {
    metrics
        .iter()
        .find(|p| {
            p.name == "traces_service_graph_request_total"
                && p.attr_str("client") == Some(client)
                && p.attr_str("server") == Some(server)
        })
        .and_then(|p| p.attr_str("connection_type").map(str::to_owned))
}

#[test]
fn nginx_proxy_to_app_to_databases_is_one_trace_per_request() {
    let [nginx_port, app_port, pg_port, redis_port] = [(); 4].map(|()| free_port());
    let _pg = DbServer::postgres(pg_port);
    let _redis = DbServer::redis(redis_port);
    let redis_service = server_exe(&_redis);
    let ports = [nginx_port, app_port, pg_port, redis_port]
        .map(|p| p.to_string())
        .join(",");
    let scenario = Scenario::start(
        "connected_traces_proxy",
        &["--port", &ports, "--output", "none"],
    );
    let mut app = App::start(app_port, pg_port, redis_port);
    let nginx = Nginx::start_proxy(nginx_port, app_port);
    const N: usize = 3;
    let url = nginx.url(&format!("/app/[1-{N}]"));
    curl(&["-o", "/dev/null", &url]);
    let log = app.requests(N);
    let done = scenario.finish_when(
        |spans| spans.iter().filter(|s| s.is_server()).count() >= 4 * N,
        "http.server.request.duration",
        2 * N as u64,
    );

    for (n, &(_, pg_local, redis_local)) in &log {
        let path = format!("/app/{n}");
        let full_ends = |s: &Span| s.str_attr("url.full").ends_with(&path);
        let curl_span = one(&done, "curl's span", |s| {
            s.is_client() && service(s) == "curl" && full_ends(s)
        });
        let nginx_server = one(&done, "nginx's server span", |s| {
            s.is_server() && service(s) == "nginx" && s.str_attr("url.path") == path
        });
        let nginx_client = one(&done, "nginx's upstream span", |s| {
            s.is_client() && service(s) == "nginx" && full_ends(s)
        });
        let app_server = one(&done, "the app's server span", |s| {
            s.is_server() && service(s) == APP && s.str_attr("url.path") == path
        });
        let (pg_server, pg_client) = db_pair(&done, "postgres", pg_local);
        let (redis_server, redis_client) = db_pair(&done, &redis_service, redis_local);
        let chain = [
            ("curl", curl_span, ""),
            ("nginx server", nginx_server, curl_span.span_id.as_str()),
            (
                "nginx upstream",
                nginx_client,
                nginx_server.span_id.as_str(),
            ),
            ("app server", app_server, nginx_client.span_id.as_str()),
            ("app postgres call", pg_client, app_server.span_id.as_str()),
            ("postgres", pg_server, pg_client.span_id.as_str()),
            ("app redis call", redis_client, app_server.span_id.as_str()),
            ("redis", redis_server, redis_client.span_id.as_str()),
        ];
        for (what, span, parent) in chain {
            assert_eq!(
                span.parent_span_id,
                parent,
                "request {n}: {what}'s parent\n{}",
                done.diagnostics()
            );
            assert_eq!(
                span.trace_id,
                curl_span.trace_id,
                "request {n}: {what} in curl's trace\n{}",
                done.diagnostics()
            );
        }
    }

    // The service graph: each edge counted once per request, none failed.
    let m = &done.metrics;
    let total = "traces_service_graph_request_total";
    for (client, server, kind) in [
        ("curl", "nginx", ""),
        ("nginx", APP, ""),
        (APP, "postgres", "database"),
        (APP, redis_service.as_str(), "database"),
    ] {
        assert_eq!(
            edge_total(m, total, client, server),
            N as f64,
            "{client} → {server} requests\n{}",
            done.diagnostics()
        );
        assert_eq!(
            edge_total(
                m,
                "traces_service_graph_request_failed_total",
                client,
                server
            ),
            0.0
        );
        assert_eq!(edge_type(m, client, server).as_deref(), Some(kind));
        for side in ["server", "client"] {
            let name = format!("traces_service_graph_request_{side}_seconds");
            let count: u64 = wirelens_tests::histogram_series(m, &name)
                .iter()
                .filter(|p| {
                    p.attr_str("client") == Some(client) && p.attr_str("server") == Some(server)
                })
                .map(|p| p.count)
                .sum();
            assert_eq!(count, N as u64, "{name} {client} → {server}");
        }
    }
    assert!(histogram_count(m, "traces_service_graph_request_server_seconds") >= 4 * N as u64);
    assert!(sum_total(m, "wirelens.trace.remote_parents") >= (4 * N) as f64);
}

#[test]
fn thread_per_request_app_under_concurrent_load_parents_only_its_own_calls() {
    let [app_port, pg_port, redis_port] = [(); 3].map(|()| free_port());
    let _pg = DbServer::postgres(pg_port);
    let _redis = DbServer::redis(redis_port);
    let redis_service = server_exe(&_redis);
    let ports = [app_port, pg_port, redis_port]
        .map(|p| p.to_string())
        .join(",");
    let scenario = Scenario::start(
        "connected_traces_threads",
        &["--port", &ports, "--output", "none"],
    );
    let mut app = App::start(app_port, pg_port, redis_port);
    const N: usize = 40;
    let url = format!("http://127.0.0.1:{app_port}/app/[1-{N}]");
    // Eight requests at a time, each on its own connection (so its own app thread).
    curl(&[
        "-Z",
        "--parallel-max",
        "8",
        "--parallel-immediate",
        "-o",
        "/dev/null",
        &url,
    ]);
    let log = app.requests(N);
    let threads: std::collections::BTreeSet<i64> = log.values().map(|v| v.0).collect();
    assert!(
        threads.len() > 1,
        "requests served by several threads: {threads:?}"
    );
    let done = scenario.finish_when(
        |spans| spans.iter().filter(|s| s.is_server()).count() >= 3 * N,
        "http.server.request.duration",
        N as u64,
    );

    let app_servers: BTreeMap<&str, &Span> = done
        .spans
        .iter()
        .filter(|s| s.is_server() && service(s) == APP)
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    let mut calls_checked = 0;
    for (n, &(_, pg_local, redis_local)) in &log {
        let path = format!("/app/{n}");
        let own = one(&done, "the app's server span", |s| {
            s.is_server() && service(s) == APP && s.str_attr("url.path") == path
        });
        for (server, port) in [
            ("postgres", pg_local),
            (redis_service.as_str(), redis_local),
        ] {
            let (_, call) = db_pair(&done, server, port);
            assert_eq!(
                call.parent_span_id,
                own.span_id,
                "request {n}: its {server} call's parent\n{}",
                done.diagnostics()
            );
            assert_eq!(call.trace_id, own.trace_id);
            calls_checked += 1;
        }
    }
    assert_eq!(calls_checked, 2 * N);
    // No client span of the app has a parent other than an app request that contains it.
    for call in done
        .spans
        .iter()
        .filter(|s| s.is_client() && service(s) == APP)
    {
        if call.parent_span_id.is_empty() {
            continue;
        }
        let parent = app_servers
            .get(call.parent_span_id.as_str())
            .unwrap_or_else(|| panic!("{} parented outside the app", call.summary()));
        assert!(
            parent.start_ns <= call.start_ns && call.end_ns <= parent.end_ns,
            "{} not inside its parent {}",
            call.summary(),
            parent.summary()
        );
    }
    assert_eq!(sum_total(&done.metrics, "wirelens.trace.ambiguous"), 0.0);
}
