//! Framing of one direction: bytes → protocol header, method, content header, body and
//! heartbeat frames (`type u8, channel u16, size u32, payload, 0xCE`).
//!
//! Method and content-header payloads are buffered (up to [`MAX_BUFFERED`]) and decoded by
//! `amq-protocol`; body payloads are counted, never kept, so a skip inside one only counts.
//! Any other gap or a bad frame end loses sync: the framer then scans for the next plausible
//! method frame (known class and method, size under [`MAX_RESYNC`], `0xCE` where its size
//! says) and goes on from there.

use amq_protocol::frame::parsing::parse_content_header;
use amq_protocol::protocol::{
    AMQPClass, basic, channel, confirm, connection, exchange, parse_class, queue, tx,
};
use amq_protocol::types::AMQPValue;

use crate::output::{Loss, Output};

/// Largest method or content-header frame payload kept for decoding (RabbitMQ's default
/// `frame_max` is 128 KiB); a larger one is skipped and counted as [`Loss::Oversized`].
pub const MAX_BUFFERED: u32 = 1 << 20;
/// Largest method frame payload accepted when resynchronising.
pub const MAX_RESYNC: u32 = 1 << 16;

const FRAME_METHOD: u8 = 1;
const FRAME_HEADER: u8 = 2;
const FRAME_BODY: u8 = 3;
const FRAME_HEARTBEAT: u8 = 8;
const FRAME_END: u8 = 0xCE;
const HEAD_LEN: usize = 7;

/// What the framer found.
#[derive(Debug)]
pub(super) enum Event {
    /// `AMQP` and a version: the client's opening.
    ProtocolHeader(Span),
    /// A method frame.
    Method(u16, Box<AMQPClass>, Span),
    /// A content header: body size and the `traceparent` header, if any.
    Header(u16, u64, Option<String>, Span),
    /// A body frame (payload length, captured or not).
    Body(u16, u64, Span),
    /// A heartbeat (or a frame whose payload did not decode; counted as malformed).
    Ignored,
    /// Sync lost (gap, bad frame end, oversized frame): what was in flight is gone.
    Lost,
}

/// When a frame started and ended, and its wire size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Span {
    pub start_ns: u64,
    pub end_ns: u64,
    pub wire: u64,
}

#[derive(Debug)]
struct Frame {
    kind: u8,
    channel: u16,
    size: u32,
    /// Payload bytes (and the frame end) seen or skipped so far.
    got: u64,
    start_ns: u64,
    /// Payload kept for decoding (method and header frames under the limit).
    keep: bool,
}

/// Framing state of one direction.
#[derive(Debug)]
pub(super) struct Framer {
    head: [u8; 8],
    head_len: usize,
    head_start_ns: u64,
    frame: Option<Frame>,
    payload: Vec<u8>,
    /// The protocol header may come first (a stream start).
    at_start: bool,
    /// Sync lost: scanning `scan` for a frame.
    resync: bool,
    scan: Vec<u8>,
    /// Bytes taken back from `scan` after a resync, framed before new input.
    replay: Vec<u8>,
}

impl Framer {
    pub(super) fn new() -> Self {
        Self {
            head: [0; 8],
            head_len: 0,
            head_start_ns: 0,
            frame: None,
            payload: Vec::new(),
            at_start: true,
            resync: false,
            scan: Vec::new(),
            replay: Vec::new(),
        }
    }

    /// The next event from `input` (advanced past what was used), or `None` when it needs more.
    pub(super) fn next(
        &mut self,
        input: &mut &[u8],
        ts_ns: u64,
        out: &mut Output,
    ) -> Option<Event> {
        loop {
            if !self.replay.is_empty() {
                let replay = std::mem::take(&mut self.replay);
                let mut rest = &replay[..];
                let event = self.step(&mut rest, ts_ns, out);
                self.replay = [rest, &self.replay[..]].concat();
                if event.is_some() {
                    return event;
                }
                continue;
            }
            let event = self.step(input, ts_ns, out);
            if event.is_some() || self.replay.is_empty() {
                return event;
            }
        }
    }

