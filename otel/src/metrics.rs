//! Observations → cumulative OTLP metrics: semantic-convention duration histograms per process,
//! and the agent's own counters.
//!
//! HTTP exchanges go to `http.{server,client}.request.duration`, database operations to
//! `db.client.operation.duration` (the traced process called the database) or
//! `wirelens.db.server.operation.duration` (the traced process is the database), the latter with the
//! client metric's attributes and buckets. Messaging operations the traced process started as
//! a client go to `messaging.client.operation.duration` (not `process` deliveries: their
//! handling time is not on the wire; not the broker's side: no convention), DNS lookups of a
//! resolver to `dns.lookup.duration`; both with the conventions' default buckets.
//!
//! Only low-cardinality attributes go on metrics (no `url.path`, no client addresses, no
//! `db.query.text`), and the number of series is bounded two ways:
//!
//! - **Series of processes that are gone are dropped after their last export.** A Resource
//!   whose [`ProcessInfo`] nobody else holds any more (the agent's process cache let it go
//!   after the exit, its connections are closed, no observation of it is queued: no new point
//!   can come) is marked at one [`MetricsAggregator::retire`] and removed at the next, so its
//!   final values were exported (and scrapable) for one whole interval.
//! - **Past the cap, new series go to one overflow series per metric**, under the agent's own
//!   Resource, with the single attribute `otel.metric.overflow=true`, as the OpenTelemetry
//!   metrics SDK specification describes for its cardinality limit: nothing observed is lost
//!   from the totals. The cap counts regular series; the overflow series (at most one per
//!   metric name) come on top of it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use wirelens_parsers::{
    DbRecord, Detail, DnsRecord, HttpRecord, MessagingOperation, MessagingRecord, Role, RpcRecord,
};

use crate::service_graph::ServiceGraph;
use crate::{
    Observation, ProcessInfo, db_attrs, dns_attrs, http_attrs, kv, messaging_attrs, rpc_attrs,
    semconv,
};

/// Default cap on the number of histogram series kept.
pub const DEFAULT_MAX_SERIES: usize = 10_000;

