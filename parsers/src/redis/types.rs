//! What RESP framing produces: whole top-level messages, summarised. Data only.

/// Which messages a direction carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Commands: this direction's sender is the client.
    Request,
    /// Replies and pushes: this direction's sender is the server.
    Response,
}

/// The RESP type of a top-level message (its first byte), or an inline command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    /// `+` simple string.
    Simple,
    /// `-` simple error.
    Error,
    /// `:` integer.
    Integer,
    /// `$` bulk string.
    Bulk,
    /// `*` array.
    Array,
    /// `_` null (RESP3).
    Null,
    /// `#` boolean (RESP3).
    Boolean,
    /// `,` double (RESP3).
    Double,
    /// `(` big number (RESP3).
    BigNumber,
    /// `!` blob error (RESP3).
    BlobError,
    /// `=` verbatim string (RESP3).
    Verbatim,
    /// `%` map (RESP3).
    Map,
    /// `~` set (RESP3).
    Set,
    /// `>` push: out-of-band data from the server, never a reply (RESP3).
    Push,
    /// A command sent as a line of words (`PING\r\n`), not as an array.
    Inline,
}

impl Type {
    /// The type a first byte announces.
    pub fn of(byte: u8) -> Option<Self> {
        Some(match byte {
            b'+' => Self::Simple,
            b'-' => Self::Error,
            b':' => Self::Integer,
            b'$' => Self::Bulk,
            b'*' => Self::Array,
            b'_' => Self::Null,
            b'#' => Self::Boolean,
            b',' => Self::Double,
            b'(' => Self::BigNumber,
            b'!' => Self::BlobError,
            b'=' => Self::Verbatim,
            b'%' => Self::Map,
            b'~' => Self::Set,
            b'>' => Self::Push,
            _ => return None,
        })
    }
}

/// One complete top-level message (a command, a reply or a push), with what matching and the
/// record need of it. Element payloads are cut at [`MAX_TEXT`](super::frame::MAX_TEXT).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// Type of the message; `None` only in a default value.
    pub ty: Option<Type>,
    /// For a line type (`+ - : _ # , (`) its text; for a blob its payload (bulk, blob error),
    /// cut.
    pub text: Vec<u8>,
    /// For an aggregate or an inline command: its first elements, as text (strings, numbers),
    /// an empty entry for a nested aggregate or null; at most [`MAX_ARGS`](super::frame::MAX_ARGS).
    pub args: Args,
    /// For an aggregate: its element count (pairs count twice); for an inline command: its
    /// words.
    pub count: u64,
    /// For an aggregate: whether every element is a bulk string (the shape of a command).
    pub all_bulk: bool,
    /// When the first byte was moved.
    pub start_ns: u64,
    /// When the last byte was moved.
    pub end_ns: u64,
    /// Bytes on the wire, including bytes moved but not captured.
    pub wire_len: u64,
}

impl Message {
    /// Whether this looks like a command: an array of bulk strings, or an inline command.
    pub fn is_command_shaped(&self) -> bool {
        match self.ty {
            Some(Type::Inline) => self.args.len() > 0,
            Some(Type::Array) => self.all_bulk && self.args.len() > 0,
            _ => false,
        }
    }
}

/// The first elements of a message, in one buffer (reused from message to message).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Args {
    buf: Vec<u8>,
    ends: [usize; super::frame::MAX_ARGS],
    len: usize,
}

impl Args {
    /// How many elements are kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Element `i`, if kept.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        if i >= self.len {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.buf.get(start..self.ends[i])
    }

    /// The first element (the command word of a command).
    pub fn first(&self) -> Option<&[u8]> {
        self.get(0)
    }

    /// Starts a new element, if there is room; whether there was.
    pub fn push(&mut self, bytes: &[u8]) -> bool {
        if self.len >= self.ends.len() {
            return false;
        }
        self.buf.extend_from_slice(bytes);
        self.ends[self.len] = self.buf.len();
        self.len += 1;
        true
    }

    /// Appends to the last element, up to `max` bytes in all.
    pub fn extend_last(&mut self, bytes: &[u8], max: usize) {
        let Some(last) = self.len.checked_sub(1) else {
            return;
        };
        let start = if last == 0 { 0 } else { self.ends[last - 1] };
        let room = max.saturating_sub(self.buf.len() - start);
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.ends[last] = self.buf.len();
    }

    /// Empties it, keeping the buffer.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.len = 0;
    }
}

/// One step of framing in one direction.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A complete top-level message.
    /// A complete top-level message, read with `Framer::message` until the next call.
    Message,
    /// Sync was lost (gap, malformed bytes or an oversized line): the message in progress, if
    /// any, is abandoned and whole messages may have been missed.
    Lost,
}

/// A command as the record names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command word uppercased, with the subcommand for container commands
    /// (`CLIENT SETNAME`, `CONFIG GET`).
    pub operation: String,
    /// The operation and the first key, for commands whose first argument is a key or channel;
    /// never a value.
    pub query_text: String,
    /// The first argument as text (the db index of `SELECT`, the mode of `HELLO`), cut.
    pub first_arg: Option<String>,
    /// Arguments after the command word (the number of channels of `SUBSCRIBE`).
    pub arg_count: usize,
}
