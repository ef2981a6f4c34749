//! Command line, environment and config file, resolved into one [`Settings`].
//!
//! Precedence, highest first: command-line flags, `WIRELENS_*` environment variables, the TOML
//! config file (`--config`, `WIRELENS_CONFIG`), built-in defaults. OTLP export settings also
//! honour the standard `OTEL_EXPORTER_OTLP_*` variables (see `wirelens_otel::export::config`);
//! `--otlp-endpoint`/`--otlp-protocol` override them.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::sinks::prometheus::PrometheusConfig;

/// How records are printed on standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One readable line per request.
    Text,
    /// One JSON object per line per request.
    Json,
    /// Nothing (export only).
    None,
}

/// wirelens: traces every process's network requests with eBPF and exports them as OpenTelemetry.
///
/// With no arguments it traces the whole host and prints one line per request. Set
/// OTEL_EXPORTER_OTLP_ENDPOINT (or --otlp-endpoint) to export spans and metrics over OTLP.
#[derive(Debug, Parser)]
#[command(name = "wirelens", version, about, long_about = None)]
pub struct Cli {
    /// Trace only this process id (repeatable).
    #[arg(
        long = "pid",
        value_name = "PID",
        env = "WIRELENS_PID",
        value_delimiter = ','
    )]
    pub pids: Vec<u32>,
    /// Trace only connections with this local or remote port (repeatable).
    #[arg(
        long = "port",
        global = true,
        value_name = "PORT",
        env = "WIRELENS_PORT",
        value_delimiter = ','
    )]
    pub ports: Vec<u16>,
    /// Trace only threads with this command name (repeatable; the kernel's 15-byte `comm`).
    #[arg(
        long = "comm",
        value_name = "NAME",
        env = "WIRELENS_COMM",
        value_delimiter = ','
    )]
    pub comms: Vec<String>,
    /// Trace only processes in the container with this name, as the runtime names it
    /// (repeatable; Kubernetes: the pod's container name; filtered in the kernel by cgroup).
    #[arg(
        long = "container",
        value_name = "NAME",
        env = "WIRELENS_CONTAINER",
        value_delimiter = ','
    )]
    pub containers: Vec<String>,
    /// Trace only processes in pods of this Kubernetes namespace (repeatable; filtered in the
    /// kernel by cgroup).
    #[arg(
        long = "k8s-namespace",
        value_name = "NAMESPACE",
        env = "WIRELENS_K8S_NAMESPACE",
        value_delimiter = ','
    )]
    pub k8s_namespaces: Vec<String>,
    /// Trace only processes in pods whose labels match this Kubernetes label selector
    /// (`app=web,tier!=db`, `env in (prod,staging)`, `!canary`; needs the Kubernetes API;
    /// filtered in the kernel by cgroup).
    #[arg(long, value_name = "SELECTOR", env = "WIRELENS_K8S_POD_SELECTOR")]
    pub k8s_pod_selector: Option<String>,
    /// Trace only processes running this executable (repeatable; an absolute path, or a glob
    /// such as `/usr/bin/python3*`; filtered in the kernel by pid, children included).
    #[arg(
        long = "exe",
        value_name = "PATH",
        env = "WIRELENS_EXE",
        value_delimiter = ','
    )]
    pub exes: Vec<String>,
    /// Output on stdout: text (default), json, or none.
    #[arg(long, value_enum, env = "WIRELENS_OUTPUT", global = true)]
    pub output: Option<OutputFormat>,
    /// Bytes captured per send/receive call (default 16384, at most 32768).
    #[arg(long, value_name = "BYTES", env = "WIRELENS_CAPTURE_LIMIT")]
    pub capture_limit: Option<u32>,
    /// Kernel ring buffer size in bytes (a power of two; default 16 MiB).
    #[arg(long, value_name = "BYTES", env = "WIRELENS_RING_SIZE")]
    pub ring_size: Option<u32>,
    /// Most connections tracked at once (default 65536); more are counted and not parsed.
    #[arg(
        long,
        value_name = "N",
        env = "WIRELENS_MAX_CONNECTIONS",
        global = true
    )]
    pub max_connections: Option<usize>,
    /// OTLP endpoint (overrides OTEL_EXPORTER_OTLP_ENDPOINT).
    #[arg(long, value_name = "URL", global = true)]
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol: grpc or http/protobuf (overrides OTEL_EXPORTER_OTLP_PROTOCOL).
    #[arg(long, value_name = "PROTOCOL", global = true)]
    pub otlp_protocol: Option<String>,
    /// Serve metrics for Prometheus on ADDRESS:PORT (off by default; e.g. 127.0.0.1:9464),
    /// with /healthz and /readyz for probes. OTEL_METRICS_EXPORTER=prometheus also turns it
    /// on (OTEL_EXPORTER_PROMETHEUS_HOST/PORT, default localhost:9464).
    #[arg(long, value_name = "ADDRESS", env = "WIRELENS_PROMETHEUS_LISTEN")]
    pub prometheus_listen: Option<String>,
    /// Most metric series kept (default 10000); past it, observations go to one overflow
    /// series per metric (otel.metric.overflow=true).
    #[arg(long, value_name = "N", env = "WIRELENS_MAX_METRIC_SERIES")]
    pub max_metric_series: Option<usize>,
    /// Continuous CPU profiling, samples per second per CPU (default 19; 0 turns it off). On
    /// only when an OTLP endpoint is set: profiles go out as OTLP profiles.
    #[arg(long, value_name = "HZ", env = "WIRELENS_PROFILE_FREQUENCY")]
    pub profile_frequency: Option<u64>,
    /// Continuous CPU profiling: time covered by each exported profile (default 10s).
    #[arg(long, value_name = "DURATION", env = "WIRELENS_PROFILE_INTERVAL", value_parser = humantime::parse_duration)]
    pub profile_interval: Option<std::time::Duration>,
    /// Export each process's command line as `process.command_line`: off (default) or redacted
    /// (passwords, tokens, credentials in URLs and SQL literals replaced).
    #[arg(long, value_enum, value_name = "MODE", env = "WIRELENS_COMMAND_LINE")]
    pub command_line: Option<crate::metadata::process::CommandLine>,
    /// JVM metrics from each Java process's hsperfdata file (default true; read every metric
    /// export interval when metrics go out over OTLP or the Prometheus endpoint).
    #[arg(long, value_name = "BOOL", env = "WIRELENS_JVM_METRICS")]
    pub jvm_metrics: Option<bool>,
    /// Resource metrics (process.*, container.*, k8s.pod.*) of every process the filters
    /// select, from /proc and the cgroup files (default true; read every metric export
    /// interval when metrics go out over OTLP or the Prometheus endpoint).
    #[arg(long, value_name = "BOOL", env = "WIRELENS_RESOURCE_METRICS")]
    pub resource_metrics: Option<bool>,
    /// Network and connection metrics per process and remote endpoint, and per-interface
    /// counters per network namespace (default false; see `netmetrics`).
    #[arg(long, value_name = "BOOL", env = "WIRELENS_NETWORK_METRICS")]
    pub network_metrics: Option<bool>,
    /// Remote endpoints kept per process for network metrics; past it, one overflow series
    /// per process (default 256).
    #[arg(long, value_name = "N", env = "WIRELENS_NETWORK_MAX_ENDPOINTS")]
    pub network_max_endpoints: Option<usize>,
    /// Resident memory the agent keeps under by shedding work (connections first, then queued
    /// exports): 256MiB by default, 0 for no limit.
    #[arg(long, value_name = "BYTES", env = "WIRELENS_MEMORY_LIMIT", value_parser = crate::memlimit::parse_bytes)]
    pub memory_limit: Option<u64>,
    /// Kubernetes API URL reached without credentials (a `kubectl proxy`); by default the
    /// in-cluster service account (`KUBERNETES_SERVICE_HOST`) or `KUBECONFIG` is used when set.
    #[arg(long, value_name = "URL", env = "WIRELENS_KUBE_API")]
    pub kube_api: Option<String>,
    /// This node's name (the downward API's `spec.nodeName`): only its pods are watched.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,
    /// Pod labels exported as `k8s.pod.label.<key>` (comma-separated keys).
    #[arg(
        long,
        value_name = "KEY",
        env = "WIRELENS_K8S_POD_LABELS",
        value_delimiter = ','
    )]
    pub k8s_pod_labels: Vec<String>,
    /// Pod annotations exported as `k8s.pod.annotation.<key>` (comma-separated keys).
    #[arg(
        long,
        value_name = "KEY",
        env = "WIRELENS_K8S_POD_ANNOTATIONS",
        value_delimiter = ','
    )]
    pub k8s_pod_annotations: Vec<String>,
    /// Name the peers of connections from the cluster's pods and Services (default true with
    /// the Kubernetes API: watches every pod and Service of the cluster).
    #[arg(long, value_name = "BOOL", env = "WIRELENS_K8S_PEERS")]
    pub k8s_peers: Option<bool>,
    /// Run this bpftrace script as a data source (repeatable): a .bt file, a directory of them,
    /// or the name of a shipped script (tcp-retransmits, oom-kills, exec, slow-disk-io,
    /// runq-latency). Each printf line becomes a row, exported as an OTLP log record.
    #[arg(
        long = "script",
        value_name = "FILE|DIR|NAME",
        env = "WIRELENS_SCRIPT",
        value_delimiter = ','
    )]
    pub scripts: Vec<String>,
    /// An integer column of a --script exported as a metric too, as SCRIPT.COLUMN (repeatable):
    /// the cumulative sum `wirelens.script.<script>.<column>` per process.
    #[arg(
        long = "script-metric",
        value_name = "SCRIPT.COLUMN",
        env = "WIRELENS_SCRIPT_METRIC",
        value_delimiter = ','
    )]
    pub script_metrics: Vec<String>,
    /// The bpftrace binary that runs --script (default /usr/bin/bpftrace).
    #[arg(long, value_name = "PATH", env = "WIRELENS_BPFTRACE")]
    pub bpftrace: Option<PathBuf>,
    /// TOML config file with the same keys as the long flags (snake_case).
    #[arg(long, value_name = "FILE", env = "WIRELENS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Lock file that keeps a second agent from starting.
    #[arg(
        long,
        value_name = "FILE",
        env = "WIRELENS_LOCK_FILE",
        default_value = "/run/wirelens.lock"
    )]
    pub lock_file: PathBuf,
    /// What to run; none: trace the host live.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a pcap or pcapng capture and print (or export) its requests, as if traced live.
    ///
    /// Needs no root. Takes --output, --port, --max-connections, --otlp-endpoint and
    /// --otlp-protocol like the live tracer.
    Replay(ReplayArgs),
    /// Sample every CPU's stacks (kernel and user) for a while and write a gzipped pprof
    /// profile, optionally an SVG flame graph. Needs root.
    Profile(crate::profile::command::ProfileArgs),
}

