//! Conntrack on arbitrary event sequences: data events out of order, duplicated, overlapping,
//! at positions that jump back to 0 or far ahead, claiming huge lengths; TCP state changes;
//! TLS associations; the clock moving on. The tracker must not panic, must keep at most its
//! connection limit, and the bytes it holds for reordering must match its own account and
//! stay under the per-stream and total bounds.
#![no_main]

use std::{net::SocketAddr, sync::Arc};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wirelens::{
    conntrack::{
        ConnTracker, Context, MAX_TOTAL_HELD,
        stream::{HOLD_NS, MAX_HELD_BYTES},
    },
    metadata::sockets::SocketInfo,
    stats::Stats,
};
use wirelens_ebpf::{
    DataHeader, EventKind, SockStateEvent, TlsAssocEvent, data_flags, direction, ip_proto,
};
use wirelens_otel::{Observation, ProcessInfo};
use wirelens_parsers::Role;

/// Few connections, so that events collide on them.
const MAX_CONNS: usize = 4;
/// Starts of streams, so that the parsers get past inference now and then.
const PREFIXES: [&[u8]; 6] = [
    b"",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"Q\x00\x00\x00\x0dselect 1\x00",
];

#[derive(Arbitrary, Debug)]
enum Position {
    /// Where the previous event of this direction ended: the usual case.
    Next,
    /// Ahead of it (a missing range).
    Ahead(u16),
    /// Behind it (a duplicate or an overlap).
    Behind(u16),
    /// Back to 0 (the kernel forgot the connection).
    Zero,
    /// Anything, up to `u64::MAX`.
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Length {
    /// What was captured.
    Captured,
    /// More than captured (a truncated call).
    More(u32),
    /// Anything, up to `u64::MAX`.
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Data {
        conn: u8,
        egress: bool,
        position: Position,
        len: Length,
        prefix: u8,
        bytes: Vec<u8>,
        tls: bool,
        eof: bool,
        udp: bool,
        tgid: u8,
    },
    State {
        conn: u8,
        old: i8,
        new: i8,
        sport: u16,
        dport: u16,
    },
    TlsAssoc {
        ssl: u8,
        conn: u8,
    },
    Tick {
        advance_ns: u32,
    },
    CloseAll,
}

struct Collect {
    addrs: bool,
    wanted: bool,
}

impl Context for Collect {
    fn process(&mut self, _tgid: u32, _comm: &[u8; 16]) -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo::default())
    }
    fn resolve_socket(&mut self, _tgid: u32, _fd: u32) -> Option<SocketInfo> {
        self.addrs.then(|| SocketInfo {
            local: SocketAddr::from(([127, 0, 0, 1], 40000)),
            peer: SocketAddr::from(([127, 0, 0, 1], 80)),
            role: Role::Client,
        })
    }
    fn wanted(&self, addrs: Option<(SocketAddr, SocketAddr)>) -> bool {
        self.wanted && addrs.is_some()
    }
    fn emit(&mut self, _observation: Observation) {}
}

#[derive(Arbitrary, Debug)]
struct Script {
    addrs: bool,
    wanted: bool,
    ops: Vec<Op>,
}

/// Socket (or `SSL *`) addresses: a few, so that events land on the same connections.
fn sk(n: u8) -> u64 {
    0xffff_8880_0000_0000 + u64::from(n % 6) * 0x100
}

