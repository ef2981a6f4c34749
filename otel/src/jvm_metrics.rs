//! A JVM's hsperfdata counters → OTLP metrics under its process's Resource: memory per pool,
//! GC counts and time per collector, threads, classes.
//!
//! Pure: the agent reads the file and calls [`resource_metrics`]; the result goes out with the
//! next metrics export (see [`crate::export::ExportMonitor::set_source_metrics`]).
//!
//! - `jvm.memory.{used,committed,limit}` (bytes) per `jvm.memory.pool.name`, from
//!   `sun.gc.generation.<g>.space.<s>.{used,capacity,maxCapacity}` and
//!   `sun.gc.{metaspace,compressedclassspace}.*`. Pools are named as the JVM's own memory
//!   MXBeans name them for G1, Parallel and Serial (`G1 Eden Space`, `PS Old Gen`,
//!   `Tenured Gen`...), so the series line up with those of a Java agent; other collectors get
//!   `eden`, `survivor`, `old`. The two survivor spaces are one pool, as in JMX. A limit of 0
//!   or less (unbounded) is left out.
//! - `jvm.gc.duration` is a histogram of single pauses: hsperfdata only keeps a count and a
//!   total per collector, so those go out as `wirelens.jvm.gc.count` and
//!   `wirelens.jvm.gc.time` (seconds: ticks over `sun.os.hrt.frequency`), monotonic sums per
//!   `jvm.gc.name` (the collector's hsperfdata name, e.g. `G1 young collection pauses`).
//! - `jvm.thread.count` per `jvm.thread.daemon` (`java.threads.live`, `java.threads.daemon`);
//!   `jvm.class.loaded`/`jvm.class.unloaded` (monotonic, CDS-shared classes included) and
//!   `jvm.class.count`.
//! - `jvm.cpu.time` (seconds, monotonic): no hsperfdata counter holds the process's CPU time,
//!   so the agent passes the process's user + system time from `/proc/<pid>/stat` (what the
//!   JVM's own `OperatingSystemMXBean.getProcessCpuTime` reports, from the same kernel
//!   counters).
//!
//! Monotonic sums start at the JVM's start (`sun.rt.createVmBeginTime`).

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use wirelens_parsers::hsperfdata::PerfData;

use crate::{ProcessInfo, kv, semconv};

/// One memory pool's figures, summed over the spaces it covers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Pool {
    name: String,
    heap: bool,
    used: i64,
    committed: i64,
    limit: i64,
}

/// The kinds of heap space hsperfdata distinguishes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Space {
    Eden,
    Survivor,
    Old,
}

/// The MXBean pool name of `space` under the collector `policy` (`sun.gc.policy.name`).
fn pool_name(policy: &str, space: Space) -> &'static str {
    match (policy, space) {
        ("GarbageFirst", Space::Eden) => "G1 Eden Space",
        ("GarbageFirst", Space::Survivor) => "G1 Survivor Space",
        ("GarbageFirst", Space::Old) => "G1 Old Gen",
        ("ParScav:MSC", Space::Eden) => "PS Eden Space",
        ("ParScav:MSC", Space::Survivor) => "PS Survivor Space",
        ("ParScav:MSC", Space::Old) => "PS Old Gen",
        ("Copy:MSC", Space::Eden) => "Eden Space",
        ("Copy:MSC", Space::Survivor) => "Survivor Space",
        ("Copy:MSC", Space::Old) => "Tenured Gen",
        (_, Space::Eden) => "eden",
        (_, Space::Survivor) => "survivor",
        (_, Space::Old) => "old",
    }
}

/// Heap pools from the generations' spaces, then the non-heap ones.
fn pools(data: &PerfData) -> Vec<Pool> {
    let policy = data.string("sun.gc.policy.name").unwrap_or("");
    let mut pools: Vec<Pool> = Vec::new();
    for generation in 0..2 {
        for index in 0.. {
            let prefix = format!("sun.gc.generation.{generation}.space.{index}");
            let Some(space_name) = data.string(&format!("{prefix}.name")) else {
                break;
            };
            let space = match (generation, space_name) {
                (0, "eden") => Space::Eden,
                (0, _) => Space::Survivor,
                _ => Space::Old,
            };
            let name = pool_name(policy, space);
            let field = |f: &str| data.long(&format!("{prefix}.{f}")).unwrap_or(0);
            let pool = match pools.iter_mut().find(|p| p.name == name) {
                Some(pool) => pool,
                None => {
                    pools.push(Pool {
                        name: name.to_owned(),
                        heap: true,
                        ..Pool::default()
                    });
                    let last = pools.len() - 1;
                    &mut pools[last]
                }
            };
            pool.used = pool.used.saturating_add(field("used"));
            pool.committed = pool.committed.saturating_add(field("capacity"));
            pool.limit = pool.limit.saturating_add(field("maxCapacity"));
        }
    }
    for (prefix, name) in [
        ("sun.gc.metaspace", "Metaspace"),
        ("sun.gc.compressedclassspace", "Compressed Class Space"),
    ] {
        let Some(used) = data.long(&format!("{prefix}.used")) else {
            continue;
        };
        pools.push(Pool {
            name: name.to_owned(),
            heap: false,
            used,
            committed: data.long(&format!("{prefix}.capacity")).unwrap_or(0),
            limit: data.long(&format!("{prefix}.maxCapacity")).unwrap_or(0),
        });
    }
    pools
}

