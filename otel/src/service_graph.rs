//! Service graph metrics: request counts and durations per (client, server) edge, from the
//! pairs of spans the agent's trace-context stage connected, in the shape Grafana's service
//! graph and node graph read (the names and labels of Tempo's metrics generator).
//!
//! - `traces_service_graph_request_total` and `traces_service_graph_request_failed_total`
//!   (monotonic sums), `traces_service_graph_request_server_seconds` and
//!   `traces_service_graph_request_client_seconds` (histograms, the HTTP duration buckets).
//! - Labels: `client`, `server` (the `service.name` of each side), `connection_type`, and
//!   `client_service_namespace` / `server_service_namespace` when the side has one.
//! - `connection_type` is empty for two traced processes talking a request/response protocol,
//!   `database` for a database client, `messaging_system` for a messaging client, and
//!   `virtual_node` for an edge to or from a peer that is not traced, which is then named by its
//!   address (`ip:port` as a server, `ip` as a client, whose port is ephemeral).
//! - A failed request is one where either span has an error status.
//!
//! Every series sits under the agent's own Resource. The number of edges is bounded: past
//! [`MAX_EDGES`] new edges go to one overflow edge labelled `otel.metric.overflow=true`.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    metric::Data, number_data_point,
};

use crate::{kv, semconv};

/// Most edges kept; the rest share one overflow edge.
pub const MAX_EDGES: usize = 2_000;

/// How the two ends of an edge talk (the `connection_type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConnectionType {
    /// Two traced processes (the label is empty).
    Direct,
    /// One side is not traced: it is named by its address.
    VirtualNode,
    /// A database client and its server.
    Database,
    /// A messaging client and its broker.
    MessagingSystem,
}

impl ConnectionType {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "",
            Self::VirtualNode => "virtual_node",
            Self::Database => "database",
            Self::MessagingSystem => "messaging_system",
        }
    }
}

/// One request between a client and a server, as counted on the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Edge {
    /// The client's `service.name`, or the untraced client's IP address.
    pub client: String,
    /// The server's `service.name`, or the untraced server's `ip:port`.
    pub server: String,
    /// The client's `service.namespace`, when known.
    pub client_namespace: Option<String>,
    /// The server's `service.namespace`, when known.
    pub server_namespace: Option<String>,
    /// How they talk.
    pub connection_type: ConnectionType,
    /// The client span's duration, when the client is traced.
    pub client_seconds: Option<f64>,
    /// The server span's duration, when the server is traced.
    pub server_seconds: Option<f64>,
    /// Either span has an error status.
    pub failed: bool,
}

/// Labels of one edge series.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EdgeKey {
    Edge {
        client: String,
        server: String,
        connection_type: ConnectionType,
        client_namespace: Option<String>,
        server_namespace: Option<String>,
    },
    Overflow,
}

#[derive(Clone, Debug)]
struct Hist {
    count: u64,
    sum: f64,
    buckets: Vec<u64>,
}

impl Hist {
    fn new() -> Self {
        Self {
            count: 0,
            sum: 0.0,
            buckets: vec![0; semconv::DURATION_BUCKETS.len() + 1],
        }
    }

    fn add(&mut self, seconds: f64) {
        let i = semconv::DURATION_BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(semconv::DURATION_BUCKETS.len());
        self.buckets[i] += 1;
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Clone, Debug)]
struct EdgeSeries {
    start_ns: u64,
    total: u64,
    failed: u64,
    client: Hist,
    server: Hist,
}

/// Cumulative service graph series.
#[derive(Debug, Default)]
pub struct ServiceGraph {
    edges: BTreeMap<EdgeKey, EdgeSeries>,
    overflowed: u64,
}

impl ServiceGraph {
    /// Count one request on its edge.
    pub fn add(&mut self, edge: &Edge, now_ns: u64) {
        let mut key = EdgeKey::Edge {
            client: edge.client.clone(),
            server: edge.server.clone(),
            connection_type: edge.connection_type,
            client_namespace: edge.client_namespace.clone(),
            server_namespace: edge.server_namespace.clone(),
        };
        let regular = self.edges.len() - usize::from(self.edges.contains_key(&EdgeKey::Overflow));
        if !self.edges.contains_key(&key) && regular >= MAX_EDGES {
            self.overflowed += 1;
            key = EdgeKey::Overflow;
        }
        let series = self.edges.entry(key).or_insert_with(|| EdgeSeries {
            start_ns: now_ns,
            total: 0,
            failed: 0,
            client: Hist::new(),
            server: Hist::new(),
        });
        series.total += 1;
        series.failed += u64::from(edge.failed);
        if let Some(s) = edge.client_seconds {
            series.client.add(s);
        }
        if let Some(s) = edge.server_seconds {
            series.server.add(s);
        }
    }

    /// Whether no edge was counted yet.
    pub fn is_empty(&self) -> bool {
        self.edges.is_empty()
    }

