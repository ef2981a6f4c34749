//! The parsers' recorded fixtures (`parsers/testdata/<protocol>/`) as pcap files, so that
//! `wirelens replay` can read them like any capture.
//!
//! A TCP case is `<case>.client.bin`, `<case>.server.bin` and `<case>.timeline` (one line per
//! segment, `c|s µs length` or `c|s µs fin`); it becomes one connection from 127.0.0.1 to
//! 127.0.0.2 on the protocol's usual port, opened by a three-way handshake, with each segment
//! at its recorded time. A UDP case is `<case>.datagrams` (`µs src dst hex` per line), written
//! datagram by datagram with its own addresses. Packets are built with `etherparse` (Ethernet,
//! IPv4/IPv6, TCP/UDP); the file is classic pcap (microsecond timestamps, link type Ethernet),
//! whose 24-byte header and 16-byte record headers are written here.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;

/// Capture time of every fixture's first packet (seconds since the Unix epoch).
const BASE_SECONDS: u64 = 1_700_000_000;
/// The largest TCP payload put in one packet (an IPv4 packet holds at most 65,535 bytes).
const MAX_SEGMENT: usize = 65_000;
const MAC_CLIENT: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_SERVER: [u8; 6] = [2, 0, 0, 0, 0, 2];

/// The port a protocol's server usually listens on (the port is a hint to inference only).
fn server_port(protocol: &str) -> u16 {
    match protocol {
        "http1" | "http2" => 80,
        "grpc" => 50051,
        "kafka" => 9092,
        "mysql" => 3306,
        "nats" => 4222,
        "postgres" => 5432,
        "redis" => 6379,
        "amqp" => 5672,
        "cassandra" => 9042,
        "dns" => 53,
        _ => 9999,
    }
}

/// A classic pcap file being written in memory.
struct Pcap {
    bytes: Vec<u8>,
}

impl Pcap {
    fn new() -> Self {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microseconds
        bytes.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes()); // this zone
        bytes.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        bytes.extend_from_slice(&262_144u32.to_le_bytes()); // snaplen
        bytes.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        Pcap { bytes }
    }

    /// One packet at `us` microseconds after [`BASE_SECONDS`].
    fn packet(&mut self, us: u64, frame: &[u8]) {
        let seconds = u32::try_from(BASE_SECONDS + us / 1_000_000).expect("time fits pcap");
        let len = u32::try_from(frame.len()).expect("frame fits pcap");
        self.bytes.extend_from_slice(&seconds.to_le_bytes());
        self.bytes
            .extend_from_slice(&u32::try_from(us % 1_000_000).unwrap_or(0).to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(frame);
    }
}

/// The IP layer of a packet between `src` and `dst` (both IPv4 or both IPv6).
fn ip_builder(
    src: IpAddr,
    dst: IpAddr,
    client_to_server: bool,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let (from, to) = if client_to_server {
        (MAC_CLIENT, MAC_SERVER)
    } else {
        (MAC_SERVER, MAC_CLIENT)
    };
    let eth = PacketBuilder::ethernet2(from, to);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => eth.ipv6(s.octets(), d.octets(), 64),
        _ => panic!("mixed address families {src} → {dst}"),
    }
}

/// One TCP direction's state.
struct Side {
    addr: SocketAddr,
    seq: u32,
}

/// Writes one TCP segment from `from` to `to`, advancing `from`'s sequence number.
fn tcp_segment(
    pcap: &mut Pcap,
    us: u64,
    (from, to): (&mut Side, &Side),
    client_to_server: bool,
    flags: &str,
    payload: &[u8],
) {
    let builder = ip_builder(from.addr.ip(), to.addr.ip(), client_to_server).tcp(
        from.addr.port(),
        to.addr.port(),
        from.seq,
        65_535,
    );
    let mut builder = if flags.contains('A') {
        builder.ack(to.seq)
    } else {
        builder
    };
    if flags.contains('S') {
        builder = builder.syn();
    }
    if flags.contains('F') {
        builder = builder.fin();
    }
    if flags.contains('P') {
        builder = builder.psh();
    }
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder
        .write(&mut frame, payload)
        .expect("build a TCP packet");
    pcap.packet(us, &frame);
    let advance =
        payload.len() + usize::from(flags.contains('S')) + usize::from(flags.contains('F'));
    from.seq = from
        .seq
        .wrapping_add(u32::try_from(advance).expect("segment size"));
}

