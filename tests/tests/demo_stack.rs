//! The demo stack (`docker-compose.yaml`, `demo/`), checked offline: no Docker engine runs
//! here and no image registry is reachable, so the stack itself is not started. The Compose
//! file is valid as `docker-compose config` reads it and wires the agent to the collector; the
//! collector's configuration names only components of the contrib distribution (the list
//! recorded in `tests/demo/otelcol-contrib-components.txt`); `promtool` accepts the Prometheus
//! configuration; the application's Python compiles; and every PromQL expression of the
//! provisioned Grafana dashboard parses (`promtool check rules`) and names only metrics and
//! labels the agent really exports, translated the way the collector's Prometheus exporter
//! names them: those come from a real run (the agent tracing nginx under curl, exporting to
//! the independent receiver) and from `wirelens replay` of the parsers' recorded fixtures
//! (databases, messaging, DNS, gRPC). The application itself runs too, outside containers:
//! its frontend, backend, worker and load generator on Debian's python3 (the libraries its
//! image installs) against the suite's PostgreSQL, Redis and nats-server, and the agent sees
//! each service's HTTP, database and NATS spans under its own `service.name`.
//!
//! Needs `scripts/setup.sh` (Debian's `docker-compose`, `prometheus`, `python3-psycopg2`,
//! `python3-redis`, the database servers, the receiver's venv) and a built agent; run under
//! the integration-test lock (it loads the agent).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wirelens_tests::{
    Agent, DB_NAME, Daemon, DbServer, MetricPoint, Otlp, Receiver, Setup, Span, curl, free_port,
    nats_server, poll, workspace_root, write_fixture_pcaps,
};

