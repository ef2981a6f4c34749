//! OTLP metrics → the Prometheus text formats (OpenMetrics 1.0 and the classic 0.0.4), named as
//! the OpenTelemetry "Prometheus and OpenMetrics compatibility" specification says.
//!
//! - **Names**: characters outside `[a-zA-Z0-9_:]` become `_` (runs of `_` collapse to one),
//!   then the unit is appended as a word (`s` → `_seconds`, `By` → `_bytes`; annotations such
//!   as `{event}` are dropped) unless the name already ends with it, and monotonic sums get
//!   `_total`: `http.server.request.duration` → `http_server_request_duration_seconds`
//!   (`_bucket`, `_sum`, `_count`), `wirelens.events` → `wirelens_events_total`.
//! - **Labels**: each attribute, its key sanitised the same way (a leading digit or `_` gets a
//!   `key_` prefix); plus `otel_scope_name` and `otel_scope_version`.
//! - **Resource**: `job` is `service.namespace/service.name` (or `service.name`), `instance`
//!   is `service.instance.id`. The Resources wirelens makes have no instance id, and one
//!   service often runs as many processes, so `instance` falls back to
//!   `<host.name>/<process.pid>` (`<host.name>/<container.id>` for a container's own
//!   Resource): series of two processes of one service stay apart. The other
//!   Resource attributes go on one `target_info` series per Resource.
//! - Monotonic cumulative sums are counters, other sums and gauges are gauges, cumulative
//!   histograms are histograms; delta points, summaries and exponential histograms (which
//!   wirelens does not make) are left out. Two Resources that come out with the same labels
//!   have their points added together rather than shown twice.
//!
//! The encoding itself is `prometheus-client`'s.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric::Data, number_data_point,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::semconv;

/// Which text format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text (`# UNIT` lines, `# EOF`), what Prometheus asks for first.
    OpenMetrics,
    /// The classic Prometheus text format, version 0.0.4.
    Prometheus,
}

impl Format {
    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it names it,
    /// else the classic text.
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Prometheus,
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// `request` as a scrape response in `format`.
pub fn render(request: &ExportMetricsServiceRequest, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot::from_request(request)));
    let mut out = String::new();
    // Writing to a String cannot fail; an encoder error would only cut the text short.
    let _ = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    out
}

/// Labels of one series, sorted by name.
type Labels = Vec<(String, String)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Clone, Debug)]
enum Value {
    Number(f64),
    Histogram {
        sum: f64,
        count: u64,
        /// Upper bound and the count of that bucket alone; the last bound is +Inf.
        buckets: Vec<(f64, u64)>,
    },
}

#[derive(Debug)]
struct Family {
    help: String,
    unit: Option<Unit>,
    kind: Kind,
    series: BTreeMap<Labels, Value>,
}

/// Everything in one request, grouped by Prometheus metric family.
#[derive(Debug, Default)]
struct Snapshot {
    /// By name without the unit and `_total` suffixes (the encoder adds them).
    families: BTreeMap<String, Family>,
    /// One label set per Resource.
    targets: Vec<Labels>,
}

impl Snapshot {
    fn from_request(request: &ExportMetricsServiceRequest) -> Self {
        let mut snapshot = Self::default();
        for rm in &request.resource_metrics {
            let resource = rm
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default();
            let (target, info) = target_labels(resource);
            if !info.is_empty() {
                let mut all = target.clone();
                all.extend(info);
                snapshot.targets.push(sorted(all));
            }
            for sm in &rm.scope_metrics {
                let mut base = target.clone();
                if let Some(scope) = &sm.scope {
                    base.push(("otel_scope_name".into(), scope.name.clone()));
                    base.push(("otel_scope_version".into(), scope.version.clone()));
                }
                for metric in &sm.metrics {
                    snapshot.add_metric(metric, &base);
                }
            }
        }
        if !snapshot.targets.is_empty() {
            snapshot.targets.sort();
            snapshot.targets.dedup();
        }
        snapshot
    }

