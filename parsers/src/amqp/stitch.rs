//! Frames of both directions → records: the handshake, synchronous methods matched with their
//! `-Ok` per channel, messages (method, content header, body frames) and publisher confirms.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use amq_protocol::protocol::{AMQPClass, basic, channel, confirm, connection, exchange, queue};

use super::frame::{Event, Span};
use super::methods::{self, Sender};
use crate::Direction;
use crate::output::{Loss, Output};
use crate::protocol::Protocol;
use crate::record::{Detail, MessagingOperation, MessagingRecord, MessagingSystem, Record, Role};

/// Channels tracked at once (RabbitMQ's default `channel_max` is 2047).
pub const MAX_CHANNELS: usize = 2048;
/// Synchronous methods waiting for their reply on one channel.
pub const MAX_PENDING: usize = 32;
/// Published messages waiting for the broker's confirm on one channel; past this, a publish
/// is reported without waiting.
pub const MAX_UNCONFIRMED: usize = 4096;

/// Which end of the connection sent a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// A record being built: the message fields, times and wire sizes so far.
#[derive(Debug)]
struct Draft {
    msg: MessagingRecord,
    start_ns: u64,
    end_ns: u64,
    request_bytes: u64,
    response_bytes: u64,
}

impl Draft {
    /// A record whose request is the frame at `span`.
    fn request(operation: MessagingOperation, name: &str, span: Span) -> Self {
        Self {
            msg: MessagingRecord::new(MessagingSystem::RabbitMq, operation, name),
            start_ns: span.start_ns,
            end_ns: span.end_ns,
            request_bytes: span.wire,
            response_bytes: 0,
        }
    }

    /// The request goes on with the frame at `span`.
    fn more_request(&mut self, span: Span) {
        self.end_ns = span.end_ns;
        self.request_bytes += span.wire;
    }

    /// The reply (or part of it) is the frame at `span`.
    fn answered(&mut self, span: Span) {
        self.end_ns = span.end_ns;
        self.response_bytes += span.wire;
    }

    fn error(&mut self, code: u16, text: &str) {
        self.msg.error_type = Some(code.to_string());
        self.msg.error_message = Some(text.to_owned());
    }

    fn record(self, role: Role) -> Record {
        Record {
            protocol: Protocol::Amqp,
            role,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            request_bytes: self.request_bytes,
            response_bytes: self.response_bytes,
            detail: Detail::Messaging(self.msg),
        }
    }
}

/// A synchronous method waiting for its reply.
#[derive(Debug)]
struct Pending {
    ids: (u16, u16),
    reply: (u16, u16),
    draft: Draft,
}

/// What a message (method + content header + body frames) is.
#[derive(Debug, PartialEq)]
enum ContentKind {
    /// Basic.Publish, with its delivery tag when the channel is in confirm mode.
    Publish(Option<u64>),
    /// Basic.Deliver, Basic.Return: one-way from the broker.
    Pushed,
    /// Basic.Get-Ok: the reply to a Basic.Get.
    GetOk,
}

/// A message whose content is still arriving.
#[derive(Debug)]
struct Content {
    kind: ContentKind,
    draft: Draft,
    body_size: Option<u64>,
    received: u64,
}

impl Content {
    fn add(&mut self, span: Span) {
        if self.kind == ContentKind::GetOk {
            self.draft.answered(span);
        } else {
            self.draft.more_request(span);
        }
    }

    fn is_complete(&self) -> bool {
        self.body_size.is_some_and(|size| self.received >= size)
    }
}

/// Publisher confirms of one channel (after Confirm.Select).
#[derive(Debug, Default)]
struct Confirms {
    /// The delivery tag the next publish gets; `None` once a gap made the count unknown.
    next_tag: Option<u64>,
    unconfirmed: BTreeMap<u64, Draft>,
}

#[derive(Debug, Default)]
struct Channel {
    pending: VecDeque<Pending>,
    /// Messages in progress, by [`Side::index`].
    content: [Option<Content>; 2],
    confirms: Option<Confirms>,
}

