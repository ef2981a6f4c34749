//! `wirelens replay <file>`: a pcap/pcapng capture through the same conntrack, parsers and
//! sinks as the live agent, with no root, no eBPF and no lock file.
//!
//! Packets are decoded ([`packet`]), TCP is put back in order by sequence number per flow and
//! direction ([`tcp`]), and each in-order piece becomes a synthesized
//! [`wirelens_ebpf::DataHeader`] whose `position` is its offset in the stream, exactly what
//! the kernel side reports live; each new flow gets an ESTABLISHED [`SockStateEvent`] (so
//! records carry addresses) and a CLOSE on RST, on FIN in both directions, and at the end.
//!
//! **Which side is traced.** A capture sees both ends; the live agent sees one process. By
//! default the traced socket is the *client* (the initiator: the SYN sender, or the SYN-ACK
//! receiver; with no handshake in the capture, the side with the higher port, the server
//! being the side with the lower, usually well-known, port), so each exchange gives one
//! client-role record. `--side server` traces the server end instead, `--side both` both
//! (two sockets per flow, with different ids).
//!
//! Processes: every flow belongs to one synthetic process (pid 0, executable `replay`,
//! service name = the capture's file stem). Time: records carry the capture's timestamps, and
//! conntrack's timers (held events, idle connections) run on capture time.

mod packet;
pub mod pcap;
mod source;
mod tcp;

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    io::{BufWriter, Write},
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use anyhow::Context as _;
use rustc_hash::FxHashMap;
use wirelens_ebpf::{DataHeader, EventKind, SockStateEvent, data_flags, direction, tcp_state};
use wirelens_otel::{
    Observation, ProcessInfo,
    export::{self as otlp, ExportConfig, ObservationSender, Overrides},
};

use crate::{
    cli::{OutputFormat, ReplayArgs, Settings, Side},
    conntrack::{ConnTracker, Context},
    metadata::sockets::SocketInfo,
    sinks::live,
    stats::{ExportCounts, Stats},
};
use packet::{Decoded, Segment, Transport};
use tcp::Reassembler;

/// How long shutdown waits for the exporter to flush.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// Capture time between housekeeping passes (held events, idle flows).
const TICK_NS: u64 = 100_000_000;
/// Packets between housekeeping passes at least (keeps dense captures fast).
const TICK_PACKETS: u64 = 1024;
/// A flow with no packet for this long (capture time) is closed.
const IDLE_NS: u64 = 300 * 1_000_000_000;
/// Index of the client→server direction in [`Flow::dirs`].
const C2S: usize = 0;
/// Index of the server→client direction.
const S2C: usize = 1;

/// Run `wirelens replay`.
pub fn run(args: &ReplayArgs, settings: &Settings) -> anyhow::Result<()> {
    let path = &args.path;
    let data = source::open(path)?;
    let data: &[u8] = &data;
    pcap::detect(data).with_context(|| format!("{}", path.display()))?;
    let export = ExportConfig::from_env(&Overrides {
        endpoint: settings.otlp_endpoint.clone(),
        protocol: settings.otlp_protocol.clone(),
    })
    .context("invalid OTLP export settings")?;

    let stats = Arc::new(Stats::default());
    let (runtime, otlp_sender, export_handle) = match &export {
        Some(config) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("wirelens-export")
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let (tx, handle) = otlp::spawn(config.clone(), replay_resource(), runtime.handle());
            (Some(runtime), Some(tx), Some(handle))
        }
        None => (None, None, None),
    };

    let service = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "replay".into());
    let stdout = std::io::stdout();
    let mut cx = ReplayCx {
        process: Arc::new(ProcessInfo {
            pid: 0,
            executable_name: "replay".into(),
            executable_path: None,
            command_line: format!("replay {}", path.display()),
            service_name: service,
            host_name: String::new(),
            container: None,
            pod: None,
        }),
        ports: settings.ports.clone(),
        format: settings.output,
        out: BufWriter::with_capacity(1 << 16, stdout.lock()),
        out_failed: false,
        otlp: otlp_sender,
        stats: stats.clone(),
    };
    let end = replay_bytes(data, args.side, settings.max_connections, &stats, &mut cx)
        .with_context(|| format!("{}", path.display()))?;
    if !cx.out_failed {
        cx.out.flush().context("cannot write to standard output")?;
    }
    drop(cx);

    let mut snapshot = stats.snapshot(Default::default(), ExportCounts::default());
    if let (Some(handle), Some(runtime)) = (export_handle, &runtime) {
        let s = runtime.block_on(handle.shutdown(FLUSH_TIMEOUT));
        snapshot.export = ExportCounts {
            spans_exported: s.spans_exported,
            spans_dropped: s.spans_dropped,
            failures: s.export_failures,
        };
    }
    if let Some(reason) = &end.stopped {
        tracing::warn!(
            "{}: stopped after {} packets: {reason}",
            path.display(),
            end.frames
        );
    }
    eprintln!("{}", snapshot.summary());
    Ok(())
}

