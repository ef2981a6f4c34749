//! Connected traces and the service graph: curl → nginx (`proxy_pass`) → a Python
//! `ThreadingHTTPServer` app → PostgreSQL and Redis, all traced by the agent, must come out as
//! one trace per curl request with every span's parent right, checked from the independent
//! receiver's decoded spans; the same app under concurrent load must parent no database call
//! to a request it did not belong to (the app logs which connections each request used); and
//! the service graph metrics must count each edge exactly. A DNS lookup the app makes while
//! serving (glibc over UDP, to dnsmasq) is the request's child and dnsmasq's span the lookup's;
//! and keep-alive connections opened before the agent started, one of them with a request in
//! flight when it attached, pair once both ends are seen.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{
    ClientProcess, DbServer, Done, MetricPoint, Nginx, Scenario, Span, curl, dnsmasq, fixture,
    free_port, histogram_count, python, server_exe, sum_total,
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

/// The resolving app's service name.
const RESOLVER: &str = "resolver-app";
/// Where dnsmasq listens (glibc asks port 53 of the address in `resolv.conf`).
const DNS_IP: &str = "127.0.0.2";

#[test]
fn a_lookup_made_while_serving_is_the_requests_child_and_the_dns_server_the_lookups() {
    let app_port = free_port();
    let dns = dnsmasq(DNS_IP, 53);
    let resolv = dns.dir().join("resolv.conf");
    fs::write(
        &resolv,
        format!("nameserver {DNS_IP}\noptions attempts:1\n"),
    )
    .expect("write resolv.conf");
    let ports = format!("53,{app_port}");
    let scenario = Scenario::start(
        "connected_traces_dns",
        &["--port", &ports, "--output", "none"],
    );
    // The app's glibc reads a resolv.conf naming dnsmasq, bind-mounted in a private mount
    // namespace (the host's is never touched); `sh` execs the app, which is the traced process.
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec {} {} {app_port} web.test",
        resolv.display(),
        python().display(),
        fixture("traces/resolver_app.py").display()
    );
    let argv = ["/usr/bin/unshare", "-m", "/bin/sh", "-c", &script].map(str::to_owned);
    let mut app = ClientProcess::spawn(&argv, &[("OTEL_SERVICE_NAME", RESOLVER)]);
    app.wait_lines(1, Duration::from_secs(20));
    const N: usize = 2;
    curl(&[
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{app_port}/lookup/[1-{N}]"),
    ]);
    let lines = app.wait_lines(N + 1, Duration::from_secs(30));
    for line in &lines[1..] {
        let v: Value = serde_json::from_str(line).expect("app log line");
        assert_eq!(v["found"], serde_json::json!(["10.1.2.3"]), "{line}");
    }
    // Per request: the app's server span, and dnsmasq's A and AAAA.
    let done = scenario.finish_when(
        |spans| spans.iter().filter(|s| s.is_server()).count() >= 3 * N,
        "http.server.request.duration",
        N as u64,
    );

    for n in 1..=N {
        let path = format!("/lookup/{n}");
        let curl_span = one(&done, "curl's span", |s| {
            s.is_client() && service(s) == "curl" && s.str_attr("url.full").ends_with(&path)
        });
        let app_server = one(&done, "the app's server span", |s| {
            s.is_server() && service(s) == RESOLVER && s.str_attr("url.path") == path
        });
        assert_eq!(app_server.parent_span_id, curl_span.span_id, "request {n}");
        let lookups: Vec<&Span> = done
            .spans
            .iter()
            .filter(|s| s.is_client() && service(s) == RESOLVER && s.name.starts_with("DNS "))
            .filter(|s| s.parent_span_id == app_server.span_id)
            .collect();
        let mut names: Vec<&str> = lookups.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["DNS A", "DNS AAAA"],
            "request {n}: the lookups under the app's span\n{}",
            done.diagnostics()
        );
        for lookup in lookups {
            assert_eq!(lookup.trace_id, curl_span.trace_id, "request {n}");
            let answer = one(&done, "dnsmasq's span of the lookup", |s| {
                s.is_server() && service(s) == "dnsmasq" && s.parent_span_id == lookup.span_id
            });
            assert_eq!(answer.name, lookup.name, "request {n}");
            assert_eq!(answer.trace_id, curl_span.trace_id, "request {n}");
        }
    }
    let answers = done
        .spans
        .iter()
        .filter(|s| s.is_server() && service(s) == "dnsmasq")
        .count();
    assert_eq!(answers, 2 * N, "dnsmasq spans\n{}", done.diagnostics());
    assert_eq!(
        edge_total(
            &done.metrics,
            "traces_service_graph_request_total",
            RESOLVER,
            "dnsmasq"
        ),
        (2 * N) as f64,
        "{}",
        done.diagnostics()
    );
}

#[test]
fn keep_alive_connections_opened_before_the_agent_pair_once_both_ends_are_seen() {
    let port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let argv = |mode: &str| {
        [
            python().display().to_string(),
            fixture("traces/midstream.py").display().to_string(),
            mode.to_owned(),
            port.to_string(),
            go.display().to_string(),
        ]
    };
    let mut server = ClientProcess::spawn(&argv("server"), &[("OTEL_SERVICE_NAME", "ms-server")]);
    server.wait_lines(1, Duration::from_secs(20));
    let mut client = ClientProcess::spawn(&argv("client"), &[("OTEL_SERVICE_NAME", "ms-client")]);
    // Connection A idle, connection B with GET /r/2 unread in the server's buffer.
    client.wait_lines(1, Duration::from_secs(20));
    let port_arg = port.to_string();
    let scenario = Scenario::start(
        "connected_traces_midstream",
        &["--port", &port_arg, "--output", "none"],
    );
    fs::write(&go, "").expect("write go file");
    let lines = client.wait_lines(2, Duration::from_secs(30));
    let report: Value = serde_json::from_str(&lines[1]).expect("the client's report");
    for status in report["statuses"].as_object().expect("statuses").values() {
        assert_eq!(status, 200, "{report}");
    }
    // /a/2, /a/3, /r/2, /r/3, /r/4 (the server read /r/1 before the agent).
    let done = scenario.finish_when(
        |spans| spans.iter().filter(|s| s.is_server()).count() >= 5,
        "http.server.request.duration",
        5,
    );

    let server_span = |path: &str| {
        one(&done, &format!("the server's span of {path}"), |s| {
            s.is_server() && service(s) == "ms-server" && s.str_attr("url.path") == path
        })
    };
    for path in ["/a/2", "/a/3", "/r/3", "/r/4"] {
        let call = one(&done, &format!("the client's span of {path}"), |s| {
            s.is_client() && service(s) == "ms-client" && s.str_attr("url.full").ends_with(path)
        });
        let served = server_span(path);
        assert_eq!(
            served.parent_span_id,
            call.span_id,
            "{path}: the server's span under the client's\n{}",
            done.diagnostics()
        );
        assert_eq!(served.trace_id, call.trace_id, "{path}");
    }
    // Its request was written before the agent attached: no client span to be under (and
    // not the next request's, which starts at the same position on the client's end).
    assert_eq!(
        server_span("/r/2").parent_span_id,
        "",
        "{}",
        done.diagnostics()
    );
    assert_eq!(
        edge_total(
            &done.metrics,
            "traces_service_graph_request_total",
            "ms-client",
            "ms-server"
        ),
        4.0,
        "{}",
        done.diagnostics()
    );
}
