//! Loading the kernel object, setting its globals and filters, attaching every program.

pub mod attached;
pub mod btf;
pub mod cgroup_filter;
pub mod exe_filter;
pub mod gotls;
pub mod link_closer;
pub mod uprobes;

use std::path::Path;

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf},
    programs::{BtfTracePoint, TracePoint, UProbe},
};
use wirelens_ebpf::filter;

use crate::cli::Settings;

/// The kernel object, embedded at build time by `build.rs`.
pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/wirelens-ebpf"));

/// BTF raw tracepoints (`tp_btf`): program name = tracepoint name. The data path.
const BTF_TRACEPOINTS: &[&str] = &["sock_send_length", "sock_recv_length"];

/// Classic tracepoints: program, category, tracepoint.
const ATTACHMENTS: &[(&str, &str, &str)] = &[
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

/// Attached only with network metrics on: retransmissions, and socket errors (why connects
/// fail) (program, category, tracepoint).
const NETWORK_METRICS_ATTACHMENTS: &[(&str, &str, &str)] = &[
    ("tcp_retransmit_skb", "tcp", "tcp_retransmit_skb"),
    ("inet_sk_error_report", "sock", "inet_sk_error_report"),
];

/// Load and attach one classic tracepoint program.
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    (name, category, tracepoint): (&'static str, &'static str, &'static str),
) -> Result<(), ProbeError> {
    let fail = |source| ProbeError::Program {
        name,
        category,
        tracepoint,
        source: Box::new(source),
    };
    let program = ebpf
        .program_mut(name)
        .ok_or(ProbeError::MissingProgram(name))?;
    let tp: &mut TracePoint = program.try_into().map_err(fail)?;
    tp.load().map_err(fail)?;
    tp.attach(category, tracepoint).map_err(fail)?;
    Ok(())
}

/// Maps of the object that only the CPU profiler's instance uses (`profile::sampler` loads
/// the same object a second time): the tracer creates them at a token size. Ring sizes must be
/// a power of two number of pages.
pub const PROFILER_ONLY_MAPS: [(&str, u32); 3] = [
    ("PROFILE_SAMPLES", 4096),
    ("PROFILE_STACKS", 64),
    ("PROFILE_COUNTS", 64),
];
/// Maps only the tracer's instance uses: the profiler creates them at a token size.
pub const TRACER_ONLY_MAPS: [(&str, u32); 10] = [
    ("TLS_CALLS", 64),
    ("TLS_CONNS", 64),
    ("GO_CALLS", 64),
    ("GO_FDS", 64),
    ("GO_WANTED", 64),
    ("MMSG_INDEX", 64),
    ("PORT_FILTER", 64),
    ("SCRATCH", 1),
    ("EXE_PATHS", 1),
    ("EXE_PIDS", 1),
];

/// User-space probe programs: loaded here, attached to files by [`uprobes::Uprobes`].
const UPROBE_PROGRAMS: &[&str] = &[
    "ssl_enter",
    "ssl_return",
    "ssl_free",
    "mmsg_enter",
    "go_tls_enter",
    "go_tls_data",
    "go_tls_return",
];

/// Why the probes could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The object did not load (verifier, permissions, missing BTF).
    #[error("loading the eBPF object failed (is this kernel ≥ 6.5 with BTF?)")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program is missing from the object: a build problem.
    #[error("program {0} is missing from the eBPF object (was the kernel object built?)")]
    MissingProgram(&'static str),
    /// A map is missing from the object.
    #[error("map {0} is missing from the eBPF object")]
    MissingMap(&'static str),
    /// A program failed to load or attach.
    #[error("program {name} failed to load or attach to {category}:{tracepoint}")]
    Program {
        /// Program name.
        name: &'static str,
        /// Tracepoint category.
        category: &'static str,
        /// Tracepoint name.
        tracepoint: &'static str,
        /// Cause.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// The thread that scans for and attaches user-space probes did not start.
    #[error("cannot start the uprobe scan thread")]
    ScanThread(#[source] std::io::Error),
    /// A map operation failed.
    #[error("map {name}: {source}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// Mounting tracefs failed.
    #[error(
        "tracefs is not mounted at /sys/kernel/tracing and mounting it failed (in a container, \
         mount the host's /sys/kernel/tracing)"
    )]
    Tracefs(#[source] std::io::Error),
    /// The kernel's BTF could not be read (needed for the `tp_btf` programs).
    #[error(
        "cannot read the kernel BTF at /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF is required)"
    )]
    Btf(#[source] Box<aya::BtfError>),
    /// CPU count unknown.
    #[error("cannot read the possible CPUs")]
    Cpus(#[source] std::io::Error),
}

/// Loaded and attached programs, with the maps user space reads and writes.
pub struct Probes {
    /// Owns the programs and links (they stay attached until it finishes) and attaches the
    /// OpenSSL and libc probes to the files processes map, off the reader's thread.
    pub scans: uprobes::UprobeThread,
    /// The event stream.
    pub events: RingBuf<MapData>,
    /// Kernel-side counters.
    pub counters: PerCpuArray<MapData, u64>,
    /// The container selector's cgroup filter, when containers are selected.
    pub cgroups: Option<cgroup_filter::CgroupFilter>,
    /// The executable selector's pid filter, when executables are selected.
    pub exes: Option<exe_filter::ExeFilter>,
}

impl Probes {
    /// Load the object with `settings`, fill the filter maps and attach everything.
    pub fn load(settings: &Settings) -> Result<Self, ProbeError> {
        ensure_tracefs()?;
        let cpus = aya::util::nr_cpus().map_err(|(_, e)| ProbeError::Cpus(e))? as u32;
        let agent = std::process::id();
        let mut filters = 0u32;
        if !settings.pids.is_empty() {
            filters |= filter::PID;
        }
        if !settings.ports.is_empty() {
            filters |= filter::PORT;
        }
        if !settings.comms.is_empty() {
            filters |= filter::COMM;
        }
        let pidns = own_pid_namespace();
        if let Some((_, ino)) = pidns {
            filters |= filter::PIDNS;
            tracing::info!(
                pidns = ino,
                "in a pid namespace of its own (a container without the host's pids): tracing \
                 only the processes of this namespace"
            );
        }
        let (pidns_dev, pidns_ino) = pidns.unwrap_or_default();
        let selector = cgroup_filter::Selector::new(
            &settings.containers,
            &settings.k8s_namespaces,
            settings.k8s_pod_selector.clone(),
        );
        if selector.is_some() {
            filters |= filter::CGROUP;
        }
        if settings.exes.is_some() {
            filters |= filter::EXE;
        }
        // Without it, sockets carry no protocol and UDP (DNS) is not told apart from TCP.
        let sk_protocol = btf::kernel_member_offset("sock", "sk_protocol").unwrap_or_else(|e| {
            tracing::warn!("struct sock has no readable sk_protocol ({e}): UDP not traced");
            0
        });
        let network_metrics = u32::from(settings.network_metrics);
        let mut loader = EbpfLoader::new();
        loader
            .override_global("CAPTURE_LIMIT", &settings.capture_limit, true)
            .override_global("AGENT_TGID", &agent, true)
            .override_global("FILTERS", &filters, true)
            .override_global("PIDNS_DEV", &pidns_dev, true)
            .override_global("PIDNS_INO", &pidns_ino, true)
            .override_global("SK_PROTOCOL_OFFSET", &sk_protocol, true)
            .override_global("NETWORK_METRICS", &network_metrics, true)
            .map_max_entries("EVENTS", settings.ring_size)
            .map_max_entries("SCRATCH", cpus);
        for (name, size) in PROFILER_ONLY_MAPS {
            loader.map_max_entries(name, size);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .map_err(|e| ProbeError::Load(Box::new(e)))?;

        fill_filters(&mut ebpf, settings)?;

        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Btf(Box::new(e)))?;
        for &name in BTF_TRACEPOINTS {
            let program = ebpf
                .program_mut(name)
                .ok_or(ProbeError::MissingProgram(name))?;
            let fail = |source| ProbeError::Program {
                name,
                category: "tp_btf",
                tracepoint: name,
                source: Box::new(source),
            };
            let tp: &mut BtfTracePoint = program.try_into().map_err(fail)?;
            tp.load(name, &btf).map_err(fail)?;
            tp.attach().map_err(fail)?;
        }

        for &(name, category, tracepoint) in ATTACHMENTS {
            let program = ebpf
                .program_mut(name)
                .ok_or(ProbeError::MissingProgram(name))?;
            let tp: &mut TracePoint = program.try_into().map_err(|source| ProbeError::Program {
                name,
                category,
                tracepoint,
                source: Box::new(source),
            })?;
            if category == "syscalls" && std::env::var_os("XX_NO_MMSG").is_some() {
                continue;
            }
            if tp.fd().is_err() {
                tp.load().map_err(|source| ProbeError::Program {
                    name,
                    category,
                    tracepoint,
                    source: Box::new(source),
                })?;
            }
            tp.attach(category, tracepoint)
                .map_err(|source| ProbeError::Program {
                    name,
                    category,
                    tracepoint,
                    source: Box::new(source),
                })?;
        }

        if settings.network_metrics {
            for &attachment in NETWORK_METRICS_ATTACHMENTS {
                attach_tracepoint(&mut ebpf, attachment)?;
            }
        }

        for &name in UPROBE_PROGRAMS {
            let program = ebpf
                .program_mut(name)
                .ok_or(ProbeError::MissingProgram(name))?;
            let fail = |source| ProbeError::Program {
                name,
                category: "uprobe",
                tracepoint: name,
                source: Box::new(source),
            };
            let up: &mut UProbe = program.try_into().map_err(fail)?;
            up.load().map_err(fail)?;
        }
        let mut uprobes = uprobes::Uprobes::new();
        uprobes.scan_all(&mut ebpf);

        let events = take(&mut ebpf, "EVENTS").and_then(|m| {
            RingBuf::try_from(m).map_err(|source| ProbeError::Map {
                name: "EVENTS",
                source: Box::new(source),
            })
        })?;
        let counters = take(&mut ebpf, "COUNTERS").and_then(|m| {
            PerCpuArray::try_from(m).map_err(|source| ProbeError::Map {
                name: "COUNTERS",
                source: Box::new(source),
            })
        })?;
        let cgroups = match selector {
            Some(selector) => {
                let map = take(&mut ebpf, "CGROUP_FILTER").and_then(|m| {
                    BpfHashMap::try_from(m).map_err(|source| ProbeError::Map {
                        name: "CGROUP_FILTER",
                        source: Box::new(source),
                    })
                })?;
                Some(cgroup_filter::CgroupFilter::new(map, selector))
            }
            None => None,
        };
        let exes = match &settings.exes {
            Some(selector) => {
                let map = take(&mut ebpf, "EXE_PIDS").and_then(|m| {
                    BpfHashMap::try_from(m).map_err(|source| ProbeError::Map {
                        name: "EXE_PIDS",
                        source: Box::new(source),
                    })
                })?;
                Some(exe_filter::ExeFilter::new(map, selector.clone()))
            }
            None => None,
        };
        let scans = uprobes::UprobeThread::spawn(ebpf, uprobes).map_err(ProbeError::ScanThread)?;
        Ok(Self {
            scans,
            events,
            counters,
            cgroups,
            exes,
        })
    }
}

fn take(ebpf: &mut Ebpf, name: &'static str) -> Result<aya::maps::Map, ProbeError> {
    ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))
}

fn fill_filters(ebpf: &mut Ebpf, settings: &Settings) -> Result<(), ProbeError> {
    let map_err = |name| {
        move |source| ProbeError::Map {
            name,
            source: Box::new(source),
        }
    };
    if !settings.pids.is_empty() {
        let mut m: BpfHashMap<_, u32, u8> = ebpf
            .map_mut("PID_FILTER")
            .ok_or(ProbeError::MissingMap("PID_FILTER"))?
            .try_into()
            .map_err(map_err("PID_FILTER"))?;
        for &pid in &settings.pids {
            m.insert(pid, 1, 0).map_err(map_err("PID_FILTER"))?;
        }
    }
    if !settings.ports.is_empty() {
        let mut m: BpfHashMap<_, u16, u8> = ebpf
            .map_mut("PORT_FILTER")
            .ok_or(ProbeError::MissingMap("PORT_FILTER"))?
            .try_into()
            .map_err(map_err("PORT_FILTER"))?;
        for &port in &settings.ports {
            m.insert(port, 1, 0).map_err(map_err("PORT_FILTER"))?;
        }
    }
    if let Some(exes) = &settings.exes {
        let mut m: BpfHashMap<_, [u8; wirelens_ebpf::EXE_PATH_LEN], u8> = ebpf
            .map_mut("EXE_PATHS")
            .ok_or(ProbeError::MissingMap("EXE_PATHS"))?
            .try_into()
            .map_err(map_err("EXE_PATHS"))?;
        for key in exes.kernel_keys() {
            m.insert(key, 1, 0).map_err(map_err("EXE_PATHS"))?;
        }
    }
    if !settings.comms.is_empty() {
        let mut m: BpfHashMap<_, [u8; 16], u8> = ebpf
            .map_mut("COMM_FILTER")
            .ok_or(ProbeError::MissingMap("COMM_FILTER"))?
            .try_into()
            .map_err(map_err("COMM_FILTER"))?;
        for comm in &settings.comms {
            let mut key = [0u8; 16];
            let n = comm.len().min(15);
            key[..n].copy_from_slice(&comm.as_bytes()[..n]);
            m.insert(key, 1, 0).map_err(map_err("COMM_FILTER"))?;
        }
    }
    Ok(())
}

/// aya finds tracepoint ids through tracefs; mount it where a fresh machine may lack it.
/// The inode of the initial pid namespace (`PROC_PID_INIT_INO`), the same on every kernel.
const INITIAL_PIDNS_INO: u64 = 0xEFFF_FFFC;

/// Our pid namespace as the kernel's `bpf_get_ns_current_pid_tgid` names it (device in the
/// kernel's encoding, inode), unless it is the host's: then pids need no translation.
fn own_pid_namespace() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata("/proc/self/ns/pid")
        .map_err(|e| tracing::warn!(%e, "cannot read /proc/self/ns/pid: assuming the host's"))
        .ok()?;
    if meta.ino() == INITIAL_PIDNS_INO {
        return None;
    }
    let dev = meta.dev();
    // The kernel's dev_t: major in the top 12 bits of 32, minor in the low 20.
    let kernel_dev = (u64::from(libc::major(dev)) << 20) | u64::from(libc::minor(dev));
    Some((kernel_dev, meta.ino()))
}

fn ensure_tracefs() -> Result<(), ProbeError> {
    let root = Path::new("/sys/kernel/tracing");
    if root.join("events").exists() || Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(());
    }
    let status = std::process::Command::new("mount")
        .args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])
        .status()
        .map_err(ProbeError::Tracefs)?;
    if status.success() {
        Ok(())
    } else {
        Err(ProbeError::Tracefs(std::io::Error::other(format!(
            "mount exited with {status}"
        ))))
    }
}