/// Arguments of `wirelens replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The capture file (pcap or pcapng).
    #[arg(value_name = "FILE")]
    pub path: PathBuf,
    /// Which end of each connection plays the traced process.
    #[arg(long, value_enum, default_value = "client")]
    pub side: Side,
}

/// The end of a captured connection that a replay traces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Side {
    /// The initiator (client-role records).
    Client,
    /// The acceptor (server-role records).
    Server,
    /// Both ends (one record per end per exchange).
    Both,
}

/// The config file: every key optional, same meaning as the flag of the same name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    pid: Option<Vec<u32>>,
    port: Option<Vec<u16>>,
    comm: Option<Vec<String>>,
    container: Option<Vec<String>>,
    k8s_namespace: Option<Vec<String>>,
    output: Option<OutputFormat>,
    capture_limit: Option<u32>,
    ring_size: Option<u32>,
    max_connections: Option<usize>,
    otlp_endpoint: Option<String>,
    otlp_protocol: Option<String>,
    profile_frequency: Option<u64>,
    #[serde(default, with = "humantime_serde_opt")]
    profile_interval: Option<std::time::Duration>,
    prometheus_listen: Option<String>,
    max_metric_series: Option<usize>,
    command_line: Option<crate::metadata::process::CommandLine>,
    jvm_metrics: Option<bool>,
    resource_metrics: Option<bool>,
    network_metrics: Option<bool>,
    network_max_endpoints: Option<usize>,
    memory_limit: Option<String>,
    kube_api: Option<String>,
    node_name: Option<String>,
    k8s_pod_labels: Option<Vec<String>>,
    k8s_pod_annotations: Option<Vec<String>>,
    k8s_peers: Option<bool>,
    k8s_pod_selector: Option<String>,
    exe: Option<Vec<String>>,
    script: Option<Vec<String>>,
    script_metric: Option<Vec<String>>,
    bpftrace: Option<PathBuf>,
}

