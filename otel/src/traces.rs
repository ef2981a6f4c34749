//! Observations → OTLP spans, one `ResourceSpans` per process.
//!
//! HTTP exchanges become SERVER or CLIENT spans named by their method and carrying the stable
//! HTTP semantic-convention attributes. A valid W3C `traceparent` on the request puts the span in
//! the caller's trace, as a child of the span that sent the header; otherwise the span starts a
//! new trace with a random id.
//!
//! Database operations become CLIENT spans (the traced process called the database) or SERVER
//! spans (the traced process is the database), named and attributed by the stable database
//! semantic conventions; `db.query.text` has its literals replaced by `?` unless
//! [`MappingOptions::raw_db_statements`] is set.
//!
//! Messaging operations become PRODUCER, CONSUMER or CLIENT spans by operation type (SERVER for
//! the broker), named `{messaging.operation.name} {destination}`; a `traceparent` carried in
//! the message is linked, and is the parent of sends, single-message process spans and broker
//! spans (details in `messaging_attrs`).
//!
//! gRPC calls become CLIENT or SERVER spans named by `rpc.method` (`service/method`), with
//! `rpc.system.name`, `rpc.status_code` and the message counts; a request
//! `traceparent` makes the server span the caller's child, as for HTTP (details in
//! `rpc_attrs`). HTTP/2 exchanges are HTTP spans with `network.protocol.version` `2`.
//!
//! DNS queries become CLIENT spans (the resolver) or SERVER spans (the DNS server) named
//! `DNS {question type}`, with `dns.question.name` and `dns.answers` (details in `dns_attrs`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::{Link, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, SpanFlags, Status};
use wirelens_parsers::{DbRecord, Detail, DnsRecord, HttpRecord, MessagingRecord, Role, RpcRecord};

use crate::{
    MappingOptions, Observation, ProcessInfo, db_attrs, dns_attrs, http_attrs, kv, messaging_attrs,
    redact, rpc_attrs, semconv,
};

/// One export request holding a span per observation, grouped by process: one
/// `ResourceSpans` per distinct [`ProcessInfo`], in order of first appearance. Default
/// [`MappingOptions`].
pub fn spans_request(obs: &[Observation]) -> ExportTraceServiceRequest {
    spans_request_with(obs, &MappingOptions::default())
}

/// [`spans_request`] with the given [`MappingOptions`].
pub fn spans_request_with(
    obs: &[Observation],
    options: &MappingOptions,
) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Arc<ProcessInfo>, Vec<Span>)> = Vec::new();
    let mut by_pid: HashMap<u32, Vec<usize>> = HashMap::new();
    for o in obs {
        let candidates = by_pid.entry(o.process.pid).or_default();
        let found = candidates.iter().copied().find(|&i| {
            let p = &groups[i].0;
            Arc::ptr_eq(p, &o.process) || **p == *o.process
        });
        let index = match found {
            Some(i) => i,
            None => {
                groups.push((Arc::clone(&o.process), Vec::new()));
                candidates.push(groups.len() - 1);
                groups.len() - 1
            }
        };
        groups[index].1.push(span_with(o, options));
    }
    let resource_spans = groups
        .into_iter()
        .map(|(process, spans)| ResourceSpans {
            resource: Some(process.to_resource()),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope()),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// The instrumentation scope of everything wirelens emits.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: semconv::SCOPE_NAME.to_owned(),
        version: semconv::VERSION.to_owned(),
        ..InstrumentationScope::default()
    }
}

/// The span for one observation, with default [`MappingOptions`].
pub fn span(obs: &Observation) -> Span {
    span_with(obs, &MappingOptions::default())
}

/// The span for one observation.
pub fn span_with(obs: &Observation, options: &MappingOptions) -> Span {
    let record = &obs.record;
    let mut span = Span {
        kind: match record.role {
            Role::Server => SpanKind::Server,
            Role::Client => SpanKind::Client,
        } as i32,
        start_time_unix_nano: record.start_ns,
        end_time_unix_nano: record.end_ns.max(record.start_ns),
        ..Span::default()
    };
    let parent = match &record.detail {
        Detail::Http(http) => {
            http_span(&mut span, record.role, http, obs);
            // A server's parent is the remote caller; a client's is the span in the same process
            // that sent the header.
            let remote = record.role == Role::Server;
            http.traceparent
                .as_deref()
                .and_then(parse_traceparent)
                .map(|p| (p, remote))
        }
        Detail::Db(db) => {
            db_span(&mut span, record.role, db, obs, options);
            None
        }
        Detail::Messaging(m) => messaging_span(&mut span, record.role, m, obs),
        Detail::Dns(dns) => {
            dns_span(&mut span, record.role, dns, obs);
            None
        }
        Detail::Rpc(rpc) => {
            rpc_span(&mut span, record.role, rpc, obs);
            let remote = record.role == Role::Server;
            rpc.traceparent
                .as_deref()
                .and_then(parse_traceparent)
                .map(|p| (p, remote))
        }
    };
    if let Some(peer) = &obs.peer_identity {
        peer.push_attributes(record.role, &mut span.attributes);
    }
    if obs.tls && !matches!(record.detail, Detail::Http(_)) {
        span.attributes
            .push(kv::string(semconv::TLS_PROTOCOL_NAME, semconv::TLS));
    }
    let links = obs.trace.as_deref();
    match (parent, links) {
        (Some((parent, remote)), _) => {
            span.trace_id = parent.trace_id.to_vec();
            span.parent_span_id = parent.parent_id.to_vec();
            span.flags = context_flags(parent.flags, remote);
        }
        (None, Some(links)) => {
            span.trace_id = links.trace_id.to_vec();
            if let Some(parent) = links.parent_span_id {
                span.parent_span_id = parent.to_vec();
            }
            // A parent in another process (the traced client of a server span) is remote.
            let remote = links.parent_span_id.is_some() && record.role == Role::Server;
            span.flags = context_flags(0x01, remote);
        }
        (None, None) => {
            span.trace_id = nonzero_id::<16>().to_vec();
            span.flags = context_flags(0x01, false);
        }
    }
    span.span_id = match links {
        Some(links) => links.span_id.to_vec(),
        None => nonzero_id::<8>().to_vec(),
    };
    span
}

