//! Exporter configuration from the standard `OTEL_*` environment variables and CLI overrides.

use std::time::Duration;

use thiserror::Error;
use url::Url;

use super::retry::RetryPolicy;
use crate::MappingOptions;

/// Set to `true` to export `db.query.text` with its literals (see
/// [`MappingOptions::raw_db_statements`]). Any other value, or none, keeps them sanitised.
pub const RAW_DB_STATEMENTS_VAR: &str = "WIRELENS_RAW_DB_STATEMENTS";

/// Which OTLP transport a signal uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`grpc`).
    Grpc,
    /// OTLP/HTTP with binary protobuf bodies (`http/protobuf`), the spec's default.
    HttpProtobuf,
}

impl Protocol {
    /// The value as written in `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::HttpProtobuf => "http/protobuf",
        }
    }
}

/// Request body compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
}

/// Where and how one signal (traces or metrics) is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignalConfig {
    /// For HTTP, the full URL posted to (`…/v1/traces`); for gRPC, `http(s)://host:port`.
    pub endpoint: Url,
    /// Transport.
    pub protocol: Protocol,
    /// Extra request headers (gRPC metadata), names lowercase, values decoded.
    pub headers: Vec<(String, String)>,
    /// Time allowed for one export call.
    pub timeout: Duration,
    /// Body compression, if any.
    pub compression: Option<Compression>,
    /// CA and client certificate for `https://` endpoints.
    pub tls: super::tls::TlsConfig,
}

/// Everything the exporter needs. Build it with [`ExportConfig::from_env`].
#[derive(Clone, Debug, PartialEq)]
pub struct ExportConfig {
    /// Traces destination; `None` when traces are not exported.
    pub traces: Option<SignalConfig>,
    /// Metrics destination; `None` when metrics are not exported.
    pub metrics: Option<SignalConfig>,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`).
    pub metric_interval: Duration,
    /// Longest a span waits for its batch (`OTEL_BSP_SCHEDULE_DELAY`).
    pub schedule_delay: Duration,
    /// Observations queued between the agent and the exporter (`OTEL_BSP_MAX_QUEUE_SIZE`).
    pub max_queue_size: usize,
    /// Spans per export request (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
    pub max_export_batch_size: usize,
    /// Histogram series kept before new ones overflow.
    pub max_metric_series: usize,
    /// Encoded bytes of span requests kept for a backend that is down or slow
    /// (`WIRELENS_EXPORT_BUFFER_BYTES`); past it the oldest are dropped and counted.
    pub spool_bytes: usize,
    /// Retries of failed exports.
    pub retry: RetryPolicy,
    /// How records become spans ([`RAW_DB_STATEMENTS_VAR`]).
    pub mapping: MappingOptions,
    /// Which spans are exported (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`); metrics
    /// count every observation.
    pub sampler: super::Sampler,
    /// Attributes added to the agent's own Resource (its counters, the overflow series), from
    /// `OTEL_RESOURCE_ATTRIBUTES`; `service.name` left out when `OTEL_SERVICE_NAME` is set,
    /// which wins. The traced processes' Resources are theirs, not changed by these.
    pub resource_attributes: Vec<(String, String)>,
}

/// Values given on the command line; they win over the environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Base endpoint for both signals, as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    /// Protocol for both signals, as `OTEL_EXPORTER_OTLP_PROTOCOL`.
    pub protocol: Option<String>,
}

