//! TCP reassembly for replay: one direction of a flow, put back in order by sequence number.
//!
//! Sequence numbers are made stream offsets relative to an origin: the ISN + 1 when the SYN
//! was seen, else the first sequence number seen in that direction. 32-bit wrap-around is
//! undone against the next expected offset. In-order bytes are handed out at once; segments
//! ahead of a hole are held (bounded in count, bytes and capture time); retransmitted and
//! overlapping bytes already handed out are trimmed. When a hole is given up on, the next
//! held segment is handed out at its own offset: the jump is what conntrack reports as a gap
//! (the replayed positions are what the kernel's positions are live).

use std::collections::BTreeMap;

/// Most segments held per direction while waiting for a missing range.
const MAX_HELD_SEGMENTS: usize = 1024;
/// Most bytes held per direction while waiting for a missing range.
const MAX_HELD_BYTES: usize = 4 << 20;
/// How long (capture time) a missing range is waited for.
pub const HOLD_NS: u64 = 1_000_000_000;

const WRAP: i128 = 1 << 32;

#[derive(Debug)]
struct Held {
    bytes: Vec<u8>,
    ts: u64,
}

/// What one call observed, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Segments whose bytes had all been handed out already (retransmissions).
    pub retransmitted: u64,
    /// Holes given up on.
    pub gaps: u64,
}

/// Reassembly state of one direction of a TCP flow.
#[derive(Debug, Default)]
pub struct Reassembler {
    origin: Option<u32>,
    /// Next offset to hand out.
    next: u64,
    held: BTreeMap<u64, Held>,
    held_bytes: usize,
    /// Offset of the FIN, once seen.
    fin_at: Option<u64>,
    ended: bool,
}

/// Where in-order pieces go: `(offset, bytes, len, end_of_stream, ts)`. `len` is at least
/// `bytes.len()`; more means that many bytes after `bytes` are missing (a hole given up on,
/// handed on as a known-size gap at once, the way the kernel reports bytes it did not copy).
pub trait Sink: FnMut(u64, &[u8], u64, bool, u64) {}
impl<T: FnMut(u64, &[u8], u64, bool, u64)> Sink for T {}

impl Reassembler {
    /// The SYN's sequence number: the stream starts after it. Ignored once bytes were placed.
    pub fn syn(&mut self, isn: u32) {
        if self.next == 0 && self.held.is_empty() && self.fin_at.is_none() {
            self.origin = Some(isn.wrapping_add(1));
        }
    }

    /// Whether the origin came from a SYN with this sequence number.
    pub fn isn_is(&self, isn: u32) -> bool {
        self.origin == Some(isn.wrapping_add(1))
    }

    /// Whether the end of stream was handed out.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Whether segments are held.
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Offset of `seq` relative to the origin (negative: before it).
    fn offset(&mut self, seq: u32) -> i128 {
        let origin = *self.origin.get_or_insert(seq);
        let rel = i128::from(seq.wrapping_sub(origin));
        let reference = i128::from(self.next);
        let mut cand = (reference & !(WRAP - 1)) + rel;
        if cand - reference > WRAP / 2 {
            cand -= WRAP;
        } else if reference - cand > WRAP / 2 {
            cand += WRAP;
        }
        cand
    }

    /// A segment starting at `seq` with `payload`; `fin` when it carries a FIN.
    pub fn push(
        &mut self,
        seq: u32,
        payload: &[u8],
        fin: bool,
        ts: u64,
        out: &mut impl Sink,
    ) -> PushReport {
        let mut report = PushReport::default();
        if self.ended {
            if !payload.is_empty() {
                report.retransmitted = 1;
            }
            return report;
        }
        let start = self.offset(seq);
        let end = start + payload.len() as i128;
        if fin && end >= 0 && self.fin_at.is_none() {
            self.fin_at = Some(end as u64);
        }
        let next = i128::from(self.next);
        if end <= next {
            if !payload.is_empty() {
                report.retransmitted = 1;
            }
            self.maybe_end(ts, out);
            return report;
        }
        if start <= next {
            // In order, possibly overlapping what was handed out: only the new tail.
            let tail = &payload[(next - start) as usize..];
            self.deliver(tail, ts, out);
            self.release_ready(out);
        } else if !payload.is_empty() {
            let start = start as u64;
            let keep = self
                .held
                .get(&start)
                .is_none_or(|h| h.bytes.len() < payload.len());
            if keep {
                let old = self.held.insert(
                    start,
                    Held {
                        bytes: payload.to_vec(),
                        ts,
                    },
                );
                self.held_bytes += payload.len();
                self.held_bytes -= old.map_or(0, |h| h.bytes.len());
            } else {
                report.retransmitted = 1;
            }
            if self.held.len() > MAX_HELD_SEGMENTS || self.held_bytes > MAX_HELD_BYTES {
                report.gaps += self.give_up(out);
            }
        }
        self.maybe_end(ts, out);
        report
    }

