//! Bytes → messages for one direction, incrementally: a type byte and a 4-byte length (or, at
//! the start of the frontend stream, a length and a request code), then the body. Bodies of
//! known length are counted over gaps; a gap that breaks framing resynchronises on the next
//! plausible header.

use super::types::{
    CANCEL_REQUEST, Event, GSSENC_REQUEST, Message, PROTOCOL_3, SSL_REQUEST, UNTYPED,
};
use crate::output::{Loss, Output};

/// Most body bytes kept for one message; the rest is counted ([`Loss::Oversized`]).
pub const MAX_BODY: usize = 1 << 20;

/// Largest length accepted in a header (PostgreSQL's own limit for a message is 1 GiB).
const MAX_LEN: u32 = 1 << 30;

/// Largest length believed while resynchronising (DataRow and CopyData are exempt up to
/// [`MAX_LEN`]).
const MAX_RESYNC_LEN: u32 = MAX_BODY as u32;

/// Type bytes of either direction (protocol 3.0).
pub fn is_known_tag(tag: u8) -> bool {
    matches!(
        tag,
        // Frontend.
        b'Q' | b'P' | b'B' | b'E' | b'D' | b'S' | b'C' | b'H' | b'X' | b'F' | b'p' | b'f' | b'd' | b'c'
        // Backend only.
        | b'R' | b'K' | b'Z' | b'T' | b'N' | b'I' | b'1' | b'2' | b'3' | b'n' | b's' | b't'
        | b'G' | b'W' | b'A' | b'V' | b'v'
    )
}

