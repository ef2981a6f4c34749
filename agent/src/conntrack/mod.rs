//! Connection tracking: one entry per socket, its two byte streams in order, its parser.
//!
//! A connection is identified by its kernel `struct sock` address, which is what the kernel's
//! stream positions are kept per; the address changes when an fd is reused for a new socket, so
//! a reused fd is a new connection. Entries are made on first data (or from the TCP state
//! change that precedes it), flushed when TCP reports the close, and expired when idle.
//! Memory is bounded: a fixed number of connections, and per direction only what
//! reordering holds (see [`stream`]) and what an unfinished frame needs inside the parser.

mod inference;
pub mod marks;
pub mod stream;
#[cfg(test)]
mod tls_tests;

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use rustc_hash::FxHashMap;
use wirelens_ebpf::{
    DataHeader, SockStateEvent, TlsAssocEvent, data_flags, direction, ip_proto, tcp_state,
};
use wirelens_otel::{Observation, ProcessInfo};
use wirelens_parsers::{Detail, Direction, Output, Parser, Role, infer_datagram, new_parser};

use crate::{metadata::sockets::SocketInfo, stats::Stats};
use inference::{Inferring, MAX_TRIES as MAX_INFER_TRIES, MIN_CONFIDENCE, Verdict};
use marks::{CallMarks, Mark};
use stream::{Piece, Stream};

/// Most bytes held for reordering over all connections; past it a stream stops waiting.
pub const MAX_TOTAL_HELD: usize = 64 << 20;
/// Records kept per connection while its addresses are unknown and a port filter is on.
const MAX_PENDING_RECORDS: usize = 256;
/// A connection with no event for this long is flushed and forgotten.
const IDLE_NS: u64 = 300 * 1_000_000_000;

enum Slot {
    Inferring(Inferring),
    Parsing(Box<dyn Parser>),
    Unrecognised,
}

struct Conn {
    tgid: u32,
    comm: [u8; 16],
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    streams: [Stream; 2],
    slot: Slot,
    last_ts: u64,
    process: Option<Arc<ProcessInfo>>,
    /// Records waiting for the addresses (the port filter needs them), oldest first.
    pending: Vec<wirelens_parsers::Record>,
    /// The streams are TLS plaintext from the OpenSSL probes.
    tls: bool,
    /// Threads and positions of the recent calls (for [`CallOrigin`]).
    marks: CallMarks,
}

/// Where a record's request began and its response ended, for the trace-context stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallOrigin {
    /// Thread that moved the request's first byte (0: unknown).
    pub request_tid: u32,
    /// Thread that moved the response's last byte (0: unknown).
    pub response_tid: u32,
    /// Stream position of the call that moved the request's first byte, when known.
    pub request_position: Option<u64>,
}

/// Things the tracker needs from the rest of the agent.
pub trait Context {
    /// Process metadata for `tgid`.
    fn process(&mut self, tgid: u32, comm: &[u8; 16]) -> Arc<ProcessInfo>;
    /// Addresses of a socket that predates the agent.
    fn resolve_socket(&mut self, tgid: u32, fd: u32) -> Option<SocketInfo>;
    /// Whether a connection between these addresses (`None`: unknown) passes the filters.
    fn wanted(&self, addrs: Option<(SocketAddr, SocketAddr)>) -> bool;
    /// A finished exchange.
    fn emit(&mut self, observation: Observation);
    /// A finished exchange with the threads and position it came from; by default only
    /// [`Context::emit`].
    fn emit_traced(&mut self, observation: Observation, origin: CallOrigin) {
        let _ = origin;
        self.emit(observation);
    }
}

/// Address and role learnt from `inet_sock_set_state`, before the first data event.
#[derive(Clone, Copy, Debug)]
struct SockAddrs {
    local: SocketAddr,
    peer: SocketAddr,
}

