//! Test support shared by the protocol modules' tests: recorded connections (the
//! `testdata/<protocol>/` fixtures that each `record.sh` writes), the feed scripts built from
//! them, text baselines, and the public captures (`../shared/captures/`, read at test time).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use etherparse::{SlicedPacket, TransportSlice};
use pcap_parser::{Block, Linktype, PcapBlockOwned, PcapError, create_reader};

use crate::{Direction, Loss, Output, Parser, Protocol, Record, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<'a> {
    Feed(Side, &'a [u8], u64),
    Skip(Side, Option<u64>, u64),
    End(Side, u64),
    Close(u64),
}

impl Op<'_> {
    pub(crate) fn ts(&self) -> u64 {
        match *self {
            Op::Feed(_, _, ts) | Op::Skip(_, _, ts) | Op::End(_, ts) | Op::Close(ts) => ts,
        }
    }
}

/// The direction `side`'s bytes travel when the traced process plays `traced`.
pub(crate) fn direction(side: Side, traced: Role) -> Direction {
    match (side, traced) {
        (Side::Client, Role::Client) | (Side::Server, Role::Server) => Direction::Egress,
        (Side::Server, Role::Client) | (Side::Client, Role::Server) => Direction::Ingress,
    }
}

/// One recorded connection: what each side sent, and when (from the capture).
pub(crate) struct Capture {
    pub(crate) client: Vec<u8>,
    pub(crate) server: Vec<u8>,
    /// Side, µs since the SYN, byte range in that side's stream (`None`: the side closed).
    pub(crate) timeline: Vec<(Side, u64, Option<Range<usize>>)>,
}

pub(crate) fn testdata(dir: &str, file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir)
        .join(file)
}

impl Capture {
    pub(crate) fn load(dir: &str, name: &str) -> Self {
        let read = |suffix: &str| {
            std::fs::read(testdata(dir, &format!("{name}.{suffix}")))
                .unwrap_or_else(|e| panic!("reading fixture {name}.{suffix}: {e}"))
        };
        let (client, server) = (read("client.bin"), read("server.bin"));
        let mut offsets = [0usize; 2];
        let mut timeline = Vec::new();
        for line in String::from_utf8(read("timeline"))
            .expect("timeline is text")
            .lines()
        {
            let fields: Vec<&str> = line.split(' ').collect();
            let [side, us, len] = fields[..] else {
                panic!("bad timeline line {line:?}")
            };
            let (side, i) = match side {
                "c" => (Side::Client, 0),
                "s" => (Side::Server, 1),
                _ => panic!("bad side in {line:?}"),
            };
            let us: u64 = us.parse().expect("timeline time");
            let range = (len != "fin").then(|| {
                let len: usize = len.parse().expect("timeline length");
                offsets[i] += len;
                offsets[i] - len..offsets[i]
            });
            timeline.push((side, us, range));
        }
        assert_eq!(
            offsets,
            [client.len(), server.len()],
            "{name}: timeline does not cover the streams"
        );
        Self {
            client,
            server,
            timeline,
        }
    }

    pub(crate) fn stream(&self, side: Side) -> &[u8] {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    /// The connection as recorded: one feed per TCP segment, `end` at each FIN, then close.
    pub(crate) fn ops(&self) -> Vec<Op<'_>> {
        self.ops_from(0)
    }

