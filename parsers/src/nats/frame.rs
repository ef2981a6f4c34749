//! Bytes of one direction → NATS messages: control lines up to `\n`, then for PUB/HPUB/MSG/HMSG
//! a payload framed by its byte count (headers kept up to [`MAX_HEADERS`], the body counted,
//! never kept) and its `\r\n` trailer. Gaps of known length inside a payload are counted off;
//! any other gap, an oversized or malformed line sends the framer looking for the next line
//! that starts with a known operation.

use crate::{Loss, Output};

use super::line::{self, Verb};

/// Longest control line buffered (nats-server's `max_control_line` defaults to 4 KiB; INFO
/// lines listing a cluster's URLs and CONNECT lines carrying JWTs run longer).
pub const MAX_LINE: usize = 64 * 1024;
/// Header bytes of an HPUB/HMSG kept to look for `traceparent`; the rest are counted.
pub const MAX_HEADERS: usize = 8 * 1024;

/// One framed NATS message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) verb: Verb,
    /// Subject (PUB/HPUB/MSG/HMSG; empty for the others), lossy UTF-8.
    pub(crate) subject: String,
    /// INFO/CONNECT JSON or -ERR text, kept for the verbs that need it (CONNECT, -ERR).
    pub(crate) text: Vec<u8>,
    /// Header bytes (HPUB/HMSG).
    pub(crate) header_len: u64,
    /// Payload bytes, headers included.
    pub(crate) total_len: u64,
    /// Header block as captured, up to [`MAX_HEADERS`].
    pub(crate) headers: Vec<u8>,
    /// When the first byte was moved.
    pub(crate) start_ns: u64,
    /// When the last byte was moved.
    pub(crate) end_ns: u64,
    /// Size on the wire: line, payload and trailer.
    pub(crate) wire_bytes: u64,
}

/// What the framer reports.
#[derive(Debug)]
pub(crate) enum Event {
    /// A whole message.
    Message(Message),
    /// Sync was lost (a gap, or bytes that are not NATS); `true` when a message was cut off.
    Lost(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a control line.
    Line,
    /// Dropping an oversized line up to its `\n`.
    Discard,
    /// Inside a payload: bytes still to come.
    Payload(u64),
    /// After a payload: trailer bytes (`\r\n`) already seen.
    Trailer(u8),
}

/// The framer of one direction.
#[derive(Debug)]
pub(crate) struct Framer {
    state: State,
    /// The control line so far, when it spans feeds.
    line: Vec<u8>,
    /// When the current line's first byte was moved.
    line_start_ns: Option<u64>,
    /// The message whose payload is being read.
    current: Option<Message>,
    /// Looking for a line that starts with a known operation.
    resyncing: bool,
}

impl Framer {
    pub(crate) fn new() -> Self {
        Self {
            state: State::Line,
            line: Vec::new(),
            line_start_ns: None,
            current: None,
            resyncing: false,
        }
    }

    /// Whether a message is partly read (its line or its payload).
    pub(crate) fn in_progress(&self) -> bool {
        self.current.is_some() || (!self.line.is_empty() && !self.resyncing)
    }

    /// Consumes `input` up to the next event.
    pub(crate) fn next(
        &mut self,
        input: &mut &[u8],
        ts_ns: u64,
        out: &mut Output,
    ) -> Option<Event> {
        while !input.is_empty() {
            let event = match self.state {
                State::Line => self.read_line(input, ts_ns, out),
                State::Discard => {
                    self.discard(input, out);
                    None
                }
                State::Payload(left) => {
                    self.read_payload(input, left);
                    None
                }
                State::Trailer(seen) => self.read_trailer(input, seen, ts_ns, out),
            };
            if event.is_some() {
                return event;
            }
        }
        None
    }

    fn read_line(&mut self, input: &mut &[u8], ts_ns: u64, out: &mut Output) -> Option<Event> {
        self.line_start_ns.get_or_insert(ts_ns);
        let Some(eol) = memchr::memchr(b'\n', input) else {
            if self.line.len() + input.len() > MAX_LINE {
                return self.oversized(input, out);
            }
            self.line.extend_from_slice(input);
            *input = &[];
            return None;
        };
        let (head, tail) = input.split_at(eol);
        *input = tail.get(1..).unwrap_or_default();
        if self.line.len() + head.len() > MAX_LINE {
            out.lose(Loss::ResyncBytes, (self.line.len() + head.len() + 1) as u64);
            self.line.clear();
            self.line_start_ns = None;
            out.lose(Loss::Oversized, 1);
            return self.lose_sync();
        }
        let start_ns = self.line_start_ns.take().unwrap_or(ts_ns);
        if self.line.is_empty() {
            self.complete_line(head, start_ns, ts_ns, out)
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(head);
            let event = self.complete_line(&line, start_ns, ts_ns, out);
            line.clear();
            self.line = line;
            event
        }
    }

    /// A line longer than [`MAX_LINE`]: counted, dropped up to its end.
    fn oversized(&mut self, input: &mut &[u8], out: &mut Output) -> Option<Event> {
        out.lose(Loss::Oversized, 1);
        out.lose(Loss::ResyncBytes, (self.line.len() + input.len()) as u64);
        self.line.clear();
        self.line_start_ns = None;
        *input = &[];
        self.state = State::Discard;
        let event = self.lose_sync();
        self.state = State::Discard;
        event
    }

