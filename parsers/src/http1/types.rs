//! What HTTP/1.x framing produces: message heads, ends and losses of sync. Data only.

use crate::record::HttpVersion;

/// Which messages a direction carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Requests: this direction's sender is the client.
    Request,
    /// Responses: this direction's sender is the server.
    Response,
}

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyLen {
    /// No body: no length fields in a request; HEAD, 1xx, 204 and 304 responses.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (as the final coding).
    Chunked,
    /// A response that ends when the server closes the connection.
    UntilClose,
    /// The connection stops speaking HTTP after this head (101 Switching Protocols, CONNECT 2xx).
    Tunnel,
}

/// A parsed request line and the header fields a record keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestHead {
    /// Method as sent.
    pub method: String,
    /// Request target as sent.
    pub target: String,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: HttpVersion,
    /// `Host`.
    pub host: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// How the body is delimited.
    pub body: BodyLen,
    /// When the first byte of the message was moved.
    pub start_ns: u64,
    /// Bytes of the start line and header section, final blank line included.
    pub head_len: u64,
}

/// A parsed status line and the header fields a record keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct ResponseHead {
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: HttpVersion,
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// How the body is delimited, given the request it answers.
    pub body: BodyLen,
    /// When the first byte of the message was moved.
    pub start_ns: u64,
    /// Bytes of the status line and header section, final blank line included.
    pub head_len: u64,
}

impl ResponseHead {
    /// A 1xx response other than 101: the final response is still to come (RFC 9110 §15.2).
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }
}

/// What the request awaiting the next response says about that response's framing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseHint {
    /// The request was HEAD: the response has no body whatever its header fields say.
    pub head: bool,
    /// The request was CONNECT: a 2xx response turns the connection into a tunnel.
    pub connect: bool,
}

/// The end of the message whose head came last in the same direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageEnd {
    /// Bytes on the wire: head, body and chunk framing, including bytes moved but not captured.
    pub wire_len: u64,
    /// Body (payload) bytes as framed: `Content-Length`, sum of chunk sizes, or counted to close.
    pub body_len: u64,
    /// When the last byte of the message was moved.
    pub end_ns: u64,
}

/// One step of framing in one direction.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A request head was parsed; its body (if any) follows.
    Request(RequestHead),
    /// A response head was parsed; its body (if any) follows.
    Response(ResponseHead),
    /// The message whose head was the last event of this direction is complete.
    End(MessageEnd),
    /// Sync was lost (gap, malformed bytes or oversized head): the message in progress, if any,
    /// is abandoned and whole messages may have been missed.
    Lost,
}
