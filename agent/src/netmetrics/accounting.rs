//! Per-socket counting on the reader thread: bytes from the data events it already decodes,
//! connects, establishments, closes and failures from `inet_sock_set_state`, retransmits from
//! `tcp_retransmit_skb`; folded per (process, remote endpoint) when a socket closes.
//!
//! **Owners.** State changes and retransmits often run in softirq context, where the current
//! task is not the socket's owner, so they are keyed by the kernel `struct sock` address and
//! the owner comes from what runs in the owner's context: the connect transition
//! (`CLOSE` → `SYN_SENT`, which carries the connecting process) and every data event (which
//! carries the process that moved the bytes; a socket handed to another process follows it).
//! A socket whose owner is never seen (accepted, then closed without a byte read or written)
//! is counted as unattributed.
//!
//! **Failed connects.** A connect fails when its socket goes `SYN_SENT` → `CLOSE`. Why comes
//! next: the kernel ends a refused connect (a reset came back), a timed-out one (it gave up
//! resending the SYN, `tcp_syn_retries`) and an unreachable one (an ICMP error) with
//! `tcp_done_with_error`, which moves the socket to `CLOSE` and then reports the error
//! (`sock:inet_sk_error_report`, matched here by the 4-tuple; it has no socket address). A
//! process that closes its socket while the SYN is unanswered (its own connect timeout, say:
//! the kernel's timeout has not run yet) moves it to `CLOSE` with no error report: such a
//! connect is counted `aborted` once [`SETTLE_NS`] has passed without a report.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rustc_hash::FxHashMap;
use wirelens_ebpf::{
    DataHeader, RetransmitEvent, SockErrorEvent, SockStateEvent, data_flags, direction, ip_proto,
    tcp_state,
};
use wirelens_otel::net_metrics::{ConnectFailure, Endpoint, EndpointCounts};

/// Most sockets followed at once; past it new ones are not counted (see `sockets_dropped`).
pub const MAX_SOCKETS: usize = 65536;
/// A socket not established and silent this long is forgotten (its close was lost).
const STALE_NS: u64 = 120 * 1_000_000_000;
/// First port of Linux's default ephemeral range: a socket of unknown role whose local port is
/// below it is taken for an accepted one.
const EPHEMERAL_START: u16 = 32768;
/// How long a failed connect waits for the kernel's error report before it counts as aborted
/// (the report follows the transition at once, from the same CPU: this only covers a drain
/// that ended between the two).
pub const SETTLE_NS: u64 = 100_000_000;
/// Most failed connects waiting for their error report; past it one counts as `_OTHER`.
const MAX_UNANSWERED: usize = 4096;

/// Which end opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Unknown,
    Client,
    Server,
}

#[derive(Clone, Debug)]
struct Sock {
    owner: u32,
    local: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    role: Role,
    established: bool,
    resolve_tried: bool,
    counts: EndpointCounts,
    last_ns: u64,
}

impl Sock {
    fn new(now: u64) -> Self {
        Self {
            owner: 0,
            local: None,
            peer: None,
            role: Role::Unknown,
            established: false,
            resolve_tried: false,
            counts: EndpointCounts::default(),
            last_ns: now,
        }
    }

    /// The endpoint this socket counts under, once its peer is known.
    fn endpoint(&self) -> Option<Endpoint> {
        let peer = self.peer?;
        let role = match self.role {
            Role::Unknown => match self.local {
                Some(l) if l.port() < EPHEMERAL_START && l.port() != 0 => Role::Server,
                _ => Role::Client,
            },
            known => known,
        };
        Some(match role {
            Role::Server => Endpoint {
                peer: peer.ip(),
                peer_port: None,
                local_port: self.local.map(|l| l.port()),
            },
            _ => Endpoint {
                peer: peer.ip(),
                peer_port: Some(peer.port()),
                local_port: None,
            },
        })
    }
}

