//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766): each message follows its length as two
//! bytes, big-endian. One framer per direction.
//!
//! Whole messages in a feed are handed on in place; only a message split across feeds is
//! copied (at most 65,537 bytes). A gap inside a message body of known length skips the rest of
//! that message and resynchronises on the next length; any other gap loses the framing: the
//! framer then waits for a feed that starts with a plausible DNS message (length, header and
//! question parse), counting the bytes it passes over.

use crate::{Loss, Output};

use super::infer::plausible_stream_start;

/// Bytes of the length prefix.
const PREFIX_LEN: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sync {
    /// At a message boundary, or inside the message being buffered.
    Framed,
    /// Inside a message whose bytes were partly not seen: this many bytes are still to pass.
    Skipping(u64),
    /// Message boundaries unknown until a feed starts with a plausible message.
    Lost,
}

/// One direction's TCP framing state.
#[derive(Debug)]
pub(crate) struct StreamFramer {
    /// Prefix and body so far of a message split across feeds.
    partial: Vec<u8>,
    /// When the first byte of `partial` was moved.
    start_ns: u64,
    sync: Sync,
}

impl Default for StreamFramer {
    fn default() -> Self {
        Self {
            partial: Vec::new(),
            start_ns: 0,
            sync: Sync::Framed,
        }
    }
}

/// Length of the message whose prefix starts `bytes`, prefix included.
fn framed_len(bytes: &[u8]) -> Option<usize> {
    match bytes {
        [hi, lo, ..] => Some(PREFIX_LEN + usize::from(u16::from_be_bytes([*hi, *lo]))),
        _ => None,
    }
}

impl StreamFramer {
    /// Frames `bytes`; calls `on_message(body, first byte's ns, out)` for each whole message.
    pub(crate) fn feed(
        &mut self,
        mut bytes: &[u8],
        ts_ns: u64,
        out: &mut Output,
        on_message: &mut dyn FnMut(&[u8], u64, &mut Output),
    ) {
        while !bytes.is_empty() {
            match self.sync {
                Sync::Skipping(left) => {
                    let n = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    out.lose(Loss::ResyncBytes, n as u64);
                    bytes = &bytes[n..];
                    let left = left - n as u64;
                    self.sync = if left == 0 {
                        Sync::Framed
                    } else {
                        Sync::Skipping(left)
                    };
                }
                Sync::Lost if plausible_stream_start(bytes) => self.sync = Sync::Framed,
                Sync::Lost => {
                    out.lose(Loss::ResyncBytes, bytes.len() as u64);
                    return;
                }
                Sync::Framed if self.partial.is_empty() => {
                    match framed_len(bytes).filter(|&len| len <= bytes.len()) {
                        Some(len) => {
                            on_message(&bytes[PREFIX_LEN..len], ts_ns, out);
                            bytes = &bytes[len..];
                        }
                        None => {
                            self.start_ns = ts_ns;
                            self.partial.extend_from_slice(bytes);
                            return;
                        }
                    }
                }
                Sync::Framed => bytes = self.complete_partial(bytes, out, on_message),
            }
        }
    }

    /// Adds to the buffered message what it still needs of `bytes`; returns the rest.
    fn complete_partial<'b>(
        &mut self,
        bytes: &'b [u8],
        out: &mut Output,
        on_message: &mut dyn FnMut(&[u8], u64, &mut Output),
    ) -> &'b [u8] {
        let want = framed_len(&self.partial).unwrap_or(PREFIX_LEN);
        let take = (want - self.partial.len()).min(bytes.len());
        self.partial.extend_from_slice(&bytes[..take]);
        if framed_len(&self.partial) == Some(self.partial.len()) {
            on_message(&self.partial[PREFIX_LEN..], self.start_ns, out);
            self.partial.clear();
        }
        &bytes[take..]
    }

    /// `len` bytes were not seen (`None`: an unknown amount).
    pub(crate) fn skip(&mut self, len: Option<u64>, out: &mut Output) {
        self.sync = match (self.sync, len) {
            (Sync::Skipping(left), Some(n)) if n <= left => Sync::Skipping(left - n),
            (Sync::Framed, Some(n)) => match framed_len(&self.partial) {
                // Inside a message body: drop the message, keep the framing.
                Some(total) if n <= (total - self.partial.len()) as u64 => {
                    let left = (total - self.partial.len()) as u64 - n;
                    out.lose(Loss::ResyncBytes, self.partial.len() as u64 + n);
                    self.partial.clear();
                    Sync::Skipping(left)
                }
                _ => self.lose_framing(out),
            },
            _ => self.lose_framing(out),
        };
        if self.sync == Sync::Skipping(0) {
            self.sync = Sync::Framed;
        }
    }

    fn lose_framing(&mut self, out: &mut Output) -> Sync {
        out.lose(Loss::ResyncBytes, self.partial.len() as u64);
        self.partial.clear();
        Sync::Lost
    }

    /// The direction ended: a message still incomplete is counted as malformed.
    pub(crate) fn end(&mut self, out: &mut Output) {
        if !self.partial.is_empty() {
            out.lose(Loss::Malformed, 1);
            self.partial.clear();
        }
        self.sync = Sync::Framed;
    }
}
