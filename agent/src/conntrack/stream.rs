//! One direction of a connection: puts events back in stream order by their byte position.
//!
//! Events carry the position of their first byte, assigned by the kernel per connection and
//! direction. An event ahead of the expected position is held (bounded in count, bytes and
//! time) until the missing range arrives; if it does not, the range is reported as a gap of
//! known size and the held events follow. A position that goes backwards to 0 means the kernel
//! forgot the connection (map eviction): an unknown gap.

use std::collections::BTreeMap;

/// Most events held while waiting for a missing range.
pub const MAX_HELD_EVENTS: usize = 64;
/// Most bytes held while waiting for a missing range, per direction.
pub const MAX_HELD_BYTES: usize = 256 << 10;
/// How long (event time) a missing range is waited for.
pub const HOLD_NS: u64 = 50_000_000;

/// An in-order piece of the stream, handed to the parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Bytes, then `missing` bytes the call moved but the kernel did not capture.
    Data {
        /// Captured bytes.
        bytes: &'a [u8],
        /// Bytes after them that were not captured.
        missing: u64,
        /// When they were moved (Unix ns).
        ts: u64,
    },
    /// Bytes lost between events: `Some(n)` when the size is known.
    Gap {
        /// Size of the gap, if known.
        len: Option<u64>,
        /// Time of the event after the gap.
        ts: u64,
    },
    /// The sender closed this direction.
    End {
        /// When.
        ts: u64,
    },
}

#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    len: u64,
    ts: u64,
    end: bool,
}

/// What [`Stream::place`] observed, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PlaceReport {
    /// Gaps reported.
    pub gaps: u64,
    /// Events that came early and were held.
    pub held: u64,
    /// Events entirely before the expected position, ignored.
    pub stale: u64,
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub struct Stream {
    next: Option<u64>,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
}

impl Stream {
    /// Place an event at `pos` moving `len` bytes of which `bytes` were captured; `end` marks
    /// end of stream. In-order pieces go to `deliver`.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        pos: u64,
        len: u64,
        bytes: &[u8],
        end: bool,
        ts: u64,
        deliver: &mut impl FnMut(Piece<'_>),
    ) -> PlaceReport {
        let mut report = PlaceReport::default();
        let next = *self.next.get_or_insert(pos);
        if pos == next {
            emit(bytes, len, end, ts, deliver);
            // Saturating: a length is whatever the event claims, up to u64::MAX.
            self.next = Some(pos.saturating_add(len));
            self.release_ready(deliver);
        } else if pos > next {
            report.held = 1;
            self.held_bytes += bytes.len();
            let replaced = self.held.insert(
                pos,
                Held {
                    bytes: bytes.to_vec(),
                    len,
                    ts,
                    end,
                },
            );
            if let Some(old) = replaced {
                // A duplicate of a held event: the newer copy stays.
                self.held_bytes -= old.bytes.len();
            }
            if self.held.len() > MAX_HELD_EVENTS || self.held_bytes > MAX_HELD_BYTES {
                report.gaps += self.give_up(deliver);
            }
        } else if pos == 0 {
            // The kernel lost its state for this connection and started counting again.
            report.gaps = 1;
            self.held.clear();
            self.held_bytes = 0;
            deliver(Piece::Gap { len: None, ts });
            emit(bytes, len, end, ts, deliver);
            self.next = Some(len);
        } else if pos.saturating_add(len) > next {
            // Overlaps what was delivered: hand over only the new tail.
            let skip = (next - pos) as usize;
            let tail = bytes.get(skip..).unwrap_or(&[]);
            let tail_len = pos.saturating_add(len) - next;
            emit(tail, tail_len, end, ts, deliver);
            self.next = Some(pos.saturating_add(len));
            self.release_ready(deliver);
        } else {
            report.stale = 1;
        }
        report
    }

