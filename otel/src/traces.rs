//! Observations → OTLP spans, one `ResourceSpans` per process.
//!
//! HTTP exchanges become SERVER or CLIENT spans named by their method and carrying the stable
//! HTTP semantic-convention attributes. A valid W3C `traceparent` on the request puts the span in
//! the caller's trace, as a child of the span that sent the header; otherwise the span starts a
//! new trace with a random id.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, SpanFlags, Status};
use wirelens_parsers::{Detail, HttpRecord, Role};

use crate::{Observation, ProcessInfo, http_attrs, kv, redact, semconv};

/// One export request holding a span per observation, grouped by process: one
/// `ResourceSpans` per distinct [`ProcessInfo`], in order of first appearance.
pub fn spans_request(obs: &[Observation]) -> ExportTraceServiceRequest {
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
        groups[index].1.push(span(o));
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

/// The span for one observation.
pub fn span(obs: &Observation) -> Span {
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
            http.traceparent.as_deref().and_then(parse_traceparent)
        }
        Detail::Db(db) => {
            span.name = db
                .operation
                .clone()
                .unwrap_or_else(|| db.system.as_str().to_owned());
            None
        }
    };
    let has_is_remote = SpanFlags::ContextHasIsRemoteMask as u32;
    match parent {
        Some(parent) => {
            span.trace_id = parent.trace_id.to_vec();
            span.parent_span_id = parent.parent_id.to_vec();
            // A server's parent is the remote caller; a client's is the span in the same process
            // that sent the header.
            let remote = match record.role {
                Role::Server => SpanFlags::ContextIsRemoteMask as u32,
                Role::Client => 0,
            };
            span.flags = u32::from(parent.flags) | has_is_remote | remote;
        }
        None => {
            span.trace_id = nonzero_id::<16>().to_vec();
            span.flags = 0x01 | has_is_remote;
        }
    }
    span.span_id = nonzero_id::<8>().to_vec();
    span
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
        Role::Server => {
            let (path, query) = http_attrs::split_target(&http.target);
            a.push(kv::string(semconv::URL_PATH, path));
            if let Some(query) = query.filter(|q| !q.is_empty()) {
                a.push(kv::string(semconv::URL_QUERY, redact::redact_query(query)));
            }
            a.push(kv::string(semconv::URL_SCHEME, semconv::SCHEME_HTTP));
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
            if let Some(url) = http_attrs::url_full(http.host.as_deref(), &http.target, obs.peer) {
                a.push(kv::string(semconv::URL_FULL, url));
            }
            push_server(
                a,
                http_attrs::server_endpoint(http.host.as_deref(), obs.peer),
            );
            if let Some(peer) = obs.peer {
                a.push(kv::string(
                    semconv::NETWORK_PEER_ADDRESS,
                    peer.ip().to_string(),
                ));
                a.push(kv::int(semconv::NETWORK_PEER_PORT, i64::from(peer.port())));
            }
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

fn nonzero_id<const N: usize>() -> [u8; N] {
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
    use crate::test_util::{attr_map, client_obs, http_mut, process, server_obs};

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
}