    /// Requests that went to the overflow edge.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// The four metrics as of `now_ns` (none when no edge was counted).
    pub fn metrics(&self, now_ns: u64) -> Vec<Metric> {
        if self.edges.is_empty() {
            return Vec::new();
        }
        let cumulative = AggregationTemporality::Cumulative as i32;
        let counter = |name: &str, description: &str, value: fn(&EdgeSeries) -> u64| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: semconv::UNIT_REQUESTS.to_owned(),
            data: Some(Data::Sum(Sum {
                data_points: self
                    .edges
                    .iter()
                    .map(|(key, s)| NumberDataPoint {
                        attributes: labels(key),
                        start_time_unix_nano: s.start_ns,
                        time_unix_nano: now_ns.max(s.start_ns),
                        value: Some(number_data_point::Value::AsInt(
                            i64::try_from(value(s)).unwrap_or(i64::MAX),
                        )),
                        ..NumberDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: cumulative,
                is_monotonic: true,
            })),
            ..Metric::default()
        };
        let histogram = |name: &str, description: &str, hist: fn(&EdgeSeries) -> &Hist| Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: semconv::UNIT_SECONDS.to_owned(),
            data: Some(Data::Histogram(Histogram {
                data_points: self
                    .edges
                    .iter()
                    .filter(|(_, s)| hist(s).count > 0)
                    .map(|(key, s)| HistogramDataPoint {
                        attributes: labels(key),
                        start_time_unix_nano: s.start_ns,
                        time_unix_nano: now_ns.max(s.start_ns),
                        count: hist(s).count,
                        sum: Some(hist(s).sum),
                        bucket_counts: hist(s).buckets.clone(),
                        explicit_bounds: semconv::DURATION_BUCKETS.to_vec(),
                        ..HistogramDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            })),
            ..Metric::default()
        };
        let mut metrics = vec![
            counter(
                semconv::SERVICE_GRAPH_REQUEST_TOTAL,
                "Requests between two services.",
                |s| s.total,
            ),
            counter(
                semconv::SERVICE_GRAPH_REQUEST_FAILED_TOTAL,
                "Failed requests between two services.",
                |s| s.failed,
            ),
            histogram(
                semconv::SERVICE_GRAPH_REQUEST_SERVER_SECONDS,
                "Request duration as the server saw it.",
                |s| &s.server,
            ),
            histogram(
                semconv::SERVICE_GRAPH_REQUEST_CLIENT_SECONDS,
                "Request duration as the client saw it.",
                |s| &s.client,
            ),
        ];
        metrics.retain(|m| match &m.data {
            Some(Data::Histogram(h)) => !h.data_points.is_empty(),
            _ => true,
        });
        metrics
    }
}

fn labels(key: &EdgeKey) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    match key {
        EdgeKey::Overflow => vec![kv::bool(semconv::OTEL_METRIC_OVERFLOW, true)],
        EdgeKey::Edge {
            client,
            server,
            connection_type,
            client_namespace,
            server_namespace,
        } => {
            let mut a = vec![
                kv::string(semconv::SERVICE_GRAPH_CLIENT, client.as_str()),
                kv::string(semconv::SERVICE_GRAPH_SERVER, server.as_str()),
                kv::string(
                    semconv::SERVICE_GRAPH_CONNECTION_TYPE,
                    connection_type.as_str(),
                ),
            ];
            if let Some(ns) = client_namespace {
                a.push(kv::string(
                    semconv::SERVICE_GRAPH_CLIENT_NAMESPACE,
                    ns.as_str(),
                ));
            }
            if let Some(ns) = server_namespace {
                a.push(kv::string(
                    semconv::SERVICE_GRAPH_SERVER_NAMESPACE,
                    ns.as_str(),
                ));
            }
            a
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(client: &str, server: &str, failed: bool) -> Edge {
        Edge {
            client: client.into(),
            server: server.into(),
            client_namespace: None,
            server_namespace: Some("shop".into()),
            connection_type: ConnectionType::Direct,
            client_seconds: Some(0.02),
            server_seconds: Some(0.01),
            failed,
        }
    }

    fn int(m: &Metric, i: usize) -> i64 {
        match &m.data {
            Some(Data::Sum(s)) => match s.data_points[i].value {
                Some(number_data_point::Value::AsInt(v)) => v,
                _ => panic!("not an int"),
            },
            _ => panic!("not a sum"),
        }
    }

    #[test]
    fn counts_requests_failures_and_durations_per_edge() {
        let mut g = ServiceGraph::default();
        assert!(g.metrics(1).is_empty());
        g.add(&edge("nginx", "app", false), 1);
        g.add(&edge("nginx", "app", true), 2);
        g.add(&edge("app", "postgres", false), 3);
        let m = g.metrics(10);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "traces_service_graph_request_total",
                "traces_service_graph_request_failed_total",
                "traces_service_graph_request_server_seconds",
                "traces_service_graph_request_client_seconds",
            ]
        );
        // Sorted by client: app → postgres first.
        assert_eq!((int(&m[0], 0), int(&m[0], 1)), (1, 2));
        assert_eq!((int(&m[1], 0), int(&m[1], 1)), (0, 1));
        let Some(Data::Sum(s)) = &m[0].data else {
            panic!()
        };
        let keys: Vec<&str> = s.data_points[1]
            .attributes
            .iter()
            .map(|kv| kv.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "client",
                "server",
                "connection_type",
                "server_service_namespace"
            ]
        );
        let Some(Data::Histogram(h)) = &m[3].data else {
            panic!()
        };
        assert_eq!(h.data_points[1].count, 2);
    }

    #[test]
    fn edges_past_the_cap_share_the_overflow_edge() {
        let mut g = ServiceGraph::default();
        for i in 0..MAX_EDGES + 5 {
            g.add(&edge(&format!("c{i}"), "s", false), 1);
        }
        assert_eq!(g.overflowed(), 5);
        let m = g.metrics(2);
        let Some(Data::Sum(s)) = &m[0].data else {
            panic!()
        };
        assert_eq!(s.data_points.len(), MAX_EDGES + 1);
        let overflow = s
            .data_points
            .iter()
            .find(|p| {
                p.attributes
                    .iter()
                    .any(|kv| kv.key == "otel.metric.overflow")
            })
            .map(|p| p.value);
        assert_eq!(overflow, Some(Some(number_data_point::Value::AsInt(5))));
    }
}