/// The trace context a record carries on the wire and that [`span_with`] takes as the span's
/// parent: an HTTP or gRPC `traceparent`, or a message's creation context where the
/// messaging conventions make it the parent. `None` when there is none (or it is invalid).
pub fn wire_parent(record: &wirelens_parsers::Record) -> Option<TraceParent> {
    match &record.detail {
        Detail::Http(http) => http.traceparent.as_deref().and_then(parse_traceparent),
        Detail::Rpc(rpc) => rpc.traceparent.as_deref().and_then(parse_traceparent),
        Detail::Messaging(m) => match messaging_attrs::context_use(record.role, m) {
            messaging_attrs::ContextUse::Parent { .. } => {
                m.traceparent.as_deref().and_then(parse_traceparent)
            }
            messaging_attrs::ContextUse::Link => None,
        },
        Detail::Db(_) | Detail::Dns(_) => None,
    }
}

/// Whether the record's span has an error status (what [`span_with`] marks with `error.type`
/// and status `ERROR`): an HTTP 5xx (4xx too for a client), a gRPC error, a database or
/// messaging error, a DNS error code, or no response.
pub fn failed(record: &wirelens_parsers::Record) -> bool {
    match &record.detail {
        Detail::Http(http) => http_attrs::error_type(record.role, http.status).is_some(),
        Detail::Rpc(rpc) => rpc_attrs::error_type(record.role, rpc).is_some(),
        Detail::Db(db) => db_attrs::error_type(db).is_some(),
        Detail::Messaging(m) => messaging_attrs::error_type(m).is_some(),
        Detail::Dns(dns) => dns_attrs::error_type(record.role, dns).is_some(),
    }
}

/// OTLP span/link flags: the W3C trace flags, plus whether the context is remote.
fn context_flags(trace_flags: u8, remote: bool) -> u32 {
    let has_is_remote = SpanFlags::ContextHasIsRemoteMask as u32;
    let is_remote = if remote {
        SpanFlags::ContextIsRemoteMask as u32
    } else {
        0
    };
    u32::from(trace_flags) | has_is_remote | is_remote
}

fn http_span(span: &mut Span, role: Role, http: &HttpRecord, obs: &Observation) {
    let (method, original) = http_attrs::method(&http.method);
    span.name = if original.is_none() && method != semconv::HTTP_METHOD_OTHER {
        method.to_owned()
    } else {
        semconv::HTTP_SPAN_NAME_OTHER.to_owned()
    };
    let a = &mut span.attributes;
    a.push(kv::string(semconv::HTTP_REQUEST_METHOD, method));
    if let Some(original) = original {
        a.push(kv::string(semconv::HTTP_REQUEST_METHOD_ORIGINAL, original));
    }
    if let Some(status) = http.status {
        a.push(kv::int(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(status),
        ));
    }
    match role {
        // An empty target was not decoded (HTTP/2 joined mid-stream): no URL at all.
        Role::Server if http.target.is_empty() => {}
        Role::Client if http.target.is_empty() => {}
        Role::Server => {
            let (path, query) = http_attrs::split_target(&http.target);
            a.push(kv::string(semconv::URL_PATH, path));
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                a.push(kv::string(semconv::URL_QUERY, redact::redact_query(query)));
            }
            a.push(kv::string(
                semconv::URL_SCHEME,
                semconv::http_scheme(obs.tls),
            ));
            push_server(
                a,
                http_attrs::server_endpoint(http.host.as_deref(), obs.local),
            );
            if let Some(peer) = obs.peer {
                a.push(kv::string(semconv::CLIENT_ADDRESS, peer.ip().to_string()));
                a.push(kv::int(semconv::CLIENT_PORT, i64::from(peer.port())));
            }
        }
        Role::Client => {
            if let Some(url) =
                http_attrs::url_full(http.host.as_deref(), &http.target, obs.peer, obs.tls)
            {
                a.push(kv::string(semconv::URL_FULL, url));
            }
            push_server(
                a,
                http_attrs::server_endpoint(http.host.as_deref(), obs.peer),
            );
            push_peer(a, obs.peer);
        }
    }
    a.push(kv::string(
        semconv::NETWORK_PROTOCOL_NAME,
        semconv::PROTOCOL_HTTP,
    ));
    if let Some(version) = http.version {
        a.push(kv::string(
            semconv::NETWORK_PROTOCOL_VERSION,
            version.as_str(),
        ));
    }
    a.push(kv::string(
        semconv::NETWORK_TRANSPORT,
        semconv::TRANSPORT_TCP,
    ));
    if let Some(ua) = http.user_agent.as_deref().filter(|u| !u.is_empty()) {
        a.push(kv::string(semconv::USER_AGENT_ORIGINAL, ua));
    }
    if let Some(error) = http_attrs::error_type(role, http.status) {
        a.push(kv::string(semconv::ERROR_TYPE, error.as_ref()));
        let message = match http.status {
            Some(_) => String::new(),
            None => "no response".to_owned(),
        };
        span.status = Some(Status {
            message,
            code: StatusCode::Error as i32,
        });
    }
}

