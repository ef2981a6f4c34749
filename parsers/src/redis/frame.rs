//! One direction's bytes → [`Event`]s, incrementally. Header lines are gathered (bounded by
//! [`MAX_LINE`]); blob payloads are counted, never kept, except the first [`MAX_TEXT`] bytes of
//! the elements a record names (command, subcommand, key); nesting is a stack of counts, so a
//! reply of any size costs a few bytes of state. After a gap or malformed bytes, a command
//! stream scans for the next `*<n>\r\n$`; a reply stream waits until the parser lets it resume
//! at the start of a feed (see `stitch`).

use super::infer::is_known_command;
use super::types::{Event, Kind, Message, Type};
use crate::output::{Loss, Output};

/// Longest line buffered: a header, a simple string or error, an inline command. Longer is
/// [`Loss::Oversized`].
pub const MAX_LINE: usize = 64 * 1024;

/// Most aggregate levels open at once; deeper is malformed.
pub const MAX_DEPTH: usize = 128;

/// Bytes kept of each named element (command, subcommand, key).
pub(crate) const MAX_TEXT: usize = 256;

/// Bytes kept of a top-level line or blob (an error message).
pub(crate) const MAX_MESSAGE_TEXT: usize = 1024;

/// Elements of a top-level aggregate kept.
pub(crate) const MAX_ARGS: usize = 3;

/// Largest blob length or element count accepted (Redis's own limit is 512 MB per string).
const MAX_LEN: i64 = 1 << 40;

/// Most digits in the element count the scan for a command accepts.
const SCAN_DIGITS: u8 = 7;

/// Line buffer capacity kept between messages; a larger one is given back.
const KEEP_CAPACITY: usize = 4 * 1024;

/// An open aggregate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    /// `left` more elements; an attribute (`|`) is not an element of its parent.
    Count { left: u64, attribute: bool },
    /// A streamed aggregate (`*?`): elements until `.`.
    Streamed,
    /// A streamed string (`$?`): `;<len>` chunks until `;0`.
    StreamedString,
}

/// Progress of the scan for `*<digits>\r\n$` after a loss of sync.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Probe {
    /// 0: looking for `*`; 1: digits; 2: after `\r`; 3: after `\n`, `$` expected.
    stage: u8,
    digits: u8,
    count: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The next byte opens an element (or, outside a message, a message).
    Start,
    /// Gathering a line into `line`; `ty` is the type byte, 0 for an inline command.
    Line { ty: u8 },
    /// `left` more bytes of a blob (payload and CRLF); `capture` copies the payload.
    Blob { left: u64, capture: bool },
    /// Sync lost: a command stream scans; a reply stream discards until [`Framer::resume`].
    Scan(Probe),
}

/// Frames one direction of a connection.
#[derive(Debug)]
pub(crate) struct Framer {
    kind: Option<Kind>,
    state: State,
    stack: Vec<Level>,
    /// Attribute levels in `stack`: their contents are never captured.
    attributes: usize,
    line: Vec<u8>,
    msg: Message,
    /// A message has begun.
    in_msg: bool,
    /// Nothing framed yet: bytes that open nothing were joined mid-message, not malformed.
    fresh: bool,
}

impl Framer {
    /// A framer that has seen nothing.
    pub fn new() -> Self {
        Self {
            kind: None,
            state: State::Start,
            stack: Vec::new(),
            attributes: 0,
            line: Vec::new(),
            msg: Message::default(),
            in_msg: false,
            fresh: true,
        }
    }

    /// Tells the framer which messages to expect.
    pub fn set_kind(&mut self, kind: Kind) {
        self.kind.get_or_insert(kind);
    }

    /// At a message boundary, or discarding after a loss (a place a reply stream may resume).
    pub fn between_messages(&self) -> bool {
        !self.in_msg && matches!(self.state, State::Start | State::Scan(_))
    }

    /// Ends a reply stream's scan: the next byte fed is taken as a message start.
    pub fn resume(&mut self) {
        if let State::Scan(_) = self.state {
            self.state = State::Start;
        }
    }

