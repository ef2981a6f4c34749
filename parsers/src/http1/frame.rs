//! One direction's bytes → [`Event`]s, incrementally. A head is gathered (bounded by
//! [`MAX_HEAD`]) until its blank line and parsed once; a body is counted, never kept; after a gap
//! or malformed bytes the framer scans for the next start line.

use super::chunked::{self, Chunked};
use super::head;
use super::infer::{self, Found, MAX_START_LINE, Methods};
use super::types::{BodyLen, Event, Kind, MessageEnd, ResponseHint};
use crate::output::{Loss, Output};

/// Most head bytes buffered; a longer head is [`Loss::Oversized`].
pub const MAX_HEAD: usize = 64 * 1024;

/// A carried start line shorter than this is looked at again on every feed (a status line or
/// method is decided in its first bytes); a longer one only once its LF is in.
const DECIDE_EARLY: usize = 32;

/// Buffer capacity kept between messages; a larger one is given back.
const KEEP_CAPACITY: usize = 4 * 1024;

/// How the body in progress ends.
#[derive(Clone, Copy, Debug)]
enum Body {
    /// After this many more bytes.
    Length(u64),
    /// At the last chunk and trailers.
    Chunked(Chunked),
    /// When the sender closes.
    UntilClose,
}

#[derive(Clone, Copy, Debug)]
enum State {
    /// At a message boundary: the next bytes should open a start line.
    Start,
    /// Sync lost: scanning for a start line.
    Scan,
    /// A start line was found: gathering the head up to its blank line.
    Head(HeadEnd),
    /// Counting the body of the message whose head was emitted.
    Body(Body),
    /// The connection no longer speaks HTTP (upgrade, CONNECT tunnel).
    Opaque,
}

/// Finds the blank line that ends a header section, across calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HeadEnd {
    InLine,
    LineStart,
    LineStartCr,
}

impl HeadEnd {
    /// Index just past the head's final LF in `bytes`, if the head ends in them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut i = 0;
        while i < bytes.len() {
            match *self {
                HeadEnd::InLine => {
                    let lf = memchr::memchr(b'\n', &bytes[i..])?;
                    i += lf + 1;
                    *self = HeadEnd::LineStart;
                }
                HeadEnd::LineStart | HeadEnd::LineStartCr => {
                    let byte = bytes[i];
                    i += 1;
                    *self = match (byte, *self) {
                        (b'\n', _) => return Some(i),
                        (b'\r', HeadEnd::LineStart) => HeadEnd::LineStartCr,
                        _ => HeadEnd::InLine,
                    };
                }
            }
        }
        None
    }
}

/// Progress through the message in progress.
#[derive(Clone, Copy, Debug, Default)]
struct Progress {
    start_ns: u64,
    last_ns: u64,
    wire: u64,
    body: u64,
}

impl Progress {
    fn count(&mut self, bytes: u64, payload: u64, ts_ns: u64) {
        if bytes > 0 {
            // Saturating: `skip` lengths come from outside and could be anything.
            self.wire = self.wire.saturating_add(bytes);
            self.body = self.body.saturating_add(payload);
            self.last_ns = ts_ns;
        }
    }
}

/// What one step of [`Framer::next`] came to.
enum Step {
    /// The state changed; go on.
    Again,
    /// All input used; more needed.
    More,
    /// An event for the stitcher.
    Emit(Event),
}

/// Frames one direction of a connection.
#[derive(Debug)]
pub(crate) struct Framer {
    kind: Option<Kind>,
    state: State,
    /// An unfinished start line (`Start`, `Scan`) or head (`Head`).
    buf: Vec<u8>,
    /// When the first byte in `buf` was moved.
    buf_ns: u64,
    /// No message framed yet: bytes that open none were joined mid-message, not malformed.
    fresh: bool,
    /// The message in progress is the last HTTP one (101, CONNECT 2xx).
    tunnel_after: bool,
    msg: Progress,
}

impl Framer {
    /// A framer that has seen nothing.
    pub fn new() -> Self {
        Self {
            kind: None,
            state: State::Start,
            buf: Vec::new(),
            buf_ns: 0,
            fresh: true,
            tunnel_after: false,
            msg: Progress::default(),
        }
    }

