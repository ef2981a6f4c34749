//! Network and connection metrics (`--network-metrics`): per process and remote endpoint,
//! bytes, segments, connections opened/closed/failed/active, retransmits and RTT; per network
//! namespace, each interface's counters. Exported through `wirelens_otel::net_metrics`.
//!
//! Two halves:
//! - [`NetworkAccounting`] runs on the reader thread: it counts from events the reader already
//!   decodes (data sizes, TCP state changes) plus the two the kernel side sends only with this
//!   feature on (connects, retransmits), see [`accounting`]; each interval it hands a snapshot
//!   over a one-slot channel (a snapshot the collector has not taken is replaced, never queued).
//! - The collector thread samples `tcp_info` of the live connections through sock_diag
//!   ([`sock_diag`]), reads `/proc/<pid>/net/dev` of one process per network namespace
//!   ([`netdev`]), and sets the `network` metrics source of the exporter.
//!
//! Segments and RTT come from the periodic samples: a connection that opens and closes between
//! two samples adds bytes, connection counts and retransmits, but no segments or RTT.

pub mod accounting;
pub mod netdev;
pub mod sock_diag;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use wirelens_ebpf::{DataHeader, RetransmitEvent, SockErrorEvent, SockStateEvent};
use wirelens_otel::{
    export::ExportMonitor,
    net_metrics::{self, Endpoint, EndpointCounts, ProcessNetwork, Rtt},
};

use crate::metadata::process::{CommandLine, ProcessCache};
use accounting::{Accounting, Snapshot};
use sock_diag::{DiagSocket, TcpSample};

/// Source name of these metrics in the exporter.
const SOURCE: &str = "network";
/// Default cap of remote endpoints per process.
pub const DEFAULT_MAX_ENDPOINTS: usize = 256;
/// How often the collector checks whether to stop.
const STOP_POLL: Duration = Duration::from_millis(200);
/// How often the accounting forgets lost sockets and gone processes.
const EXPIRE_EVERY: Duration = Duration::from_secs(30);

/// Settings of network metrics.
#[derive(Clone, Copy, Debug)]
pub struct NetworkMetricsConfig {
    /// Sample and export every `interval` (the metric export interval).
    pub interval: Duration,
    /// Remote endpoints kept per process; past it, the process's overflow series.
    pub max_endpoints: usize,
    /// Whether process command lines go in the Resource.
    pub command_line: CommandLine,
}

/// The reader thread's half: counts events, hands snapshots to the collector.
pub struct NetworkAccounting {
    accounting: Accounting,
    to_collector: SyncSender<Snapshot>,
    interval: Duration,
    last_snapshot: Instant,
    last_expire: Instant,
}

impl NetworkAccounting {
    /// A data event (bytes and owner).
    pub fn on_data(&mut self, h: &DataHeader) {
        self.accounting.on_data(h, h.ts_ns);
    }

    /// A TCP state change.
    pub fn on_sock_state(&mut self, ev: &SockStateEvent) {
        self.accounting.on_sock_state(ev, ev.ts_ns);
    }

    /// A retransmitted segment (`now`: monotonic ns).
    pub fn on_retransmit(&mut self, ev: &RetransmitEvent, now: u64) {
        self.accounting.on_retransmit(ev, now);
    }

    /// An error the kernel reported on a TCP socket (why a connect failed).
    pub fn on_sock_error(&mut self, ev: &SockErrorEvent) {
        self.accounting.on_sock_error(ev);
    }

    /// Housekeeping from the reader's tick (`now_mono`: monotonic ns); hands a snapshot over
    /// once per interval, and at the end (`last`).
    pub fn tick(&mut self, now: Instant, now_mono: u64, last: bool) {
        if now.duration_since(self.last_expire) >= EXPIRE_EVERY {
            self.last_expire = now;
            self.accounting.expire(now_mono, |tgid| {
                std::path::Path::new(&format!("/proc/{tgid}")).exists()
            });
        }
        if now.duration_since(self.last_snapshot) < self.interval && !last {
            return;
        }
        self.last_snapshot = now;
        self.accounting.settle(now_mono, last);
        match self.to_collector.try_send(self.accounting.snapshot()) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::debug!("network metrics collector busy: snapshot skipped");
            }
        }
    }
}

