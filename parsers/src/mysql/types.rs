//! What MySQL framing and the command phase produce: packets, commands, session state. Data only.

use std::collections::HashMap;

use crate::record::DbSystem;

/// `CLIENT_CONNECT_WITH_DB`: the handshake response names the initial database.
pub const CLIENT_CONNECT_WITH_DB: u32 = 0x0000_0008;
/// `CLIENT_PROTOCOL_41`: 4.1 packets (SQLSTATE in ERR, status flags in OK/EOF).
pub const CLIENT_PROTOCOL_41: u32 = 0x0000_0200;
/// `CLIENT_SSL`: the client asks for TLS (a short SSLRequest, then the TLS handshake).
pub const CLIENT_SSL: u32 = 0x0000_0800;
/// `CLIENT_SECURE_CONNECTION`: auth data in the handshake response is length-prefixed.
pub const CLIENT_SECURE_CONNECTION: u32 = 0x0000_8000;
/// `CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA`: auth data is a length-encoded string.
pub const CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 0x0020_0000;
/// `CLIENT_QUERY_ATTRIBUTES` (MySQL 8.0.23+): COM_QUERY starts with parameter counts.
pub const CLIENT_QUERY_ATTRIBUTES: u32 = 0x0800_0000;
/// `CLIENT_DEPRECATE_EOF`: result sets end with an OK packet, no EOF after column definitions.
pub const CLIENT_DEPRECATE_EOF: u32 = 0x0100_0000;

/// `SERVER_MORE_RESULTS_EXISTS` in OK/EOF status flags: another result set follows.
pub const SERVER_MORE_RESULTS_EXISTS: u16 = 0x0008;

/// A packet payload of this length continues in the next packet.
pub const MAX_PHYSICAL: u32 = 0x00ff_ffff;

/// Command bytes (the first payload byte of a packet with sequence id 0 from the client).
pub mod cmd {
    /// COM_QUIT: no response.
    pub const QUIT: u8 = 0x01;
    /// COM_INIT_DB: change the default database.
    pub const INIT_DB: u8 = 0x02;
    /// COM_QUERY: a text statement.
    pub const QUERY: u8 = 0x03;
    /// COM_FIELD_LIST (deprecated): column definitions then EOF.
    pub const FIELD_LIST: u8 = 0x04;
    /// COM_REFRESH.
    pub const REFRESH: u8 = 0x07;
    /// COM_STATISTICS: answered by a bare string.
    pub const STATISTICS: u8 = 0x09;
    /// COM_PROCESS_KILL.
    pub const PROCESS_KILL: u8 = 0x0c;
    /// COM_DEBUG.
    pub const DEBUG: u8 = 0x0d;
    /// COM_PING.
    pub const PING: u8 = 0x0e;
    /// COM_CHANGE_USER: re-authentication.
    pub const CHANGE_USER: u8 = 0x11;
    /// COM_BINLOG_DUMP: replication stream.
    pub const BINLOG_DUMP: u8 = 0x12;
    /// COM_REGISTER_SLAVE.
    pub const REGISTER_SLAVE: u8 = 0x15;
    /// COM_STMT_PREPARE.
    pub const STMT_PREPARE: u8 = 0x16;
    /// COM_STMT_EXECUTE.
    pub const STMT_EXECUTE: u8 = 0x17;
    /// COM_STMT_SEND_LONG_DATA: no response.
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    /// COM_STMT_CLOSE: no response.
    pub const STMT_CLOSE: u8 = 0x19;
    /// COM_STMT_RESET.
    pub const STMT_RESET: u8 = 0x1a;
    /// COM_SET_OPTION.
    pub const SET_OPTION: u8 = 0x1b;
    /// COM_STMT_FETCH: rows of an open cursor.
    pub const STMT_FETCH: u8 = 0x1c;
    /// COM_BINLOG_DUMP_GTID: replication stream.
    pub const BINLOG_DUMP_GTID: u8 = 0x1e;
    /// COM_RESET_CONNECTION.
    pub const RESET_CONNECTION: u8 = 0x1f;
}

/// One logical packet (physical packets of 16 MiB - 1 joined), as framed.
#[derive(Clone, Debug, PartialEq)]
pub struct Packet {
    /// Sequence id of the first physical packet.
    pub seq: u8,
    /// Payload length, including bytes not captured or not kept.
    pub len: u64,
    /// The first payload bytes, up to the limit asked for; shorter than `len` when the rest was
    /// not kept (a counted row) or not captured.
    pub body: Vec<u8>,
    /// Bytes on the wire: headers and payload.
    pub wire_len: u64,
    /// When the first header byte was moved.
    pub start_ns: u64,
    /// When the last payload byte was moved.
    pub end_ns: u64,
}

impl Packet {
    /// Whether `body` holds the whole payload.
    pub fn whole(&self) -> bool {
        self.body.len() as u64 == self.len
    }

    /// An EOF packet, or an OK packet with the `0xfe` header that ends a result set with
    /// `CLIENT_DEPRECATE_EOF`: `0xfe` and shorter than 16 MiB - 1 (a row starting with `0xfe`
    /// announces a column of 16 MiB or more, so it is at least that long).
    pub fn is_eof(&self) -> bool {
        self.body.first() == Some(&0xfe) && self.len < u64::from(MAX_PHYSICAL)
    }

    /// An ERR packet (`0xff`).
    pub fn is_err(&self) -> bool {
        self.body.first() == Some(&0xff)
    }
}

/// One step of framing in one direction.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A complete packet.
    Packet(Packet),
    /// Sync was lost: the packet in progress is gone and whole packets may be missing.
    Lost,
}

/// What a command asks for, as far as records and responses care.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// COM_QUERY with its statement text.
    Query(String),
    /// COM_STMT_PREPARE with its statement text.
    Prepare(String),
    /// COM_STMT_EXECUTE of a statement id.
    Execute(u32),
    /// COM_INIT_DB to a database.
    InitDb(String),
    /// COM_FIELD_LIST: definitions until EOF.
    FieldList,
    /// COM_STMT_FETCH: rows of an open cursor until EOF.
    Fetch,
    /// Any other command answered by one packet; its name is the record's operation.
    Simple(&'static str),
}

/// A command sent, waiting for or receiving its response.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// What was asked.
    pub command: Command,
    /// The default database when it was sent.
    pub namespace: Option<String>,
    /// When its first byte was moved.
    pub start_ns: u64,
    /// Its bytes on the wire.
    pub wire_len: u64,
}

/// What the connection has told about itself: from the handshake, or learned on the way.
#[derive(Clone, Debug, Default)]
pub struct Session {
    /// Capabilities both sides agreed on; `None` when the handshake was not seen.
    pub caps: Option<u32>,
    /// Whether result sets end without an EOF after definitions (`None`: not known yet).
    pub deprecate_eof: Option<bool>,
    /// MariaDB, as the server version said.
    pub mariadb: bool,
    /// Server version from the handshake.
    pub server_version: Option<String>,
    /// The default database.
    pub namespace: Option<String>,
    /// Prepared statements: id → SQL.
    pub statements: HashMap<u32, String>,
}

impl Session {
    /// The database system for records.
    pub fn system(&self) -> DbSystem {
        if self.mariadb {
            DbSystem::MariaDb
        } else {
            DbSystem::MySql
        }
    }

    /// Whether capability `flag` was negotiated (`None` when not known).
    pub fn has(&self, flag: u32) -> Option<bool> {
        self.caps.map(|c| c & flag != 0)
    }
}