/// A socket open now, for sampling its `tcp_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveSocket {
    /// Kernel `struct sock` address (identity while it lives).
    pub sk: u64,
    /// Owner process.
    pub tgid: u32,
    /// Series key (`None`: the process's overflow series).
    pub endpoint: Option<Endpoint>,
    /// Local address.
    pub local: SocketAddr,
    /// Remote address.
    pub peer: SocketAddr,
}

/// What the accounting hands to the collector each interval.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Cumulative counts per (process, endpoint), open sockets included (`active` set).
    pub totals: Vec<(u32, Option<Endpoint>, EndpointCounts)>,
    /// Sockets established now whose owner and addresses are known.
    pub live: Vec<LiveSocket>,
    /// Sockets whose owner was never learnt, counted and forgotten so far.
    pub unattributed: u64,
    /// Sockets not followed because [`MAX_SOCKETS`] were.
    pub sockets_dropped: u64,
}

/// A connect that went `SYN_SENT` → `CLOSE`, waiting for the kernel's error report.
#[derive(Debug)]
struct Unanswered {
    sock: Sock,
    /// When it closed (the events' clock).
    since: u64,
}

/// The reason for a failed connect, from the socket error the kernel reported.
fn connect_failure(errno: i32) -> ConnectFailure {
    match errno {
        libc::ECONNREFUSED => ConnectFailure::Refused,
        libc::ETIMEDOUT => ConnectFailure::Timeout,
        libc::EHOSTUNREACH | libc::ENETUNREACH => ConnectFailure::Unreachable,
        _ => ConnectFailure::Other,
    }
}

/// The reader thread's side of network metrics.
pub struct Accounting {
    socks: FxHashMap<u64, Sock>,
    /// Failed connects waiting for their reason, oldest first.
    unanswered: Vec<Unanswered>,
    /// Counts of closed sockets per (process, endpoint).
    closed: FxHashMap<(u32, Option<Endpoint>), EndpointCounts>,
    /// Endpoints per process (for the cap).
    endpoints: FxHashMap<u32, usize>,
    max_endpoints: usize,
    /// The agent's own process: its export connections are not counted.
    own_tgid: u32,
    unattributed: u64,
    sockets_dropped: u64,
}