    /// The next event from `input`, consuming what it used; `None` when all input is used.
    pub fn next(&mut self, input: &mut &[u8], ts: u64, out: &mut Output) -> Option<Event> {
        loop {
            let &first = input.first()?;
            match self.state {
                State::Start => {
                    if !self.in_msg {
                        if self.kind != Some(Kind::Response) && matches!(first, b'\r' | b'\n') {
                            // Blank lines between inline commands are ignored, as Redis does.
                            *input = &input[1..];
                            continue;
                        }
                        self.begin(ts);
                    }
                    if Type::of(first).is_some() || matches!(first, b'|' | b';' | b'.') {
                        self.consume(input, 1, ts);
                        self.state = State::Line { ty: first };
                    } else if self.kind != Some(Kind::Response)
                        && self.stack.is_empty()
                        && self.msg.wire_len == 0
                        && first.is_ascii_alphabetic()
                    {
                        self.state = State::Line { ty: 0 };
                    } else {
                        return Some(self.lose(Loss::Malformed, out));
                    }
                }
                State::Line { ty } => {
                    let nl = input.iter().position(|&b| b == b'\n');
                    if self.line.is_empty()
                        && let Some(i) = nl
                        && i < MAX_LINE + 2
                    {
                        // The whole line is in this feed: parsed in place, not copied.
                        let data: &[u8] = input;
                        let line = &data[..i];
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        self.consume(input, i + 1, ts);
                        match self.header(ty, line) {
                            Ok(Some(event)) => return Some(event),
                            Ok(None) => continue,
                            Err(loss) => return Some(self.lose(loss, out)),
                        }
                    }
                    let take = nl.map_or(input.len(), |i| i + 1);
                    if self.line.len() + take > MAX_LINE + 2 {
                        // What was gathered counts as passed over, as if it came in one feed.
                        out.lose(Loss::ResyncBytes, self.line.len() as u64);
                        return Some(self.lose(Loss::Oversized, out));
                    }
                    self.line.extend_from_slice(&input[..take]);
                    self.consume(input, take, ts);
                    nl?;
                    let mut line = std::mem::take(&mut self.line);
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    let step = self.header(ty, &line);
                    line.clear();
                    if line.capacity() <= KEEP_CAPACITY {
                        self.line = line;
                    }
                    match step {
                        Ok(Some(event)) => return Some(event),
                        Ok(None) => {}
                        Err(loss) => return Some(self.lose(loss, out)),
                    }
                }
                State::Blob { left, capture } => {
                    let n = usize::try_from(left).map_or(input.len(), |l| l.min(input.len()));
                    if capture {
                        self.capture(&input[..n], left);
                    }
                    self.consume(input, n, ts);
                    let left = left - n as u64;
                    if left > 0 {
                        self.state = State::Blob { left, capture };
                        return None;
                    }
                    if let Some(event) = self.blob_done() {
                        return Some(event);
                    }
                }
                State::Scan(probe) => {
                    if let Some(event) = self.scan(probe, input, ts, out) {
                        return Some(event);
                    }
                }
            }
        }
    }

    /// `len` bytes were moved but not seen.
    pub fn skip(&mut self, len: Option<u64>, ts: u64) -> Option<Event> {
        match (self.state, len) {
            (_, Some(0)) => None,
            (State::Scan(_), _) => {
                self.state = State::Scan(Probe::default());
                None
            }
            (State::Blob { left, .. }, Some(n)) if n <= left => {
                self.msg.wire_len = self.msg.wire_len.saturating_add(n);
                self.msg.end_ns = ts;
                if n < left {
                    // The captured text would no longer be contiguous: keep what we have.
                    self.state = State::Blob {
                        left: left - n,
                        capture: false,
                    };
                    None
                } else {
                    self.blob_done()
                }
            }
            _ => Some(self.lose_quietly()),
        }
    }

    /// The sender closed: an unfinished message is abandoned.
    pub fn end(&mut self) {
        self.reset();
        self.state = State::Scan(Probe::default());
    }

    fn begin(&mut self, ts: u64) {
        self.in_msg = true;
        let msg = &mut self.msg;
        msg.ty = None;
        msg.text.clear();
        msg.args.clear();
        msg.count = 0;
        msg.all_bulk = false;
        msg.start_ns = ts;
        msg.end_ns = ts;
        msg.wire_len = 0;
    }

    /// The message the last [`Event::Message`] announced.
    pub fn message(&self) -> &Message {
        &self.msg
    }

    fn consume(&mut self, input: &mut &[u8], n: usize, ts: u64) {
        *input = &input[n..];
        if n > 0 {
            self.msg.wire_len = self.msg.wire_len.saturating_add(n as u64);
            self.msg.end_ns = ts;
        }
    }

    /// Copies payload bytes of a named element (`left` counts the CRLF too).
    fn capture(&mut self, bytes: &[u8], left: u64) {
        let payload_left = usize::try_from(left.saturating_sub(2)).unwrap_or(usize::MAX);
        let bytes = &bytes[..bytes.len().min(payload_left)];
        if self.stack.is_empty() {
            let room = MAX_MESSAGE_TEXT.saturating_sub(self.msg.text.len());
            self.msg
                .text
                .extend_from_slice(&bytes[..bytes.len().min(room)]);
        } else {
            self.msg.args.extend_last(bytes, MAX_TEXT);
        }
    }

