//! The Prometheus endpoint, scraped by a real Prometheus (Debian's `prometheus`): the series it
//! stored equal what the OTLP receiver got over the same window; `/readyz` is 503 while the
//! probes load and 200 after; `/healthz` is 200; the endpoint works with OTLP export off.
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;
use wirelens_tests::{
    Agent, MetricPoint, Nginx, Otlp, Prometheus, Receiver, Sample, curl, free_port,
    histogram_series, http_get, wait_until,
};

/// A series as Prometheus names it: metric name and labels, `le` as a number.
type SeriesKey = (String, BTreeMap<String, String>);

/// Polls `/readyz` from the agent's start until it answers 200; returns every status seen.
fn readyz_until_ready(addr: &str) -> Vec<u16> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<u16> = Vec::new();
    while Instant::now() < deadline {
        if let Some((status, _)) = http_get(addr, "/readyz") {
            if seen.last() != Some(&status) {
                seen.push(status);
            }
            if status == 200 {
                return seen;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("/readyz never answered 200; statuses seen: {seen:?}");
}

fn le_number(labels: &mut BTreeMap<String, String>) {
    if let Some(le) = labels.get_mut("le") {
        let n: f64 = le.parse().unwrap_or_else(|_| panic!("le {le:?}"));
        *le = n.to_string();
    }
}

fn attr_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn label_key(key: &str) -> String {
    key.replace('.', "_")
}

/// The Prometheus series a cumulative OTLP histogram point must become (compatibility spec:
/// `_count`, `_sum` and cumulative `_bucket`s; `job` from service.name, `instance` as wirelens
/// documents it, the scope as `otel_scope_*`).
fn expected_histogram(p: &MetricPoint) -> Vec<(SeriesKey, f64)> {
    assert_eq!(p.unit, "s");
    let base = format!("{}_seconds", p.name.replace('.', "_"));
    let mut labels: BTreeMap<String, String> = p
        .attributes
        .iter()
        .map(|(k, v)| (label_key(k), attr_text(v)))
        .collect();
    let res = |k: &str| attr_text(&p.resource[k]);
    labels.insert("job".into(), res("service.name"));
    labels.insert(
        "instance".into(),
        format!("{}/{}", res("host.name"), res("process.pid")),
    );
    labels.insert("otel_scope_name".into(), p.scope.clone());
    labels.insert(
        "otel_scope_version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    let mut out = vec![
        ((format!("{base}_count"), labels.clone()), p.count as f64),
        (
            (format!("{base}_sum"), labels.clone()),
            p.sum.unwrap_or(0.0),
        ),
    ];
    let mut cumulative = 0;
    for (i, count) in p.bucket_counts.iter().enumerate() {
        cumulative += count;
        let le = p.explicit_bounds.get(i).copied().unwrap_or(f64::INFINITY);
        let mut l = labels.clone();
        l.insert("le".into(), le.to_string());
        out.push(((format!("{base}_bucket"), l), cumulative as f64));
    }
    out
}

fn scraped(prometheus: &Prometheus, selector: &str) -> BTreeMap<SeriesKey, f64> {
    prometheus
        .query(selector)
        .into_iter()
        .map(|(mut labels, value): Sample| {
            let name = labels.remove("__name__").unwrap_or_default();
            le_number(&mut labels);
            ((name, labels), value)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn prometheus_scrape_matches_otlp() {
    let receiver = Receiver::start();
    let nginx = Nginx::start(free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let port = nginx.port.to_string();
    let env = receiver.env(Otlp::Grpc);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut agent = Agent::spawn(
        &[
            "--port",
            &port,
            "--output",
            "none",
            "--prometheus-listen",
            &listen,
        ],
        &env,
    );
    let statuses = readyz_until_ready(&listen);
    assert_eq!(
        statuses,
        [503, 200],
        "/readyz: 503 while the probes load, then 200"
    );
    agent.wait_ready();
    assert_eq!(
        http_get(&listen, "/healthz").map(|(s, _)| s),
        Some(200),
        "/healthz"
    );
    assert_eq!(http_get(&listen, "/nothing").map(|(s, _)| s), Some(404));

    let prometheus = Prometheus::start(&listen);
    let mut urls = Vec::new();
    for i in 0..12 {
        urls.push(nginx.url("/index.html"));
        if i % 3 == 0 {
            urls.push(nginx.url(&format!("/missing-{i}")));
        }
    }
    for url in &urls {
        curl(&["-o", "/dev/null", url]);
    }
    let requests = urls.len() as u64;

    // Both ends have every request: the receiver's latest export, then a scrape after it.
    let names = [
        "http.server.request.duration",
        "http.client.request.duration",
    ];
    let otlp = wait_until(
        "OTLP metrics of every request",
        Duration::from_secs(30),
        || {
            let points = receiver.metrics();
            let done = names.iter().all(|n| {
                histogram_series(&points, n)
                    .iter()
                    .map(|p| p.count)
                    .sum::<u64>()
                    == requests
            });
            done.then_some(points)
        },
    );
    let mut expected: BTreeMap<SeriesKey, f64> = BTreeMap::new();
    let mut resources = BTreeSet::new();
    for name in names {
        for p in histogram_series(&otlp, name) {
            resources.insert(format!(
                "{}/{}",
                attr_text(&p.resource["host.name"]),
                attr_text(&p.resource["process.pid"])
            ));
            expected.extend(expected_histogram(&p));
        }
    }
    assert!(expected.len() > 20, "{expected:#?}");
    let selector =
        r#"{__name__=~"http_(server|client)_request_duration_seconds_(count|sum|bucket)"}"#;
    let got = wait_until(
        "a scrape with every request",
        Duration::from_secs(30),
        || {
            let got = scraped(&prometheus, selector);
            let counted: f64 = got
                .iter()
                .filter(|((n, _), _)| n.ends_with("_count"))
                .map(|(_, v)| v)
                .sum();
            (counted == 2.0 * requests as f64).then_some(got)
        },
    );
    let expected_keys: BTreeSet<&SeriesKey> = expected.keys().collect();
    let got_keys: BTreeSet<&SeriesKey> = got.keys().collect();
    assert_eq!(
        got_keys,
        expected_keys,
        "scraped series against the OTLP series; prometheus log:\n{}",
        prometheus.log()
    );
    for (key, value) in &expected {
        assert!(
            close(got[key], *value),
            "{key:?}: scraped {} otlp {value}",
            got[key]
        );
    }

    // One target_info per Resource, with its other attributes as labels.
    let targets = scraped(&prometheus, "target_info");
    for instance in &resources {
        let (labels, value) = targets
            .iter()
            .find(|((_, l), _)| l.get("instance") == Some(instance))
            .unwrap_or_else(|| panic!("no target_info for {instance}: {targets:#?}"));
        assert_eq!(*value, 1.0);
        let labels = &labels.1;
        let pid = instance.rsplit('/').next().unwrap_or_default();
        assert_eq!(labels.get("process_pid").map(String::as_str), Some(pid));
        assert!(labels.contains_key("process_executable_name"), "{labels:?}");
        assert!(
            !labels.contains_key("service_name"),
            "service.name is the job"
        );
    }

    // The agent's own counters and gauges: the same names both ways (values move between the
    // two). Counters get `_total`, gauges do not.
    let otlp_counters: BTreeSet<String> = receiver
        .metrics()
        .iter()
        .filter(|p| p.name.starts_with("wirelens.") && (p.kind == "sum" || p.kind == "gauge"))
        .map(|p| {
            let unit = if p.unit == "By" && !p.name.ends_with("bytes") {
                "_bytes"
            } else {
                ""
            };
            let total = if p.kind == "sum" { "_total" } else { "" };
            format!("{}{unit}{total}", p.name.replace('.', "_"))
        })
        .collect();
    let scraped_counters: BTreeSet<String> = scraped(&prometheus, r#"{__name__=~"wirelens_.*"}"#)
        .into_keys()
        .map(|(n, _)| n)
        .collect();
    assert!(otlp_counters.len() > 5, "{otlp_counters:?}");
    assert_eq!(scraped_counters, otlp_counters);
    drop(prometheus);
    agent.stop().assert_success();
}

#[test]
fn prometheus_endpoint_without_otlp() {
    let nginx = Nginx::start(free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let port = nginx.port.to_string();
    // OTEL_METRICS_EXPORTER=prometheus turns the endpoint on, on the OTEL_EXPORTER_PROMETHEUS_*
    // address; no OTLP endpoint at all.
    let (host, prom_port) = listen.split_once(':').expect("host:port");
    let agent = Agent::start(
        &["--port", &port, "--output", "none"],
        &[
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", host),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", prom_port),
        ],
    );
    assert_eq!(http_get(&listen, "/readyz").map(|(s, _)| s), Some(200));
    for _ in 0..3 {
        curl(&["-o", "/dev/null", &nginx.url("/index.html")]);
    }
    let line = wait_until("3 requests on /metrics", Duration::from_secs(30), || {
        let (status, body) = http_get(&listen, "/metrics")?;
        assert_eq!(status, 200);
        body.lines()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_count{") && l.ends_with(" 3")
            })
            .map(str::to_owned)
    });
    assert!(line.contains("job=\"nginx\""), "{line}");
    agent.stop().assert_success();
}
