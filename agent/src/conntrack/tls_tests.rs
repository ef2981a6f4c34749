//! Conntrack and TLS: plaintext from the OpenSSL probes replaces whatever ciphertext was seen
//! of a socket, and a connection keyed by its `SSL *` moves to its socket when it is named.

use std::{net::SocketAddr, sync::Arc};

use wirelens_ebpf::{DataHeader, EventKind, TlsAssocEvent, data_flags, direction, ip_proto};
use wirelens_otel::{Observation, ProcessInfo};
use wirelens_parsers::Role;

use super::{ConnTracker, Context};
use crate::{metadata::sockets::SocketInfo, stats::Stats};

const SK: u64 = 0xffff_8880_1234_5600;
const SSL: u64 = 0x5555_0000_1000;
const CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x03];
const REQUEST: &[u8] = b"GET /secret HTTP/1.1\r\nHost: localhost\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

#[derive(Default)]
struct Collect {
    records: Vec<Observation>,
    addrs: Option<(SocketAddr, SocketAddr)>,
}

impl Context for Collect {
    fn process(&mut self, _tgid: u32, _comm: &[u8; 16]) -> Arc<ProcessInfo> {
        Arc::new(ProcessInfo::default())
    }
    fn resolve_socket(&mut self, _tgid: u32, _fd: u32) -> Option<SocketInfo> {
        self.addrs.map(|(local, peer)| SocketInfo {
            local,
            peer,
            role: Role::Client,
        })
    }
    fn wanted(&self, addrs: Option<(SocketAddr, SocketAddr)>) -> bool {
        // As with a port filter on: unknown addresses do not pass.
        addrs.is_some()
    }
    fn emit(&mut self, observation: Observation) {
        self.records.push(observation);
    }
}

fn header(sk: u64, dir: u32, position: u64, len: usize, tls: bool) -> DataHeader {
    DataHeader {
        kind: EventKind::Data as u32,
        direction: dir,
        tgid: 42,
        tid: 42,
        fd: 7,
        syscall: 0,
        flags: if tls { data_flags::TLS } else { 0 },
        cap_len: len as u32,
        sk,
        ts_ns: 1_000 + position,
        position,
        len: len as u64,
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

fn addrs() -> (SocketAddr, SocketAddr) {
    let local = "127.0.0.1:40000".parse().expect("addr");
    let peer = "127.0.0.1:443".parse().expect("addr");
    (local, peer)
}

#[test]
fn plaintext_replaces_ciphertext_seen_first() {
    let mut cx = Collect {
        addrs: Some(addrs()),
        ..Collect::default()
    };
    let mut t = ConnTracker::new(16, Arc::new(Stats::default()));
    // The handshake as the socket saw it (a connection joined before the kernel marked it).
    let h = header(SK, direction::EGRESS, 0, CLIENT_HELLO.len(), false);
    t.on_data(&h, CLIENT_HELLO, 1_000, &mut cx);
    let h = header(SK, direction::EGRESS, 0, REQUEST.len(), true);
    t.on_data(&h, REQUEST, 2_000, &mut cx);
    // Ciphertext after the switch is ignored, not parsed.
    let h = header(SK, direction::INGRESS, 0, CLIENT_HELLO.len(), false);
    t.on_data(&h, CLIENT_HELLO, 2_500, &mut cx);
    let h = header(SK, direction::INGRESS, 0, RESPONSE.len(), true);
    t.on_data(&h, RESPONSE, 3_000, &mut cx);
    assert_eq!(cx.records.len(), 1, "one exchange from the plaintext");
    assert!(cx.records[0].tls);
    assert_eq!(cx.records[0].peer, Some(addrs().1));
}

#[test]
fn connection_keyed_by_ssl_moves_to_its_socket() {
    let mut cx = Collect::default();
    let mut t = ConnTracker::new(16, Arc::new(Stats::default()));
    let h = header(SSL, direction::EGRESS, 0, REQUEST.len(), true);
    t.on_data(&h, REQUEST, 2_000, &mut cx);
    let h = header(SSL, direction::INGRESS, 0, RESPONSE.len(), true);
    t.on_data(&h, RESPONSE, 3_000, &mut cx);
    assert!(cx.records.is_empty(), "held: no addresses yet");
    cx.addrs = Some(addrs());
    t.on_tls_assoc(
        &TlsAssocEvent {
            kind: EventKind::TlsAssoc as u32,
            tgid: 42,
            fd: 7,
            _pad: 0,
            ssl: SSL,
            sk: SK,
        },
        &mut cx,
    );
    assert_eq!(cx.records.len(), 1, "released once the socket is known");
    assert!(cx.records[0].tls);
    assert_eq!(cx.records[0].local, Some(addrs().0));
    // Later plaintext comes under the socket key and continues the same streams.
    let h = header(
        SK,
        direction::EGRESS,
        REQUEST.len() as u64,
        REQUEST.len(),
        true,
    );
    t.on_data(&h, REQUEST, 4_000, &mut cx);
    let h = header(
        SK,
        direction::INGRESS,
        RESPONSE.len() as u64,
        RESPONSE.len(),
        true,
    );
    t.on_data(&h, RESPONSE, 5_000, &mut cx);
    assert_eq!(cx.records.len(), 2);
}