/// Pairing state of one connection.
/// Hashing of channel ids (looked up on every frame): a multiplication, not SipHash. The ids
/// are 16-bit numbers the client picks; at most [`MAX_CHANNELS`] are kept, so crafted ids can
/// slow lookups no more than that bound allows.
type ChannelIds = BuildHasherDefault<ChannelIdHasher>;

#[derive(Default)]
struct ChannelIdHasher(u64);

impl Hasher for ChannelIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

#[derive(Debug, Default)]
pub(super) struct Stitcher {
    /// The direction the client's frames travel, once known.
    client: Option<Direction>,
    /// The handshake, from the protocol header (or Connection.Start) to Connection.Open-Ok.
    connect: Option<Draft>,
    channels: HashMap<u16, Channel, ChannelIds>,
    /// Channels the broker closed whose Close-Ok from the client has not come yet: the broker
    /// discards what the client sends on them meanwhile, and so does this.
    closing: HashSet<u16, ChannelIds>,
    /// Sync was lost before the roles were known: a handshake seen from there is not whole.
    lost_early: bool,
}

impl Stitcher {
    pub(super) fn role(&self) -> Option<Role> {
        self.client.map(|dir| match dir {
            Direction::Egress => Role::Client,
            Direction::Ingress => Role::Server,
        })
    }

    fn side(&self, dir: Direction) -> Option<Side> {
        self.client.map(|client| {
            if client == dir {
                Side::Client
            } else {
                Side::Server
            }
        })
    }

    fn push(&self, draft: Draft, out: &mut Output) {
        if let Some(role) = self.role() {
            out.push(draft.record(role));
        }
    }

    pub(super) fn event(&mut self, dir: Direction, event: Event, out: &mut Output) {
        match event {
            Event::ProtocolHeader(span) => {
                self.client.get_or_insert(dir);
                if self.side(dir) == Some(Side::Client) {
                    self.connect = Some(Draft::request(MessagingOperation::Other, "connect", span));
                }
            }
            Event::Method(channel, class, span) => {
                let ids = (class.get_amqp_class_id(), class.get_amqp_method_id());
                if self.client.is_none() {
                    match methods::describe(ids.0, ids.1) {
                        Some((_, Sender::Client)) => self.client = Some(dir),
                        Some((_, Sender::Server)) => self.client = Some(dir.flip()),
                        _ => {}
                    }
                }
                match self.side(dir) {
                    Some(Side::Client) => self.client_method(channel, *class, ids, span, out),
                    Some(Side::Server) => self.server_method(channel, *class, ids, span, out),
                    None => {}
                }
            }
            Event::Header(channel, body_size, traceparent, span) => {
                if let Some(side) = self.side(dir) {
                    self.content_header(side, channel, body_size, traceparent, span, out);
                }
            }
            Event::Body(channel, len, span) => {
                if let Some(side) = self.side(dir) {
                    self.content_body(side, channel, len, span, out);
                }
            }
            Event::Ignored => {}
            Event::Lost => match self.side(dir) {
                Some(side) => self.lost(side, out),
                None => self.lost_early = true,
            },
        }
    }

    /// The channel's state, made on first use (`None` past [`MAX_CHANNELS`], counted).
    fn channel(&mut self, id: u16, out: &mut Output) -> Option<&mut Channel> {
        if !self.channels.contains_key(&id) && self.channels.len() >= MAX_CHANNELS {
            out.lose(Loss::Oversized, 1);
            return None;
        }
        Some(self.channels.entry(id).or_default())
    }

    /// A method cuts short the message the same side was sending on the channel.
    fn abandon_content(&mut self, side: Side, channel: u16, out: &mut Output) {
        if let Some(ch) = self.channels.get_mut(&channel)
            && ch.content[side.index()].take().is_some()
        {
            out.lose(Loss::Malformed, 1);
        }
    }

