//! The reader thread: ring buffer → decode → conntrack → parsers → sinks, all wired here.
//!
//! Everything on this path is a plain synchronous call. The thread sleeps in `poll` on the ring
//! buffer with a short timeout: the kernel side does not wake it per event (it writes with
//! `BPF_RB_NO_WAKEUP`), so it drains in batches. Sinks are bounded queues that drop and count
//! rather than block.
//!
//! How long it sleeps follows the event rate. An idle host is drained every 10 ms. A busy one
//! is drained every millisecond, so that each drain is short: while the reader runs, the
//! traced programs sharing its CPU do not, and a 10 ms batch (about 2 ms of parsing at 100k
//! requests/s) let nginx under wrk run out of requests and idle 10–15% of the time. Draining
//! every millisecond raised the traced throughput by about 10% there.

use std::{
    net::SocketAddr,
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use aya::maps::{MapData, PerCpuArray, RingBuf};
use wirelens_ebpf::counter;
use wirelens_otel::{Observation, ProcessInfo, export::ObservationSender};
use wirelens_parsers::Role;

use crate::{
    clock::Clock,
    conntrack::{self, CallOrigin, ConnTracker, Context},
    memlimit::{self, MemoryLimiter, Pressure, release_freed_memory},
    metadata::{kubernetes::PeerStore, process::ProcessCache, sockets},
    netmetrics::NetworkAccounting,
    own_sockets::OwnSockets,
    probes::{Probes, cgroup_filter::CgroupFilter, exe_filter::ExeFilter, uprobes::UprobeThread},
    reader::{Event, decode},
    sinks::live::LiveSender,
    stats::{ExportCounts, Levels, Snapshot, Stats},
    tracecontext::{TraceContext, TraceContextConfig},
};

/// How long the reader sleeps between drains of a quiet ring.
const IDLE_POLL: Duration = Duration::from_millis(10);
/// How long it sleeps between drains of a busy one.
const BUSY_POLL: Duration = Duration::from_millis(1);
/// Events per millisecond from which the ring counts as busy (about 5k requests/s of HTTP).
const BUSY_EVENTS_PER_MS: u64 = 20;
/// The window the event rate is judged over. Not per drain: `poll` returns at once when
/// events are already waiting, so drains come at any spacing and many hold only a few.
const RATE_WINDOW: Duration = Duration::from_millis(10);
/// Housekeeping period (held events, idle connections, counters).
const TICK: Duration = Duration::from_millis(100);
/// How often counters are published.
const PUBLISH: Duration = Duration::from_secs(1);

/// Where finished observations go.
pub struct Sinks {
    /// The live view, if printing.
    pub live: Option<LiveSender>,
    /// The OTLP exporter, if exporting.
    pub otlp: Option<ObservationSender>,
    /// Local ports of our own OTLP endpoints: the collector's side of our exports is not traced.
    pub self_ports: Vec<u16>,
    /// The trace-context stage in front of the OTLP exporter (runs only when exporting).
    pub trace_context: TraceContextConfig,
    /// Network metrics' counting, when `--network-metrics` is on.
    pub network: Option<NetworkAccounting>,
}

/// Hooks for counters: the exporter's counts in, snapshots out.
pub struct Reporting {
    /// The memory limiter, if `--memory-limit` is not 0.
    pub memory: Option<MemoryLimiter>,
    /// Drops most queued exports (the memory limiter's last resort); returns the spans dropped.
    pub shed_exports: Box<dyn Fn() -> u64 + Send>,
    /// Current exporter counts.
    pub export_counts: Box<dyn Fn() -> ExportCounts + Send>,
    /// Called with a fresh snapshot every second.
    pub publish: Box<dyn FnMut(&Snapshot) + Send>,
}

struct Cx<'a> {
    processes: &'a mut ProcessCache,
    cgroups: Option<&'a mut CgroupFilter>,
    exes: Option<&'a mut ExeFilter>,
    ports: &'a [u16],
    peers: Option<&'a PeerStore>,
    sinks: &'a Sinks,
    stats: &'a Stats,
    own: &'a mut OwnSockets,
    trace: Option<&'a mut TraceContext>,
    /// Observations emitted since the last hand-over to the sinks.
    out: &'a mut Outbox,
}

