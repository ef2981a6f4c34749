//! The standard OpenTelemetry variables beyond endpoints: trace sampling
//! (`OTEL_TRACES_SAMPLER`/`_ARG`, never applied to metrics), and the agent's own Resource
//! (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`).
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::fs;
use std::time::Duration;

use wirelens_tests::{
    Agent, Nginx, Otlp, Receiver, curl, free_port, histogram_count, sum_total, wait_until,
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
