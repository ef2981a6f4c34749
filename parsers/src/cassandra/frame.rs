//! Bytes → envelopes for one direction, incrementally: a 9-byte header (version, flags,
//! stream id, opcode, body length), then the body. Bodies of known length are counted over
//! gaps; a gap that breaks framing resynchronises on the next plausible header. From a v5
//! connection's READY on, envelopes travel inside "modern framing" segments
//! ([`Segmenter`]): their payloads are unwrapped (and lz4-decompressed) before the envelope
//! framing sees them.

use super::types::{
    Event, FLAG_BETA, FLAG_COMPRESSION, FLAG_CUSTOM_PAYLOAD, FLAG_TRACING, FLAG_WARNING, Frame,
    HEADER_LEN, Header, is_request_opcode, is_response_opcode, opcode,
};
use crate::output::{Loss, Output};

/// Most body bytes kept for one envelope; the rest is counted ([`Loss::Oversized`]).
pub const MAX_BODY: usize = 1 << 20;

/// Largest body length believed (the protocol's own limit is 256 MiB).
const MAX_LEN: u32 = 256 << 20;

/// Largest segment payload (17 bits).
const MAX_SEGMENT: usize = (1 << 17) - 1;

/// Whether a header is believable: a known version, flags that version defines, an opcode of
/// the header's direction, a stream id that fits (-1 only for EVENT), a bounded length.
pub fn plausible(h: &Header) -> bool {
    let flags = match h.version {
        3 => FLAG_COMPRESSION | FLAG_TRACING,
        4 => FLAG_COMPRESSION | FLAG_TRACING | FLAG_CUSTOM_PAYLOAD | FLAG_WARNING,
        5 => FLAG_COMPRESSION | FLAG_TRACING | FLAG_CUSTOM_PAYLOAD | FLAG_WARNING | FLAG_BETA,
        _ => return false,
    };
    if h.flags & !flags != 0 || h.length > MAX_LEN {
        return false;
    }
    if h.response {
        is_response_opcode(h.opcode) && ((h.opcode == opcode::EVENT) == (h.stream == -1))
    } else {
        is_request_opcode(h.opcode) && h.stream >= 0
    }
}

/// The header at the start of `b`, if 9 bytes are there.
pub fn header_at(b: &[u8]) -> Option<Header> {
    let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
    Some(Header::read(h))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Resync,
}

/// Envelope framing of one direction.
#[derive(Debug)]
pub struct Framer {
    state: State,
    hdr: [u8; HEADER_LEN],
    hdr_len: usize,
    header: Option<Header>,
    remaining: u64,
    /// Kept body bytes; in [`State::Resync`], the carried scan bytes.
    body: Vec<u8>,
    complete: bool,
    start_ns: u64,
    /// Modern framing (v5 segments), once switched on (taken while it runs).
    segments: Option<Segmenter>,
    /// Whether modern framing is on.
    modern: bool,
    /// Set when this framer's own READY/AUTHENTICATE switched it: the rest of the input is
    /// segments.
    switched: bool,
    /// Whether the STARTUP asked for lz4 (v5 segments are then compressed).
    lz4: bool,
    /// Version of the last envelope framed, if any: segment headers are looked for only
    /// before any envelope or after v5 ones.
    last_version: Option<u8>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// At the start of a stream (or anywhere in it: every envelope has a header).
    pub fn new() -> Self {
        Self {
            state: State::Header,
            hdr: [0; HEADER_LEN],
            hdr_len: 0,
            header: None,
            remaining: 0,
            body: Vec::new(),
            complete: true,
            start_ns: 0,
            segments: None,
            modern: false,
            switched: false,
            lz4: false,
            last_version: None,
        }
    }

    /// From the next byte on, envelopes travel in v5 segments (`compressed`: lz4 segments).
    pub fn set_modern(&mut self, compressed: bool) {
        if !self.modern {
            self.modern = true;
            self.segments = Some(Segmenter::new(compressed));
        }
    }

    /// The STARTUP asked for lz4: v5 segments will be compressed.
    pub fn set_lz4(&mut self, lz4: bool) {
        self.lz4 = lz4;
    }

    /// Called after each envelope: a v5 READY or AUTHENTICATE switches the server's side to
    /// segments from the next byte.
    fn after_frame(&mut self, h: &Header) {
        self.last_version = Some(h.version);
        if !self.modern
            && h.version == 5
            && h.response
            && matches!(h.opcode, opcode::READY | opcode::AUTHENTICATE)
        {
            self.set_modern(self.lz4);
            self.switched = true;
        }
    }