/// Whether a typed header is believable while scanning for one: the body's first byte, when
/// known, must fit too.
fn plausible(tag: u8, len: u32, first: Option<u8>) -> bool {
    if !is_known_tag(tag) || len < 4 {
        return false;
    }
    match tag {
        b'Z' => len == 5 && first.is_none_or(|b| matches!(b, b'I' | b'T' | b'E')),
        b'1' | b'2' | b'3' | b'n' | b'I' | b'c' | b'X' => len == 4,
        b'K' => len == 12,
        b'R' => (8..=4096).contains(&len) && first.is_none_or(|b| b == 0),
        b'Q' => {
            len > 5
                && len <= MAX_RESYNC_LEN
                && first.is_none_or(|b| b.is_ascii_graphic() || b.is_ascii_whitespace())
        }
        b'D' | b'd' => len <= MAX_LEN,
        b'C' | b'E' | b'N' => len > 5 && len <= 4096,
        _ => len <= MAX_RESYNC_LEN,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Start of the stream: an untyped message if the first byte is 0, else typed ones.
    Start,
    /// Reading a header (`hdr` holds what came).
    Header,
    /// Reading a body.
    Body,
    /// One byte answering an SSLRequest/GSSENCRequest.
    EncryptionAnswer,
    /// Scanning for a plausible header.
    Resync,
    /// Encrypted or otherwise not PostgreSQL any more: ignored.
    Opaque,
}

/// Framing state of one direction.
#[derive(Debug)]
pub struct Framer {
    state: State,
    /// Header bytes so far: 5 typed, 4 untyped.
    hdr: [u8; 5],
    hdr_len: usize,
    untyped: bool,
    tag: u8,
    /// Body bytes still to come.
    remaining: u64,
    wire_len: u64,
    /// Kept body bytes (a prefix, when oversized or holed); also the resync scan buffer.
    body: Vec<u8>,
    keep: bool,
    complete: bool,
    start_ns: u64,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// At the start of a stream.
    pub fn new() -> Self {
        Self {
            state: State::Start,
            hdr: [0; 5],
            hdr_len: 0,
            untyped: false,
            tag: 0,
            remaining: 0,
            wire_len: 0,
            body: Vec::new(),
            keep: false,
            complete: true,
            start_ns: 0,
        }
    }

    /// The next byte is the one-byte answer to an SSLRequest or GSSENCRequest.
    pub fn expect_encryption_answer(&mut self) {
        if matches!(self.state, State::Start | State::Header) && self.hdr_len == 0 {
            self.state = State::EncryptionAnswer;
        }
    }

    /// The stream is encrypted from here on: ignore it.
    pub fn set_opaque(&mut self) {
        self.state = State::Opaque;
        self.body = Vec::new();
    }

    /// Frames `input`, handing each event to `emit`.
    pub fn feed<F>(&mut self, input: &[u8], ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let mut input = input;
        while !input.is_empty() {
            match self.state {
                State::Opaque => return,
                State::Start => {
                    if input[0] == 0 {
                        self.untyped = true;
                        self.state = State::Header;
                    } else {
                        self.untyped = false;
                        self.state = State::Header;
                    }
                }
                State::EncryptionAnswer => {
                    let answer = input[0];
                    match answer {
                        b'S' | b'G' => {
                            input = &input[1..];
                            self.state = State::Opaque;
                            emit(Event::EncryptionAnswer(answer, ts_ns), out);
                        }
                        b'N' => {
                            input = &input[1..];
                            self.state = State::Header;
                            emit(Event::EncryptionAnswer(answer, ts_ns), out);
                        }
                        // An ErrorResponse from an old server, or something else: frame it.
                        _ => self.state = State::Header,
                    }
                }
                State::Header => {
                    let need = if self.untyped { 4 } else { 5 };
                    if self.hdr_len == 0 {
                        self.start_ns = ts_ns;
                    }
                    let n = (need - self.hdr_len).min(input.len());
                    self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
                    self.hdr_len += n;
                    input = &input[n..];
                    if self.hdr_len == need {
                        self.hdr_len = 0;
                        self.begin_body(ts_ns, out, emit);
                    }
                }
                State::Body => {
                    // Fast path: the whole body is here and nothing is buffered.
                    if self.body.is_empty() && self.complete && self.remaining <= input.len() as u64
                    {
                        let n = self.remaining as usize;
                        let (body, rest) = input.split_at(n);
                        input = rest;
                        self.remaining = 0;
                        let kept = if self.keep {
                            &body[..n.min(MAX_BODY)]
                        } else {
                            &[][..]
                        };
                        let complete = !self.keep || n <= MAX_BODY;
                        if !complete {
                            out.lose(Loss::Oversized, 1);
                        }
                        self.finish_with(kept, complete, ts_ns, emit, out);
                        continue;
                    }
                    let n = (self.remaining.min(input.len() as u64)) as usize;
                    if self.keep && self.complete {
                        let room = MAX_BODY - self.body.len().min(MAX_BODY);
                        if n > room {
                            self.complete = false;
                            out.lose(Loss::Oversized, 1);
                        }
                        self.body.extend_from_slice(&input[..n.min(room)]);
                    }
                    input = &input[n..];
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        self.finish(ts_ns, emit, out);
                    }
                }
                State::Resync => {
                    input = self.resync(input, out, emit);
                }
            }
        }
    }

    /// A header is complete: check it and start its body.
    fn begin_body<F>(&mut self, ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let (tag, len) = if self.untyped {
            (
                UNTYPED,
                u32::from_be_bytes([self.hdr[0], self.hdr[1], self.hdr[2], self.hdr[3]]),
            )
        } else {
            (
                self.hdr[0],
                u32::from_be_bytes([self.hdr[1], self.hdr[2], self.hdr[3], self.hdr[4]]),
            )
        };
        let ok = if self.untyped {
            (8..=10_000).contains(&len)
        } else {
            is_known_tag(tag) && (4..=MAX_LEN).contains(&len)
        };
        if !ok {
            // Not a header: joined mid-stream (a length of 0 at the start reads as untyped), or
            // garbage. Scan again from the byte after the one taken for its start.
            if !self.untyped {
                out.lose(Loss::Malformed, 1);
            }
            let need = if self.untyped { 4 } else { 5 };
            let hdr = self.hdr;
            self.lose_sync(emit, out);
            out.lose(Loss::ResyncBytes, 1);
            self.body.extend_from_slice(&hdr[1..need]);
            return;
        }
        self.tag = tag;
        self.remaining = u64::from(len) - 4;
        self.wire_len = u64::from(len) + u64::from(!self.untyped);
        self.keep = !matches!(tag, b'D' | b'd');
        self.complete = true;
        self.body.clear();
        self.state = State::Body;
        if self.remaining == 0 {
            self.finish(ts_ns, emit, out);
        }
    }

    fn finish<F>(&mut self, ts_ns: u64, emit: &mut F, out: &mut Output)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let body = std::mem::take(&mut self.body);
        let complete = self.complete;
        self.finish_with(&body, complete, ts_ns, emit, out);
        self.body = body;
        self.body.clear();
        if self.body.capacity() > 64 * 1024 {
            self.body = Vec::new();
        }
    }

    fn finish_with<F>(
        &mut self,
        body: &[u8],
        complete: bool,
        ts_ns: u64,
        emit: &mut F,
        out: &mut Output,
    ) where
        F: FnMut(Event<'_>, &mut Output),
    {
        let untyped = self.untyped;
        self.state = State::Header;
        if untyped {
            // After an SSLRequest/GSSENCRequest another untyped message (the startup) may come.
            let code = body
                .get(..4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            if !matches!(code, Some(SSL_REQUEST | GSSENC_REQUEST)) {
                self.untyped = false;
            }
            if !matches!(
                code,
                Some(PROTOCOL_3 | SSL_REQUEST | GSSENC_REQUEST | CANCEL_REQUEST)
            ) {
                // Protocol 2 or garbage that looked like a length.
                if code.is_some_and(|c| c >> 16 != 3) {
                    out.lose(Loss::Malformed, 1);
                }
            }
        }
        self.complete = true;
        emit(
            Event::Message(Message {
                tag: self.tag,
                body,
                complete,
                wire_len: self.wire_len,
                start_ns: self.start_ns,
                end_ns: ts_ns,
            }),
            out,
        );
    }

    /// `len` bytes were moved but not seen (`None`: an unknown amount).
    pub fn skip<F>(&mut self, len: Option<u64>, ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        match (self.state, len) {
            (State::Opaque, _) | (_, Some(0)) => {}
            (State::Resync, _) => {}
            (State::Body, Some(n)) if n <= self.remaining => {
                self.remaining -= n;
                if self.keep {
                    // The kept prefix stays; nothing after the hole is kept.
                    self.complete = false;
                }
                if self.remaining == 0 {
                    self.finish(ts_ns, emit, out);
                }
            }
            _ => self.lose_sync(emit, out),
        }
    }

    fn lose_sync<F>(&mut self, emit: &mut F, out: &mut Output)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        self.state = State::Resync;
        self.hdr_len = 0;
        self.untyped = false;
        self.body.clear();
        emit(Event::Lost, out);
    }

    /// Scans `input` (after what is buffered) for a plausible header; returns what is left to
    /// frame once one is found, or nothing while still scanning.
    fn resync<'i, F>(&mut self, input: &'i [u8], out: &mut Output, emit: &mut F) -> &'i [u8]
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        // Look at the carried bytes (at most 5) and the input as one sequence, without copying
        // the input.
        let carried = self.body.len();
        let at = |i: usize| -> Option<u8> {
            if i < carried {
                self.body.get(i).copied()
            } else {
                input.get(i - carried).copied()
            }
        };
        let total = carried + input.len();
        let mut found = None;
        let mut p = 0;
        while p + 5 <= total {
            let tag = at(p).unwrap_or(0);
            if is_known_tag(tag) {
                let len = u32::from_be_bytes([
                    at(p + 1).unwrap_or(0),
                    at(p + 2).unwrap_or(0),
                    at(p + 3).unwrap_or(0),
                    at(p + 4).unwrap_or(0),
                ]);
                if plausible(tag, len, at(p + 5)) {
                    // When the next header is in view, it must be plausible too.
                    let next = p + 1 + len as usize;
                    let chained = next + 5 > total || {
                        let ntag = at(next).unwrap_or(0);
                        let nlen = u32::from_be_bytes([
                            at(next + 1).unwrap_or(0),
                            at(next + 2).unwrap_or(0),
                            at(next + 3).unwrap_or(0),
                            at(next + 4).unwrap_or(0),
                        ]);
                        plausible(ntag, nlen, at(next + 5))
                    };
                    if chained {
                        found = Some(p);
                        break;
                    }
                }
            }
            p += 1;
        }
        match found {
            Some(p) => {
                out.lose(Loss::ResyncBytes, p as u64);
                self.state = State::Header;
                self.hdr_len = 0;
                if p < carried {
                    // The header starts in the carried bytes: re-feed them, then the input.
                    let carry = std::mem::take(&mut self.body);
                    let ts = self.start_ns;
                    self.feed(&carry[p..], ts, out, emit);
                    input
                } else {
                    self.body.clear();
                    &input[p - carried..]
                }
            }
            None => {
                // Keep the last 5 bytes (a header may straddle), count the rest.
                let keep = total.min(5);
                let mut tail = [0u8; 5];
                for (k, slot) in tail.iter_mut().enumerate().take(keep) {
                    *slot = at(total - keep + k).unwrap_or(0);
                }
                out.lose(Loss::ResyncBytes, (total - keep) as u64);
                self.body.clear();
                self.body.extend_from_slice(&tail[..keep]);
                &[]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tag, kept body, complete, wire length.
    type Framed = (u8, Vec<u8>, bool, u64);

    fn frames(chunks: &[&[u8]]) -> (Vec<Framed>, usize, Output) {
        let mut f = Framer::new();
        let mut out = Output::default();
        let mut got = Vec::new();
        let mut lost = 0;
        for c in chunks {
            f.feed(c, 1, &mut out, &mut |e, _| match e {
                Event::Message(m) => got.push((m.tag, m.body.to_vec(), m.complete, m.wire_len)),
                Event::Lost => lost += 1,
                Event::EncryptionAnswer(..) => {}
            });
        }
        (got, lost, out)
    }

    #[test]
    fn framing_table() {
        let startup: &[u8] = b"\0\0\0\x0b\0\x03\0\0a\0\0";
        let q: &[u8] = b"Q\0\0\0\x0dSELECT 1\0";
        let (got, lost, _) = frames(&[startup, q]);
        assert_eq!(lost, 0);
        assert_eq!(got[0], (UNTYPED, b"\0\x03\0\0a\0\0".to_vec(), true, 11));
        assert_eq!(got[1], (b'Q', b"SELECT 1\0".to_vec(), true, 14));
        // Byte by byte, same.
        let all = [startup, q].concat();
        let split: Vec<&[u8]> = all.chunks(1).collect();
        assert_eq!(frames(&split).0, got);
        // DataRow bodies are counted, not kept.
        let (got, _, _) = frames(&[b"D\0\0\0\x06\0\0", b"Z\0\0\0\x05I"]);
        assert_eq!(
            got,
            vec![(b'D', vec![], true, 7), (b'Z', b"I".to_vec(), true, 6)]
        );
        // A bad header loses sync, then the next plausible one is found.
        let (got, lost, out) = frames(&[b"Q\xff\xff\xff\xffjunkjunkZ\0\0\0\x05IZ\0\0\0\x05T"]);
        assert_eq!(lost, 1);
        assert_eq!(
            got,
            vec![
                (b'Z', b"I".to_vec(), true, 6),
                (b'Z', b"T".to_vec(), true, 6)
            ]
        );
        assert_eq!(out.losses(Loss::Malformed), 1);
        assert_eq!(out.losses(Loss::ResyncBytes), 13);
    }

    #[test]
    fn skip_inside_a_counted_body() {
        let mut f = Framer::new();
        let mut out = Output::default();
        let mut got = Vec::new();
        let mut emit = |e: Event<'_>, _: &mut Output| {
            if let Event::Message(m) = e {
                got.push((m.tag, m.complete, m.wire_len));
            }
        };
        f.feed(b"d\0\0\0\x0cab", 1, &mut out, &mut emit);
        f.skip(Some(4), 2, &mut out, &mut emit);
        f.feed(b"cdC\0\0\0\x0bCOPY 3\0", 3, &mut out, &mut emit);
        assert_eq!(got, vec![(b'd', true, 13), (b'C', true, 12)]);
    }
}