    /// As recorded, from the segment `first` on (joining mid-stream).
    pub(crate) fn ops_from(&self, first: usize) -> Vec<Op<'_>> {
        let mut ops: Vec<Op<'_>> = self.timeline[first..]
            .iter()
            .map(|(side, us, range)| match range {
                Some(r) => Op::Feed(*side, &self.stream(*side)[r.clone()], us * 1000),
                None => Op::End(*side, us * 1000),
            })
            .collect();
        ops.push(Op::Close(ops.last().map_or(0, Op::ts) + 1000));
        ops
    }

    /// Everything the client sent in one feed, then everything the server sent in one.
    pub(crate) fn ops_whole(&self) -> Vec<Op<'_>> {
        vec![
            Op::Feed(Side::Client, &self.client, 1000),
            Op::Feed(Side::Server, &self.server, 2000),
            Op::End(Side::Server, 3000),
            Op::Close(4000),
        ]
    }

    /// As recorded, but bytes `range` of `side`'s stream were not captured: a skip instead.
    pub(crate) fn ops_with_gap(&self, side: Side, range: Range<usize>, known: bool) -> Vec<Op<'_>> {
        let mut ops = Vec::new();
        for (s, us, seg) in &self.timeline {
            let ts = us * 1000;
            let Some(seg) = seg else {
                ops.push(Op::End(*s, ts));
                continue;
            };
            if *s != side || seg.end <= range.start || seg.start >= range.end {
                ops.push(Op::Feed(*s, &self.stream(*s)[seg.clone()], ts));
                continue;
            }
            let (lo, hi) = (range.start.max(seg.start), range.end.min(seg.end));
            if seg.start < lo {
                ops.push(Op::Feed(*s, &self.stream(*s)[seg.start..lo], ts));
            }
            ops.push(Op::Skip(*s, known.then_some((hi - lo) as u64), ts));
            if hi < seg.end {
                ops.push(Op::Feed(*s, &self.stream(*s)[hi..seg.end], ts));
            }
        }
        ops.push(Op::Close(ops.last().map_or(0, Op::ts) + 1000));
        ops
    }
}

/// Plays `ops` into `parser`, the traced process playing `traced`.
pub(crate) fn play(parser: &mut impl Parser, ops: &[Op<'_>], traced: Role, out: &mut Output) {
    for op in ops {
        match *op {
            Op::Feed(side, bytes, ts) => parser.feed(direction(side, traced), bytes, ts, out),
            Op::Skip(side, len, ts) => parser.skip(direction(side, traced), len, ts, out),
            Op::End(side, ts) => parser.end(direction(side, traced), ts, out),
            Op::Close(ts) => parser.close(ts, out),
        }
    }
}

/// The losses taken from `out`, non-zero ones as `name=n` separated by spaces, or `none`.
pub(crate) fn losses_text(out: &mut Output) -> String {
    let losses: Vec<String> = out
        .take_losses()
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(loss, n)| format!("{}={n}", loss.name()))
        .collect();
    if losses.is_empty() {
        "none".to_owned()
    } else {
        losses.join(" ")
    }
}

/// What a run produced, as text: one line per record, then the losses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) lines: Vec<String>,
    pub(crate) losses: String,
}