    /// Give up waiting for missing ranges held longer than [`HOLD_NS`]; returns gaps reported.
    pub fn expire(&mut self, now_ts: u64, deliver: &mut impl FnMut(Piece<'_>)) -> u64 {
        match self.held.values().map(|h| h.ts).min() {
            Some(oldest) if now_ts.saturating_sub(oldest) >= HOLD_NS => self.give_up(deliver),
            _ => 0,
        }
    }

    /// Whether events are held.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Bytes held, counted afresh from the held events (checks [`Stream::held_bytes`]).
    pub fn held_bytes_recounted(&self) -> usize {
        self.held.values().map(|h| h.bytes.len()).sum()
    }

    /// Stop waiting now: report missing ranges as gaps and release everything held.
    pub fn flush(&mut self, deliver: &mut impl FnMut(Piece<'_>)) -> u64 {
        self.give_up(deliver)
    }

    fn release_ready(&mut self, deliver: &mut impl FnMut(Piece<'_>)) {
        while let Some(next) = self.next {
            let Some(h) = self.held.remove(&next) else {
                break;
            };
            self.held_bytes -= h.bytes.len();
            emit(&h.bytes, h.len, h.end, h.ts, deliver);
            self.next = Some(next.saturating_add(h.len));
        }
    }

    /// Report the range before the first held event as a gap and release what follows.
    fn give_up(&mut self, deliver: &mut impl FnMut(Piece<'_>)) -> u64 {
        let mut gaps = 0;
        while let Some((&pos, _)) = self.held.first_key_value() {
            let next = self.next.unwrap_or(pos);
            if pos < next {
                // Overtaken by an event that covered it: already delivered.
                if let Some(h) = self.held.remove(&pos) {
                    self.held_bytes -= h.bytes.len();
                }
                continue;
            }
            if pos > next {
                let ts = self.held.get(&pos).map(|h| h.ts).unwrap_or(0);
                deliver(Piece::Gap {
                    len: Some(pos - next),
                    ts,
                });
                gaps += 1;
            }
            self.next = Some(pos);
            self.release_ready(deliver);
        }
        gaps
    }
}

fn emit(bytes: &[u8], len: u64, end: bool, ts: u64, deliver: &mut impl FnMut(Piece<'_>)) {
    if len > 0 {
        let missing = len.saturating_sub(bytes.len() as u64);
        deliver(Piece::Data { bytes, missing, ts });
    }
    if end {
        deliver(Piece::End { ts });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    enum P {
        D(Vec<u8>, u64),
        G(Option<u64>),
        E,
    }

    fn run(events: &[(u64, &[u8], u64, bool, u64)]) -> (Vec<P>, Stream) {
        let mut s = Stream::default();
        let mut out = Vec::new();
        for &(pos, bytes, len, end, ts) in events {
            s.place(pos, len, bytes, end, ts, &mut |p| {
                out.push(match p {
                    Piece::Data { bytes, missing, .. } => P::D(bytes.to_vec(), missing),
                    Piece::Gap { len, .. } => P::G(len),
                    Piece::End { .. } => P::E,
                })
            });
        }
        (out, s)
    }

    #[test]
    fn in_order_and_truncated() {
        let (out, _) = run(&[
            (0, b"ab", 2, false, 1),
            (2, b"cd", 10, false, 2),
            (12, b"", 0, true, 3),
        ]);
        assert_eq!(
            out,
            vec![P::D(b"ab".to_vec(), 0), P::D(b"cd".to_vec(), 8), P::E]
        );
    }

    #[test]
    fn reorders_early_event() {
        let (out, s) = run(&[
            (100, b"ab", 2, false, 1),
            (104, b"ef", 2, false, 2),
            (102, b"cd", 2, false, 3),
        ]);
        assert_eq!(
            out,
            vec![
                P::D(b"ab".to_vec(), 0),
                P::D(b"cd".to_vec(), 0),
                P::D(b"ef".to_vec(), 0)
            ]
        );
        assert!(!s.has_held());
    }

    #[test]
    fn gap_reported_after_hold_time() {
        let (mut out, mut s) = run(&[(0, b"ab", 2, false, 1), (10, b"kl", 2, false, 2)]);
        assert_eq!(out, vec![P::D(b"ab".to_vec(), 0)]);
        let gaps = s.expire(2 + HOLD_NS, &mut |p| {
            out.push(match p {
                Piece::Data { bytes, missing, .. } => P::D(bytes.to_vec(), missing),
                Piece::Gap { len, .. } => P::G(len),
                Piece::End { .. } => P::E,
            })
        });
        assert_eq!(gaps, 1);
        assert_eq!(out[1..], [P::G(Some(8)), P::D(b"kl".to_vec(), 0)]);
    }

    #[test]
    fn restart_at_zero_is_unknown_gap_and_stale_is_ignored() {
        let (out, _) = run(&[
            (0, b"abcd", 4, false, 1),
            (1, b"b", 1, false, 2),
            (0, b"xy", 2, false, 3),
        ]);
        assert_eq!(
            out,
            vec![
                P::D(b"abcd".to_vec(), 0),
                P::G(None),
                P::D(b"xy".to_vec(), 0)
            ]
        );
    }

    #[test]
    fn overlap_delivers_tail() {
        let (out, _) = run(&[(0, b"abcd", 4, false, 1), (2, b"cdef", 4, false, 2)]);
        assert_eq!(
            out,
            vec![P::D(b"abcd".to_vec(), 0), P::D(b"ef".to_vec(), 0)]
        );
    }

    #[test]
    fn too_many_held_gives_up() {
        let mut events: Vec<(u64, &[u8], u64, bool, u64)> = vec![(0, b"a", 1, false, 1)];
        for i in 0..=MAX_HELD_EVENTS as u64 {
            events.push((10 + i, b"x", 1, false, 2));
        }
        let (out, s) = run(&events);
        assert_eq!(out[1], P::G(Some(9)));
        assert_eq!(out.len(), 2 + MAX_HELD_EVENTS + 1);
        assert!(!s.has_held());
    }
}