/// All tracked connections.
pub struct ConnTracker {
    // Keyed by kernel socket addresses: Fx hashing (a multiply) rather than SipHash, whose
    // flooding resistance these keys do not need; several lookups run per event.
    conns: FxHashMap<u64, Conn>,
    socks: FxHashMap<u64, SockAddrs>,
    ignored: FxHashMap<u64, u64>,
    max_conns: usize,
    held_total: usize,
    out: Output,
    stats: Arc<Stats>,
}

impl ConnTracker {
    /// A tracker holding at most `max_conns` connections.
    pub fn new(max_conns: usize, stats: Arc<Stats>) -> Self {
        Self {
            conns: FxHashMap::default(),
            socks: FxHashMap::default(),
            ignored: FxHashMap::default(),
            max_conns,
            held_total: 0,
            out: Output::default(),
            stats,
        }
    }

    /// Connections tracked now (at most the `max_conns` given to [`ConnTracker::new`]).
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether no connection is tracked.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    /// Bytes held for reordering over all connections, as the tracker accounts them.
    pub fn held_bytes(&self) -> usize {
        self.held_total
    }

    /// Bytes held for reordering, counted afresh from every held event (checks the account).
    pub fn held_bytes_recounted(&self) -> usize {
        self.conns
            .values()
            .flat_map(|c| c.streams.iter())
            .map(Stream::held_bytes_recounted)
            .sum()
    }

    /// Largest bytes held by one direction of one connection, counted afresh.
    pub fn held_bytes_max_stream(&self) -> usize {
        self.conns
            .values()
            .flat_map(|c| c.streams.iter())
            .map(Stream::held_bytes)
            .max()
            .unwrap_or(0)
    }

