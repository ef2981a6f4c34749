//! The agent's own counters: what it saw, what it produced, and everything it lost.
//!
//! User-space counters live here as atomics; kernel counters are read from the `COUNTERS` map
//! and folded in by [`Snapshot`]. The same names are printed at exit and exported as
//! `wirelens.*` metrics.

use std::sync::atomic::{AtomicU64, Ordering};

use wirelens_ebpf::counter;
use wirelens_otel::semconv;
use wirelens_parsers::Loss;

/// User-space counters, shared between the reader thread and the rest.
#[derive(Debug, Default)]
pub struct Stats {
    /// Ring-buffer records read.
    pub events: AtomicU64,
    /// Bytes captured (data delivered by the kernel).
    pub captured_bytes: AtomicU64,
    /// Records that did not decode.
    pub decode_errors: AtomicU64,
    /// Records produced by parsers.
    pub records: AtomicU64,
    /// Records the live view dropped (stdout too slow).
    pub live_dropped: AtomicU64,
    /// Records the exporter queue refused (backend too slow or down).
    pub export_queue_dropped: AtomicU64,
    /// Connections not tracked because the table was full.
    pub conns_rejected: AtomicU64,
    /// Stream gaps (bytes lost between events of one connection).
    pub stream_gaps: AtomicU64,
    /// Events that arrived out of order and were put back in order.
    pub reordered: AtomicU64,
    /// Connections whose protocol was not recognised.
    pub unknown_protocol: AtomicU64,
    /// Records dropped because they belong to the agent's own export traffic.
    pub self_traffic: AtomicU64,
    /// Ciphertext events of connections read through the OpenSSL probes, skipped.
    pub tls_ciphertext: AtomicU64,
    /// Container metadata lookups that failed (runtime state unreadable or not found).
    pub container_metadata_failures: AtomicU64,
    /// Connections dropped by the memory limiter.
    pub memory_shed_connections: AtomicU64,
    /// Queued spans dropped by the memory limiter.
    pub memory_shed_spans: AtomicU64,
    /// Processes in a pod the Kubernetes API had not (yet) described when their Resource was
    /// built.
    pub k8s_metadata_misses: AtomicU64,
    /// Kubernetes API calls that failed (list, watch, owner lookups).
    pub k8s_api_failures: AtomicU64,
    /// Client spans given a server span of their own thread as parent.
    pub trace_local_parents: AtomicU64,
    /// Server spans given their traced client's span as parent.
    pub trace_remote_parents: AtomicU64,
    /// Client spans left as roots: more than one server request was open on their thread.
    pub trace_ambiguous: AtomicU64,
    /// Spans sent on early because the trace-context table was full (their links may be missing).
    pub trace_evicted: AtomicU64,
    /// Spans sent as roots because their parent never came out of the trace-context stage.
    pub trace_orphaned: AtomicU64,
    /// Pod and Service addresses not kept as peer names (past the store's bound).
    pub k8s_peer_addresses_dropped: AtomicU64,
    /// Parser losses, by [`Loss`].
    pub parse_losses: [AtomicU64; Loss::ALL.len()],
    /// `replay`: packets read from the capture.
    pub replay_packets: AtomicU64,
    /// `replay`: packets whose headers did not decode (truncated, corrupt).
    pub replay_malformed: AtomicU64,
    /// `replay`: packets that are not TCP or UDP over IP (ARP, ICMP, fragments, ...).
    pub replay_skipped: AtomicU64,
}

impl Stats {
    /// Add `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Count parser losses.
    pub fn add_losses(&self, losses: &[(Loss, u64)]) {
        for &(loss, n) in losses {
            if n > 0 {
                let i = Loss::ALL.iter().position(|l| *l == loss).unwrap_or(0);
                Self::add(&self.parse_losses[i], n);
            }
        }
    }