/// Every frame of the capture `data` through flows, reassembly and conntrack into `cx`, then
/// every flow closed: what `run` does once the file is read (also the `replay` fuzz target).
pub fn replay_bytes(
    data: &[u8],
    side: Side,
    max_connections: usize,
    stats: &Arc<Stats>,
    cx: &mut impl Context,
) -> Result<pcap::ReadEnd, pcap::OpenError> {
    let mut replayer = Replayer::new(side, max_connections, stats.clone());
    let end = pcap::read(data, |frame| replayer.on_frame(&frame, cx))?;
    replayer.finish(cx);
    Ok(end)
}

/// The Resource for the exporter's own metrics during a replay.
fn replay_resource() -> ProcessInfo {
    ProcessInfo {
        pid: std::process::id(),
        executable_name: "wirelens".into(),
        service_name: std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "wirelens".into()),
        ..Default::default()
    }
}

/// The conntrack context of a replay: one synthetic process, no /proc, synchronous output.
struct ReplayCx<'a> {
    process: Arc<ProcessInfo>,
    ports: Vec<u16>,
    format: OutputFormat,
    out: BufWriter<std::io::StdoutLock<'a>>,
    out_failed: bool,
    otlp: Option<ObservationSender>,
    stats: Arc<Stats>,
}

impl Context for ReplayCx<'_> {
    fn process(&mut self, _tgid: u32, _comm: &[u8; 16]) -> Arc<ProcessInfo> {
        self.process.clone()
    }

    fn resolve_socket(&mut self, _tgid: u32, _fd: u32) -> Option<SocketInfo> {
        None
    }

    fn wanted(&self, addrs: Option<(SocketAddr, SocketAddr)>) -> bool {
        match addrs {
            None => self.ports.is_empty(),
            Some((local, peer)) => {
                self.ports.is_empty()
                    || self.ports.contains(&local.port())
                    || self.ports.contains(&peer.port())
            }
        }
    }

    fn emit(&mut self, observation: Observation) {
        // Printed synchronously: a replay waits for stdout rather than drop lines.
        if !self.out_failed {
            let line = match self.format {
                OutputFormat::None => None,
                OutputFormat::Json => Some(live::json_line(&observation)),
                OutputFormat::Text => Some(live::text_line(&observation)),
            };
            if let Some(line) = line
                && writeln!(self.out, "{line}").is_err()
            {
                self.out_failed = true;
            }
        }
        if let Some(otlp) = &self.otlp
            && !otlp.try_send(observation)
        {
            Stats::add(&self.stats.export_queue_dropped, 1);
        }
    }
}

/// Canonical 4-tuple (+ protocol) of a flow: the smaller endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    a: SocketAddr,
    b: SocketAddr,
    tcp: bool,
}

impl FlowKey {
    fn new(x: SocketAddr, y: SocketAddr, tcp: bool) -> Self {
        if x <= y {
            Self { a: x, b: y, tcp }
        } else {
            Self { a: y, b: x, tcp }
        }
    }
}

struct Flow {
    client: SocketAddr,
    server: SocketAddr,
    tcp: bool,
    /// Socket id of the traced client end (the server end is `sk ^ 1`).
    sk: u64,
    dirs: [Reassembler; 2],
    /// Next position per direction (UDP).
    udp_pos: [u64; 2],
    last_ts: u64,
}

impl Flow {
    fn dir_of(&self, src: SocketAddr) -> usize {
        if src == self.client { C2S } else { S2C }
    }
}

