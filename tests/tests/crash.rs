//! Crashes leave nothing behind: after `kill -9` of the agent, or a panic in one of its threads,
//! none of its BPF programs, links or maps is left in the kernel (`bpftool`, within a second),
//! no uprobe in `uprobe_events`, nothing pinned; a panic ends the agent with a non-zero status
//! and a log line naming the thread. A restarted agent traces again, including a connection
//! opened while no agent ran.
//!
//! The panic is injected with `WIRELENS_INJECT_PANIC=1` (a thread that panics once the agent is
//! ready), the agent's one fault-injection switch.
//!
//! Needs root, bpftool, `scripts/setup.sh` and a built agent; run one at a time.

use std::collections::BTreeSet;
use std::fs;
use std::time::Duration;

use wirelens_tests::{
    Agent, ClientProcess, Nginx, Otlp, Receiver, bpf_objects, free_port, wait_until,
};

fn uprobe_events() -> String {
    fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default()
}

fn pinned() -> Vec<String> {
    fs::read_dir("/sys/fs/bpf")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("wirelens"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (1 s at most) until none of `mine` is left; panics naming what is.
fn assert_all_gone(mine: &BTreeSet<(&'static str, u64)>, uprobes_before: &str, how: &str) {
    let gone = wirelens_tests::poll(Duration::from_secs(1), || {
        let now = bpf_objects();
        mine.iter().all(|o| !now.contains(o))
    });
    let left: Vec<_> = mine.intersection(&bpf_objects()).copied().collect();
    assert!(gone && left.is_empty(), "{how}: BPF objects left: {left:?}");
    assert_eq!(
        uprobe_events(),
        uprobes_before,
        "{how}: uprobe_events changed"
    );
    assert!(pinned().is_empty(), "{how}: pinned objects: {:?}", pinned());
}

#[test]
fn kill_9_leaves_nothing_and_a_restart_traces_again() {
    let nginx = Nginx::start(free_port());
    let port = nginx.port.to_string();
    let before = bpf_objects();
    let uprobes_before = uprobe_events();

    let agent = Agent::start(&["--port", &port, "--output", "none"], &[]);
    let mine: BTreeSet<_> = bpf_objects().difference(&before).copied().collect();
    for kind in ["prog", "link", "map"] {
        assert!(
            mine.iter().any(|(k, _)| *k == kind),
            "the running agent has no BPF {kind}: {mine:?}"
        );
    }
    wirelens_tests::send_signal(agent.pid(), libc::SIGKILL);
    let out = agent.wait_exit(Duration::from_secs(10));
    assert!(
        !out.status.success(),
        "killed agent exited with {}",
        out.status
    );
    assert_all_gone(&mine, &uprobes_before, "after kill -9");

    // A keep-alive connection opened while no agent runs: its second request comes after the
    // restart and must be traced.
    let dir = tempfile::tempdir().expect("temp dir");
    let go = dir.path().join("go");
    let (client, local_port) = ClientProcess::hold(nginx.port, &go, &[]);

    let receiver = Receiver::start();
    let env = receiver.env(Otlp::Grpc);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let agent = Agent::start(&["--port", &port, "--output", "none"], &env);
    fs::write(&go, "").expect("write go file");
    let run = client.wait();
    assert!(run.status.success(), "hold client failed:\n{}", run.stderr);
    wait_until(
        "the restarted agent's spans of the second request",
        Duration::from_secs(30),
        || (receiver.spans().len() >= 2).then_some(()),
    );
    let out = agent.stop();
    out.assert_success();
    let spans = receiver.spans();
    let server = spans
        .iter()
        .find(|s| s.kind == "SPAN_KIND_SERVER")
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    assert_eq!(server.str_attr("url.query"), "second");
    assert_eq!(server.int_attr("client.port"), local_port);
    assert!(
        spans
            .iter()
            .any(|s| s.kind == "SPAN_KIND_CLIENT"
                && s.int_attr("server.port") == i64::from(nginx.port)),
        "no client span of the held connection: {spans:#?}"
    );
}

#[test]
fn a_panic_ends_the_agent_and_leaves_nothing() {
    let port = free_port().to_string();
    let before = bpf_objects();
    let uprobes_before = uprobe_events();
    let mut agent = Agent::spawn(
        &["--port", &port, "--output", "none"],
        &[("WIRELENS_INJECT_PANIC", "1")],
    );
    agent.wait_ready();
    let out = agent.wait_exit(Duration::from_secs(10));
    assert_eq!(
        out.status.code(),
        Some(70),
        "a panicking agent must exit with 70; stderr:\n{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("wirelens-injected-fault") && out.stderr.contains("injected fault"),
        "the log must name the thread and the panic; stderr:\n{}",
        out.stderr
    );
    let left: BTreeSet<_> = bpf_objects().difference(&before).copied().collect();
    assert_all_gone(&left, &uprobes_before, "after a panic");
}
