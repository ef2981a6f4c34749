//! Protocol inference: does a first datagram, or the first bytes of a TCP stream, hold a DNS
//! message? Only a plausible standard query or its response is claimed: opcode QUERY, one
//! question that parses with a known class, counts that fit, and for a query no answers.

use crate::{Direction, Inference, Protocol, Role};

use super::message::{HEADER_LEN, parse_head};

/// Confidence for a plausible datagram.
pub const DATAGRAM_CONFIDENCE: u8 = 80;
/// Confidence for a plausible length-prefixed message on a stream.
pub const STREAM_CONFIDENCE: u8 = 70;
/// Smallest resource record on the wire.
const MIN_RR_LEN: usize = 11;
/// Additional records a query may carry (OPT, TSIG).
const MAX_QUERY_ADDITIONAL: u16 = 2;

/// How sure the first bytes of a TCP stream in `dir` are DNS (a length-prefixed message).
pub fn infer(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = dir;
    let [hi, lo, rest @ ..] = bytes else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let msg = rest.get(..len.min(rest.len()))?;
    let sender_role = plausible(msg, len, rest.len() >= len)?;
    Some(Inference {
        protocol: Protocol::Dns,
        confidence: STREAM_CONFIDENCE,
        sender_role: Some(sender_role),
    })
}

/// How sure a first UDP datagram of `dir` is a DNS message.
pub fn infer_datagram(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = dir;
    let sender_role = plausible(bytes, bytes.len(), true)?;
    Some(Inference {
        protocol: Protocol::Dns,
        confidence: DATAGRAM_CONFIDENCE,
        sender_role: Some(sender_role),
    })
}

/// Whether a stream feed starts with a length prefix and a message header and question that
/// parse (any opcode): where framing resumes after it was lost.
pub(crate) fn plausible_stream_start(bytes: &[u8]) -> bool {
    let [hi, lo, rest @ ..] = bytes else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let msg = &rest[..len.min(rest.len())];
    parse_head(msg).is_some_and(|head| {
        len >= HEADER_LEN && head.qdcount <= 1 && head.opcode() <= 6 && !head.z_bit()
    })
}

/// The sender's role if `msg` (the first `msg.len()` of `len` bytes; all of it when
/// `complete`) is a plausible standard query (client) or response (server).
fn plausible(msg: &[u8], len: usize, complete: bool) -> Option<Role> {
    let head = parse_head(msg)?;
    let question = head.question.as_ref()?;
    let class_ok = matches!(question.qclass & 0x7FFF, 1 | 3 | 4 | 254 | 255);
    if head.opcode() != 0 || head.qdcount != 1 || head.z_bit() || !class_ok || question.qtype == 0 {
        return None;
    }
    let room = len.checked_sub(question.end)?;
    if head.record_count() * MIN_RR_LEN > room {
        return None;
    }
    if head.is_response() {
        return Some(Role::Server);
    }
    let bare_query = head.rcode() == 0
        && head.ancount == 0
        && head.nscount == 0
        && head.arcount <= MAX_QUERY_ADDITIONAL;
    // A complete query ends with its records: the question alone when it has none.
    let sized = !complete || head.arcount > 0 || question.end == len;
    (bare_query && sized).then_some(Role::Client)
}