/// Flows, their reassembly and the conntrack they feed.
struct Replayer {
    side: Side,
    /// Looked up for every packet: hashed with Fx, as conntrack's maps are (SipHash was ~6% of
    /// a replay).
    flows: FxHashMap<FlowKey, Flow>,
    /// Most flows reassembled at once (`--max-connections`).
    max_flows: usize,
    tracker: ConnTracker,
    stats: Arc<Stats>,
    /// Generation per 4-tuple, so a reused tuple is a new socket id.
    generation: u64,
    now: u64,
    last_tick_ts: u64,
    packets_since_tick: u64,
}

impl Replayer {
    fn new(side: Side, max_conns: usize, stats: Arc<Stats>) -> Self {
        Self {
            side,
            flows: FxHashMap::default(),
            max_flows: max_conns,
            tracker: ConnTracker::new(max_conns, stats.clone()),
            stats,
            generation: 0,
            now: 0,
            last_tick_ts: 0,
            packets_since_tick: 0,
        }
    }

    fn on_frame(&mut self, frame: &pcap::Frame<'_>, cx: &mut impl Context) {
        Stats::add(&self.stats.replay_packets, 1);
        Stats::add(&self.stats.captured_bytes, frame.data.len() as u64);
        let ts = frame.ts_ns;
        self.now = self.now.max(ts);
        match packet::decode(frame.linktype, frame.data) {
            Decoded::Segment(seg) => match seg.transport {
                Transport::Tcp { .. } => self.on_tcp(&seg, ts, cx),
                Transport::Udp => self.on_udp(&seg, ts, cx),
            },
            Decoded::Other => Stats::add(&self.stats.replay_skipped, 1),
            Decoded::Malformed => Stats::add(&self.stats.replay_malformed, 1),
        }
        self.packets_since_tick += 1;
        if self.last_tick_ts == 0 {
            self.last_tick_ts = self.now;
        }
        let elapsed = self.now.saturating_sub(self.last_tick_ts);
        if elapsed >= TICK_NS
            && (self.packets_since_tick >= TICK_PACKETS || elapsed >= 100 * TICK_NS)
        {
            self.tick(cx);
        }
    }

    fn new_sk(&mut self, key: &FlowKey) -> u64 {
        self.generation += 1;
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        self.generation.hash(&mut h);
        // Low bit clear: the server end is `sk | 1`.
        h.finish() & !1
    }

    fn on_tcp(&mut self, seg: &Segment<'_>, ts: u64, cx: &mut impl Context) {
        let Transport::Tcp {
            seq,
            syn,
            ack,
            ack_seq,
            fin,
            rst,
        } = seg.transport
        else {
            return;
        };
        let key = FlowKey::new(seg.src, seg.dst, true);
        if syn
            && !ack
            && let Some(flow) = self.flows.get(&key)
            && !(flow.client == seg.src && flow.dirs[C2S].isn_is(seq))
        {
            // A new connection on a tuple in use: the old one is over.
            self.close_flow(key, ts, cx);
        }
        if !self.flows.contains_key(&key) {
            if !syn && seg.payload.is_empty() {
                return; // a stray ACK, FIN or RST of a connection we do not know
            }
            let (client, server) = if syn {
                if ack {
                    (seg.dst, seg.src)
                } else {
                    (seg.src, seg.dst)
                }
            } else if seg.src.port() < seg.dst.port() {
                (seg.dst, seg.src)
            } else {
                (seg.src, seg.dst)
            };
            self.open_flow(key, client, server, true, ts, cx);
        }
        let side = self.side;
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_ts = ts;
        let dir = flow.dir_of(seg.src);
        if syn {
            flow.dirs[dir].syn(seq);
        }
        let seq = if syn { seq.wrapping_add(1) } else { seq };
        let (sk, family, ends) = (flow.sk, family(flow.client), (flow.client, flow.server));
        let tracker = &mut self.tracker;
        let mut gaps = 0;
        if ack && !rst {
            // What this side acknowledges of the other direction was sent before this packet.
            let other = 1 - dir;
            gaps += flow.dirs[other].acked(ack_seq, ts, &mut |pos, bytes, len, end, ts| {
                feed(
                    tracker, side, sk, ends, family, 6, other, pos, bytes, len, end, ts, cx,
                )
            });
        }
        let report = flow.dirs[dir].push(
            seq,
            seg.payload,
            fin,
            ts,
            &mut |pos, bytes, len, end, ts| {
                feed(
                    tracker, side, sk, ends, family, 6, dir, pos, bytes, len, end, ts, cx,
                )
            },
        );
        Stats::add(&self.stats.stream_gaps, gaps + report.gaps);
        let done = rst || (flow.dirs[C2S].ended() && flow.dirs[S2C].ended());
        if done {
            self.close_flow(key, ts, cx);
        }
    }