impl Outcome {
    /// The lines, then `losses: ...`, each ended by a newline.
    pub(crate) fn text(&self) -> String {
        let mut s = String::new();
        for line in &self.lines {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(s, "losses: {}", self.losses);
        s
    }
}

/// Plays `ops` into `parser` as `traced`, checks every record's role and protocol and the
/// parser's role, and renders the records with `line`; the parser is handed back.
pub(crate) fn outcome<P: Parser>(
    mut parser: P,
    ops: &[Op<'_>],
    traced: Role,
    protocol: Protocol,
    line: impl Fn(&Record) -> String,
) -> (Outcome, P) {
    let mut out = Output::default();
    play(&mut parser, ops, traced, &mut out);
    for r in &out.records {
        assert_eq!((r.role, r.protocol), (traced, protocol), "{r:?}");
        assert_eq!(parser.role(), Some(traced));
    }
    let losses = losses_text(&mut out);
    let outcome = Outcome {
        lines: out.records.iter().map(line).collect(),
        losses,
    };
    (outcome, parser)
}

/// How a protocol's tests play a script: as `traced`, with record times rendered or not.
pub(crate) type Run = fn(&[Op<'_>], Role, bool) -> Outcome;

/// Each feed of `ops` cut in two at every `step(len)`-th place, the traced role alternating:
/// every cut gives the outcome of the uncut script.
pub(crate) fn assert_split_in_two(name: &str, ops: &[Op<'_>], run: Run, step: fn(usize) -> usize) {
    let want = [Role::Client, Role::Server].map(|traced| run(ops, traced, true));
    for (i, op) in ops.iter().enumerate() {
        let Op::Feed(side, bytes, ts) = *op else {
            continue;
        };
        for at in (1..bytes.len()).step_by(step(bytes.len()).max(1)) {
            let mut split = ops.to_vec();
            split.splice(
                i..=i,
                [
                    Op::Feed(side, &bytes[..at], ts),
                    Op::Feed(side, &bytes[at..], ts),
                ],
            );
            let (traced, want) = if at % 2 == 0 {
                (Role::Client, &want[0])
            } else {
                (Role::Server, &want[1])
            };
            assert_eq!(
                &run(&split, traced, true),
                want,
                "{name}: op {i} split at {at} as {traced:?}"
            );
        }
    }
}

/// The ways [`assert_any_chunks`] feeds a capture.
pub(crate) struct Chunkings {
    /// The traced roles.
    pub(crate) roles: &'static [Role],
    /// Random chunkings (seeds 1 to `seeds`) of 1 to `max` bytes.
    pub(crate) seeds: u64,
    pub(crate) max: usize,
    /// Byte by byte, for captures of fewer bytes than this.
    pub(crate) bytewise_below: usize,
    /// Each side in one feed (client first): the same records (times aside), in the order
    /// given or, where `whole_sorted` (the sides interleave differently), in any order.
    pub(crate) whole: bool,
    pub(crate) whole_sorted: bool,
}

impl Chunkings {
    /// Both roles, byte by byte, ten random chunkings of up to 17 bytes, and whole.
    pub(crate) const FINE: Self = Self {
        roles: &[Role::Client, Role::Server],
        seeds: 10,
        max: 17,
        bytewise_below: usize::MAX,
        whole: true,
        whole_sorted: false,
    };
    /// For captures with many streams: one role, byte by byte only under 5000 bytes, four
    /// chunkings of up to 97, and whole in any order (whole streams interleave the
    /// directions differently).
    pub(crate) const COARSE: Self = Self {
        roles: &[Role::Client],
        seeds: 4,
        max: 97,
        bytewise_below: 5000,
        whole: true,
        whole_sorted: true,
    };
}

/// `capture` fed in the [`Chunkings`]: the outcome of its recorded feeds every time.
pub(crate) fn assert_any_chunks(name: &str, capture: &Capture, run: Run, ways: &Chunkings) {
    let ops = capture.ops();
    for &traced in ways.roles {
        let want = run(&ops, traced, true);
        if capture.client.len() + capture.server.len() < ways.bytewise_below {
            let got = run(&bytewise(&ops), traced, true);
            assert_eq!(got, want, "{name} byte by byte as {traced:?}");
        }
        for seed in 1..=ways.seeds {
            let got = run(&rechunk(&ops, seed, ways.max), traced, true);
            assert_eq!(got, want, "{name} chunks seed {seed} as {traced:?}");
        }
        if ways.whole {
            let mut untimed = run(&ops, traced, false);
            let mut got = run(&capture.ops_whole(), traced, false);
            if ways.whole_sorted {
                untimed.lines.sort();
                got.lines.sort();
            }
            assert_eq!(got, untimed, "{name} in two feeds as {traced:?}");
        }
    }
}

/// A scripted exchange and what it must produce, in both roles and however the feeds are split.
pub(crate) struct Case<'a> {
    pub(crate) name: &'a str,
    pub(crate) ops: Vec<Op<'a>>,
    pub(crate) want: &'a [&'a str],
    pub(crate) losses: &'a str,
}

/// Builds ops with timestamps 1000, 2000, ... in script order.
pub(crate) struct Script<'a>(pub(crate) Vec<Op<'a>>);

impl<'a> Script<'a> {
    /// An empty script.
    pub(crate) fn new() -> Self {
        Self(Vec::new())
    }
    /// The next op's timestamp.
    fn ts(&self) -> u64 {
        (self.0.len() as u64 + 1) * 1000
    }
    /// The client sends `bytes`.
    pub(crate) fn c(mut self, bytes: &'a [u8]) -> Self {
        self.0.push(Op::Feed(Side::Client, bytes, self.ts()));
        self
    }
    /// The server sends `bytes`.
    pub(crate) fn s(mut self, bytes: &'a [u8]) -> Self {
        self.0.push(Op::Feed(Side::Server, bytes, self.ts()));
        self
    }
    /// `side`'s next bytes (`len` of them, if known) were not captured.
    pub(crate) fn skip(mut self, side: Side, len: Option<u64>) -> Self {
        self.0.push(Op::Skip(side, len, self.ts()));
        self
    }
    /// `side` closes its direction.
    pub(crate) fn end(mut self, side: Side) -> Self {
        self.0.push(Op::End(side, self.ts()));
        self
    }
    /// The connection closes.
    pub(crate) fn close(mut self) -> Self {
        self.0.push(Op::Close(self.ts()));
        self
    }
}

/// Runs `case` through `run` every way (both roles; as scripted, byte by byte, random chunks);
/// describes the first way it goes wrong.
/// What went wrong with each of `cases` run through `run` every way (see `check_case`), in order.
pub(crate) fn case_failures(
    cases: &[Case<'_>],
    run: impl Fn(&[Op<'_>], Role) -> Outcome,
) -> Vec<String> {
    cases
        .iter()
        .filter_map(|c| check_case(c, &run).err())
        .collect()
}

fn check_case(case: &Case<'_>, run: impl Fn(&[Op<'_>], Role) -> Outcome) -> Result<(), String> {
    let want = Outcome {
        lines: case.want.iter().map(|s| s.to_string()).collect(),
        losses: case.losses.into(),
    };
    for traced in [Role::Client, Role::Server] {
        let mut ways = vec![
            ("as scripted".to_owned(), case.ops.clone()),
            ("byte by byte".to_owned(), bytewise(&case.ops)),
        ];
        ways.extend(
            (1..=8).map(|seed| (format!("chunks seed {seed}"), rechunk(&case.ops, seed, 7))),
        );
        for (way, ops) in ways {
            let got = run(&ops, traced);
            if got != want {
                return Err(format!(
                    "case {:?} as {traced:?}, {way}:\n{}",
                    case.name,
                    got.text()
                ));
            }
        }
    }
    Ok(())
}

/// Every `*.bin` stream recorded under `testdata/<proto>/` for each of `protos` (folders that
/// are missing are passed over), with its path.
pub(crate) fn fixture_streams(protos: &[&str]) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut streams = Vec::new();
    for proto in protos {
        let Ok(dir) = std::fs::read_dir(testdata(proto, "")) else {
            continue;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "bin") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("readable fixture");
            streams.push((path, bytes));
        }
    }
    streams
}

/// Compares `got` with the baseline file, or rewrites it under `WIRELENS_BLESS`.
pub(crate) fn check_baseline(dir: &str, file: &str, got: &str) {
    let path = testdata(dir, file);
    if std::env::var_os("WIRELENS_BLESS").is_some() {
        std::fs::write(&path, got).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert!(
        want == got,
        "{file} differs from the baseline (WIRELENS_BLESS=1 to accept)\n--- want\n{want}--- got\n{got}"
    );
}

/// Every feed split into single bytes (same timestamps).
pub(crate) fn bytewise<'a>(ops: &[Op<'a>]) -> Vec<Op<'a>> {
    let mut split = Vec::new();
    for op in ops {
        match *op {
            Op::Feed(side, bytes, ts) => {
                split.extend(bytes.chunks(1).map(|b| Op::Feed(side, b, ts)))
            }
            other => split.push(other),
        }
    }
    split
}

