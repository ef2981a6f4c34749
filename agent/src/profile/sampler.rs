//! The sampler in the kernel: its own instance of the kernel object with the `perf_event`
//! program on every online CPU and the exec/exit tracepoints, and the maps user space drains.
//!
//! The data path's programs are not attached in this instance, so its event ring carries only
//! process exec/exit events (for cache eviction) and is made small.

use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf, StackTraceMap},
    programs::{
        PerfEvent, TracePoint,
        perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent},
    },
};
use wirelens_ebpf::{
    filter,
    profile::{SampleKey, mode},
};

/// Bytes of the exec/exit event ring of the profiler's instance.
const PROC_EVENTS_RING: u32 = 256 * 1024;

/// How user stacks are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UnwindMode {
    /// Copy registers and stack bytes at each sample; unwind in user space from `.eh_frame`
    /// (works without frame pointers; frame pointers where there is no unwind info).
    Dwarf,
    /// Frame pointers only, walked in the kernel; samples counted in the kernel.
    Fp,
}

/// What the sampler is set up with.
#[derive(Clone, Debug)]
pub struct SamplerConfig {
    /// Samples per second per CPU.
    pub frequency: u64,
    /// How user stacks are taken.
    pub unwind: UnwindMode,
    /// Only these processes (empty: all).
    pub pids: Vec<u32>,
    /// Only threads with these command names (empty: all).
    pub comms: Vec<String>,
    /// Bytes of the sample ring (a power of two).
    pub ring_size: u32,
}

