//! Choosing a connection's parser from its first bytes, held until they can be judged.
//!
//! A message often arrives in several reads: dnsmasq reads a DNS-over-TCP length prefix one
//! byte at a time, and a server may read a request header before its body. Judging each piece
//! on its own would throw those pieces away, and with them the request. So each direction's
//! first bytes are held (at most [`MAX_HELD`]) and judged together; once a parser is chosen it
//! gets the held bytes of both directions first, in time order, then the stream as it comes.
//! A piece that reads well alone after held bytes that do not (a connection joined mid-stream,
//! held bytes from the middle of a message) starts the held bytes afresh.

use wirelens_parsers::{Direction, Output, Parser, infer, new_parser};

/// Least confidence for an inference to pick a parser.
pub const MIN_CONFIDENCE: u8 = 50;
/// Data pieces looked at before a connection is declared unrecognised.
pub const MAX_TRIES: u32 = 16;
/// Most bytes held per direction while the protocol is unknown: every protocol's opening
/// (a request line, a length and a header) fits, and 10,000 undecided connections hold at
/// most 20 MiB.
pub const MAX_HELD: usize = 1024;

/// One direction's contiguous first bytes, and when the first of them moved.
#[derive(Debug, Default)]
struct Held {
    bytes: Vec<u8>,
    ts: u64,
}

/// A connection whose protocol is not known yet.
#[derive(Debug, Default)]
pub struct Inferring {
    /// Pieces judged so far.
    pub tries: u32,
    /// Indexed by [`Direction::index`].
    held: [Held; 2],
}

/// What one piece decided.
pub enum Verdict {
    /// Still unknown; keep going.
    Undecided,
    /// Too many pieces read as nothing known.
    Unrecognised,
    /// This parser, already fed every byte held so far (the piece's own included).
    Chosen(Box<dyn Parser>),
}

impl Inferring {
    /// Judges `bytes` (moved at `ts`, in stream order after what `dir` held); `whole` is
    /// false when bytes after them were not captured, so nothing may be appended later.
    pub fn judge(
        &mut self,
        dir: Direction,
        bytes: &[u8],
        ts: u64,
        whole: bool,
        out: &mut Output,
    ) -> Verdict {
        let sure = |bytes: &[u8]| infer(dir, bytes).filter(|g| g.confidence >= MIN_CONFIDENCE);
        let held = &mut self.held[dir.index()];
        // The piece continues the held bytes when there are some and both fit.
        let joined = !held.bytes.is_empty() && held.bytes.len() + bytes.len() <= MAX_HELD;
        if joined {
            held.bytes.extend_from_slice(bytes);
        }
        // Judged with what was held first; failing that, alone (then what was held came
        // before a start: a connection joined mid-message).
        let guess = joined
            .then(|| sure(&held.bytes))
            .flatten()
            .map(|g| (g, true))
            .or_else(|| sure(bytes).map(|g| (g, false)));
        match guess {
            Some((guess, piece_held)) => {
                if !piece_held {
                    held.bytes = Vec::new();
                }
                tracing::debug!(protocol = guess.protocol.name(), ?dir, "protocol inferred");
                let mut parser = new_parser(guess.protocol);
                self.replay(dir, parser.as_mut(), out);
                if !piece_held {
                    parser.feed(dir, bytes, ts, out);
                }
                Verdict::Chosen(parser)
            }
            None => {
                if !joined {
                    // The held bytes start afresh with this piece, when it fits.
                    held.bytes.clear();
                    if bytes.len() <= MAX_HELD {
                        held.bytes.extend_from_slice(bytes);
                        held.ts = ts;
                    }
                }
                if !whole {
                    // What follows was not captured: these bytes no longer lead anywhere.
                    self.forget(dir);
                }
                self.tries += 1;
                if self.tries >= MAX_TRIES {
                    Verdict::Unrecognised
                } else {
                    Verdict::Undecided
                }
            }
        }
    }