    fn add_metric(
        &mut self,
        metric: &opentelemetry_proto::tonic::metrics::v1::Metric,
        base: &Labels,
    ) {
        let cumulative = AggregationTemporality::Cumulative as i32;
        let (kind, points): (Kind, Vec<(Labels, Value)>) = match &metric.data {
            Some(Data::Sum(sum))
                if sum.is_monotonic && sum.aggregation_temporality == cumulative =>
            {
                (Kind::Counter, number_points(&sum.data_points, base))
            }
            Some(Data::Sum(sum)) if !sum.is_monotonic => {
                (Kind::Gauge, number_points(&sum.data_points, base))
            }
            Some(Data::Gauge(gauge)) => (Kind::Gauge, number_points(&gauge.data_points, base)),
            Some(Data::Histogram(h)) if h.aggregation_temporality == cumulative => (
                Kind::Histogram,
                h.data_points
                    .iter()
                    .map(|p| (point_labels(base, &p.attributes), histogram_value(p)))
                    .collect(),
            ),
            _ => return,
        };
        let unit = unit_word(&metric.unit, kind);
        let mut name = sanitize(&metric.name);
        if kind == Kind::Counter {
            name = strip_suffix(&name, "_total");
        }
        if let Some(unit) = &unit {
            name = strip_suffix(&name, &format!("_{unit}"));
        }
        let family = self.families.entry(name).or_insert_with(|| Family {
            help: if metric.description.is_empty() {
                metric.name.clone()
            } else {
                metric.description.clone()
            },
            unit: unit.map(Unit::Other),
            kind,
            series: BTreeMap::new(),
        });
        if family.kind != kind {
            // Two instruments that come out with one name: the first one's type wins.
            return;
        }
        for (labels, value) in points {
            match family.series.get_mut(&labels) {
                Some(old) => merge(old, value),
                None => {
                    family.series.insert(labels, value);
                }
            }
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (name, family) in &self.families {
            let kind = match family.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
                Kind::Histogram => MetricType::Histogram,
            };
            let mut metric =
                encoder.encode_descriptor(name, &family.help, family.unit.as_ref(), kind)?;
            for (labels, value) in &family.series {
                let mut point = metric.encode_family(labels)?;
                match (family.kind, value) {
                    // Whole counts as integers (`5`, not `5.0`).
                    (Kind::Counter, Value::Number(v))
                        if v.fract() == 0.0 && (0.0..9e15).contains(v) =>
                    {
                        point.encode_counter::<NoLabelSet, _, f64>(&(*v as u64), None)?
                    }
                    (Kind::Counter, Value::Number(v)) => {
                        point.encode_counter::<NoLabelSet, _, f64>(v, None)?
                    }
                    (Kind::Gauge, Value::Number(v)) => point.encode_gauge(v)?,
                    (
                        Kind::Histogram,
                        Value::Histogram {
                            sum,
                            count,
                            buckets,
                        },
                    ) => point.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?,
                    _ => {}
                }
            }
        }
        if !self.targets.is_empty() {
            let mut info =
                encoder.encode_descriptor("target", "Target metadata", None, MetricType::Info)?;
            for labels in &self.targets {
                info.encode_info(labels)?;
            }
        }
        Ok(())
    }
}

/// `job` and `instance` from the Resource, and the rest for `target_info`.
fn target_labels(resource: &[KeyValue]) -> (Labels, Labels) {
    let get = |key: &str| {
        resource
            .iter()
            .find(|kv| kv.key == key)
            .map(|kv| value_text(kv.value.as_ref()))
            .filter(|v| !v.is_empty())
    };
    let job = match (get(semconv::SERVICE_NAMESPACE), get(semconv::SERVICE_NAME)) {
        (Some(ns), Some(name)) => format!("{ns}/{name}"),
        (None, Some(name)) => name,
        (Some(ns), None) => format!("{ns}/unknown_service"),
        (None, None) => "unknown_service".to_owned(),
    };
    let instance = get(semconv::SERVICE_INSTANCE_ID).unwrap_or_else(|| {
        match (get(semconv::HOST_NAME), get(semconv::PROCESS_PID)) {
            (Some(host), Some(pid)) => format!("{host}/{pid}"),
            (None, Some(pid)) => pid,
            // A container's own Resource (its cgroup's figures) has no pid: its id instead.
            (Some(host), None) => match get(semconv::CONTAINER_ID) {
                Some(id) => format!("{host}/{id}"),
                None => host,
            },
            (None, None) => String::new(),
        }
    });
    let skip = [
        semconv::SERVICE_NAME,
        semconv::SERVICE_NAMESPACE,
        semconv::SERVICE_INSTANCE_ID,
    ];
    let info = resource
        .iter()
        .filter(|kv| !skip.contains(&kv.key.as_str()))
        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
        .collect();
    (
        vec![("job".into(), job), ("instance".into(), instance)],
        label_set(info),
    )
}

/// Attributes as labels, keys sanitised; values of keys that collide joined by `;` in the
/// order of their original keys.
fn label_set(attrs: Vec<(String, String)>) -> Labels {
    let mut by_key: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in attrs {
        by_key
            .entry(label_name(&key))
            .or_default()
            .insert(key, value);
    }
    by_key
        .into_iter()
        .map(|(name, values)| (name, values.into_values().collect::<Vec<_>>().join(";")))
        .collect()
}