/// The observations of one drain, handed to the sinks together at its end (or every
/// [`Outbox::MAX`]): a sink's thread is woken once per batch, not once per request, which on
/// a busy host with every CPU taken cost the reader a context switch per request.
#[derive(Default)]
struct Outbox {
    /// For the live view (copies, when the exporter takes the originals).
    live: Vec<Observation>,
    /// For the OTLP exporter.
    otlp: Vec<Observation>,
}

impl Outbox {
    /// Hand over early past this many, so that a long drain does not hold them all.
    const MAX: usize = 512;

    fn full(&self) -> bool {
        self.live.len().max(self.otlp.len()) >= Self::MAX
    }

    /// Hand everything held to the sinks, counting what a full queue refused.
    fn deliver(&mut self, sinks: &Sinks, stats: &Stats) {
        if let Some(live) = &sinks.live
            && !self.live.is_empty()
        {
            // The next batch starts at this one's size: one allocation per drain.
            let next = Vec::with_capacity(self.live.len());
            live.send_batch(std::mem::replace(&mut self.live, next));
        }
        if let Some(otlp) = &sinks.otlp {
            for observation in self.otlp.drain(..) {
                if !otlp.try_send(observation) {
                    Stats::add(&stats.export_queue_dropped, 1);
                }
            }
        }
    }
}

/// Queue one observation for the sinks: a copy for the live view when both print and export.
fn to_sinks(sinks: &Sinks, out: &mut Outbox, observation: Observation) {
    match (&sinks.live, &sinks.otlp) {
        (Some(_), Some(_)) => {
            out.live.push(observation.clone());
            out.otlp.push(observation);
        }
        (Some(_), None) => out.live.push(observation),
        (None, Some(_)) => out.otlp.push(observation),
        (None, None) => {}
    }
}

/// Queue one observation for OTLP export only (the live view already has it).
fn to_otlp(sinks: &Sinks, out: &mut Outbox, observation: Observation) {
    if sinks.otlp.is_some() {
        out.otlp.push(observation);
    }
}

impl Cx<'_> {
    /// The peer's cluster identity (a pod or a Service), when the peer watch knows it.
    fn name_peer(&self, observation: &mut Observation) {
        if let (Some(peers), Some(peer)) = (self.peers, observation.peer) {
            observation.peer_identity = match observation.record.role {
                Role::Client => peers.server(peer.ip()),
                Role::Server => peers.client(peer.ip()),
            };
        }
    }
}

impl Context for Cx<'_> {
    fn process(&mut self, tgid: u32, comm: &[u8; 16]) -> Arc<ProcessInfo> {
        self.processes.get(tgid, comm)
    }

    fn resolve_socket(&mut self, tgid: u32, fd: u32) -> Option<sockets::SocketInfo> {
        sockets::resolve(tgid, fd)
    }

    fn wanted(&self, addrs: Option<(SocketAddr, SocketAddr)>) -> bool {
        let Some((local, peer)) = addrs else {
            // Addresses unknown (the socket is gone from /proc): a port filter cannot pass it.
            return self.ports.is_empty();
        };
        let own = |a: SocketAddr| a.ip().is_loopback() && self.sinks.self_ports.contains(&a.port());
        if own(local) || own(peer) || self.own.is_own(Some(local), peer) {
            Stats::add(&self.stats.self_traffic, 1);
            return false;
        }
        self.ports.is_empty()
            || self.ports.contains(&local.port())
            || self.ports.contains(&peer.port())
    }

    fn emit(&mut self, mut observation: Observation) {
        // The collector's first bytes can precede the agent's report of its own socket.
        if observation
            .peer
            .is_some_and(|peer| self.own.is_own(observation.local, peer))
        {
            Stats::add(&self.stats.self_traffic, 1);
            return;
        }
        self.name_peer(&mut observation);
        to_sinks(self.sinks, self.out, observation);
    }

    fn emit_traced(&mut self, mut observation: Observation, origin: CallOrigin) {
        if observation
            .peer
            .is_some_and(|peer| self.own.is_own(observation.local, peer))
        {
            Stats::add(&self.stats.self_traffic, 1);
            return;
        }
        self.name_peer(&mut observation);
        let (sinks, out) = (self.sinks, &mut *self.out);
        match self.trace.as_deref_mut() {
            Some(trace) => {
                if sinks.live.is_some() {
                    out.live.push(observation.clone());
                }
                trace.accept(observation, origin, Instant::now(), &mut |o| {
                    to_otlp(sinks, out, o)
                })
            }
            None => to_sinks(sinks, out, observation),
        }
    }
}