    fn on_udp(&mut self, seg: &Segment<'_>, ts: u64, cx: &mut impl Context) {
        let key = FlowKey::new(seg.src, seg.dst, false);
        if !self.flows.contains_key(&key) {
            let (client, server) = if seg.src.port() < seg.dst.port() {
                (seg.dst, seg.src)
            } else {
                (seg.src, seg.dst)
            };
            self.open_flow(key, client, server, false, ts, cx);
        }
        let side = self.side;
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_ts = ts;
        let dir = flow.dir_of(seg.src);
        let pos = flow.udp_pos[dir];
        flow.udp_pos[dir] += seg.payload.len() as u64;
        let (sk, family, ends) = (flow.sk, family(flow.client), (flow.client, flow.server));
        if !seg.payload.is_empty() {
            feed(
                &mut self.tracker,
                side,
                sk,
                ends,
                family,
                17,
                dir,
                pos,
                seg.payload,
                seg.payload.len() as u64,
                false,
                ts,
                cx,
            );
        }
    }

    fn open_flow(
        &mut self,
        key: FlowKey,
        client: SocketAddr,
        server: SocketAddr,
        tcp: bool,
        ts: u64,
        cx: &mut impl Context,
    ) {
        if self.flows.len() >= self.max_flows {
            // Bounded like the live connection table: the packets of the flow are counted,
            // not reassembled.
            Stats::add(&self.stats.conns_rejected, 1);
            return;
        }
        let sk = self.new_sk(&key);
        for (traced_sk, local, peer, old) in self.ends(sk, client, server) {
            let ev = sock_event(traced_sk, local, peer, old, tcp_state::ESTABLISHED, ts);
            self.tracker.on_sock_state(&ev, ts, cx);
        }
        self.flows.insert(
            key,
            Flow {
                client,
                server,
                tcp,
                sk,
                dirs: Default::default(),
                udp_pos: [0; 2],
                last_ts: ts,
            },
        );
    }

    /// The traced ends of a flow: `(sk, local, peer, state before ESTABLISHED)`.
    fn ends(
        &self,
        sk: u64,
        client: SocketAddr,
        server: SocketAddr,
    ) -> Vec<(u64, SocketAddr, SocketAddr, i32)> {
        let c = (sk, client, server, tcp_state::SYN_SENT);
        let s = (sk | 1, server, client, tcp_state::SYN_RECV);
        match self.side {
            Side::Client => vec![c],
            Side::Server => vec![s],
            Side::Both => vec![c, s],
        }
    }

    fn close_flow(&mut self, key: FlowKey, ts: u64, cx: &mut impl Context) {
        let Some(mut flow) = self.flows.remove(&key) else {
            return;
        };
        let side = self.side;
        let (sk, family, ends) = (flow.sk, family(flow.client), (flow.client, flow.server));
        let proto = if flow.tcp { 6 } else { 17 };
        for dir in [C2S, S2C] {
            let tracker = &mut self.tracker;
            let gaps = flow.dirs[dir].flush(&mut |pos, bytes, len, end, ts| {
                feed(
                    tracker, side, sk, ends, family, proto, dir, pos, bytes, len, end, ts, cx,
                )
            });
            Stats::add(&self.stats.stream_gaps, gaps);
        }
        for (traced_sk, local, peer, _) in self.ends(sk, flow.client, flow.server) {
            let ev = sock_event(
                traced_sk,
                local,
                peer,
                tcp_state::FIN_WAIT1,
                tcp_state::CLOSE,
                ts,
            );
            self.tracker.on_sock_state(&ev, ts, cx);
        }
    }

