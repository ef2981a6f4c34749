//! Bytes of one direction → HTTP/2 frames (RFC 9113 §4, §6), incremental, with the connection
//! preface (§3.4) and resynchronisation after a gap.
//!
//! DATA payloads are passed through as they come (never buffered), with padding removed;
//! the payloads of header-carrying and control frames are gathered whole (bounded by
//! [`MAX_BUFFERED`]); the payloads of PING, WINDOW_UPDATE, PRIORITY and unknown frame types
//! are skipped. A gap inside a payload keeps the framing (the length is known); a gap that
//! covers a frame header, or of unknown length, loses it: the framer then looks for two
//! consecutive plausible frame headers and starts again there.

use crate::output::{Loss, Output};

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame header length.
pub const HEADER_LEN: usize = 9;

/// Largest non-DATA payload gathered; a larger one is skipped as [`Loss::Oversized`].
pub const MAX_BUFFERED: usize = 256 * 1024;

/// Most bytes held while looking for frame headers after a loss of sync.
const MAX_RESYNC_HOLD: usize = 64 * 1024;

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags.
pub mod flag {
    /// END_STREAM (DATA, HEADERS); ACK (SETTINGS, PING).
    pub const END_STREAM: u8 = 0x1;
    /// ACK (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_HEADERS (HEADERS, PUSH_PROMISE, CONTINUATION).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED (DATA, HEADERS, PUSH_PROMISE).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY (HEADERS).
    pub const PRIORITY: u8 = 0x20;
}

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
}

impl FrameHeader {
    /// Reads the 9 header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5], b[6], b[7], b[8]]) & 0x7fff_ffff,
        }
    }

    /// Whether `flags` has `f`.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Frame size on the wire.
    pub fn wire_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// Whether 9 bytes look like a frame header a peer would send, with payloads of at most
/// `max_len`: known type, flags and stream id the type allows, lengths fixed by the type.
pub fn plausible(b: &[u8; HEADER_LEN], max_len: u32) -> bool {
    if b[5] & 0x80 != 0 {
        return false;
    }
    let h = FrameHeader::parse(b);
    if h.len > max_len {
        return false;
    }
    let on_stream = h.stream != 0;
    match h.kind {
        kind::DATA => on_stream && h.flags & !(flag::END_STREAM | flag::PADDED) == 0,
        kind::HEADERS => {
            on_stream
                && h.flags & !(flag::END_STREAM | flag::END_HEADERS | flag::PADDED | flag::PRIORITY)
                    == 0
        }
        kind::PRIORITY => on_stream && h.len == 5 && h.flags == 0,
        kind::RST_STREAM => on_stream && h.len == 4 && h.flags == 0,
        kind::SETTINGS => {
            !on_stream
                && h.flags & !flag::ACK == 0
                && h.len.is_multiple_of(6)
                && (!h.has(flag::ACK) || h.len == 0)
        }
        kind::PUSH_PROMISE => on_stream && h.flags & !(flag::END_HEADERS | flag::PADDED) == 0,
        kind::PING => !on_stream && h.len == 8 && h.flags & !flag::ACK == 0,
        kind::GOAWAY => !on_stream && h.len >= 8 && h.flags == 0,
        kind::WINDOW_UPDATE => h.len == 4 && h.flags == 0,
        kind::CONTINUATION => on_stream && h.flags & !flag::END_HEADERS == 0,
        _ => false,
    }
}

/// What framing produces, in stream order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The client connection preface.
    Preface,
    /// A whole non-DATA frame of a gathered type; `payload` as sent (padding included).
    Frame {
        /// Its header.
        header: FrameHeader,
        /// Its payload.
        payload: &'a [u8],
    },
    /// A gathered frame that could not be read whole: part of it fell in a gap (`prefix` is
    /// what was captured before the gap), or it was over [`MAX_BUFFERED`] (`prefix` empty).
    Damaged {
        /// Its header.
        header: FrameHeader,
        /// The start of its payload, as captured.
        prefix: &'a [u8],
    },
    /// A frame that is only counted (PING, WINDOW_UPDATE, PRIORITY, unknown types).
    Skipped(FrameHeader),
    /// A DATA frame begins.
    DataStart(FrameHeader),
    /// Data bytes (padding removed) of the DATA frame in progress on `stream`.
    Data {
        /// The frame's stream.
        stream: u32,
        /// The bytes.
        bytes: &'a [u8],
    },
    /// `len` data bytes of the DATA frame in progress on `stream` were not captured.
    DataGap {
        /// The frame's stream.
        stream: u32,
        /// How many.
        len: u64,
    },
    /// The DATA frame in progress is complete.
    DataEnd(FrameHeader),
    /// Sync was lost: bytes are being dropped until frame headers are found again. Any frame
    /// in progress is abandoned; whole frames may be missing.
    Lost,
}

