//! Records and profiles to OTLP: semantic-convention names, one Resource per process, gRPC and
//! HTTP exporters.
//!
//! The agent wraps each parsed [`Record`](wirelens_parsers::Record) in an [`Observation`] (the
//! record plus the process and socket addresses it came from) and hands it to an
//! [`export::ObservationSender`]. From there everything is asynchronous and may drop, counting
//! what it drops: spans are batched and sent as OTLP traces, durations are aggregated into
//! semantic-convention histograms and sent as OTLP metrics, each under the Resource of the
//! process that made the exchange.
//!
//! The conversion is pure ([`traces::spans_request`], [`metrics::MetricsAggregator`]) and kept
//! apart from the transport ([`export`]), so it is tested without a network.
//!
//! Not here: reading `/proc` or Kubernetes for process metadata (the agent fills
//! [`ProcessInfo`]), parsing bytes (the `parsers` crate).
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use wirelens_otel::{Observation, ProcessInfo, traces::spans_request};
//! use wirelens_parsers::{Detail, HttpRecord, Protocol, Record, Role};
//!
//! let process = Arc::new(ProcessInfo {
//!     pid: 42,
//!     executable_name: "nginx".into(),
//!     service_name: "nginx".into(),
//!     host_name: "host-1".into(),
//!     ..ProcessInfo::default()
//! });
//! let record = Record {
//!     protocol: Protocol::Http1,
//!     role: Role::Server,
//!     start_ns: 1_000,
//!     end_ns: 2_000,
//!     request_bytes: 40,
//!     response_bytes: 20,
//!     detail: Detail::Http(HttpRecord {
//!         method: "GET".into(),
//!         target: "/hello".into(),
//!         status: Some(200),
//!         ..HttpRecord::default()
//!     }),
//! };
//! let obs = Observation {
//!     record, process, local: None, peer: None, tls: false, trace: None, peer_identity: None,
//! };
//! let request = spans_request(&[obs]);
//! assert_eq!(request.resource_spans.len(), 1);
//! assert_eq!(request.resource_spans[0].scope_spans[0].spans[0].name, "GET");
//! ```
#![deny(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

mod db_attrs;
mod dns_attrs;
pub mod export;
mod http_attrs;
pub mod jvm_metrics;
mod kv;
pub mod logs;
mod messaging_attrs;
pub mod metrics;
pub mod net_metrics;
pub mod peer;
pub mod profiles;
pub mod prometheus;
pub mod redact;
pub mod resource;
pub mod resource_metrics;
mod rpc_attrs;
pub mod semconv;
pub mod service_graph;
#[cfg(test)]
mod test_util;
pub mod traces;

pub use peer::PeerIdentity;
pub use resource::{ContainerInfo, PodInfo, ProcessInfo};

/// One parsed exchange, with where it happened.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// What the parser produced.
    pub record: wirelens_parsers::Record,
    /// The traced process that took part in it.
    pub process: Arc<ProcessInfo>,
    /// The traced process's end of the connection, when known.
    pub local: Option<SocketAddr>,
    /// The other end of the connection, when known.
    pub peer: Option<SocketAddr>,
    /// The bytes were TLS plaintext (read through the OpenSSL probes): `url.scheme` is
    /// `https`, and other protocols carry `tls.protocol.name`.
    pub tls: bool,
    /// Who the other end is, when the agent knows it (a pod or a Service of the cluster):
    /// `server.service.*` on a client span, `client.service.*` on a server span.
    pub peer_identity: Option<Arc<PeerIdentity>>,
    /// Ids given by the agent's trace-context stage (the span's own id, its trace and its
    /// parent in the same or another traced process), and the service-graph edge it closes.
    /// `None`: the exporter gives the span a fresh id and trace (or the wire's `traceparent`).
    pub trace: Option<Box<TraceLinks>>,
}

/// Where a span sits in a trace, as the agent's trace-context stage decided, and the
/// service-graph edge whose second span it is.
///
/// A `traceparent` read from the wire still wins over `trace_id` and `parent_span_id` when the
/// span is mapped; the stage gives such a span the wire's trace id, so its children agree.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceLinks {
    /// The trace.
    pub trace_id: [u8; 16],
    /// The span's own id.
    pub span_id: [u8; 8],
    /// The parent span, in this process or in the traced peer; `None` for a root.
    pub parent_span_id: Option<[u8; 8]>,
    /// The service-graph edge this span completes, if any (see [`service_graph`]).
    pub edge: Option<service_graph::Edge>,
}

/// Choices in how records become telemetry.
///
/// [`traces::spans_request_with`] and [`traces::span_with`] take them; the exporter reads them
/// from [`export::ExportConfig::mapping`] (environment: `WIRELENS_RAW_DB_STATEMENTS`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingOptions {
    /// Export `db.query.text` as the statement was sent, literals and all. Off by default:
    /// SQL and CQL statements have their literals replaced by `?`
    /// ([`wirelens_parsers::sql::sanitize`]). Literals can hold personal data and secrets; only
    /// turn this on where the backend may see them.
    pub raw_db_statements: bool,
}

/// Now, in nanoseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
