//! Resource metrics source: every metric export interval, reads `/proc` for each process the
//! agent's filters select (`process_stats.rs`, `select.rs`) and the cgroup files of each
//! container and pod they run in (`cgroup_stats.rs`), and hands the `process.*`,
//! `container.*` and `k8s.pod.*` metrics, each under the Resource of what it describes, to the
//! exporter (`wirelens_otel::resource_metrics`).
//!
//! "Traced process" here means: every user-space process visible in `/proc` that passes the
//! filters (see [`select::Selection`]); with no filter, every process of the host. Each scan
//! replaces the previous one's metrics, so a process that exited goes out one last time with
//! the figures of the scan before its exit, then no more. Its metadata (the same
//! [`ProcessCache`] the tracer uses) is forgotten like the tracer's.

mod cgroup_stats;
mod process_stats;
pub mod select;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use wirelens_otel::{ContainerInfo, PodInfo, export::ExportMonitor, resource_metrics};

use crate::metadata::{
    kubernetes::PodStore,
    process::{CommandLine, ProcessCache},
};
use cgroup_stats::{CgroupDirs, Mounts};
use process_stats::{Change, Readings, Units};
use select::{PortSockets, Selection};

/// Source name of these metrics in the exporter.
const SOURCE: &str = "resources";
/// How often the thread checks whether to stop.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Settings of the resource metrics source.
#[derive(Clone)]
pub struct ResourceMetricsConfig {
    /// Read every `interval` (the metric export interval).
    pub interval: Duration,
    /// Whether process command lines go in the Resources.
    pub command_line: CommandLine,
    /// Which processes.
    pub selection: Selection,
    /// The Kubernetes API's pod metadata, when watched.
    pub pods: Option<PodStore>,
}

/// Start the reader thread; it stops when `stop` is set.
pub fn spawn(
    config: ResourceMetricsConfig,
    monitor: ExportMonitor,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("wirelens-resources".into())
        .spawn(move || run(config, &monitor, &stop))
}