    /// Current values, together with the kernel's and the exporter's.
    pub fn snapshot(
        &self,
        kernel: [u64; counter::COUNT as usize],
        export: ExportCounts,
    ) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            events: get(&self.events),
            kernel,
            captured_bytes: get(&self.captured_bytes),
            decode_errors: get(&self.decode_errors),
            records: get(&self.records),
            live_dropped: get(&self.live_dropped),
            export_queue_dropped: get(&self.export_queue_dropped),
            conns_rejected: get(&self.conns_rejected),
            stream_gaps: get(&self.stream_gaps),
            reordered: get(&self.reordered),
            unknown_protocol: get(&self.unknown_protocol),
            self_traffic: get(&self.self_traffic),
            tls_ciphertext: get(&self.tls_ciphertext),
            container_metadata_failures: get(&self.container_metadata_failures),
            memory_shed_connections: get(&self.memory_shed_connections),
            memory_shed_spans: get(&self.memory_shed_spans),
            k8s_metadata_misses: get(&self.k8s_metadata_misses),
            k8s_api_failures: get(&self.k8s_api_failures),
            trace_local_parents: get(&self.trace_local_parents),
            trace_remote_parents: get(&self.trace_remote_parents),
            trace_ambiguous: get(&self.trace_ambiguous),
            trace_evicted: get(&self.trace_evicted),
            trace_orphaned: get(&self.trace_orphaned),
            k8s_peer_addresses_dropped: get(&self.k8s_peer_addresses_dropped),
            parse_losses: Loss::ALL.map(|l| {
                let i = Loss::ALL.iter().position(|x| *x == l).unwrap_or(0);
                (l, get(&self.parse_losses[i]))
            }),
            export,
            replay_packets: get(&self.replay_packets),
            replay_malformed: get(&self.replay_malformed),
            replay_skipped: get(&self.replay_skipped),
            levels: Levels::default(),
            uprobe_files_detached: 0,
            uprobe_files_refused: 0,
        }
    }
}

/// What the exporter reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExportCounts {
    /// Spans delivered.
    pub spans_exported: u64,
    /// Spans dropped by the exporter (queue full or failed batches).
    pub spans_dropped: u64,
    /// Failed export calls.
    pub failures: u64,
}

/// A point-in-time copy of every counter.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Ring-buffer records read.
    pub events: u64,
    /// Kernel counters by `wirelens_ebpf::counter` index.
    pub kernel: [u64; counter::COUNT as usize],
    /// Bytes captured.
    pub captured_bytes: u64,
    /// Undecodable records.
    pub decode_errors: u64,
    /// Records produced.
    pub records: u64,
    /// Live-view drops.
    pub live_dropped: u64,
    /// Exporter queue drops.
    pub export_queue_dropped: u64,
    /// Connections not tracked.
    pub conns_rejected: u64,
    /// Stream gaps.
    pub stream_gaps: u64,
    /// Reordered events.
    pub reordered: u64,
    /// Connections with no recognised protocol.
    pub unknown_protocol: u64,
    /// Records of the agent's own export traffic, dropped.
    pub self_traffic: u64,
    /// Ciphertext events of probed TLS connections, skipped.
    pub tls_ciphertext: u64,
    /// Container metadata lookups that failed.
    pub container_metadata_failures: u64,
    /// Connections dropped by the memory limiter.
    pub memory_shed_connections: u64,
    /// Queued spans dropped by the memory limiter.
    pub memory_shed_spans: u64,
    /// Processes whose pod the Kubernetes API had not described yet.
    pub k8s_metadata_misses: u64,
    /// Failed Kubernetes API calls.
    pub k8s_api_failures: u64,
    /// Client spans given a server span of their own thread as parent.
    pub trace_local_parents: u64,
    /// Server spans given their traced client's span as parent.
    pub trace_remote_parents: u64,
    /// Client spans left as roots: more than one server request was open on their thread.
    pub trace_ambiguous: u64,
    /// Spans sent on early because the trace-context table was full (their links may be missing).
    pub trace_evicted: u64,
    /// Spans sent as roots because their parent never came out of the trace-context stage.
    pub trace_orphaned: u64,
    /// Peer addresses not kept.
    pub k8s_peer_addresses_dropped: u64,
    /// Parser losses.
    pub parse_losses: [(Loss, u64); Loss::ALL.len()],
    /// Exporter counts.
    pub export: ExportCounts,
    /// `replay`: packets read.
    pub replay_packets: u64,
    /// `replay`: packets that did not decode.
    pub replay_malformed: u64,
    /// `replay`: packets neither TCP nor UDP.
    pub replay_skipped: u64,
    /// Levels now (gauges), filled in by the reader loop.
    pub levels: Levels,
    /// Files whose user-space probes were detached (no process used them any more); filled
    /// in by the reader loop from the scan thread.
    pub uprobe_files_detached: u64,
    /// Files not probed: too many probed at once; filled in like `uprobe_files_detached`.
    pub uprobe_files_refused: u64,
}

