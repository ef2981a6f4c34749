//! The CPU profiler: a cpu-clock sampler in the kernel (`sampler`), user stacks unwound from
//! copied stack bytes (`unwind`), symbols (`symbolize`), one profile per interval
//! (`aggregate`), written as pprof (`pprof`), flame graphs (`flamegraph`) or OTLP profiles
//! (`continuous`, through `wirelens_otel::profiles`).
//!
//! ```text
//!  perf_event cpu-clock ─▶ PROFILE_SAMPLES ring (regs + 16 KiB stack) ─▶ Collector::poll ─▶ unwind ─▶ symbolize ─▶ Profile
//!   (every online CPU)  └▶ PROFILE_COUNTS (fp mode, ring full) ─────────▶ Collector::drain_counts ──────────────┘
//!  sched exec/exit ─────▶ EVENTS ring ─▶ Collector::poll ─▶ evict caches
//! ```
//!
//! Default rate: 19 Hz per CPU for continuous profiling (the OpenTelemetry eBPF profiler's
//! choice): 19 is prime, so sampling does not fall into step with the 10 ms/100 Hz periodic
//! work of timers and schedulers, and at 19 Hz the whole cost (a 16 KiB stack copy in the kernel,
//! an unwind and cached symbol lookups in the agent) stays far under 1% of a CPU while a 60 s
//! window still holds ~1,100 samples per busy CPU. `wirelens profile`, a one-off look at a
//! problem for a short time, defaults to 99 Hz (perf's and Pyroscope's rate, also not a multiple
//! of 10) so 30 s give ~3,000 samples per busy CPU. Both are `--frequency`.

pub mod aggregate;
pub mod command;
pub mod continuous;
pub mod flamegraph;
pub mod pprof;
pub mod procmaps;
pub mod sampler;
pub mod symbolize;
pub mod unwind;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use wirelens_ebpf::{
    EventKind, ProcEvent,
    profile::{NO_STACK, SAMPLE_HEADER_LEN, SampleHeader, SampleKey, counter},
};

use self::{
    aggregate::{Profile, comm_str},
    sampler::{Sampler, SamplerConfig},
    symbolize::{Frame, Symbols},
    unwind::Unwinders,
};

pub(crate) use crate::probes::OBJECT;

/// Default samples per second per CPU, continuous mode.
pub const CONTINUOUS_FREQUENCY: u64 = 19;
/// Default interval between two profiles, continuous mode.
pub const CONTINUOUS_INTERVAL: Duration = Duration::from_secs(10);
/// Default samples per second per CPU, `wirelens profile`.
pub const PROFILE_FREQUENCY: u64 = 99;
/// How often the sample ring is drained.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How often `wirelens profile` drains the in-kernel counts and clears the stack map.
pub const DRAIN_INTERVAL: Duration = Duration::from_secs(10);

/// What the collector lost or could not complete, for the summary and the agent's metrics.
#[derive(Clone, Debug, Default)]
pub struct ProfilerStats {
    /// Samples decoded from the ring.
    pub ring_samples: u64,
    /// Samples counted in the kernel (fp mode, or the ring was full).
    pub kernel_counted: u64,
    /// Ring records that did not decode.
    pub bad_records: u64,
    /// Samples whose user unwind stopped before the stack's root.
    pub unwind_incomplete: u64,
    /// Samples with a user stack (ring samples).
    pub unwound: u64,
    /// Kernel stack ids no longer in the stack map.
    pub stack_missing: u64,
    /// Kernel-side counters, summed over CPUs: samples, idle, filtered, ring full, stack read
    /// failed, count map full, stack lost.
    pub kernel: [u64; counter::COUNT as usize],
}

/// Sizes of the per-process caches: they must shrink back when processes exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheSizes {
    /// Processes with cached symbol names.
    pub symbol_processes: usize,
    /// Module files the symbolizer holds open.
    pub symbol_files: usize,
    /// Processes with an unwinder.
    pub unwind_processes: usize,
    /// ELF images mapped for the unwinders.
    pub unwind_images: usize,
    /// Processes whose symbol cache was dropped because they exited or exec'd.
    pub evicted: u64,
}

/// Owns the sampler and turns what it drains into a [`Profile`].
pub struct Collector {
    sampler: Sampler,
    unwinders: Unwinders,
    symbols: Symbols,
    profile: Profile,
    kernel_stacks: HashMap<i32, Arc<[Frame]>>,
    addrs: Vec<u64>,
    /// Counters so far.
    pub stats: ProfilerStats,
}

