//! What parsers produce: one [`Record`] per request/response exchange.

use crate::protocol::Protocol;

/// The part the traced process plays in an exchange.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// It sent the request.
    Client,
    /// It received the request and answered.
    Server,
}

/// One request and its response (or a one-way message), with timing.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// Protocol of the exchange.
    pub protocol: Protocol,
    /// Role of the traced process.
    pub role: Role,
    /// When the first byte of the request was moved (ns since the Unix epoch).
    pub start_ns: u64,
    /// When the last byte of the response was moved (ns since the Unix epoch).
    pub end_ns: u64,
    /// Request size on the wire (headers and body), including bytes not captured.
    pub request_bytes: u64,
    /// Response size on the wire, including bytes not captured.
    pub response_bytes: u64,
    /// The protocol's own fields.
    pub detail: Detail,
}

/// Protocol-specific fields of a [`Record`].
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// HTTP/1.x (and later HTTP/2) exchange.
    Http(HttpRecord),
}

/// HTTP protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HttpVersion {
    /// HTTP/1.0
    Http10,
    /// HTTP/1.1
    Http11,
    /// HTTP/2
    Http2,
}

impl HttpVersion {
    /// The value of `network.protocol.version`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
        }
    }
}

/// Fields of an HTTP exchange.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRecord {
    /// Request method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// Request target as sent (origin form `/p?q`, or absolute form for proxies).
    pub target: String,
    /// Protocol version of the request.
    pub version: Option<HttpVersion>,
    /// Response status code; `None` if the connection ended before a response.
    pub status: Option<u16>,
    /// `Host` header (or `:authority`).
    pub host: Option<String>,
    /// `User-Agent` header.
    pub user_agent: Option<String>,
    /// W3C `traceparent` header of the request, verbatim.
    pub traceparent: Option<String>,
    /// Request `Content-Type`.
    pub request_content_type: Option<String>,
    /// Response `Content-Type`.
    pub response_content_type: Option<String>,
    /// Request body length in bytes (as framed, whether captured or not).
    pub request_body_len: u64,
    /// Response body length in bytes (as framed, whether captured or not).
    pub response_body_len: u64,
}