/// `profile_interval = "10s"` in the config file.
mod humantime_serde_opt {
    use serde::{Deserialize as _, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => humantime::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Everything the agent runs with, after precedence is applied and values are checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Pid filter (empty: all).
    pub pids: Vec<u32>,
    /// Port filter (empty: all).
    pub ports: Vec<u16>,
    /// Command-name filter (empty: all).
    pub comms: Vec<String>,
    /// Container-name selector (with `k8s_namespaces`; both empty: all).
    pub containers: Vec<String>,
    /// Kubernetes-namespace selector.
    pub k8s_namespaces: Vec<String>,
    /// Pod label selector (needs the Kubernetes API).
    pub k8s_pod_selector: Option<crate::metadata::kubernetes::LabelSelector>,
    /// Executable selector.
    pub exes: Option<crate::probes::exe_filter::ExeSelector>,
    /// Output on stdout.
    pub output: OutputFormat,
    /// Capture limit per call.
    pub capture_limit: u32,
    /// Ring buffer bytes.
    pub ring_size: u32,
    /// Connection table bound.
    pub max_connections: usize,
    /// OTLP endpoint from flag or file.
    pub otlp_endpoint: Option<String>,
    /// OTLP protocol from flag or file.
    pub otlp_protocol: Option<String>,
    /// Lock file path.
    pub lock_file: PathBuf,
    /// Continuous profiling rate per CPU (0: off).
    pub profile_frequency: u64,
    /// Continuous profiling interval.
    pub profile_interval: std::time::Duration,
    /// The Prometheus endpoint, when on.
    pub prometheus: Option<PrometheusConfig>,
    /// Metric series cap.
    pub max_metric_series: usize,
    /// Whether `process.command_line` is exported.
    pub command_line: crate::metadata::process::CommandLine,
    /// Whether JVM metrics are read and exported.
    pub jvm_metrics: bool,
    /// Whether resource metrics are read and exported.
    pub resource_metrics: bool,
    /// Whether network metrics are collected (kernel side: connects and retransmits too).
    pub network_metrics: bool,
    /// Remote endpoints kept per process for network metrics.
    pub network_max_endpoints: usize,
    /// Resident-memory limit in bytes (0: none).
    pub memory_limit: u64,
    /// Kubernetes API metadata, when an API is configured or discoverable.
    pub kubernetes: Option<crate::metadata::kubernetes::KubeConfig>,
    /// bpftrace scripts run as data sources, when any is given.
    pub scripts: Option<crate::scripts::ScriptsConfig>,
}

/// `--memory-limit` by default: what a DaemonSet pod is usually given.
pub const DEFAULT_MEMORY_LIMIT: u64 = 256 << 20;

impl Cli {
    /// Merge with the config file and check values.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_config(path)?,
            None => FileConfig::default(),
        };
        let script_specs = pick_vec(self.scripts, file.script);
        let scripts = if script_specs.is_empty() {
            None
        } else {
            let bpftrace = self
                .bpftrace
                .or(file.bpftrace)
                .unwrap_or_else(|| PathBuf::from(crate::scripts::DEFAULT_BPFTRACE));
            let metrics = pick_vec(self.script_metrics, file.script_metric);
            Some(crate::scripts::ScriptsConfig::resolve(
                &script_specs,
                &metrics,
                bpftrace,
            )?)
        };
        let settings = Settings {
            scripts,
            pids: pick_vec(self.pids, file.pid),
            ports: pick_vec(self.ports, file.port),
            comms: pick_vec(self.comms, file.comm),
            containers: pick_vec(self.containers, file.container),
            k8s_namespaces: pick_vec(self.k8s_namespaces, file.k8s_namespace),
            k8s_pod_selector: match self.k8s_pod_selector.or(file.k8s_pod_selector) {
                Some(text) => Some(text.parse().map_err(|e| {
                    anyhow::anyhow!(
                        "invalid {}: {text:?}: {e}; accepted: a Kubernetes label selector such as app=web,tier!=db",
                        names("k8s-pod-selector")
                    )
                })?),
                None => None,
            },
            exes: crate::probes::exe_filter::ExeSelector::new(&pick_vec(self.exes, file.exe))
                .map_err(|e| anyhow::anyhow!("invalid {}: {e}", names("exe")))?,
            output: self.output.or(file.output).unwrap_or(OutputFormat::Text),
            capture_limit: self
                .capture_limit
                .or(file.capture_limit)
                .unwrap_or(wirelens_ebpf::DEFAULT_CAPTURE),
            ring_size: self.ring_size.or(file.ring_size).unwrap_or(16 << 20),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(65536),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
            otlp_protocol: self.otlp_protocol.or(file.otlp_protocol),
            lock_file: self.lock_file,
            profile_frequency: self
                .profile_frequency
                .or(file.profile_frequency)
                .unwrap_or(crate::profile::CONTINUOUS_FREQUENCY),
            profile_interval: self
                .profile_interval
                .or(file.profile_interval)
                .unwrap_or(crate::profile::CONTINUOUS_INTERVAL),
            prometheus: prometheus_config(self.prometheus_listen, file.prometheus_listen)?,
            max_metric_series: self
                .max_metric_series
                .or(file.max_metric_series)
                .unwrap_or(wirelens_otel::metrics::DEFAULT_MAX_SERIES),
            command_line: self.command_line.or(file.command_line).unwrap_or_default(),
            jvm_metrics: self.jvm_metrics.or(file.jvm_metrics).unwrap_or(true),
            resource_metrics: self
                .resource_metrics
                .or(file.resource_metrics)
                .unwrap_or(true),
            network_metrics: self
                .network_metrics
                .or(file.network_metrics)
                .unwrap_or(false),
            network_max_endpoints: self
                .network_max_endpoints
                .or(file.network_max_endpoints)
                .unwrap_or(crate::netmetrics::DEFAULT_MAX_ENDPOINTS),
            memory_limit: match (self.memory_limit, file.memory_limit) {
                (Some(flag), _) => flag,
                (None, Some(text)) => crate::memlimit::parse_bytes(&text)
                    .map_err(|e| anyhow::anyhow!("memory_limit in the config file: {e}"))?,
                (None, None) => DEFAULT_MEMORY_LIMIT,
            },
            kubernetes: crate::metadata::kubernetes::KubeConfig::resolve(
                self.kube_api.or(file.kube_api).as_deref(),
                self.node_name.or(file.node_name).as_deref(),
                crate::metadata::kubernetes::Selection {
                    labels: pick_vec(self.k8s_pod_labels, file.k8s_pod_labels),
                    annotations: pick_vec(self.k8s_pod_annotations, file.k8s_pod_annotations),
                },
                self.k8s_peers.or(file.k8s_peers).unwrap_or(true),
            )?,
        };
        settings.check()?;
        Ok(settings)
    }
}

