//! What PostgreSQL framing produces: whole messages of one direction, counted or kept. Data only.

/// Type byte of the untyped messages that open a connection (StartupMessage, SSLRequest,
/// GSSENCRequest, CancelRequest): they carry a length and a request code, no type byte.
pub const UNTYPED: u8 = 0;

/// Request code of a StartupMessage for protocol 3.0.
pub const PROTOCOL_3: u32 = 196_608;
/// Request code of an SSLRequest.
pub const SSL_REQUEST: u32 = 80_877_103;
/// Request code of a GSSENCRequest.
pub const GSSENC_REQUEST: u32 = 80_877_104;
/// Request code of a CancelRequest.
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// One message of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    /// Type byte, or [`UNTYPED`].
    pub tag: u8,
    /// The body as far as it was kept: all of it when `complete`, else a prefix (or nothing, for
    /// bodies that are only counted: DataRow, CopyData, frontend Describe).
    pub body: &'a [u8],
    /// Whether `body` is the whole body.
    pub complete: bool,
    /// Bytes on the wire: type byte, length and body, including bytes not captured.
    pub wire_len: u64,
    /// When the first byte was moved.
    pub start_ns: u64,
    /// When the last byte was moved.
    pub end_ns: u64,
}

/// One step of framing in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole message.
    Message(Message<'a>),
    /// The one-byte answer to an SSLRequest or GSSENCRequest (`S`/`G` accept, `N` refuse).
    EncryptionAnswer(u8, u64),
    /// Sync was lost (a gap the framing cannot count over, or malformed bytes): messages may
    /// have been missed.
    Lost,
}
