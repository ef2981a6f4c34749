//! Queries waiting for their response, and the pairing rule: same transaction id, transport
//! and question (name without regard to ASCII case, type), and same peer when both messages
//! know it. A response with no question (some FORMERR answers) pairs on id and peer alone.
//!
//! Bounded: at most [`MAX_PENDING`] queries wait; the oldest is evicted beyond that, and
//! queries older than [`PENDING_TIMEOUT_NS`] expire (a lost UDP query must not wait forever).
//! Both count as [`Loss::UnmatchedRequest`].

use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::{DnsTransport, Loss, Output};

/// Queries waiting per parser (per socket).
pub const MAX_PENDING: usize = 1024;
/// How long a query waits for its response: glibc's resolver gives up after 2 × 5 s.
pub const PENDING_TIMEOUT_NS: u64 = 10_000_000_000;

/// A query seen and not yet answered.
#[derive(Clone, Debug)]
pub(crate) struct Query {
    pub(crate) id: u16,
    /// Question name as sent (empty when the query has no question).
    pub(crate) name: String,
    pub(crate) qtype: Option<u16>,
    pub(crate) transport: DnsTransport,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) start_ns: u64,
    pub(crate) wire_bytes: u64,
}

/// What a response is paired on.
pub(crate) struct ResponseKey<'a> {
    pub(crate) id: u16,
    pub(crate) question: Option<(&'a str, u16)>,
    pub(crate) transport: DnsTransport,
    pub(crate) peer: Option<SocketAddr>,
}

/// The waiting queries, oldest first.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    queries: VecDeque<Query>,
}

fn same_peer(a: Option<SocketAddr>, b: Option<SocketAddr>, strict: bool) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a == b,
        _ => !strict || a == b,
    }
}

impl Pending {
    /// Adds `query` unless the same query is already waiting (a retransmission): then the
    /// first send stays, so the record spans the whole lookup. Returns whether it was added.
    pub(crate) fn insert(&mut self, query: Query, out: &mut Output) -> bool {
        let resent = self.queries.iter().any(|q| {
            q.id == query.id
                && q.transport == query.transport
                && q.qtype == query.qtype
                && same_peer(q.peer, query.peer, true)
                && q.name.eq_ignore_ascii_case(&query.name)
        });
        if resent {
            return false;
        }
        if self.queries.len() >= MAX_PENDING {
            self.queries.pop_front();
            out.lose(Loss::UnmatchedRequest, 1);
        }
        self.queries.push_back(query);
        true
    }

    /// Takes the query `key` answers: one with the same peer first, else one whose peer or
    /// the response's is unknown.
    pub(crate) fn take(&mut self, key: &ResponseKey<'_>) -> Option<Query> {
        let answers = |q: &Query, strict: bool| {
            q.id == key.id
                && q.transport == key.transport
                && same_peer(q.peer, key.peer, strict)
                && key.question.is_none_or(|(name, qtype)| {
                    q.qtype == Some(qtype) && q.name.eq_ignore_ascii_case(name)
                })
        };
        let at = (self.queries.iter().position(|q| answers(q, true)))
            .or_else(|| self.queries.iter().position(|q| answers(q, false)))?;
        self.queries.remove(at)
    }

    /// Drops queries sent more than [`PENDING_TIMEOUT_NS`] before `now_ns`. Checked when the
    /// oldest one has expired (queries come in time order, give or take a CPU's clock).
    pub(crate) fn expire(&mut self, now_ns: u64, out: &mut Output) {
        let expired = |q: &Query| now_ns.saturating_sub(q.start_ns) > PENDING_TIMEOUT_NS;
        if !self.queries.front().is_some_and(expired) {
            return;
        }
        let before = self.queries.len();
        self.queries.retain(|q| !expired(q));
        out.lose(Loss::UnmatchedRequest, (before - self.queries.len()) as u64);
    }

    /// Counts every waiting query as unanswered and forgets them.
    pub(crate) fn drain(&mut self, out: &mut Output) {
        out.lose(Loss::UnmatchedRequest, self.queries.len() as u64);
        self.queries.clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queries.len()
    }
}