fn kernel_counters(counters: &PerCpuArray<MapData, u64>) -> [u64; counter::COUNT as usize] {
    std::array::from_fn(|i| {
        counters
            .get(&(i as u32), 0)
            .map(|v| v.iter().sum())
            .unwrap_or(0)
    })
}

/// Run until `stop` is set; then drain, flush every connection and return the final counters.
#[expect(
    clippy::too_many_arguments,
    reason = "the one function that wires every stage gets each of them"
)]
pub fn run(
    probes: Probes,
    ports: Vec<u16>,
    max_conns: usize,
    sinks: Sinks,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    mut reporting: Reporting,
    mut processes: ProcessCache,
    peers: Option<PeerStore>,
) -> Snapshot {
    let mut sinks = sinks;
    let mut network = sinks.network.take();
    let Probes {
        mut scans,
        mut events,
        counters,
        mut cgroups,
        mut exes,
    } = probes;
    // Processes that were running when the agent started run the selected executables.
    if let Some(filter) = &mut exes {
        for process in processes.all() {
            filter.consider(&process);
        }
    }
    // Containers already running when the agent started (read by the start-up scan).
    if let Some(filter) = &mut cgroups {
        filter.set_pods(processes.pods().cloned());
        for process in processes.all() {
            filter.consider(&process);
        }
    }
    let mut tracker = ConnTracker::new(max_conns, stats.clone());
    let mut trace = (sinks.otlp.is_some() && sinks.trace_context.enabled)
        .then(|| TraceContext::new(sinks.trace_context, stats.clone()));

    let mut clock = Clock::new();
    let fd = events.as_raw_fd();
    let mut last_tick = Instant::now();
    let mut last_publish = Instant::now();
    let mut rate = EventRate::new(Instant::now());
    // Whether the last check found memory pressure (log once per episode).
    let mut pressed = false;
    let mut trim = TrimAfterShrink::default();
    let mut own = OwnSockets::default();
    let mut out = Outbox::default();
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        {
            let mut cx = Cx {
                processes: &mut processes,
                cgroups: cgroups.as_mut(),
                exes: exes.as_mut(),
                ports: &ports,
                peers: peers.as_ref(),
                sinks: &sinks,
                stats: &stats,
                own: &mut own,
                trace: trace.as_mut(),
                out: &mut out,
            };
            let drained = drain(
                &mut events,
                &mut tracker,
                &mut cx,
                clock,
                &stats,
                &mut scans,
                network.as_mut(),
            );
            let now = Instant::now();
            rate.add(drained, now);
            if now.duration_since(last_tick) >= TICK || stopping {
                last_tick = now;
                clock = Clock::new();
                if let Some(network) = network.as_mut() {
                    network.tick(now, Clock::monotonic_now(), stopping);
                }
                tracker.tick(clock.to_unix(Clock::monotonic_now()), &mut cx);
                if trim.shrunk(tracker.len()) {
                    release_freed_memory();
                }
                if let Some(trace) = cx.trace.as_deref_mut() {
                    trace.tick(now, &mut |o| to_otlp(&sinks, cx.out, o));
                }
                cx.processes.expire(now);
                stats
                    .container_metadata_failures
                    .store(cx.processes.container_failures(), Ordering::Relaxed);
                if let Some(limiter) = &reporting.memory {
                    shed_if_pressed(limiter, &mut tracker, &reporting, &stats, &mut pressed);
                }
                if let Some(filter) = cx.cgroups.as_deref_mut() {
                    filter.refresh();
                }
                if let Some(peers) = cx.peers {
                    stats
                        .k8s_peer_addresses_dropped
                        .store(peers.over_capacity(), Ordering::Relaxed);
                }
                if let Some(pods) = cx.processes.pods() {
                    stats
                        .k8s_metadata_misses
                        .store(pods.misses(), Ordering::Relaxed);
                    stats
                        .k8s_api_failures
                        .store(pods.api_failures(), Ordering::Relaxed);
                }
            }
            if stopping {
                tracker.close_all(clock.to_unix(Clock::monotonic_now()), &mut cx);
                if let Some(trace) = cx.trace.as_deref_mut() {
                    trace.flush(&mut |o| to_otlp(&sinks, cx.out, o));
                }
            }
            cx.out.deliver(&sinks, &stats);
        }
        if last_publish.elapsed() >= PUBLISH || stopping {
            last_publish = Instant::now();
            let mut snap = stats.snapshot(kernel_counters(&counters), (reporting.export_counts)());
            snap.levels = Levels {
                tracked_connections: tracker.len() as u64,
                buffered_bytes: tracker.held_bytes() as u64,
                cached_processes: processes.len() as u64,
                rss_bytes: memlimit::resident_bytes(),
                uprobe_files: scans.levels().files_attached.load(Ordering::Relaxed),
                uprobe_links: scans.levels().links.load(Ordering::Relaxed),
            };
            snap.uprobe_files_detached = scans.levels().files_detached.load(Ordering::Relaxed);
            snap.uprobe_files_refused = scans.levels().files_refused.load(Ordering::Relaxed);
            (reporting.publish)(&snap);
            if stopping {
                // Detaches every program.
                scans.finish();
                return snap;
            }
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; a failed or interrupted poll just means drain again.
        unsafe { libc::poll(&mut pfd, 1, rate.poll_timeout().as_millis() as i32) };
    }
}

