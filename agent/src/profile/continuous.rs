//! Continuous mode: the agent samples every CPU at a low rate and sends one OTLP profile per
//! process every interval, under that process's Resource (`wirelens_otel::profiles`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant, UNIX_EPOCH},
};

use anyhow::Context as _;
use wirelens_ebpf::EventKind;
use wirelens_otel::{
    export::{
        RetryPolicy, SignalConfig,
        profiles::{self as export, ProfileExportStats, ProfilesSender},
    },
    profiles::{ProcessSamples, ProfileFrame, ProfileWindow, profiles_request},
};

use super::{
    Collector, POLL_INTERVAL, ProfilerStats,
    aggregate::Profile,
    sampler::{SamplerConfig, UnwindMode},
};
use crate::metadata::process::ProcessCache;

/// Continuous profiling settings.
#[derive(Clone, Debug)]
pub struct ContinuousConfig {
    /// Samples per second per CPU.
    pub frequency: u64,
    /// Time between two profiles.
    pub interval: Duration,
    /// Pid filter (empty: all).
    pub pids: Vec<u32>,
    /// Command-name filter (empty: all).
    pub comms: Vec<String>,
    /// Whether the profiles' Resources carry `process.command_line`.
    pub command_line: crate::metadata::process::CommandLine,
}

/// The running profiler thread and its export task.
pub struct Continuous {
    thread: JoinHandle<ProfilerStats>,
    export: tokio::task::JoinHandle<()>,
    stats: Arc<ProfileExportStats>,
}

/// Start sampling and exporting to `signal`; the thread stops when `stop` is set.
pub fn start(
    config: &ContinuousConfig,
    signal: &SignalConfig,
    runtime: &tokio::runtime::Handle,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Continuous> {
    let (sender, export) = export::spawn(signal, RetryPolicy::default(), runtime)
        .context("cannot set up the profiles exporter")?;
    let stats = sender.stats();
    let sampler = SamplerConfig {
        frequency: config.frequency,
        unwind: UnwindMode::Dwarf,
        pids: config.pids.clone(),
        comms: config.comms.clone(),
        ring_size: 4 << 20,
    };
    let interval = config.interval;
    let command_line = config.command_line;
    // The symbolizer is not `Send`: the collector is made on its thread, which reports back
    // whether the sampler started.
    let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("wirelens-profile".into())
        .spawn(move || match Collector::start(&sampler) {
            Ok(mut collector) => {
                let _ = started_tx.send(Ok(()));
                run(&mut collector, &sender, interval, command_line, &stop)
            }
            Err(e) => {
                let _ = started_tx.send(Err(e));
                ProfilerStats::default()
            }
        })
        .context("cannot start the profiler thread")?;
    match started_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => anyhow::bail!("the profiler thread ended before starting"),
    }
    Ok(Continuous {
        thread,
        export,
        stats,
    })
}

impl Continuous {
    /// Wait for the thread's last profile to be sent (the caller has set `stop`); one summary
    /// line.
    pub fn finish(self, runtime: &tokio::runtime::Runtime, timeout: Duration) -> String {
        let stats = self.thread.join().unwrap_or_default();
        runtime.block_on(export::shutdown(self.export, timeout));
        format!(
            "profiles: {} samples exported, {} dropped, {} failed exports, {} incomplete unwinds",
            self.stats.exported.load(Ordering::Relaxed),
            self.stats.dropped.load(Ordering::Relaxed),
            self.stats.failures.load(Ordering::Relaxed),
            stats.unwind_incomplete,
        )
    }
}

fn run(
    collector: &mut Collector,
    sender: &ProfilesSender,
    interval: Duration,
    command_line: crate::metadata::process::CommandLine,
    stop: &AtomicBool,
) -> ProfilerStats {
    let mut processes = ProcessCache::with_command_line(command_line);
    let mut last = Instant::now();
    loop {
        std::thread::sleep(POLL_INTERVAL);
        let stopping = stop.load(Ordering::Relaxed);
        for ev in collector.poll() {
            match EventKind::from_u32(ev.kind) {
                Some(EventKind::ProcExit) => processes.on_exit(ev.tgid),
                Some(EventKind::ProcExec) => processes.on_exec(ev.tgid, &ev.comm),
                _ => {}
            }
        }
        // Read each new process's metadata while it runs.
        let seen: Vec<(u32, [u8; 16])> = collector
            .current_processes()
            .map(|(pid, comm)| (pid, comm_bytes(comm)))
            .collect();
        for (pid, comm) in &seen {
            let _ = processes.get(*pid, comm);
        }
        if stopping || last.elapsed() >= interval {
            last = Instant::now();
            let profile = collector.take_profile();
            if profile.samples() > 0 {
                let request = to_request(&profile, &mut processes);
                if !sender.try_send(request) {
                    tracing::warn!("profile export still busy: a profile was dropped");
                }
            }
            processes.expire(Instant::now());
        }
        if stopping {
            return collector.stats.clone();
        }
    }
}

fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = comm.len().min(15);
    out[..n].copy_from_slice(&comm.as_bytes()[..n]);
    out
}

/// The OTLP request of `profile`, each process under its Resource.
fn to_request(
    profile: &Profile,
    processes: &mut ProcessCache,
) -> opentelemetry_proto::tonic::collector::profiles::v1development::ExportProfilesServiceRequest {
    let samples: Vec<ProcessSamples> = profile
        .processes
        .iter()
        .map(|(&pid, p)| ProcessSamples {
            process: (*processes.get(pid, &comm_bytes(&p.comm))).clone(),
            stacks: p
                .stacks
                .iter()
                .map(|(frames, &n)| {
                    let frames = frames
                        .iter()
                        .map(|f| ProfileFrame {
                            function: f.function.to_string(),
                            module: f.module.to_string(),
                            kernel: f.kernel,
                        })
                        .collect();
                    (frames, n)
                })
                .collect(),
        })
        .collect();
    let window = ProfileWindow {
        start_unix_nano: profile
            .start
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        duration_nano: u64::try_from(profile.duration.as_nanos()).unwrap_or(u64::MAX),
        period_ns: profile.period_ns,
    };
    profiles_request(window, &samples)
}
