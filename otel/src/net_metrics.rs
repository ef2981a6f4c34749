//! Network and connection figures → OTLP metrics: per process and remote endpoint under the
//! process's Resource, per interface under the Resource of its network namespace.
//!
//! Pure: the agent counts (`agent/src/netmetrics/`) and calls [`process_metrics`] and
//! [`namespace_metrics`]; the result goes out with the next metrics export (see
//! [`crate::export::ExportMonitor::set_source_metrics`]).
//!
//! - Per endpoint (`network.peer.address`, and `network.peer.port` for connections the process
//!   opened or `network.local.port` for those it accepted; `network.transport=tcp`,
//!   `network.type`): `wirelens.network.io` (By) and `wirelens.network.packet.count` per
//!   `network.io.direction`, `wirelens.tcp.connection.{opened,closed}`,
//!   `wirelens.tcp.connection.failed` per `error.type` ([`ConnectFailure`]; a point only for
//!   the reasons seen),
//!   `wirelens.tcp.connection.active`, `wirelens.tcp.retransmits`, and the gauges
//!   `wirelens.tcp.rtt` and `wirelens.tcp.rtt.variance` (seconds). The series past the
//!   per-process cap of endpoints go to one series with `otel.metric.overflow=true`.
//! - Per interface (`network.interface.name`): `system.network.io`,
//!   `system.network.packet.count`, `system.network.errors` and
//!   `system.network.packet.dropped`, per `network.io.direction`.

use std::net::IpAddr;

use opentelemetry_proto::tonic::{
    common::v1::KeyValue,
    metrics::v1::{
        AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        metric::Data, number_data_point,
    },
    resource::v1::Resource,
};

use crate::{ProcessInfo, kv, semconv};

/// A remote endpoint of a process's TCP connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// The peer's address.
    pub peer: IpAddr,
    /// The peer's port, for connections the process opened (the service it calls).
    pub peer_port: Option<u16>,
    /// The local port, for connections the process accepted (the service it offers).
    pub local_port: Option<u16>,
}

/// RTT of one endpoint's connections at the last sample, in microseconds (as `tcp_info`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rtt {
    /// Smoothed RTT (`tcpi_rtt`), mean over the sampled connections.
    pub srtt_us: f64,
    /// RTT mean deviation (`tcpi_rttvar`), mean over the sampled connections.
    pub rttvar_us: f64,
}

/// Why a connect failed: the `error.type` of `wirelens.tcp.connection.failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The peer answered with a reset.
    Refused,
    /// The kernel gave up resending the SYN.
    Timeout,
    /// An ICMP error said the peer cannot be reached.
    Unreachable,
    /// The process closed the socket before any answer; no error from the kernel.
    Aborted,
    /// Another error (`_OTHER`).
    Other,
}

impl ConnectFailure {
    /// Every reason, in the order of [`FailedConnects`].
    pub const ALL: [ConnectFailure; 5] = [
        Self::Refused,
        Self::Timeout,
        Self::Unreachable,
        Self::Aborted,
        Self::Other,
    ];

    /// The `error.type` value.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::Refused => semconv::CONNECT_ERROR_REFUSED,
            Self::Timeout => semconv::CONNECT_ERROR_TIMEOUT,
            Self::Unreachable => semconv::CONNECT_ERROR_UNREACHABLE,
            Self::Aborted => semconv::CONNECT_ERROR_ABORTED,
            Self::Other => semconv::ERROR_TYPE_OTHER,
        }
    }
}

/// Failed connects per [`ConnectFailure`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FailedConnects([u64; 5]);

impl FailedConnects {
    /// One more failure for `reason`.
    pub fn count(&mut self, reason: ConnectFailure) {
        self.0[reason as usize] += 1;
    }

    /// Failures for `reason`.
    pub fn get(&self, reason: ConnectFailure) -> u64 {
        self.0[reason as usize]
    }

    /// Failures for every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, other: &FailedConnects) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }
}

/// Cumulative figures of one endpoint (or of the overflow series).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EndpointCounts {
    /// Bytes the process sent.
    pub bytes_sent: u64,
    /// Bytes the process received.
    pub bytes_received: u64,
    /// Segments sent (`tcpi_segs_out`) by the connections sampled.
    pub packets_sent: u64,
    /// Segments received (`tcpi_segs_in`) by the connections sampled.
    pub packets_received: u64,
    /// Connections established.
    pub opened: u64,
    /// Connections closed.
    pub closed: u64,
    /// Connects that failed, per reason.
    pub failed: FailedConnects,
    /// Connections established now.
    pub active: u64,
    /// Retransmitted segments.
    pub retransmits: u64,
    /// RTT at the last sample, if a connection was sampled.
    pub rtt: Option<Rtt>,
}