fn point_labels(base: &Labels, attributes: &[KeyValue]) -> Labels {
    let attrs = attributes
        .iter()
        .map(|kv| (kv.key.clone(), value_text(kv.value.as_ref())))
        .collect();
    let mut labels = base.clone();
    for (name, value) in label_set(attrs) {
        // The Resource's job and instance and the scope win over an attribute of that name.
        if !labels.iter().any(|(n, _)| *n == name) {
            labels.push((name, value));
        }
    }
    sorted(labels)
}

fn sorted(mut labels: Labels) -> Labels {
    labels.sort();
    labels
}

fn number_points(points: &[NumberDataPoint], base: &Labels) -> Vec<(Labels, Value)> {
    points
        .iter()
        .map(|p| {
            let v = match p.value {
                Some(number_data_point::Value::AsInt(i)) => i as f64,
                Some(number_data_point::Value::AsDouble(d)) => d,
                None => 0.0,
            };
            (point_labels(base, &p.attributes), Value::Number(v))
        })
        .collect()
}

fn histogram_value(p: &HistogramDataPoint) -> Value {
    let mut buckets: Vec<(f64, u64)> = p
        .explicit_bounds
        .iter()
        .zip(&p.bucket_counts)
        .map(|(&bound, &count)| (bound, count))
        .collect();
    let counted: u64 = buckets.iter().map(|(_, c)| c).sum();
    // The last bucket (above every bound) is +Inf; without bucket counts everything is there.
    let rest = p
        .bucket_counts
        .get(p.explicit_bounds.len())
        .copied()
        .unwrap_or(p.count.saturating_sub(counted));
    buckets.push((f64::INFINITY, rest));
    Value::Histogram {
        sum: p.sum.unwrap_or(0.0),
        count: p.count,
        buckets,
    }
}

/// Adds `new` into `old` (two Resources that make the same labels).
fn merge(old: &mut Value, new: Value) {
    match (old, new) {
        (Value::Number(a), Value::Number(b)) => *a += b,
        (
            Value::Histogram {
                sum,
                count,
                buckets,
            },
            Value::Histogram {
                sum: s2,
                count: c2,
                buckets: b2,
            },
        ) if buckets.len() == b2.len() && buckets.iter().zip(&b2).all(|(a, b)| a.0 == b.0) => {
            *sum += s2;
            *count += c2;
            for (a, b) in buckets.iter_mut().zip(b2) {
                a.1 += b.1;
            }
        }
        // Different shapes cannot be added: the first one stays.
        _ => {}
    }
}

fn value_text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<String> = a.values.iter().map(|v| value_text(Some(v))).collect();
            format!("[{}]", items.join(","))
        }
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// A metric name: `[a-zA-Z0-9_:]` kept, anything else `_`, runs of `_` as one, no leading
/// digit.
fn sanitize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == ':' {
            c
        } else {
            '_'
        };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A label name: as a metric name without `:`; a leading digit or `_` gets `key_`.
fn label_name(key: &str) -> String {
    let name = sanitize(&key.replace(':', "_"));
    if name.starts_with('_') {
        format!("key{name}")
    } else {
        name
    }
}

fn strip_suffix(name: &str, suffix: &str) -> String {
    match name.strip_suffix(suffix) {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => name.to_owned(),
    }
}