impl Settings {
    fn check(&self) -> anyhow::Result<()> {
        if self.k8s_pod_selector.is_some() && self.kubernetes.is_none() {
            bail!(
                "{} needs the Kubernetes API for pod labels: run in a cluster with NODE_NAME set, or give --kube-api and --node-name",
                names("k8s-pod-selector")
            );
        }
        let max = wirelens_ebpf::MAX_CAPTURE as u32;
        if self.capture_limit == 0 || self.capture_limit > max {
            bail!(
                "invalid {}: {}; accepted: 1 to {max} bytes",
                names("capture-limit"),
                self.capture_limit
            );
        }
        if !self.ring_size.is_power_of_two() || self.ring_size < 4096 {
            bail!(
                "invalid {}: {}; accepted: a power of two of at least 4096 bytes",
                names("ring-size"),
                self.ring_size
            );
        }
        if self.profile_frequency > 10_000 {
            bail!(
                "invalid {}: {}; accepted: 0 (off) to 10000 Hz",
                names("profile-frequency"),
                self.profile_frequency
            );
        }
        if self.profile_interval < std::time::Duration::from_secs(1) {
            bail!(
                "invalid {}: {}; accepted: a duration of at least 1s",
                names("profile-interval"),
                humantime::format_duration(self.profile_interval)
            );
        }
        if self.memory_limit != 0 && self.memory_limit < 16 << 20 {
            bail!(
                "--memory-limit must be 0 (no limit) or at least 16MiB, got {} bytes",
                self.memory_limit
            );
        }
        if self.max_connections == 0 {
            bail!(
                "invalid {}: 0; accepted: 1 or more",
                names("max-connections")
            );
        }
        if self.max_metric_series == 0 {
            bail!("--max-metric-series must be at least 1");
        }
        for comm in &self.comms {
            if comm.is_empty() || comm.len() > 15 {
                bail!(
                    "invalid {}: {comm:?}; accepted: a command name of 1 to 15 bytes (the kernel's comm)",
                    names("comm")
                );
            }
        }
        Ok(())
    }
}

