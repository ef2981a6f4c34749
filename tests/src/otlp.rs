//! Flattens the receiver's JSON (protobuf's JSON mapping of the OTLP export requests) into one
//! struct per span and per metric data point, with attribute values as plain JSON values.
//!
//! `MessageToDict` writes 64-bit integers as strings (`int_value`, counts, timestamps) and bytes
//! as base64 (trace and span ids), and leaves out fields that hold their default value; this
//! module turns integers back into numbers, ids into lowercase hex, and absent fields into their
//! defaults.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Value, json};

/// Attributes by key.
pub type Attributes = BTreeMap<String, Value>;

/// The explicit bucket bounds the HTTP semantic conventions advise for
/// `http.{server,client}.request.duration` (seconds).
pub const HTTP_DURATION_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One span with its Resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    /// `grpc` or `http`: how the request that carried it arrived.
    pub transport: String,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope name.
    pub scope: String,
    /// Span name.
    pub name: String,
    /// `SPAN_KIND_SERVER`, `SPAN_KIND_CLIENT`, ... (`SPAN_KIND_UNSPECIFIED` when absent).
    pub kind: String,
    /// Trace id, lowercase hex ("" when absent).
    pub trace_id: String,
    /// Span id, lowercase hex.
    pub span_id: String,
    /// Parent span id, lowercase hex ("" for a root span).
    pub parent_span_id: String,
    /// Start, ns since the Unix epoch.
    pub start_ns: u64,
    /// End, ns since the Unix epoch.
    pub end_ns: u64,
    /// Span attributes.
    pub attributes: Attributes,
    /// `STATUS_CODE_UNSET`, `STATUS_CODE_OK` or `STATUS_CODE_ERROR`.
    pub status_code: String,
    /// Status message ("" when absent).
    pub status_message: String,
}

impl Span {
    /// `true` for `SPAN_KIND_SERVER`.
    pub fn is_server(&self) -> bool {
        self.kind == "SPAN_KIND_SERVER"
    }

    /// `true` for `SPAN_KIND_CLIENT`.
    pub fn is_client(&self) -> bool {
        self.kind == "SPAN_KIND_CLIENT"
    }

    /// A span attribute; panics (showing the span) if it is missing.
    pub fn attr(&self, key: &str) -> &Value {
        self.attributes
            .get(key)
            .unwrap_or_else(|| panic!("span has no attribute {key:?}: {}", self.describe()))
    }

    /// A string span attribute; panics if missing or not a string.
    pub fn str_attr(&self, key: &str) -> &str {
        self.attr(key)
            .as_str()
            .unwrap_or_else(|| panic!("attribute {key:?} is not a string: {}", self.describe()))
    }

    /// An integer span attribute; panics if missing or not an integer.
    pub fn int_attr(&self, key: &str) -> i64 {
        self.attr(key)
            .as_i64()
            .unwrap_or_else(|| panic!("attribute {key:?} is not an integer: {}", self.describe()))
    }

    /// A Resource attribute; panics if missing.
    pub fn res(&self, key: &str) -> &Value {
        self.resource.get(key).unwrap_or_else(|| {
            panic!(
                "span's resource has no attribute {key:?}: {}",
                self.describe()
            )
        })
    }

    /// A string Resource attribute; panics if missing or not a string.
    pub fn res_str(&self, key: &str) -> &str {
        self.res(key).as_str().unwrap_or_else(|| {
            panic!(
                "resource attribute {key:?} is not a string: {}",
                self.describe()
            )
        })
    }

    /// An integer Resource attribute; panics if missing or not an integer.
    pub fn res_int(&self, key: &str) -> i64 {
        self.res(key).as_i64().unwrap_or_else(|| {
            panic!(
                "resource attribute {key:?} is not an integer: {}",
                self.describe()
            )
        })
    }

    /// The span as JSON, for messages and `tests/actual/`.
    pub fn to_json(&self) -> Value {
        json!({
            "transport": self.transport,
            "resource": self.resource,
            "scope": self.scope,
            "name": self.name,
            "kind": self.kind,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "attributes": self.attributes,
            "status_code": self.status_code,
            "status_message": self.status_message,
        })
    }

    fn describe(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).unwrap_or_default()
    }

    /// One line: kind, name, url, status, process.
    pub fn summary(&self) -> String {
        let get = |m: &Attributes, k: &str| m.get(k).map(|v| v.to_string()).unwrap_or_default();
        let url = self
            .attributes
            .get("url.full")
            .or_else(|| self.attributes.get("url.path"))
            .map(|v| v.to_string())
            .unwrap_or_default();
        format!(
            "{} {} {} status={} {} service={} pid={} client.port={}",
            self.kind.trim_start_matches("SPAN_KIND_"),
            self.name,
            url,
            get(&self.attributes, "http.response.status_code"),
            self.status_code.trim_start_matches("STATUS_CODE_"),
            get(&self.resource, "service.name"),
            get(&self.resource, "process.pid"),
            get(&self.attributes, "client.port"),
        )
    }
}