impl Collector {
    /// Start sampling.
    pub fn start(config: &SamplerConfig) -> anyhow::Result<Self> {
        let sampler = Sampler::start(config).context("cannot start the CPU profiler")?;
        Ok(Self {
            sampler,
            unwinders: Unwinders::default(),
            symbols: Symbols::new(),
            profile: Profile::new(1_000_000_000 / config.frequency.max(1)),
            kernel_stacks: HashMap::new(),
            addrs: Vec::new(),
            stats: ProfilerStats::default(),
        })
    }

    /// CPUs being sampled.
    pub fn cpus(&self) -> usize {
        self.sampler.cpus
    }

    /// Drain the sample ring and the exec/exit events; the events are returned (for the
    /// caller's own process metadata).
    pub fn poll(&mut self) -> Vec<ProcEvent> {
        let mut events = Vec::new();
        while let Some(item) = self.sampler.proc_events.next() {
            match decode_proc_event(&item) {
                Some(ev) => events.push(ev),
                None => self.stats.bad_records += 1,
            }
        }
        // Samples first: a process's last samples are unwound before its caches go.
        let mut records = Vec::new();
        while let Some(item) = self.sampler.samples.next() {
            records.push(item.to_vec());
        }
        for r in &records {
            self.on_record(r);
        }
        for ev in &events {
            self.unwinders.forget(ev.tgid);
            self.symbols.forget(ev.tgid);
        }
        events
    }

    /// Processes in the profile being built, with their command names.
    pub fn current_processes(&self) -> impl Iterator<Item = (u32, &str)> {
        self.profile
            .processes
            .iter()
            .map(|(&pid, p)| (pid, p.comm.as_str()))
    }

    fn on_record(&mut self, bytes: &[u8]) {
        let Some((h, stack)) = decode_sample(bytes) else {
            self.stats.bad_records += 1;
            return;
        };
        self.stats.ring_samples += 1;
        let mut frames: Vec<Frame> = self.kernel_frames(h.kernel_stack).to_vec();
        if h.ip != 0 {
            let mut addrs = std::mem::take(&mut self.addrs);
            let outcome = self
                .unwinders
                .unwind(h.tgid, (h.ip, h.sp, h.bp), stack, &mut addrs);
            self.stats.unwound += 1;
            if !outcome.complete {
                self.stats.unwind_incomplete += 1;
            }
            let maps = self.unwinders.maps(h.tgid).to_vec();
            frames.extend(self.symbols.user(h.tgid, &addrs, &maps));
            self.addrs = addrs;
        }
        self.profile.add(h.tgid, &comm_str(&h.comm), frames, 1);
    }

    fn kernel_frames(&mut self, id: i32) -> Arc<[Frame]> {
        if id == NO_STACK || id < 0 {
            return Arc::from(Vec::new());
        }
        if let Some(f) = self.kernel_stacks.get(&id) {
            return f.clone();
        }
        let addrs: Vec<u64> = match self.sampler.stacks.get(&(id as u32), 0) {
            Ok(trace) => trace.frames().iter().map(|f| f.ip).collect(),
            Err(_) => {
                self.stats.stack_missing += 1;
                Vec::new()
            }
        };
        let frames: Arc<[Frame]> = Arc::from(self.symbols.kernel(&addrs));
        self.kernel_stacks.insert(id, frames.clone());
        frames
    }