/// Start the collector thread; it stops when `stop` is set. The returned accounting goes to
/// the reader thread.
pub fn spawn(
    config: NetworkMetricsConfig,
    monitor: ExportMonitor,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(NetworkAccounting, JoinHandle<()>)> {
    let (to_collector, from_reader) = sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("wirelens-netmetrics".into())
        .spawn(move || Collector::new(config).run(&from_reader, &monitor, &stop))?;
    let now = Instant::now();
    Ok((
        NetworkAccounting {
            accounting: Accounting::new(config.max_endpoints),
            to_collector,
            interval: config.interval,
            last_snapshot: now,
            last_expire: now,
        },
        handle,
    ))
}

type Key = (u32, Option<Endpoint>);

/// The last sample of a live socket.
struct Sampled {
    key: Key,
    sample: TcpSample,
}

struct Collector {
    processes: ProcessCache,
    /// Sock_diag sockets per network namespace (`None`: could not enter it).
    diag: HashMap<u64, Option<DiagSocket>>,
    /// The agent's own network namespace.
    own_netns: Option<u64>,
    /// Last sample of each live socket, by kernel socket address.
    sampled: HashMap<u64, Sampled>,
    /// Segments (out, in) of closed sockets at their last sample.
    closed_segments: HashMap<Key, (u64, u64)>,
    /// Last RTT per endpoint.
    last_rtt: HashMap<Key, Rtt>,
    /// When each process's and namespace's series start.
    starts: HashMap<u32, u64>,
    netns_starts: HashMap<u64, u64>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Collector {
    fn new(config: NetworkMetricsConfig) -> Self {
        Self {
            processes: ProcessCache::with_command_line(config.command_line),
            diag: HashMap::new(),
            own_netns: netdev::namespace_of(std::process::id()),
            sampled: HashMap::new(),
            closed_segments: HashMap::new(),
            last_rtt: HashMap::new(),
            starts: HashMap::new(),
            netns_starts: HashMap::new(),
        }
    }

    fn run(mut self, from_reader: &Receiver<Snapshot>, monitor: &ExportMonitor, stop: &AtomicBool) {
        loop {
            match from_reader.recv_timeout(STOP_POLL) {
                Ok(snapshot) => {
                    let started = Instant::now();
                    let metrics = self.round(snapshot);
                    tracing::debug!(
                        resources = metrics.len(),
                        took = ?started.elapsed(),
                        "network metrics collected"
                    );
                    monitor.set_source_metrics(SOURCE, metrics);
                }
                Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::Relaxed) => {}
                Err(_) => return,
            }
        }
    }

    /// Samples of the live sockets, by namespace.
    fn sample(&mut self, snapshot: &Snapshot) -> HashMap<u64, TcpSample> {
        let mut by_netns: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut netns_of: HashMap<u32, Option<u64>> = HashMap::new();
        for (i, s) in snapshot.live.iter().enumerate() {
            let ns = *netns_of
                .entry(s.tgid)
                .or_insert_with(|| netdev::namespace_of(s.tgid));
            if let Some(ns) = ns {
                by_netns.entry(ns).or_default().push(i);
            }
        }
        let mut out = HashMap::new();
        for (ns, members) in by_netns {
            let Some(&first) = members.first() else {
                continue;
            };
            let own = Some(ns) == self.own_netns;
            let owner = snapshot.live[first].tgid;
            let socket = self.diag.entry(ns).or_insert_with(|| {
                let made = if own {
                    DiagSocket::new()
                } else {
                    DiagSocket::in_namespace_of(owner)
                };
                made.map_err(|e| {
                    tracing::warn!(
                        netns = ns,
                        "no RTT or segment counts for this network namespace: {e}"
                    );
                })
                .ok()
            });
            let Some(socket) = socket else {
                continue;
            };
            let started = Instant::now();
            let all = match socket.dump() {
                Ok(all) => all,
                Err(e) => {
                    tracing::debug!(netns = ns, "sock_diag dump failed: {e}");
                    self.diag.remove(&ns);
                    continue;
                }
            };
            tracing::debug!(netns = ns, sockets = all.len(), took = ?started.elapsed(), "sock_diag dump");
            for i in members {
                let s = &snapshot.live[i];
                let canonical = |a: std::net::SocketAddr| {
                    std::net::SocketAddr::new(a.ip().to_canonical(), a.port())
                };
                if let Some(sample) = all.get(&(canonical(s.local), canonical(s.peer))) {
                    out.insert(s.sk, *sample);
                }
            }
        }
        out
    }

    fn round(&mut self, snapshot: Snapshot) -> Vec<ResourceMetrics> {
        let now = unix_now();
        let samples = self.sample(&snapshot);
        // Sockets sampled before and not live now have closed: keep their last segments.
        let live: HashSet<u64> = snapshot.live.iter().map(|s| s.sk).collect();
        let closed: Vec<u64> = self
            .sampled
            .keys()
            .filter(|sk| !live.contains(sk))
            .copied()
            .collect();
        for sk in closed {
            if let Some(old) = self.sampled.remove(&sk) {
                let seg = self.closed_segments.entry(old.key).or_default();
                seg.0 += u64::from(old.sample.segs_out);
                seg.1 += u64::from(old.sample.segs_in);
            }
        }
        let mut live_figures: HashMap<Key, (u64, u64, f64, f64, u32)> = HashMap::new();
        for s in &snapshot.live {
            let key = (s.tgid, s.endpoint);
            if let Some(sample) = samples.get(&s.sk) {
                self.sampled.insert(
                    s.sk,
                    Sampled {
                        key,
                        sample: *sample,
                    },
                );
                let f = live_figures.entry(key).or_default();
                f.0 += u64::from(sample.segs_out);
                f.1 += u64::from(sample.segs_in);
                f.2 += f64::from(sample.rtt_us);
                f.3 += f64::from(sample.rttvar_us);
                f.4 += 1;
            }
        }
        for (key, f) in &live_figures {
            if f.4 > 0 {
                let n = f64::from(f.4);
                self.last_rtt.insert(
                    *key,
                    Rtt {
                        srtt_us: f.2 / n,
                        rttvar_us: f.3 / n,
                    },
                );
            }
        }

        let mut per_process: HashMap<u32, Vec<(Option<Endpoint>, EndpointCounts)>> = HashMap::new();
        let mut seen_keys = HashSet::new();
        for (tgid, endpoint, mut counts) in snapshot.totals {
            let key = (tgid, endpoint);
            seen_keys.insert(key);
            let closed = self.closed_segments.get(&key).copied().unwrap_or_default();
            let live = live_figures.get(&key).copied().unwrap_or_default();
            counts.packets_sent = closed.0 + live.0;
            counts.packets_received = closed.1 + live.1;
            counts.rtt = self.last_rtt.get(&key).copied();
            per_process
                .entry(tgid)
                .or_default()
                .push((endpoint, counts));
        }
        // Gone processes' series leave with them.
        self.closed_segments.retain(|k, _| seen_keys.contains(k));
        self.last_rtt.retain(|k, _| seen_keys.contains(k));
        let gone: Vec<u32> = self
            .starts
            .keys()
            .filter(|t| !per_process.contains_key(t))
            .copied()
            .collect();
        for tgid in gone {
            self.starts.remove(&tgid);
            self.processes.on_exit(tgid);
        }
        self.processes.expire(Instant::now());

        let mut out = Vec::with_capacity(per_process.len() + 4);
        for (tgid, mut endpoints) in per_process {
            endpoints.sort_by_key(|a| a.0);
            let start_ns = *self.starts.entry(tgid).or_insert(now);
            let info = self.processes.get(tgid, &[0; 16]);
            out.push(net_metrics::process_metrics(
                &info,
                &ProcessNetwork {
                    start_ns,
                    endpoints,
                },
                now,
            ));
        }
        let namespaces = netdev::namespaces();
        self.netns_starts
            .retain(|ns, _| namespaces.contains_key(ns));
        for (ns, pid) in namespaces {
            let Some(interfaces) = netdev::read(pid) else {
                continue;
            };
            let start_ns = *self.netns_starts.entry(ns).or_insert(now);
            let member = self.processes.get(pid, &[0; 16]);
            out.push(net_metrics::namespace_metrics(
                &member,
                ns,
                &interfaces,
                start_ns,
                now,
            ));
        }
        if snapshot.unattributed > 0 || snapshot.sockets_dropped > 0 {
            tracing::debug!(
                unattributed = snapshot.unattributed,
                sockets_dropped = snapshot.sockets_dropped,
                "network metrics: sockets not counted"
            );
        }
        out
    }
}
