//! `wirelens replay` on arbitrary capture bytes: pcap or pcapng signatures followed by
//! anything (bogus lengths, truncated records, garbage packets). It must not panic; it ends
//! with an error, a reported stop or counted skips.
#![no_main]

use std::{net::SocketAddr, sync::Arc};

use libfuzzer_sys::fuzz_target;
use wirelens::{
    cli::Side, conntrack::Context, metadata::sockets::SocketInfo, replay::replay_bytes,
    stats::Stats,
};
use wirelens_otel::{Observation, ProcessInfo};

struct Collect;

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
    fn emit(&mut self, _observation: Observation) {}
}

/// File signatures, so that most inputs get past detection.
const MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0x0a, 0x0d, 0x0d, 0x0a],
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let mut file = MAGICS[usize::from(choice) % MAGICS.len()].to_vec();
    file.extend_from_slice(rest);
    let side = match choice / 4 % 3 {
        0 => Side::Client,
        1 => Side::Server,
        _ => Side::Both,
    };
    let stats = Arc::new(Stats::default());
    let _ = replay_bytes(&file, side, 8, &stats, &mut Collect);
});
