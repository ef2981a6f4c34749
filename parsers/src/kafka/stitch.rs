//! Pairing: requests wait by correlation id for their response (which carries no api key or
//! version of its own); each pair, or an acks=0 Produce alone, becomes a [`Record`].

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ApiKey;

use super::frame::Frame;
use super::infer::any_request_header;
use super::schema::{self, Body, Stop};
use crate::record::{MessagingOperation, MessagingRecord, MessagingSystem, Record, Role};
use crate::{Loss, Output, Protocol};

/// Requests waiting for a response; the oldest is dropped (counted) past this.
pub const MAX_PENDING: usize = 1024;
/// Topic ids remembered from Metadata responses, per connection.
pub const MAX_TOPIC_IDS: usize = 4096;

/// A request waiting for its response.
#[derive(Debug)]
struct Pending {
    correlation_id: i32,
    api_key: i16,
    version: i16,
    client_id: Option<String>,
    body: Body,
    start_ns: u64,
    request_bytes: u64,
}

/// The pairing state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Stitcher {
    pending: VecDeque<Pending>,
    topic_names: HashMap<[u8; 16], String>,
}

/// A response header: the correlation id, then tagged fields from header v1.
fn response_body(bytes: &[u8], header_version: i16) -> Option<&[u8]> {
    let body = bytes.get(4..)?;
    if header_version < 1 {
        return Some(body);
    }
    // Brokers send no tagged fields in response headers: a zero count.
    match body.first() {
        Some(0) => body.get(1..),
        _ => None,
    }
}

impl Stitcher {
    /// A request frame of the requests direction.
    pub(crate) fn request(&mut self, frame: &Frame<'_>, role: Role, out: &mut Output) {
        let Some(header) = any_request_header(frame.bytes) else {
            out.lose(Loss::Malformed, 1);
            return;
        };
        let mut body = Body::default();
        if let Ok(key) = ApiKey::try_from(header.api_key)
            && schema::readable(key, header.version)
        {
            let bytes = frame.bytes.get(header.len..).unwrap_or_default();
            read(key, header.version, false, bytes, frame.cut, &mut body, out);
        }
        let pending = Pending {
            correlation_id: header.correlation_id,
            api_key: header.api_key,
            version: header.version,
            client_id: header.client_id.map(schema::text),
            body,
            start_ns: frame.start_ns,
            request_bytes: u64::from(frame.len) + 4,
        };
        if header.api_key == 0 && pending.body.acks == Some(0) {
            // acks=0: the broker never answers.
            out.push(record(
                &pending,
                role,
                None,
                frame.end_ns,
                0,
                &self.topic_names,
            ));
            return;
        }
        if let Some(i) = self
            .pending
            .iter()
            .position(|p| p.correlation_id == header.correlation_id)
        {
            self.pending.remove(i);
            out.lose(Loss::UnmatchedRequest, 1);
        }
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            out.lose(Loss::UnmatchedRequest, 1);
        }
        self.pending.push_back(pending);
    }

    /// A response frame.
    pub(crate) fn response(&mut self, frame: &Frame<'_>, role: Role, out: &mut Output) {
        let Some(correlation_id) = correlation_id(frame.bytes) else {
            out.lose(Loss::Malformed, 1);
            return;
        };
        let Some(i) = self
            .pending
            .iter()
            .position(|p| p.correlation_id == correlation_id)
        else {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        let Some(pending) = self.pending.remove(i) else {
            return;
        };
        let mut body = Body::default();
        if let Ok(key) = ApiKey::try_from(pending.api_key)
            && schema::readable(key, pending.version)
        {
            match response_body(frame.bytes, key.response_header_version(pending.version)) {
                Some(bytes) => read(key, pending.version, true, bytes, frame.cut, &mut body, out),
                None if frame.cut && frame.bytes.len() < 5 => {}
                None => out.lose(Loss::Malformed, 1),
            }
            if key == ApiKey::Metadata {
                self.learn_topic_ids(&body);
            }
        }
        let response_bytes = u64::from(frame.len) + 4;
        let rec = record(
            &pending,
            role,
            Some(&body),
            frame.end_ns,
            response_bytes,
            &self.topic_names,
        );
        out.push(rec);
    }

    fn learn_topic_ids(&mut self, body: &Body) {
        for (id, name) in &body.meta {
            if *id == [0; 16] {
                continue;
            }
            if self.topic_names.len() >= MAX_TOPIC_IDS && !self.topic_names.contains_key(id) {
                continue;
            }
            self.topic_names.insert(*id, name.clone());
        }
    }

    /// Whether a response with this correlation id is awaited.
    pub(crate) fn awaits(&self, correlation_id: i32) -> bool {
        self.pending
            .iter()
            .any(|p| p.correlation_id == correlation_id)
    }

    /// The connection is gone: every waiting request is unmatched.
    pub(crate) fn close(&mut self, out: &mut Output) {
        out.lose(Loss::UnmatchedRequest, self.pending.len() as u64);
        self.pending.clear();
    }
}

