//! Bytes → packets for one direction, incremental: 3-byte length + sequence id, payloads of
//! 16 MiB and more joined across physical packets, bytes not kept beyond a limit the caller
//! gives per packet (rows are counted, not buffered). Resynchronises after a gap by scanning
//! for a plausible packet header.

use super::infer::{Check, plausible_request, plausible_response};
use super::types::{Event, MAX_PHYSICAL, Packet};
use crate::output::{Loss, Output};

/// Most payload bytes kept of one packet (statements, handshakes); the rest is counted.
pub const MAX_PACKET: usize = 1 << 20;

/// Longest payload believed in the first header of a stream (a bigger one means the stream
/// was joined inside a packet).
const MAX_FIRST: u32 = 1 << 20;

/// Largest payload buffer kept for reuse.
const RECYCLE_MAX: usize = 64 * 1024;

/// Most bytes held while scanning for a packet header after a gap.
const MAX_SCAN: usize = 64 * 1024;

/// A packet whose payload is still arriving.
#[derive(Debug)]
struct Partial {
    seq: u8,
    len: u64,
    body: Vec<u8>,
    keep: usize,
    /// Payload bytes of the current physical packet still to come.
    left: u64,
    /// The current physical packet is 16 MiB - 1: another header follows.
    continued: bool,
    /// Bytes were not captured: keep no more (positions after the hole are unknown).
    holed: bool,
    wire_len: u64,
    start_ns: u64,
}

/// Where the framer stands.
#[derive(Debug, PartialEq, Eq)]
enum Mode {
    /// At a packet boundary or inside a packet.
    Synced,
    /// Looking for a packet header after a loss of sync.
    Hunting,
    /// Not MySQL any more (TLS, replication stream): everything is ignored.
    Opaque,
}

/// Frames one direction.
#[derive(Debug)]
pub(crate) struct Framer {
    mode: Mode,
    /// Requests (client → server) when true; decides what a plausible header is.
    requests: Option<bool>,
    header: [u8; 4],
    header_len: usize,
    header_start_ns: u64,
    current: Option<Partial>,
    /// Hunting: bytes being scanned. Synced: bytes found by the scan, framed before new input.
    carry: Vec<u8>,
    /// No header read yet: the stream may have been joined inside a packet.
    fresh: bool,
    /// A payload buffer handed back by the parser, for the next packet.
    spare: Vec<u8>,
}

impl Framer {
    /// A framer at a packet boundary.
    pub fn new() -> Self {
        Self {
            mode: Mode::Synced,
            requests: None,
            header: [0; 4],
            header_len: 0,
            header_start_ns: 0,
            current: None,
            carry: Vec::new(),
            fresh: true,
            spare: Vec::new(),
        }
    }

    /// Takes back a packet's payload buffer (small ones only) for the next packet.
    pub fn recycle(&mut self, mut body: Vec<u8>) {
        if body.capacity() <= RECYCLE_MAX {
            body.clear();
            self.spare = body;
        }
    }

    /// Tell the framer which messages it carries (for resynchronising).
    pub fn set_requests(&mut self, requests: bool) {
        self.requests = Some(requests);
    }

    /// Stop parsing this direction (TLS, replication).
    pub fn set_opaque(&mut self) {
        self.mode = Mode::Opaque;
        self.current = None;
        self.carry = Vec::new();
    }

    /// Drop what is in progress and scan for the next packet header.
    pub fn lose_sync(&mut self) {
        if self.mode == Mode::Opaque {
            return;
        }
        self.mode = Mode::Hunting;
        self.current = None;
        self.header_len = 0;
    }

    /// The next event from `input` (advanced past what was used); `keep` bounds the payload
    /// bytes kept of a packet that starts in this call.
    pub fn next(
        &mut self,
        input: &mut &[u8],
        ts_ns: u64,
        keep: usize,
        out: &mut Output,
    ) -> Option<Event> {
        loop {
            match self.mode {
                Mode::Opaque => {
                    *input = &[];
                    return None;
                }
                Mode::Hunting => {
                    if !self.hunt(input, out) {
                        return None;
                    }
                }
                Mode::Synced if !self.carry.is_empty() => {
                    let carry = std::mem::take(&mut self.carry);
                    let mut rest: &[u8] = &carry;
                    let event = self.step(&mut rest, ts_ns, keep);
                    if self.mode == Mode::Hunting {
                        // Put what the step did not use back in front of the scan.
                        let mut again = rest.to_vec();
                        again.extend_from_slice(&self.carry);
                        self.carry = again;
                    } else {
                        self.carry = rest.to_vec();
                    }
                    if event.is_some() {
                        return event;
                    }
                }
                Mode::Synced => {
                    let event = self.step(input, ts_ns, keep);
                    if event.is_none() && self.mode == Mode::Hunting {
                        continue;
                    }
                    return event;
                }
            }
        }
    }