    fn step(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Option<Event> {
        loop {
            if input.is_empty() {
                return None;
            }
            if self.resync {
                self.scan_for_frame(input, out);
                continue;
            }
            let event = if self.frame.is_some() {
                self.payload_bytes(input, ts_ns, out)
            } else {
                self.head_bytes(input, ts_ns, out)
            };
            if event.is_some() {
                return event;
            }
        }
    }

    /// Collects the frame header (or the 8-byte protocol header).
    fn head_bytes(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Option<Event> {
        if self.head_len == 0 {
            self.head_start_ns = ts_ns;
        }
        let protocol_header = self.at_start && self.head_len == 0 && input.first() == Some(&b'A')
            || self.head_len > 0 && self.head[0] == b'A';
        let want = if protocol_header { 8 } else { HEAD_LEN };
        let n = (want - self.head_len).min(input.len());
        self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
        self.head_len += n;
        *input = &input[n..];
        if self.head_len < want {
            return None;
        }
        self.head_len = 0;
        self.at_start = false;
        let span = Span {
            start_ns: self.head_start_ns,
            end_ns: ts_ns,
            wire: 8,
        };
        if protocol_header {
            if &self.head[..4] == b"AMQP" {
                return Some(Event::ProtocolHeader(span));
            }
            return Some(self.lose(out, Loss::Malformed));
        }
        self.start_frame(out)
    }

    /// Checks a complete frame header and sets up its payload.
    fn start_frame(&mut self, out: &mut Output) -> Option<Event> {
        let [kind, c0, c1, s0, s1, s2, s3, _] = self.head;
        let size = u32::from_be_bytes([s0, s1, s2, s3]);
        if !matches!(
            kind,
            FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
        ) {
            return Some(self.lose(out, Loss::Malformed));
        }
        let keep = matches!(kind, FRAME_METHOD | FRAME_HEADER);
        if keep && size > MAX_BUFFERED {
            // Skipped to its end, then sync is given up: nothing that follows can be trusted
            // to pair with what came before.
            out.lose(Loss::Oversized, 1);
            self.resync = true;
            self.scan.clear();
            return Some(Event::Lost);
        }
        self.payload.clear();
        self.frame = Some(Frame {
            kind,
            channel: u16::from_be_bytes([c0, c1]),
            size,
            got: 0,
            start_ns: self.head_start_ns,
            keep,
        });
        None
    }

    /// Payload and frame end of the current frame.
    fn payload_bytes(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Option<Event> {
        let frame = self.frame.as_mut()?;
        let total = u64::from(frame.size) + 1;
        let n = usize::try_from(total - frame.got)
            .unwrap_or(usize::MAX)
            .min(input.len());
        if frame.keep {
            self.payload.extend_from_slice(&input[..n]);
        } else if frame.got + n as u64 == total {
            // Only the frame end is kept for a body or heartbeat.
            self.payload.clear();
            self.payload.extend_from_slice(&input[n - 1..n]);
        }
        frame.got += n as u64;
        *input = &input[n..];
        if frame.got < total {
            return None;
        }
        let frame = self.frame.take()?;
        let span = Span {
            start_ns: frame.start_ns,
            end_ns: ts_ns,
            wire: total + HEAD_LEN as u64,
        };
        if self.payload.last() != Some(&FRAME_END) {
            return Some(self.lose(out, Loss::Malformed));
        }
        let body = &self.payload[..self.payload.len() - 1];
        Some(decode(&frame, body, span, out))
    }

    /// `len` bytes not captured. Inside a body payload they are counted; otherwise sync is lost.
    pub(super) fn skip(&mut self, len: Option<u64>) -> Option<Event> {
        if self.resync {
            self.scan.clear();
            self.replay.clear();
            return None;
        }
        if let (Some(len), Some(frame)) = (len, self.frame.as_mut())
            && frame.kind == FRAME_BODY
            && self.replay.is_empty()
            && frame.got + len <= u64::from(frame.size)
        {
            frame.got += len;
            return None;
        }
        if len == Some(0) {
            return None;
        }
        self.frame = None;
        self.head_len = 0;
        self.at_start = false;
        self.resync = true;
        self.scan.clear();
        self.replay.clear();
        Some(Event::Lost)
    }

    fn lose(&mut self, out: &mut Output, loss: Loss) -> Event {
        out.lose(loss, 1);
        self.frame = None;
        self.head_len = 0;
        self.resync = true;
        self.scan.clear();
        Event::Lost
    }

    /// Looks for the start of a whole, plausible method frame in what came since sync was lost.
    fn scan_for_frame(&mut self, input: &mut &[u8], out: &mut Output) {
        let room = (MAX_RESYNC as usize + 16).saturating_sub(self.scan.len());
        let n = room.min(input.len()).max(input.len().min(1));
        self.scan.extend_from_slice(&input[..n]);
        *input = &input[n..];
        let mut at = 0;
        while at < self.scan.len() {
            match frame_at(&self.scan[at..]) {
                Candidate::No => at += 1,
                Candidate::Maybe => break,
                Candidate::Yes => {
                    out.lose(Loss::ResyncBytes, at as u64);
                    self.replay = self.scan.split_off(at);
                    self.replay.extend_from_slice(input);
                    *input = &[];
                    self.scan.clear();
                    self.resync = false;
                    return;
                }
            }
        }
        let cap = MAX_RESYNC as usize + 16;
        if self.scan.len() - at >= cap {
            at = self.scan.len();
        }
        out.lose(Loss::ResyncBytes, at as u64);
        self.scan.drain(..at);
    }
}

enum Candidate {
    No,
    Maybe,
    Yes,
}

/// Whether `bytes` start with a whole method frame of a known method (`Maybe`: too short yet).
fn frame_at(bytes: &[u8]) -> Candidate {
    let Some(&kind) = bytes.first() else {
        return Candidate::Maybe;
    };
    if kind != FRAME_METHOD {
        return Candidate::No;
    }
    let Some(head) = bytes.get(..HEAD_LEN + 4) else {
        return Candidate::Maybe;
    };
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    let class = u16::from_be_bytes([head[7], head[8]]);
    let method = u16::from_be_bytes([head[9], head[10]]);
    if !(4..=MAX_RESYNC).contains(&size) || super::methods::name(class, method).is_none() {
        return Candidate::No;
    }
    match bytes.get(HEAD_LEN + size as usize) {
        None => Candidate::Maybe,
        Some(&FRAME_END) => {
            let payload = &bytes[HEAD_LEN..HEAD_LEN + size as usize];
            if parse_class(payload).is_ok_and(|(rest, _)| rest.is_empty()) {
                Candidate::Yes
            } else {
                Candidate::No
            }
        }
        Some(_) => Candidate::No,
    }
}

/// Turns a complete, well-ended frame into an event.
fn decode(frame: &Frame, payload: &[u8], span: Span, out: &mut Output) -> Event {
    match frame.kind {
        FRAME_METHOD => match decode_method(payload) {
            Some(class) => Event::Method(frame.channel, Box::new(class), span),
            None => {
                out.lose(Loss::Malformed, 1);
                Event::Ignored
            }
        },
        // Without a headers table (property flag 0x2000) only the body size is needed.
        FRAME_HEADER if payload.len() >= 14 && payload[12] & 0x20 == 0 => {
            let mut size = [0; 8];
            size.copy_from_slice(&payload[4..12]);
            Event::Header(frame.channel, u64::from_be_bytes(size), None, span)
        }
        FRAME_HEADER => match parse_content_header(payload) {
            Ok((_, header)) => {
                let traceparent = header
                    .properties
                    .headers()
                    .as_ref()
                    .and_then(|table| table.inner().get("traceparent"))
                    .and_then(text_of);
                Event::Header(frame.channel, header.body_size, traceparent, span)
            }
            Err(_) => {
                out.lose(Loss::Malformed, 1);
                Event::Ignored
            }
        },
        FRAME_BODY => Event::Body(frame.channel, u64::from(frame.size), span),
        _ => Event::Ignored,
    }
}

/// A method frame's payload: decoded by `amq-protocol` when the records use its fields; for
/// the others (handshake steps, most `-Ok`s) only the class and method ids are read, which
/// spares decoding the handshake's property tables.
fn decode_method(payload: &[u8]) -> Option<AMQPClass> {
    let ids = payload.get(..4)?;
    let ids = (
        u16::from_be_bytes([ids[0], ids[1]]),
        u16::from_be_bytes([ids[2], ids[3]]),
    );
    if let Some(class) = fields_unused(ids) {
        return Some(class);
    }
    match parse_class(payload) {
        Ok((&[], class)) => Some(class),
        _ => None,
    }
}

/// The method for `ids`, with default fields, when the records never read them.
fn fields_unused(ids: (u16, u16)) -> Option<AMQPClass> {
    use AMQPClass as C;
    use basic::AMQPMethod as B;
    use connection::AMQPMethod as Conn;
    Some(match ids {
        (10, 10) => C::Connection(Conn::Start(Default::default())),
        (10, 11) => C::Connection(Conn::StartOk(Default::default())),
        (10, 20) => C::Connection(Conn::Secure(Default::default())),
        (10, 21) => C::Connection(Conn::SecureOk(Default::default())),
        (10, 30) => C::Connection(Conn::Tune(Default::default())),
        (10, 31) => C::Connection(Conn::TuneOk(Default::default())),
        (10, 40) => C::Connection(Conn::Open(Default::default())),
        (10, 41) => C::Connection(Conn::OpenOk(Default::default())),
        (10, 51) => C::Connection(Conn::CloseOk(Default::default())),
        (20, 10) => C::Channel(channel::AMQPMethod::Open(Default::default())),
        (20, 11) => C::Channel(channel::AMQPMethod::OpenOk(Default::default())),
        (20, 41) => C::Channel(channel::AMQPMethod::CloseOk(Default::default())),
        (40, 11) => C::Exchange(exchange::AMQPMethod::DeclareOk(Default::default())),
        (40, 21) => C::Exchange(exchange::AMQPMethod::DeleteOk(Default::default())),
        (40, 31) => C::Exchange(exchange::AMQPMethod::BindOk(Default::default())),
        (40, 51) => C::Exchange(exchange::AMQPMethod::UnbindOk(Default::default())),
        (50, 21) => C::Queue(queue::AMQPMethod::BindOk(Default::default())),
        (50, 51) => C::Queue(queue::AMQPMethod::UnbindOk(Default::default())),
        (60, 10) => C::Basic(B::Qos(Default::default())),
        (60, 11) => C::Basic(B::QosOk(Default::default())),
        (60, 31) => C::Basic(B::CancelOk(Default::default())),
        (60, 90) => C::Basic(B::Reject(Default::default())),
        (85, 11) => C::Confirm(confirm::AMQPMethod::SelectOk(Default::default())),
        (90, 10) => C::Tx(tx::AMQPMethod::Select(Default::default())),
        (90, 11) => C::Tx(tx::AMQPMethod::SelectOk(Default::default())),
        (90, 20) => C::Tx(tx::AMQPMethod::Commit(Default::default())),
        (90, 21) => C::Tx(tx::AMQPMethod::CommitOk(Default::default())),
        (90, 30) => C::Tx(tx::AMQPMethod::Rollback(Default::default())),
        (90, 31) => C::Tx(tx::AMQPMethod::RollbackOk(Default::default())),
        _ => return None,
    })
}

/// A header value as text, when it is a string.
fn text_of(value: &AMQPValue) -> Option<String> {
    let bytes = match value {
        AMQPValue::LongString(s) => s.as_bytes(),
        AMQPValue::ShortString(s) => s.as_str().as_bytes(),
        AMQPValue::ByteArray(b) => b.as_slice(),
        _ => return None,
    };
    std::str::from_utf8(bytes).ok().map(str::to_owned)
}