    /// Frames `input`, handing each event to `emit`.
    pub fn feed<F>(&mut self, input: &[u8], ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let mut input = input;
        if !self.modern {
            input = self.envelopes(input, ts_ns, out, emit);
            self.switched = false;
        }
        if input.is_empty() {
            return;
        }
        if let Some(mut seg) = self.segments.take() {
            {
                seg.feed(input, ts_ns, out, &mut |step, out| match step {
                    SegStep::Payload(p) => {
                        self.envelopes(p, ts_ns, out, emit);
                    }
                    SegStep::Skip(n) => self.skip_envelopes(Some(n), ts_ns, out, emit),
                    SegStep::Lost => self.lose_sync(emit, out),
                    SegStep::Boundary => self.boundary(out),
                });
                self.segments = Some(seg);
            }
        }
    }

    /// `len` bytes were moved but not seen (`None`: an unknown amount).
    pub fn skip<F>(&mut self, len: Option<u64>, ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        match self.segments.take() {
            Some(mut seg) => {
                match seg.skip(len) {
                    SegStep::Skip(n) => self.skip_envelopes(Some(n), ts_ns, out, emit),
                    SegStep::Lost => self.lose_sync(emit, out),
                    _ => {}
                }
                self.segments = Some(seg);
            }
            None => self.skip_envelopes(len, ts_ns, out, emit),
        }
    }

    /// A self-contained segment starts: an envelope starts with it. After a loss this puts
    /// the envelope framing back in step without scanning.
    fn boundary(&mut self, out: &mut Output) {
        if self.state == State::Resync {
            out.lose(Loss::ResyncBytes, self.body.len() as u64);
            self.body.clear();
            self.state = State::Header;
            self.hdr_len = 0;
        }
    }

    /// Joined a v5 connection in modern framing: whether `b` starts with an uncompressed
    /// self-contained segment holding a v5 envelope (a CRC24 match and a plausible header).
    fn segment_start(&self, b: &[u8]) -> bool {
        if self.modern || self.last_version.is_some_and(|v| v != 5) {
            return false;
        }
        segment_header(b, false).is_some_and(|s| s.self_contained && s.payload >= HEADER_LEN)
            && b.get(6..)
                .and_then(header_at)
                .is_some_and(|h| h.version == 5 && plausible(&h))
    }

    /// Switches to segments because `segment_start` said so.
    fn join_segments(&mut self) {
        self.set_modern(false);
        self.switched = true;
        self.state = State::Header;
        self.hdr_len = 0;
    }

