//! Rows of bpftrace scripts to OTLP log records, grouped by Resource: pure conversion, the
//! transport is `export::logs`.
//!
//! One log record per row: `event_name` and the attribute `wirelens.script.name` are the
//! script's name (its table), every column is an attribute (integers as integers), the body is
//! the row as `column=value` pairs, and the timestamp is the row's `time_` column (else the
//! time it was read). A row with a `pid` column sits under that process's Resource; others
//! under the host's. Values are exported as the script printed them: the user wrote it.
//!
//! Numeric columns declared as metrics become cumulative sums ([`column_metrics`]).

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::{ProcessInfo, kv, semconv};

/// A column's value in a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowValue {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
}

/// One row of a script's table.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptRow {
    /// The script's name (its table).
    pub table: Arc<str>,
    /// When it happened (the `time_` column), Unix ns.
    pub time_unix_nano: u64,
    /// When the agent read it, Unix ns.
    pub observed_unix_nano: u64,
    /// Columns in format order.
    pub columns: Vec<(Arc<str>, RowValue)>,
    /// The process of its `pid` column, when it has one.
    pub process: Option<Arc<ProcessInfo>>,
}

/// The Resource of rows without a process: `host.name`, and the agent's `service.name`.
pub fn host_resource(host_name: &str, service_name: &str) -> Resource {
    Resource {
        attributes: vec![
            kv::string(semconv::SERVICE_NAME, service_name),
            kv::string(semconv::HOST_NAME, host_name),
        ],
        ..Resource::default()
    }
}

/// One log record for `row`.
pub fn log_record(row: &ScriptRow) -> LogRecord {
    let mut attributes = Vec::with_capacity(row.columns.len() + 1);
    attributes.push(kv::string(semconv::WIRELENS_SCRIPT_NAME, &*row.table));
    let mut body = String::new();
    for (name, value) in &row.columns {
        if !body.is_empty() {
            body.push(' ');
        }
        match value {
            RowValue::Int(v) => {
                attributes.push(kv::int(name, *v));
                body.push_str(&format!("{name}={v}"));
            }
            RowValue::Text(v) => {
                attributes.push(kv::string(name, v.as_str()));
                body.push_str(&format!("{name}={v}"));
            }
        }
    }
    LogRecord {
        time_unix_nano: row.time_unix_nano,
        observed_time_unix_nano: row.observed_unix_nano,
        severity_number: SeverityNumber::Info as i32,
        severity_text: "INFO".to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(body)),
        }),
        attributes,
        event_name: row.table.to_string(),
        ..LogRecord::default()
    }
}

/// The export request for `rows`: one `ResourceLogs` per process (in order of first row), and
/// one for the rows without a process under `host`.
pub fn logs_request(rows: &[ScriptRow], host: &Resource) -> ExportLogsServiceRequest {
    let mut groups: Vec<(Option<&Arc<ProcessInfo>>, Vec<LogRecord>)> = Vec::new();
    for row in rows {
        let key = row.process.as_ref();
        let slot = groups.iter_mut().find(|(k, _)| match (k, key) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == *b,
            (None, None) => true,
            _ => false,
        });
        match slot {
            Some((_, records)) => records.push(log_record(row)),
            None => groups.push((key, vec![log_record(row)])),
        }
    }
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|(process, log_records)| ResourceLogs {
                resource: Some(process.map_or_else(|| host.clone(), |p| p.to_resource())),
                scope_logs: vec![ScopeLogs {
                    scope: Some(crate::traces::scope()),
                    log_records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            })
            .collect(),
    }
}

/// The cumulative sum of one numeric column, for one Resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnSum {
    /// The script's name.
    pub table: Arc<str>,
    /// The column's name.
    pub column: Arc<str>,
    /// The process of the rows (their `pid` column), or `None` for the host.
    pub process: Option<Arc<ProcessInfo>>,
    /// Sum of the column's values so far.
    pub sum: i64,
    /// Rows summed so far.
    pub rows: u64,
    /// When the first row was summed, Unix ns.
    pub start_unix_nano: u64,
}

/// Name of the metric of a declared column: `wirelens.script.<script>.<column>`.
pub fn column_metric_name(table: &str, column: &str) -> String {
    format!("wirelens.script.{table}.{column}")
}

/// Declared columns as metrics, as of `now_ns`: per Resource, one cumulative, non-monotonic
/// sum per column (`wirelens.script.<script>.<column>`, attribute `wirelens.script.name`).
pub fn column_metrics(sums: &[ColumnSum], host: &Resource, now_ns: u64) -> Vec<ResourceMetrics> {
    let mut out: Vec<(Option<&Arc<ProcessInfo>>, Vec<Metric>)> = Vec::new();
    for entry in sums {
        let metric = Metric {
            name: column_metric_name(&entry.table, &entry.column),
            unit: "1".to_owned(),
            description: format!(
                "sum of the column {} of the script {}",
                entry.column, entry.table
            ),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    attributes: vec![kv::string(semconv::WIRELENS_SCRIPT_NAME, &*entry.table)],
                    start_time_unix_nano: entry.start_unix_nano,
                    time_unix_nano: now_ns.max(entry.start_unix_nano),
                    value: Some(number_data_point::Value::AsInt(entry.sum)),
                    ..NumberDataPoint::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: false,
            })),
            ..Metric::default()
        };
        let key = entry.process.as_ref();
        match out.iter_mut().find(|(k, _)| match (k, key) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || **a == *b,
            (None, None) => true,
            _ => false,
        }) {
            Some((_, metrics)) => metrics.push(metric),
            None => out.push((key, vec![metric])),
        }
    }
    out.into_iter()
        .map(|(process, metrics)| ResourceMetrics {
            resource: Some(process.map_or_else(|| host.clone(), |p| p.to_resource())),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(crate::traces::scope()),
                metrics,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect()
}

/// Log records in `request`.
pub fn record_count(request: &ExportLogsServiceRequest) -> u64 {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: Option<u32>, n: i64) -> ScriptRow {
        ScriptRow {
            table: Arc::from("demo"),
            time_unix_nano: 5,
            observed_unix_nano: 6,
            columns: vec![
                (Arc::from("n"), RowValue::Int(n)),
                (Arc::from("comm"), RowValue::Text("a b".into())),
            ],
            process: pid.map(|pid| {
                Arc::new(ProcessInfo {
                    pid,
                    service_name: "svc".into(),
                    ..ProcessInfo::default()
                })
            }),
        }
    }

    #[test]
    fn grouped_by_process_with_columns_as_attributes() {
        let host = host_resource("h", "wirelens");
        let request = logs_request(&[row(Some(1), 1), row(None, 2), row(Some(1), 3)], &host);
        assert_eq!(request.resource_logs.len(), 2);
        assert_eq!(record_count(&request), 3);
        let first = &request.resource_logs[0].scope_logs[0].log_records[0];
        assert_eq!(first.event_name, "demo");
        assert_eq!(first.time_unix_nano, 5);
        let keys: Vec<_> = first.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys, ["wirelens.script.name", "n", "comm"]);
        assert_eq!(
            first.body.as_ref().and_then(|b| b.value.clone()),
            Some(any_value::Value::StringValue("n=1 comm=a b".into()))
        );
        assert_eq!(request.resource_logs[1].resource, Some(host));
    }
}