    /// A data event (`ts` already in Unix ns).
    pub fn on_data(&mut self, h: &DataHeader, bytes: &[u8], ts: u64, cx: &mut impl Context) {
        let tls = h.flags & data_flags::TLS != 0;
        if tls {
            self.on_tls_start(h.sk);
        }
        if let Some(last) = self.ignored.get_mut(&h.sk) {
            *last = ts;
            return;
        }
        if !tls && self.conns.get(&h.sk).is_some_and(|c| c.tls) {
            // Ciphertext of a connection whose plaintext the probes give.
            Stats::add(&self.stats.tls_ciphertext, 1);
            return;
        }
        if h.protocol == ip_proto::UDP {
            self.on_datagram(h, bytes, ts, cx);
            return;
        }
        if !self.conns.contains_key(&h.sk) {
            if self.conns.len() >= self.max_conns {
                Stats::add(&self.stats.conns_rejected, 1);
                return;
            }
            let addrs = match self.socks.get(&h.sk) {
                Some(a) => Some((a.local, a.peer)),
                None => cx.resolve_socket(h.tgid, h.fd).map(|s| (s.local, s.peer)),
            };
            tracing::debug!(sk = h.sk, pid = h.tgid, fd = h.fd, ?addrs, "new connection");
            // Unknown addresses (the socket closed before /proc was read) are decided when
            // the TCP close reports them; until then the records wait.
            if addrs.is_some() && !cx.wanted(addrs) {
                self.ignore(h.sk, ts, cx);
                return;
            }
            self.conns.insert(
                h.sk,
                Conn {
                    tgid: h.tgid,
                    comm: h.comm,
                    local: addrs.map(|a| a.0),
                    peer: addrs.map(|a| a.1),
                    streams: Default::default(),
                    slot: Slot::Inferring(Inferring::default()),
                    last_ts: ts,
                    process: None,
                    pending: Vec::new(),
                    tls,
                    marks: CallMarks::default(),
                },
            );
        }
        let Some(conn) = self.conns.get_mut(&h.sk) else {
            return;
        };
        if conn.tgid != h.tgid {
            // Another process now uses the socket (fork, fd passing): attribute to it.
            conn.tgid = h.tgid;
            conn.comm = h.comm;
            conn.process = None;
        }
        conn.last_ts = ts;
        let dir = if h.direction == direction::EGRESS {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        let end = h.flags & data_flags::EOF != 0;
        if h.len > 0 {
            conn.marks.push(
                dir,
                Mark {
                    ts,
                    tid: h.tid,
                    position: h.position,
                },
            );
        }
        let out = &mut self.out;
        let slot = &mut conn.slot;
        let stream = &mut conn.streams[dir.index()];
        let held_before = stream.held_bytes();
        let mut deliver = |piece: Piece<'_>| feed(slot, dir, piece, out);
        let mut report = stream.place(h.position, h.len, bytes, end, ts, &mut deliver);
        self.held_total = self.held_total + stream.held_bytes() - held_before;
        if self.held_total > MAX_TOTAL_HELD && stream.has_held() {
            let held = stream.held_bytes();
            report.gaps += stream.flush(&mut deliver);
            self.held_total -= held;
        }
        Stats::add(&self.stats.stream_gaps, report.gaps);
        Stats::add(&self.stats.reordered, report.held);
        if matches!(conn.slot, Slot::Unrecognised) {
            Stats::add(&self.stats.unknown_protocol, 1);
            self.forget(h.sk);
            self.ignore(h.sk, ts, cx);
            self.drain(h.sk, cx);
            return;
        }
        self.drain(h.sk, cx);
    }

    /// One UDP datagram: no stream to put in order, each datagram is a message on its own,
    /// and its peer travels with it (an unconnected socket talks to many).
    fn on_datagram(&mut self, h: &DataHeader, bytes: &[u8], ts: u64, cx: &mut impl Context) {
        let local = socket_addr(h.family, h.local_addr, h.local_port);
        let peer = (h.peer_port != 0).then(|| socket_addr(h.family, h.peer_addr, h.peer_port));
        if !self.conns.contains_key(&h.sk) {
            if self.conns.len() >= self.max_conns {
                Stats::add(&self.stats.conns_rejected, 1);
                return;
            }
            let unspecified = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0);
            if !cx.wanted(Some((local, peer.unwrap_or(unspecified)))) {
                self.ignore(h.sk, ts, cx);
                return;
            }
            tracing::debug!(sk = h.sk, pid = h.tgid, fd = h.fd, %local, "new UDP socket");
            self.conns.insert(
                h.sk,
                Conn {
                    tgid: h.tgid,
                    comm: h.comm,
                    local: Some(local),
                    peer: None,
                    streams: Default::default(),
                    slot: Slot::Inferring(Inferring::default()),
                    last_ts: ts,
                    process: None,
                    pending: Vec::new(),
                    tls: false,
                    marks: CallMarks::default(),
                },
            );
        }
        let Some(conn) = self.conns.get_mut(&h.sk) else {
            return;
        };
        if conn.tgid != h.tgid {
            conn.tgid = h.tgid;
            conn.comm = h.comm;
            conn.process = None;
        }
        conn.last_ts = ts;
        if bytes.is_empty() {
            return;
        }
        let dir = if h.direction == direction::EGRESS {
            Direction::Egress
        } else {
            Direction::Ingress
        };
        conn.marks.push(
            dir,
            Mark {
                ts,
                tid: h.tid,
                position: h.position,
            },
        );
        if let Slot::Inferring(Inferring { tries, .. }) = &mut conn.slot {
            match infer_datagram(dir, bytes) {
                Some(guess) if guess.confidence >= MIN_CONFIDENCE => {
                    tracing::debug!(protocol = guess.protocol.name(), ?dir, "datagram protocol");
                    conn.slot = Slot::Parsing(new_parser(guess.protocol));
                }
                _ => {
                    *tries += 1;
                    if *tries >= MAX_INFER_TRIES {
                        Stats::add(&self.stats.unknown_protocol, 1);
                        self.forget(h.sk);
                        self.ignore(h.sk, ts, cx);
                    }
                    return;
                }
            }
        }
        if let Slot::Parsing(parser) = &mut conn.slot {
            // The datagram's length, not the captured bytes': the capture limit or a receiver's
            // smaller buffer (MSG_TRUNC) may have cut it.
            parser.feed_datagram(dir, bytes, h.len, peer, ts, &mut self.out);
        }
        self.drain(h.sk, cx);
    }