/// An attribute value as kept in a series key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// Attributes of one series, in the order they are added (fixed per metric).
type AttrSet = Vec<(&'static str, AttrValue)>;

/// One histogram series.
#[derive(Clone, Debug)]
struct Series {
    start_ns: u64,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
    /// Explicit bucket boundaries, fixed per metric.
    bounds: &'static [f64],
    /// One count per boundary, plus the overflow bucket.
    buckets: Vec<u64>,
}

impl Series {
    fn new(start_ns: u64, bounds: &'static [f64]) -> Self {
        Self {
            start_ns,
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            bounds,
            buckets: vec![0; bounds.len() + 1],
        }
    }

    /// Add one value. Buckets are upper-inclusive: `(bounds[i-1], bounds[i]]`.
    fn add(&mut self, seconds: f64) {
        let index = self
            .bounds
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[index] += 1;
        self.count += 1;
        self.sum += seconds;
        self.min = self.min.min(seconds);
        self.max = self.max.max(seconds);
    }
}

/// One monotonic counter of the agent.
#[derive(Clone, Copy, Debug)]
struct Counter {
    start_ns: u64,
    value: u64,
}

/// Everything aggregated under one Resource.
#[derive(Debug)]
struct ResourceEntry {
    process: Arc<ProcessInfo>,
    histograms: BTreeMap<(&'static str, AttrSet), Series>,
    counters: BTreeMap<&'static str, Counter>,
    /// Values that go up and down (the agent's own: tracked connections, queued bytes).
    gauges: BTreeMap<&'static str, i64>,
    /// Nobody else held the process at the last [`MetricsAggregator::retire`].
    gone: bool,
}

impl ResourceEntry {
    fn new(process: Arc<ProcessInfo>) -> Self {
        Self {
            process,
            histograms: BTreeMap::new(),
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
            gone: false,
        }
    }
}

/// The agent's own Resource: its counters and the overflow series; never retired.
const AGENT: u64 = 0;

/// Cumulative metrics for every process seen, plus the agent's own counters.
///
/// Keyed by (process Resource, metric name, attribute set); each series keeps the start time of
/// its first observation for its whole life.
#[derive(Debug)]
pub struct MetricsAggregator {
    /// By id, in order of arrival; [`AGENT`] is the agent's own Resource.
    resources: BTreeMap<u64, ResourceEntry>,
    next_id: u64,
    by_pid: HashMap<u32, Vec<u64>>,
    series: usize,
    max_series: usize,
    overflow: u64,
    created_ns: u64,
    /// Added to the agent's own Resource (`OTEL_RESOURCE_ATTRIBUTES`), replacing its own.
    agent_attributes: Vec<(String, String)>,
    /// Service graph edges, under the agent's own Resource.
    service_graph: ServiceGraph,
}

impl MetricsAggregator {
    /// An empty aggregator; `agent` is the Resource of the agent's own counters.
    /// Series are capped at [`DEFAULT_MAX_SERIES`].
    pub fn new(agent: ProcessInfo) -> Self {
        Self::with_max_series(agent, DEFAULT_MAX_SERIES)
    }

    /// An empty aggregator keeping at most `max_series` histogram series.
    pub fn with_max_series(agent: ProcessInfo, max_series: usize) -> Self {
        let agent = Arc::new(agent);
        let mut by_pid = HashMap::new();
        by_pid.insert(agent.pid, vec![AGENT]);
        Self {
            resources: BTreeMap::from([(AGENT, ResourceEntry::new(agent))]),
            next_id: AGENT + 1,
            by_pid,
            series: 0,
            max_series,
            overflow: 0,
            created_ns: crate::unix_now_ns(),
            agent_attributes: Vec::new(),
            service_graph: ServiceGraph::default(),
        }
    }

    /// String attributes for the agent's own Resource, on top of (and replacing) those its
    /// [`ProcessInfo`] gives.
    pub fn set_agent_attributes(&mut self, attributes: Vec<(String, String)>) {
        self.agent_attributes = attributes;
    }

    /// Add one observation's duration to its series. Returns `false` (and counts an overflow)
    /// when it needed a new series past the cap: it went to the metric's overflow series
    /// instead. `true` also when the observation has no metric (messaging `process` and
    /// server-side messaging and DNS).
    pub fn record(&mut self, obs: &Observation) -> bool {
        if let Some(edge) = obs.trace.as_ref().and_then(|t| t.edge.as_ref()) {
            self.service_graph.add(edge, obs.record.end_ns);
        }
        let series = match &obs.record.detail {
            Detail::Http(http) => Some(http_series(obs, http)),
            Detail::Db(db) => Some(db_series(obs, db)),
            Detail::Messaging(m) => messaging_series(obs, m),
            Detail::Dns(dns) => dns_series(obs, dns),
            Detail::Rpc(rpc) => Some(rpc_series(obs, rpc)),
        };
        // Some observations have no metric: nothing to record is not an overflow.
        let Some((name, attrs)) = series else {
            return true;
        };
        let seconds = obs.record.end_ns.saturating_sub(obs.record.start_ns) as f64 / 1e9;
        let found = self.find(&obs.process);
        if let Some(r) = found.and_then(|id| self.resources.get_mut(&id))
            && !Arc::ptr_eq(&r.process, &obs.process)
        {
            // An equal process handed out anew (the agent re-read it): follow the one in use,
            // so that retiring sees whether that one is still held.
            r.process = Arc::clone(&obs.process);
        }
        let key = (name, attrs);
        if let Some(r) = found.and_then(|id| self.resources.get_mut(&id))
            && let Some(series) = r.histograms.get_mut(&key)
        {
            series.add(seconds);
            // A late point: out for a whole interval again before the series may go.
            r.gone = false;
            return true;
        }
        if self.series >= self.max_series {
            self.overflow += 1;
            let key = (
                name,
                vec![(semconv::OTEL_METRIC_OVERFLOW, AttrValue::Bool(true))],
            );
            if let Some(agent) = self.resources.get_mut(&AGENT) {
                agent
                    .histograms
                    .entry(key)
                    .or_insert_with(|| Series::new(obs.record.start_ns, bounds(name)))
                    .add(seconds);
            }
            return false;
        }
        let id = match found {
            Some(id) => id,
            None => self.insert(Arc::clone(&obs.process)),
        };
        let mut series = Series::new(obs.record.start_ns, bounds(key.0));
        series.add(seconds);
        if let Some(r) = self.resources.get_mut(&id) {
            r.histograms.insert(key, series);
            r.gone = false;
            self.series += 1;
        }
        true
    }

    /// Drop the series of processes that are gone, once their final values have been out for
    /// an interval; call right after each export. A Resource whose [`ProcessInfo`] only this
    /// aggregator still holds is marked now and removed at the next call (if still unheld):
    /// the exports in between carry its final values. Returns the series removed.
    pub fn retire(&mut self) -> usize {
        let mut removed = Vec::new();
        for (&id, r) in self.resources.iter_mut() {
            if id == AGENT {
                continue;
            }
            let held_elsewhere = Arc::strong_count(&r.process) > 1;
            if held_elsewhere {
                r.gone = false;
            } else if r.gone {
                removed.push(id);
            } else {
                r.gone = true;
            }
        }
        let mut series = 0;
        for id in removed {
            let Some(r) = self.resources.remove(&id) else {
                continue;
            };
            series += r.histograms.len();
            if let Some(ids) = self.by_pid.get_mut(&r.process.pid) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.by_pid.remove(&r.process.pid);
                }
            }
        }
        self.series -= series;
        series
    }

    /// Set the agent's own monotonic counters to these cumulative values. A counter that goes
    /// down starts a new series (its start time moves to now).
    pub fn set_agent_counters(&mut self, counters: &[(&'static str, u64)]) {
        let created = self.created_ns;
        let Some(agent) = self.resources.get_mut(&AGENT) else {
            return;
        };
        let agent = &mut agent.counters;
        for &(name, value) in counters {
            let counter = agent.entry(name).or_insert(Counter {
                start_ns: created,
                value,
            });
            if value < counter.value {
                counter.start_ns = crate::unix_now_ns();
            }
            counter.value = value;
        }
    }

    /// Set the agent's own gauges (values now, not cumulative) by name; gauges not named keep
    /// their last value.
    pub fn set_agent_gauges(&mut self, gauges: &[(&'static str, i64)]) {
        let Some(agent) = self.resources.get_mut(&AGENT) else {
            return;
        };
        for &(name, value) in gauges {
            agent.gauges.insert(name, value);
        }
    }

    /// Observations that went to an overflow series because the series cap was reached.
    pub fn overflowed(&self) -> u64 {
        self.overflow
    }

    /// Regular histogram series currently kept (overflow series not counted).
    pub fn series(&self) -> usize {
        self.series
    }

    /// Every series as of `now_ns`: one `ResourceMetrics` per Resource that has any.
    pub fn export_request(&self, now_ns: u64) -> ExportMetricsServiceRequest {
        let resource_metrics = self
            .resources
            .iter()
            .filter(|(id, r)| {
                !r.histograms.is_empty()
                    || !r.counters.is_empty()
                    || !r.gauges.is_empty()
                    || (**id == AGENT && !self.service_graph.is_empty())
            })
            .map(|(&id, r)| ResourceMetrics {
                resource: Some(self.resource(id, r)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(crate::traces::scope()),
                    metrics: {
                        let mut metrics = resource_metrics(r, now_ns);
                        if id == AGENT {
                            metrics.extend(self.service_graph.metrics(now_ns));
                        }
                        metrics
                    },
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            })
            .collect();
        ExportMetricsServiceRequest { resource_metrics }
    }

    fn resource(&self, id: u64, r: &ResourceEntry) -> Resource {
        let mut resource = r.process.to_resource();
        if id == AGENT {
            for (key, value) in &self.agent_attributes {
                resource.attributes.retain(|kv| kv.key != *key);
                resource.attributes.push(kv::string(key, value.as_str()));
            }
        }
        resource
    }

    fn find(&self, process: &Arc<ProcessInfo>) -> Option<u64> {
        self.by_pid.get(&process.pid)?.iter().copied().find(|id| {
            self.resources
                .get(id)
                .is_some_and(|r| Arc::ptr_eq(&r.process, process) || *r.process == **process)
        })
    }

    fn insert(&mut self, process: Arc<ProcessInfo>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.by_pid.entry(process.pid).or_default().push(id);
        self.resources.insert(id, ResourceEntry::new(process));
        id
    }
}

/// Metric name and attributes of an HTTP exchange.
fn http_series(obs: &Observation, http: &HttpRecord) -> (&'static str, AttrSet) {
    use AttrValue::{Int, Str};
    let role = obs.record.role;
    let mut attrs: AttrSet = Vec::with_capacity(7);
    attrs.push((
        semconv::HTTP_REQUEST_METHOD,
        Str(http_attrs::method(&http.method).0.to_owned()),
    ));
    if let Some(status) = http.status {
        attrs.push((semconv::HTTP_RESPONSE_STATUS_CODE, Int(i64::from(status))));
    }
    let name = match role {
        Role::Server => {
            attrs.push((
                semconv::URL_SCHEME,
                Str(semconv::http_scheme(obs.tls).to_owned()),
            ));
            attrs.push((
                semconv::NETWORK_PROTOCOL_NAME,
                Str(semconv::PROTOCOL_HTTP.to_owned()),
            ));
            semconv::HTTP_SERVER_REQUEST_DURATION
        }
        Role::Client => {
            if let Some((address, port)) =
                http_attrs::server_endpoint(http.host.as_deref(), obs.peer)
            {
                attrs.push((semconv::SERVER_ADDRESS, Str(address)));
                if let Some(port) = port {
                    attrs.push((semconv::SERVER_PORT, Int(i64::from(port))));
                }
            }
            attrs.push((
                semconv::URL_SCHEME,
                Str(semconv::http_scheme(obs.tls).to_owned()),
            ));
            semconv::HTTP_CLIENT_REQUEST_DURATION
        }
    };
    if let Some(version) = http.version {
        attrs.push((
            semconv::NETWORK_PROTOCOL_VERSION,
            Str(version.as_str().to_owned()),
        ));
    }
    if let Some(error) = http_attrs::error_type(role, http.status) {
        attrs.push((semconv::ERROR_TYPE, Str(error.into_owned())));
    }
    (name, attrs)
}

/// Metric name and attributes of a database operation: `db.client.operation.duration` with the
/// conventions' attributes (`db.query.summary`, `network.peer.*` included), or, for the
/// database's own side, `wirelens.db.server.operation.duration` with the same attributes but
/// `network.peer.*`.
fn db_series(obs: &Observation, db: &DbRecord) -> (&'static str, AttrSet) {
    use AttrValue::{Int, Str};
    let role = obs.record.role;
    let mut attrs: AttrSet = Vec::with_capacity(8);
    attrs.push((semconv::DB_SYSTEM_NAME, Str(db.system.as_str().to_owned())));
    if let Some(operation) = db_attrs::operation(db) {
        attrs.push((semconv::DB_OPERATION_NAME, Str(operation.to_owned())));
    }
    if let Some(collection) = db_attrs::collection(db) {
        attrs.push((semconv::DB_COLLECTION_NAME, Str(collection.to_owned())));
    }
    if let Some(namespace) = db_attrs::namespace(db) {
        attrs.push((semconv::DB_NAMESPACE, Str(namespace.to_owned())));
    }
    if let Some(summary) = db_attrs::query_summary(db) {
        attrs.push((semconv::DB_QUERY_SUMMARY, Str(summary)));
    }
    if let Some(code) = db_attrs::status_code(db) {
        attrs.push((semconv::DB_RESPONSE_STATUS_CODE, Str(code.to_owned())));
    }
    if let Some(error) = db_attrs::error_type(db) {
        attrs.push((semconv::ERROR_TYPE, Str(error.into_owned())));
    }
    if let Some(server) = db_attrs::server_endpoint(role, obs.local, obs.peer) {
        attrs.push((semconv::SERVER_ADDRESS, Str(server.ip().to_string())));
        attrs.push((semconv::SERVER_PORT, Int(i64::from(server.port()))));
    }
    // The database node the client talked to (recommended on the client metric). On the
    // database's own side the peer is a client's ephemeral port: left off, one series per
    // connection would follow.
    if let (Role::Client, Some(peer)) = (role, obs.peer) {
        attrs.push((semconv::NETWORK_PEER_ADDRESS, Str(peer.ip().to_string())));
        attrs.push((semconv::NETWORK_PEER_PORT, Int(i64::from(peer.port()))));
    }
    let name = match role {
        Role::Client => semconv::DB_CLIENT_OPERATION_DURATION,
        Role::Server => semconv::WIRELENS_DB_SERVER_OPERATION_DURATION,
    };
    (name, attrs)
}

/// Metric name and attributes of a messaging operation: `messaging.client.operation.duration`
/// for everything the traced process did as a producer or consumer client, one-way sends
/// included (the span's duration, as the conventions ask). None for `process` (the handler's
/// duration, which `messaging.process.duration` measures, is not on the wire: a delivery's
/// record only spans the message's bytes) nor for the broker itself (no convention).
fn messaging_series(obs: &Observation, m: &MessagingRecord) -> Option<(&'static str, AttrSet)> {
    use AttrValue::{Int, Str};
    if obs.record.role != Role::Client || m.operation == MessagingOperation::Process {
        return None;
    }
    let mut attrs: AttrSet = Vec::with_capacity(8);
    attrs.push((
        semconv::MESSAGING_SYSTEM_NAME,
        Str(m.system.as_str().to_owned()),
    ));
    attrs.push((
        semconv::MESSAGING_OPERATION_NAME,
        Str(messaging_attrs::operation_name(m).to_owned()),
    ));
    if let Some(kind) = messaging_attrs::operation_type(m.operation) {
        attrs.push((semconv::MESSAGING_OPERATION_TYPE, Str(kind.to_owned())));
    }
    if let Some(destination) = messaging_attrs::destination(m).filter(|d| d.is_named()) {
        attrs.push((semconv::MESSAGING_DESTINATION_NAME, Str(destination.name)));
    }
    if let Some(partition) = messaging_attrs::partition_id(m) {
        attrs.push((semconv::MESSAGING_DESTINATION_PARTITION_ID, Str(partition)));
    }
    if let Some(group) = messaging_attrs::consumer_group(m) {
        attrs.push((
            semconv::MESSAGING_CONSUMER_GROUP_NAME,
            Str(group.to_owned()),
        ));
    }
    if let Some(error) = messaging_attrs::error_type(m) {
        attrs.push((semconv::ERROR_TYPE, Str(error.into_owned())));
    }
    if let Some(server) = obs.peer {
        attrs.push((semconv::SERVER_ADDRESS, Str(server.ip().to_string())));
        attrs.push((semconv::SERVER_PORT, Int(i64::from(server.port()))));
    }
    Some((semconv::MESSAGING_CLIENT_OPERATION_DURATION, attrs))
}

/// Metric name and attributes of a DNS query: `dns.lookup.duration` for the resolver side only
/// (the conventions define no server metric), with `dns.question.name` (required by the
/// conventions; the series cap bounds its cardinality) and `error.type`.
fn dns_series(obs: &Observation, dns: &DnsRecord) -> Option<(&'static str, AttrSet)> {
    use AttrValue::Str;
    if obs.record.role != Role::Client {
        return None;
    }
    let mut attrs: AttrSet = Vec::with_capacity(2);
    if let Some(name) = dns_attrs::question_name(dns) {
        attrs.push((semconv::DNS_QUESTION_NAME, Str(name.into_owned())));
    }
    if let Some(error) = dns_attrs::error_type(Role::Client, dns) {
        attrs.push((semconv::ERROR_TYPE, Str(error.to_owned())));
    }
    Some((semconv::DNS_LOOKUP_DURATION, attrs))
}

/// Metric name and attributes of an RPC: `rpc.{server,client}.call.duration` with
/// `rpc.system.name`, `rpc.method`, `rpc.status_code`, `server.address`/`port` and
/// `error.type`.
fn rpc_series(obs: &Observation, rpc: &RpcRecord) -> (&'static str, AttrSet) {
    use AttrValue::{Int, Str};
    let role = obs.record.role;
    let mut attrs: AttrSet = Vec::with_capacity(6);
    attrs.push((
        semconv::RPC_SYSTEM_NAME,
        Str(rpc.system.as_str().to_owned()),
    ));
    attrs.push((
        semconv::RPC_METHOD,
        Str(rpc_attrs::method(rpc).into_owned()),
    ));
    if let Some(status) = rpc.status_name() {
        attrs.push((semconv::RPC_STATUS_CODE, Str(status.to_owned())));
    }
    let endpoint = match role {
        Role::Server => obs.local,
        Role::Client => obs.peer,
    };
    if let Some((address, port)) = http_attrs::server_endpoint(rpc.authority.as_deref(), endpoint) {
        attrs.push((semconv::SERVER_ADDRESS, Str(address)));
        if let Some(port) = port {
            attrs.push((semconv::SERVER_PORT, Int(i64::from(port))));
        }
    }
    if let Some(error) = rpc_attrs::error_type(role, rpc) {
        attrs.push((semconv::ERROR_TYPE, Str(error.to_owned())));
    }
    let name = match role {
        Role::Server => semconv::RPC_SERVER_CALL_DURATION,
        Role::Client => semconv::RPC_CLIENT_CALL_DURATION,
    };
    (name, attrs)
}

/// Explicit bucket boundaries of a histogram, by metric name.
fn bounds(name: &str) -> &'static [f64] {
    match name {
        semconv::DB_CLIENT_OPERATION_DURATION | semconv::WIRELENS_DB_SERVER_OPERATION_DURATION => {
            &semconv::DB_DURATION_BUCKETS
        }
        _ => &semconv::DURATION_BUCKETS,
    }
}

fn description(name: &str) -> &'static str {
    match name {
        semconv::HTTP_SERVER_REQUEST_DURATION => "Duration of HTTP server requests.",
        semconv::HTTP_CLIENT_REQUEST_DURATION => "Duration of HTTP client requests.",
        semconv::DB_CLIENT_OPERATION_DURATION => "Duration of database client operations.",
        semconv::WIRELENS_DB_SERVER_OPERATION_DURATION => {
            "Duration of database operations, as served by the database."
        }
        semconv::MESSAGING_CLIENT_OPERATION_DURATION => {
            "Duration of messaging operation initiated by a producer or consumer client."
        }
        semconv::DNS_LOOKUP_DURATION => "Measures the time taken to perform a DNS lookup.",
        semconv::RPC_SERVER_CALL_DURATION => {
            "Measures the duration of inbound remote procedure calls."
        }
        semconv::RPC_CLIENT_CALL_DURATION => {
            "Measures the duration of outbound remote procedure calls."
        }
        _ => "",
    }
}

/// The unit of an agent counter, from its name.
fn counter_unit(name: &str) -> &'static str {
    if name.ends_with("bytes") {
        semconv::UNIT_BYTES
    } else {
        semconv::UNIT_EVENTS
    }
}

fn key_values(attrs: &AttrSet) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(key, value)| match value {
            AttrValue::Str(s) => kv::string(key, s.as_str()),
            AttrValue::Int(i) => kv::int(key, *i),
            AttrValue::Bool(b) => kv::bool(key, *b),
        })
        .collect()
}