/// What the agent holds now: exported as gauges, so that a soak can plot them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Levels {
    /// Connections tracked.
    pub tracked_connections: u64,
    /// Bytes buffered in tracked connections, not yet parsed.
    pub buffered_bytes: u64,
    /// Processes in the process cache.
    pub cached_processes: u64,
    /// The agent's resident memory.
    pub rss_bytes: u64,
    /// Files carrying user-space probes.
    pub uprobe_files: u64,
    /// User-space probe links (fds).
    pub uprobe_links: u64,
}

impl Levels {
    /// The gauges under their exported names.
    pub fn gauges(&self) -> Vec<(&'static str, i64)> {
        let g = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        vec![
            (
                semconv::WIRELENS_CONNECTIONS_TRACKED,
                g(self.tracked_connections),
            ),
            (
                semconv::WIRELENS_CONNECTIONS_BUFFERED_BYTES,
                g(self.buffered_bytes),
            ),
            (semconv::WIRELENS_PROCESSES_CACHED, g(self.cached_processes)),
            (semconv::WIRELENS_MEMORY_RSS_BYTES, g(self.rss_bytes)),
            (
                semconv::WIRELENS_UPROBE_FILES_ATTACHED,
                g(self.uprobe_files),
            ),
            (semconv::WIRELENS_UPROBE_LINKS, g(self.uprobe_links)),
        ]
    }
}

impl Snapshot {
    /// Everything lost on the way, summed: ring full, gaps, undecodable, queue drops. The
    /// exporter's `spans_dropped` already includes its full queue (`export_queue_dropped`).
    pub fn drops(&self) -> u64 {
        self.kernel[counter::RING_FULL as usize]
            + self.kernel[counter::CONN_MAP_FULL as usize]
            + self.decode_errors
            + self.stream_gaps
            + self.live_dropped
            + self.conns_rejected
            + self.export.spans_dropped
    }

