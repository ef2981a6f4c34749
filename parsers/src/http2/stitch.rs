//! Frames of both directions → streams → [`Record`]s: header blocks gathered across
//! CONTINUATION frames and decoded per direction, streams matched by id, a stream complete
//! when both sides sent END_STREAM or either reset it.

use std::collections::VecDeque;

use super::frame::{Event, FrameHeader, flag, kind};
use super::grpc::{self, MessageCounter};
use super::hpack::HeaderDecoder;
use crate::Direction;
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{Detail, HttpRecord, HttpVersion, Record, Role, RpcRecord, RpcSystem};

/// Most streams tracked at once; beyond it the oldest is dropped as unmatched.
pub const MAX_STREAMS: usize = 1024;

/// Longest header value kept (longer ones are cut).
const MAX_VALUE: usize = 8 * 1024;

/// Recently finished streams remembered, so that their late frames are ignored.
const RECENT: usize = 256;

/// The fields of one header block that records keep; `None` when absent or not decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fields {
    pub method: Option<String>,
    pub path: Option<String>,
    pub authority: Option<String>,
    pub status: Option<u16>,
    pub content_type: Option<String>,
    pub user_agent: Option<String>,
    pub traceparent: Option<String>,
    pub grpc_status: Option<u32>,
    pub grpc_message: Option<String>,
    /// Fields that could not be decoded.
    pub unknown: u32,
}

impl Fields {
    fn field(&mut self, name: &[u8], value: &[u8]) {
        let text = || {
            let v = value.get(..MAX_VALUE).unwrap_or(value);
            // Valid UTF-8 (nearly every value) is checked in one pass and copied once.
            match std::str::from_utf8(v) {
                Ok(s) => s.to_owned(),
                Err(_) => String::from_utf8_lossy(v).into_owned(),
            }
        };
        match name {
            b":method" => self.method = Some(text()),
            b":path" => self.path = Some(text()),
            b":authority" => self.authority = Some(text()),
            b"host" if self.authority.is_none() => self.authority = Some(text()),
            b":status" => {
                self.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
            }
            b"content-type" => self.content_type = Some(text()),
            b"user-agent" => self.user_agent = Some(text()),
            b"traceparent" => self.traceparent = Some(text()),
            b"grpc-status" => {
                self.grpc_status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
            }
            b"grpc-message" => self.grpc_message = Some(grpc::percent_decode(&text())),
            _ => {}
        }
    }
}

/// One side of a stream.
#[derive(Debug, Default)]
struct Half {
    /// When its first frame was moved.
    start_ns: Option<u64>,
    /// When its last frame was moved.
    last_ns: u64,
    /// Wire bytes of its frames.
    wire: u64,
    /// DATA payload bytes (padding excluded).
    body: u64,
    /// The first (non-1xx) header block. Boxed, as are the trailers: a stream is moved into
    /// and out of its table and into its record, and inline fields made that ~1 KB a move.
    head: Option<Box<Fields>>,
    /// A later header block (trailers).
    trailers: Option<Box<Fields>>,
    /// A DATA frame of this half, counted in `wire`, is being framed: the payload events
    /// that follow belong here (not to a stream of the same id opened meanwhile).
    in_data: bool,
    /// END_STREAM was sent.
    ended: bool,
    /// Its direction lost the framing while the stream was open: its end may never be seen.
    lost: bool,
    /// gRPC messages.
    messages: MessageCounter,
}

#[derive(Debug, Default)]
struct Stream {
    half: [Half; 2],
    /// RST_STREAM error code, if reset.
    reset: Option<u32>,
    /// A header block of this stream was lost (damaged, malformed).
    headers_lost: bool,
}

/// Open streams by id (their opening order is `Conn::order`): a few at a time on most connections,
/// so a vector searched from its newest end beats hashing.
#[derive(Debug, Default)]
struct Streams(Vec<(u32, Stream)>);