    /// A gap or a close in `dir`: its held bytes are no longer followed by what comes next.
    pub fn forget(&mut self, dir: Direction) {
        let held = &mut self.held[dir.index()];
        held.bytes = Vec::new();
    }

    /// Feeds both directions' held bytes to `parser`, the earlier first; `chosen` last on a tie
    /// (its bytes decided, so the other side's are older or from the same moment).
    fn replay(&mut self, chosen: Direction, parser: &mut dyn Parser, out: &mut Output) {
        let other = chosen.flip();
        let mut order = [other, chosen];
        if self.held[other.index()].ts > self.held[chosen.index()].ts {
            order = [chosen, other];
        }
        for dir in order {
            let held = std::mem::take(&mut self.held[dir.index()]);
            if !held.bytes.is_empty() {
                parser.feed(dir, &held.bytes, held.ts, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DNS over TCP as dnsmasq reads it (recorded with strace): the length one byte at a
    /// time, then the message.
    #[test]
    fn a_request_read_in_pieces_is_parsed_whole() {
        let query: &[u8] =
            b"\x15\xb2\x01\x20\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x04test\x00\x00\x01\x00\x01";
        let mut answer = Vec::from(query);
        answer[2] = 0x85;
        answer[3] = 0x80;
        answer[7] = 1;
        answer
            .extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x00\x00\x04\x0a\x01\x02\x03");
        let len = u16::try_from(query.len()).unwrap_or(0).to_be_bytes();
        let mut out = Output::default();
        let mut inferring = Inferring::default();
        let mut chosen = None;
        for (i, piece) in [&len[..1], &len[1..], query].into_iter().enumerate() {
            match inferring.judge(Direction::Ingress, piece, 10 + i as u64, true, &mut out) {
                Verdict::Chosen(p) => chosen = Some(p),
                Verdict::Undecided => {}
                Verdict::Unrecognised => panic!("gave up"),
            }
        }
        let Some(mut parser) = chosen else {
            panic!("no parser for the whole query");
        };
        let mut reply = u16::try_from(answer.len())
            .unwrap_or(0)
            .to_be_bytes()
            .to_vec();
        reply.extend_from_slice(&answer);
        parser.feed(Direction::Egress, &reply, 20, &mut out);
        assert_eq!(out.records.len(), 1, "{:?}", out.take_losses());
        assert_eq!(out.records[0].start_ns, 10);
        assert_eq!(out.records[0].end_ns, 20);
    }

    #[test]
    fn a_fresh_start_after_bytes_from_mid_message() {
        let mut out = Output::default();
        let mut inferring = Inferring::default();
        assert!(matches!(
            inferring.judge(Direction::Egress, b"tail of a body\r\n", 1, true, &mut out),
            Verdict::Undecided
        ));
        let verdict = inferring.judge(
            Direction::Egress,
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            2,
            true,
            &mut out,
        );
        let Verdict::Chosen(mut parser) = verdict else {
            panic!("the request alone reads as HTTP");
        };
        parser.feed(
            Direction::Ingress,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            3,
            &mut out,
        );
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].start_ns, 2);
    }

    #[test]
    fn a_first_piece_longer_than_what_is_held_is_fed_whole() {
        let mut request =
            b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n".to_vec();
        request.resize(request.len() + 3000, b'x');
        assert!(request.len() > MAX_HELD);
        let mut out = Output::default();
        let mut inferring = Inferring::default();
        let Verdict::Chosen(mut parser) =
            inferring.judge(Direction::Egress, &request, 1, true, &mut out)
        else {
            panic!("a POST reads as HTTP");
        };
        parser.feed(
            Direction::Ingress,
            b"HTTP/1.1 204 No Content\r\n\r\n",
            2,
            &mut out,
        );
        assert_eq!(out.records.len(), 1, "{:?}", out.take_losses());
        assert_eq!(out.records[0].request_bytes, request.len() as u64);
    }
}