    fn client_method(
        &mut self,
        channel: u16,
        class: AMQPClass,
        ids: (u16, u16),
        span: Span,
        out: &mut Output,
    ) {
        use MessagingOperation as Op;
        if self.closing.contains(&channel) {
            if ids == (20, 41) {
                self.closing.remove(&channel);
            }
            return;
        }
        self.abandon_content(Side::Client, channel, out);
        match &class {
            AMQPClass::Connection(
                connection::AMQPMethod::StartOk(_)
                | connection::AMQPMethod::SecureOk(_)
                | connection::AMQPMethod::TuneOk(_)
                | connection::AMQPMethod::Open(_),
            ) => {
                if let Some(connect) = &mut self.connect {
                    connect.more_request(span);
                }
                return;
            }
            // Answers to the broker's own requests.
            AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))
            | AMQPClass::Channel(
                channel::AMQPMethod::CloseOk(_) | channel::AMQPMethod::FlowOk(_),
            )
            | AMQPClass::Basic(basic::AMQPMethod::CancelOk(_)) => return,
            AMQPClass::Basic(basic::AMQPMethod::Publish(p)) => {
                let mut draft = Draft::request(Op::Send, "publish", span);
                draft.msg.destination = Some(p.exchange.to_string());
                draft.msg.routing_key = non_empty(p.routing_key.as_str());
                let Some(ch) = self.channel(channel, out) else {
                    return;
                };
                let tag = ch.confirms.as_mut().and_then(|c| {
                    let tag = c.next_tag?;
                    c.next_tag = tag.checked_add(1);
                    Some(tag)
                });
                ch.content[Side::Client.index()] = Some(Content {
                    kind: ContentKind::Publish(tag),
                    draft,
                    body_size: None,
                    received: 0,
                });
                return;
            }
            AMQPClass::Basic(
                basic::AMQPMethod::Ack(_)
                | basic::AMQPMethod::Nack(_)
                | basic::AMQPMethod::Reject(_),
            ) => {
                let name = match ids.1 {
                    80 => "ack",
                    120 => "nack",
                    _ => "reject",
                };
                self.push(Draft::request(Op::Settle, name, span), out);
                return;
            }
            _ => {}
        }
        let Some(reply) = methods::reply_of(ids.0, ids.1) else {
            return;
        };
        let name = methods::name(ids.0, ids.1).unwrap_or("unknown");
        let draft = request_draft(&class, name, span);
        let Some(ch) = self.channel(channel, out) else {
            return;
        };
        if matches!(class, AMQPClass::Confirm(_)) {
            ch.confirms.get_or_insert(Confirms {
                next_tag: Some(1),
                unconfirmed: BTreeMap::new(),
            });
        }
        if is_nowait(&class) {
            self.push(draft, out);
            return;
        }
        if ch.pending.len() >= MAX_PENDING {
            out.lose(Loss::UnmatchedRequest, 1);
            return;
        }
        ch.pending.push_back(Pending { ids, reply, draft });
    }

    fn server_method(
        &mut self,
        channel: u16,
        class: AMQPClass,
        ids: (u16, u16),
        span: Span,
        out: &mut Output,
    ) {
        use MessagingOperation as Op;
        self.abandon_content(Side::Server, channel, out);
        match class {
            AMQPClass::Connection(connection::AMQPMethod::Start(_)) if !self.lost_early => {
                // Without the protocol header (joined late), the handshake starts here.
                let mut draft = self.connect.take().unwrap_or_else(|| {
                    let mut draft = Draft::request(Op::Other, "connect", span);
                    draft.request_bytes = 0;
                    draft
                });
                draft.answered(span);
                self.connect = Some(draft);
            }
            AMQPClass::Connection(
                connection::AMQPMethod::Secure(_) | connection::AMQPMethod::Tune(_),
            ) => {
                if let Some(connect) = &mut self.connect {
                    connect.answered(span);
                }
            }
            AMQPClass::Connection(connection::AMQPMethod::OpenOk(_)) => {
                if let Some(mut connect) = self.connect.take() {
                    connect.answered(span);
                    self.push(connect, out);
                } else {
                    out.lose(Loss::UnmatchedResponse, 1);
                }
            }
            AMQPClass::Connection(connection::AMQPMethod::Close(close)) => {
                self.connection_closed_by_broker(&close, span, out);
            }
            // Broker notifications and requests of its own: no record.
            AMQPClass::Connection(
                connection::AMQPMethod::Blocked(_) | connection::AMQPMethod::Unblocked(_),
            )
            | AMQPClass::Channel(channel::AMQPMethod::Flow(_))
            | AMQPClass::Basic(basic::AMQPMethod::Cancel(_)) => {}
            AMQPClass::Channel(channel::AMQPMethod::Close(close)) => {
                self.channel_closed_by_broker(channel, &close, span, out);
            }
            AMQPClass::Basic(basic::AMQPMethod::Deliver(d)) => {
                let mut draft = Draft::request(Op::Process, "process", span);
                draft.msg.destination = Some(d.exchange.to_string());
                draft.msg.routing_key = non_empty(d.routing_key.as_str());
                draft.msg.client_id = non_empty(d.consumer_tag.as_str());
                self.start_pushed(channel, ContentKind::Pushed, draft, out);
            }
            AMQPClass::Basic(basic::AMQPMethod::Return(r)) => {
                let mut draft = Draft::request(Op::Other, "return", span);
                draft.msg.destination = Some(r.exchange.to_string());
                draft.msg.routing_key = non_empty(r.routing_key.as_str());
                if r.reply_code >= 300 {
                    draft.error(r.reply_code, r.reply_text.as_str());
                }
                self.start_pushed(channel, ContentKind::Pushed, draft, out);
            }
            AMQPClass::Basic(basic::AMQPMethod::GetOk(g)) => {
                let Some(mut draft) = self.take_reply(channel, ids, out) else {
                    return;
                };
                draft.answered(span);
                draft.msg.routing_key = non_empty(g.routing_key.as_str());
                self.start_pushed(channel, ContentKind::GetOk, draft, out);
            }
            AMQPClass::Basic(basic::AMQPMethod::Ack(a)) => {
                self.confirmed(channel, a.delivery_tag, a.multiple, false, span, out);
            }
            AMQPClass::Basic(basic::AMQPMethod::Nack(n)) => {
                self.confirmed(channel, n.delivery_tag, n.multiple, true, span, out);
            }
            reply => {
                let Some(mut draft) = self.take_reply(channel, ids, out) else {
                    return;
                };
                draft.answered(span);
                fill_from_reply(&mut draft.msg, &reply);
                self.push(draft, out);
                if ids == (20, 41) {
                    self.forget_channel(channel, out);
                }
            }
        }
    }

    /// The oldest waiting method of `channel`, if `reply` answers it (counted if not).
    fn take_reply(&mut self, channel: u16, reply: (u16, u16), out: &mut Output) -> Option<Draft> {
        let ch = self.channels.get_mut(&channel);
        let answers = |p: &Pending| p.reply == reply || (p.reply == (60, 71) && reply == (60, 72));
        match ch {
            Some(ch) if ch.pending.front().is_some_and(answers) => {
                ch.pending.pop_front().map(|p| p.draft)
            }
            _ => {
                out.lose(Loss::UnmatchedResponse, 1);
                None
            }
        }
    }

    /// A message from the broker starts (Deliver, Return) or a Get is answered with one.
    fn start_pushed(&mut self, channel: u16, kind: ContentKind, draft: Draft, out: &mut Output) {
        if let Some(ch) = self.channel(channel, out) {
            ch.content[Side::Server.index()] = Some(Content {
                kind,
                draft,
                body_size: None,
                received: 0,
            });
        }
    }

    fn content_header(
        &mut self,
        side: Side,
        channel: u16,
        body_size: u64,
        traceparent: Option<String>,
        span: Span,
        out: &mut Output,
    ) {
        if side == Side::Client && self.closing.contains(&channel) {
            return;
        }
        let slot = self
            .channels
            .get_mut(&channel)
            .map(|ch| &mut ch.content[side.index()]);
        let Some(Some(content)) = slot else {
            // A message whose method was not seen (joined mid-message).
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        if content.body_size.is_some() {
            self.abandon_content(side, channel, out);
            return;
        }
        content.body_size = Some(body_size);
        content.draft.msg.body_size = Some(body_size);
        content.draft.msg.traceparent = traceparent;
        content.add(span);
        self.finish_content_if_complete(side, channel, out);
    }

    fn content_body(&mut self, side: Side, channel: u16, len: u64, span: Span, out: &mut Output) {
        let slot = self
            .channels
            .get_mut(&channel)
            .map(|ch| &mut ch.content[side.index()]);
        let Some(Some(content)) = slot else {
            return;
        };
        if content.body_size.is_none() {
            self.abandon_content(side, channel, out);
            return;
        }
        content.received = content.received.saturating_add(len);
        content.add(span);
        self.finish_content_if_complete(side, channel, out);
    }

    fn finish_content_if_complete(&mut self, side: Side, channel: u16, out: &mut Output) {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let slot = &mut ch.content[side.index()];
        if !slot.as_ref().is_some_and(Content::is_complete) {
            return;
        }
        let Some(content) = slot.take() else {
            return;
        };
        if let (ContentKind::Publish(Some(tag)), Some(confirms)) = (&content.kind, &mut ch.confirms)
            && confirms.unconfirmed.len() < MAX_UNCONFIRMED
        {
            confirms.unconfirmed.insert(*tag, content.draft);
            return;
        }
        self.push(content.draft, out);
    }

    /// Basic.Ack or Basic.Nack from the broker: publishes up to `tag` (or just `tag`) confirmed.
    fn confirmed(
        &mut self,
        channel: u16,
        tag: u64,
        multiple: bool,
        nack: bool,
        span: Span,
        out: &mut Output,
    ) {
        let Some(confirms) = self
            .channels
            .get_mut(&channel)
            .and_then(|ch| ch.confirms.as_mut())
        else {
            out.lose(Loss::UnmatchedResponse, 1);
            return;
        };
        let settled: Vec<Draft> = if multiple {
            let later = confirms.unconfirmed.split_off(&tag.saturating_add(1));
            std::mem::replace(&mut confirms.unconfirmed, later)
                .into_values()
                .collect()
        } else {
            confirms.unconfirmed.remove(&tag).into_iter().collect()
        };
        if settled.is_empty() {
            out.lose(Loss::UnmatchedResponse, 1);
        }
        for mut draft in settled {
            draft.answered(span);
            if nack {
                draft.msg.error_type = Some("nack".to_owned());
                draft.msg.error_message = Some("the broker nacked the message".to_owned());
            }
            self.push(draft, out);
        }
    }

    /// Channel.Close from the broker: an error for the method that caused it, or a record of
    /// its own; the channel is gone.
    fn channel_closed_by_broker(
        &mut self,
        channel: u16,
        close: &channel::Close,
        span: Span,
        out: &mut Output,
    ) {
        if self.closing.len() < MAX_CHANNELS {
            self.closing.insert(channel);
        }
        let Some(mut ch) = self.channels.remove(&channel) else {
            self.unsolicited_close(
                "channel.close",
                close.reply_code,
                close.reply_text.as_str(),
                span,
                out,
            );
            return;
        };
        let cause = (close.class_id, close.method_id);
        let failed = ch.pending.iter().position(|p| p.ids == cause);
        match failed.and_then(|i| ch.pending.remove(i)) {
            Some(mut pending) if close.reply_code >= 300 => {
                pending.draft.answered(span);
                pending
                    .draft
                    .error(close.reply_code, close.reply_text.as_str());
                self.push(pending.draft, out);
            }
            other => {
                if other.is_some() {
                    out.lose(Loss::UnmatchedRequest, 1);
                }
                let (code, text) = (close.reply_code, close.reply_text.as_str());
                self.unsolicited_close("channel.close", code, text, span, out);
            }
        }
        self.drop_channel(ch, out);
    }

    /// Connection.Close from the broker: an error for the handshake or for the method that
    /// caused it, or a record of its own; every channel is gone.
    fn connection_closed_by_broker(
        &mut self,
        close: &connection::Close,
        span: Span,
        out: &mut Output,
    ) {
        let (code, text) = (close.reply_code, close.reply_text.as_str());
        let cause = (close.class_id, close.method_id);
        let failed = self.channels.values_mut().find_map(|ch| {
            let i = ch.pending.iter().position(|p| p.ids == cause)?;
            ch.pending.remove(i)
        });
        if let Some(mut draft) = self.connect.take().or(failed.map(|p| p.draft)) {
            draft.answered(span);
            if code >= 300 {
                draft.error(code, text);
            }
            self.push(draft, out);
        } else {
            self.unsolicited_close("connection.close", code, text, span, out);
        }
        let channels: Vec<Channel> = self.channels.drain().map(|(_, ch)| ch).collect();
        for ch in channels {
            self.drop_channel(ch, out);
        }
    }

    /// A broker's close that answers nothing seen: a record when it reports an error.
    fn unsolicited_close(&self, name: &str, code: u16, text: &str, span: Span, out: &mut Output) {
        if code >= 300 {
            let mut draft = Draft::request(MessagingOperation::Other, name, span);
            draft.error(code, text);
            self.push(draft, out);
        }
    }

    /// Channel.Close-Ok for the client's own close: the channel id may be reused.
    fn forget_channel(&mut self, channel: u16, out: &mut Output) {
        if let Some(ch) = self.channels.remove(&channel) {
            self.drop_channel(ch, out);
        }
    }

    /// A channel ended: what waited on it is counted, unconfirmed publishes are reported.
    fn drop_channel(&self, ch: Channel, out: &mut Output) {
        out.lose(Loss::UnmatchedRequest, ch.pending.len() as u64);
        let [client, server] = ch.content;
        if client.is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        if server.is_some() {
            out.lose(Loss::UnmatchedResponse, 1);
        }
        for draft in ch
            .confirms
            .into_iter()
            .flat_map(|c| c.unconfirmed.into_values())
        {
            out.lose(Loss::UnmatchedRequest, 1);
            self.push(draft, out);
        }
    }

    /// Sync lost on `side`: nothing waiting can be paired with confidence any more.
    fn lost(&mut self, side: Side, out: &mut Output) {
        if self.connect.take().is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        let mut unconfirmed = Vec::new();
        for ch in self.channels.values_mut() {
            out.lose(Loss::UnmatchedRequest, ch.pending.len() as u64);
            ch.pending.clear();
            if ch.content[side.index()].take().is_some() {
                out.lose(Loss::UnmatchedRequest, 1);
            }
            if side == Side::Client
                && let Some(confirms) = &mut ch.confirms
            {
                // Publishes may have been missed: later delivery tags are unknown.
                confirms.next_tag = None;
                unconfirmed.extend(std::mem::take(&mut confirms.unconfirmed).into_values());
            }
        }
        for draft in unconfirmed {
            out.lose(Loss::UnmatchedRequest, 1);
            self.push(draft, out);
        }
    }

    /// The connection is gone.
    pub(super) fn close(&mut self, out: &mut Output) {
        if self.connect.take().is_some() {
            out.lose(Loss::UnmatchedRequest, 1);
        }
        let channels: Vec<Channel> = self.channels.drain().map(|(_, ch)| ch).collect();
        for ch in channels {
            self.drop_channel(ch, out);
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// The record of a synchronous method, with what the request names.
fn request_draft(class: &AMQPClass, name: &str, span: Span) -> Draft {
    use MessagingOperation as Op;
    let operation = match class {
        AMQPClass::Queue(queue::AMQPMethod::Declare(_))
        | AMQPClass::Exchange(exchange::AMQPMethod::Declare(_)) => Op::Create,
        _ => Op::Other,
    };
    let name = match class {
        AMQPClass::Basic(basic::AMQPMethod::Get(_)) => "receive",
        _ => name,
    };
    let mut draft = Draft::request(operation, name, span);
    if matches!(class, AMQPClass::Basic(basic::AMQPMethod::Get(_))) {
        draft.msg.operation = Op::Receive;
    }
    let (destination, key, tag): (Option<&str>, Option<&str>, Option<&str>) = match class {
        AMQPClass::Queue(m) => match m {
            queue::AMQPMethod::Declare(d) => (Some(d.queue.as_str()), None, None),
            queue::AMQPMethod::Bind(b) => {
                (Some(b.queue.as_str()), Some(b.routing_key.as_str()), None)
            }
            queue::AMQPMethod::Unbind(b) => {
                (Some(b.queue.as_str()), Some(b.routing_key.as_str()), None)
            }
            queue::AMQPMethod::Purge(p) => (Some(p.queue.as_str()), None, None),
            queue::AMQPMethod::Delete(d) => (Some(d.queue.as_str()), None, None),
            _ => (None, None, None),
        },
        AMQPClass::Exchange(m) => match m {
            exchange::AMQPMethod::Declare(d) => (Some(d.exchange.as_str()), None, None),
            exchange::AMQPMethod::Delete(d) => (Some(d.exchange.as_str()), None, None),
            exchange::AMQPMethod::Bind(b) => (
                Some(b.destination.as_str()),
                Some(b.routing_key.as_str()),
                None,
            ),
            exchange::AMQPMethod::Unbind(b) => (
                Some(b.destination.as_str()),
                Some(b.routing_key.as_str()),
                None,
            ),
            _ => (None, None, None),
        },
        AMQPClass::Basic(m) => match m {
            basic::AMQPMethod::Consume(c) => {
                (Some(c.queue.as_str()), None, Some(c.consumer_tag.as_str()))
            }
            basic::AMQPMethod::Cancel(c) => (None, None, Some(c.consumer_tag.as_str())),
            basic::AMQPMethod::Get(g) => (Some(g.queue.as_str()), None, None),
            _ => (None, None, None),
        },
        _ => (None, None, None),
    };
    draft.msg.destination = destination.map(str::to_owned);
    draft.msg.routing_key = key.and_then(non_empty);
    draft.msg.client_id = tag.and_then(non_empty);
    draft
}

/// What the `-Ok` adds: server-named queues, consumer tags, message counts.
fn fill_from_reply(msg: &mut MessagingRecord, reply: &AMQPClass) {
    match reply {
        AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok)) => {
            if msg.destination.as_deref().is_none_or(str::is_empty) {
                msg.destination = Some(ok.queue.to_string());
            }
            msg.message_count = Some(u64::from(ok.message_count));
        }
        AMQPClass::Queue(queue::AMQPMethod::PurgeOk(ok)) => {
            msg.message_count = Some(u64::from(ok.message_count));
        }
        AMQPClass::Queue(queue::AMQPMethod::DeleteOk(ok)) => {
            msg.message_count = Some(u64::from(ok.message_count));
        }
        AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(ok)) => {
            msg.client_id = non_empty(ok.consumer_tag.as_str());
        }
        AMQPClass::Basic(basic::AMQPMethod::GetEmpty(_)) => {
            msg.message_count = Some(0);
        }
        _ => {}
    }
}

/// Whether the client asked for no reply.
fn is_nowait(class: &AMQPClass) -> bool {
    match class {
        AMQPClass::Queue(m) => match m {
            queue::AMQPMethod::Declare(d) => d.nowait,
            queue::AMQPMethod::Bind(b) => b.nowait,
            queue::AMQPMethod::Purge(p) => p.nowait,
            queue::AMQPMethod::Delete(d) => d.nowait,
            _ => false,
        },
        AMQPClass::Exchange(m) => match m {
            exchange::AMQPMethod::Declare(d) => d.nowait,
            exchange::AMQPMethod::Delete(d) => d.nowait,
            exchange::AMQPMethod::Bind(b) => b.nowait,
            exchange::AMQPMethod::Unbind(b) => b.nowait,
            _ => false,
        },
        AMQPClass::Basic(basic::AMQPMethod::Consume(c)) => c.nowait,
        AMQPClass::Basic(basic::AMQPMethod::Cancel(c)) => c.nowait,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => s.nowait,
        _ => false,
    }
}
