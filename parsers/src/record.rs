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
    /// A database operation (MySQL/MariaDB, PostgreSQL, Redis, Cassandra).
    Db(DbRecord),
    /// A messaging operation (Kafka, NATS, AMQP 0-9-1).
    Messaging(MessagingRecord),
    /// A DNS query and its answer.
    Dns(DnsRecord),
    /// A remote procedure call (gRPC over HTTP/2).
    Rpc(RpcRecord),
}

/// Database system, as `db.system.name` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DbSystem {
    /// MySQL.
    MySql,
    /// MariaDB (told apart from MySQL by the server version in the handshake).
    MariaDb,
    /// PostgreSQL.
    PostgreSql,
    /// Redis (and compatible servers).
    Redis,
    /// Apache Cassandra (CQL native protocol).
    Cassandra,
}

impl DbSystem {
    /// The `db.system.name` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MySql => "mysql",
            Self::MariaDb => "mariadb",
            Self::PostgreSql => "postgresql",
            Self::Redis => "redis",
            Self::Cassandra => "cassandra",
        }
    }
}

/// Fields of one database operation (a request and its response).
#[derive(Clone, Debug, PartialEq)]
pub struct DbRecord {
    /// The database system.
    pub system: DbSystem,
    /// Operation: the SQL/CQL verb (`SELECT`, `INSERT`...), the Redis command (`GET`, `HSET`),
    /// or the protocol command when there is no statement (`PING`, `PREPARE`...).
    pub operation: Option<String>,
    /// The one table/collection the statement names, if exactly one.
    pub collection: Option<String>,
    /// Database, schema, keyspace, or Redis database index.
    pub namespace: Option<String>,
    /// Statement text as sent, raw. Exporters sanitise it (`crate::sql::sanitize`); for Redis
    /// only the command and key are kept, never values.
    pub query_text: Option<String>,
    /// Status code: SQLSTATE (PostgreSQL, MySQL), MySQL error number, Redis error prefix
    /// (`ERR`, `WRONGTYPE`), CQL error code (`0x2200`).
    pub status_code: Option<String>,
    /// Error message when the response is an error.
    pub error_message: Option<String>,
    /// Rows returned or affected, when the protocol says.
    pub rows: Option<u64>,
    /// Operations in one batch (pipeline batch, MULTI/EXEC, CQL BATCH), when batched.
    pub batch_size: Option<u64>,
    /// Server version from the handshake, when seen.
    pub server_version: Option<String>,
}

impl DbRecord {
    /// An empty record for `system`.
    pub fn new(system: DbSystem) -> Self {
        Self {
            system,
            operation: None,
            collection: None,
            namespace: None,
            query_text: None,
            status_code: None,
            error_message: None,
            rows: None,
            batch_size: None,
            server_version: None,
        }
    }

    /// Whether the response was an error.
    pub fn is_error(&self) -> bool {
        self.error_message.is_some()
            || self
                .status_code
                .as_deref()
                .is_some_and(|c| !c.starts_with("00"))
    }
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
    /// Request method as sent (`GET`, `POST`, ...); empty when it could not be decoded
    /// (HTTP/2 joined mid-stream: the HPACK dynamic table is unknown).
    pub method: String,
    /// Request target as sent (origin form `/p?q`, or absolute form for proxies; HTTP/2's
    /// `:path`); empty when it could not be decoded.
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

/// Messaging system, as `messaging.system.name` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessagingSystem {
    /// Apache Kafka (and compatible brokers).
    Kafka,
    /// NATS.
    Nats,
    /// RabbitMQ, or any AMQP 0-9-1 broker.
    RabbitMq,
}

impl MessagingSystem {
    /// The `messaging.system.name` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kafka => "kafka",
            Self::Nats => "nats",
            Self::RabbitMq => "rabbitmq",
        }
    }
}

/// What a messaging operation does: `messaging.operation.type`, which also picks the span kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessagingOperation {
    /// Messages handed to the broker (Kafka Produce, NATS PUB, AMQP Basic.Publish): PRODUCER.
    Send,
    /// Messages pulled from the broker (Kafka Fetch, AMQP Basic.Get): CONSUMER.
    Receive,
    /// Messages pushed by the broker and handled (NATS MSG, AMQP Basic.Deliver): CONSUMER.
    Process,
    /// Messages settled (Kafka OffsetCommit, AMQP Basic.Ack/Nack/Reject).
    Settle,
    /// Destinations or entities created (AMQP Queue.Declare, Exchange.Declare).
    Create,
    /// Any other protocol exchange (Kafka Metadata, Heartbeat; AMQP Connection methods;
    /// NATS CONNECT, SUB): a CLIENT span with no `messaging.operation.type`.
    Other,
}

impl MessagingOperation {
    /// The `messaging.operation.type` value, if the conventions define one.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Self::Send => Some("send"),
            Self::Receive => Some("receive"),
            Self::Process => Some("process"),
            Self::Settle => Some("settle"),
            Self::Create => Some("create"),
            Self::Other => None,
        }
    }
}