fn rpc_span(span: &mut Span, role: Role, rpc: &RpcRecord, obs: &Observation) {
    let method = rpc_attrs::method(rpc);
    span.name = method.to_string();
    let a = &mut span.attributes;
    a.push(kv::string(semconv::RPC_SYSTEM_NAME, rpc.system.as_str()));
    a.push(kv::string(semconv::RPC_METHOD, method));
    if let Some(status) = rpc.status_name() {
        a.push(kv::string(semconv::RPC_STATUS_CODE, status));
    }
    let endpoint = match role {
        Role::Server => obs.local,
        Role::Client => obs.peer,
    };
    push_server(
        a,
        http_attrs::server_endpoint(rpc.authority.as_deref(), endpoint),
    );
    if let Some(peer) = obs.peer
        && role == Role::Server
    {
        a.push(kv::string(semconv::CLIENT_ADDRESS, peer.ip().to_string()));
        a.push(kv::int(semconv::CLIENT_PORT, i64::from(peer.port())));
    }
    push_peer(a, obs.peer);
    a.push(kv::string(
        semconv::NETWORK_PROTOCOL_NAME,
        semconv::PROTOCOL_HTTP,
    ));
    a.push(kv::string(semconv::NETWORK_PROTOCOL_VERSION, "2"));
    a.push(kv::string(
        semconv::NETWORK_TRANSPORT,
        semconv::TRANSPORT_TCP,
    ));
    if let Some(n) = rpc.request_messages {
        a.push(kv::int(
            semconv::WIRELENS_RPC_REQUEST_MESSAGES,
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
    if let Some(n) = rpc.response_messages {
        a.push(kv::int(
            semconv::WIRELENS_RPC_RESPONSE_MESSAGES,
            i64::try_from(n).unwrap_or(i64::MAX),
        ));
    }
    if let Some(ua) = rpc.user_agent.as_deref().filter(|u| !u.is_empty()) {
        a.push(kv::string(semconv::USER_AGENT_ORIGINAL, ua));
    }
    if let Some(error) = rpc_attrs::error_type(role, rpc) {
        a.push(kv::string(semconv::ERROR_TYPE, error));
        span.status = Some(Status {
            message: rpc.status_message.clone().unwrap_or_default(),
            code: StatusCode::Error as i32,
        });
    }
}

fn db_span(
    span: &mut Span,
    role: Role,
    db: &DbRecord,
    obs: &Observation,
    options: &MappingOptions,
) {
    span.name = db_attrs::span_name(db);
    let a = &mut span.attributes;
    a.push(kv::string(semconv::DB_SYSTEM_NAME, db.system.as_str()));
    if let Some(operation) = db_attrs::operation(db) {
        a.push(kv::string(semconv::DB_OPERATION_NAME, operation));
    }
    if let Some(collection) = db_attrs::collection(db) {
        a.push(kv::string(semconv::DB_COLLECTION_NAME, collection));
    }
    if let Some(namespace) = db_attrs::namespace(db) {
        a.push(kv::string(semconv::DB_NAMESPACE, namespace));
    }
    if let Some(summary) = db_attrs::query_summary(db) {
        a.push(kv::string(semconv::DB_QUERY_SUMMARY, summary));
    }
    if let Some(text) = db_attrs::query_text(db, options.raw_db_statements) {
        a.push(kv::string(semconv::DB_QUERY_TEXT, text));
    }
    if let Some(code) = db_attrs::status_code(db) {
        a.push(kv::string(semconv::DB_RESPONSE_STATUS_CODE, code));
    }
    if let Some(rows) = db.rows {
        a.push(kv::int(
            semconv::DB_RESPONSE_RETURNED_ROWS,
            i64::try_from(rows).unwrap_or(i64::MAX),
        ));
    }
    if let Some(batch) = db.batch_size.filter(|&n| n >= 2) {
        a.push(kv::int(
            semconv::DB_OPERATION_BATCH_SIZE,
            i64::try_from(batch).unwrap_or(i64::MAX),
        ));
    }
    push_endpoints(
        a,
        db_attrs::server_endpoint(role, obs.local, obs.peer),
        obs.peer,
    );
    if let Some(error) = db_attrs::error_type(db) {
        a.push(kv::string(semconv::ERROR_TYPE, error.as_ref()));
        span.status = Some(Status {
            message: db.error_message.clone().unwrap_or_default(),
            code: StatusCode::Error as i32,
        });
    }
}

/// Fill a messaging span; returns the parent taken from the message's creation context, if
/// it is one (see [`messaging_attrs`] for the choices).
fn messaging_span(
    span: &mut Span,
    role: Role,
    m: &MessagingRecord,
    obs: &Observation,
) -> Option<(TraceParent, bool)> {
    span.kind = messaging_attrs::span_kind(role, m.operation) as i32;
    span.name = messaging_attrs::span_name(m);
    let a = &mut span.attributes;
    a.push(kv::string(
        semconv::MESSAGING_SYSTEM_NAME,
        m.system.as_str(),
    ));
    a.push(kv::string(
        semconv::MESSAGING_OPERATION_NAME,
        messaging_attrs::operation_name(m),
    ));
    if let Some(kind) = messaging_attrs::operation_type(m.operation) {
        a.push(kv::string(semconv::MESSAGING_OPERATION_TYPE, kind));
    }
    if let Some(destination) = messaging_attrs::destination(m) {
        a.push(kv::string(
            semconv::MESSAGING_DESTINATION_NAME,
            destination.name,
        ));
        if destination.anonymous {
            a.push(kv::bool(semconv::MESSAGING_DESTINATION_ANONYMOUS, true));
        }
        if destination.temporary {
            a.push(kv::bool(semconv::MESSAGING_DESTINATION_TEMPORARY, true));
        }
    }
    if let Some(partition) = messaging_attrs::partition_id(m) {
        a.push(kv::string(
            semconv::MESSAGING_DESTINATION_PARTITION_ID,
            partition,
        ));
    }
    if let Some(key) = messaging_attrs::routing_key(m) {
        a.push(kv::string(semconv::RABBITMQ_DESTINATION_ROUTING_KEY, key));
    }
    if let Some(client) = messaging_attrs::client_id(m) {
        a.push(kv::string(semconv::MESSAGING_CLIENT_ID, client));
    }
    if let Some(group) = messaging_attrs::consumer_group(m) {
        a.push(kv::string(semconv::MESSAGING_CONSUMER_GROUP_NAME, group));
    }
    if let Some(count) = messaging_attrs::batch_count(m) {
        a.push(kv::int(
            semconv::MESSAGING_BATCH_MESSAGE_COUNT,
            i64::try_from(count).unwrap_or(i64::MAX),
        ));
    }
    if let Some(size) = messaging_attrs::body_size(m) {
        a.push(kv::int(
            semconv::MESSAGING_MESSAGE_BODY_SIZE,
            i64::try_from(size).unwrap_or(i64::MAX),
        ));
    }
    push_endpoints(
        a,
        db_attrs::server_endpoint(role, obs.local, obs.peer),
        obs.peer,
    );
    a.push(kv::string(
        semconv::NETWORK_TRANSPORT,
        semconv::TRANSPORT_TCP,
    ));
    if let Some(error) = messaging_attrs::error_type(m) {
        a.push(kv::string(semconv::ERROR_TYPE, error.as_ref()));
        span.status = Some(Status {
            message: m.error_message.clone().unwrap_or_default(),
            code: StatusCode::Error as i32,
        });
    }
    let context = m.traceparent.as_deref().and_then(parse_traceparent)?;
    let (parent, remote) = match messaging_attrs::context_use(role, m) {
        messaging_attrs::ContextUse::Parent { remote } => (true, remote),
        messaging_attrs::ContextUse::Link => (false, true),
    };
    span.links.push(Link {
        trace_id: context.trace_id.to_vec(),
        span_id: context.parent_id.to_vec(),
        flags: context_flags(context.flags, remote),
        ..Link::default()
    });
    parent.then_some((context, remote))
}

/// Fill a DNS span (see [`dns_attrs`] for the choices).
fn dns_span(span: &mut Span, role: Role, dns: &DnsRecord, obs: &Observation) {
    span.name = dns_attrs::span_name(dns);
    let a = &mut span.attributes;
    if let Some(name) = dns_attrs::question_name(dns) {
        a.push(kv::string(semconv::DNS_QUESTION_NAME, name));
    }
    let answers = dns_attrs::answers(dns);
    if !answers.is_empty() {
        a.push(kv::string_array(semconv::DNS_ANSWERS, answers));
    }
    let peer = dns_attrs::peer(dns, obs.peer);
    let server = db_attrs::server_endpoint(role, obs.local, peer);
    push_endpoints(a, server, peer);
    if role == Role::Server
        && let Some(client) = peer
    {
        a.push(kv::string(semconv::CLIENT_ADDRESS, client.ip().to_string()));
        a.push(kv::int(semconv::CLIENT_PORT, i64::from(client.port())));
    }
    a.push(kv::string(
        semconv::NETWORK_TRANSPORT,
        dns_attrs::transport(dns),
    ));
    if let Some(error) = dns_attrs::error_type(role, dns) {
        a.push(kv::string(semconv::ERROR_TYPE, error));
        let message = match dns.response_code {
            Some(_) => error.to_owned(),
            None => "no response".to_owned(),
        };
        span.status = Some(Status {
            message,
            code: StatusCode::Error as i32,
        });
    }
}

/// `server.address`/`server.port` of `server`, `network.peer.address`/`port` of `peer`.
fn push_endpoints(a: &mut Vec<KeyValue>, server: Option<SocketAddr>, peer: Option<SocketAddr>) {
    if let Some(server) = server {
        a.push(kv::string(semconv::SERVER_ADDRESS, server.ip().to_string()));
        a.push(kv::int(semconv::SERVER_PORT, i64::from(server.port())));
    }
    push_peer(a, peer);
}

/// `network.peer.address`/`network.peer.port` of `peer`.
fn push_peer(a: &mut Vec<KeyValue>, peer: Option<SocketAddr>) {
    if let Some(peer) = peer {
        a.push(kv::string(
            semconv::NETWORK_PEER_ADDRESS,
            peer.ip().to_string(),
        ));
        a.push(kv::int(semconv::NETWORK_PEER_PORT, i64::from(peer.port())));
    }
}

fn push_server(a: &mut Vec<KeyValue>, server: Option<(String, Option<u16>)>) {
    if let Some((address, port)) = server {
        a.push(kv::string(semconv::SERVER_ADDRESS, address));
        if let Some(port) = port {
            a.push(kv::int(semconv::SERVER_PORT, i64::from(port)));
        }
    }
}

/// A parsed W3C `traceparent` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace id, not all zero.
    pub trace_id: [u8; 16],
    /// The span id of the caller, not all zero.
    pub parent_id: [u8; 8],
    /// Trace flags (bit 0: sampled).
    pub flags: u8,
}

/// Parse a version `00` W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, lowercase hex, ids
/// not all zero). Anything else is `None`.
pub fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || parts.next().is_some() {
        return None;
    }
    let trace_id: [u8; 16] = hex(trace)?;
    let parent_id: [u8; 8] = hex(parent)?;
    let [flags]: [u8; 1] = hex(flags)?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags,
    })
}

fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// A random trace (`N` = 16) or span (`N` = 8) id, never all zero.
pub fn nonzero_id<const N: usize>() -> [u8; N] {
    loop {
        let id: [u8; N] = rand::random();
        if id != [0; N] {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{
        attr_map, client_obs, db_obs, dns_obs, dns_record, http_mut, messaging_obs, process,
        server_obs,
    };
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use wirelens_parsers::{DbSystem, MessagingOperation, MessagingSystem};

    fn pairs(span: &Span) -> Vec<(String, String)> {
        assert_eq!(
            attr_map(&span.attributes).len(),
            span.attributes.len(),
            "no duplicate keys"
        );
        attr_map(&span.attributes).into_iter().collect()
    }

    fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const SELECT_RAW: &str = "SELECT name FROM users WHERE id = 42 AND name = 'bob'";
    const SELECT_SANITISED: &str = "SELECT name FROM users WHERE id = ? AND name = ?";

    fn postgres_select() -> DbRecord {
        let mut db = DbRecord::new(DbSystem::PostgreSql);
        db.operation = Some("SELECT".into());
        db.collection = Some("users".into());
        db.namespace = Some("shop".into());
        db.query_text = Some(SELECT_RAW.into());
        db.status_code = Some("00000".into());
        db.rows = Some(1);
        db.batch_size = Some(1);
        db
    }

    #[test]
    fn postgres_client_span() {
        let span = span(&db_obs(1, Role::Client, postgres_select()));
        assert_eq!(span.name, "SELECT users");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000_000, 3_000_000)
        );
        assert_eq!(span.status, None);
        assert_eq!(
            pairs(&span),
            owned(&[
                ("db.collection.name", "users"),
                ("db.namespace", "shop"),
                ("db.operation.name", "SELECT"),
                ("db.query.summary", "SELECT users"),
                ("db.query.text", SELECT_SANITISED),
                ("db.response.returned_rows", "1"),
                ("db.system.name", "postgresql"),
                ("network.peer.address", "10.0.0.3"),
                ("network.peer.port", "5432"),
                ("server.address", "10.0.0.3"),
                ("server.port", "5432"),
            ])
        );
    }

    fn grpc_obs(role: Role, status: Option<u32>) -> Observation {
        let mut obs = server_obs(1, "POST", "/", Some(200));
        obs.record.role = role;
        obs.record.protocol = wirelens_parsers::Protocol::Http2;
        obs.record.detail = Detail::Rpc(RpcRecord {
            system: wirelens_parsers::RpcSystem::Grpc,
            service: Some("wirelens.Echo".into()),
            method: Some("Missing".into()),
            status_code: status,
            status_message: Some("no such thing".into()),
            request_messages: Some(1),
            response_messages: Some(0),
            authority: Some("127.0.0.1:50051".into()),
            user_agent: None,
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            content_type: Some("application/grpc".into()),
            http_status: Some(200),
            reset: false,
            truncated: false,
        });
        obs
    }

    #[test]
    fn grpc_spans_by_role() {
        let client = span(&grpc_obs(Role::Client, Some(5)));
        assert_eq!(client.name, "wirelens.Echo/Missing");
        assert_eq!(client.kind, SpanKind::Client as i32);
        let attrs = attr_map(&client.attributes);
        assert_eq!(attrs["rpc.system.name"], "grpc");
        assert_eq!(attrs["rpc.method"], "wirelens.Echo/Missing");
        assert_eq!(attrs["rpc.status_code"], "NOT_FOUND");
        assert_eq!(attrs["error.type"], "NOT_FOUND");
        assert_eq!(attrs["server.address"], "127.0.0.1");
        assert_eq!(attrs["server.port"], "50051");
        assert_eq!(attrs["network.protocol.version"], "2");
        assert_eq!(attrs["wirelens.rpc.request.messages"], "1");
        let status = client.status.expect("an error");
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "no such thing");
        // NOT_FOUND is no server error; the caller's context is the server span's parent.
        let server = span(&grpc_obs(Role::Server, Some(5)));
        assert_eq!(server.kind, SpanKind::Server as i32);
        assert_eq!(server.status, None);
        assert!(!attr_map(&server.attributes).contains_key("error.type"));
        assert_eq!(
            server.parent_span_id,
            [0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
        );
        assert!(span(&grpc_obs(Role::Server, Some(13))).status.is_some());
    }

    #[test]
    fn tls_plaintext_is_https_or_marked() {
        let mut server = server_obs(1, "GET", "/a", Some(200));
        server.tls = true;
        let attrs = attr_map(&span(&server).attributes);
        assert_eq!(attrs["url.scheme"], "https");
        assert!(!attrs.contains_key("tls.protocol.name"));
        let mut client = client_obs(2, "GET", "/a", Some(200));
        client.tls = true;
        let attrs = attr_map(&span(&client).attributes);
        assert!(attrs["url.full"].starts_with("https://"), "{attrs:?}");
        let mut db = db_obs(1, Role::Client, postgres_select());
        db.tls = true;
        let attrs = attr_map(&span(&db).attributes);
        assert_eq!(attrs["tls.protocol.name"], "tls");
        let plain = attr_map(&span(&db_obs(1, Role::Client, postgres_select())).attributes);
        assert!(!plain.contains_key("tls.protocol.name"));
    }

    #[test]
    fn raw_db_statements_opt_in() {
        let obs = db_obs(1, Role::Client, postgres_select());
        let raw = MappingOptions {
            raw_db_statements: true,
        };
        let attrs = attr_map(&span_with(&obs, &raw).attributes);
        assert_eq!(attrs["db.query.text"], SELECT_RAW);
        let request = spans_request_with(std::slice::from_ref(&obs), &raw);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(attr_map(&span.attributes)["db.query.text"], SELECT_RAW);
        let request = spans_request(&[obs]);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            attr_map(&span.attributes)["db.query.text"],
            SELECT_SANITISED
        );
    }

    #[test]
    fn mysql_server_error_span() {
        let mut db = DbRecord::new(DbSystem::MySql);
        db.operation = Some("INSERT".into());
        db.collection = Some("orders".into());
        db.namespace = Some("shop".into());
        db.query_text = Some("INSERT INTO orders (id, note) VALUES (7, 'x')".into());
        db.status_code = Some("1146".into());
        db.error_message = Some("Table 'shop.orders' doesn't exist".into());
        db.batch_size = Some(3);
        let span = span(&db_obs(7, Role::Server, db));
        assert_eq!(span.name, "INSERT orders");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(
            span.status,
            Some(Status {
                message: "Table 'shop.orders' doesn't exist".into(),
                code: StatusCode::Error as i32,
            })
        );
        assert_eq!(
            pairs(&span),
            owned(&[
                ("db.collection.name", "orders"),
                ("db.namespace", "shop"),
                ("db.operation.batch.size", "3"),
                ("db.operation.name", "INSERT"),
                ("db.query.summary", "INSERT orders"),
                (
                    "db.query.text",
                    "INSERT INTO orders (id, note) VALUES (?, ?)"
                ),
                ("db.response.status_code", "1146"),
                ("db.system.name", "mysql"),
                ("error.type", "1146"),
                ("network.peer.address", "10.0.0.5"),
                ("network.peer.port", "40000"),
                ("server.address", "10.0.0.3"),
                ("server.port", "3306"),
            ])
        );
    }

    #[test]
    fn error_without_code_is_other() {
        let mut db = DbRecord::new(DbSystem::MariaDb);
        db.operation = Some("PING".into());
        db.error_message = Some("gone".into());
        let span = span(&db_obs(1, Role::Client, db));
        assert_eq!(span.name, "PING");
        let attrs = attr_map(&span.attributes);
        assert_eq!(attrs["error.type"], "_OTHER");
        assert!(!attrs.contains_key("db.response.status_code"));
        assert!(!attrs.contains_key("db.query.summary"));
        assert_eq!(span.status.map(|s| s.code), Some(StatusCode::Error as i32));
    }

    #[test]
    fn redis_span() {
        let mut db = DbRecord::new(DbSystem::Redis);
        db.operation = Some("SET".into());
        db.namespace = Some("2".into());
        db.query_text = Some("SET session:42".into());
        let span = span(&db_obs(3, Role::Client, db));
        assert_eq!(span.name, "SET");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.status, None);
        assert_eq!(
            pairs(&span),
            owned(&[
                ("db.namespace", "2"),
                ("db.operation.name", "SET"),
                ("db.query.text", "SET session:42"),
                ("db.system.name", "redis"),
                ("network.peer.address", "10.0.0.3"),
                ("network.peer.port", "6379"),
                ("server.address", "10.0.0.3"),
                ("server.port", "6379"),
            ])
        );

        let mut err = DbRecord::new(DbSystem::Redis);
        err.operation = Some("INCR".into());
        err.status_code = Some("WRONGTYPE".into());
        err.error_message =
            Some("WRONGTYPE Operation against a key holding the wrong kind of value".into());
        let attrs = attr_map(
            &span_with(&db_obs(3, Role::Client, err), &MappingOptions::default()).attributes,
        );
        assert_eq!(attrs["error.type"], "WRONGTYPE");
        assert_eq!(attrs["db.response.status_code"], "WRONGTYPE");
    }

    #[test]
    fn db_span_name_falls_back_to_system() {
        let span = span(&db_obs(1, Role::Client, DbRecord::new(DbSystem::Cassandra)));
        assert_eq!(span.name, "cassandra");
        assert_eq!(
            pairs(&span),
            owned(&[
                ("db.system.name", "cassandra"),
                ("network.peer.address", "10.0.0.3"),
                ("network.peer.port", "9042"),
                ("server.address", "10.0.0.3"),
                ("server.port", "9042"),
            ])
        );
    }

    #[test]
    fn server_span_attributes() {
        let obs = server_obs(1, "GET", "/api/items?id=7", Some(200));
        let span = span(&obs);
        assert_eq!(span.name, "GET");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000, 5_000)
        );
        assert_eq!(span.status, None);
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id.len(), 8);
        assert!(span.parent_span_id.is_empty());
        let attrs = attr_map(&span.attributes);
        let expected: Vec<(&str, &str)> = vec![
            ("client.address", "10.0.0.9"),
            ("client.port", "51000"),
            ("http.request.method", "GET"),
            ("http.response.status_code", "200"),
            ("network.protocol.name", "http"),
            ("network.protocol.version", "1.1"),
            ("network.transport", "tcp"),
            ("server.address", "api.local"),
            ("server.port", "8080"),
            ("url.path", "/api/items"),
            ("url.query", "id=7"),
            ("url.scheme", "http"),
            ("user_agent.original", "curl/8"),
        ];
        let got: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, expected);
        assert_eq!(span.attributes.len(), expected.len(), "no duplicate keys");
    }

    #[test]
    fn client_span_attributes() {
        let obs = client_obs(1, "POST", "/v1/x", Some(201));
        let span = span(&obs);
        assert_eq!(span.kind, SpanKind::Client as i32);
        let attrs = attr_map(&span.attributes);
        let got: Vec<(&str, &str)> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("http.request.method", "POST"),
                ("http.response.status_code", "201"),
                ("network.peer.address", "10.0.0.2"),
                ("network.peer.port", "80"),
                ("network.protocol.name", "http"),
                ("network.protocol.version", "1.1"),
                ("network.transport", "tcp"),
                ("server.address", "backend"),
                ("server.port", "80"),
                ("url.full", "http://backend/v1/x"),
                ("user_agent.original", "curl/8"),
            ]
        );
    }

    #[test]
    fn peer_identity_names_the_other_end_by_role() {
        let peer = Arc::new(crate::PeerIdentity {
            service_name: "api".into(),
            service_namespace: "shop".into(),
            attributes: vec![
                ("wirelens.peer.k8s.pod.name".into(), "api-1".into()),
                ("wirelens.peer.k8s.node.name".into(), String::new()),
            ],
        });
        let mut client = client_obs(1, "GET", "/", Some(200));
        client.peer_identity = Some(peer.clone());
        let attrs = attr_map(&span(&client).attributes);
        assert_eq!(attrs["server.service.name"], "api");
        assert_eq!(attrs["server.service.namespace"], "shop");
        assert_eq!(attrs["wirelens.peer.k8s.pod.name"], "api-1");
        assert_eq!(attrs["server.address"], "backend", "the address stays");
        assert!(
            !attrs.contains_key("wirelens.peer.k8s.node.name"),
            "empty left out"
        );
        assert!(!attrs.contains_key("client.service.name"));
        let mut server = server_obs(1, "GET", "/", Some(200));
        server.peer_identity = Some(peer);
        let attrs = attr_map(&span(&server).attributes);
        assert_eq!(attrs["client.service.name"], "api");
        assert_eq!(attrs["client.service.namespace"], "shop");
        assert!(!attrs.contains_key("server.service.name"));
    }

    #[test]
    fn client_without_host_uses_peer() {
        let mut obs = client_obs(1, "GET", "/", Some(200));
        http_mut(&mut obs).host = None;
        let attrs = attr_map(&span(&obs).attributes);
        assert_eq!(attrs["url.full"], "http://10.0.0.2:80/");
        assert_eq!(attrs["server.address"], "10.0.0.2");
        assert_eq!(attrs["server.port"], "80");
    }

    #[test]
    fn unknown_method() {
        let obs = server_obs(1, "PURGE", "/", Some(200));
        let span = span(&obs);
        assert_eq!(span.name, "HTTP");
        let attrs = attr_map(&span.attributes);
        assert_eq!(attrs["http.request.method"], "_OTHER");
        assert_eq!(attrs["http.request.method_original"], "PURGE");
    }

    #[test]
    fn error_status_rules() {
        let error = StatusCode::Error as i32;
        let cases = [
            (server_obs(1, "GET", "/", Some(404)), None),
            (server_obs(1, "GET", "/", Some(500)), Some("500")),
            (client_obs(1, "GET", "/", Some(404)), Some("404")),
            (client_obs(1, "GET", "/", Some(503)), Some("503")),
            (client_obs(1, "GET", "/", Some(200)), None),
            (server_obs(1, "GET", "/", None), Some("_OTHER")),
        ];
        for (obs, want) in cases {
            let span = span(&obs);
            let attrs = attr_map(&span.attributes);
            assert_eq!(attrs.get("error.type").map(String::as_str), want, "{obs:?}");
            assert_eq!(span.status.map(|s| s.code), want.map(|_| error), "{obs:?}");
        }
    }

    #[test]
    fn traceparent_sets_trace_and_parent() {
        let mut obs = server_obs(1, "GET", "/", Some(200));
        http_mut(&mut obs).traceparent =
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let span = span(&obs);
        assert_eq!(
            span.trace_id,
            hex::<16>("0af7651916cd43dd8448eb211c80319c").expect("hex")
        );
        assert_eq!(
            span.parent_span_id,
            hex::<8>("b7ad6b7169203331").expect("hex")
        );
        assert_ne!(span.span_id, span.parent_span_id);
        assert_eq!(span.flags, 0x301);
    }

    #[test]
    fn invalid_traceparents() {
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-ff",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
        let mut obs = client_obs(1, "GET", "/", Some(200));
        http_mut(&mut obs).traceparent = Some("garbage".into());
        let span = span(&obs);
        assert!(span.parent_span_id.is_empty());
        assert_ne!(span.trace_id, vec![0; 16]);
    }

    #[test]
    fn one_resource_spans_per_process() {
        let a = server_obs(1, "GET", "/", Some(200));
        let b = client_obs(2, "GET", "/", Some(200));
        let mut a2 = server_obs(1, "PUT", "/", Some(200));
        a2.process = Arc::new(process(1));
        let request = spans_request(&[a, b, a2]);
        assert_eq!(request.resource_spans.len(), 2);
        let pids: Vec<String> = request
            .resource_spans
            .iter()
            .map(|rs| {
                attr_map(&rs.resource.as_ref().expect("resource").attributes)["process.pid"].clone()
            })
            .collect();
        assert_eq!(pids, ["1", "2"]);
        let first = &request.resource_spans[0].scope_spans[0];
        assert_eq!(first.spans.len(), 2);
        assert_eq!(
            first.scope.as_ref().map(|s| s.name.as_str()),
            Some("wirelens")
        );
    }

    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn messaging(
        system: MessagingSystem,
        operation: MessagingOperation,
        name: &str,
        destination: Option<&str>,
    ) -> MessagingRecord {
        let mut m = MessagingRecord::new(system, operation, name);
        m.destination = destination.map(Into::into);
        m
    }

    /// A linked span id and the link's flags.
    type LinkedSpan = (Vec<u8>, u32);

    /// (parent span id, flags, linked span ids with their flags)
    fn context(span: &Span) -> (Vec<u8>, u32, Vec<LinkedSpan>) {
        let links = span
            .links
            .iter()
            .map(|l| {
                assert_eq!(
                    l.trace_id,
                    hex::<16>("0af7651916cd43dd8448eb211c80319c").expect("hex"),
                    "link to the message's trace"
                );
                (l.span_id.clone(), l.flags)
            })
            .collect();
        (span.parent_span_id.clone(), span.flags, links)
    }

    fn caller() -> Vec<u8> {
        hex::<8>("b7ad6b7169203331").expect("hex").to_vec()
    }

    #[test]
    fn kafka_produce_span() {
        let mut m = messaging(
            MessagingSystem::Kafka,
            MessagingOperation::Send,
            "produce",
            Some("orders"),
        );
        m.partition = Some(2);
        m.client_id = Some("svc-a".into());
        m.message_count = Some(1);
        m.body_size = Some(42);
        let span = span(&messaging_obs(1, Role::Client, m));
        assert_eq!(span.name, "produce orders");
        assert_eq!(span.kind, SpanKind::Producer as i32);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (2_000_000, 6_000_000)
        );
        assert_eq!(span.status, None);
        assert!(span.parent_span_id.is_empty() && span.links.is_empty());
        assert_eq!(
            pairs(&span),
            owned(&[
                ("messaging.client.id", "svc-a"),
                ("messaging.destination.name", "orders"),
                ("messaging.destination.partition.id", "2"),
                ("messaging.message.body.size", "42"),
                ("messaging.operation.name", "produce"),
                ("messaging.operation.type", "send"),
                ("messaging.system.name", "kafka"),
                ("network.peer.address", "10.0.0.4"),
                ("network.peer.port", "9092"),
                ("network.transport", "tcp"),
                ("server.address", "10.0.0.4"),
                ("server.port", "9092"),
            ])
        );
    }

    #[test]
    fn kafka_fetch_error_span() {
        let mut m = messaging(
            MessagingSystem::Kafka,
            MessagingOperation::Receive,
            "fetch",
            Some("orders"),
        );
        m.consumer_group = Some("billing".into());
        m.message_count = Some(5);
        m.body_size = Some(999);
        m.error_type = Some("UNKNOWN_TOPIC_OR_PARTITION".into());
        m.error_message = Some("This server does not host this topic-partition.".into());
        let span = span(&messaging_obs(1, Role::Client, m));
        assert_eq!(span.name, "fetch orders");
        assert_eq!(span.kind, SpanKind::Consumer as i32);
        assert_eq!(
            span.status,
            Some(Status {
                message: "This server does not host this topic-partition.".into(),
                code: StatusCode::Error as i32,
            })
        );
        let attrs = attr_map(&span.attributes);
        assert_eq!(attrs["error.type"], "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(attrs["messaging.consumer.group.name"], "billing");
        assert_eq!(attrs["messaging.batch.message_count"], "5");
        assert_eq!(attrs["messaging.operation.type"], "receive");
        assert!(
            !attrs.contains_key("messaging.message.body.size"),
            "no body size for a batch"
        );
    }

    #[test]
    fn nats_process_is_child_of_message_context() {
        let mut m = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Process,
            "msg",
            Some("orders.new"),
        );
        m.traceparent = Some(TRACEPARENT.into());
        m.body_size = Some(11);
        let span = span(&messaging_obs(2, Role::Client, m));
        assert_eq!(span.name, "msg orders.new");
        assert_eq!(span.kind, SpanKind::Consumer as i32);
        assert_eq!(
            span.trace_id,
            hex::<16>("0af7651916cd43dd8448eb211c80319c").expect("hex")
        );
        // Remote parent and a remote link to the same creation context.
        assert_eq!(context(&span), (caller(), 0x301, vec![(caller(), 0x301)]));
        assert_eq!(
            attr_map(&span.attributes)["messaging.operation.type"],
            "process"
        );
    }

    #[test]
    fn send_is_child_of_the_producing_span() {
        let mut m = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Send,
            "publish",
            Some("orders.new"),
        );
        m.traceparent = Some(TRACEPARENT.into());
        let span = span(&messaging_obs(2, Role::Client, m));
        assert_eq!(span.kind, SpanKind::Producer as i32);
        assert_eq!(context(&span), (caller(), 0x101, vec![(caller(), 0x101)]));
    }

    #[test]
    fn receive_and_batches_only_link() {
        let mut get = messaging(
            MessagingSystem::RabbitMq,
            MessagingOperation::Receive,
            "get",
            Some("jobs"),
        );
        get.traceparent = Some(TRACEPARENT.into());
        let mut batch = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Process,
            "msg",
            Some("a"),
        );
        batch.traceparent = Some(TRACEPARENT.into());
        batch.message_count = Some(3);
        for m in [get, batch] {
            let span = span(&messaging_obs(2, Role::Client, m));
            let (parent, flags, links) = context(&span);
            assert!(parent.is_empty());
            assert_eq!(flags, 0x101, "new trace, sampled");
            assert_eq!(links, vec![(caller(), 0x301)]);
        }
        let mut bad = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Process,
            "msg",
            None,
        );
        bad.traceparent = Some("garbage".into());
        let span = span(&messaging_obs(2, Role::Client, bad));
        assert!(span.parent_span_id.is_empty() && span.links.is_empty());
    }

    #[test]
    fn nats_reply_inbox_is_anonymous() {
        let m = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Send,
            "publish",
            Some("_INBOX.k3Jd.42"),
        );
        let span = span(&messaging_obs(2, Role::Client, m));
        assert_eq!(span.name, "publish");
        let attrs = attr_map(&span.attributes);
        assert_eq!(attrs["messaging.destination.name"], "_INBOX.k3Jd.42");
        assert_eq!(attrs["messaging.destination.anonymous"], "true");
        assert_eq!(attrs["messaging.destination.temporary"], "true");
    }

    #[test]
    fn rabbitmq_broker_span() {
        let mut m = messaging(
            MessagingSystem::RabbitMq,
            MessagingOperation::Send,
            "publish",
            Some("logs"),
        );
        m.routing_key = Some("warning".into());
        m.body_size = Some(5);
        m.traceparent = Some(TRACEPARENT.into());
        let span = span(&messaging_obs(9, Role::Server, m));
        assert_eq!(span.name, "publish logs:warning");
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(context(&span), (caller(), 0x301, vec![(caller(), 0x301)]));
        assert_eq!(
            pairs(&span),
            owned(&[
                ("messaging.destination.name", "logs:warning"),
                ("messaging.message.body.size", "5"),
                ("messaging.operation.name", "publish"),
                ("messaging.operation.type", "send"),
                ("messaging.system.name", "rabbitmq"),
                ("network.peer.address", "10.0.0.5"),
                ("network.peer.port", "40000"),
                ("network.transport", "tcp"),
                ("rabbitmq.destination.routing_key", "warning"),
                ("server.address", "10.0.0.4"),
                ("server.port", "5672"),
            ])
        );
    }

    #[test]
    fn amqp_queue_declare_has_no_operation_type() {
        let m = messaging(
            MessagingSystem::RabbitMq,
            MessagingOperation::Create,
            "queue.declare",
            Some("jobs"),
        );
        let span = span(&messaging_obs(9, Role::Client, m));
        assert_eq!(span.name, "queue.declare jobs");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert!(!attr_map(&span.attributes).contains_key("messaging.operation.type"));
    }

    fn string_array(span: &Span, key: &str) -> Option<Vec<String>> {
        let kv = span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            Value::ArrayValue(array) => Some(
                array
                    .values
                    .iter()
                    .map(|v| match &v.value {
                        Some(Value::StringValue(s)) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .collect(),
            ),
            _ => None,
        }
    }

    #[test]
    fn dns_client_span() {
        let mut dns = dns_record("www.example.com", "A", Some("NOERROR"));
        dns.answers = vec!["CNAME web.example.net".into(), "93.184.216.34".into()];
        let span = span(&dns_obs(4, Role::Client, dns));
        assert_eq!(span.name, "DNS A");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.status, None);
        assert_eq!(
            string_array(&span, "dns.answers"),
            Some(vec!["93.184.216.34".to_owned()])
        );
        let mut got = pairs(&span);
        got.retain(|(k, _)| k != "dns.answers");
        assert_eq!(
            got,
            owned(&[
                ("dns.question.name", "www.example.com"),
                ("network.peer.address", "10.0.0.53"),
                ("network.peer.port", "53"),
                ("network.transport", "udp"),
                ("server.address", "10.0.0.53"),
                ("server.port", "53"),
            ])
        );
    }

    #[test]
    fn dns_client_errors() {
        let error = StatusCode::Error as i32;
        let nx = span(&dns_obs(
            4,
            Role::Client,
            dns_record("nope.example", "AAAA", Some("NXDOMAIN")),
        ));
        assert_eq!(nx.name, "DNS AAAA");
        assert_eq!(attr_map(&nx.attributes)["error.type"], "NXDOMAIN");
        assert_eq!(
            nx.status,
            Some(Status {
                message: "NXDOMAIN".into(),
                code: error
            })
        );
        assert!(string_array(&nx, "dns.answers").is_none());
        let lost = span(&dns_obs(
            4,
            Role::Client,
            dns_record("slow.example", "A", None),
        ));
        assert_eq!(attr_map(&lost.attributes)["error.type"], "timeout");
        assert_eq!(
            lost.status,
            Some(Status {
                message: "no response".into(),
                code: error
            })
        );
    }

    #[test]
    fn dns_server_span() {
        let mut dns = dns_record("db.internal", "A", Some("NXDOMAIN"));
        dns.peer = "10.0.0.7:53001".parse().ok();
        dns.transport = wirelens_parsers::DnsTransport::Tcp;
        let span = span(&dns_obs(5, Role::Server, dns));
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(span.status, None, "NXDOMAIN is not the server's failure");
        assert_eq!(
            pairs(&span),
            owned(&[
                ("client.address", "10.0.0.7"),
                ("client.port", "53001"),
                ("dns.question.name", "db.internal"),
                ("network.peer.address", "10.0.0.7"),
                ("network.peer.port", "53001"),
                ("network.transport", "tcp"),
                ("server.address", "10.0.0.53"),
                ("server.port", "53"),
            ])
        );
        let fail = span_with(
            &dns_obs(
                5,
                Role::Server,
                dns_record("x.internal", "A", Some("SERVFAIL")),
            ),
            &MappingOptions::default(),
        );
        assert_eq!(attr_map(&fail.attributes)["error.type"], "SERVFAIL");
        assert_eq!(fail.status.map(|s| s.code), Some(StatusCode::Error as i32));
    }
}