/// One line per distinct span summary with its count (`3x ...`), at most 60 lines, for panic
/// messages.
pub fn summarize_spans(spans: &[Span]) -> String {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for span in spans {
        let line = span.summary();
        match counts.iter_mut().find(|(l, _)| *l == line) {
            Some((_, n)) => *n += 1,
            None => counts.push((line, 1)),
        }
    }
    let mut out = String::new();
    for (line, n) in counts.iter().take(60) {
        let _ = writeln!(out, "  {n}x {line}");
    }
    if counts.len() > 60 {
        let _ = writeln!(out, "  ... and {} more distinct spans", counts.len() - 60);
    }
    if out.is_empty() {
        out.push_str("  (no spans)\n");
    }
    out
}

/// One metric data point with its metric and Resource.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    /// `grpc` or `http`.
    pub transport: String,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope name.
    pub scope: String,
    /// Metric name.
    pub name: String,
    /// Metric unit.
    pub unit: String,
    /// `histogram`, `sum`, `gauge`, `exponential_histogram` or `summary`.
    pub kind: String,
    /// `AGGREGATION_TEMPORALITY_CUMULATIVE`, `..._DELTA`, or "" (gauges).
    pub temporality: String,
    /// Sums only: monotonic.
    pub monotonic: bool,
    /// Data point attributes.
    pub attributes: Attributes,
    /// Start of the aggregation, ns since the Unix epoch.
    pub start_ns: u64,
    /// Time of the point, ns since the Unix epoch.
    pub time_ns: u64,
    /// Histograms: count.
    pub count: u64,
    /// Histograms: sum (absent when the exporter leaves it out).
    pub sum: Option<f64>,
    /// Histograms: counts per bucket.
    pub bucket_counts: Vec<u64>,
    /// Histograms: bucket bounds.
    pub explicit_bounds: Vec<f64>,
    /// Sums and gauges: the value (`as_int` or `as_double`).
    pub value: Option<f64>,
}

impl MetricPoint {
    /// `true` for delta temporality (points add up); cumulative points replace each other.
    pub fn is_delta(&self) -> bool {
        self.temporality == "AGGREGATION_TEMPORALITY_DELTA"
    }

    /// A string data point attribute, if present.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An integer data point attribute, if present.
    pub fn attr_int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }

    /// A string Resource attribute, if present.
    pub fn res_str(&self, key: &str) -> Option<&str> {
        self.resource.get(key).and_then(Value::as_str)
    }

    /// The point as JSON, for messages and `tests/actual/`.
    pub fn to_json(&self) -> Value {
        json!({
            "transport": self.transport,
            "resource": self.resource,
            "scope": self.scope,
            "name": self.name,
            "unit": self.unit,
            "kind": self.kind,
            "temporality": self.temporality,
            "monotonic": self.monotonic,
            "attributes": self.attributes,
            "start_ns": self.start_ns,
            "time_ns": self.time_ns,
            "count": self.count,
            "sum": self.sum,
            "bucket_counts": self.bucket_counts,
            "explicit_bounds": self.explicit_bounds,
            "value": self.value,
        })
    }

    fn series_key(&self) -> String {
        serde_json::to_string(&json!([self.resource, self.attributes])).unwrap_or_default()
    }
}

/// The histogram `name`, one point per series (Resource + attributes): the latest point of a
/// cumulative series, or the sum of a delta series' points.
pub fn histogram_series(points: &[MetricPoint], name: &str) -> Vec<MetricPoint> {
    let mut series: BTreeMap<String, MetricPoint> = BTreeMap::new();
    for p in points
        .iter()
        .filter(|p| p.name == name && p.kind == "histogram")
    {
        match series.get_mut(&p.series_key()) {
            None => {
                series.insert(p.series_key(), p.clone());
            }
            Some(acc) if p.is_delta() => {
                acc.count += p.count;
                acc.sum = match (acc.sum, p.sum) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                };
                if acc.bucket_counts.len() < p.bucket_counts.len() {
                    acc.bucket_counts.resize(p.bucket_counts.len(), 0);
                }
                for (a, b) in acc.bucket_counts.iter_mut().zip(&p.bucket_counts) {
                    *a += b;
                }
                acc.time_ns = acc.time_ns.max(p.time_ns);
            }
            Some(acc) => {
                if p.time_ns >= acc.time_ns {
                    *acc = p.clone();
                }
            }
        }
    }
    series.into_values().collect()
}

