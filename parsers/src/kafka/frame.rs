//! Framing of one direction: a big-endian int32 size, then that many bytes. The first
//! [`MAX_KEEP`] bytes of a frame are kept for decoding; the rest, and bytes moved but not
//! captured, are counted. At the start, and after a gap that breaks framing, the bytes are
//! scanned for a plausible frame start (the caller judges) and framing resumes there.

use crate::{Loss, Output};

/// Bytes of a frame kept for decoding; the rest is counted, not kept.
pub const MAX_KEEP: usize = 1 << 20;
/// Largest frame accepted (Kafka's `socket.request.max.bytes` default is 100 MiB; fetch
/// responses are bounded by `fetch.max.bytes`, 50 MiB by default).
pub const MAX_FRAME: u32 = 256 << 20;
/// Bytes held while looking for a frame start after a gap.
const MAX_SCAN: usize = 64 << 10;

/// A complete frame.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// The kept prefix of the frame's bytes (after the size).
    pub bytes: &'a [u8],
    /// The frame's size (after the size field).
    pub len: u32,
    /// Whether bytes of the frame were not kept (not captured, or past [`MAX_KEEP`]).
    pub cut: bool,
    pub start_ns: u64,
    pub end_ns: u64,
}

/// Where frames go, and who judges frame starts when framing is lost.
pub(crate) trait Sink {
    /// Whether `bytes` can start a frame.
    /// `fresh`: the very first bytes of the direction (nothing framed or passed over yet).
    fn judge(&mut self, bytes: &[u8], fresh: bool) -> Verdict;
    /// A complete frame.
    fn frame(&mut self, frame: Frame<'_>, out: &mut Output);
}

/// What the resync scan thinks of the bytes at a candidate position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Yes,
    No,
    NeedMore,
}

#[derive(Debug)]
enum State {
    /// Reading the size field: bytes of it seen so far.
    Size { have: [u8; 4], n: usize },
    /// Reading the frame: bytes of it seen (kept or not).
    Body { len: u32, seen: u64, cut: bool },
    /// Lost: scanning for a frame start.
    Lost,
}

/// The framer of one direction.
#[derive(Debug)]
pub(crate) struct Framer {
    state: State,
    kept: Vec<u8>,
    start_ns: u64,
    scan: Vec<u8>,
    /// Nothing framed or passed over yet.
    fresh: bool,
}

impl Framer {
    /// A framer that has seen nothing: the first bytes are judged like bytes after a gap
    /// (a connection joined mid-frame must not be framed from a size read in its middle).
    pub(crate) fn new() -> Self {
        Self {
            state: State::Lost,
            kept: Vec::new(),
            start_ns: 0,
            scan: Vec::new(),
            fresh: true,
        }
    }

    /// Feeds `bytes`; `sink` judges frame starts when lost and gets each frame.
    pub(crate) fn feed(&mut self, bytes: &[u8], ts_ns: u64, out: &mut Output, sink: &mut dyn Sink) {
        let rest = self.frame_bytes(bytes, ts_ns, out, sink);
        self.scan.extend_from_slice(rest);
        // Lost (before or during these bytes): scan what is held, frame from a start found.
        while matches!(self.state, State::Lost) {
            let Some(at) = self.resync(out, sink) else {
                return;
            };
            let window = std::mem::take(&mut self.scan);
            self.set_size();
            let rest = self.frame_bytes(&window[at..], ts_ns, out, sink);
            self.scan.extend_from_slice(rest);
        }
    }