fuzz_target!(|script: Script| {
    let stats = Arc::new(Stats::default());
    let mut tracker = ConnTracker::new(MAX_CONNS, stats);
    let mut cx = Collect {
        addrs: script.addrs,
        wanted: script.wanted,
    };
    let mut ts: u64 = 1_000_000_000;
    // Where each (socket, direction) stream ended, as the script placed it.
    let mut ends = [[0u64; 2]; 6];
    for op in script.ops {
        match op {
            Op::Data {
                conn,
                egress,
                position,
                len,
                prefix,
                bytes,
                tls,
                eof,
                udp,
                tgid,
            } => {
                let mut data = PREFIXES[usize::from(prefix) % PREFIXES.len()].to_vec();
                data.extend_from_slice(&bytes);
                let dir = usize::from(egress);
                let end = &mut ends[usize::from(conn % 6)][dir];
                let position = match position {
                    Position::Next => *end,
                    Position::Ahead(n) => end.saturating_add(u64::from(n)),
                    Position::Behind(n) => end.saturating_sub(u64::from(n)),
                    Position::Zero => 0,
                    Position::Raw(p) => p,
                };
                let len = match len {
                    Length::Captured => data.len() as u64,
                    Length::More(n) => data.len() as u64 + u64::from(n),
                    Length::Raw(n) => n,
                };
                *end = position.saturating_add(len);
                let mut flags = 0;
                if tls {
                    flags |= data_flags::TLS;
                }
                if eof {
                    flags |= data_flags::EOF;
                }
                ts += 1_000;
                let header = DataHeader {
                    kind: EventKind::Data as u32,
                    direction: if egress {
                        direction::EGRESS
                    } else {
                        direction::INGRESS
                    },
                    tgid: u32::from(tgid % 3) + 100,
                    tid: 100,
                    fd: 7,
                    syscall: 0,
                    flags,
                    cap_len: data.len() as u32,
                    sk: sk(conn),
                    ts_ns: ts,
                    position,
                    len,
                    family: 2,
                    protocol: if udp { ip_proto::UDP } else { ip_proto::TCP },
                    msg_index: 0,
                    comm: [0; 16],
                    local_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    peer_addr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    local_port: 40000,
                    peer_port: if udp { 53 } else { 80 },
                    _pad: 0,
                };
                tracker.on_data(&header, &data, ts, &mut cx);
            }
            Op::State {
                conn,
                old,
                new,
                sport,
                dport,
            } => {
                ts += 1_000;
                let event = SockStateEvent {
                    kind: EventKind::SockState as u32,
                    old_state: i32::from(old % 12),
                    new_state: i32::from(new % 12),
                    family: 2,
                    sport,
                    dport,
                    _pad: 0,
                    tgid: 0,
                    sk: sk(conn),
                    ts_ns: ts,
                    saddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    daddr: [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                };
                tracker.on_sock_state(&event, ts, &mut cx);
            }
            Op::TlsAssoc { ssl, conn } => {
                let event = TlsAssocEvent {
                    kind: EventKind::TlsAssoc as u32,
                    tgid: 100,
                    fd: 7,
                    _pad: 0,
                    ssl: sk(ssl),
                    sk: sk(conn),
                };
                tracker.on_tls_assoc(&event, &mut cx);
            }
            Op::Tick { advance_ns } => {
                // Now and then past the reordering wait, rarely past the idle timeout.
                ts += u64::from(advance_ns) * (HOLD_NS / 1_000_000);
                tracker.tick(ts, &mut cx);
            }
            Op::CloseAll => tracker.close_all(ts, &mut cx),
        }
        check(&tracker);
    }
    tracker.close_all(ts, &mut cx);
    check(&tracker);
    assert!(tracker.is_empty(), "close_all leaves no connection");
});

/// The tracker's bounds, after every event.
fn check(tracker: &ConnTracker) {
    assert!(tracker.len() <= MAX_CONNS, "{} connections", tracker.len());
    let recounted = tracker.held_bytes_recounted();
    assert_eq!(
        tracker.held_bytes(),
        recounted,
        "held bytes: the account disagrees with the streams"
    );
    // One event may sit on top of a full stream until the next one makes it give up.
    let one_event = 1 << 16;
    assert!(
        tracker.held_bytes_max_stream() <= MAX_HELD_BYTES + one_event,
        "a stream holds {} bytes",
        tracker.held_bytes_max_stream()
    );
    assert!(recounted <= MAX_TOTAL_HELD + one_event, "{recounted} bytes held");
}
