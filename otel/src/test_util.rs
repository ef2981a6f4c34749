//! Builders and readers shared by the unit tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
use wirelens_parsers::{
    DbRecord, DbSystem, Detail, DnsRecord, DnsTransport, HttpRecord, HttpVersion, MessagingRecord,
    MessagingSystem, Protocol, Record, Role,
};

use crate::{Observation, ProcessInfo};

/// Attributes as key → value text (ints in decimal), sorted by key.
pub(crate) fn attr_map(attrs: &[KeyValue]) -> BTreeMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

pub(crate) fn process(pid: u32) -> ProcessInfo {
    ProcessInfo {
        pid,
        executable_name: format!("exe{pid}"),
        executable_path: None,
        command_line: format!("exe{pid} --flag"),
        service_name: format!("svc{pid}"),
        host_name: "host".into(),
        container: None,
        pod: None,
    }
}

fn obs(pid: u32, role: Role, method: &str, target: &str, status: Option<u16>) -> Observation {
    let (local, peer, host) = match role {
        Role::Server => ("10.0.0.1:8080", "10.0.0.9:51000", "api.local:8080"),
        Role::Client => ("10.0.0.5:40000", "10.0.0.2:80", "backend"),
    };
    Observation {
        record: Record {
            protocol: Protocol::Http1,
            role,
            start_ns: 1_000,
            end_ns: 5_000,
            request_bytes: 100,
            response_bytes: 200,
            detail: Detail::Http(HttpRecord {
                method: method.into(),
                target: target.into(),
                version: Some(HttpVersion::Http11),
                status,
                host: Some(host.into()),
                user_agent: Some("curl/8".into()),
                ..HttpRecord::default()
            }),
        },
        process: Arc::new(process(pid)),
        local: local.parse().ok(),
        peer: peer.parse().ok(),
        tls: false,
        trace: None,
        peer_identity: None,
    }
}

pub(crate) fn server_obs(pid: u32, method: &str, target: &str, status: Option<u16>) -> Observation {
    obs(pid, Role::Server, method, target, status)
}

pub(crate) fn client_obs(pid: u32, method: &str, target: &str, status: Option<u16>) -> Observation {
    obs(pid, Role::Client, method, target, status)
}

pub(crate) fn http_mut(obs: &mut Observation) -> &mut HttpRecord {
    match &mut obs.record.detail {
        Detail::Http(h) => h,
        _ => panic!("not an HTTP observation"),
    }
}

/// A database operation of `system` seen from `role`: the client at 10.0.0.5:40000, the
/// database at 10.0.0.3 on the system's default port; 1 ms to 3 ms.
pub(crate) fn db_obs(pid: u32, role: Role, db: DbRecord) -> Observation {
    let (protocol, port) = match db.system {
        DbSystem::MySql | DbSystem::MariaDb => (Protocol::MySql, 3306),
        DbSystem::PostgreSql => (Protocol::Postgres, 5432),
        DbSystem::Redis => (Protocol::Redis, 6379),
        DbSystem::Cassandra => (Protocol::Cassandra, 9042),
    };
    let client = "10.0.0.5:40000".parse().ok();
    let server = format!("10.0.0.3:{port}").parse().ok();
    let (local, peer) = match role {
        Role::Client => (client, server),
        Role::Server => (server, client),
    };
    Observation {
        record: Record {
            protocol,
            role,
            start_ns: 1_000_000,
            end_ns: 3_000_000,
            request_bytes: 50,
            response_bytes: 80,
            detail: Detail::Db(db),
        },
        process: Arc::new(process(pid)),
        local,
        peer,
        tls: false,
        trace: None,
        peer_identity: None,
    }
}

/// A messaging operation of `m.system` seen from `role`: the client at 10.0.0.5:40000, the
/// broker at 10.0.0.4 on the system's default port; 2 ms to 6 ms.
pub(crate) fn messaging_obs(pid: u32, role: Role, m: MessagingRecord) -> Observation {
    let (protocol, port) = match m.system {
        MessagingSystem::Kafka => (Protocol::Kafka, 9092),
        MessagingSystem::Nats => (Protocol::Nats, 4222),
        MessagingSystem::RabbitMq => (Protocol::Amqp, 5672),
    };
    let client = "10.0.0.5:40000".parse().ok();
    let broker = format!("10.0.0.4:{port}").parse().ok();
    let (local, peer) = match role {
        Role::Client => (client, broker),
        Role::Server => (broker, client),
    };
    Observation {
        record: Record {
            protocol,
            role,
            start_ns: 2_000_000,
            end_ns: 6_000_000,
            request_bytes: 60,
            response_bytes: 30,
            detail: Detail::Messaging(m),
        },
        process: Arc::new(process(pid)),
        local,
        peer,
        tls: false,
        trace: None,
        peer_identity: None,
    }
}

/// A DNS record for `name`/`qtype` with response code `rcode` and no answers, over UDP with no
/// peer of its own.
pub(crate) fn dns_record(name: &str, qtype: &str, rcode: Option<&str>) -> DnsRecord {
    DnsRecord {
        id: 7,
        question_name: name.into(),
        question_type: qtype.into(),
        response_code: rcode.map(Into::into),
        answers: Vec::new(),
        transport: DnsTransport::Udp,
        peer: None,
    }
}

/// A DNS query seen from `role`: the resolver at 10.0.0.5:45000, the server at 10.0.0.53:53;
/// 1 ms to 21 ms. The connection addresses are unset for an unconnected UDP server socket.
pub(crate) fn dns_obs(pid: u32, role: Role, dns: DnsRecord) -> Observation {
    let resolver = "10.0.0.5:45000".parse().ok();
    let server = "10.0.0.53:53".parse().ok();
    let (local, peer) = match role {
        Role::Client => (resolver, server),
        Role::Server => (server, None),
    };
    Observation {
        record: Record {
            protocol: Protocol::Dns,
            role,
            start_ns: 1_000_000,
            end_ns: 21_000_000,
            request_bytes: 40,
            response_bytes: 56,
            detail: Detail::Dns(dns),
        },
        process: Arc::new(process(pid)),
        local,
        peer,
        tls: false,
        trace: None,
        peer_identity: None,
    }
}