/// Total count of the histogram `name` over all its series (see [`histogram_series`]).
pub fn histogram_count(points: &[MetricPoint], name: &str) -> u64 {
    histogram_series(points, name).iter().map(|p| p.count).sum()
}

/// Total of the sum metric `name` over all its series: the latest point of each cumulative
/// series, or every point of a delta series.
pub fn sum_total(points: &[MetricPoint], name: &str) -> f64 {
    let mut series: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    for p in points.iter().filter(|p| p.name == name && p.kind == "sum") {
        let value = p.value.unwrap_or(0.0);
        let entry = series.entry(p.series_key()).or_insert((0, 0.0));
        if p.is_delta() {
            entry.1 += value;
        } else if p.time_ns >= entry.0 {
            *entry = (p.time_ns, value);
        }
    }
    series.values().map(|(_, v)| v).sum()
}

/// One OTLP log record with its Resource (the agent exports a bpftrace script's rows as log
/// records).
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    /// `grpc` or `http`: how the request that carried it arrived.
    pub transport: String,
    /// Resource attributes.
    pub resource: Attributes,
    /// Instrumentation scope name.
    pub scope: String,
    /// `event_name` (empty when the receiver's protobuf does not know the field).
    pub event_name: String,
    /// `time_unix_nano`.
    pub time_ns: u64,
    /// `observed_time_unix_nano`.
    pub observed_ns: u64,
    /// `severity_text`.
    pub severity_text: String,
    /// The body, when a string.
    pub body: String,
    /// Attributes.
    pub attributes: Attributes,
}

impl LogRecord {
    /// An attribute (null when missing).
    pub fn attr(&self, key: &str) -> &Value {
        self.attributes.get(key).unwrap_or(&Value::Null)
    }

    /// A string attribute; panics with the record when missing or not a string.
    pub fn str_attr(&self, key: &str) -> &str {
        self.attr(key)
            .as_str()
            .unwrap_or_else(|| panic!("no string attribute {key} in {self:#?}"))
    }

    /// An integer attribute; panics with the record when missing or not an integer.
    pub fn int_attr(&self, key: &str) -> i64 {
        self.attr(key)
            .as_i64()
            .unwrap_or_else(|| panic!("no integer attribute {key} in {self:#?}"))
    }
}

/// Every log record of the `logs` requests in `requests`.
pub(crate) fn flatten_logs(requests: &[Value]) -> Vec<LogRecord> {
    let mut out = Vec::new();
    for req in requests.iter().filter(|r| r["signal"] == "logs") {
        let transport = req["transport"].as_str().unwrap_or_default().to_string();
        for rl in list(&req["request"]["resource_logs"]) {
            let resource = attributes(&rl["resource"]["attributes"]);
            for sl in list(&rl["scope_logs"]) {
                let scope = string(&sl["scope"]["name"]);
                for r in list(&sl["log_records"]) {
                    out.push(LogRecord {
                        transport: transport.clone(),
                        resource: resource.clone(),
                        scope: scope.clone(),
                        event_name: string(&r["event_name"]),
                        time_ns: uint(&r["time_unix_nano"]),
                        observed_ns: uint(&r["observed_time_unix_nano"]),
                        severity_text: string(&r["severity_text"]),
                        body: any_value(&r["body"])
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        attributes: attributes(&r["attributes"]),
                    });
                }
            }
        }
    }
    out
}

pub(crate) fn flatten_spans(requests: &[Value]) -> Vec<Span> {
    let mut out = Vec::new();
    for req in requests.iter().filter(|r| r["signal"] == "traces") {
        let transport = req["transport"].as_str().unwrap_or_default().to_string();
        for rs in list(&req["request"]["resource_spans"]) {
            let resource = attributes(&rs["resource"]["attributes"]);
            for ss in list(&rs["scope_spans"]) {
                let scope = string(&ss["scope"]["name"]);
                for s in list(&ss["spans"]) {
                    out.push(Span {
                        transport: transport.clone(),
                        resource: resource.clone(),
                        scope: scope.clone(),
                        name: string(&s["name"]),
                        kind: or(string(&s["kind"]), "SPAN_KIND_UNSPECIFIED"),
                        trace_id: hex_id(&s["trace_id"]),
                        span_id: hex_id(&s["span_id"]),
                        parent_span_id: hex_id(&s["parent_span_id"]),
                        start_ns: uint(&s["start_time_unix_nano"]),
                        end_ns: uint(&s["end_time_unix_nano"]),
                        attributes: attributes(&s["attributes"]),
                        status_code: or(string(&s["status"]["code"]), "STATUS_CODE_UNSET"),
                        status_message: string(&s["status"]["message"]),
                    });
                }
            }
        }
    }
    out
}