impl Streams {
    fn position(&self, id: u32) -> Option<usize> {
        self.0.iter().rposition(|(x, _)| *x == id)
    }

    fn get(&self, id: &u32) -> Option<&Stream> {
        self.position(*id).map(|i| &self.0[i].1)
    }

    fn get_mut(&mut self, id: &u32) -> Option<&mut Stream> {
        self.position(*id).map(|i| &mut self.0[i].1)
    }

    fn contains_key(&self, id: &u32) -> bool {
        self.position(*id).is_some()
    }

    fn entry(&mut self, id: u32) -> &mut Stream {
        let i = match self.position(id) {
            Some(i) => i,
            None => {
                self.0.push((id, Stream::default()));
                self.0.len() - 1
            }
        };
        &mut self.0[i].1
    }

    fn remove(&mut self, id: &u32) -> Option<Stream> {
        self.position(*id).map(|i| self.0.swap_remove(i).1)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut Stream> {
        self.0.iter_mut().map(|(_, s)| s)
    }
}

/// Ids of recently finished streams, so that their late frames are ignored.
#[derive(Debug, Default)]
struct Recent {
    ids: VecDeque<u32>,
    /// The highest id ever finished: a stream above it (a new one, nearly always, as ids
    /// grow) is known not to be here without a search.
    highest: u32,
}

impl Recent {
    fn push(&mut self, id: u32) {
        self.ids.push_back(id);
        if self.ids.len() > RECENT {
            self.ids.pop_front();
        }
        self.highest = self.highest.max(id);
    }

    fn contains(&self, id: &u32) -> bool {
        *id <= self.highest && self.ids.contains(id)
    }
}

/// A header block being gathered: HEADERS or PUSH_PROMISE, then CONTINUATION frames.
#[derive(Debug)]
struct Block<B = Vec<u8>> {
    stream: u32,
    end_stream: bool,
    push: bool,
    /// Held (`Vec`) while CONTINUATION frames are awaited, else borrowed from the frame.
    bytes: B,
}

/// The connection's streams and header decoders.
#[derive(Debug)]
pub struct Conn {
    decoders: [HeaderDecoder; 2],
    blocks: [Option<Block>; 2],
    streams: Streams,
    /// Stream ids in the order they were opened, for dropping the oldest.
    order: VecDeque<u32>,
    /// Finished streams, oldest first (at most [`RECENT`]).
    recent: Recent,
    /// The direction the client's frames travel in, once known.
    pub client: Option<Direction>,
    /// Whether each direction's first frame has been seen.
    started: [bool; 2],
    /// Peer SETTINGS_MAX_FRAME_SIZE learned for each direction's sender.
    pub max_frame: [Option<u32>; 2],
}

impl Default for Conn {
    fn default() -> Self {
        Self::new()
    }
}

impl Conn {
    /// A connection seen from its start.
    pub fn new() -> Self {
        Self {
            decoders: [HeaderDecoder::new(true), HeaderDecoder::new(true)],
            blocks: [None, None],
            streams: Streams::default(),
            order: VecDeque::new(),
            recent: Recent::default(),
            client: None,
            started: [false; 2],
            max_frame: [None; 2],
        }
    }

    /// A request whose head came over HTTP/1.1 with `Upgrade: h2c` is stream 1 (RFC 7540
    /// §3.2): its client half is complete.
    pub fn upgraded(&mut self, client: Direction, fields: Fields, start_ns: u64, wire: u64) {
        self.client = Some(client);
        let stream = self.open(1);
        let half = &mut stream.half[client.index()];
        half.start_ns = Some(start_ns);
        half.last_ns = start_ns;
        half.wire = wire;
        half.head = Some(Box::new(fields));
        half.ended = true;
    }

    /// The connection is being joined mid-stream in `dir`: its dynamic table is unknown.
    pub fn unsync(&mut self, dir: Direction) {
        self.decoders[dir.index()].lose();
        self.blocks[dir.index()] = None;
    }