impl EndpointCounts {
    /// Add `other`'s counts (RTTs: the one present, `other`'s first).
    pub fn add(&mut self, other: &EndpointCounts) {
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.packets_sent += other.packets_sent;
        self.packets_received += other.packets_received;
        self.opened += other.opened;
        self.closed += other.closed;
        self.failed.add(&other.failed);
        self.active += other.active;
        self.retransmits += other.retransmits;
        self.rtt = other.rtt.or(self.rtt);
    }
}

/// One process's endpoints; `None` is the overflow series.
#[derive(Clone, Debug, Default)]
pub struct ProcessNetwork {
    /// Cumulative sums start here (when the agent first saw the process), Unix ns.
    pub start_ns: u64,
    /// Endpoints and their counts.
    pub endpoints: Vec<(Option<Endpoint>, EndpointCounts)>,
}

/// Counters of one network interface (`/proc/<pid>/net/dev`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interface {
    /// Interface name.
    pub name: String,
    /// Received: bytes, packets, errors, drops.
    pub rx: Direction,
    /// Transmitted: bytes, packets, errors, drops.
    pub tx: Direction,
}

/// One direction of an interface's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Direction {
    /// Bytes.
    pub bytes: u64,
    /// Packets.
    pub packets: u64,
    /// Errors.
    pub errors: u64,
    /// Dropped packets.
    pub dropped: u64,
}

/// Cumulative points of one metric, all with one start time.
struct Points {
    start_ns: u64,
    now_ns: u64,
    points: Vec<NumberDataPoint>,
}

impl Points {
    fn new(start_ns: u64, now_ns: u64) -> Self {
        Self {
            start_ns,
            now_ns,
            points: Vec::new(),
        }
    }

    fn push(&mut self, attributes: Vec<KeyValue>, value: number_data_point::Value) {
        self.points.push(NumberDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: self.now_ns.max(self.start_ns),
            value: Some(value),
            ..NumberDataPoint::default()
        });
    }

    fn int(&mut self, attributes: Vec<KeyValue>, value: u64) {
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        self.push(attributes, number_data_point::Value::AsInt(value));
    }

    fn double(&mut self, attributes: Vec<KeyValue>, value: f64) {
        self.push(attributes, number_data_point::Value::AsDouble(value));
    }

    fn sum(self, name: &str, unit: &str, monotonic: bool) -> Option<Metric> {
        (!self.points.is_empty()).then(|| Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Sum(Sum {
                data_points: self.points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: monotonic,
            })),
            ..Metric::default()
        })
    }

    fn gauge(self, name: &str, unit: &str) -> Option<Metric> {
        (!self.points.is_empty()).then(|| Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Gauge(Gauge {
                data_points: self.points,
            })),
            ..Metric::default()
        })
    }
}

/// Attributes of an endpoint's series.
fn endpoint_attributes(endpoint: Option<&Endpoint>) -> Vec<KeyValue> {
    let Some(e) = endpoint else {
        return vec![kv::bool(semconv::OTEL_METRIC_OVERFLOW, true)];
    };
    let mut attrs = Vec::with_capacity(5);
    attrs.push(kv::string(
        semconv::NETWORK_PEER_ADDRESS,
        e.peer.to_string(),
    ));
    if let Some(port) = e.peer_port {
        attrs.push(kv::int(semconv::NETWORK_PEER_PORT, i64::from(port)));
    }
    if let Some(port) = e.local_port {
        attrs.push(kv::int(semconv::NETWORK_LOCAL_PORT, i64::from(port)));
    }
    attrs.push(kv::string(
        semconv::NETWORK_TRANSPORT,
        semconv::TRANSPORT_TCP,
    ));
    let kind = if e.peer.is_ipv4() { "ipv4" } else { "ipv6" };
    attrs.push(kv::string(semconv::NETWORK_TYPE, kind));
    attrs
}

fn with_direction(mut attrs: Vec<KeyValue>, direction: &str) -> Vec<KeyValue> {
    attrs.push(kv::string(semconv::NETWORK_IO_DIRECTION, direction));
    attrs
}