fn compose(args: &[&str]) -> String {
    let file = workspace_root().join("docker-compose.yaml");
    let out = Command::new("docker-compose")
        .arg("-f")
        .arg(&file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run docker-compose (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "docker-compose {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(workspace_root().join(rel))
        .unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

fn yaml(rel: &str) -> Value {
    serde_norway::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not YAML: {e}"))
}

#[test]
fn compose_file_is_valid_and_wires_the_agent_to_the_collector() {
    let mut services: Vec<String> = compose(&["config", "--services"])
        .lines()
        .map(str::to_string)
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "backend",
            "frontend",
            "grafana",
            "jaeger",
            "loadgen",
            "nats",
            "otel-collector",
            "postgres",
            "prometheus",
            "redis",
            "wirelens",
            "worker",
        ]
    );
    let resolved: Value = serde_norway::from_str(&compose(&["config"])).expect("config is YAML");
    let svc = &resolved["services"];
    let agent_env = &svc["wirelens"]["environment"];
    assert_eq!(
        agent_env["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://127.0.0.1:4317"
    );
    assert_eq!(svc["wirelens"]["pid"], "host");
    // The mounts of the README's Kubernetes section: tracefs and the runtime's state
    // read-only, the lock's directory from the host.
    let agent_mounts = bind_mounts(&svc["wirelens"]);
    for target in [
        "/sys/kernel/tracing",
        "/run/containerd/io.containerd.runtime.v2.task",
        "/run/wirelens",
    ] {
        assert!(
            agent_mounts.iter().any(|(s, t)| s == target && t == target),
            "{target} in {agent_mounts:?}"
        );
    }
    assert_eq!(svc["wirelens"]["read_only"], true);
    let collector = yaml("demo/otel-collector.yaml");
    assert_eq!(
        collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        "127.0.0.1:4317"
    );

    // The agent traces the shop by command name: every application service's program is
    // listed, and each of them names itself (the agent reads OTEL_SERVICE_NAME).
    let comms: BTreeSet<&str> = agent_env["WIRELENS_COMM"]
        .as_str()
        .expect("WIRELENS_COMM")
        .split(',')
        .collect();
    for (service, comm) in [
        ("frontend", "python3"),
        ("backend", "python3"),
        ("worker", "python3"),
        ("loadgen", "curl"),
        ("postgres", "postgres"),
        ("redis", "redis-server"),
        ("nats", "nats-server"),
    ] {
        assert!(comms.contains(comm), "{comm} of {service} is not traced");
        assert_eq!(
            svc[service]["environment"]["OTEL_SERVICE_NAME"], service,
            "{service} names itself"
        );
    }
    for stack in ["otel-collector", "jaeger", "prometheus", "grafana"] {
        assert!(svc[stack]["environment"]["OTEL_SERVICE_NAME"].is_null());
    }
    // Grafana gets its data sources, the dashboard provider and the dashboards, from files
    // of the repository.
    let mounts = bind_mounts(&svc["grafana"]);
    for (source, target) in [
        (
            "demo/grafana/datasources.yaml",
            "/etc/grafana/provisioning/datasources/wirelens.yaml",
        ),
        (
            "demo/grafana/dashboards.yaml",
            "/etc/grafana/provisioning/dashboards/wirelens.yaml",
        ),
        ("demo/grafana/dashboards", "/var/lib/grafana/dashboards"),
    ] {
        let source = workspace_root().join(source);
        assert!(source.exists(), "{}", source.display());
        assert!(
            mounts
                .iter()
                .any(|(s, t)| Path::new(s) == source && t == target),
            "{target} in {mounts:?}"
        );
    }
    for (service, file) in [
        ("otel-collector", "demo/otel-collector.yaml"),
        ("prometheus", "demo/prometheus.yml"),
    ] {
        let source = workspace_root().join(file);
        assert!(
            bind_mounts(&svc[service])
                .iter()
                .any(|(s, _)| Path::new(s) == source),
            "{service} mounts {file}"
        );
    }
    let app_build = &svc["frontend"]["build"];
    let context = app_build["context"].as_str().or(app_build.as_str());
    assert_eq!(
        context.map(Path::new),
        Some(workspace_root().join("demo/app").as_path())
    );
    let provider = yaml("demo/grafana/dashboards.yaml");
    assert_eq!(
        provider["providers"][0]["options"]["path"],
        "/var/lib/grafana/dashboards"
    );
}

/// (source, target) of a resolved service's volumes (`docker-compose config` writes the
/// short form, `source:target[:mode]`, or the long one).
fn bind_mounts(service: &Value) -> Vec<(String, String)> {
    service["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| match v.as_str() {
            Some(short) => {
                let mut parts = short.split(':');
                let source = parts.next().unwrap_or_default().to_string();
                (source, parts.next().unwrap_or_default().to_string())
            }
            None => (
                v["source"].as_str().unwrap_or_default().to_string(),
                v["target"].as_str().unwrap_or_default().to_string(),
            ),
        })
        .collect()
}

#[test]
fn collector_config_names_only_contrib_components() {
    let recorded: BTreeSet<(String, String)> = read("tests/demo/otelcol-contrib-components.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_once(' '))
        .map(|(k, t)| (k.to_string(), t.trim().to_string()))
        .collect();
    let config = yaml("demo/otel-collector.yaml");
    let mut defined = BTreeSet::new();
    for (section, kind) in [
        ("receivers", "receiver"),
        ("processors", "processor"),
        ("exporters", "exporter"),
        ("connectors", "connector"),
        ("extensions", "extension"),
    ] {
        let Some(components) = config[section].as_object() else {
            continue;
        };
        for id in components.keys() {
            let ty = id.split('/').next().unwrap_or(id);
            assert!(
                recorded.contains(&(kind.to_string(), ty.to_string())),
                "{kind} {ty} ({id}) is not in the contrib distribution's recorded list"
            );
            defined.insert((section, id.clone()));
        }
    }
    // Every pipeline uses defined components only, and both signals have one.
    let pipelines = config["service"]["pipelines"]
        .as_object()
        .expect("service.pipelines");
    assert!(pipelines.contains_key("traces") && pipelines.contains_key("metrics"));
    for (name, pipeline) in pipelines {
        for section in ["receivers", "processors", "exporters"] {
            for id in pipeline[section].as_array().into_iter().flatten() {
                let id = id.as_str().expect("component id").to_string();
                let connector = defined.contains(&("connectors", id.clone()));
                assert!(
                    defined.contains(&(section, id.clone())) || connector,
                    "pipeline {name} uses undefined {section} {id}"
                );
            }
        }
    }
    for id in config["service"]["extensions"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = id.as_str().expect("extension id").to_string();
        assert!(
            defined.contains(&("extensions", id.clone())),
            "extension {id}"
        );
    }
}

#[test]
fn prometheus_config_validates() {
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(workspace_root().join("demo/prometheus.yml"))
        .output()
        .unwrap_or_else(|e| panic!("run promtool (scripts/setup.sh installs prometheus): {e}"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn demo_app_compiles_and_its_image_holds_every_file() {
    let app = workspace_root().join("demo/app");
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut sources: Vec<String> = std::fs::read_dir(&app)
        .expect("read demo/app")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".py") || n.ends_with(".sh"))
        .collect();
    sources.sort();
    assert!(sources.len() >= 5, "{sources:?}");
    for name in &sources {
        let path = app.join(name);
        let out = if name.ends_with(".py") {
            // py_compile, with the bytecode written outside the repository.
            Command::new("python3")
                .args(["-m", "py_compile"])
                .arg(&path)
                .env("PYTHONPYCACHEPREFIX", out_dir.path())
                .stdin(Stdio::null())
                .output()
        } else {
            Command::new("sh").arg("-n").arg(&path).output()
        };
        let out = out.unwrap_or_else(|e| panic!("check {name}: {e}"));
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dockerfile = read("demo/app/Dockerfile");
    let copy = dockerfile
        .lines()
        .find(|l| l.starts_with("COPY "))
        .expect("a COPY line");
    for name in &sources {
        assert!(
            copy.split_whitespace().any(|w| w == name),
            "{name} not in {copy}"
        );
    }
    assert!(dockerfile.starts_with('#') && dockerfile.contains("FROM debian:bookworm-slim"));
    // The libraries the application test runs it with (scripts/setup.sh installs the same).
    let setup = read("scripts/setup.sh");
    for package in ["python3-psycopg2", "python3-redis"] {
        assert!(dockerfile.contains(package), "the image installs {package}");
        assert!(
            setup.contains(package),
            "scripts/setup.sh installs {package}"
        );
    }
}

/// Prometheus names of an exported metric, as the collector's Prometheus exporter builds
/// them (contrib `pkg/translator/prometheus`, with metric suffixes, the default): the name's
/// words joined by `_`, the unit's Prometheus word appended unless already there (`s` →
/// `seconds`, `By` → `bytes`; `{annotations}` dropped), `_total` for monotonic sums, and a
/// histogram's `_bucket`, `_count` and `_sum` series.
fn prometheus_names(name: &str, unit: &str, kind: &str, monotonic: bool) -> Vec<String> {
    let mut words: Vec<String> = name
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect();
    let main_unit = unit.split('/').next().unwrap_or("").trim();
    let unit_word = match main_unit {
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "%" => "percent",
        "1" => "",
        u if u.contains(['{', '}']) => "",
        u => u,
    };
    if !unit_word.is_empty() && !words.iter().any(|w| w == unit_word) {
        words.push(unit_word.to_string());
    }
    if kind == "sum" && monotonic {
        words.retain(|w| w != "total");
        words.push("total".into());
    }
    let base = words.join("_");
    match kind {
        "histogram" => ["bucket", "count", "sum"]
            .iter()
            .map(|s| format!("{base}_{s}"))
            .collect(),
        _ => vec![base],
    }
}

/// A label as Prometheus gets it from an attribute: every character outside `[a-zA-Z0-9_]`
/// becomes `_`.
fn prometheus_label(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Resource attributes the demo collector deletes from metrics (`resource/metrics`).
fn deleted_resource_attributes() -> BTreeSet<String> {
    let config = yaml("demo/otel-collector.yaml");
    config["processors"]["resource/metrics"]["attributes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["action"] == "delete")
        .filter_map(|a| a["key"].as_str().map(str::to_string))
        .collect()
}

/// Every Prometheus metric name the points give, with the labels its series carry.
fn exported_series(points: &[MetricPoint]) -> BTreeMap<String, BTreeSet<String>> {
    let deleted = deleted_resource_attributes();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in points {
        for name in prometheus_names(&p.name, &p.unit, &p.kind, p.monotonic) {
            let labels = out.entry(name.clone()).or_default();
            labels.extend(p.attributes.keys().map(|k| prometheus_label(k)));
            labels.extend(
                p.resource
                    .keys()
                    .filter(|k| !deleted.contains(*k))
                    .map(|k| prometheus_label(k)),
            );
            // Added by the exporter (scope, job/instance from service.*) and the scrape.
            labels.extend(
                [
                    "otel_scope_name",
                    "otel_scope_version",
                    "job",
                    "instance",
                    "exported_job",
                ]
                .map(str::to_string),
            );
            if name.ends_with("_bucket") {
                labels.insert("le".into());
            }
        }
    }
    out
}

/// Metric points of a real run: the agent tracing nginx under curl (HTTP, and the agent's own
/// counters), then `wirelens replay` of every recorded parser fixture (the other protocols).
fn real_metric_points() -> Vec<MetricPoint> {
    let setup = Setup::start("demo-dashboard", Otlp::Grpc);
    let base = format!("http://127.0.0.1:{}", setup.nginx.port);
    let run = curl(&[
        "-s",
        "-o",
        "/dev/null",
        &format!("{base}/index.html"),
        "-o",
        "/dev/null",
        &format!("{base}/missing"),
        "-o",
        "/dev/null",
        &format!("{base}/error"),
    ]);
    assert!(run.status.success(), "curl: {}", run.stderr);
    let done = setup.finish(6);
    let mut points = done.metrics;

    let dir = tempfile::tempdir().expect("temp dir");
    let fixtures = write_fixture_pcaps(&workspace_root().join("parsers/testdata"), dir.path());
    assert!(fixtures.len() >= 30, "only {} fixtures", fixtures.len());
    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Grpc);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for file in &fixtures {
        let path = file.to_str().expect("utf-8 path");
        let out = Agent::command(
            &Agent::binary(),
            &["replay", path, "--side", "both", "--output", "none"],
            &envs,
        )
        .stdin(Stdio::null())
        .output()
        .expect("run wirelens replay");
        assert!(
            out.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    points.extend(receiver.metrics());
    points
}

/// Every PromQL expression of the dashboard: panel targets (rows included) and query
/// variables, with its panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_string();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_string()));
                }
            }
            panels(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    panels(&dashboard["panels"], &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] == "query" {
            let query = var["query"]["query"].as_str().or(var["query"].as_str());
            if let Some(q) = query {
                out.push((format!("variable {}", var["name"]), q.to_string()));
            }
        }
    }
    out
}

/// `expr` with Grafana's variables replaced by values PromQL accepts; `label_values(m, l)`
/// becomes the selector `m`.
fn substitute(expr: &str) -> String {
    let expr = expr.trim();
    if let Some(inner) = expr
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let metric = inner.rsplit_once(',').map_or(inner, |(m, _)| m);
        return metric.trim().to_string();
    }
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$service", "frontend")
        .replace("$db_system", "postgresql")
}

/// The metric names an expression selects (`name{...}` or `name[...]`, and any bare word
/// that looks like one of ours), and the label names it uses (in matchers and in
/// `by`/`without`/`on`/`ignoring` lists).
fn names_in(expr: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut metrics = BTreeSet::new();
    let mut labels = BTreeSet::new();
    let bytes = expr.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut i = 0;
    let mut in_string = false;
    let mut in_braces = false;
    let mut grouping = false;
    let mut previous_word = String::new();
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_string = false;
            }
            i += 1;
            continue;
        }
        match c {
            b'"' => in_string = true,
            b'{' => in_braces = true,
            b'}' => in_braces = false,
            b')' => grouping = false,
            b'(' if matches!(
                previous_word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) =>
            {
                grouping = true
            }
            c if is_word(c) && !c.is_ascii_digit() => {
                let start = i;
                while i < bytes.len() && is_word(bytes[i]) {
                    i += 1;
                }
                let word = &expr[start..i];
                let next = expr[i..].trim_start().chars().next();
                if in_braces || grouping {
                    labels.insert(word.to_string());
                } else if matches!(next, Some('{' | '['))
                    || word.starts_with("wirelens_")
                    || ["_bucket", "_count", "_sum", "_total", "_seconds"]
                        .iter()
                        .any(|s| word.ends_with(s))
                {
                    metrics.insert(word.to_string());
                }
                previous_word = word.to_string();
                continue;
            }
            c if c.is_ascii_digit() => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            previous_word.clear();
        }
        i += 1;
    }
    (metrics, labels)
}