    /// A TLS connection whose plaintext came keyed by its `SSL *` (OpenSSL over memory BIOs)
    /// is socket `ev.sk`: move it there and learn its addresses.
    pub fn on_tls_assoc(&mut self, ev: &TlsAssocEvent, cx: &mut impl Context) {
        let Some(mut conn) = self.forget(ev.ssl) else {
            return;
        };
        tracing::debug!(
            ssl = ev.ssl,
            sk = ev.sk,
            pid = ev.tgid,
            "TLS connection found its socket"
        );
        // Whatever was seen of the socket itself was ciphertext.
        self.forget(ev.sk);
        self.ignored.remove(&ev.sk);
        if conn.local.is_none() {
            let addrs = match self.socks.get(&ev.sk) {
                Some(a) => Some((a.local, a.peer)),
                None => cx.resolve_socket(ev.tgid, ev.fd).map(|s| (s.local, s.peer)),
            };
            if let Some((local, peer)) = addrs {
                conn.local = Some(local);
                conn.peer = Some(peer);
                if !cx.wanted(Some((local, peer))) {
                    self.ignore(ev.sk, conn.last_ts, cx);
                    return;
                }
                let pending = std::mem::take(&mut conn.pending);
                self.out.records.splice(0..0, pending);
            }
        }
        self.held_total += conn.streams.iter().map(Stream::held_bytes).sum::<usize>();
        self.conns.insert(ev.sk, conn);
        self.drain(ev.sk, cx);
    }

    /// A TCP state change (`ts` in Unix ns).
    pub fn on_sock_state(&mut self, ev: &SockStateEvent, ts: u64, cx: &mut impl Context) {
        let (local, peer) = addrs(ev);
        if ev.new_state == tcp_state::ESTABLISHED {
            // A new socket at a recycled address: whatever was there is over.
            self.close(ev.sk, ts, cx);
            self.ignored.remove(&ev.sk);
            if self.socks.len() < self.max_conns {
                self.socks.insert(ev.sk, SockAddrs { local, peer });
            }
            return;
        }
        // Closing transitions carry the 4-tuple too: the first chance to learn the addresses
        // of a connection that predates the agent and closed before /proc could be read.
        if let Some(conn) = self.conns.get_mut(&ev.sk)
            && conn.local.is_none()
        {
            conn.local = Some(local);
            conn.peer = Some(peer);
            if cx.wanted(Some((local, peer))) {
                let pending = std::mem::take(&mut conn.pending);
                self.out.records.splice(0..0, pending);
                self.drain(ev.sk, cx);
            } else {
                self.forget(ev.sk);
                self.ignore(ev.sk, ts, cx);
                return;
            }
        }
        if ev.new_state == tcp_state::CLOSE {
            self.close(ev.sk, ts, cx);
            self.socks.remove(&ev.sk);
            self.ignored.remove(&ev.sk);
        }
    }

    /// Periodic work: release held events past their wait, expire idle connections.
    pub fn tick(&mut self, now_ts: u64, cx: &mut impl Context) {
        let mut gaps = 0;
        let mut idle = Vec::new();
        for (&sk, conn) in self.conns.iter_mut() {
            for dir in [Direction::Egress, Direction::Ingress] {
                let stream = &mut conn.streams[dir.index()];
                if stream.has_held() {
                    let out = &mut self.out;
                    let slot = &mut conn.slot;
                    let before = stream.held_bytes();
                    gaps += stream.expire(now_ts, &mut |piece| feed(slot, dir, piece, out));
                    self.held_total -= before - stream.held_bytes();
                }
            }
            if now_ts.saturating_sub(conn.last_ts) > IDLE_NS {
                idle.push(sk);
            }
        }
        Stats::add(&self.stats.stream_gaps, gaps);
        let held_keys: Vec<u64> = self.conns.keys().copied().collect();
        for sk in held_keys {
            self.drain(sk, cx);
        }
        for sk in idle {
            self.close(sk, now_ts, cx);
        }
        self.ignored
            .retain(|_, last| now_ts.saturating_sub(*last) < IDLE_NS);
        if self.socks.len() > self.max_conns / 2 {
            // Sockets that never carried data and never closed (filtered by pid, say).
            let conns = &self.conns;
            self.socks.retain(|sk, _| conns.contains_key(sk));
        }
    }