/// Every metric data point of one receiver line (`{"signal": "metrics", "request": …}`);
/// nothing for a line of another signal.
pub fn flatten_metrics_of(request: &Value) -> Vec<MetricPoint> {
    flatten_metrics(std::slice::from_ref(request))
}

pub(crate) fn flatten_metrics(requests: &[Value]) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for req in requests.iter().filter(|r| r["signal"] == "metrics") {
        let transport = req["transport"].as_str().unwrap_or_default().to_string();
        for rm in list(&req["request"]["resource_metrics"]) {
            let resource = attributes(&rm["resource"]["attributes"]);
            for sm in list(&rm["scope_metrics"]) {
                let scope = string(&sm["scope"]["name"]);
                for m in list(&sm["metrics"]) {
                    let Some((kind, data)) = [
                        "histogram",
                        "sum",
                        "gauge",
                        "exponential_histogram",
                        "summary",
                    ]
                    .iter()
                    .find_map(|k| m.get(*k).map(|d| (*k, d))) else {
                        continue;
                    };
                    for dp in list(&data["data_points"]) {
                        let value = dp
                            .get("as_double")
                            .and_then(float)
                            .or_else(|| dp.get("as_int").map(|v| uint_or_int(v) as f64))
                            .or(if matches!(kind, "sum" | "gauge") {
                                Some(0.0)
                            } else {
                                None
                            });
                        out.push(MetricPoint {
                            transport: transport.clone(),
                            resource: resource.clone(),
                            scope: scope.clone(),
                            name: string(&m["name"]),
                            unit: string(&m["unit"]),
                            kind: kind.to_string(),
                            temporality: string(&data["aggregation_temporality"]),
                            monotonic: data["is_monotonic"].as_bool().unwrap_or(false),
                            attributes: attributes(&dp["attributes"]),
                            start_ns: uint(&dp["start_time_unix_nano"]),
                            time_ns: uint(&dp["time_unix_nano"]),
                            count: uint(&dp["count"]),
                            sum: dp.get("sum").and_then(float),
                            bucket_counts: list(&dp["bucket_counts"]).iter().map(uint).collect(),
                            explicit_bounds: list(&dp["explicit_bounds"])
                                .iter()
                                .filter_map(float)
                                .collect(),
                            value,
                        });
                    }
                }
            }
        }
    }
    out
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

fn string(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn or(s: String, default: &str) -> String {
    if s.is_empty() { default.to_string() } else { s }
}

/// A uint64 that MessageToDict wrote as a string (or a number); 0 when absent.
fn uint(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a uint64: {s:?}")),
        Value::Number(n) => n.as_u64().unwrap_or_else(|| panic!("not a uint64: {n}")),
        Value::Null => 0,
        other => panic!("not a uint64: {other}"),
    }
}

fn uint_or_int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not an int64: {s:?}")),
        Value::Number(n) => n.as_i64().unwrap_or_else(|| panic!("not an int64: {n}")),
        _ => 0,
    }
}

/// A double, also in the string forms protobuf's JSON mapping uses ("NaN", "Infinity").
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => s.parse().ok(),
        },
        _ => None,
    }
}

