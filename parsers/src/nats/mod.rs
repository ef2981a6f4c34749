//! NATS: the client protocol (<https://docs.nats.io/reference/reference-protocols/nats-protocol>)
//! as nats-server 2.x and its clients speak it, for a traced client or server alike.
//!
//! Framing is hand-written: no crate parses passively captured NATS bytes (client libraries
//! own their sockets and parse only the server side). Control lines are read up to `\n`
//! (at most [`MAX_LINE`]), operations in any case; PUB/HPUB/MSG/HMSG payloads are framed by
//! their byte count, whatever the split, and counted, never kept, but for the first
//! [`MAX_HEADERS`] header bytes (looked through for `traceparent`).
//!
//! Records (`Detail::Messaging`, `messaging.system.name` `nats`), role Client when the traced process
//! sent CONNECT/PUB/SUB, Server when it sent INFO/MSG:
//! - PUB/HPUB → `Send`, operation name `publish`; MSG/HMSG → `Process`, `process`. Destination is
//!   the subject, `body_size` the payload bytes without headers (captured or not),
//!   `traceparent` from the HPUB/HMSG headers (name in any case), `client_id` the `name` of
//!   the connection's CONNECT. `request_bytes` is the message's wire size. These are one-way:
//!   the record starts and ends when the message's last byte was moved.
//! - Verbose connections (CONNECT `"verbose":true`): nats-server answers every CONNECT, PUB,
//!   SUB and UNSUB with `+OK` or `-ERR`, in order; a PUB's record then runs from its first byte
//!   to its answer (`response_bytes` the answer's size), and a `-ERR` answer sets its error.
//! - `-ERR` that answers no PUB → an `Other` record named `error`. `error_type` is the error's
//!   kind with any quoted part cut off (`Permissions Violation for Publish to "a.b"` →
//!   `Permissions Violation for Publish`): one value per kind of failure, so an SRE can count
//!   and alert on it without one series per subject; `error_message` is the whole text
//!   (quotes nats-server adds removed) and `destination` the quoted subject, if any.
//! - INFO, CONNECT, SUB, UNSUB, PING, PONG, `+OK` make no record (they are framed and checked).
//!
//! Losses: a line that does not parse, or a payload not followed by `\r\n`, is
//! [`Loss::Malformed`]; a line over [`MAX_LINE`] is [`Loss::Oversized`]; then, as after a gap
//! of unknown length (or a known gap outside a payload), the framer drops bytes
//! ([`Loss::ResyncBytes`]) up to a line that parses as a known operation. A message cut off
//! by a gap or by the close, and a verbose PUB never answered, are [`Loss::UnmatchedRequest`];
//! a `+OK` with nothing waiting is [`Loss::UnmatchedResponse`]. After a loss on a verbose
//! connection answers can no longer be paired: later PUBs are one-way records.
//!
//! Not handled: the headers of a NATS status message (`NATS/1.0 503` no responders) are not
//! turned into an error; the reply subject of PUB/MSG is not reported.
//!
//! Stages: `infer` (first bytes), `line` (one control line, CONNECT options, headers), `frame`
//! (bytes → messages, per direction), `stitch` (messages → records).
//!
//! [`Loss::Malformed`]: crate::Loss::Malformed
//! [`Loss::Oversized`]: crate::Loss::Oversized
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::UnmatchedResponse`]: crate::Loss::UnmatchedResponse

mod frame;
mod infer;
mod line;
mod stitch;

#[cfg(test)]
mod tests;

pub use frame::{MAX_HEADERS, MAX_LINE};
pub use infer::infer;
pub use stitch::MAX_PENDING;

use frame::{Event, Framer, Message};
use stitch::Stitcher;

use crate::{Direction, Loss, Output, Parser, Protocol, Role};

/// NATS parser for one connection.
#[derive(Debug)]
pub struct NatsParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction client operations travel in, once seen.
    client_ops: Option<Direction>,
}

impl Default for NatsParser {
    fn default() -> Self {
        Self::new()
    }
}

impl NatsParser {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::default(),
            client_ops: None,
        }
    }

    fn handle(&mut self, dir: Direction, event: Event, out: &mut Output) {
        match event {
            Event::Message(msg) => self.message(dir, msg, out),
            Event::Lost(cut) => {
                if cut {
                    out.lose(Loss::UnmatchedRequest, 1);
                }
                self.stitch.lost(out);
            }
        }
    }

    fn message(&mut self, dir: Direction, msg: Message, out: &mut Output) {
        if self.client_ops.is_none() {
            self.client_ops = msg
                .verb
                .sent_by_client()
                .map(|client| if client { dir } else { dir.flip() });
        }
        let Some(client_ops) = self.client_ops else {
            return; // PING/PONG before anything tells the roles.
        };
        let role = role_of(client_ops);
        if dir == client_ops {
            self.stitch.client_sent(msg, role, out);
        } else {
            self.stitch.server_sent(msg, role, out);
        }
    }
}

fn role_of(client_ops: Direction) -> Role {
    match client_ops {
        Direction::Egress => Role::Client,
        Direction::Ingress => Role::Server,
    }
}

impl Parser for NatsParser {
    fn protocol(&self) -> Protocol {
        Protocol::Nats
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let mut input = bytes;
        while let Some(event) = self.framers[dir.index()].next(&mut input, ts_ns, out) {
            self.handle(dir, event, out);
        }
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        for event in self.framers[dir.index()].skip(len, ts_ns) {
            self.handle(dir, event, out);
        }
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {}

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        for framer in &self.framers {
            if framer.in_progress() {
                out.lose(Loss::UnmatchedRequest, 1);
            }
        }
        self.stitch.close(out);
    }

    fn role(&self) -> Option<Role> {
        self.client_ops.map(role_of)
    }
}