/// The Prometheus endpoint from the flag (or its variable), the file, or
/// `OTEL_METRICS_EXPORTER=prometheus`.
fn prometheus_config(
    flag: Option<String>,
    file: Option<String>,
) -> anyhow::Result<Option<PrometheusConfig>> {
    let (listen, name) = match (flag, file) {
        (Some(v), _) => (Some(v), "--prometheus-listen"),
        (None, Some(v)) => (Some(v), "prometheus_listen (config file)"),
        (None, None) => (None, "--prometheus-listen"),
    };
    let exporters = wirelens_otel::export::metrics_exporters_from_env()?;
    Ok(PrometheusConfig::resolve(
        listen.as_deref(),
        name,
        exporters.prometheus,
        |var| std::env::var(var).ok(),
    )?)
}

/// Every name a setting goes by: `--flag`, `WIRELENS_FLAG` (where it has one) and the config
/// file key, so an error names the one the user set whichever it was.
fn names(flag: &str) -> String {
    let key = flag.replace('-', "_");
    match env_of(flag) {
        Some(env) => format!("--{flag} ({env}, config key {key})"),
        None => format!("--{flag} (config key {key})"),
    }
}

/// The environment variable of the top-level flag `--long`, as clap declares it.
fn env_of(long: &str) -> Option<String> {
    use clap::CommandFactory as _;
    let command = Cli::command();
    let arg = command
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?;
    arg.get_env().map(|e| e.to_string_lossy().into_owned())
}

/// What a flag accepts, for the error line when clap rejects its value (value enums list
/// their values themselves).
fn accepted(long: &str) -> Option<&'static str> {
    Some(match long {
        "pid" => "process ids (positive integers), comma-separated",
        "port" => "port numbers 0 to 65535, comma-separated",
        "capture-limit" => "1 to 32768 bytes",
        "ring-size" => "a power of two of at least 4096 bytes",
        "max-connections" => "1 or more",
        "profile-frequency" => "0 (off) to 10000 Hz",
        "profile-interval" | "duration" => "a duration such as 500ms, 10s, 1m",
        _ => return None,
    })
}