/// The unit as the word appended to names, `None` for none (or only an annotation).
fn unit_word(unit: &str, kind: Kind) -> Option<String> {
    // `{packet}` and the like are annotations, not units.
    let mut plain = String::new();
    let mut depth = 0u32;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let word = |u: &str| -> Option<String> {
        Some(
            match u {
                "" => return None,
                "d" => "days",
                "h" => "hours",
                "min" => "minutes",
                "s" => "seconds",
                "ms" => "milliseconds",
                "us" => "microseconds",
                "ns" => "nanoseconds",
                "By" => "bytes",
                "KiBy" => "kibibytes",
                "MiBy" => "mebibytes",
                "GiBy" => "gibibytes",
                "KBy" => "kilobytes",
                "MBy" => "megabytes",
                "GBy" => "gigabytes",
                "bit" => "bits",
                "m" => "meters",
                "V" => "volts",
                "A" => "amperes",
                "J" => "joules",
                "W" => "watts",
                "g" => "grams",
                "Cel" => "celsius",
                "Hz" => "hertz",
                "%" => "percent",
                other => return Some(sanitize(other).trim_matches('_').to_owned()),
            }
            .to_owned(),
        )
    };
    match plain.trim() {
        "1" if kind == Kind::Gauge => Some("ratio".to_owned()),
        "1" => None,
        u => match u.split_once('/') {
            Some((num, per)) => match (word(num), word(per)) {
                (Some(n), Some(p)) => Some(format!("{n}_per_{}", p.trim_end_matches('s'))),
                (None, Some(p)) => Some(format!("per_{}", p.trim_end_matches('s'))),
                (n, None) => n,
            },
            None => word(u),
        },
    }
    .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::MetricsAggregator;
    use crate::test_util::{client_obs, process, server_obs};

    fn sample() -> ExportMetricsServiceRequest {
        let mut agg = MetricsAggregator::new(process(99));
        agg.record(&server_obs(1, "GET", "/", Some(200)));
        agg.record(&server_obs(1, "GET", "/", Some(200)));
        agg.record(&client_obs(2, "GET", "/", Some(404)));
        agg.set_agent_counters(&[("wirelens.events", 12), ("wirelens.capture.bytes", 5)]);
        agg.export_request(10_000)
    }

    #[test]
    fn names_follow_the_compatibility_spec() {
        assert_eq!(
            sanitize("http.server.request.duration"),
            "http_server_request_duration"
        );
        assert_eq!(sanitize("a..b-c"), "a_b_c");
        assert_eq!(sanitize("9lives"), "_9lives");
        assert_eq!(
            label_name("http.response.status_code"),
            "http_response_status_code"
        );
        assert_eq!(label_name("_private"), "key_private");
        assert_eq!(label_name("2xx"), "key_2xx");
        assert_eq!(unit_word("s", Kind::Histogram).as_deref(), Some("seconds"));
        assert_eq!(unit_word("By", Kind::Counter).as_deref(), Some("bytes"));
        assert_eq!(unit_word("{event}", Kind::Counter), None);
        assert_eq!(unit_word("1", Kind::Gauge).as_deref(), Some("ratio"));
        assert_eq!(
            unit_word("By/s", Kind::Gauge).as_deref(),
            Some("bytes_per_second")
        );
    }

    #[test]
    fn classic_text() {
        let text = render(&sample(), Format::Prometheus);
        let lines: Vec<&str> = text.lines().collect();
        let has = |l: &str| lines.contains(&l);
        assert!(
            has("# TYPE http_server_request_duration_seconds histogram"),
            "{text}"
        );
        let server = "error_type=\"\",";
        assert!(!text.contains(server), "no empty labels: {text}");
        let labels = "http_request_method=\"GET\",http_response_status_code=\"200\",instance=\"host/1\",job=\"svc1\",network_protocol_name=\"http\",network_protocol_version=\"1.1\",otel_scope_name=\"wirelens\"";
        let count = lines
            .iter()
            .find(|l| l.starts_with("http_server_request_duration_seconds_count{"))
            .copied()
            .unwrap_or_default();
        assert!(
            count.starts_with(&format!(
                "http_server_request_duration_seconds_count{{{labels}"
            )),
            "{count}"
        );
        assert!(count.ends_with("} 2"), "{count}");
        let inf = lines
            .iter()
            .find(|l| {
                l.starts_with("http_server_request_duration_seconds_bucket{")
                    && l.contains("le=\"+Inf\"")
            })
            .copied()
            .unwrap_or_default();
        assert!(inf.ends_with(" 2"), "{inf}");
        assert!(has("# TYPE wirelens_events_total counter"), "{text}");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("wirelens_capture_bytes_total{") && l.ends_with("} 5")),
            "the unit is not doubled: {text}"
        );
        let client = lines
            .iter()
            .find(|l| l.starts_with("http_client_request_duration_seconds_count{"))
            .copied()
            .unwrap_or_default();
        assert!(client.contains("job=\"svc2\"") && client.contains("instance=\"host/2\""));
        assert!(client.contains("error_type=\"404\""), "{client}");
        // One target_info per Resource, with the Resource's other attributes.
        let targets: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with("target_info{"))
            .collect();
        assert_eq!(targets.len(), 3, "{text}");
        assert!(targets.iter().any(|l| l.contains("instance=\"host/1\"")
            && l.contains("job=\"svc1\"")
            && l.contains("process_executable_name=\"exe1\"")
            && l.contains("process_pid=\"1\"")
            && !l.contains("service_name")));
    }

    #[test]
    fn openmetrics_text() {
        let text = render(&sample(), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("# UNIT http_server_request_duration_seconds seconds\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE target info\n"), "{text}");
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5"
            )),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept(None), Format::Prometheus);
    }

    #[test]
    fn resources_with_the_same_labels_add_up() {
        let mut request = sample();
        let copy = request.resource_metrics[1].clone();
        request.resource_metrics.push(copy);
        let text = render(&request, Format::Prometheus);
        let counts: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
            .collect();
        assert_eq!(counts.len(), 1, "{text}");
        assert!(counts[0].ends_with("} 4"), "{text}");
    }
}