    /// Frames envelopes; returns what is left when a READY switched to segments.
    fn envelopes<'i, F>(
        &mut self,
        input: &'i [u8],
        ts_ns: u64,
        out: &mut Output,
        emit: &mut F,
    ) -> &'i [u8]
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let mut input = input;
        while !input.is_empty() {
            if self.switched {
                return input;
            }
            match self.state {
                State::Header => {
                    if self.hdr_len == 0 && self.segment_start(input) {
                        self.join_segments();
                        continue;
                    }
                    if self.hdr_len == 0 {
                        self.start_ns = ts_ns;
                        // Fast path: a whole envelope in view.
                        if let Some(h) = header_at(input)
                            && plausible(&h)
                            && (h.length as usize) <= MAX_BODY
                            && input.len() >= HEADER_LEN + h.length as usize
                        {
                            let end = HEADER_LEN + h.length as usize;
                            emit(
                                Event::Frame(Frame {
                                    header: h,
                                    body: &input[HEADER_LEN..end],
                                    complete: true,
                                    wire_len: end as u64,
                                    start_ns: ts_ns,
                                    end_ns: ts_ns,
                                }),
                                out,
                            );
                            input = &input[end..];
                            self.after_frame(&h);
                            continue;
                        }
                    }
                    let n = (HEADER_LEN - self.hdr_len).min(input.len());
                    self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
                    self.hdr_len += n;
                    input = &input[n..];
                    if self.hdr_len == HEADER_LEN {
                        self.hdr_len = 0;
                        self.begin_body(ts_ns, out, emit);
                    }
                }
                State::Body => {
                    let n = self.remaining.min(input.len() as u64) as usize;
                    if self.complete {
                        let room = MAX_BODY.saturating_sub(self.body.len());
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
                State::Resync => input = self.resync(input, ts_ns, out, emit),
            }
        }
        input
    }

    fn begin_body<F>(&mut self, ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let h = Header::read(&self.hdr);
        if !plausible(&h) {
            out.lose(Loss::Malformed, 1);
            let hdr = self.hdr;
            self.lose_sync(emit, out);
            out.lose(Loss::ResyncBytes, 1);
            self.body.extend_from_slice(&hdr[1..]);
            return;
        }
        self.header = Some(h);
        self.remaining = u64::from(h.length);
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
        self.state = State::Header;
        let Some(h) = self.header.take() else {
            return;
        };
        let body = std::mem::take(&mut self.body);
        emit(
            Event::Frame(Frame {
                header: h,
                body: &body,
                complete: self.complete,
                wire_len: HEADER_LEN as u64 + u64::from(h.length),
                start_ns: self.start_ns,
                end_ns: ts_ns,
            }),
            out,
        );
        self.after_frame(&h);
        self.body = body;
        self.body.clear();
        if self.body.capacity() > 64 * 1024 {
            self.body = Vec::new();
        }
        self.complete = true;
    }

    fn skip_envelopes<F>(&mut self, len: Option<u64>, ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        match (self.state, len) {
            (_, Some(0)) | (State::Resync, _) => {}
            (State::Body, Some(n)) if n <= self.remaining => {
                self.remaining -= n;
                self.complete = false;
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
        self.header = None;
        self.body.clear();
        emit(Event::Lost, out);
    }

    /// Scans the carried bytes and `input` for a plausible header (and, when in view, a
    /// plausible header after its body); returns what is left to frame.
    fn resync<'i, F>(
        &mut self,
        input: &'i [u8],
        ts_ns: u64,
        out: &mut Output,
        emit: &mut F,
    ) -> &'i [u8]
    where
        F: FnMut(Event<'_>, &mut Output),
    {
        let carried = self.body.len();
        let mut window = std::mem::take(&mut self.body);
        let total = carried + input.len();
        let at = |i: usize, buf: &[u8]| -> u8 {
            if i < carried {
                buf[i]
            } else {
                input[i - carried]
            }
        };
        let read = |p: usize, buf: &[u8]| -> Option<Header> {
            if p + HEADER_LEN > total {
                return None;
            }
            let mut h = [0u8; HEADER_LEN];
            for (k, b) in h.iter_mut().enumerate() {
                *b = at(p + k, buf);
            }
            Some(Header::read(&h))
        };
        let mut found = None;
        let mut p = 0;
        while p + HEADER_LEN <= total {
            if p >= carried && self.segment_start(&input[p - carried..]) {
                out.lose(Loss::ResyncBytes, p as u64);
                window.clear();
                self.body = window;
                self.join_segments();
                return &input[p - carried..];
            }
            if let Some(h) = read(p, &window)
                && plausible(&h)
            {
                let next = p + HEADER_LEN + h.length as usize;
                let chained = match read(next, &window) {
                    Some(n) => plausible(&n) && n.response == h.response,
                    None => true,
                };
                if chained {
                    found = Some(p);
                    break;
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
                    let carry = window.split_off(p);
                    window.clear();
                    self.body = window;
                    let rest = self.envelopes(&carry, ts_ns, out, emit);
                    if !rest.is_empty() {
                        // A READY in the carried bytes switched to segments: rare enough to
                        // resynchronise on them instead.
                        out.lose(Loss::ResyncBytes, rest.len() as u64);
                    }
                    input
                } else {
                    window.clear();
                    self.body = window;
                    &input[p - carried..]
                }
            }
            None => {
                let keep = total.min(HEADER_LEN - 1);
                let mut tail = [0u8; HEADER_LEN];
                for (k, slot) in tail.iter_mut().enumerate().take(keep) {
                    *slot = at(total - keep + k, &window);
                }
                out.lose(Loss::ResyncBytes, (total - keep) as u64);
                window.clear();
                window.extend_from_slice(&tail[..keep]);
                self.body = window;
                &[]
            }
        }
    }
}

/// CRC24 of a v5 segment header (`len` little-endian bytes of `bits`), as Cassandra computes
/// it (`org.apache.cassandra.net.Crc.crc24`).
pub fn crc24(mut bits: u64, len: usize) -> u32 {
    let mut crc: u32 = 0x0087_5060;
    for _ in 0..len {
        crc ^= ((bits & 0xff) as u32) << 16;
        bits >>= 8;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0197_4F0B;
            }
        }
    }
    crc & 0x00ff_ffff
}