/// The pcap of one TCP case (`dir/<case>.timeline` and its two byte files).
fn tcp_case(dir: &Path, case: &str, port: u16, client_port: u16) -> Vec<u8> {
    let read = |suffix: &str| {
        let path = dir.join(format!("{case}.{suffix}"));
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let timeline = String::from_utf8(read("timeline")).expect("timeline is text");
    let bytes = [read("client.bin"), read("server.bin")];
    let mut offsets = [0usize, 0usize];
    let mut client = Side {
        addr: SocketAddr::from(([127, 0, 0, 1], client_port)),
        seq: 1_000,
    };
    let mut server = Side {
        addr: SocketAddr::from(([127, 0, 0, 2], port)),
        seq: 5_000,
    };
    let mut pcap = Pcap::new();
    tcp_segment(&mut pcap, 0, (&mut client, &server), true, "S", &[]);
    tcp_segment(&mut pcap, 0, (&mut server, &client), false, "SA", &[]);
    tcp_segment(&mut pcap, 0, (&mut client, &server), true, "A", &[]);
    for line in timeline.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [who, us, what] = fields[..] else {
            panic!("{case}.timeline: bad line {line:?}");
        };
        let us: u64 = us
            .parse()
            .unwrap_or_else(|_| panic!("bad time in {line:?}"));
        let from_client = match who {
            "c" => true,
            "s" => false,
            _ => panic!("{case}.timeline: bad side in {line:?}"),
        };
        let index = usize::from(!from_client);
        let (from, to) = if from_client {
            (&mut client, &server)
        } else {
            (&mut server, &client)
        };
        if what == "fin" {
            tcp_segment(&mut pcap, us, (from, to), from_client, "FA", &[]);
            continue;
        }
        let len: usize = what
            .parse()
            .unwrap_or_else(|_| panic!("bad length in {line:?}"));
        let start = offsets[index];
        let data = bytes[index]
            .get(start..start + len)
            .unwrap_or_else(|| panic!("{case}: timeline runs past the recorded bytes"));
        offsets[index] += len;
        for chunk in data.chunks(MAX_SEGMENT) {
            tcp_segment(&mut pcap, us, (&mut *from, to), from_client, "PA", chunk);
        }
    }
    pcap.bytes
}

/// The pcap of one UDP case (`dir/<case>.datagrams`).
fn udp_case(path: &Path) -> Vec<u8> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut pcap = Pcap::new();
    let mut client = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [us, src, dst, hex] = fields[..] else {
            panic!("{}: bad line {line:?}", path.display());
        };
        let us: u64 = us
            .parse()
            .unwrap_or_else(|_| panic!("bad time in {line:?}"));
        let src: SocketAddr = src
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        let dst: SocketAddr = dst
            .parse()
            .unwrap_or_else(|_| panic!("bad address in {line:?}"));
        let payload: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex payload"))
            .collect();
        let from_client = *client.get_or_insert(src) == src;
        let builder = ip_builder(src.ip(), dst.ip(), from_client).udp(src.port(), dst.port());
        let mut frame = Vec::with_capacity(builder.size(payload.len()));
        builder
            .write(&mut frame, &payload)
            .expect("build a UDP packet");
        pcap.packet(us, &frame);
    }
    pcap.bytes
}

/// Writes every recorded fixture under `testdata` (`<protocol>/<case>.*`) as
/// `out/<protocol>-<case>.pcap`; returns the files written, sorted.
pub fn write_fixture_pcaps(testdata: &Path, out: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let mut protocols: Vec<PathBuf> = fs::read_dir(testdata)
        .unwrap_or_else(|e| panic!("read {}: {e}", testdata.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    protocols.sort();
    let mut client_port = 40_000;
    for dir in protocols {
        let protocol = dir
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 directory name")
            .to_owned();
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("read a testdata directory")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        for file in files {
            let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let pcap = match (
                name.strip_suffix(".timeline"),
                name.strip_suffix(".datagrams"),
            ) {
                (Some(case), _) => {
                    client_port += 1;
                    let port = server_port(&protocol);
                    Some((case, tcp_case(&dir, case, port, client_port)))
                }
                (None, Some(case)) => Some((case, udp_case(&file))),
                (None, None) => None,
            };
            if let Some((case, bytes)) = pcap {
                let path = out.join(format!("{protocol}-{case}.pcap"));
                fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
                written.push(path);
            }
        }
    }
    written
}
