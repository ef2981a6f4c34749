//! PostgreSQL frontend/backend protocol 3.0 (PostgreSQL 7.4 and later; "Frontend/Backend
//! Protocol" chapter of the PostgreSQL 15 documentation).
//!
//! Handled, for a traced client or server alike (the direction that sends frontend messages
//! makes the role: egress → client):
//! - startup: StartupMessage (the `database` parameter, else `user`, is the namespace),
//!   authentication (not recorded), ParameterStatus `server_version`; SSLRequest and
//!   GSSENCRequest with their one-byte answer: after `N` the startup goes on in clear, after
//!   `S`/`G` the stream is encrypted and nothing more is parsed (TLS plaintext comes from the
//!   uprobes as its own stream);
//! - simple Query: one record per Query, ending at ReadyForQuery. A Query string holding
//!   several statements is one record with operation `BATCH`, no collection, and
//!   `batch_size` = the number of statements; its rows are the sum of the command tags';
//! - extended protocol: Parse (statement name → SQL, the unnamed statement too), Bind
//!   (portal → statement), Describe, Execute, Sync, Close (forgets a statement or portal); one
//!   record per Execute, ended by its CommandComplete, ErrorResponse, EmptyQueryResponse or
//!   PortalSuspended. Pipelining (several Executes before one Sync) pairs in order. The
//!   record starts at the first message of the Execute's group (the Parse/Bind/Describe sent
//!   since the previous Execute or Sync, else the Execute itself), and its request size
//!   counts that whole group. After an ErrorResponse the server skips to the Sync: the
//!   Executes still waiting get no answer and are counted as [`Loss::UnmatchedRequest`];
//! - COPY: the COPY statement is one record; CopyData/CopyDone/CopyFail are counted into its
//!   sizes, never kept; its rows come from the `COPY n` tag;
//! - ErrorResponse: SQLSTATE (field `C`) is the status code, field `M` the error message;
//!   CommandComplete tags (`SELECT 5`, `INSERT 0 3`, `UPDATE 2`...) give the rows, else the
//!   DataRows counted;
//! - joining mid-stream (no startup seen): typed messages are framed from the first byte, and
//!   statements whose Parse was not seen are recorded without text, the operation taken from
//!   the command tag;
//! - gaps: bytes not captured inside a body of known length are counted over (DataRow and
//!   CopyData bodies are never kept, other bodies up to [`MAX_BODY`], the rest counted as
//!   [`Loss::Oversized`]); a gap that breaks framing drops the requests waiting
//!   ([`Loss::UnmatchedRequest`]) and the framer scans for a plausible header (a known type
//!   byte with a length that fits it, and the header after it when in view), counting the
//!   bytes passed over as [`Loss::ResyncBytes`].
//!
//! Not handled: protocol 2.0; FunctionCall (no record); replication (CopyBoth) streams beyond
//! counting their bytes; NotificationResponse.
//!
//! Framing is hand-written. `pgwire` (the crate DESIGN.md names) decodes from a `BytesMut`
//! holding whole messages and copies every DataRow; it cannot count a body across bytes that
//! were never captured, and it has no way to resynchronise after a gap, which an observer
//! joining or losing events mid-stream needs. The message layout itself is small (a type
//! byte, a length, C strings), so `frame` and `stitch` read it directly.
//!
//! Stages: `infer` (first bytes), `frame` (bytes → messages, per direction), `stitch`
//! (messages → [`Record`](crate::Record)).
//!
//! [`Loss::UnmatchedRequest`]: crate::Loss::UnmatchedRequest
//! [`Loss::Oversized`]: crate::Loss::Oversized
//! [`Loss::ResyncBytes`]: crate::Loss::ResyncBytes

mod frame;
mod infer;
mod stitch;
mod types;

#[cfg(test)]
mod tests;

pub use frame::MAX_BODY;
pub use infer::infer;
pub use stitch::{MAX_PENDING, MAX_STATEMENT_BYTES, MAX_STATEMENTS};

use frame::Framer;
use stitch::{Action, Stitcher};
use types::{Event, UNTYPED};

use crate::output::Output;
use crate::protocol::Protocol;
use crate::record::Role;
use crate::{Direction, Parser};

