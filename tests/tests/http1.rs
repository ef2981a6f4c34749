//! HTTP/1 end to end: nginx and real clients on 127.0.0.1, the agent tracing nginx's port and
//! exporting to the independent receiver; exact span counts and semconv fields, metrics, and the
//! `--output json` lines.
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`): each test starts its
//! own agent and only one may run.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{
    Agent, ClientProcess, ClientRun, Exchange, Finished, HTTP_DURATION_BOUNDS, Nginx, Otlp,
    PARENT_SPAN_ID, Receiver, Setup, Span, TRACE_ID, comm, curl, free_port, histogram_count,
    histogram_series, python_client, wait_until,
};

const UA: &str = "wirelens-test";

fn get<'a>(target: &'a str, status: i64) -> Exchange<'a> {
    Exchange {
        method: "GET",
        target,
        status,
        user_agent: UA,
    }
}

/// The one server span whose url.path and url.query make `target`.
fn server_for<'a>(done: &'a Finished, target: &str) -> &'a Span {
    let matches: Vec<&Span> = done
        .servers()
        .into_iter()
        .filter(|s| {
            let path = s
                .attributes
                .get("url.path")
                .and_then(Value::as_str)
                .unwrap_or("");
            match s.attributes.get("url.query").and_then(Value::as_str) {
                Some(q) if !q.is_empty() => format!("{path}?{q}") == target,
                _ => path == target,
            }
        })
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "{}: server spans for {target}:\n{matches:#?}",
        done.name
    );
    matches[0]
}

/// The one client span whose url.full ends with `target`.
fn client_for<'a>(done: &'a Finished, target: &str) -> &'a Span {
    let full = format!("http://127.0.0.1:{}{target}", done.port);
    let matches: Vec<&Span> = done
        .clients()
        .into_iter()
        .filter(|s| s.attributes.get("url.full").and_then(Value::as_str) == Some(full.as_str()))
        .collect();
    assert_eq!(
        matches.len(),
        1,
        "{}: client spans for {full}:\n{matches:#?}",
        done.name
    );
    matches[0]
}

/// Asserts one server and one client span per exchange, with every field.
fn assert_exchanges(
    done: &Finished,
    exchanges: &[Exchange<'_>],
    client: &ClientRun,
    service: Option<&str>,
) {
    done.assert_counts(exchanges.len(), exchanges.len());
    for ex in exchanges {
        done.assert_server_span(server_for(done, ex.target), ex);
        done.assert_client_span(client_for(done, ex.target), ex, client, service);
    }
    let ids: BTreeSet<&str> = done.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        ids.len(),
        done.spans.len(),
        "{}: span ids are not unique",
        done.name
    );
    assert!(!ids.contains(""), "{}: a span has no id", done.name);
}

/// What curl reports of one transfer (`-w`).
#[derive(Debug)]
struct Transfer {
    local_port: u16,
    code: i64,
    size_request: u64,
    size_header: u64,
    size_download: u64,
}

/// `curl -A UA -w ... -o /dev/null URL...`: all targets on one keep-alive connection.
fn curl_urls(nginx_port: u16, targets: &[&str], extra: &[&str]) -> (ClientRun, Vec<Transfer>) {
    let urls: Vec<String> = targets
        .iter()
        .map(|t| format!("http://127.0.0.1:{nginx_port}{t}"))
        .collect();
    // curl expands the two characters `\n` itself: no newline in the command line.
    let write_out = r"%{local_port} %{http_code} %{size_request} %{size_header} %{size_download}\n";
    let mut args = vec!["-A", UA, "-w", write_out];
    args.extend_from_slice(extra);
    for url in &urls {
        args.extend(["-o", "/dev/null", url.as_str()]);
    }
    let run = curl(&args);
    let transfers: Vec<Transfer> = run
        .stdout
        .lines()
        .map(|l| {
            let f: Vec<u64> = l
                .split(' ')
                .map(|n| n.parse().unwrap_or_else(|_| panic!("curl -w line: {l:?}")))
                .collect();
            Transfer {
                local_port: u16::try_from(f[0]).expect("port"),
                code: i64::try_from(f[1]).expect("code"),
                size_request: f[2],
                size_header: f[3],
                size_download: f[4],
            }
        })
        .collect();
    assert_eq!(
        transfers.len(),
        targets.len(),
        "curl -w output: {}",
        run.stdout
    );
    (run, transfers)
}

#[test]
fn keep_alive_three_requests_on_one_connection() {
    let setup = Setup::start("keep_alive", Otlp::Grpc);
    let targets = ["/index.html?n=1", "/index.html?n=2", "/index.html?n=3"];
    let (run, transfers) = curl_urls(setup.nginx.port, &targets, &[]);
    let ports: Vec<u16> = transfers.iter().map(|t| t.local_port).collect();
    assert!(
        ports.iter().all(|p| *p == ports[0]),
        "curl reused its connection: {ports:?}"
    );

    // No waiting: the SIGINT flush must deliver everything.
    let done = setup.finish_now();
    let exchanges: Vec<Exchange<'_>> = targets.iter().map(|t| get(t, 200)).collect();
    assert_exchanges(&done, &exchanges, &run, None);
    for span in done.servers() {
        assert_eq!(
            span.int_attr("client.port"),
            i64::from(ports[0]),
            "server span client.port"
        );
    }
    done.assert_transport();

    let counters = done.output.counters();
    assert!(
        counters["events"] > 0 && counters["bytes"] > 0,
        "{counters:?}"
    );
    assert_eq!(counters["records"], 6, "{counters:?}");
    assert_eq!(counters["drops"], 0, "{counters:?}");
    assert_eq!(counters["export_failures"], 0, "{counters:?}");
}

#[test]
fn pipelined_requests() {
    let setup = Setup::start("pipelining", Otlp::Http);
    let port = setup.nginx.port.to_string();
    let run = python_client(
        &[
            "pipeline",
            "--port",
            &port,
            "--count",
            "10",
            "--user-agent",
            UA,
        ],
        &[],
    );
    assert_eq!(run.json()["statuses"], serde_json::json!(vec![200; 10]));
    let local_port = run.json()["local_port"].as_i64().expect("local_port");

    let done = setup.finish(20);
    let targets: Vec<String> = (0..10).map(|i| format!("/index.html?i={i}")).collect();
    let exchanges: Vec<Exchange<'_>> = targets.iter().map(|t| get(t, 200)).collect();
    assert_exchanges(&done, &exchanges, &run, None);
    for span in done.servers() {
        assert_eq!(span.int_attr("client.port"), local_port);
    }
    done.assert_transport();
}

#[test]
fn chunked_gzip_response() {
    let setup = Setup::start("chunked", Otlp::Grpc);
    // --compressed asks for gzip: nginx compresses on the fly and sends chunked. The second
    // request on the same connection shows the agent found the end of the chunked body.
    let (run, transfers) = curl_urls(
        setup.nginx.port,
        &["/chunked", "/index.html"],
        &["--compressed", "-D", "/dev/stderr"],
    );
    assert_eq!(transfers[0].local_port, transfers[1].local_port);
    assert!(
        run.stderr
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "the scenario needs a chunked response; headers:\n{}",
        run.stderr
    );
    let done = setup.finish(4);
    assert_exchanges(
        &done,
        &[get("/chunked", 200), get("/index.html", 200)],
        &run,
        None,
    );
}

#[test]
fn one_mib_download_served_by_sendfile() {
    let setup = Setup::start("big_download", Otlp::Grpc);
    let (run, transfers) = curl_urls(setup.nginx.port, &["/big.bin", "/index.html"], &[]);
    assert_eq!(transfers[0].local_port, transfers[1].local_port);
    assert_eq!(transfers[0].size_download, 1 << 20, "{transfers:?}");
    let done = setup.finish(4);
    assert_exchanges(
        &done,
        &[get("/big.bin", 200), get("/index.html", 200)],
        &run,
        None,
    );
}

#[test]
fn upload_100_kb_post() {
    let setup = Setup::start("upload", Otlp::Grpc);
    let port = setup.nginx.port.to_string();
    let service = "wirelens-upload-client";
    let run = python_client(
        &[
            "upload",
            "--port",
            &port,
            "--size",
            "102400",
            "--user-agent",
            UA,
        ],
        &[("OTEL_SERVICE_NAME", service)],
    );
    assert_eq!(run.json()["statuses"], serde_json::json!([201, 200]));
    let done = setup.finish(4);
    let post = Exchange {
        method: "POST",
        target: "/upload",
        status: 201,
        user_agent: UA,
    };
    assert_exchanges(&done, &[post, get("/index.html", 200)], &run, Some(service));
}

#[test]
fn traceparent_makes_the_server_span_a_child() {
    let setup = Setup::start("traceparent", Otlp::Grpc);
    let header = format!("traceparent: 00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let (run, _) = curl_urls(
        setup.nginx.port,
        &["/index.html?traced", "/index.html?untraced"],
        &[],
    );
    let (traced_run, _) = curl_urls(setup.nginx.port, &["/index.html?w3c"], &["-H", &header]);
    let done = setup.finish(6);
    done.assert_counts(3, 3);
    // The caller's context: both spans of the exchange join its trace; the server span is a
    // child of the caller's span, and so is the client span (the header came from the
    // process that made it).
    for span in [
        server_for(&done, "/index.html?w3c"),
        client_for(&done, "/index.html?w3c"),
    ] {
        assert_eq!(span.trace_id, TRACE_ID, "{}: {span:#?}", done.name);
        assert_eq!(
            span.parent_span_id, PARENT_SPAN_ID,
            "{}: {span:#?}",
            done.name
        );
    }
    // Without the header: curl's span starts a fresh trace, and nginx's span is its child
    // (both ends traced: the agent connects them, see tests/tests/connected_traces.rs).
    for target in ["/index.html?traced", "/index.html?untraced"] {
        let span = server_for(&done, target);
        let client = client_for(&done, target);
        assert_ne!(span.trace_id, TRACE_ID, "{}: {span:#?}", done.name);
        assert!(
            client.parent_span_id.is_empty(),
            "{}: {client:#?}",
            done.name
        );
        assert_eq!(span.trace_id, client.trace_id, "{}: {span:#?}", done.name);
        assert_eq!(
            span.parent_span_id, client.span_id,
            "{}: {span:#?}",
            done.name
        );
    }
    let _ = (run, traced_run);
}

#[test]
fn not_found_and_server_error() {
    let setup = Setup::start("errors", Otlp::Http);
    let (run, _) = curl_urls(setup.nginx.port, &["/missing", "/error"], &[]);
    let done = setup.finish(4);
    // Client spans are errors for both; the server span only for the 500 (asserted inside).
    assert_exchanges(
        &done,
        &[get("/missing", 404), get("/error", 500)],
        &run,
        None,
    );
    assert_eq!(
        client_for(&done, "/missing").status_code,
        "STATUS_CODE_ERROR"
    );
    assert_eq!(
        server_for(&done, "/missing").status_code,
        "STATUS_CODE_UNSET"
    );
    assert_eq!(server_for(&done, "/error").status_code, "STATUS_CODE_ERROR");
}

#[test]
fn two_hundred_concurrent_connections() {
    let setup = Setup::start("concurrent", Otlp::Grpc);
    let port = setup.nginx.port.to_string();
    let run = python_client(
        &[
            "concurrent",
            "--port",
            &port,
            "--count",
            "200",
            "--user-agent",
            UA,
        ],
        &[],
    );
    let report = run.json();
    assert_eq!(report["statuses"], serde_json::json!(vec![200; 200]));
    let local_ports: BTreeSet<i64> = report["local_ports"]
        .as_array()
        .expect("local_ports")
        .iter()
        .map(|p| p.as_i64().expect("port"))
        .collect();
    assert_eq!(local_ports.len(), 200);

    let done = setup.finish(400);
    let targets: Vec<String> = (0..200).map(|i| format!("/index.html?c={i}")).collect();
    let exchanges: Vec<Exchange<'_>> = targets.iter().map(|t| get(t, 200)).collect();
    assert_exchanges(&done, &exchanges, &run, None);
    let span_ports: BTreeSet<i64> = done
        .servers()
        .iter()
        .map(|s| s.int_attr("client.port"))
        .collect();
    assert_eq!(
        span_ports, local_ports,
        "server spans' client.port are the clients' ports"
    );
}

fn exports_over(otlp: Otlp, name: &str) {
    let setup = Setup::start(name, otlp);
    let (run, _) = curl_urls(setup.nginx.port, &["/index.html"], &[]);
    // Spans, then at least one metric interval.
    let setup_spans = setup.receiver.wait_for_spans(2, Duration::from_secs(30));
    assert_eq!(setup_spans.len(), 2);
    wait_until("metrics at the receiver", Duration::from_secs(30), || {
        (!setup.receiver.metrics().is_empty()).then_some(())
    });
    let done = setup.finish(2);
    assert_exchanges(&done, &[get("/index.html", 200)], &run, None);
    done.assert_transport();
    assert!(done.requests.iter().any(|r| r["signal"] == "metrics"));
}

#[test]
fn exports_over_grpc() {
    exports_over(Otlp::Grpc, "transport_grpc");
}

#[test]
fn exports_over_http_protobuf() {
    exports_over(Otlp::Http, "transport_http");
}

#[test]
fn export_retries_after_unavailable() {
    // The first traces request is refused (UNAVAILABLE); the agent must send it again.
    let receiver = Receiver::start_failing_first(1, "traces");
    let setup = Setup::start_with("retry", Otlp::Grpc, receiver, &[]);
    let (run, _) = curl_urls(setup.nginx.port, &["/index.html"], &[]);
    let done = setup.finish(2);
    assert_eq!(done.rejected, 1, "the receiver refused one traces request");
    assert_exchanges(&done, &[get("/index.html", 200)], &run, None);
}

#[test]
fn metrics_count_requests() {
    let setup = Setup::start("metrics", Otlp::Grpc);
    let (three, _) = curl_urls(
        setup.nginx.port,
        &["/index.html", "/index.html?b", "/index.html?c"],
        &[],
    );
    let (missing, _) = curl_urls(setup.nginx.port, &["/missing"], &[]);
    let (error, _) = curl_urls(setup.nginx.port, &["/error"], &[]);
    let done = setup.finish(10);
    done.assert_counts(5, 5);

    // Server side: one series per (method, status) in the nginx worker's Resource.
    let server = histogram_series(&done.metrics, "http.server.request.duration");
    assert_eq!(
        histogram_count(&done.metrics, "http.server.request.duration"),
        5
    );
    let by_status = |series: &[wirelens_tests::MetricPoint], status: i64| -> u64 {
        series
            .iter()
            .filter(|p| p.attr_int("http.response.status_code") == Some(status))
            .map(|p| p.count)
            .sum()
    };
    assert_eq!(
        (
            by_status(&server, 200),
            by_status(&server, 404),
            by_status(&server, 500)
        ),
        (3, 1, 1),
        "server series: {server:#?}"
    );
    for p in &server {
        assert_histogram(p);
        assert_eq!(p.res_str("service.name"), Some(done.worker_exe.as_str()));
        assert_eq!(
            p.resource.get("process.pid").and_then(Value::as_i64),
            Some(i64::from(done.worker_pid))
        );
        assert_eq!(p.attr_str("http.request.method"), Some("GET"));
        assert_eq!(p.attr_str("url.scheme"), Some("http"));
    }

    // Client side: one curl process per Resource.
    let client = histogram_series(&done.metrics, "http.client.request.duration");
    assert_eq!(
        histogram_count(&done.metrics, "http.client.request.duration"),
        5
    );
    assert_eq!(
        (
            by_status(&client, 200),
            by_status(&client, 404),
            by_status(&client, 500)
        ),
        (3, 1, 1),
        "client series: {client:#?}"
    );
    for p in &client {
        assert_histogram(p);
        assert_eq!(p.res_str("service.name"), Some("curl"));
        assert_eq!(p.attr_str("http.request.method"), Some("GET"));
        assert_eq!(p.attr_str("server.address"), Some("127.0.0.1"));
        assert_eq!(p.attr_int("server.port"), Some(i64::from(done.port)));
    }
    for (run, count) in [(&three, 3), (&missing, 1), (&error, 1)] {
        let of_pid: u64 = client
            .iter()
            .filter(|p| {
                p.resource.get("process.pid").and_then(Value::as_i64) == Some(i64::from(run.pid))
            })
            .map(|p| p.count)
            .sum();
        assert_eq!(of_pid, count, "client requests of curl pid {}", run.pid);
    }

    let own: BTreeSet<&str> = done
        .metrics
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| n.starts_with("wirelens."))
        .collect();
    assert!(
        !own.is_empty(),
        "no wirelens.* metrics among {:?}",
        metric_names(&done)
    );
}

fn metric_names(done: &Finished) -> BTreeSet<&str> {
    done.metrics.iter().map(|p| p.name.as_str()).collect()
}

fn assert_histogram(p: &wirelens_tests::MetricPoint) {
    assert_eq!(p.kind, "histogram", "{}", p.name);
    assert_eq!(p.unit, "s", "{}", p.name);
    assert_eq!(
        p.explicit_bounds, HTTP_DURATION_BOUNDS,
        "{}: semconv default buckets",
        p.name
    );
    assert_eq!(
        p.bucket_counts.len(),
        HTTP_DURATION_BOUNDS.len() + 1,
        "{}",
        p.name
    );
    assert_eq!(
        p.bucket_counts.iter().sum::<u64>(),
        p.count,
        "{}: buckets add up",
        p.name
    );
    let sum = p.sum.unwrap_or_else(|| panic!("{}: no sum", p.name));
    assert!(
        sum > 0.0 && sum < 10.0 * p.count as f64,
        "{}: sum {sum} s",
        p.name
    );
    for key in [
        "url.path",
        "url.full",
        "url.query",
        "client.port",
        "user_agent.original",
    ] {
        assert!(
            !p.attributes.contains_key(key),
            "{}: high-cardinality {key} on a metric",
            p.name
        );
    }
}

#[test]
fn connection_opened_before_the_agent() {
    let nginx = Nginx::start(free_port());
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let (client, local_port) = ClientProcess::hold(nginx.port, &go, &["--user-agent", UA]);

    // The agent starts with the connection already open and idle; only the second request is
    // made while it runs.
    let setup = Setup::start_agent("preexisting", Otlp::Grpc, nginx, receiver, &[]);
    fs::write(&go, "").expect("write go file");
    let run = client.wait();
    assert!(run.status.success(), "hold client failed:\n{}", run.stderr);
    assert_eq!(run.json()["status"], 200);

    let done = setup.finish(2);
    assert_exchanges(&done, &[get("/index.html?second", 200)], &run, None);
    let server = server_for(&done, "/index.html?second");
    assert_eq!(server.str_attr("client.address"), "127.0.0.1");
    assert_eq!(server.int_attr("client.port"), local_port);
}

#[test]
fn json_output_lines() {
    let nginx = Nginx::start(free_port());
    let worker = nginx.worker_pid();
    let port = nginx.port.to_string();
    let agent = Agent::start(&["--port", &port, "--output", "json"], &[]);
    let (run, transfers) = curl_urls(nginx.port, &["/index.html"], &[]);
    let t = &transfers[0];
    assert_eq!(t.code, 200);
    let (request_bytes, response_bytes) = (t.size_request, t.size_header + t.size_download);
    wait_until(
        "two JSON lines on the agent's stdout",
        Duration::from_secs(30),
        || (agent.stdout().lines().count() >= 2).then_some(()),
    );
    let out = agent.stop();
    out.assert_success();
    let records = out.json_records();
    assert_eq!(records.len(), 2, "stdout:\n{}", out.stdout);

    let server = records
        .iter()
        .find(|r| r["role"] == "server")
        .expect("a server record");
    let client = records
        .iter()
        .find(|r| r["role"] == "client")
        .expect("a client record");
    let nginx_addr = format!("127.0.0.1:{port}");
    let curl_addr = format!("127.0.0.1:{}", t.local_port);
    for (record, pid, comm, local, peer) in [
        (server, worker, comm(worker), &nginx_addr, &curl_addr),
        (client, run.pid, "curl".to_string(), &curl_addr, &nginx_addr),
    ] {
        let ctx = format!("record {record}");
        assert_eq!(record["pid"], pid, "{ctx}");
        assert_eq!(record["comm"], comm.as_str(), "{ctx}");
        assert_eq!(record["protocol"], "http1", "{ctx}");
        assert_eq!(record["method"], "GET", "{ctx}");
        assert_eq!(record["target"], "/index.html", "{ctx}");
        assert_eq!(record["status"], 200, "{ctx}");
        assert_eq!(record["local"], local.as_str(), "{ctx}");
        assert_eq!(record["peer"], peer.as_str(), "{ctx}");
        assert_eq!(
            record["request_bytes"], request_bytes,
            "{ctx}: curl's size_request"
        );
        assert_eq!(
            record["response_bytes"], response_bytes,
            "{ctx}: curl's size_header + size_download"
        );
        let duration = record["duration_ms"]
            .as_f64()
            .unwrap_or_else(|| panic!("{ctx}: duration_ms"));
        assert!((0.0..30_000.0).contains(&duration), "{ctx}: duration_ms");
        let time = record["time"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: time"));
        assert!(is_rfc3339(time), "{ctx}: time {time:?} is not RFC 3339");
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        || !(b[10] == b'T' || b[10] == b't')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
    {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        rest = &frac[n..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

#[test]
fn rfc3339_check() {
    assert!(is_rfc3339("2026-11-25T15:02:28Z"));
    assert!(is_rfc3339("2026-11-25T15:02:28.123456789+01:00"));
    assert!(!is_rfc3339("2026-11-25 15:02:28"));
    assert!(!is_rfc3339("2026-11-25T15:02:28."));
    assert!(!is_rfc3339("1764083000"));
}