/// Where the framer is.
#[derive(Debug)]
enum State {
    /// Nothing seen yet: the preface may come (`matched` bytes of it so far, held in `head`).
    Start { matched: usize },
    /// Reading a frame header: `have` bytes in `head`.
    Header { have: usize },
    /// Inside a DATA payload.
    Data(DataState),
    /// Gathering a payload into `buf`.
    Gather { header: FrameHeader },
    /// Passing over a payload (`left` bytes), reporting it when done as `then` says.
    Pass {
        header: FrameHeader,
        left: u64,
        then: PassEnd,
    },
    /// Looking for frame headers in `buf`.
    Lost,
}

/// What a passed-over payload is reported as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassEnd {
    /// [`Event::Skipped`].
    Skipped,
    /// [`Event::Damaged`] with no prefix (oversized).
    Damaged,
    /// Nothing: it was reported already.
    Quiet,
}

#[derive(Debug)]
struct DataState {
    header: FrameHeader,
    /// Payload bytes still to come.
    left: u64,
    /// Whether the pad-length byte is still to come.
    pad_byte: bool,
    /// Padding bytes at the end of the payload (known once the pad-length byte came).
    pad: u64,
}

/// One direction's framer.
#[derive(Debug)]
pub struct Framer {
    state: State,
    head: [u8; HEADER_LEN],
    buf: Vec<u8>,
    /// Largest payload the peer allows this direction's sender (SETTINGS_MAX_FRAME_SIZE).
    pub max_frame: u32,
    /// Sync was lost to a gap of known length: what follows it likely starts a frame (a
    /// capture is cut at the end of a call, and peers write whole frames per call).
    after_skip: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer at the start of a direction.
    pub fn new() -> Self {
        Self {
            state: State::Start { matched: 0 },
            head: [0; HEADER_LEN],
            buf: Vec::new(),
            max_frame: 16_384,
            after_skip: false,
        }
    }

    /// Whether sync is lost (bytes are being dropped).
    pub fn is_lost(&self) -> bool {
        matches!(self.state, State::Lost)
    }