    /// Scans for a header; true when synced again.
    fn hunt(&mut self, input: &mut &[u8], out: &mut Output) -> bool {
        self.carry.extend_from_slice(input);
        *input = &[];
        let plausible = match self.requests {
            Some(false) => plausible_response,
            _ => plausible_request,
        };
        let mut at = 0;
        while at < self.carry.len() {
            match plausible(&self.carry[at..]) {
                Check::Yes => {
                    out.lose(Loss::ResyncBytes, at as u64);
                    self.carry.drain(..at);
                    self.mode = Mode::Synced;
                    return true;
                }
                Check::Partial => break,
                Check::No => at += 1,
            }
        }
        out.lose(Loss::ResyncBytes, at as u64);
        self.carry.drain(..at);
        if self.carry.len() > MAX_SCAN {
            out.lose(Loss::ResyncBytes, self.carry.len() as u64);
            self.carry.clear();
        }
        false
    }

    /// Frames from `input` while synced.
    fn step(&mut self, input: &mut &[u8], ts_ns: u64, keep: usize) -> Option<Event> {
        loop {
            let need_header = self.current.as_ref().is_none_or(|p| p.left == 0);
            if need_header {
                if let Some(p) = self.current.as_ref()
                    && !p.continued
                {
                    return self.current.take().map(|p| finish(p, ts_ns));
                }
                if self.header_len == 0
                    && let Some((h, rest)) = input.split_first_chunk::<4>()
                {
                    // Fast path: the whole header in this call.
                    self.header = *h;
                    self.header_len = 4;
                    self.header_start_ns = ts_ns;
                    *input = rest;
                }
                while self.header_len < 4 {
                    let (&b, rest) = input.split_first()?;
                    if self.header_len == 0 {
                        self.header_start_ns = ts_ns;
                    }
                    self.header[self.header_len] = b;
                    self.header_len += 1;
                    *input = rest;
                }
                self.header_len = 0;
                let len = u32::from_le_bytes([self.header[0], self.header[1], self.header[2], 0]);
                let seq = self.header[3];
                if std::mem::take(&mut self.fresh)
                    && len > MAX_FIRST
                    && seq != 0
                    && self.carry.is_empty()
                {
                    // Joined inside a packet: what was read is not a header. (Only a command, seq
                    // 0, may be this long at the start of an exchange.)
                    self.mode = Mode::Hunting;
                    self.carry = self.header.to_vec();
                    self.carry.extend_from_slice(input);
                    *input = &[];
                    return None;
                }
                match self.current.as_mut() {
                    Some(p) => {
                        p.left = u64::from(len);
                        p.len += u64::from(len);
                        p.continued = len == MAX_PHYSICAL;
                        p.wire_len += 4;
                    }
                    None => {
                        let keep = keep.min(MAX_PACKET);
                        let mut body = std::mem::take(&mut self.spare);
                        body.reserve((len as usize).min(keep));
                        self.current = Some(Partial {
                            seq,
                            len: u64::from(len),
                            body,
                            keep,
                            left: u64::from(len),
                            continued: len == MAX_PHYSICAL,
                            holed: false,
                            wire_len: 4,
                            start_ns: self.header_start_ns,
                        })
                    }
                }
                continue;
            }
            let p = self.current.as_mut()?;
            if input.is_empty() {
                return None;
            }
            let n = usize::try_from(p.left)
                .unwrap_or(usize::MAX)
                .min(input.len());
            let (used, rest) = input.split_at(n);
            if !p.holed && p.body.len() < p.keep {
                let room = p.keep - p.body.len();
                p.body.extend_from_slice(&used[..n.min(room)]);
            }
            p.left -= n as u64;
            p.wire_len += n as u64;
            *input = rest;
        }
    }

