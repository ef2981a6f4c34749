//! The Linux capabilities the agent needs, checked at start: one line per missing one, naming it
//! and what it is for.
//!
//! The set is the minimum found on kernel 6.18 by running the agent under `setpriv` with one
//! capability taken away at a time (README, "Least privilege"). The agent needs user id 0 only
//! to own tracefs and the lock file, and these capabilities for the rest. Without one of
//! [`REQUIRED`] it refuses to start; without [`UPROBES`] it runs and says what it loses.
//! `CAP_SYS_ADMIN` stands in for `CAP_BPF` and `CAP_PERFMON`, as the kernel's own checks allow,
//! and `CAP_DAC_OVERRIDE` for `CAP_DAC_READ_SEARCH`.

use std::fmt;

/// One capability the agent needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// Its name as the kernel headers and `capsh` spell it.
    pub name: &'static str,
    /// Its bit in the capability sets (`linux/capability.h`).
    pub bit: u32,
    /// Other capabilities that grant the same (the kernel accepts either).
    pub or: &'static [u32],
    /// What the agent cannot do without it.
    pub needed_for: &'static str,
}

const CAP_DAC_OVERRIDE: u32 = 1;
const CAP_DAC_READ_SEARCH: u32 = 2;
const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities the agent needs, in the order they are checked and reported.
pub const REQUIRED: [Capability; 4] = [
    Capability {
        name: "CAP_BPF",
        bit: CAP_BPF,
        or: &[CAP_SYS_ADMIN],
        needed_for: "creating the BPF maps and loading the eBPF programs",
    },
    Capability {
        name: "CAP_PERFMON",
        bit: CAP_PERFMON,
        or: &[CAP_SYS_ADMIN],
        needed_for: "loading tracing programs and attaching the tracepoints and the CPU \
                     profiler's perf events",
    },
    Capability {
        name: "CAP_SYS_PTRACE",
        bit: CAP_SYS_PTRACE,
        or: &[],
        needed_for: "reading other users' processes through /proc/<pid>/{exe,root,maps}: \
                     executable names and the OpenSSL libraries to probe",
    },
    Capability {
        name: "CAP_DAC_READ_SEARCH",
        bit: CAP_DAC_READ_SEARCH,
        or: &[CAP_DAC_OVERRIDE],
        needed_for: "reading /proc/<pid>/environ and /proc/<pid>/fd of other users' processes: \
                     OTEL_SERVICE_NAME, and connections opened before the agent",
    },
];

/// Needed for uprobes only: since the 2025 fix to `perf_uprobe_event_init` (on 6.18 here) the
/// kernel wants `CAP_SYS_ADMIN`, not `CAP_PERFMON`, to create one. The agent runs without it.
pub const UPROBES: Capability = Capability {
    name: "CAP_SYS_ADMIN",
    bit: CAP_SYS_ADMIN,
    or: &[],
    needed_for: "uprobes: without it TLS plaintext (OpenSSL) is not traced, and every message \
                 of a sendmmsg/recvmmsg batch after the first (glibc's paired DNS queries) is \
                 misread",
};

/// Whether `effective` (a `CapEff` mask of `/proc/<pid>/status`) grants `cap`.
fn grants(effective: u64, cap: &Capability) -> bool {
    let has = |bit: u32| bit < 64 && effective & (1u64 << bit) != 0;
    has(cap.bit) || cap.or.iter().any(|&b| has(b))
}

/// The [`REQUIRED`] capabilities missing from an effective set.
pub fn missing(effective: u64) -> Vec<Capability> {
    REQUIRED
        .iter()
        .filter(|c| !grants(effective, c))
        .copied()
        .collect()
}

/// The agent lacks capabilities it needs.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// Some are missing from the effective set.
    #[error("{}", MissingLines(.0))]
    Missing(Vec<Capability>),
    /// Our own capability sets could not be read.
    #[error("cannot read our capabilities from /proc/self/status")]
    Unreadable(#[source] procfs::ProcError),
}

/// One line per missing capability, then how to grant them.
struct MissingLines<'a>(&'a [Capability]);

impl fmt::Display for MissingLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for cap in self.0 {
            writeln!(
                f,
                "missing capability {}: needed for {}",
                cap.name, cap.needed_for
            )?;
        }
        let all: Vec<&str> = REQUIRED.iter().map(|c| c.name).collect();
        write!(
            f,
            "run wirelens as root, or as user 0 with the capabilities {} (and {} for TLS)",
            all.join(","),
            UPROBES.name
        )
    }
}

/// What the capability check found when the agent can run.
#[derive(Debug)]
pub struct Granted {
    /// [`UPROBES`], when missing: the agent runs without uprobes.
    pub lacking_optional: Option<Capability>,
}

/// Checks our effective capabilities; the error names every missing required one.
pub fn check() -> Result<Granted, PrivilegeError> {
    let status = procfs::process::Process::myself()
        .and_then(|p| p.status())
        .map_err(PrivilegeError::Unreadable)?;
    check_mask(status.capeff)
}

fn check_mask(effective: u64) -> Result<Granted, PrivilegeError> {
    let missing = missing(effective);
    if !missing.is_empty() {
        return Err(PrivilegeError::Missing(missing));
    }
    Ok(Granted {
        lacking_optional: (!grants(effective, &UPROBES)).then_some(UPROBES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(bits: &[u32]) -> u64 {
        bits.iter().fold(0, |m, b| m | 1 << b)
    }

    #[test]
    fn full_root_lacks_nothing() {
        // CapEff of root on kernel 6.18 (41 capabilities).
        assert!(missing(0x1ff_ffff_ffff).is_empty());
    }

    #[test]
    fn exactly_the_documented_set_lacks_nothing() {
        let set = mask(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        assert!(missing(set).is_empty());
    }

    #[test]
    fn each_missing_one_is_named() {
        let all = mask(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        for cap in REQUIRED {
            let lacking = missing(all & !(1 << cap.bit));
            assert_eq!(lacking, vec![cap]);
            let text = PrivilegeError::Missing(lacking).to_string();
            assert!(
                text.starts_with(&format!("missing capability {}: needed for ", cap.name)),
                "{text}"
            );
        }
    }

    #[test]
    fn sys_admin_and_dac_override_stand_in() {
        let set = mask(&[CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_DAC_OVERRIDE]);
        assert!(missing(set).is_empty());
    }

    #[test]
    fn uprobes_want_sys_admin_but_the_agent_runs_without() {
        let base = mask(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_DAC_READ_SEARCH]);
        let granted = check_mask(base).expect("the base set runs");
        assert_eq!(granted.lacking_optional, Some(UPROBES));
        let granted = check_mask(base | mask(&[CAP_SYS_ADMIN])).expect("runs");
        assert_eq!(granted.lacking_optional, None);
        assert!(check_mask(mask(&[CAP_SYS_ADMIN])).is_err());
    }

    #[test]
    fn nothing_lacks_everything_one_line_each() {
        let text = PrivilegeError::Missing(missing(0)).to_string();
        let named: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("missing capability "))
            .filter_map(|l| l.split(':').next())
            .collect();
        assert_eq!(
            named,
            [
                "CAP_BPF",
                "CAP_PERFMON",
                "CAP_SYS_PTRACE",
                "CAP_DAC_READ_SEARCH"
            ]
        );
    }
}
