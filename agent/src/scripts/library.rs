//! The scripts shipped with the agent, embedded in the binary: `--script tcp-retransmits`
//! runs `agent/scripts/tcp-retransmits.bt`. All use tracepoints only (no kprobes).

/// Every shipped script: name (its table) and text.
pub const SCRIPTS: &[(&str, &str)] = &[
    (
        "tcp-retransmits",
        include_str!("../../scripts/tcp-retransmits.bt"),
    ),
    ("oom-kills", include_str!("../../scripts/oom-kills.bt")),
    ("exec", include_str!("../../scripts/exec.bt")),
    (
        "slow-disk-io",
        include_str!("../../scripts/slow-disk-io.bt"),
    ),
    (
        "runq-latency",
        include_str!("../../scripts/runq-latency.bt"),
    ),
];

/// The text of the shipped script `name`.
pub fn shipped(name: &str) -> Option<&'static str> {
    SCRIPTS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