/// The correlation id at the start of a response frame.
pub(crate) fn correlation_id(bytes: &[u8]) -> Option<i32> {
    let b = bytes.get(..4)?;
    Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Reads a body into `body`; a whole body that does not read is malformed and told nothing.
fn read(
    key: ApiKey,
    version: i16,
    response: bool,
    bytes: &[u8],
    cut: bool,
    body: &mut Body,
    out: &mut Output,
) {
    match schema::read_body(key, version, response, bytes, body) {
        Ok(()) => {}
        Err(Stop::Short) if cut => {}
        Err(_) => {
            out.lose(Loss::Malformed, 1);
            *body = Body::default();
        }
    }
}

/// The operation of an api key: its type and `messaging.operation.name`.
pub(crate) fn operation(api_key: i16) -> (MessagingOperation, String) {
    let Ok(key) = ApiKey::try_from(api_key) else {
        return (MessagingOperation::Other, format!("api_{api_key}"));
    };
    match key {
        ApiKey::Produce => (MessagingOperation::Send, "send".into()),
        ApiKey::Fetch => (MessagingOperation::Receive, "receive".into()),
        ApiKey::OffsetCommit => (MessagingOperation::Settle, "commit".into()),
        other => (
            MessagingOperation::Other,
            snake(&format!("{other:?}"), '_', false),
        ),
    }
}

/// `UnknownTopicOrPartition` → `unknown_topic_or_partition` (or upper case).
fn snake(camel: &str, sep: char, upper: bool) -> String {
    let mut s = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            s.push(sep);
        }
        s.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
    }
    s
}

/// The Kafka name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), or the number.
pub(crate) fn error_name(code: i16) -> String {
    match ResponseError::try_from_code(code) {
        Some(ResponseError::Unknown(n)) => n.to_string(),
        None => code.to_string(),
        Some(e) => snake(&format!("{e:?}"), '_', true),
    }
}

fn record(
    req: &Pending,
    role: Role,
    resp: Option<&Body>,
    end_ns: u64,
    response_bytes: u64,
    topic_names: &HashMap<[u8; 16], String>,
) -> Record {
    let (op, name) = operation(req.api_key);
    let mut m = MessagingRecord::new(MessagingSystem::Kafka, op, &name);
    let body = &req.body;
    m.destination = body.single_topic().map(str::to_string).or_else(|| {
        body.single_topic_id()
            .and_then(|id| topic_names.get(&id).cloned())
    });
    m.partition = body.single_partition();
    m.client_id = req.client_id.clone().filter(|c| !c.is_empty());
    // OffsetFetch v8+ may ask for several groups: then none is named.
    m.consumer_group = body
        .group
        .clone()
        .filter(|g| !g.is_empty() && body.groups_declared <= 1);
    m.message_count = match op {
        MessagingOperation::Send => body.record_count(),
        MessagingOperation::Receive => resp.and_then(Body::record_count),
        _ => None,
    };
    if let Some(resp) = resp {
        m.error_type = resp.error.map(error_name);
        if m.error_type.is_some() {
            m.error_message = resp.error_message.clone();
        }
    }
    Record {
        protocol: Protocol::Kafka,
        role,
        start_ns: req.start_ns,
        end_ns,
        request_bytes: req.request_bytes,
        response_bytes,
        detail: crate::Detail::Messaging(m),
    }
}