/// Every per-endpoint metric of one process, as of `now_ns`.
pub fn endpoint_metrics(network: &ProcessNetwork, now_ns: u64) -> Vec<Metric> {
    let start = network.start_ns;
    let mut io = Points::new(start, now_ns);
    let mut packets = Points::new(start, now_ns);
    let mut opened = Points::new(start, now_ns);
    let mut closed = Points::new(start, now_ns);
    let mut failed = Points::new(start, now_ns);
    let mut active = Points::new(start, now_ns);
    let mut retransmits = Points::new(start, now_ns);
    let mut rtt = Points::new(start, now_ns);
    let mut rttvar = Points::new(start, now_ns);
    for (endpoint, c) in &network.endpoints {
        let attrs = endpoint_attributes(endpoint.as_ref());
        let tx = || with_direction(attrs.clone(), semconv::DIRECTION_TRANSMIT);
        let rx = || with_direction(attrs.clone(), semconv::DIRECTION_RECEIVE);
        io.int(tx(), c.bytes_sent);
        io.int(rx(), c.bytes_received);
        if c.packets_sent > 0 || c.packets_received > 0 {
            packets.int(tx(), c.packets_sent);
            packets.int(rx(), c.packets_received);
        }
        opened.int(attrs.clone(), c.opened);
        closed.int(attrs.clone(), c.closed);
        for reason in ConnectFailure::ALL {
            let n = c.failed.get(reason);
            if n > 0 {
                let mut attrs = attrs.clone();
                attrs.push(kv::string(semconv::ERROR_TYPE, reason.error_type()));
                failed.int(attrs, n);
            }
        }
        active.int(attrs.clone(), c.active);
        retransmits.int(attrs.clone(), c.retransmits);
        if let Some(r) = c.rtt {
            rtt.double(attrs.clone(), r.srtt_us / 1e6);
            rttvar.double(attrs, r.rttvar_us / 1e6);
        }
    }
    let conn = "{connection}";
    [
        io.sum(semconv::WIRELENS_NETWORK_IO, semconv::UNIT_BYTES, true),
        packets.sum(semconv::WIRELENS_NETWORK_PACKET_COUNT, "{packet}", true),
        opened.sum(semconv::WIRELENS_TCP_CONNECTION_OPENED, conn, true),
        closed.sum(semconv::WIRELENS_TCP_CONNECTION_CLOSED, conn, true),
        failed.sum(semconv::WIRELENS_TCP_CONNECTION_FAILED, conn, true),
        active.sum(semconv::WIRELENS_TCP_CONNECTION_ACTIVE, conn, false),
        retransmits.sum(semconv::WIRELENS_TCP_RETRANSMITS, "{segment}", true),
        rtt.gauge(semconv::WIRELENS_TCP_RTT, semconv::UNIT_SECONDS),
        rttvar.gauge(semconv::WIRELENS_TCP_RTT_VARIANCE, semconv::UNIT_SECONDS),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Every per-interface metric of one network namespace, as of `now_ns` (counters since
/// `start_ns`, when the agent first read the namespace).
pub fn interface_metrics(interfaces: &[Interface], start_ns: u64, now_ns: u64) -> Vec<Metric> {
    let mut io = Points::new(start_ns, now_ns);
    let mut packets = Points::new(start_ns, now_ns);
    let mut errors = Points::new(start_ns, now_ns);
    let mut dropped = Points::new(start_ns, now_ns);
    for i in interfaces {
        for (dir, d) in [
            (semconv::DIRECTION_RECEIVE, i.rx),
            (semconv::DIRECTION_TRANSMIT, i.tx),
        ] {
            let attrs = vec![
                kv::string(semconv::NETWORK_INTERFACE_NAME, i.name.clone()),
                kv::string(semconv::NETWORK_IO_DIRECTION, dir),
            ];
            io.int(attrs.clone(), d.bytes);
            packets.int(attrs.clone(), d.packets);
            errors.int(attrs.clone(), d.errors);
            dropped.int(attrs, d.dropped);
        }
    }
    [
        io.sum(semconv::SYSTEM_NETWORK_IO, semconv::UNIT_BYTES, true),
        packets.sum(semconv::SYSTEM_NETWORK_PACKET_COUNT, "{packet}", true),
        errors.sum(semconv::SYSTEM_NETWORK_ERRORS, "{error}", true),
        dropped.sum(semconv::SYSTEM_NETWORK_PACKET_DROPPED, "{packet}", true),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn resource_metrics(resource: Resource, metrics: Vec<Metric>) -> ResourceMetrics {
    ResourceMetrics {
        resource: Some(resource),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(crate::traces::scope()),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

/// [`endpoint_metrics`] under `process`'s Resource.
pub fn process_metrics(
    process: &ProcessInfo,
    network: &ProcessNetwork,
    now_ns: u64,
) -> ResourceMetrics {
    resource_metrics(process.to_resource(), endpoint_metrics(network, now_ns))
}

/// [`interface_metrics`] of the network namespace with inode `netns`, under the Resource of
/// what owns it: `member` (a process in it) stripped of its `process.*` attributes, so a pod's
/// or container's namespace is described by its `k8s.*`/`container.*` attributes and the
/// host's by `host.name`; plus `wirelens.network.namespace`.
pub fn namespace_metrics(
    member: &ProcessInfo,
    netns: u64,
    interfaces: &[Interface],
    start_ns: u64,
    now_ns: u64,
) -> ResourceMetrics {
    let mut resource = member.to_resource();
    let host_namespace = member.container.is_none() && member.pod.is_none();
    let dropped =
        |key: &str| key.starts_with("process.") || (host_namespace && key == semconv::SERVICE_NAME);
    resource.attributes.retain(|a| !dropped(&a.key));
    if host_namespace {
        // Without it, every such namespace would be one Prometheus target (`instance` falls
        // back to the host name once `process.pid` is gone) and their `lo` series would merge.
        let host = member.host_name.as_str();
        resource.attributes.push(kv::string(
            semconv::SERVICE_INSTANCE_ID,
            format!("{host}/netns/{netns}"),
        ));
    }
    resource.attributes.push(kv::int(
        semconv::WIRELENS_NETWORK_NAMESPACE,
        i64::try_from(netns).unwrap_or(i64::MAX),
    ));
    resource_metrics(resource, interface_metrics(interfaces, start_ns, now_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;

    fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
        metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn sum_points(m: &Metric) -> &[NumberDataPoint] {
        match &m.data {
            Some(Data::Sum(s)) => &s.data_points,
            other => panic!("{}: {other:?}", m.name),
        }
    }

    fn attr<'a>(p: &'a NumberDataPoint, key: &str) -> Option<&'a Any> {
        p.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn endpoints_and_overflow() {
        let client = Endpoint {
            peer: "10.0.0.2".parse().expect("ip"),
            peer_port: Some(5432),
            local_port: None,
        };
        let network = ProcessNetwork {
            start_ns: 1,
            endpoints: vec![
                (
                    Some(client),
                    EndpointCounts {
                        bytes_sent: 100,
                        bytes_received: 2000,
                        opened: 3,
                        closed: 2,
                        active: 1,
                        retransmits: 4,
                        rtt: Some(Rtt {
                            srtt_us: 250.0,
                            rttvar_us: 50.0,
                        }),
                        ..EndpointCounts::default()
                    },
                ),
                (
                    None,
                    EndpointCounts {
                        failed: {
                            let mut f = FailedConnects::default();
                            f.count(ConnectFailure::Timeout);
                            f
                        },
                        ..EndpointCounts::default()
                    },
                ),
            ],
        };
        let m = endpoint_metrics(&network, 10);
        let io = sum_points(find(&m, semconv::WIRELENS_NETWORK_IO));
        assert_eq!(io.len(), 4);
        let sent = io
            .iter()
            .find(|p| {
                attr(p, semconv::NETWORK_IO_DIRECTION) == Some(&Any::StringValue("transmit".into()))
                    && attr(p, semconv::NETWORK_PEER_PORT) == Some(&Any::IntValue(5432))
            })
            .expect("sent bytes");
        assert_eq!(sent.value, Some(number_data_point::Value::AsInt(100)));
        let failed = sum_points(find(&m, semconv::WIRELENS_TCP_CONNECTION_FAILED));
        let overflow = failed
            .iter()
            .find(|p| attr(p, semconv::OTEL_METRIC_OVERFLOW) == Some(&Any::BoolValue(true)))
            .expect("overflow series");
        assert_eq!(overflow.value, Some(number_data_point::Value::AsInt(1)));
        assert_eq!(
            attr(overflow, semconv::ERROR_TYPE),
            Some(&Any::StringValue("timeout".into()))
        );
        assert_eq!(failed.len(), 1, "no point for reasons never seen");
        assert!(
            m.iter()
                .all(|x| x.name != semconv::WIRELENS_NETWORK_PACKET_COUNT)
        );
        match &find(&m, semconv::WIRELENS_TCP_RTT).data {
            Some(Data::Gauge(g)) => assert_eq!(
                g.data_points[0].value,
                Some(number_data_point::Value::AsDouble(0.00025))
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn namespace_resource_drops_process_attributes() {
        let member = ProcessInfo {
            pid: 7,
            executable_name: "curl".into(),
            service_name: "curl".into(),
            host_name: "h".into(),
            ..ProcessInfo::default()
        };
        let interfaces = [Interface {
            name: "eth0".into(),
            rx: Direction {
                bytes: 5,
                packets: 1,
                errors: 0,
                dropped: 2,
            },
            tx: Direction::default(),
        }];
        let rm = namespace_metrics(&member, 4026531840, &interfaces, 1, 2);
        let keys: Vec<&str> = rm
            .resource
            .as_ref()
            .expect("resource")
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert!(keys.contains(&"host.name"));
        assert!(keys.contains(&semconv::WIRELENS_NETWORK_NAMESPACE));
        assert!(
            !keys
                .iter()
                .any(|k| k.starts_with("process.") || *k == "service.name")
        );
        let metrics = &rm.scope_metrics[0].metrics;
        let dropped = sum_points(find(metrics, semconv::SYSTEM_NETWORK_PACKET_DROPPED));
        assert_eq!(dropped.len(), 2);
    }
}