    /// One framing event of direction `dir`, moved at `ts`.
    pub fn event(&mut self, dir: Direction, ev: Event<'_>, ts: u64, out: &mut Output) {
        let i = dir.index();
        match ev {
            Event::Preface => {
                self.client.get_or_insert(dir);
            }
            Event::Lost => {
                self.unsync(dir);
                for s in self.streams.values_mut() {
                    let h = &mut s.half[i];
                    h.in_data = false;
                    if !h.ended {
                        h.lost = true;
                        h.messages.gap(u64::MAX);
                    }
                }
            }
            Event::Frame { header, payload } => {
                self.first_frame(dir, header);
                self.frame(dir, header, payload, ts, out);
            }
            Event::Damaged { header, prefix } => {
                self.first_frame(dir, header);
                self.count(dir, header, ts);
                self.damaged(dir, header, prefix, ts, out);
            }
            Event::Skipped(header) | Event::DataStart(header) => {
                self.first_frame(dir, header);
                self.count(dir, header, ts);
            }
            Event::Data { stream, bytes } => {
                if let Some(s) = self.streams.get_mut(&stream)
                    && s.half[i].in_data
                {
                    let h = &mut s.half[i];
                    h.body += bytes.len() as u64;
                    h.messages.bytes(bytes);
                }
            }
            Event::DataGap { stream, len } => {
                if let Some(s) = self.streams.get_mut(&stream)
                    && s.half[i].in_data
                {
                    let h = &mut s.half[i];
                    h.body += len;
                    h.messages.gap(len);
                }
            }
            Event::DataEnd(header) => {
                if let Some(s) = self.streams.get_mut(&header.stream) {
                    s.half[i].last_ns = ts;
                    s.half[i].in_data = false;
                }
                if header.has(flag::END_STREAM) {
                    self.end_stream(dir, header.stream, ts, out);
                }
            }
        }
    }

    /// A direction seen from its start opens with a SETTINGS frame (after the preface, for the
    /// client); one that opens with anything else was joined mid-stream: its dynamic table is
    /// unknown.
    fn first_frame(&mut self, dir: Direction, header: FrameHeader) {
        let i = dir.index();
        if !self.started[i] {
            self.started[i] = true;
            if header.kind != kind::SETTINGS || header.has(flag::ACK) {
                self.unsync(dir);
            }
        }
    }

    /// Adds a frame's wire size to its stream's half (opening the stream for DATA/HEADERS).
    fn count(&mut self, dir: Direction, header: FrameHeader, ts: u64) {
        if header.stream == 0 {
            return;
        }
        let opens = matches!(header.kind, kind::DATA | kind::HEADERS);
        let stream = if opens && !self.recent.contains(&header.stream) {
            Some(self.open(header.stream))
        } else {
            self.streams.get_mut(&header.stream)
        };
        if let Some(s) = stream {
            let h = &mut s.half[dir.index()];
            h.start_ns.get_or_insert(ts);
            h.last_ns = ts;
            h.wire = h.wire.saturating_add(header.wire_len());
            h.in_data = header.kind == kind::DATA;
        }
    }

    fn open(&mut self, id: u32) -> &mut Stream {
        if !self.streams.contains_key(&id) {
            self.order.push_back(id);
        }
        self.streams.entry(id)
    }