    /// Which messages this direction carries, once known.
    pub fn kind(&self) -> Option<Kind> {
        self.kind
    }

    /// Tells the framer which messages to expect (learnt from the other direction).
    pub fn set_kind(&mut self, kind: Kind) {
        self.kind.get_or_insert(kind);
    }

    /// Stops framing: the connection carries something else from now on.
    pub fn set_opaque(&mut self) {
        self.clear_buf();
        self.state = State::Opaque;
    }

    /// The next event from `input`, consuming what it used; `None` once all of it is used.
    /// `hint` tells how the request being answered bears on a response body.
    pub fn next(
        &mut self,
        input: &mut &[u8],
        ts_ns: u64,
        hint: ResponseHint,
        out: &mut Output,
    ) -> Option<Event> {
        loop {
            let step = match self.state {
                State::Start | State::Scan => self.start_step(input, ts_ns, out),
                State::Head(_) => self.head_step(input, ts_ns, hint, out),
                State::Body(_) => self.body_step(input, ts_ns, out),
                State::Opaque => {
                    *input = &[];
                    Step::More
                }
            };
            match step {
                Step::Again => {}
                Step::More => return None,
                Step::Emit(event) => return Some(event),
            }
        }
    }

    /// `len` bytes were moved but not seen (`None`: an unknown number). Body bytes being counted
    /// are counted; anything else loses sync.
    pub fn skip(&mut self, len: Option<u64>, ts_ns: u64, out: &mut Output) -> Vec<Event> {
        let Some(len) = len else {
            return self.gap(0, out);
        };
        if len == 0 {
            return Vec::new();
        }
        match &mut self.state {
            State::Opaque => Vec::new(),
            State::Body(Body::UntilClose) => {
                self.msg.count(len, len, ts_ns);
                Vec::new()
            }
            State::Body(Body::Length(remaining)) => {
                let taken = len.min(*remaining);
                *remaining -= taken;
                let done = *remaining == 0;
                self.msg.count(taken, taken, ts_ns);
                if !done {
                    return Vec::new();
                }
                let mut events = vec![self.finish()];
                if taken < len {
                    events.extend(self.gap(len - taken, out));
                }
                events
            }
            State::Body(Body::Chunked(chunks)) => {
                if chunks.skip(len) {
                    self.msg.count(len, len, ts_ns);
                    Vec::new()
                } else {
                    self.gap(len, out)
                }
            }
            State::Start | State::Scan | State::Head(_) => self.gap(len, out),
        }
    }

    /// The sender closed this direction: a close-delimited body ends; anything unfinished is
    /// dropped.
    pub fn end(&mut self, out: &mut Output) -> Vec<Event> {
        match self.state {
            State::Body(Body::UntilClose) => vec![self.finish()],
            State::Opaque => Vec::new(),
            State::Start | State::Scan => {
                self.discard_buf(out);
                Vec::new()
            }
            State::Head(_) | State::Body(_) => {
                self.discard_buf(out);
                self.state = State::Scan;
                vec![Event::Lost]
            }
        }
    }

