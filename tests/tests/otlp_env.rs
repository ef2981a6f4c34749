//! The standard OpenTelemetry variables beyond endpoints: trace sampling
//! (`OTEL_TRACES_SAMPLER`/`_ARG`, never applied to metrics), the agent's own Resource
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), and TLS with a client certificate
//! (`OTEL_EXPORTER_OTLP_CERTIFICATE`, `_CLIENT_CERTIFICATE`, `_CLIENT_KEY`) to a receiver
//! that requires one.
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::fs;
use std::time::Duration;

use wirelens_tests::{
    Agent, Nginx, Otlp, Receiver, curl, free_port, histogram_count, sum_total, wait_until,
    write_mtls_certificates,
};

const REQUESTS: usize = 5_000;

#[test]
fn ratio_sampling_keeps_a_tenth_of_traces_and_every_metric_count() {
    let receiver = Receiver::start();
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    let env = receiver.env(Otlp::Grpc);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("OTEL_TRACES_SAMPLER", "traceidratio"));
    env.push(("OTEL_TRACES_SAMPLER_ARG", "0.1"));
    env.push(("OTEL_BSP_MAX_QUEUE_SIZE", "20000"));
    let agent = Agent::start(&["--port", &port, "--output", "none"], &env);

    // One curl, 5,000 requests on one keep-alive connection: 5,000 traces on each side.
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("urls.curlrc");
    let mut text = String::new();
    for i in 0..REQUESTS {
        text.push_str(&format!(
            "url = \"{}\"\noutput = \"/dev/null\"\n",
            nginx.url(&format!("/index.html?n={i}"))
        ));
    }
    fs::write(&config, text).expect("write curl config");
    curl(&["-K", config.to_str().expect("utf-8 path")]);

    let names = [
        "http.server.request.duration",
        "http.client.request.duration",
    ];
    wait_until(
        "every request in the metrics",
        Duration::from_secs(60),
        || {
            let points = receiver.metrics();
            names
                .iter()
                .all(|n| histogram_count(&points, n) == REQUESTS as u64)
                .then_some(())
        },
    );
    // Spans: the sampler's decisions plus its count of the rest make every request.
    let (servers, clients) = wait_until("every span decided", Duration::from_secs(30), || {
        let spans = receiver.spans();
        let servers = spans.iter().filter(|s| s.is_server()).count();
        let clients = spans.iter().filter(|s| s.is_client()).count();
        let out = sum_total(&receiver.metrics(), "wirelens.export.spans_sampled_out") as usize;
        (servers + clients + out == 2 * REQUESTS).then_some((servers, clients))
    });
    for (side, kept) in [("server", servers), ("client", clients)] {
        assert!(
            (400..=600).contains(&kept),
            "{side}: {kept} of {REQUESTS} traces kept at ratio 0.1 (10% ± 2% is 400 to 600)"
        );
    }
    eprintln!("kept {servers} server and {clients} client spans of {REQUESTS} each");
    agent.stop().assert_success();
}

#[test]
fn resource_variables_name_the_agents_own_resource() {
    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Http);
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.push(("OTEL_SERVICE_NAME", "wirelens-itest"));
    env.push((
        "OTEL_RESOURCE_ATTRIBUTES",
        "deployment.environment.name=itest,k8s.node.name=node%201,service.name=not-this-one",
    ));
    let port = free_port().to_string();
    let agent = Agent::start(&["--port", &port, "--output", "none"], &env);
    let own = wait_until("the agent's counters", Duration::from_secs(30), || {
        receiver
            .metrics()
            .into_iter()
            .find(|p| p.name == "wirelens.events")
    });
    assert_eq!(own.res_str("service.name"), Some("wirelens-itest"));
    assert_eq!(own.res_str("deployment.environment.name"), Some("itest"));
    assert_eq!(own.res_str("k8s.node.name"), Some("node 1"));
    assert_eq!(
        own.resource.get("process.pid").and_then(|v| v.as_i64()),
        Some(i64::from(agent.pid())),
        "{:?}",
        own.resource
    );
    agent.stop().assert_success();
}

#[test]
fn tls_export_with_a_client_certificate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = write_mtls_certificates(dir.path());
    let receiver = Receiver::start_mtls(&certs);
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    let https = |endpoint: String| endpoint.replacen("http://", "https://", 1);
    let grpc = https(receiver.grpc_endpoint());
    let http_traces = format!("{}/v1/traces", https(receiver.http_endpoint()));
    let path = |p: &std::path::Path| p.to_str().expect("utf-8 path").to_owned();
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.client_cert),
        path(&certs.client_key),
    );
    // Metrics over gRPC, traces over HTTP, both with TLS and the client certificate.
    let run = |cert: &str, key: &str| {
        let env = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", grpc.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http_traces.as_str()),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key),
        ];
        let agent = Agent::start(&["--port", &port, "--output", "none"], &env);
        for _ in 0..3 {
            curl(&["-o", "/dev/null", &nginx.url("/index.html")]);
        }
        agent
    };

    let agent = run(&cert, &key);
    let spans = receiver.wait_for_spans(6, Duration::from_secs(30));
    assert!(
        spans.iter().all(|s| s.transport == "http"),
        "traces came over HTTP"
    );
    wait_until("metrics over gRPC", Duration::from_secs(30), || {
        let points = receiver.metrics();
        (histogram_count(&points, "http.server.request.duration") == 3
            && points.iter().all(|p| p.transport == "grpc"))
        .then_some(())
    });
    agent.stop().assert_success();

    // A client certificate from a CA the receiver does not trust: refused, counted.
    let before = receiver.requests().len();
    let (stranger_cert, stranger_key) = (path(&certs.stranger_cert), path(&certs.stranger_key));
    let agent = run(&stranger_cert, &stranger_key);
    std::thread::sleep(Duration::from_secs(3));
    let out = agent.stop();
    out.assert_success();
    assert_eq!(receiver.requests().len(), before, "nothing accepted");
    let failures: u64 = out
        .stderr
        .split_whitespace()
        .find_map(|w| w.strip_prefix("export_failures="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no export_failures in the summary:\n{}", out.stderr));
    assert!(failures > 0, "{}", out.stderr);
}