    fn tick(&mut self, cx: &mut impl Context) {
        let now = self.now;
        self.last_tick_ts = now;
        self.packets_since_tick = 0;
        let side = self.side;
        let mut idle = Vec::new();
        for (key, flow) in self.flows.iter_mut() {
            let (sk, family, ends) = (flow.sk, family(flow.client), (flow.client, flow.server));
            for dir in [C2S, S2C] {
                if flow.dirs[dir].has_held() {
                    let tracker = &mut self.tracker;
                    let gaps = flow.dirs[dir].expire(now, &mut |pos, bytes, len, end, ts| {
                        feed(
                            tracker, side, sk, ends, family, 6, dir, pos, bytes, len, end, ts, cx,
                        )
                    });
                    Stats::add(&self.stats.stream_gaps, gaps);
                }
            }
            if now.saturating_sub(flow.last_ts) > IDLE_NS {
                idle.push(*key);
            }
        }
        for key in idle {
            self.close_flow(key, now, cx);
        }
        self.tracker.tick(now, cx);
    }

    fn finish(&mut self, cx: &mut impl Context) {
        let now = self.now;
        let mut keys: Vec<(u64, FlowKey)> = self.flows.iter().map(|(k, f)| (f.sk, *k)).collect();
        keys.sort_unstable_by_key(|(sk, _)| *sk);
        for (_, key) in keys {
            self.close_flow(key, now, cx);
        }
        self.tracker.close_all(now, cx);
    }
}

fn family(a: SocketAddr) -> u16 {
    if a.is_ipv4() { 2 } else { 10 }
}

fn ip_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

fn sock_event(
    sk: u64,
    local: SocketAddr,
    peer: SocketAddr,
    old_state: i32,
    new_state: i32,
    ts: u64,
) -> SockStateEvent {
    SockStateEvent {
        kind: EventKind::SockState as u32,
        old_state,
        new_state,
        family: family(local),
        sport: local.port(),
        dport: peer.port(),
        _pad: 0,
        tgid: 0,
        sk,
        ts_ns: ts,
        saddr: ip_bytes(local.ip()),
        daddr: ip_bytes(peer.ip()),
    }
}

const COMM: [u8; 16] = *b"replay\0\0\0\0\0\0\0\0\0\0";

