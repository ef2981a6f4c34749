//! Kafka: inference, framing, matching and records. (Being written.)

use crate::{Direction, Inference, Output, Parser, Protocol, Role};

/// How sure the first bytes of `dir` are Kafka.
pub fn infer(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = (dir, bytes);
    None
}

/// Kafka parser for one connection.
#[derive(Debug, Default)]
pub struct KafkaParser {
    role: Option<Role>,
}

impl KafkaParser {
    /// A parser for a new connection.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Parser for KafkaParser {
    fn protocol(&self) -> Protocol {
        Protocol::Kafka
    }

    fn feed(&mut self, _dir: Direction, _bytes: &[u8], _ts_ns: u64, _out: &mut Output) {}

    fn skip(&mut self, _dir: Direction, _len: Option<u64>, _ts_ns: u64, _out: &mut Output) {}

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, _out: &mut Output) {}

    fn role(&self) -> Option<Role> {
        self.role
    }
}