    /// Frames `bytes`, handing each event to `emit`.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Output, emit: &mut impl FnMut(Event<'_>)) {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Start { matched } => {
                    let m = *matched;
                    let want = PREFACE.len() - m;
                    let n = want.min(bytes.len());
                    if bytes[..n] == PREFACE[m..m + n] {
                        bytes = &bytes[n..];
                        if m + n == PREFACE.len() {
                            self.state = State::Header { have: 0 };
                            emit(Event::Preface);
                        } else {
                            self.state = State::Start { matched: m + n };
                        }
                    } else {
                        // Not a preface: whatever matched is the start of a frame header.
                        let held: Vec<u8> = PREFACE[..m].to_vec();
                        self.state = State::Header { have: 0 };
                        self.feed(&held, out, emit);
                    }
                }
                State::Header { have } => {
                    let h = *have;
                    let n = (HEADER_LEN - h).min(bytes.len());
                    self.head[h..h + n].copy_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if h + n < HEADER_LEN {
                        self.state = State::Header { have: h + n };
                    } else {
                        self.begin(FrameHeader::parse(&self.head), out, emit);
                    }
                }
                State::Data(d) => {
                    if d.pad_byte {
                        d.pad_byte = false;
                        d.left -= 1;
                        d.pad = u64::from(bytes[0]);
                        bytes = &bytes[1..];
                        if d.pad > d.left {
                            out.lose(Loss::Malformed, 1);
                            d.pad = d.left;
                        }
                    } else {
                        let data_left = d.left - d.pad;
                        let n = (data_left.min(bytes.len() as u64)) as usize;
                        if n > 0 {
                            emit(Event::Data {
                                stream: d.header.stream,
                                bytes: &bytes[..n],
                            });
                            d.left -= n as u64;
                            bytes = &bytes[n..];
                        } else {
                            let n = (d.left.min(bytes.len() as u64)) as usize;
                            d.left -= n as u64;
                            d.pad -= n as u64;
                            bytes = &bytes[n..];
                        }
                    }
                    self.finish_data(emit);
                }
                State::Gather { header } => {
                    let header = *header;
                    let len = header.len as usize;
                    if self.buf.is_empty() && bytes.len() >= len {
                        // The whole payload is here: handed on where it lies, not copied.
                        emit(Event::Frame {
                            header,
                            payload: &bytes[..len],
                        });
                        bytes = &bytes[len..];
                        self.state = State::Header { have: 0 };
                        continue;
                    }
                    let want = len - self.buf.len();
                    let n = want.min(bytes.len());
                    self.buf.extend_from_slice(&bytes[..n]);
                    bytes = &bytes[n..];
                    if self.buf.len() == header.len as usize {
                        emit(Event::Frame {
                            header,
                            payload: &self.buf,
                        });
                        self.buf.clear();
                        self.state = State::Header { have: 0 };
                    }
                }
                State::Pass { left, .. } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    self.finish_pass(emit);
                }
                State::Lost => {
                    self.buf.extend_from_slice(bytes);
                    bytes = &[];
                    self.resync(out, emit);
                }
            }
        }
    }

    /// `len` bytes were moved but not captured (`None`: an unknown number).
    pub fn skip(&mut self, len: Option<u64>, out: &mut Output, emit: &mut impl FnMut(Event<'_>)) {
        let Some(len) = len else {
            self.lose(emit);
            return;
        };
        if len == 0 {
            return;
        }
        match &mut self.state {
            State::Data(d) if !d.pad_byte && len <= d.left => {
                let data_left = d.left - d.pad;
                let gap = len.min(data_left);
                d.left -= len;
                if len > data_left {
                    d.pad -= len - data_left;
                }
                if gap > 0 {
                    emit(Event::DataGap {
                        stream: d.header.stream,
                        len: gap,
                    });
                }
                self.finish_data(emit);
            }
            State::Gather { header } => {
                let header = *header;
                let remaining = u64::from(header.len) - self.buf.len() as u64;
                emit(Event::Damaged {
                    header,
                    prefix: &self.buf,
                });
                self.buf.clear();
                if len <= remaining {
                    self.state = State::Pass {
                        header,
                        left: remaining - len,
                        then: PassEnd::Quiet,
                    };
                    self.finish_pass(emit);
                } else {
                    self.lose(emit);
                    self.after_skip = true;
                }
            }
            State::Pass { left, .. } if len <= *left => {
                *left -= len;
                self.finish_pass(emit);
            }
            State::Lost => {
                out.lose(Loss::ResyncBytes, self.buf.len() as u64);
                self.buf.clear();
                self.after_skip = true;
            }
            _ => {
                self.lose(emit);
                self.after_skip = true;
            }
        }
    }

    /// Sync is lost from here on.
    fn lose(&mut self, emit: &mut impl FnMut(Event<'_>)) {
        if !self.is_lost() {
            emit(Event::Lost);
        }
        self.buf.clear();
        self.state = State::Lost;
        self.after_skip = false;
    }

    /// A frame header was read.
    fn begin(&mut self, header: FrameHeader, out: &mut Output, emit: &mut impl FnMut(Event<'_>)) {
        self.state = match header.kind {
            kind::DATA => {
                emit(Event::DataStart(header));
                State::Data(DataState {
                    header,
                    left: u64::from(header.len),
                    pad_byte: header.has(flag::PADDED) && header.len > 0,
                    pad: 0,
                })
            }
            kind::HEADERS
            | kind::CONTINUATION
            | kind::PUSH_PROMISE
            | kind::SETTINGS
            | kind::RST_STREAM
            | kind::GOAWAY => {
                if header.len as usize > MAX_BUFFERED {
                    out.lose(Loss::Oversized, 1);
                    State::Pass {
                        header,
                        left: u64::from(header.len),
                        then: PassEnd::Damaged,
                    }
                } else {
                    // GOAWAY debug data and big SETTINGS are rare; keep it simple.
                    self.buf.clear();
                    State::Gather { header }
                }
            }
            _ => State::Pass {
                header,
                left: u64::from(header.len),
                then: PassEnd::Skipped,
            },
        };
        // Empty payloads complete at once.
        match &self.state {
            State::Data(_) => self.finish_data(emit),
            State::Gather { header } if header.len == 0 => {
                emit(Event::Frame {
                    header: *header,
                    payload: &[],
                });
                self.state = State::Header { have: 0 };
            }
            State::Pass { .. } => self.finish_pass(emit),
            _ => {}
        }
    }

    fn finish_data(&mut self, emit: &mut impl FnMut(Event<'_>)) {
        if let State::Data(d) = &self.state
            && d.left == 0
            && !d.pad_byte
        {
            emit(Event::DataEnd(d.header));
            self.state = State::Header { have: 0 };
        }
    }

    fn finish_pass(&mut self, emit: &mut impl FnMut(Event<'_>)) {
        if let State::Pass {
            header,
            left: 0,
            then,
        } = self.state
        {
            match then {
                PassEnd::Skipped => emit(Event::Skipped(header)),
                PassEnd::Damaged => emit(Event::Damaged {
                    header,
                    prefix: &[],
                }),
                PassEnd::Quiet => {}
            }
            self.state = State::Header { have: 0 };
        }
    }

    /// Looks in `buf` for a frame header followed by another (or by the end of what is held,
    /// then waits); drops the bytes before it.
    fn resync(&mut self, out: &mut Output, emit: &mut impl FnMut(Event<'_>)) {
        let max = self.max_frame.max(16_384);
        let mut at = 0;
        let found = loop {
            let Some(first) = header_at(&self.buf, at) else {
                break None; // fewer than 9 bytes left: wait for more
            };
            if plausible(&first, max) && first[3] != kind::CONTINUATION {
                let next = at + HEADER_LEN + FrameHeader::parse(&first).len as usize;
                match header_at(&self.buf, next) {
                    Some(second) if plausible(&second, max) => break Some(at),
                    Some(_) => {}
                    // Right after a gap, one whole frame that ends what is held.
                    None if at == 0 && self.after_skip && next == self.buf.len() => {
                        break Some(at);
                    }
                    None if self.buf.len() <= MAX_RESYNC_HOLD => break None, // wait
                    None => {}
                }
            }
            at += 1;
        };
        let drop = match found {
            Some(at) => at,
            None => {
                // Keep what may still begin a header pair.
                let keep = self.buf.len().min(MAX_RESYNC_HOLD);
                let keep_from = self.buf.len() - keep;
                at.max(keep_from).min(self.buf.len())
            }
        };
        out.lose(Loss::ResyncBytes, drop as u64);
        self.buf.drain(..drop);
        if drop > 0 {
            self.after_skip = false;
        }
        if found.is_some() {
            self.after_skip = false;
            let held = std::mem::take(&mut self.buf);
            self.state = State::Header { have: 0 };
            self.feed(&held, out, emit);
        }
    }
}

fn header_at(buf: &[u8], at: usize) -> Option<[u8; HEADER_LEN]> {
    buf.get(at..at.checked_add(HEADER_LEN)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(framer: &mut Framer, bytes: &[u8]) -> Vec<String> {
        let mut out = Output::default();
        let mut got = Vec::new();
        framer.feed(bytes, &mut out, &mut |e| got.push(format!("{e:?}")));
        got
    }

    #[test]
    fn preface_then_settings() {
        let mut f = Framer::new();
        let mut b = PREFACE.to_vec();
        b.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        let got = frames(&mut f, &b);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0], "Preface");
        assert!(got[1].starts_with("Frame { header: FrameHeader { len: 6, kind: 4"));
    }

    #[test]
    fn padded_data_and_partial_preface_mismatch() {
        let mut f = Framer::new();
        // "P" then not the preface: 'P' = 0x50 is the first byte of a frame length.
        let got = frames(
            &mut f,
            b"\x00\x00\x05\x00\x09\x00\x00\x00\x01\x02ab\x00\x00",
        );
        assert_eq!(
            got,
            [
                "DataStart(FrameHeader { len: 5, kind: 0, flags: 9, stream: 1 })",
                "Data { stream: 1, bytes: [97, 98] }",
                "DataEnd(FrameHeader { len: 5, kind: 0, flags: 9, stream: 1 })",
            ]
        );
    }
}
