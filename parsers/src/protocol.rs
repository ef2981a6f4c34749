//! The protocol registry: the one place a protocol is added (`Protocol`, [`infer`], [`new_parser`]).

use crate::{
    Direction, Parser, amqp, cassandra, dns, http1, http2, kafka, mysql, nats, postgres,
    record::Role, redis,
};

/// Every protocol wirelens can parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.0 and HTTP/1.1.
    Http1,
    /// HTTP/2 (prior knowledge, `Upgrade: h2c`, or TLS with ALPN `h2`), and gRPC on it.
    Http2,
    /// MySQL / MariaDB client/server protocol.
    MySql,
    /// PostgreSQL frontend/backend protocol v3.
    Postgres,
    /// Redis RESP2/RESP3.
    Redis,
    /// Cassandra CQL native protocol v3–v5.
    Cassandra,
    /// Kafka wire protocol.
    Kafka,
    /// NATS client protocol.
    Nats,
    /// AMQP 0-9-1 (RabbitMQ).
    Amqp,
    /// DNS over UDP or TCP.
    Dns,
}

impl Protocol {
    /// Every protocol, in inference order.
    pub const ALL: &'static [Protocol] = &[
        Protocol::Http1,
        Protocol::Http2,
        Protocol::MySql,
        Protocol::Postgres,
        Protocol::Redis,
        Protocol::Cassandra,
        Protocol::Kafka,
        Protocol::Nats,
        Protocol::Amqp,
        Protocol::Dns,
    ];

    /// Short lowercase name for output and counters.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http1 => "http1",
            Protocol::Http2 => "http2",
            Protocol::MySql => "mysql",
            Protocol::Postgres => "postgres",
            Protocol::Redis => "redis",
            Protocol::Cassandra => "cassandra",
            Protocol::Kafka => "kafka",
            Protocol::Nats => "nats",
            Protocol::Amqp => "amqp",
            Protocol::Dns => "dns",
        }
    }

    /// Parse a name as given on the command line.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(name))
    }
}

/// A protocol's opinion of the first bytes of one direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inference {
    /// The protocol.
    pub protocol: Protocol,
    /// 0–100: how sure. 100 is reserved for unmistakable openings (e.g. an HTTP request line).
    pub confidence: u8,
    /// The role of the process that sent these bytes, if they tell it (request vs response).
    pub sender_role: Option<Role>,
}

/// Ask every protocol about the first bytes seen in `dir`; the most confident answer wins.
pub fn infer(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    let candidates = [
        http1::infer(dir, bytes),
        http2::infer(dir, bytes),
        mysql::infer(dir, bytes),
        postgres::infer(dir, bytes),
        redis::infer(dir, bytes),
        cassandra::infer(dir, bytes),
        kafka::infer(dir, bytes),
        nats::infer(dir, bytes),
        amqp::infer(dir, bytes),
        dns::infer(dir, bytes),
    ];
    candidates
        .into_iter()
        .flatten()
        .max_by_key(|i| i.confidence)
}

/// Ask the datagram protocols about the first datagram seen in `dir` of a UDP socket.
pub fn infer_datagram(dir: Direction, bytes: &[u8]) -> Option<Inference> {
    dns::infer_datagram(dir, bytes)
}

/// A fresh parser for `protocol`.
pub fn new_parser(protocol: Protocol) -> Box<dyn Parser> {
    match protocol {
        // An HTTP/1 connection may upgrade to h2c; the parser follows it.
        Protocol::Http1 => Box::new(http2::H2cUpgrade::new()),
        Protocol::Http2 => Box::new(http2::Http2Parser::new()),
        Protocol::MySql => Box::new(mysql::MySqlParser::new()),
        Protocol::Postgres => Box::new(postgres::PostgresParser::new()),
        Protocol::Redis => Box::new(redis::RedisParser::new()),
        Protocol::Cassandra => Box::new(cassandra::CassandraParser::new()),
        Protocol::Kafka => Box::new(kafka::KafkaParser::new()),
        Protocol::Nats => Box::new(nats::NatsParser::new()),
        Protocol::Amqp => Box::new(amqp::AmqpParser::new()),
        Protocol::Dns => Box::new(dns::DnsParser::new()),
    }
}
