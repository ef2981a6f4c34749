//! Resource figures of processes, containers and pods → OTLP metrics under the Resource of
//! what they describe.
//!
//! Pure: the agent reads `/proc` and the cgroup files into [`ProcessFigures`] and
//! [`CgroupFigures`] and calls [`process_metrics`], [`container_metrics`] and [`pod_metrics`];
//! the results go out with the next metrics export (see
//! [`crate::export::ExportMonitor::set_source_metrics`]).
//!
//! - Processes: `process.cpu.time` and `process.cpu.utilization` per `cpu.mode` (`user`,
//!   `system`), `process.memory.usage` (resident) and `process.memory.virtual`,
//!   `process.disk.io` per `disk.io.direction`, `process.paging.faults` per
//!   `system.paging.fault.type`, `process.thread.count`, `process.unix.file_descriptor.count`
//!   (the registry deprecates `process.open_file_descriptor.count` for it) and
//!   `process.context_switches` per `process.context_switch.type`. Monotonic sums start at the
//!   process's start.
//! - Containers (their cgroup): `container.cpu.time` per `cpu.mode`, `container.memory.usage`,
//!   `container.disk.io`, `container.paging.faults`, and the CPU quota's throttling as
//!   `wirelens.container.cpu.{periods,throttled.periods,throttled.time}` (no convention
//!   names it). Pods (the pod's cgroup): `k8s.pod.cpu.time`, `k8s.pod.memory.usage`,
//!   `k8s.pod.paging.faults`.
//! - `container.memory.usage` and `k8s.pod.memory.usage` go out as non-monotonic sums (the
//!   charge falls as well as rises; a counter would read each fall as a reset).
//!
//! A figure the agent could not read (`None`) is left out rather than sent as 0.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point::Value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::{ContainerInfo, PodInfo, ProcessInfo, kv, semconv};

/// What `/proc/<pid>` says of one process at one instant.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessFigures {
    /// When the process started, nanoseconds since the Unix epoch (start of its sums).
    pub start_ns: u64,
    /// CPU time in user mode, seconds.
    pub cpu_user: f64,
    /// CPU time in kernel mode, seconds.
    pub cpu_system: f64,
    /// Share of the CPUs the process may run on used since the previous reading, per mode
    /// (user, system); `None` on the first reading.
    pub utilization: Option<(f64, f64)>,
    /// Resident set size, bytes.
    pub memory_resident: u64,
    /// Virtual memory size, bytes.
    pub memory_virtual: u64,
    /// Bytes read from and written to storage (`/proc/<pid>/io`), when readable.
    pub disk: Option<(u64, u64)>,
    /// Minor and major page faults.
    pub faults: (u64, u64),
    /// Threads.
    pub threads: u64,
    /// Open file descriptors, when readable.
    pub file_descriptors: Option<u64>,
    /// Voluntary and involuntary context switches, when readable.
    pub context_switches: Option<(u64, u64)>,
}

/// What a container's or pod's cgroup files say at one instant; `None` where the file is
/// missing or unreadable.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CgroupFigures {
    /// Start of the sums, nanoseconds since the Unix epoch (when the agent first saw it).
    pub start_ns: u64,
    /// CPU time in user and kernel mode, seconds.
    pub cpu: Option<(f64, f64)>,
    /// Memory charged to the cgroup, bytes.
    pub memory_usage: Option<u64>,
    /// Bytes read from and written to block devices.
    pub disk: Option<(u64, u64)>,
    /// Minor and major page faults.
    pub faults: Option<(u64, u64)>,
    /// CPU quota throttling: periods enforced, periods throttled, seconds throttled.
    pub throttling: Option<(u64, u64, f64)>,
}

/// Builds the metrics of one Resource at one instant.
struct Builder {
    start_ns: u64,
    now_ns: u64,
    metrics: Vec<Metric>,
}

impl Builder {
    fn new(start_ns: u64, now_ns: u64) -> Self {
        Self {
            start_ns: start_ns.min(now_ns),
            now_ns,
            metrics: Vec::new(),
        }
    }

    fn points(&self, values: Vec<(Vec<KeyValue>, Value)>) -> Vec<NumberDataPoint> {
        values
            .into_iter()
            .map(|(attributes, value)| NumberDataPoint {
                attributes,
                start_time_unix_nano: self.start_ns,
                time_unix_nano: self.now_ns,
                value: Some(value),
                ..NumberDataPoint::default()
            })
            .collect()
    }