/// The memory limiter's check: shed connections (and at the hard limit queued exports too)
/// when the agent presses against `--memory-limit`.
/// Says when the connection table has shrunk enough since its peak that the memory freed is
/// worth handing back to the system (glibc keeps freed heap otherwise: after 10,000
/// connections closed, the resident set would stay at its peak).
#[derive(Debug, Default)]
struct TrimAfterShrink {
    peak: usize,
}

impl TrimAfterShrink {
    /// Connections gone since the peak before a trim is worth its cost.
    const MIN_GONE: usize = 1000;

    /// Note `tracked` now; true when a trim is due (then the peak starts again from here).
    fn shrunk(&mut self, tracked: usize) -> bool {
        self.peak = self.peak.max(tracked);
        if self.peak - tracked >= Self::MIN_GONE && tracked <= self.peak / 2 {
            self.peak = tracked;
            return true;
        }
        false
    }
}

fn shed_if_pressed(
    limiter: &MemoryLimiter,
    tracker: &mut ConnTracker,
    reporting: &Reporting,
    stats: &Stats,
    pressed: &mut bool,
) {
    let pressure = limiter.pressure();
    if pressure == Pressure::None {
        if *pressed {
            tracing::info!("memory back under the limiter's soft limit");
        }
        *pressed = false;
        return;
    }
    let hard = pressure == Pressure::Hard;
    let conns = tracker.shed(hard);
    Stats::add(&stats.memory_shed_connections, conns);
    let spans = if hard { (reporting.shed_exports)() } else { 0 };
    Stats::add(&stats.memory_shed_spans, spans);
    release_freed_memory();
    if !*pressed {
        tracing::warn!(
            resident = limiter.resident(),
            hard,
            "memory limit pressed: {conns} connections and {spans} queued spans shed"
        );
    }
    *pressed = true;
}

/// The ring's event rate, judged once per [`RATE_WINDOW`], and the sleep it calls for.
struct EventRate {
    since: Instant,
    events: u64,
    busy: bool,
}

impl EventRate {
    fn new(now: Instant) -> Self {
        Self {
            since: now,
            events: 0,
            busy: false,
        }
    }

    /// `drained` more events, drained at `now`.
    fn add(&mut self, drained: u64, now: Instant) {
        self.events += drained;
        let window = now.duration_since(self.since);
        if window >= RATE_WINDOW {
            let ms = window.as_millis() as u64;
            self.busy = self.events >= BUSY_EVENTS_PER_MS * ms;
            self.since = now;
            self.events = 0;
        }
    }

    fn poll_timeout(&self) -> Duration {
        if self.busy { BUSY_POLL } else { IDLE_POLL }
    }
}