    /// `len` bytes were moved but not seen; events that follow from it.
    pub fn skip(&mut self, len: Option<u64>, ts_ns: u64) -> Vec<Event> {
        match self.mode {
            Mode::Opaque => return Vec::new(),
            Mode::Hunting => {
                self.carry.clear();
                return Vec::new();
            }
            Mode::Synced => {}
        }
        let inside = self.carry.is_empty() && self.header_len == 0;
        if let (true, Some(n), Some(p)) = (inside, len, self.current.as_mut())
            && n <= p.left
        {
            if n == 0 {
                return Vec::new();
            }
            p.left -= n;
            p.wire_len += n;
            p.holed = true;
            if p.left == 0 && !p.continued {
                return self
                    .current
                    .take()
                    .map(|p| vec![finish(p, ts_ns)])
                    .unwrap_or_default();
            }
            return Vec::new();
        }
        if len == Some(0) {
            return Vec::new();
        }
        self.carry.clear();
        self.lose_sync();
        vec![Event::Lost]
    }

    /// The direction ended: a packet in progress is lost.
    pub fn end(&mut self) -> Option<Event> {
        let partial = self.current.take().is_some() || self.header_len > 0;
        self.header_len = 0;
        (partial && self.mode == Mode::Synced).then_some(Event::Lost)
    }
}

fn finish(p: Partial, ts_ns: u64) -> Event {
    Event::Packet(Packet {
        seq: p.seq,
        len: p.len,
        body: p.body,
        wire_len: p.wire_len,
        start_ns: p.start_ns,
        end_ns: ts_ns,
    })
}

/// A length-encoded integer at the start of `b`: its value and its size.
pub(crate) fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    let (&first, rest) = b.split_first()?;
    let wide = |n: usize| -> Option<(u64, usize)> {
        let bytes = rest.get(..n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        Some((u64::from_le_bytes(v), n + 1))
    };
    match first {
        0..=0xfa => Some((u64::from(first), 1)),
        0xfc => wide(2),
        0xfd => wide(3),
        0xfe => wide(8),
        _ => None,
    }
}

/// A little-endian u16 at `at`.
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// A little-endian u32 at `at`.
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame_all(bytes: &[u8], chunk: usize) -> Vec<Event> {
        let mut f = Framer::new();
        let mut out = Output::default();
        let mut events = Vec::new();
        for (i, c) in bytes.chunks(chunk).enumerate() {
            let mut input = c;
            while let Some(e) = f.next(&mut input, i as u64, MAX_PACKET, &mut out) {
                events.push(e);
            }
        }
        events
    }

    #[test]
    fn packets_split_anywhere() {
        let bytes = b"\x01\x00\x00\x00\x0e\x03\x00\x00\x01abc\x00\x00\x00\x02";
        for chunk in 1..bytes.len() {
            let got = frame_all(bytes, chunk);
            let bodies: Vec<(u8, Vec<u8>)> = got
                .iter()
                .map(|e| match e {
                    Event::Packet(p) => (p.seq, p.body.clone()),
                    Event::Lost => (255, Vec::new()),
                })
                .collect();
            assert_eq!(
                bodies,
                vec![(0, b"\x0e".to_vec()), (1, b"abc".to_vec()), (2, Vec::new())],
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn continued_payload_is_one_packet() {
        let mut bytes = vec![0xff, 0xff, 0xff, 0x00];
        bytes.extend(std::iter::repeat_n(b'a', MAX_PHYSICAL as usize));
        bytes.extend_from_slice(&[0x02, 0x00, 0x00, 0x01, b'b', b'c']);
        let got = frame_all(&bytes, 1 << 16);
        let [Event::Packet(p)] = &got[..] else {
            panic!("{} events", got.len())
        };
        assert_eq!(p.len, u64::from(MAX_PHYSICAL) + 2);
        assert_eq!(p.body.len(), MAX_PACKET);
        assert_eq!(p.wire_len, p.len + 8);
    }

    #[test]
    fn lenenc_forms() {
        assert_eq!(lenenc(b"\x05"), Some((5, 1)));
        assert_eq!(lenenc(b"\xfc\x01\x02"), Some((0x0201, 3)));
        assert_eq!(lenenc(b"\xfd\x01\x02\x03"), Some((0x030201, 4)));
        assert_eq!(
            lenenc(b"\xfe\x01\x00\x00\x00\x00\x00\x00\x00"),
            Some((1, 9))
        );
        assert_eq!(lenenc(b"\xfc\x01"), None);
        assert_eq!(lenenc(b"\xff"), None);
        assert_eq!(lenenc(b""), None);
    }
}