    /// Drop tracked connections to free memory (the memory limiter): every one when `all`,
    /// else the half holding the most buffered bytes. Nothing is flushed: their parser state
    /// goes, and their next bytes start a connection that resynchronises like one joined
    /// mid-stream. Returns how many were dropped.
    pub fn shed(&mut self, all: bool) -> u64 {
        let mut by_size: Vec<(usize, u64)> = self
            .conns
            .iter()
            .map(|(&sk, c)| {
                let held: usize = c.streams.iter().map(|s| s.held_bytes()).sum();
                (held, sk)
            })
            .collect();
        let n = if all {
            by_size.len()
        } else {
            by_size.len().div_ceil(2)
        };
        by_size.sort_unstable_by(|a, b| b.cmp(a));
        for &(held, sk) in by_size.iter().take(n) {
            self.conns.remove(&sk);
            self.held_total -= held;
        }
        if all {
            self.conns.shrink_to_fit();
            self.socks.shrink_to_fit();
        }
        n as u64
    }

    /// Flush and forget every connection (shutdown).
    pub fn close_all(&mut self, ts: u64, cx: &mut impl Context) {
        let keys: Vec<u64> = self.conns.keys().copied().collect();
        for sk in keys {
            self.close(sk, ts, cx);
        }
    }

    fn close(&mut self, sk: u64, ts: u64, cx: &mut impl Context) {
        let Some(conn) = self.conns.get_mut(&sk) else {
            return;
        };
        for dir in [Direction::Egress, Direction::Ingress] {
            let stream = &mut conn.streams[dir.index()];
            let held = stream.held_bytes();
            let (slot, out) = (&mut conn.slot, &mut self.out);
            stream.flush(&mut |piece| feed(slot, dir, piece, out));
            self.held_total -= held;
        }
        if let Slot::Parsing(p) = &mut conn.slot {
            p.close(ts, &mut self.out);
        }
        self.drain(sk, cx);
        self.forget(sk);
    }

    /// A TLS plaintext record for `sk`: whatever was seen of it before was ciphertext (the
    /// handshake, or a stream joined mid-way), judged unrecognised or being inferred. Start
    /// the connection afresh on the plaintext.
    fn on_tls_start(&mut self, sk: u64) {
        self.ignored.remove(&sk);
        if self.conns.get(&sk).is_some_and(|c| !c.tls) {
            self.forget(sk);
        }
    }

    /// Remove a connection, and its held bytes from the total.
    fn forget(&mut self, sk: u64) -> Option<Conn> {
        let conn = self.conns.remove(&sk)?;
        let held: usize = conn.streams.iter().map(Stream::held_bytes).sum();
        self.held_total = self.held_total.saturating_sub(held);
        Some(conn)
    }

    fn ignore(&mut self, sk: u64, ts: u64, _cx: &mut impl Context) {
        self.ignored.insert(sk, ts);
    }

