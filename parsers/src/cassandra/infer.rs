//! Is this Cassandra CQL? Judged from the first bytes of one direction, statelessly: every
//! envelope starts with a header, so a join mid-stream is recognised too. The port is never
//! consulted.

use super::frame::{header_at, plausible, segment_header};
use super::types::{HEADER_LEN, opcode};
use crate::Direction;
use crate::protocol::{Inference, Protocol};
use crate::record::Role;

fn sure(confidence: u8, role: Role) -> Option<Inference> {
    Some(Inference {
        protocol: Protocol::Cassandra,
        confidence,
        sender_role: Some(role),
    })
}

/// How well the first bytes of `dir` look like CQL: a STARTUP carrying `CQL_VERSION` (100,
/// client); another request header, version 3–5, with a known opcode and a sane length (80,
/// client); a response header (60, server); a v5 segment header whose CRC24 matches around an
/// envelope header (80/60).
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let h = header_at(bytes);
    if let Some(h) = h.filter(plausible) {
        if h.length > 16 << 20 {
            return None;
        }
        if h.response {
            return sure(60, Role::Server);
        }
        if h.opcode == opcode::STARTUP {
            let body = &bytes[HEADER_LEN..];
            let window = &body[..body.len().min(h.length as usize).min(256)];
            if memchr::memmem::find(window, b"CQL_VERSION").is_some() {
                return sure(100, Role::Client);
            }
        }
        return sure(80, Role::Client);
    }
    for (compressed, at) in [(false, 6), (true, 8)] {
        if let Some(seg) = segment_header(bytes, compressed)
            && seg.self_contained
            && seg.uncompressed == 0
            && let Some(h) = bytes.get(at..).and_then(header_at).filter(plausible)
            && h.version == 5
        {
            return if h.response {
                sure(60, Role::Server)
            } else {
                sure(80, Role::Client)
            };
        }
    }
    None
}
