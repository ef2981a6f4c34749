//! Inference: does a direction's first bytes look like AMQP 0-9-1?
//!
//! - `AMQP\0\0\x09\x01`, the client's protocol header: 100, sent by the client;
//! - a whole Connection.Start method frame on channel 0 announcing version 0-9: 95, the server
//!   (90 when only its first bytes are there yet);
//! - joined mid-stream: a whole method frame of a known method, ended by `0xCE` where its size
//!   says: 60, with the sender when the method tells it; a heartbeat frame: 30.

use super::methods::{self, Sender};
use crate::{Direction, Inference, Protocol, Role};

/// The client's opening for AMQP 0-9-1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";

const HEARTBEAT: &[u8; 8] = b"\x08\x00\x00\x00\x00\x00\x00\xce";

/// How sure the first bytes of `dir` are AMQP 0-9-1.
pub fn infer(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let _ = dir;
    let (confidence, sender_role) = if bytes.starts_with(PROTOCOL_HEADER) {
        (100, Some(Role::Client))
    } else if bytes.starts_with(HEARTBEAT) {
        (30, None)
    } else {
        method_frame(bytes)?
    };
    Some(Inference {
        protocol: Protocol::Amqp,
        confidence,
        sender_role,
    })
}

/// A method frame at the start of `bytes`: confidence and sender.
fn method_frame(bytes: &[u8]) -> Option<(u8, Option<Role>)> {
    let head = bytes.get(..11)?;
    if head[0] != 1 {
        return None;
    }
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    let class = u16::from_be_bytes([head[7], head[8]]);
    let method = u16::from_be_bytes([head[9], head[10]]);
    let (_, sender) = methods::describe(class, method)?;
    if !(4..=super::frame::MAX_RESYNC).contains(&size) {
        return None;
    }
    let frame_end = bytes.get(7 + size as usize).copied();
    let role = match sender {
        Sender::Client => Some(Role::Client),
        Sender::Server => Some(Role::Server),
        Sender::Either => None,
    };
    // Connection.Start: version 0-9 right after the ids.
    if (class, method, channel) == (10, 10, 0) && bytes.get(11..13) == Some(&[0, 9]) {
        return match frame_end {
            Some(0xCE) => Some((95, role)),
            None => Some((90, role)),
            Some(_) => None,
        };
    }
    (frame_end == Some(0xCE)).then_some((60, role))
}
