//! The trace-context stage: connects the spans of one request across threads and processes
//! before they go to the exporter, and names the service-graph edge of each request.
//!
//! It sits between conntrack's finished records and the OTLP queue (the live view gets records
//! at once, unchanged). Each record comes with the threads that moved its first request byte
//! and last response byte and the stream position of its request ([`CallOrigin`]). It is held
//! for [`TraceContextConfig::hold`] so that the records it may connect to (which usually
//! finish after it) arrive, then its parent is decided:
//!
//! - **A `traceparent` on the wire wins**: the span takes the wire's trace and parent.
//! - **Across processes**: a server record is the child of the traced client record at the other
//!   end of its request ([`pairs`]): over TCP (any protocol) the connections mirror each other
//!   (same two addresses, swapped), the requests start at the same byte position and their
//!   time windows overlap; on a connection the agent joined mid-stream, where the two ends'
//!   positions may disagree, the one client record on the connection whose window overlaps
//!   (none or several: a root, `wirelens.trace.ambiguous`). Over UDP (DNS) the datagram's ports
//!   and the transaction id, windows overlapping.
//! - **Inside a process**: a client record whose request was written by thread T is the child
//!   of the server request open on T, from that request's first byte to its last response byte,
//!   if it nests in exactly one: thread-per-request servers (Python, Java, C) and event loops
//!   (nginx, Node) when requests do not interleave. When two server requests of the thread
//!   overlap it, it stays a root and is counted (`wirelens.trace.ambiguous`). A server request
//!   read by one thread and answered by another (a hand-off to a worker) opens its window on
//!   both threads, so calls made by the worker that answers are parented; calls made by a third
//!   thread, or by a worker that neither read nor answered, are not.
//!
//! A span's parent comes out of the stage before the span itself, so the whole trace shares the
//! root's trace id. Records are held at most [`TraceContextConfig::max_wait`] for a parent
//! (then sent as roots, `wirelens.trace.orphaned`), and at most
//! [`TraceContextConfig::max_entries`] are held (past it the oldest go early,
//! `wirelens.trace.evicted`). A DNS lookup made inside a server request is parented like any
//! client request.

mod pairs;
mod windows;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;
use wirelens_otel::{
    Observation, ProcessInfo, TraceLinks,
    service_graph::{ConnectionType, Edge},
    traces::{TraceParent, failed, nonzero_id, wire_parent},
};
use wirelens_parsers::{Detail, DnsTransport, Role};

use crate::{conntrack::CallOrigin, stats::Stats};
use pairs::{End, PairKey, Pairing, overlap, same_end};
use windows::{Nesting, ThreadWindows, Window};

/// Default time a record waits for the records it connects to.
pub const DEFAULT_HOLD: Duration = Duration::from_millis(1000);
/// Default number of records held.
pub const DEFAULT_MAX_ENTRIES: usize = 50_000;

/// Configuration of the trace-context stage.
///
/// Environment: `WIRELENS_TRACE_CONTEXT=off` turns it off (every span its own trace, unless a
/// `traceparent` says otherwise; no service graph), `WIRELENS_TRACE_HOLD_MS` sets
/// [`TraceContextConfig::hold`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContextConfig {
    /// Whether the stage runs.
    pub enabled: bool,
    /// How long a finished record waits for the records it connects to: its parent finishes
    /// after it, by as much as the parent's work after the child's last byte.
    pub hold: Duration,
    /// How long a record waits for its parent to be sent, after its own hold.
    pub max_wait: Duration,
    /// Most records held (sent and kept for lookups included).
    pub max_entries: usize,
}

impl Default for TraceContextConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hold: DEFAULT_HOLD,
            max_wait: DEFAULT_HOLD * 4,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TraceContextConfigError {
    /// Not `on`/`off`.
    #[error("WIRELENS_TRACE_CONTEXT must be on or off, not {0:?}")]
    Switch(String),
    /// Not a number of milliseconds up to a minute.
    #[error("WIRELENS_TRACE_HOLD_MS must be a number of milliseconds from 0 to 60000, not {0:?}")]
    Hold(String),
}