    /// Hand the parser's finished records to the sinks.
    fn drain(&mut self, sk: u64, cx: &mut impl Context) {
        self.stats.add_losses(&self.out.take_losses());
        if self.out.records.is_empty() {
            return;
        }
        let Some(conn) = self.conns.get_mut(&sk) else {
            self.out.records.clear();
            return;
        };
        let process = match &conn.process {
            Some(p) => p.clone(),
            None => {
                let p = cx.process(conn.tgid, &conn.comm);
                conn.process = Some(p.clone());
                p
            }
        };
        if conn.local.is_none() && !cx.wanted(None) {
            let room = MAX_PENDING_RECORDS.saturating_sub(conn.pending.len());
            let n = self.out.records.len();
            conn.pending.extend(self.out.records.drain(..).take(room));
            Stats::add(&self.stats.conns_rejected, (n.saturating_sub(room)) as u64);
            return;
        }
        for record in self.out.records.drain(..) {
            Stats::add(&self.stats.records, 1);
            // A datagram's peer is the record's own (one UDP socket talks to many peers).
            let peer = match &record.detail {
                Detail::Dns(dns) => dns.peer.or(conn.peer),
                _ => conn.peer,
            };
            let (request, response) = match record.role {
                Role::Client => (Direction::Egress, Direction::Ingress),
                Role::Server => (Direction::Ingress, Direction::Egress),
            };
            let first = conn.marks.find(request, record.start_ns);
            let origin = CallOrigin {
                request_tid: first.map_or(0, |m| m.tid),
                response_tid: conn
                    .marks
                    .find(response, record.end_ns)
                    .map_or(0, |m| m.tid),
                request_position: first.map(|m| m.position),
            };
            cx.emit_traced(
                Observation {
                    record,
                    process: process.clone(),
                    local: conn.local,
                    peer,
                    tls: conn.tls,
                    trace: None,
                    peer_identity: None,
                },
                origin,
            );
        }
    }
}

/// Give one in-order piece to the connection's parser, choosing the parser first if needed.
fn feed(slot: &mut Slot, dir: Direction, piece: Piece<'_>, out: &mut Output) {
    if let Slot::Inferring(inferring) = slot {
        let Piece::Data { bytes, missing, ts } = piece else {
            inferring.forget(dir);
            return;
        };
        if bytes.is_empty() {
            if missing > 0 {
                inferring.forget(dir);
            }
            return;
        }
        let parser = match inferring.judge(dir, bytes, ts, missing == 0, out) {
            Verdict::Chosen(parser) => parser,
            Verdict::Undecided => return,
            Verdict::Unrecognised => {
                *slot = Slot::Unrecognised;
                return;
            }
        };
        *slot = Slot::Parsing(parser);
        // The piece's bytes went in with what was held; what it did not capture follows.
        if missing > 0
            && let Slot::Parsing(parser) = slot
        {
            parser.skip(dir, Some(missing), ts, out);
        }
        return;
    }
    let Slot::Parsing(parser) = slot else { return };
    match piece {
        Piece::Data { bytes, missing, ts } => {
            if !bytes.is_empty() {
                parser.feed(dir, bytes, ts, out);
            }
            if missing > 0 {
                parser.skip(dir, Some(missing), ts, out);
            }
        }
        Piece::Gap { len, ts } => parser.skip(dir, len, ts, out),
        Piece::End { ts } => parser.end(dir, ts, out),
    }
}

/// An address as the kernel side sends it (IPv4 in the first 4 bytes for `AF_INET`;
/// IPv4-mapped IPv6 addresses shown as IPv4).
fn socket_addr(family: u16, addr: [u8; 16], port: u16) -> SocketAddr {
    let ip = if family == 2 {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        let v6 = Ipv6Addr::from(addr);
        v6.to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6))
    };
    SocketAddr::new(ip, port)
}

/// The local and remote ends of a socket event.
pub fn addrs(ev: &SockStateEvent) -> (SocketAddr, SocketAddr) {
    let ip = |b: [u8; 16]| -> IpAddr {
        if ev.family == 2 {
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        } else {
            let v6 = Ipv6Addr::from(b);
            v6.to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6))
        }
    };
    (
        SocketAddr::new(ip(ev.saddr), ev.sport),
        SocketAddr::new(ip(ev.daddr), ev.dport),
    )
}

/// Role of the traced process, from the parser, for display.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Client => "client",
        Role::Server => "server",
    }
}
