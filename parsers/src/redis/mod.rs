//! Redis: placeholder until the parser lands (recognises nothing yet).

use crate::{Direction, Inference, Output, Parser, Protocol, Role};

/// How well the first bytes of `dir` look like Redis (nothing yet).
pub fn infer(_dir: Direction, _bytes: &[u8]) -> Option<Inference> {
    None
}

/// Redis parser for one connection.
#[derive(Debug, Default)]
pub struct RedisParser {}

impl RedisParser {
    /// A parser for a fresh connection.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Parser for RedisParser {
    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn feed(&mut self, _dir: Direction, _bytes: &[u8], _ts_ns: u64, _out: &mut Output) {}

    fn skip(&mut self, _dir: Direction, _len: Option<u64>, _ts_ns: u64, _out: &mut Output) {}

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, _out: &mut Output) {}

    fn role(&self) -> Option<Role> {
        None
    }
}
