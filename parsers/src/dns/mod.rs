//! DNS: inference, framing, matching and records. (Being written.)

use crate::{Direction, Inference, Output, Parser, Protocol, Role};

/// How sure the first bytes of `dir` are DNS.
pub fn infer(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = (dir, bytes);
    None
}

/// How sure a first UDP datagram of `dir` is a DNS message.
pub fn infer_datagram(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = (dir, bytes);
    None
}

/// DNS parser for one connection.
#[derive(Debug, Default)]
pub struct DnsParser {
    role: Option<Role>,
}

impl DnsParser {
    /// A parser for a new connection.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Parser for DnsParser {
    fn protocol(&self) -> Protocol {
        Protocol::Dns
    }

    fn feed(&mut self, _dir: Direction, _bytes: &[u8], _ts_ns: u64, _out: &mut Output) {}

    fn skip(&mut self, _dir: Direction, _len: Option<u64>, _ts_ns: u64, _out: &mut Output) {}

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, _out: &mut Output) {}

    fn role(&self) -> Option<Role> {
        self.role
    }
}