/// Fields of one messaging operation: a request and its response, or a one-way message
/// (NATS PUB/MSG, AMQP Basic.Publish/Deliver), whose record starts and ends at the message.
#[derive(Clone, Debug, PartialEq)]
pub struct MessagingRecord {
    /// The messaging system.
    pub system: MessagingSystem,
    /// What the operation does.
    pub operation: MessagingOperation,
    /// `messaging.operation.name`: the system's own name for it (`send`, `receive`, `publish`,
    /// `deliver`, `ack`, `metadata`, `heartbeat`...), lowercase.
    pub operation_name: String,
    /// Topic, subject, exchange or queue, when the operation names exactly one.
    pub destination: Option<String>,
    /// Kafka partition, when the operation names exactly one.
    pub partition: Option<i32>,
    /// AMQP routing key.
    pub routing_key: Option<String>,
    /// Kafka `client.id`, NATS `name` from CONNECT, AMQP consumer tag.
    pub client_id: Option<String>,
    /// Kafka consumer group.
    pub consumer_group: Option<String>,
    /// Messages in the operation, when it carries a batch (Kafka record counts).
    pub message_count: Option<u64>,
    /// Payload size in bytes of a single message (whether captured or not).
    pub body_size: Option<u64>,
    /// The error, when the response is one: Kafka error name (`UNKNOWN_TOPIC_OR_PARTITION`),
    /// AMQP reply code (`404`), NATS `-ERR` text. Becomes `error.type`.
    pub error_type: Option<String>,
    /// Human-readable error text, when the protocol gives one.
    pub error_message: Option<String>,
    /// W3C `traceparent` carried in the message headers (NATS HPUB/HMSG, AMQP headers).
    pub traceparent: Option<String>,
}

impl MessagingRecord {
    /// An empty record for `system`.
    pub fn new(system: MessagingSystem, operation: MessagingOperation, name: &str) -> Self {
        Self {
            system,
            operation,
            operation_name: name.to_string(),
            destination: None,
            partition: None,
            routing_key: None,
            client_id: None,
            consumer_group: None,
            message_count: None,
            body_size: None,
            error_type: None,
            error_message: None,
            traceparent: None,
        }
    }
}

/// How a DNS message travelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DnsTransport {
    /// One message per UDP datagram.
    Udp,
    /// Length-prefixed messages on a TCP stream.
    Tcp,
}

/// Fields of one DNS query and its response.
#[derive(Clone, Debug, PartialEq)]
pub struct DnsRecord {
    /// Transaction id.
    pub id: u16,
    /// The (first) question's name, without the trailing dot (`example.com`).
    pub question_name: String,
    /// The question's record type mnemonic (`A`, `AAAA`, `MX`, or `TYPE65` when unnamed).
    pub question_type: String,
    /// Response code mnemonic (`NOERROR`, `NXDOMAIN`, `SERVFAIL`...); `None` without a response.
    pub response_code: Option<String>,
    /// Answers in presentation form, in order (`93.184.216.34`, `CNAME www.example.net`).
    pub answers: Vec<String>,
    /// UDP or TCP.
    pub transport: DnsTransport,
    /// The DNS peer (the server for a client, the client for a server), when known.
    pub peer: Option<std::net::SocketAddr>,
}

impl DnsRecord {
    /// Whether the response reports a failure (anything but `NOERROR`), or none came.
    pub fn is_error(&self) -> bool {
        self.response_code.as_deref() != Some("NOERROR")
    }
}

/// RPC system, as `rpc.system.name` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RpcSystem {
    /// gRPC over HTTP/2.
    Grpc,
}

impl RpcSystem {
    /// The `rpc.system.name` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
        }
    }
}

/// Fields of one remote procedure call: a gRPC stream from its request headers to its
/// trailers (or reset), whatever the number of messages each way.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcRecord {
    /// The RPC system.
    pub system: RpcSystem,
    /// Fully qualified service (`helloworld.Greeter`), from `:path`; `None` if not decoded.
    pub service: Option<String>,
    /// Method (`SayHello`), from `:path`; `None` if not decoded.
    pub method: Option<String>,
    /// Status code (gRPC: `grpc-status`, 0 = OK), from the trailers or a trailers-only
    /// response, else derived from a reset or an HTTP status; `None` when nothing says.
    pub status_code: Option<u32>,
    /// Status message (gRPC: `grpc-message`, percent-decoded).
    pub status_message: Option<String>,
    /// Messages the client sent; `None` when a gap hid a message boundary.
    pub request_messages: Option<u64>,
    /// Messages the server sent; `None` when a gap hid a message boundary.
    pub response_messages: Option<u64>,
    /// `:authority`.
    pub authority: Option<String>,
    /// `user-agent` of the request.
    pub user_agent: Option<String>,
    /// W3C `traceparent` of the request, verbatim.
    pub traceparent: Option<String>,
    /// Request `content-type` (`application/grpc`, `application/grpc+proto`...).
    pub content_type: Option<String>,
    /// HTTP/2 response `:status`, when a response head came.
    pub http_status: Option<u16>,
    /// The stream was reset (RST_STREAM) before it ended normally.
    pub reset: bool,
    /// Part of the call was not captured (a gap, a capture cut short): fields that are
    /// `None` may have been sent, the status included.
    pub truncated: bool,
}

impl RpcRecord {
    /// Whether the call failed: a non-zero status, or no status at all although the whole
    /// call was seen.
    pub fn is_error(&self) -> bool {
        match self.status_code {
            Some(code) => code != 0,
            None => !self.truncated,
        }
    }

    /// The gRPC status name (`OK`, `NOT_FOUND`...) of [`status_code`](Self::status_code).
    pub fn status_name(&self) -> Option<&'static str> {
        self.status_code.map(grpc_status_name)
    }
}

/// The canonical name of gRPC status `code` (`UNKNOWN` past the defined ones).
pub fn grpc_status_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i))
        .copied()
        .unwrap_or("UNKNOWN")
}