/// A decoded segment header: payload length, uncompressed length (0: stored uncompressed),
/// self-contained flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Payload bytes on the wire.
    pub payload: usize,
    /// Length once decompressed; 0 when the payload is not compressed.
    pub uncompressed: usize,
    /// Whether the payload holds whole envelopes.
    pub self_contained: bool,
}

/// Reads a segment header (6 bytes, or 8 when `compressed`) and checks its CRC24.
pub fn segment_header(b: &[u8], compressed: bool) -> Option<SegmentHeader> {
    let n = if compressed { 5 } else { 3 };
    let b = b.get(..n + 3)?;
    let mut bits = 0u64;
    for (i, &x) in b[..n].iter().enumerate() {
        bits |= u64::from(x) << (8 * i);
    }
    let crc = u32::from(b[n]) | u32::from(b[n + 1]) << 8 | u32::from(b[n + 2]) << 16;
    if crc24(bits, n) != crc {
        return None;
    }
    let mask = (1u64 << 17) - 1;
    Some(if compressed {
        SegmentHeader {
            payload: (bits & mask) as usize,
            uncompressed: ((bits >> 17) & mask) as usize,
            self_contained: bits & (1 << 34) != 0,
        }
    } else {
        SegmentHeader {
            payload: (bits & mask) as usize,
            uncompressed: 0,
            self_contained: bits & (1 << 17) != 0,
        }
    })
}