    fn frame(
        &mut self,
        dir: Direction,
        header: FrameHeader,
        payload: &[u8],
        ts: u64,
        out: &mut Output,
    ) {
        let i = dir.index();
        // A header block must continue with CONTINUATION frames of its stream only.
        if self.blocks[i].is_some() && header.kind != kind::CONTINUATION {
            out.lose(Loss::Malformed, 1);
            self.unsync(dir);
        }
        match header.kind {
            kind::HEADERS | kind::PUSH_PROMISE => {
                self.count(dir, header, ts);
                let push = header.kind == kind::PUSH_PROMISE;
                let Some(fragment) = fragment(header, payload) else {
                    out.lose(Loss::Malformed, 1);
                    self.unsync(dir);
                    return;
                };
                let block = Block {
                    stream: header.stream,
                    end_stream: !push && header.has(flag::END_STREAM),
                    push,
                    bytes: fragment,
                };
                if header.has(flag::END_HEADERS) {
                    // The whole block is in this frame: decoded where it lies.
                    self.block(dir, block, ts, out);
                } else {
                    self.blocks[i] = Some(Block {
                        stream: block.stream,
                        end_stream: block.end_stream,
                        push: block.push,
                        bytes: block.bytes.to_vec(),
                    });
                }
            }
            kind::CONTINUATION => {
                self.count(dir, header, ts);
                match self.blocks[i].take() {
                    Some(mut block) if block.stream == header.stream => {
                        if block.bytes.len() + payload.len() > super::frame::MAX_BUFFERED {
                            out.lose(Loss::Oversized, 1);
                            self.unsync(dir);
                            return;
                        }
                        block.bytes.extend_from_slice(payload);
                        if header.has(flag::END_HEADERS) {
                            self.block(dir, block, ts, out);
                        } else {
                            self.blocks[i] = Some(block);
                        }
                    }
                    // Its HEADERS was not seen (joined, or lost): the table is unknown.
                    _ => self.unsync(dir),
                }
            }
            kind::SETTINGS if !header.has(flag::ACK) => {
                for s in payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([s[0], s[1]]);
                    let value = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
                    if id == 0x5 {
                        // The sender accepts frames this large from its peer.
                        self.max_frame[dir.flip().index()] = Some(value);
                    }
                }
            }
            kind::RST_STREAM => {
                self.count(dir, header, ts);
                let code = payload
                    .get(..4)
                    .map_or(0, |c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                if let Some(s) = self.streams.get_mut(&header.stream) {
                    s.reset = Some(code);
                    s.half[dir.index()].last_ns = ts;
                    self.finish(header.stream, out);
                }
            }
            _ => {}
        }
    }

    /// A frame cut short by a gap: a header block's captured start is decoded for its whole
    /// fields; the direction's table is unknown from then on.
    fn damaged(
        &mut self,
        dir: Direction,
        header: FrameHeader,
        prefix: &[u8],
        ts: u64,
        out: &mut Output,
    ) {
        let i = dir.index();
        let block = match header.kind {
            kind::HEADERS if !header.has(flag::PADDED) => {
                let skip = if header.has(flag::PRIORITY) { 5 } else { 0 };
                Some(Block {
                    stream: header.stream,
                    end_stream: header.has(flag::END_STREAM),
                    push: false,
                    bytes: prefix.get(skip..).unwrap_or(&[]).to_vec(),
                })
            }
            kind::CONTINUATION => match self.blocks[i].take() {
                Some(mut b) if b.stream == header.stream && !b.push => {
                    b.bytes.extend_from_slice(prefix);
                    Some(b)
                }
                _ => None,
            },
            _ => None,
        };
        self.blocks[i] = None;
        match block {
            Some(block) => self.block_with(dir, block, ts, out, true),
            None => {
                let headers = matches!(
                    header.kind,
                    kind::HEADERS | kind::CONTINUATION | kind::PUSH_PROMISE
                );
                if headers && let Some(s) = self.streams.get_mut(&header.stream) {
                    s.headers_lost = true;
                }
            }
        }
        self.unsync(dir);
    }

    /// A whole header block of direction `dir`.
    fn block<B: AsRef<[u8]>>(
        &mut self,
        dir: Direction,
        block: Block<B>,
        ts: u64,
        out: &mut Output,
    ) {
        self.block_with(dir, block, ts, out, false);
    }

