//! The export spool: requests waiting for the backend, bounded by bytes. The traces and the
//! logs exporters each have one (generic over the request type; `count` is spans or log
//! records).
//!
//! The collector pushes one request per span batch and never waits; the traces worker takes the
//! oldest, and puts it back at the head when the backend is down or stalls, so that everything
//! spooled goes out, in order, once the backend answers again. When a push would take the spool
//! past its byte limit, the oldest requests are dropped (and their spans counted) to make room:
//! during a long outage the spool holds the most recent spans. The limit counts the requests'
//! encoded size; in memory a request takes about twice that.

use std::collections::VecDeque;
use std::sync::Mutex;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tokio::sync::Notify;

/// One spooled request.
pub(crate) struct Spooled<R = ExportTraceServiceRequest> {
    /// The request.
    pub request: R,
    /// Spans (or log records) in it.
    pub count: u64,
    /// Its encoded size.
    pub bytes: usize,
}

impl<R: Message> Spooled<R> {
    /// A request of `count` spans (or log records), sized by its encoding.
    pub fn new(request: R, count: u64) -> Self {
        let bytes = request.encoded_len();
        Self {
            request,
            count,
            bytes,
        }
    }
}

struct Inner<R> {
    queue: VecDeque<Spooled<R>>,
    bytes: usize,
    closed: bool,
}

/// Requests waiting for the traces (or logs) worker.
pub(crate) struct Spool<R = ExportTraceServiceRequest> {
    inner: Mutex<Inner<R>>,
    ready: Notify,
    limit: usize,
}

impl<R> Spool<R> {
    /// An empty spool holding at most `limit` encoded bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                closed: false,
            }),
            ready: Notify::new(),
            limit: limit.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<R>> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Encoded bytes and requests held now.
    pub fn occupancy(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.bytes, inner.queue.len())
    }

    /// Append `item` (newest last); returns the spans dropped to keep the byte limit (the
    /// oldest requests, or `item` itself when it alone is larger than the limit).
    pub fn push(&self, item: Spooled<R>) -> u64 {
        if item.bytes > self.limit {
            return item.count;
        }
        let dropped = {
            let mut inner = self.lock();
            let mut dropped = 0;
            while inner.bytes + item.bytes > self.limit {
                match inner.queue.pop_front() {
                    Some(old) => {
                        inner.bytes -= old.bytes;
                        dropped += old.count;
                    }
                    None => break,
                }
            }
            inner.bytes += item.bytes;
            inner.queue.push_back(item);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    /// Put back a request that could not be sent, at the head (it is the oldest); returns the
    /// spans dropped to keep the limit (the newest requests: the put-back one goes out first).
    pub fn push_front(&self, item: Spooled<R>) -> u64 {
        let mut inner = self.lock();
        let mut dropped = 0;
        inner.bytes += item.bytes;
        inner.queue.push_front(item);
        while inner.bytes > self.limit && inner.queue.len() > 1 {
            if let Some(new) = inner.queue.pop_back() {
                inner.bytes -= new.bytes;
                dropped += new.count;
            }
        }
        dropped
    }

    /// Drop the oldest requests until a quarter of what is spooled is left (the memory
    /// limiter's last resort); returns the spans dropped.
    pub fn shed(&self) -> u64 {
        let mut inner = self.lock();
        let keep = inner.bytes / 4;
        let mut dropped = 0;
        while inner.bytes > keep {
            match inner.queue.pop_front() {
                Some(old) => {
                    inner.bytes -= old.bytes;
                    dropped += old.count;
                }
                None => break,
            }
        }
        inner.queue.shrink_to_fit();
        dropped
    }

    /// The oldest request; waits for one. `None` once the spool is closed and empty.
    pub async fn pop(&self) -> Option<Spooled<R>> {
        loop {
            let notified = self.ready.notified();
            {
                let mut inner = self.lock();
                if let Some(item) = inner.queue.pop_front() {
                    inner.bytes -= item.bytes;
                    return Some(item);
                }
                if inner.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// No more pushes: [`pop`](Self::pop) returns `None` once what is left has been taken.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_waiters();
        self.ready.notify_one();
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Encoded bytes and spans spooled now.
    pub fn depth(&self) -> (usize, u64) {
        let inner = self.lock();
        (inner.bytes, inner.queue.iter().map(|s| s.count).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

    fn request(spans: usize, name_len: usize) -> Spooled<ExportTraceServiceRequest> {
        let span = Span {
            name: "x".repeat(name_len),
            ..Span::default()
        };
        let request = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span; spans],
                    ..ScopeSpans::default()
                }],
                ..ResourceSpans::default()
            }],
        };
        Spooled::new(request, spans as u64)
    }

    #[tokio::test]
    async fn oldest_dropped_past_the_limit_and_order_kept() {
        let one = request(2, 100).bytes;
        let spool = Spool::<ExportTraceServiceRequest>::new(3 * one);
        assert_eq!(spool.push(request(2, 100)), 0);
        assert_eq!(spool.push(request(2, 100)), 0);
        assert_eq!(spool.push(request(2, 100)), 0);
        assert_eq!(spool.depth(), (3 * one, 6));
        // A fourth pushes the oldest out.
        assert_eq!(spool.push(request(2, 100)), 2);
        assert_eq!(spool.depth(), (3 * one, 6));
        // One too large for the spool is refused whole.
        assert_eq!(spool.push(request(50, 1000)), 50);
        let first = spool.pop().await.expect("a request");
        assert_eq!(spool.depth().1, 4);
        // Put back at the head: it comes out first again; nothing dropped, it fits.
        assert_eq!(spool.push_front(first), 0);
        assert_eq!(spool.depth().1, 6);
        spool.close();
        let mut n = 0;
        while spool.pop().await.is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert!(spool.is_closed());
    }

    #[tokio::test]
    async fn put_back_past_the_limit_drops_the_newest() {
        let one = request(1, 100).bytes;
        let spool = Spool::<ExportTraceServiceRequest>::new(2 * one);
        spool.push(request(1, 100));
        let head = spool.pop().await.expect("a request");
        spool.push(request(1, 100));
        spool.push(request(1, 100));
        assert_eq!(spool.push_front(head), 1);
        assert_eq!(spool.depth(), (2 * one, 2));
    }

    #[test]
    fn shed_keeps_the_newest_quarter() {
        let spool = Spool::<ExportTraceServiceRequest>::new(1 << 20);
        for _ in 0..8 {
            spool.push(request(1, 100));
        }
        assert_eq!(spool.shed(), 6);
        assert_eq!(spool.depth().1, 2);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let spool = std::sync::Arc::new(Spool::<ExportTraceServiceRequest>::new(1 << 20));
        let taker = {
            let spool = spool.clone();
            tokio::spawn(async move { spool.pop().await.map(|s| s.count) })
        };
        tokio::task::yield_now().await;
        spool.push(request(3, 10));
        assert_eq!(taker.await.expect("joined"), Some(3));
    }
}
