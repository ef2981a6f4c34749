//! JVM metrics source: every interval, reads the hsperfdata file of each Java process
//! (`discover.rs`), decodes it (`wirelens_parsers::hsperfdata`) and hands the `jvm.*` metrics,
//! each under its process's Resource, to the OTLP exporter (`wirelens_otel::jvm_metrics`).
//! `jvm.cpu.time` comes from the process's `/proc/<pid>/stat` (user + system ticks; one small
//! read per JVM per interval), as hsperfdata has no such counter.
//!
//! Passive: nothing is attached to or injected into the JVM; a JVM run with
//! `-XX:-UsePerfData` (or `-XX:+PerfDisableSharedMem`) has no file and is not seen.

mod discover;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use wirelens_otel::{export::ExportMonitor, jvm_metrics};
use wirelens_parsers::hsperfdata;

use crate::metadata::process::{CommandLine, ProcessCache};

/// Source name of these metrics in the exporter.
const SOURCE: &str = "jvm";
/// Largest hsperfdata file read (HotSpot's default is 32 KiB, `-XX:PerfDataMemorySize`).
const MAX_FILE: u64 = 1 << 20;
/// How often the thread checks whether to stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Settings of the JVM metrics source.
#[derive(Clone, Copy, Debug)]
pub struct JvmConfig {
    /// Read Java processes every `interval` (the metric export interval).
    pub interval: Duration,
    /// Whether process command lines go in the Resource.
    pub command_line: CommandLine,
}

/// Start the reader thread; it stops when `stop` is set.
pub fn spawn(
    config: JvmConfig,
    monitor: ExportMonitor,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("wirelens-jvm".into())
        .spawn(move || run(config, &monitor, &stop))
}

fn run(config: JvmConfig, monitor: &ExportMonitor, stop: &AtomicBool) {
    let mut processes = ProcessCache::with_command_line(config.command_line);
    let mut seen: Vec<u32> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let metrics = scan(&mut processes, &mut seen);
        tracing::debug!(jvms = metrics.len(), took = ?started.elapsed(), "read JVM metrics");
        monitor.set_source_metrics(SOURCE, metrics);
        let next = started + config.interval;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep(STOP_POLL.min(next - now));
        }
    }
}

/// One pass: every Java process's metrics. `seen` holds the previous pass's pids, so exited
/// ones leave the metadata cache.
fn scan(processes: &mut ProcessCache, seen: &mut Vec<u32>) -> Vec<ResourceMetrics> {
    let java = discover::java_processes();
    for pid in seen.iter() {
        if !java.iter().any(|j| j.pid == *pid) {
            processes.on_exit(*pid);
        }
    }
    processes.expire(Instant::now());
    *seen = java.iter().map(|j| j.pid).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    java.iter()
        .filter_map(|j| {
            let bytes = read_limited(&j.path)?;
            match hsperfdata::parse(&bytes) {
                Ok(data) if data.accessible => {
                    let info = processes.get(j.pid, &[0; 16]);
                    let cpu = cpu_seconds(j.pid);
                    Some(jvm_metrics::resource_metrics(&info, &data, cpu, now))
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::debug!(pid = j.pid, path = %j.path.display(), "not hsperfdata: {e}");
                    None
                }
            }
        })
        .collect()
}

/// CPU time (user + system) process `pid` has used, in seconds; `None` when it is gone.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let pid = i32::try_from(pid).ok()?;
    let stat = procfs::process::Process::new(pid).ok()?.stat().ok()?;
    let ticks = stat.utime.saturating_add(stat.stime);
    Some(ticks as f64 / procfs::ticks_per_second().max(1) as f64)
}

/// The file's bytes, at most [`MAX_FILE`].
fn read_limited(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE).read_to_end(&mut bytes).ok()?;
    Some(bytes)
}