/// PostgreSQL parser for one connection.
#[derive(Debug)]
pub struct PostgresParser {
    /// Indexed by [`Direction::index`].
    framers: [Framer; 2],
    stitch: Stitcher,
    /// The direction frontend messages travel in, once known.
    frontend: Option<Direction>,
}

impl Default for PostgresParser {
    fn default() -> Self {
        Self::new()
    }
}

impl PostgresParser {
    /// A parser that has seen nothing of the connection.
    pub fn new() -> Self {
        Self {
            framers: [Framer::new(), Framer::new()],
            stitch: Stitcher::new(),
            frontend: None,
        }
    }

    /// Runs `f` with the framer of `dir` and, beside it, the other framer and the shared state.
    fn split(
        &mut self,
        dir: Direction,
    ) -> (
        &mut Framer,
        &mut Framer,
        &mut Stitcher,
        &mut Option<Direction>,
    ) {
        let [egress, ingress] = &mut self.framers;
        let (this, other) = match dir {
            Direction::Egress => (egress, ingress),
            Direction::Ingress => (ingress, egress),
        };
        (this, other, &mut self.stitch, &mut self.frontend)
    }
}

/// Type bytes only a frontend sends.
fn frontend_only(tag: u8) -> bool {
    matches!(
        tag,
        UNTYPED | b'Q' | b'P' | b'B' | b'F' | b'X' | b'p' | b'f'
    )
}

/// Type bytes only a backend sends.
fn backend_only(tag: u8) -> bool {
    matches!(
        tag,
        b'R' | b'K'
            | b'Z'
            | b'T'
            | b'N'
            | b'I'
            | b'1'
            | b'2'
            | b'3'
            | b'n'
            | b's'
            | b't'
            | b'G'
            | b'W'
            | b'A'
            | b'V'
            | b'v'
    )
}

fn role_of(frontend: Direction) -> Role {
    match frontend {
        Direction::Egress => Role::Client,
        Direction::Ingress => Role::Server,
    }
}

/// Handles one framing event of direction `dir`.
fn handle(
    dir: Direction,
    event: Event<'_>,
    other: &mut Framer,
    stitch: &mut Stitcher,
    frontend: &mut Option<Direction>,
    out: &mut Output,
) {
    match event {
        Event::Lost => stitch.lost(out),
        Event::EncryptionAnswer(answer, _) => {
            frontend.get_or_insert(dir.flip());
            if answer != b'N' {
                other.set_opaque();
            }
        }
        Event::Message(m) => {
            if frontend.is_none() {
                if frontend_only(m.tag) {
                    *frontend = Some(dir);
                } else if backend_only(m.tag) {
                    *frontend = Some(dir.flip());
                }
            }
            let Some(front) = *frontend else {
                return; // Ambiguous, and nothing known yet: dropped.
            };
            if dir == front {
                if stitch.frontend(&m, out) == Action::ExpectEncryptionAnswer {
                    other.expect_encryption_answer();
                }
            } else {
                stitch.backend(&m, role_of(front), out);
            }
        }
    }
}

impl Parser for PostgresParser {
    fn protocol(&self) -> Protocol {
        Protocol::Postgres
    }

    fn feed(&mut self, dir: Direction, bytes: &[u8], ts_ns: u64, out: &mut Output) {
        let (this, other, stitch, frontend) = self.split(dir);
        this.feed(bytes, ts_ns, out, &mut |event, out| {
            handle(dir, event, other, stitch, frontend, out)
        });
    }

    fn skip(&mut self, dir: Direction, len: Option<u64>, ts_ns: u64, out: &mut Output) {
        let (this, other, stitch, frontend) = self.split(dir);
        this.skip(len, ts_ns, out, &mut |event, out| {
            handle(dir, event, other, stitch, frontend, out)
        });
    }

    fn end(&mut self, _dir: Direction, _ts_ns: u64, _out: &mut Output) {
        // Every message is length-delimited: nothing completes at a close.
    }

    fn close(&mut self, _ts_ns: u64, out: &mut Output) {
        if let Some(front) = self.frontend {
            self.stitch.close(role_of(front), out);
        } else {
            self.stitch.lost(out);
        }
    }

    fn role(&self) -> Option<Role> {
        self.frontend.map(role_of)
    }
}
