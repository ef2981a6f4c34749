//! The demo stack (`docker-compose.yaml`): the file is valid Compose, as `docker-compose
//! config` reads it (no Docker engine runs here, so the stack itself is not started), names
//! the five services, and the agent exports to the port the collector listens on.
//!
//! Needs `scripts/setup.sh` (Debian's `docker-compose`).

use std::process::Command;

use wirelens_tests::workspace_root;

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
            "grafana",
            "jaeger",
            "otel-collector",
            "prometheus",
            "wirelens"
        ]
    );
    let resolved = compose(&["config"]);
    assert!(
        resolved.contains("OTEL_EXPORTER_OTLP_ENDPOINT: http://127.0.0.1:4317"),
        "{resolved}"
    );
    let collector = std::fs::read_to_string(workspace_root().join("demo/otel-collector.yaml"))
        .expect("read demo/otel-collector.yaml");
    assert!(
        collector.contains("endpoint: 127.0.0.1:4317"),
        "{collector}"
    );
}