fn run(config: ResourceMetricsConfig, monitor: &ExportMonitor, stop: &AtomicBool) {
    let mut collector = Collector::new(&config);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let metrics = collector.scan();
        tracing::debug!(
            resources = metrics.len(),
            took = ?started.elapsed(),
            "read resource metrics"
        );
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

/// A container met in a scan: one of its processes, and its identity.
struct SeenContainer {
    pid: u32,
    info: Arc<ContainerInfo>,
    pod: Option<Arc<PodInfo>>,
}

/// The state kept from one scan to the next.
pub struct Collector {
    selection: Selection,
    processes: ProcessCache,
    readings: Readings,
    mounts: Mounts,
    host_name: String,
    /// Container id (or `pod:<uid>`) → when it was first seen (start of its sums).
    first_seen: HashMap<String, u64>,
}

impl Collector {
    /// A collector with no reading yet.
    pub fn new(config: &ResourceMetricsConfig) -> Self {
        let mut processes = ProcessCache::with_command_line(config.command_line);
        if let Some(pods) = &config.pods {
            processes.set_pods(pods.clone());
        }
        Self {
            selection: config.selection.clone(),
            processes,
            readings: Readings::new(Units::read()),
            mounts: Mounts::read(),
            host_name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_owned())
                .unwrap_or_default(),
            first_seen: HashMap::new(),
        }
    }

    /// One pass over every process: their metrics, then their containers' and pods'.
    pub fn scan(&mut self) -> Vec<ResourceMetrics> {
        let Ok(all) = procfs::process::all_processes() else {
            tracing::debug!("cannot list /proc: no resource metrics this interval");
            return Vec::new();
        };
        let now_ns = unix_now_ns();
        let own = std::process::id();
        let mut sockets = PortSockets::default();
        let mut containers: Vec<SeenContainer> = Vec::new();
        let mut out = Vec::new();
        self.readings.begin();
        for process in all.flatten() {
            let Ok(pid) = u32::try_from(process.pid) else {
                continue;
            };
            if pid == own {
                continue;
            }
            // Gone since the listing, or unreadable: skipped, as it would be next time.
            let Ok(stat) = process.stat() else { continue };
            if process_stats::is_kernel_thread(&stat)
                || !self.selection.passes_process(pid, &stat.comm)
            {
                continue;
            }
            let comm = comm_bytes(&stat.comm);
            match self.readings.change(pid, &stat) {
                Change::Replaced => self.processes.on_exec(pid, &comm),
                Change::New | Change::Same => {}
            }
            let info = self.processes.get(pid, &comm);
            if !self.selection.passes_container(&info) {
                continue;
            }
            if !self.selection.ports.is_empty()
                && !sockets.owns_socket(&process, &self.selection.ports)
            {
                continue;
            }
            let figures = self.readings.read(&process, &stat, Instant::now());
            out.push(resource_metrics::process_metrics(&info, &figures, now_ns));
            if let Some(container) = &info.container
                && !containers.iter().any(|c| c.info.id == container.id)
            {
                containers.push(SeenContainer {
                    pid,
                    info: container.clone(),
                    pod: info.pod.clone(),
                });
            }
        }
        for pid in self.readings.finish() {
            self.processes.on_exit(pid);
        }
        self.processes.expire(Instant::now());
        out.extend(self.cgroups(&containers, now_ns));
        let live: Vec<String> = containers
            .iter()
            .flat_map(|c| [c.info.id.clone(), pod_key(&c.info)])
            .collect();
        self.first_seen.retain(|k, _| live.contains(k));
        out
    }

    /// The metrics of each container met, and of each pod they are in.
    fn cgroups(&mut self, containers: &[SeenContainer], now_ns: u64) -> Vec<ResourceMetrics> {
        let mut out = Vec::new();
        let mut pods_done: Vec<String> = Vec::new();
        for c in containers {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{}/cgroup", c.pid)) else {
                continue;
            };
            let Some(dirs) = CgroupDirs::of_container(&self.mounts, &text, &c.info.id) else {
                continue;
            };
            let mut figures = dirs.read();
            figures.start_ns = *self.first_seen.entry(c.info.id.clone()).or_insert(now_ns);
            out.push(resource_metrics::container_metrics(
                &c.info,
                c.pod.as_deref(),
                &self.host_name,
                &figures,
                now_ns,
            ));
            let key = pod_key(&c.info);
            let in_pod = !c.info.k8s_pod_uid.is_empty() || c.pod.is_some();
            if !in_pod || pods_done.contains(&key) {
                continue;
            }
            let mut figures = dirs.parent().read();
            figures.start_ns = *self.first_seen.entry(key.clone()).or_insert(now_ns);
            out.extend(resource_metrics::pod_metrics(
                &c.info,
                c.pod.as_deref(),
                &self.host_name,
                &figures,
                now_ns,
            ));
            pods_done.push(key);
        }
        out
    }
}

/// The `first_seen` key of a container's pod.
fn pod_key(container: &ContainerInfo) -> String {
    format!("pod:{}", container.k8s_pod_uid)
}

/// A command name as the kernel's 16-byte `comm`.
fn comm_bytes(comm: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    let n = comm.len().min(15);
    out[..n].copy_from_slice(&comm.as_bytes()[..n]);
    out
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_with_a_pid_filter_covers_that_process_only() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("start sleep");
        let pid = child.id();
        let config = ResourceMetricsConfig {
            interval: Duration::from_secs(1),
            command_line: CommandLine::Off,
            selection: Selection {
                pids: vec![pid],
                ..Selection::default()
            },
            pods: None,
        };
        let mut collector = Collector::new(&config);
        // `spawn` returns once the exec began; let it finish.
        std::thread::sleep(Duration::from_millis(100));
        let metrics = collector.scan();
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(metrics.len(), 1, "one process, in no container");
        let resource = metrics[0].resource.as_ref().expect("resource");
        assert!(resource.attributes.iter().any(|kv| kv.key == "process.pid"
            && kv.value.as_ref().and_then(|v| v.value.as_ref())
                == Some(
                    &opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(i64::from(
                        pid
                    ))
                )));
        let names: Vec<&str> = metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert!(names.contains(&"process.cpu.time"), "{names:?}");
        // Gone at the next scan.
        assert!(collector.scan().is_empty());
    }

    #[test]
    fn comm_is_cut_to_the_kernel_size() {
        assert_eq!(
            &comm_bytes("a-very-long-command-name")[..15],
            b"a-very-long-com"
        );
        assert_eq!(comm_bytes("a-very-long-command-name")[15], 0);
    }
}