/// What the segment layer hands to the envelope layer.
enum SegStep<'a> {
    /// Envelope bytes.
    Payload(&'a [u8]),
    /// Envelope bytes moved but not seen.
    Skip(u64),
    /// Segment framing lost.
    Lost,
    /// A self-contained segment starts here.
    Boundary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SegState {
    Header,
    Payload,
    Trailer,
    Resync,
}

/// v5 modern framing of one direction: segment header with CRC24, payload, CRC32 (not
/// checked: the observer trusts TCP).
#[derive(Debug)]
struct Segmenter {
    compressed: bool,
    state: SegState,
    hdr: [u8; 8],
    hdr_len: usize,
    seg: SegmentHeader,
    remaining: usize,
    /// A compressed payload being collected; in `Resync`, the carried scan bytes.
    buf: Vec<u8>,
    /// Whether bytes of the payload being collected were lost.
    holed: bool,
}

impl Segmenter {
    fn new(compressed: bool) -> Self {
        Self {
            compressed,
            state: SegState::Header,
            hdr: [0; 8],
            hdr_len: 0,
            seg: SegmentHeader {
                payload: 0,
                uncompressed: 0,
                self_contained: false,
            },
            remaining: 0,
            buf: Vec::new(),
            holed: false,
        }
    }

    fn hdr_size(&self) -> usize {
        if self.compressed { 8 } else { 6 }
    }

    fn feed<F>(&mut self, input: &[u8], _ts_ns: u64, out: &mut Output, emit: &mut F)
    where
        F: FnMut(SegStep<'_>, &mut Output),
    {
        let mut input = input;
        while !input.is_empty() {
            match self.state {
                SegState::Header => {
                    let need = self.hdr_size();
                    let n = (need - self.hdr_len).min(input.len());
                    self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
                    self.hdr_len += n;
                    input = &input[n..];
                    if self.hdr_len == need {
                        self.hdr_len = 0;
                        match segment_header(&self.hdr[..need], self.compressed) {
                            Some(seg) => self.begin(seg, emit, out),
                            None => {
                                out.lose(Loss::Malformed, 1);
                                self.state = SegState::Resync;
                                self.buf.clear();
                                self.buf.extend_from_slice(&self.hdr[1..need]);
                                out.lose(Loss::ResyncBytes, 1);
                                emit(SegStep::Lost, out);
                            }
                        }
                    }
                }
                SegState::Payload => {
                    let n = self.remaining.min(input.len());
                    if self.seg.uncompressed > 0 {
                        self.buf.extend_from_slice(&input[..n]);
                    } else {
                        emit(SegStep::Payload(&input[..n]), out);
                    }
                    input = &input[n..];
                    self.remaining -= n;
                    if self.remaining == 0 {
                        self.end_payload(emit, out);
                    }
                }
                SegState::Trailer => {
                    let n = self.remaining.min(input.len());
                    input = &input[n..];
                    self.remaining -= n;
                    if self.remaining == 0 {
                        self.state = SegState::Header;
                    }
                }
                SegState::Resync => input = self.resync(input, out, emit),
            }
        }
    }

    fn begin<F>(&mut self, seg: SegmentHeader, emit: &mut F, out: &mut Output)
    where
        F: FnMut(SegStep<'_>, &mut Output),
    {
        self.seg = seg;
        self.remaining = seg.payload;
        self.holed = false;
        self.buf.clear();
        if seg.self_contained {
            emit(SegStep::Boundary, out);
        }
        self.state = SegState::Payload;
        if self.remaining == 0 {
            self.end_payload(emit, out);
        }
    }

    fn end_payload<F>(&mut self, emit: &mut F, out: &mut Output)
    where
        F: FnMut(SegStep<'_>, &mut Output),
    {
        if self.seg.uncompressed > 0 {
            let plain = if self.holed {
                None
            } else {
                lz4_flex::block::decompress(&self.buf, self.seg.uncompressed).ok()
            };
            match plain {
                Some(plain) => emit(SegStep::Payload(&plain), out),
                None => {
                    if !self.holed {
                        out.lose(Loss::Malformed, 1);
                    }
                    emit(SegStep::Lost, out);
                }
            }
            self.buf.clear();
        }
        self.state = SegState::Trailer;
        self.remaining = 4;
    }

    fn skip(&mut self, len: Option<u64>) -> SegStep<'static> {
        match (self.state, len) {
            (_, Some(0)) | (SegState::Resync, _) => SegStep::Skip(0),
            (SegState::Payload, Some(n)) if n <= self.remaining as u64 => {
                self.remaining -= n as usize;
                if self.seg.uncompressed > 0 {
                    self.holed = true;
                    // The payload is dropped at its end; keep counting.
                    SegStep::Skip(0)
                } else {
                    SegStep::Skip(n)
                }
            }
            (SegState::Trailer, Some(n)) if n <= self.remaining as u64 => {
                self.remaining -= n as usize;
                if self.remaining == 0 {
                    self.state = SegState::Header;
                }
                SegStep::Skip(0)
            }
            _ => {
                self.state = SegState::Resync;
                self.buf.clear();
                self.hdr_len = 0;
                SegStep::Lost
            }
        }
    }

    /// Scans for a segment header whose CRC24 matches and that is self-contained.
    fn resync<'i, F>(&mut self, input: &'i [u8], out: &mut Output, emit: &mut F) -> &'i [u8]
    where
        F: FnMut(SegStep<'_>, &mut Output),
    {
        let need = self.hdr_size();
        let carried = self.buf.len();
        let mut joined = std::mem::take(&mut self.buf);
        // The carried bytes are fewer than a header: joining a header's worth is cheap.
        let take = input.len().min(need);
        joined.extend_from_slice(&input[..take]);
        let scan = |b: &[u8]| {
            segment_header(b, self.compressed)
                .filter(|s| s.self_contained && s.payload > 0 && s.payload <= MAX_SEGMENT)
        };
        for p in 0..carried {
            if scan(&joined[p..]).is_some() {
                out.lose(Loss::ResyncBytes, p as u64);
                self.state = SegState::Header;
                let rest = joined[p..carried].to_vec();
                self.buf = Vec::new();
                self.feed(&rest, 0, out, emit);
                return input;
            }
        }
        for p in 0..input.len() {
            if scan(&input[p..]).is_some() {
                out.lose(Loss::ResyncBytes, (carried + p) as u64);
                self.state = SegState::Header;
                joined.clear();
                self.buf = joined;
                return &input[p..];
            }
        }
        let total = carried + input.len();
        let keep = total.min(need - 1);
        out.lose(Loss::ResyncBytes, (total - keep) as u64);
        let mut tail: Vec<u8> = Vec::with_capacity(need);
        if input.len() >= keep {
            tail.extend_from_slice(&input[input.len() - keep..]);
        } else {
            let from_carried = keep - input.len();
            tail.extend_from_slice(&joined[carried - from_carried..carried]);
            tail.extend_from_slice(input);
        }
        self.buf = tail;
        &[]
    }
}
