//! What CQL framing produces: envelopes (the protocol's "frames") of one direction, and the
//! constants of the native protocol. Data only.

/// Length of an envelope header (v3 and later).
pub const HEADER_LEN: usize = 9;

/// Header flag: the body is compressed (lz4 or snappy, as the STARTUP chose).
pub const FLAG_COMPRESSION: u8 = 0x01;
/// Header flag: a request asks for tracing, a response carries a tracing id.
pub const FLAG_TRACING: u8 = 0x02;
/// Header flag: the body starts with a custom payload (v4+).
pub const FLAG_CUSTOM_PAYLOAD: u8 = 0x04;
/// Header flag: a response body starts with warnings (v4+).
pub const FLAG_WARNING: u8 = 0x08;
/// Header flag: a beta protocol version (v5).
pub const FLAG_BETA: u8 = 0x10;

/// Opcodes.
pub mod opcode {
    /// ERROR (response).
    pub const ERROR: u8 = 0x00;
    /// STARTUP (request).
    pub const STARTUP: u8 = 0x01;
    /// READY (response).
    pub const READY: u8 = 0x02;
    /// AUTHENTICATE (response).
    pub const AUTHENTICATE: u8 = 0x03;
    /// OPTIONS (request).
    pub const OPTIONS: u8 = 0x05;
    /// SUPPORTED (response).
    pub const SUPPORTED: u8 = 0x06;
    /// QUERY (request).
    pub const QUERY: u8 = 0x07;
    /// RESULT (response).
    pub const RESULT: u8 = 0x08;
    /// PREPARE (request).
    pub const PREPARE: u8 = 0x09;
    /// EXECUTE (request).
    pub const EXECUTE: u8 = 0x0A;
    /// REGISTER (request).
    pub const REGISTER: u8 = 0x0B;
    /// EVENT (server push on stream -1, never a reply).
    pub const EVENT: u8 = 0x0C;
    /// BATCH (request).
    pub const BATCH: u8 = 0x0D;
    /// AUTH_CHALLENGE (response).
    pub const AUTH_CHALLENGE: u8 = 0x0E;
    /// AUTH_RESPONSE (request).
    pub const AUTH_RESPONSE: u8 = 0x0F;
    /// AUTH_SUCCESS (response).
    pub const AUTH_SUCCESS: u8 = 0x10;
}

/// RESULT kinds.
pub mod result_kind {
    /// No result.
    #[expect(dead_code, reason = "documents the kind; matched by the default arm")]
    pub const VOID: i32 = 0x0001;
    /// Rows of a SELECT.
    pub const ROWS: i32 = 0x0002;
    /// Answer to `USE ks`.
    pub const SET_KEYSPACE: i32 = 0x0003;
    /// Answer to PREPARE.
    pub const PREPARED: i32 = 0x0004;
    /// A schema change.
    #[expect(dead_code, reason = "documents the kind; matched by the default arm")]
    pub const SCHEMA_CHANGE: i32 = 0x0005;
}

/// Whether `op` is a request opcode.
pub fn is_request_opcode(op: u8) -> bool {
    use opcode::*;
    matches!(
        op,
        STARTUP | OPTIONS | QUERY | PREPARE | EXECUTE | REGISTER | BATCH | AUTH_RESPONSE
    )
}

/// Whether `op` is a response opcode.
pub fn is_response_opcode(op: u8) -> bool {
    use opcode::*;
    matches!(
        op,
        ERROR | READY | AUTHENTICATE | SUPPORTED | RESULT | EVENT | AUTH_CHALLENGE | AUTH_SUCCESS
    )
}

/// A decoded envelope header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Protocol version, 3 to 5 (without the response bit).
    pub version: u8,
    /// Whether the response bit (0x80) of the version byte is set.
    pub response: bool,
    /// Flags byte.
    pub flags: u8,
    /// Stream id (-1 for server pushes).
    pub stream: i16,
    /// Opcode.
    pub opcode: u8,
    /// Body length.
    pub length: u32,
}

impl Header {
    /// Reads the 9 header bytes.
    pub fn read(b: &[u8; HEADER_LEN]) -> Self {
        Self {
            version: b[0] & 0x7f,
            response: b[0] & 0x80 != 0,
            flags: b[1],
            stream: i16::from_be_bytes([b[2], b[3]]),
            opcode: b[4],
            length: u32::from_be_bytes([b[5], b[6], b[7], b[8]]),
        }
    }
}

/// One envelope of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The header.
    pub header: Header,
    /// The body as far as it was kept: all of it when `complete`, else a prefix.
    pub body: &'a [u8],
    /// Whether `body` is the whole body.
    pub complete: bool,
    /// Bytes on the wire: header and body, including bytes not captured (inside v5 segments:
    /// the envelope's own bytes, without the segment headers and checksums).
    pub wire_len: u64,
    /// When the first byte was moved.
    pub start_ns: u64,
    /// When the last byte was moved.
    pub end_ns: u64,
}

/// One step of framing in one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A whole envelope.
    Frame(Frame<'a>),
    /// Sync was lost (a gap the framing cannot count over, or malformed bytes): envelopes may
    /// have been missed.
    Lost,
}
