//! Recognising NATS from one direction's first bytes. Stateless.

use crate::{Direction, Inference, Protocol, Role};

use super::line::{self, Verb};

/// Longest first line looked at.
const MAX_INFER_LINE: usize = 4096;

/// NATS's opinion of the first bytes of `_dir`:
/// - 95: a server's `INFO {` (sender Server), a client's `CONNECT {` (sender Client): every
///   connection opens with them;
/// - 70: a whole PUB/HPUB/MSG/HMSG line whose payload is there and ends where the byte count
///   says (`\r\n`); 50 when the payload is not all there yet; 50 for SUB/UNSUB;
/// - 45: `-ERR '...'` (nats-server quotes its errors; Redis's do not start with a quote);
/// - 20: `PING`, `PONG`, `+OK` alone: Redis claims `PING` (60) and `+OK` (40) higher;
/// - `None` for anything else, including a line not ended by `\r\n` yet.
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let (confidence, sender_role) = if bytes.starts_with(b"INFO {") {
        (95, Some(Role::Server))
    } else if bytes.starts_with(b"CONNECT {") {
        (95, Some(Role::Client))
    } else {
        first_line(bytes)?
    };
    Some(Inference {
        protocol: Protocol::Nats,
        confidence,
        sender_role,
    })
}

/// The confidence a first control line (and its payload, when there) gives.
fn first_line(bytes: &[u8]) -> Option<(u8, Option<Role>)> {
    let head = bytes.get(..bytes.len().min(MAX_INFER_LINE))?;
    let eol = memchr::memchr(b'\n', head)?;
    let line = head.get(..eol)?.strip_suffix(b"\r")?;
    let control = line::parse(line)?;
    let role = control.verb.sent_by_client().map(
        |client| {
            if client { Role::Client } else { Role::Server }
        },
    );
    let confidence = match control.verb {
        Verb::Pub | Verb::Hpub | Verb::Msg | Verb::Hmsg => {
            let payload_at = eol + 1;
            let end = usize::try_from(control.total_len)
                .ok()
                .and_then(|n| payload_at.checked_add(n))?;
            match bytes.get(end..end.checked_add(2)?) {
                Some(b"\r\n") => 70,
                Some(_) => return None,
                None if bytes.len() <= end.saturating_add(1) => 50,
                None => return None,
            }
        }
        Verb::Sub | Verb::Unsub => 50,
        Verb::Err if control.rest.starts_with(b"'") => 45,
        Verb::Ping | Verb::Pong | Verb::Ok => 20,
        Verb::Err | Verb::Info | Verb::Connect => return None,
    };
    Some((confidence, role))
}