    /// Frames `bytes` until they are used up or framing is lost; returns what is left.
    fn frame_bytes<'b>(
        &mut self,
        mut bytes: &'b [u8],
        ts_ns: u64,
        out: &mut Output,
        sink: &mut dyn Sink,
    ) -> &'b [u8] {
        while !bytes.is_empty() && !matches!(self.state, State::Lost) {
            bytes = self.step(bytes, ts_ns, out, sink);
        }
        bytes
    }

    /// Looks for a frame start in the held bytes; counts what is passed over and keeps at
    /// most [`MAX_SCAN`] bytes from the first position that needs more.
    fn resync(&mut self, out: &mut Output, sink: &mut dyn Sink) -> Option<usize> {
        let window = &self.scan;
        for at in 0..window.len() {
            let fresh = self.fresh && at == 0;
            match sink.judge(&window[at..], fresh) {
                Verdict::Yes => {
                    self.fresh = false;
                    out.lose(Loss::ResyncBytes, at as u64);
                    return Some(at);
                }
                Verdict::NeedMore => {
                    let keep_from = at.max(window.len().saturating_sub(MAX_SCAN));
                    self.fresh &= keep_from == 0;
                    out.lose(Loss::ResyncBytes, keep_from as u64);
                    self.scan.drain(..keep_from);
                    return None;
                }
                Verdict::No => {}
            }
        }
        out.lose(Loss::ResyncBytes, window.len() as u64);
        self.fresh &= window.is_empty();
        self.scan.clear();
        None
    }

    fn set_size(&mut self) {
        self.state = State::Size { have: [0; 4], n: 0 };
    }

    /// One step of framing; returns the bytes not yet used.
    fn step<'b>(
        &mut self,
        bytes: &'b [u8],
        ts_ns: u64,
        out: &mut Output,
        sink: &mut dyn Sink,
    ) -> &'b [u8] {
        match &mut self.state {
            State::Size { have, n } => {
                if *n == 0 {
                    self.start_ns = ts_ns;
                }
                let take = (4 - *n).min(bytes.len());
                have[*n..*n + take].copy_from_slice(&bytes[..take]);
                *n += take;
                if *n == 4 {
                    let len = i32::from_be_bytes(*have);
                    match u32::try_from(len) {
                        Ok(len) if (4..=MAX_FRAME).contains(&len) => {
                            self.kept.clear();
                            self.state = State::Body {
                                len,
                                seen: 0,
                                cut: false,
                            };
                        }
                        _ => {
                            out.lose(Loss::Malformed, 1);
                            self.lose();
                        }
                    }
                }
                &bytes[take..]
            }
            State::Body { len, seen, .. } => {
                let want = u64::from(*len) - *seen;
                let take = usize::try_from(want).unwrap_or(usize::MAX).min(bytes.len());
                let room = MAX_KEEP.saturating_sub(self.kept.len()).min(take);
                self.kept.extend_from_slice(&bytes[..room]);
                *seen += take as u64;
                if room < take
                    && let State::Body { cut, .. } = &mut self.state
                    && !*cut
                {
                    *cut = true;
                    out.lose(Loss::Oversized, 1);
                }
                self.finish_if_whole(ts_ns, out, sink);
                &bytes[take..]
            }
            State::Lost => &[],
        }
    }

    fn finish_if_whole(&mut self, ts_ns: u64, out: &mut Output, sink: &mut dyn Sink) {
        if let State::Body { len, seen, cut } = self.state
            && seen == u64::from(len)
        {
            let frame = Frame {
                bytes: &self.kept,
                len,
                cut,
                start_ns: self.start_ns,
                end_ns: ts_ns,
            };
            sink.frame(frame, out);
            self.kept.clear();
            self.set_size();
        }
    }

    /// `len` bytes moved but not captured (`None`: unknown). Returns whether framing held.
    pub(crate) fn skip(
        &mut self,
        len: Option<u64>,
        ts_ns: u64,
        out: &mut Output,
        sink: &mut dyn Sink,
    ) -> bool {
        let Some(mut n) = len else {
            self.lose();
            return false;
        };
        if n == 0 {
            return true;
        }
        if let State::Body {
            len: frame_len,
            seen,
            cut,
        } = &mut self.state
        {
            let used = (u64::from(*frame_len) - *seen).min(n);
            *seen += used;
            *cut = true;
            n -= used;
            self.finish_if_whole(ts_ns, out, sink);
            if n == 0 {
                return true;
            }
        }
        if matches!(self.state, State::Lost) {
            return false;
        }
        // The gap covers a size field: the next frame boundary is unknown.
        self.lose();
        false
    }

    /// The connection is gone: bytes held while scanning were never framed. Returns whether
    /// a frame was in progress.
    pub(crate) fn close(&mut self, out: &mut Output) -> bool {
        out.lose(Loss::ResyncBytes, self.scan.len() as u64);
        self.scan.clear();
        let partial = match self.state {
            State::Size { n, .. } => n > 0,
            State::Body { .. } => true,
            State::Lost => false,
        };
        self.set_size();
        partial
    }

    /// Drops the frame in progress and starts scanning for the next frame start.
    pub(crate) fn lose(&mut self) {
        self.kept = Vec::new();
        self.scan = Vec::new();
        self.state = State::Lost;
    }
}
