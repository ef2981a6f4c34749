//! Decoding one captured frame down to its TCP segment or UDP datagram.
//!
//! Link types: Ethernet (with VLAN tags), Linux cooked capture v1 and v2, raw IP, BSD loopback
//! (`DLT_NULL`, `DLT_LOOP`). Network: IPv4 and IPv6 (fragments are skipped: no reassembly).

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, NetSlice, SlicedPacket, TransportSlice};

/// `LINKTYPE_*` numbers handled here.
mod linktype {
    pub const NULL: i32 = 0;
    pub const ETHERNET: i32 = 1;
    pub const RAW_OPENBSD: i32 = 12;
    pub const RAW_BSDOS: i32 = 14;
    pub const RAW: i32 = 101;
    pub const LOOP: i32 = 108;
    pub const LINUX_SLL: i32 = 113;
    pub const IPV4: i32 = 228;
    pub const IPV6: i32 = 229;
    pub const LINUX_SLL2: i32 = 276;
}

/// The transport part of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TCP segment.
    Tcp {
        /// Sequence number of the first byte (of the SYN, if set).
        seq: u32,
        /// SYN flag.
        syn: bool,
        /// ACK flag.
        ack: bool,
        /// Acknowledgement number (valid with `ack`).
        ack_seq: u32,
        /// FIN flag.
        fin: bool,
        /// RST flag.
        rst: bool,
    },
    /// A UDP datagram.
    Udp,
}

/// A decoded TCP segment or UDP datagram.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// Payload bytes.
    pub payload: &'a [u8],
}

/// What a frame turned out to be.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// TCP or UDP over IP.
    Segment(Segment<'a>),
    /// Something else (ARP, ICMP, an IP fragment, an unsupported link type): not an error.
    Other,
    /// Bytes that do not decode (truncated or corrupt headers).
    Malformed,
}

/// Decode one frame of link type `linktype`.
pub fn decode(linktype: i32, data: &[u8]) -> Decoded<'_> {
    let sliced = match linktype {
        linktype::ETHERNET => SlicedPacket::from_ethernet(data),
        linktype::RAW | linktype::RAW_OPENBSD | linktype::RAW_BSDOS => SlicedPacket::from_ip(data),
        linktype::IPV4 | linktype::IPV6 => SlicedPacket::from_ip(data),
        linktype::NULL | linktype::LOOP => match data.get(4..) {
            // The family is in the capturing host's byte order; IP says its version itself.
            Some(ip) => SlicedPacket::from_ip(ip),
            None => return Decoded::Malformed,
        },
        linktype::LINUX_SLL => match (data.get(14..16), data.get(16..)) {
            (Some(p), Some(rest)) => {
                SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([p[0], p[1]])), rest)
            }
            _ => return Decoded::Malformed,
        },
        linktype::LINUX_SLL2 => match (data.get(0..2), data.get(20..)) {
            (Some(p), Some(rest)) => {
                SlicedPacket::from_ether_type(EtherType(u16::from_be_bytes([p[0], p[1]])), rest)
            }
            _ => return Decoded::Malformed,
        },
        _ => return Decoded::Other,
    };
    let Ok(packet) = sliced else {
        return Decoded::Malformed;
    };
    let (src_ip, dst_ip) = match &packet.net {
        Some(NetSlice::Ipv4(v4)) => (
            IpAddr::V4(v4.header().source_addr()),
            IpAddr::V4(v4.header().destination_addr()),
        ),
        Some(NetSlice::Ipv6(v6)) => (
            IpAddr::V6(v6.header().source_addr()),
            IpAddr::V6(v6.header().destination_addr()),
        ),
        _ => return Decoded::Other,
    };
    match packet.transport {
        Some(TransportSlice::Tcp(tcp)) => Decoded::Segment(Segment {
            src: SocketAddr::new(src_ip, tcp.source_port()),
            dst: SocketAddr::new(dst_ip, tcp.destination_port()),
            transport: Transport::Tcp {
                seq: tcp.sequence_number(),
                syn: tcp.syn(),
                ack: tcp.ack(),
                ack_seq: tcp.acknowledgment_number(),
                fin: tcp.fin(),
                rst: tcp.rst(),
            },
            payload: tcp.payload(),
        }),
        Some(TransportSlice::Udp(udp)) => Decoded::Segment(Segment {
            src: SocketAddr::new(src_ip, udp.source_port()),
            dst: SocketAddr::new(dst_ip, udp.destination_port()),
            transport: Transport::Udp,
            payload: udp.payload(),
        }),
        _ => Decoded::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 1234, 1000)
            .ack(1);
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("builds");
        out
    }

    #[test]
    fn raw_ip_and_null_and_sll2() {
        let ip = ipv4_tcp(b"GET /");
        let Decoded::Segment(s) = decode(linktype::RAW, &ip) else {
            panic!("raw ip");
        };
        assert_eq!(s.src, "10.0.0.1:40000".parse().expect("addr"));
        assert_eq!(s.payload, b"GET /");
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        assert!(matches!(decode(linktype::NULL, &null), Decoded::Segment(_)));
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0; 18]);
        sll2.extend_from_slice(&ip);
        assert!(matches!(
            decode(linktype::LINUX_SLL2, &sll2),
            Decoded::Segment(_)
        ));
    }

    #[test]
    fn truncated_is_malformed_never_a_panic() {
        let ip = ipv4_tcp(b"GET / HTTP/1.1\r\n");
        for cut in 0..ip.len() {
            let _ = decode(linktype::RAW, &ip[..cut]);
            let _ = decode(linktype::ETHERNET, &ip[..cut]);
            let _ = decode(linktype::LINUX_SLL, &ip[..cut]);
            let _ = decode(linktype::LINUX_SLL2, &ip[..cut]);
        }
        assert!(matches!(
            decode(linktype::RAW, &ip[..30]),
            Decoded::Malformed
        ));
        assert!(matches!(decode(9999, &ip), Decoded::Other));
    }
}
