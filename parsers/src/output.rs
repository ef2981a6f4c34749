//! Where parsers put what they produce: records, and counted losses.

use crate::record::Record;

/// Why something a parser saw did not become (part of) a record. Each is a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Bytes that did not parse as the protocol; the parser resynchronised.
    Malformed,
    /// A request whose response never came (connection closed, or gap).
    UnmatchedRequest,
    /// A response with no request to pair it with (joined mid-stream, or gap).
    UnmatchedResponse,
    /// A message larger than the parser buffers (headers past the limit).
    Oversized,
    /// Bytes discarded while looking for the next message boundary after a gap.
    ResyncBytes,
    /// Header blocks with fields that could not be decoded (HTTP/2 joined mid-stream or after
    /// a gap: HPACK dynamic-table references into entries never seen); the fields that could
    /// be were kept.
    UndecodedHeaders,
}

impl Loss {
    /// Every loss kind, in counter order.
    pub const ALL: [Loss; 6] = [
        Loss::Malformed,
        Loss::UnmatchedRequest,
        Loss::UnmatchedResponse,
        Loss::Oversized,
        Loss::ResyncBytes,
        Loss::UndecodedHeaders,
    ];

    /// Metric-friendly name.
    pub fn name(self) -> &'static str {
        match self {
            Loss::Malformed => "malformed",
            Loss::UnmatchedRequest => "unmatched_request",
            Loss::UnmatchedResponse => "unmatched_response",
            Loss::Oversized => "oversized",
            Loss::ResyncBytes => "resync_bytes",
            Loss::UndecodedHeaders => "undecoded_headers",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Records and loss counters produced by parser calls; the caller drains it.
#[derive(Debug, Default)]
pub struct Output {
    /// Complete records, in completion order.
    pub records: Vec<Record>,
    losses: [u64; Loss::ALL.len()],
}

impl Output {
    /// Add a complete record.
    pub fn push(&mut self, record: Record) {
        self.records.push(record);
    }

    /// Count `n` of `loss`.
    pub fn lose(&mut self, loss: Loss, n: u64) {
        self.losses[loss.index()] = self.losses[loss.index()].saturating_add(n);
    }

    /// The count for `loss`.
    pub fn losses(&self, loss: Loss) -> u64 {
        self.losses[loss.index()]
    }

    /// Take the loss counters, leaving zeros.
    pub fn take_losses(&mut self) -> [(Loss, u64); Loss::ALL.len()] {
        let taken = Loss::ALL.map(|l| (l, self.losses[l.index()]));
        self.losses = [0; Loss::ALL.len()];
        taken
    }
}