/// A configuration value that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// Unknown or unsupported protocol.
    #[error("invalid {var}: unsupported protocol {value:?} (expected grpc or http/protobuf)")]
    Protocol {
        /// Where the value came from.
        var: String,
        /// The value.
        value: String,
    },
    /// An endpoint that is not an `http://` or `https://` URL.
    #[error("invalid {var}: {value:?} is not a usable url ({reason})")]
    Endpoint {
        /// Where the value came from.
        var: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A duration or size that is not a positive integer.
    #[error("invalid {var}: {value:?} is not a positive integer{unit}")]
    Number {
        /// Where the value came from.
        var: String,
        /// The value.
        value: String,
        /// What the number counts, with a leading space (` of milliseconds`), or empty.
        unit: &'static str,
    },
    /// Unknown compression.
    #[error("invalid {var}: unsupported compression {value:?} (expected gzip or none)")]
    Compression {
        /// Where the value came from.
        var: String,
        /// The value.
        value: String,
    },
    /// A malformed `key=value,…` header list.
    #[error("invalid {var}: {reason}")]
    Headers {
        /// Where the value came from.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS setting that cannot be used (an unreadable file, a certificate without its key).
    #[error("invalid {var}: {reason}")]
    Tls {
        /// Where the value came from.
        var: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed `OTEL_RESOURCE_ATTRIBUTES`.
    #[error("invalid OTEL_RESOURCE_ATTRIBUTES: {reason}")]
    ResourceAttributes {
        /// What is wrong with it.
        reason: String,
    },
    /// An unknown `OTEL_TRACES_SAMPLER`.
    #[error(
        "invalid OTEL_TRACES_SAMPLER: unsupported sampler {value:?} (expected always_on, always_off, traceidratio or parentbased_ with one of them)"
    )]
    Sampler {
        /// The value.
        value: String,
    },
    /// An `OTEL_TRACES_SAMPLER_ARG` that is not a ratio.
    #[error("invalid OTEL_TRACES_SAMPLER_ARG: {value:?} is not a ratio between 0 and 1")]
    SamplerArg {
        /// The value.
        value: String,
    },
    /// An unknown `OTEL_TRACES_EXPORTER` / `OTEL_METRICS_EXPORTER` value.
    #[error(
        "invalid {var}: unsupported exporter {value:?} (expected otlp or none; for metrics also prometheus)"
    )]
    Exporter {
        /// Where the value came from.
        var: String,
        /// The value.
        value: String,
    },
}

/// Default `OTEL_EXPORTER_OTLP_TIMEOUT`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `OTEL_METRIC_EXPORT_INTERVAL`.
pub const DEFAULT_METRIC_INTERVAL: Duration = Duration::from_secs(60);
/// Default `OTEL_BSP_SCHEDULE_DELAY`: 1 s, shorter than the spec's 5 s so that traced requests
/// show up in the backend about as fast as in the live view.
pub const DEFAULT_SCHEDULE_DELAY: Duration = Duration::from_secs(1);
/// Default `OTEL_BSP_MAX_QUEUE_SIZE`.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
/// Default `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.
pub const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 512;
/// Default [`ExportConfig::spool_bytes`]: 32 MiB of encoded spans (about 64 MiB in memory),
/// minutes of a busy node's spans.
pub const DEFAULT_SPOOL_BYTES: usize = 32 << 20;
/// The variable that sets [`ExportConfig::spool_bytes`].
pub const SPOOL_BYTES_VAR: &str = "WIRELENS_EXPORT_BUFFER_BYTES";

/// Name used in errors for the `--endpoint`-style override.
const OVERRIDE_ENDPOINT: &str = "command-line otlp endpoint";
/// Name used in errors for the `--protocol`-style override.
const OVERRIDE_PROTOCOL: &str = "command-line otlp protocol";

#[derive(Clone, Copy)]
struct Signal {
    /// `TRACES` or `METRICS`.
    upper: &'static str,
    /// Path appended to a base endpoint for HTTP.
    http_path: &'static str,
    /// `OTEL_TRACES_EXPORTER` or `OTEL_METRICS_EXPORTER`.
    exporter_var: &'static str,
}

const TRACES: Signal = Signal {
    upper: "TRACES",
    http_path: "v1/traces",
    exporter_var: "OTEL_TRACES_EXPORTER",
};
const METRICS: Signal = Signal {
    upper: "METRICS",
    http_path: "v1/metrics",
    exporter_var: "OTEL_METRICS_EXPORTER",
};

const PROFILES: Signal = Signal {
    upper: "PROFILES",
    http_path: "v1development/profiles",
    exporter_var: "OTEL_PROFILES_EXPORTER",
};

const LOGS: Signal = Signal {
    upper: "LOGS",
    http_path: "v1/logs",
    exporter_var: "OTEL_LOGS_EXPORTER",
};

/// Where log records (the rows of bpftrace scripts) go: as for traces and metrics
/// ([`ExportConfig::from_env`]), with the `OTEL_EXPORTER_OTLP_LOGS_*` variables,
/// `OTEL_LOGS_EXPORTER=none`, and `/v1/logs` appended to a base HTTP endpoint. `None` when not
/// exported.
pub fn logs_from_env(overrides: &Overrides) -> Result<Option<SignalConfig>, ConfigError> {
    logs_from_lookup(overrides, |name| std::env::var(name).ok())
}

/// [`logs_from_env`] with variables read through `lookup`.
pub fn logs_from_lookup(
    overrides: &Overrides,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<SignalConfig>, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    signal_config(LOGS, overrides, &get)
}