/// The socket addresses of a state change, IPv4-mapped addresses as IPv4.
pub fn state_addrs(ev: &SockStateEvent) -> (SocketAddr, SocketAddr) {
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

/// The socket addresses of an error report, IPv4-mapped addresses as IPv4.
fn error_addrs(ev: &SockErrorEvent) -> (SocketAddr, SocketAddr) {
    state_addrs(&SockStateEvent {
        kind: ev.kind,
        old_state: 0,
        new_state: 0,
        family: ev.family,
        sport: ev.sport,
        dport: ev.dport,
        _pad: 0,
        tgid: 0,
        sk: 0,
        ts_ns: 0,
        saddr: ev.saddr,
        daddr: ev.daddr,
    })
}

impl Accounting {
    /// Counting with at most `max_endpoints` endpoints per process.
    pub fn new(max_endpoints: usize) -> Self {
        Self {
            socks: FxHashMap::default(),
            unanswered: Vec::new(),
            closed: FxHashMap::default(),
            endpoints: FxHashMap::default(),
            max_endpoints,
            own_tgid: std::process::id(),
            unattributed: 0,
            sockets_dropped: 0,
        }
    }

    fn sock(&mut self, sk: u64, now: u64) -> Option<&mut Sock> {
        if !self.socks.contains_key(&sk) && self.socks.len() >= MAX_SOCKETS {
            self.sockets_dropped += 1;
            return None;
        }
        let sock = self.socks.entry(sk).or_insert_with(|| Sock::new(now));
        sock.last_ns = now;
        Some(sock)
    }

    /// A TCP state change (`now`: any monotonic ns).
    pub fn on_sock_state(&mut self, ev: &SockStateEvent, now: u64) {
        let (local, peer) = state_addrs(ev);
        if ev.new_state == tcp_state::SYN_SENT {
            // A fresh connect on this socket: whatever it held before is over.
            self.finish(ev.sk);
            let Some(sock) = self.sock(ev.sk, now) else {
                return;
            };
            sock.owner = ev.tgid;
            sock.role = Role::Client;
            sock.peer = Some(peer);
            return;
        }
        if ev.new_state == tcp_state::ESTABLISHED {
            let Some(sock) = self.sock(ev.sk, now) else {
                return;
            };
            if sock.established {
                return;
            }
            sock.role = if ev.old_state == tcp_state::SYN_SENT {
                Role::Client
            } else {
                Role::Server
            };
            sock.local = Some(local);
            sock.peer = Some(peer);
            sock.established = true;
            sock.counts.opened += 1;
            return;
        }
        let Some(sock) = self.socks.get_mut(&ev.sk) else {
            return;
        };
        sock.last_ns = now;
        if sock.local.is_none_or(|l| l.port() == 0) {
            sock.local = Some(local);
        }
        if sock.peer.is_none() {
            sock.peer = Some(peer);
        }
        if sock.established {
            sock.established = false;
            sock.counts.closed += 1;
        }
        if ev.new_state == tcp_state::CLOSE {
            if ev.old_state == tcp_state::SYN_SENT
                && let Some(sock) = self.socks.remove(&ev.sk)
            {
                self.await_reason(sock, now);
                return;
            }
            self.finish(ev.sk);
        }
    }

    /// Keep a failed connect until its error report says why (see the module doc).
    fn await_reason(&mut self, mut sock: Sock, now: u64) {
        if self.unanswered.len() >= MAX_UNANSWERED {
            sock.counts.failed.count(ConnectFailure::Other);
            self.fold(sock);
            return;
        }
        self.unanswered.push(Unanswered { sock, since: now });
    }

    /// An error the kernel reported on a TCP socket: the reason of the failed connect with the
    /// same 4-tuple, if one waits; other errors (a reset on an established connection) are
    /// not connect failures.
    pub fn on_sock_error(&mut self, ev: &SockErrorEvent) {
        let (local, peer) = error_addrs(ev);
        let Some(i) = self.unanswered.iter().position(|u| {
            u.sock.peer == Some(peer)
                && u.sock.local.is_some_and(|l| {
                    l.ip() == local.ip() && (local.port() == 0 || l.port() == local.port())
                })
        }) else {
            return;
        };
        let mut sock = self.unanswered.remove(i).sock;
        sock.counts.failed.count(connect_failure(ev.error));
        self.fold(sock);
    }

    /// Count as aborted the failed connects that waited [`SETTLE_NS`] for a report (all of
    /// them when `all`: the agent stops); `now` as given to the events.
    pub fn settle(&mut self, now: u64, all: bool) {
        let waited = |u: &Unanswered| all || now.saturating_sub(u.since) >= SETTLE_NS;
        let (done, waiting): (Vec<Unanswered>, Vec<Unanswered>) =
            std::mem::take(&mut self.unanswered)
                .into_iter()
                .partition(|u| waited(u));
        self.unanswered = waiting;
        for mut u in done {
            u.sock.counts.failed.count(ConnectFailure::Aborted);
            self.fold(u.sock);
        }
    }

    /// A data event: bytes, and the socket's owner.
    pub fn on_data(&mut self, h: &DataHeader, now: u64) {
        if h.protocol == ip_proto::UDP || h.flags & data_flags::TLS != 0 || h.tgid == self.own_tgid
        {
            return;
        }
        let Some(sock) = self.sock(h.sk, now) else {
            return;
        };
        sock.owner = h.tgid;
        if h.direction == direction::EGRESS {
            sock.counts.bytes_sent += h.len;
        } else {
            sock.counts.bytes_received += h.len;
        }
        if sock.peer.is_none() && !sock.resolve_tried {
            // A socket older than the agent: its addresses from /proc, once.
            sock.resolve_tried = true;
            if let Some(info) = crate::metadata::sockets::resolve(h.tgid, h.fd) {
                sock.local = Some(info.local);
                sock.peer = Some(info.peer);
                sock.established = true;
                sock.role = match info.role {
                    wirelens_parsers::Role::Server => Role::Server,
                    wirelens_parsers::Role::Client => Role::Client,
                };
            }
        }
    }

    /// A retransmitted segment.
    pub fn on_retransmit(&mut self, ev: &RetransmitEvent, now: u64) {
        if let Some(sock) = self.sock(ev.sk, now) {
            sock.counts.retransmits += 1;
        }
    }

    /// The series key of `owner`'s endpoint `endpoint`, capped per process.
    fn key(&mut self, owner: u32, endpoint: Endpoint) -> (u32, Option<Endpoint>) {
        let key = (owner, Some(endpoint));
        if self.closed.contains_key(&key) {
            return key;
        }
        let n = self.endpoints.entry(owner).or_insert(0);
        if *n >= self.max_endpoints {
            return (owner, None);
        }
        *n += 1;
        self.closed.insert(key, EndpointCounts::default());
        key
    }

    /// Fold socket `sk`'s counts into its endpoint and forget it.
    fn finish(&mut self, sk: u64) {
        if let Some(sock) = self.socks.remove(&sk) {
            self.fold(sock);
        }
    }

    /// Fold a forgotten socket's counts into its endpoint.
    fn fold(&mut self, sock: Sock) {
        let endpoint = sock.endpoint();
        match endpoint {
            Some(endpoint) if sock.owner != 0 && sock.owner != self.own_tgid => {
                let key = self.key(sock.owner, endpoint);
                self.closed.entry(key).or_default().add(&sock.counts);
            }
            _ if sock.owner == self.own_tgid => {}
            _ => self.unattributed += 1,
        }
    }

    /// Forget sockets whose close was lost, and processes that are gone (`alive` says which
    /// exist); `now` as given to the events.
    pub fn expire(&mut self, now: u64, alive: impl Fn(u32) -> bool) {
        let stale: Vec<u64> = self
            .socks
            .iter()
            .filter(|(_, s)| !s.established && now.saturating_sub(s.last_ns) > STALE_NS)
            .map(|(&sk, _)| sk)
            .collect();
        for sk in stale {
            self.finish(sk);
        }
        let live_owners: rustc_hash::FxHashSet<u32> =
            self.socks.values().map(|s| s.owner).collect();
        let gone: Vec<u32> = self
            .endpoints
            .keys()
            .copied()
            .filter(|t| !live_owners.contains(t) && !alive(*t))
            .collect();
        for tgid in gone {
            self.endpoints.remove(&tgid);
            self.closed.retain(|(t, _), _| *t != tgid);
        }
    }

    /// Cumulative counts now, and the sockets to sample.
    pub fn snapshot(&mut self) -> Snapshot {
        let mut totals = self.closed.clone();
        let mut live = Vec::new();
        let open: Vec<(u64, Sock, Endpoint)> = self
            .socks
            .iter()
            .filter(|(_, s)| s.owner != 0 && s.owner != self.own_tgid)
            .filter_map(|(&sk, s)| Some((sk, s.clone(), s.endpoint()?)))
            .collect();
        for (sk, sock, endpoint) in open {
            let (owner, counts, established) = (sock.owner, sock.counts, sock.established);
            let addrs = sock.local.zip(sock.peer);
            let key = self.key(owner, endpoint);
            let total = totals.entry(key).or_default();
            total.add(&counts);
            if established {
                total.active += 1;
                if let Some((local, peer)) = addrs {
                    live.push(LiveSocket {
                        sk,
                        tgid: owner,
                        endpoint: key.1,
                        local,
                        peer,
                    });
                }
            }
        }
        Snapshot {
            totals: totals.into_iter().map(|((t, e), c)| (t, e, c)).collect(),
            live,
            unattributed: self.unattributed,
            sockets_dropped: self.sockets_dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wirelens_ebpf::EventKind;

    fn state(sk: u64, old: i32, new: i32, tgid: u32, sport: u16) -> SockStateEvent {
        SockStateEvent {
            kind: EventKind::SockState as u32,
            old_state: old,
            new_state: new,
            family: 2,
            sport,
            dport: 5432,
            _pad: 0,
            tgid,
            sk,
            ts_ns: 0,
            saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            daddr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    fn data(sk: u64, tgid: u32, dir: u32, len: u64) -> DataHeader {
        DataHeader {
            kind: EventKind::Data as u32,
            direction: dir,
            tgid,
            tid: tgid,
            fd: 3,
            syscall: 1,
            flags: 0,
            cap_len: 0,
            sk,
            ts_ns: 0,
            position: 0,
            len,
            family: 2,
            protocol: ip_proto::TCP,
            msg_index: 0,
            comm: [0; 16],
            local_addr: [0; 16],
            peer_addr: [0; 16],
            local_port: 0,
            peer_port: 0,
            _pad: 0,
        }
    }

    fn total(s: &Snapshot, tgid: u32) -> EndpointCounts {
        let mut c = EndpointCounts::default();
        for (t, _, counts) in &s.totals {
            if *t == tgid {
                c.add(counts);
            }
        }
        c
    }

    #[test]
    fn client_connection_life() {
        let mut a = Accounting::new(8);
        let (close, syn_sent, est, fin1) = (
            tcp_state::CLOSE,
            tcp_state::SYN_SENT,
            tcp_state::ESTABLISHED,
            tcp_state::FIN_WAIT1,
        );
        a.on_sock_state(&state(1, close, syn_sent, 42, 0), 1);
        // Established in softirq context: no tgid.
        a.on_sock_state(&state(1, syn_sent, est, 0, 40000), 2);
        a.on_data(&data(1, 42, direction::EGRESS, 100), 3);
        a.on_data(&data(1, 42, direction::INGRESS, 900), 4);
        a.on_retransmit(
            &RetransmitEvent {
                kind: EventKind::Retransmit as u32,
                state: est,
                sk: 1,
            },
            5,
        );
        let s = a.snapshot();
        assert_eq!(s.live.len(), 1);
        let c = total(&s, 42);
        assert_eq!(
            (c.opened, c.active, c.bytes_sent, c.retransmits),
            (1, 1, 100, 1)
        );
        a.on_sock_state(&state(1, est, fin1, 0, 40000), 6);
        a.on_sock_state(&state(1, tcp_state::FIN_WAIT1, close, 0, 40000), 7);
        let s = a.snapshot();
        assert!(s.live.is_empty());
        let c = total(&s, 42);
        assert_eq!(
            (c.opened, c.closed, c.active, c.bytes_received),
            (1, 1, 0, 900)
        );
        assert_eq!(s.totals.len(), 1);
        assert_eq!(s.totals[0].1.and_then(|e| e.peer_port), Some(5432));
    }

    fn error(ev: &SockStateEvent, errno: i32) -> SockErrorEvent {
        SockErrorEvent {
            kind: EventKind::SockError as u32,
            error: errno,
            family: ev.family,
            sport: ev.sport,
            dport: ev.dport,
            _pad: 0,
            saddr: ev.saddr,
            daddr: ev.daddr,
        }
    }

    /// A connect of `tgid` on socket `sk` from local port `sport` that failed at time 2.
    fn failed_connect(a: &mut Accounting, sk: u64, tgid: u32, sport: u16) -> SockStateEvent {
        a.on_sock_state(
            &state(sk, tcp_state::CLOSE, tcp_state::SYN_SENT, tgid, 0),
            1,
        );
        let close = state(sk, tcp_state::SYN_SENT, tcp_state::CLOSE, 0, sport);
        a.on_sock_state(&close, 2);
        close
    }

    #[test]
    fn refused_connect_is_a_failure_of_the_connecting_process() {
        let mut a = Accounting::new(8);
        let close = failed_connect(&mut a, 9, 7, 40001);
        // No reason yet: not counted until the report comes (or the wait is over).
        assert_eq!(total(&a.snapshot(), 7).failed.total(), 0);
        a.on_sock_error(&error(&close, libc::ECONNREFUSED));
        let c = total(&a.snapshot(), 7);
        assert_eq!(c.failed.get(ConnectFailure::Refused), 1);
        assert_eq!((c.failed.total(), c.opened, c.closed), (1, 0, 0));
    }

    #[test]
    fn each_reported_error_is_its_reason_and_silence_is_an_abort() {
        let mut a = Accounting::new(8);
        for (sk, errno) in [
            (1, libc::ETIMEDOUT),
            (2, libc::EHOSTUNREACH),
            (3, libc::ENETUNREACH),
            (4, libc::EPROTO),
        ] {
            let close = failed_connect(&mut a, sk, 7, 40000 + sk as u16);
            a.on_sock_error(&error(&close, errno));
        }
        // Closed by the process: no report. Another socket's report does not match it.
        let aborted = failed_connect(&mut a, 5, 7, 40005);
        let mut elsewhere = error(&aborted, libc::ECONNREFUSED);
        elsewhere.sport = 40099;
        a.on_sock_error(&elsewhere);
        a.settle(2 + SETTLE_NS - 1, false);
        assert_eq!(total(&a.snapshot(), 7).failed.total(), 4);
        a.settle(2 + SETTLE_NS, false);
        let f = total(&a.snapshot(), 7).failed;
        assert_eq!(
            ConnectFailure::ALL.map(|r| f.get(r)),
            [0, 1, 2, 1, 1],
            "refused, timeout, unreachable, aborted, other"
        );
        // A late report finds nothing to explain.
        a.on_sock_error(&error(&aborted, libc::ECONNREFUSED));
        assert_eq!(total(&a.snapshot(), 7).failed.total(), 5);
    }

    #[test]
    fn a_report_with_no_local_port_still_matches() {
        let mut a = Accounting::new(8);
        let close = failed_connect(&mut a, 9, 7, 40001);
        let mut report = error(&close, libc::ETIMEDOUT);
        report.sport = 0;
        a.on_sock_error(&report);
        let f = total(&a.snapshot(), 7).failed;
        assert_eq!(f.get(ConnectFailure::Timeout), 1);
    }

    #[test]
    fn endpoints_past_the_cap_overflow() {
        let mut a = Accounting::new(2);
        for i in 0..5u64 {
            let mut ev = state(i, tcp_state::CLOSE, tcp_state::SYN_SENT, 7, 0);
            ev.daddr[3] = i as u8 + 1;
            a.on_sock_state(&ev, 1);
            ev.old_state = tcp_state::SYN_SENT;
            ev.new_state = tcp_state::CLOSE;
            a.on_sock_state(&ev, 2);
        }
        a.settle(0, true);
        let s = a.snapshot();
        assert_eq!(s.totals.len(), 3);
        let overflow: u64 = s
            .totals
            .iter()
            .filter(|(_, e, _)| e.is_none())
            .map(|(_, _, c)| c.failed.get(ConnectFailure::Aborted))
            .sum();
        assert_eq!(overflow, 3);
    }

    #[test]
    fn accepted_socket_without_data_is_unattributed_and_gone_processes_leave() {
        let mut a = Accounting::new(8);
        a.on_sock_state(
            &state(3, tcp_state::SYN_RECV, tcp_state::ESTABLISHED, 0, 80),
            1,
        );
        a.on_sock_state(
            &state(3, tcp_state::ESTABLISHED, tcp_state::CLOSE, 0, 80),
            2,
        );
        assert_eq!(a.snapshot().unattributed, 1);
        a.on_sock_state(
            &state(4, tcp_state::SYN_RECV, tcp_state::ESTABLISHED, 0, 80),
            3,
        );
        a.on_data(&data(4, 11, direction::INGRESS, 5), 4);
        a.on_sock_state(
            &state(4, tcp_state::ESTABLISHED, tcp_state::CLOSE, 0, 80),
            5,
        );
        let s = a.snapshot();
        assert_eq!(s.totals[0].1.and_then(|e| e.local_port), Some(80));
        a.expire(10, |_| false);
        assert!(a.snapshot().totals.is_empty());
    }
}