fn resource_metrics(r: &ResourceEntry, now_ns: u64) -> Vec<Metric> {
    let mut metrics: Vec<Metric> = Vec::new();
    let cumulative = AggregationTemporality::Cumulative as i32;
    for ((name, attrs), series) in &r.histograms {
        let point = HistogramDataPoint {
            attributes: key_values(attrs),
            start_time_unix_nano: series.start_ns,
            time_unix_nano: now_ns.max(series.start_ns),
            count: series.count,
            sum: Some(series.sum),
            bucket_counts: series.buckets.clone(),
            explicit_bounds: series.bounds.to_vec(),
            min: Some(series.min),
            max: Some(series.max),
            ..HistogramDataPoint::default()
        };
        // The map is sorted by name first, so a metric's points are contiguous.
        match metrics.last_mut() {
            Some(Metric {
                name: last,
                data: Some(Data::Histogram(h)),
                ..
            }) if last == name => {
                h.data_points.push(point);
            }
            _ => metrics.push(Metric {
                name: (*name).to_owned(),
                description: description(name).to_owned(),
                unit: semconv::UNIT_SECONDS.to_owned(),
                data: Some(Data::Histogram(Histogram {
                    data_points: vec![point],
                    aggregation_temporality: cumulative,
                })),
                ..Metric::default()
            }),
        }
    }
    for (name, counter) in &r.counters {
        metrics.push(Metric {
            name: (*name).to_owned(),
            unit: counter_unit(name).to_owned(),
            data: Some(Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    start_time_unix_nano: counter.start_ns,
                    time_unix_nano: now_ns.max(counter.start_ns),
                    value: Some(number_data_point::Value::AsInt(
                        i64::try_from(counter.value).unwrap_or(i64::MAX),
                    )),
                    ..NumberDataPoint::default()
                }],
                aggregation_temporality: cumulative,
                is_monotonic: true,
            })),
            ..Metric::default()
        });
    }
    for (name, value) in &r.gauges {
        metrics.push(Metric {
            name: (*name).to_owned(),
            unit: gauge_unit(name).to_owned(),
            data: Some(Data::Gauge(Gauge {
                data_points: vec![NumberDataPoint {
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsInt(*value)),
                    ..NumberDataPoint::default()
                }],
            })),
            ..Metric::default()
        });
    }
    metrics
}