/// A clap error as the one line `wirelens: error:` prints: what was wrong, the flag and its
/// environment variable, the accepted values. `None` for `--help` and `--version`, which are
/// not errors.
pub fn one_line(err: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        return None;
    }
    let rendered = err.render().to_string();
    let mut line = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(rest) = line.strip_prefix("error: ") {
        line = rest.to_owned();
    }
    let long = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg
            .split_whitespace()
            .next()
            .and_then(|a| a.strip_prefix("--"))
            .map(str::to_owned),
        _ => None,
    };
    if let Some(long) = long {
        if let Some(env) = env_of(&long) {
            line.push_str(&format!(" (the flag, or {env})"));
        }
        if matches!(
            err.kind(),
            ErrorKind::ValueValidation | ErrorKind::InvalidValue
        ) && let Some(accepted) = accepted(&long)
            && !line.contains("possible values")
        {
            line.push_str(&format!("; accepted: {accepted}"));
        }
    }
    Some(line)
}

/// A repeatable flag wins when given at all; otherwise the file's list.
fn pick_vec<T>(flag: Vec<T>, file: Option<Vec<T>>) -> Vec<T> {
    if flag.is_empty() {
        file.unwrap_or_default()
    } else {
        flag
    }
}

fn read_config(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).map_err(|err| {
        // One line: toml's own message quotes the file with carets over several.
        let at = err
            .span()
            .map(|span| {
                let start = span.start.min(text.len());
                let number = text.get(..start).unwrap_or("").matches('\n').count() + 1;
                // The key of that line, when the value is what is wrong.
                let key = text
                    .lines()
                    .nth(number - 1)
                    .and_then(|l| l.split_once('='))
                    .map(|(k, _)| format!(" key {}:", k.trim()))
                    .unwrap_or_default();
                format!(" line {number}:{key}")
            })
            .unwrap_or_default();
        anyhow::anyhow!(
            "invalid config file {}:{at} {}",
            path.display(),
            err.message().trim().replace('\n', "; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Settings> {
        let mut all = vec!["wirelens"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)?.resolve()
    }

    #[test]
    fn defaults() {
        let s = parse(&[]).expect("defaults resolve");
        assert_eq!(s.output, OutputFormat::Text);
        assert_eq!(s.capture_limit, 16384);
        assert!(s.ports.is_empty());
        assert_eq!(
            s.command_line,
            crate::metadata::process::CommandLine::Off,
            "command lines are not exported unless asked for"
        );
    }

    #[test]
    fn memory_limit_values() {
        assert_eq!(parse(&[]).expect("defaults").memory_limit, 256 << 20);
        assert_eq!(
            parse(&["--memory-limit", "1GiB"])
                .expect("resolves")
                .memory_limit,
            1 << 30
        );
        assert_eq!(
            parse(&["--memory-limit", "0"])
                .expect("resolves")
                .memory_limit,
            0
        );
        let err = parse(&["--memory-limit", "1MiB"]).expect_err("rejected");
        assert!(err.to_string().contains("--memory-limit"), "{err}");
        assert!(parse(&["--memory-limit", "lots"]).is_err());
    }

    #[test]
    fn command_line_mode_from_flag_and_file() {
        use crate::metadata::process::CommandLine;
        let s = parse(&["--command-line", "redacted"]).expect("resolves");
        assert_eq!(s.command_line, CommandLine::Redacted);
        let err = parse(&["--command-line", "full"]).expect_err("rejected");
        assert!(err.to_string().contains("--command-line"), "{err}");
        let dir = std::env::temp_dir().join(format!("wirelens-cli-cl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "command_line = \"redacted\"\n").expect("write");
        let path = file.to_string_lossy().to_string();
        let s = parse(&["--config", &path]).expect("resolves");
        assert_eq!(s.command_line, CommandLine::Redacted);
    }

    #[test]
    fn flags_beat_config_file() {
        let dir = std::env::temp_dir().join(format!("wirelens-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "port = [80]\noutput = \"json\"\ncapture_limit = 4096\n",
        )
        .expect("write");
        let path = file.to_string_lossy().to_string();
        let s = parse(&["--config", &path, "--port", "8080"]).expect("resolves");
        assert_eq!(s.ports, vec![8080]);
        assert_eq!(s.output, OutputFormat::Json);
        assert_eq!(s.capture_limit, 4096);
    }

    #[test]
    fn container_selectors_from_flags_and_file() {
        let s = parse(&["--container", "web,api", "--k8s-namespace", "shop"]).expect("resolves");
        assert_eq!(s.containers, ["web", "api"]);
        assert_eq!(s.k8s_namespaces, ["shop"]);
        let dir = std::env::temp_dir().join(format!("wirelens-cli-sel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "container = [\"db\"]\nk8s_namespace = [\"prod\"]\n").expect("write");
        let path = file.to_string_lossy().to_string();
        let s = parse(&["--config", &path]).expect("resolves");
        assert_eq!(s.containers, ["db"]);
        assert_eq!(s.k8s_namespaces, ["prod"]);
    }

    #[test]
    fn pod_selector_exe_and_peers_from_flags_and_file() {
        let s = parse(&[
            "--kube-api",
            "http://127.0.0.1:1",
            "--node-name",
            "n1",
            "--k8s-pod-selector",
            "app=web,tier in (a,b)",
            "--exe",
            "/usr/sbin/nginx,/opt/*/bin/app",
        ])
        .expect("resolves");
        let selector = s.k8s_pod_selector.expect("selector");
        assert_eq!(selector.to_string(), "app=web,tier in (a,b)");
        let exes = s.exes.expect("exes");
        assert!(exes.matches("/usr/sbin/nginx") && exes.matches("/opt/x/bin/app"));
        assert!(s.kubernetes.expect("api").peers, "peers on by default");
        let dir = std::env::temp_dir().join(format!("wirelens-cli-pods-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "kube_api = \"http://127.0.0.1:1\"\nnode_name = \"n1\"\nk8s_peers = false\n\
             k8s_pod_selector = \"!canary\"\nexe = [\"/usr/bin/curl\"]\n",
        )
        .expect("write");
        let path = file.to_string_lossy().to_string();
        let s = parse(&["--config", &path]).expect("resolves");
        assert!(!s.kubernetes.expect("api").peers);
        assert_eq!(s.k8s_pod_selector.expect("selector").to_string(), "!canary");
        assert!(s.exes.expect("exes").matches("/usr/bin/curl"));
        let line = error_line(&["--k8s-pod-selector", "app=web"]);
        assert!(line.contains("needs the Kubernetes API"), "{line}");
        let line = error_line(&[
            "--kube-api",
            "http://127.0.0.1:1",
            "--node-name",
            "n1",
            "--k8s-pod-selector",
            "tier in (a",
        ]);
        assert!(
            line.contains("WIRELENS_K8S_POD_SELECTOR") && line.contains("unbalanced"),
            "{line}"
        );
        let line = error_line(&["--exe", "nginx"]);
        assert!(
            line.contains("--exe (WIRELENS_EXE, config key exe)"),
            "{line}"
        );
    }

    /// The error line for `args`: from clap (flag syntax and types) or from the checks.
    fn error_line(args: &[&str]) -> String {
        let mut all = vec!["wirelens"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all) {
            Err(err) => one_line(&err).expect("an error, not help"),
            Ok(cli) => format!("{:#}", cli.resolve().expect_err("rejected")),
        }
    }

    fn assert_names(line: &str, parts: &[&str]) {
        assert!(!line.contains('\n'), "one line: {line:?}");
        for part in parts {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let cases: &[(&[&str], &[&str])] = &[
            (
                &["--capture-limit", "0"],
                &[
                    "--capture-limit",
                    "WIRELENS_CAPTURE_LIMIT",
                    "capture_limit",
                    "1 to 32768",
                ],
            ),
            (
                &["--capture-limit", "99999"],
                &["--capture-limit", "99999", "1 to 32768"],
            ),
            (
                &["--capture-limit", "lots"],
                &[
                    "'lots'",
                    "--capture-limit",
                    "WIRELENS_CAPTURE_LIMIT",
                    "1 to 32768",
                ],
            ),
            (
                &["--ring-size", "1000"],
                &["--ring-size", "WIRELENS_RING_SIZE", "power of two"],
            ),
            (
                &["--port", "http"],
                &["'http'", "--port", "WIRELENS_PORT", "0 to 65535"],
            ),
            (&["--port", "70000"], &["--port", "0 to 65535"]),
            (&["--pid", "x"], &["--pid", "WIRELENS_PID", "process ids"]),
            (
                &["--comm", "a-very-long-command-name"],
                &["--comm", "WIRELENS_COMM", "1 to 15 bytes"],
            ),
            (
                &["--output", "xml"],
                &[
                    "'xml'",
                    "--output",
                    "WIRELENS_OUTPUT",
                    "text",
                    "json",
                    "none",
                ],
            ),
            (
                &["--command-line", "full"],
                &["--command-line", "WIRELENS_COMMAND_LINE", "off", "redacted"],
            ),
            (
                &["--max-connections", "0"],
                &["--max-connections", "WIRELENS_MAX_CONNECTIONS", "1 or more"],
            ),
            (
                &["--profile-frequency", "20000"],
                &["--profile-frequency", "10000 Hz"],
            ),
            (
                &["--profile-interval", "soon"],
                &[
                    "--profile-interval",
                    "WIRELENS_PROFILE_INTERVAL",
                    "duration",
                ],
            ),
            (
                &["--profile-interval", "10ms"],
                &["--profile-interval", "at least 1s"],
            ),
            (&["--bogus"], &["--bogus"]),
            (
                &["replay", "x.pcap", "--side", "middle"],
                &["--side", "client", "server", "both"],
            ),
        ];
        for (args, parts) in cases {
            assert_names(&error_line(args), parts);
        }
    }

    #[test]
    fn help_and_version_are_not_errors() {
        for flag in ["--help", "--version"] {
            let err = Cli::try_parse_from(["wirelens", flag]).expect_err("exits early");
            assert!(one_line(&err).is_none(), "{flag}");
        }
    }

    #[test]
    fn bad_config_files_name_the_key() {
        let dir = std::env::temp_dir().join(format!("wirelens-cli-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cases: &[(&str, &[&str])] = &[
            (
                "port = [80]\nbogus = 1\n",
                &["line 2", "bogus", "port", "max_connections"],
            ),
            (
                "capture_limit = \"big\"\n",
                &["line 1", "capture_limit", "u32"],
            ),
            (
                "output = \"xml\"\n",
                &["output", "xml", "text", "json", "none"],
            ),
            (
                "capture_limit = 0\n",
                &["--capture-limit", "capture_limit", "1 to 32768"],
            ),
            ("profile_interval = \"soon\"\n", &["profile_interval"]),
            ("port = [\n", &["invalid config file"]),
        ];
        for (i, (text, parts)) in cases.iter().enumerate() {
            let file = dir.join(format!("c{i}.toml"));
            std::fs::write(&file, text).expect("write");
            let path = file.to_string_lossy().to_string();
            let err = parse(&["--config", &path]).expect_err("rejected");
            let line = format!("{err:#}");
            if !text.starts_with("capture_limit = 0") {
                assert!(line.contains(&path), "the file is named: {line}");
            }
            assert_names(&line, parts);
        }
        let err = parse(&["--config", "/nonexistent/wirelens.toml"]).expect_err("rejected");
        assert!(format!("{err:#}").contains("/nonexistent/wirelens.toml"));
    }

    #[test]
    fn resource_metrics_flag() {
        assert!(
            parse(&[]).expect("defaults").resource_metrics,
            "on by default"
        );
        let s = parse(&["--resource-metrics", "false"]).expect("resolves");
        assert!(!s.resource_metrics);
        let dir = std::env::temp_dir().join(format!("wirelens-cli-rm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("c.toml");
        std::fs::write(&file, "resource_metrics = false\n").expect("write");
        let path = file.to_string_lossy().to_string();
        assert!(
            !parse(&["--config", &path])
                .expect("resolves")
                .resource_metrics
        );
    }

    #[test]
    fn prometheus_flags() {
        let s = parse(&[]).expect("defaults resolve");
        assert_eq!(s.prometheus, None, "off by default");
        assert_eq!(s.max_metric_series, 10_000);
        let s = parse(&[
            "--prometheus-listen",
            "127.0.0.1:9464",
            "--max-metric-series",
            "50",
        ])
        .expect("resolves");
        assert_eq!(
            s.prometheus.map(|p| p.listen.to_string()).as_deref(),
            Some("127.0.0.1:9464")
        );
        assert_eq!(s.max_metric_series, 50);
        let err = parse(&["--prometheus-listen", "9464x"]).expect_err("rejected");
        assert!(err.to_string().contains("--prometheus-listen"), "{err}");
        let err = parse(&["--max-metric-series", "0"]).expect_err("rejected");
        assert!(err.to_string().contains("--max-metric-series"), "{err}");
    }

    #[test]
    fn replay_subcommand_takes_global_flags() {
        let cli = Cli::try_parse_from([
            "wirelens", "replay", "x.pcap", "--output", "json", "--port", "80", "--side", "both",
        ])
        .expect("parses");
        let Some(Command::Replay(args)) = &cli.command else {
            panic!("no replay subcommand: {cli:?}");
        };
        assert_eq!(args.path, PathBuf::from("x.pcap"));
        assert_eq!(args.side, Side::Both);
        let s = cli.resolve().expect("resolves");
        assert_eq!(s.output, OutputFormat::Json);
        assert_eq!(s.ports, vec![80]);
        // No subcommand: the live tracer, as before.
        assert!(
            Cli::try_parse_from(["wirelens"])
                .expect("parses")
                .command
                .is_none()
        );
    }
}