/// Builds the points of one metric.
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

    fn int(&mut self, attributes: Vec<KeyValue>, value: i64) {
        self.push(attributes, number_data_point::Value::AsInt(value));
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
}

/// Every metric hsperfdata allows, as of `now_ns`.
pub fn metrics(data: &PerfData, now_ns: u64) -> Vec<Metric> {
    let start_ns = start_ns(data, now_ns);
    let mut out = Vec::new();

    let pools = pools(data);
    let pool_attrs = |p: &Pool| {
        vec![
            kv::string(
                semconv::JVM_MEMORY_TYPE,
                if p.heap { "heap" } else { "non_heap" },
            ),
            kv::string(semconv::JVM_MEMORY_POOL_NAME, p.name.clone()),
        ]
    };
    let (mut used, mut committed, mut limit) = (
        Points::new(start_ns, now_ns),
        Points::new(start_ns, now_ns),
        Points::new(start_ns, now_ns),
    );
    for pool in &pools {
        used.int(pool_attrs(pool), pool.used);
        committed.int(pool_attrs(pool), pool.committed);
        if pool.limit > 0 {
            limit.int(pool_attrs(pool), pool.limit);
        }
    }
    out.extend(used.sum(semconv::JVM_MEMORY_USED, "By", false));
    out.extend(committed.sum(semconv::JVM_MEMORY_COMMITTED, "By", false));
    out.extend(limit.sum(semconv::JVM_MEMORY_LIMIT, "By", false));

    let frequency = data.long("sun.os.hrt.frequency").filter(|&f| f > 0);
    let (mut count, mut time) = (Points::new(start_ns, now_ns), Points::new(start_ns, now_ns));
    for index in 0.. {
        let prefix = format!("sun.gc.collector.{index}");
        let Some(name) = data.string(&format!("{prefix}.name")) else {
            break;
        };
        let attrs = || vec![kv::string(semconv::JVM_GC_NAME, name)];
        if let Some(n) = data.long(&format!("{prefix}.invocations")) {
            count.int(attrs(), n);
        }
        if let (Some(ticks), Some(f)) = (data.long(&format!("{prefix}.time")), frequency) {
            time.push(
                attrs(),
                number_data_point::Value::AsDouble(ticks as f64 / f as f64),
            );
        }
    }
    out.extend(count.sum(semconv::WIRELENS_JVM_GC_COUNT, "{collection}", true));
    out.extend(time.sum(semconv::WIRELENS_JVM_GC_TIME, "s", true));

    if let Some(live) = data.long("java.threads.live") {
        let daemon = data.long("java.threads.daemon").unwrap_or(0);
        let mut threads = Points::new(start_ns, now_ns);
        threads.int(vec![kv::bool(semconv::JVM_THREAD_DAEMON, true)], daemon);
        threads.int(
            vec![kv::bool(semconv::JVM_THREAD_DAEMON, false)],
            live.saturating_sub(daemon),
        );
        out.extend(threads.sum(semconv::JVM_THREAD_COUNT, "{thread}", false));
    }

    let both = |a: &str, b: &str| match (data.long(a), data.long(b)) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
    };
    let loaded = both("java.cls.loadedClasses", "java.cls.sharedLoadedClasses");
    let unloaded = both("java.cls.unloadedClasses", "java.cls.sharedUnloadedClasses");
    for (name, value, monotonic) in [
        (semconv::JVM_CLASS_LOADED, loaded, true),
        (semconv::JVM_CLASS_UNLOADED, unloaded, true),
        (
            semconv::JVM_CLASS_COUNT,
            loaded.map(|l| l.saturating_sub(unloaded.unwrap_or(0))),
            false,
        ),
    ] {
        if let Some(value) = value {
            let mut points = Points::new(start_ns, now_ns);
            points.int(Vec::new(), value);
            out.extend(points.sum(name, "{class}", monotonic));
        }
    }
    out
}

/// When the JVM started (Unix ns), `now_ns` if the file does not say.
fn start_ns(data: &PerfData, now_ns: u64) -> u64 {
    data.long("sun.rt.createVmBeginTime")
        .and_then(|ms| u64::try_from(ms).ok())
        .map_or(now_ns, |ms| ms.saturating_mul(1_000_000))
}

/// `jvm.cpu.time` of a JVM that has used `cpu_seconds` of CPU (user + system) since it
/// started.
pub fn cpu_time(data: &PerfData, cpu_seconds: f64, now_ns: u64) -> Option<Metric> {
    let mut points = Points::new(start_ns(data, now_ns), now_ns);
    points.push(Vec::new(), number_data_point::Value::AsDouble(cpu_seconds));
    points.sum(semconv::JVM_CPU_TIME, "s", true)
}