/// Unit of an agent gauge, from its name (`...bytes`, `...connections...`, ...).
fn gauge_unit(name: &str) -> &'static str {
    if name.ends_with("bytes") {
        semconv::UNIT_BYTES
    } else if name.contains("connections") {
        "{connection}"
    } else if name.contains("processes") {
        "{process}"
    } else {
        semconv::UNIT_EVENTS
    }
}

/// Data points in a metrics request (histogram and number points).
pub fn point_count(request: &ExportMetricsServiceRequest) -> u64 {
    let points = |m: &Metric| match &m.data {
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    };
    request
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| points(m) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{
        attr_map, client_obs, db_obs, dns_obs, dns_record, messaging_obs, process, server_obs,
    };
    use wirelens_parsers::{DbSystem, MessagingSystem};

    fn with_duration(mut obs: Observation, seconds: f64) -> Observation {
        obs.record.start_ns = 1_000_000_000;
        obs.record.end_ns = 1_000_000_000 + (seconds * 1e9) as u64;
        obs
    }

    fn histograms(request: &ExportMetricsServiceRequest) -> Vec<(&str, &HistogramDataPoint)> {
        let mut out = Vec::new();
        for rm in &request.resource_metrics {
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    if let Some(Data::Histogram(h)) = &m.data {
                        assert_eq!(m.unit, "s");
                        assert_eq!(
                            h.aggregation_temporality,
                            AggregationTemporality::Cumulative as i32
                        );
                        out.extend(h.data_points.iter().map(|p| (m.name.as_str(), p)));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn bucket_counts() {
        let mut agg = MetricsAggregator::new(process(99));
        for seconds in [0.001, 0.005, 0.006, 0.3, 20.0] {
            assert!(agg.record(&with_duration(
                server_obs(1, "GET", "/a", Some(200)),
                seconds
            )));
        }
        let request = agg.export_request(5_000_000_000);
        let points = histograms(&request);
        assert_eq!(points.len(), 1);
        let (name, p) = points[0];
        assert_eq!(name, "http.server.request.duration");
        assert_eq!(p.count, 5);
        assert_eq!(p.explicit_bounds, semconv::DURATION_BUCKETS.to_vec());
        //                       .005 .01 .025 .05 .075 .1 .25 .5 .75 1 2.5 5 7.5 10 +inf
        assert_eq!(
            p.bucket_counts,
            vec![2, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1]
        );
        assert_eq!(p.min, Some(0.001));
        assert_eq!(p.max, Some(20.0));
        assert!((p.sum.unwrap_or_default() - 20.312).abs() < 1e-9);
        assert_eq!(p.start_time_unix_nano, 1_000_000_000);
        assert_eq!(p.time_unix_nano, 5_000_000_000);
    }

    #[test]
    fn server_attribute_keys() {
        let mut agg = MetricsAggregator::new(process(99));
        agg.record(&server_obs(1, "GET", "/a?x=1", Some(200)));
        agg.record(&server_obs(1, "GET", "/b", Some(200)));
        agg.record(&server_obs(1, "PURGE", "/b", Some(503)));
        let request = agg.export_request(10_000);
        let points = histograms(&request);
        assert_eq!(points.len(), 2, "url.path is not an attribute");
        let ok = attr_map(&points[0].1.attributes);
        assert_eq!(
            ok.iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [
                ("http.request.method", "GET"),
                ("http.response.status_code", "200"),
                ("network.protocol.name", "http"),
                ("network.protocol.version", "1.1"),
                ("url.scheme", "http"),
            ]
        );
        assert_eq!(points[0].1.count, 2);
        let err = attr_map(&points[1].1.attributes);
        assert_eq!(err["http.request.method"], "_OTHER");
        assert_eq!(err["error.type"], "503");
    }

    #[test]
    fn client_attribute_keys() {
        let mut agg = MetricsAggregator::new(process(99));
        agg.record(&client_obs(1, "GET", "/a", Some(404)));
        let request = agg.export_request(10_000);
        let points = histograms(&request);
        assert_eq!(points[0].0, "http.client.request.duration");
        let attrs = attr_map(&points[0].1.attributes);
        assert_eq!(
            attrs
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
            [
                ("error.type", "404"),
                ("http.request.method", "GET"),
                ("http.response.status_code", "404"),
                ("network.protocol.version", "1.1"),
                ("server.address", "backend"),
                ("server.port", "80"),
                ("url.scheme", "http"),
            ]
        );
    }

    fn pairs(p: &HistogramDataPoint) -> Vec<(String, String)> {
        attr_map(&p.attributes).into_iter().collect()
    }

    fn owned(expected: &[(&str, &str)]) -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn select(id: u32) -> DbRecord {
        let mut db = DbRecord::new(DbSystem::PostgreSql);
        db.operation = Some("SELECT".into());
        db.collection = Some("users".into());
        db.namespace = Some("shop".into());
        db.query_text = Some(format!("SELECT * FROM users WHERE id = {id}"));
        db.status_code = Some("00000".into());
        db.rows = Some(u64::from(id));
        db
    }

    #[test]
    fn db_client_series() {
        let mut agg = MetricsAggregator::new(process(99));
        for (id, seconds) in [(1, 0.0005), (2, 0.001), (3, 0.002), (4, 0.3), (5, 20.0)] {
            assert!(agg.record(&with_duration(db_obs(1, Role::Client, select(id)), seconds)));
        }
        let request = agg.export_request(5_000_000_000);
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(
            metric.description,
            "Duration of database client operations."
        );
        let points = histograms(&request);
        assert_eq!(points.len(), 1, "query text and rows are not attributes");
        let (name, p) = points[0];
        assert_eq!(name, "db.client.operation.duration");
        assert_eq!(
            p.explicit_bounds,
            [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
        );
        //                      .001 .005 .01 .05 .1 .5 1 5 10 +inf
        assert_eq!(p.bucket_counts, [2, 1, 0, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(p.count, 5);
        assert_eq!(
            pairs(p),
            owned(&[
                ("db.collection.name", "users"),
                ("db.namespace", "shop"),
                ("db.operation.name", "SELECT"),
                ("db.query.summary", "SELECT users"),
                ("db.system.name", "postgresql"),
                ("network.peer.address", "10.0.0.3"),
                ("network.peer.port", "5432"),
                ("server.address", "10.0.0.3"),
                ("server.port", "5432"),
            ])
        );
    }

    #[test]
    fn db_server_series() {
        let mut agg = MetricsAggregator::new(process(99));
        let mut db = DbRecord::new(DbSystem::MySql);
        db.operation = Some("INSERT".into());
        db.collection = Some("orders".into());
        db.query_text = Some("INSERT INTO orders VALUES (1)".into());
        db.status_code = Some("1146".into());
        db.error_message = Some("no such table".into());
        agg.record(&db_obs(7, Role::Server, db));
        let mut redis = DbRecord::new(DbSystem::Redis);
        redis.operation = Some("GET".into());
        redis.namespace = Some("0".into());
        redis.query_text = Some("GET k".into());
        agg.record(&db_obs(7, Role::Server, redis));
        // HTTP series keep their own buckets next to database ones.
        agg.record(&server_obs(7, "GET", "/", Some(200)));
        let request = agg.export_request(10_000);
        let points = histograms(&request);
        let names: Vec<&str> = points.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "http.server.request.duration",
                "wirelens.db.server.operation.duration",
                "wirelens.db.server.operation.duration",
            ]
        );
        for (_, p) in &points[1..] {
            assert_eq!(p.explicit_bounds, semconv::DB_DURATION_BUCKETS.to_vec());
            assert_eq!(p.bucket_counts.len(), 10);
        }
        assert_eq!(
            points[0].1.explicit_bounds,
            semconv::DURATION_BUCKETS.to_vec()
        );
        assert_eq!(points[0].1.bucket_counts.len(), 15);
        let all: Vec<Vec<(String, String)>> = points[1..].iter().map(|(_, p)| pairs(p)).collect();
        assert!(all.contains(&owned(&[
            ("db.collection.name", "orders"),
            ("db.operation.name", "INSERT"),
            ("db.query.summary", "INSERT orders"),
            ("db.response.status_code", "1146"),
            ("db.system.name", "mysql"),
            ("error.type", "1146"),
            ("server.address", "10.0.0.3"),
            ("server.port", "3306"),
        ])));
        assert!(all.contains(&owned(&[
            ("db.namespace", "0"),
            ("db.operation.name", "GET"),
            ("db.system.name", "redis"),
            ("server.address", "10.0.0.3"),
            ("server.port", "6379"),
        ])));
    }

    #[test]
    fn agent_gauges_are_gauges_with_their_last_value() {
        let mut agg = MetricsAggregator::new(process(99));
        agg.set_agent_gauges(&[
            ("wirelens.connections.tracked", 40),
            ("wirelens.export.spool.bytes", 1),
        ]);
        agg.set_agent_gauges(&[("wirelens.connections.tracked", 3)]);
        let request = agg.export_request(10_000);
        assert_eq!(
            request.resource_metrics.len(),
            1,
            "the agent's Resource only"
        );
        let gauges: Vec<(&str, &str, i64)> = request.resource_metrics[0].scope_metrics[0]
            .metrics
            .iter()
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => {
                    let v = match g.data_points[0].value {
                        Some(number_data_point::Value::AsInt(v)) => v,
                        _ => -1,
                    };
                    assert_eq!(g.data_points[0].time_unix_nano, 10_000);
                    (m.name.as_str(), m.unit.as_str(), v)
                }
                _ => ("not a gauge", "", 0),
            })
            .collect();
        assert_eq!(
            gauges,
            [
                ("wirelens.connections.tracked", "{connection}", 3),
                ("wirelens.export.spool.bytes", "By", 1)
            ]
        );
    }

    #[test]
    fn two_resources_and_agent_counters() {
        let mut agg = MetricsAggregator::new(process(99));
        agg.record(&server_obs(1, "GET", "/", Some(200)));
        agg.record(&client_obs(2, "GET", "/", Some(200)));
        agg.record(&server_obs(1, "GET", "/", Some(200)));
        let request = agg.export_request(10_000);
        assert_eq!(
            request.resource_metrics.len(),
            2,
            "no agent resource without counters"
        );
        agg.set_agent_counters(&[("wirelens.events", 10), ("wirelens.capture.bytes", 5)]);
        agg.set_agent_counters(&[("wirelens.events", 12)]);
        let request = agg.export_request(10_000);
        let pids: Vec<String> = request
            .resource_metrics
            .iter()
            .map(|r| {
                attr_map(&r.resource.as_ref().expect("resource").attributes)["process.pid"].clone()
            })
            .collect();
        assert_eq!(pids, ["99", "1", "2"]);
        let agent = &request.resource_metrics[0].scope_metrics[0].metrics;
        let sums: Vec<(&str, &str, i64)> = agent
            .iter()
            .map(|m| match &m.data {
                Some(Data::Sum(s)) => {
                    assert!(s.is_monotonic);
                    let v = match s.data_points[0].value {
                        Some(number_data_point::Value::AsInt(v)) => v,
                        _ => -1,
                    };
                    (m.name.as_str(), m.unit.as_str(), v)
                }
                _ => ("not a sum", "", 0),
            })
            .collect();
        assert_eq!(
            sums,
            [
                ("wirelens.capture.bytes", "By", 5),
                ("wirelens.events", "{event}", 12)
            ]
        );
        assert_eq!(point_count(&request), 4);
        agg.set_agent_attributes(vec![
            ("service.name".into(), "agent-a".into()),
            ("deployment.environment.name".into(), "test".into()),
        ]);
        let request = agg.export_request(10_000);
        let resources: Vec<BTreeMap<String, String>> = request
            .resource_metrics
            .iter()
            .map(|r| attr_map(&r.resource.as_ref().expect("resource").attributes))
            .collect();
        assert_eq!(resources[0]["service.name"], "agent-a");
        assert_eq!(resources[0]["deployment.environment.name"], "test");
        assert_eq!(resources[0]["process.pid"], "99");
        assert_eq!(
            resources[1]["service.name"], "svc1",
            "only the agent's own Resource"
        );
        assert!(!resources[1].contains_key("deployment.environment.name"));
    }

    #[test]
    fn series_cap_counts_overflow() {
        let mut agg = MetricsAggregator::with_max_series(process(99), 2);
        assert!(agg.record(&server_obs(1, "GET", "/", Some(200))));
        assert!(agg.record(&server_obs(1, "GET", "/", Some(201))));
        assert!(!agg.record(&server_obs(1, "GET", "/", Some(202))));
        assert!(!agg.record(&server_obs(3, "GET", "/", Some(200))));
        assert!(
            agg.record(&server_obs(1, "GET", "/", Some(200))),
            "existing series still grow"
        );
        assert_eq!((agg.series(), agg.overflowed()), (2, 2));
        let request = agg.export_request(1);
        let pids: Vec<String> = request
            .resource_metrics
            .iter()
            .map(|r| {
                attr_map(&r.resource.as_ref().expect("resource").attributes)["process.pid"].clone()
            })
            .collect();
        assert_eq!(
            pids,
            ["99", "1"],
            "the overflow series sits under the agent"
        );
        let points = histograms(&request);
        let overflow: Vec<_> = points
            .iter()
            .filter(|(_, p)| pairs(p) == owned(&[("otel.metric.overflow", "true")]))
            .collect();
        assert_eq!(overflow.len(), 1, "one overflow series per metric");
        assert_eq!(overflow[0].0, "http.server.request.duration");
        assert_eq!(
            overflow[0].1.count, 2,
            "every observation past the cap is in it"
        );
        let total: u64 = points.iter().map(|(_, p)| p.count).sum();
        assert_eq!(total, 5, "nothing observed is lost from the totals");
    }

    #[test]
    fn gone_processes_are_retired_after_one_more_export() {
        let mut agg = MetricsAggregator::with_max_series(process(99), 2);
        let live = client_obs(1, "GET", "/", Some(200));
        let gone = server_obs(2, "GET", "/", Some(200));
        // The caller (the agent's process cache) holds both processes.
        let held = (Arc::clone(&live.process), Arc::clone(&gone.process));
        agg.record(&live);
        agg.record(&gone);
        drop(gone);
        assert_eq!(agg.retire(), 0);
        assert_eq!(agg.series(), 2);
        // Process 2 exits and is let go: marked now, still exported once more.
        drop(held.1);
        assert_eq!(agg.retire(), 0);
        assert_eq!(agg.export_request(1).resource_metrics.len(), 2);
        assert_eq!(agg.retire(), 1);
        assert_eq!(agg.series(), 1);
        let request = agg.export_request(1);
        assert_eq!(request.resource_metrics.len(), 1);
        // Its room is free again: a new series is regular, not overflow.
        assert!(agg.record(&server_obs(3, "GET", "/", Some(200))));
        assert_eq!((agg.series(), agg.overflowed()), (2, 0));
        // Process 3 was held by no one else: marked now, removed at the next call.
        drop(live);
        assert_eq!(agg.retire(), 0);
        assert_eq!(agg.retire(), 1);
        // Process 1 let go, then handed out anew (an equal, re-read ProcessInfo) before its
        // removal: kept, following the new one.
        drop(held.0);
        assert_eq!(agg.retire(), 0, "process 1 marked");
        let again = client_obs(1, "GET", "/", Some(200));
        agg.record(&again);
        assert_eq!(agg.retire(), 0, "held again");
        assert_eq!(agg.retire(), 0);
        drop(again);
        assert_eq!(agg.retire(), 0);
        assert_eq!(agg.retire(), 1);
        assert_eq!(agg.series(), 0);
    }

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

    #[test]
    fn messaging_client_series() {
        let mut agg = MetricsAggregator::new(process(99));
        let mut produce = messaging(
            MessagingSystem::Kafka,
            MessagingOperation::Send,
            "produce",
            Some("orders"),
        );
        produce.partition = Some(1);
        produce.client_id = Some("svc-a".into());
        produce.body_size = Some(42);
        for seconds in [0.002, 0.02] {
            assert!(agg.record(&with_duration(
                messaging_obs(1, Role::Client, produce.clone()),
                seconds
            )));
        }
        let mut fetch = messaging(
            MessagingSystem::Kafka,
            MessagingOperation::Receive,
            "fetch",
            Some("orders"),
        );
        fetch.consumer_group = Some("billing".into());
        fetch.error_type = Some("NOT_LEADER_OR_FOLLOWER".into());
        agg.record(&messaging_obs(1, Role::Client, fetch));
        let reply = messaging(
            MessagingSystem::Nats,
            MessagingOperation::Send,
            "publish",
            Some("_INBOX.abc.7"),
        );
        agg.record(&messaging_obs(1, Role::Client, reply));
        let request = agg.export_request(10_000_000_000);
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(
            metric.description,
            "Duration of messaging operation initiated by a producer or consumer client."
        );
        let points = histograms(&request);
        assert_eq!(
            points.len(),
            3,
            "client id and body size are not attributes"
        );
        let by_attrs: Vec<Vec<(String, String)>> = points
            .iter()
            .map(|(name, p)| {
                assert_eq!(*name, "messaging.client.operation.duration");
                assert_eq!(p.explicit_bounds, semconv::DURATION_BUCKETS.to_vec());
                pairs(p)
            })
            .collect();
        assert!(by_attrs.contains(&owned(&[
            ("messaging.destination.name", "orders"),
            ("messaging.destination.partition.id", "1"),
            ("messaging.operation.name", "produce"),
            ("messaging.operation.type", "send"),
            ("messaging.system.name", "kafka"),
            ("server.address", "10.0.0.4"),
            ("server.port", "9092"),
        ])));
        assert!(by_attrs.contains(&owned(&[
            ("error.type", "NOT_LEADER_OR_FOLLOWER"),
            ("messaging.consumer.group.name", "billing"),
            ("messaging.destination.name", "orders"),
            ("messaging.operation.name", "fetch"),
            ("messaging.operation.type", "receive"),
            ("messaging.system.name", "kafka"),
            ("server.address", "10.0.0.4"),
            ("server.port", "9092"),
        ])));
        assert!(
            by_attrs.contains(&owned(&[
                ("messaging.operation.name", "publish"),
                ("messaging.operation.type", "send"),
                ("messaging.system.name", "nats"),
                ("server.address", "10.0.0.4"),
                ("server.port", "4222"),
            ])),
            "reply inboxes are not a destination on metrics"
        );
        let produced = points
            .iter()
            .find(|(_, p)| {
                pairs(p).contains(&("messaging.operation.name".into(), "produce".into()))
            })
            .map(|(_, p)| p.bucket_counts.clone());
        //                         .005 .01 .025 .05 .075 .1 .25 .5 .75 1 2.5 5 7.5 10 +inf
        assert_eq!(
            produced,
            Some(vec![1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        );
    }

    #[test]
    fn messaging_without_metric() {
        let mut agg = MetricsAggregator::with_max_series(process(99), 1);
        let deliver = messaging(
            MessagingSystem::RabbitMq,
            MessagingOperation::Process,
            "deliver",
            Some("logs"),
        );
        assert!(agg.record(&messaging_obs(1, Role::Client, deliver)));
        let publish = messaging(
            MessagingSystem::RabbitMq,
            MessagingOperation::Send,
            "publish",
            Some("logs"),
        );
        assert!(agg.record(&messaging_obs(1, Role::Server, publish)));
        assert!(agg.record(&dns_obs(
            1,
            Role::Server,
            dns_record("a.example", "A", Some("NOERROR"))
        )));
        assert_eq!((agg.series(), agg.overflowed()), (0, 0));
        assert!(agg.export_request(1).resource_metrics.is_empty());
    }

    #[test]
    fn dns_lookup_series() {
        let mut agg = MetricsAggregator::new(process(99));
        let mut ok = dns_record("www.example.com", "A", Some("NOERROR"));
        ok.answers = vec!["93.184.216.34".into()];
        agg.record(&dns_obs(4, Role::Client, ok.clone()));
        ok.question_type = "AAAA".into();
        agg.record(&dns_obs(4, Role::Client, ok));
        agg.record(&dns_obs(
            4,
            Role::Client,
            dns_record("nope.example", "A", Some("NXDOMAIN")),
        ));
        agg.record(&dns_obs(
            4,
            Role::Client,
            dns_record("slow.example", "A", None),
        ));
        let request = agg.export_request(10_000_000_000);
        let metric = &request.resource_metrics[0].scope_metrics[0].metrics[0];
        assert_eq!(
            metric.description,
            "Measures the time taken to perform a DNS lookup."
        );
        let points = histograms(&request);
        let got: Vec<(u64, Vec<(String, String)>)> = points
            .iter()
            .map(|(name, p)| {
                assert_eq!(*name, "dns.lookup.duration");
                assert_eq!(p.explicit_bounds, semconv::DURATION_BUCKETS.to_vec());
                (p.count, pairs(p))
            })
            .collect();
        assert_eq!(got.len(), 3, "the question type is not an attribute");
        assert!(got.contains(&(2, owned(&[("dns.question.name", "www.example.com")]))));
        assert!(got.contains(&(
            1,
            owned(&[
                ("dns.question.name", "nope.example"),
                ("error.type", "NXDOMAIN")
            ])
        )));
        assert!(got.contains(&(
            1,
            owned(&[
                ("dns.question.name", "slow.example"),
                ("error.type", "timeout")
            ])
        )));
        // Series sort by attributes; two 20 ms lookups of www.example.com come last.
        let sums: Vec<Option<f64>> = points.iter().map(|(_, p)| p.sum).collect();
        assert_eq!(sums, [Some(0.02), Some(0.02), Some(0.04)]);
    }
}