#[test]
fn names_in_reads_selectors_and_labels() {
    let (m, l) = names_in(
        r#"histogram_quantile(0.95, sum by (service_name, le) (rate(a_seconds_bucket{x="1", y=~"a|b"}[5m]))) / on (z) b_total"#,
    );
    assert_eq!(m, ["a_seconds_bucket", "b_total"].map(String::from).into());
    assert_eq!(
        l,
        ["le", "service_name", "x", "y", "z"]
            .map(String::from)
            .into()
    );
}

#[test]
fn dashboard_queries_name_only_exported_metrics() {
    let text = read("demo/grafana/dashboards/wirelens.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 12, "{} queries", queries.len());
    // Every data source reference is one the provisioning defines.
    let datasources = yaml("demo/grafana/datasources.yaml");
    let uids: BTreeSet<&str> = datasources["datasources"]
        .as_array()
        .expect("datasources")
        .iter()
        .filter_map(|d| d["uid"].as_str())
        .collect();
    for uid in text.match_indices("\"uid\": \"").map(|(at, m)| {
        let rest = &text[at + m.len()..];
        &rest[..rest.find('"').unwrap_or(0)]
    }) {
        let is_dashboard_uid = dashboard["uid"].as_str() == Some(uid);
        assert!(
            uids.contains(uid) || is_dashboard_uid,
            "unknown data source uid {uid}"
        );
    }

    // Syntax: promtool parses every expression as a recording rule.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (n, (_, expr)) in queries.iter().enumerate() {
        let expr = substitute(expr).replace('\'', "''");
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: '{expr}'\n"
        ));
    }
    let rules_file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&rules_file, &rules).expect("write rules");
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules_file)
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Names: only what the agent exported in a real run, as Prometheus names it.
    let exported = exported_series(&real_metric_points());
    println!("exported, as Prometheus names them:");
    for (metric, labels) in &exported {
        println!("  {metric} {labels:?}");
    }
    let mut problems = Vec::new();
    let mut used = BTreeSet::new();
    for (title, expr) in &queries {
        let (metrics, labels) = names_in(&substitute(expr));
        if metrics.is_empty() {
            problems.push(format!("{title}: selects no metric: {expr}"));
        }
        let mut known_labels = BTreeSet::new();
        for metric in &metrics {
            match exported.get(metric) {
                Some(l) => known_labels.extend(l.iter().cloned()),
                None => problems.push(format!("{title}: {metric} is not exported")),
            }
            used.insert(metric.clone());
        }
        for label in labels.difference(&known_labels) {
            if !known_labels.is_empty() {
                problems.push(format!("{title}: label {label} is on none of {metrics:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nexported:\n{}",
        problems.join("\n"),
        exported
            .iter()
            .map(|(m, l)| format!("{m} {l:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The panels the demo promises: RED per service, each protocol family, the agent's own.
    for needed in [
        "http_server_request_duration_seconds_bucket",
        "http_server_request_duration_seconds_count",
        "http_client_request_duration_seconds_count",
        "rpc_server_call_duration_seconds_count",
        "db_client_operation_duration_seconds_bucket",
        "messaging_client_operation_duration_seconds_count",
        "dns_lookup_duration_seconds_count",
        "wirelens_events_total",
        "wirelens_drops_total",
    ] {
        assert!(used.contains(needed), "no panel uses {needed}");
    }
}

#[test]
fn prometheus_names_follow_the_collector() {
    assert_eq!(
        prometheus_names("http.server.request.duration", "s", "histogram", false),
        [
            "http_server_request_duration_seconds_bucket",
            "http_server_request_duration_seconds_count",
            "http_server_request_duration_seconds_sum"
        ]
    );
    assert_eq!(
        prometheus_names("wirelens.events", "{event}", "sum", true),
        ["wirelens_events_total"]
    );
    assert_eq!(
        prometheus_names("wirelens.captured_bytes", "By", "sum", true),
        ["wirelens_captured_bytes_total"]
    );
    assert_eq!(prometheus_label("db.system.name"), "db_system_name");
}

/// What one span of the demo application is: its service, kind, and the attribute that tells
/// the protocol (with its value).
fn describe(span: &Span) -> (String, String, String) {
    let service = span.res_str("service.name").to_string();
    let attr = |k: &str| span.attributes.get(k).and_then(Value::as_str);
    let what = if let Some(system) = attr("db.system.name") {
        system.to_string()
    } else if let Some(system) = attr("messaging.system.name") {
        format!(
            "{system} {}",
            attr("messaging.destination.name").unwrap_or("?")
        )
    } else if let Some(status) = span.attributes.get("http.response.status_code") {
        format!("http {}", status.as_i64().unwrap_or(0))
    } else {
        span.name.clone()
    };
    (service, span.kind.clone(), what)
}

#[test]
fn demo_application_runs_and_the_agent_sees_each_service() {
    // The shop's programs, run here with Debian's python3 (the packages the image installs)
    // against the test suite's PostgreSQL, Redis and nats-server, traced by the agent.
    let [pg_port, redis_port, nats_port, backend_port, frontend_port] =
        [(); 5].map(|()| free_port());
    let _pg = DbServer::postgres(pg_port);
    let _redis = DbServer::redis(redis_port);
    let _nats = nats_server(nats_port);
    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Grpc);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ports = [pg_port, redis_port, nats_port, backend_port, frontend_port]
        .map(|p| p.to_string())
        .join(",");
    let agent = Agent::start(&["--port", &ports, "--output", "none"], &envs);

    let app = workspace_root().join("demo/app");
    let (pg, redis, nats, backend, frontend) = (
        pg_port.to_string(),
        redis_port.to_string(),
        nats_port.to_string(),
        backend_port.to_string(),
        frontend_port.to_string(),
    );
    let dsn = format!("host=127.0.0.1 port={pg} dbname={DB_NAME} user=postgres");
    let backend_url = format!("http://localhost:{backend}");
    let frontend_url = format!("http://127.0.0.1:{frontend}");
    let common = [
        ("REDIS_HOST", "127.0.0.1"),
        ("REDIS_PORT", redis.as_str()),
        ("NATS_HOST", "127.0.0.1"),
        ("NATS_PORT", nats.as_str()),
        ("NATS_USER", "app"),
        ("NATS_PASS", "secret"),
    ];
    let spawn = |service: &'static str, script: &str, extra: &[(&str, &str)]| {
        let mut envs = common.to_vec();
        envs.push(("OTEL_SERVICE_NAME", service));
        envs.push(("HOST", "127.0.0.1"));
        envs.push(("PYTHONDONTWRITEBYTECODE", "1"));
        envs.extend_from_slice(extra);
        let dir = tempfile::tempdir().expect("temp dir");
        let argv = [
            "/usr/bin/python3".to_string(),
            app.join(script).display().to_string(),
        ];
        Daemon::spawn(service, dir, &argv, &envs)
    };
    let mut worker = spawn("worker", "worker.py", &[]);
    let mut backend_daemon = spawn(
        "backend",
        "backend.py",
        &[("PORT", backend.as_str()), ("PG_DSN", dsn.as_str())],
    );
    backend_daemon.wait_listening(Ipv4Addr::LOCALHOST, backend_port);
    let mut frontend_daemon = spawn(
        "frontend",
        "frontend.py",
        &[
            ("PORT", frontend.as_str()),
            ("BACKEND_URL", backend_url.as_str()),
        ],
    );
    frontend_daemon.wait_listening(Ipv4Addr::LOCALHOST, frontend_port);
    worker.assert_running();

    // Six rounds of the load generator: 12 orders (items at random: some 404 and 500 from the
    // backend, turned into 502 by the frontend) and 6 requests for a missing page.
    let load = Command::new("sh")
        .arg(app.join("loadgen.sh"))
        .envs([
            ("FRONTEND_URL", frontend_url.as_str()),
            ("LOADGEN_ROUNDS", "6"),
            ("LOADGEN_INTERVAL", "0.2"),
            ("OTEL_SERVICE_NAME", "loadgen"),
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen.sh");
    assert!(load.status.success(), "{load:?}");

    let expected: [(&str, &str, &str); 9] = [
        ("loadgen", "SPAN_KIND_CLIENT", "http 404"),
        ("frontend", "SPAN_KIND_SERVER", "http 404"),
        ("frontend", "SPAN_KIND_CLIENT", "http 200"),
        ("backend", "SPAN_KIND_SERVER", "http 200"),
        ("backend", "SPAN_KIND_CLIENT", "postgresql"),
        ("backend", "SPAN_KIND_CLIENT", "redis"),
        ("backend", "SPAN_KIND_PRODUCER", "nats orders.created"),
        ("worker", "SPAN_KIND_CONSUMER", "nats orders.created"),
        ("worker", "SPAN_KIND_CLIENT", "redis"),
    ];
    let seen = || -> BTreeSet<(String, String, String)> {
        receiver.spans().iter().map(describe).collect()
    };
    let complete = poll(Duration::from_secs(30), || {
        expected
            .iter()
            .all(|(s, k, w)| seen().contains(&(s.to_string(), k.to_string(), w.to_string())))
    });
    let out = agent.stop();
    out.assert_success();
    let seen = seen();
    assert!(
        complete,
        "missing: {:?}\nseen: {seen:#?}\nbackend log: {}\nworker log: {}\nfrontend log: {}",
        expected
            .iter()
            .filter(|(s, k, w)| !seen.contains(&(s.to_string(), k.to_string(), w.to_string())))
            .collect::<Vec<_>>(),
        backend_daemon.log(),
        worker.log(),
        frontend_daemon.log()
    );
    // The orders were real: the backend answered 200 to the frontend at least once and
    // PostgreSQL got the INSERTs.
    let inserts = receiver
        .spans()
        .iter()
        .filter(|s| {
            s.attributes
                .get("db.operation.name")
                .and_then(Value::as_str)
                == Some("INSERT")
        })
        .count();
    assert!(inserts >= 1, "no INSERT span");
}