    /// Give up on holes older than [`HOLD_NS`] at capture time `now`; returns gaps.
    pub fn expire(&mut self, now: u64, out: &mut impl Sink) -> u64 {
        match self.held.values().map(|h| h.ts).min() {
            Some(oldest) if now.saturating_sub(oldest) >= HOLD_NS => self.give_up(out),
            _ => 0,
        }
    }

    /// Stop waiting: hand out everything held, holes becoming jumps; returns gaps.
    pub fn flush(&mut self, out: &mut impl Sink) -> u64 {
        self.give_up(out)
    }

    fn deliver(&mut self, bytes: &[u8], ts: u64, out: &mut impl Sink) {
        if bytes.is_empty() {
            return;
        }
        let end = self
            .fin_at
            .is_some_and(|f| f <= self.next + bytes.len() as u64);
        out(self.next, bytes, bytes.len() as u64, end, ts);
        self.next += bytes.len() as u64;
        self.ended |= end;
    }

    fn maybe_end(&mut self, ts: u64, out: &mut impl Sink) {
        if !self.ended && self.held.is_empty() && self.fin_at.is_some_and(|f| f <= self.next) {
            self.ended = true;
            out(self.next, &[], 0, true, ts);
        }
    }

    fn release_ready(&mut self, out: &mut impl Sink) {
        while let Some(entry) = self.held.first_entry() {
            let start = *entry.key();
            if start > self.next {
                break;
            }
            let h = entry.remove();
            self.held_bytes -= h.bytes.len();
            let end = start + h.bytes.len() as u64;
            if end > self.next && !self.ended {
                let tail = &h.bytes[(self.next - start) as usize..];
                self.deliver(tail, h.ts, out);
            }
        }
    }

    fn give_up(&mut self, out: &mut impl Sink) -> u64 {
        self.give_up_until(u64::MAX, out)
    }

    /// The peer acknowledged up to `ack`: bytes before it that never showed up in the capture
    /// were delivered all the same, so they will not come; report them as missing now.
    pub fn acked(&mut self, ack: u32, ts: u64, out: &mut impl Sink) -> u64 {
        if self.origin.is_none() || self.ended {
            return 0;
        }
        let off = self.offset(ack);
        if off <= i128::from(self.next) {
            return 0;
        }
        // Acknowledging the FIN counts it too: no byte lies after it.
        let off = self.fin_at.map_or(off as u64, |f| (off as u64).min(f));
        let mut gaps = self.give_up_until(off, out);
        if off > self.next && !self.ended {
            // Nothing held before it: the lost bytes end where the acknowledgement says.
            out(self.next, &[], off - self.next, false, ts);
            self.next = off;
            gaps += 1;
            self.release_ready(out);
            self.maybe_end(ts, out);
        }
        gaps
    }