    /// A complete header line of type `ty` (0: an inline command).
    fn header(&mut self, ty: u8, line: &[u8]) -> Result<Option<Event>, Loss> {
        let top = self.stack.is_empty();
        let arg = self.stack.len() == 1 && self.attributes == 0;
        match ty {
            0 => return self.inline(line),
            b';' => {
                if self.stack.last() != Some(&Level::StreamedString) {
                    return Err(Loss::Malformed);
                }
                let n = number(line).filter(|n| (0..=MAX_LEN).contains(n));
                return match n.ok_or(Loss::Malformed)? {
                    0 => {
                        self.stack.pop();
                        Ok(self.element_done())
                    }
                    n => {
                        self.state = State::Blob {
                            left: n as u64 + 2,
                            capture: false,
                        };
                        Ok(None)
                    }
                };
            }
            b'.' => {
                if self.stack.last() != Some(&Level::Streamed) || !line.is_empty() {
                    return Err(Loss::Malformed);
                }
                self.stack.pop();
                return Ok(self.element_done());
            }
            b'|' => {
                let n = number(line).filter(|n| (0..=MAX_LEN).contains(n));
                let n = n.ok_or(Loss::Malformed)?;
                if n > 0 {
                    self.push(Level::Count {
                        left: n as u64 * 2,
                        attribute: true,
                    })?;
                    self.attributes += 1;
                }
                self.state = State::Start;
                return Ok(None);
            }
            _ => {}
        }
        let ty = Type::of(ty).ok_or(Loss::Malformed)?;
        if top {
            self.msg.ty = Some(ty);
        }
        if arg && ty != Type::Bulk {
            self.msg.all_bulk = false;
        }
        let keep_arg = arg && self.msg.args.len() < MAX_ARGS;
        match ty {
            Type::Simple
            | Type::Error
            | Type::Integer
            | Type::Null
            | Type::Boolean
            | Type::Double
            | Type::BigNumber => {
                if top {
                    self.msg
                        .text
                        .extend_from_slice(&line[..line.len().min(MAX_MESSAGE_TEXT)]);
                } else if keep_arg {
                    self.msg.args.push(&line[..line.len().min(MAX_TEXT)]);
                }
                Ok(self.element_done())
            }
            Type::Bulk | Type::BlobError | Type::Verbatim => {
                if keep_arg {
                    self.msg.args.push(&[]);
                }
                if ty == Type::Bulk && line == b"?" {
                    return self.push(Level::StreamedString).map(|()| None);
                }
                match number(line).ok_or(Loss::Malformed)? {
                    -1 => {
                        if arg {
                            self.msg.all_bulk = false;
                        }
                        Ok(self.element_done())
                    }
                    n if (0..=MAX_LEN).contains(&n) => {
                        self.state = State::Blob {
                            left: n as u64 + 2,
                            capture: (top && ty == Type::BlobError) || keep_arg,
                        };
                        Ok(None)
                    }
                    _ => Err(Loss::Malformed),
                }
            }
            Type::Array | Type::Map | Type::Set | Type::Push => {
                if keep_arg {
                    self.msg.args.push(&[]);
                }
                if arg {
                    self.msg.all_bulk = false;
                }
                if line == b"?" {
                    return self.push(Level::Streamed).map(|()| None);
                }
                let n = match number(line).ok_or(Loss::Malformed)? {
                    -1 => 0,
                    n if (0..=MAX_LEN).contains(&n) => n as u64,
                    _ => return Err(Loss::Malformed),
                };
                let n = if ty == Type::Map { n * 2 } else { n };
                if top {
                    self.msg.count = n;
                    self.msg.all_bulk = true;
                }
                if n == 0 {
                    return Ok(self.element_done());
                }
                self.push(Level::Count {
                    left: n,
                    attribute: false,
                })?;
                self.state = State::Start;
                Ok(None)
            }
            Type::Inline => Err(Loss::Malformed),
        }
    }

