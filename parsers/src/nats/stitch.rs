//! NATS messages → records: PUB/HPUB become `publish` (send) records, MSG/HMSG `process`
//! records, unpaired `-ERR` lines `error` records; in verbose mode a PUB waits for its
//! `+OK`/`-ERR`. Connection state: the client's name and whether it is verbose.

use std::collections::VecDeque;

use crate::{
    Detail, Loss, MessagingOperation, MessagingRecord, MessagingSystem, Output, Protocol, Record,
    Role,
};

use super::frame::Message;
use super::line::{self, Verb};

/// Most client operations waiting for a verbose `+OK`/`-ERR`; past it the oldest is dropped.
pub const MAX_PENDING: usize = 1024;

/// Connection-wide `-ERR`s that answer no particular operation (nats-server sends them and,
/// for most, closes): never paired with a waiting operation.
const CONNECTION_ERRORS: &[&str] = &[
    "Stale Connection",
    "Slow Consumer",
    "Maximum Payload Violation",
    "Unknown Protocol Operation",
    "Maximum Control Line Exceeded",
    "Authentication Timeout",
    "Maximum Connections Exceeded",
    "Secure Connection - TLS Required",
];

/// A client operation waiting for its verbose acknowledgement.
#[derive(Debug)]
enum Pending {
    /// A PUB/HPUB, its record finished by the answer.
    Publish(Box<Record>),
    /// CONNECT, SUB or UNSUB: the answer makes no record unless it is an error.
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    client_name: Option<String>,
    /// The client asked for `+OK` after each operation.
    verbose: bool,
    /// Verbose answers can no longer be paired (something was lost).
    unpaired: bool,
    pending: VecDeque<Pending>,
}

impl Stitcher {
    /// A message the client sent.
    pub(crate) fn client_sent(&mut self, msg: Message, role: Role, out: &mut Output) {
        match msg.verb {
            Verb::Connect => {
                let options = line::connect_options(&msg.text);
                self.client_name = options.name;
                self.verbose = options.verbose;
                self.expect_answer(Pending::Other, out);
            }
            Verb::Pub | Verb::Hpub => {
                let mut record = self.message_record(msg, role, MessagingOperation::Send);
                if self.pairing() {
                    record.end_ns = record.start_ns;
                    self.expect_answer(Pending::Publish(Box::new(record)), out);
                } else {
                    out.push(record);
                }
            }
            Verb::Sub | Verb::Unsub => self.expect_answer(Pending::Other, out),
            Verb::Ping | Verb::Pong => {}
            // Server operations from the client: not NATS as we know it.
            Verb::Info | Verb::Msg | Verb::Hmsg | Verb::Ok | Verb::Err => {
                out.lose(Loss::Malformed, 1);
            }
        }
    }

    /// A message the server sent.
    pub(crate) fn server_sent(&mut self, msg: Message, role: Role, out: &mut Output) {
        match msg.verb {
            Verb::Msg | Verb::Hmsg => {
                let record = self.message_record(msg, role, MessagingOperation::Process);
                out.push(record);
            }
            Verb::Ok => match self.answered() {
                Some(Pending::Publish(mut record)) => {
                    record.end_ns = msg.end_ns;
                    record.response_bytes = msg.wire_bytes;
                    out.push(*record);
                }
                Some(Pending::Other) => {}
                None => out.lose(Loss::UnmatchedResponse, 1),
            },
            Verb::Err => self.error(&msg, role, out),
            Verb::Info | Verb::Ping | Verb::Pong => {}
            Verb::Connect | Verb::Pub | Verb::Hpub | Verb::Sub | Verb::Unsub => {
                out.lose(Loss::Malformed, 1);
            }
        }
    }

    /// Whether PUBs wait for their `+OK`.
    fn pairing(&self) -> bool {
        self.verbose && !self.unpaired
    }

    fn expect_answer(&mut self, pending: Pending, out: &mut Output) {
        if !self.pairing() {
            return;
        }
        if self.pending.len() >= MAX_PENDING {
            self.drop_oldest(out);
        }
        self.pending.push_back(pending);
    }

    fn drop_oldest(&mut self, out: &mut Output) {
        if let Some(Pending::Publish(_)) = self.pending.pop_front() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
    }