    /// `(metric name, value)` pairs for export as `wirelens.*` counters.
    pub fn metrics(&self) -> Vec<(&'static str, u64)> {
        let k = |i: u32| self.kernel[i as usize];
        let mut v = vec![
            ("wirelens.events", self.events),
            ("wirelens.captured_bytes", self.captured_bytes),
            ("wirelens.records", self.records),
            ("wirelens.drops", self.drops()),
            ("wirelens.kernel.ring_full", k(counter::RING_FULL)),
            ("wirelens.kernel.truncated_calls", k(counter::TRUNCATED)),
            ("wirelens.kernel.read_failed", k(counter::READ_FAILED)),
            ("wirelens.kernel.unreadable_calls", k(counter::UNREADABLE)),
            ("wirelens.kernel.filtered_calls", k(counter::FILTERED)),
            ("wirelens.kernel.conn_map_full", k(counter::CONN_MAP_FULL)),
            (
                "wirelens.kernel.tls_ciphertext_calls",
                k(counter::TLS_CIPHERTEXT),
            ),
            (
                "wirelens.kernel.tls_unpaired_returns",
                k(counter::TLS_UNPAIRED),
            ),
            ("wirelens.decode_errors", self.decode_errors),
            ("wirelens.stream_gaps", self.stream_gaps),
            ("wirelens.reordered_events", self.reordered),
            ("wirelens.connections_rejected", self.conns_rejected),
            (
                "wirelens.unknown_protocol_connections",
                self.unknown_protocol,
            ),
            ("wirelens.self_traffic_connections", self.self_traffic),
            ("wirelens.tls_ciphertext_events", self.tls_ciphertext),
            (
                "wirelens.container.metadata_failures",
                self.container_metadata_failures,
            ),
            (
                "wirelens.memory.shed_connections",
                self.memory_shed_connections,
            ),
            ("wirelens.memory.shed_spans", self.memory_shed_spans),
            ("wirelens.k8s.metadata_misses", self.k8s_metadata_misses),
            ("wirelens.k8s.api_failures", self.k8s_api_failures),
            ("wirelens.trace.local_parents", self.trace_local_parents),
            ("wirelens.trace.remote_parents", self.trace_remote_parents),
            ("wirelens.trace.ambiguous", self.trace_ambiguous),
            ("wirelens.trace.evicted", self.trace_evicted),
            ("wirelens.trace.orphaned", self.trace_orphaned),
            (
                "wirelens.k8s.peer_addresses_dropped",
                self.k8s_peer_addresses_dropped,
            ),
            ("wirelens.live_dropped", self.live_dropped),
            ("wirelens.uprobe.files_detached", self.uprobe_files_detached),
            ("wirelens.uprobe.files_refused", self.uprobe_files_refused),
            // The exporter reports wirelens.export.{spans,spans_dropped,failures} itself.
            ("wirelens.export.queue_dropped", self.export_queue_dropped),
        ];
        for (loss, n) in self.parse_losses {
            v.push((loss_metric(loss), n));
        }
        v
    }

    /// The one-line summary printed at exit.
    pub fn summary(&self) -> String {
        let k = |i: u32| self.kernel[i as usize];
        let losses: Vec<String> = self
            .parse_losses
            .iter()
            .map(|(l, n)| format!("{}={n}", l.name()))
            .collect();
        let mut line = format!(
            "wirelens counters: events={} bytes={} drops={} records={} export_failures={} \
             spans_exported={} ring_full={} truncated={} gaps={} decode_errors={} \
             live_dropped={} export_queue_dropped={} spans_dropped={} unknown_protocol={} \
             self_traffic={} memory_shed_connections={} parse_losses=[{}]",
            self.events,
            self.captured_bytes,
            self.drops(),
            self.records,
            self.export.failures,
            self.export.spans_exported,
            k(counter::RING_FULL),
            k(counter::TRUNCATED),
            self.stream_gaps,
            self.decode_errors,
            self.live_dropped,
            self.export_queue_dropped,
            self.export.spans_dropped,
            self.unknown_protocol,
            self.self_traffic,
            self.memory_shed_connections,
            losses.join(" "),
        );
        if self.replay_packets > 0 {
            // Only a replay reads packets; the live line is unchanged.
            line.push_str(&format!(
                " packets={} malformed_packets={} skipped_packets={}",
                self.replay_packets, self.replay_malformed, self.replay_skipped
            ));
        }
        line
    }
}

fn loss_metric(loss: Loss) -> &'static str {
    match loss {
        Loss::Malformed => "wirelens.parse.malformed",
        Loss::UnmatchedRequest => "wirelens.parse.unmatched_requests",
        Loss::UnmatchedResponse => "wirelens.parse.unmatched_responses",
        Loss::Oversized => "wirelens.parse.oversized",
        Loss::ResyncBytes => "wirelens.parse.resync_bytes",
        Loss::UndecodedHeaders => "wirelens.parse.undecoded_headers",
    }
}
