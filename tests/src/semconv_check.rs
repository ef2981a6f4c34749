//! The official semantic-conventions registry, asked about what an agent exported:
//! `tests/semconv/check_semconv.mjs` (npm `@opentelemetry/semantic-conventions`, independent of
//! the agent; `wirelens.*` names are ours) reads the receiver's decoded requests.

use std::process::{Command, Stdio};

/// Asserts that the registry accepts every name and type in `requests` (the receiver's
/// decoded requests), and that the check saw `expected` (so it reached the data).
pub fn check_semconv(requests: &[serde_json::Value], expected: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("requests.jsonl");
    let lines: Vec<String> = requests.iter().map(|r| r.to_string()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write requests");
    let script = crate::workspace_root().join("tests/semconv/check_semconv.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run node {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "semconv check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("SUMMARY "))
        .unwrap_or_else(|| panic!("no SUMMARY:\n{stdout}"));
    assert!(
        summary.contains(expected),
        "the check saw no {expected}: {summary}"
    );
}
