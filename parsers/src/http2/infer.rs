//! Recognising HTTP/2 from one direction's first bytes: the client preface, a server's first
//! SETTINGS frame, or (joined mid-stream) two consecutive plausible frame headers. Stateless.

use super::frame::{FrameHeader, HEADER_LEN, PREFACE, kind, plausible};
use crate::{Direction, Inference, Protocol, Role};

/// HTTP/2's opinion of the first bytes of `_dir`: 100 for the client preface, 80 for a
/// SETTINGS frame (what a server sends first), 60 for two consecutive frame headers that fit
/// together (a connection joined mid-stream; the sender's role is then unknown).
pub fn infer(_dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let guess = |confidence, sender_role| {
        Some(Inference {
            protocol: Protocol::Http2,
            confidence,
            sender_role,
        })
    };
    if bytes.starts_with(PREFACE) {
        return guess(100, Some(Role::Client));
    }
    let first: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    if !plausible(&first, 16_384) {
        return None;
    }
    let header = FrameHeader::parse(&first);
    let next = HEADER_LEN + header.len as usize;
    let second: Option<[u8; HEADER_LEN]> = bytes
        .get(next..next + HEADER_LEN)
        .and_then(|b| b.try_into().ok());
    let chained = second.is_some_and(|s| plausible(&s, 16_384));
    let whole = bytes.len() == next;
    if header.kind == kind::SETTINGS && header.flags == 0 && (chained || whole) {
        return guess(80, Some(Role::Server));
    }
    if chained {
        return guess(60, None);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
        let cases: &[(&[u8], Option<u8>)] = &[
            (PREFACE, Some(100)),
            (b"PRI * HTTP/2.0\r\n", None),
            (settings, Some(80)),
            (
                b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x08\x06\x00\x00\x00\x00\x00",
                Some(60),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", None),
            (b"\x00\x00\x06\x04\x00\x00\x00\x00", None),
            (b"*1\r\n$4\r\nPING\r\n", None),
        ];
        for (bytes, want) in cases {
            let got = infer(Direction::Egress, bytes).map(|i| i.confidence);
            assert_eq!(got, *want, "{bytes:?}");
        }
    }
}