    /// The operation a verbose answer answers.
    fn answered(&mut self) -> Option<Pending> {
        if self.pairing() {
            self.pending.pop_front()
        } else {
            None
        }
    }

    /// A `-ERR`: it finishes a waiting PUB, or makes an `error` record of its own.
    fn error(&mut self, msg: &Message, role: Role, out: &mut Output) {
        let text = unquote(&msg.text);
        let connection_wide = CONNECTION_ERRORS.iter().any(|e| text.starts_with(e));
        let answered = if connection_wide {
            None
        } else {
            self.answered()
        };
        let (error_type, subject) = classify(&text);
        let mut record = match answered {
            Some(Pending::Publish(mut record)) => {
                record.end_ns = msg.end_ns;
                record.response_bytes = msg.wire_bytes;
                *record
            }
            Some(Pending::Other) | None => {
                let mut m =
                    MessagingRecord::new(MessagingSystem::Nats, MessagingOperation::Other, "error");
                m.destination = subject;
                m.client_id = self.client_name.clone();
                Record {
                    protocol: Protocol::Nats,
                    role,
                    start_ns: msg.end_ns,
                    end_ns: msg.end_ns,
                    request_bytes: 0,
                    response_bytes: msg.wire_bytes,
                    detail: Detail::Messaging(m),
                }
            }
        };
        if let Detail::Messaging(m) = &mut record.detail {
            m.error_type = Some(error_type);
            m.error_message = Some(text);
        }
        out.push(record);
    }

    /// The record of a PUB/HPUB (`Send`) or MSG/HMSG (`Process`), one-way: it starts and ends
    /// when the message's last byte was moved.
    fn message_record(&self, msg: Message, role: Role, operation: MessagingOperation) -> Record {
        let name = match operation {
            MessagingOperation::Send => "publish",
            _ => "process",
        };
        let mut m = MessagingRecord::new(MessagingSystem::Nats, operation, name);
        m.destination = Some(msg.subject);
        m.client_id = self.client_name.clone();
        m.body_size = Some(msg.total_len - msg.header_len);
        m.traceparent = line::traceparent(&msg.headers);
        Record {
            protocol: Protocol::Nats,
            role,
            start_ns: if operation == MessagingOperation::Send && self.pairing() {
                msg.start_ns
            } else {
                msg.end_ns
            },
            end_ns: msg.end_ns,
            request_bytes: msg.wire_bytes,
            response_bytes: 0,
            detail: Detail::Messaging(m),
        }
    }

    /// Sync was lost in either direction: verbose answers can no longer be told apart, so the
    /// waiting PUBs are counted as unmatched and later PUBs are one-way records.
    pub(crate) fn lost(&mut self, out: &mut Output) {
        if self.verbose {
            self.unpaired = true;
        }
        self.drain(out);
    }

    /// The connection is gone.
    pub(crate) fn close(&mut self, out: &mut Output) {
        self.drain(out);
    }

    fn drain(&mut self, out: &mut Output) {
        while !self.pending.is_empty() {
            self.drop_oldest(out);
        }
    }
}

/// The `-ERR` text without the single quotes nats-server puts around it.
fn unquote(text: &[u8]) -> String {
    let text = text.trim_ascii();
    let text = text
        .strip_prefix(b"'")
        .and_then(|t| t.strip_suffix(b"'"))
        .unwrap_or(text);
    String::from_utf8_lossy(text).into_owned()
}

/// `error.type` for an error text: the text before its first quoted part, without the word
/// that leads into it, so that it names the kind of error and never a subject
/// (`Permissions Violation for Publish to "a.b"` → `Permissions Violation for Publish`); and
/// the quoted subject, if any.
fn classify(text: &str) -> (String, Option<String>) {
    let Some((head, tail)) = text.split_once('"') else {
        return (text.trim().to_owned(), None);
    };
    let mut kind = head.trim_end();
    for lead in [" to", " of", " on", " for", " with"] {
        if let Some(k) = kind.strip_suffix(lead) {
            kind = k.trim_end();
            break;
        }
    }
    let subject = tail
        .split_once('"')
        .map(|(s, _)| s.to_owned())
        .filter(|s| !s.is_empty());
    (kind.to_owned(), subject)
}