impl TraceContextConfig {
    /// From the environment (through `get`), defaults for what is unset.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TraceContextConfigError> {
        let mut config = Self::default();
        if let Some(v) = get("WIRELENS_TRACE_CONTEXT") {
            config.enabled = match v.trim().to_ascii_lowercase().as_str() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(TraceContextConfigError::Switch(v)),
            };
        }
        if let Some(v) = get("WIRELENS_TRACE_HOLD_MS") {
            let ms = v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|&ms| ms <= 60_000)
                .ok_or(TraceContextConfigError::Hold(v))?;
            config.hold = Duration::from_millis(ms);
            config.max_wait = config.hold * 4;
        }
        Ok(config)
    }
}

/// Where an entry's parent is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Parent {
    /// Not decided yet.
    Undecided,
    /// None: a root (or the wire's parent, when it has one).
    Root,
    /// This entry.
    Of(u64),
}

/// One record in the stage: held, then sent (its identity kept a while for lookups).
struct Entry {
    /// The record, until sent (boxed: the table moves entries as it grows).
    obs: Option<Box<Observation>>,
    process: Arc<ProcessInfo>,
    role: Role,
    start: u64,
    end: u64,
    origin: CallOrigin,
    pair_key: Option<PairKey>,
    /// (client, server) addresses as this end sees them, when both are known.
    ends: Option<(SocketAddr, SocketAddr)>,
    peer: Option<SocketAddr>,
    connection: ConnectionType,
    failed: bool,
    arrived: Instant,
    span_id: [u8; 8],
    wire: Option<TraceParent>,
    partner: Option<u64>,
    parent: Parent,
    /// Set when sent.
    trace_id: Option<[u8; 16]>,
    /// The partner's edge was counted (by whichever of the two was sent second).
    edge_counted: bool,
}

/// The stage's state; see the module documentation.
pub struct TraceContext {
    config: TraceContextConfig,
    stats: Arc<Stats>,
    entries: FxHashMap<u64, Entry>,
    next_seq: u64,
    /// Every entry by arrival, until forgotten.
    arrivals: VecDeque<u64>,
    /// Entries whose parent is still undecided, by arrival.
    undecided: VecDeque<u64>,
    /// Entries decided and waiting for their parent to be sent, by decision time.
    waiting: VecDeque<(u64, Instant)>,
    /// Children waiting, by parent.
    children: FxHashMap<u64, Vec<u64>>,
    windows: ThreadWindows,
    pairing: Pairing,
}

impl TraceContext {
    /// An empty stage.
    pub fn new(config: TraceContextConfig, stats: Arc<Stats>) -> Self {
        Self {
            config,
            stats,
            entries: FxHashMap::default(),
            next_seq: 1,
            arrivals: VecDeque::new(),
            undecided: VecDeque::new(),
            waiting: VecDeque::new(),
            children: FxHashMap::default(),
            windows: ThreadWindows::default(),
            pairing: Pairing::default(),
        }
    }