/// Every feed split into chunks of 1 to `max` bytes, sizes from a fixed-seed generator.
pub(crate) fn rechunk<'a>(ops: &[Op<'a>], seed: u64, max: usize) -> Vec<Op<'a>> {
    let mut rng = XorShift(seed | 1);
    let mut split = Vec::new();
    for op in ops {
        match *op {
            Op::Feed(side, mut bytes, ts) => {
                while !bytes.is_empty() {
                    let n = (rng.below(max as u64) as usize + 1).min(bytes.len());
                    split.push(Op::Feed(side, &bytes[..n], ts));
                    bytes = &bytes[n..];
                }
            }
            other => split.push(other),
        }
    }
    split
}

/// Small deterministic generator for splits and fuzz-like inputs.
pub(crate) struct XorShift(pub(crate) u64);

impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One frame of a public capture: link type, bytes, timestamp as the file stores it (µs; in a
/// pcapng, the interface's units, µs unless it says otherwise).
pub(crate) type Frame = (Linktype, Vec<u8>, u64);

/// Every frame of `../shared/captures/<path>` (pcap or pcapng), in file order; reading stops
/// at a record cut short.
pub(crate) fn capture_frames(path: &str) -> Vec<Frame> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/captures")
        .join(path);
    let data = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the public capture {} is needed by this test (shared/ beside the repository): {e}",
            path.display()
        )
    });
    let mut reader = create_reader(data.len() + 65536, &data[..]).expect("a capture");
    let (mut legacy, mut interfaces) = (Linktype::ETHERNET, Vec::new());
    let mut frames = Vec::new();
    let mut incomplete = false;
    loop {
        let (used, block) = match reader.next() {
            Ok(next) => next,
            Err(PcapError::Incomplete(_)) if !incomplete => {
                incomplete = true;
                let _ = reader.refill();
                continue;
            }
            Err(_) => break,
        };
        incomplete = false;
        match block {
            PcapBlockOwned::LegacyHeader(h) => legacy = h.network,
            PcapBlockOwned::Legacy(b) => frames.push((
                legacy,
                b.data.to_vec(),
                u64::from(b.ts_sec) * 1_000_000 + u64::from(b.ts_usec),
            )),
            PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => interfaces.push(idb.linktype),
            PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => frames.push((
                interfaces[epb.if_id as usize],
                epb.data.to_vec(),
                (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low),
            )),
            _ => {}
        }
        reader.consume(used);
    }
    frames
}