    /// A header block, whole or (`cut`) only its captured start.
    fn block_with<B: AsRef<[u8]>>(
        &mut self,
        dir: Direction,
        block: Block<B>,
        ts: u64,
        out: &mut Output,
        cut: bool,
    ) {
        let mut fields = Fields::default();
        let decoder = &mut self.decoders[dir.index()];
        let bytes = block.bytes.as_ref();
        let decoded = if cut {
            decoder.decode_prefix(bytes, &mut |n, v| fields.field(n, v))
        } else {
            decoder.decode(bytes, &mut |n, v| fields.field(n, v))
        };
        fields.unknown = decoded.unknown;
        if decoded.malformed {
            out.lose(Loss::Malformed, 1);
        }
        if decoded.unknown > 0 {
            out.lose(Loss::UndecodedHeaders, 1);
        }
        if block.push {
            return; // a promised request: decoded only to keep the table
        }
        if block.stream == 0 {
            // Stream 0 is the connection's own (RFC 9113 §6.2): decoded only to keep the table.
            out.lose(Loss::Malformed, 1);
            return;
        }
        // The role follows from a decoded pseudo-header.
        if self.client.is_none() {
            if fields.method.is_some() {
                self.client = Some(dir);
            } else if fields.status.is_some() {
                self.client = Some(dir.flip());
            }
        }
        if self.recent.contains(&block.stream) {
            return;
        }
        let stream = self.open(block.stream);
        if decoded.malformed {
            stream.headers_lost = true;
        }
        let half = &mut stream.half[dir.index()];
        half.last_ns = ts;
        let interim = fields.status.is_some_and(|s| (100..200).contains(&s));
        if half.head.is_none() {
            if !interim {
                half.head = Some(Box::new(fields));
            }
        } else {
            half.trailers = Some(Box::new(fields));
        }
        if block.end_stream {
            self.end_stream(dir, block.stream, ts, out);
        }
    }

    fn end_stream(&mut self, dir: Direction, id: u32, ts: u64, out: &mut Output) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        let h = &mut s.half[dir.index()];
        h.ended = true;
        h.last_ns = ts;
        if s.half.iter().all(|h| h.ended || h.lost) {
            self.finish(id, out);
        }
        while self.streams.len() > MAX_STREAMS {
            match self.order.pop_front() {
                Some(old) => {
                    if self.streams.remove(&old).is_some() {
                        out.lose(Loss::UnmatchedRequest, 1);
                    }
                }
                None => break,
            }
        }
    }