    /// Records held now (sent ones kept for lookups included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A finished record from conntrack; records that must go early (the table is full) go to
    /// `send`.
    pub fn accept(
        &mut self,
        obs: Observation,
        origin: CallOrigin,
        now: Instant,
        send: &mut impl FnMut(Observation),
    ) {
        while self.entries.len() >= self.config.max_entries {
            if !self.evict_oldest(send) {
                break;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let record = &obs.record;
        let (start, end) = (record.start_ns, record.end_ns.max(record.start_ns));
        let pid = obs.process.pid;
        if record.role == Role::Server {
            let window = Window { seq, start, end };
            self.windows.add(pid, origin.request_tid, window);
            if origin.response_tid != origin.request_tid {
                self.windows.add(pid, origin.response_tid, window);
            }
        }
        let ends = match (obs.local, obs.peer, record.role) {
            (Some(local), Some(peer), Role::Client) => Some((local, peer)),
            (Some(local), Some(peer), Role::Server) => Some((peer, local)),
            _ => None,
        };
        let pair_key = ends.and_then(|ends| pair_key(&record.detail, ends, origin));
        let this_end = end_of(record.role);
        let entries = &self.entries;
        // The other end must share an instant with this one (equal positions on a connection
        // joined mid-stream may be different requests), and for a datagram have compatible
        // addresses.
        let fits = |other: u64| {
            entries.get(&other).is_some_and(|o| {
                o.obs.is_some()
                    && overlap((o.start, o.end), (start, end))
                    && match (o.ends, ends) {
                        (Some(a), Some(b)) => same_end(a.0, b.0) && same_end(a.1, b.1),
                        _ => false,
                    }
            })
        };
        let partner = pair_key.and_then(|key| self.pairing.offer(this_end, key, seq, fits));
        if let Some(p) = partner.and_then(|p| self.entries.get_mut(&p)) {
            p.partner = Some(seq);
        }
        let connection = match record.detail {
            Detail::Db(_) => ConnectionType::Database,
            Detail::Messaging(_) => ConnectionType::MessagingSystem,
            _ => ConnectionType::Direct,
        };
        let entry = Entry {
            process: Arc::clone(&obs.process),
            role: record.role,
            start,
            end,
            origin,
            pair_key,
            ends,
            peer: obs.peer,
            connection,
            failed: failed(record),
            arrived: now,
            span_id: nonzero_id(),
            wire: wire_parent(record),
            partner,
            parent: Parent::Undecided,
            trace_id: None,
            edge_counted: false,
            obs: Some(Box::new(obs)),
        };
        self.entries.insert(seq, entry);
        self.arrivals.push_back(seq);
        self.undecided.push_back(seq);
    }

    /// Decide the parents of records held long enough, send those whose parent is sent, and
    /// forget sent records no longer needed for lookups.
    pub fn tick(&mut self, now: Instant, send: &mut impl FnMut(Observation)) {
        let hold = self.config.hold;
        while let Some(&seq) = self.undecided.front() {
            let due = self
                .entries
                .get(&seq)
                .is_none_or(|e| now.duration_since(e.arrived) >= hold);
            if !due {
                break;
            }
            self.undecided.pop_front();
            self.decide(seq, now, send);
        }
        let max_wait = self.config.max_wait;
        while let Some(&(seq, decided)) = self.waiting.front() {
            let sent = self.entries.get(&seq).is_none_or(|e| e.obs.is_none());
            if !sent && now.duration_since(decided) < max_wait {
                break;
            }
            self.waiting.pop_front();
            if !sent {
                Stats::add(&self.stats.trace_orphaned, 1);
                if let Some(e) = self.entries.get_mut(&seq) {
                    e.parent = Parent::Root;
                }
                self.send(seq, send);
            }
        }
        // Sent records stay for lookups (a late partner, an overlapping window) a while.
        let keep = hold * 2;
        while let Some(&seq) = self.arrivals.front() {
            let Some(e) = self.entries.get(&seq) else {
                self.arrivals.pop_front();
                continue;
            };
            if e.obs.is_some() || now.duration_since(e.arrived) < keep {
                break;
            }
            self.arrivals.pop_front();
            self.forget(seq);
        }
    }

    /// Decide and send everything (shutdown).
    pub fn flush(&mut self, send: &mut impl FnMut(Observation)) {
        while let Some(seq) = self.undecided.pop_front() {
            self.decide(seq, Instant::now(), send);
        }
        // Whatever still waits has a parent that will not come.
        while let Some((seq, _)) = self.waiting.pop_front() {
            if self.entries.get(&seq).is_some_and(|e| e.obs.is_some()) {
                Stats::add(&self.stats.trace_orphaned, 1);
                if let Some(e) = self.entries.get_mut(&seq) {
                    e.parent = Parent::Root;
                }
                self.send(seq, send);
            }
        }
    }

    fn decide(&mut self, seq: u64, now: Instant, send: &mut impl FnMut(Observation)) {
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        if e.obs.is_none() {
            return;
        }
        if e.partner.is_none()
            && let Some(key) = e.pair_key
        {
            self.pair_by_time(seq, key);
        }
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        let parent = if e.wire.is_some() {
            Parent::Root
        } else {
            match e.role {
                Role::Server => match e.partner {
                    Some(p) if self.entries.contains_key(&p) => {
                        Stats::add(&self.stats.trace_remote_parents, 1);
                        Parent::Of(p)
                    }
                    _ => Parent::Root,
                },
                Role::Client => {
                    let tid = e.origin.request_tid;
                    match self.windows.nesting(e.process.pid, tid, e.start, e.end) {
                        Nesting::In(p) if p != seq && self.entries.contains_key(&p) => {
                            Stats::add(&self.stats.trace_local_parents, 1);
                            Parent::Of(p)
                        }
                        Nesting::Ambiguous => {
                            Stats::add(&self.stats.trace_ambiguous, 1);
                            Parent::Root
                        }
                        _ => Parent::Root,
                    }
                }
            }
        };
        if let Some(e) = self.entries.get_mut(&seq) {
            e.parent = parent;
        }
        match parent {
            Parent::Of(p) if self.entries.get(&p).is_some_and(|p| p.obs.is_some()) => {
                self.children.entry(p).or_default().push(seq);
                self.waiting.push_back((seq, now));
            }
            _ => self.send(seq, send),
        }
    }

    /// An unpaired TCP record, due: pair it with the one record of the other end left on its
    /// connection whose time window overlaps its own, if there is exactly one (a connection
    /// joined mid-stream, whose two ends count positions from different requests).
    fn pair_by_time(&mut self, seq: u64, key: PairKey) {
        let (Some(connection), Some(e)) = (key.connection(), self.entries.get(&seq)) else {
            return;
        };
        let own = end_of(e.role);
        let other = match own {
            End::Client => End::Server,
            End::Server => End::Client,
        };
        let window = (e.start, e.end);
        let (first, second) = {
            let entries = &self.entries;
            let mut overlapping = self.pairing.unpaired_on(other, connection).filter(|p| {
                entries
                    .get(p)
                    .is_some_and(|p| p.obs.is_some() && overlap((p.start, p.end), window))
            });
            (overlapping.next(), overlapping.next())
        };
        let found = match (first, second) {
            (Some(p), None) => p,
            (None, _) => return,
            (Some(_), Some(_)) => {
                Stats::add(&self.stats.trace_ambiguous, 1);
                return;
            }
        };
        let Some(other_key) = self.entries.get(&found).and_then(|p| p.pair_key) else {
            return;
        };
        self.pairing.withdraw(other, other_key, found);
        self.pairing.withdraw(own, key, seq);
        if let Some(p) = self.entries.get_mut(&found) {
            p.partner = Some(seq);
        }
        if let Some(e) = self.entries.get_mut(&seq) {
            e.partner = Some(found);
        }
    }

    /// Send `seq` and then every child waiting for it.
    fn send(&mut self, seq: u64, send: &mut impl FnMut(Observation)) {
        let mut stack = vec![seq];
        while let Some(seq) = stack.pop() {
            self.send_one(seq, send);
            if let Some(children) = self.children.remove(&seq) {
                stack.extend(children);
            }
        }
    }

    fn send_one(&mut self, seq: u64, send: &mut impl FnMut(Observation)) {
        let Some(e) = self.entries.get(&seq) else {
            return;
        };
        if e.obs.is_none() || e.parent == Parent::Undecided {
            return;
        }
        let parent = match e.parent {
            Parent::Of(p) => self
                .entries
                .get(&p)
                .and_then(|p| Some((p.trace_id?, p.span_id))),
            _ => None,
        };
        let trace_id = match (e.wire, parent) {
            (Some(wire), _) => wire.trace_id,
            (None, Some((trace_id, _))) => trace_id,
            (None, None) => nonzero_id(),
        };
        let edge = self.edge(seq);
        let Some(e) = self.entries.get_mut(&seq) else {
            return;
        };
        e.trace_id = Some(trace_id);
        let Some(mut obs) = e.obs.take() else {
            return;
        };
        obs.trace = Some(Box::new(TraceLinks {
            trace_id,
            span_id: e.span_id,
            parent_span_id: parent.map(|(_, span_id)| span_id),
            edge,
        }));
        // An unpaired record stops waiting: a partner coming later must not count its
        // edge a second time.
        if e.partner.is_none()
            && let Some(key) = e.pair_key
        {
            self.pairing.withdraw(end_of(e.role), key, seq);
        }
        send(*obs);
    }

    /// The service-graph edge `seq` completes, if it is the second of a pair to be sent or
    /// has no traced partner.
    fn edge(&mut self, seq: u64) -> Option<Edge> {
        let e = self.entries.get(&seq)?;
        let seconds = |e: &Entry| e.end.saturating_sub(e.start) as f64 / 1e9;
        let namespace = |e: &Entry| e.process.service_namespace().map(str::to_owned);
        let edge = match e.partner.and_then(|p| self.entries.get(&p)) {
            Some(p) if p.obs.is_some() => return None,
            Some(p) => {
                if p.edge_counted {
                    return None;
                }
                let (client, server) = match e.role {
                    Role::Client => (e, p),
                    Role::Server => (p, e),
                };
                Edge {
                    client: client.process.service_name.clone(),
                    server: server.process.service_name.clone(),
                    client_namespace: namespace(client),
                    server_namespace: namespace(server),
                    connection_type: client.connection,
                    client_seconds: Some(seconds(client)),
                    server_seconds: Some(seconds(server)),
                    failed: client.failed || server.failed,
                }
            }
            None => {
                let peer = e.peer?;
                let untraced = match e.connection {
                    ConnectionType::Direct => ConnectionType::VirtualNode,
                    other => other,
                };
                match e.role {
                    Role::Client => Edge {
                        client: e.process.service_name.clone(),
                        server: peer.to_string(),
                        client_namespace: namespace(e),
                        server_namespace: None,
                        connection_type: untraced,
                        client_seconds: Some(seconds(e)),
                        server_seconds: None,
                        failed: e.failed,
                    },
                    Role::Server => Edge {
                        client: peer.ip().to_string(),
                        server: e.process.service_name.clone(),
                        client_namespace: None,
                        server_namespace: namespace(e),
                        connection_type: ConnectionType::VirtualNode,
                        client_seconds: None,
                        server_seconds: Some(seconds(e)),
                        failed: e.failed,
                    },
                }
            }
        };
        if let Some(e) = self.entries.get_mut(&seq) {
            e.edge_counted = true;
        }
        Some(edge)
    }

    /// Send the oldest held record now (the table is full); `false` when there is none.
    fn evict_oldest(&mut self, send: &mut impl FnMut(Observation)) -> bool {
        let Some(seq) = self.arrivals.pop_front() else {
            return false;
        };
        if self.entries.get(&seq).is_some_and(|e| e.obs.is_some()) {
            Stats::add(&self.stats.trace_evicted, 1);
            // Its parent, if decided, goes with it only if already sent: else it is a root.
            let parent_sent = match self.entries.get(&seq).map(|e| e.parent) {
                Some(Parent::Of(p)) => self.entries.get(&p).is_some_and(|p| p.obs.is_none()),
                _ => false,
            };
            if !parent_sent && let Some(e) = self.entries.get_mut(&seq) {
                e.parent = Parent::Root;
            }
            self.send(seq, send);
        }
        self.forget(seq);
        true
    }

    /// Drop every trace of `seq`.
    fn forget(&mut self, seq: u64) {
        let Some(e) = self.entries.remove(&seq) else {
            return;
        };
        if e.role == Role::Server {
            let pid = e.process.pid;
            let window = Window {
                seq,
                start: e.start,
                end: e.end,
            };
            self.windows.remove(pid, e.origin.request_tid, window);
            self.windows.remove(pid, e.origin.response_tid, window);
        }
        if let Some(key) = e.pair_key {
            self.pairing.withdraw(end_of(e.role), key, seq);
        }
        self.children.remove(&seq);
    }
}

/// The pairing end of a record of role `role`.
fn end_of(role: Role) -> End {
    match role {
        Role::Client => End::Client,
        Role::Server => End::Server,
    }
}

/// What the two ends of a record's request agree on: the DNS transaction id for a query over
/// UDP, the request's stream position otherwise. `ends` is (client, server).
fn pair_key(
    detail: &Detail,
    (client, server): (SocketAddr, SocketAddr),
    origin: CallOrigin,
) -> Option<PairKey> {
    match detail {
        Detail::Dns(dns) if dns.transport == DnsTransport::Udp => Some(PairKey::Datagram {
            client_port: client.port(),
            server_port: server.port(),
            id: dns.id,
        }),
        _ => Some(PairKey::Stream {
            client,
            server,
            position: origin.request_position?,
        }),
    }
}

#[cfg(test)]
mod tests;