/// Why the sampler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// The object did not load.
    #[error("loading the eBPF object for the profiler failed")]
    Load(#[source] Box<aya::EbpfError>),
    /// A program or map is missing from the object.
    #[error("{0} is missing from the eBPF object (was the kernel object built?)")]
    Missing(&'static str),
    /// A program failed to load or attach.
    #[error("program {name} failed to load or attach ({what})")]
    Program {
        /// Program name.
        name: &'static str,
        /// Where it was attached.
        what: String,
        /// Cause.
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    /// A map operation failed.
    #[error("map {name}")]
    Map {
        /// Map name.
        name: &'static str,
        /// Cause.
        #[source]
        source: Box<aya::maps::MapError>,
    },
    /// The online CPUs could not be read.
    #[error("cannot read the online CPUs")]
    Cpus(#[source] std::io::Error),
}

/// The loaded sampler: keeps programs and perf events alive, holds the maps.
pub struct Sampler {
    _ebpf: Ebpf,
    /// Unwinding-mode samples.
    pub samples: RingBuf<MapData>,
    /// Exec/exit events of this instance.
    pub proc_events: RingBuf<MapData>,
    /// Kernel stacks and frame-pointer user stacks.
    pub stacks: StackTraceMap<MapData>,
    /// In-kernel counts.
    pub counts: BpfHashMap<MapData, SampleKey, u64>,
    /// Per-CPU counters ([`wirelens_ebpf::profile::counter`]).
    pub counters: PerCpuArray<MapData, u64>,
    /// CPUs sampled.
    pub cpus: usize,
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> SamplerError {
    move |source| SamplerError::Map {
        name,
        source: Box::new(source),
    }
}

impl Sampler {
    /// Load the object and start sampling every online CPU.
    pub fn start(config: &SamplerConfig) -> Result<Self, SamplerError> {
        let mut filters = 0u32;
        if !config.pids.is_empty() {
            filters |= filter::PID;
        }
        if !config.comms.is_empty() {
            filters |= filter::COMM;
        }
        let profile_mode = match config.unwind {
            UnwindMode::Dwarf => mode::UNWIND,
            UnwindMode::Fp => mode::FRAME_POINTERS,
        };
        let agent = std::process::id();
        let mut loader = EbpfLoader::new();
        for (name, size) in crate::probes::TRACER_ONLY_MAPS {
            loader.map_max_entries(name, size);
        }
        let mut ebpf = loader
            .override_global("FILTERS", &filters, true)
            .override_global("AGENT_TGID", &agent, true)
            .override_global("PROFILE_MODE", &profile_mode, true)
            .map_max_entries("EVENTS", PROC_EVENTS_RING)
            .map_max_entries("PROFILE_SAMPLES", config.ring_size)
            .load(super::OBJECT)
            .map_err(|e| SamplerError::Load(Box::new(e)))?;
        fill_filters(&mut ebpf, config)?;

        for (name, category, tracepoint) in [
            ("sched_process_exec", "sched", "sched_process_exec"),
            ("sched_process_exit", "sched", "sched_process_exit"),
        ] {
            let fail = |source| SamplerError::Program {
                name,
                what: format!("{category}:{tracepoint}"),
                source: Box::new(source),
            };
            let tp: &mut TracePoint = ebpf
                .program_mut(name)
                .ok_or(SamplerError::Missing(name))?
                .try_into()
                .map_err(fail)?;
            tp.load().map_err(fail)?;
            tp.attach(category, tracepoint).map_err(fail)?;
        }

        let name = "profile_sample";
        let fail = |what: String| {
            move |source| SamplerError::Program {
                name,
                what,
                source: Box::new(source),
            }
        };
        let cpus = aya::util::online_cpus().map_err(|(_, e)| SamplerError::Cpus(e))?;
        let prog: &mut PerfEvent = ebpf
            .program_mut(name)
            .ok_or(SamplerError::Missing(name))?
            .try_into()
            .map_err(fail("perf_event".into()))?;
        prog.load().map_err(fail("perf_event".into()))?;
        for &cpu in &cpus {
            prog.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(config.frequency),
                false,
            )
            .map_err(fail(format!("cpu-clock on cpu {cpu}")))?;
        }

        let mut take = |name: &'static str| ebpf.take_map(name).ok_or(SamplerError::Missing(name));
        let samples =
            RingBuf::try_from(take("PROFILE_SAMPLES")?).map_err(map_err("PROFILE_SAMPLES"))?;
        let proc_events = RingBuf::try_from(take("EVENTS")?).map_err(map_err("EVENTS"))?;
        let stacks =
            StackTraceMap::try_from(take("PROFILE_STACKS")?).map_err(map_err("PROFILE_STACKS"))?;
        let counts =
            BpfHashMap::try_from(take("PROFILE_COUNTS")?).map_err(map_err("PROFILE_COUNTS"))?;
        let counters = PerCpuArray::try_from(take("PROFILE_COUNTERS")?)
            .map_err(map_err("PROFILE_COUNTERS"))?;
        Ok(Self {
            _ebpf: ebpf,
            samples,
            proc_events,
            stacks,
            counts,
            counters,
            cpus: cpus.len(),
        })
    }

    /// Kernel counter `idx`, summed over CPUs.
    pub fn counter(&self, idx: u32) -> u64 {
        self.counters
            .get(&idx, 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    }
}

fn fill_filters(ebpf: &mut Ebpf, config: &SamplerConfig) -> Result<(), SamplerError> {
    if !config.pids.is_empty() {
        let mut m: BpfHashMap<_, u32, u8> = ebpf
            .map_mut("PID_FILTER")
            .ok_or(SamplerError::Missing("PID_FILTER"))?
            .try_into()
            .map_err(map_err("PID_FILTER"))?;
        for &pid in &config.pids {
            m.insert(pid, 1, 0).map_err(map_err("PID_FILTER"))?;
        }
    }
    if !config.comms.is_empty() {
        let mut m: BpfHashMap<_, [u8; 16], u8> = ebpf
            .map_mut("COMM_FILTER")
            .ok_or(SamplerError::Missing("COMM_FILTER"))?
            .try_into()
            .map_err(map_err("COMM_FILTER"))?;
        for comm in &config.comms {
            let mut key = [0u8; 16];
            let n = comm.len().min(15);
            key[..n].copy_from_slice(&comm.as_bytes()[..n]);
            m.insert(key, 1, 0).map_err(map_err("COMM_FILTER"))?;
        }
    }
    Ok(())
}
