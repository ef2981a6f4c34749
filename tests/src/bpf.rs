//! The kernel's BPF objects as `bpftool` lists them: what an agent loaded, and whether it is
//! gone once the agent has stopped.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

/// Ids of every BPF object of `kind` (`prog`, `link`, `map`) in the kernel now.
fn bpf_ids(kind: &str) -> BTreeSet<u64> {
    let out = Command::new("bpftool")
        .args(["-j", kind, "show"])
        .output()
        .unwrap_or_else(|e| panic!("run bpftool (scripts/setup.sh installs it): {e}"));
    assert!(
        out.status.success(),
        "bpftool {kind} show: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bpftool {kind} show JSON: {e}"));
    list.as_array()
        .map(|a| a.iter().filter_map(|o| o["id"].as_u64()).collect())
        .unwrap_or_default()
}

/// Every BPF program, link and map id in the kernel now, tagged with its kind.
pub fn bpf_objects() -> BTreeSet<(&'static str, u64)> {
    ["prog", "link", "map"]
        .into_iter()
        .flat_map(|kind| bpf_ids(kind).into_iter().map(move |id| (kind, id)))
        .collect()
}