    /// Give up on every hole before held segments starting at or before `limit`.
    fn give_up_until(&mut self, limit: u64, out: &mut impl Sink) -> u64 {
        let mut gaps = 0;
        let mut last_ts = None;
        while let Some((&start, h)) = self.held.first_key_value() {
            if start > limit {
                break;
            }
            last_ts = Some(h.ts);
            if start > self.next {
                gaps += 1;
                if !self.ended {
                    out(self.next, &[], start - self.next, false, h.ts);
                }
                self.next = start;
            }
            self.release_ready(out);
            if self.ended {
                self.held.clear();
                self.held_bytes = 0;
            }
        }
        if let Some(ts) = last_ts {
            self.maybe_end(ts, out);
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct P(u64, Vec<u8>, bool);

    fn push_all(r: &mut Reassembler, segs: &[(u32, &[u8], bool)], out: &mut Vec<P>) -> PushReport {
        let mut total = PushReport::default();
        for &(seq, bytes, fin) in segs {
            let rep = r.push(seq, bytes, fin, 1, &mut |off, b: &[u8], len, end, _| {
                if len > b.len() as u64 {
                    out.push(P(off, format!("<{len}>").into_bytes(), end));
                } else {
                    out.push(P(off, b.to_vec(), end));
                }
            });
            total.retransmitted += rep.retransmitted;
            total.gaps += rep.gaps;
        }
        total
    }

    #[test]
    fn in_order_from_syn() {
        let mut r = Reassembler::default();
        r.syn(1000);
        let mut out = Vec::new();
        push_all(
            &mut r,
            &[(1001, b"abc", false), (1004, b"de", true)],
            &mut out,
        );
        assert_eq!(
            out,
            vec![P(0, b"abc".to_vec(), false), P(3, b"de".to_vec(), true)]
        );
        assert!(r.ended());
    }

    #[test]
    fn out_of_order_is_reordered() {
        let mut r = Reassembler::default();
        r.syn(0);
        let mut out = Vec::new();
        push_all(
            &mut r,
            &[(1, b"ab", false), (5, b"ef", false), (3, b"cd", false)],
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                P(0, b"ab".to_vec(), false),
                P(2, b"cd".to_vec(), false),
                P(4, b"ef".to_vec(), false)
            ]
        );
        assert!(!r.has_held());
    }

    #[test]
    fn retransmission_and_overlap_are_trimmed() {
        let mut r = Reassembler::default();
        r.syn(99);
        let mut out = Vec::new();
        let rep = push_all(
            &mut r,
            &[
                (100, b"abcd", false),
                (100, b"abcd", false), // full retransmission
                (102, b"cdef", false), // overlap: only "ef" is new
            ],
            &mut out,
        );
        assert_eq!(rep.retransmitted, 1);
        assert_eq!(
            out,
            vec![P(0, b"abcd".to_vec(), false), P(4, b"ef".to_vec(), false)]
        );
    }

    #[test]
    fn hole_becomes_a_jump_after_hold_time() {
        let mut r = Reassembler::default();
        let mut out = Vec::new();
        // No SYN: the first sequence number seen is the origin.
        push_all(
            &mut r,
            &[(5000, b"ab", false), (5010, b"kl", false)],
            &mut out,
        );
        assert_eq!(out, vec![P(0, b"ab".to_vec(), false)]);
        assert_eq!(r.expire(1 + HOLD_NS / 2, &mut |_, _: &[u8], _, _, _| {}), 0);
        let gaps = r.expire(1 + HOLD_NS, &mut |off, b: &[u8], len, end, _| {
            out.push(P(off, b.to_vec(), end));
            assert!(len >= b.len() as u64);
        });
        assert_eq!(gaps, 1);
        // The hole is handed on as 8 missing bytes, then the data after it.
        assert_eq!(out[1], P(2, Vec::new(), false));
        assert_eq!(out[2], P(10, b"kl".to_vec(), false));
        // The hole's bytes arriving late are stale now.
        let rep = push_all(&mut r, &[(5002, b"cdefghij", false)], &mut out);
        assert_eq!(rep.retransmitted, 1);
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn sequence_wraps_around() {
        let mut r = Reassembler::default();
        r.syn(u32::MAX - 2);
        let mut out = Vec::new();
        push_all(
            &mut r,
            &[
                (u32::MAX - 1, b"ab", false),
                (0, b"cd", false),
                (2, b"e", true),
            ],
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                P(0, b"ab".to_vec(), false),
                P(2, b"cd".to_vec(), false),
                P(4, b"e".to_vec(), true)
            ]
        );
    }

    #[test]
    fn fin_without_data_and_early_fin() {
        let mut r = Reassembler::default();
        r.syn(10);
        let mut out = Vec::new();
        // FIN arrives before the last data segment.
        push_all(
            &mut r,
            &[(11, b"ab", false), (15, b"", true), (13, b"cd", false)],
            &mut out,
        );
        assert_eq!(
            out,
            vec![P(0, b"ab".to_vec(), false), P(2, b"cd".to_vec(), true)]
        );
        let mut r = Reassembler::default();
        r.syn(10);
        let mut out = Vec::new();
        push_all(&mut r, &[(11, b"", true)], &mut out);
        assert_eq!(out, vec![P(0, Vec::new(), true)]);
    }

    #[test]
    fn acknowledged_hole_is_given_up_at_once() {
        let mut r = Reassembler::default();
        r.syn(0);
        let mut out = Vec::new();
        push_all(&mut r, &[(1, b"ab", false), (7, b"gh", false)], &mut out);
        assert_eq!(out.len(), 1);
        // The peer acknowledges up to offset 8: the hole 2..6 was lost in the capture.
        let gaps = r.acked(9, 2, &mut |off, b: &[u8], len, end, _| {
            out.push(P(off, format!("{}+{len}", b.len()).into_bytes(), end))
        });
        assert_eq!(gaps, 1);
        assert_eq!(
            out[1..],
            [P(2, b"0+4".to_vec(), false), P(6, b"2+2".to_vec(), false)]
        );
        // Acknowledged bytes never seen, nothing held: missing right away.
        let gaps = r.acked(12, 3, &mut |off, b: &[u8], len, end, _| {
            out.push(P(off, format!("{}+{len}", b.len()).into_bytes(), end))
        });
        assert_eq!(gaps, 1);
        assert_eq!(out[3], P(8, b"0+3".to_vec(), false));
    }

    #[test]
    fn too_many_held_gives_up() {
        let mut r = Reassembler::default();
        r.syn(0);
        let mut out = Vec::new();
        push_all(&mut r, &[(1, b"a", false)], &mut out);
        let segs: Vec<(u32, &[u8], bool)> = (0..=MAX_HELD_SEGMENTS as u32)
            .map(|i| (100 + i, &b"x"[..], false))
            .collect();
        let rep = push_all(&mut r, &segs, &mut out);
        assert_eq!(rep.gaps, 1);
        assert_eq!(out[1], P(1, b"<98>".to_vec(), false));
        assert_eq!(out[2].0, 99);
        assert_eq!(out.len(), 3 + MAX_HELD_SEGMENTS);
        assert!(!r.has_held());
    }
}