/// The packet in one frame, by link type: BSD loopback (a 4-byte address family), Linux SLL,
/// raw IP, else Ethernet.
pub(crate) fn slice_frame(linktype: Linktype, frame: &[u8]) -> Option<SlicedPacket<'_>> {
    match linktype {
        Linktype::NULL => SlicedPacket::from_ip(frame.get(4..)?),
        Linktype::LINUX_SLL => SlicedPacket::from_linux_sll(frame),
        Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => SlicedPacket::from_ip(frame),
        _ => SlicedPacket::from_ethernet(frame),
    }
    .ok()
}

/// One TCP connection's payloads in capture order: (from the SYN sender?, bytes, ns).
pub(crate) type TcpConn = Vec<(bool, Vec<u8>, u64)>;

/// The TCP connections of `../shared/captures/<path>`, keyed by (client port, server port),
/// the client being the SYN's sender. Segments of connections whose SYN is not in the capture
/// are dropped, or with `without_syn` kept and keyed with the higher port as the client's.
pub(crate) fn capture_connections(path: &str, without_syn: bool) -> BTreeMap<(u16, u16), TcpConn> {
    let mut conns: BTreeMap<(u16, u16), TcpConn> = BTreeMap::new();
    let mut clients: BTreeMap<(u16, u16), u16> = BTreeMap::new();
    for (linktype, frame, ts) in capture_frames(path) {
        let Some(packet) = slice_frame(linktype, &frame) else {
            continue;
        };
        let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
            continue;
        };
        let (src, dst) = (tcp.source_port(), tcp.destination_port());
        let pair = (src.min(dst), src.max(dst));
        if tcp.syn() && !tcp.ack() {
            clients.insert(pair, src);
        }
        let client = match clients.get(&pair) {
            Some(&client) => client,
            None if without_syn => pair.1,
            None => continue,
        };
        let server = if client == pair.0 { pair.1 } else { pair.0 };
        if !tcp.payload().is_empty() {
            conns.entry((client, server)).or_default().push((
                src == client,
                tcp.payload().to_vec(),
                ts * 1000,
            ));
        }
    }
    conns
}

/// Feeds `conn`'s segments to `parser` in pieces of at most `chunk` bytes, the traced process
/// playing `traced`, then closes it at `u64::MAX`.
pub(crate) fn replay_conn(
    parser: &mut impl Parser,
    conn: &[(bool, Vec<u8>, u64)],
    traced: Role,
    chunk: usize,
    out: &mut Output,
) {
    for (from_client, bytes, ts) in conn {
        let side = if *from_client {
            Side::Client
        } else {
            Side::Server
        };
        for c in bytes.chunks(chunk) {
            parser.feed(direction(side, traced), c, *ts, out);
        }
    }
    parser.close(u64::MAX, out);
}

/// Replays `conn` in both roles, whole and byte by byte, into fresh parsers from `new`: each
/// must take the traced role, make no record and lose nothing.
pub(crate) fn assert_silent_replay<P: Parser>(conn: &[(bool, Vec<u8>, u64)], new: impl Fn() -> P) {
    for traced in [Role::Client, Role::Server] {
        for chunk in [usize::MAX, 1] {
            let mut p = new();
            let mut out = Output::default();
            replay_conn(&mut p, conn, traced, chunk, &mut out);
            assert_eq!(p.role(), Some(traced));
            assert!(out.records.is_empty(), "{:?}", out.records);
            for loss in Loss::ALL {
                assert_eq!(out.losses(loss), 0, "{loss:?}");
            }
        }
    }
}