    fn sum(
        &mut self,
        name: &str,
        unit: &str,
        monotonic: bool,
        values: Vec<(Vec<KeyValue>, Value)>,
    ) {
        let data_points = self.points(values);
        self.metrics.push(Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Sum(Sum {
                data_points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: monotonic,
            })),
            ..Metric::default()
        });
    }

    fn gauge(&mut self, name: &str, unit: &str, values: Vec<(Vec<KeyValue>, Value)>) {
        let data_points = self.points(values);
        self.metrics.push(Metric {
            name: name.to_owned(),
            unit: unit.to_owned(),
            data: Some(Data::Gauge(Gauge { data_points })),
            ..Metric::default()
        });
    }

    fn finish(self, resource: Resource) -> ResourceMetrics {
        ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(crate::traces::scope()),
                metrics: self.metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }
    }
}

fn int(n: u64) -> Value {
    Value::AsInt(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Two points of one metric, told apart by `key`.
fn pair(key: &str, (a, b): (&str, &str), (x, y): (Value, Value)) -> Vec<(Vec<KeyValue>, Value)> {
    vec![(vec![kv::string(key, a)], x), (vec![kv::string(key, b)], y)]
}

fn cpu_modes((user, system): (f64, f64)) -> Vec<(Vec<KeyValue>, Value)> {
    pair(
        semconv::CPU_MODE,
        ("user", "system"),
        (Value::AsDouble(user), Value::AsDouble(system)),
    )
}

fn directions((read, write): (u64, u64)) -> Vec<(Vec<KeyValue>, Value)> {
    pair(
        semconv::DISK_IO_DIRECTION,
        ("read", "write"),
        (int(read), int(write)),
    )
}

fn fault_types((minor, major): (u64, u64)) -> Vec<(Vec<KeyValue>, Value)> {
    pair(
        semconv::SYSTEM_PAGING_FAULT_TYPE,
        ("minor", "major"),
        (int(minor), int(major)),
    )
}

fn alone(value: Value) -> Vec<(Vec<KeyValue>, Value)> {
    vec![(Vec::new(), value)]
}

/// A process's figures under its Resource, as of `now_ns`.
pub fn process_metrics(process: &ProcessInfo, f: &ProcessFigures, now_ns: u64) -> ResourceMetrics {
    let mut b = Builder::new(f.start_ns, now_ns);
    b.sum(
        semconv::PROCESS_CPU_TIME,
        "s",
        true,
        cpu_modes((f.cpu_user, f.cpu_system)),
    );
    if let Some(shares) = f.utilization {
        b.gauge(semconv::PROCESS_CPU_UTILIZATION, "1", cpu_modes(shares));
    }
    b.sum(
        semconv::PROCESS_MEMORY_USAGE,
        "By",
        false,
        alone(int(f.memory_resident)),
    );
    b.sum(
        semconv::PROCESS_MEMORY_VIRTUAL,
        "By",
        false,
        alone(int(f.memory_virtual)),
    );
    if let Some(disk) = f.disk {
        b.sum(semconv::PROCESS_DISK_IO, "By", true, directions(disk));
    }
    b.sum(
        semconv::PROCESS_PAGING_FAULTS,
        "{fault}",
        true,
        fault_types(f.faults),
    );
    b.sum(
        semconv::PROCESS_THREAD_COUNT,
        "{thread}",
        false,
        alone(int(f.threads)),
    );
    if let Some(fds) = f.file_descriptors {
        b.sum(
            semconv::PROCESS_UNIX_FILE_DESCRIPTOR_COUNT,
            "{file_descriptor}",
            false,
            alone(int(fds)),
        );
    }
    if let Some((voluntary, involuntary)) = f.context_switches {
        b.sum(
            semconv::PROCESS_CONTEXT_SWITCHES,
            "{context_switch}",
            true,
            pair(
                semconv::PROCESS_CONTEXT_SWITCH_TYPE,
                ("voluntary", "involuntary"),
                (int(voluntary), int(involuntary)),
            ),
        );
    }
    b.finish(process.to_resource())
}

/// A container's cgroup figures under the container's Resource (see
/// [`ContainerInfo::to_resource`]), as of `now_ns`.
pub fn container_metrics(
    container: &ContainerInfo,
    pod: Option<&PodInfo>,
    host_name: &str,
    f: &CgroupFigures,
    now_ns: u64,
) -> ResourceMetrics {
    let mut b = Builder::new(f.start_ns, now_ns);
    if let Some(cpu) = f.cpu {
        b.sum(semconv::CONTAINER_CPU_TIME, "s", true, cpu_modes(cpu));
    }
    if let Some(bytes) = f.memory_usage {
        b.sum(
            semconv::CONTAINER_MEMORY_USAGE,
            "By",
            false,
            alone(int(bytes)),
        );
    }
    if let Some(disk) = f.disk {
        b.sum(semconv::CONTAINER_DISK_IO, "By", true, directions(disk));
    }
    if let Some(faults) = f.faults {
        b.sum(
            semconv::CONTAINER_PAGING_FAULTS,
            "{fault}",
            true,
            fault_types(faults),
        );
    }
    if let Some((periods, throttled, seconds)) = f.throttling {
        b.sum(
            semconv::WIRELENS_CONTAINER_CPU_PERIODS,
            "{period}",
            true,
            alone(int(periods)),
        );
        b.sum(
            semconv::WIRELENS_CONTAINER_CPU_THROTTLED_PERIODS,
            "{period}",
            true,
            alone(int(throttled)),
        );
        b.sum(
            semconv::WIRELENS_CONTAINER_CPU_THROTTLED_TIME,
            "s",
            true,
            alone(Value::AsDouble(seconds)),
        );
    }
    b.finish(container.to_resource(pod, host_name))
}

/// A pod's cgroup figures under the pod's Resource (see [`ContainerInfo::pod_resource`];
/// `container` is any container of the pod), as of `now_ns`. `None` outside a pod.
pub fn pod_metrics(
    container: &ContainerInfo,
    pod: Option<&PodInfo>,
    host_name: &str,
    f: &CgroupFigures,
    now_ns: u64,
) -> Option<ResourceMetrics> {
    let resource = container.pod_resource(pod, host_name)?;
    let mut b = Builder::new(f.start_ns, now_ns);
    if let Some(cpu) = f.cpu {
        b.sum(semconv::K8S_POD_CPU_TIME, "s", true, cpu_modes(cpu));
    }
    if let Some(bytes) = f.memory_usage {
        b.sum(
            semconv::K8S_POD_MEMORY_USAGE,
            "By",
            false,
            alone(int(bytes)),
        );
    }
    if let Some(faults) = f.faults {
        b.sum(
            semconv::K8S_POD_PAGING_FAULTS,
            "{fault}",
            true,
            fault_types(faults),
        );
    }
    Some(b.finish(resource))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::attr_map;

    fn metric<'a>(rm: &'a ResourceMetrics, name: &str) -> &'a Metric {
        rm.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    fn sum_points(m: &Metric) -> (&[NumberDataPoint], bool) {
        match &m.data {
            Some(Data::Sum(s)) => (&s.data_points, s.is_monotonic),
            other => panic!("{}: {other:?}", m.name),
        }
    }

    fn by(points: &[NumberDataPoint], key: &str, value: &str) -> Value {
        points
            .iter()
            .find(|p| attr_map(&p.attributes).get(key).map(String::as_str) == Some(value))
            .and_then(|p| p.value)
            .unwrap_or_else(|| panic!("no {key}={value}"))
    }

    #[test]
    fn process_figures_become_semconv_metrics() {
        let info = ProcessInfo {
            pid: 42,
            executable_name: "burn".into(),
            service_name: "burn".into(),
            ..ProcessInfo::default()
        };
        let figures = ProcessFigures {
            start_ns: 1_000,
            cpu_user: 1.5,
            cpu_system: 0.25,
            utilization: Some((0.5, 0.125)),
            memory_resident: 200 << 20,
            memory_virtual: 300 << 20,
            disk: Some((4096, 64 << 20)),
            faults: (51_000, 2),
            threads: 3,
            file_descriptors: Some(5),
            context_switches: Some((10, 7)),
        };
        let rm = process_metrics(&info, &figures, 9_000);
        assert_eq!(
            attr_map(&rm.resource.as_ref().expect("resource").attributes)["process.pid"],
            "42"
        );
        let (cpu, monotonic) = sum_points(metric(&rm, "process.cpu.time"));
        assert!(monotonic);
        assert_eq!(by(cpu, "cpu.mode", "user"), Value::AsDouble(1.5));
        assert_eq!(by(cpu, "cpu.mode", "system"), Value::AsDouble(0.25));
        assert!(cpu.iter().all(|p| p.start_time_unix_nano == 1_000));
        assert!(cpu.iter().all(|p| p.time_unix_nano == 9_000));
        let utilization = metric(&rm, "process.cpu.utilization");
        assert_eq!(utilization.unit, "1");
        assert!(matches!(&utilization.data, Some(Data::Gauge(g)) if g.data_points.len() == 2));
        let (rss, monotonic) = sum_points(metric(&rm, "process.memory.usage"));
        assert!(!monotonic);
        assert_eq!(rss[0].value, Some(Value::AsInt(200 << 20)));
        let (io, _) = sum_points(metric(&rm, "process.disk.io"));
        assert_eq!(by(io, "disk.io.direction", "write"), Value::AsInt(64 << 20));
        let (faults, _) = sum_points(metric(&rm, "process.paging.faults"));
        assert_eq!(
            by(faults, "system.paging.fault.type", "major"),
            Value::AsInt(2)
        );
        let (switches, _) = sum_points(metric(&rm, "process.context_switches"));
        assert_eq!(
            by(switches, "process.context_switch.type", "involuntary"),
            Value::AsInt(7)
        );
        let fds = metric(&rm, "process.unix.file_descriptor.count");
        assert_eq!(fds.unit, "{file_descriptor}");
        assert_eq!(metric(&rm, "process.thread.count").unit, "{thread}");
    }

    #[test]
    fn unreadable_figures_are_left_out() {
        let rm = process_metrics(&ProcessInfo::default(), &ProcessFigures::default(), 5);
        let names: Vec<&str> = rm.scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for absent in [
            "process.cpu.utilization",
            "process.disk.io",
            "process.unix.file_descriptor.count",
            "process.context_switches",
        ] {
            assert!(!names.contains(&absent), "{absent}");
        }
        let empty = container_metrics(
            &ContainerInfo::default(),
            None,
            "h",
            &CgroupFigures::default(),
            5,
        );
        assert!(empty.scope_metrics[0].metrics.is_empty());
    }

    #[test]
    fn container_and_pod_figures_under_their_own_resources() {
        let container = ContainerInfo {
            id: "c0ffee".into(),
            name: "web-1".into(),
            k8s_pod_name: "web-7d9f".into(),
            k8s_pod_uid: "u1".into(),
            k8s_namespace: "shop".into(),
            k8s_container_name: "web".into(),
            ..ContainerInfo::default()
        };
        let pod = PodInfo {
            uid: "u1".into(),
            node_name: "n1".into(),
            service_name: Some("shop-web".into()),
            ..PodInfo::default()
        };
        let figures = CgroupFigures {
            start_ns: 10,
            cpu: Some((2.0, 0.5)),
            memory_usage: Some(1 << 20),
            disk: Some((0, 4096)),
            faults: Some((100, 1)),
            throttling: Some((50, 5, 0.25)),
        };
        let rm = container_metrics(&container, Some(&pod), "h", &figures, 20);
        let attrs = attr_map(&rm.resource.as_ref().expect("resource").attributes);
        assert_eq!(attrs["container.id"], "c0ffee");
        assert_eq!(attrs["service.name"], "web");
        assert_eq!(attrs["k8s.node.name"], "n1");
        assert!(!attrs.contains_key("process.pid"));
        let (cpu, _) = sum_points(metric(&rm, "container.cpu.time"));
        assert_eq!(by(cpu, "cpu.mode", "user"), Value::AsDouble(2.0));
        let (memory, monotonic) = sum_points(metric(&rm, "container.memory.usage"));
        assert!(!monotonic);
        assert_eq!(memory[0].value, Some(Value::AsInt(1 << 20)));
        let (throttled, _) = sum_points(metric(&rm, "wirelens.container.cpu.throttled.time"));
        assert_eq!(throttled[0].value, Some(Value::AsDouble(0.25)));

        let rm = pod_metrics(&container, Some(&pod), "h", &figures, 20).expect("in a pod");
        let attrs = attr_map(&rm.resource.as_ref().expect("resource").attributes);
        assert_eq!(attrs["k8s.pod.uid"], "u1");
        assert_eq!(attrs["service.name"], "shop-web");
        assert!(!attrs.contains_key("container.id"));
        let names: Vec<&str> = rm.scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "k8s.pod.cpu.time",
                "k8s.pod.memory.usage",
                "k8s.pod.paging.faults"
            ]
        );
        let outside = ContainerInfo {
            id: "d".into(),
            ..ContainerInfo::default()
        };
        assert!(pod_metrics(&outside, None, "h", &figures, 20).is_none());
    }
}
