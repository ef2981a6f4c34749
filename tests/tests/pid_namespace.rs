//! The agent in a pid namespace of its own, as in a sidecar (`shareProcessNamespace: true`,
//! no `hostPID`): it traces only the processes of that namespace, filtered in the kernel, and
//! reports them with the namespace's pids, which its own `/proc` resolves. Traffic of the
//! host's processes on a traced port is not seen.
//!
//! Needs root, `unshare` (util-linux), nginx, curl, python3 and a built agent; run one at a
//! time (`-- --test-threads=1`).

use std::fs;
use std::process::Command;

use serde_json::Value;
use wirelens_tests::{Agent, Nginx, curl, free_port};

#[test]
fn traces_only_its_own_pid_namespace_with_its_pids() {
    // Outside: nginx on the host, called from the host while the agent runs.
    let nginx = Nginx::start(free_port());
    let inside_port = free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let agent = Agent::binary();
    // Inside: a fresh pid namespace with its own /proc, a server, the agent and a client.
    let script = format!(
        r#"
        /usr/bin/python3 -m http.server {inside_port} --bind 127.0.0.1 --directory {d} \
            >/dev/null 2>&1 &
        srv=$!
        echo $srv > {d}/server.pid
        NO_COLOR=1 WIRELENS_PROFILE_FREQUENCY=0 {agent} --port {outside} --port {inside_port} \
            --output json > {d}/stdout 2> {d}/stderr &
        ag=$!
        for i in $(seq 300); do grep -q 'probes attached' {d}/stderr && break; sleep 0.1; done
        for i in $(seq 100); do curl -s -o /dev/null http://127.0.0.1:{inside_port}/ && break; sleep 0.1; done
        : > {d}/ready
        for i in $(seq 300); do [ -e {d}/go ] && break; sleep 0.1; done
        curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{inside_port}/inside > {d}/inside.code
        sleep 1
        kill -INT $ag
        wait $ag
        echo $? > {d}/agent.status
        kill $srv
        "#,
        agent = agent.display(),
        outside = nginx.port,
    );
    let mut child = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "90",
            "unshare",
            "--pid",
            "--fork",
            "--mount-proc",
        ])
        .args(["sh", "-c", &script])
        .spawn()
        .expect("run unshare");
    let ready = dir.path().join("ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stderr = || fs::read_to_string(dir.path().join("stderr")).unwrap_or_default();
    assert!(
        ready.exists(),
        "the agent in the namespace is not ready:\n{}",
        stderr()
    );
    let outside = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &nginx.url("/index.html?outside"),
    ]);
    assert_eq!(outside.stdout, "200", "the host's request");
    fs::write(dir.path().join("go"), "").expect("write go");
    let status = child.wait().expect("wait for unshare");
    assert!(
        status.success(),
        "the namespace's script failed:\n{}",
        stderr()
    );

    let read = |name: &str| {
        fs::read_to_string(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}; agent stderr:\n{}", stderr()))
            .trim()
            .to_string()
    };
    assert_eq!(
        read("agent.status"),
        "0",
        "agent exit; stderr:\n{}",
        stderr()
    );
    assert_eq!(read("inside.code"), "404", "the namespace's request");
    assert!(
        stderr().contains("tracing only the processes of this namespace"),
        "{}",
        stderr()
    );
    let server_pid: i64 = read("server.pid").parse().expect("server pid");
    let records: Vec<Value> = read("stdout")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let targets: Vec<&str> = records
        .iter()
        .filter_map(|r| r["target"].as_str())
        .collect();
    // The readiness probe's `/`, then `/inside`: each a server and a client record; never
    // the host's `/index.html?outside`, though its port is traced too.
    assert_eq!(
        targets.iter().filter(|t| **t == "/inside").count(),
        2,
        "records: {records:#?}"
    );
    assert!(
        !targets.iter().any(|t| t.contains("outside")),
        "records: {records:#?}"
    );
    let python = fs::canonicalize("/usr/bin/python3").expect("python3");
    let python = python.file_name().expect("name").to_string_lossy();
    for r in records.iter().filter(|r| r["target"] == "/inside") {
        let pid = r["pid"].as_i64().expect("pid");
        match r["role"].as_str() {
            Some("server") => {
                assert_eq!(pid, server_pid, "the server's pid in the namespace: {r}");
                assert_eq!(r["service"], python.as_ref(), "read from our /proc: {r}");
            }
            Some("client") => {
                assert!(pid > 0 && pid < 1000, "a pid of the new namespace: {r}");
                assert_eq!(r["service"], "curl", "{r}");
            }
            other => panic!("role {other:?}: {r}"),
        }
    }
}