    /// Move the in-kernel counts into the profile and clear the kernel maps.
    pub fn drain_counts(&mut self) {
        let keys: Vec<SampleKey> = self.sampler.counts.keys().filter_map(Result::ok).collect();
        for key in keys {
            let Ok(n) = self.sampler.counts.get(&key, 0) else {
                continue;
            };
            let _ = self.sampler.counts.remove(&key);
            self.stats.kernel_counted += n;
            let mut frames: Vec<Frame> = self.kernel_frames(key.kernel_stack).to_vec();
            if key.user_stack >= 0 {
                match self.sampler.stacks.get(&(key.user_stack as u32), 0) {
                    Ok(trace) => {
                        // Return addresses point after the call: look up the call itself.
                        let addrs: Vec<u64> = trace
                            .frames()
                            .iter()
                            .enumerate()
                            .map(|(i, f)| if i == 0 { f.ip } else { f.ip.wrapping_sub(1) })
                            .collect();
                        let maps = self.unwinders.maps(key.tgid).to_vec();
                        frames.extend(self.symbols.user(key.tgid, &addrs, &maps));
                    }
                    Err(_) => self.stats.stack_missing += 1,
                }
            }
            let comm = read_comm(key.tgid);
            self.profile.add(key.tgid, &comm, frames, n);
        }
        // Stack ids are resolved as samples arrive; clear the map for the next interval.
        let ids: Vec<u32> = self
            .sampler
            .stacks
            .stack_ids()
            .filter_map(Result::ok)
            .collect();
        for id in ids {
            let _ = self.sampler.stacks.remove(&id);
        }
        self.kernel_stacks.clear();
        for (i, v) in self.stats.kernel.iter_mut().enumerate() {
            *v = self.sampler.counter(i as u32);
        }
    }

    /// Everything sampled since the last call, as a profile; a new one starts.
    pub fn take_profile(&mut self) -> Profile {
        let _ = self.poll();
        self.drain_counts();
        self.profile.take()
    }

    /// What the caches hold now, and how many processes were evicted from them.
    pub fn caches(&self) -> CacheSizes {
        let (symbol_processes, symbol_files) = self.symbols.cached();
        let (unwind_processes, unwind_images) = self.unwinders.cached();
        CacheSizes {
            symbol_processes,
            symbol_files,
            unwind_processes,
            unwind_images,
            evicted: self.symbols.evicted,
        }
    }

    /// Symbol lookups that resolved, and those that kept module + offset.
    pub fn symbol_counts(&self) -> (u64, u64) {
        (self.symbols.resolved, self.symbols.unresolved)
    }

    /// Sample for `duration`, polling the ring; the profile of the whole run.
    pub fn run_for(&mut self, duration: Duration, stop: &dyn Fn() -> bool) -> Profile {
        let end = Instant::now() + duration;
        let mut drained = Instant::now();
        while Instant::now() < end && !stop() {
            std::thread::sleep(POLL_INTERVAL.min(end.saturating_duration_since(Instant::now())));
            let _ = self.poll();
            if drained.elapsed() >= DRAIN_INTERVAL {
                self.drain_counts();
                drained = Instant::now();
            }
        }
        self.take_profile()
    }
}

/// A sample record: the header and the user stack bytes it announces.
pub fn decode_sample(bytes: &[u8]) -> Option<(SampleHeader, &[u8])> {
    let head = bytes.get(..SAMPLE_HEADER_LEN)?;
    // SAFETY: `head` has exactly size_of::<SampleHeader>() bytes; the type is plain integers.
    let h: SampleHeader = unsafe { std::ptr::read_unaligned(head.as_ptr().cast()) };
    let len = usize::try_from(h.stack_len).ok()?;
    let stack = bytes.get(SAMPLE_HEADER_LEN..SAMPLE_HEADER_LEN.checked_add(len)?)?;
    Some((h, stack))
}

/// An exec or exit event: the process's caches are stale. (Fork events are not sent to this
/// instance's ring: only exec and exit are attached.)
fn decode_proc_event(bytes: &[u8]) -> Option<ProcEvent> {
    let head = bytes.get(..std::mem::size_of::<ProcEvent>())?;
    // SAFETY: `head` has exactly size_of::<ProcEvent>() bytes; the type is plain integers.
    let ev: ProcEvent = unsafe { std::ptr::read_unaligned(head.as_ptr().cast()) };
    matches!(
        EventKind::from_u32(ev.kind),
        Some(EventKind::ProcExit | EventKind::ProcExec)
    )
    .then_some(ev)
}

fn read_comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_else(|_| format!("pid {pid}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_records_are_bounded_by_their_length() {
        let mut bytes = vec![0u8; SAMPLE_HEADER_LEN + 8];
        // stack_len at offset 12.
        bytes[12..16].copy_from_slice(&8u32.to_ne_bytes());
        let (_, stack) = decode_sample(&bytes).expect("decodes");
        assert_eq!(stack.len(), 8);
        bytes[12..16].copy_from_slice(&9u32.to_ne_bytes());
        assert!(decode_sample(&bytes).is_none());
        assert!(decode_sample(&bytes[..10]).is_none());
    }
}
