//! The capability set the README documents, read from its table, and `setpriv` arguments that
//! run a program with exactly a given set.

use crate::util::workspace_root;

/// The README's capability table: the capabilities the agent needs, as the kernel spells them
/// (`CAP_BPF`), in table order.
#[derive(Debug, Clone)]
pub struct DocumentedCapabilities {
    /// Rows whose `required` column says `yes`: the agent refuses to start without them.
    pub required: Vec<String>,
    /// The other rows (`for TLS`): the agent runs without them and says what it loses.
    pub optional: Vec<String>,
}

/// Reads the table (rows starting with `` | `CAP_ ``) from README.md.
pub fn documented_capabilities() -> DocumentedCapabilities {
    let readme =
        std::fs::read_to_string(workspace_root().join("README.md")).expect("read README.md");
    let mut caps = DocumentedCapabilities {
        required: Vec::new(),
        optional: Vec::new(),
    };
    for line in readme.lines().filter(|l| l.starts_with("| `CAP_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        if cells[2] == "yes" {
            caps.required.push(name);
        } else {
            caps.optional.push(name);
        }
    }
    assert!(
        !caps.required.is_empty(),
        "README.md has no capability table (rows starting with | `CAP_)"
    );
    caps
}

/// `setpriv` options that keep user 0 and set the inheritable, ambient and bounding sets to
/// exactly `caps` (`CAP_BPF` style names) with `no_new_privs`, as a pod with
/// `capabilities: {drop: [ALL], add: [...]}` and `allowPrivilegeEscalation: false` runs.
/// The program and its arguments follow them.
pub fn setpriv_args(caps: &[String]) -> Vec<String> {
    let list: String = caps
        .iter()
        .map(|c| format!(",+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    vec![
        "--reuid=0".into(),
        "--regid=0".into(),
        "--clear-groups".into(),
        format!("--inh-caps=-all{list}"),
        format!("--ambient-caps=-all{list}"),
        format!("--bounding-set=-all{list}"),
        "--no-new-privs".into(),
        "--".into(),
    ]
}

/// The effective capability mask of a process (`CapEff` in `/proc/<pid>/status`).
pub fn effective_capabilities(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/status: {e}"));
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap_or_else(|| panic!("no CapEff in /proc/{pid}/status"));
    u64::from_str_radix(hex.trim(), 16).unwrap_or_else(|e| panic!("CapEff {hex:?}: {e}"))
}

/// The mask of `caps` (`CAP_BPF` style names), numbered as `linux/capability.h` does.
pub fn capability_mask(caps: &[String]) -> u64 {
    caps.iter()
        .map(|c| {
            let bit = match c.as_str() {
                "CAP_DAC_OVERRIDE" => 1,
                "CAP_DAC_READ_SEARCH" => 2,
                "CAP_NET_ADMIN" => 12,
                "CAP_IPC_LOCK" => 14,
                "CAP_SYS_PTRACE" => 19,
                "CAP_SYS_ADMIN" => 21,
                "CAP_SYS_RESOURCE" => 24,
                "CAP_PERFMON" => 38,
                "CAP_BPF" => 39,
                "CAP_CHECKPOINT_RESTORE" => 40,
                other => panic!("capability_mask: add {other}"),
            };
            1u64 << bit
        })
        .fold(0, |m, b| m | b)
}