/// [`metrics`] (and [`cpu_time`] when known) under `process`'s Resource.
pub fn resource_metrics(
    process: &ProcessInfo,
    data: &PerfData,
    cpu_seconds: Option<f64>,
    now_ns: u64,
) -> ResourceMetrics {
    let mut metrics = metrics(data, now_ns);
    metrics.extend(cpu_seconds.and_then(|s| cpu_time(data, s, now_ns)));
    ResourceMetrics {
        resource: Some(process.to_resource()),
        scope_metrics: vec![ScopeMetrics {
            scope: Some(crate::traces::scope()),
            metrics,
            schema_url: String::new(),
        }],
        schema_url: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;

    const RECORDED: &[u8] =
        include_bytes!("../../parsers/testdata/hsperfdata/openjdk17-g1-64mib.hsperfdata");

    fn attr<'a>(p: &'a NumberDataPoint, key: &str) -> Option<&'a Any> {
        p.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn points<'a>(metrics: &'a [Metric], name: &str) -> &'a [NumberDataPoint] {
        let metric = metrics
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} missing"));
        match &metric.data {
            Some(Data::Sum(s)) => &s.data_points,
            other => panic!("{name}: {other:?}"),
        }
    }

    fn int(p: &NumberDataPoint) -> i64 {
        match p.value {
            Some(number_data_point::Value::AsInt(v)) => v,
            other => panic!("not an int: {other:?}"),
        }
    }

    fn by_pool(metrics: &[Metric], name: &str, pool: &str) -> i64 {
        let found = points(metrics, name)
            .iter()
            .find(|p| {
                attr(p, semconv::JVM_MEMORY_POOL_NAME) == Some(&Any::StringValue(pool.into()))
            })
            .unwrap_or_else(|| panic!("{name} {pool} missing"));
        int(found)
    }

    #[test]
    fn recorded_g1_file() {
        let data = wirelens_parsers::hsperfdata::parse(RECORDED).expect("parses");
        let m = metrics(&data, 2_000_000_000_000_000_000);
        assert_eq!(
            by_pool(&m, semconv::JVM_MEMORY_USED, "G1 Old Gen"),
            135_417_496
        );
        assert_eq!(by_pool(&m, semconv::JVM_MEMORY_USED, "G1 Eden Space"), 0);
        assert_eq!(by_pool(&m, semconv::JVM_MEMORY_USED, "Metaspace"), 435_528);
        assert_eq!(
            by_pool(&m, semconv::JVM_MEMORY_USED, "Compressed Class Space"),
            29_448
        );
        assert_eq!(
            by_pool(&m, semconv::JVM_MEMORY_LIMIT, "Metaspace"),
            1_140_850_688
        );
        assert_eq!(points(&m, semconv::JVM_MEMORY_USED).len(), 5);
        let heap = points(&m, semconv::JVM_MEMORY_USED)
            .iter()
            .filter(|p| attr(p, semconv::JVM_MEMORY_TYPE) == Some(&Any::StringValue("heap".into())))
            .count();
        assert_eq!(heap, 3);

        let threads: i64 = points(&m, semconv::JVM_THREAD_COUNT).iter().map(int).sum();
        assert_eq!(threads, 7);
        assert!(int(&points(&m, semconv::JVM_CLASS_LOADED)[0]) >= 45);

        let gc = points(&m, semconv::WIRELENS_JVM_GC_COUNT);
        assert_eq!(gc.len(), 3);
        let full = gc
            .iter()
            .find(|p| {
                attr(p, semconv::JVM_GC_NAME)
                    == Some(&Any::StringValue("G1 full collection pauses".into()))
            })
            .expect("full GC collector");
        assert_eq!(int(full), 1);
        // 67038484 ticks at 1 GHz.
        let time = points(&m, semconv::WIRELENS_JVM_GC_TIME);
        assert!(
            time.iter()
                .any(|p| p.value == Some(number_data_point::Value::AsDouble(0.067038484)))
        );
        // Monotonic sums start when the JVM did.
        let start = data.long("sun.rt.createVmBeginTime").expect("start") as u64 * 1_000_000;
        assert!(gc.iter().all(|p| p.start_time_unix_nano == start));
    }

    #[test]
    fn cpu_time_is_a_monotonic_sum_from_the_jvm_start() {
        let data = wirelens_parsers::hsperfdata::parse(RECORDED).expect("parses");
        let m = cpu_time(&data, 1.25, 2_000_000_000_000_000_000).expect("metric");
        assert_eq!((m.name.as_str(), m.unit.as_str()), ("jvm.cpu.time", "s"));
        let Some(Data::Sum(sum)) = &m.data else {
            panic!("{m:?}")
        };
        assert!(sum.is_monotonic);
        let p = &sum.data_points[0];
        assert_eq!(p.value, Some(number_data_point::Value::AsDouble(1.25)));
        assert!(p.attributes.is_empty());
        let start = data.long("sun.rt.createVmBeginTime").expect("start") as u64 * 1_000_000;
        assert_eq!(p.start_time_unix_nano, start);
    }
}