    /// At a boundary (`Start`) or lost (`Scan`): find where the next message starts.
    fn start_step(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Step {
        let scanning = matches!(self.state, State::Scan);
        let methods = if scanning {
            Methods::Known
        } else {
            Methods::AnyToken
        };
        if self.buf.is_empty() {
            if !scanning {
                // Empty lines before a request line are ignored (RFC 9112 §2.2).
                let blank = input
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                *input = &input[blank..];
            }
            if input.is_empty() {
                return Step::More;
            }
            return match infer::find_start(input, self.kind, scanning, methods) {
                Found::Start { at, kind } => {
                    lose_bytes(out, at);
                    *input = &input[at..];
                    self.begin(kind, ts_ns, out)
                }
                Found::Partial { at } => {
                    lose_bytes(out, at);
                    self.buf.extend_from_slice(&input[at..]);
                    self.buf_ns = ts_ns;
                    *input = &[];
                    Step::More
                }
                Found::None if scanning => {
                    lose_bytes(out, input.len());
                    *input = &[];
                    Step::More
                }
                Found::None => Step::Emit(self.lose(out)),
            };
        }
        // A possible start line is carried over: add bytes up to the next LF and look again.
        let old = self.buf.len();
        let want = memchr::memchr(b'\n', input).map_or(input.len(), |lf| lf + 1);
        let take = want.min(MAX_START_LINE.saturating_sub(old).max(1));
        self.buf.extend_from_slice(&input[..take]);
        *input = &input[take..];
        let line_ended = self.buf.last() == Some(&b'\n');
        if !line_ended && self.buf.len() > DECIDE_EARLY && self.buf.len() < MAX_START_LINE {
            // Past its opening, a start line is decided by its end: wait for the LF rather
            // than look again at every small feed.
            return Step::More;
        }
        match infer::find_start(&self.buf, self.kind, scanning, methods) {
            Found::Start { at, kind } => {
                self.drop_front(at, old, ts_ns, out);
                self.begin(kind, self.buf_ns, out)
            }
            Found::Partial { at } => {
                self.drop_front(at, old, ts_ns, out);
                if input.is_empty() {
                    Step::More
                } else {
                    Step::Again
                }
            }
            Found::None if scanning => {
                self.discard_buf(out);
                Step::Again
            }
            Found::None => Step::Emit(self.lose(out)),
        }
    }

    /// Drops the first `at` buffered bytes, of which `old` came from earlier calls.
    fn drop_front(&mut self, at: usize, old: usize, ts_ns: u64, out: &mut Output) {
        if at >= old {
            self.buf_ns = ts_ns;
        }
        lose_bytes(out, at);
        self.buf.drain(..at);
    }

    /// A start line of `kind` begins at the front of `buf` (if any) or of the input.
    fn begin(&mut self, kind: Kind, start_ns: u64, out: &mut Output) -> Step {
        self.kind.get_or_insert(kind);
        self.msg = Progress {
            start_ns,
            last_ns: start_ns,
            wire: 0,
            body: 0,
        };
        let mut end = HeadEnd::InLine;
        if end.scan(&self.buf).is_some() {
            // Cannot happen: a carried start line holds one LF, at its end.
            return Step::Emit(self.lose(out));
        }
        self.state = State::Head(end);
        Step::Again
    }

    /// Gather head bytes; parse once the blank line is in.
    fn head_step(
        &mut self,
        input: &mut &[u8],
        ts_ns: u64,
        hint: ResponseHint,
        out: &mut Output,
    ) -> Step {
        let State::Head(mut end) = self.state else {
            return Step::Again;
        };
        if self.buf.is_empty() && end == HeadEnd::InLine {
            // The whole head is usually in this one piece: let httparse find its end, rather
            // than scanning for the blank line first. Anything else takes the path below.
            let kind = self.kind.unwrap_or(Kind::Request);
            let start = self.msg.start_ns;
            let parsed = match kind {
                Kind::Request => head::parse_request_prefix(input, start)
                    .map(|h| (h.head_len, h.body, Event::Request(h))),
                Kind::Response => head::parse_response_prefix(input, start, hint)
                    .map(|h| (h.head_len, h.body, Event::Response(h))),
            };
            if let Ok((len, body, event)) = parsed
                && let Ok(len) = usize::try_from(len)
                && len <= input.len()
                && len <= MAX_HEAD
            {
                *input = &input[len..];
                self.msg.count(len as u64, 0, ts_ns);
                self.enter_body(body);
                return Step::Emit(event);
            }
        }
        let found = end.scan(input);
        self.state = State::Head(end);
        let Some(len) = found else {
            if self.buf.len() + input.len() > MAX_HEAD {
                return Step::Emit(self.oversized(input, input.len(), out));
            }
            self.buf.extend_from_slice(input);
            *input = &[];
            return Step::More;
        };
        if self.buf.len() + len > MAX_HEAD {
            return Step::Emit(self.oversized(input, len, out));
        }
        let bytes = if self.buf.is_empty() {
            &input[..len]
        } else {
            self.buf.extend_from_slice(&input[..len]);
            &self.buf[..]
        };
        let head_len = bytes.len();
        let kind = self.kind.unwrap_or(Kind::Request);
        let parsed = match kind {
            Kind::Request => {
                head::parse_request(bytes, self.msg.start_ns).map(|h| (h.body, Event::Request(h)))
            }
            Kind::Response => head::parse_response(bytes, self.msg.start_ns, hint)
                .map(|h| (h.body, Event::Response(h))),
        };
        *input = &input[len..];
        self.clear_buf();
        self.msg.count(head_len as u64, 0, ts_ns);
        let Ok((body, event)) = parsed else {
            out.lose(Loss::Malformed, 1);
            lose_bytes(out, head_len);
            self.state = State::Scan;
            return Step::Emit(Event::Lost);
        };
        self.enter_body(body);
        Step::Emit(event)
    }

    /// A head was parsed: count its body next.
    fn enter_body(&mut self, body: BodyLen) {
        self.fresh = false;
        self.state = State::Body(match body {
            BodyLen::Empty => Body::Length(0),
            BodyLen::Length(n) => Body::Length(n),
            BodyLen::Chunked => Body::Chunked(Chunked::default()),
            BodyLen::UntilClose => Body::UntilClose,
            BodyLen::Tunnel => {
                self.tunnel_after = true;
                Body::Length(0)
            }
        });
    }

    /// Count body bytes; emit the end of the message when they are all in.
    fn body_step(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Step {
        let State::Body(body) = &mut self.state else {
            return Step::Again;
        };
        match body {
            Body::Length(remaining) => {
                let n = input
                    .len()
                    .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                *remaining -= n as u64;
                let done = *remaining == 0;
                *input = &input[n..];
                self.msg.count(n as u64, n as u64, ts_ns);
                if done {
                    Step::Emit(self.finish())
                } else {
                    Step::More
                }
            }
            Body::Chunked(chunks) => {
                let fed = chunks.feed(input);
                *input = &input[fed.used..];
                self.msg.count(fed.used as u64, fed.payload, ts_ns);
                match fed.status {
                    chunked::Status::Done => Step::Emit(self.finish()),
                    chunked::Status::More => Step::More,
                    chunked::Status::Malformed => {
                        out.lose(Loss::Malformed, 1);
                        self.state = State::Scan;
                        Step::Emit(Event::Lost)
                    }
                }
            }
            Body::UntilClose => {
                let n = input.len();
                *input = &[];
                self.msg.count(n as u64, n as u64, ts_ns);
                Step::More
            }
        }
    }

    /// The message in progress is complete.
    fn finish(&mut self) -> Event {
        self.state = if self.tunnel_after {
            State::Opaque
        } else {
            State::Start
        };
        self.tunnel_after = false;
        Event::End(MessageEnd {
            wire_len: self.msg.wire,
            body_len: self.msg.body,
            end_ns: self.msg.last_ns,
        })
    }

    /// Bytes at a boundary open no message.
    fn lose(&mut self, out: &mut Output) -> Event {
        if !self.fresh {
            out.lose(Loss::Malformed, 1);
        }
        self.discard_buf(out);
        self.state = State::Scan;
        Event::Lost
    }

    /// The head outgrew [`MAX_HEAD`]; its first `len` bytes in `input` are passed over.
    fn oversized(&mut self, input: &mut &[u8], len: usize, out: &mut Output) -> Event {
        out.lose(Loss::Oversized, 1);
        lose_bytes(out, len);
        *input = &input[len..];
        self.discard_buf(out);
        self.state = State::Scan;
        Event::Lost
    }

    /// `len` unseen bytes (0 if unknown) where no body was being counted.
    fn gap(&mut self, len: u64, out: &mut Output) -> Vec<Event> {
        if matches!(self.state, State::Opaque) {
            return Vec::new();
        }
        out.lose(Loss::ResyncBytes, len);
        self.discard_buf(out);
        self.state = State::Scan;
        vec![Event::Lost]
    }

    fn discard_buf(&mut self, out: &mut Output) {
        lose_bytes(out, self.buf.len());
        self.clear_buf();
    }

    fn clear_buf(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

fn lose_bytes(out: &mut Output, n: usize) {
    if n > 0 {
        out.lose(Loss::ResyncBytes, n as u64);
    }
}
