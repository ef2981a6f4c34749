//! Heads and ends of both directions → [`Record`]s. HTTP/1.x answers requests in the order they
//! were sent (RFC 9112 §9.3.2), so pairing is first in, first out, pipelining included.

use std::collections::VecDeque;

use super::types::{Kind, MessageEnd, RequestHead, ResponseHead, ResponseHint};
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{Detail, HttpRecord, Record, Role};

/// Most requests waiting for a response; beyond it the oldest is dropped as unmatched.
pub const MAX_PENDING: usize = 128;

/// One request and what has come of it.
#[derive(Debug)]
struct Exchange {
    id: u64,
    request: RequestHead,
    request_end: Option<MessageEnd>,
    /// The final (non-1xx) response head.
    response: Option<ResponseHead>,
    response_end: Option<MessageEnd>,
    /// Wire bytes of 1xx interim responses.
    interim_bytes: u64,
}

/// Where the bytes of the response in progress go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answering {
    /// No response in progress.
    Nothing,
    /// The exchange `id`; `interim` for a 1xx.
    Exchange { id: u64, interim: bool },
    /// A response with no request (counted when its head came).
    Orphan,
}

/// Pairs requests with responses for one connection.
#[derive(Debug)]
pub(crate) struct Stitcher {
    pending: VecDeque<Exchange>,
    next_id: u64,
    /// The request whose body is in progress.
    request_open: Option<u64>,
    answering: Answering,
}

impl Stitcher {
    /// Nothing pending.
    pub fn new() -> Self {
        Self {
            pending: VecDeque::new(),
            next_id: 0,
            request_open: None,
            answering: Answering::Nothing,
        }
    }

    /// What the next response's request says about its body.
    pub fn hint(&self) -> ResponseHint {
        self.pending
            .iter()
            .find(|x| x.response.is_none())
            .map_or_else(ResponseHint::default, |x| ResponseHint {
                head: x.request.method == "HEAD",
                connect: x.request.method == "CONNECT",
            })
    }

    /// A request head.
    pub fn request(&mut self, head: RequestHead, out: &mut Output) {
        if self.pending.len() >= MAX_PENDING && self.pending.pop_front().is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.pending.push_back(Exchange {
            id,
            request: head,
            request_end: None,
            response: None,
            response_end: None,
            interim_bytes: 0,
        });
        self.request_open = Some(id);
    }

    /// The end of the request whose head came last.
    pub fn request_end(&mut self, end: MessageEnd, role: Role, out: &mut Output) {
        if let Some(x) = self.request_open.take().and_then(|id| self.find(id)) {
            x.request_end = Some(end);
        }
        self.emit_ready(role, out);
    }

    /// A response head: it answers the oldest request not yet answered.
    pub fn response(&mut self, head: ResponseHead, out: &mut Output) {
        let interim = head.is_interim();
        match self.pending.iter_mut().find(|x| x.response.is_none()) {
            Some(x) => {
                self.answering = Answering::Exchange { id: x.id, interim };
                if !interim {
                    x.response = Some(head);
                }
            }
            None => {
                out.lose(Loss::UnmatchedResponse, 1);
                self.answering = Answering::Orphan;
            }
        }
    }

    /// The end of the response whose head came last.
    pub fn response_end(&mut self, end: MessageEnd, role: Role, out: &mut Output) {
        if let Answering::Exchange { id, interim } =
            std::mem::replace(&mut self.answering, Answering::Nothing)
            && let Some(x) = self.find(id)
        {
            if interim {
                x.interim_bytes = x.interim_bytes.saturating_add(end.wire_len);
            } else {
                x.response_end = Some(end);
            }
        }
        self.emit_ready(role, out);
    }

    /// Direction `kind` lost sync: its message in progress is gone and whole messages may be
    /// missing, so no waiting request can be paired with confidence any more. Answered
    /// exchanges whose request was still being sent are emitted as they are.
    pub fn lost(&mut self, kind: Kind, role: Role, out: &mut Output) {
        match kind {
            Kind::Request => self.request_open = None,
            Kind::Response => self.answering = Answering::Nothing,
        }
        self.drain(role, out);
    }

    /// The connection is gone.
    pub fn close(&mut self, role: Role, out: &mut Output) {
        self.request_open = None;
        self.answering = Answering::Nothing;
        self.drain(role, out);
    }

    fn drain(&mut self, role: Role, out: &mut Output) {
        for x in self.pending.drain(..) {
            match record(x, role) {
                Some(r) => out.push(r),
                None => out.lose(Loss::UnmatchedRequest, 1),
            }
        }
    }

    /// Emits, in order, the exchanges whose request and response are both complete.
    fn emit_ready(&mut self, role: Role, out: &mut Output) {
        while self
            .pending
            .front()
            .is_some_and(|x| x.request_end.is_some() && x.response_end.is_some())
        {
            if let Some(r) = self.pending.pop_front().and_then(|x| record(x, role)) {
                out.push(r);
            }
        }
    }

    fn find(&mut self, id: u64) -> Option<&mut Exchange> {
        self.pending.iter_mut().rev().find(|x| x.id == id)
    }
}

/// The record of an answered exchange; `None` if the final response is not complete. An
/// unfinished request counts its head only.
fn record(x: Exchange, role: Role) -> Option<Record> {
    let (Some(response), Some(response_end)) = (x.response, x.response_end) else {
        return None;
    };
    let request = x.request;
    let (request_bytes, request_body_len) = x
        .request_end
        .map_or((request.head_len, 0), |end| (end.wire_len, end.body_len));
    Some(Record {
        protocol: Protocol::Http1,
        role,
        start_ns: request.start_ns,
        end_ns: response_end.end_ns,
        request_bytes,
        response_bytes: x.interim_bytes.saturating_add(response_end.wire_len),
        detail: Detail::Http(HttpRecord {
            method: request.method,
            target: request.target,
            version: Some(request.version),
            status: Some(response.status),
            host: request.host,
            user_agent: request.user_agent,
            traceparent: request.traceparent,
            request_content_type: request.content_type,
            response_content_type: response.content_type,
            request_body_len,
            response_body_len: response_end.body_len,
        }),
    })
}