    fn discard(&mut self, input: &mut &[u8], out: &mut Output) {
        match memchr::memchr(b'\n', input) {
            Some(eol) => {
                out.lose(Loss::ResyncBytes, eol as u64 + 1);
                *input = input.get(eol + 1..).unwrap_or_default();
                self.state = State::Line;
            }
            None => {
                out.lose(Loss::ResyncBytes, input.len() as u64);
                *input = &[];
            }
        }
    }

    /// A whole line (`line` without its `\n`), moved from `start_ns` to `end_ns`.
    fn complete_line(
        &mut self,
        line: &[u8],
        start_ns: u64,
        end_ns: u64,
        out: &mut Output,
    ) -> Option<Event> {
        let wire = line.len() as u64 + 1;
        let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
        if trimmed.is_empty() {
            if self.resyncing {
                out.lose(Loss::ResyncBytes, wire);
            }
            return None;
        }
        let Some(control) = line::parse(trimmed) else {
            out.lose(Loss::ResyncBytes, wire);
            if self.resyncing {
                return None;
            }
            out.lose(Loss::Malformed, 1);
            return self.lose_sync();
        };
        self.resyncing = false;
        let keeps_text = matches!(control.verb, Verb::Connect | Verb::Err);
        let message = Message {
            verb: control.verb,
            subject: if control.verb.has_payload() {
                text_of(control.subject)
            } else {
                String::new()
            },
            text: if keeps_text {
                control.rest.to_vec()
            } else {
                Vec::new()
            },
            header_len: control.header_len,
            total_len: control.total_len,
            headers: Vec::new(),
            start_ns,
            end_ns,
            wire_bytes: wire,
        };
        if !control.verb.has_payload() {
            return Some(Event::Message(message));
        }
        self.current = Some(Message {
            wire_bytes: wire + control.total_len + 2,
            ..message
        });
        self.state = State::Payload(control.total_len);
        None
    }

    /// Payload bytes: header bytes kept (up to [`MAX_HEADERS`]), the rest counted.
    fn read_payload(&mut self, input: &mut &[u8], left: u64) {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
        let (taken, rest) = input.split_at(n);
        if let Some(msg) = self.current.as_mut() {
            let read = msg.total_len - left;
            if read < msg.header_len {
                let want = usize::try_from(msg.header_len - read)
                    .unwrap_or(usize::MAX)
                    .min(taken.len())
                    .min(MAX_HEADERS.saturating_sub(msg.headers.len()));
                msg.headers
                    .extend_from_slice(taken.get(..want).unwrap_or_default());
            }
        }
        *input = rest;
        self.state = match left - n as u64 {
            0 => State::Trailer(0),
            left => State::Payload(left),
        };
    }

    fn read_trailer(
        &mut self,
        input: &mut &[u8],
        seen: u8,
        ts_ns: u64,
        out: &mut Output,
    ) -> Option<Event> {
        let (&b, rest) = input.split_first()?;
        let want = if seen == 0 { b'\r' } else { b'\n' };
        if b != want {
            // The byte count did not match the payload: drop the message, look for a line.
            out.lose(Loss::Malformed, 1);
            return self.lose_sync();
        }
        *input = rest;
        if seen == 0 {
            self.state = State::Trailer(1);
            return None;
        }
        self.finish(ts_ns)
    }

    /// The current message is whole at `ts_ns`.
    fn finish(&mut self, ts_ns: u64) -> Option<Event> {
        self.state = State::Line;
        let mut msg = self.current.take()?;
        msg.end_ns = ts_ns;
        Some(Event::Message(msg))
    }

    /// Sync is lost: drop what is partly read and look for a line with a known operation.
    fn lose_sync(&mut self) -> Option<Event> {
        let cut = self.current.take().is_some() || !self.line.is_empty();
        self.line.clear();
        self.line_start_ns = None;
        self.state = State::Line;
        self.resyncing = true;
        Some(Event::Lost(cut))
    }

    /// `len` bytes moved but not seen (`None`: unknown). The events: the message the gap
    /// completed, if any, then [`Event::Lost`] if the gap reached past a payload.
    pub(crate) fn skip(&mut self, len: Option<u64>, ts_ns: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let mut len = match (self.state, len) {
            (State::Payload(_) | State::Trailer(_), Some(len)) => len,
            _ => {
                events.extend(self.lose_sync());
                return events;
            }
        };
        if let State::Payload(left) = self.state {
            let n = left.min(len);
            len -= n;
            self.state = match left - n {
                0 => State::Trailer(0),
                left => State::Payload(left),
            };
        }
        if let State::Trailer(seen) = self.state {
            let n = u64::from(2 - seen).min(len);
            len -= n;
            let seen = seen + n as u8;
            if seen == 2 {
                events.extend(self.finish(ts_ns));
            } else {
                self.state = State::Trailer(seen);
            }
        }
        if len > 0 {
            events.extend(self.lose_sync());
        }
        events
    }
}

/// `bytes` as text: as is when UTF-8 (the usual case, checked fast), else lossily.
fn text_of(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}