/// Where CPU profiles go: as for traces and metrics ([`ExportConfig::from_env`]), with the
/// `OTEL_EXPORTER_OTLP_PROFILES_*` variables, `OTEL_PROFILES_EXPORTER=none`, and
/// `/v1development/profiles` appended to a base HTTP endpoint. `None` when not exported.
pub fn profiles_from_env(overrides: &Overrides) -> Result<Option<SignalConfig>, ConfigError> {
    profiles_from_lookup(overrides, |name| std::env::var(name).ok())
}

/// [`profiles_from_env`] with variables read through `lookup`.
pub fn profiles_from_lookup(
    overrides: &Overrides,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Option<SignalConfig>, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    signal_config(PROFILES, overrides, &get)
}

impl ExportConfig {
    /// Read the configuration from the process environment, with `overrides` on top.
    ///
    /// # Precedence
    ///
    /// For each signal (traces, metrics) and each setting, the first that is set (and not empty)
    /// wins:
    ///
    /// 1. the command-line [`Overrides`] (endpoint and protocol only; they apply to both signals,
    ///    the endpoint as a base endpoint);
    /// 2. the per-signal variable, `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_{ENDPOINT,PROTOCOL,
    ///    HEADERS,TIMEOUT,COMPRESSION}`;
    /// 3. the generic variable, `OTEL_EXPORTER_OTLP_{ENDPOINT,PROTOCOL,HEADERS,TIMEOUT,
    ///    COMPRESSION}`;
    /// 4. the default: protocol `http/protobuf`, timeout 10 s, no headers, no compression.
    ///
    /// Headers are merged instead: generic first, then per-signal entries replace those of the
    /// same name. With HTTP, a base endpoint (override or generic) gets `/v1/traces` or
    /// `/v1/metrics` appended to its path, while a per-signal endpoint is used as it is; with
    /// gRPC every endpoint is used as it is (`http://host:4317`, `https://` for TLS).
    ///
    /// There is no default endpoint: a signal without one is not exported, and with neither this
    /// returns `Ok(None)` (so does `OTEL_SDK_DISABLED=true`). `OTEL_TRACES_EXPORTER=none` or
    /// `OTEL_METRICS_EXPORTER=none` turns one signal off. `OTEL_METRIC_EXPORT_INTERVAL`
    /// (default 60 s), `OTEL_BSP_SCHEDULE_DELAY` (default 1 s, not the spec's 5 s),
    /// `OTEL_BSP_MAX_QUEUE_SIZE` (2048) and `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512, at most the
    /// queue size) are read as the spec says; all durations are in milliseconds.
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` choose the spans exported
    /// ([`Sampler`](super::Sampler); default `parentbased_always_on`).
    ///
    /// One variable of wirelens's own: `WIRELENS_RAW_DB_STATEMENTS=true` exports database
    /// statements with their literals ([`MappingOptions::raw_db_statements`]); by default
    /// literals are replaced by `?`.
    pub fn from_env(overrides: &Overrides) -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(overrides, |name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) with variables read through `lookup` instead of the process
    /// environment.
    pub fn from_lookup(
        overrides: &Overrides,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        let traces = signal_config(TRACES, overrides, &get)?;
        let metrics = signal_config(METRICS, overrides, &get)?;
        if traces.is_none() && metrics.is_none() {
            return Ok(None);
        }
        Ok(Some(Self {
            traces,
            metrics,
            ..Self::settings(&get)?
        }))
    }

    /// The settings with no OTLP destination, for metrics that are only served locally (the
    /// Prometheus endpoint): the interval, queue and mapping settings read as in
    /// [`from_env`](Self::from_env), `traces` and `metrics` both `None`.
    pub fn without_otlp_from_env() -> Result<Self, ConfigError> {
        Self::without_otlp_from_lookup(|name| std::env::var(name).ok())
    }

    /// [`without_otlp_from_env`](Self::without_otlp_from_env) with variables read through
    /// `lookup`.
    pub fn without_otlp_from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        Self::settings(&|name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        })
    }

    /// Everything but the destinations.
    fn settings(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let millis = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            get(name).map_or(Ok(default), |v| parse_millis(name, &v))
        };
        let count = |name: &str, default: usize| -> Result<usize, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(ConfigError::Number {
                        var: name.to_owned(),
                        value: v,
                        unit: "",
                    }),
            }
        };
        let max_queue_size = count("OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE)?;
        let max_export_batch_size = count(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            DEFAULT_MAX_EXPORT_BATCH_SIZE,
        )?
        .min(max_queue_size);
        Ok(Self {
            traces: None,
            metrics: None,
            metric_interval: millis("OTEL_METRIC_EXPORT_INTERVAL", DEFAULT_METRIC_INTERVAL)?,
            schedule_delay: millis("OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY)?,
            max_queue_size,
            max_export_batch_size,
            max_metric_series: crate::metrics::DEFAULT_MAX_SERIES,
            spool_bytes: count(SPOOL_BYTES_VAR, DEFAULT_SPOOL_BYTES)?,
            retry: RetryPolicy::default(),
            mapping: MappingOptions {
                raw_db_statements: get(RAW_DB_STATEMENTS_VAR)
                    .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            },
            sampler: super::Sampler::from_lookup(get)?,
            resource_attributes: resource_attributes(get)?,
        })
    }

    /// One line for the startup log: where each signal goes.
    pub fn describe(&self) -> String {
        let one = |s: &Option<SignalConfig>| match s {
            Some(s) => format!("{} ({})", s.endpoint, s.protocol.as_str()),
            None => "off".to_owned(),
        };
        format!(
            "traces → {}, metrics → {}",
            one(&self.traces),
            one(&self.metrics)
        )
    }
}

fn signal_config(
    signal: Signal,
    overrides: &Overrides,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<SignalConfig>, ConfigError> {
    if !exporters(signal, get)?.otlp {
        return Ok(None);
    }
    let var = |setting: &str| format!("OTEL_EXPORTER_OTLP_{}_{setting}", signal.upper);
    // The first of (override, per-signal, generic) that is set, with the name it came from.
    let pick = |setting: &str, over: Option<&String>, over_name: &str| {
        let over = over.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        over.map(|v| (over_name.to_owned(), v, true))
            .or_else(|| get(&var(setting)).map(|v| (var(setting), v, false)))
            .or_else(|| {
                let generic = format!("OTEL_EXPORTER_OTLP_{setting}");
                get(&generic).map(|v| (generic, v, true))
            })
    };

    let protocol = match pick("PROTOCOL", overrides.protocol.as_ref(), OVERRIDE_PROTOCOL) {
        None => Protocol::HttpProtobuf,
        Some((name, value, _)) => parse_protocol(&name, &value)?,
    };
    let Some((endpoint_var, endpoint, is_base)) =
        pick("ENDPOINT", overrides.endpoint.as_ref(), OVERRIDE_ENDPOINT)
    else {
        return Ok(None);
    };
    // The TLS settings: per-signal variable, else the generic one.
    let pick_env = |setting: &str| pick(setting, None, "").map(|(name, value, _)| (name, value));
    // A gRPC endpoint without a scheme is https unless OTEL_EXPORTER_OTLP_INSECURE=true.
    let endpoint = if protocol == Protocol::Grpc && !endpoint.contains("://") {
        let scheme = if super::tls::insecure(&pick_env)? {
            "http"
        } else {
            "https"
        };
        format!("{scheme}://{endpoint}")
    } else {
        endpoint
    };
    let mut url = parse_endpoint(&endpoint_var, &endpoint)?;
    if is_base && protocol == Protocol::HttpProtobuf {
        let path = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{path}/{}", signal.http_path));
    }

    let mut headers = Vec::new();
    for name in ["OTEL_EXPORTER_OTLP_HEADERS".to_owned(), var("HEADERS")] {
        if let Some(value) = get(&name) {
            for (k, v) in parse_headers(&name, &value, protocol)? {
                headers.retain(|(old, _): &(String, String)| *old != k);
                headers.push((k, v));
            }
        }
    }
    let timeout = match pick("TIMEOUT", None, "") {
        None => DEFAULT_TIMEOUT,
        Some((name, value, _)) => parse_millis(&name, &value)?,
    };
    let compression = match pick("COMPRESSION", None, "") {
        None => None,
        Some((name, value, _)) => parse_compression(&name, &value)?,
    };
    let tls = super::tls::tls_config(&pick_env)?;
    super::tls::insecure(&pick_env)?;
    Ok(Some(SignalConfig {
        endpoint: url,
        protocol,
        headers,
        timeout,
        compression,
        tls,
    }))
}

/// Which exporters `OTEL_<SIGNAL>_EXPORTER` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exporters {
    /// `otlp` (the default when the variable is not set).
    pub otlp: bool,
    /// `prometheus` (metrics only): served for scraping, see `OTEL_EXPORTER_PROMETHEUS_*`.
    pub prometheus: bool,
}

/// `OTEL_METRICS_EXPORTER` from the process environment: a comma-separated list of `otlp`,
/// `prometheus` and `none`; unset means `otlp`.
pub fn metrics_exporters_from_env() -> Result<Exporters, ConfigError> {
    metrics_exporters_from_lookup(|name| std::env::var(name).ok())
}

/// [`metrics_exporters_from_env`] with variables read through `lookup`.
pub fn metrics_exporters_from_lookup(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Exporters, ConfigError> {
    let get = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    exporters(METRICS, &get)
}

fn exporters(
    signal: Signal,
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Exporters, ConfigError> {
    let var = signal.exporter_var;
    let Some(value) = get(var) else {
        return Ok(Exporters {
            otlp: true,
            prometheus: false,
        });
    };
    let mut found = Exporters::default();
    for name in value.split(',').map(|n| n.trim().to_ascii_lowercase()) {
        match name.as_str() {
            "otlp" => found.otlp = true,
            "prometheus" if signal.upper == METRICS.upper => found.prometheus = true,
            "none" | "" => {}
            _ => {
                return Err(ConfigError::Exporter {
                    var: var.to_owned(),
                    value: value.clone(),
                });
            }
        }
    }
    Ok(found)
}

fn parse_protocol(var: &str, value: &str) -> Result<Protocol, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "grpc" => Ok(Protocol::Grpc),
        "http/protobuf" => Ok(Protocol::HttpProtobuf),
        _ => Err(ConfigError::Protocol {
            var: var.to_owned(),
            value: value.to_owned(),
        }),
    }
}

fn parse_endpoint(var: &str, value: &str) -> Result<Url, ConfigError> {
    let error = |reason: String| ConfigError::Endpoint {
        var: var.to_owned(),
        value: value.to_owned(),
        reason,
    };
    let url = Url::parse(value).map_err(|e| error(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error(
            "expected http://host:port or https://host:port".to_owned(),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error("no host".to_owned()));
    }
    // The same check the gRPC and HTTP clients make later, so they cannot fail on it.
    if value.parse::<http::Uri>().is_err() {
        return Err(error("not a valid request uri".to_owned()));
    }
    Ok(url)
}

fn parse_millis(var: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
        .ok_or(ConfigError::Number {
            var: var.to_owned(),
            value: value.to_owned(),
            unit: " of milliseconds",
        })
}

fn parse_compression(var: &str, value: &str) -> Result<Option<Compression>, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "gzip" => Ok(Some(Compression::Gzip)),
        "none" => Ok(None),
        _ => Err(ConfigError::Compression {
            var: var.to_owned(),
            value: value.to_owned(),
        }),
    }
}

/// `k=v,k2=v2`, keys and values percent-decoded and trimmed; names lowercased and checked to be
/// valid HTTP header names (and, for gRPC, not binary `-bin` metadata).
/// `OTEL_RESOURCE_ATTRIBUTES`: `key=value,…`, values percent-decoded; `service.name` dropped
/// when `OTEL_SERVICE_NAME` is set.
fn resource_attributes(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let Some(value) = get("OTEL_RESOURCE_ATTRIBUTES") else {
        return Ok(Vec::new());
    };
    let error = |reason: String| ConfigError::ResourceAttributes { reason };
    let service_name_set = get("OTEL_SERVICE_NAME").is_some();
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in value.split(',').filter(|e| !e.trim().is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(error(format!("entry {:?} is not key=value", entry.trim())));
        };
        let key = k.trim().to_owned();
        if key.is_empty() {
            return Err(error(format!("entry {:?} has no key", entry.trim())));
        }
        let value = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| {
                error(format!(
                    "the value of {key:?} is not utf-8 once percent-decoded"
                ))
            })?
            .into_owned();
        if key == crate::semconv::SERVICE_NAME && service_name_set {
            continue;
        }
        out.retain(|(old, _)| *old != key);
        out.push((key, value));
    }
    Ok(out)
}

fn parse_headers(
    var: &str,
    value: &str,
    protocol: Protocol,
) -> Result<Vec<(String, String)>, ConfigError> {
    let error = |reason: String| ConfigError::Headers {
        var: var.to_owned(),
        reason,
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s.trim())
            .decode_utf8()
            .map(|c| c.trim().to_owned())
            .map_err(|_| error(format!("{s:?} is not utf-8 once percent-decoded")))
    };
    let mut out = Vec::new();
    for entry in value.split(',').filter(|e| !e.trim().is_empty()) {
        let Some((k, v)) = entry.split_once('=') else {
            return Err(error(format!("entry {:?} is not key=value", entry.trim())));
        };
        let name = decode(k)?.to_ascii_lowercase();
        let value = decode(v)?;
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(error(format!("{name:?} is not a valid header name")));
        }
        if http::HeaderValue::from_str(&value).is_err() {
            return Err(error(format!(
                "the value of {name:?} is not a valid header value"
            )));
        }
        if protocol == Protocol::Grpc && name.ends_with("-bin") {
            return Err(error(format!("binary metadata {name:?} is not supported")));
        }
        out.push((name, value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(
        vars: &[(&str, &str)],
        overrides: &Overrides,
    ) -> Result<Option<ExportConfig>, ConfigError> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ExportConfig::from_lookup(overrides, |k| env.get(k).cloned())
    }

    fn ok(vars: &[(&str, &str)]) -> ExportConfig {
        load(vars, &Overrides::default())
            .expect("valid")
            .expect("configured")
    }

    fn err(vars: &[(&str, &str)]) -> String {
        load(vars, &Overrides::default())
            .expect_err("invalid")
            .to_string()
    }

    fn traces(c: &ExportConfig) -> &SignalConfig {
        c.traces.as_ref().expect("traces on")
    }

    fn metrics(c: &ExportConfig) -> &SignalConfig {
        c.metrics.as_ref().expect("metrics on")
    }

    #[test]
    fn nothing_set_means_no_export() {
        assert_eq!(load(&[], &Overrides::default()), Ok(None));
        assert_eq!(
            load(
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")],
                &Overrides::default()
            ),
            Ok(None)
        );
        assert_eq!(
            load(
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "true")
                ],
                &Overrides::default()
            ),
            Ok(None)
        );
    }

    #[test]
    fn raw_db_statements_opt_in() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        for (value, raw) in [
            ("true", true),
            ("TRUE", true),
            ("1", false),
            ("false", false),
        ] {
            let c = ok(&[endpoint, ("WIRELENS_RAW_DB_STATEMENTS", value)]);
            assert_eq!(c.mapping.raw_db_statements, raw, "{value}");
        }
    }

    #[test]
    fn generic_http_endpoint_gets_signal_paths_and_defaults() {
        let c = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert_eq!(
            traces(&c).endpoint.as_str(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            metrics(&c).endpoint.as_str(),
            "http://collector:4318/v1/metrics"
        );
        assert_eq!(traces(&c).protocol, Protocol::HttpProtobuf);
        assert_eq!(traces(&c).timeout, Duration::from_secs(10));
        assert_eq!(traces(&c).compression, None);
        assert!(traces(&c).headers.is_empty());
        assert_eq!(c.metric_interval, Duration::from_secs(60));
        assert_eq!(c.schedule_delay, Duration::from_secs(1));
        assert_eq!((c.max_queue_size, c.max_export_batch_size), (2048, 512));
        assert!(
            !c.mapping.raw_db_statements,
            "db statements sanitised by default"
        );

        let c = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c/otlp/")]);
        assert_eq!(traces(&c).endpoint.as_str(), "https://c/otlp/v1/traces");
    }

    #[test]
    fn per_signal_endpoint_used_as_is() {
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:9/custom"),
        ]);
        assert_eq!(traces(&c).endpoint.as_str(), "http://t:9/custom");
        assert_eq!(
            metrics(&c).endpoint.as_str(),
            "http://generic:4318/v1/metrics"
        );

        let c = ok(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1/x")]);
        assert_eq!(c.traces, None);
        assert_eq!(metrics(&c).endpoint.as_str(), "http://m:1/x");
    }

    #[test]
    fn grpc_endpoint_not_extended() {
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(traces(&c).protocol, Protocol::Grpc);
        assert_eq!(traces(&c).endpoint.as_str(), "http://collector:4317/");
        assert_eq!(metrics(&c).protocol, Protocol::HttpProtobuf);
        assert_eq!(
            metrics(&c).endpoint.as_str(),
            "http://collector:4317/v1/metrics"
        );
    }

    #[test]
    fn overrides_win() {
        let overrides = Overrides {
            endpoint: Some("http://cli:4317".into()),
            protocol: Some("grpc".into()),
        };
        let c = load(
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://env:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://env-traces:4318/v1/traces",
                ),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ],
            &overrides,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(traces(&c).endpoint.as_str(), "http://cli:4317/");
        assert_eq!(traces(&c).protocol, Protocol::Grpc);
        assert_eq!(metrics(&c).endpoint.as_str(), "http://cli:4317/");

        let only_cli = Overrides {
            endpoint: Some("http://cli:4318".into()),
            protocol: None,
        };
        let c = load(&[], &only_cli).expect("valid").expect("configured");
        assert_eq!(traces(&c).endpoint.as_str(), "http://cli:4318/v1/traces");
    }

    #[test]
    fn headers_timeout_compression() {
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Api-Key=a%20b, tenant = one ,x=%3D",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "tenant=two"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "none"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "15000"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "100"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "512"),
        ]);
        let pairs = |s: &SignalConfig| {
            s.headers
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(pairs(traces(&c)), ["api-key=a b", "x==", "tenant=two"]);
        assert_eq!(pairs(metrics(&c)), ["api-key=a b", "tenant=one", "x=="]);
        assert_eq!(traces(&c).timeout, Duration::from_millis(2500));
        assert_eq!(metrics(&c).timeout, Duration::from_millis(700));
        assert_eq!(traces(&c).compression, Some(Compression::Gzip));
        assert_eq!(metrics(&c).compression, None);
        assert_eq!(c.metric_interval, Duration::from_secs(15));
        assert_eq!(c.schedule_delay, Duration::from_millis(200));
        assert_eq!((c.max_queue_size, c.max_export_batch_size), (100, 100));
    }

    #[test]
    fn exporter_none_turns_a_signal_off() {
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert_eq!(c.traces, None);
        assert!(c.metrics.is_some());
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
        ]);
        assert_eq!(c.metrics, None, "prometheus alone: no OTLP metrics");
        assert!(c.traces.is_some());
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_METRICS_EXPORTER", "otlp, prometheus"),
        ]);
        assert!(c.metrics.is_some());
        assert!(
            err(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_TRACES_EXPORTER", "prometheus")
            ])
            .starts_with("invalid OTEL_TRACES_EXPORTER")
        );
        assert!(
            err(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_METRICS_EXPORTER", "statsd")
            ])
            .starts_with("invalid OTEL_METRICS_EXPORTER")
        );
    }

    #[test]
    fn resource_attributes_of_the_agent() {
        let get = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let attrs = resource_attributes(&get(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod, k8s.node.name=node%201,service.name=agent,a=1,a=2",
        )]))
        .expect("valid");
        let owned = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            attrs,
            owned(&[
                ("deployment.environment.name", "prod"),
                ("k8s.node.name", "node 1"),
                ("service.name", "agent"),
                ("a", "2"),
            ])
        );
        let attrs = resource_attributes(&get(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=agent,team=x"),
            ("OTEL_SERVICE_NAME", "wins"),
        ]))
        .expect("valid");
        assert_eq!(attrs, owned(&[("team", "x")]), "OTEL_SERVICE_NAME wins");
        for bad in ["novalue", "=x", "k=%ff"] {
            let err = resource_attributes(&get(Box::leak(Box::new([(
                "OTEL_RESOURCE_ATTRIBUTES",
                bad,
            )]))))
            .expect_err(bad);
            assert!(
                err.to_string()
                    .starts_with("invalid OTEL_RESOURCE_ATTRIBUTES"),
                "{err}"
            );
        }
    }

    #[test]
    fn grpc_endpoint_without_scheme() {
        let grpc = ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
        let c = ok(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"), grpc]);
        assert_eq!(traces(&c).endpoint.as_str(), "https://collector:4317/");
        let c = ok(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317"),
            grpc,
            ("OTEL_EXPORTER_OTLP_METRICS_INSECURE", "true"),
        ]);
        assert_eq!(traces(&c).endpoint.as_str(), "https://collector:4317/");
        assert_eq!(metrics(&c).endpoint.as_str(), "http://collector:4317/");
        assert!(
            err(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_EXPORTER_OTLP_INSECURE", "maybe")
            ])
            .starts_with("invalid OTEL_EXPORTER_OTLP_INSECURE")
        );
    }

    #[test]
    fn metrics_exporter_list() {
        let parse = |value: Option<&str>| {
            metrics_exporters_from_lookup(|name| {
                (name == "OTEL_METRICS_EXPORTER")
                    .then(|| value.map(str::to_owned))
                    .flatten()
            })
        };
        let both = |otlp, prometheus| Ok(Exporters { otlp, prometheus });
        assert_eq!(parse(None), both(true, false));
        assert_eq!(parse(Some("prometheus")), both(false, true));
        assert_eq!(parse(Some("Prometheus,otlp")), both(true, true));
        assert_eq!(parse(Some("none")), both(false, false));
        assert!(parse(Some("prometheus,zipkin")).is_err());
    }

    #[test]
    fn settings_without_otlp() {
        let c = ExportConfig::without_otlp_from_lookup(|name| {
            (name == "OTEL_METRIC_EXPORT_INTERVAL").then(|| "1500".to_owned())
        })
        .expect("valid");
        assert_eq!((c.traces, c.metrics), (None, None));
        assert_eq!(c.metric_interval, Duration::from_millis(1500));
        assert!(
            ExportConfig::without_otlp_from_lookup(|_| Some("x".to_owned())).is_err(),
            "bad values are still refused"
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let e = "OTEL_EXPORTER_OTLP_ENDPOINT";
        assert_eq!(
            err(&[
                (e, "http://c"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
            ]),
            "invalid OTEL_EXPORTER_OTLP_PROTOCOL: unsupported protocol \"http/json\" (expected grpc or http/protobuf)"
        );
        assert!(err(&[(e, "localhost:4317")]).starts_with(
            "invalid OTEL_EXPORTER_OTLP_ENDPOINT: \"localhost:4317\" is not a usable url"
        ));
        assert!(err(&[(e, "not a url")]).starts_with("invalid OTEL_EXPORTER_OTLP_ENDPOINT"));
        assert!(
            err(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x")])
                .starts_with("invalid OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        );
        assert_eq!(
            err(&[
                (e, "http://c"),
                ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s")
            ]),
            "invalid OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: \"10s\" is not a positive integer of milliseconds"
        );
        assert!(
            err(&[(e, "http://c"), ("OTEL_METRIC_EXPORT_INTERVAL", "0")])
                .starts_with("invalid OTEL_METRIC_EXPORT_INTERVAL")
        );
        assert!(
            err(&[(e, "http://c"), ("OTEL_BSP_MAX_QUEUE_SIZE", "-1")])
                .starts_with("invalid OTEL_BSP_MAX_QUEUE_SIZE")
        );
        assert!(
            err(&[(e, "http://c"), ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")])
                .starts_with("invalid OTEL_EXPORTER_OTLP_COMPRESSION")
        );
        assert!(
            err(&[(e, "http://c"), ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")])
                .starts_with("invalid OTEL_EXPORTER_OTLP_HEADERS: entry \"novalue\"")
        );
        assert!(
            err(&[
                (e, "http://c"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "bad name=1")
            ])
            .starts_with("invalid OTEL_EXPORTER_OTLP_METRICS_HEADERS")
        );
        let bad_cli = Overrides {
            endpoint: None,
            protocol: Some("udp".into()),
        };
        assert!(
            load(&[(e, "http://c")], &bad_cli)
                .expect_err("bad")
                .to_string()
                .starts_with("invalid command-line otlp protocol")
        );
    }

    #[test]
    fn logs_follow_the_generic_settings() {
        let logs = |vars: &[(&str, &str)]| {
            let env: std::collections::HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            logs_from_lookup(&Overrides::default(), |k| env.get(k).cloned()).expect("valid")
        };
        let e = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let http = logs(&[(e, "http://collector:4318")]).expect("on");
        assert_eq!(http.endpoint.as_str(), "http://collector:4318/v1/logs");
        let own = logs(&[
            (e, "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9999/x"),
        ])
        .expect("on");
        assert_eq!(own.endpoint.as_str(), "http://logs:9999/x");
        assert!(logs(&[(e, "http://c"), ("OTEL_LOGS_EXPORTER", "none")]).is_none());
        assert!(logs(&[]).is_none());
    }

    #[test]
    fn profiles_follow_the_generic_settings() {
        let profiles = |vars: &[(&str, &str)]| {
            let env: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            profiles_from_lookup(&Overrides::default(), |k| env.get(k).cloned()).expect("valid")
        };
        let e = "OTEL_EXPORTER_OTLP_ENDPOINT";
        let http = profiles(&[(e, "http://collector:4318")]).expect("on");
        assert_eq!(
            http.endpoint.as_str(),
            "http://collector:4318/v1development/profiles"
        );
        let grpc = profiles(&[
            (e, "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ])
        .expect("on");
        assert_eq!(grpc.protocol, Protocol::Grpc);
        assert_eq!(grpc.endpoint.as_str(), "http://collector:4317/");
        assert!(profiles(&[(e, "http://c"), ("OTEL_PROFILES_EXPORTER", "none")]).is_none());
        assert!(profiles(&[]).is_none());
    }
}