    fn push(&mut self, level: Level) -> Result<(), Loss> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(Loss::Malformed);
        }
        self.stack.push(level);
        self.state = State::Start;
        Ok(())
    }

    /// An inline command line: words split on spaces; the first must name a known command.
    fn inline(&mut self, line: &[u8]) -> Result<Option<Event>, Loss> {
        let mut words = line
            .split(|&b| b == b' ' || b == b'\t')
            .filter(|w| !w.is_empty());
        let Some(first) = words.next() else {
            // A blank line: nothing was sent.
            self.reset();
            self.state = State::Start;
            return Ok(None);
        };
        if !is_known_command(first) {
            return Err(Loss::Malformed);
        }
        self.msg.ty = Some(Type::Inline);
        self.msg.args.push(&first[..first.len().min(MAX_TEXT)]);
        let mut count = 1;
        for word in words {
            count += 1;
            self.msg.args.push(&word[..word.len().min(MAX_TEXT)]);
        }
        self.msg.count = count;
        Ok(Some(self.finish()))
    }

    fn blob_done(&mut self) -> Option<Event> {
        if self.stack.last() == Some(&Level::StreamedString) {
            self.state = State::Start;
            return None;
        }
        self.element_done()
    }

    /// An element is complete: closes the aggregates it completes; the message if it was the
    /// last.
    fn element_done(&mut self) -> Option<Event> {
        self.state = State::Start;
        loop {
            match self.stack.last_mut() {
                None => return Some(self.finish()),
                Some(Level::Count { left, attribute }) => {
                    *left = left.saturating_sub(1);
                    if *left > 0 {
                        return None;
                    }
                    let attribute = *attribute;
                    self.stack.pop();
                    if attribute {
                        self.attributes = self.attributes.saturating_sub(1);
                        return None;
                    }
                }
                Some(Level::Streamed | Level::StreamedString) => return None,
            }
        }
    }

    fn finish(&mut self) -> Event {
        self.state = State::Start;
        self.in_msg = false;
        self.fresh = false;
        Event::Message
    }

    fn reset(&mut self) {
        self.stack.clear();
        self.attributes = 0;
        self.line.clear();
        self.in_msg = false;
        self.msg = Message::default();
    }

    /// Sync lost on bad bytes: counted (unless nothing was framed yet: joined mid-message).
    fn lose(&mut self, loss: Loss, out: &mut Output) -> Event {
        if loss != Loss::Malformed || !self.fresh {
            out.lose(loss, 1);
        }
        self.lose_quietly()
    }

    /// Sync lost in a gap: nothing to count here, the stitcher counts what it drops.
    fn lose_quietly(&mut self) -> Event {
        self.reset();
        self.state = State::Scan(Probe::default());
        Event::Lost
    }

    /// Looks for `*<digits>\r\n$` in a command stream; a reply stream discards everything.
    fn scan(
        &mut self,
        mut probe: Probe,
        input: &mut &[u8],
        ts: u64,
        out: &mut Output,
    ) -> Option<Event> {
        if self.kind == Some(Kind::Response) {
            out.lose(Loss::ResyncBytes, input.len() as u64);
            *input = &[];
            return None;
        }
        let mut discarded = 0u64;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            match (probe.stage, b) {
                (0, b'*') => {
                    probe = Probe {
                        stage: 1,
                        digits: 0,
                        count: 0,
                    }
                }
                (0, _) => discarded += 1,
                (1, b'0'..=b'9') if probe.digits < SCAN_DIGITS => {
                    probe.count = probe.count * 10 + u32::from(b - b'0');
                    probe.digits += 1;
                }
                (1, b'\r') if probe.count > 0 => probe.stage = 2,
                (2, b'\n') => probe.stage = 3,
                (3, b'$') => {
                    out.lose(Loss::ResyncBytes, discarded);
                    *input = &input[i..];
                    self.begin(ts);
                    self.msg.wire_len = u64::from(probe.digits) + 4;
                    self.msg.ty = Some(Type::Array);
                    self.msg.count = u64::from(probe.count);
                    self.msg.all_bulk = true;
                    self.stack.push(Level::Count {
                        left: u64::from(probe.count),
                        attribute: false,
                    });
                    self.state = State::Line { ty: b'$' };
                    return None;
                }
                _ => {
                    // A false start: its bytes are passed over; a `*` may begin the next.
                    let passed = match probe.stage {
                        1 => 1 + u64::from(probe.digits),
                        2 => 2 + u64::from(probe.digits),
                        _ => 3 + u64::from(probe.digits),
                    };
                    discarded += passed;
                    probe = Probe::default();
                    if b == b'*' {
                        probe.stage = 1;
                    } else {
                        discarded += 1;
                    }
                }
            }
        }
        out.lose(Loss::ResyncBytes, discarded);
        *input = &[];
        self.state = State::Scan(probe);
        None
    }
}

/// A decimal integer, as RESP writes lengths and counts.
fn number(line: &[u8]) -> Option<i64> {
    let (neg, digits) = match line.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
    Some(if neg { -n } else { n })
}