fn hex_id(v: &Value) -> String {
    let Some(b64) = v.as_str() else {
        return String::new();
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_else(|e| panic!("id is not base64 ({e}): {b64:?}"));
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn attributes(v: &Value) -> Attributes {
    list(v)
        .iter()
        .map(|kv| (string(&kv["key"]), any_value(&kv["value"])))
        .collect()
}

/// An OTLP AnyValue as a plain JSON value: strings, booleans, numbers (int64 from its string
/// form), arrays, objects (kvlists); bytes stay base64; an empty AnyValue is null.
fn any_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    if let Some(s) = obj.get("string_value") {
        return s.clone();
    }
    if let Some(b) = obj.get("bool_value") {
        return b.clone();
    }
    if let Some(i) = obj.get("int_value") {
        return Value::from(uint_or_int(i));
    }
    if let Some(d) = obj.get("double_value") {
        return float(d).map(Value::from).unwrap_or(Value::Null);
    }
    if let Some(a) = obj.get("array_value") {
        return Value::Array(list(&a["values"]).iter().map(any_value).collect());
    }
    if let Some(kv) = obj.get("kvlist_value") {
        let map: Map<String, Value> = list(&kv["values"])
            .iter()
            .map(|kv| (string(&kv["key"]), any_value(&kv["value"])))
            .collect();
        return Value::Object(map);
    }
    if let Some(b) = obj.get("bytes_value") {
        return b.clone();
    }
    Value::Null
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traces() -> Value {
        json!({"signal": "traces", "transport": "grpc", "request": {"resource_spans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"string_value": "curl"}},
                {"key": "process.pid", "value": {"int_value": "4242"}}]},
            "scope_spans": [{"scope": {"name": "wirelens"}, "spans": [{
                "trace_id": "AQEBAQEBAQEBAQEBAQEBAQ==", "span_id": "AgICAgICAgI=",
                "name": "GET", "kind": "SPAN_KIND_CLIENT",
                "start_time_unix_nano": "10", "end_time_unix_nano": "20",
                "attributes": [
                    {"key": "http.response.status_code", "value": {"int_value": "404"}},
                    {"key": "ok", "value": {"bool_value": false}},
                    {"key": "d", "value": {"double_value": 0.5}},
                    {"key": "arr", "value": {"array_value": {"values": [{"int_value": "1"}]}}},
                    {"key": "empty", "value": {}}],
                "status": {"code": "STATUS_CODE_ERROR"}}, {"name": "x"}]}]}]}})
    }

    #[test]
    fn flattens_spans() {
        let spans = flatten_spans(&[traces()]);
        assert_eq!(spans.len(), 2);
        let s = &spans[0];
        assert!(s.is_client());
        assert_eq!(s.res_str("service.name"), "curl");
        assert_eq!(s.res_int("process.pid"), 4242);
        assert_eq!(s.int_attr("http.response.status_code"), 404);
        assert_eq!(s.attr("ok"), &json!(false));
        assert_eq!(s.attr("d"), &json!(0.5));
        assert_eq!(s.attr("arr"), &json!([1]));
        assert_eq!(s.attr("empty"), &Value::Null);
        assert_eq!(s.trace_id, "01010101010101010101010101010101");
        assert_eq!(s.span_id, "0202020202020202");
        assert_eq!((s.start_ns, s.end_ns), (10, 20));
        assert_eq!(s.status_code, "STATUS_CODE_ERROR");
        assert_eq!(spans[1].kind, "SPAN_KIND_UNSPECIFIED");
        assert_eq!(spans[1].status_code, "STATUS_CODE_UNSET");
    }

    fn metrics(time: &str, count: &str, temporality: &str, counter: &str) -> Value {
        json!({"signal": "metrics", "transport": "http", "request": {"resource_metrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"string_value": "nginx"}}]},
        "scope_metrics": [{"metrics": [
            {"name": "http.server.request.duration", "unit": "s", "histogram": {
                "aggregation_temporality": temporality,
                "data_points": [{"time_unix_nano": time, "count": count, "sum": 0.25,
                    "bucket_counts": ["0", count], "explicit_bounds": [0.1],
                    "attributes": [{"key": "http.response.status_code", "value": {"int_value": "200"}}]}]}},
            {"name": "wirelens.events", "sum": {"aggregation_temporality": temporality,
                "is_monotonic": true, "data_points": [{"time_unix_nano": time, "as_int": counter}]}}
        ]}]}]}})
    }

    #[test]
    fn cumulative_points_replace_each_other() {
        let cum = "AGGREGATION_TEMPORALITY_CUMULATIVE";
        let points = flatten_metrics(&[metrics("2", "5", cum, "9"), metrics("1", "3", cum, "4")]);
        assert_eq!(points.len(), 4);
        assert_eq!(histogram_count(&points, "http.server.request.duration"), 5);
        assert_eq!(sum_total(&points, "wirelens.events"), 9.0);
        let series = histogram_series(&points, "http.server.request.duration");
        assert_eq!(series.len(), 1);
        assert_eq!(series[0].bucket_counts, vec![0, 5]);
        assert_eq!(series[0].attr_int("http.response.status_code"), Some(200));
    }

    #[test]
    fn delta_points_add_up() {
        let delta = "AGGREGATION_TEMPORALITY_DELTA";
        let points =
            flatten_metrics(&[metrics("1", "3", delta, "4"), metrics("2", "5", delta, "9")]);
        assert_eq!(histogram_count(&points, "http.server.request.duration"), 8);
        assert_eq!(sum_total(&points, "wirelens.events"), 13.0);
        let series = histogram_series(&points, "http.server.request.duration");
        assert_eq!(series[0].sum, Some(0.5));
        assert_eq!(series[0].bucket_counts, vec![0, 8]);
    }
}