fn drain(
    events: &mut RingBuf<MapData>,
    tracker: &mut ConnTracker,
    cx: &mut Cx<'_>,
    clock: Clock,
    stats: &Stats,
    scans: &mut UprobeThread,
    mut network: Option<&mut NetworkAccounting>,
) -> u64 {
    let mut drained = 0;
    while let Some(item) = events.next() {
        drained += 1;
        match decode(&item) {
            Ok(Event::Data { header, bytes }) => {
                Stats::add(&stats.captured_bytes, bytes.len() as u64);
                if let Some(network) = network.as_deref_mut() {
                    network.on_data(&header);
                }
                tracker.on_data(&header, bytes, clock.to_unix(header.ts_ns), cx);
                if cx.out.full() {
                    cx.out.deliver(cx.sinks, stats);
                }
            }
            Ok(Event::SockState(ev)) => {
                if let Some(network) = network.as_deref_mut() {
                    network.on_sock_state(&ev);
                }
                tracker.on_sock_state(&ev, clock.to_unix(ev.ts_ns), cx);
            }
            Ok(Event::Retransmit(ev)) => {
                if let Some(network) = network.as_deref_mut() {
                    network.on_retransmit(&ev, Clock::monotonic_now());
                }
            }
            Ok(Event::SockError(ev)) => {
                if let Some(network) = network.as_deref_mut() {
                    network.on_sock_error(&ev);
                }
            }
            Ok(Event::ProcExec(ev)) => {
                cx.processes.on_exec(ev.tgid, &ev.comm);
                if let Some(filter) = cx.cgroups.as_deref_mut() {
                    filter.consider(&cx.processes.get(ev.tgid, &ev.comm));
                }
                if let Some(filter) = cx.exes.as_deref_mut() {
                    filter.consider(&cx.processes.get(ev.tgid, &ev.comm));
                }
                scans.on_exec(ev.tgid);
            }
            Ok(Event::ProcExit(ev)) => {
                cx.processes.on_exit(ev.tgid);
                scans.on_exit(ev.tgid);
            }
            Ok(Event::ProcFork(ev)) => {
                cx.processes.on_fork(ev.parent, ev.tgid);
                scans.on_fork(ev.parent, ev.tgid);
            }
            Ok(Event::TlsAssoc(ev)) => tracker.on_tls_assoc(&ev, cx),
            Ok(Event::AgentSocket(ev)) => {
                let (local, remote) = conntrack::addrs(&ev);
                cx.own.add(local, remote);
            }
            Err(err) => {
                Stats::add(&stats.decode_errors, 1);
                tracing::debug!(%err, "undecodable ring-buffer record");
            }
        }
    }
    Stats::add(&stats.events, drained);
    drained
}

#[cfg(test)]
mod tests {
    #[test]
    fn trims_once_after_the_table_halves() {
        let mut trim = super::TrimAfterShrink::default();
        assert!(!trim.shrunk(10_000));
        assert!(!trim.shrunk(6_000), "not yet half");
        assert!(trim.shrunk(4_000));
        assert!(!trim.shrunk(3_000), "the peak restarts at 4,000");
        assert!(
            trim.shrunk(500),
            "3,500 gone since the last trim, and below half"
        );
        assert!(!trim.shrunk(100), "fewer than 1,000 gone since");
    }

    use super::*;

    #[test]
    fn drains_busy_rings_often_and_quiet_ones_seldom() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut rate = EventRate::new(t0);
        assert_eq!(rate.poll_timeout(), IDLE_POLL);
        // Many drains of a few events each, 10 ms of them at 30 events/ms: busy.
        for ms in 1..=10 {
            rate.add(30, at(ms));
        }
        assert_eq!(rate.poll_timeout(), BUSY_POLL);
        // Judged once a window is over: a short lull within one changes nothing yet.
        rate.add(0, at(15));
        assert_eq!(rate.poll_timeout(), BUSY_POLL);
        rate.add(100, at(20));
        assert_eq!(rate.poll_timeout(), IDLE_POLL, "100 events in 10 ms");
        rate.add(400, at(40));
        assert_eq!(rate.poll_timeout(), BUSY_POLL, "400 in 20 ms");
        rate.add(0, at(1040));
        assert_eq!(rate.poll_timeout(), IDLE_POLL, "a second with none");
    }
}