    /// The stream `id` is over: its record, or its loss.
    fn finish(&mut self, id: u32, out: &mut Output) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        // Streams finish about in their opening order: the id is near the front.
        if let Some(at) = self.order.iter().position(|&x| x == id) {
            self.order.remove(at);
        }
        self.recent.push(id);
        match self.record(s) {
            Ok(r) => out.push(r),
            Err(loss) => out.lose(loss, 1),
        }
    }

    /// The connection is gone: streams not finished are counted.
    pub fn close(&mut self, out: &mut Output) {
        let left: Vec<u32> = self.order.drain(..).collect();
        for id in left {
            let done = self.streams.get(&id).is_some_and(|s| {
                s.half.iter().all(|h| h.ended || h.lost) && s.half.iter().any(|h| h.ended)
            });
            if done {
                // Both sides are over as far as the capture tells.
                self.finish(id, out);
                continue;
            }
            if let Some(s) = self.streams.remove(&id) {
                let requested = s
                    .half
                    .iter()
                    .any(|h| h.head.as_ref().is_some_and(|f| f.method.is_some()));
                out.lose(
                    if requested {
                        Loss::UnmatchedRequest
                    } else {
                        Loss::UnmatchedResponse
                    },
                    1,
                );
            }
        }
    }

    fn record(&self, s: Stream) -> Result<Record, Loss> {
        let client = self.client.ok_or(Loss::UnmatchedResponse)?;
        let role = match client {
            Direction::Egress => Role::Client,
            Direction::Ingress => Role::Server,
        };
        let [a, b] = s.half;
        let (req, resp) = match client {
            Direction::Egress => (a, b),
            Direction::Ingress => (b, a),
        };
        // No request head: the stream began before the capture, or its block was lost.
        let Some(head) = req.head else {
            return Err(Loss::UnmatchedResponse);
        };
        // Nothing of the request decoded (neither `:method` nor `:path`): no record to tell.
        if head.method.is_none() && head.path.is_none() {
            return Err(Loss::UnmatchedRequest);
        }
        let cut = |f: &Option<Box<Fields>>| f.as_ref().is_some_and(|f| f.unknown > 0);
        let truncated = req.lost
            || resp.lost
            || s.headers_lost
            || head.unknown > 0
            || cut(&req.trailers)
            || cut(&resp.head)
            || cut(&resp.trailers);
        let start_ns = req.start_ns.unwrap_or(req.last_ns);
        let end_ns = resp.last_ns.max(req.last_ns).max(start_ns);
        let status = resp.head.as_ref().and_then(|h| h.status);
        // The request's content-type says; if it was not decoded, the response's.
        let grpc = head
            .content_type
            .as_deref()
            .or(resp.head.as_ref().and_then(|h| h.content_type.as_deref()))
            .is_some_and(grpc::is_grpc);
        let detail = if grpc {
            let (service, method) = match head.path.as_deref().and_then(grpc::split_path) {
                Some((s, m)) => (Some(s.to_owned()), Some(m.to_owned())),
                None => (None, None),
            };
            // Trailers, or a trailers-only response (its one header block).
            let end = resp.trailers.as_ref().or(resp.head.as_ref());
            let mut status_code = end.and_then(|f| f.grpc_status);
            let status_message = end.and_then(|f| f.grpc_message.clone());
            let end_unknown = end.is_some_and(|f| f.unknown > 0);
            if status_code.is_none() && !end_unknown {
                status_code = match (s.reset, status) {
                    (Some(code), _) => Some(grpc::status_of_reset(code)),
                    (None, Some(st)) if st != 200 => Some(grpc::status_of_http(st)),
                    _ => None,
                };
            }
            Detail::Rpc(RpcRecord {
                system: RpcSystem::Grpc,
                service,
                method,
                status_code,
                status_message,
                request_messages: req.messages.count(),
                response_messages: resp.messages.count(),
                authority: head.authority,
                user_agent: head.user_agent,
                traceparent: head.traceparent,
                content_type: head.content_type,
                http_status: status,
                reset: s.reset.is_some(),
                truncated,
            })
        } else {
            Detail::Http(HttpRecord {
                method: head.method.unwrap_or_default(),
                target: head.path.unwrap_or_default(),
                version: Some(HttpVersion::Http2),
                status,
                host: head.authority,
                user_agent: head.user_agent,
                traceparent: head.traceparent,
                request_content_type: head.content_type,
                response_content_type: resp.head.and_then(|h| h.content_type),
                request_body_len: req.body,
                response_body_len: resp.body,
            })
        };
        Ok(Record {
            protocol: Protocol::Http2,
            role,
            start_ns,
            end_ns,
            request_bytes: req.wire,
            response_bytes: resp.wire,
            detail,
        })
    }
}

/// The header block fragment of a HEADERS or PUSH_PROMISE payload: padding, priority and the
/// promised stream id removed (RFC 9113 §6.2, §6.6); `None` if the lengths do not fit.
fn fragment(header: FrameHeader, payload: &[u8]) -> Option<&[u8]> {
    let mut p = payload;
    let mut pad = 0usize;
    if header.has(flag::PADDED) {
        pad = usize::from(*p.first()?);
        p = p.get(1..)?;
    }
    if header.kind == kind::HEADERS && header.has(flag::PRIORITY) {
        p = p.get(5..)?;
    }
    if header.kind == kind::PUSH_PROMISE {
        p = p.get(4..)?;
    }
    p.get(..p.len().checked_sub(pad)?)
}
