//! Start-up and failure behaviour of the `wirelens` binary: no capabilities, a second instance,
//! an OTLP endpoint where nothing listens; bad flags, variables and config keys each give one
//! error line naming them and the accepted values. (Each capability on its own: tests/tests/privileges.rs.)
//!
//! Needs root and a built agent; run one at a time (`-- --test-threads=1`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use wirelens_tests::{Agent, Nginx, curl, documented_capabilities, free_port, wait_until};

#[test]
fn refuses_to_start_without_capabilities() {
    // A copy in a world-readable directory, so `nobody` can run it wherever the tree lives.
    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = dir.path().join("wirelens");
    fs::copy(Agent::binary(), &bin).expect("copy the agent");
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).expect("chmod");

    let bin = bin.to_str().expect("utf-8 path");
    let port = free_port().to_string();
    let cmd = Agent::command(
        Path::new("/usr/bin/setpriv"),
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin,
            "--port",
            &port,
        ],
        &[],
    );
    let out = Agent::spawn_command(cmd).wait_exit(Duration::from_secs(30));
    assert!(
        !out.status.success(),
        "started as nobody; stderr:\n{}",
        out.stderr
    );
    // One line per capability, naming it; `nobody` has none of them.
    for cap in documented_capabilities().required {
        let line = format!("wirelens: error: missing capability {cap}: needed for ");
        assert!(
            out.stderr.contains(&line),
            "the error should name {cap}; stderr:\n{}",
            out.stderr
        );
    }
    assert!(
        out.stderr.contains("run wirelens as root"),
        "the error should say how to run it; stderr:\n{}",
        out.stderr
    );
}

#[test]
fn refuses_a_second_instance() {
    let port = free_port().to_string();
    let first = Agent::start(&["--port", &port], &[]);
    let second = Agent::spawn(&["--port", &port], &[]).wait_exit(Duration::from_secs(60));
    assert!(
        !second.status.success(),
        "a second agent started; stderr:\n{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("already running"),
        "the error should say `already running`; stderr:\n{}",
        second.stderr
    );
    // The first one is unharmed.
    first.stop().assert_success();
}

#[test]
fn keeps_running_when_the_endpoint_is_dead() {
    let nginx = Nginx::start(free_port());
    let dead = free_port();
    let endpoint = format!("http://127.0.0.1:{dead}");
    let port = nginx.port.to_string();
    let agent = Agent::start(
        &["--port", &port],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let urls: Vec<String> = ["/index.html?1", "/index.html?2", "/index.html?3"]
        .iter()
        .map(|t| nginx.url(t))
        .collect();
    curl(&[
        "-o",
        "/dev/null",
        &urls[0],
        "-o",
        "/dev/null",
        &urls[1],
        "-o",
        "/dev/null",
        &urls[2],
    ]);

    let needle = format!("127.0.0.1:{dead}");
    wait_until(
        "a warning about the dead endpoint",
        Duration::from_secs(30),
        || failure_line(&agent.stderr(), &needle).then_some(()),
    );
    let out = agent.stop();
    out.assert_success();
    assert!(
        failure_line(&out.stderr, &needle),
        "stderr should name {needle} and say `failed`:\n{}",
        out.stderr
    );
    assert!(
        out.counter("export_failures") > 0,
        "counters: {:?}",
        out.counters()
    );
    assert_eq!(
        out.counter("records"),
        6,
        "3 server + 3 client records: {:?}",
        out.counters()
    );
}

/// A stderr line naming the endpoint and saying it failed.
fn failure_line(stderr: &str, endpoint: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.contains(endpoint) && l.to_lowercase().contains("failed"))
}

/// The agent's error line for a bad setting: it exits non-zero before loading anything, with
/// one `wirelens: error:` line naming the setting and what it accepts.
fn bad_setting_error(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = Agent::spawn(args, envs).wait_exit(Duration::from_secs(30));
    assert!(!out.status.success(), "accepted; stderr:\n{}", out.stderr);
    assert!(!out.stderr.contains("ready"), "started: {}", out.stderr);
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("wirelens: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {}", out.stderr);
    lines[0].to_owned()
}

fn assert_mentions(line: &str, parts: &[&str]) {
    for part in parts {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
}

#[test]
fn bad_flags_variables_and_config_keys_are_named() {
    let line = bad_setting_error(&["--port", "http"], &[]);
    assert_mentions(&line, &["'http'", "--port", "WIRELENS_PORT", "0 to 65535"]);

    let line = bad_setting_error(&[], &[("WIRELENS_OUTPUT", "xml")]);
    assert_mentions(&line, &["'xml'", "WIRELENS_OUTPUT", "text", "json", "none"]);

    let line = bad_setting_error(&[], &[("WIRELENS_RING_SIZE", "1000")]);
    assert_mentions(&line, &["WIRELENS_RING_SIZE", "1000", "power of two"]);

    let line = bad_setting_error(
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ],
    );
    assert_mentions(
        &line,
        &[
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "carrier-pigeon",
            "grpc",
            "http/protobuf",
        ],
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("wirelens.toml");
    fs::write(&config, "port = [80]\nmax_conections = 10\n").expect("write");
    let path = config.to_str().expect("utf-8 path");
    let line = bad_setting_error(&["--config", path], &[]);
    assert_mentions(
        &line,
        &[path, "line 2", "max_conections", "max_connections"],
    );
}