/// One in-order piece of direction `dir` (client→server or back) to each traced end.
#[allow(clippy::too_many_arguments)]
fn feed(
    tracker: &mut ConnTracker,
    side: Side,
    sk: u64,
    ends: (SocketAddr, SocketAddr),
    family: u16,
    protocol: u16,
    dir: usize,
    position: u64,
    bytes: &[u8],
    len: u64,
    end: bool,
    ts: u64,
    cx: &mut impl Context,
) {
    let client_sends = dir == C2S;
    let (client, server) = ends;
    let ends: &[(u64, bool, SocketAddr, SocketAddr)] = match side {
        Side::Client => &[(sk, client_sends, client, server)],
        Side::Server => &[(sk | 1, !client_sends, server, client)],
        Side::Both => &[
            (sk, client_sends, client, server),
            (sk | 1, !client_sends, server, client),
        ],
    };
    for &(sk, egress, local, peer) in ends {
        let header = DataHeader {
            kind: EventKind::Data as u32,
            direction: if egress {
                direction::EGRESS
            } else {
                direction::INGRESS
            },
            tgid: 0,
            tid: 0,
            fd: 0,
            syscall: 0,
            flags: if end { data_flags::EOF } else { 0 },
            cap_len: bytes.len() as u32,
            sk,
            ts_ns: ts,
            position,
            len,
            family,
            protocol,
            msg_index: 0,
            comm: COMM,
            local_addr: ip_bytes(local.ip()),
            peer_addr: ip_bytes(peer.ip()),
            local_port: local.port(),
            peer_port: peer.port(),
            _pad: 0,
        };
        tracker.on_data(&header, bytes, ts, cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Collect {
        records: Vec<Observation>,
    }

    impl Context for Collect {
        fn process(&mut self, _tgid: u32, _comm: &[u8; 16]) -> Arc<ProcessInfo> {
            Arc::new(ProcessInfo::default())
        }
        fn resolve_socket(&mut self, _tgid: u32, _fd: u32) -> Option<SocketInfo> {
            None
        }
        fn wanted(&self, _addrs: Option<(SocketAddr, SocketAddr)>) -> bool {
            true
        }
        fn emit(&mut self, observation: Observation) {
            self.records.push(observation);
        }
    }

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [10, 0, 0, 2];

    /// A raw-IP TCP packet; `from_client` picks the direction.
    fn tcp(from_client: bool, seq: u32, ack: u32, flags: &str, payload: &[u8]) -> Vec<u8> {
        let (src, dst, sport, dport) = if from_client {
            (CLIENT, SERVER, 40000, 8080)
        } else {
            (SERVER, CLIENT, 8080, 40000)
        };
        let mut b = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, 65535);
        if flags.contains('S') {
            b = b.syn();
        }
        if flags.contains('A') {
            b = b.ack(ack);
        }
        if flags.contains('F') {
            b = b.fin();
        }
        if flags.contains('R') {
            b = b.rst();
        }
        let mut out = Vec::new();
        b.write(&mut out, payload).expect("build");
        out
    }

    fn run(side: Side, packets: &[Vec<u8>]) -> Vec<Observation> {
        let mut cx = Collect::default();
        let mut r = Replayer::new(side, 1024, Arc::new(Stats::default()));
        for (i, p) in packets.iter().enumerate() {
            let frame = pcap::Frame {
                ts_ns: 1_000_000_000 + i as u64 * 1_000_000,
                linktype: 101,
                data: p,
            };
            r.on_frame(&frame, &mut cx);
        }
        r.finish(&mut cx);
        cx.records
    }

    fn summary(records: &[Observation]) -> Vec<(String, Option<u16>, &'static str)> {
        records
            .iter()
            .map(|o| match &o.record.detail {
                wirelens_parsers::Detail::Http(h) => (
                    h.target.clone(),
                    h.status,
                    crate::conntrack::role_name(o.record.role),
                ),
                _ => (String::new(), None, "other"),
            })
            .collect()
    }

    const REQ1: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    const REQ2: &[u8] = b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[test]
    fn handshake_reordering_and_retransmission_give_client_records() {
        let c = 1000u32;
        let s = 5000u32;
        let r1 = REQ1.len() as u32;
        let resp = RESP.len() as u32;
        let r2 = REQ2.len() as u32;
        let packets = vec![
            tcp(true, c, 0, "S", b""),
            tcp(false, s, c + 1, "SA", b""),
            tcp(true, c + 1, s + 1, "A", REQ1),
            tcp(true, c + 1, s + 1, "A", REQ1), // retransmission
            // The response in two halves, second half first.
            tcp(false, s + 1 + 10, c + 1 + r1, "A", &RESP[10..]),
            tcp(false, s + 1, c + 1 + r1, "A", &RESP[..10]),
            tcp(true, c + 1 + r1, s + 1 + resp, "A", REQ2),
            tcp(false, s + 1 + resp, c + 1 + r1 + r2, "A", RESP),
            tcp(true, c + 1 + r1 + r2, s + 1 + 2 * resp, "FA", b""),
            tcp(false, s + 1 + 2 * resp, c + 2 + r1 + r2, "FA", b""),
        ];
        let records = run(Side::Client, &packets);
        assert_eq!(
            summary(&records),
            vec![
                ("/a".to_string(), Some(200), "client"),
                ("/b".to_string(), Some(200), "client")
            ]
        );
        let local: SocketAddr = "10.0.0.1:40000".parse().expect("addr");
        assert_eq!(records[0].local, Some(local));
        let both = run(Side::Both, &packets);
        let mut roles: Vec<_> = summary(&both).into_iter().map(|s| s.2).collect();
        roles.sort_unstable();
        assert_eq!(roles, vec!["client", "client", "server", "server"]);
    }

    #[test]
    fn mid_stream_capture_and_lost_segment() {
        // No handshake: the lower port is the server. The first request's last bytes are
        // lost; the second exchange still comes out.
        let c = 777u32;
        let s = 9000u32;
        let r1 = REQ1.len() as u32;
        let resp = RESP.len() as u32;
        let r2 = REQ2.len() as u32;
        let packets = vec![
            tcp(true, c, s, "A", &REQ1[..5]),
            // REQ1[5..] lost
            tcp(false, s, c + r1, "A", RESP),
            tcp(true, c + r1, s + resp, "A", REQ2),
            tcp(false, s + resp, c + r1 + r2, "A", RESP),
            tcp(true, c + r1 + r2, s + 2 * resp, "RA", b""),
        ];
        let records = run(Side::Client, &packets);
        let targets: Vec<_> = summary(&records).into_iter().map(|s| s.0).collect();
        assert!(targets.contains(&"/b".to_string()), "{targets:?}");
        assert!(
            records
                .iter()
                .all(|o| o.record.role == wirelens_parsers::Role::Client)
        );
    }
}
