//! Redis: RESP2 and RESP3 (<https://redis.io/docs/latest/develop/reference/protocol-spec/>),
//! as spoken by Redis 2.0 to 7.x and compatible servers.
//!
//! Handled, for a traced client or server alike (the direction that carries commands makes the
//! role):
//! - commands as arrays of bulk strings and as inline lines (`PING\r\n`); every RESP2 and RESP3
//!   reply type, nested to [`MAX_DEPTH`], attributes (`|`, not counted as a reply), streamed
//!   strings and aggregates (`$?`, `*?`);
//! - pipelining: replies pair with commands first in, first out, whatever the split;
//! - `SELECT n`: records after its `+OK` carry namespace `n` (default `"0"`); `RESET` goes back
//!   to 0;
//! - `MULTI`/`EXEC`: one record per command as Redis answers it (`+QUEUED` for queued ones);
//!   the `EXEC` record's `batch_size` is the number of commands queued since `MULTI`. The
//!   outcome of each queued command inside the `EXEC` array is not broken out;
//! - pub/sub: `SUBSCRIBE a b` gets one confirmation per channel and its record ends at the last;
//!   while subscribed (RESP2), `message`/`pmessage`/`smessage` arrays, and in RESP3 every `>`
//!   push (client-side caching invalidations included), are set aside, never taken for a
//!   reply; after `MONITOR`, the feed is set aside likewise;
//! - blocking commands (`BLPOP`...) get their real latency: a record runs from the first byte
//!   of the command to the last byte of its reply;
//! - errors (`-ERR ...`, `-WRONGTYPE ...`, RESP3 `!` blob errors): `status_code` is the prefix
//!   word, `error_message` the whole text;
//! - losing sync (a gap outside a bulk payload, malformed bytes, a line over [`MAX_LINE`]):
//!   waiting commands are counted as [`Loss::UnmatchedRequest`]; the command stream scans for
//!   the next `*<n>\r\n$`, counting what it passes over as [`Loss::ResyncBytes`]; replies are set
//!   aside ([`Loss::UnmatchedResponse`]) until a reply feed starts at a message boundary, the
//!   server has sent something since the loss, and the oldest waiting command was sent after
//!   both (so every reply still to come answers a command seen). Pairing a reply with the
//!   wrong command is worse than dropping both, so the rule is strict: the exchange after a
//!   lost reply is usually dropped too.
//!
//! Record fields: `operation` is the command word uppercased, with the subcommand for container
//! commands (`CLIENT SETNAME`, `CONFIG GET`); `query_text` is the operation and, for commands
//! whose first argument is a key or channel, that argument (`SET k v` → `SET k`), never a value
//! or a secret; `namespace` the database index; `collection` and `rows` are not set;
//! `batch_size` only on `EXEC`. Sizes are wire sizes, bytes moved but not captured included.
//!
//! Not handled: `SELECT` inside `MULTI` (applied at `EXEC` by Redis, not here);
//! `CLIENT REPLY OFF|SKIP` (replies that never come would shift the pairing until a loss);
//! replies to commands sent before the connection was first seen (a reply to an unseen
//! pipelined command pairs with the first seen one).
//!
//! Framing is hand-written. The `redis-protocol` crate (the design's choice) decodes only a
//! whole frame held in one buffer: a 100 KB value would have to be buffered, and re-decoded from
//! its start on every segment; and it has no way to count bytes moved but not captured
//! ([`Parser::skip`]) inside a bulk string; and it refuses some valid RESP3 (a set of maps, as
//! Redis 7 answers `COMMAND DOCS` over RESP3). Here a blob's payload is counted, never kept, and
//! the state of a reply of any size is a stack of element counts. The tests check the framing
//! against `redis-protocol` on the recorded streams.
//!
//! Stages: `infer` (first bytes, command tables), `frame` (bytes → messages, per direction),
//! `stitch` (commands ↔ replies → [`Record`](crate::Record)).
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::UnmatchedResponse`]: crate::Loss::UnmatchedResponse
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes

mod frame;
mod infer;
mod stitch;
mod types;

#[cfg(test)]
mod tests;

pub use frame::{MAX_DEPTH, MAX_LINE};
pub use infer::{KNOWN_COMMANDS, infer};
pub use stitch::MAX_PENDING;

use frame::Framer;
use stitch::Stitcher;
use types::{Event, Kind};

use crate::output::Output;
use crate::protocol::Protocol;
use crate::record::Role;
use crate::{Direction, Parser};

/// Redis parser for one connection.
#[derive(Debug)]
pub struct RedisParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction commands travel in, once seen.
    requests: Option<Direction>,
}

impl Default for RedisParser {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisParser {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::new(),
            requests: None,
        }
    }

    /// Server pushes and pub/sub messages seen and set aside (not replies, not losses).
    pub fn pushes(&self) -> u64 {
        self.stitch.pushes()
    }

    /// Decides which direction carries commands from the first message that tells.
    fn learn(&mut self, dir: Direction) {
        let msg = self.framers[dir.index()].message();
        let requests = if msg.is_command_shaped() {
            let word = msg.args.first().unwrap_or_default();
            if !(infer::is_known_command(word) || is_module_command(word)) {
                return;
            }
            dir
        } else {
            dir.flip()
        };
        self.requests = Some(requests);
        self.framers[requests.index()].set_kind(Kind::Request);
        self.framers[requests.flip().index()].set_kind(Kind::Response);
    }

    fn handle(&mut self, dir: Direction, event: Event, ts_ns: u64, out: &mut Output) {
        match event {
            Event::Message => {
                if self.requests.is_none() {
                    self.learn(dir);
                }
                let msg = self.framers[dir.index()].message();
                match self.requests {
                    Some(requests) if requests == dir => self.stitch.request(msg, out),
                    Some(requests) => self.stitch.response(msg, role_of(requests), out),
                    None => out.lose(crate::Loss::UnmatchedResponse, 1),
                }
            }
            Event::Lost => self.stitch.lost(ts_ns, out),
        }
    }
}

/// `MODULE.COMMAND` (`JSON.SET`, `FT.SEARCH`): commands of loaded modules.
fn is_module_command(word: &[u8]) -> bool {
    let mut parts = word.split(|&b| b == b'.');
    let ok = |p: Option<&[u8]>| {
        p.is_some_and(|p| !p.is_empty() && p.len() <= 32 && p.iter().all(u8::is_ascii_alphanumeric))
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn role_of(requests: Direction) -> Role {
    match requests {
        Direction::Egress => Role::Client,
        Direction::Ingress => Role::Server,
    }
}

impl Parser for RedisParser {
    fn protocol(&self) -> Protocol {
        Protocol::Redis
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        if self.requests.is_some_and(|r| r != dir)
            && self.framers[dir.index()].between_messages()
            && self.stitch.try_realign(out)
        {
            self.framers[dir.index()].resume();
        }
        let mut input = bytes;
        while let Some(event) = self.framers[dir.index()].next(&mut input, ts_ns, out) {
            self.handle(dir, event, ts_ns, out);
        }
        if self.requests != Some(dir) {
            self.stitch.reply_bytes_at(ts_ns);
        }
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        if let Some(event) = self.framers[dir.index()].skip(len, ts_ns) {
            self.handle(dir, event, ts_ns, out);
        }
        if self.requests != Some(dir) {
            self.stitch.reply_bytes_at(ts_ns);
        }
    }

    fn end(&mut self, dir: Direction, _ts_ns: u64, _out: &mut Output) {
        self.framers[dir.index()].end();
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        self.stitch.close(out);
    }

    fn role(&self) -> Option<Role> {
        self.requests.map(role_of)
    }
}
